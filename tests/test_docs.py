"""The docs cover what users type: every env var, view column, CLI command and span attribute."""

from __future__ import annotations

import re
from pathlib import Path

from otel_shadow import attributes as A
from otel_shadow import environment_variables as E
from otel_shadow.cli import cli
from otel_shadow.store import Store

DOCS = Path(__file__).parent.parent / "docs"


def test_every_environment_variable_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    names = [v for k, v in vars(E).items() if k.startswith("OTEL_") and isinstance(v, str)]
    assert names and [n for n in names if f"`{n}`" not in text] == []


def test_every_view_column_is_documented() -> None:
    text = (DOCS / "schema.md").read_text()
    with Store.open(":memory:") as store:
        for view in ("shadow_runs", "shadow_pairs", "shadow_coverage", "shadow_summary"):
            assert f"`{view}`" in text
            columns = store.query(f"SELECT * FROM {view} LIMIT 0").columns
            missing = [c for c in columns if f"`{c}`" not in text]
            assert missing == [], f"{view}: {missing}"


def test_every_cli_command_is_documented_with_an_example() -> None:
    text = (DOCS / "cli.md").read_text()
    for name, command in cli.commands.items():
        assert f"otel-shadow {name}" in text
        assert command.help and "Example:" in command.help


def test_every_span_attribute_is_documented() -> None:
    text = (DOCS / "experiments.md").read_text() + (DOCS / "instrumentation.md").read_text()
    names = [v for k, v in vars(A).items() if k.startswith("SHADOW_") and isinstance(v, str)]
    names = [n.rstrip(".") for n in names]
    assert [n for n in names if n not in text] == []


def test_no_shadow_attribute_literal_outside_attributes_py() -> None:
    package = Path(A.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        if path.name == "attributes.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            literals = re.findall(r"[\"'](shadow\.[a-z_.]+)[\"']", line)
            if [x for x in literals if not x.endswith((".yaml", ".yml", ".json", ".duckdb"))] and "otel_shadow" not in line:
                offenders.append(f"{path.relative_to(package)}:{number}: {line.strip()}")
    assert offenders == []
