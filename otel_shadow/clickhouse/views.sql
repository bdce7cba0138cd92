-- otel-shadow's views in ClickHouse SQL, over the table that the OpenTelemetry Collector's
-- clickhouseexporter writes (otel_traces; docs/clickhouse.md). Same names, same columns and the
-- same meaning as the DuckDB views (otel_shadow/store/views.sql, docs/schema.md); ids are the
-- exporter's lowercase hex strings and attributes its Map(String, String).
--
-- ${db} and ${traces} are replaced (quoted) by `otel-shadow clickhouse-views`. Two base views are
-- the only place that knows the exporter's layout: otel_shadow_spans (one row per span otel-shadow
-- reads, with the columns of otel-shadow's own spans table, over the narrow table
-- otel_shadow_span_rows that a materialized view fills at insert) and otel_shadow_span_links (one row
-- per link). The
-- exporter keeps every attribute as a string (types are lost): an absent key reads as '', which
-- these views read as NULL, as the DuckDB store does for an absent attribute.

-- The spans otel-shadow reads (executions, their GenAI children, score spans), extracted once, at
-- insert, into a narrow typed table: the views then read typed columns, never otel_traces' attribute
-- map. The materialized view extracts every insert into otel_traces made after it exists;
-- `otel-shadow clickhouse-views` copies the rows already there once, when it creates the table
-- (views.py). A span can be in it twice (re-sent, or inserted while that copy ran): the views below
-- remove copies at read, as they always did. Both are created only if absent (never replaced):
-- to change them, drop both and re-run clickhouse-views (docs/clickhouse.md).
CREATE TABLE IF NOT EXISTS ${db}.otel_shadow_span_rows (
    trace_id                   String CODEC(ZSTD(1)),
    span_id                    String CODEC(ZSTD(1)),
    parent_span_id             Nullable(String) CODEC(ZSTD(1)),
    name                       LowCardinality(String) CODEC(ZSTD(1)),
    start_time                 DateTime64(9) CODEC(Delta, ZSTD(1)),
    duration_ns                UInt64 CODEC(ZSTD(1)),
    status_code                UInt8 CODEC(ZSTD(1)),
    status_message             Nullable(String) CODEC(ZSTD(1)),
    service_name               LowCardinality(String) CODEC(ZSTD(1)),
    experiment                 LowCardinality(Nullable(String)) CODEC(ZSTD(1)),
    role                       LowCardinality(Nullable(String)) CODEC(ZSTD(1)),
    config_id                  LowCardinality(Nullable(String)) CODEC(ZSTD(1)),
    outcome                    LowCardinality(Nullable(String)) CODEC(ZSTD(1)),
    output_hash                Nullable(String) CODEC(ZSTD(1)),
    output_length              Nullable(Int64) CODEC(ZSTD(1)),
    candidates_scheduled       Nullable(Int64) CODEC(ZSTD(1)),
    candidates_dropped         Nullable(Int64) CODEC(ZSTD(1)),
    drop_reasons               LowCardinality(Nullable(String)) CODEC(ZSTD(1)),
    gen_ai_operation_name      LowCardinality(Nullable(String)) CODEC(ZSTD(1)),
    gen_ai_provider_name       LowCardinality(Nullable(String)) CODEC(ZSTD(1)),
    gen_ai_request_model       LowCardinality(Nullable(String)) CODEC(ZSTD(1)),
    gen_ai_response_model      LowCardinality(Nullable(String)) CODEC(ZSTD(1)),
    gen_ai_usage_input_tokens  Nullable(Int64) CODEC(ZSTD(1)),
    gen_ai_usage_output_tokens Nullable(Int64) CODEC(ZSTD(1)),
    attributes                 Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    resource_attributes        Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    primary_link_trace_id      Nullable(String) CODEC(ZSTD(1)),
    primary_link_span_id       Nullable(String) CODEC(ZSTD(1)),
    link_span_ids              Array(String) CODEC(ZSTD(1)),
    link_attributes            Array(Map(LowCardinality(String), String)) CODEC(ZSTD(1))
) ENGINE = MergeTree
ORDER BY (trace_id, span_id);

