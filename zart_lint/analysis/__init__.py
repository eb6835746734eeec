"""One file, with libcst: walk it once, then answer the rules' questions.

``_walker`` records a ``_model.FileModel`` in a single pass; ``_analysis``
resolves names to steps and primitives; ``_variance`` decides what changes per
loop iteration; ``_naming`` gives each step call its name and verdict;
``_report`` is what a rule yields; ``_positions`` turns the reported nodes into
source positions.

Importing this package does not import libcst; its modules do.
"""
