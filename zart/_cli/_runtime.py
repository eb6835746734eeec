"""Running zart: ``worker``, ``serve`` (HTTP API, web view, metrics) and ``db upgrade``."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import click

from zart import Zart
from zart._cli._common import CliContext, command, fail, import_modules
from zart._cli._root import main
from zart._ops._internals import code_version, registered_names
from zart._ops.schedules import SchedulerThread


def _seconds_option(
    flag: str, default: float, low: float, help_: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A duration option, in seconds, from ``low`` to an hour."""
    range_ = click.FloatRange(low, 3600)
    return click.option(flag, default=default, show_default=True, type=range_, help=help_)


def _import_durables(modules: tuple[str, ...]) -> None:
    """Import MODULES; a usage error if they define no @durable function."""
    import_modules(modules)
    if modules and not registered_names():
        fail(f"no @durable functions found in {', '.join(modules)}")


def _run_worker(
    app: Zart,
    *,
    concurrency: int,
    poll_interval: float,
    grace_seconds: float,
    until_idle: bool,
    scheduler: bool,
    only_version: str | None = None,
    retention: str | None = None,
) -> None:
    ticker = SchedulerThread(app) if scheduler else None
    if ticker is not None:
        ticker.start()
    try:
        worker = app.worker(
            concurrency=concurrency,
            poll_interval=poll_interval,
            grace_seconds=grace_seconds,
            only_version=only_version,
            retention=retention,
        )
        worker.run(until_idle=until_idle)
    finally:
        if ticker is not None:
            ticker.stop()


def _background_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``zart worker`` for its background threads: scheduler, retention."""
    fn = click.option(
        "--retention", default=None, metavar="AGE",
        help="Also delete, in the background, executions that finished longer ago than "
        "AGE (30d, 12h...), a bounded batch a minute (see `zart gc`).",
    )(fn)  # fmt: skip
    return click.option(
        "--scheduler", is_flag=True, help="Also start due occurrences of schedules (zart schedule)."
    )(fn)


@main.command()
@click.argument("modules", nargs=-1, required=True)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 1000))
@click.option("--until-idle", is_flag=True, help="Exit once no execution is runnable.")
@click.option("--poll-interval", default=0.5, show_default=True, type=click.FloatRange(0.01, 60))
@_seconds_option(
    "--lease-seconds",
    30.0,
    0.5,
    "Lease length; a dead worker's executions are resumed elsewhere after this long.",
)
@_seconds_option(
    "--grace-seconds",
    10.0,
    0,
    "On SIGTERM/SIGINT, how long running executions may finish before they are handed back.",
)
@_background_options
@click.option(
    "--only-version",
    default=None,
    help="Serve only executions created by this code version (see `zart list`); "
    "'current' means this code's version.",
)
@command
def worker(
    obj: CliContext,
    modules: tuple[str, ...],
    concurrency: int,
    until_idle: bool,
    poll_interval: float,
    lease_seconds: float,
    grace_seconds: float,
    scheduler: bool = False,
    only_version: str | None = None,
    retention: str | None = None,
) -> None:
    """Import MODULES (registering their durable functions) and run executions.

    Run as many workers as you like, on as many hosts, against one PostgreSQL
    database: each execution runs in one of them at a time, under a lease.
    """
    logging.getLogger("zart").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO)
    _import_durables(modules)
    if only_version == "current":
        only_version = code_version()
    with Zart(obj.database_url, lease_seconds=lease_seconds) as app:
        _run_worker(
            app,
            concurrency=concurrency,
            poll_interval=poll_interval,
            grace_seconds=grace_seconds,
            until_idle=until_idle,
            scheduler=scheduler,
            only_version=only_version,
            retention=retention,
        )


SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1000, "KIB": 1024, "M": 1024**2, "MB": 1000**2,
              "MIB": 1024**2, "G": 1024**3, "GB": 1000**3, "GIB": 1024**3}  # fmt: skip


def parse_size(text: str) -> int:
    """``"4MiB"``, ``"500k"``, ``"1048576"`` → bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if match is None or match.group(2).upper() not in SIZE_UNITS:
        raise click.BadParameter(f"{text!r} is not a size such as 4MiB, 500KB or 1048576")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])


