"""The ``otel-shadow`` command: a thin shell over the library (parse, call one function, render).

Every command finds the database through ``--db`` or ``OTEL_SHADOW_DB``. Library errors become one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import Any

import click

from . import __version__
from .environment_variables import (
    DEFAULT_DB,
    OTEL_SHADOW_CLICKHOUSE,
    OTEL_SHADOW_COLLECTOR_TOKEN,
    OTEL_SHADOW_DB,
)
from .errors import ShadowError
from .store.database import json_value

__all__ = ["cli", "main"]

db_option = click.option(
    "--db",
    envvar=OTEL_SHADOW_DB,
    default=DEFAULT_DB,
    show_default=True,
    help=f"DuckDB database path (or set {OTEL_SHADOW_DB}).",
)
segments_option = click.option(
    "--segments",
    "segments",
    type=click.Path(file_okay=False),
    default=None,
    help="Read a folder (or s3://bucket/prefix) of Parquet segments written by collectors with --segments, as one store, instead of --db.",
)
clickhouse_option = click.option(
    "--clickhouse",
    envvar=OTEL_SHADOW_CLICKHOUSE,
    default=None,
    metavar="URL",
    help="Read a ClickHouse database instead of --db: http(s)://user:password@host:8123/database, or chdb:FOLDER (docs/clickhouse.md).",
)
format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)


def render_rows(columns: list[str], rows: list[tuple[Any, ...]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([{c: json_value(v) for c, v in zip(columns, row)} for row in rows], indent=2, default=str)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[json_value(v) for v in row] for row in rows])
        return buffer.getvalue().rstrip("\n")
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*["" if v is None else str(json_value(v)) for v in row])
    console = Console(file=io.StringIO(), width=200, force_terminal=False)
    console.print(table)
    out: str = console.file.getvalue().rstrip("\n")  # type: ignore[attr-defined]
    return out


@click.group()
@click.version_option(__version__, prog_name="otel-shadow")
def cli() -> None:
    """Shadow testing for LLM applications, built on OpenTelemetry."""


@cli.command()
@click.argument("sql")
@db_option
@segments_option
@clickhouse_option
@format_option
@click.option("--token", envvar=OTEL_SHADOW_COLLECTOR_TOKEN, default=None, help="Collector bearer token.")
def sql(sql: str, db: str, segments: str | None, clickhouse: str | None, fmt: str, token: str | None) -> None:
    """Run read-only SQL against the store (statements that write are refused).

    Reads the file directly, or asks the collector that holds it. Use - to read SQL from stdin.

    Example:

        otel-shadow sql "SELECT * FROM shadow_summary" --format csv
        otel-shadow sql --segments /data/segments "SELECT * FROM shadow_summary"
    """
    from .access import open_reader

    if sql == "-":
        sql = sys.stdin.read()
    reader = open_reader(db, token, segments=segments, clickhouse=clickhouse)
    try:
        result = reader.query(sql)
    finally:
        reader.close()
    click.echo(render_rows(result.columns, result.rows, fmt))


@cli.command()
@db_option
@segments_option
@clickhouse_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "html"]),
    default="table",
    show_default=True,
    help="html: one self-contained page (redirect it to a file).",
)
@click.option("--max-p95-ratio", type=float, default=None, help="Candidate/primary p95 latency limit (1.2).")
@click.option("--max-error-rate-increase", type=float, default=None, help="Allowed error-rate increase (0.0).")
@click.option("--min-pairs", type=int, default=None, help="Pairs needed for a verdict (100).")
@click.option("--min-exact-match-rate", type=float, default=None, help="Optional agreement floor, 0–1.")
@click.option("--min-coverage", type=float, default=None, help="Optional share of calls shadowed, 0–1.")
@click.option(
    "--thresholds", "thresholds_file", type=click.Path(dir_okay=False), default=None, help="YAML file of thresholds."
)
@click.option(
    "--inference",
    type=click.Choice(["anytime", "fixed"]),
    default=None,
    help="anytime (default): valid however often you look; fixed: narrower, valid only for one read at a pre-registered size.",
)
@click.option(
    "--segment-by",
    default=None,
    help="Also judge each value of this attribute of the primary execution (e.g. http.route).",
)
@click.option(
    "--fail-on",
    type=click.Choice(["FAIL", "MARGINAL"]),
    default=None,
    help="Exit 1 when any candidate FAILs (FAIL), or is anything but PASS (MARGINAL).",
)
@click.option("--check", is_flag=True, help="Same as --fail-on FAIL.")
@click.option("--token", envvar=OTEL_SHADOW_COLLECTOR_TOKEN, default=None, help="Collector bearer token.")
def report(
    db: str,
    segments: str | None,
    clickhouse: str | None,
    fmt: str,
    max_p95_ratio: float | None,
    max_error_rate_increase: float | None,
    min_pairs: int | None,
    min_exact_match_rate: float | None,
    min_coverage: float | None,
    thresholds_file: str | None,
    inference: str | None,
    segment_by: str | None,
    fail_on: str | None,
    check: bool,
    token: str | None,
) -> None:
    """Compare every candidate with its primary and give a verdict: PASS, MARGINAL, FAIL, INSUFFICIENT.

    Example:

        otel-shadow report --min-pairs 10000 --format json --fail-on FAIL
    """
    from .access import open_reader

    thresholds = _thresholds(
        thresholds_file,
        max_p95_ratio=max_p95_ratio,
        max_error_rate_increase=max_error_rate_increase,
        min_pairs=min_pairs,
        min_exact_match_rate=min_exact_match_rate,
        min_coverage=min_coverage,
        inference=inference,
    )
    reader = open_reader(db, token, segments=segments, clickhouse=clickhouse)
    try:
        text, result = _render_report(reader, thresholds, fmt, segment_by)
    finally:
        reader.close()
    click.echo(text)
    if result.fails_on(fail_on or "FAIL") and (fail_on or check):
        sys.exit(1)


def _as_tuple(result: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
    return result.columns, result.rows


def _thresholds(path: str | None, **overrides: Any) -> Any:
    from .analysis import Thresholds
    from .errors import ConfigError

    values: dict[str, Any] = {}
    if path:
        from .safe_yaml import load_yaml, read_text_file

        _, loaded = load_yaml(read_text_file(path, 1 << 20, "thresholds file"), path, "a thresholds file")
        loaded = loaded or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"thresholds file '{path}' must hold a mapping of threshold: value")
        loaded.pop("alerts", None)  # the watch's section (docs/alerts.md), validated by the watch
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Thresholds.from_mapping(values)


def _render_report(reader: Any, thresholds: Any, fmt: str, segment_by: str | None = None) -> tuple[str, Any]:
    from .analysis import build_report, render_html, render_json, render_text
    from .pricing import load_prices

    def query(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        return _as_tuple(reader.query(sql))

    prices = load_prices()
    result = build_report(query, thresholds, prices=prices, segment_by=segment_by)
    if fmt == "html":
        from .analysis.timeline import verdict_timeline

        return render_html(
            result, verdict_timeline(query, result, thresholds, prices=prices, segment_by=segment_by)
        ), result
    render = {"json": render_json}.get(fmt, render_text)
    return render(result), result


@cli.command()
@db_option
@click.option("--requests", "n", default=400, show_default=True, help="Simulated user requests.")
@click.option("--fresh/--keep", default=True, show_default=True, help="Start from an empty database.")
@click.option(
    "--llm", default=None, help="Shadow real openai-client calls: 'local' (the shipped simulated server) or a base URL."
)
@click.option("--primary-model", default="gpt-4o", show_default=True, help="With --llm: the model that answers.")
@click.option("--candidate-model", default="gpt-5-beta", show_default=True, help="With --llm: the model shadowed.")
def demo(db: str, n: int, fresh: bool, llm: str | None, primary_model: str, candidate_model: str) -> None:
    """Run the seed's shadow example with two SIMULATED models → DuckDB → report.

    With --llm, the same through the zero-code instrumentation: real openai-client calls to the
    shipped simulated server (--llm local) or to any OpenAI-compatible endpoint (--llm URL, key
    from OPENAI_API_KEY).

    Example:

        otel-shadow demo --db demo.duckdb --requests 1000
        otel-shadow demo --llm local --requests 200
    """
    from .access import open_reader
    from .analysis import Thresholds
    from .demo import run_demo, run_llm_demo

    if llm:
        run_llm_demo(db, n, fresh, llm, primary_model, candidate_model, echo=click.echo)
    else:
        run_demo(db, n, fresh, echo=click.echo)
    reader = open_reader(db)
    try:
        result = reader.query(
            "SELECT candidate_config_id, pairs, round(exact_match_rate, 3) AS exact_match, "
            "round(primary_error_rate, 3) AS primary_err, round(candidate_error_rate, 3) AS candidate_err, "
            "round(primary_p95_ms, 1) AS primary_p95_ms, round(candidate_p95_ms, 1) AS candidate_p95_ms "
            "FROM shadow_summary"
        )
        click.echo(f'otel-shadow sql --db {db} "SELECT … FROM shadow_summary"')
        click.echo(render_rows(result.columns, result.rows, "table"))
        click.echo(f"\notel-shadow report --db {db}")
        click.echo(_render_report(reader, Thresholds(), "table")[0])
    finally:
        reader.close()


@cli.command()
@db_option
@click.option(
    "--host", envvar="OTEL_SHADOW_COLLECTOR_HOST", default="127.0.0.1", show_default=True, help="Address to bind."
)
@click.option(
    "--grpc-port",
    envvar="OTEL_SHADOW_COLLECTOR_GRPC_PORT",
    default=4317,
    show_default=True,
    type=int,
    help="OTLP/gRPC port (0: any free port).",
)
@click.option(
    "--http-port",
    envvar="OTEL_SHADOW_COLLECTOR_HTTP_PORT",
    default=4318,
    show_default=True,
    type=int,
    help="OTLP/HTTP port (0: any free port).",
)
@click.option(
    "--store-all",
    envvar="OTEL_SHADOW_COLLECTOR_STORE_ALL",
    is_flag=True,
    help="Store every span, not only shadow experiments.",
)
@click.option(
    "--max-request-bytes",
    envvar="OTEL_SHADOW_COLLECTOR_MAX_REQUEST_BYTES",
    default=64 * 2**20,
    show_default=True,
    type=int,
)
@click.option(
    "--max-inflight-bytes",
    envvar="OTEL_SHADOW_COLLECTOR_MAX_INFLIGHT_BYTES",
    default=128 * 2**20,
    show_default=True,
    type=int,
)
@click.option(
    "--token", envvar=OTEL_SHADOW_COLLECTOR_TOKEN, default=None, help="Require this bearer token (OTLP and SQL)."
)
@click.option(
    "--tls-cert", envvar="OTEL_SHADOW_COLLECTOR_TLS_CERT", default=None, type=click.Path(exists=True, dir_okay=False)
)
@click.option(
    "--tls-key", envvar="OTEL_SHADOW_COLLECTOR_TLS_KEY", default=None, type=click.Path(exists=True, dir_okay=False)
)
@click.option(
    "--decode-workers",
    type=int,
    default=None,
    help="Processes that decode OTLP (default: one per core, up to 4; 0: inline).",
)
@click.option(
    "--sql/--no-sql",
    "sql_on",
    envvar="OTEL_SHADOW_COLLECTOR_SQL",
    default=True,
    show_default=True,
    help="Serve read-only SQL on /v1/sql (always behind a token: --token, or one made per run).",
)
@click.option(
    "--sql-timeout",
    envvar="OTEL_SHADOW_COLLECTOR_SQL_TIMEOUT",
    default=30.0,
    show_default=True,
    type=float,
    help="Seconds a /v1/sql query may run.",
)
@click.option(
    "--sql-max-result-bytes",
    envvar="OTEL_SHADOW_COLLECTOR_SQL_MAX_RESULT_BYTES",
    default=64 * 2**20,
    show_default=True,
    type=int,
    help="Largest /v1/sql result.",
)
@click.option(
    "--drain-timeout",
    envvar="OTEL_SHADOW_COLLECTOR_DRAIN_TIMEOUT",
    default=10.0,
    show_default=True,
    type=float,
    help="Seconds SIGTERM may take; the process exits within them, whatever is running.",
)
@click.option(
    "--unhealthy-after",
    envvar="OTEL_SHADOW_COLLECTOR_UNHEALTHY_AFTER",
    default=300.0,
    show_default=True,
    type=float,
    help="/healthz answers 503 once the store has not been able to commit for this many seconds.",
)
@click.option(
    "--log-level", default="INFO", show_default=True, type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"])
)
@click.option(
    "--segments",
    "segments",
    envvar="OTEL_SHADOW_COLLECTOR_SEGMENTS",
    type=click.Path(file_okay=False),
    default=None,
    help="Also close the committed rows into Parquet segments in this folder (docs/scaling.md); the DuckDB file keeps only what is not in one yet.",
)
@click.option(
    "--segment-seconds",
    envvar="OTEL_SHADOW_COLLECTOR_SEGMENT_SECONDS",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0.0, min_open=True),
    help="With --segments: seconds between segments.",
)
@click.option(
    "--collector-id",
    envvar="OTEL_SHADOW_COLLECTOR_ID",
    default=None,
    help="With --segments: the name of this collector's segment files (default: made once, kept in the DuckDB file).",
)
@click.option(
    "--retention",
    "retention_period",
    default=None,
    help="Delete traces older than this (30d, 12h), in small steps between commits (docs/retention.md).",
)
@click.option(
    "--retention-export",
    type=click.Path(file_okay=False),
    default=None,
    help="With --retention: export them to Parquet in this folder first.",
)
@click.option(
    "--retention-interval", default="10m", show_default=True, help="With --retention: time between retention passes."
)
@click.option(
    "--redact-rules",
    envvar="OTEL_SHADOW_REDACT_RULES",
    type=click.Path(dir_okay=False),
    default=None,
    help="Redact content attributes of incoming spans with these rules (the app side's OTEL_SHADOW_REDACT_RULES).",
)
@click.option(
    "--watch-thresholds",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also run the alert watch on this thresholds file (docs/alerts.md).",
)
@click.option(
    "--watch-interval", default="60s", show_default=True, help="With --watch-thresholds: time between checks (30s, 5m)."
)
@click.option("--webhook", default=None, help="With --watch-thresholds: POST each alert's JSON to this http(s) URL.")
@click.option(
    "--webhook-secret-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="File whose first line is sent as X-Otel-Shadow-Secret (default: OTEL_SHADOW_WEBHOOK_SECRET).",
)
def collector(
    db: str,
    host: str,
    grpc_port: int,
    http_port: int,
    store_all: bool,
    max_request_bytes: int,
    max_inflight_bytes: int,
    token: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    decode_workers: int | None,
    sql_on: bool,
    sql_timeout: float,
    sql_max_result_bytes: int,
    drain_timeout: float,
    unhealthy_after: float,
    log_level: str,
    segments: str | None = None,
    segment_seconds: float = 60.0,
    collector_id: str | None = None,
    retention_period: str | None = None,
    retention_export: str | None = None,
    retention_interval: str = "10m",
    redact_rules: str | None = None,
    watch_thresholds: str | None = None,
    watch_interval: str = "60s",
    webhook: str | None = None,
    webhook_secret_file: str | None = None,
) -> None:
    """Receive OTLP traces (gRPC :4317, HTTP :4318) and write them to DuckDB; SIGTERM stops it cleanly.

    Example:

        otel-shadow collector --db traces.duckdb --grpc-port 4317 --http-port 4318
        otel-shadow collector --db c1.duckdb --segments /data/segments --segment-seconds 60
    """
    import signal

    from .collector import Collector, CollectorConfig, configure_logging
    from .collector.sql_endpoint import SqlLimits

    configure_logging(log_level)
    alert_watch = None
    if watch_thresholds or webhook:  # every alert input checked before the collector starts
        from .rollout.watch import make_watch, parse_interval

        if not watch_thresholds:
            raise click.UsageError("--webhook needs --watch-thresholds FILE (the alert watch's thresholds)")
        if segments:  # the watch reads the DuckDB file, which --segments empties into Parquet: a partial verdict
            raise click.UsageError("--watch-thresholds cannot be combined with --segments (docs/alerts.md)")
        alert_watch, interval_s = (
            make_watch(watch_thresholds, webhook, webhook_secret_file),
            parse_interval(watch_interval),
        )
    service = Collector(
        CollectorConfig(
            db=db,
            host=host,
            grpc_port=grpc_port,
            http_port=http_port,
            store_all=store_all,
            max_request_bytes=max_request_bytes,
            max_inflight_bytes=max_inflight_bytes,
            token=token,
            tls_cert=tls_cert,
            tls_key=tls_key,
            decode_workers=decode_workers,
            sql=sql_on,
            sql_limits=SqlLimits(timeout_s=sql_timeout, max_result_bytes=sql_max_result_bytes),
            drain_timeout_s=drain_timeout,
            unhealthy_after_s=unhealthy_after,
            segments=segments,
            segment_seconds=segment_seconds,
            collector_id=collector_id,
            **_retention_settings(retention_period, retention_export, retention_interval),
            redact_rules=redact_rules,
        )
    )
    service.start()
    click.echo(
        f"otel-shadow collector: OTLP/gRPC {host}:{service.grpc.port if service.grpc else grpc_port}, "
        f"OTLP/HTTP {host}:{service.http_port}, database {db}",
        err=True,
    )

    import threading

    watch_stop = threading.Event()
    if alert_watch is not None:  # on a thread, through the collector's own connection (docs/alerts.md)
        from .rollout.watch import collector_store

        source = collector_store(lambda: service.store)
        threading.Thread(
            target=alert_watch.run,
            args=(source,),
            kwargs={"interval_s": interval_s, "stop": watch_stop},
            name="otel-shadow-watch",
            daemon=True,
        ).start()

    def on_signal(signum: int, frame: Any) -> None:
        watch_stop.set()
        threading.Thread(target=service.stop, name="otel-shadow-stop", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.wait()
    if service.forced:  # a step overran the drain timeout: exit now, not after joining its threads
        import os

        sys.stderr.flush()
        os._exit(1)


@cli.command()
@db_option
@segments_option
@clickhouse_option
@click.option(
    "--traces-table",
    default="otel_traces",
    show_default=True,
    help="With --clickhouse: the clickhouseexporter's traces_table_name (or database.table), where the captured content is.",
)
@click.option(
    "--embeddings",
    "embeddings",
    default=None,
    help="Embedding similarity: 'local' (pip install 'otel-shadow[embeddings-local]') or an OpenAI-compatible base URL (http://…/v1).",
)
@click.option("--embedding-model", default=None, help="With --embeddings URL: the endpoint's embeddings model.")
@click.option("--judge-model", default=None, help="Pairwise LLM judge: the model's name.")
@click.option(
    "--judge-base-url",
    default=None,
    help="The judge's endpoint (default: the provider's; key from OPENAI_API_KEY / ANTHROPIC_API_KEY).",
)
@click.option(
    "--judge-provider",
    type=click.Choice(["openai", "anthropic"]),
    default="openai",
    show_default=True,
    help="API the judge endpoint speaks.",
)
@click.option("--rubric", default=None, help="What the judge values: text, or a .yaml/.txt file.")
@click.option(
    "--bias-check",
    type=click.FloatRange(0.0, 1.0),
    default=0.1,
    show_default=True,
    help="Share of pairs judged both ways (position-bias check).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the A/B order and the bias-check sample.")
@click.option(
    "--budget-tokens",
    type=click.IntRange(min=1),
    default=None,
    help="Stop cleanly once this many tokens (judge + embeddings endpoint) are spent.",
)
@click.option(
    "--judge-budget-usd",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="Stop cleanly once the judge's calls cost this many US dollars (prices: the shared table, OTEL_SHADOW_PRICES).",
)
@click.option(
    "--rate", type=click.FloatRange(min=0.0, min_open=True), default=None, help="Judge requests per second, at most."
)
@click.option(
    "--concurrency", type=click.IntRange(1, 256), default=4, show_default=True, help="Judge requests in flight."
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Look at this many pairs at most (oldest first)."
)
@click.option("--experiment", default=None, help="Only this experiment.")
@click.option(
    "--replicates/--no-replicates",
    default=True,
    show_default=True,
    help="Also score replicate pairs (the noise floor).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=32,
    show_default=True,
    help="Scores written per batch (a kill loses at most one).",
)
@click.option(
    "--otlp-endpoint",
    default=None,
    help="Also send the scores as GenAI evaluation spans to this OTLP/gRPC endpoint (host:port).",
)
@click.option(
    "--otlp-insecure/--otlp-tls", default=None, help="Plaintext (or TLS) to --otlp-endpoint (default: the exporter's)."
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Summary format."
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar on stderr (default: when stderr is a terminal)."
)
@click.option("--token", envvar=OTEL_SHADOW_COLLECTOR_TOKEN, default=None, help="Collector bearer token.")
def score(
    db: str,
    segments: str | None,
    clickhouse: str | None,
    traces_table: str,
    embeddings: str | None,
    embedding_model: str | None,
    judge_model: str | None,
    judge_base_url: str | None,
    judge_provider: str,
    rubric: str | None,
    bias_check: float,
    seed: int,
    budget_tokens: int | None,
    judge_budget_usd: float | None,
    rate: float | None,
    concurrency: int,
    limit: int | None,
    experiment: str | None,
    replicates: bool,
    batch_size: int,
    otlp_endpoint: str | None,
    otlp_insecure: bool | None,
    fmt: str,
    progress: bool | None,
    token: str | None,
) -> None:
    """Score captured pairs: embedding similarity and a pairwise LLM judge, into shadow_scores.

    Only pairs not yet scored by the same scorer config are scored (the store is the cache), so a
    run can be stopped and started again. Needs captured content (see docs/scoring.md).

    Example:

        otel-shadow score --embeddings local --judge-model gpt-4o-mini --judge-budget-usd 5.00
        otel-shadow score --clickhouse http://reader:secret@clickhouse:8123/otel --otlp-endpoint otelcol:4317 --embeddings local
    """
    from .scoring import (
        Judge,
        JudgeConfig,
        ScoreOptions,
        load_rubric,
        make_embedder,
        run_scoring,
    )

    embedder = make_embedder(embeddings, embedding_model) if embeddings else None
    judge = None
    if judge_model:
        config = JudgeConfig(
            model=judge_model,
            provider=judge_provider,
            base_url=judge_base_url,
            rubric=load_rubric(rubric),
            bias_check=bias_check,
            seed=seed,
        )
        judge = Judge(config)
    options = ScoreOptions(
        experiment=experiment,
        limit=limit,
        replicates=replicates,
        batch_size=batch_size,
        concurrency=concurrency,
        rate=rate,
        budget_tokens=budget_tokens,
        judge_budget_usd=judge_budget_usd,
        otlp_endpoint=otlp_endpoint,
        otlp_insecure=otlp_insecure,
        token=token,
        traces_table=traces_table,
    )
    summary = run_scoring(
        db,
        embedder=embedder,
        judge=judge,
        options=options,
        progress=sys.stderr.isatty() if progress is None else progress,
        segments=segments,
        clickhouse=clickhouse,
    )
    if fmt == "json":
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        for line in summary.lines():
            click.echo(line)


def _retention_settings(period: str | None, export: str | None, interval: str) -> dict[str, Any]:
    """The collector's retention settings from its flags (a bad duration: ConfigError naming it)."""
    from .store.retention import parse_duration

    if period is None:
        if export is not None:
            raise click.UsageError("--retention-export needs --retention PERIOD (30d)")
        return {}
    return {
        "retention_s": parse_duration(period).total_seconds(),
        "retention_export": export,
        "retention_interval_s": parse_duration(interval).total_seconds(),
    }


