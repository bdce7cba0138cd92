"""A rule's time limits (``ends_at``, ``max_duration``, ``max_calls``): the real openai client keeps
answering, and past a limit no candidate is called and the primary span says ``expired``."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from otel_shadow import ConfigError, Scheduler
from otel_shadow import attributes as A
from otel_shadow.instrumentation.rules import validate_rules

from .conftest import MESSAGES, by_role


def _rules(**limits: Any) -> dict[str, Any]:
    rule = {
        "name": "bounded",
        "match": {"provider": "openai", "model": "gpt-4o"},
        "candidates": [{"model": "gpt-4o-mini"}],
    }
    return {"rules": [{**rule, **limits}]}


def test_a_rule_with_max_calls_shadows_that_many_calls_then_records_expired(
    instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler
) -> None:
    instrument(_rules(max_calls=1))
    answers = [oai.chat.completions.create(model="gpt-4o", messages=MESSAGES) for _ in range(3)]
    assert all(a.choices[0].message.content for a in answers)  # the user's calls are untouched
    assert scheduler.flush(10)
    roles = by_role(spans)
    primaries = sorted(roles["primary"], key=lambda s: s.start_time)
    assert [p.attributes[A.SHADOW_CANDIDATES_SCHEDULED] for p in primaries] == [1, 0, 0]
    assert [p.attributes.get(A.SHADOW_DROP_REASONS) for p in primaries] == [None, "expired", "expired"]
    assert len(roles["candidate"]) == 1


def test_a_rule_whose_end_time_passed_calls_no_candidate(
    instrument: Any, oai: openai.OpenAI, spans: Any, scheduler: Scheduler
) -> None:
    instrument(_rules(ends_at="2020-01-01T00:00:00+00:00"))
    oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert scheduler.flush(10)
    roles = by_role(spans)
    (primary,) = roles["primary"]
    assert primary.attributes[A.SHADOW_DROP_REASONS] == "expired"
    assert "candidate" not in roles


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"max_calls": 0}, "max_calls"),
        ({"max_duration": -5}, "max_duration"),
        ({"ends_at": "2030-01-01T00:00:00"}, "ends_at"),  # no time zone: processes would disagree
    ],
)
def test_a_bad_rule_limit_names_its_field(limits: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_rules(_rules(**limits), "shadow.yaml")
