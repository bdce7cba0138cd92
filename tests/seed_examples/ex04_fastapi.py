# Seed: "Production Use Case: API Testing" (only the import lines changed)
from fastapi import FastAPI
from pydantic import BaseModel
from otel_shadow import Shadow as Spearmint
from typing import Annotated
from otel_shadow.configuration import Bind
import logging
from _llm import llm_api_call

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
