"""Seed "Best Practices" 1-4: one shadow, monitoring its timings, gradual rollout, structured logs.

Run (see README.md: the local model server and two environment variables first):

    cd examples && python ex08_best_practices.py

Prints the structured log line of the last experiment (structlog's console renderer).
The seed's snippets leave `mint`, `prompt`, `logger` and the first `generate` to the reader: they are
defined here, and `structured` keeps the last experiment's result.
"""
import logging
import structlog
from otel_shadow import Shadow as Spearmint, Config
from my_llm import llm_call

logger = logging.getLogger(__name__)

# 1. Start with One Shadow
configs = [
    {"model": "production-model"},  # Primary
    {"model": "new-model"},         # Shadow
]
mint = Spearmint(configs=configs)
prompt = "Explain shadow testing"

@mint.experiment()
def generate(prompt: str, config: Config) -> str:
    return llm_call(config['model'], prompt)

# 2. Monitor Shadow Performance
with Spearmint.run(generate, await_variants=True) as runner:
    result = runner(prompt)
    
    for variant in result.variant_results:
        # Log metrics
        logger.info(
            f"Shadow {variant.config_id}: "
            f"{variant.execution_time_ms}ms"
        )

# 3. Gradual Rollout
# Phase 1: Shadow testing
configs = [
    {"model": "gpt-4"},         # Primary
    {"model": "gpt-4-turbo"},   # Shadow
]

# Phase 2: After validation, promote shadow to primary
configs = [
    {"model": "gpt-4-turbo"},   # Primary (promoted!)
    {"model": "gpt-4"},         # Shadow (keep for comparison)
]

# 4. Use Structured Logging
logger = structlog.get_logger()

@mint.experiment()
def generate(prompt: str, config: Config) -> str:
    result = llm_call(config['model'], prompt)
    
    # Structured logging for analysis
    logger.info(
        "experiment_result",
        config_id=config.id,
        model=config['model'],
        prompt_length=len(prompt),
        result_length=len(result),
    )
    
    return result

structured = generate(prompt)
