"""The scheduler's manners: deferred bookkeeping runs on a free worker; busy callers go first;
nothing of a finished or queued candidate is kept alive longer or larger than it must be."""

from __future__ import annotations

import threading
import time
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from otel_shadow import Config, Scheduler, Shadow
from otel_shadow.core import scheduler as scheduler_module
from otel_shadow.core.candidate import CandidateTask
from otel_shadow.core.observation import VariantResult


def _wait_idle(scheduler: Scheduler, n: int) -> None:
    deadline = time.monotonic() + 5
    while scheduler.idle_workers < n and time.monotonic() < deadline:
        time.sleep(0.002)
    assert scheduler.idle_workers == n


class _Recorded:
    """A job that notes which thread ran it (a ``core.tasks.Job``)."""

    role = "candidate"

    def __init__(self, order: list[tuple[str, str]]) -> None:
        self.order = order

    def start(self, task: Any) -> object:
        return None

    def call(self, task: Any) -> str:
        self.order.append(("candidate", threading.current_thread().name))
        return "ok"

    async def acall(self, task: Any) -> str:
        return self.call(task)

    def record(self, task: Any, outcome: str, value: Any, exc: Any, error: Any) -> VariantResult:
        return VariantResult(value, "c", self.role, outcome, 0.0)

    def fallback(self, task: Any, outcome: str) -> VariantResult:
        return VariantResult(None, "c", self.role, outcome, 0.0)


class _Ending:
    """An ending job (like ``PrimaryEnd``): acts once, notes which thread ran it."""

    def __init__(self, order: list[tuple[str, str]]) -> None:
        self.order = order
        self.handed = False
        self._once = [1]

    def __call__(self) -> None:
        if self._once and self._once.pop():
            self.order.append(("job", threading.current_thread().name))


def test_the_ending_submitted_with_tasks_runs_on_a_free_worker_before_its_candidate(
    tracer_provider: TracerProvider,
) -> None:
    scheduler = Scheduler(workers=1, max_pending=8)
    order: list[tuple[str, str]] = []
    scheduler.submit([CandidateTask(_Recorded([]), None, 5.0, True)])  # starts the worker
    assert scheduler.flush(5)
    _wait_idle(scheduler, 1)
    ending = _Ending(order)
    task = CandidateTask(_Recorded(order), None, 5.0, True)
    assert scheduler.submit([task], ending=ending) == [None]
    assert ending.handed
    assert task.wait(5) and task.result is not None and task.result.status == "ok"
    assert order == [("job", "otel-shadow-worker"), ("candidate", "otel-shadow-worker")]
    scheduler.shutdown(1)


def test_the_ending_is_not_handed_over_when_every_worker_is_busy(tracer_provider: TracerProvider) -> None:
    scheduler = Scheduler(workers=1, max_pending=8)
    release = threading.Event()
    shadow = Shadow([{"model": "p"}, {"model": "c"}], tracer_provider=tracer_provider, scheduler=scheduler, timeout=5)

    @shadow.experiment()
    def generate(config: Config) -> str:
        if config["model"] == "c":
            release.wait(5)
        return config["model"]

    generate()  # the one worker now hangs in the candidate
    deadline = time.monotonic() + 5
    while scheduler.idle_workers and time.monotonic() < deadline:
        time.sleep(0.002)
    ran: list[tuple[str, str]] = []
    ending = _Ending(ran)
    task = CandidateTask(_Recorded([]), None, 5.0, True)
    assert scheduler.submit([task], ending=ending) == [None]
    assert not ending.handed and task.primary_end is None  # nothing queued may hold the primary
    release.set()
    assert scheduler.flush(5)
    assert ran == []  # its owner runs it, not the scheduler
    scheduler.shutdown(1)


