"""``zart queues``: each queue (zart.Queue) with its depth, running count and limits."""

from __future__ import annotations

import json
from typing import Any

import click

from zart._cli._common import CliContext, command, json_option, table
from zart._cli._root import main


def _limit(value: Any) -> str:
    return "-" if value is None else str(value)


def _row(q: dict[str, Any]) -> list[str]:
    rate = q["rate_limit"]
    flags = [
        f for f, on in (("priority", q["priority"]), ("partitioned", q["partition_key"])) if on
    ]
    return [
        q["name"],
        str(q["pending"]),
        str(q["running"]),
        _limit(q["concurrency"]),
        _limit(q["worker_concurrency"]),
        "-" if rate is None else f"{rate['count']}/{rate['per']:g}s",
        ",".join(flags) or "-",
    ]


@main.command(name="queues")
@json_option
@command
def queues(obj: CliContext, as_json: bool) -> None:
    """List queues: pending (depth), running, and their limits."""
    found = obj.app.ops_store.queue_stats()
    if as_json:
        click.echo(json.dumps(found))
    elif not found:
        click.echo("No queues.")
    else:
        headers = ["queue", "pending", "running", "concurrency", "per worker", "rate", "options"]
        table(headers, [_row(q) for q in found])