-- (views.py turns this SELECT into the one backfill: INSERT INTO otel_shadow_span_rows SELECT …)
CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.otel_shadow_span_rows_mv TO ${db}.otel_shadow_span_rows AS
-- the first link whose shadow.link is 'primary' (a candidate's or replicate's, to its primary)
WITH arrayFirstIndex(a -> a['shadow.link'] = 'primary', Links.Attributes) AS primary_link_number
SELECT
    TraceId                                                                 AS trace_id,
    SpanId                                                                  AS span_id,
    nullIf(ParentSpanId, '')                                                AS parent_span_id,
    SpanName                                                                AS name,
    Timestamp                                                               AS start_time,
    Duration                                                                AS duration_ns,
    -- OTLP's number (0 unset, 1 ok, 2 error); the exporter writes the proto name (older
    -- versions) or the short one (newer pdata)
    toUInt8(multiIf(StatusCode IN ('STATUS_CODE_ERROR', 'Error'), 2, StatusCode IN ('STATUS_CODE_OK', 'Ok'), 1, 0)) AS status_code,
    nullIf(StatusMessage, '')                                               AS status_message,
    ServiceName                                                             AS service_name,
    nullIf(SpanAttributes['shadow.experiment'], '')                         AS experiment,
    nullIf(SpanAttributes['shadow.role'], '')                               AS role,
    nullIf(SpanAttributes['shadow.config.id'], '')                          AS config_id,
    nullIf(SpanAttributes['shadow.outcome'], '')                            AS outcome,
    nullIf(SpanAttributes['shadow.output.hash'], '')                        AS output_hash,
    toInt64OrNull(SpanAttributes['shadow.output.length'])                   AS output_length,
    toInt64OrNull(SpanAttributes['shadow.candidates.scheduled'])            AS candidates_scheduled,
    toInt64OrNull(SpanAttributes['shadow.candidates.dropped'])              AS candidates_dropped,
    nullIf(SpanAttributes['shadow.candidates.drop_reasons'], '')            AS drop_reasons,
    nullIf(SpanAttributes['gen_ai.operation.name'], '')                     AS gen_ai_operation_name,
    -- gen_ai.system is the deprecated name of gen_ai.provider.name, still read
    coalesce(nullIf(SpanAttributes['gen_ai.provider.name'], ''), nullIf(SpanAttributes['gen_ai.system'], '')) AS gen_ai_provider_name,
    nullIf(SpanAttributes['gen_ai.request.model'], '')                      AS gen_ai_request_model,
    nullIf(SpanAttributes['gen_ai.response.model'], '')                     AS gen_ai_response_model,
    toInt64OrNull(SpanAttributes['gen_ai.usage.input_tokens'])              AS gen_ai_usage_input_tokens,
    toInt64OrNull(SpanAttributes['gen_ai.usage.output_tokens'])             AS gen_ai_usage_output_tokens,
    SpanAttributes                                                          AS attributes,
    ResourceAttributes                                                      AS resource_attributes,
    if(primary_link_number = 0, NULL, Links.TraceId[primary_link_number])   AS primary_link_trace_id,
    if(primary_link_number = 0, NULL, Links.SpanId[primary_link_number])    AS primary_link_span_id,
    Links.SpanId                                                            AS link_span_ids,
    Links.Attributes                                                        AS link_attributes
