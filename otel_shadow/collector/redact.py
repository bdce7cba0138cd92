"""Redaction at ingest: the app side's rules applied to content that arrives unredacted.

Other SDKs (OpenLLMetry, OpenInference, OpenTelemetry's own GenAI instrumentations) may send
prompts and completions as they are. With ``--redact-rules FILE`` (or ``OTEL_SHADOW_REDACT_RULES``,
the variable the app side reads) the collector runs the same ``otel_shadow.redaction`` rules over
the content attributes of every decoded span and span event before it is queued for the writer,
so unredacted content never reaches the database file.

Content is recognised by attribute key (``CONTENT_KEYS``, ``CONTENT_PREFIXES`` and the rules
file's ``attributes``); in an event named ``gen_ai.*`` every string attribute is content. Values
inside arrays and maps are redacted too. The cost is bounded whatever arrives: a value longer
than ``max_chars`` is cut to it before the patterns run (and marked), and once a request has spent
``budget_s`` on redaction its remaining content values are withheld, not stored unredacted.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .. import attributes as A
from ..redaction import RedactionRules
from ..store import Prepared, Rows
from ..store.wire import dumps

__all__ = ["CONTENT_KEYS", "CONTENT_PREFIXES", "IngestRedactor"]

CONTENT_KEYS = frozenset(
    {
        A.GEN_AI_INPUT_MESSAGES,
        A.GEN_AI_OUTPUT_MESSAGES,
        A.GEN_AI_SYSTEM_INSTRUCTIONS,
        A.SHADOW_INPUT,
        A.SHADOW_OUTPUT,
        A.GEN_AI_EVALUATION_EXPLANATION,
        "gen_ai.prompt",  # deprecated GenAI conventions and OpenLLMetry
        "gen_ai.completion",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "input.value",  # OpenInference
        "output.value",
    }
)
# indexed forms: gen_ai.prompt.0.content (OpenLLMetry), llm.input_messages.0.message.content (OpenInference)
CONTENT_PREFIXES = ("gen_ai.prompt.", "gen_ai.completion.", "llm.input_messages.", "llm.output_messages.")
MAX_CHARS = 16_384  # as the app side cuts captured content (core.content.MAX_CONTENT_CHARS)
TRUNCATED = "…[truncated]"
WITHHELD = "[withheld: redaction time budget exceeded]"
_QUOTED_KEY = re.compile(r'"((?:gen_ai|llm|input|output|shadow)\.[^"\\]{0,255})"')


@dataclass
class RedactionStats:
    values_redacted: int = 0
    values_truncated: int = 0
    values_withheld: int = 0


class IngestRedactor:
    """A pipeline processor: ``Prepared`` in, the same rows with their content redacted out."""

    def __init__(self, rules: RedactionRules, *, max_chars: int = MAX_CHARS, budget_s: float = 2.0) -> None:
        self.rules = rules
        self.max_chars = max_chars
        self.budget_s = budget_s
        self.keys = CONTENT_KEYS | rules.attribute_keys
        self.prefixes = CONTENT_PREFIXES + rules.attribute_prefixes
        self.stats = RedactionStats()
        extra = sorted(rules.attribute_keys) + list(rules.attribute_prefixes)
        # a quick test on the JSON text, so that spans without content are not parsed at all
        self._may_hold = (
            _QUOTED_KEY
            if not extra
            else re.compile(_QUOTED_KEY.pattern + "|" + "|".join(re.escape(f'"{k}') for k in extra))
        )

    def __call__(self, prepared: Prepared) -> Prepared:
        rows = prepared.rows
        deadline = time.monotonic() + self.budget_s
        spans = self._table(rows.spans, None, deadline)
        events = self._table(
            rows.events, rows.events.column("name").to_pylist() if rows.events.num_rows else None, deadline
        )
        if spans is rows.spans and events is rows.events:
            return prepared
        return Prepared(
            Rows(spans, rows.links, events, rows.rejected, rows.errors, rows.received),
            prepared.batch_id,
            prepared.source,
            prepared.size,
        )

    def _table(self, table: pa.Table, event_names: list[str] | None, deadline: float) -> pa.Table:
        if not table.num_rows:
            return table
        texts = table.column("attributes").to_pylist()
        changed = False
        out: list[str | None] = []
        for i, text in enumerate(texts):
            everything = event_names is not None and event_names[i].startswith("gen_ai.")
            if text is None or (not everything and self._may_hold.search(text) is None):
                out.append(text)
                continue
            new = self._redact_json(text, everything, deadline)
            changed |= new != text
            out.append(new)
        if not changed:
            return table
        index = table.schema.get_field_index("attributes")
        return table.set_column(index, table.schema.field(index), pa.array(out, pa.string()))

    def _redact_json(self, text: str, everything: bool, deadline: float) -> str:
        try:
            attrs = json.loads(text)
        except ValueError:  # our own decoder wrote it; never expected, so withhold rather than guess
            self.stats.values_withheld += 1
            return dumps({"otel_shadow.redaction": WITHHELD})
        if not isinstance(attrs, dict):
            return text
        touched = False
        for key, value in attrs.items():
            if everything or key in self.keys or key.startswith(self.prefixes):
                attrs[key] = self._value(value, deadline)
                touched = True
        return dumps(attrs) if touched else text

    def _value(self, value: Any, deadline: float) -> Any:
        if isinstance(value, str):
            return self._text(value, deadline)
        if isinstance(value, list):
            return [self._value(v, deadline) for v in value]
        if isinstance(value, dict):
            return {k: self._value(v, deadline) for k, v in value.items()}
        return value  # numbers and booleans carry no text

    def _text(self, text: str, deadline: float) -> str:
        if time.monotonic() >= deadline:
            self.stats.values_withheld += 1
            return WITHHELD
        suffix = ""
        if len(text) > self.max_chars:
            text, suffix = text[: self.max_chars], TRUNCATED
            self.stats.values_truncated += 1
        self.stats.values_redacted += 1
        return self.rules(text) + suffix
