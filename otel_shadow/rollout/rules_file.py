"""Changing one number of one rule in the user's rules file, atomically, and nothing else.

The edit is made in the text, at the position of the value (from the YAML parser's marks), so the
user's comments, order, quoting and layout all stay: only ``sample_rate`` or ``canary.fraction``
of the named rule changes (a missing ``sample_rate`` is added as a line of its own). The result
is parsed with the application's own rules parser (handed in by the caller: this layer never
imports the SDK) and checked to hold exactly the intended values before it replaces the file; a
result that would not parse is refused and the file is left as it was.

The replacement is atomic: the new text goes to a temporary file in the same folder, is flushed to
disk (fsync), then renamed over the old one, so a process reading the file (every application
process's hot reload) sees the old rules or the new ones, never half a file. A symlinked rules
file (a Kubernetes ConfigMap mount) is replaced at its target.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..safe_yaml import load_yaml, read_text_file

__all__ = [
    "MAX_RULES_BYTES",
    "RuleValues",
    "checked_edit",
    "edit_rule",
    "read_rules_text",
    "rule_names",
    "rule_values",
    "write_atomically",
]

MAX_RULES_BYTES = 1 << 20  # the rules parser's own limit
Validate = Callable[[str, str], Any]


@dataclass(frozen=True, slots=True)
class RuleValues:
    """The two numbers a rollout moves, as the file states them (None: not stated)."""

    sample_rate: float | None
    canary_fraction: float | None
    has_canary: bool


def _rules_node(root: yaml.Node | None, source: str) -> yaml.SequenceNode:
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "rules" and isinstance(value, yaml.SequenceNode):
                return value
    raise ConfigError(f"{source}: no `rules:` list; a rollout moves a rule of a rules file (docs/instrumentation.md)")


def rule_names(text: str, source: str) -> list[str]:
    root, _ = load_yaml(text, source, "a rules file")
    out = []
    for rule in _rules_node(root, source).value:
        name = _child(rule, "name")
        if isinstance(name, yaml.ScalarNode):
            out.append(name.value)
    return out


def _child(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _find_rule(root: yaml.Node | None, source: str, rule: str) -> tuple[int, yaml.MappingNode]:
    found = [
        (i, node)
        for i, node in enumerate(_rules_node(root, source).value)
        if isinstance(node, yaml.MappingNode) and getattr(_child(node, "name"), "value", None) == rule
    ]
    if not found:
        raise ConfigError(
            f"{source}: no rule named {rule!r}; rules here: {rule_names_of(root)}; pass --rule with one of them"
        )
    if len(found) > 1:
        lines = ", ".join(str(n.start_mark.line + 1) for _, n in found)
        raise ConfigError(f"{source}: {len(found)} rules named {rule!r} (lines {lines}); give each rule its own name")
    return found[0]


def rule_names_of(root: yaml.Node | None) -> list[str]:
    try:
        return [getattr(_child(n, "name"), "value", "?") for n in _rules_node(root, "").value]
    except ConfigError:
        return []


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def rule_values(text: str, source: str, rule: str) -> RuleValues:
    """The values as a parser reads them (a key given twice: the last one), not as the first node says."""
    root, data = load_yaml(text, source, "a rules file")
    index, _ = _find_rule(root, source, rule)
    node = data["rules"][index]
    canary = node.get("canary")
    return RuleValues(
        _number(node.get("sample_rate")),
        _number(canary.get("fraction")) if isinstance(canary, dict) else None,
        isinstance(canary, dict),
    )


def _set(text: str, mapping: yaml.MappingNode, key: str, value: float) -> str:
    """``text`` with ``key: value`` in ``mapping``: the old value's characters replaced, or a new entry."""
    literal = repr(float(value))
    current = _child(mapping, key)
    if current is not None:
        if not isinstance(current, yaml.ScalarNode):
            raise ConfigError(f"line {current.start_mark.line + 1}: {key} is not a number; write `{key}: {literal}`")
        return text[: current.start_mark.index] + literal + text[current.end_mark.index :]
    if mapping.flow_style:  # {name: x, …}: the new entry goes right after the brace
        at = mapping.start_mark.index + 1
        return text[:at] + f"{key}: {literal}, " + text[at:]
    # a line of its own after the rule's `name:` line (a scalar: its line ends where it ends);
    # without one, before the first entry
    first_key = mapping.value[0][0]
    line = " " * first_key.start_mark.column + f"{key}: {literal}\n"
    name = _child(mapping, "name")
    if not isinstance(name, yaml.ScalarNode) or name.style in ("|", ">"):
        at = first_key.start_mark.index
        return text[:at] + line.lstrip(" ") + " " * first_key.start_mark.column + text[at:]
    end = text.find("\n", name.end_mark.index)
    if end < 0:
        return text + "\n" + line
    return text[: end + 1] + line + text[end + 1 :]


def edit_rule(
    text: str, source: str, rule: str, *, sample_rate: float | None = None, canary_fraction: float | None = None
) -> str:
    """``text`` with the rule's ``sample_rate`` and/or ``canary.fraction`` set; every other character kept.

    A canary fraction needs the rule's own ``canary:`` block (its sticky key): a plan alone never
    makes a rule serve the candidate's answer to users.
    """
    root, _ = load_yaml(text, source, "a rules file")
    _, node = _find_rule(root, source, rule)
    if canary_fraction is not None and not isinstance(_child(node, "canary"), yaml.MappingNode):
        raise ConfigError(
            f"{source}:{node.start_mark.line + 1}: rule {rule!r} has no `canary:` block, and a canary step serves "
            f"the candidate's answer to users, which only a rule that says so may do; add "
            f"`canary: {{fraction: 0.0, key: user}}` to the rule (key: user, baggage:<name> or request:<field>)"
        )
    edits = [("canary", "fraction", canary_fraction), (None, "sample_rate", sample_rate)]
    for block, key, value in edits:
        if value is None:
            continue
        root, _ = load_yaml(text, source, "a rules file")  # the first edit moved the positions after it
        _, node = _find_rule(root, source, rule)
        target = _child(node, block) if block else node
        assert isinstance(target, yaml.MappingNode)
        text = _set(text, target, key, value)
    return text


def checked_edit(
    text: str,
    source: str,
    rule: str,
    validate: Validate,
    *,
    sample_rate: float | None = None,
    canary_fraction: float | None = None,
) -> str:
    """``edit_rule``, then the application's parser on the result and a check of the two values."""
    try:
        validate(text, source)
    except ConfigError as exc:
        raise ConfigError(f"refused: {source} does not parse now, so it is not edited; fix it first ({exc})") from None
    new = edit_rule(text, source, rule, sample_rate=sample_rate, canary_fraction=canary_fraction)
    try:
        validate(new, source)
    except ConfigError as exc:
        raise ConfigError(f"refused: the edited rules would not parse, so {source} is unchanged ({exc})") from None
    got = rule_values(new, source, rule)
    if (sample_rate is not None and got.sample_rate != sample_rate) or (
        canary_fraction is not None and got.canary_fraction != canary_fraction
    ):
        raise ConfigError(
            f"refused: the edit of rule {rule!r} in {source} did not land where intended; {source} is unchanged"
        )
    return new


def read_rules_text(path: str | os.PathLike[str]) -> str:
    return read_text_file(path, MAX_RULES_BYTES, "rules file")


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` by ``text``: temporary file in the same folder, fsync, rename, fsync the folder."""
    target = Path(os.path.realpath(path))
    mode = stat.S_IMODE(target.stat().st_mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a power cut
    finally:
        os.close(folder)
