"""Where candidates run: one long-lived bounded pool per process, a watchdog, and a clean exit.

    caller ── submit() ──> [capacity check] ──> SimpleQueue ──> worker threads (N, daemon)
                 │ full: dropped + counted              │ started tasks
                 ▼                                      ▼
        async experiments: a task on the        watchdog: finishes a task as `timeout`
        caller's running loop (strong ref)      at its deadline; replaces a stuck worker

Design choices, each for the primary's sake:

* ``submit`` costs a queue put and no lock; it never blocks. When queued plus running candidates
  reach ``max_pending`` the candidate is dropped and counted: the caller never waits. Admission
  uses only operations that are atomic on their own (a deque's append, pop and length, a set's
  add and discard), so callers never wait for each other or for a worker either.
* Sync candidates cannot be killed. At its deadline a hung candidate is *finished* (its span ends
  with ``timeout``) and its worker is replaced, up to ``workers`` replacements; the hung thread exits
  when its call returns. Threads stay bounded (at most twice ``workers``).
* The watchdog sees only running tasks (at most one per worker thread); a finished candidate is
  freed at once. Nothing of a caller's call outlives it here: objects kept for seconds would survive
  into the older garbage-collector generations and make every collection, in any thread, slower.
* At interpreter exit (before OpenTelemetry's own exit handlers, so spans still export) pending
  candidates get ``exit_grace`` seconds; whatever is left is recorded as ``cancelled``.
* After ``fork`` the child starts with an empty pool (the parent finishes its own candidates).
* Background work yields to the callers. When candidates are queued behind the one a worker just
  finished, the process is busier than its workers: the worker sleeps for a moment (a blocking call,
  so the GIL goes to whichever caller is waiting for it) before taking the next. Without this, a
  worker that got the GIL keeps it for a whole switch interval (5 ms) while the callers wait; with
  it, a caller waits at most for one candidate's bookkeeping. When the GIL is slow to come back
  (the callers are CPU-bound) the pause doubles, up to 20 ms (``_yield``). Under sustained overload
  the queue then fills and candidates are dropped and counted, as the cap intends, instead of
  slowing callers.
* ``submit`` is the one way in, for sync and async callers alike. A small job that comes with the
  tasks (ending a primary span) goes to a worker that is idle right now (waiting for a task, not
  backing off); workers run such jobs before taking a task and after waking, so they never wait
  behind queued candidates.
* A task is told of the scheduler only through ``on_finish``, the function it was given at
  admission (``core.tasks``): the scheduler and the tasks never import each other.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from .. import attributes as A
from ..environment_variables import (
    OTEL_SHADOW_EXIT_GRACE,
    OTEL_SHADOW_MAX_PENDING,
    OTEL_SHADOW_WORKERS,
    env_float,
    env_int,
)
from .failures import internal_failure
from .observation import ErrorInfo
from .tasks import Ending, Task

__all__ = ["Scheduler", "default_scheduler"]

logger = logging.getLogger("otel_shadow")

_STOP = object()
_NEVER = 1 << 62  # a deadline no task has
_WATCH_POLL_NS = 1_000_000_000  # the watchdog looks at least this often (ns)
_YIELD_S = 1e-6  # any blocking sleep hands the GIL over; the kernel's timer slack makes it ~50-60 µs
_YIELD_MAX_S = 0.02  # the longest a worker backs off while the callers keep the GIL busy
_GIL_BUSY_S = 0.001  # getting the GIL back took longer than this after a yield: the callers are busy
_DEFERRED_PER_TURN = 8  # deferred jobs a worker runs per turn (each ~10 µs): a bounded burst
_schedulers: weakref.WeakSet[Scheduler] = weakref.WeakSet()


class Scheduler:
    """A bounded executor for candidates, shared by every experiment that uses it."""

    def __init__(
        self,
        workers: int | None = None,
        max_pending: int | None = None,
        exit_grace: float | None = None,
    ) -> None:
        self.workers = max(1, workers if workers is not None else env_int(OTEL_SHADOW_WORKERS, 4))
        self.max_pending = max(1, max_pending if max_pending is not None else env_int(OTEL_SHADOW_MAX_PENDING, 256))
        self.exit_grace = exit_grace if exit_grace is not None else env_float(OTEL_SHADOW_EXIT_GRACE, 2.0)
        self._init_state()
        _schedulers.add(self)

    def _init_state(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # one entry per task queued, running (sync) or alive (async): its length is ``pending``
        self._taken: collections.deque[None] = collections.deque()
        self._live: set[Task] = set()  # not finished yet (read it whole with tuple(): one atomic copy)
        self._on_finish = self._finished  # bound once: every task shares it (one object less per task)
        self._async_tasks: set[asyncio.Task[None]] = set()  # strong references
        self._threads: list[threading.Thread] = []
        self._stuck = 0
        # workers waiting for a task right now (changed under _lock, read without it: a hint, a
        # caller may take one first); a plain attribute, read on every sampled call
        self.idle_workers = 0
        self._deferred: collections.deque[Callable[[], None]] = collections.deque()
        self._started = False
        self._closed = False
        # sync tasks running right now (at most one per worker thread): the watchdog's whole view.
        # It never holds a finished task, so nothing outlives its call here: objects kept until a
        # deadline would survive into the older GC generations and make every collection slower
        self._running: set[Task] = set()
        self._watch_cond = threading.Condition(threading.Lock())
        self._watch_next = 0  # when the waiting watchdog wakes next (perf_counter_ns; 0: not waiting)

    # --- submitting (the caller's path) -------------------------------------------------------
    def submit(
        self,
        tasks: Sequence[Task],
        loop: asyncio.AbstractEventLoop | None = None,
        ending: Ending | None = None,
    ) -> list[str | None]:
        """The one way in: admit ``tasks``, then start the admitted ones; never blocks.

        Returns each task's drop reason (``shutdown``, ``queue_full``), None for an admitted one.
        Admitted tasks run on the workers, or with ``loop`` (the caller's running loop) as tasks
        on it, held by a strong reference until done. ``ending`` (ending the primary span) is
        handed over only when a task was admitted and a worker is idle (or the tasks run on
        ``loop``): that worker runs it before its next task, and every admitted task runs it
        before it starts or finishes. Otherwise it is not ``handed`` and its owner runs it.
        """
        if not _FORK_HOOK and self._pid != os.getpid():  # (a syscall: only where no fork hook)
            self._after_fork()
        reasons: list[str | None] = []
        started: list[Task] = []
        taken = self._taken
        for task in tasks:
            if self._closed:
                reasons.append(A.DROP_SHUTDOWN)
                continue
            taken.append(None)  # take a slot, then look: two callers at the last slot may both refuse
            if len(taken) > self.max_pending:
                taken.pop()
                reasons.append(A.DROP_QUEUE_FULL)
                continue
            task.on_finish = self._on_finish
            self._live.add(task)
            reasons.append(None)
            started.append(task)
        if started and self._closed:  # shut down meanwhile: shutdown may not have seen them
            for task in started:
                task.finish(A.OUTCOME_CANCELLED, error=ErrorInfo("CancelledError", "cancelled at shutdown"))
        if ending is not None and started and (loop is not None or self._defer(ending)):
            ending.handed = True
            for task in started:
                task.primary_end = ending
        if loop is None:
            if started and not self._started:
                self._start()
            for task in started:
                self._queue.put(task)
        else:
            for task in started:
                atask = loop.create_task(task.run_async())
                task.atask = atask
                self._async_tasks.add(atask)
                atask.add_done_callback(self._async_done)
        return reasons

    def _defer(self, job: Callable[[], None]) -> bool:
        """Have an idle worker run ``job`` soon (before its next task); False when none is idle.

        A job stays in the deque if every worker gets busy first, until one comes round again;
        its tasks run it too, whichever comes first.
        """
        if not self.idle_workers:
            return False
        self._deferred.append(job)
        return True

    def _run_deferred(self, limit: int = _DEFERRED_PER_TURN) -> None:
        """Run up to ``limit`` deferred jobs (a bounded burst: a caller may be waiting for the GIL)."""
        deferred = self._deferred
        for _ in range(limit):
            try:
                job = deferred.popleft()
            except IndexError:  # another worker took the last one
                return
            try:
                job()
            except Exception as exc:  # pragma: no cover - jobs handle their own errors
                internal_failure("deferred_job", exc)

    # --- bookkeeping -----------------------------------------------------------------------------
    def _finished(self, task: Task) -> None:
        self._live.discard(task)

    def _release(self) -> None:
        try:
            self._taken.pop()
        except IndexError:  # a task admitted before a fork: the child's scheduler started empty
            pass

    def _async_done(self, atask: asyncio.Task[None]) -> None:
        self._async_tasks.discard(atask)
        self._release()

    @property
    def pending(self) -> int:
        """Candidates queued or running (a hung sync candidate counts until its call returns)."""
        return len(self._taken)

    @property
    def unfinished(self) -> int:
        """Candidates without a final outcome yet."""
        return len(self._live)

    # --- workers -----------------------------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
            for _ in range(self.workers):
                self._spawn_locked()
            watchdog = threading.Thread(target=self._watchdog, name="otel-shadow-watchdog", daemon=True)
            watchdog.start()
            self._threads.append(watchdog)
        _register_exit_hook()

    def _spawn_locked(self) -> None:
        thread = threading.Thread(target=self._work, name="otel-shadow-worker", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _work(self) -> None:
        get = self._queue.get
        lock = self._lock
        backlog = False
        pause = _YIELD_S
        while True:
            if backlog:  # candidates queued behind the last one: the callers go first (see above)
                pause = self._yield(pause)  # kept across an empty queue too (a burst that just ended
                # says the callers are still busy; docs/performance.md); only a calm GIL resets it
            self._run_deferred()
            with lock:  # idle only while it waits for a task: a yielding worker is busy, and a job
                self.idle_workers += 1  # deferred to it would wait (holding a caller's span) for a backlog
            task = get()
            with lock:
                self.idle_workers -= 1
            self._run_deferred()  # jobs handed over while this worker was idle
            if task is _STOP:
                return
            try:
                task.run_sync(self._watch)
            except BaseException as exc:  # pragma: no cover - run_sync already records everything
                internal_failure("worker", exc)
            finally:
                self._unwatch(task)
                self._release()
            if task.stuck:  # a replacement took this worker's place while it hung
                with self._lock:
                    self._stuck -= 1
                return
            del task  # an idle worker holds nothing of the last caller's (its result, its value)
            backlog = not self._queue.empty()

    @staticmethod
    def _yield(pause: float) -> float:
        """Sleep ``pause`` (the GIL goes to a waiting caller); return the next pause.

        How long the GIL took to come back says how busy the callers are: if they kept it (a
        CPU-bound caller gives it up only when the interpreter forces it, every 5 ms), the next
        pause doubles, up to 20 ms, so the worker asks for the GIL less often; otherwise it resets.
        """
        started = time.perf_counter()
        time.sleep(pause)
        if time.perf_counter() - started - pause > _GIL_BUSY_S:
            return min(pause * 2 if pause > _YIELD_S else 0.001, _YIELD_MAX_S)
        return _YIELD_S

    def _watch(self, task: Task) -> None:
        """A task starts running on this thread: the watchdog finishes it at its deadline."""
        deadline = task.deadline_ns
        with self._watch_cond:
            self._running.add(task)
            if deadline < self._watch_next:  # sooner than the watchdog planned to look
                self._watch_cond.notify()

    def _unwatch(self, task: Task) -> None:
        with self._watch_cond:
            self._running.discard(task)

    def _due(self, now: int) -> tuple[list[Task], int]:
        """Running tasks past their deadline, earliest first (removed from the watch), and the
        soonest deadline of the others."""
        due: list[tuple[int, Task]] = []
        soonest = _NEVER
        for task in self._running:
            if task.result is not None:  # finished elsewhere; its worker removes it
                continue
            deadline = task.deadline_ns
            if deadline <= now:
                due.append((deadline, task))
            else:
                soonest = min(soonest, deadline)
        due.sort(key=lambda entry: entry[0])
        for _, task in due:
            self._running.discard(task)
        return [task for _, task in due], soonest

    def _watchdog(self) -> None:
        cond = self._watch_cond
        while True:
            with cond:
                while True:
                    now = time.perf_counter_ns()
                    due, soonest = self._due(now)
                    if due:
                        break
                    if self._closed and not self._running:  # shut down, nothing left to watch
                        return
                    # look again at the soonest deadline, and at least every second: a task that
                    # starts meanwhile with a later deadline (the usual case) then needs no notify,
                    # which would wake this thread, and make it want the GIL, once per candidate
                    wake = min(soonest, now + _WATCH_POLL_NS)
                    self._watch_next = wake
                    cond.wait((wake - now) / 1e9)
                self._watch_next = 0  # busy, not waiting: it scans again before it waits
            for task in due:  # in deadline order: whoever waits on a later one sees the earlier done
                if task.finish(A.OUTCOME_TIMEOUT):
                    with self._lock:
                        if self._stuck < self.workers and not self._closed:
                            self._stuck += 1
                            task.stuck = True
                            self._spawn_locked()
            del due, task  # the watchdog holds nothing while it waits

    # --- flush, shutdown, exit, fork ------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every scheduled sync candidate has an outcome; True if none is left.

        Async candidates live on their event loop: await ``aflush()`` from that loop instead.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = [t for t in tuple(self._live) if t.atask is None]  # tuple(): one atomic copy
            if not left:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.002)

    async def aflush(self, timeout: float | None = None) -> bool:
        """Await every candidate running on this loop, then wait for sync ones (off the loop)."""
        tasks = [t for t in self._async_tasks if not t.done()]
        if tasks:
            _, not_done = await asyncio.wait(tasks, timeout=timeout)
            if not_done:
                return False
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.flush, timeout)

    def shutdown(self, timeout: float | None = None, cancel_futures: bool = True) -> None:
        """Stop accepting candidates, wait up to ``timeout`` for the rest, cancel what is left."""
        with self._lock:
            self._closed = True
        self.flush(self.exit_grace if timeout is None else timeout)
        if cancel_futures:
            left = tuple(self._live)
            for task in left:
                if task.atask is None:
                    task.finish(A.OUTCOME_CANCELLED, error=ErrorInfo("CancelledError", "cancelled at shutdown"))
        for _ in range(self.workers):
            self._queue.put(_STOP)

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's threads and tasks (the parent finishes them)."""
        self._init_state()


_exit_hook_registered = False
_exit_lock = threading.Lock()


def _exit_all() -> None:
    for scheduler in list(_schedulers):
        if scheduler._started and scheduler._pid == os.getpid():
            try:
                scheduler.shutdown()
            except Exception as exc:  # pragma: no cover
                internal_failure("shutdown_at_exit", exc)


def _register_exit_hook() -> None:
    """Run ``_exit_all`` before atexit handlers (so tracer providers have not shut down yet)."""
    global _exit_hook_registered
    with _exit_lock:
        if _exit_hook_registered:
            return
        _exit_hook_registered = True
    register = getattr(threading, "_register_atexit", None)  # what concurrent.futures uses
    try:
        if register is None:
            raise RuntimeError
        register(_exit_all)
    except RuntimeError:
        import atexit

        atexit.register(_exit_all)


def _reinit_after_fork() -> None:
    global _exit_hook_registered
    _exit_hook_registered = False
    for scheduler in list(_schedulers):
        scheduler._after_fork()


_FORK_HOOK = hasattr(os, "register_at_fork")  # then every child resets its schedulers at fork
if _FORK_HOOK:
    os.register_at_fork(after_in_child=_reinit_after_fork)

_default: Scheduler | None = None
_default_lock = threading.Lock()


def default_scheduler() -> Scheduler:
    """The process-wide scheduler every ``Shadow`` uses unless given one."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Scheduler()
    return _default
