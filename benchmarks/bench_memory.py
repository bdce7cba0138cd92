"""Peak memory of a real collector driven to each of its byte limits (issue 11).

A collector subprocess on loopback (default settings: 128 MiB in flight, 64 MiB per request, decode
worker processes) is fed, with bounded request counts, the loads that used to grow it without bound:

* ``decode_cache_large``: 20 requests, each with three distinct 10 MB attributes (once 3.3 GB);
* ``decode_cache_small``: distinct attributes just under the cache's entry limit, many times the
  cache's byte bound in total (drives the cache to its limit and past it, so it clears);
* ``http_declared``: 48 concurrent 60 MiB OTLP/HTTP bodies with a Content-Length (once 6.3 GB);
* ``http_chunked``: the same without a Content-Length (held chunk by chunk as they arrive).

Each sender retries a refused request (503) at most twice, after its Retry-After. Reported: peak
RSS of the collector's process tree (the collector and its decode workers, sampled every 20 ms),
its idle RSS before the load, requests stored and refused, against the documented bound
(in-flight limit + fixed overhead, docs/performance.md).

Run: python benchmarks/bench_memory.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
from _harness import save

sys.path.insert(0, str(Path(__file__).parent.parent))
from tests.store.otlp import request, span

MiB = 2**20


class Collector:
    """``otel-shadow collector`` in a subprocess, with its process tree's RSS sampled."""

    def __init__(self, folder: str, extra: list[str]) -> None:
        self.db = os.path.join(folder, "memory.duckdb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "otel_shadow",
                "collector",
                "--db",
                self.db,
                "--grpc-port",
                "0",
                "--http-port",
                "0",
                "--log-level",
                "WARNING",
                "--no-sql",
                *extra,
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        info = Path(f"{self.db}.collector.json")
        while not info.exists():
            assert self.process.poll() is None, self.process.stderr.read()  # type: ignore[union-attr]
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{json.loads(info.read_text())['http_port']}/v1/traces"
        time.sleep(1.0)  # decode workers up and imported
        self.idle_rss = self.rss()
        self.peak_rss = self.idle_rss
        self.peak_main = self.peak_workers = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def rss(self) -> int:
        return sum(self.rss_parts())

    def rss_parts(self) -> tuple[int, int]:
        """(the collector process, its decode workers)."""
        try:
            root = psutil.Process(self.process.pid)
            return root.memory_info().rss, sum(p.memory_info().rss for p in root.children(recursive=True))
        except psutil.Error:
            return 0, 0

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            main, workers = self.rss_parts()
            self.peak_rss = max(self.peak_rss, main + workers)
            self.peak_main = max(self.peak_main, main)
            self.peak_workers = max(self.peak_workers, workers)

    def stop(self) -> None:
        self._stop.set()
        self._sampler.join()
        self.process.terminate()
        self.process.wait(120)


def post(url: str, body: Callable[[], Iterator[bytes]], length: int | None, tries: int = 3) -> str:
    headers = {"Content-Type": "application/x-protobuf"}
    if length is not None:
        headers["Content-Length"] = str(length)
    for _ in range(tries):
        try:
            answer = httpx.post(url, content=body(), headers=headers, timeout=300)
        except httpx.HTTPError:  # refused before the body was sent whole: the server closed
            time.sleep(1.0)
            continue
        if answer.status_code == 200:
            return "stored"
        if answer.status_code != 503:
            return f"http {answer.status_code}"
        time.sleep(float(answer.headers.get("retry-after", "1")))
    return "refused"


def shadow_span(name: str, attrs: dict[str, object]) -> bytes:
    return request(span(name, {"shadow.experiment": "memory", **attrs})).SerializeToString()


def decode_cache_large(url: str, requests: int) -> list[str]:
    outcomes = []
    for r in range(requests):
        body = shadow_span("large", {f"blob{k}": f"{r}-{k}-" + "x" * 10_000_000 for k in range(3)})
        outcomes.append(post(url, lambda b=body: iter([b]), len(body)))  # type: ignore[misc]
    return outcomes


def decode_cache_small(url: str, requests: int) -> list[str]:
    """Past the writer's checkpoint too (256 MiB of requests), so the rows DuckDB keeps until then
    are measured at their most."""
    outcomes = []
    for r in range(requests):  # 2,000 distinct ~3.9 KB attributes a request: 8 MB of new cache entries
        attrs = {f"k{k}": f"{r}-{k}-" + "y" * 3_900 for k in range(2_000)}
        body = shadow_span("small", attrs)
        outcomes.append(post(url, lambda b=body: iter([b]), len(body)))  # type: ignore[misc]
    return outcomes


def concurrent_bodies(url: str, senders: int, size: int, declared: bool) -> list[str]:
    """``senders`` bodies of ``size`` bytes at once; each is a distinct request (its own small
    first part) followed by one shared large part, streamed in 1 MiB slices, so the load process
    does not hold ``senders`` copies."""
    shared = shadow_span("body", {"pad": "z" * size})
    view = memoryview(shared)

    def body(i: int) -> Callable[[], Iterator[bytes]]:
        head = shadow_span(f"head-{i}", {"i": i})  # concatenated top-level fields: one valid request

        def chunks() -> Iterator[bytes]:
            yield head
            for offset in range(0, len(view), MiB):
                yield bytes(view[offset : offset + MiB])

        return chunks

    with ThreadPoolExecutor(senders) as pool:
        futures = [
            pool.submit(post, url, body(i), len(shadow_span(f"head-{i}", {"i": i})) + len(shared) if declared else None)
            for i in range(senders)
        ]
        return [f.result() for f in futures]


def run(name: str, load: Callable[[str], list[str]], extra: list[str] | None = None) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        collector = Collector(folder, extra or [])
        started = time.monotonic()
        try:
            outcomes = load(collector.url)
        finally:
            collector.stop()
    result = {
        "seconds": round(time.monotonic() - started, 1),
        "requests": len(outcomes),
        "stored": outcomes.count("stored"),
        "refused_after_retries": outcomes.count("refused"),
        "other": sorted({o for o in outcomes if o not in ("stored", "refused")}),
        "idle_rss_mib": round(collector.idle_rss / MiB, 1),
        "peak_rss_mib": round(collector.peak_rss / MiB, 1),
        "peak_over_idle_mib": round((collector.peak_rss - collector.idle_rss) / MiB, 1),
        "peak_collector_process_mib": round(collector.peak_main / MiB, 1),
        "peak_decode_workers_mib": round(collector.peak_workers / MiB, 1),
    }
    print(name, json.dumps(result), flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    scale = 4 if args.quick else 1
    result = {
        "in_flight_limit_mib": 128,
        "decode_cache_large": run("decode_cache_large", lambda url: decode_cache_large(url, 20 // scale)),
        "decode_cache_small": run("decode_cache_small", lambda url: decode_cache_small(url, 80 // scale)),
        "http_declared": run("http_declared", lambda url: concurrent_bodies(url, 48 // scale, 60 * MiB, True)),
        "http_chunked": run("http_chunked", lambda url: concurrent_bodies(url, 48 // scale, 60 * MiB, False)),
    }
    path = save("memory" + ("-quick" if args.quick else ""), result)
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
