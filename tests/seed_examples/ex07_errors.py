# Seed: "Error Handling" (import lines changed; `mint` and `logger` as in the seed's earlier examples)
import logging
from otel_shadow import Shadow as Spearmint, Config
from _llm import make_llm_call

logger = logging.getLogger(__name__)
mint = Spearmint(configs=[{"model": "gpt-4"}, {"model": "broken-model"}])

@mint.experiment()
def robust_api_call(query: str, config: Config) -> str:
    try:
        return make_llm_call(config['model'], query)
    except Exception as e:
        logger.error(f"Error with {config['model']}: {e}")
        raise  # Shadow will log error but not affect primary

# Primary succeeds even if shadow fails
result = robust_api_call("Test query")
