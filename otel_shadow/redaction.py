"""Redaction rules for captured prompts and outputs: one definition, used by the app and the collector.

The app side applies them to content before it reaches a span (``core.content.render_content``);
the collector applies the same rules at ingest to content that arrives unredacted from other SDKs
(``collector.redact``). Both find the rules file through ``OTEL_SHADOW_REDACT_RULES`` (the
collector also through ``--redact-rules``)::

    # redact.yaml
    rules:
      - builtin: email                 # alice@example.com → [email]
      - builtin: credit_card
      - pattern: 'CUST-[0-9]{6}'       # a Python regular expression
        replace: '[customer]'
        ignore_case: true
    attributes:                        # collector: more attribute keys that hold content
      - app.user_prompt
      - myapp.chat.*                   # a trailing * matches every key with that prefix

A rules file is hostile input like every file otel-shadow reads, and the collector runs its
patterns over text that arrives over a socket. So the file is bounded (bytes, rules, pattern
length), a pattern that can backtrack exponentially (a repeat inside a repeat, a backreference) is
refused when the file is loaded, and the replacement is literal text (no group references).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .environment_variables import OTEL_SHADOW_REDACT_RULES
from .errors import ConfigError

__all__ = [
    "BUILTINS",
    "MAX_RULES",
    "MAX_RULES_FILE_BYTES",
    "Redactor",
    "RedactionRules",
    "default_redactor",
    "load_redaction_rules",
    "parse_redaction_rules",
]

Redactor = Callable[[str], str]

MAX_RULES_FILE_BYTES = 256 * 2**10
MAX_RULES = 100
MAX_PATTERN_CHARS = 1000
MAX_REPLACEMENT_CHARS = 200
MAX_ATTRIBUTE_KEYS = 200
DEFAULT_REPLACEMENT = "[redacted]"

logger = logging.getLogger("otel_shadow")

# Built-in patterns: (pattern, replacement, substrings one of which a match contains). They follow
# the rules user patterns follow (no repeat or alternation inside a repeat); each starts with a
# lookbehind so that a match is tried at the start of a word only, and the substrings let a text
# that cannot match skip the pattern (Python's engine costs ~0.1 µs per character and pattern).
_DIGITS = tuple("0123456789")
BUILTINS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "email": (r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,24}", "[email]", ("@",)),
    "phone": (r"(?<![\w+])\+?[0-9][0-9 ().-]{7,18}[0-9](?!\w)", "[phone]", _DIGITS),
    "credit_card": (r"(?<!\d)[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{1,7}(?!\d)", "[card]", _DIGITS),
    "ipv4": (r"(?<![\d.])[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?![\d.])", "[ip]", (".",)),
    "api_key": (
        r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,200}|\bBearer [A-Za-z0-9._~+/=-]{16,2000}",
        "[secret]",
        ("k-", "Bearer "),
    ),
}
_RULE_KEYS = frozenset({"builtin", "pattern", "replace", "ignore_case", "name"})
_ATTRIBUTE_KEY = re.compile(r"[A-Za-z0-9_.:/-]{1,255}\*?")


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    pattern: re.Pattern[str]
    replacement: str
    hints: tuple[str, ...] = ()  # the pattern runs only on a text holding one of these (none: always)


@dataclass(frozen=True)
class RedactionRules:
    """Ordered regex rules (each applied to the result of the previous one) and extra content keys.

    Calling the rules redacts one text: ``RedactionRules(...)("mail alice@example.com")``.
    """

    rules: tuple[_Rule, ...] = ()
    attribute_keys: frozenset[str] = frozenset()  # exact keys
    attribute_prefixes: tuple[str, ...] = ()  # from keys written with a trailing *
    source: str = "<rules>"

    def __call__(self, text: str) -> str:
        for rule in self.rules:
            if not rule.hints or any(hint in text for hint in rule.hints):
                text = rule.pattern.sub(rule.replacement, text)
        return text

    def __len__(self) -> int:
        return len(self.rules)


def _check_backtracking(parsed: Any, where: str, inside_repeat: bool = False) -> None:
    """Refuse what makes Python's backtracking engine exponential: a repeat (more than once) or an
    alternation nested in a repeat, and backreferences. Everything else runs in time polynomial in
    the text's length, which the collector bounds."""
    import re._constants as c  # type: ignore[import-not-found]

    for op, av in parsed:
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            low, high, sub = av
            repeats = high is c.MAXREPEAT or high > 1
            if repeats and inside_repeat:
                raise ConfigError(
                    f"{where}: a repeat inside a repeat (such as (a+)+ or (\\.\\w+)*) can take exponential "
                    "time on hostile text; rewrite it without nesting, e.g. [\\w.]{1,64}"
                )
            _check_backtracking(sub, where, inside_repeat or repeats)
        elif op in (c.GROUPREF, c.GROUPREF_EXISTS):
            raise ConfigError(
                f"{where}: backreferences (\\1, (?P=name), (?(1)…)) are not allowed in redaction patterns"
            )
        elif op == c.SUBPATTERN:
            _check_backtracking(av[-1], where, inside_repeat)
        elif op == c.BRANCH:
            if inside_repeat:
                raise ConfigError(
                    f"{where}: an alternation inside a repeat (such as (a|aa)+) can take exponential time on "
                    "hostile text; use a character class ([ab]+) or one rule per alternative"
                )
            for branch in av[1]:
                _check_backtracking(branch, where, inside_repeat)
        elif op in (c.ASSERT, c.ASSERT_NOT):
            _check_backtracking(av[1], where, inside_repeat)
        elif op == getattr(c, "ATOMIC_GROUP", None):
            _check_backtracking(av, where, inside_repeat)


