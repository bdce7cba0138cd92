"""Seed "How Shadow Testing Works": gpt-4 answers, gpt-5-beta runs in the background.

Run (see README.md: the local model server and two environment variables first):

    cd examples && python ex01_how_it_works.py

It prints nothing: `result` holds gpt-4's answer. To see both spans, run it under OpenTelemetry:

    OTEL_TRACES_EXPORTER=console opentelemetry-instrument python ex01_how_it_works.py
"""
from otel_shadow import Shadow as Spearmint, Config
from my_llm import make_llm_call

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
