"""Seed "Default Shadow Behavior": the user sees the primary's result; the shadow runs in the background.

Run (see README.md: the local model server and two environment variables first):

    cd examples && python ex02_default_behavior.py

Prints `User sees: Using gpt-4 with temp 0.5` (this example calls no model).
"""
from otel_shadow import Shadow as Spearmint, Config

mint = Spearmint(
    configs=[
        {"model": "gpt-4", "temperature": 0.5},       # Primary
        {"model": "gpt-3.5", "temperature": 0.7},     # Shadow
    ]
)

@mint.experiment()
def generate(prompt: str, config: Config) -> str:
    return f"Using {config['model']} with temp {config['temperature']}"

if __name__ == "__main__":
    # Run experiment
    with Spearmint.run(generate) as runner:
        result = runner("Explain AI")
        
        # Main result returned immediately
        print(f"User sees: {result.main_result.result}")
        # Output: User sees: Using gpt-4 with temp 0.5
        
    # Note: Shadow variant runs in background
    # Use await_variants=True to wait for completion
