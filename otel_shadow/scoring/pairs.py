"""Reading the pairs to score, page by page, through the CLI's reader (the file or the collector).

A run over a database file it opened itself evaluates the pairs to score once, into a temporary
table (``MaterializedPairs``), and reads its pages by position. Through a collector's read-only SQL
endpoint, a page is one read-only query: pairs whose two sides succeeded, that some requested
scorer has not scored yet, after the last pair of the previous page (keyset on the primary's start
in ns, the trace and the candidate span: a page never repeats a pair, even when new pairs arrive
meanwhile), which evaluates the pairs view again for every page.
The collector's ``/v1/sql`` caps a result in bytes, so a page that is too large is read again in
halves. Content is read from where each kind of capture puts it: ``shadow.input`` /
``shadow.output`` (decorated experiments), ``gen_ai.input.messages`` / ``gen_ai.output.messages``
on the span (zero-code, ``SPAN_ONLY``) or on its ``gen_ai.client.inference.operation.details``
event (``EVENT_ONLY``).

The pair query is written once, for DuckDB (a file, or Parquet segments, whose views are the
same). On ClickHouse (``otel-shadow score --clickhouse URL``) the ClickHouse reader translates it
(``otel_shadow.clickhouse.dialect``); what translation cannot do is a ``PairDialect`` here: how
ids are written (DuckDB: UUID and UBIGINT; the exporter: hex strings) and where the content is
(DuckDB: the ``spans`` and ``span_events`` tables; ClickHouse: ``otel_traces``' ``SpanAttributes``
and ``Events`` arrays, as the Collector's exporter writes them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .. import attributes as A
from ..access import Reader
from ..errors import ConfigError, ResultTooLarge, StoreError

__all__ = [
    "DUCKDB",
    "MaterializedPairs",
    "Pair",
    "PairDialect",
    "PairPage",
    "clickhouse_pairs",
    "read_pages",
    "sql_string",
    "text_of_messages",
]

_DETAILS_EVENT = "gen_ai.client.inference.operation.details"
MIN_PAGE = 1
# Content comes from spans any client could send: a text is cut here, so one huge attribute cannot
# make a judge prompt (and its cost) or an embeddings request unbounded.
MAX_TEXT_CHARS = 32 * 1024


@dataclass(frozen=True, slots=True)
class Pair:
    """One primary × candidate (or replicate) pair and its captured content (None when not captured)."""

    experiment: str
    trace_id: str  # 32 hex digits
    primary_span_id: int
    candidate_span_id: int
    primary_config_id: str
    candidate_config_id: str
    candidate_role: str
    start_ns: int  # the primary's start
    request: str | None
    primary_output: str | None
    candidate_output: str | None
    done: frozenset[str]  # scorer ids that already scored this pair

    @property
    def key(self) -> tuple[str, int]:
        return (self.trace_id, self.candidate_span_id)

    @property
    def has_outputs(self) -> bool:
        return bool(self.primary_output) and bool(self.candidate_output)


@dataclass(frozen=True, slots=True)
class PairPage:
    pairs: list[Pair]
    last: tuple[int, str, int] | None  # keyset of the page's last row


def sql_string(value: str) -> str:
    """A SQL string literal (the readers take no parameters; the collector's endpoint takes SQL text)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class PairDialect:
    """What the pair query cannot leave to SQL translation: ids and where content is stored."""

    name: str
    trace_hex: str  # SQL of a trace id as 32 lowercase hex digits; {} is the column
    trace_literal: str  # SQL of a trace id literal, from 32 hex digits ({})
    span_literal: str  # SQL of a span id literal, from its number ({:d}) or hex ({:016x})
    content: str  # CTEs `content` (trace_id, span_id, attributes) and `details` (…, input_messages,
    # output_messages) over the spans of CTE `wanted` (trace_id, span_id)
    # True: a page is two queries, its keys and then their content over the keys as literals. For
    # an engine that inlines a CTE at each reference (ClickHouse), where one query would evaluate
    # the pairs view once per reference of the page (five).
    keys_first: bool = False
    # a table of literal rows (k, trace_id, primary_span_id, candidate_span_id): {} is "(…), (…)"
    rows_literal: str = "SELECT * FROM (VALUES {}) AS v(k, trace_id, primary_span_id, candidate_span_id)"


# DuckDB (a file, segments): the store's own tables; re-sent copies of a span are identical: any one
DUCKDB = PairDialect(
    name="duckdb",
    trace_hex="hex_trace_id({})",
    trace_literal="'{}'::UUID",
    span_literal="{:d}",
    content=f"""content AS (
    SELECT s.trace_id, s.span_id, any_value(s.attributes) AS attributes
    FROM spans s SEMI JOIN wanted w ON s.trace_id = w.trace_id AND s.span_id = w.span_id
    GROUP BY s.trace_id, s.span_id
),
details AS (
    SELECT e.trace_id, e.span_id,
           max(e.attributes ->> '$."{A.GEN_AI_INPUT_MESSAGES}"')  AS input_messages,
           max(e.attributes ->> '$."{A.GEN_AI_OUTPUT_MESSAGES}"') AS output_messages
    FROM span_events e SEMI JOIN wanted w ON e.trace_id = w.trace_id AND e.span_id = w.span_id
    WHERE e.name = '{_DETAILS_EVENT}'
    GROUP BY e.trace_id, e.span_id
)""",
)

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}(\.[A-Za-z_][A-Za-z0-9_]{0,127})?$")


