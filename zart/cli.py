"""The ``zart`` command: run, inspect and steer durable executions."""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from zart import __version__
from zart._durable import DurableFunction, registered_names
from zart._engine import Zart
from zart._errors import ExecutionCancelledError, TaskError, ZartError
from zart._info import ExecutionStatus, StepInfo
from zart._storage import ALL_STATUSES


def _fail(message: str) -> NoReturn:
    click.echo(f"zart: error: {message}", err=True)
    sys.exit(2)


def _import_module(spec: str) -> Any:
    """Import ``pkg.module`` or a file path ``path/to/flows.py``."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if spec.endswith(".py") or os.sep in spec:
        path = Path(spec)
        if not path.is_file():
            _fail(f"no such file: {spec}")
        sys.path.insert(0, str(path.resolve().parent))
        name = path.stem
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            _fail(f"cannot import {spec}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            _fail(f"importing {spec} failed: {type(exc).__name__}: {exc}")
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        _fail(
            f"cannot import module {spec!r}: {exc} "
            "(is it on PYTHONPATH / run from the project root?)"
        )
    except Exception as exc:
        _fail(f"importing {spec!r} failed: {type(exc).__name__}: {exc}")


def _load_durable(target: str) -> DurableFunction[Any, Any]:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        _fail(f"expected MODULE:FUNCTION (e.g. myapp.flows:process_batch), got {target!r}")
    module = _import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            _fail(f"module {module_name!r} has no attribute {attr!r}")
    if not isinstance(obj, DurableFunction):
        _fail(f"{target} is not a @durable function (got {type(obj).__name__})")
    return obj


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        _fail(f"{what} is not valid JSON: {exc.args[0] if exc.args else exc}")


def _arguments(
    durable: DurableFunction[Any, Any], data: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``--input`` JSON → typed call arguments (see ``admin.json_arguments``)."""
    from zart._ops import admin

    try:
        return admin.json_arguments(durable, data)
    except admin.InvalidInputError as exc:
        _fail(f"--input: {exc}")


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms"
    return f"{seconds:.2f}s"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=False)]
    click.echo(
        "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip()
    )
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


class _Obj:
    def __init__(self, database_url: str | None) -> None:
        self.database_url = database_url
        self._app: Zart | None = None

    @property
    def app(self) -> Zart:
        if self._app is None:
            self._app = Zart(self.database_url)
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """One clear line and exit 2 for expected errors, instead of a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TaskError:
            raise
        except ZartError as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(str(exc))

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    envvar="ZART_DATABASE_URL",
    default=None,
    help="Database URL (default: $ZART_DATABASE_URL, else sqlite:///zart.db).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log execution and step activity.")
@click.version_option(__version__, prog_name="zart")
@click.pass_context
def main(ctx: click.Context, database_url: str | None, verbose: bool) -> None:
    """Run and inspect zart durable executions."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = _Obj(database_url)
    ctx.call_on_close(ctx.obj.close)


