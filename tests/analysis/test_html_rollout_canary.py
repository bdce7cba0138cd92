"""The HTML report's canary (unpaired) and rollout sections, from a real store a real ramp moved.

Canary cohorts and shadow pairs go through the real OTLP writer into DuckDB; the rollout history is
written by the real ``Ramp`` (promote, a verdict-gated rollback, a rollback by hand) on a real rules
file. The page is parsed back with the standard library's HTML parser, so an unescaped value shows
up as an element of its own, not just as a missing substring.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from otel_shadow.analysis import build_report, render_html
from otel_shadow.analysis.canary import UNPAIRED_NOTE
from otel_shadow.analysis.data import Query
from otel_shadow.instrumentation.rules import parse_rules
from otel_shadow.rollout.plan import parse_plan
from otel_shadow.rollout.ramp import Ramp
from otel_shadow.store import Store

from ..rollout.ramp_data import FakeClock, write_cohorts

RULES = """\
rules:
  - name: chat
    match: {provider: openai, model: "gpt-4o*"}
    sample_rate: 0.01
    canary: {fraction: 0.0, key: user}
    candidates:
      - model: gpt-4o-mini
"""
PLAN = "steps:\n  - {phase: shadow, fraction: 1.0}\n  - {phase: canary, fraction: 0.1}\n"
HOSTILE_EXPERIMENT = '<img src=x onerror="alert(1)">'
HOSTILE_ACTOR = "<script>alert('actor')</script>@ops"
HOSTILE_REASON = 'incident <b>#42</b> & "friends"'


class Page(HTMLParser):
    """The tags a page has, its headings' text, and each table row as a list of cell texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.headings: list[tuple[str, str]] = []
        self.rows: list[list[str]] = []
        self.text: list[str] = []
        self._heading: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in ("h2", "h3"):
            self._heading = []
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h2", "h3") and self._heading is not None:
            self.headings.append((tag, "".join(self._heading).strip()))
            self._heading = None
        elif tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for buffer in (self._heading, self._cell):
            if buffer is not None:
                buffer.append(data)


def _reader(store: Store) -> Query:
    def query(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        result = store.query(sql)
        return result.columns, result.rows

    return query


def _rendered(tmp_path: Path) -> tuple[str, Page]:
    rules = tmp_path / "shadow.yaml"
    rules.write_text(RULES)
    clock = FakeClock()
    with Store.open(tmp_path / "s.duckdb") as store:
        ramp = Ramp(store, rules, parse_plan(PLAN, "plan.yaml"), parse_rules, clock=clock)
        ramp.promote("alice@ops")  # by hand to the first step
        clock.tick(60)
        ramp.promote("alice@ops")  # on to the canary step
        write_cohorts(store, "chat", canary=1000, primary=1000, at=clock.tick(60), seed=3, canary_error_rate=0.25)
        assert ramp.advance().action == "rollback"  # the canary FAILs: rolled back by the ramp
        clock.tick(60)
        ramp.rollback(HOSTILE_ACTOR, HOSTILE_REASON)  # and once more by hand, with hostile text
        # a canary whose experiment name came from some client: it must stay text
        at = clock.tick(60)
        write_cohorts(store, HOSTILE_EXPERIMENT, canary=400, primary=400, at=at, seed=4)
        report = build_report(_reader(store))
    page = Page()
    rendered = render_html(report)
    page.feed(rendered)
    page.close()
    return rendered, page


def test_the_html_report_has_a_canary_section_that_says_it_is_unpaired(tmp_path: Path) -> None:
    rendered, page = _rendered(tmp_path)
    assert ("h2", "Canary (unpaired)") in page.headings
    canaries = [text for tag, text in page.headings if tag == "h3" and " · canary " in text]
    # in the report's order (by experiment); the hostile one's verdict on 400 calls is not the point here
    assert canaries[0].startswith(f"{HOSTILE_EXPERIMENT} · canary C vs primary P "), canaries
    assert canaries[1] == "chat · canary C vs primary P FAIL", canaries
    text = "".join(page.text)
    assert "UNPAIRED" in text and UNPAIRED_NOTE in text
    # the canary gates are in the page, with the FAIL on the error rate of the bad cohort
    gates = {(row[1], row[0]) for row in page.rows if len(row) == 3 and row[1].startswith("canary_")}
    assert ("canary_error_rate", "FAIL") in gates and ("canary_latency_p95", "PASS") in gates
    assert "1,000 canary calls" in text
    # canary calls are no shadow pairs, but the page is not the empty one either
    assert "No shadow pairs yet" not in text


def test_the_html_report_shows_each_rules_plan_state_and_its_moves_in_order(tmp_path: Path) -> None:
    _, page = _rendered(tmp_path)
    assert ("h2", "Rollout") in page.headings
    [state] = [text for tag, text in page.headings if tag == "h3" and text.startswith("rule ")]
    assert state.startswith("rule chat: ROLLED BACK, shadow 1")  # the plan's first shadow step
    header = ["when (UTC)", "move", "to", "by", "verdict", "why"]
    moves = page.rows[page.rows.index(header) + 1 :]
    assert [(m[1], m[3]) for m in moves] == [
        ("promote", "alice@ops"),
        ("promote", "alice@ops"),
        ("rollback", "rollout"),
        ("rollback", HOSTILE_ACTOR),
    ]
    assert moves[0][0] == "2030-01-01T00:00:00" and moves[2][0] == "2030-01-01T00:02:00"
    assert moves[1][2] == "canary 10% (step 2)"
    assert moves[2][4].startswith("FAIL on ") and moves[0][4] == "—"  # the verdict each move was taken on
    assert moves[3][5] == HOSTILE_REASON


def test_every_value_in_the_canary_and_rollout_sections_is_escaped(tmp_path: Path) -> None:
    rendered, page = _rendered(tmp_path)
    # no element came from the data: the hostile names are text, parsed back unchanged
    assert "script" not in page.tags and "img" not in page.tags and "b" not in page.tags
    assert html.escape(HOSTILE_EXPERIMENT, quote=True) in rendered
    assert html.escape(HOSTILE_ACTOR, quote=True) in rendered
    assert html.escape(HOSTILE_REASON, quote=True) in rendered
    for raw in (HOSTILE_EXPERIMENT, HOSTILE_ACTOR, HOSTILE_REASON):
        assert raw not in rendered
