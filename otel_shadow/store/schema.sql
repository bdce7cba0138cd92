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