@main.command()
@click.argument("target")
@click.option(
    "--input",
    "input_json",
    default=None,
    help="Arguments as JSON (array, object or single value); "
    "may be left out to resume or look up an existing --id.",
)
@click.option(
    "--id",
    "execution_id",
    default=None,
    help="Execution id (idempotent: an existing id is resumed or its result returned).",
)
@click.option("--no-wait", is_flag=True, help="Create the execution and return; a worker runs it.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
@click.pass_obj
@_guard
def run(
    obj: _Obj,
    target: str,
    input_json: str | None,
    execution_id: str | None,
    no_wait: bool,
    as_json: bool,
) -> None:
    """Start (or resume) MODULE:FUNCTION and print its result."""
    durable = _load_durable(target)
    app = obj.app
    existing = None
    if input_json is None and execution_id is not None:
        existing = app.storage.get_execution(execution_id)
    if existing is not None:
        if existing.durable_name != durable.name:
            _fail(
                f"execution id {execution_id!r} already belongs to durable "
                f"{existing.durable_name!r}, not {durable.name!r}; use another id"
            )
        # An existing execution runs with its stored input: no need to repeat it.
        args, kwargs = durable.args_codec.loads(existing.input)
    else:
        data = _parse_json("null" if input_json is None else input_json, "--input")
        args, kwargs = _arguments(durable, data)
    if no_wait:
        eid = app._create(durable, args, kwargs, execution_id)
        click.echo(json.dumps({"id": eid, "status": app.status(eid).status}) if as_json else eid)
        return
    if execution_id is None:
        import uuid

        execution_id = uuid.uuid4().hex
    try:
        result = app.run(durable, *args, execution_id=execution_id, **kwargs)
    except TaskError as exc:
        state = "cancelled" if isinstance(exc, ExecutionCancelledError) else "failed"
        if as_json:
            click.echo(json.dumps({"id": execution_id, "status": state, "error": str(exc)}))
        else:
            click.echo(f"zart: {exc}", err=True)
        sys.exit(1)
    encoded = json.loads(durable.result_codec.dumps(result))
    if as_json:
        click.echo(json.dumps({"id": execution_id, "status": "completed", "result": encoded}))
    else:
        click.echo(f"execution {execution_id} completed")
        click.echo(json.dumps(encoded, indent=2))


@main.command()
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_guard
def status(obj: _Obj, execution_id: str, as_json: bool) -> None:
    """Show one execution's status."""
    st = obj.app.status(execution_id)
    if as_json:
        click.echo(json.dumps(st.as_dict()))
        return
    for key, value in st.as_dict().items():
        if value is not None:
            click.echo(f"{key + ':':13} {value}")


@main.command(name="list")
@click.option("--status", "status_filter", type=click.Choice(ALL_STATUSES), default=None)
@click.option(
    "--name", "durable_name", default=None, help="Only executions of this durable function."
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_guard
def list_(
    obj: _Obj, status_filter: str | None, durable_name: str | None, limit: int, as_json: bool
) -> None:
    """List executions, newest first."""
    items: list[ExecutionStatus] = obj.app.list(status_filter, durable_name, limit)
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in items]))
        return
    if not items:
        click.echo("no executions")
        return
    _table(
        ["id", "durable", "status", "attempts", "created", "duration", "error"],
        [
            [
                i.id,
                i.durable_name,
                i.status,
                str(i.attempts),
                _when(i.created_at),
                _duration(i.duration),
                (i.error or "")[:60],
            ]
            for i in items
        ],
    )


@main.command()
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_guard
def steps(obj: _Obj, execution_id: str, as_json: bool) -> None:
    """Show the step history of one execution."""
    items: list[StepInfo] = obj.app.steps(execution_id)
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in items]))
        return
    if not items:
        click.echo(f"execution {execution_id} has no completed steps yet")
        return
    _table(
        ["seq", "name", "kind", "status", "attempts", "duration", "output / error"],
        [
            [
                str(i.seq),
                i.name,
                i.kind,
                i.status,
                str(i.attempts),
                _duration(i.duration),
                (i.error or i.output_preview or "")[:70],
            ]
            for i in items
        ],
    )


@main.command()
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_guard
def cancel(obj: _Obj, execution_id: str, as_json: bool) -> None:
    """Cancel an execution (it stops at its next step boundary)."""
    changed = obj.app.cancel(execution_id)
    st = obj.app.status(execution_id)
    if as_json:
        click.echo(json.dumps({"id": execution_id, "cancelled": changed, "status": st.status}))
    elif changed:
        click.echo(f"execution {execution_id} cancelled")
    else:
        click.echo(f"execution {execution_id} already {st.status}; nothing to cancel")


@main.command(name="send-event")
@click.argument("execution_id")
@click.argument("name")
@click.option("--payload", default="null", help="Event payload as JSON.")
@click.pass_obj
@_guard
def send_event(obj: _Obj, execution_id: str, name: str, payload: str) -> None:
    """Deliver event NAME to an execution waiting (or about to wait) for it."""
    obj.app.send_event(execution_id, name, _parse_json(payload, "--payload"))
    click.echo(f"event {name!r} sent to {execution_id}")


@main.command()
@click.argument("modules", nargs=-1, required=True)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 1000))
@click.option("--until-idle", is_flag=True, help="Exit once no execution is runnable.")
@click.option("--poll-interval", default=0.5, show_default=True, type=click.FloatRange(0.01, 60))
@click.option(
    "--lease-seconds",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.5, 3600),
    help="Lease length; a dead worker's executions are resumed elsewhere after this long.",
)
@click.option(
    "--grace-seconds",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0, 3600),
    help="On SIGTERM/SIGINT, how long running executions may finish before they are handed back.",
)
@click.option(
    "--scheduler", is_flag=True, help="Also start due occurrences of schedules (zart schedule)."
)
@click.pass_obj
@_guard
def worker(
    obj: _Obj,
    modules: tuple[str, ...],
    concurrency: int,
    until_idle: bool,
    poll_interval: float,
    lease_seconds: float,
    grace_seconds: float,
    scheduler: bool = False,
) -> None:
    """Import MODULES (registering their durable functions) and run executions.

    Run as many workers as you like, on as many hosts, against one PostgreSQL
    database: each execution runs in one of them at a time, under a lease.
    """
    logging.getLogger("zart").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO)
    for module in modules:
        _import_module(module)
    if not registered_names():
        _fail(f"no @durable functions found in {', '.join(modules)}")
    from zart._worker import Worker

    app = Zart(obj.database_url, lease_seconds=lease_seconds)
    ticker = None
    if scheduler:
        from zart._ops.schedules import SchedulerThread

        ticker = SchedulerThread(app)
        ticker.start()
    try:
        w = Worker(
            app, concurrency=concurrency, poll_interval=poll_interval, grace_seconds=grace_seconds
        )
        w.run(until_idle=until_idle)
    finally:
        if ticker is not None:
            ticker.stop()
        app.close()


