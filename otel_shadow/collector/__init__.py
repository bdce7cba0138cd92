"""The collector: an OTLP receiver (gRPC and HTTP) that writes to DuckDB, loses nothing, pushes back.

    receivers (receiver_grpc, receiver_http) → pipeline (admit, decode, group commit) → store.Writer

It imports the store, never the app-side SDK or the instrumentation.
"""

from .pipeline import Pipeline, PipelineStats
from .service import Collector, CollectorConfig, configure_logging

__all__ = ["Collector", "CollectorConfig", "Pipeline", "PipelineStats", "configure_logging"]
