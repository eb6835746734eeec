"""Pause rules: ``zart pause`` (add one, or ``--list`` them) and what ``zart resume``
does with ``--rule`` or a scope (see ``_admin.resume``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from zart import PauseRule, ResumeResult, Zart
from zart._cli._common import CliContext, command, echo_items, echo_json_or, fail, json_option, when
from zart._cli._root import main

F = TypeVar("F", bound=Callable[..., Any])

# Who did it, in the audit log: --actor (or --by), else $ZART_USER, else the OS user.
who_option = click.option(
    "--actor",
    "--by",
    "actor",
    envvar="ZART_USER",
    default=None,
    help="Who does this (audit log; default: $ZART_USER, else the OS user).",
)


_SCOPE_HELP = {
    "pause": (
        "Hold this one execution.",
        "Hold every execution of this durable.",
        "Hold executions about to run a step whose name or template matches this glob "
        "(e.g. 'charge:*').",
    ),
    "resume": (
        "Remove the rule scoped to exactly this execution.",
        "Remove the rule scoped to exactly this durable.",
        "Remove the rule scoped to exactly this step pattern.",
    ),
}


def scope_options(verb: str) -> Callable[[F], F]:
    """--execution / --durable / --step: the scope of a rule (every part given must match)."""
    execution, durable, step = _SCOPE_HELP[verb]

    def decorate(fn: F) -> F:
        fn = click.option("--step", "step", default=None, metavar="PATTERN", help=step)(fn)
        fn = click.option("--durable", "durable", default=None, help=durable)(fn)
        return click.option("--execution", "execution", default=None, help=execution)(fn)

    return decorate


def _rule_row(r: PauseRule) -> list[str]:
    return [str(r.id), r.scope, (r.reason or "")[:40], r.actor, when(r.created_at)]


@main.command()
@scope_options("pause")
@click.option("--reason", default=None, help="Why (shown with the rule).")
@click.option("--list", "listing", is_flag=True, help="List the pause rules in force instead.")
@who_option
@json_option
@command
def pause(
    obj: CliContext,
    execution: str | None,
    durable: str | None,
    step: str | None,
    reason: str | None,
    listing: bool,
    actor: str | None,
    as_json: bool,
) -> None:
    """Add a pause rule: matching executions finish their current step and stop before
    the next one (status paused) within about a second, in every worker.

    The scope is --execution, --durable and/or --step (all given must match). Undo it
    with `zart resume --rule ID` (or the same scope); `zart pause --list` shows them.
    """
    if listing:
        if execution or durable or step or reason:
            fail("--list takes no scope or --reason")
        echo_items(
            obj.app.pause_rules(),
            as_json,
            empty="no pause rules",
            headers=["rule", "scope", "reason", "actor", "created"],
            row=_rule_row,
        )
        return
    if not (execution or durable or step):
        fail("give a scope: --execution ID, --durable NAME and/or --step PATTERN (or --list)")
    rule = obj.app.pause(
        execution_id=execution, durable=durable, step=step, reason=reason, actor=actor
    )
    message = (
        f"pause rule {rule.id} ({rule.scope}): matching executions stop before their next "
        f"step; `zart resume --rule {rule.id}` lets them go on"
    )
    echo_json_or(rule.as_dict(), as_json, message)


def resume_rules(
    app: Zart,
    rule_ids: tuple[int, ...],
    scope: dict[str, str | None],
    everything: bool,
    actor: str | None,
) -> ResumeResult:
    """``zart resume --rule ID...`` / a scope / ``--all``: the rules removed and the
    executions made runnable (fails when no rule matched)."""
    if rule_ids:
        if any(scope.values()) or everything:
            fail("give --rule, or a scope, or --all: one of them")
        results = [app.resume_rule(i, actor=actor) for i in rule_ids]
        done = ResumeResult(
            [r for res in results for r in res.rules],
            [e for res in results for e in res.execution_ids],
        )
    else:
        done = app.resume_rule(
            execution_id=scope["execution_id"], durable=scope["durable"], step=scope["step"],
            everything=everything, actor=actor,
        )  # fmt: skip
    if not done.rules:
        fail("no pause rule matched (see `zart pause --list`)")
    return done


def resumed_message(done: ResumeResult) -> str:
    rules = ", ".join(f"{r.id} ({r.scope})" for r in done.rules)
    count = len(done.execution_ids)
    return (
        f"removed pause rule {rules}; {count} paused execution{'s' if count != 1 else ''} "
        "pending again: a worker resumes them where they stopped"
    )
