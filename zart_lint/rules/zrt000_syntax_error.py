"""ZRT000: the file does not parse.

zart-lint reads Python with libcst. A file it cannot parse is reported here,
at the position of the error, instead of being skipped silently (a pre-commit
hook that skips broken files would let the other rules' bugs through) or
crashing the run.

Fix: correct the syntax error; ``python -m py_compile <file>`` shows the same
problem.
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