def clickhouse_pairs(traces_table: str = "otel_traces") -> PairDialect:
    """ClickHouse over the Collector exporter's table (``traces_table``, or ``database.table``): ids
    are hex strings (fixed width, so they order as the numbers do), content is read from the
    table's ``SpanAttributes`` map and its ``Events.Name`` / ``Events.Attributes`` arrays."""
    if not _TABLE_NAME.match(traces_table):
        raise ConfigError(
            f"--traces-table {traces_table!r} is not a plain ClickHouse name (table or database.table: letters, "
            "digits, _); give the clickhouseexporter's traces_table_name"
        )
    traces = ".".join(f"`{part}`" for part in traces_table.split("."))
    wanted = "(TraceId, SpanId) IN (SELECT trace_id, span_id FROM wanted)"
    event = f"Events.Attributes[indexOf(Events.Name, '{_DETAILS_EVENT}')]"  # [0]: an empty map
    return PairDialect(
        name="clickhouse",
        trace_hex="{}",
        trace_literal="'{}'",
        span_literal="'{:016x}'",
        keys_first=True,
        rows_literal="SELECT * FROM values('k UInt32, trace_id String, primary_span_id String, candidate_span_id String', {})",
        content=f"""content AS (
    SELECT TraceId AS trace_id, SpanId AS span_id, any(SpanAttributes) AS attributes
    FROM {traces} WHERE {wanted}
    GROUP BY TraceId, SpanId
),
details AS (
    SELECT TraceId AS trace_id, SpanId AS span_id,
           max(nullIf({event}['{A.GEN_AI_INPUT_MESSAGES}'], ''))  AS input_messages,
           max(nullIf({event}['{A.GEN_AI_OUTPUT_MESSAGES}'], '')) AS output_messages
    FROM {traces} WHERE {wanted} AND has(Events.Name, '{_DETAILS_EVENT}')
    GROUP BY TraceId, SpanId
)""",
    )


def _attr(alias: str, key: str) -> str:
    return f"{alias}.attributes ->> '$.\"{key}\"'"


def _where(scorer_ids: Sequence[str], experiment: str | None, roles: Sequence[str]) -> list[str]:
    """Pairs whose two sides succeeded, of the roles asked, that some requested scorer has not scored."""
    where = [
        "p.primary_outcome = 'ok'",
        "p.candidate_outcome = 'ok'",
        f"(d.done IS NULL OR length(d.done) < {len(set(scorer_ids))})",
    ]
    where.append("p.candidate_role IN (" + ", ".join(sql_string(r) for r in roles) + ")")
    if experiment is not None:
        where.append(f"p.experiment = {sql_string(experiment)}")
    return where


def _keys_sql(scorer_ids: Sequence[str], where: list[str], order_and_limit: str, number: bool = False) -> str:
    """The keys of the pairs to score (no content), with the scorers that already scored each."""
    ids = ", ".join(sql_string(i) for i in scorer_ids)
    k = "row_number() OVER (ORDER BY epoch_ns(p.start_time), p.trace_id, p.candidate_span_id) AS k, " if number else ""
    return f"""
WITH done AS (
    SELECT trace_id, candidate_span_id, list(DISTINCT scorer_id) AS done
    FROM shadow_scores WHERE scorer_id IN ({ids})
    GROUP BY trace_id, candidate_span_id
)
SELECT {k}p.experiment AS experiment, p.trace_id AS trace_id, p.primary_span_id AS primary_span_id,
       p.candidate_span_id AS candidate_span_id, p.primary_config_id AS primary_config_id,
       p.candidate_config_id AS candidate_config_id, p.candidate_role AS candidate_role,
       epoch_ns(p.start_time) AS start_ns, d.done AS done
FROM shadow_pairs p
LEFT JOIN done d ON d.trace_id = p.trace_id AND d.candidate_span_id = p.candidate_span_id
WHERE {" AND ".join(where)}
{order_and_limit}
"""