def compile_pattern(pattern: str, where: str, ignore_case: bool = False) -> re.Pattern[str]:
    """A redaction pattern compiled, or ``ConfigError`` naming ``where`` and the fix."""
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError(f"{where}: 'pattern' must be a non-empty string (a regular expression)")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ConfigError(f"{where}: pattern longer than {MAX_PATTERN_CHARS} characters; split it into several rules")
    import re._parser as p  # type: ignore[import-not-found]

    try:
        parsed = p.parse(pattern, re.IGNORECASE if ignore_case else 0)
        compiled = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ConfigError(f"{where}: pattern {pattern[:80]!r} is not a valid regular expression: {exc}") from None
    _check_backtracking(parsed, f"{where}: pattern {pattern[:80]!r}")
    if compiled.search("") is not None:
        raise ConfigError(
            f"{where}: pattern {pattern[:80]!r} matches the empty string, so it would insert its replacement everywhere"
        )
    return compiled


def parse_redaction_rules(data: Any, source: str = "<rules>") -> RedactionRules:
    """Rules from the parsed YAML mapping; ``ConfigError`` naming ``source``, the rule and the fix."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: a redaction rules file holds a mapping with 'rules' (and optionally 'attributes')"
        )
    unknown = sorted(str(k) for k in data if k not in ("rules", "attributes"))
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}; a redaction rules file has 'rules' and 'attributes'")
    entries = data.get("rules") or []
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'rules' must be a list of rules (- builtin: email, or - pattern: …)")
    if len(entries) > MAX_RULES:
        raise ConfigError(f"{source}: {len(entries)} rules; at most {MAX_RULES} are allowed (join patterns with |)")
    rules = [_parse_rule(entry, f"{source}: rule {i + 1}") for i, entry in enumerate(entries)]
    keys = data.get("attributes") or []
    if not isinstance(keys, list) or len(keys) > MAX_ATTRIBUTE_KEYS:
        raise ConfigError(f"{source}: 'attributes' must be a list of at most {MAX_ATTRIBUTE_KEYS} attribute keys")
    exact: set[str] = set()
    prefixes: list[str] = []
    for i, key in enumerate(keys):
        if not isinstance(key, str) or not _ATTRIBUTE_KEY.fullmatch(key):
            raise ConfigError(
                f"{source}: attributes[{i}] = {str(key)[:80]!r} is not an attribute key (letters, digits, _ . : / -, "
                "at most 255 characters, optionally ending in *)"
            )
        if key.endswith("*"):
            prefixes.append(key[:-1])
        else:
            exact.add(key)
    return RedactionRules(tuple(rules), frozenset(exact), tuple(prefixes), source)


def _parse_rule(entry: Any, where: str) -> _Rule:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: each rule is a mapping (builtin: email, or pattern: … and replace: …)")
    unknown = sorted(str(k) for k in entry if k not in _RULE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; a rule has builtin, or pattern, replace, ignore_case")
    replacement = entry.get("replace")
    hints: tuple[str, ...]
    if "builtin" in entry:
        if "pattern" in entry:
            raise ConfigError(f"{where}: give either 'builtin' or 'pattern', not both")
        name = entry["builtin"]
        if name not in BUILTINS:
            raise ConfigError(
                f"{where}: unknown builtin {str(name)[:40]!r}; choose one of {', '.join(sorted(BUILTINS))}"
            )
        pattern_text, default, builtin_hints = BUILTINS[name]
        hints = () if entry.get("ignore_case") else builtin_hints  # the hints are case-sensitive
        pattern = compile_pattern(pattern_text, f"{where}: builtin {name}", bool(entry.get("ignore_case")))
    else:
        if "pattern" not in entry:
            raise ConfigError(f"{where}: a rule needs 'builtin' (one of {', '.join(sorted(BUILTINS))}) or 'pattern'")
        ignore_case = entry.get("ignore_case", False)
        if not isinstance(ignore_case, bool):
            raise ConfigError(f"{where}: 'ignore_case' must be true or false")
        name = str(entry.get("name") or entry["pattern"])[:80]
        default = DEFAULT_REPLACEMENT
        pattern = compile_pattern(entry["pattern"], where, ignore_case)
        hints = ()
    if replacement is None:
        replacement = default
    if not isinstance(replacement, str) or len(replacement) > MAX_REPLACEMENT_CHARS:
        raise ConfigError(f"{where}: 'replace' must be text of at most {MAX_REPLACEMENT_CHARS} characters")
    # literal text: a backslash or a group reference in the replacement is not interpreted
    return _Rule(str(name), pattern, replacement.replace("\\", "\\\\"), hints)


def load_redaction_rules(path: str | os.PathLike[str]) -> RedactionRules:
    """Read a rules file (UTF-8 YAML, at most ``MAX_RULES_FILE_BYTES``); ``ConfigError`` if unusable."""
    from .safe_yaml import load_yaml, read_text_file

    text = read_text_file(path, MAX_RULES_FILE_BYTES, "redaction rules file")
    _, data = load_yaml(text, str(path), "a redaction rules file")
    return parse_redaction_rules(data, str(path))


# --- the app side's default: OTEL_SHADOW_REDACT_RULES -------------------------------------------------
_cache_lock = threading.Lock()
_cache: dict[str, tuple[tuple[int, int], Redactor]] = {}


def _withheld(reason: str) -> Redactor:
    marker = f"[withheld: {reason}]"
    return lambda _text: marker


def default_redactor() -> Redactor | None:
    """The rules named by ``OTEL_SHADOW_REDACT_RULES`` (None when unset), reloaded when the file changes.

    Never raises: it runs on the application's path. A file that cannot be used is logged once
    and content is withheld (replaced by a marker) until it is fixed: failing closed, because
    storing what the rules were meant to remove cannot be undone.
    """
    path = os.environ.get(OTEL_SHADOW_REDACT_RULES, "").strip()
    if not path:
        return None
    try:
        st = Path(path).stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (-1, -1)
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    with _cache_lock:
        try:
            redactor: Redactor = load_redaction_rules(path)
        except ConfigError as exc:
            logger.error("%s: %s; captured content is withheld until the file is fixed", OTEL_SHADOW_REDACT_RULES, exc)
            redactor = _withheld(f"{OTEL_SHADOW_REDACT_RULES} unusable")
        _cache[path] = (stamp, redactor)
    return redactor