FROM ${traces}
-- an execution, a GenAI call (an execution's child) or a score span: every span a view below reads
WHERE has(SpanAttributes.keys, 'shadow.experiment') OR has(SpanAttributes.keys, 'gen_ai.operation.name')
   OR has(SpanAttributes.keys, 'shadow.score.scorer.id');

-- One row per stored copy of a span otel-shadow reads, with the columns of otel-shadow's own spans table.
CREATE OR REPLACE VIEW ${db}.otel_shadow_spans AS
SELECT
    trace_id, span_id, parent_span_id, name, start_time,
    addNanoseconds(start_time, duration_ns)                                 AS end_time,
    duration_ns / 1e6                                                       AS duration_ms,
    status_code, status_message, service_name, experiment, role, config_id, outcome, output_hash,
    output_length, candidates_scheduled, candidates_dropped, drop_reasons, gen_ai_operation_name,
    gen_ai_provider_name, gen_ai_request_model, gen_ai_response_model, gen_ai_usage_input_tokens,
    gen_ai_usage_output_tokens, attributes,
    attributes.keys                                                         AS attribute_keys,  -- read without the values
    resource_attributes, primary_link_trace_id, primary_link_span_id, link_span_ids, link_attributes
FROM ${db}.otel_shadow_span_rows;

-- every link of every span in otel_traces (not only those otel-shadow reads)
CREATE OR REPLACE VIEW ${db}.otel_shadow_span_links AS
SELECT
    TraceId                                  AS trace_id,
    SpanId                                   AS span_id,
    link_number - 1                          AS link_index,
    link_trace_id                            AS linked_trace_id,
    link_span_id                             AS linked_span_id,
    nullIf(link_attributes['shadow.link'], '') AS link_type,
    link_attributes                          AS attributes
FROM ${traces}
ARRAY JOIN
    Links.TraceId AS link_trace_id,
    Links.SpanId AS link_span_id,
    Links.Attributes AS link_attributes,
    arrayEnumerate(Links.TraceId) AS link_number
WHERE link_trace_id != '' AND link_span_id != '';

-- One row per copy of an execution (primary, candidate, replicate…; re-sent copies not yet
-- removed), with its first primary link. Token counts, models, operation and provider come from the
-- span itself or from its direct GenAI children. shadow_runs and shadow_pairs remove the copies.
-- The WHEREs read typed columns of otel_shadow_span_rows, never the attribute map (its keys alone
-- cost more than the columns tested).
CREATE OR REPLACE VIEW ${db}.otel_shadow_runs AS
WITH child_usage AS (
    SELECT trace_id, assumeNotNull(parent_span_id) AS span_id,  -- not NULL (below): a faster join key
           sum(gen_ai_usage_input_tokens)  AS input_tokens,
           sum(gen_ai_usage_output_tokens) AS output_tokens,
           min(gen_ai_request_model)       AS request_model,
           min(gen_ai_response_model)      AS response_model,
           min(gen_ai_operation_name)      AS operation,
           min(gen_ai_provider_name)       AS provider
    FROM ${db}.otel_shadow_spans
    -- a run carries shadow.experiment, a GenAI child does not
    WHERE experiment IS NULL AND gen_ai_operation_name IS NOT NULL AND parent_span_id IS NOT NULL
    GROUP BY trace_id, span_id
)
SELECT
    r.experiment AS experiment,
    r.role AS role,
    r.config_id AS config_id,
    r.trace_id AS trace_id,
    r.span_id AS span_id,
    r.parent_span_id AS parent_span_id,
    r.start_time AS start_time,
    r.end_time AS end_time,
    r.duration_ms AS duration_ms,
    coalesce(r.outcome, if(r.status_code = 2, 'error', 'ok'))        AS outcome,
    r.output_hash AS output_hash,
    r.output_length AS output_length,
    r.candidates_scheduled AS candidates_scheduled,
    r.candidates_dropped AS candidates_dropped,
    r.drop_reasons AS drop_reasons,
    r.service_name AS service_name,
    coalesce(r.gen_ai_operation_name, u.operation)                   AS operation,
    coalesce(r.gen_ai_provider_name, u.provider)                     AS provider,
    coalesce(r.gen_ai_request_model, u.request_model)                AS request_model,
    coalesce(r.gen_ai_response_model, u.response_model)              AS response_model,
    coalesce(r.gen_ai_usage_input_tokens, u.input_tokens)            AS input_tokens,
    coalesce(r.gen_ai_usage_output_tokens, u.output_tokens)          AS output_tokens,
    r.status_message AS status_message,
    r.attributes AS attributes,
    r.primary_link_trace_id AS primary_link_trace_id,
    r.primary_link_span_id AS primary_link_span_id
FROM (
    SELECT * FROM ${db}.otel_shadow_spans
    WHERE experiment IS NOT NULL
) AS r
LEFT JOIN child_usage AS u ON u.trace_id = r.trace_id AND u.span_id = r.span_id
SETTINGS join_use_nulls = 1;

-- One row per execution: re-sent copies are identical, keep any one. A GROUP BY rather than
-- LIMIT 1 BY: a filter on a grouping key (experiment, role, and drop_reasons, which the copies share
-- too) reaches the table's scan, where the attribute values' bloom filter skips whatever cannot
-- match (the report's canary and ended-experiment queries).
CREATE OR REPLACE VIEW ${db}.shadow_runs AS
SELECT experiment, role, any(config_id) AS config_id, trace_id, span_id, any(parent_span_id) AS parent_span_id,
       any(start_time) AS start_time, any(end_time) AS end_time, any(duration_ms) AS duration_ms,
       any(outcome) AS outcome, any(output_hash) AS output_hash, any(output_length) AS output_length,
       any(candidates_scheduled) AS candidates_scheduled, any(candidates_dropped) AS candidates_dropped,
       drop_reasons, any(service_name) AS service_name, any(operation) AS operation,
       any(provider) AS provider, any(request_model) AS request_model, any(response_model) AS response_model,
       any(input_tokens) AS input_tokens, any(output_tokens) AS output_tokens,
       any(status_message) AS status_message, any(attributes) AS attributes
FROM ${db}.otel_shadow_runs
GROUP BY trace_id, span_id, experiment, role, drop_reasons;

-- One row per primary × candidate (or replicate) pair, through the candidate's first primary link
-- (the SDK gives a candidate one). Each side reads only its own executions (the role filter reaches
-- the scan); the candidates' re-sent copies are removed before the join (GROUP BY, which runs on
-- every thread, where LIMIT 1 BY runs on one), the primary's by the ANY join (one primary row per
-- candidate), which also keeps its hash table to one row per primary.
CREATE OR REPLACE VIEW ${db}.shadow_pairs AS
SELECT
    c.experiment              AS experiment,
    c.trace_id                AS trace_id,
    p.span_id                 AS primary_span_id,
    c.span_id                 AS candidate_span_id,
    p.config_id               AS primary_config_id,
    c.config_id               AS candidate_config_id,
    c.role                    AS candidate_role,
    p.duration_ms             AS primary_duration_ms,
    c.duration_ms             AS candidate_duration_ms,
    p.outcome                 AS primary_outcome,
    c.outcome                 AS candidate_outcome,
    if(p.outcome = 'ok' AND c.outcome = 'ok' AND p.output_hash IS NOT NULL AND c.output_hash IS NOT NULL,
       p.output_hash = c.output_hash, NULL) AS output_match,
    p.input_tokens            AS primary_input_tokens,
    p.output_tokens           AS primary_output_tokens,
    c.input_tokens            AS candidate_input_tokens,
    c.output_tokens           AS candidate_output_tokens,
    p.request_model           AS primary_model,
    c.request_model           AS candidate_model,
    p.output_length           AS primary_output_length,
    c.output_length           AS candidate_output_length,
    p.start_time              AS start_time