# the columns of a page of keys that the content query passes through
_KEY_COLUMNS = (
    "experiment",
    "primary_span_id",
    "candidate_span_id",
    "primary_config_id",
    "candidate_config_id",
    "candidate_role",
    "start_ns",
    "done",
)


def _with_content(
    page: str, order: str, extra: str = "", dialect: PairDialect = DUCKDB, columns: Sequence[str] = _KEY_COLUMNS
) -> str:
    """``page`` (a query of pair keys) joined to the content of those spans only: the attributes of
    every other span are never read or joined. ``columns``: the page's columns passed through."""
    passed = "".join(f"p.{c} AS {c}, " for c in columns)
    return f"""
WITH page AS ({page}),
wanted AS (
    SELECT trace_id, primary_span_id AS span_id FROM page
    UNION ALL SELECT trace_id, candidate_span_id FROM page
),
{dialect.content}
SELECT
    {passed}{dialect.trace_hex.format("p.trace_id")} AS trace_hex,
    {_attr("pr", A.SHADOW_INPUT)}                    AS shadow_input,
    {_attr("pr", A.GEN_AI_SYSTEM_INSTRUCTIONS)}      AS system_instructions,
    coalesce({_attr("pr", A.GEN_AI_INPUT_MESSAGES)}, pe.input_messages)   AS input_messages,
    {_attr("pr", A.SHADOW_OUTPUT)}                   AS primary_output,
    coalesce({_attr("pr", A.GEN_AI_OUTPUT_MESSAGES)}, pe.output_messages) AS primary_messages,
    {_attr("c", A.SHADOW_OUTPUT)}                    AS candidate_output,
    coalesce({_attr("c", A.GEN_AI_OUTPUT_MESSAGES)}, ce.output_messages)  AS candidate_messages{extra}
FROM page p
LEFT JOIN content pr ON pr.trace_id = p.trace_id AND pr.span_id = p.primary_span_id
LEFT JOIN content c ON c.trace_id = p.trace_id AND c.span_id = p.candidate_span_id
LEFT JOIN details pe ON pe.trace_id = p.trace_id AND pe.span_id = p.primary_span_id
LEFT JOIN details ce ON ce.trace_id = p.trace_id AND ce.span_id = p.candidate_span_id
ORDER BY {order}
"""


def _page_keys_sql(
    scorer_ids: Sequence[str],
    after: tuple[int, str, int] | None,
    limit: int,
    experiment: str | None,
    roles: Sequence[str],
    dialect: PairDialect = DUCKDB,
) -> str:
    """The keys of the page after ``after`` (a top-N over the pairs view)."""
    where = _where(scorer_ids, experiment, roles)
    if after is not None:
        start_ns, trace_hex, span = int(after[0]), str(after[1]), int(after[2])
        if len(trace_hex) != 32 or any(c not in "0123456789abcdef" for c in trace_hex):
            raise ValueError(f"bad trace id in keyset: {trace_hex!r}")
        trace, span_sql = dialect.trace_literal.format(trace_hex), dialect.span_literal.format(span)
        where.append(
            f"(epoch_ns(p.start_time) > {start_ns} OR (epoch_ns(p.start_time) = {start_ns} AND "
            f"(p.trace_id > {trace} OR (p.trace_id = {trace} AND p.candidate_span_id > {span_sql}))))"
        )
    return _keys_sql(
        scorer_ids, where, f"ORDER BY epoch_ns(p.start_time), p.trace_id, p.candidate_span_id LIMIT {int(limit)}"
    )


def _page_sql(
    scorer_ids: Sequence[str],
    after: tuple[int, str, int] | None,
    limit: int,
    experiment: str | None,
    roles: Sequence[str],
    dialect: PairDialect = DUCKDB,
) -> str:
    """One query: the page's keys, then the content of those spans only."""
    keys = _page_keys_sql(scorer_ids, after, limit, experiment, roles, dialect)
    return _with_content(keys, "p.start_ns, p.trace_id, p.candidate_span_id", dialect=dialect)


