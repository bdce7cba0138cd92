"""Issue 14 end to end: a ramp and its alerts on the real parts, against the shipped simulated models.

The application is the real ``openai`` client, shadowed by a rules file through otel-shadow's
instrumentation (the rules re-read by ``RulesSource``, the hot reload every instrumented process
runs), calling the local model server over HTTP. Its spans go through a ``BatchSpanProcessor`` and
the in-process DuckDB exporter into a real DuckDB file. The rollout is the library ``Ramp`` and
the watch the library ``AlertWatch`` on that same open store (DuckDB lets one process write a
file, and here that process is the application), then ``otel-shadow watch --once`` as a process
once the application has let the file go; the webhook goes to an HTTP receiver on loopback.

The plans: shadow steps only (the rollbacks), and shadow then canary steps (the walk to 100%): at a
canary step the application's users (the request's ``user`` field) are answered by the candidate
as the rules file's ``canary.fraction`` says, sticky per user, and the ramp judges the step on the
unpaired canary verdict (docs/rollout.md, "The canary: block").
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_shadow import Scheduler
from otel_shadow.core.canary import in_canary
from otel_shadow.instrumentation import OpenAIShadowInstrumentor
from otel_shadow.instrumentation.rules import RulesSource, parse_rules
from otel_shadow.rollout.alerts import load_watch_config
from otel_shadow.rollout.plan import parse_plan
from otel_shadow.rollout.ramp import Outcome, Ramp
from otel_shadow.rollout.watch import make_watch
from otel_shadow.rollout.webhook import SECRET_HEADER
from otel_shadow.store import Store
from otel_shadow.store.exporter import DuckDBSpanExporter

from .test_alerts import Receiver

RULE = "chat-e2e"
PRIMARY = "e2e-primary"

# SimulatedModel fields by model name. One style: the candidates answer what the primary answers
# (when they answer). The primary is slow enough that the good candidate is faster by far more than
# a loaded machine's noise on a few hundred calls (its p95 interval must end below the limit).
MODELS: dict[str, dict[str, Any]] = {
    PRIMARY: {"latency_ms": 60},
    "e2e-good": {"latency_ms": 2},  # as good, and faster
    "e2e-erring": {"latency_ms": 2, "fail_every": 2},  # a 500 on about half the prompts (by prompt hash)
    # far slower than the primary, also when a loaded machine adds its own delay to every call: the
    # verdict goes from INSUFFICIENT straight to FAIL (never MARGINAL first, which would alert too)
    "e2e-slow": {"latency_ms": 1000},
}

# The model server runs in a process of its own, as a provider's API would: in the application's
# process its event loop would share the GIL with the calls whose latency is measured.
SERVER = """
import json, sys
from otel_shadow.testing import LLMServer, SimulatedModel

models = {name: SimulatedModel(**spec) for name, spec in json.loads(sys.argv[1]).items()}
server = LLMServer(models=models).start()
print(server.openai_url, flush=True)
sys.stdin.read()  # until the test closes the pipe
server.stop()
"""

RULES = f"""\
rules:
  - name: {RULE}
    match: {{provider: openai, model: {PRIMARY}}}
    sample_rate: 0.0            # the rollout sets it
    max_concurrency: 64         # every sampled call of a batch gets its candidate, slow ones too
    candidates:
      - model: CANDIDATE
"""

# min_time 0 and small min_pairs: the plan walks in seconds (the verdict itself needs 100 pairs)
PLAN = """\
steps:
  - {phase: shadow, fraction: 0.5, min_time: 0, min_pairs: 100}
  - {phase: shadow, fraction: 1.0, min_time: 0, min_pairs: 100}