def _open_to_write(db: str, fix: str) -> Any:
    """The store opened for writing; when a process holds it, an error naming it and ``fix``."""
    from pathlib import Path

    from .errors import DatabaseLocked
    from .store import Store

    if not Path(db).exists():
        raise ShadowError(f"database '{db}' does not exist; check --db or {OTEL_SHADOW_DB}")
    try:
        return Store.open(db)
    except DatabaseLocked as exc:
        if Path(f"{db}.collector.json").exists():
            raise DatabaseLocked(f"'{db}' is held by a running collector: {fix}") from None
        raise DatabaseLocked(f"{exc} For this command, stop that process first, then run it again.") from None


@cli.command()
@db_option
@click.option(
    "--older-than",
    "older_than",
    required=True,
    help="Remove traces that began longer ago than this: 30d, 12h, 90m, 2w.",
)
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write them to Parquet here first (hive-partitioned by day).",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Summary format."
)
def retention(db: str, older_than: str, export_dir: str | None, dry_run: bool, fmt: str) -> None:
    """Delete traces older than a period (spans, links, events: their pairs and scores), optionally exported first.

    For a store no collector holds; a collector runs retention itself (collector --retention 30d).

    Example:

        otel-shadow retention --db traces.duckdb --older-than 30d --export archive/ --dry-run
    """
    from .store.retention import Retention, parse_duration

    period = parse_duration(older_than)
    store = _open_to_write(
        db, f"run retention in it instead: restart it with `otel-shadow collector --db {db} --retention {older_than}`"
    )
    try:
        report = Retention(store, period, export_dir=None if dry_run else export_dir).run(dry_run=dry_run)
    finally:
        store.close()
    click.echo(json.dumps(report.as_dict(), indent=2) if fmt == "json" else "\n".join(report.lines()))


