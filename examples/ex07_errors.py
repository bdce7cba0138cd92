"""Seed "Error Handling": a failing shadow is recorded, never raised to the user.

Run (see README.md: the local model server and two environment variables first):

    cd examples && python ex07_errors.py

The seed's snippet reuses `mint` and `logger` of its earlier examples; they are defined here, with
`sim-broken` as the shadow: a model of the local server that always answers HTTP 500.
"""
import logging
from otel_shadow import Shadow as Spearmint, Config
from my_llm import make_llm_call

logger = logging.getLogger(__name__)
mint = Spearmint(configs=[{"model": "gpt-4"}, {"model": "sim-broken"}])

@mint.experiment()
def robust_api_call(query: str, config: Config) -> str:
    try:
        return make_llm_call(config['model'], query)
    except Exception as e:
        logger.error(f"Error with {config['model']}: {e}")
        raise  # Shadow will log error but not affect primary

# Primary succeeds even if shadow fails
result = robust_api_call("Test query")