"""

USERS = 8  # threads calling at once, as concurrent users would
POOL = [f"user-{i:02d}" for i in range(40)]  # the users who send a `user` field (the canary's key)
BATCH = 80  # calls between two rollout (and watch) checks
MAX_BATCHES = 15  # a run that has not settled by then fails, with the last outcome
SECRET = "e2e-webhook-secret"

# The verdict's thresholds (docs/report.md), as a team with little traffic would set them: a step
# of 100 pairs can PASS. Under the default 2 pp margin a candidate without a single error stays
# MARGINAL until about 260 pairs (the anytime interval of an error rate of 0 is that wide).
GATES = """\
error_rate_margin: 0.08
"""


# The walk through the canary phase. A canary step's verdict compares the canary calls with the
# primary calls of the same window (unpaired), and each cohort needs `min_pairs` calls (100 by
# default): at canary 100% every keyed caller is served the candidate, so the primary cohort is the
# callers without a key (logged-out visitors): the application sends one call in 4 without `user`.
CANARY_RULES = RULES + "    canary: {fraction: 0.0, key: user}  # the rollout sets it\n"
CANARY_PLAN = (
    PLAN
    + """\
  - {phase: canary, fraction: 0.25, min_time: 0, min_pairs: 100}
  - {phase: canary, fraction: 1.0, min_time: 0, min_pairs: 100}
"""
)
# A candidate that fails at a canary step: the rules file enters it as after a shadow step at 100%
# (every primary call shadowed), and the plan starts at the canary phase.
FAILING_CANARY_RULES = CANARY_RULES.replace("sample_rate: 0.0 ", "sample_rate: 1.0 ")
CANARY_ONLY_PLAN = """\
steps:
  - {phase: canary, fraction: 0.25, min_time: 0, min_pairs: 100}
  - {phase: canary, fraction: 1.0, min_time: 0, min_pairs: 100}
"""
FAILED = "HTTP 500"  # the model of a call answered by an error (the canary's errors are the user's)
CANARY_BATCHES = 40  # twice what the walk needs: at canary 25%, 100 canary calls take 100 / (80 × 3/4 × 1/4) ≈ 7


def _user_of(i: int) -> str | None:
    """The caller of request ``i``: every 4th has no key, the others cycle through ``POOL``."""
    return None if i % 4 == 3 else POOL[(3 * (i // 4) + i % 4) % len(POOL)]


class App:
    """The application: the real openai client, shadowed by the rules file, spans into the store."""

    def __init__(self, server: str, rules: Path, store: Store, keyed: bool = False) -> None:
        self.keyed = keyed  # send a `user` field (``_user_of``)
        self.source = RulesSource(rules)  # checks the file once a second, as in every application
        self.scheduler = Scheduler(workers=64, max_pending=256)
        self.provider = TracerProvider()
        self.provider.add_span_processor(BatchSpanProcessor(DuckDBSpanExporter(store=store)))
        self.instrumentor = OpenAIShadowInstrumentor()
        self.instrumentor.instrument(rules=self.source, tracer_provider=self.provider, scheduler=self.scheduler)
        self.client = openai.OpenAI(base_url=server, api_key="test-key", max_retries=0)
        self.users = ThreadPoolExecutor(USERS, thread_name_prefix="e2e-user")
        self.prompts = itertools.count()

    def _call(self, i: int) -> tuple[str | None, str, str]:
        """(the caller, the model that answered, the answer) of request ``i``."""
        user = _user_of(i) if self.keyed else None
        try:
            response = self.client.chat.completions.create(
                model=PRIMARY,
                messages=[{"role": "user", "content": f"Question {i}: how do I reset my password?"}],
                user=openai.omit if user is None else user,  # no key: the SDK sends no `user` field
            )
        except openai.InternalServerError:
            if not self.keyed:  # without a canary every answer is the primary's, which never fails
                raise
            return user, FAILED, FAILED
        return user, response.model, response.choices[0].message.content or ""

    def serve(self, calls: int) -> list[tuple[str | None, str]]:
        """``calls`` user requests from ``USERS`` threads; then every candidate has finished and every span is stored.

        Returns (the caller, the model that answered) of each request.
        """
        answers = list(self.users.map(self._call, [next(self.prompts) for _ in range(calls)]))
        assert all(text for _, _, text in answers), "a call returned no answer"
        assert self.scheduler.flush(60), "candidates still running after 60 s"
        assert self.provider.force_flush(60_000), "spans not exported after 60 s"
        return [(user, model) for user, model, _ in answers]

    def sees(self, sample_rate: float, canary: float | None = None, timeout: float = 10.0) -> None:
        """Wait until the hot reload has picked up ``sample_rate`` (and ``canary.fraction``), within about a second."""
        deadline = time.monotonic() + timeout

        def now() -> tuple[float, float | None]:
            rule = self.source.rules.rules[0]
            return rule.sample_rate, None if canary is None or rule.canary is None else rule.canary.fraction

        while (found := now()) != (sample_rate, canary):
            assert time.monotonic() < deadline, f"the application still reads {found} after {timeout} s"
            time.sleep(0.05)

    def close(self) -> None:
        self.users.shutdown()
        self.instrumentor.uninstrument()
        self.scheduler.shutdown(10)
        self.provider.shutdown()  # the exporter leaves the store open: the test closes it
        self.client.close()
        self.source.close()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The simulated models' OpenAI URL."""
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, json.dumps(MODELS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), f"the model server did not start (printed {url!r})"
        yield url
    finally:
        process.stdin.close()
        process.wait(timeout=30)
        process.stdout.close()


