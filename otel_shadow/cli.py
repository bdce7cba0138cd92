"""The ``otel-shadow`` command: a thin shell over the library (parse, call one function, render).

Library errors become one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from . import __version__
from .environment_variables import DEFAULT_DB, OTEL_SHADOW_DB
from .errors import ShadowError

__all__ = ["main"]

db_option = click.option(
    "--db",
    envvar=OTEL_SHADOW_DB,
    default=DEFAULT_DB,
    show_default=True,
    help=f"DuckDB database path (or set {OTEL_SHADOW_DB}).",
)


@click.group()
@click.version_option(__version__, prog_name="otel-shadow")
def cli() -> None:
    """Shadow testing for LLM applications, built on OpenTelemetry."""


@cli.command()
@db_option
@click.option("--requests", "n", default=400, show_default=True, help="Simulated user requests.")
@click.option("--fresh/--keep", default=True, show_default=True, help="Start from an empty database.")
def demo(db: str, n: int, fresh: bool) -> None:
    """Run the seed's shadow example with two simulated models, store the spans, print the report.

    Example:

        otel-shadow demo --db demo.duckdb
    """
    from .demo import run_demo

    run_demo(db, n, fresh)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="otel-shadow", standalone_mode=True)
    except ShadowError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


