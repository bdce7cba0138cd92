"""The single source of otel-shadow's version (read by the build backend)."""

__version__ = "0.1.0"
