-- The stable SQL interface of otel-shadow (documented in docs/schema.md). Mostly portable SQL:
-- besides the hex macros, the DuckDB-specific parts are the table macro shadow_runs_of with its
-- ANTI JOIN and UNION ALL BY NAME (de-duplication; ClickHouse: LIMIT 1 BY), QUALIFY (the scores'
-- de-duplication) and the list form of quantile_cont (ClickHouse: quantilesExact).

CREATE OR REPLACE MACRO hex_trace_id(t) AS replace(CAST(t AS VARCHAR), '-', '');
CREATE OR REPLACE MACRO hex_span_id(s) AS lpad(lower(to_hex(s)), 16, '0');

-- One row per execution (primary, candidate or replicate) of the given roles (NULL: every role),
-- duplicates removed. Token counts, models, operation and provider come from the span itself or,
-- for a span wrapping an instrumented LLM call (an experiment, or a thin shadow span around an SDK's
-- own GenAI span), from its direct GenAI children.
--
-- How, and why: most executions were sent once and have no GenAI child; their row is the span's
-- row as stored. One narrow aggregate (two key columns) finds the others: an execution sent once
-- with children is joined to its children's sums; a re-sent one goes through a hash aggregate where
-- its copies (identical: any copy's value is the span's) and its children meet. De-duplicating
-- every execution instead (a window, or an aggregate), or joining every execution to the children,
-- carries all of its columns through a hash table: that was most of shadow_pairs' cost
-- (docs/performance.md, Scale). The roles are filtered before anything else: a caller that needs
-- only primaries reads only those.
CREATE OR REPLACE MACRO shadow_runs_of(roles) AS TABLE
WITH shared AS (  -- the keys with more than one row: copies of an execution, or its GenAI children
    SELECT trace_id, span_id, count(*) FILTER (WHERE is_execution) AS copies
    FROM (
        SELECT trace_id, span_id, true AS is_execution FROM spans
        WHERE experiment IS NOT NULL AND (roles IS NULL OR list_contains(roles, role))
        UNION ALL
        SELECT trace_id, parent_span_id, false FROM spans
        WHERE experiment IS NULL AND gen_ai_operation_name IS NOT NULL AND parent_span_id IS NOT NULL
    ) executions_and_children
    GROUP BY trace_id, span_id
    HAVING count(*) > 1
),
resent AS (  -- the keys of executions stored more than once
    SELECT trace_id, span_id FROM shared WHERE copies > 1
),
child_usage AS (  -- per parent: its direct GenAI children (spans that are not executions)
    SELECT trace_id, parent_span_id AS span_id,
           sum(gen_ai_usage_input_tokens)  AS child_input_tokens,
           sum(gen_ai_usage_output_tokens) AS child_output_tokens,
           min(gen_ai_request_model)       AS child_request_model,
           min(gen_ai_response_model)      AS child_response_model,
           min(gen_ai_operation_name)      AS child_operation,
           min(gen_ai_provider_name)       AS child_provider
    FROM spans
    WHERE experiment IS NULL AND gen_ai_operation_name IS NOT NULL AND parent_span_id IS NOT NULL
    GROUP BY trace_id, parent_span_id
),
alone AS (  -- sent once, no GenAI child: as stored
    SELECT s.trace_id, s.span_id, experiment, role, config_id, parent_span_id, start_time, end_time,
           duration_ms, outcome, status_code, output_hash, output_length, candidates_scheduled,
           candidates_dropped, drop_reasons, service_name, status_message, attributes,
           gen_ai_operation_name, gen_ai_provider_name, gen_ai_request_model, gen_ai_response_model,
           gen_ai_usage_input_tokens, gen_ai_usage_output_tokens,
           CAST(NULL AS HUGEINT) AS child_input_tokens, CAST(NULL AS HUGEINT) AS child_output_tokens,
           CAST(NULL AS VARCHAR) AS child_request_model, CAST(NULL AS VARCHAR) AS child_response_model,
           CAST(NULL AS VARCHAR) AS child_operation, CAST(NULL AS VARCHAR) AS child_provider
    FROM spans s
    ANTI JOIN shared k ON k.trace_id = s.trace_id AND k.span_id = s.span_id
    WHERE experiment IS NOT NULL AND (roles IS NULL OR list_contains(roles, role))
),
with_children AS (  -- sent once, with its GenAI children's sums
    SELECT s.trace_id, s.span_id, experiment, role, config_id, parent_span_id, start_time, end_time,
           duration_ms, outcome, status_code, output_hash, output_length, candidates_scheduled,
           candidates_dropped, drop_reasons, service_name, status_message, attributes,
           gen_ai_operation_name, gen_ai_provider_name, gen_ai_request_model, gen_ai_response_model,
           gen_ai_usage_input_tokens, gen_ai_usage_output_tokens,
           u.child_input_tokens, u.child_output_tokens, u.child_request_model, u.child_response_model,
           u.child_operation, u.child_provider
    FROM child_usage u
    JOIN spans s ON s.trace_id = u.trace_id AND s.span_id = u.span_id
    SEMI JOIN shared k ON k.trace_id = s.trace_id AND k.span_id = s.span_id AND k.copies = 1
    WHERE experiment IS NOT NULL AND (roles IS NULL OR list_contains(roles, role))
),
merged AS (  -- re-sent: its copies and its children in one group
    SELECT
        trace_id, span_id,
        any_value(experiment) AS experiment,
        any_value(role) AS role,
        any_value(config_id) AS config_id,
        any_value(parent_span_id) AS parent_span_id,
        any_value(start_time) AS start_time,
        any_value(end_time) AS end_time,
        any_value(duration_ms) AS duration_ms,
        any_value(outcome) AS outcome,
        any_value(status_code) AS status_code,
        any_value(output_hash) AS output_hash,
        any_value(output_length) AS output_length,
        any_value(candidates_scheduled) AS candidates_scheduled,
        any_value(candidates_dropped) AS candidates_dropped,
        any_value(drop_reasons) AS drop_reasons,
        any_value(service_name) AS service_name,
        any_value(status_message) AS status_message,
        any_value(attributes) AS attributes,
        any_value(gen_ai_operation_name) AS gen_ai_operation_name,
        any_value(gen_ai_provider_name) AS gen_ai_provider_name,
        any_value(gen_ai_request_model) AS gen_ai_request_model,
        any_value(gen_ai_response_model) AS gen_ai_response_model,
        any_value(gen_ai_usage_input_tokens) AS gen_ai_usage_input_tokens,
        any_value(gen_ai_usage_output_tokens) AS gen_ai_usage_output_tokens,
        sum(child_input_tokens) AS child_input_tokens, sum(child_output_tokens) AS child_output_tokens,
        min(child_request_model) AS child_request_model, min(child_response_model) AS child_response_model,
        min(child_operation) AS child_operation, min(child_provider) AS child_provider
    FROM (
        SELECT trace_id, span_id, experiment, role, config_id, parent_span_id, start_time, end_time,
           duration_ms, outcome, status_code, output_hash, output_length, candidates_scheduled,
           candidates_dropped, drop_reasons, service_name, status_message, attributes,
           gen_ai_operation_name, gen_ai_provider_name, gen_ai_request_model, gen_ai_response_model,
           gen_ai_usage_input_tokens, gen_ai_usage_output_tokens,
           CAST(NULL AS BIGINT) AS child_input_tokens, CAST(NULL AS BIGINT) AS child_output_tokens,
           CAST(NULL AS VARCHAR) AS child_request_model, CAST(NULL AS VARCHAR) AS child_response_model,
           CAST(NULL AS VARCHAR) AS child_operation, CAST(NULL AS VARCHAR) AS child_provider
        FROM spans
        WHERE experiment IS NOT NULL AND (roles IS NULL OR list_contains(roles, role))
        UNION ALL
        SELECT trace_id, parent_span_id,
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
               gen_ai_usage_input_tokens, gen_ai_usage_output_tokens, gen_ai_request_model,
               gen_ai_response_model, gen_ai_operation_name, gen_ai_provider_name
        FROM spans
        WHERE experiment IS NULL AND gen_ai_operation_name IS NOT NULL AND parent_span_id IS NOT NULL
    ) copies_and_children
    WHERE (trace_id, span_id) IN (SELECT trace_id, span_id FROM resent)
    GROUP BY trace_id, span_id
    HAVING count(experiment) > 0  -- an execution's group (not children alone)
)
SELECT
    experiment,
    role,
    config_id,
    trace_id,
    span_id,
    parent_span_id,
    start_time,
    end_time,
    duration_ms,
    coalesce(outcome, CASE WHEN status_code = 2 THEN 'error' ELSE 'ok' END) AS outcome,
    output_hash,
    output_length,
    candidates_scheduled,
    candidates_dropped,
    drop_reasons,
    service_name,
    coalesce(gen_ai_operation_name, child_operation)           AS operation,
    coalesce(gen_ai_provider_name, child_provider)             AS provider,
    coalesce(gen_ai_request_model, child_request_model)        AS request_model,
    coalesce(gen_ai_response_model, child_response_model)      AS response_model,
    coalesce(gen_ai_usage_input_tokens, child_input_tokens)    AS input_tokens,
    coalesce(gen_ai_usage_output_tokens, child_output_tokens)  AS output_tokens,
    status_message,
    attributes
