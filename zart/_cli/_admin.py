"""Steering finished executions: ``retry-step``, ``restart``, ``rerun-from``, and the
``audit`` log they write."""

from __future__ import annotations

import json
from typing import Any

import click

from zart._cli._common import (
    CliContext,
    actor_option,
    command,
    echo_items,
    echo_json_or,
    fail,
    import_modules,
    json_option,
    parse_json,
    when,
)
from zart._cli._pause import resume_rules, resumed_message, scope_options, who_option
from zart._cli._root import main
from zart._ops._internals import AuditEntry, lookup
from zart._ops.arguments import json_arguments


@main.command(name="retry-step")
@click.argument("execution_id")
@click.argument("step", required=False)
@actor_option
@json_option
@command
def retry_step(
    obj: CliContext, execution_id: str, step: str | None, actor: str | None, as_json: bool
) -> None:
    """Retry STEP (default: the failed step) of a failed execution.

    The step's failed checkpoint is removed and the execution goes back to
    pending: a worker (or `zart run --id`) resumes it at that step.
    """
    st = obj.app.retry_step(execution_id, step, actor=actor)
    message = f"execution {execution_id} is {st.status}; a worker resumes it"
    echo_json_or(st.as_dict(), as_json, message)


@main.command()
@click.argument("execution_id", required=False)
@click.option("--rule", "rule_ids", multiple=True, type=int, help="Remove this pause rule.")
@scope_options("resume")
@click.option("--all", "everything", is_flag=True, help="Remove every pause rule.")
@who_option
@json_option
@command
def resume(
    obj: CliContext,
    execution_id: str | None,
    rule_ids: tuple[int, ...],
    execution: str | None,
    durable: str | None,
    step: str | None,
    everything: bool,
    actor: str | None,
    as_json: bool,
) -> None:
    """Continue a cancelled, diverged or paused EXECUTION_ID where it stopped; or remove
    pause rules (--rule ID, a scope, --all) and let the executions they held go on.

    Checkpoints are kept, unlike `restart`; a worker (or `zart run --id`) runs it.
    """
    scope = {"execution_id": execution, "durable": durable, "step": step}
    if execution_id is None:
        if not (rule_ids or any(scope.values()) or everything):
            fail("give EXECUTION_ID, or --rule ID, a scope (--execution/--durable/--step) or --all")
        done = resume_rules(obj.app, rule_ids, scope, everything, actor)
        echo_json_or(done.as_dict(), as_json, resumed_message(done))
        return
    if rule_ids or any(scope.values()) or everything:
        fail("give EXECUTION_ID or pause-rule options, not both")
    st = obj.app.resume(execution_id, actor=actor)
    echo_json_or(st.as_dict(), as_json, f"execution {st.id} is {st.status}; a worker resumes it")


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
@actor_option
@json_option
@command
def restart(
    obj: CliContext,
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
    data = None if input_json is None else parse_json(input_json, "--input")
    import_modules(modules)
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    if input_json is not None:
        durable = lookup(obj.app.status(execution_id).durable_name)
        args, kwargs = json_arguments(durable, data)
    st = obj.app.restart(execution_id, *args, new_id=new_id, actor=actor, **kwargs)
    echo_json_or(st.as_dict(), as_json, f"execution {st.id} is {st.status}; a worker runs it")


@main.command(name="rerun-from")
@click.argument("execution_id")
@click.argument("step")
@actor_option
@json_option
@command
def rerun_from(
    obj: CliContext, execution_id: str, step: str, actor: str | None, as_json: bool
) -> None:
    """Re-run a finished execution from STEP on, keeping the checkpoints before it."""
    st = obj.app.rerun_from(execution_id, step, actor=actor)
    message = f"execution {execution_id} is {st.status}; a worker resumes it"
    echo_json_or(st.as_dict(), as_json, message)


def _audit_row(e: AuditEntry) -> list[str]:
    details = json.dumps(e.details, sort_keys=True)[:80]
    return [when(e.created_at), e.execution_id, e.action, e.actor, details]


@main.command()
@click.argument("execution_id", required=False)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@json_option
@command
def audit(obj: CliContext, execution_id: str | None, limit: int, as_json: bool) -> None:
    """Show who retried, restarted or re-ran what (of one execution, or all)."""
    if execution_id is not None:
        obj.app.status(execution_id)  # ExecutionNotFoundError: one line, exit 2
    echo_items(
        obj.app.audit_log(execution_id, limit),
        as_json,
        empty="no audit entries",
        headers=["when", "execution", "action", "actor", "details"],
        row=_audit_row,
    )
