-- otel-shadow store, schema version 1. The tables are internal; the views in views.sql are the
-- stable, documented interface (docs/schema.md). Ids are compact (UUID / UBIGINT); the macros
-- hex_trace_id / hex_span_id show them as OTLP hex.
--
-- No PRIMARY KEY on spans: OTLP clients legitimately re-send (duplicates are "the right
-- tradeoff" in the OTLP spec), and a key would make a retried batch fail forever. A batch seen
-- twice is stored once through ingest_batches; duplicates inside different batches are removed
-- by the views.

CREATE TABLE IF NOT EXISTS otel_shadow_meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS spans (
    trace_id                   UUID         NOT NULL,
    span_id                    UBIGINT      NOT NULL,
    parent_span_id             UBIGINT,
    trace_state                VARCHAR,
    flags                      UINTEGER,
    name                       VARCHAR      NOT NULL,
    kind                       UTINYINT     NOT NULL,  -- OTLP SpanKind: 1 internal, 2 server, 3 client...
    start_time                 TIMESTAMP_NS NOT NULL,
    end_time                   TIMESTAMP_NS NOT NULL,
    duration_ms                DOUBLE       NOT NULL,
    status_code                UTINYINT     NOT NULL,  -- 0 unset, 1 ok, 2 error
    status_message             VARCHAR,
    service_name               VARCHAR      NOT NULL,  -- resource service.name ('' when absent)
    scope_name                 VARCHAR,
    scope_version              VARCHAR,
    -- promoted shadow.* attributes
    experiment                 VARCHAR,
    role                       VARCHAR,
    config_id                  VARCHAR,
    outcome                    VARCHAR,
    output_hash                VARCHAR,
    output_length              BIGINT,
    candidates_scheduled       BIGINT,
    candidates_dropped         BIGINT,
    drop_reasons               VARCHAR,
    -- promoted gen_ai.* attributes
    gen_ai_operation_name      VARCHAR,
    gen_ai_provider_name       VARCHAR,
    gen_ai_request_model       VARCHAR,
    gen_ai_response_model      VARCHAR,
    gen_ai_usage_input_tokens  BIGINT,
    gen_ai_usage_output_tokens BIGINT,
    -- everything, with its type (ints stay ints): attributes->>'$."http.route"'
    attributes                 JSON,
    resource_attributes        JSON,
    dropped_attributes_count   UINTEGER,
    dropped_events_count       UINTEGER,
    dropped_links_count        UINTEGER,
    batch_id                   UBIGINT      NOT NULL   -- the ingest_batches row that brought it
);

CREATE TABLE IF NOT EXISTS span_links (
    trace_id        UUID     NOT NULL,  -- the span that holds the link (a candidate)
    span_id         UBIGINT  NOT NULL,
    link_index      USMALLINT NOT NULL,
    linked_trace_id UUID     NOT NULL,  -- the span it points to (its primary)
    linked_span_id  UBIGINT  NOT NULL,
    link_type       VARCHAR,            -- the link's shadow.link attribute ('primary')
    trace_state     VARCHAR,
    flags           UINTEGER,
    attributes      JSON,
    batch_id        UBIGINT  NOT NULL
);

CREATE TABLE IF NOT EXISTS span_events (
    trace_id    UUID         NOT NULL,
    span_id     UBIGINT      NOT NULL,
    event_index USMALLINT    NOT NULL,
    time        TIMESTAMP_NS NOT NULL,
    name        VARCHAR      NOT NULL,
    attributes  JSON,
    batch_id    UBIGINT      NOT NULL
);

-- One row per stored OTLP request, written in the same transaction as its rows: a batch that
-- arrives again (a client retry after a lost acknowledgement) is recognised and stored once.
CREATE TABLE IF NOT EXISTS ingest_batches (
    batch_id    UBIGINT     PRIMARY KEY,  -- BLAKE2b-64 of the request bytes
    received_at TIMESTAMPTZ NOT NULL,
    source      VARCHAR     NOT NULL,     -- otlp-grpc, otlp-http-protobuf, otlp-http-json, exporter
    spans       INTEGER     NOT NULL,
    links       INTEGER     NOT NULL,
    events      INTEGER     NOT NULL,
    rejected    INTEGER     NOT NULL,     -- invalid spans answered with partial success
    skipped     INTEGER     NOT NULL,     -- spans without shadow.* attributes, counted not stored
    bytes       BIGINT      NOT NULL
);

-- Rollout plans (otel_shadow.rollout, docs/rollout.md): one row per move of a rule's plan, never
-- updated; the newest row of a rule is its state. Holds are not recorded (a --watch loop would
-- write one per check); a move names who made it and the verdict it was made on.
CREATE TABLE IF NOT EXISTS rollout_history (
    rule        VARCHAR   NOT NULL,  -- the rule's name in the rules file (= shadow.experiment)
    seq         INTEGER   NOT NULL,  -- 1, 2, … per rule
    moved_at    TIMESTAMP NOT NULL,  -- UTC
    action      VARCHAR   NOT NULL,  -- start, advance, complete, rollback, promote
    step        INTEGER   NOT NULL,  -- index (from 0) of the plan step applied after this move
    phase       VARCHAR   NOT NULL,  -- shadow | canary
    fraction    DOUBLE    NOT NULL,  -- the step's sample_rate (shadow) or canary fraction (canary)
    status      VARCHAR   NOT NULL,  -- active, complete, rolled_back
    actor       VARCHAR   NOT NULL,  -- user@host, or "rollout" for the automatic loop
    verdict     VARCHAR,             -- the verdict at the step it left (NULL: none read)
    pairs       BIGINT,              -- pairs (shadow) or canary calls the verdict rested on
    reason      VARCHAR,
    rules_file  VARCHAR,
    plan        VARCHAR              -- the plan's steps as JSON, as applied
);

-- Alerts (otel_shadow.rollout.watch, docs/alerts.md). shadow_alert_state: the last state seen per
-- candidate and kind, so a change raises one alert, however often the check runs and across
-- restarts. shadow_alert_log: every alert raised, with its webhook body and how delivery went
-- (pending until delivered or failed; pending ones are sent again after a crash).
CREATE TABLE IF NOT EXISTS shadow_alert_state (
    experiment          VARCHAR     NOT NULL,
    candidate_config_id VARCHAR     NOT NULL,
    kind                VARCHAR     NOT NULL,  -- verdict, error_rate, p95_ms
    state               VARCHAR     NOT NULL,  -- a verdict, or above / below
    since               TIMESTAMPTZ NOT NULL,
    value               DOUBLE,                -- the raw number behind above / below
    PRIMARY KEY (experiment, candidate_config_id, kind)
);

CREATE TABLE IF NOT EXISTS shadow_alert_log (
    alert_id            UUID        PRIMARY KEY,
    raised_at           TIMESTAMPTZ NOT NULL,
    experiment          VARCHAR     NOT NULL,
    candidate_config_id VARCHAR     NOT NULL,
    kind                VARCHAR     NOT NULL,
    previous_state      VARCHAR,               -- NULL: the candidate was first seen in this state
    state               VARCHAR     NOT NULL,
    value               DOUBLE,
    threshold           DOUBLE,
    message             VARCHAR     NOT NULL,
    payload             JSON        NOT NULL,  -- the webhook body
    webhook             VARCHAR     NOT NULL,  -- none, pending, delivered, failed
    webhook_attempts    INTEGER,
    webhook_error       VARCHAR
);
