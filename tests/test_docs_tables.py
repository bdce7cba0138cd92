"""The docs' reference tables say exactly what the code has: no row missing, none left over.

Each table is compared both ways with the code it documents: docs/cli.md's commands and options with
the click commands (walked through click's API), docs/schema.md's views, columns, types and tables
with a fresh store's DuckDB catalogue, docs/configuration.md's environment variables with
``otel_shadow/environment_variables.py``. A failure lists every difference and the row to add or
remove, so whoever adds a command, an option, a column or a variable knows which doc to change.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest

from otel_shadow import environment_variables as E
from otel_shadow.cli import cli
from otel_shadow.store import Store

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
PACKAGE = ROOT / "otel_shadow"


# --- reading the docs' markdown ---------------------------------------------------------------


@dataclass
class Section:
    heading: str
    level: int
    rows: list[list[str]] = field(default_factory=list)  # table body rows, cells stripped


def sections(path: Path) -> list[Section]:
    """The page cut at its headings, each with the body rows of the tables under it."""
    out = [Section("", 0)]
    in_code = False
    previous = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        in_table, previous = previous.startswith("|"), line
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        heading = re.match(r"^(#+)\s+(.*)$", line)
        if heading:
            out.append(Section(heading.group(2), len(heading.group(1))))
            continue
        if line.startswith("|") and in_table:  # a table's first line is its header
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):  # not the separator row
                out[-1].rows.append(cells)
    return out


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def first_code_span(text: str) -> str | None:
    spans = code_spans(text)
    return spans[0] if spans else None


def report(title: str, problems: list[str]) -> str:
    return f"{title} ({len(problems)}):\n  " + "\n  ".join(problems)


# --- docs/cli.md ------------------------------------------------------------------------------


def leaf_commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    """Every command a user can run, as its full name (``otel-shadow collector``), hidden ones left out."""
    for name, command in sorted(group.commands.items()):
        if command.hidden:
            continue
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*path, name))
        else:
            yield " ".join(("otel-shadow", *path, name)), command


def documented_params(command: click.Command) -> dict[str, str | None]:
    """What a reference row names for each parameter: each spelling of an option (``--sql``,
    ``--no-sql``), an argument in capitals (``SQL``), mapped to its environment variable."""
    out: dict[str, str | None] = {}
    for param in command.params:
        if isinstance(param, click.Option):
            if param.hidden:
                continue
            envvar = param.envvar if isinstance(param.envvar, str) or param.envvar is None else param.envvar[0]
            for spelling in (*param.opts, *param.secondary_opts):
                out[spelling] = envvar
        else:
            out[param.human_readable_name] = None
    return out


def test_the_cli_reference_lists_every_command_option_and_environment_variable_and_nothing_else() -> None:
    page = sections(DOCS / "cli.md")
    commands = dict(leaf_commands())
    problems: list[str] = []

    # the overview table: one row per command
    overview = {
        " ".join(span.split()[:2]): span
        for row in page[1].rows
        if (span := first_code_span(row[0])) and span.startswith("otel-shadow ")
    }
    for name in sorted(set(commands) - set(overview)):
        problems.append(f"the command table has no row for `{name}`: add `| \\`{name}\\` | what it does |`")
    for name in sorted(set(overview) - set(commands)):
        problems.append(f"the command table lists `{overview[name]}`, which is not a command: remove the row")

    # the option reference: a '### `otel-shadow X`' section per command, one row per parameter
    references = {span: s for s in page if s.level == 3 and (span := first_code_span(s.heading)) in commands}
    for name in sorted(set(commands) - set(references)):
        problems.append(f"no option reference for `{name}`: add a '### `{name}`' section with its options table")
    stray = [
        s.heading
        for s in page
        if s.level == 3
        and (span := first_code_span(s.heading))
        and span.startswith("otel-shadow ")
        and span not in commands
    ]
    problems += [f"option reference '{h}' names no command: remove it" for h in stray]

    for name, section in sorted(references.items()):
        expected = documented_params(commands[name])
        documented: dict[str, str | None] = {}
        for row in section.rows:
            env = first_code_span(row[1]) if len(row) > 1 else None
            for span in code_spans(row[0]):
                for spelling in span.split("/"):
                    documented[spelling.split(" ")[0]] = env
        for spelling in sorted(set(expected) - set(documented)):
            env = f" (environment variable `{expected[spelling]}`)" if expected[spelling] else ""
            problems.append(f"`{name}`: `{spelling}`{env} is missing from its options table")
        for spelling in sorted(set(documented) - set(expected)):
            problems.append(
                f"`{name}`: the options table lists `{spelling}`, which the command does not take: remove it"
            )
        for spelling in sorted(set(documented) & set(expected)):
            if documented[spelling] != expected[spelling]:
                problems.append(
                    f"`{name}` `{spelling}`: the table says environment variable {documented[spelling] or '—'}, "
                    f"the code reads {expected[spelling] or 'none'}"
                )
    assert not problems, report("docs/cli.md differs from the click commands", problems)


# --- docs/schema.md ---------------------------------------------------------------------------


def catalogue(tmp_path: Path) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """A fresh store's views → {column: type} and its tables → type, from DuckDB's catalogue."""
    with Store.open(tmp_path / "fresh.duckdb") as store:
        kinds = dict(
            store.con.execute(
                "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'main'"
            ).fetchall()
        )
        rows = store.con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
        ).fetchall()
    views: dict[str, dict[str, str]] = {name: {} for name, kind in kinds.items() if kind == "VIEW"}
    for table, column, data_type in rows:
        if table in views:
            views[table][column] = data_type
    return views, {name: kind for name, kind in kinds.items() if kind != "VIEW"}


def test_the_schema_page_lists_every_view_column_with_its_type_and_every_table(tmp_path: Path) -> None:
    page = sections(DOCS / "schema.md")
    views, tables = catalogue(tmp_path)
    problems: list[str] = []

    documented_views = {
        span: s for s in page if s.level == 2 and (span := first_code_span(s.heading)) and span in views
    }
    view_like = [
        s for s in page if s.level == 2 and (span := first_code_span(s.heading)) and span.startswith("shadow_")
    ]
    for name in sorted(set(views) - set(documented_views)):
        problems.append(f"view `{name}` has no section: add '## `{name}` — …' with a column | type | meaning table")
    for section in view_like:
        if first_code_span(section.heading) not in views:
            problems.append(f"section '{section.heading}' documents a view the store does not have: remove it")

    for name, section in sorted(documented_views.items()):
        columns = views[name]
        documented: dict[str, str] = {}
        for row in section.rows:
            data_type = row[1] if len(row) > 1 else ""
            for column in code_spans(row[0]):
                documented[column] = data_type
        for column in [c for c in columns if c not in documented]:
            problems.append(f"`{name}`: column `{column}` ({columns[column]}) is missing from its table")
        for column in sorted(set(documented) - set(columns)):
            problems.append(f"`{name}`: the table lists `{column}`, which the view does not have: remove it")
        for column in [c for c in columns if documented.get(c)]:
            # an empty type cell means "as in the view it names"; a filled one must be DuckDB's name
            if documented[column] != columns[column]:
                problems.append(
                    f"`{name}`.`{column}`: documented as {documented[column]}, the view says {columns[column]}"
                )

    internal = next((s for s in page if s.level == 2 and s.heading.startswith("Tables")), None)
    if internal is None:
        problems.append("no '## Tables (internal)' section listing the tables")
    else:
        listed = {span for row in internal.rows for span in code_spans(row[0])[:1]}
        for table in sorted(set(tables) - listed):
            problems.append(
                f"table `{table}` is missing from 'Tables (internal)': add `| \\`{table}\\` | what it holds |`"
            )
        for table in sorted(listed - set(tables)):
            problems.append(f"'Tables (internal)' lists `{table}`, which the store does not have: remove it")
    assert not problems, report("docs/schema.md differs from a fresh store's catalogue", problems)


# --- docs/configuration.md --------------------------------------------------------------------


def declared_variables() -> set[str]:
    """The names otel_shadow/environment_variables.py defines (constants whose value is their name)."""
    return {value for name, value in vars(E).items() if name.startswith("OTEL_") and value == name}


def variables_read_elsewhere() -> dict[str, str]:
    """Environment variable names the package spells out anywhere (a click option's envvar, an
    ``os.environ`` read), each with one place that spells it."""
    out: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in re.findall(r"[\"'](OTEL_SHADOW_[A-Z0-9_]*[A-Z0-9])[\"']", line):
                out.setdefault(name, f"{path.relative_to(ROOT)}:{number}")
    for _, command in leaf_commands():
        for param in command.params:
            envvars = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
            for envvar in envvars:
                out.setdefault(envvar, f"the {param.opts[0]} option of otel-shadow {command.name}")
    return out


def test_every_environment_variable_is_declared_once_and_the_configuration_table_lists_exactly_those() -> None:
    declared = declared_variables()
    problems = [
        f"{name} (read at {where}) is not declared in otel_shadow/environment_variables.py: add it there"
        for name, where in sorted(variables_read_elsewhere().items())
        if name not in declared
    ]
    table = sections(DOCS / "configuration.md")[1]
    documented = {span for row in table.rows for span in code_spans(row[0]) if span.startswith("OTEL_")}
    problems += [
        f"{name} is missing from docs/configuration.md's table: add `| \\`{name}\\` | default | meaning |`"
        for name in sorted(declared - documented)
    ]
    problems += [
        f"docs/configuration.md's table lists {name}, which otel_shadow/environment_variables.py does not declare"
        for name in sorted(documented - declared)
    ]
    assert not problems, report("environment variables: the code and docs/configuration.md differ", problems)


def test_the_configuration_table_gives_the_cli_options_defaults() -> None:
    """Where a variable backs a CLI option, the table's default is the option's default."""
    table = sections(DOCS / "configuration.md")[1]
    defaults = {span: first_code_span(row[1]) for row in table.rows for span in code_spans(row[0]) if len(row) > 1}
    problems: list[str] = []
    for name, command in leaf_commands():
        for param in command.params:
            if not isinstance(param.envvar, str) or param.envvar not in defaults:
                continue
            code = param.default
            if code is None or not isinstance(code, (bool, int, float, str)):
                continue
            documented = defaults[param.envvar]
            if isinstance(code, bool):
                same = documented == str(code).lower()
            elif isinstance(code, (int, float)):
                same = (
                    documented is not None
                    and re.fullmatch(r"-?[0-9.]+", documented) is not None
                    and float(documented) == code
                )
            else:
                same = documented == code
            if not same:
                problems.append(
                    f"{param.envvar}: the table's default is {documented!r}, `{name} {param.opts[0]}` defaults to {code!r}"
                )
    assert not problems, report("docs/configuration.md's defaults differ from the CLI's", problems)


@pytest.mark.parametrize("page", ["cli.md", "schema.md", "configuration.md"])
def test_the_reference_tables_are_found(page: str) -> None:
    """The checks above read something: a page whose tables moved would otherwise pass empty."""
    assert sum(len(s.rows) for s in sections(DOCS / page)) >= 10
