"""Parquet segments that keep failing show on /healthz (with why), and the first one written clears it.

A real collector on loopback with ``--segments``, a segment every 0.2 s and ``--unhealthy-after``
of 2 s. The segments folder is really broken: made read-only with chmod (skipped where that does
not stop writes: root, unless run without CAP_DAC_OVERRIDE, e.g. under ``setpriv --bounding-set
-dac_override,-dac_read_search``), or, in every run, each table's folder replaced by a plain file,
so that creating the hour's folder fails with ENOTDIR whoever runs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from otel_shadow.collector import Collector
from otel_shadow.store.segments import SEGMENT_TABLES, open_segments

from ..store.otlp import pair, request
from .test_otlp import http_url

UNHEALTHY_AFTER_S = 2.0


def _wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _break_with_chmod(root: Path) -> Callable[[], None]:
    root.chmod(0o500)
    try:  # root (CAP_DAC_OVERRIDE) writes whatever the mode: then this case says nothing
        (root / "probe").mkdir()
    except PermissionError:
        return lambda: root.chmod(0o700)
    (root / "probe").rmdir()
    root.chmod(0o700)
    pytest.skip("chmod does not stop this user's writes (root): the file-in-the-way case covers it")


def _break_with_files(root: Path) -> Callable[[], None]:
    blockers = [root / f"table={table}" for table in SEGMENT_TABLES]
    for blocker in blockers:
        blocker.write_text("not a folder\n")

    def repair() -> None:
        for blocker in blockers:
            blocker.unlink()

    return repair


@pytest.mark.parametrize("breaker", [_break_with_chmod, _break_with_files], ids=["chmod", "file-in-the-way"])
def test_segments_failing_longer_than_unhealthy_after_make_healthz_503_with_the_reason_then_recover(
    tmp_path: Path, start_collector: Callable[..., Collector], breaker: Callable[[Path], Callable[[], None]]
) -> None:
    root = tmp_path / "segments"
    collector = start_collector(segments=str(root), segment_seconds=0.2, unhealthy_after_s=UNHEALTHY_AFTER_S)
    assert collector.segments is not None
    stats = collector.segments.stats
    with httpx.Client() as client:
        assert client.get(http_url(collector, "/healthz")).text == "ok"
        broken_at = time.monotonic()
        repair = breaker(root)
        spans = [s for _ in range(20) for s in pair()]
        body = request(*spans).SerializeToString()
        sent = client.post(http_url(collector), content=body, headers={"Content-Type": "application/x-protobuf"})
        assert sent.status_code == 200, sent.text  # ingest is not held up: the rows wait in DuckDB

        _wait_for(lambda: stats.segment_failures >= 1)
        early = client.get(http_url(collector, "/healthz"))
        if time.monotonic() - broken_at < UNHEALTHY_AFTER_S:  # failing for less than the period: still healthy
            assert early.status_code == 200, early.text

        _wait_for(lambda: client.get(http_url(collector, "/healthz")).status_code == 503)
        unhealthy = client.get(http_url(collector, "/healthz")).text
        assert unhealthy.startswith("unhealthy: no Parquet segment written for "), unhealthy
        assert f"(more than {UNHEALTHY_AFTER_S:g} s; the rows wait in the DuckDB file)" in unhealthy
        reason = "Permission denied" if breaker is _break_with_chmod else "Not a directory"
        assert reason in unhealthy, unhealthy
        assert str(tmp_path) not in unhealthy  # /healthz answers anyone: no path in it
        ready = client.get(http_url(collector, "/readyz"))
        assert (ready.status_code, ready.text) == (200, "ready")  # ingest still commits
        assert collector.stats()["healthy"] is False
        assert collector._store is not None and collector._store.query("SELECT count(*) FROM spans").rows == [
            (len(spans),)
        ]

        repair()
        _wait_for(lambda: client.get(http_url(collector, "/healthz")).status_code == 200)
        assert client.get(http_url(collector, "/healthz")).text == "ok"
    assert stats.last_segment_error is None and collector.stats()["healthy"] is True
    # the segment that failed was written once the folder was usable: every acknowledged span is in one
    assert collector._store.query("SELECT count(*) FROM spans").rows == [(0,)]
    with open_segments(root) as segments:
        assert segments.query("SELECT count(*) FROM spans").rows == [(len(spans),)]
