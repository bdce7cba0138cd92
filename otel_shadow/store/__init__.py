"""The DuckDB store: one conversion from OTLP to rows, one writer, documented SQL views.

It imports nothing from the app-side SDK, the instrumentation or the collector: OTLP in, SQL out.

    with Store.open("otel-shadow.duckdb") as store:
        Writer(store).write(export_trace_service_request)
        store.query("SELECT * FROM shadow_summary")
"""

from typing import TYPE_CHECKING, Any

from .database import SCHEMA_VERSION, QueryResult, Store, check_read_only, json_value

if TYPE_CHECKING:
    from .rows import Rows, request_to_rows
    from .writer import Prepared, Writer, WriteResult, batch_id_of

_LAZY = {
    "Rows": "rows",
    "request_to_rows": "rows",
    "Prepared": "writer",
    "WriteResult": "writer",
    "Writer": "writer",
    "batch_id_of": "writer",
}


def __getattr__(name: str) -> Any:
    """The writing side (Arrow, protobuf) is imported when first used: reading needs neither."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_shadow.store' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "SCHEMA_VERSION",
    "Prepared",
    "QueryResult",
    "Rows",
    "Store",
    "WriteResult",
    "Writer",
    "batch_id_of",
    "check_read_only",
    "json_value",
    "request_to_rows",
]
