"""The collector service: start order, graceful shutdown, health, self-metrics, structured logs.

Start: open the store (the one writer) → pipeline → gRPC and HTTP receivers → publish
``<db>.collector.json`` (how readers reach the SQL endpoint). Stop (SIGTERM): readiness goes false,
running SQL queries are interrupted, receivers stop accepting and finish what they are handling, the
pipeline commits everything queued, a checkpoint runs, the store closes, the info file is removed.
All of it within ``drain_timeout_s``, whatever is running: a step that overruns is abandoned
(logged; nothing it holds was acknowledged) and ``stop`` returns with ``forced`` set.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..environment_variables import DEFAULT_DB
from ..redaction import load_redaction_rules
from ..store import Store, Writer
from ..store.retention import Retention
from .decode import DecodePool, default_workers
from .pipeline import Pipeline
from .receiver_grpc import GrpcReceiver
from .receiver_http import build_app
from .redact import IngestRedactor
from .segment_sink import SegmentSink
from .sql_endpoint import SqlEndpoint, SqlLimits

__all__ = ["Collector", "CollectorConfig", "configure_logging"]

logger = logging.getLogger("otel_shadow.collector")


@dataclass
class CollectorConfig:
    """Every setting of the collector; each has a CLI flag and an environment variable."""

    db: str = DEFAULT_DB
    host: str = "127.0.0.1"
    grpc_port: int = 4317
    http_port: int = 4318
    store_all: bool = False  # default: only spans of shadow experiments (and GenAI spans); the rest counted
    max_request_bytes: int = 64 * 2**20  # OTLP's recommended default, applied after decompression
    max_inflight_bytes: int = 128 * 2**20  # beyond it: 503 / UNAVAILABLE with a retry hint
    max_group: int = 16  # requests committed together (group commit)
    max_wait_ms: float = 2.0
    grpc_workers: int = 16
    http_max_concurrency: int = 64
    decode_workers: int | None = None  # processes that decode OTLP; None: one per core (up to 4) when > 1 core
    token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    checkpoint_interval_s: float = 60.0
    stats_interval_s: float = 30.0
    drain_timeout_s: float = 10.0  # SIGTERM: the process is gone within this, whatever is running
    unhealthy_after_s: float = 300.0  # /healthz says 503 once the store has not committed for this long
    sql: bool = True  # /v1/sql, always behind a token (--token, or one made per run: see sql_endpoint)
    sql_limits: SqlLimits = field(default_factory=SqlLimits)
    retention_s: float | None = None  # traces older than this are deleted, in small steps between commits
    retention_export: str | None = None  # export them to Parquet here first
    retention_interval_s: float = 600.0  # how often a retention pass starts
    redact_rules: str | None = None  # redaction rules applied to content at ingest (docs/retention.md)
    segments: str | None = None  # also close the committed rows into Parquet segments in this folder
    segment_seconds: float = 60.0
    collector_id: str | None = None  # names this collector's segment files (default: kept in the store)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Structured (JSON lines) logs on stderr for the collector's loggers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    root = logging.getLogger("otel_shadow")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


class Collector:
    """An OTLP receiver writing to one DuckDB file."""

    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self.started_at = time.time()
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._stop_deadline: float | None = None  # monotonic; set when stop begins
        self.forced = False  # stop abandoned a step that overran the drain timeout
        self._store: Store | None = None
        self.grpc: GrpcReceiver | None = None
        self._http_server: Any = None
        self._http_thread: threading.Thread | None = None
        self.http_port: int | None = None
        self.sql: SqlEndpoint | None = None
        self.retention: Retention | None = None
        self.redactor: IngestRedactor | None = None
        self.segments: SegmentSink | None = None
        # the SQL endpoint's token when the operator set none: known only to this OS user (info file)
        self.sql_token = config.token or secrets.token_urlsafe(32)

    @property
    def store(self) -> Store:
        """The open store, for in-process work beside ingest (the alert watch, wired by cli.py): it
        reads through ``Store.query`` and writes only tables of its own, on cursors of its own, since
        no other process can open the file while the collector holds it."""
        if self._store is None:
            from ..errors import StoreError

            raise StoreError("the collector's store is not open (not started, or stopped)")
        return self._store

    @property
    def info_path(self) -> Path:
        return Path(f"{self.config.db}.collector.json")

    def start(self) -> None:
        c = self.config
        _return_freed_buffers()
        tls = None
        if c.tls_cert or c.tls_key:
            if not (c.tls_cert and c.tls_key):
                from ..errors import ConfigError

                raise ConfigError("TLS needs both --tls-cert and --tls-key")
            tls = (Path(c.tls_key).read_bytes(), Path(c.tls_cert).read_bytes())
        if c.redact_rules:  # a bad rules file stops the start, before anything listens
            self.redactor = IngestRedactor(load_redaction_rules(c.redact_rules))
        self._store = Store.open(c.db, lock_wait_s=10.0)
        writer = Writer(self._store, shadow_only=not c.store_all, checkpoint_interval_s=c.checkpoint_interval_s)
        if c.segments is not None:
            try:
                self.segments = SegmentSink(
                    self._store,
                    c.segments,
                    interval_s=c.segment_seconds,
                    collector_id=c.collector_id,
                    unhealthy_after_s=c.unhealthy_after_s,
                )
                self.segments.start()  # first writes again what a kill left claimed
            except BaseException:
                self._shutdown_store()
                raise
        if c.retention_s is not None:
            self.retention = Retention(
                self._store,
                datetime.timedelta(seconds=c.retention_s),
                export_dir=c.retention_export,
                interval_s=c.retention_interval_s,
                list_in_background=True,
            )
        workers = default_workers() if c.decode_workers is None else c.decode_workers
        self.pipeline = Pipeline(
            writer,
            max_inflight_bytes=c.max_inflight_bytes,
            max_group=c.max_group,
            max_wait_ms=c.max_wait_ms,
            decode_pool=DecodePool(workers) if workers > 0 else None,
            unhealthy_after_s=c.unhealthy_after_s,
            maintenance=self.retention,
            processor=self.redactor,
        )
        if self.segments is not None:  # segments failing for --unhealthy-after: /healthz 503 with why
            self.pipeline.health_checks.append(self.segments.health)
        if c.sql:
            self.sql = SqlEndpoint(
                self._store, tokens=[self.sql_token], limits=c.sql_limits, loopback_only=_is_loopback(c.host)
            )
        try:
            self.grpc = GrpcReceiver(
                self.pipeline,
                host=c.host,
                port=c.grpc_port,
                max_request_bytes=c.max_request_bytes,
                token=c.token,
                tls=tls,
                workers=c.grpc_workers,
            )
            self.grpc.start()
            self._start_http()
        except BaseException:
            if self.segments is not None:
                self.segments.stop(0.0, final=False)
            self._shutdown_store()
            raise
        scheme = "https" if tls else "http"
        _write_private(
            self.info_path,
            {
                "pid": os.getpid(),
                "sql_url": f"{scheme}://{_client_host(c.host)}:{self.http_port}/v1/sql" if self.sql else None,
                "sql_token": self.sql_token if self.sql else None,
                "grpc_port": self.grpc.port,
                "http_port": self.http_port,
                "started_at": self.started_at,
            },
        )
        logger.info(
            "collector started",
            extra={
                "fields": {
                    "db": c.db,
                    "grpc": f"{c.host}:{self.grpc.port}",
                    "http": f"{c.host}:{self.http_port}",
                    "store_all": c.store_all,
                }
            },
        )
        if c.token is None and not _is_loopback(c.host):
            logger.warning(
                "listening on %s with no token: anyone who can reach this address can write spans; "
                "set --token (OTEL_SHADOW_COLLECTOR_TOKEN) or bind to 127.0.0.1",
                c.host,
            )
        exposed = _readable_by_others(c.db)
        if exposed:
            logger.warning(
                "%s: other users of this machine can read the database (captured content included); "
                "chmod 700 its folder, or start the collector under umask 077 (docs/retention.md)",
                exposed,
            )
        threading.Thread(target=self._report_stats, name="otel-shadow-stats", daemon=True).start()

    def _start_http(self) -> None:
        import uvicorn

        c = self.config
        app = build_app(self.pipeline, self.sql, max_request_bytes=c.max_request_bytes, token=c.token, stats=self.stats)
        config = uvicorn.Config(
            app,
            host=c.host,
            port=c.http_port,
            log_level="warning",
            access_log=False,
            limit_concurrency=c.http_max_concurrency,
            ssl_certfile=c.tls_cert,
            ssl_keyfile=c.tls_key,
            lifespan="off",
        )
        server = uvicorn.Server(config)
        self._http_server = server
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            async def main() -> None:
                await server.serve()

            try:
                asyncio.run(main())
            except BaseException as exc:  # startup failure (port in use…)
                failure.append(exc)
            finally:
                started.set()

        self._http_thread = threading.Thread(target=serve, name="otel-shadow-http", daemon=True)
        self._http_thread.start()
        deadline = time.monotonic() + 10
        while not server.started and not started.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            raise OSError(
                f"cannot listen for OTLP/HTTP on {c.host}:{c.http_port}: {failure[0] if failure else 'timed out'}"
            )
        sockets = [s for srv in server.servers for s in srv.sockets]
        self.http_port = sockets[0].getsockname()[1] if sockets else c.http_port

    def stats(self) -> dict[str, Any]:
        snapshot = self.pipeline.stats.snapshot()
        pool = self.pipeline.decode_pool
        snapshot.update(
            inflight_bytes=self.pipeline.inflight_bytes,
            ready=self.pipeline.ready,
            healthy=self.pipeline.health() is None,
            decode_pool_restarts=pool.restarts if pool is not None else 0,
            uptime_s=time.time() - self.started_at,
            rss_bytes=_rss_bytes(),
        )
        if self.redactor is not None:
            snapshot.update({f"redaction_{k}": v for k, v in vars(self.redactor.stats).items()})
        if self.retention is not None and self.retention.last_report is not None:
            snapshot["retention_last_pass"] = self.retention.last_report.as_dict() | {
                "files": len(self.retention.last_report.files)
            }
        if self.segments is not None:
            snapshot.update(self.segments.stats.snapshot())
        return snapshot

    def _report_stats(self) -> None:
        while not self._stopped.wait(self.config.stats_interval_s):
            logger.info("stats", extra={"fields": self.stats()})

    def wait(self) -> None:
        """Until stopped; also returns (with ``forced`` set) once a stop passes its deadline, so
        the process exits in time even when a stop step is stuck in native code."""
        while not self._stopped.wait(0.1):
            deadline = self._stop_deadline
            if deadline is not None and time.monotonic() > deadline:
                logger.error("stopping did not finish within the drain timeout; exiting anyway")
                self.forced = True
                return

    def stop(self, grace: float | None = None) -> None:
        """Graceful and bounded: stop accepting, finish in-flight requests, commit, checkpoint,
        close, all within ``grace`` s (default ``drain_timeout_s``); a step that overruns is
        abandoned and logged (nothing it holds was acknowledged, so its clients retry)."""
        grace = self.config.drain_timeout_s if grace is None else grace
        with self._stop_lock:
            if self._stop_deadline is not None:
                self._stopped.wait(grace)
                return
            self._stop_deadline = deadline = time.monotonic() + grace
        try:
            self._stop(deadline)
        except Exception:  # the stop thread must not die with the process still running
            logger.exception("error while stopping")
            self.forced = True
        finally:
            self.info_path.unlink(missing_ok=True)
            self._stopped.set()

    def _stop(self, deadline: float) -> None:
        def left(share: float = 1.0) -> float:
            return max(0.0, (deadline - time.monotonic()) * share)

        logger.info("collector stopping")
        self.pipeline.stop_accepting()  # readiness false at once; new requests refused retryably
        if self.sql is not None:
            self.sql.close()  # running queries are interrupted: a long one must not hold the store open
        # receivers: in-flight requests finish (their commits go on meanwhile); the rest of the
        # time is kept for the queue, the decode workers and the store
        receivers = left(0.6)
        if self._http_server is not None:
            self._http_server.should_exit = True
        if self.grpc is not None:
            self.grpc.stop(max(0.0, receivers - 1.0))  # waits up to its grace + 1 s
        if self._http_thread is not None:
            self._http_thread.join(left(0.5))
            if self._http_thread.is_alive():
                logger.error("OTLP/HTTP requests still running at the drain timeout; abandoned")
                self.forced = True
        if not self.pipeline.close(left(0.8)):
            self.forced = True
        segments = self.segments
        if segments is not None and not _within(segments.stop, left(0.5)):
            logger.error("the last segment was not closed within the drain timeout (its rows stay in the DuckDB file)")
            self.forced = True
        if not _within(self._shutdown_store, left()):
            logger.error(
                "the store did not close within the drain timeout (its WAL holds every committed batch); exiting anyway"
            )
            self.forced = True
        logger.info("collector stopped", extra={"fields": {**self.stats(), "forced": self.forced}})

    def _shutdown_store(self) -> None:
        if self._store is not None:
            try:
                self._store.close()
            finally:
                self._store = None


def _within(step: Any, timeout: float) -> bool:
    """Run ``step`` on a thread of its own; False if it has not finished within ``timeout`` s."""
    thread = threading.Thread(target=step, name="otel-shadow-stop-step", daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()


def _write_private(path: Path, info: dict[str, Any]) -> None:
    """Write ``info`` as JSON readable by this OS user only (it holds the SQL token), atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an old file of the same name may have had wider permissions
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _return_freed_buffers() -> None:
    """Let freed request-sized buffers go back to the system (glibc only; elsewhere a no-op).

    glibc raises its mmap threshold to the size of each large buffer freed (up to 32 MiB), so
    buffers the size of request bodies are then carved from per-thread heaps that keep them after
    they are freed: RSS stayed near its peak. A fixed 1 MiB threshold maps each larger buffer on
    its own and unmaps it when it is freed (docs/performance.md, "Memory at the limits").
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 2**20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc (musl…)
        pass


def _readable_by_others(db: str) -> str | None:
    """Why users other than this one can read ``db`` (None when they cannot, or for :memory:):
    the file is readable by group or others and its folder lets them in."""
    import stat

    if db == ":memory:":
        return None
    try:
        file_mode = os.stat(db).st_mode
        folder_mode = os.stat(Path(db).resolve().parent).st_mode
    except OSError:
        return None
    for who, read, enter in (("others", stat.S_IROTH, stat.S_IXOTH), ("its group", stat.S_IRGRP, stat.S_IXGRP)):
        if file_mode & read and folder_mode & enter:
            return f"'{db}' is readable by {who}"
    return None


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None