def _setup(tmp_path: Path, candidate: str, template: str = RULES) -> tuple[Path, Path, str]:
    """The rules file, the database path and the thresholds file of one run."""
    rules, gates = tmp_path / "shadow.yaml", tmp_path / "gates.yaml"
    rules.write_text(template.replace("CANDIDATE", candidate))
    gates.write_text(GATES)
    return rules, tmp_path / "shadow.duckdb", str(gates)


def _ramp(store: Store, rules: Path, gates: str, plan: str = PLAN) -> Ramp:
    """What ``otel-shadow rollout --plan plan.yaml --thresholds gates.yaml`` builds."""
    thresholds = load_watch_config(gates).thresholds
    return Ramp(store, rules, parse_plan(plan, "plan.yaml"), parse_rules, thresholds=thresholds)


def _sampled_out_share(store: Store, since: dt.datetime, until: dt.datetime | None) -> float:
    """Of the rule's primary calls in [since, until), the share its sample rate left unshadowed."""
    rows = store.query(
        "SELECT avg(CASE WHEN coalesce(drop_reasons, '') LIKE '%sampling%' THEN 1.0 ELSE 0.0 END), count(*) "
        "FROM shadow_runs WHERE experiment = ? AND role = 'primary' AND start_time >= ?"
        + ("" if until is None else " AND start_time < ?"),
        [RULE, since] + ([] if until is None else [until]),
    ).rows
    share, count = rows[0]
    assert count >= BATCH, f"only {count} primary calls between {since} and {until}"
    return float(share)


def _moves(store: Store) -> list[tuple[Any, ...]]:
    """(moved_at, action, phase, fraction, status) of each move of the rule's plan."""
    return store.query(
        "SELECT moved_at, action, phase, fraction, status FROM rollout_history WHERE rule = ? ORDER BY seq", [RULE]
    ).rows


