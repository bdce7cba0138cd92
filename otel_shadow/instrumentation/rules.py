"""The shadow rules file (``OTEL_SHADOW_CONFIG``): which LLM calls get candidates, and which.

    rules:
      - name: chat-to-mini
        match: {provider: openai, model: "gpt-4o*", operation: chat}
        sample_rate: 0.2
        timeout: 20
        max_concurrency: 4
        budget: {tokens_per_hour: 200000}
        replicate_rate: 0.1          # re-run the primary's own request: the noise floor
        metrics: [normalized_match, similarity, {key_fields: [answer]}]
        candidates:
          - {model: gpt-4o-mini, temperature: 0.2}
          - {provider: anthropic, model: claude-haiku, base_url: "http://127.0.0.1:8099", max_tokens: 512}

A bad file is refused with the line and the field (``shadow.yaml:7: rules[0].sample_rate: Input
should be less than or equal to 1``). At run time a background thread re-reads the file when it
changes (checked once a second) and swaps the parsed rules in one assignment; a user's call only
reads the current rules. A broken edit keeps the last good rules and says so once.

The file is hostile input, read inside the user's application: it is refused beyond
``MAX_RULES_BYTES``, when it is not UTF-8, when it nests deeper than ``MAX_DEPTH`` or uses YAML
aliases (``*name``: the format never needs them, and nested aliases expand exponentially: the
"billion laughs"). Error messages quote values in a bounded form, never the expanded document.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import reprlib
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..core.comparison import Comparison
from ..errors import ConfigError
from ..pricing import DEFAULT_PRICES, PriceTable, load_prices
from ..safe_yaml import MAX_DEPTH, bounded, load_yaml, read_text_file

__all__ = [
    "MAX_DEPTH",
    "MAX_RULES_BYTES",
    "Budget",
    "CandidateRule",
    "Canary",
    "Match",
    "Rule",
    "RuleState",
    "Rules",
    "RulesSource",
    "load_rules",
    "parse_rules",
    "shared_source",
    "validate_rules",
]

logger = logging.getLogger("otel_shadow")

Provider = Literal["openai", "anthropic"]
Operation = Literal["chat", "responses", "messages"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    """Which calls a rule applies to; every given field must match."""

    provider: Provider | None = None
    model: str | None = None  # exact name or glob ("gpt-4o*")
    operation: Operation | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)  # request fields, dotted: {"metadata.feature": "search"}


class CandidateRule(_Strict):
    """A candidate: overrides applied to a copy of the user's request."""

    name: str | None = None
    model: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    system_prompt: str | None = None
    provider: Provider | None = None  # another provider: the request is translated
    base_url: str | None = None  # another endpoint (the user's client settings otherwise)
    api_key_env: str | None = None  # environment variable holding the key for base_url/provider
    extra: dict[str, Any] = Field(default_factory=dict)  # any other request field


class Price(_Strict):
    input: float = Field(ge=0)  # per million tokens
    output: float = Field(ge=0)


class Budget(_Strict):
    tokens_per_hour: int | None = Field(default=None, gt=0)
    cost_per_hour: float | None = Field(default=None, gt=0)
    # model → price per million tokens, over the shared table (otel_shadow.pricing, OTEL_SHADOW_PRICES)
    prices: dict[str, Price] = Field(default_factory=dict)

    def cost(self, model: str | None, input_tokens: int | None, output_tokens: int | None) -> float:
        """What a candidate call cost: the rule's own price for the model, else the shared table's."""
        own = self.prices.get(model) if model is not None else None
        if own is not None:
            return ((input_tokens or 0) * own.input + (output_tokens or 0) * own.output) / 1e6
        return price_table().cost(model, input_tokens, output_tokens) or 0.0


_PRICES: list[PriceTable] = []


def price_table() -> PriceTable:
    """The shared price table, read once per process (a bad OTEL_SHADOW_PRICES file: the defaults, and a warning)."""
    if not _PRICES:
        try:
            table = load_prices()
        except ConfigError as exc:
            logger.warning("otel-shadow: using the shipped prices; %s", exc)
            table = PriceTable(DEFAULT_PRICES)
        _PRICES.append(table)
    return _PRICES[0]


MetricSpec = str | dict[str, list[str]]

_CANARY_KEY = re.compile(r"^(user|baggage:[A-Za-z0-9_.-]{1,128}|request:[A-Za-z0-9_.-]{1,128})$")


class Canary(_Strict):
    """A sticky fraction of users served the candidate's answer (docs/rollout.md).

    A caller in the cohort (``core.canary``) is answered by the rule's FIRST candidate
    (``canary_call``). A rule without this block never serves a candidate's answer, whatever a
    plan says.
    """

    fraction: float = Field(ge=0, le=1)
    # what makes a user sticky: "user" (the request's user field), "baggage:<name>", "request:<dotted.field>"
    key: str

    @field_validator("key")
    @classmethod
    def _known_key(cls, value: str) -> str:
        if not _CANARY_KEY.match(value):
            raise ValueError('must be "user", "baggage:<name>" or "request:<field>" (letters, digits, _ . -)')
        return value