FROM (
    SELECT * FROM alone
    UNION ALL BY NAME SELECT * FROM with_children
    UNION ALL BY NAME SELECT * FROM merged
) runs;

-- Every execution: the same rows as shadow_runs_of(NULL), written so that a filter on experiment or
-- role (canary cohorts, coverage: role = 'primary') is applied before the de-duplication, which
-- groups on those columns too (constant per span): re-sent copies are identical, so any copy's
-- value is the span's.
CREATE OR REPLACE VIEW shadow_runs AS
WITH runs AS (
    SELECT
        trace_id, span_id, experiment, role,
        any_value(config_id) AS config_id,
        any_value(parent_span_id) AS parent_span_id,
        any_value(start_time) AS start_time,
        any_value(end_time) AS end_time,
        any_value(duration_ms) AS duration_ms,
        any_value(outcome) AS outcome,
        any_value(status_code) AS status_code,
        any_value(output_hash) AS output_hash,
        any_value(output_length) AS output_length,
        any_value(candidates_scheduled) AS candidates_scheduled,
        any_value(candidates_dropped) AS candidates_dropped,
        any_value(drop_reasons) AS drop_reasons,
        any_value(service_name) AS service_name,
        any_value(status_message) AS status_message,
        any_value(attributes) AS attributes,
        any_value(gen_ai_operation_name) AS gen_ai_operation_name,
        any_value(gen_ai_provider_name) AS gen_ai_provider_name,
        any_value(gen_ai_request_model) AS gen_ai_request_model,
        any_value(gen_ai_response_model) AS gen_ai_response_model,
        any_value(gen_ai_usage_input_tokens) AS gen_ai_usage_input_tokens,
        any_value(gen_ai_usage_output_tokens) AS gen_ai_usage_output_tokens
    FROM spans
    WHERE experiment IS NOT NULL
    GROUP BY trace_id, span_id, experiment, role
),
child_usage AS (
    SELECT trace_id, parent_span_id AS span_id,
           sum(gen_ai_usage_input_tokens)  AS input_tokens,
           sum(gen_ai_usage_output_tokens) AS output_tokens,
           min(gen_ai_request_model)       AS request_model,
           min(gen_ai_response_model)      AS response_model,
           min(gen_ai_operation_name)      AS operation,
           min(gen_ai_provider_name)       AS provider
    FROM spans
    WHERE experiment IS NULL AND gen_ai_operation_name IS NOT NULL AND parent_span_id IS NOT NULL
    GROUP BY trace_id, parent_span_id
)
SELECT
    r.experiment,
    r.role,
    r.config_id,
    r.trace_id,
    r.span_id,
    r.parent_span_id,
    r.start_time,
    r.end_time,
    r.duration_ms,
    coalesce(r.outcome, CASE WHEN r.status_code = 2 THEN 'error' ELSE 'ok' END) AS outcome,
    r.output_hash,
    r.output_length,
    r.candidates_scheduled,
    r.candidates_dropped,
    r.drop_reasons,
    r.service_name,
    coalesce(r.gen_ai_operation_name, u.operation)            AS operation,
    coalesce(r.gen_ai_provider_name, u.provider)              AS provider,
    coalesce(r.gen_ai_request_model, u.request_model)         AS request_model,
    coalesce(r.gen_ai_response_model, u.response_model)       AS response_model,
    coalesce(r.gen_ai_usage_input_tokens, u.input_tokens)     AS input_tokens,
    coalesce(r.gen_ai_usage_output_tokens, u.output_tokens)   AS output_tokens,
    r.status_message,
    r.attributes