def test_a_full_scheduler_refuses_with_a_reason_and_runs_nothing() -> None:
    scheduler = Scheduler(workers=1, max_pending=1)
    release = threading.Event()

    class Hang(_Recorded):
        def call(self, task: Any) -> str:
            release.wait(5)
            return "ok"

    first, second = CandidateTask(Hang([]), None, 5.0, True), CandidateTask(_Recorded([]), None, 5.0, True)
    assert scheduler.submit([first, second]) == [None, "queue_full"]
    release.set()
    assert first.wait(5) and second.result is None
    scheduler.shutdown(1)
    assert scheduler.submit([CandidateTask(_Recorded([]), None, 5.0, True)]) == ["shutdown"]


def test_concurrent_callers_admit_at_most_max_pending_and_every_slot_comes_back() -> None:
    """Callers admit without a lock: racing for the last slots, they never admit more than
    ``max_pending``, and every admitted task runs and gives its slot back."""
    scheduler = Scheduler(workers=1, max_pending=40)
    release = threading.Event()

    class Hang(_Recorded):
        def call(self, task: Any) -> str:
            release.wait(10)
            return "ok"

    first = CandidateTask(Hang([]), None, 20.0, True)
    assert scheduler.submit([first]) == [None]  # the one worker now waits: the rest queue
    deadline = time.monotonic() + 5
    while scheduler.idle_workers and time.monotonic() < deadline:
        time.sleep(0.002)
    admitted: list[CandidateTask] = []
    refused: list[str | None] = []
    peak = [0]
    start = threading.Barrier(8)

    def caller() -> None:
        start.wait()
        for _ in range(25):
            task = CandidateTask(_Recorded([]), None, 20.0, True)
            (why,) = scheduler.submit([task])
            peak[0] = max(peak[0], scheduler.pending)
            if why is None:
                admitted.append(task)
            else:
                refused.append(why)

    callers = [threading.Thread(target=caller) for _ in range(8)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(10)
    assert len(admitted) + 1 <= 40 and peak[0] <= 40
    assert len(admitted) + len(refused) == 200 and set(refused) == {"queue_full"}
    release.set()
    assert scheduler.flush(10)
    assert all(task.result is not None and task.result.status == "ok" for task in [first, *admitted])
    deadline = time.monotonic() + 5  # a worker gives its slot back just after the task's outcome
    while scheduler.pending and time.monotonic() < deadline:
        time.sleep(0.002)
    assert scheduler.pending == 0 and scheduler.unfinished == 0
    scheduler.shutdown(1)


def test_a_worker_backs_off_while_a_busy_caller_keeps_the_gil() -> None:
    """After yielding, a worker that waited long for the GIL asks for it less often."""
    stop = threading.Event()

    def spin() -> None:  # pure Python: gives the GIL up only when the interpreter forces it (5 ms)
        while not stop.is_set():
            pass

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        time.sleep(0.01)
        pauses = [scheduler_module._YIELD_S]
        while len(pauses) < 40 and pauses[-1] < scheduler_module._YIELD_MAX_S:
            pauses.append(Scheduler._yield(pauses[-1]))
        stop.set()
        spinner.join()
        # nobody holds the GIL now: the pause resets (a loaded machine may deschedule this thread
        # on some attempts, which reads as a late GIL; a reset in any of them shows the rule)
        calm = [Scheduler._yield(scheduler_module._YIELD_MAX_S) for _ in range(20)]
    finally:
        stop.set()
    assert pauses[-1] == scheduler_module._YIELD_MAX_S  # the GIL came back late: doubling, capped
    climb = pauses[len(pauses) - 1 - pauses[::-1].index(0.001) :]  # the last climb from the first step
    assert all(b == min(2 * a, scheduler_module._YIELD_MAX_S) for a, b in zip(climb, climb[1:]))
    assert scheduler_module._YIELD_S in calm  # the GIL came back at once: reset


def test_a_finished_candidate_is_not_kept_until_its_deadline(tracer_provider: TracerProvider) -> None:
    """The watchdog holds running tasks only: a finished candidate's result (and whatever it
    references) is freed at once, not kept until its timeout, as a heap of started tasks did."""
    import gc
    import weakref

    class Output:
        pass

    outputs: list[weakref.ref[Output]] = []
    scheduler = Scheduler(workers=2, max_pending=64)
    shadow = Shadow([{"model": "p"}, {"model": "c"}], tracer_provider=tracer_provider, scheduler=scheduler, timeout=60)

    @shadow.experiment()
    def generate(config: Config) -> Any:
        out = Output()
        if config["model"] == "c":
            outputs.append(weakref.ref(out))
        return out

    gc.disable()  # only reference counting frees things: nothing may be held
    try:
        for _ in range(20):
            generate()
        assert scheduler.flush(5)
        _wait_idle(scheduler, 2)
        assert len(outputs) == 20
        assert [ref for ref in outputs if ref() is not None] == []
        assert scheduler._running == set()
    finally:
        gc.enable()
        scheduler.shutdown(1)


def test_a_queued_candidate_keeps_few_objects_alive() -> None:
    """A backlog must not feed the garbage collector: each queued candidate keeps its task, its job,
    the caller's arguments and a context copy alive (about 6 objects the collector counts), not the
    primary's span or span context (every 700 trigger a collection, which runs in whichever thread
    allocates next, often the caller's)."""
    import gc

    from opentelemetry.sdk.trace import SpanProcessor

    provider = TracerProvider()  # spans are processed and let go (an exporter would keep them)
    provider.add_span_processor(SpanProcessor())
    release = threading.Event()
    scheduler = Scheduler(workers=1, max_pending=10_000)
    shadow = Shadow([{"model": "p"}, {"model": "c"}], tracer_provider=provider, scheduler=scheduler, timeout=30)

    @shadow.experiment()
    def generate(prompt: str, config: Config) -> str:
        if config["model"] == "c":
            release.wait(10)
        return prompt

    generate("first")  # the one worker now waits in this candidate: the rest queue up
    deadline = time.monotonic() + 5
    while scheduler.idle_workers and time.monotonic() < deadline:
        time.sleep(0.002)
    gc.collect()
    gc.disable()
    try:
        before = gc.get_count()[0]
        for _ in range(300):
            generate("hi")
        per_call = (gc.get_count()[0] - before) / 300
    finally:
        gc.enable()
        release.set()
    assert scheduler.pending == 301
    assert per_call <= 7, f"{per_call:.1f} objects kept alive per queued candidate"
    assert scheduler.flush(10)
    scheduler.shutdown(1)


def test_the_watchdog_stops_after_shutdown() -> None:
    scheduler = Scheduler(workers=1, max_pending=4)
    shadow = Shadow([{"model": "p"}, {"model": "c"}], scheduler=scheduler)

    @shadow.experiment()
    def generate(config: Config) -> str:
        return config["model"]

    generate()
    assert scheduler.flush(5)
    watchdogs = [t for t in scheduler._threads if t.name == "otel-shadow-watchdog"]
    assert len(watchdogs) == 1 and watchdogs[0].is_alive()
    scheduler.shutdown(1)
    watchdogs[0].join(3)  # it looks at least once a second
    assert not watchdogs[0].is_alive()


def test_the_watchdog_times_out_due_candidates_earliest_deadline_first() -> None:
    """A waiter on a later candidate must not see it time out while an earlier one still runs."""
    scheduler = Scheduler(workers=4, max_pending=8)
    tasks = [CandidateTask(None, None, timeout=1.0, want_event=False) for _ in range(4)]  # type: ignore[arg-type]
    for started, task in zip((300, 100, 400, 200), tasks):
        task.started_ns = started
        scheduler._running.add(task)
    now = 200 + 1_000_000_000  # the tasks started at 100 and 200 are due, the others not yet
    due, soonest = scheduler._due(now)
    assert [t.started_ns for t in due] == [100, 200]
    assert soonest == 300 + 1_000_000_000
    assert {t.started_ns for t in scheduler._running} == {300, 400}  # due ones leave the watch
