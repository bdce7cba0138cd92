"""One ``otel-shadow score`` run: read the pairs not yet scored, score them, write the scores.

Incremental and resumable by construction: the store is the cache. A page of pairs is read with
the scorers that already scored each pair (``shadow_scores``), only the missing scores are
computed, and scores are exported in batches of ``batch_size`` as they complete, each batch
committed before the next, so a run killed at any moment loses at most the scores not yet
exported, and the next run picks up exactly the pairs that have no score.

Besides a DuckDB file, it reads a folder of Parquet segments (``segments``) or a ClickHouse
database (``clickhouse``) through their read-only readers; neither can be written here, so the
scores go over OTLP (``--otlp-endpoint``) to the collector that writes that store, where
``shadow_scores`` finds them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import attributes as A
from ..access import LocalReader, Reader, RemoteReader, collector_info_path, open_reader
from ..errors import ConfigError, DatabaseLocked, StoreError
from ..pricing import Price, PriceTable, load_prices
from ..store import Store
from ..store.exporter import DuckDBSpanExporter
from .embeddings import Embedder, cosine, scorer_id
from .emit import Score, Sink, collector_otlp_endpoint, otlp_exporter, score_span
from .judge import Judge, JudgeError, Judgement
from .limits import Budget, RateLimiter
from .pairs import DUCKDB, Execute, MaterializedPairs, Pair, PairDialect, clickhouse_pairs, count_sql, read_pages

__all__ = ["SIMILARITY", "ScoreOptions", "ScoreSummary", "open_destination", "open_readonly_source", "run_scoring"]

logger = logging.getLogger("otel_shadow.scoring")

SIMILARITY = "semantic_similarity"
# A judge whose calls keep failing after the SDK's retries is down, or refuses us: stop rather than
# spend retries on every remaining pair.
MAX_CONSECUTIVE_FAILURES = 10


@dataclass
class ScoreOptions:
    experiment: str | None = None
    limit: int | None = None  # pairs to look at, at most
    replicates: bool = True  # also score replicate pairs (the noise floor)
    page_size: int = 256
    batch_size: int = 32  # scores per export (a kill loses at most one batch in flight)
    concurrency: int = 4
    rate: float | None = None  # judge requests per second
    budget_tokens: int | None = None
    judge_budget_usd: float | None = None  # the judge's calls, priced from ``prices``
    prices: PriceTable | None = None  # default: the shared table (otel_shadow.pricing.load_prices)
    otlp_endpoint: str | None = None  # also send the scores to this OTLP/gRPC backend
    otlp_insecure: bool | None = None
    token: str | None = None  # the collector's token
    traces_table: str = "otel_traces"  # with --clickhouse: the exporter's traces_table_name


@dataclass
class ScoreSummary:
    to_score: int = 0  # pairs some scorer had not scored when the run began
    seen: int = 0
    scored: dict[str, int] = field(default_factory=dict)
    no_content: int = 0
    no_request: int = 0
    judge_failed: int = 0
    judge_unparsed: int = 0
    first_failure: str | None = None
    bias_checked: int = 0
    bias_agreed: int = 0
    tokens_spent: int = 0
    judge_usd_spent: float | None = None  # with a dollar budget: what the judge's calls cost
    judge_budget_usd: float | None = None
    stopped: str | None = None  # "budget" when the token budget ran out, "budget_usd" the judge's dollars
    exported: int = 0
    elapsed_s: float = 0.0
    where: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def lines(self) -> list[str]:
        per_scorer = ", ".join(f"{k}: {v}" for k, v in self.scored.items()) or "nothing new"
        out = [
            (
                f"scored {sum(self.scored.values())} ({per_scorer}) of {self.to_score} pairs to score, "
                f"in {self.elapsed_s:.1f} s; scores written to {self.where}"
            )
        ]
        if self.no_content:
            out.append(
                f"{self.no_content} pairs have no captured content; enable capture to score them "
                "(Shadow(capture_content=True) or OTEL_SHADOW_CAPTURE_CONTENT=true; zero-code: "
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY)"
            )
        if self.no_request:
            out.append(
                f"{self.no_request} pairs have outputs but no captured request: the judge needs it, so it skipped them"
            )
        if self.bias_checked:
            out.append(
                f"position-bias check: {self.bias_agreed} of {self.bias_checked} pairs judged both ways got the "
                f"same verdict ({self.bias_agreed / self.bias_checked:.0%})"
            )
        if self.judge_failed:
            out.append(
                f"{self.judge_failed} judge calls failed after retries (first: {self.first_failure}); a new run retries them"
            )
        if self.judge_unparsed:
            out.append(f"{self.judge_unparsed} judge answers had no 'Verdict:' line; a new run retries them")
        if self.tokens_spent:
            out.append(f"{self.tokens_spent} tokens spent")
        if self.judge_usd_spent is not None:
            out.append(f"judge cost ${self.judge_usd_spent:.4f} of the ${self.judge_budget_usd:.2f} budget")
        if self.stopped == "budget":
            out.append(
                "stopped: the token budget is spent; pairs left unscored are scored by a new run (raise --budget-tokens)"
            )
        if self.stopped == "budget_usd":
            out.append(
                "stopped: the judge's dollar budget is spent; pairs left unscored are scored by a new run "
                "(raise --judge-budget-usd)"
            )
        return out


def open_destination(db: str, options: ScoreOptions) -> tuple[LocalReader | RemoteReader, Sink]:
    """The reader of the pairs and the sink of the scores: the file itself when no one holds it
    (one DuckDB connection does both), else the collector that holds it (SQL to read, OTLP to write)."""
    if not Path(db).exists():
        raise StoreError(
            f"database '{db}' does not exist yet; nothing to score (run the app or `otel-shadow demo --db {db}` first)"
        )

    def extra() -> Any:
        return otlp_exporter(options.otlp_endpoint, insecure=options.otlp_insecure) if options.otlp_endpoint else None

    try:
        store = Store.open(db, lock_wait_s=5.0)
    except DatabaseLocked as locked:
        reader = open_reader(db, options.token)  # the collector's SQL endpoint, or an error that says why not
        if not isinstance(reader, RemoteReader):
            reader.close()
            raise DatabaseLocked(
                f"{locked} (`otel-shadow score` writes its scores; run it when the file is free)"
            ) from locked
        info = json.loads(collector_info_path(db).read_text())
        endpoint, insecure = collector_otlp_endpoint(info["sql_url"], info["grpc_port"])
        exporter = otlp_exporter(endpoint, insecure=insecure, token=reader.token)
        return reader, Sink(exporter, f"the collector at {endpoint}", extra(), options.otlp_endpoint or "")
    return LocalReader(store), Sink(DuckDBSpanExporter(store=store), f"'{db}'", extra(), options.otlp_endpoint or "")


def open_readonly_source(
    options: ScoreOptions, *, segments: str | None = None, clickhouse: str | None = None
) -> tuple[Reader, Sink, PairDialect]:
    """A store this run only reads (Parquet segments, ClickHouse), and the OTLP endpoint of the
    collector that writes it: the one way its scores get there."""
    source = f"--clickhouse {clickhouse}" if clickhouse is not None else f"--segments {segments}"
    writer = (
        "the OpenTelemetry Collector that writes otel_traces (collector/otelcol-clickhouse.yaml: HOST:4317)"
        if clickhouse is not None
        else "an otel-shadow collector that writes segments into this folder (otel-shadow collector --segments DIR)"
    )
    if not options.otlp_endpoint:
        raise ConfigError(
            f"otel-shadow score {source} reads a store it cannot write: give --otlp-endpoint of {writer}, "
            "which stores the scores where shadow_scores reads them"
        )
    dialect = clickhouse_pairs(options.traces_table) if clickhouse is not None else DUCKDB
    reader = open_reader("", options.token, segments=segments, clickhouse=clickhouse)
    exporter = otlp_exporter(options.otlp_endpoint, insecure=options.otlp_insecure)
    return reader, Sink(exporter, f"the OTLP endpoint {options.otlp_endpoint}"), dialect


def run_scoring(
    db: str,
    *,
    embedder: Embedder | None = None,
    judge: Judge | None = None,
    options: ScoreOptions | None = None,
    progress: bool = False,
    on_batch: Callable[[int], None] | None = None,
    segments: str | None = None,
    clickhouse: str | None = None,
) -> ScoreSummary:
    """Score what is not yet scored in ``db`` (or in the ``segments`` folder, or the ``clickhouse``
    database, sending the scores to ``options.otlp_endpoint``); returns what was done."""
    options = options or ScoreOptions()
    if embedder is None and judge is None:
        raise ConfigError("nothing to score with: give --embeddings and/or --judge-model")
    if segments is not None and clickhouse is not None:
        raise ConfigError("give one store to score: --segments DIR or --clickhouse URL, not both")
    reader: Reader
    dialect: PairDialect | None = None  # None: the run's own DuckDB file, whose pairs are materialized
    if segments is not None or clickhouse is not None:
        reader, sink, dialect = open_readonly_source(options, segments=segments, clickhouse=clickhouse)
    else:
        reader, sink = open_destination(db, options)
    try:
        run = _Run(reader, sink, embedder, judge, options, on_batch, dialect)
        return run.go(progress)
    finally:
        sink.close()
        reader.close()


class _Run:
    def __init__(
        self,
        reader: Any,
        sink: Sink,
        embedder: Embedder | None,
        judge: Judge | None,
        options: ScoreOptions,
        on_batch: Callable[[int], None] | None,
        dialect: PairDialect | None = None,
    ) -> None:
        self.reader = reader
        self.dialect = dialect
        self.sink = sink
        self.embedder = embedder
        self.judge = judge
        self.options = options
        self.on_batch = on_batch
        self.budget = Budget(options.budget_tokens)
        self.usd = Budget(options.judge_budget_usd, "dollar")
        self.price = _judge_price(judge, options)
        self.limiter = RateLimiter(options.rate, burst=max(1, options.concurrency))
        self.summary = ScoreSummary(where=sink.where)
        self.pending: list[Any] = []
        self.consecutive_failures = 0
        self.scorers: dict[str, tuple[str, dict[str, Any]]] = {}  # name -> (id, config)
        if embedder is not None:
            config = embedder.config()
            self.scorers[SIMILARITY] = (scorer_id(SIMILARITY, config), config)
        if judge is not None:
            config = judge.config.identity()
            self.scorers[judge.name] = (scorer_id(judge.name, config), config)
        self.roles = (A.ROLE_CANDIDATE, A.ROLE_REPLICATE) if options.replicates else (A.ROLE_CANDIDATE,)

    # --- output ---------------------------------------------------------------------------------
    def _add(self, pair: Pair, score: Score) -> None:
        self.pending.append(score_span(pair, score))
        self.summary.scored[score.scorer] = self.summary.scored.get(score.scorer, 0) + 1
        if len(self.pending) >= self.options.batch_size:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            self.sink.export(batch)
            self.summary.exported += len(batch)
            if self.on_batch is not None:
                self.on_batch(len(batch))

    # --- the run ------------------------------------------------------------------------------------
    def go(self, show_progress: bool) -> ScoreSummary:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        started = time.monotonic()
        ids = [scorer_id for scorer_id, _ in self.scorers.values()]
        o = self.options
        keys: MaterializedPairs | None = None
        if self.dialect is None and isinstance(self.reader, LocalReader):  # the run's own file: evaluate the pairs once
            keys = MaterializedPairs(
                _execute_on(self.reader.store), ids, experiment=o.experiment, roles=self.roles, limit=o.limit
            )
            total = keys.total
            pages = keys.pages(o.page_size)
        else:  # a read-only reader (a collector's endpoint, segments, ClickHouse): keyset pages
            total = int(self.reader.query(count_sql(ids, o.experiment, self.roles)).rows[0][0])
            if o.limit is not None:
                total = min(total, o.limit)
            pages = read_pages(
                self.reader,
                ids,
                page_size=o.page_size,
                experiment=o.experiment,
                roles=self.roles,
                limit=o.limit,
                dialect=self.dialect or DUCKDB,
            )
        self.summary.to_score = total
        columns = (TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), disable=not show_progress, transient=False) as bar:
            task = bar.add_task("pairs", total=total)
            with ThreadPoolExecutor(
                max_workers=max(1, self.options.concurrency), thread_name_prefix="otel-shadow-judge"
            ) as pool:
                try:
                    for page in pages:
                        self._page(page.pairs, pool, lambda n: bar.advance(task, n))
                        if self.summary.stopped:
                            break
                finally:
                    self._flush()
                    if keys is not None:
                        keys.close()
        self.summary.tokens_spent = int(self.budget.spent)
        if self.price is not None:
            self.summary.judge_usd_spent = round(float(self.usd.spent), 6)
            self.summary.judge_budget_usd = self.options.judge_budget_usd
        self.summary.elapsed_s = time.monotonic() - started
        return self.summary

    def _page(self, pairs: list[Pair], pool: ThreadPoolExecutor, advance: Callable[[int], None]) -> None:
        self.summary.seen += len(pairs)
        scorable = [p for p in pairs if p.has_outputs]
        self.summary.no_content += len(pairs) - len(scorable)
        advance(len(pairs) - len(scorable))
        if self.embedder is not None:
            self._embed([p for p in scorable if self.scorers[SIMILARITY][0] not in p.done])
        if self.summary.stopped:
            return
        judged: list[Pair] = []
        if self.judge is not None:
            judge_id = self.scorers[self.judge.name][0]
            for pair in scorable:
                if judge_id in pair.done:
                    continue
                if not pair.request:
                    self.summary.no_request += 1
                    continue
                judged.append(pair)
        advance(len(scorable) - len(judged))
        if judged:
            self._judge(judged, pool, advance)

    def _embed(self, pairs: list[Pair]) -> None:
        if not pairs:
            return
        assert self.embedder is not None
        scorer, config = self.scorers[SIMILARITY]
        texts = [p.primary_output or "" for p in pairs] + [p.candidate_output or "" for p in pairs]
        estimate = 0 if config.get("kind") == "local" else sum(len(t) for t in texts) // 3 + len(texts)
        if not self.budget.reserve(estimate):
            self.summary.stopped = "budget"
            return
        started = time.time_ns()
        try:
            embedded = self.embedder.embed(texts)
        finally:
            self.budget.settle(estimate, 0)
        self.budget.add(embedded.input_tokens)
        ended = time.time_ns()
        n = len(pairs)
        similarity = cosine(embedded.vectors[:n], embedded.vectors[n:])
        share = embedded.input_tokens // max(1, n)
        for pair, value in zip(pairs, similarity.tolist()):
            self._add(
                pair,
                Score(
                    SIMILARITY,
                    scorer,
                    self.embedder.model,
                    config,
                    round(float(value), 6),
                    started,
                    ended,
                    input_tokens=share,
                ),
            )

    def _judge(self, pairs: list[Pair], pool: ThreadPoolExecutor, advance: Callable[[int], None]) -> None:
        assert self.judge is not None
        judge = self.judge
        scorer, config = self.scorers[judge.name]
        in_flight: dict[Future[Any], Pair] = {}
        queue = list(reversed(pairs))
        failure: BaseException | None = None
        while (queue and not self.summary.stopped and failure is None) or in_flight:
            while queue and len(in_flight) < self.options.concurrency and not self.summary.stopped and failure is None:
                pair = queue.pop()
                in_flight[pool.submit(self._judge_one, pair)] = pair
            if not in_flight:
                break
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                pair = in_flight.pop(future)
                try:
                    outcome = future.result()
                except JudgeError as exc:
                    failure = exc
                    continue
                except Exception as exc:  # a call that failed after the SDK's retries: counted, retried next run
                    self.summary.judge_failed += 1
                    self.consecutive_failures += 1
                    if self.summary.first_failure is None:
                        self.summary.first_failure = f"{type(exc).__name__}: {str(exc)[:200]}"
                    logger.debug("judge call failed", exc_info=True)
                    advance(1)
                    if self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES and failure is None:
                        failure = JudgeError(
                            f"the judge failed {self.consecutive_failures} times in a row after retries (last: "
                            f"{type(exc).__name__}: {str(exc)[:200]}); stopping. Scores written so far are kept"
                        )
                    continue
                self.consecutive_failures = 0
                if isinstance(outcome, str):  # a budget refused the call
                    self.summary.stopped = outcome
                    continue
                judgement, started, ended = outcome
                advance(1)
                if judgement.label is None:
                    self.summary.judge_unparsed += 1
                    continue
                self._record_judgement(pair, judgement, scorer, config, started, ended)
        if failure is not None:
            raise failure

    def _judge_one(self, pair: Pair) -> tuple[Judgement, int, int] | str:
        """The judgement and its times, or the budget ("budget", "budget_usd") that refused the call."""
        assert self.judge is not None
        calls = self.judge.calls(pair)
        prompt, answer = self.judge.estimate_split(pair)
        estimate = (prompt + answer) * calls
        if not self.budget.reserve(estimate):
            return "budget"
        usd_estimate = (self.price.cost(prompt * calls, answer * calls) or 0.0) if self.price is not None else 0.0
        if not self.usd.reserve(usd_estimate):
            self.budget.release(estimate)
            return "budget_usd"
        used, usd_used = 0, 0.0
        try:
            self.limiter.acquire()
            started = time.time_ns()
            judgement = self.judge.judge(pair)
            ended = time.time_ns()
            used = judgement.input_tokens + judgement.output_tokens
            if self.price is not None:
                usd_used = self.price.cost(judgement.input_tokens, judgement.output_tokens) or 0.0
            return judgement, started, ended
        finally:
            self.budget.settle(estimate, used)
            self.usd.settle(usd_estimate, usd_used)

    def _record_judgement(
        self, pair: Pair, j: Judgement, scorer: str, config: dict[str, Any], started: int, ended: int
    ) -> None:
        assert self.judge is not None
        if j.consistent is not None:
            self.summary.bias_checked += 1
            self.summary.bias_agreed += int(j.consistent)
        extra = {
            A.SHADOW_SCORE_JUDGE_ORDER: j.order,
            A.SHADOW_SCORE_JUDGE_SWAPPED_LABEL: j.swapped_label,
            A.SHADOW_SCORE_JUDGE_CONSISTENT: j.consistent,
        }
        self._add(
            pair,
            Score(
                self.judge.name,
                scorer,
                self.judge.model,
                config,
                j.score,
                started,
                ended,
                label=j.label,
                explanation=j.explanation,
                input_tokens=j.input_tokens,
                output_tokens=j.output_tokens,
                extra=extra,
            ),
        )


def _execute_on(store: Store) -> Execute:
    """Our own SQL on the run's connection (a temporary table lives on the connection that made it)."""
    import duckdb

    def execute(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        try:
            result = store.con.execute(sql)
            return ([d[0] for d in result.description] if result.description else []), result.fetchall()
        except duckdb.Error as exc:
            raise StoreError(f"reading the pairs to score from '{store.path}': {exc}") from exc

    return execute


def _judge_price(judge: Judge | None, options: ScoreOptions) -> Price | None:
    """The judge model's price when a dollar budget is set; a budget that cannot be priced is refused."""
    if options.judge_budget_usd is None:
        return None
    if not options.judge_budget_usd > 0:
        raise ConfigError(
            f"--judge-budget-usd must be a positive amount of US dollars; got {options.judge_budget_usd!r}"
        )
    if judge is None:
        raise ConfigError("--judge-budget-usd limits the judge's spending: give --judge-model too")
    prices = options.prices if options.prices is not None else load_prices()
    price = prices.price(judge.model)
    if price is None:
        raise ConfigError(
            f"--judge-budget-usd: no price for judge model {judge.model!r}; add it to a prices file "
            f"({{{judge.model}: {{input: <USD per 1M input tokens>, output: <USD per 1M output tokens>}}}}) "
            "named by OTEL_SHADOW_PRICES (see docs/scoring.md)"
        )
    return price
