"""Running zart: ``worker``, ``serve`` (HTTP API, web view, metrics) and ``db upgrade``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import click

from zart import Zart
from zart._cli._common import CliContext, command, fail, import_modules
from zart._cli._root import main
from zart._ops._internals import registered_names
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
) -> None:
    ticker = SchedulerThread(app) if scheduler else None
    if ticker is not None:
        ticker.start()
    try:
        worker = app.worker(
            concurrency=concurrency, poll_interval=poll_interval, grace_seconds=grace_seconds
        )
        worker.run(until_idle=until_idle)
    finally:
        if ticker is not None:
            ticker.stop()


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
@click.option(
    "--scheduler", is_flag=True, help="Also start due occurrences of schedules (zart schedule)."
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
) -> None:
    """Import MODULES (registering their durable functions) and run executions.

    Run as many workers as you like, on as many hosts, against one PostgreSQL
    database: each execution runs in one of them at a time, under a lease.
    """
    logging.getLogger("zart").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO)
    _import_durables(modules)
    with Zart(obj.database_url, lease_seconds=lease_seconds) as app:
        _run_worker(
            app,
            concurrency=concurrency,
            poll_interval=poll_interval,
            grace_seconds=grace_seconds,
            until_idle=until_idle,
            scheduler=scheduler,
        )


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
) -> None:
    """Serve the HTTP API, the web view (/) and optionally /metrics.

    MODULES are imported so their @durable functions can be started by name
    (POST /api/executions) and, with --worker (the default), run here.
    """
    try:
        from zart._ops.api import serve as run_server
    except ImportError as exc:
        fail(f"zart serve needs the api extra: pip install 'zart[api]' ({exc})")
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
