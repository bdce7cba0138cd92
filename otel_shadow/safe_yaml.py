"""Reading YAML that otel-shadow did not write: bounded, alias-free, UTF-8, regular files only.

Every YAML file otel-shadow reads (configs, the rules file, thresholds, prices, a judge's rubric)
is hostile input, often read inside the user's application. So each is refused when it is larger
than its byte limit, is not a regular file (a FIFO would block the reader forever), is not UTF-8,
nests deeper than ``MAX_DEPTH``, or uses aliases (``*name``): none of our formats needs them, and
nested aliases expand exponentially (the "billion laughs") in whatever walks the result. Aliases
and depth are refused while the document is composed, before anything is built. Errors are one
short line with ``file:line``, never the expanded document.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

__all__ = ["MAX_DEPTH", "bounded", "load_yaml", "read_text_file"]

MAX_DEPTH = 32  # our formats nest a handful of levels; the composer recurses, so bound it before the stack
_MAX_MESSAGE = 1000  # characters of an error message


class _Refused(yaml.YAMLError):
    def __init__(self, mark: Any, problem: str) -> None:
        super().__init__(problem)
        self.problem_mark, self.problem = mark, problem


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases and deep nesting while the document is composed.

    Aliases are refused before they are resolved, so a bomb costs one event, never its expansion.
    """

    _depth = 0
    what = "this file"

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(
                event.start_mark, f"YAML aliases (*{event.anchor}) are not allowed in {self.what}; write the value out"
            )
        if self._depth >= MAX_DEPTH:
            raise _Refused(self.peek_event().start_mark, f"nested deeper than {MAX_DEPTH} levels")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def bounded(message: str) -> str:
    """A message cut to a line or two."""
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


def load_yaml(text: str, source: str, what: str = "this file") -> tuple[yaml.Node | None, Any]:
    """(the node tree, for line numbers; the data) of one YAML document; ``ConfigError`` naming ``source:line``."""
    loader = _Loader(text)
    loader.what = what
    try:
        root = loader.get_single_node()
        return root, (loader.construct_document(root) if root is not None else None)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = (
            exc.problem if isinstance(exc, _Refused) else f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
        )
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(bounded(f"{where}: {problem}")) from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None
    finally:
        loader.dispose()


def read_text_file(path: str | os.PathLike[str], max_bytes: int, what: str) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes``; ``what`` names it in errors ("rules file")."""
    path = Path(path)
    try:
        # a FIFO or a device would block the reader or never end: only regular files are read
        with open(path, "rb", opener=lambda p, flags: os.open(p, flags | getattr(os, "O_NONBLOCK", 0))) as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise ConfigError(f"{what} '{path}' is not a regular file; point at a YAML file")
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"{what} '{path}' cannot be read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ConfigError(f"{what} '{path}' is larger than {max_bytes} bytes; it should be a few KiB of YAML")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); save the {what} as UTF-8"
        ) from None
