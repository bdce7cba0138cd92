"""Seed "Complete Example: FastAPI Shadow Testing": YAML configs (config/), `Bind`, pydantic models.

Run (see README.md: the local model server and two environment variables first):

    cd examples && python ex09_complete_fastapi.py

Serves on port 8000 (config paths are relative: run it from examples/); then:

    curl -X POST localhost:8000/summarize -H "content-type: application/json" \\
         -d '{"text": "Shadow testing runs candidates on real traffic.", "max_length": 20}'
"""
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from typing import Annotated
from otel_shadow import Shadow as Spearmint
from otel_shadow.configuration import Bind
import logging
import time
from my_llm import llm_api_call

app = FastAPI()
logger = logging.getLogger("uvicorn.error")

class ModelConfig(BaseModel):
    model: str
    prompt: str
    temperature: float = 0.3

class SummarizeRequest(BaseModel):
    text: str
    max_length: int = 150

class SummarizeResponse(BaseModel):
    summary: str
    original_length: int
    summary_length: int

mint = Spearmint(
    configs=[
        "config/main.yaml",      # Primary
        "config/shadow.yaml",    # Shadow
    ]
)

@app.post("/summarize", response_model=SummarizeResponse)
async def summarize_text(request: SummarizeRequest):
    """Generate summary with shadow testing."""
    try:
        summary = _generate_summary(
            text=request.text,
            max_length=request.max_length
        )
        
        return SummarizeResponse(
            summary=summary,
            original_length=len(request.text.split()),
            summary_length=len(summary.split()),
        )
    except Exception as e:
        raise HTTPException(
            status_code=500,
            detail=f"Error: {str(e)}"
        )

@mint.experiment()
def _generate_summary(
    text: str,
    model_config: Annotated[ModelConfig, Bind("llm.model_config")],
    max_length: int = 150,
) -> str:
    """Generate summary using configured model.
    
    Primary config runs synchronously, shadow runs in background.
    """
    prompt = model_config.prompt.format(
        max_length=max_length,
        text=text
    )
    
    # Call LLM API
    response = llm_api_call(
        model=model_config.model,
        prompt=prompt,
        temperature=model_config.temperature,
        max_tokens=min(max_length + 50, 500)
    )
    
    # Log for shadow comparison
    logger.info(
        f"Model {model_config.model}: "
        f"Generated {len(response)} chars"
    )
    
    return response

if __name__ == "__main__":
    import uvicorn
    uvicorn.run(app, host="0.0.0.0", port=8000)
