"""Seed "Waiting for Shadow Results": `await_variants=True` collects the shadow's result too.

Run (see README.md: the local model server and two environment variables first):

    cd examples && python ex03_waiting.py

Prints the main result, then the shadow's (it reuses `generate` of ex02_default_behavior.py).
"""
from otel_shadow import Shadow as Spearmint
from ex02_default_behavior import generate

with Spearmint.run(generate, await_variants=True) as runner:
    result = runner("Explain AI")
    
    # Main result
    print(f"Main: {result.main_result.result}")
    
    # Shadow results (after completion)
    for variant in result.variant_results:
        print(f"Shadow: {variant.result}")
