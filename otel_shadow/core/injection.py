"""The injection plan: which parameters of an experiment receive the config, built once per function.

Three kinds of parameter receive a config: one annotated ``Config`` (the whole config as a dict),
one annotated ``Annotated[T, Bind("a.b")]`` (a sub-tree, validated into ``T`` when it is a pydantic
model), and one annotated with a pydantic model into which every config validates. A pydantic
parameter into which *no* config validates is an ordinary argument (a request object, say) and is
left to the caller. A parameter the caller passes is never overridden.

Every config is validated into every slot when the experiment is decorated, so a bad config fails
at construction, naming its file and key, instead of failing a user's request later.
"""

from __future__ import annotations

import inspect
import logging
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, ExperimentError
from .config import Bind, Config, ConfigSpec

__all__ = ["InjectionPlan"]

logger = logging.getLogger("otel_shadow")

_KIND_CONFIG = "config"
_KIND_MODEL = "model"
_KIND_BIND = "bind"


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and callable(getattr(annotation, "model_validate", None))


def _describe_validation_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    parts = []
    for err in errors()[:5]:
        key = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
        detail = err.get("msg", "invalid")
        if err.get("type") != "missing" and "input" in err:
            detail += f" (value {err['input']!r})"
        parts.append(f"key '{key}': {detail}")
    return "; ".join(parts)


def _resolve_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations; with unresolvable strings, resolve what can be, warn about the rest."""
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:
        pass
    hints: dict[str, Any] = {}
    namespace = dict(getattr(fn, "__globals__", {}))
    for name, annotation in getattr(fn, "__annotations__", {}).items():
        if not isinstance(annotation, str):
            hints[name] = annotation
            continue
        try:
            hints[name] = eval(annotation, namespace)  # what typing.get_type_hints does
        except Exception:
            logger.warning(
                "otel-shadow: the annotation %r of parameter '%s' of %s cannot be resolved, so no "
                "config is injected into it; define the type at module level",
                annotation,
                name,
                getattr(fn, "__qualname__", fn),
            )
    return hints


@dataclass(frozen=True, slots=True)
class _Slot:
    name: str
    index: int | None  # position when it can be passed positionally
    kind: str
    target: Any  # Config, a pydantic model class, or None for a raw Bind value
    bind: Bind | None

    def build(self, spec: ConfigSpec) -> Any:
        if self.kind == _KIND_CONFIG:
            return spec.fresh()
        data = spec.fresh_data()
        value: Any = data
        if self.bind is not None:
            value = self.bind.resolve(data, spec.source)
        if self.target is Config:
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"config {spec.source}: Bind({self.bind.path!r}) is a {type(value).__name__}, "  # type: ignore[union-attr]
                    f"but parameter '{self.name}' is annotated Config (a mapping)"
                )
            return Config.with_id(value, spec.id) if self.bind is None else Config(value)
        if self.target is not None:
            return self.target.model_validate(value)
        return value


class InjectionPlan:
    """How to give each config to one function; built once at decoration, applied per call."""

    __slots__ = ("slots", "_unfit")

    def __init__(self, fn: Callable[..., Any], specs: Sequence[ConfigSpec]) -> None:
        hints = _resolve_hints(fn)
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError) as exc:
            raise ExperimentError(f"cannot read the signature of {fn!r}: {exc}") from exc

        slots: list[_Slot] = []
        unfit: dict[str, str] = {}
        positional = 0
        for param in signature.parameters.values():
            index: int | None = None
            if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
                index = positional
                positional += 1
            annotation = hints.get(param.name, param.annotation)
            slot = self._classify(param.name, index, annotation)
            if slot is None:
                continue
            if slot.kind == _KIND_MODEL:
                problem = self._check_model_slot(fn, slot, specs)
                if problem is not None:  # no config fits: an ordinary argument (a request object)
                    unfit[param.name] = problem
                    continue
            else:
                for spec in specs:
                    self._build_checked(fn, slot, spec)
            slots.append(slot)
        self.slots: tuple[_Slot, ...] = tuple(slots)
        self._unfit = unfit

    @staticmethod
    def _classify(name: str, index: int | None, annotation: Any) -> _Slot | None:
        if typing.get_origin(annotation) is typing.Annotated:
            base, *extras = typing.get_args(annotation)
            binds = [e for e in extras if isinstance(e, Bind)]
            if binds:
                target = Config if base is Config else (base if _is_model(base) else None)
                return _Slot(name, index, _KIND_BIND, target, binds[0])
            annotation = base
        if annotation is Config:
            return _Slot(name, index, _KIND_CONFIG, Config, None)
        if _is_model(annotation):
            return _Slot(name, index, _KIND_MODEL, annotation, None)
        return None

    @staticmethod
    def _build_checked(fn: Callable[..., Any], slot: _Slot, spec: ConfigSpec) -> Any:
        try:
            return slot.build(spec)
        except ConfigError:
            raise
        except Exception as exc:
            target = getattr(slot.target, "__name__", "the annotated type")
            raise ConfigError(
                f"config {spec.source} does not fit {target} (parameter '{slot.name}' of "
                f"{fn.__qualname__}): {_describe_validation_error(exc)}"
            ) from exc

    def _check_model_slot(self, fn: Callable[..., Any], slot: _Slot, specs: Sequence[ConfigSpec]) -> str | None:
        """None when every config fits; a description when none does; raise when only some do."""
        failures: list[tuple[ConfigSpec, Exception]] = []
        for spec in specs:
            try:
                slot.build(spec)
            except Exception as exc:
                failures.append((spec, exc))
        if not failures:
            return None
        first_spec, first_error = failures[0]
        if len(failures) == len(specs):
            return f"config {first_spec.source}: {_describe_validation_error(first_error)}"
        raise ConfigError(
            f"config {first_spec.source} does not fit {slot.target.__name__} (parameter '{slot.name}' of "
            f"{fn.__qualname__}), though other configs do: {_describe_validation_error(first_error)}"
        ) from first_error

    def apply(self, spec: ConfigSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments for one call under ``spec``: the caller's plus the injected ones."""
        if not self.slots:
            return kwargs
        out = dict(kwargs)
        nargs = len(args)
        for slot in self.slots:
            if slot.name in kwargs or (slot.index is not None and slot.index < nargs):
                continue  # the caller passed it: never overridden
            # a plain Config (the common case) without the extra call through build()
            out[slot.name] = spec.fresh() if slot.kind == _KIND_CONFIG else slot.build(spec)
        return out

    def explain_missing(self, exc: TypeError) -> ConfigError | None:
        """A clearer error when a call failed because a pydantic config parameter was not injected."""
        for name, problem in self._unfit.items():
            if f"'{name}'" in str(exc):
                return ConfigError(
                    f"parameter '{name}' was not passed, and no config validates into its type: {problem}"
                )
        return None