@cli.command()
@db_option
@click.option("--trace-id", default=None, help="Erase this trace (32 hex digits).")
@click.option(
    "--key",
    default=None,
    help="Erase every trace in which a span (or its resource) has ATTR=VALUE, e.g. enduser.id=alice.",
)
@click.option("--dry-run", is_flag=True, help="Only show what would be erased.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Summary format."
)
def erase(db: str, trace_id: str | None, key: str | None, dry_run: bool, fmt: str) -> None:
    """Erase one user's data for a deletion request: whole traces (spans, pairs, scores) by trace id or key.

    Example:

        otel-shadow erase --db traces.duckdb --key enduser.id=alice
    """
    from .store.erase import erase as erase_traces

    if (trace_id is None) == (key is None):
        raise click.UsageError("give exactly one of --trace-id ID or --key ATTR=VALUE")
    store = _open_to_write(
        db,
        "stop it (SIGTERM: OTLP clients retry meanwhile, nothing acknowledged is lost), run erase, start it again",
    )
    try:
        report = erase_traces(store, trace_id=trace_id, key=key, dry_run=dry_run)
    finally:
        store.close()
    click.echo(json.dumps(report.as_dict(), indent=2) if fmt == "json" else "\n".join(report.lines()))


@cli.command()
@db_option
@click.option(
    "--thresholds",
    "thresholds_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML file of thresholds, with an alerts: section (docs/alerts.md).",
)
@click.option("--webhook", default=None, help="POST each alert's JSON to this http(s) URL.")
@click.option(
    "--webhook-secret-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="File whose first line is sent as X-Otel-Shadow-Secret (default: OTEL_SHADOW_WEBHOOK_SECRET).",
)
@click.option("--interval", default="60s", show_default=True, help="Time between checks: 30s, 5m, 1h.")
@click.option("--once", is_flag=True, help="Check once, print the alerts raised, exit.")
def watch(
    db: str,
    thresholds_file: str | None,
    webhook: str | None,
    webhook_secret_file: str | None,
    interval: str,
    once: bool,
) -> None:
    """Alert when a candidate's verdict changes or its error rate or p95 latency crosses a line.

    Each alert: a WARNING log line, the OpenTelemetry counter shadow.alerts, and the optional
    webhook. One alert per change (state is kept in the store). Beside an embedded store; a
    collector runs it itself with --watch-thresholds.

    Example:

        otel-shadow watch --db demo.duckdb --thresholds gates.yaml --webhook https://hooks.example.com/shadow
    """
    import signal
    import threading

    from .rollout.watch import file_store, make_watch, parse_interval

    seconds = parse_interval(interval)
    alert_watch = make_watch(thresholds_file, webhook, webhook_secret_file)
    stop = threading.Event()
    if once:
        for alert in alert_watch.run(file_store(db), interval_s=seconds, stop=stop, once=True):
            click.echo(f"ALERT {alert.kind} {alert.state}: {alert.message}")
        return
    from .collector import configure_logging

    configure_logging("INFO")
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    alert_watch.run(file_store(db), interval_s=seconds, stop=stop)


