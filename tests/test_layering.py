"""Nothing reaches across layers: the SDK never imports the collector, the store never the SDK."""

from __future__ import annotations

import ast
from pathlib import Path

import otel_shadow

PACKAGE = Path(otel_shadow.__file__).parent

FORBIDDEN = {
    "core": {"store", "collector", "analysis", "instrumentation", "cli", "access", "demo", "testing", "scoring"},
    "instrumentation": {"store", "collector", "analysis", "cli", "access", "demo", "scoring"},
    "store": {"core", "instrumentation", "collector", "analysis", "cli", "access", "demo", "scoring"},
    "collector": {"core", "instrumentation", "analysis", "cli", "demo", "scoring"},
    "analysis": {"core", "instrumentation", "collector", "store", "cli", "demo"},
    # batch scoring reads through the CLI's access and writes through the store's exporter
    "scoring": {"core", "instrumentation", "collector", "analysis", "cli", "demo", "testing"},
    # rollout (alerts, ramps) reads the store through the analysis and writes its own state; it runs
    # inside the collector's process only through what cli.py hands it, never by importing the SDK
    # or the collector
    "rollout": {"core", "instrumentation", "collector", "cli", "demo", "scoring", "testing"},
    # ClickHouse is a second engine for the store's views: it reads otel_traces (no SDK, no collector)
    # and answers the analysis's own statements (analysis.data), so it may import store and analysis
    "clickhouse": {"core", "instrumentation", "collector", "cli", "access", "demo", "scoring", "rollout", "testing"},
}


def _imports(path: Path) -> set[str]:
    """Top-level otel_shadow subpackages a module imports (absolute or relative)."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PACKAGE).parts
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel[: len(rel) - node.level])
                target = base + (node.module.split(".") if node.module else [])
                if target:
                    found.add(target[0].removesuffix(".py"))
                else:
                    found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("otel_shadow."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("otel_shadow."):
                    found.add(alias.name.split(".")[1])
    return found


def test_layers_do_not_reach_across() -> None:
    violations = []
    for layer, forbidden in FORBIDDEN.items():
        for path in (PACKAGE / layer).rglob("*.py"):
            bad = _imports(path) & forbidden
            if bad:
                violations.append(f"{path.relative_to(PACKAGE)} imports {sorted(bad)}")
    assert violations == []


def test_the_checker_sees_relative_imports() -> None:
    assert "core" in _imports(PACKAGE / "demo.py")
    assert "store" in _imports(PACKAGE / "access.py")