@main.command()
@click.argument("modules", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token",
    envvar="ZART_API_TOKEN",
    default=None,
    help="Require 'Authorization: Bearer TOKEN' (default: $ZART_API_TOKEN; unset: no auth).",
)
@click.option("--metrics", is_flag=True, help="Serve Prometheus metrics at /metrics.")
@click.option(
    "--worker/--no-worker",
    default=True,
    show_default=True,
    help="Also run a worker for the durables of MODULES in this process.",
)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--scheduler/--no-scheduler",
    default=True,
    show_default=True,
    help="Start due occurrences of schedules (`zart schedule add`) from this process.",
)
@click.pass_obj
@_guard
def serve(
    obj: _Obj,
    modules: tuple[str, ...],
    host: str,
    port: int,
    token: str | None,
    metrics: bool,
    worker: bool,
    concurrency: int,
    scheduler: bool,
) -> None:
    """Serve the HTTP API, the web view (/) and optionally /metrics.

    MODULES are imported so their @durable functions can be started by name
    (POST /api/executions) and, with --worker (the default), run here.
    """
    try:
        from zart._ops.api import serve as run_server
    except ImportError as exc:
        _fail(f"zart serve needs the api extra: pip install 'zart[api]' ({exc})")
    for module in modules:
        _import_module(module)
    if modules and not registered_names():
        _fail(f"no @durable functions found in {', '.join(modules)}")
    logging.getLogger("zart").setLevel(logging.INFO)
    obj.app.storage.ensure_schema()  # fail now, with one line, if the database is unreachable
    run_server(
        obj.app,
        host=host,
        port=port,
        token=token or None,
        metrics=metrics,
        worker_concurrency=concurrency if worker and modules else 0,
        scheduler=scheduler,
    )


def _actor_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--actor", default=None, help="Who does this (audit log; default: the OS user)."
    )(fn)


def _print_status(st: ExecutionStatus, as_json: bool, message: str) -> None:
    if as_json:
        click.echo(json.dumps(st.as_dict()))
    else:
        click.echo(message)


@main.command(name="retry-step")
@click.argument("execution_id")
@click.argument("step", required=False)
@_actor_option
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_guard
def retry_step(
    obj: _Obj, execution_id: str, step: str | None, actor: str | None, as_json: bool
) -> None:
    """Retry STEP (default: the failed step) of a failed execution.

    The step's failed checkpoint is removed and the execution goes back to
    pending: a worker (or `zart run --id`) resumes it at that step.
    """
    st = obj.app.retry_step(execution_id, step, actor=actor)
    _print_status(st, as_json, f"execution {execution_id} is {st.status}; a worker resumes it")


@main.command()
@click.argument("execution_id")
@click.option("--input", "input_json", default=None, help="New input as JSON (default: the same).")
@click.option("--new-id", default=None, help="Start a copy under this id; the original stays.")
@click.option(
    "--module",
    "modules",
    multiple=True,
    help="Module defining the durable (needed with --input, to decode it).",
)
@_actor_option
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_guard
def restart(
    obj: _Obj,
    execution_id: str,
    input_json: str | None,
    new_id: str | None,
    modules: tuple[str, ...],
    actor: str | None,
    as_json: bool,
) -> None:
    """Run a finished execution again from the start.

    Same id with every checkpoint cleared, unless --new-id starts a copy.
    """
    from zart._durable import lookup
    from zart._ops import admin

    for module in modules:
        _import_module(module)
    args = kwargs = None
    if input_json is not None:
        rec = obj.app._get(execution_id)
        durable = lookup(rec.durable_name)
        args, kwargs = admin.json_arguments(durable, _parse_json(input_json, "--input"))
    st = admin.restart(obj.app, execution_id, args=args, kwargs=kwargs, new_id=new_id, actor=actor)
    _print_status(st, as_json, f"execution {st.id} is {st.status}; a worker runs it")


