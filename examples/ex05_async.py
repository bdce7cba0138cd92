"""Seed "Async Shadow Testing": an async experiment; claude-3 runs as a background task.

Run (see README.md: the local model server and two environment variables first):

    cd examples && python ex05_async.py

The seed defines `main()` without running it; run it with:

    cd examples && python -c "import asyncio, ex05_async; asyncio.run(ex05_async.main())"
"""
from otel_shadow import Shadow as Spearmint, Config
from my_llm import async_llm_call

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