def test_a_good_candidate_walks_the_plan_to_100_percent_through_the_rules_file(
    tmp_path: Path, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules, db, gates = _setup(tmp_path, "e2e-good")
    monkeypatch.setenv("OTEL_SHADOW_WEBHOOK_SECRET", SECRET)
    receiver = Receiver()
    outcomes: list[Outcome] = []
    try:
        with Store.open(db) as store:
            app = App(server, rules, store)
            try:
                ramp = _ramp(store, rules, gates)
                outcomes.append(ramp.advance())  # start: shadow 50%
                app.sees(0.5)
                for _ in range(MAX_BATCHES):
                    app.serve(BATCH)
                    outcomes.append(ramp.advance())
                    if outcomes[-1].action == "advance":
                        app.sees(1.0)
                    elif outcomes[-1].action != "hold":
                        break
                assert outcomes[-1].action == "complete", [o.message for o in outcomes]
                quiet = make_watch(gates, receiver.url).check(store)
                moves = _moves(store)
                at_half = _sampled_out_share(store, moves[0][0], moves[1][0])
                at_full = _sampled_out_share(store, moves[1][0], None)
            finally:
                app.close()
    finally:
        receiver.close()
    assert [o.action for o in outcomes if o.action != "hold"] == ["start", "advance", "complete"]
    assert all(o.verdict == "PASS" and (o.pairs or 0) >= 100 for o in outcomes if o.action in ("advance", "complete"))
    assert [m[1:] for m in moves] == [
        ("start", "shadow", 0.5, "active"),
        ("advance", "shadow", 1.0, "active"),
        ("complete", "shadow", 1.0, "complete"),
    ]
    assert parse_rules(rules.read_text()).rules[0].sample_rate == 1.0  # the last step stays applied
    # the running application followed the file: about half its calls shadowed at 50%, all at 100%
    assert 0.25 < at_half < 0.75, at_half
    assert at_full == 0.0
    assert quiet == [] and receiver.posts == []  # a good candidate pages nobody


def _canary_calls(store: Store, since: dt.datetime, until: dt.datetime) -> int:
    """The rule's calls in [since, until) recorded with the role ``canary``."""
    rows = store.query(
        "SELECT count(*) FROM shadow_runs WHERE experiment = ? AND role = 'canary' AND start_time >= ? AND start_time < ?",
        [RULE, since, until],
    ).rows
    return int(rows[0][0])


def test_a_good_candidate_walks_shadow_then_canary_steps_to_all_users_sticky_per_user(
    tmp_path: Path, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules, db, gates = _setup(tmp_path, "e2e-good", CANARY_RULES)
    monkeypatch.setenv("OTEL_SHADOW_WEBHOOK_SECRET", SECRET)
    receiver = Receiver()
    outcomes: list[Outcome] = []
    served: dict[str, list[tuple[str | None, str]]] = {}  # step -> (caller, model that answered) of its calls
    try:
        with Store.open(db) as store:
            app = App(server, rules, store, keyed=True)
            try:
                ramp = _ramp(store, rules, gates, CANARY_PLAN)
                outcomes.append(ramp.advance())  # start: shadow 50%
                for _ in range(CANARY_BATCHES):
                    index = outcomes[-1].step
                    step = ramp.plan.steps[index]
                    shadow = ramp.plan.shadow_fraction_at(index)
                    assert shadow is not None
                    app.sees(shadow, step.fraction if step.phase == "canary" else 0.0)
                    served.setdefault(step.describe(), []).extend(app.serve(BATCH))
                    outcomes.append(ramp.advance())
                    if outcomes[-1].action not in ("hold", "advance"):
                        break
                assert outcomes[-1].action == "complete", [o.message for o in outcomes]
                quiet = make_watch(gates, receiver.url).check(store)
                moves = _moves(store)
                spans = [_canary_calls(store, moves[i][0], moves[i + 1][0]) for i in range(len(moves) - 1)]
            finally:
                app.close()
    finally:
        receiver.close()
    assert [o.action for o in outcomes if o.action != "hold"] == ["start", "advance", "advance", "advance", "complete"]
    assert [m[1:] for m in moves] == [
        ("start", "shadow", 0.5, "active"),
        ("advance", "shadow", 1.0, "active"),
        ("advance", "canary", 0.25, "active"),
        ("advance", "canary", 1.0, "active"),
        ("complete", "canary", 1.0, "complete"),
    ]
    # each move rests on a PASS with enough data: pairs at a shadow step, canary calls at a canary step
    assert all(o.verdict == "PASS" and (o.pairs or 0) >= 100 for o in outcomes if o.action in ("advance", "complete"))
    final = parse_rules(rules.read_text()).rules[0]  # the last step stays applied
    assert final.canary is not None and (final.sample_rate, final.canary.fraction) == (1.0, 1.0)

    def answered(step: str, keyed: bool) -> list[tuple[str | None, str]]:
        return [(user, model) for user, model in served[step] if (user is not None) == keyed]

    # shadow steps: the candidate runs in the background only, every user gets the primary's answer
    assert {model for step in ("shadow 50%", "shadow 100%") for _, model in served[step]} == {PRIMARY}
    assert spans[:2] == [0, 0]
    # canary 25%: a sticky quarter of the users gets the candidate's answer on every call, the rest never
    models_of: dict[str | None, set[str]] = {}
    for user, model in answered("canary 25%", keyed=True):
        models_of.setdefault(user, set()).add(model)
    assert all(len(models) == 1 for models in models_of.values()), models_of  # one config per user, every call
    in_canary_25 = {user for user, models in models_of.items() if models == {"e2e-good"}}
    assert in_canary_25 == {u for u in POOL if in_canary(RULE, 0.25, "user", {"user": u})}  # the SDK's own rule
    keyed_25 = answered("canary 25%", keyed=True)
    share = sum(model == "e2e-good" for _, model in keyed_25) / len(keyed_25)
    assert 0.15 < share < 0.4, share
    # canary 100%: every keyed call is the candidate's; a call without a key always gets the primary
    assert {model for _, model in answered("canary 100%", keyed=True)} == {"e2e-good"}
    assert {model for step in ("canary 25%", "canary 100%") for _, model in answered(step, keyed=False)} == {PRIMARY}
    # the store saw what the users saw: one span with the role canary per call the candidate answered
    assert spans[2:] == [
        sum(model == "e2e-good" for _, model in served[step]) for step in ("canary 25%", "canary 100%")
    ]
    assert quiet == [] and receiver.posts == []  # a good candidate pages nobody


def test_a_candidate_failing_at_a_canary_step_is_rolled_back_to_no_user_and_alerts_once(
    tmp_path: Path, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules, db, gates = _setup(tmp_path, "e2e-erring", FAILING_CANARY_RULES)
    monkeypatch.setenv("OTEL_SHADOW_WEBHOOK_SECRET", SECRET)
    receiver = Receiver()
    outcomes: list[Outcome] = []
    raised: list[int] = []  # alerts raised by each check
    at_canary: list[tuple[str | None, str]] = []
    try:
        with Store.open(db) as store:
            app = App(server, rules, store, keyed=True)
            try:
                ramp = _ramp(store, rules, gates, CANARY_ONLY_PLAN)
                watch = make_watch(gates, receiver.url)
                outcomes.append(ramp.advance())  # start: canary 25%
                app.sees(1.0, 0.25)
                for batch in range(MAX_BATCHES):
                    at_canary += app.serve(BATCH)
                    outcomes.append(ramp.advance())
                    raised.append(len(watch.check(store)))
                    if outcomes[-1].action != "hold":
                        break
                    assert batch < MAX_BATCHES - 1, outcomes[-1].message
                app.sees(1.0, 0.0)  # the rollback reaches the running application
                after = app.serve(BATCH)
                raised.append(len(watch.check(store)))
                moves = _moves(store)
            finally:
                app.close()
    finally:
        receiver.close()
    assert [o.action for o in outcomes if o.action != "hold"] == ["start", "rollback"], [o.message for o in outcomes]
    # the shadow pairs, still made at a canary step, decide first: the unpaired canary verdict needs
    # `min_pairs` calls in each cohort before its interval can FAIL, a quarter of the users far more calls
    assert outcomes[-1].verdict == "FAIL" and "shadow pairs: error rate" in outcomes[-1].message, outcomes[-1].message
    assert [(m[1], m[4]) for m in moves] == [("start", "active"), ("rollback", "rolled_back")]
    assert moves[0][2:4] == ("canary", 0.25)
    final = parse_rules(rules.read_text()).rules[0]
    assert final.canary is not None and final.canary.fraction == 0.0  # nobody is served the candidate
    # at 25% the candidate's errors reached its users, and only them; after the rollback nobody's
    canary_users = {u for u in POOL if in_canary(RULE, 0.25, "user", {"user": u})}
    failed = {user for user, model in at_canary if model == FAILED}
    assert failed and failed <= canary_users, (failed, canary_users)
    assert {model for _, model in after} == {PRIMARY}
    # exactly one alert, the verdict turning FAIL, however many checks ran
    assert sum(raised) == 1, (raised, [o.message for o in outcomes])
    assert len(receiver.posts) == 1, [body["alert"]["message"] for _, body in receiver.posts]
    headers, body = receiver.posts[0]
    assert headers.get(SECRET_HEADER) == SECRET
    assert (body["alert"]["experiment"], body["alert"]["kind"], body["alert"]["state"]) == (RULE, "verdict", "FAIL")


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [("e2e-erring", "error rate"), ("e2e-slow", "p95 latency")],
    ids=["more_errors", "slower"],
)
def test_a_bad_candidate_is_rolled_back_and_the_webhook_gets_exactly_one_alert(
    tmp_path: Path, server: str, monkeypatch: pytest.MonkeyPatch, candidate: str, reason: str
) -> None:
    rules, db, gates = _setup(tmp_path, candidate)
    monkeypatch.setenv("OTEL_SHADOW_WEBHOOK_SECRET", SECRET)
    receiver = Receiver()
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    outcomes: list[Outcome] = []
    raised: list[int] = []  # alerts raised by each check
    try:
        with Store.open(db) as store:
            app = App(server, rules, store)
            try:
                ramp = _ramp(store, rules, gates)
                watch = make_watch(gates, receiver.url, meter_provider=meters)
                outcomes.append(ramp.advance())
                app.sees(0.5)
                for batch in range(MAX_BATCHES + 1):
                    app.serve(BATCH)
                    outcomes.append(ramp.advance())
                    raised.append(len(watch.check(store)))  # the watch runs beside the ramp, at every batch
                    if outcomes[-1].action == "none":  # a batch after the rollback: the application is
                        break  # still shadowed at the first step's rate, and still watched
                    assert batch < MAX_BATCHES and outcomes[-1].action in ("hold", "rollback"), outcomes[-1].message
                moves = _moves(store)
            finally:
                app.close()
        # a restarted watch, as a process (cron, CI), reads the states back and posts nothing new
        cli = subprocess.run(
            [sys.executable, "-m", "otel_shadow", "watch", "--db", str(db), "--thresholds", gates]
            + ["--webhook", receiver.url, "--once"],
            capture_output=True,
            text=True,
            timeout=120,
            env=dict(os.environ),
        )
        metrics = reader.get_metrics_data()
    finally:
        receiver.close()
        meters.shutdown()
    assert cli.returncode == 0, cli.stderr
    rollback = next((o for o in outcomes if o.action == "rollback"), None)
    assert rollback is not None, [o.message for o in outcomes]
    assert rollback.verdict == "FAIL" and reason in rollback.message, rollback.message
    assert [o.action for o in outcomes if o.action != "hold"] == ["start", "rollback", "none"]
    assert [m[1:] for m in moves] == [("start", "shadow", 0.5, "active"), ("rollback", "shadow", 0.5, "rolled_back")]
    assert parse_rules(rules.read_text()).rules[0].sample_rate == 0.5  # the first step's rate
    # exactly one alert, the verdict turning FAIL, however many checks ran: posted once, with the secret
    assert sum(raised) == 1, (raised, [o.message for o in outcomes])
    assert len(receiver.posts) == 1, [body["alert"]["message"] for _, body in receiver.posts]
    headers, body = receiver.posts[0]
    assert headers.get(SECRET_HEADER) == SECRET
    alert: dict[str, Any] = body["alert"]
    assert (alert["experiment"], alert["kind"], alert["state"]) == (RULE, "verdict", "FAIL")
    assert body["candidate"]["verdict"] == "FAIL"
    assert any(reason in r for r in body["candidate"]["reasons"]), body["candidate"]["reasons"]
    with Store.open(db, read_only=True) as store:
        assert store.query("SELECT kind, state, webhook FROM shadow_alert_log").rows == [
            ("verdict", "FAIL", "delivered")
        ]
    points = [
        (point.value, dict(point.attributes or {}).get("shadow.alert.state"))
        for resource in (metrics.resource_metrics if metrics else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "shadow.alerts"
        for point in metric.data.data_points
        if isinstance(point, NumberDataPoint)
    ]
    assert points == [(1, "FAIL")]