def _rollout_options(command: Any) -> Any:
    """The options shared by rollout, promote and rollback."""
    from .environment_variables import OTEL_SHADOW_CONFIG

    for option in reversed(
        [
            click.option(
                "--rules",
                "rules_path",
                envvar=OTEL_SHADOW_CONFIG,
                required=True,
                type=click.Path(dir_okay=False),
                help=f"The rules file the application watches (or set {OTEL_SHADOW_CONFIG}); edited in place, atomically.",
            ),
            click.option(
                "--plan",
                "plan_path",
                type=click.Path(dir_okay=False),
                default=None,
                help="YAML rollout plan (default: shadow 5% → 25% → 100%, canary 5% → 25% → 50% → 100%).",
            ),
            click.option("--rule", default=None, help="The rule to move (needed when the file has several)."),
            click.option(
                "--thresholds",
                "thresholds_file",
                type=click.Path(dir_okay=False),
                default=None,
                help="YAML file of thresholds for the verdict.",
            ),
            db_option,
        ]
    ):
        command = option(command)
    return command


def _ramp(db: str, rules_path: str, plan_path: str | None, rule: str | None, thresholds_file: str | None) -> Any:
    from .instrumentation.rules import parse_rules
    from .pricing import load_prices
    from .rollout.plan import load_plan
    from .rollout.ramp import Ramp, open_store

    plan = load_plan(plan_path)  # a broken plan is refused before anything is opened
    thresholds = _thresholds(thresholds_file)
    store = open_store(db)
    try:
        return Ramp(store, rules_path, plan, parse_rules, rule, thresholds, load_prices())
    except BaseException:
        store.close()
        raise


