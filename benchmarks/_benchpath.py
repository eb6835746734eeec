"""Imported first by the benchmark scripts: puts this folder after the standard library
on ``sys.path``.

Run as a script, a benchmark has its own folder first on ``sys.path``, where
``benchmarks/concurrent.py`` (the name the scale issue gave it) would shadow the
standard library's ``concurrent`` package, which ``asyncio`` imports. Sibling modules
(``_bench_db``...) still import: the folder stays on the path, last.
"""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    sys.path.append(sys.path.pop(0))
