"""Reading and nudging executions: ``status``, ``list``, ``steps``, ``cancel``,
``send-event``, ``audit``."""

from __future__ import annotations

import json
from collections.abc import Callable

import click

from zart import ExecutionStatus, StepInfo
from zart._cli._common import (
    CliContext,
    command,
    duration,
    echo_items,
    echo_json_or,
    json_option,
    parse_json,
    when,
)
from zart._cli._root import main
from zart._ops._internals import ALL_STATUSES
from zart._ops.runs import current_run, current_runs


def _execution_command(fn: Callable[[CliContext, str, bool], None]) -> click.Command:
    """``zart NAME EXECUTION_ID [--json]``, named after ``fn``."""
    wrapped = click.argument("execution_id")(json_option(command(fn)))
    return main.command()(wrapped)


@_execution_command
def status(obj: CliContext, execution_id: str, as_json: bool) -> None:
    """Show one execution's status."""
    st = current_run(obj.app, obj.app.status(execution_id))
    if as_json:
        click.echo(json.dumps(st.as_dict()))
        return
    for key, value in st.as_dict().items():
        if value is not None:
            click.echo(f"{key + ':':13} {value}")


def _execution_row(i: ExecutionStatus) -> list[str]:
    return [
        i.id,
        i.durable_name,
        i.status,
        str(i.attempts),
        i.version or "",
        when(i.created_at),
        duration(i.duration),
        (i.error or (f"held by pause rule {i.paused_by}" if i.paused_by else ""))[:60],
    ]


@main.command(name="list")
@click.option("--status", "status_filter", type=click.Choice(ALL_STATUSES), default=None)
@click.option(
    "--name", "durable_name", default=None, help="Only executions of this durable function."
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@json_option
@command
def list_(
    obj: CliContext, status_filter: str | None, durable_name: str | None, limit: int, as_json: bool
) -> None:
    """List executions, newest first."""
    echo_items(
        current_runs(obj.app, obj.app.list(status_filter, durable_name, limit)),
        as_json,
        empty="no executions",
        headers=["id", "durable", "status", "attempts", "version", "created", "duration", "error"],
        row=_execution_row,
    )


def _step_row(i: StepInfo) -> list[str]:
    return [
        str(i.seq),
        i.name,
        i.kind,
        i.status,
        str(i.attempts),
        duration(i.duration),
        (i.error or i.output_preview or "")[:70],
    ]


@_execution_command
def steps(obj: CliContext, execution_id: str, as_json: bool) -> None:
    """Show the step history of one execution."""
    echo_items(
        obj.app.steps(execution_id),
        as_json,
        empty=f"execution {execution_id} has no completed steps yet",
        headers=["seq", "name", "kind", "status", "attempts", "duration", "output / error"],
        row=_step_row,
    )


@_execution_command
def cancel(obj: CliContext, execution_id: str, as_json: bool) -> None:
    """Cancel an execution (it stops at its next step boundary)."""
    changed = obj.app.cancel(execution_id)
    st = obj.app.status(execution_id)
    if changed:
        message = f"execution {execution_id} cancelled"
    else:
        message = f"execution {execution_id} already {st.status}; nothing to cancel"
    data = {"id": execution_id, "cancelled": changed, "status": st.status}
    echo_json_or(data, as_json, message)


@main.command(name="send-event")
@click.argument("execution_id")
@click.argument("name")
@click.option("--payload", default="null", help="Event payload as JSON.")
@command
def send_event(obj: CliContext, execution_id: str, name: str, payload: str) -> None:
    """Deliver event NAME to an execution waiting (or about to wait) for it."""
    obj.app.send_event(execution_id, name, parse_json(payload, "--payload"))
    click.echo(f"event {name!r} sent to {execution_id}")