FROM runs r
LEFT JOIN child_usage u ON u.trace_id = r.trace_id AND u.span_id = r.span_id;

-- One row per primary × candidate (or replicate) pair, joined through the candidate's link.
CREATE OR REPLACE VIEW shadow_pairs AS
WITH links AS (
    SELECT DISTINCT trace_id, span_id, linked_trace_id, linked_span_id
    FROM span_links WHERE link_type = 'primary'
)
SELECT
    c.experiment,
    c.trace_id,
    p.span_id                 AS primary_span_id,
    c.span_id                 AS candidate_span_id,
    p.config_id               AS primary_config_id,
    c.config_id               AS candidate_config_id,
    c.role                    AS candidate_role,
    p.duration_ms             AS primary_duration_ms,
    c.duration_ms             AS candidate_duration_ms,
    p.outcome                 AS primary_outcome,
    c.outcome                 AS candidate_outcome,
    CASE WHEN p.outcome = 'ok' AND c.outcome = 'ok'
              AND p.output_hash IS NOT NULL AND c.output_hash IS NOT NULL
         THEN p.output_hash = c.output_hash END AS output_match,
    p.input_tokens            AS primary_input_tokens,
    p.output_tokens           AS primary_output_tokens,
    c.input_tokens            AS candidate_input_tokens,
    c.output_tokens           AS candidate_output_tokens,
    p.request_model           AS primary_model,
    c.request_model           AS candidate_model,
    p.output_length           AS primary_output_length,
    c.output_length           AS candidate_output_length,
    p.start_time
