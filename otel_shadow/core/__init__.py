"""The app side: experiments, configs, candidate scheduling and their spans.

This package uses the OpenTelemetry API only. It never imports the store, the collector or the
analysis: what it produces leaves the process as ordinary spans, through whatever exporter the
application configured.
"""

from .config import Bind, Config
from .experiment import AsyncRunner, Experiment, Runner, Shadow
from .observation import ErrorInfo, ShadowResult, VariantResult
from .scheduler import Scheduler

__all__ = [
    "AsyncRunner",
    "Bind",
    "Config",
    "ErrorInfo",
    "Experiment",
    "Runner",
    "Scheduler",
    "Shadow",
    "ShadowResult",
    "VariantResult",
]