def _moved(outcome: Any, fmt: str) -> None:
    click.echo(json.dumps(outcome.to_dict()) if fmt == "json" else f"{outcome.rule}: {outcome.message}")


@cli.command()
@_rollout_options
@click.option("--actor", default="rollout", show_default=True, help="Recorded as who moved the plan.")
@click.option(
    "--watch",
    "watch_loop",
    is_flag=True,
    help="Keep going: check every --interval until the plan is complete or rolled back.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.0),
    default=60.0,
    show_default=True,
    help="Seconds between checks with --watch.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Outcome format."
)
def rollout(
    db: str,
    rules_path: str,
    plan_path: str | None,
    rule: str | None,
    thresholds_file: str | None,
    actor: str,
    watch_loop: bool,
    interval: float,
    fmt: str,
) -> None:
    """Move a rule one step along its rollout plan, on the verdict of that step's data.

    PASS with the step's min_pairs and min_time: next step; FAIL: roll back; otherwise hold. Each
    move rewrites the rules file atomically (the application's hot reload picks it up) and is
    recorded in the store (see docs/rollout.md).

    Example:

        otel-shadow rollout --plan plan.yaml --rules shadow.yaml --db shadow.duckdb
    """
    import time

    from .errors import DatabaseLocked

    while True:
        try:
            ramp = _ramp(db, rules_path, plan_path, rule, thresholds_file)
        except DatabaseLocked as exc:
            if not watch_loop:
                raise
            click.echo(f"{exc} (trying again in {interval:g} s)", err=True)  # --watch outlives a busy moment
            time.sleep(interval)
            continue
        try:
            outcome = ramp.advance(actor)
        finally:
            ramp.store.close()  # never held between checks: the application's exporter may need it
        _moved(outcome, fmt)
        if not watch_loop or outcome.status != "active":
            return
        time.sleep(interval)


