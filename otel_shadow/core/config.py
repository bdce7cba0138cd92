"""Configs: where they come from, how they are identified, and the copies each call receives.

A config is a mapping (model, prompt, temperature…). It can be given as a dict, a pydantic model
instance, a YAML file, or a folder of YAML files. Each config gets an id that is stable across
processes (a hash of its canonical JSON, or its own ``config_id`` key), so the same config run by
two replicas of a service is one config in SQL. Every call receives its own copy: a mutation inside
one call never leaks into the next.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["Bind", "Config", "ConfigSpec", "config_id_of", "flatten", "load_configs"]

_SCALARS = (str, int, float, bool, type(None))
_YAML_SUFFIXES = (".yaml", ".yml")


class Config(dict):
    """One configuration, as received by an experiment: a plain dict with an ``id``.

    ``config["model"]`` reads a value; ``config.id`` is the stable config id. The dict is a private
    copy for this call, so changing it affects nothing else.
    """

    __slots__ = ("_id",)
    _id: str

    @property
    def id(self) -> str:
        """The stable config id (its ``config_id`` key, or a hash of its content)."""
        try:
            return self._id
        except AttributeError:
            self._id = config_id_of(self)
            return self._id

    @classmethod
    def with_id(cls, data: Mapping[str, Any], config_id: str) -> Config:
        config = cls(data)
        config._id = config_id
        return config

    def __repr__(self) -> str:
        return f"Config(id={self.id!r}, {dict.__repr__(self)})"


@dataclass(frozen=True, slots=True)
class Bind:
    """Inject a sub-tree of the config: ``Annotated[ModelConfig, Bind("llm.model_config")]``.

    ``path`` is a dotted path into the config mapping.
    """

    path: str

    def resolve(self, data: Mapping[str, Any], source: str) -> Any:
        """Return the value at ``path``; a missing key names the source and the full path."""
        node: Any = data
        walked: list[str] = []
        for part in self.path.split("."):
            walked.append(part)
            if not isinstance(node, Mapping) or part not in node:
                raise ConfigError(
                    f"config {source} has no key '{'.'.join(walked)}' "
                    f"(needed by Bind({self.path!r})); add it to the config or fix the path"
                )
            node = node[part]
        return node


@dataclass(frozen=True, slots=True)
class ConfigSpec:
    """A loaded config: its data, id, where it came from, and its flattened span attributes."""

    data: Mapping[str, Any]
    id: str
    source: str
    flat: Mapping[str, str | int | float | bool] = field(repr=False)
    immutable: bool = field(repr=False)  # every value is a scalar: a shallow copy is a full copy

    def fresh(self) -> Config:
        """A private copy of the config for one call."""
        config = Config(self.data) if self.immutable else Config(copy.deepcopy(dict(self.data)))
        config._id = self.id
        return config

    def fresh_data(self) -> dict[str, Any]:
        return dict(self.data) if self.immutable else copy.deepcopy(dict(self.data))


def config_id_of(data: Mapping[str, Any]) -> str:
    """The stable id of a config: its ``config_id`` key if it has one, else a hash of its JSON.

    The hash is of the canonical JSON (sorted keys, no whitespace), so it is the same in every
    process and on every machine for the same config.
    """
    explicit = data.get("config_id")
    if isinstance(explicit, str) and explicit:
        return explicit
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(canonical.encode(), digest_size=6).hexdigest()


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str | int | float | bool]:
    """Flatten nested mappings to dotted keys with scalar values (lists of scalars kept as str)."""
    out: dict[str, str | int | float | bool] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        elif value is None:
            continue
        else:
            out[name] = json.dumps(value, default=str, sort_keys=True)
    return out


def _is_immutable(value: Any) -> bool:
    if isinstance(value, _SCALARS):
        return True
    if isinstance(value, tuple):
        return all(_is_immutable(v) for v in value)
    return False


def _spec(data: Mapping[str, Any], source: str) -> ConfigSpec:
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(f"config {source} has a non-string key {key!r}; config keys must be strings")
    frozen = dict(data)
    return ConfigSpec(
        data=frozen,
        id=config_id_of(frozen),
        source=source,
        flat=flatten(frozen),
        immutable=all(_is_immutable(v) for v in frozen.values()),
    )


MAX_CONFIG_FILE_BYTES = 1 << 20


def _load_yaml(path: Path) -> list[ConfigSpec]:
    from ..safe_yaml import load_yaml, read_text_file

    _, loaded = load_yaml(read_text_file(path, MAX_CONFIG_FILE_BYTES, "config file"), str(path), "a config file")
    if loaded is None:
        raise ConfigError(f"config file '{path}' is empty; it must hold a mapping of config keys")
    items = loaded if isinstance(loaded, list) else [loaded]
    specs = []
    for index, item in enumerate(items):
        where = f"'{path}'" if len(items) == 1 else f"'{path}' (item {index})"
        if not isinstance(item, Mapping):
            raise ConfigError(f"config file {where} holds a {type(item).__name__}, not a mapping of config keys")
        specs.append(_spec(item, where))
    return specs


def _load_one(item: Any, index: int) -> list[ConfigSpec]:
    if isinstance(item, ConfigSpec):
        return [item]
    if isinstance(item, Config):
        return [_spec(dict(item), f"#{index}")]
    if isinstance(item, Mapping):
        return [_spec(item, f"#{index}")]
    if isinstance(item, str | os.PathLike):
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in _YAML_SUFFIXES and p.is_file())
            if not files:
                raise ConfigError(f"config folder '{path}' holds no .yaml or .yml files")
            return [spec for file in files for spec in _load_yaml(file)]
        if not path.exists():
            raise ConfigError(
                f"config file '{path}' does not exist (relative to {os.getcwd()}); "
                "pass a dict, a pydantic model, or the path of a YAML file or folder"
            )
        return _load_yaml(path)
    model_dump = getattr(item, "model_dump", None)
    if callable(model_dump):  # a pydantic model instance
        return [_spec(model_dump(mode="python"), f"#{index} ({type(item).__name__})")]
    raise ConfigError(
        f"config #{index} is a {type(item).__name__}; pass a dict, a pydantic model instance, "
        "or the path of a YAML file or folder"
    )


def load_configs(configs: Iterable[Any] | Any) -> list[ConfigSpec]:
    """Load every config source; the first config loaded is the primary."""
    if isinstance(configs, Mapping | str | os.PathLike) or hasattr(configs, "model_dump"):
        configs = [configs]
    specs: list[ConfigSpec] = []
    for index, item in enumerate(configs):
        specs.extend(_load_one(item, index))
    return specs
