"""An application that uses the real `openai` SDK, shadowed with no code change through a rules file.

Nothing here mentions otel-shadow. `opentelemetry-instrument` loads the shadow instrumentation
(entry point `shadow_openai`), which reads the rules named by OTEL_SHADOW_CONFIG: every `gpt-4o`
chat call is also sent, in the background, to the candidates of shadow-rules.yaml (`gpt-4o-mini`
and `gpt-5-beta`). The user's call runs once, unchanged; spans go to the DuckDB file.

Run (see README.md: the local model server and two environment variables first):

    cd examples
    OTEL_SHADOW_CONFIG=shadow-rules.yaml OTEL_TRACES_EXPORTER=duckdb OTEL_SHADOW_DB=zero-code.duckdb \
      OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none opentelemetry-instrument python openai_app.py
    otel-shadow sql --db zero-code.duckdb \
      "SELECT primary_model, candidate_model, candidate_outcome, output_match FROM shadow_pairs"
"""

import openai

QUESTIONS = ["What is shadow testing?", "Why compare two models on real traffic?", "What is a span link?"]


def main() -> None:
    client = openai.OpenAI()  # OPENAI_BASE_URL and OPENAI_API_KEY from the environment
    for question in QUESTIONS:
        response = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": question}])
        print(f"{question} -> {response.choices[0].message.content}")


if __name__ == "__main__":
    main()
