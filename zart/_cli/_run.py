"""``zart run``: start (or resume, or look up) an execution."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

import click

from zart import DurableFunction, ExecutionCancelledError, TaskError, Zart
from zart._cli._common import CliContext, command, input_arguments, load_durable, parse_json
from zart._cli._root import main


def _arguments(
    app: Zart, durable: DurableFunction[Any, Any], data: Any, given: bool, eid: str | None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call arguments: none to attach to an existing ``--id`` given without
    ``--input`` (it runs with its stored input), else the decoded ``--input``."""
    if not given and eid is not None and app.ops_store.get_execution(eid) is not None:
        return (), {}
    return input_arguments(durable, data)


def _report_failure(execution_id: str, exc: TaskError, as_json: bool) -> None:
    state = "cancelled" if isinstance(exc, ExecutionCancelledError) else "failed"
    if as_json:
        click.echo(json.dumps({"id": execution_id, "status": state, "error": str(exc)}))
    else:
        click.echo(f"zart: {exc}", err=True)


def _report_result(execution_id: str, encoded: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"id": execution_id, "status": "completed", "result": encoded}))
    else:
        click.echo(f"execution {execution_id} completed")
        click.echo(json.dumps(encoded, indent=2))


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
@command
def run(
    obj: CliContext,
    target: str,
    input_json: str | None,
    execution_id: str | None,
    no_wait: bool,
    as_json: bool,
) -> None:
    """Start (or resume) MODULE:FUNCTION and print its result."""
    # Bad JSON is a usage error found before the user's module is imported (and run).
    data = None if input_json is None else parse_json(input_json, "--input")
    durable = load_durable(target)
    app = obj.app
    args, kwargs = _arguments(app, durable, data, input_json is not None, execution_id)
    # An id of another durable function raises ExecutionConflictError (one line, exit 2).
    if no_wait:
        eid = app.submit(durable, *args, execution_id=execution_id, **kwargs).execution_id
        click.echo(json.dumps({"id": eid, "status": app.status(eid).status}) if as_json else eid)
        return
    execution_id = execution_id if execution_id is not None else uuid.uuid4().hex
    try:
        result = app.run(durable, *args, execution_id=execution_id, **kwargs)
    except TaskError as exc:
        _report_failure(execution_id, exc, as_json)
        sys.exit(1)
    _report_result(execution_id, json.loads(durable.result_codec.dumps(result)), as_json)
