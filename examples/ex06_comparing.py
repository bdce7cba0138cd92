"""Seed "Comparing Results": one primary, two shadows, their results and timings side by side.

Run (see README.md: the local model server and two environment variables first):

    cd examples && python ex06_comparing.py
"""
from otel_shadow import Shadow as Spearmint, Config
from my_llm import llm_call

mint = Spearmint(
    configs=[
        {"model": "gpt-4", "temperature": 0.5},
        {"model": "gpt-4", "temperature": 0.9},
        {"model": "claude-3", "temperature": 0.5},
    ]
)

@mint.experiment()
def generate(prompt: str, config: Config) -> str:
    return llm_call(config['model'], prompt, config['temperature'])

# Run with shadow variants
with Spearmint.run(generate, await_variants=True) as runner:
    result = runner("What is machine learning?")
    
    # Primary (production) result
    main = result.main_result
    print(f"Primary: {main.config_id}")
    print(f"Result: {main.result}")
    
    # Shadow variants
    for variant in result.variant_results:
        print(f"\nShadow: {variant.config_id}")
        print(f"Result: {variant.result}")
        
        # Compare metrics
        print(f"Execution time: {variant.execution_time_ms}ms")
        
        # Compare outputs
        if variant.result == main.result:
            print("✓ Same output")
        else:
            print("✗ Different output")
