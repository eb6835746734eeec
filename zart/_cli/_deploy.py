"""Checking a deploy: ``export`` an execution's history, ``replay`` stored executions
or exported histories against the code now importable (docs/safe-deploys.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from zart._cli._common import CliContext, command, fail, import_modules
from zart._cli._root import main

# Statuses of executions a deploy can still change the course of.
_OPEN = ("pending", "running", "sleeping", "waiting", "diverged")
_PAGE = 500


@main.command()
@click.argument("execution_id")
@click.option(
    "--output",
    "output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the history here instead of to standard output.",
)
@command
def export(obj: CliContext, execution_id: str, output: str | None) -> None:
    """Write an execution's history (record, input, steps and results) as JSON."""
    text = json.dumps(obj.app.export(execution_id), indent=2, sort_keys=True)
    if output is None:
        click.echo(text)
        return
    try:
        Path(output).write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
    click.echo(f"history of {execution_id} written to {output}", err=True)


@main.command()
@click.argument("modules", nargs=-1, required=True)
@click.option("--id", "ids", multiple=True, help="Replay this execution (repeatable).")
@click.option("--durable", "durable_name", default=None, help="Only this durable's executions.")
@click.option(
    "--history",
    "histories",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Replay an exported history file (repeatable) instead of the database.",
)
@click.option("--json", "as_json", is_flag=True)
@command
def replay(
    obj: CliContext,
    modules: tuple[str, ...],
    ids: tuple[str, ...],
    durable_name: str | None,
    histories: tuple[str, ...],
    as_json: bool,
) -> None:
    """Replay executions against the code in MODULES, running no step: exit 0 when
    every one is compatible, 1 when any diverged.

    By default every open execution in the database (of --durable NAME, if given);
    or the --id executions; or the exported --history files.
    """
    import_modules(modules)
    if histories and ids:
        fail("give --history files or --id executions, not both")
    sources: list[Any] = (
        [_read_history(p) for p in histories] or list(ids) or _open_ids(obj, durable_name)
    )
    reports = [obj.app.replay_check(source) for source in sources]
    if durable_name is not None:
        reports = [r for r in reports if r.durable_name == durable_name]
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in reports]))
    else:
        for report in reports:
            click.echo(_line(report.as_dict()))
        bad = sum(1 for r in reports if not r.compatible)
        click.echo(f"{len(reports)} replayed: {len(reports) - bad} compatible, {bad} diverged")
    raise SystemExit(0 if all(r.compatible for r in reports) else 1)


def _read_history(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    except ValueError as exc:
        fail(f"{path} is not JSON: {exc}")
    if not isinstance(data, dict) or data.get("format") != "zart-history":
        fail(f"{path} is not a zart history (made by `zart export`)")
    return data


def _open_ids(obj: CliContext, durable_name: str | None) -> list[str]:
    found: list[str] = []
    for status in _OPEN:
        offset = 0
        while True:
            page = obj.app.list(
                status=status, durable_name=durable_name, limit=_PAGE, offset=offset
            )
            found.extend(s.id for s in page)
            if len(page) < _PAGE:
                break
            offset += _PAGE
    return found


def _line(report: dict[str, Any]) -> str:
    head = f"{report['execution_id']} ({report['durable']}):"
    if report["compatible"]:
        return f"{head} compatible ({report['replayed']} recorded calls replayed)"
    divergence = report["divergence"]
    if divergence is not None:
        return f"{head} diverged: {divergence.get('message', divergence)}"
    return f"{head} incompatible: {report['error']}"


@main.command()
@click.option("--json", "as_json", is_flag=True)
@command
def patches(obj: CliContext, as_json: bool) -> None:
    """List the `zart.patched` markers open executions recorded, with which of them took
    the old branch (that branch must stay until none does) and which the new one."""
    found = obj.app.patches_in_use()
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in found]))
        return
    if not found:
        click.echo("no patches in use by open executions")
    for use in found:
        click.echo(f"{use.patch_id}: old branch {len(use.old)}, new branch {len(use.new)}")
        for eid in use.old:
            click.echo(f"  old: {eid}")
