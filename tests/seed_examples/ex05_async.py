# Seed: "Async Shadow Testing" (only the import lines changed)
from otel_shadow import Shadow as Spearmint, Config
from _llm import async_llm_call

mint = Spearmint(
    configs=[
        {"model": "gpt-4"},
        {"model": "claude-3"},
    ]
)

@mint.experiment()
async def async_generate(prompt: str, config: Config) -> str:
    """Async experiment function."""
    response = await async_llm_call(config['model'], prompt)
    return response

# Use async context manager
async def main():
    async with Spearmint.arun(async_generate) as runner:
        result = await runner("Explain quantum computing")
        
        # Main result available immediately
        print(f"User sees: {result.main_result.result}")
        
    # Shadow runs as background async task
