"""What every command shares: the one-line usage error, importing the user's modules,
parsing ``--input``, table output, the lazily opened engine and the error guard."""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

import click

from zart import DurableFunction, TaskError, Zart, ZartError
from zart._ops._internals import InvalidInputError
from zart._ops.arguments import json_arguments
from zart._ops.secrets import mask_url, scrub

F = TypeVar("F", bound=Callable[..., Any])


class _AsDict(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


D = TypeVar("D", bound=_AsDict)


def fail(message: str) -> NoReturn:
    """``zart: error: <message>`` on stderr (passwords masked), exit 2."""
    click.echo(f"zart: error: {scrub(message)}", err=True)
    sys.exit(2)


def pipe_closed() -> NoReturn:
    """The reader of our output went away (``zart list | head``): stop quietly, as a
    command killed by SIGPIPE does (exit status 141)."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(141)


# ---------------------------------------------------------------------- importing


def _import_file(spec: str) -> Any:
    path = Path(spec)
    if not path.is_file():
        fail(f"no such file: {spec}")
    sys.path.insert(0, str(path.resolve().parent))
    name = path.stem
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        fail(f"cannot import {spec}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        fail(f"importing {spec} failed: {type(exc).__name__}: {exc}")
    return module


def import_module(spec: str) -> Any:
    """Import ``pkg.module`` or a file path ``path/to/flows.py``."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if spec.endswith(".py") or os.sep in spec:
        return _import_file(spec)
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        fail(
            f"cannot import module {spec!r}: {exc} "
            "(is it on PYTHONPATH / run from the project root?)"
        )
    except Exception as exc:
        fail(f"importing {spec!r} failed: {type(exc).__name__}: {exc}")


def import_modules(modules: Sequence[str]) -> None:
    for module in modules:
        import_module(module)


def load_durable(target: str) -> DurableFunction[Any, Any]:
    """The ``@durable`` function named by ``MODULE:FUNCTION``."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        fail(f"expected MODULE:FUNCTION (e.g. myapp.flows:process_batch), got {target!r}")
    obj: Any = import_module(module_name)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            fail(f"module {module_name!r} has no attribute {attr!r}")
    if not isinstance(obj, DurableFunction):
        fail(f"{target} is not a @durable function (got {type(obj).__name__})")
    return obj


# ---------------------------------------------------------------------- input


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        fail(f"{what} is not valid JSON: {exc.args[0] if exc.args else exc}")


def input_arguments(
    durable: DurableFunction[Any, Any], data: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Parsed ``--input`` JSON (see :func:`parse_json`) → typed call arguments (see
    ``zart._ops.arguments``)."""
    try:
        return json_arguments(durable, data)
    except InvalidInputError as exc:
        fail(f"--input: {exc}")


# ---------------------------------------------------------------------- output


def when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms"
    return f"{seconds:.2f}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=False)]
    click.echo(
        "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip()
    )
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


def echo_items(
    items: Sequence[D],
    as_json: bool,
    *,
    empty: str,
    headers: Sequence[str],
    row: Callable[[D], Sequence[str]],
) -> None:
    """A list as a JSON array (each item's ``as_dict()``), ``empty`` or a table."""
    if as_json:
        click.echo(json.dumps([item.as_dict() for item in items]))
    elif not items:
        click.echo(empty)
    else:
        table(headers, [row(item) for item in items])


def echo_json_or(data: dict[str, Any], as_json: bool, message: str) -> None:
    """``data`` as JSON with ``--json``, else ``message``."""
    click.echo(json.dumps(data) if as_json else message)


# ---------------------------------------------------------------------- commands


def check_database_url(url: str | None) -> None:
    """A usage error (password masked) for a URL that cannot be parsed."""
    if not url:
        return
    from sqlalchemy.engine import make_url

    try:
        make_url(url)
    except Exception as exc:
        detail = f" ({exc})" if url not in str(exc) else ""
        fail(
            f"invalid database URL {mask_url(url)!r}{scrub(detail)}; expected e.g. "
            "sqlite:///zart.db or postgresql+psycopg://user@host/dbname"
        )


class CliContext:
    """``ctx.obj``: the database URL, and the engine opened on first use."""

    def __init__(self, database_url: str | None) -> None:
        self.database_url = database_url
        self._app: Zart | None = None

    @property
    def app(self) -> Zart:
        if self._app is None:
            check_database_url(self.database_url)
            self._app = Zart(self.database_url)
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None


def guard(fn: F) -> F:
    """One clear line and exit 2 for expected errors, instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TaskError:
            raise
        except BrokenPipeError:
            pipe_closed()
        except (ZartError, OSError) as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


def command(fn: F) -> F:
    """A command given the ``CliContext`` (first argument) under ``guard``."""
    return click.pass_obj(guard(fn))  # type: ignore[return-value]


json_option = click.option("--json", "as_json", is_flag=True)
actor_option = click.option(
    "--actor", default=None, help="Who does this (audit log; default: the OS user)."
)
