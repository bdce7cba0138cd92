"""The OpenTelemetry Collector configurations in collector/ hold only settings their components
document, with the documented types, and pipelines that reference what is defined.

There is no otelcol binary here, so this is a STRUCTURAL check written from each component's
documented configuration keys (URLs beside each schema): it catches a misspelled key, a wrong
type, an unknown routing key or an undefined pipeline component, not what a running collector
would refuse for other reasons (an unreachable endpoint, an OTTL expression it cannot parse).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from otel_shadow.safe_yaml import load_yaml, read_text_file

CONFIGS = sorted((Path(__file__).parents[1] / "collector").glob("*.yaml"))

# A schema is a dict of key -> schema; a type (str, int, bool); DURATION; a frozenset of allowed
# values; [schema] for a list of them; MAP for a free-form mapping (headers); ANY.
DURATION = re.compile(r"^(0|(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+)$")
MAP, ANY = "map", "any"
ENV = re.compile(r"^\$\{(env:)?[A-Za-z_][A-Za-z0-9_]*\}$")  # the collector's ${env:VAR} expansion

# exporterhelper settings shared by exporters:
# https://github.com/open-telemetry/opentelemetry-collector/blob/main/exporter/exporterhelper/README.md
RETRY = {
    "enabled": bool,
    "initial_interval": DURATION,
    "randomization_factor": float,
    "multiplier": float,
    "max_interval": DURATION,
    "max_elapsed_time": DURATION,
}
QUEUE = {
    "enabled": bool,
    "num_consumers": int,
    "queue_size": int,
    "storage": str,
    "blocking": bool,
    "block_on_overflow": bool,
    "sizer": frozenset({"requests", "items", "bytes"}),
    "wait_for_result": bool,
    "batch": {"flush_timeout": DURATION, "min_size": int, "max_size": int, "sizer": frozenset({"items", "bytes"})},
}
# https://github.com/open-telemetry/opentelemetry-collector/blob/main/config/configtls/README.md
TLS = {
    "insecure": bool,
    "insecure_skip_verify": bool,
    "ca_file": str,
    "ca_pem": str,
    "cert_file": str,
    "cert_pem": str,
    "key_file": str,
    "key_pem": str,
    "server_name_override": str,
    "min_version": str,
    "max_version": str,
    "reload_interval": DURATION,
    "include_system_ca_certs_pool": bool,
}
# https://github.com/open-telemetry/opentelemetry-collector/blob/main/exporter/otlpexporter/README.md
# and https://github.com/open-telemetry/opentelemetry-collector/blob/main/config/configgrpc/README.md
OTLP_EXPORTER = {
    "endpoint": str,
    "compression": frozenset({"gzip", "zstd", "snappy", "none"}),
    "tls": TLS,
    "headers": MAP,
    "keepalive": {"time": DURATION, "timeout": DURATION, "permit_without_stream": bool},
    "balancer_name": str,
    "auth": {"authenticator": str},
    "read_buffer_size": int,
    "write_buffer_size": int,
    "wait_for_ready": bool,
    "timeout": DURATION,
    "sending_queue": QUEUE,
    "retry_on_failure": RETRY,
}
# https://github.com/open-telemetry/opentelemetry-collector-contrib/blob/main/exporter/loadbalancingexporter/README.md
LOADBALANCING = {
    "routing_key": frozenset({"traceID", "service", "resource", "metric", "streamID", "attributes"}),
    "protocol": {"otlp": {k: v for k, v in OTLP_EXPORTER.items() if k != "endpoint"}},  # "should not be set"
    "resolver": {
        "static": {"hostnames": [str]},
        "dns": {"hostname": str, "port": str, "interval": DURATION, "timeout": DURATION},
        "k8s": {"service": str, "ports": [int], "timeout": DURATION, "return_hostnames": bool},
        "aws_cloud_map": {
            "namespace": str,
            "service_name": str,
            "interval": DURATION,
            "timeout": DURATION,
            "port": int,
            "health_status": str,
        },
    },
    "timeout": DURATION,
    "sending_queue": QUEUE,
    "retry_on_failure": RETRY,
}
# https://github.com/open-telemetry/opentelemetry-collector-contrib/blob/main/exporter/clickhouseexporter/README.md
CLICKHOUSE = {
    "endpoint": str,
    "username": str,
    "password": str,
    "ttl": DURATION,
    "database": str,
    "connection_params": MAP,
    "create_schema": bool,
    "compress": frozenset({"none", "zstd", "lz4", "gzip", "deflate", "br", "true"}),
    "async_insert": bool,
    "tls": TLS,
    "logs_table_name": str,
    "traces_table_name": str,
    "profiles_table_name": str,
    "metrics_tables": {
        kind: {"name": str} for kind in ("gauge", "sum", "summary", "histogram", "exponential_histogram")
    },
    "cluster_name": str,
    "table_engine": {"name": str, "params": str},
    "json": bool,
    "timeout": DURATION,
    "sending_queue": QUEUE,
    "retry_on_failure": RETRY,
}
# https://github.com/open-telemetry/opentelemetry-collector/blob/main/receiver/otlpreceiver/README.md
_SERVER = {"endpoint": str, "tls": TLS, "include_metadata": bool, "auth": {"authenticator": str}}
OTLP_RECEIVER = {
    "protocols": {
        "grpc": {
            **_SERVER,
            "transport": str,
            "max_recv_msg_size_mib": int,
            "max_concurrent_streams": int,
            "read_buffer_size": int,
            "write_buffer_size": int,
            "keepalive": ANY,
        },
        "http": {
            **_SERVER,
            "cors": ANY,
            "traces_url_path": str,
            "metrics_url_path": str,
            "logs_url_path": str,
            "max_request_body_size": int,
            "response_headers": MAP,
        },
    }
}
# https://github.com/open-telemetry/opentelemetry-collector/blob/main/processor/memorylimiterprocessor/README.md
MEMORY_LIMITER = {
    "check_interval": DURATION,
    "limit_mib": int,
    "spike_limit_mib": int,
    "limit_percentage": int,
    "spike_limit_percentage": int,
}
# https://github.com/open-telemetry/opentelemetry-collector/blob/main/processor/batchprocessor/README.md
BATCH = {
    "send_batch_size": int,
    "send_batch_max_size": int,
    "timeout": DURATION,
    "metadata_keys": [str],
    "metadata_cardinality_limit": int,
}
# https://github.com/open-telemetry/opentelemetry-collector-contrib/blob/main/processor/filterprocessor/README.md
FILTER = {
    "error_mode": frozenset({"ignore", "silent", "propagate"}),
    "traces": {"span": [str], "spanevent": [str]},
    "metrics": {"metric": [str], "datapoint": [str]},
    "logs": {"log_record": [str]},
}
# https://github.com/open-telemetry/opentelemetry-collector-contrib/blob/main/extension/storage/filestorage/README.md
FILE_STORAGE = {
    "directory": str,
    "timeout": DURATION,
    "fsync": bool,
    "create_directory": bool,
    "directory_permissions": str,
    "compaction": ANY,
}

COMPONENTS: dict[str, dict[str, Any]] = {
    "receivers": {"otlp": OTLP_RECEIVER},
    "processors": {"memory_limiter": MEMORY_LIMITER, "batch": BATCH, "filter": FILTER},
    "exporters": {"otlp": OTLP_EXPORTER, "loadbalancing": LOADBALANCING, "clickhouse": CLICKHOUSE},
    "extensions": {"file_storage": FILE_STORAGE},
}
REQUIRED = {
    ("exporters", "clickhouse"): ["endpoint"],
    ("exporters", "otlp"): ["endpoint"],
    ("exporters", "loadbalancing"): ["protocol", "resolver"],
}
SIGNALS = {"traces", "metrics", "logs"}


def check_value(value: Any, schema: Any, where: str) -> list[str]:
    """What is wrong with ``value`` under ``schema``, one message per problem, each naming its key."""
    if schema == ANY:
        return []
    if isinstance(value, str) and ENV.match(value):
        return []  # expanded by the collector at start
    if schema == MAP:
        return [] if isinstance(value, dict) else [f"{where}: expected a mapping, got {value!r}"]
    if isinstance(schema, dict):
        if value is None:
            return []  # "batch: {}" and "batch:" alike
        if not isinstance(value, dict):
            return [f"{where}: expected a mapping, got {value!r}"]
        problems = []
        for key, item in value.items():
            if key not in schema:
                problems.append(f"{where}.{key}: not a documented setting (known: {', '.join(sorted(schema))})")
            else:
                problems.extend(check_value(item, schema[key], f"{where}.{key}"))
        return problems
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {value!r}"]
        return [p for i, item in enumerate(value) for p in check_value(item, schema[0], f"{where}[{i}]")]
    if isinstance(schema, frozenset):
        return [] if value in schema else [f"{where}: {value!r} is not one of {sorted(schema)}"]
    if schema is DURATION:
        ok = isinstance(value, str) and DURATION.match(value) or value == 0
        return [] if ok else [f"{where}: {value!r} is not a Go duration (10s, 200ms, 1h)"]
    if schema is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{where}: expected a number, got {value!r}"]
    if schema is int and isinstance(value, bool):
        return [f"{where}: expected an integer, got {value!r}"]
    return [] if isinstance(value, schema) else [f"{where}: expected {schema.__name__}, got {value!r}"]


def check_config(config: Any) -> list[str]:
    """Every problem of an OpenTelemetry Collector configuration, structurally."""
    if not isinstance(config, dict):
        return ["the configuration is not a mapping"]
    problems = [f"{k}: not a top-level section" for k in config if k not in {*COMPONENTS, "connectors", "service"}]
    defined: dict[str, set[str]] = {}
    for section, kinds in COMPONENTS.items():
        defined[section] = set()
        for component_id, settings in (config.get(section) or {}).items():
            kind = component_id.split("/", 1)[0]
            if kind not in kinds:
                problems.append(
                    f"{section}.{component_id}: no schema for component type {kind!r} here (add its documented keys)"
                )
                continue
            defined[section].add(component_id)
            problems.extend(check_value(settings, kinds[kind], f"{section}.{component_id}"))
            for key in REQUIRED.get((section, kind), []):
                if key not in (settings or {}):
                    problems.append(f"{section}.{component_id}.{key}: required")
    service = config.get("service") or {}
    for extension in service.get("extensions") or []:
        if extension not in defined["extensions"]:
            problems.append(f"service.extensions: {extension!r} is not defined under extensions")
    used: set[str] = set()
    pipelines = service.get("pipelines") or {}
    if not pipelines:
        problems.append("service.pipelines: none defined")
    for name, pipeline in pipelines.items():
        signal = name.split("/", 1)[0]
        if signal not in SIGNALS:
            problems.append(f"service.pipelines.{name}: {signal!r} is not a signal ({', '.join(sorted(SIGNALS))})")
        for key in pipeline:
            if key not in {"receivers", "processors", "exporters"}:
                problems.append(f"service.pipelines.{name}.{key}: not a pipeline setting")
        for section in ("receivers", "processors", "exporters"):
            for component_id in pipeline.get(section) or []:
                used.add(f"{section}:{component_id}")
                if component_id not in defined[section]:
                    problems.append(
                        f"service.pipelines.{name}.{section}: {component_id!r} is not defined under {section}"
                    )
        if not pipeline.get("receivers") or not pipeline.get("exporters"):
            problems.append(f"service.pipelines.{name}: needs receivers and exporters")
    for section in ("receivers", "processors", "exporters"):
        for component_id in defined[section] - {c.split(":", 1)[1] for c in used if c.startswith(section)}:
            problems.append(f"{section}.{component_id}: defined but in no pipeline")
    return problems


def load(path: Path) -> Any:
    return load_yaml(read_text_file(path, 1 << 20, "collector config"), str(path), "a collector config")[1]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_each_shipped_collector_config_uses_only_documented_settings(path: Path) -> None:
    assert check_config(load(path)) == []


def test_the_configs_for_both_paths_are_shipped() -> None:
    assert {p.name for p in CONFIGS} >= {"otelcol-gateway-loadbalancing.yaml", "otelcol-clickhouse.yaml"}


def test_the_gateway_routes_whole_traces_to_otel_shadow_collectors() -> None:
    config = load(Path(__file__).parents[1] / "collector/otelcol-gateway-loadbalancing.yaml")
    (exporter_id,) = config["service"]["pipelines"]["traces"]["exporters"]
    exporter = config["exporters"][exporter_id]
    assert exporter_id.split("/")[0] == "loadbalancing"
    assert exporter["routing_key"] == "traceID"  # a primary and its candidates share a trace id
    assert "endpoint" not in exporter["protocol"]["otlp"]  # the exporter sets each backend's
    backends = exporter["resolver"]["static"]["hostnames"]
    assert len(backends) >= 2 and all(h.endswith(":4317") for h in backends)  # otel-shadow's OTLP/gRPC port
    assert exporter["protocol"]["otlp"]["retry_on_failure"]["max_elapsed_time"] == 0  # never drops while one restarts


def test_the_clickhouse_path_writes_the_table_the_views_read() -> None:
    config = load(Path(__file__).parents[1] / "collector/otelcol-clickhouse.yaml")
    exporter = config["exporters"]["clickhouse"]
    assert exporter.get("traces_table_name", "otel_traces") == "otel_traces"
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["clickhouse"]


_NIL_TERM = re.compile(r'^attributes\["([^"]+)"\] == nil$')


def drops(condition: str, attributes: dict[str, Any]) -> bool:
    """The filter processor's verdict on a span (true: dropped), for the one OTTL form used here:
    ``attributes["k"] == nil`` terms joined by ``and``; any other form fails, so it gets a test too."""
    terms = [_NIL_TERM.match(t.strip()) for t in condition.split(" and ")]
    assert all(terms), f"condition outside the evaluated form: {condition!r}"
    return all(t.group(1) not in attributes for t in terms if t)


def test_the_clickhouse_path_keeps_shadow_genai_and_score_spans_and_drops_the_rest() -> None:
    from otel_shadow.scoring.emit import Score, score_span
    from otel_shadow.scoring.pairs import Pair

    config = load(Path(__file__).parents[1] / "collector/otelcol-clickhouse.yaml")
    (condition,) = config["processors"]["filter/shadow_only"]["traces"]["span"]
    pair = Pair("exp", "ab" * 16, 1, 2, "p", "c", "candidate", 1, "q", "a", "b", frozenset())
    score = score_span(pair, Score("semantic_similarity", "id1", "m", {}, 0.9, 1, 2))  # what `otel-shadow score` sends
    assert not drops(condition, dict(score.attributes or {}))
    assert not drops(condition, {"shadow.experiment": "exp", "shadow.role": "primary"})
    assert not drops(condition, {"gen_ai.operation.name": "chat"})
    assert drops(condition, {"http.route": "/health"})


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda c: c["exporters"]["loadbalancing/shadow"].update(routing_key="traceId"), "is not one of"),
        (lambda c: c["exporters"]["loadbalancing/shadow"].update(resolvers={}), "resolvers: not a documented"),
        (
            lambda c: c["exporters"]["loadbalancing/shadow"]["protocol"]["otlp"].update(endpoint="x:4317"),
            "endpoint: not a documented",
        ),
        (
            lambda c: c["exporters"]["loadbalancing/shadow"]["protocol"]["otlp"].update(timeout="10 seconds"),
            "not a Go duration",
        ),
        (lambda c: c["processors"]["batch"].update(send_batch_size="2048"), "expected int"),
        (
            lambda c: c["service"]["pipelines"]["traces"]["exporters"].append("otlp/missing"),
            "is not defined under exporters",
        ),
        (lambda c: c["exporters"].update({"kafka": {}}), "no schema for component type 'kafka'"),
        (lambda c: c["processors"].update({"batch/unused": {}}), "defined but in no pipeline"),
    ],
)
def test_the_check_refuses_what_a_collector_would(change: Any, problem: str) -> None:
    config = load(Path(__file__).parents[1] / "collector/otelcol-gateway-loadbalancing.yaml")
    change(config)
    assert any(problem in p for p in check_config(config)), check_config(config)