FROM (
    SELECT experiment, trace_id, span_id, role, any(config_id) AS config_id, any(duration_ms) AS duration_ms,
           any(outcome) AS outcome, any(output_hash) AS output_hash, any(input_tokens) AS input_tokens,
           any(output_tokens) AS output_tokens, any(request_model) AS request_model,
           any(output_length) AS output_length,
           coalesce(any(primary_link_trace_id), '') AS link_trace_id, coalesce(any(primary_link_span_id), '') AS link_span_id
    FROM ${db}.otel_shadow_runs
    WHERE role = 'candidate' OR role = 'replicate'  -- (not IN: the values' bloom filter reads =)
    GROUP BY trace_id, span_id, experiment, role  -- re-sent copies are identical: keep any one
) AS c
LEFT ANY JOIN (SELECT * FROM ${db}.otel_shadow_runs WHERE role = 'primary') AS p
    ON p.trace_id = c.link_trace_id AND p.span_id = c.link_span_id
WHERE p.span_id IS NOT NULL  -- (INNER ANY would also keep one candidate per primary)
SETTINGS join_use_nulls = 1;

-- Per experiment: how many candidates were scheduled and dropped (coverage).
CREATE OR REPLACE VIEW ${db}.shadow_coverage AS
SELECT experiment,
       count()                                           AS primary_runs,
       toInt64(coalesce(sum(candidates_scheduled), 0))   AS scheduled,
       toInt64(coalesce(sum(candidates_dropped), 0))     AS dropped
FROM (
    SELECT experiment, candidates_scheduled, candidates_dropped
    FROM ${db}.otel_shadow_spans
    WHERE experiment IS NOT NULL AND role = 'primary'
    LIMIT 1 BY trace_id, span_id  -- re-sent copies are identical (here cheaper than a GROUP BY)
)
GROUP BY experiment;

-- Per experiment × candidate config: agreement, errors, latency and tokens of each arm.
-- Latency quantiles are exact and interpolated (quantileExactInclusive is DuckDB's quantile_cont).
CREATE OR REPLACE VIEW ${db}.shadow_summary AS
WITH agg AS (
    SELECT
        p.experiment AS experiment,
        p.candidate_config_id AS candidate_config_id,
        min(p.primary_config_id)                                                        AS primary_config_id,
        min(p.candidate_model)                                                          AS candidate_model,
        min(p.primary_model)                                                            AS primary_model,
        count()                                                                         AS pairs,
        avg(multiIf(p.output_match, 1.0, NOT p.output_match, 0.0, NULL))                AS exact_match_rate,
        -- cancelled is no verdict on the config: left out of the error rates (NULL)
        avg(multiIf(p.primary_outcome = 'ok', 0.0, p.primary_outcome = 'cancelled', NULL, 1.0))     AS primary_error_rate,
        avg(multiIf(p.candidate_outcome = 'ok', 0.0, p.candidate_outcome = 'cancelled', NULL, 1.0)) AS candidate_error_rate,
        quantilesExactInclusiveIf(0.50, 0.95, 0.99)(p.primary_duration_ms, p.primary_outcome = 'ok')     AS primary_q,
        quantilesExactInclusiveIf(0.50, 0.95, 0.99)(p.candidate_duration_ms, p.candidate_outcome = 'ok') AS candidate_q,
        countIf(p.primary_outcome = 'ok')                                               AS primary_ok,
        countIf(p.candidate_outcome = 'ok')                                             AS candidate_ok,
        avg(p.primary_input_tokens)                                                     AS primary_input_tokens_avg,
        avg(p.primary_output_tokens)                                                    AS primary_output_tokens_avg,
        avg(p.candidate_input_tokens)                                                   AS candidate_input_tokens_avg,
        avg(p.candidate_output_tokens)                                                  AS candidate_output_tokens_avg,
        min(p.start_time)                                                               AS first_pair_at,
        max(p.start_time)                                                               AS last_pair_at
    FROM ${db}.shadow_pairs AS p
    WHERE p.candidate_role = 'candidate'
    GROUP BY p.experiment, p.candidate_config_id
)
SELECT
    a.experiment AS experiment,
    a.candidate_config_id AS candidate_config_id,
    a.primary_config_id AS primary_config_id,
    a.candidate_model AS candidate_model,
    a.primary_model AS primary_model,
    a.pairs AS pairs,
    c.primary_runs AS primary_runs,
    c.scheduled AS scheduled,
    c.dropped AS dropped,
    c.scheduled / nullIf(c.scheduled + c.dropped, 0)  AS coverage,
    a.exact_match_rate AS exact_match_rate,
    a.primary_error_rate AS primary_error_rate,
    a.candidate_error_rate AS candidate_error_rate,
    -- no ok execution: NULL, as quantile_cont of nothing
    if(a.primary_ok = 0, NULL, a.primary_q[1])        AS primary_p50_ms,
    if(a.primary_ok = 0, NULL, a.primary_q[2])        AS primary_p95_ms,
    if(a.primary_ok = 0, NULL, a.primary_q[3])        AS primary_p99_ms,
    if(a.candidate_ok = 0, NULL, a.candidate_q[1])    AS candidate_p50_ms,
    if(a.candidate_ok = 0, NULL, a.candidate_q[2])    AS candidate_p95_ms,
    if(a.candidate_ok = 0, NULL, a.candidate_q[3])    AS candidate_p99_ms,
    a.primary_input_tokens_avg AS primary_input_tokens_avg,
    a.primary_output_tokens_avg AS primary_output_tokens_avg,
    a.candidate_input_tokens_avg AS candidate_input_tokens_avg,
    a.candidate_output_tokens_avg AS candidate_output_tokens_avg,
    a.first_pair_at AS first_pair_at,
    a.last_pair_at AS last_pair_at
FROM agg AS a
LEFT JOIN ${db}.shadow_coverage AS c ON c.experiment = a.experiment
SETTINGS join_use_nulls = 1;

-- Per experiment × primary config: how often the primary config agrees with itself (the noise floor).
CREATE OR REPLACE VIEW ${db}.shadow_noise_floor AS
SELECT
    experiment,
    primary_config_id,
    count()                                                                        AS replicate_pairs,
    count(output_match)                                                            AS compared,
    countIf(output_match)                                                          AS matches,
    avg(multiIf(output_match, 1.0, NOT output_match, 0.0, NULL))                   AS exact_match_rate,
    avg(multiIf(candidate_outcome = 'ok', 0.0, candidate_outcome = 'cancelled', NULL, 1.0)) AS replicate_error_rate
FROM ${db}.shadow_pairs
WHERE candidate_role = 'replicate'
GROUP BY experiment, primary_config_id;

-- One row per compared pair × comparison metric (shadow.metric.* on the candidate or replicate).
-- The exporter keeps booleans as 'true' / 'false': they read as 1.0 / 0.0.
CREATE OR REPLACE VIEW ${db}.shadow_metrics AS
SELECT
    p.experiment AS experiment,
    p.trace_id AS trace_id,
    p.primary_span_id AS primary_span_id,
    p.candidate_span_id AS candidate_span_id,
    p.primary_config_id AS primary_config_id,
    p.candidate_config_id AS candidate_config_id,
    p.candidate_role AS candidate_role,
    m.metric AS metric,
    m.value AS value,
    p.start_time AS start_time
FROM ${db}.shadow_pairs AS p
INNER JOIN (
    SELECT trace_id, span_id, role, substring(key, 15) AS metric,
           multiIf(attributes[key] = 'true', 1.0, attributes[key] = 'false', 0.0, toFloat64OrNull(attributes[key])) AS value
    FROM ${db}.shadow_runs
    ARRAY JOIN arrayFilter(k -> startsWith(k, 'shadow.metric.'), mapKeys(attributes)) AS key
    WHERE role IN ('candidate', 'replicate')
) AS m ON m.trace_id = p.trace_id AND m.span_id = p.candidate_span_id AND m.role = p.candidate_role
WHERE p.candidate_outcome = 'ok';

-- Per experiment × candidate config × metric: the candidate's mean beside the noise floor.
CREATE OR REPLACE VIEW ${db}.shadow_metric_summary AS
WITH m AS (
    SELECT experiment, candidate_config_id, candidate_role, metric, count(value) AS pairs, avg(value) AS mean
    FROM ${db}.shadow_metrics
    GROUP BY experiment, candidate_config_id, candidate_role, metric
)
SELECT
    c.experiment AS experiment,
    c.candidate_config_id AS candidate_config_id,
    c.metric AS metric,
    c.pairs AS pairs,
    c.mean                 AS candidate_mean,
    r.pairs                AS replicate_pairs,
    r.mean                 AS replicate_mean,
    c.mean - r.mean        AS difference_from_floor
FROM (SELECT * FROM m WHERE candidate_role = 'candidate') AS c
LEFT JOIN (SELECT * FROM m WHERE candidate_role = 'replicate') AS r ON r.experiment = c.experiment AND r.metric = c.metric
SETTINGS join_use_nulls = 1;

-- One row per scored pair × scorer: the spans `otel-shadow score` writes (named
-- "gen_ai.evaluation <scorer>", children of the candidate span, linked to the primary; see
-- docs/scoring.md). A pair that two runs scored with the same scorer config keeps its first score.
CREATE OR REPLACE VIEW ${db}.shadow_scores AS
SELECT
    nullIf(s.attributes['shadow.score.experiment'], '')                      AS experiment,
    s.trace_id                                                              AS trace_id,
    if(s.score_link = 0, NULL, s.link_span_ids[s.score_link])                AS primary_span_id,
    s.parent_span_id                                                        AS candidate_span_id,
    nullIf(s.attributes['shadow.score.primary.config.id'], '')               AS primary_config_id,
    nullIf(s.attributes['shadow.score.candidate.config.id'], '')             AS candidate_config_id,
    nullIf(s.attributes['shadow.score.candidate.role'], '')                  AS candidate_role,
    nullIf(s.attributes['gen_ai.evaluation.name'], '')                       AS scorer,
    nullIf(s.attributes['shadow.score.scorer.id'], '')                       AS scorer_id,
    nullIf(s.attributes['shadow.score.model'], '')                           AS model,
    toFloat64OrNull(s.attributes['gen_ai.evaluation.score.value'])           AS score,
    nullIf(s.attributes['gen_ai.evaluation.score.label'], '')                AS label,
    nullIf(s.attributes['gen_ai.evaluation.explanation'], '')                AS explanation,
    multiIf(s.attributes['shadow.score.judge.consistent'] = 'true', true,
            s.attributes['shadow.score.judge.consistent'] = 'false', false, NULL) AS consistent,
    toInt64OrNull(s.attributes['shadow.score.usage.input_tokens'])           AS input_tokens,
    toInt64OrNull(s.attributes['shadow.score.usage.output_tokens'])          AS output_tokens,
    fromUnixTimestamp64Nano(toInt64OrNull(s.attributes['shadow.score.pair.start_time_unix_nano'])) AS start_time,
    s.start_time                                                            AS scored_at,
    s.span_id                                                               AS score_span_id
FROM (
    -- the primary: the score span's own first score.primary link (no join over every span's links)
    SELECT *, arrayFirstIndex(a -> a['shadow.link'] = 'score.primary', link_attributes) AS score_link
    FROM ${db}.otel_shadow_spans
    WHERE name LIKE 'gen_ai.evaluation %' AND has(attribute_keys, 'shadow.score.scorer.id') AND span_id != ''
      AND experiment IS NULL AND attributes['shadow.score.scorer.id'] != ''
    ORDER BY start_time, span_id
    LIMIT 1 BY trace_id, parent_span_id, attributes['shadow.score.scorer.id']
) AS s;

-- Per experiment × candidate config × scorer: the mean score, the judge's wins / ties / losses and
-- how often the position-bias check agreed, beside the same scorer's mean over replicates.
CREATE OR REPLACE VIEW ${db}.shadow_score_summary AS
WITH m AS (
    SELECT experiment, candidate_config_id, candidate_role, scorer, scorer_id,
           min(model)                                        AS model,
           count()                                           AS pairs,
           avg(score)                                        AS mean,
           countIf(label = 'win')                            AS wins,
           countIf(label = 'tie')                            AS ties,
           countIf(label = 'loss')                           AS losses,
           count(consistent)                                 AS bias_checked,
           avg(multiIf(consistent, 1.0, NOT consistent, 0.0, NULL)) AS bias_agreement
    FROM ${db}.shadow_scores
    GROUP BY experiment, candidate_config_id, candidate_role, scorer, scorer_id
)
SELECT
    c.experiment AS experiment,
    c.candidate_config_id AS candidate_config_id,
    c.scorer AS scorer,
    c.scorer_id AS scorer_id,
    c.model AS model,
    c.pairs AS pairs,
    c.mean                                                   AS mean_score,
    c.wins AS wins,
    c.ties AS ties,
    c.losses AS losses,
    c.wins / nullIf(c.wins + c.ties + c.losses, 0)           AS win_rate,
    c.bias_checked AS bias_checked,
    c.bias_agreement AS bias_agreement,
    r.pairs                                                  AS replicate_pairs,
    r.mean                                                   AS replicate_mean,
    c.mean - r.mean                                          AS difference_from_floor
FROM (SELECT * FROM m WHERE candidate_role = 'candidate') AS c
LEFT JOIN (SELECT * FROM m WHERE candidate_role = 'replicate') AS r
    ON r.experiment = c.experiment AND r.scorer_id = c.scorer_id
SETTINGS join_use_nulls = 1;