def _hex_trace(value: Any) -> str:
    text = str(value).replace("-", "").lower()
    if len(text) != 32 or any(c not in "0123456789abcdef" for c in text):
        raise StoreError(
            f"a pair's trace id {str(value)[:64]!r} is not 32 hex digits; the store holds a malformed span"
        )
    return text


def _keys_first(reader: Reader, keys_sql: str, dialect: PairDialect) -> list[dict[str, Any]]:
    """The page's key rows, then their content read over the keys written as literals (ids only,
    checked), merged by row number: the pairs view is evaluated once for the page."""
    result = reader.query(keys_sql)
    keys = [dict(zip(result.columns, row)) for row in result.rows]
    if not keys:
        return []
    literal = dialect.rows_literal.format(
        ", ".join(
            f"({k}, {dialect.trace_literal.format(_hex_trace(row['trace_id']))}, "
            f"{dialect.span_literal.format(_span_id(row['primary_span_id']))}, "
            f"{dialect.span_literal.format(_span_id(row['candidate_span_id']))})"
            for k, row in enumerate(keys)
        )
    )
    content = reader.query(_with_content(literal, "p.k", extra=", p.k AS k", dialect=dialect, columns=()))
    return [{**keys[int(row["k"])], **row} for row in (dict(zip(content.columns, r)) for r in content.rows)]


def count_sql(scorer_ids: Sequence[str], experiment: str | None, roles: Sequence[str]) -> str:
    """How many pairs the run has left to look at (for the progress bar)."""
    ids = ", ".join(sql_string(i) for i in scorer_ids)
    where = ["p.primary_outcome = 'ok'", "p.candidate_outcome = 'ok'", f"(d.n IS NULL OR d.n < {len(set(scorer_ids))})"]
    where.append("p.candidate_role IN (" + ", ".join(sql_string(r) for r in roles) + ")")
    if experiment is not None:
        where.append(f"p.experiment = {sql_string(experiment)}")
    return f"""
SELECT count(*) FROM shadow_pairs p
LEFT JOIN (SELECT trace_id, candidate_span_id, count(DISTINCT scorer_id) AS n FROM shadow_scores
           WHERE scorer_id IN ({ids}) GROUP BY trace_id, candidate_span_id) d
       ON d.trace_id = p.trace_id AND d.candidate_span_id = p.candidate_span_id
WHERE {" AND ".join(where)}
"""