def _split(values: tuple[str, ...]) -> tuple[str, ...]:
    """Values of a repeatable option, each of which may also be a comma-separated list."""
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


def _settings(
    allowed_hosts: tuple[str, ...],
    allowed_origins: tuple[str, ...],
    max_body: str,
    db_timeout: float,
    grace_seconds: float,
) -> dict[str, Any]:
    try:
        size = parse_size(max_body)
    except click.BadParameter as exc:
        fail(f"--max-body: {exc.message}")
    return {
        "allowed_hosts": _split(allowed_hosts),
        "allowed_origins": _split(allowed_origins),
        "max_body_bytes": size,
        "db_timeout": db_timeout,
        "grace_seconds": grace_seconds,
    }


def _api_server(**safety: Any) -> tuple[Callable[..., None], Any]:
    """``zart._ops.api.serve`` and the :class:`ServerSettings` of the options, or a usage
    error when the api extra (Starlette, uvicorn) is not installed."""
    try:
        from zart._ops.api import ServerSettings, serve
    except ImportError as exc:
        fail(f"zart serve needs the api extra: pip install 'zart[api]' ({exc})")
    return serve, ServerSettings(**_settings(**safety))


def _serve_safety_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``zart serve`` that protect it: hosts, origins, limits, timeouts."""
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option(
            "--allowed-host", "allowed_hosts", multiple=True, envvar="ZART_ALLOWED_HOSTS",
            help="Host name clients may use besides IP addresses and localhost (repeat, "
            "or comma-separate; .example.com for subdomains; * for any). "
            "Default: $ZART_ALLOWED_HOSTS.",
        ),
        click.option(
            "--allowed-origin", "allowed_origins", multiple=True, envvar="ZART_ALLOWED_ORIGINS",
            help="Origin (https://ops.example.com) allowed to POST besides this server's own.",
        ),
        click.option(
            "--max-body", default="4MiB", show_default=True, envvar="ZART_API_MAX_BODY",
            help="Largest request body; larger ones get 413 before they are read.",
        ),
        _seconds_option(
            "--db-timeout", 2.0, 0.1,
            "Answer 503 (Retry-After) when the database has not answered a request in this time.",
        ),
        _seconds_option(
            "--grace-seconds", 10.0, 0,
            "On SIGTERM: open long polls answer at once; running executions get this long.",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


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
@_serve_safety_options
@command
def serve(
    obj: CliContext,
    modules: tuple[str, ...],
    host: str,
    port: int,
    token: str | None,
    metrics: bool,
    worker: bool,
    concurrency: int,
    scheduler: bool,
    **safety: Any,
) -> None:
    """Serve the HTTP API, the web view (/) and optionally /metrics.

    MODULES are imported so their @durable functions can be started by name
    (POST /api/executions) and, with --worker (the default), run here.
    See docs/operations.md for running it safely (proxy, token, hosts, limits).
    """
    run_server, settings = _api_server(**safety)
    _import_durables(modules)
    logging.getLogger("zart").setLevel(logging.INFO)
    obj.app.ops_store.ensure_schema()  # fail now, with one line, if the database is unreachable
    run_server(
        obj.app,
        host=host,
        port=port,
        token=token or None,
        metrics=metrics,
        worker_concurrency=concurrency if worker and modules else 0,
        scheduler=scheduler,
        settings=settings,
    )


@main.group()
def db() -> None:
    """Database schema operations."""


@db.command()
@command
def upgrade(obj: CliContext) -> None:
    """Create or migrate zart's tables (also done automatically on first use)."""
    obj.app.ops_store.ensure_schema()
    click.echo(f"schema at version {obj.app.ops_store.schema_version()}")
