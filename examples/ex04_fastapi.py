"""Seed "Production Use Case: API Testing": a FastAPI endpoint answered by gpt-4, gpt-4-turbo shadowed.

Run (see README.md: the local model server and two environment variables first):

    cd examples && python ex04_fastapi.py

That only defines the app; serve it and call it:

    cd examples && uvicorn ex04_fastapi:app --port 8000
    curl -X POST "localhost:8000/summarize?text=shadow+testing"
"""
from fastapi import FastAPI
from pydantic import BaseModel
from otel_shadow import Shadow as Spearmint
from typing import Annotated
from otel_shadow.configuration import Bind
import logging
from my_llm import llm_api_call

app = FastAPI()
logger = logging.getLogger(__name__)

class ModelConfig(BaseModel):
    model: str
    temperature: float

mint = Spearmint(
    configs=[
        {"model": "gpt-4", "temperature": 0.5},         # Production
        {"model": "gpt-4-turbo", "temperature": 0.5},   # Testing
    ]
)

@mint.experiment()
def generate_summary(text: str, model_config: ModelConfig) -> str:
    """Generate summary using configured model."""
    # Call your LLM API
    response = llm_api_call(
        model=model_config.model,
        prompt=f"Summarize: {text}",
        temperature=model_config.temperature
    )
    
    # Log for comparison
    logger.info(f"Model {model_config.model}: {response}")
    
    return response

@app.post("/summarize")
async def summarize(text: str):
    """API endpoint with shadow testing."""
    # Primary model returns immediately to user
    # Shadow model runs in background for metrics
    summary = generate_summary(text)
    
    return {"summary": summary}