@main.command(name="rerun-from")
@click.argument("execution_id")
@click.argument("step")
@_actor_option
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_guard
def rerun_from(obj: _Obj, execution_id: str, step: str, actor: str | None, as_json: bool) -> None:
    """Re-run a finished execution from STEP on, keeping the checkpoints before it."""
    st = obj.app.rerun_from(execution_id, step, actor=actor)
    _print_status(st, as_json, f"execution {execution_id} is {st.status}; a worker resumes it")


@main.command()
@click.argument("execution_id", required=False)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_guard
def audit(obj: _Obj, execution_id: str | None, limit: int, as_json: bool) -> None:
    """Show who retried, restarted or re-ran what (of one execution, or all)."""
    if execution_id is not None:
        obj.app._get(execution_id)
    entries = obj.app.audit_log(execution_id, limit)
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in entries]))
        return
    if not entries:
        click.echo("no audit entries")
        return
    _table(
        ["when", "execution", "action", "actor", "details"],
        [
            [
                _when(e.created_at),
                e.execution_id,
                e.action,
                e.actor,
                json.dumps(e.details, sort_keys=True)[:80],
            ]
            for e in entries
        ],
    )


@main.group()
def schedule() -> None:
    """Recurring executions: a cron expression (with timezone) or a fixed delay.

    `zart serve` (and `zart worker --scheduler`) start the due occurrences; each
    occurrence is an execution with id "<schedule>@<UTC ISO time>".
    """


@schedule.command(name="add")
@click.argument("name")
@click.argument("target")
@click.option(
    "--cron", "cron_expr", default=None, help="5-field cron expression, e.g. '0 3 * * MON-FRI'."
)
@click.option("--tz", default="UTC", show_default=True, help="Timezone of the cron expression.")
@click.option(
    "--every", type=click.FloatRange(min=0.001), default=None, help="Fixed delay, seconds."
)
@click.option(
    "--input", "input_json", default="null", help="Arguments as JSON (as for `zart run`)."
)
@click.option("--overlap", type=click.Choice(["skip", "always"]), default="skip", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_guard
def schedule_add(
    obj: _Obj,
    name: str,
    target: str,
    cron_expr: str | None,
    tz: str,
    every: float | None,
    input_json: str,
    overlap: str,
    as_json: bool,
) -> None:
    """Create or update schedule NAME running MODULE:FUNCTION."""
    from zart._ops.schedules import register_schedule

    durable = _load_durable(target)
    args, kwargs = _arguments(durable, _parse_json(input_json, "--input"))
    sched, outcome = register_schedule(
        obj.app, name, durable, *args, cron=cron_expr, every=every, tz=tz, overlap=overlap, **kwargs
    )
    if as_json:
        click.echo(json.dumps(dict(sched.as_dict(), outcome=outcome)))
    else:
        click.echo(f"schedule {name} {outcome}; next run {sched.next_run_at.isoformat()}")


@schedule.command(name="list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_guard
def schedule_list(obj: _Obj, as_json: bool) -> None:
    """List schedules."""
    from zart._ops.schedules import list_schedules

    items = list_schedules(obj.app)
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in items]))
        return
    if not items:
        click.echo("no schedules")
        return
    _table(
        ["name", "durable", "when", "overlap", "next run", "last execution"],
        [
            [
                i.name,
                i.durable_name,
                f"{i.cron} ({i.timezone})" if i.cron else f"every {i.every_seconds:g}s",
                i.overlap,
                _when(i.next_run_at),
                i.last_execution_id or "-",
            ]
            for i in items
        ],
    )


@schedule.command(name="remove")
@click.argument("name")
@click.pass_obj
@_guard
def schedule_remove(obj: _Obj, name: str) -> None:
    """Delete schedule NAME (its past executions stay)."""
    from zart._ops.schedules import remove_schedule

    if not remove_schedule(obj.app, name):
        _fail(f"no schedule named {name!r}")
    click.echo(f"schedule {name} removed")


@schedule.command(name="tick")
@click.pass_obj
@_guard
def schedule_tick(obj: _Obj) -> None:
    """Start the due occurrences once and exit (e.g. from system cron)."""
    from zart._ops.schedules import tick

    for eid in tick(obj.app):
        click.echo(eid)


@main.group()
def db() -> None:
    """Database schema operations."""


@db.command()
@click.pass_obj
@_guard
def upgrade(obj: _Obj) -> None:
    """Create or migrate zart's tables (also done automatically on first use)."""
    obj.app.storage.ensure_schema()
    click.echo(f"schema at version {obj.app.storage.schema_version()}")


if __name__ == "__main__":  # pragma: no cover
    main()