@cli.command()
@_rollout_options
@click.option("--actor", default=None, help="Recorded as who moved the plan (default: user@host).")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Outcome format."
)
def promote(
    db: str,
    rules_path: str,
    plan_path: str | None,
    rule: str | None,
    thresholds_file: str | None,
    actor: str | None,
    fmt: str,
) -> None:
    """Move a rule's plan one step on by hand, whatever the verdict (recorded with it).

    Example:

        otel-shadow promote --rules shadow.yaml --rule chat-to-mini --db shadow.duckdb
    """
    from .rollout.ramp import default_actor

    ramp = _ramp(db, rules_path, plan_path, rule, thresholds_file)
    try:
        _moved(ramp.promote(actor or default_actor()), fmt)
    finally:
        ramp.store.close()


@cli.command()
@_rollout_options
@click.option("--actor", default=None, help="Recorded as who moved the plan (default: user@host).")
@click.option("--reason", default="rolled back by hand", show_default=True, help="Recorded with the move.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Outcome format."
)
def rollback(
    db: str,
    rules_path: str,
    plan_path: str | None,
    rule: str | None,
    thresholds_file: str | None,
    actor: str | None,
    reason: str,
    fmt: str,
) -> None:
    """Take a rule back to the start: no canary, the first step's sample rate (recorded with who did it).

    Example:

        otel-shadow rollback --rules shadow.yaml --rule chat-to-mini --db shadow.duckdb --reason "complaints"
    """
    from .rollout.ramp import default_actor

    ramp = _ramp(db, rules_path, plan_path, rule, thresholds_file)
    try:
        _moved(ramp.rollback(actor or default_actor(), reason), fmt)
    finally:
        ramp.store.close()


