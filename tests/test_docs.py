"""The docs cover what users type (every env var, view column, CLI command and span attribute), and
every command they show works as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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
        for view in (
            "shadow_runs",
            "shadow_pairs",
            "shadow_coverage",
            "shadow_summary",
            "shadow_scores",
            "shadow_score_summary",
        ):
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
    text = (
        (DOCS / "experiments.md").read_text()
        + (DOCS / "instrumentation.md").read_text()
        + (DOCS / "scoring.md").read_text()
    )
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
            if [
                x for x in literals if not x.endswith((".yaml", ".yml", ".json", ".duckdb"))
            ] and "otel_shadow" not in line:
                offenders.append(f"{path.relative_to(package)}:{number}: {line.strip()}")
    assert offenders == []


# --- every command in the docs works as written -------------------------------------------------
# The docs' bash blocks are run as written, in order, in a temp dir, on the installed package:
# `python3 -m venv .venv` links the installed environment, and a `pip install` is checked (the
# distribution and every extra it names are installed) instead of downloading anything. Python
# and YAML blocks whose first line is `# <file name>` are the files the commands use. The shipped
# model server's port (8099) is swapped for a free one. Nothing else is changed.
RUN_DOCS = {  # doc → (the database its commands write, the primary × candidate pairs it must hold)
    "README.md": ("otel-shadow.duckdb", 400),
    "docs/instrumentation.md": ("shadow.duckdb", 3),
    "docs/cli.md": ("demo.duckdb", 400),
    "docs/rollout.md": ("shadow.duckdb", 150),
}
NOT_RUN = {".venv/bin/python -m pytest -q": "runs this very test suite"}
ROOT = Path(__file__).parent.parent
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
_FILE = re.compile(r"#\s*([\w.-]+\.(?:py|ya?ml))\s*$")


def doc_steps(text: str) -> list[tuple[str, str]]:
    """("file", "<name>\\n<content>") and ("bash", "<command>") in document order."""
    steps: list[tuple[str, str]] = []
    for language, body in _FENCE.findall(text):
        first = body.splitlines()[0] if body.strip() else ""
        named = _FILE.match(first)
        if language in ("python", "yaml") and named:
            steps.append(("file", f"{named.group(1)}\n{body}"))
        elif language == "bash":
            steps.extend(
                ("bash", line)
                for line in body.replace("\\\n", " ").splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            )
    return steps


def check_install(command: str) -> None:
    """A `pip install` line: the distributions and extras it names are installed here."""
    import importlib.metadata as md
    import shlex

    from packaging.requirements import Requirement

    for arg in shlex.split(command.split("install", 1)[1]):
        if arg.startswith("-") or arg == "":
            continue
        requirement = Requirement(
            "otel-shadow" + arg[1:] if arg.startswith(".") else arg
        )  # ".", ".[test]": this project
        dist = md.distribution(requirement.name)  # raises PackageNotFoundError when missing
        provided = dist.metadata.get_all("Provides-Extra") or []
        for extra in requirement.extras:
            assert extra in provided, f"{command!r}: {requirement.name} has no extra [{extra}]"
            for needed in dist.requires or []:
                need = Requirement(needed)
                if need.marker is not None and need.marker.evaluate({"extra": extra}) and need.name != requirement.name:
                    md.distribution(need.name)


def script_of(steps: list[tuple[str, str]], port: int) -> str:
    lines = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for kind, content in steps:
        content = content.replace("8099", str(port))
        if kind == "file":  # written where the doc shows it: a later file of the same name replaces it from there on
            name, body = content.split("\n", 1)
            lines.append(f"cat > {name} <<'DOCS_FILE_END'\n{body}DOCS_FILE_END")
            continue
        for part in (p.strip() for p in content.split("&&")):
            if part in NOT_RUN:
                continue
            if part == "python3 -m venv .venv":
                lines.append(f"[ -e .venv ] || ln -s {sys.prefix} .venv")
            elif re.match(r"^(\S*/)?pip install ", part):
                check_install(part)
            else:
                lines.append(part)
    return "\n".join(lines) + "\n"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_bash_command_in_the_docs_is_run_or_named_as_not_run() -> None:
    for doc in RUN_DOCS:
        steps = doc_steps((ROOT / doc).read_text())
        assert [c for k, c in steps if k == "bash"], f"{doc} shows no command"
    assert all(any(c in (ROOT / d).read_text() for d in RUN_DOCS) for c in NOT_RUN)


@pytest.mark.parametrize("doc", sorted(RUN_DOCS))
def test_the_docs_commands_work_as_written_and_store_rows(doc: str, tmp_path: Path) -> None:
    database, pairs = RUN_DOCS[doc]
    script = script_of(doc_steps((ROOT / doc).read_text()), free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_", "ANTHROPIC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{script}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    for symptom in ("Traceback", "Failed to export", "Connection refused", "StatusCode.UNAVAILABLE"):
        assert symptom not in out.stderr, out.stderr[-3000:]
    with Store.open(tmp_path / database, read_only=True) as store:
        assert store.query("SELECT count(*) FROM shadow_pairs").rows[0][0] >= pairs
