"""Comparison metrics: how a candidate's output differs from its primary's, computed at the edge.

A candidate's worker holds both outputs in memory when the candidate finishes, so the cheap
comparisons are made there, in the background, and recorded on the candidate span as
``shadow.metric.<name>`` (numbers and booleans). They reach any OTLP backend and the store, and
no prompt or output has to be stored to compare. Replicates get the same metrics against the
same primary: that is the noise floor the verdict reads the candidate against.

    Shadow(configs, metrics=["normalized_match", "similarity", {"key_fields": ["answer", "items[0].id"]}])
    Shadow(configs, metrics=[*DEFAULT_METRICS, {"cites_source": lambda primary, candidate: "http" in candidate}])

A metric is ``f(primary_text, candidate_text) -> bool | int | float | None`` (``None``: not
applicable, nothing recorded), or a mapping of several named values. One that raises is counted
(``shadow.metric.errors``) and logged at debug level, never felt by the primary or the candidate.
The same ``Comparison`` serves decorated experiments and the rules file of zero-code shadowing.
"""

from __future__ import annotations

import json
import logging
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rapidfuzz.distance import Indel

from .. import attributes as A
from ..errors import ConfigError
from .content import canonical_text

__all__ = ["DEFAULT_METRICS", "BUILTIN_METRICS", "Comparison", "MetricFn", "normalize_text"]

logger = logging.getLogger("otel_shadow")

MetricValue = bool | int | float | None
MetricFn = Callable[[str, str], MetricValue | Mapping[str, MetricValue]]

# Texts longer than this are compared on their first MAX_COMPARED_CHARS characters: the metrics
# stay cheap (similarity is quadratic in the worst case) whatever a model returns.
MAX_COMPARED_CHARS = 20_000

_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """The text with case, Unicode forms, punctuation and runs of whitespace made irrelevant."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return _SPACES.sub(" ", text).strip()


def _normalized_match(primary: str, candidate: str) -> bool:
    return normalize_text(primary) == normalize_text(candidate)


def _similarity(primary: str, candidate: str) -> float:
    """Normalized Indel similarity (1.0: identical after normalization; 0.0: nothing in common)."""
    return round(float(Indel.normalized_similarity(normalize_text(primary), normalize_text(candidate))), 6)


def _json_of(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except (ValueError, RecursionError):
        return False, None


def _json_valid(primary: str, candidate: str) -> Mapping[str, MetricValue]:
    return {"json_valid": _json_of(candidate)[0], "primary_json_valid": _json_of(primary)[0]}


def _length_ratio(primary: str, candidate: str) -> float | None:
    return round(len(candidate) / len(primary), 6) if primary else None


BUILTIN_METRICS: dict[str, MetricFn] = {
    "normalized_match": _normalized_match,
    "similarity": _similarity,
    "json_valid": _json_valid,
    "length_ratio": _length_ratio,
}
DEFAULT_METRICS: tuple[str, ...] = ("normalized_match", "similarity", "json_valid", "length_ratio")

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _parse_path(path: str) -> tuple[str | int, ...]:
    """``"items[0].id"`` → ``("items", 0, "id")`` (a leading ``$.`` is allowed)."""
    text = path[2:] if path.startswith("$.") else path
    parts: list[str | int] = []
    position = 0
    for match in _PATH_PART.finditer(text):
        gap = text[position : match.start()]
        if gap not in ("", "."):
            break
        parts.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        position = match.end()
    if not parts or position != len(text):
        raise ConfigError(
            f"key field {path!r} is not a JSON path; write dotted keys and [index], e.g. 'answer' or 'items[0].id'"
        )
    return tuple(parts)


_MISSING = object()


def _lookup(document: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        if isinstance(part, int) and isinstance(document, list) and -len(document) <= part < len(document):
            document = document[part]
        elif isinstance(part, str) and isinstance(document, dict) and part in document:
            document = document[part]
        else:
            return _MISSING
    return document


def key_fields(paths: Iterable[str]) -> MetricFn:
    """Agreement of named fields of JSON outputs: ``field.<path>`` per path and ``key_fields_match``
    (the share that agree). Nothing is recorded when the primary's output is not JSON."""
    parsed = [(path, _parse_path(path)) for path in paths]
    if not parsed:
        raise ConfigError("key_fields needs at least one JSON path, e.g. {'key_fields': ['answer']}")

    def compare(primary: str, candidate: str) -> Mapping[str, MetricValue]:
        ok, p_doc = _json_of(primary)
        if not ok:
            return {}
        c_ok, c_doc = _json_of(candidate)
        values: dict[str, MetricValue] = {}
        for path, parts in parsed:
            expected = _lookup(p_doc, parts)
            if expected is _MISSING:
                continue  # the primary itself lacks the field: no evidence either way
            values[f"field.{path}"] = c_ok and _lookup(c_doc, parts) == expected
        if values:
            values["key_fields_match"] = sum(1 for v in values.values() if v) / len(values)
        return values

    return compare


