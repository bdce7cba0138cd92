# Seed: "How Shadow Testing Works" (only the import lines changed)
from otel_shadow import Shadow as Spearmint, Config
from _llm import make_llm_call

mint = Spearmint(
    configs=[
        {"model": "gpt-4"},        # Primary (index 0)
        {"model": "gpt-5-beta"},   # Shadow (background)
    ]
)

@mint.experiment()
def api_call(query: str, config: Config) -> str:
    return make_llm_call(config['model'], query)

# Returns gpt-4 result immediately
# gpt-5-beta runs in background for comparison
result = api_call("What is AI?")
