"""``zart schedule add|list|remove|tick``: recurring executions."""

from __future__ import annotations

import json

import click

from zart._cli._common import (
    CliContext,
    command,
    echo_items,
    fail,
    input_arguments,
    json_option,
    load_durable,
    parse_json,
    when,
)
from zart._cli._root import main
from zart._ops.schedules import (
    Schedule,
    list_schedules,
    register_schedule,
    remove_schedule,
    tick,
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
@click.option(
    "--overlap",
    type=click.Choice(["skip", "allow", "buffer_one", "always"]),
    default="skip",
    show_default=True,
    help="While the previous occurrence is active: skip the next, allow it, or keep one "
    "(buffer_one) to start after it. 'always' is the old name of 'allow'.",
)
@click.option(
    "--backfill",
    type=click.IntRange(0, 1000),
    default=0,
    show_default=True,
    help="After the scheduler was down, run each missed occurrence, oldest first, N at "
    "most (0: they collapse into one late run).",
)
@json_option
@command
def schedule_add(
    obj: CliContext,
    name: str,
    target: str,
    cron_expr: str | None,
    tz: str,
    every: float | None,
    input_json: str,
    overlap: str,
    backfill: int,
    as_json: bool,
) -> None:
    """Create or update schedule NAME running MODULE:FUNCTION."""
    data = parse_json(input_json, "--input")  # before importing (and running) the module
    durable = load_durable(target)
    args, kwargs = input_arguments(durable, data)
    sched, outcome = register_schedule(
        obj.app, name, durable, *args,
        cron=cron_expr, every=every, tz=tz, overlap=overlap, backfill=backfill, **kwargs,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(dict(sched.as_dict(), outcome=outcome)))
    else:
        click.echo(f"schedule {name} {outcome}; next run {sched.next_run_at.isoformat()}")


def _schedule_row(i: Schedule) -> list[str]:
    return [
        i.name,
        i.durable_name,
        f"{i.cron} ({i.timezone})" if i.cron else f"every {i.every_seconds:g}s",
        i.overlap + (f", backfill {i.backfill}" if i.backfill else ""),
        ", ".join(when(t) for t in i.next_runs),
        i.last_execution_id or "-",
    ]


@schedule.command(name="list")
@json_option
@command
def schedule_list(obj: CliContext, as_json: bool) -> None:
    """List schedules."""
    echo_items(
        list_schedules(obj.app),
        as_json,
        empty="no schedules",
        headers=["name", "durable", "when", "overlap", "next 5 runs (UTC)", "last execution"],
        row=_schedule_row,
    )


@schedule.command(name="remove")
@click.argument("name")
@command
def schedule_remove(obj: CliContext, name: str) -> None:
    """Delete schedule NAME (its past executions stay)."""
    if not remove_schedule(obj.app, name):
        fail(f"no schedule named {name!r}")
    click.echo(f"schedule {name} removed")


@schedule.command(name="tick")
@command
def schedule_tick(obj: CliContext) -> None:
    """Start the due occurrences once and exit (e.g. from system cron)."""
    for eid in tick(obj.app):
        click.echo(eid)
