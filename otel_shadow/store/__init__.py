"""The DuckDB store: one conversion from OTLP to rows, one writer, documented SQL views.

It imports nothing from the app-side SDK, the instrumentation or the collector: OTLP in, SQL out.

    with Store.open("otel-shadow.duckdb") as store:
        Writer(store).write(export_trace_service_request)
        store.query("SELECT * FROM shadow_summary")
"""

from .database import SCHEMA_VERSION, QueryResult, Store, check_read_only
from .rows import Rows, request_to_rows
from .writer import Prepared, WriteResult, Writer, batch_id_of

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
    "request_to_rows",
]