def read_pages(
    reader: Reader,
    scorer_ids: Sequence[str],
    *,
    page_size: int = 128,
    experiment: str | None = None,
    roles: Sequence[str] = (A.ROLE_CANDIDATE, A.ROLE_REPLICATE),
    limit: int | None = None,
    dialect: PairDialect = DUCKDB,
) -> Iterator[PairPage]:
    """Pages of pairs that some of ``scorer_ids`` has not scored, oldest first, at most ``limit`` pairs."""
    after: tuple[int, str, int] | None = None
    size = page_size
    remaining = limit
    while remaining is None or remaining > 0:
        want = size if remaining is None else min(size, remaining)
        try:
            if dialect.keys_first:
                rows = _keys_first(reader, _page_keys_sql(scorer_ids, after, want, experiment, roles, dialect), dialect)
            else:
                result = reader.query(_page_sql(scorer_ids, after, want, experiment, roles, dialect))
                rows = [dict(zip(result.columns, row)) for row in result.rows]
        except ResultTooLarge:
            if want <= MIN_PAGE:
                raise
            size = max(MIN_PAGE, want // 2)  # the collector's result limit: read smaller pages
            continue
        if not rows:
            return
        pairs = [_pair(row) for row in rows]
        last = rows[-1]
        after = (int(last["start_ns"]), str(last["trace_hex"]), pairs[-1].candidate_span_id)
        if remaining is not None:
            remaining -= len(pairs)
        yield PairPage(pairs, after)
        if len(rows) < want:
            return


Execute = Callable[[str], tuple[list[str], list[tuple[Any, ...]]]]

# the run's own temporary table: in memory (spilled by DuckDB if large), seen by its connection only
KEYS_TABLE = "otel_shadow_score_keys"


class MaterializedPairs:
    """The keys of the pairs to score, evaluated once into a temporary table, then read by position.

    ``shadow_pairs`` (de-duplication and joins over every span) and ``shadow_scores`` are evaluated
    once per run, not once per page: a page is a range of the table's row numbers (pruned by
    DuckDB's min/max per row group, since the rows are written in order) joined to the content of
    its own spans. It needs a connection that may create a temporary table and keeps it, so it
    serves a database file opened by the run itself; through a collector's read-only SQL endpoint,
    ``read_pages`` pages with a keyset instead. The keys are those unscored when the run began: the
    run holds the file, so no pair arrives meanwhile.
    """

    def __init__(
        self,
        execute: Execute,
        scorer_ids: Sequence[str],
        *,
        experiment: str | None = None,
        roles: Sequence[str] = (A.ROLE_CANDIDATE, A.ROLE_REPLICATE),
        limit: int | None = None,
    ) -> None:
        self._execute = execute
        cap = "" if limit is None else f"LIMIT {int(limit)}"
        keys = _keys_sql(scorer_ids, _where(scorer_ids, experiment, roles), f"ORDER BY k {cap}", number=True)
        execute(f"CREATE OR REPLACE TEMP TABLE {KEYS_TABLE} AS {keys}")
        self.total = int(execute(f"SELECT count(*) FROM {KEYS_TABLE}")[1][0][0])

    def pages(self, page_size: int = 128) -> Iterator[PairPage]:
        """Pages of at most ``page_size`` pairs, oldest first."""
        done = 0
        while done < self.total:
            page = f"SELECT * FROM {KEYS_TABLE} WHERE k > {done} AND k <= {done + int(page_size)}"
            columns, rows = self._execute(_with_content(page, "p.k", extra=", p.k AS k"))
            if not rows:
                return
            records = [dict(zip(columns, row)) for row in rows]
            done = int(records[-1]["k"])
            last = records[-1]
            yield PairPage(
                [_pair(r) for r in records],
                (int(last["start_ns"]), str(last["trace_hex"]), int(last["candidate_span_id"])),
            )

    def close(self) -> None:
        self._execute(f"DROP TABLE IF EXISTS {KEYS_TABLE}")


def _pair(row: dict[str, Any]) -> Pair:
    request = row["shadow_input"]
    if request is None and row["input_messages"] is not None:
        request = text_of_messages(row["input_messages"], with_roles=True)
        if row["system_instructions"]:
            request = f"system: {text_of_messages(row['system_instructions'], with_roles=False)}\n{request}"
    primary = row["primary_output"]
    if primary is None and row["primary_messages"] is not None:
        primary = text_of_messages(row["primary_messages"], with_roles=False)
    candidate = row["candidate_output"]
    if candidate is None and row["candidate_messages"] is not None:
        candidate = text_of_messages(row["candidate_messages"], with_roles=False)
    request, primary, candidate = (_cut(t) for t in (request, primary, candidate))
    done = row["done"]
    if isinstance(done, str):  # a list arrives as JSON text from some readers
        done = json.loads(done)
    return Pair(
        experiment=row["experiment"],
        trace_id=str(row["trace_hex"]),
        primary_span_id=_span_id(row["primary_span_id"]),
        candidate_span_id=_span_id(row["candidate_span_id"]),
        primary_config_id=row["primary_config_id"],
        candidate_config_id=row["candidate_config_id"],
        candidate_role=row["candidate_role"],
        start_ns=int(row["start_ns"]),
        request=request,
        primary_output=primary,
        candidate_output=candidate,
        done=frozenset(done or ()),
    )


def _span_id(value: Any) -> int:
    """A span id as its number: DuckDB stores the number, the ClickHouse exporter 16 hex digits."""
    return int(value, 16) if isinstance(value, str) else int(value)


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_TEXT_CHARS:
        return text
    return text[:MAX_TEXT_CHARS] + "…[truncated]"


def text_of_messages(raw: str, *, with_roles: bool) -> str:
    """The text of GenAI semantic-convention messages (JSON: ``[{"role", "parts": [{"type": "text",
    "content"}]}]``); text that is not such JSON is returned as it is."""
    try:
        messages = json.loads(raw)
    except (ValueError, TypeError):
        return raw
    if isinstance(messages, dict):
        messages = [messages]
    if not isinstance(messages, list):
        return raw
    lines = []
    for message in messages:
        if isinstance(message, str):
            lines.append(message)
            continue
        if not isinstance(message, dict):
            continue
        text = _text_of_parts(message.get("parts", message.get("content")))
        if with_roles and message.get("role"):
            text = f"{message['role']}: {text}"
        lines.append(text)
    return "\n".join(lines)


def _text_of_parts(parts: Any) -> str:
    if isinstance(parts, str):
        return parts
    if isinstance(parts, list):
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and part.get("type", "text") == "text":
                out.append(str(part.get("content", part.get("text", ""))))
        return " ".join(out)
    return ""
