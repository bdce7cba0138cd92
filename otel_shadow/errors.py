"""The exceptions otel-shadow raises, one class per failure a user can act on.

Every message names the bad thing, its value, and what to do about it. Foreign exceptions
(duckdb, grpc, yaml, pydantic) are mapped to these classes at the boundary with ``raise … from``.

    ShadowError
    ├── ConfigError            a config source (dict, YAML file, folder, pydantic model) is unusable
    ├── ExperimentError        a function cannot be used as an experiment, or a runner is misused
    └── StoreError             the DuckDB store cannot be opened, read or written
        ├── DatabaseLocked         another process holds the database for writing
        ├── SchemaTooNew           the file was written by a newer otel-shadow
        ├── NotADatabase           the path exists but is not a DuckDB database
        ├── ReadOnlyQuery          a statement given to the read-only SQL access would write
        └── QueryError             the SQL itself is wrong
            ├── QueryTimeout           the query ran past its time limit and was stopped
            └── ResultTooLarge         the result passed the row or byte limit
    └── ReceiverError          the collector refuses a request
        ├── RetryableError         try again later (overload, storage trouble, shutting down)
        └── PermanentError         the data itself is bad; retrying cannot help

Candidate failures are never raised: they are recorded on the candidate's span and result.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatabaseLocked",
    "ExperimentError",
    "NotADatabase",
    "PermanentError",
    "QueryError",
    "QueryTimeout",
    "ReadOnlyQuery",
    "ReceiverError",
    "ResultTooLarge",
    "RetryableError",
    "SchemaTooNew",
    "ShadowError",
    "StoreError",
]


class ShadowError(Exception):
    """Base class of every error otel-shadow raises on purpose."""


class ConfigError(ShadowError, ValueError):
    """A config could not be loaded or does not fit the function it is injected into."""


class ExperimentError(ShadowError, TypeError):
    """A function cannot be decorated as an experiment, or a runner was used wrongly."""


class StoreError(ShadowError):
    """The DuckDB store cannot be opened, read or written."""


class DatabaseLocked(StoreError):
    """Another process holds the database file for writing (DuckDB allows one writer)."""


class SchemaTooNew(StoreError):
    """The database was written by a newer version of otel-shadow."""


class NotADatabase(StoreError):
    """The path exists but is not a DuckDB database."""


class ReadOnlyQuery(StoreError):
    """A statement given to the read-only SQL access would change the database."""


class QueryError(StoreError):
    """The SQL given to the store is invalid (syntax, unknown table or column...)."""


class QueryTimeout(QueryError):
    """A read-only query ran longer than its time limit and was interrupted."""


class ResultTooLarge(QueryError):
    """A read-only query's result passed its row or byte limit (nothing of it is returned)."""


class ReceiverError(ShadowError):
    """The collector refuses an OTLP request."""


class RetryableError(ReceiverError):
    """Refused for now (overload, storage trouble, shutdown): the client should retry after ``retry_after`` s."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ReceiverError):
    """The request cannot be accepted as sent (malformed, too large): retrying the same data cannot help."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large