@dataclass(frozen=True, slots=True)
class Comparison:
    """The metrics of one experiment or rule, by name, in the order they were given."""

    metrics: tuple[tuple[str, MetricFn], ...]

    @classmethod
    def of(cls, spec: Iterable[Any] | None, where: str = "metrics") -> Comparison:
        """Build from what a user writes: ``None`` (the defaults), or a list of builtin names,
        ``{"key_fields": [paths]}``, ``{"name": function}`` and functions (named by ``__name__``)."""
        if spec is None:
            spec = DEFAULT_METRICS
        if isinstance(spec, str | bytes) or not isinstance(spec, Iterable):
            raise ConfigError(f"{where}: expected a list of metrics, got {type(spec).__name__}")
        metrics: list[tuple[str, MetricFn]] = []
        for item in spec:
            if isinstance(item, str):
                fn = BUILTIN_METRICS.get(item)
                if fn is None:
                    raise ConfigError(
                        f"{where}: unknown metric {item!r}; built in are {sorted(BUILTIN_METRICS)}, "
                        "plus {'key_fields': [...]} and your own functions"
                    )
                metrics.append((item, fn))
            elif isinstance(item, Mapping):
                for name, value in item.items():
                    if name == "key_fields":
                        if isinstance(value, str) or not isinstance(value, Iterable):
                            raise ConfigError(f"{where}: key_fields takes a list of JSON paths, got {value!r}")
                        metrics.append(("key_fields", key_fields(value)))
                    elif callable(value):
                        metrics.append((_checked_name(str(name), where), value))
                    else:
                        raise ConfigError(f"{where}: metric {name!r} must be a function (primary, candidate) -> value")
            elif callable(item):
                metrics.append((_checked_name(getattr(item, "__name__", ""), where), item))
            else:
                raise ConfigError(f"{where}: cannot use {item!r} as a metric")
        names = [name for name, _ in metrics]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"{where}: metric(s) {repeated} given twice")
        return cls(tuple(metrics))

    def __bool__(self) -> bool:
        return bool(self.metrics)

    def attributes(self, primary: Any, candidate: Any, on_error: Callable[[str], None] | None = None) -> dict[str, Any]:
        """``shadow.metric.<name>`` attributes comparing two outputs (each metric isolated)."""
        out: dict[str, Any] = {}
        if not self.metrics:
            return out
        p_text = _text(primary)
        c_text = _text(candidate)
        for name, fn in self.metrics:
            try:
                value = fn(p_text, c_text)
                if isinstance(value, Mapping):
                    for key, sub in value.items():
                        _put(out, str(key), sub)
                else:
                    _put(out, name, value)
            except Exception:
                logger.debug("otel-shadow: metric %r raised; not recorded", name, exc_info=True)
                if on_error is not None:
                    on_error(name)
        return out


def _text(value: Any) -> str:
    text = value if type(value) is str else canonical_text(value)
    return text[:MAX_COMPARED_CHARS]


def _put(out: dict[str, Any], name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        out[A.SHADOW_METRIC_PREFIX + name] = value
    elif isinstance(value, int | float) and math.isfinite(value):
        out[A.SHADOW_METRIC_PREFIX + name] = float(value) if not isinstance(value, int) else value
    else:
        raise TypeError(f"metric {name!r} returned {type(value).__name__}; return a bool, int, float or None")


def _checked_name(name: str, where: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name or "") or name == "<lambda>":
        raise ConfigError(
            f"{where}: a metric function needs a name (letters, digits, _ and .); give it as {{'my_metric': function}}"
        )
    return name
