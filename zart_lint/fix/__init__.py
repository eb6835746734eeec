"""Fixes: ``_planner`` plans the edits of a finding (with libcst, during the
analysis); ``_apply`` applies the edits of findings to a text, pass after pass.
"""