class Rule(_Strict):
    name: str
    match: Match = Field(default_factory=Match)
    candidates: list[CandidateRule] = Field(min_length=1)
    sample_rate: float = Field(default=1.0, ge=0, le=1)
    timeout: float = Field(default=30.0, gt=0)
    max_concurrency: int = Field(default=4, gt=0)
    max_retries: int = Field(
        default=0, ge=0, le=5
    )  # the candidate's own retries (the user's client settings are not used)
    budget: Budget | None = None
    replicate_rate: float = Field(default=0.0, ge=0, le=1)  # sampled calls that also re-run the primary's request
    metrics: list[MetricSpec] | None = None  # comparison metrics (core.comparison); None: the defaults
    canary: Canary | None = None  # opt-in: serve the candidate's answer to a sticky fraction of users
    # time-bound (core.limits): past any, no candidates and the primary records drop reason ``expired``
    ends_at: AwareDatetime | None = None  # an ISO 8601 time with its offset: every process ends at once
    max_duration: float | None = Field(default=None, gt=0)  # seconds from when the rule first loaded
    max_calls: int | None = Field(default=None, gt=0)  # calls that get candidates

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: list[MetricSpec] | None) -> list[MetricSpec] | None:
        Comparison.of(value, "metrics")  # a ConfigError is a ValueError: pydantic reports it with the line
        return value

    @model_validator(mode="after")
    def _canary_answerable(self) -> Rule:
        # the canary's answer goes to the caller's code, which reads its own SDK's type only
        first = self.candidates[0].provider
        if self.canary is not None and first is not None and first != self.match.provider:
            raise ValueError(
                f"canary: candidates[0] is on provider {first!r}, whose answer the caller's SDK cannot read; "
                f"serve a candidate of the primary's provider first (drop its provider:, or set match.provider: {first})"
            )
        return self

    def comparison(self) -> Comparison:
        return Comparison.of(self.metrics, f"rule {self.name!r} metrics")

    def matches(self, provider: str, operation: str, model: str | None, request: dict[str, Any]) -> bool:
        m = self.match
        if m.provider is not None and m.provider != provider:
            return False
        if m.operation is not None and m.operation != operation:
            return False
        if m.model is not None and not fnmatch.fnmatchcase(model or "", m.model):
            return False
        for path, expected in m.attributes.items():
            node: Any = request
            for part in path.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node != expected:
                return False
        return True


class Rules(_Strict):
    version: Literal[1] = 1
    rules: list[Rule] = Field(default_factory=list)

    def find(self, provider: str, operation: str, model: str | None, request: dict[str, Any]) -> Rule | None:
        """The first rule that matches, or None."""
        for rule in self.rules:
            if rule.matches(provider, operation, model, request):
                return rule
        return None


MAX_RULES_BYTES = 1 << 20  # a rules file is a few KiB; a larger one is a mistake or an attack

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60
_short.maxlevel = 2
_short.maxdict = _short.maxlist = 4


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    node = value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def parse_rules(text: str, source: str = "<rules>") -> Rules:
    """Validate a rules document; errors name the file, the line and the field."""
    if len(text) > MAX_RULES_BYTES:
        raise ConfigError(f"{source}: {len(text)} characters; a rules file is limited to {MAX_RULES_BYTES} bytes")
    root, data = load_yaml(text, source, "a rules file")
    return validate_rules(data, source, root)


