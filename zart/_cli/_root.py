"""The ``zart`` command group: global options, logging, the engine in ``ctx.obj``."""

from __future__ import annotations

import logging

import click

from zart import __version__
from zart._cli._common import CliContext
from zart._ops.secrets import install_log_scrubbing


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    envvar="ZART_DATABASE_URL",
    default=None,
    help="Database URL (default: $ZART_DATABASE_URL, else sqlite:///zart.db).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log execution and step activity.")
@click.version_option(__version__, prog_name="zart")
@click.pass_context
def main(ctx: click.Context, database_url: str | None, verbose: bool) -> None:
    """Run and inspect zart durable executions."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_log_scrubbing()  # no password in any log line
    ctx.obj = CliContext(database_url)
    ctx.call_on_close(ctx.obj.close)
