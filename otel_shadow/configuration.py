"""Config types under the module path the seed's examples import from.

``from otel_shadow.configuration import Bind`` works as ``from spearmint.configuration import Bind``
did; the implementation lives in ``otel_shadow.core.config``.
"""

from .core.config import Bind, Config, load_configs

__all__ = ["Bind", "Config", "load_configs"]
