# Seed: "Waiting for Shadow Results", continuing the previous example (import line changed)
from otel_shadow import Shadow as Spearmint
from ex02_default_behavior import generate

with Spearmint.run(generate, await_variants=True) as runner:
    result = runner("Explain AI")
    
    # Main result
    print(f"Main: {result.main_result.result}")
    
    # Shadow results (after completion)
    for variant in result.variant_results:
        print(f"Shadow: {variant.result}")
