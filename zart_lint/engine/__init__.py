"""Checking files: lint one (``_api`` / ``_lint``), filter its findings
(``_suppression``, per-file-ignores in ``_checker``), fix it, remember the
result (``_cache``), and run all of a command's files (``_runner``, in worker
processes from ``_workers``).

``_api`` is the libcst-free interface: importing it (or this package) does not
import the analysis.
"""