def validate_rules(data: Any, source: str = "rules", root: yaml.Node | None = None) -> Rules:
    """Validate already-loaded rules (a mapping); errors name the source, the line if known, and the field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        where = f"{source}:1" if root is not None else source
        raise ConfigError(f"{where}: the rules must be a mapping with a `rules:` list, not a {type(data).__name__}")
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:5]:
            loc = tuple(err["loc"])
            field = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))
            value = (
                f" (value {_short.repr(err['input'])})"
                if err.get("type") not in ("missing", "extra_forbidden") and "input" in err
                else ""
            )
            message = "unknown field" if err.get("type") == "extra_forbidden" else err["msg"]
            where = f"{source}:{_line_of(root, loc) or 1}" if root is not None else source
            problems.append(f"{where}: {field}: {message}{value}")
        raise ConfigError(bounded("; ".join(problems))) from None


def load_rules(path: str | os.PathLike[str]) -> Rules:
    path = Path(path)
    return parse_rules(read_text_file(path, MAX_RULES_BYTES, "rules file"), str(path))


class RulesSource:
    """The rules of a file, re-read in the background when it changes; a broken edit keeps the last good rules.

    The user's call only reads ``rules`` (one attribute read): parsing never runs on the caller's
    thread after start-up. A daemon thread stats the file every ``check_interval_s`` and swaps in
    the newly parsed rules; it holds the source weakly, so a dropped source lets it exit. With
    ``check_interval_s=0`` there is no thread: ``check()`` is the caller's to run.
    """

    def __init__(self, path: str | os.PathLike[str], check_interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.check_interval_s = check_interval_s
        self._mtime = self._stat()
        self._rules = load_rules(self.path)  # a bad file at start-up is a ConfigError for the caller to report
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._watcher_pid = 0
        self.watch()
        _SOURCES.add(self)

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
            return (st.st_mtime_ns, st.st_size)
        except OSError:
            return None

    @property
    def rules(self) -> Rules:
        return self._rules

    def watch(self) -> None:
        """Start the background watcher (again in a forked child, whose threads did not survive)."""
        if self.check_interval_s <= 0 or self._stop.is_set():
            return
        if self._watcher is not None and self._watcher_pid == os.getpid() and self._watcher.is_alive():
            return
        if self._watcher_pid != os.getpid():  # a forked child: the parent's watcher may have held the lock
            self._lock = threading.Lock()
        self._watcher_pid = os.getpid()
        self._watcher = threading.Thread(
            target=_watch,
            args=(weakref.ref(self), self._stop, self.check_interval_s),
            name="otel-shadow-rules",
            daemon=True,
        )
        self._watcher.start()

    def close(self) -> None:
        """Stop watching the file."""
        self._stop.set()

    def check(self) -> bool:
        """Re-read the file if it changed since the last check; True when new rules were swapped in."""
        with self._lock:
            stamp = self._stat()
            if stamp == self._mtime:
                return False
            self._mtime = stamp
            try:
                rules = load_rules(self.path)
            except ConfigError as exc:
                if str(exc) != self.last_error:
                    logger.warning("otel-shadow: keeping the last good rules; the edited file is invalid: %s", exc)
                self.last_error = str(exc)
                return False
            self._rules = rules  # one assignment: a reader sees the old rules or the new ones
            self.last_error = None
            logger.info("otel-shadow: reloaded rules from %s (%d rules)", self.path, len(rules.rules))
            return True


def _watch(ref: weakref.ref[RulesSource], stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        source = ref()
        if source is None:
            return
        try:
            source.check()
        except Exception:  # the watcher never dies of a surprise; the last good rules stay
            logger.debug("otel-shadow: checking the rules file failed", exc_info=True)
        del source


_SOURCES: weakref.WeakSet[RulesSource] = weakref.WeakSet()
_SHARED: dict[Path, RulesSource] = {}
_SHARED_LOCK = threading.Lock()


def shared_source(path: str | os.PathLike[str]) -> RulesSource:
    """One ``RulesSource`` (one read, one watcher) per file, shared by the instrumentors using it."""
    key = Path(path).absolute()
    with _SHARED_LOCK:
        source = _SHARED.get(key)
        if source is None:
            source = _SHARED[key] = RulesSource(path)
        return source


def _rewatch_after_fork() -> None:
    for source in list(_SOURCES):
        try:
            source.watch()
        except Exception:  # a child that cannot start a thread keeps its rules, unwatched
            logger.debug("otel-shadow: the rules watcher did not restart after fork", exc_info=True)


if hasattr(os, "register_at_fork"):  # a forked worker (gunicorn, multiprocessing) keeps following edits
    os.register_at_fork(after_in_child=_rewatch_after_fork)


class RuleState:
    """Run-time state of one rule: its running candidates and its hourly token/cost budget."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.running = 0
        self._lock = threading.Lock()
        self._spent: deque[tuple[float, int, float]] = deque()  # (time, tokens, cost)
        self._tokens = 0
        self._cost = 0.0

    def _expire(self, now: float) -> None:
        while self._spent and now - self._spent[0][0] > 3600:
            _, tokens, cost = self._spent.popleft()
            self._tokens -= tokens
            self._cost -= cost

    def acquire(self) -> str | None:
        """Reserve a candidate slot; None, or the reason it cannot run (``budget``, ``queue_full``)."""
        budget = self.rule.budget
        with self._lock:
            if budget is not None:
                self._expire(time.monotonic())
                if budget.tokens_per_hour is not None and self._tokens >= budget.tokens_per_hour:
                    return "budget"
                if budget.cost_per_hour is not None and self._cost >= budget.cost_per_hour:
                    return "budget"
            if self.running >= self.rule.max_concurrency:
                return "queue_full"
            self.running += 1
        return None

    def release(self, model: str | None, input_tokens: int | None, output_tokens: int | None) -> None:
        tokens = (input_tokens or 0) + (output_tokens or 0)
        budget = self.rule.budget
        cost = budget.cost(model, input_tokens, output_tokens) if budget is not None and budget.cost_per_hour else 0.0
        with self._lock:
            self.running -= 1
            if tokens or cost:
                self._spent.append((time.monotonic(), tokens, cost))
                self._tokens += tokens
                self._cost += cost
