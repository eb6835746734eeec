"""``zart gc``: delete old finished executions (retention)."""

from __future__ import annotations

import click

from zart._cli._common import CliContext, command, echo_json_or, json_option
from zart._cli._root import main


@main.command()
@click.option(
    "--older-than",
    required=True,
    metavar="AGE",
    help="Delete executions that finished longer ago than this: 30d, 12h, 90m, 45s.",
)
@click.option(
    "--status",
    "statuses",
    default="completed,failed,cancelled",
    show_default=True,
    help="Finished statuses to delete (comma-separated).",
)
@click.option("--durable", default=None, help="Only executions of this durable function.")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@json_option
@command
def gc(
    obj: CliContext,
    older_than: str,
    statuses: str,
    durable: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Delete finished executions older than AGE, with their steps, events, child
    executions and audit rows, in short batches (safe while workers run).

    Open executions (pending, running, sleeping, waiting, paused, diverged) are
    never touched; a child goes with its tree, once every member has finished.
    """
    report = obj.app.gc(older_than, statuses.split(","), durable, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    message = (
        f"{verb} {report.executions} executions, {report.steps} steps, "
        f"{report.events} events, {report.audit} audit rows"
    )
    if report.kept:
        message += f" ({report.kept} old trees kept: a member is still open)"
    echo_json_or(report.as_dict(), as_json, message)
