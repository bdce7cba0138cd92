# Seed: "Complete Example: FastAPI Shadow Testing" (only the import lines changed)
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from typing import Annotated
from otel_shadow import Shadow as Spearmint
from otel_shadow.configuration import Bind
import logging
import time
from _llm import llm_api_call

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
