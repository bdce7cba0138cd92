"""Stream proxies: the user's stream passes through chunk by chunk; we only watch.

Each proxy forwards every chunk as it arrives (no buffering), feeds it to an ``Accumulator``
(per-chunk work: a type check and an append), and finishes the primary exactly once, from
whichever comes first: the end of the stream, an error, ``close()``, the ``with`` block's exit, or
garbage collection of an abandoned stream. Errors in our own bookkeeping go to the one handler of
internal failures (``core.failures``); the user's exceptions propagate unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import wrapt

from ..core.failures import internal_failure
from ._genai import Accumulator, Info

__all__ = ["AsyncStreamProxy", "AsyncStreamManagerProxy", "StreamManagerProxy", "SyncStreamProxy"]

Finish = Callable[[Info | None, BaseException | None], None]


class _Watch:
    """The shared bookkeeping of a proxy: feed chunks, finish once."""

    __slots__ = ("acc", "on_finish", "done")

    def __init__(self, acc: Accumulator, on_finish: Finish) -> None:
        self.acc = acc
        self.on_finish = on_finish
        self.done = False

    def feed(self, item: Any) -> None:
        try:
            self.acc.feed(item)
        except Exception as exc:
            internal_failure("stream_chunk", exc)

    def finish(self, complete: bool, error: BaseException | None = None, info: Info | None = None) -> None:
        if self.done:
            return
        self.done = True
        try:
            self.on_finish(info if info is not None else self.acc.result(complete), error)
        except Exception as exc:
            internal_failure("stream_finish", exc)


class SyncStreamProxy(wrapt.ObjectProxy):
    def __init__(self, stream: Any, acc: Accumulator, on_finish: Finish) -> None:
        super().__init__(stream)
        self._self_watch = _Watch(acc, on_finish)

    def __iter__(self) -> SyncStreamProxy:
        return self

    def __next__(self) -> Any:
        try:
            item = self.__wrapped__.__next__()
        except StopIteration:
            self._self_watch.finish(True)
            raise
        except BaseException as exc:
            self._self_watch.finish(False, exc)
            raise
        self._self_watch.feed(item)
        return item

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc)
        finally:
            self._self_watch.finish(False, exc[1])

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_watch.finish(False)

    def __del__(self) -> None:
        self._self_watch.finish(False)


class AsyncStreamProxy(wrapt.ObjectProxy):
    def __init__(self, stream: Any, acc: Accumulator, on_finish: Finish) -> None:
        super().__init__(stream)
        self._self_watch = _Watch(acc, on_finish)

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            self._self_watch.finish(True)
            raise
        except BaseException as exc:
            self._self_watch.finish(False, exc)
            raise
        self._self_watch.feed(item)
        return item

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc)
        finally:
            self._self_watch.finish(False, exc[1])

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_watch.finish(False)

    def __del__(self) -> None:
        self._self_watch.finish(False)


class _SnapshotStream(wrapt.ObjectProxy):
    """Anthropic's MessageStream: watched for time to first event; the result is read from its snapshot."""

    def __init__(self, stream: Any, watch: _Watch) -> None:
        super().__init__(stream)
        self._self_watch = watch

    def __iter__(self) -> _SnapshotStream:
        return self

    def __next__(self) -> Any:
        item = self.__wrapped__.__next__()
        self._self_watch.feed(item)
        return item

    def __aiter__(self) -> _SnapshotStream:
        return self

    async def __anext__(self) -> Any:
        item = await self.__wrapped__.__anext__()
        self._self_watch.feed(item)
        return item


def _snapshot_info(stream: Any, watch: _Watch, read: Callable[[Any], Info]) -> Info | None:
    try:
        info = read(stream.current_message_snapshot)
        info.ttft_ms = watch.acc.info.ttft_ms
        return info
    except Exception:  # no message yet (failed before the first event)
        return None


class StreamManagerProxy(wrapt.ObjectProxy):
    """``messages.stream(...)``: the request starts at ``__enter__``; the primary finishes at ``__exit__``."""

    def __init__(self, manager: Any, acc: Accumulator, on_finish: Finish, read: Callable[[Any], Info]) -> None:
        super().__init__(manager)
        self._self_watch = _Watch(acc, on_finish)
        self._self_read = read
        self._self_stream: Any = None

    def __enter__(self) -> Any:
        try:
            self._self_stream = self.__wrapped__.__enter__()
        except BaseException as exc:
            self._self_watch.finish(False, exc)
            raise
        return _SnapshotStream(self._self_stream, self._self_watch)

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc)
        finally:
            info = (
                _snapshot_info(self._self_stream, self._self_watch, self._self_read)
                if self._self_stream is not None
                else None
            )
            self._self_watch.finish(exc[1] is None, exc[1], info)

    def __del__(self) -> None:
        self._self_watch.finish(False)


class AsyncStreamManagerProxy(wrapt.ObjectProxy):
    def __init__(self, manager: Any, acc: Accumulator, on_finish: Finish, read: Callable[[Any], Info]) -> None:
        super().__init__(manager)
        self._self_watch = _Watch(acc, on_finish)
        self._self_read = read
        self._self_stream: Any = None

    async def __aenter__(self) -> Any:
        try:
            self._self_stream = await self.__wrapped__.__aenter__()
        except BaseException as exc:
            self._self_watch.finish(False, exc)
            raise
        return _SnapshotStream(self._self_stream, self._self_watch)

    async def __aexit__(self, *exc: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc)
        finally:
            info = (
                _snapshot_info(self._self_stream, self._self_watch, self._self_read)
                if self._self_stream is not None
                else None
            )
            self._self_watch.finish(exc[1] is None, exc[1], info)

    def __del__(self) -> None:
        self._self_watch.finish(False)