@cli.command("clickhouse-views")
@click.option(
    "--clickhouse",
    envvar=OTEL_SHADOW_CLICKHOUSE,
    required=True,
    metavar="URL",
    help="The database to create the views in (and where otel_traces is, unless --traces-database).",
)
@click.option(
    "--traces-table", default="otel_traces", show_default=True, help="The clickhouseexporter's traces_table_name."
)
@click.option("--traces-database", default=None, help="Database of the traces table (default: the URL's).")
def clickhouse_views(clickhouse: str, traces_table: str, traces_database: str | None) -> None:
    """Create otel-shadow's views in ClickHouse, over the OpenTelemetry Collector's otel_traces.

    Run it once (again after an upgrade); then report and sql take --clickhouse URL.

    Example:

        otel-shadow clickhouse-views --clickhouse http://admin:secret@clickhouse:8123/otel
    """
    from .clickhouse import create_views

    for name in create_views(clickhouse, traces_table, traces_database):
        click.echo(f"created view {name}")


@cli.command("compact-segments")
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False, exists=True))
@click.option(
    "--partition",
    "partitions",
    multiple=True,
    metavar="PARTITION",
    help="Only this partition, as date=YYYY-MM-DD/hour=HH (repeatable; default: every partition).",
)
@click.option(
    "--min-segments",
    type=click.IntRange(min=2),
    default=2,
    show_default=True,
    help="Merge a partition only when it has at least this many segments.",
)
def compact_segments_command(folder: str, partitions: tuple[str, ...], min_segments: int) -> None:
    """Merge each partition's Parquet segments into one file, atomically (docs/scaling.md).

    Safe while collectors keep writing into DIR, and to stop at any point: readers count the
    merged file or its inputs, never both, and the next run finishes the work.

    Example:

        otel-shadow compact-segments /data/segments --partition date=2026-11-29/hour=10
    """
    from .store.compaction import compact_segments

    results = compact_segments(folder, min_segments=min_segments, partitions=set(partitions) or None)
    for r in results:
        click.echo(
            f"{r.partition}: {len(r.inputs)} segments -> {r.name} ({r.spans} spans, "
            f"{r.bytes_before} -> {r.bytes_after} bytes)"
        )
    if not results:
        click.echo(f"nothing to compact in {folder} (no partition has {min_segments} segments or more)")


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="otel-shadow", standalone_mode=False)
    except ShadowError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
