"""ZRT000: the file does not parse.

zart-lint reads Python with libcst. A file it cannot parse is reported here,
at the position of the error, instead of being skipped silently (a pre-commit
hook that skips broken files would let the other rules' bugs through) or
crashing the run.

Fix: correct the syntax error; ``python -m py_compile <file>`` shows the same
problem.

A file that Python accepts but libcst cannot parse (``(pars): bool = True``,
a parenthesised annotated target) is not wrong: it gets no ZRT000 but a
"cannot analyse" warning saying it was not checked (``--strict`` makes that
fail the run). A file named on the command line is always checked for syntax,
even when it cannot involve steps; a directory walk parses only the files
that can (see the docs).
"""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

from zart_lint.core._finding import Finding
from zart_lint.rules._registry import register_module

CODE = "ZRT000"
NAME = "syntax-error"
SUMMARY = "File does not parse"
FIXABLE = False

VALID = [
    """
from zart import step

@step("ok")
async def ok() -> None: ...
""",
    """
match command:
    case "go":
        pass
""",
    """
async def f(xs):
    return [x async for x in xs]
""",
    # valid Python that libcst cannot parse: a "cannot analyse" notice, not ZRT000
    """
(pars): bool = True
import zart
""",
]

INVALID = [
    """
def broken(:
    pass
""",
    """
for item in items
    print(item)
""",
    """
x = (1,
""",
]

# No check: the engine reports this rule when libcst cannot parse a file (see ``finding``).
register_module(__name__)

_POSITION = re.compile(r"error at (\d+):(\d+): (.*)", re.DOTALL)


def finding(source: str, path: Path, error: Exception) -> Finding:
    """The ZRT000 finding for a parse failure, positioned as precisely as possible.

    Python's own parser has the clearer message and position ("'(' was never
    closed" where the parenthesis is), so it is preferred when it rejects the
    file too; libcst's report is used when only libcst does.
    """
    python = _python_error(source)
    if python is not None:
        line, column, detail = python
    else:
        line, column, detail = _libcst_error(error)
    detail = " ".join(detail.split())
    line, column = max(line, 1), max(column, 1)
    return Finding(
        code=CODE,
        message=f"file does not parse: {detail}",
        path=str(path),
        line=line,
        column=column,
        end_line=line,
        end_column=column + 1,
    )


def cannot_analyse(source: str, error: Exception) -> str | None:
    """The notice for valid Python that libcst cannot parse (None: Python rejects it too).

    Such a file is not wrong, so it gets no ZRT000: it is reported as not checked.
    """
    if _python_error(source) is not None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    line, column, detail = _libcst_error(error)
    detail = " ".join(detail.split())
    return (
        f"cannot analyse this file: it is valid Python, but libcst (the parser zart-lint "
        f"uses) cannot parse it (line {max(line, 1)}, column {max(column, 1)}: {detail}); "
        "the file was not checked"
    )


def syntax_error(source: str, path: Path) -> Finding | None:
    """ZRT000 for a file Python's own parser rejects (cheap: no libcst), else None."""
    python = _python_error(source)
    if python is None:
        return None
    return finding(source, path, SyntaxError(python[2]))


def _libcst_error(error: Exception) -> tuple[int, int, str]:
    import libcst as cst

    if isinstance(error, RecursionError):
        return 1, 1, "nested too deeply for libcst to parse"
    if not isinstance(error, cst.ParserSyntaxError):
        return 1, 1, f"{type(error).__name__}: {error}"
    detail = error.message.removeprefix("tokenizer error: ").removeprefix("parser error: ")
    match = _POSITION.search(error.message)
    if match is not None:  # (1-based line, 0-based column) of the offending token
        return int(match.group(1)), int(match.group(2)) + 1, match.group(3)
    return error.raw_line, error.raw_column + 1, detail


def _python_error(source: str) -> tuple[int, int, str] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes and the like
            ast.parse(source)
    except SyntaxError as error:
        if error.lineno is not None:
            return error.lineno, error.offset or 1, error.msg
    except (ValueError, RecursionError, MemoryError):
        return None
    return None
