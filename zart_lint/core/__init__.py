"""The vocabulary every stage shares; nothing here imports libcst.

Findings and their fixes (what the analysis produces and every output format
consumes), rule metadata, the rule options from the configuration, what zart's
API looks like to the linter (decorators, primitives, non-deterministic calls)
and the step-name template grammar.
"""
