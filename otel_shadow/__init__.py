"""otel-shadow: shadow testing for LLM applications, built on OpenTelemetry.

The primary config answers the user; candidate configs run on the same request in the background;
both executions become linked spans that a collector or the in-process exporter writes to DuckDB,
where SQL views and a report compare them and give a go/no-go verdict.
"""

from ._version import __version__
from .core import (
    AsyncRunner,
    Bind,
    Config,
    ErrorInfo,
    Runner,
    Scheduler,
    Shadow,
    ShadowResult,
    VariantResult,
)
from .errors import (
    ConfigError,
    DatabaseLocked,
    ExperimentError,
    NotADatabase,
    QueryError,
    QueryTimeout,
    ReadOnlyQuery,
    ResultTooLarge,
    SchemaTooNew,
    ShadowError,
    StoreError,
)

__all__ = [
    "AsyncRunner",
    "Bind",
    "Config",
    "ConfigError",
    "DatabaseLocked",
    "ErrorInfo",
    "ExperimentError",
    "NotADatabase",
    "QueryError",
    "QueryTimeout",
    "ReadOnlyQuery",
    "ResultTooLarge",
    "Runner",
    "Scheduler",
    "SchemaTooNew",
    "Shadow",
    "ShadowError",
    "ShadowResult",
    "StoreError",
    "VariantResult",
    "__version__",
]