FROM shadow_runs_of(['candidate', 'replicate']) c
JOIN links l ON l.trace_id = c.trace_id AND l.span_id = c.span_id
JOIN shadow_runs_of(['primary']) p ON p.trace_id = l.linked_trace_id AND p.span_id = l.linked_span_id;

-- Per experiment: how many candidates were scheduled and dropped (coverage). Reads only the
-- columns it needs (a narrow de-duplication is several times cheaper than shadow_runs').
CREATE OR REPLACE VIEW shadow_coverage AS
SELECT experiment,
       count(*)                                                 AS primary_runs,
       CAST(coalesce(sum(candidates_scheduled), 0) AS BIGINT)   AS scheduled,
       CAST(coalesce(sum(candidates_dropped), 0) AS BIGINT)     AS dropped
FROM (
    -- re-sent copies are identical: any one's values (a hash aggregate, cheaper than a window)
    SELECT any_value(experiment) AS experiment, any_value(candidates_scheduled) AS candidates_scheduled,
           any_value(candidates_dropped) AS candidates_dropped
    FROM spans
    WHERE experiment IS NOT NULL AND role = 'primary'
    GROUP BY trace_id, span_id
) primaries
GROUP BY experiment;

-- Per experiment × candidate config: agreement, errors, latency and tokens of each arm.
-- Latency quantiles are exact, computed in one pass per arm (a list of quantiles).
CREATE OR REPLACE VIEW shadow_summary AS
WITH agg AS (
    SELECT
        p.experiment,
        p.candidate_config_id,
        min(p.primary_config_id)                                                        AS primary_config_id,
        min(p.candidate_model)                                                          AS candidate_model,
        min(p.primary_model)                                                            AS primary_model,
        count(*)                                                                        AS pairs,
        avg(CASE WHEN p.output_match THEN 1.0 WHEN NOT p.output_match THEN 0.0 END)     AS exact_match_rate,
        -- cancelled (cut short by shutdown or by the user closing a stream) is no verdict on the
        -- config: it counts as scheduled in coverage, never in an error rate (NULL: left out of avg)
        avg(CASE p.primary_outcome WHEN 'ok' THEN 0.0 WHEN 'cancelled' THEN NULL ELSE 1.0 END)   AS primary_error_rate,
        avg(CASE p.candidate_outcome WHEN 'ok' THEN 0.0 WHEN 'cancelled' THEN NULL ELSE 1.0 END) AS candidate_error_rate,
        quantile_cont(p.primary_duration_ms, [0.50, 0.95, 0.99]) FILTER (WHERE p.primary_outcome = 'ok')     AS primary_q,
        quantile_cont(p.candidate_duration_ms, [0.50, 0.95, 0.99]) FILTER (WHERE p.candidate_outcome = 'ok') AS candidate_q,
        avg(p.primary_input_tokens)                                                     AS primary_input_tokens_avg,
        avg(p.primary_output_tokens)                                                    AS primary_output_tokens_avg,
        avg(p.candidate_input_tokens)                                                   AS candidate_input_tokens_avg,
        avg(p.candidate_output_tokens)                                                  AS candidate_output_tokens_avg,
        min(p.start_time)                                                               AS first_pair_at,
        max(p.start_time)                                                               AS last_pair_at
    FROM shadow_pairs p
    WHERE p.candidate_role = 'candidate'
    GROUP BY p.experiment, p.candidate_config_id
)
SELECT
    a.experiment,
    a.candidate_config_id,
    a.primary_config_id,
    a.candidate_model,
    a.primary_model,
    a.pairs,
    c.primary_runs,
    c.scheduled,
    c.dropped,
    c.scheduled / nullif(c.scheduled + c.dropped, 0)  AS coverage,
    a.exact_match_rate,
    a.primary_error_rate,
    a.candidate_error_rate,
    a.primary_q[1]                                    AS primary_p50_ms,
    a.primary_q[2]                                    AS primary_p95_ms,
    a.primary_q[3]                                    AS primary_p99_ms,
    a.candidate_q[1]                                  AS candidate_p50_ms,
    a.candidate_q[2]                                  AS candidate_p95_ms,
    a.candidate_q[3]                                  AS candidate_p99_ms,
    a.primary_input_tokens_avg,
    a.primary_output_tokens_avg,
    a.candidate_input_tokens_avg,
    a.candidate_output_tokens_avg,
    a.first_pair_at,
    a.last_pair_at
FROM agg a
LEFT JOIN shadow_coverage c ON c.experiment = a.experiment;

-- Per experiment × primary config: how often the primary config agrees with itself (its replicates
-- against the primary they shadowed): the noise floor every candidate's agreement is read against.
CREATE OR REPLACE VIEW shadow_noise_floor AS
SELECT
    experiment,
    primary_config_id,
    count(*)                                                                       AS replicate_pairs,
    count(output_match)                                                            AS compared,
    count(*) FILTER (WHERE output_match)                                           AS matches,
    avg(CASE WHEN output_match THEN 1.0 WHEN NOT output_match THEN 0.0 END)        AS exact_match_rate,
    avg(CASE candidate_outcome WHEN 'ok' THEN 0.0 WHEN 'cancelled' THEN NULL ELSE 1.0 END) AS replicate_error_rate
FROM shadow_pairs
WHERE candidate_role = 'replicate'
GROUP BY experiment, primary_config_id;

-- One row per compared pair × comparison metric: the shadow.metric.* attributes the candidate's
-- (or replicate's) worker recorded against its primary's output. Booleans read as 1.0 / 0.0.
CREATE OR REPLACE VIEW shadow_metrics AS
SELECT
    p.experiment,
    p.trace_id,
    p.primary_span_id,
    p.candidate_span_id,
    p.primary_config_id,
    p.candidate_config_id,
    p.candidate_role,
    substr(k.key, 15)                                         AS metric,
    CASE json_type(c.attributes, '$."' || k.key || '"')
         WHEN 'BOOLEAN' THEN CASE WHEN c.attributes ->> ('$."' || k.key || '"') = 'true' THEN 1.0 ELSE 0.0 END
         ELSE TRY_CAST(c.attributes ->> ('$."' || k.key || '"') AS DOUBLE)
    END                                                       AS value,
    p.start_time
FROM shadow_pairs p
JOIN shadow_runs c ON c.trace_id = p.trace_id AND c.span_id = p.candidate_span_id AND c.role = p.candidate_role
CROSS JOIN LATERAL (SELECT unnest(json_keys(c.attributes)) AS key) k
WHERE p.candidate_outcome = 'ok' AND k.key LIKE 'shadow.metric.%';

-- Per experiment × candidate config × metric: the candidate's mean beside the noise floor (the
-- replicates' mean: the primary config against itself, over the same experiment).
CREATE OR REPLACE VIEW shadow_metric_summary AS
WITH m AS (
    SELECT experiment, candidate_config_id, candidate_role, metric, count(value) AS pairs, avg(value) AS mean
    FROM shadow_metrics
    GROUP BY experiment, candidate_config_id, candidate_role, metric
)
SELECT
    c.experiment,
    c.candidate_config_id,
    c.metric,
    c.pairs,
    c.mean                 AS candidate_mean,
    r.pairs                AS replicate_pairs,
    r.mean                 AS replicate_mean,
    c.mean - r.mean        AS difference_from_floor
FROM m c
LEFT JOIN m r ON r.experiment = c.experiment AND r.metric = c.metric AND r.candidate_role = 'replicate'
WHERE c.candidate_role = 'candidate';

-- One row per scored pair × scorer: the spans `otel-shadow score` writes (named
-- "gen_ai.evaluation <scorer>", children of the candidate span, linked to the primary; see
-- docs/scoring.md). A pair that two runs scored with the same scorer config keeps its first score.
CREATE OR REPLACE VIEW shadow_scores AS
WITH score_spans AS (
    SELECT * FROM spans
    WHERE experiment IS NULL AND name LIKE 'gen_ai.evaluation %'
      AND attributes ->> '$."shadow.score.scorer.id"' IS NOT NULL
    QUALIFY row_number() OVER (
        PARTITION BY trace_id, parent_span_id, attributes ->> '$."shadow.score.scorer.id"'
        ORDER BY start_time, span_id) = 1
),
primary_links AS (
    SELECT DISTINCT trace_id, span_id, linked_span_id FROM span_links WHERE link_type = 'score.primary'
)
SELECT
    s.attributes ->> '$."shadow.score.experiment"'                         AS experiment,
    s.trace_id,
    l.linked_span_id                                                      AS primary_span_id,
    s.parent_span_id                                                      AS candidate_span_id,
    s.attributes ->> '$."shadow.score.primary.config.id"'                 AS primary_config_id,
    s.attributes ->> '$."shadow.score.candidate.config.id"'               AS candidate_config_id,
    s.attributes ->> '$."shadow.score.candidate.role"'                    AS candidate_role,
    s.attributes ->> '$."gen_ai.evaluation.name"'                         AS scorer,
    s.attributes ->> '$."shadow.score.scorer.id"'                         AS scorer_id,
    s.attributes ->> '$."shadow.score.model"'                             AS model,
    TRY_CAST(s.attributes ->> '$."gen_ai.evaluation.score.value"' AS DOUBLE) AS score,
    s.attributes ->> '$."gen_ai.evaluation.score.label"'                  AS label,
    s.attributes ->> '$."gen_ai.evaluation.explanation"'                  AS explanation,
    TRY_CAST(s.attributes ->> '$."shadow.score.judge.consistent"' AS BOOLEAN) AS consistent,
    TRY_CAST(s.attributes ->> '$."shadow.score.usage.input_tokens"' AS BIGINT)  AS input_tokens,
    TRY_CAST(s.attributes ->> '$."shadow.score.usage.output_tokens"' AS BIGINT) AS output_tokens,
    make_timestamp_ns(TRY_CAST(s.attributes ->> '$."shadow.score.pair.start_time_unix_nano"' AS BIGINT)) AS start_time,
    s.start_time                                                          AS scored_at,
    s.span_id                                                             AS score_span_id
FROM score_spans s
LEFT JOIN primary_links l ON l.trace_id = s.trace_id AND l.span_id = s.span_id;

-- Per experiment × candidate config × scorer: the mean score, the judge's wins / ties / losses
-- (the candidate's, against the primary) and how often the position-bias check agreed, beside the
-- same scorer's mean over replicates (the primary config against itself: the noise floor).
CREATE OR REPLACE VIEW shadow_score_summary AS
WITH m AS (
    SELECT experiment, candidate_config_id, candidate_role, scorer, scorer_id,
           min(model)                                        AS model,
           count(*)                                          AS pairs,
           avg(score)                                        AS mean,
           count(*) FILTER (WHERE label = 'win')             AS wins,
           count(*) FILTER (WHERE label = 'tie')             AS ties,
           count(*) FILTER (WHERE label = 'loss')            AS losses,
           count(consistent)                                 AS bias_checked,
           avg(CASE WHEN consistent THEN 1.0 WHEN NOT consistent THEN 0.0 END) AS bias_agreement
    FROM shadow_scores
    GROUP BY experiment, candidate_config_id, candidate_role, scorer, scorer_id
)
SELECT
    c.experiment,
    c.candidate_config_id,
    c.scorer,
    c.scorer_id,
    c.model,
    c.pairs,
    c.mean                                                   AS mean_score,
    c.wins,
    c.ties,
    c.losses,
    c.wins / nullif(c.wins + c.ties + c.losses, 0)           AS win_rate,
    c.bias_checked,
    c.bias_agreement,
    r.pairs                                                  AS replicate_pairs,
    r.mean                                                   AS replicate_mean,
    c.mean - r.mean                                          AS difference_from_floor
FROM m c
LEFT JOIN m r ON r.experiment = c.experiment AND r.scorer_id = c.scorer_id AND r.candidate_role = 'replicate'
WHERE c.candidate_role = 'candidate';
