"""The pairwise LLM judge: which of two answers to the same request is better, asked blind.

The judge sees the request, an optional rubric and the two answers labelled A and B, never which is
the primary; which one is A is decided per pair by a seeded hash (half the pairs each way), so a
judge that prefers a position cannot favour one arm. On a sample of pairs (``bias_check``) the pair
is judged a second time with the labels swapped: the share of pairs whose two verdicts agree is the
position-bias check, and a pair whose verdicts disagree counts as a tie (its verdict depended on
the order, not on the answers). Verdicts are from the candidate's side: ``win`` (1.0), ``tie``
(0.5), ``loss`` (0.0).

Any OpenAI-compatible (``/v1/chat/completions``) or Anthropic-compatible (``/v1/messages``)
endpoint works, through the real SDKs and their retries (429 and 5xx, honouring Retry-After).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ShadowError
from ..safe_yaml import load_yaml, read_text_file
from .pairs import Pair

__all__ = ["Judge", "JudgeConfig", "JudgeError", "Judgement", "load_rubric", "parse_verdict"]

PROMPT_VERSION = 1  # part of the judge's config id: a new prompt is a new scorer
MAX_RUBRIC_BYTES = 64 * 1024
MAX_EXPLANATION_CHARS = 2000
LABELS = {"win": 1.0, "tie": 0.5, "loss": 0.0}

SYSTEM_PROMPT = (
    "You are an impartial judge comparing two answers to the same request. Judge only the quality of "
    "the answers for the request and the rubric; ignore their order, their labels and their length "
    "unless length matters to the request. Explain briefly, then end with one line, exactly "
    "'Verdict: A', 'Verdict: B' or 'Verdict: tie'."
)
DEFAULT_RUBRIC = "Prefer the answer that is more correct, complete and helpful for the request."
_TAG = re.compile(r"<(/?)(answer_[ab]|request|rubric)\b", re.IGNORECASE)
_VERDICT = re.compile(r"verdict\s*[:=]\s*[*_`\"'\[(]*\s*(a|b|tie)\b", re.IGNORECASE)


class JudgeError(ShadowError):
    """The judge endpoint refuses the configuration (unknown model, bad key, bad request): stop."""


@dataclass(frozen=True)
class JudgeConfig:
    model: str
    provider: str = "openai"  # or "anthropic"
    base_url: str | None = None
    rubric: str = DEFAULT_RUBRIC
    max_tokens: int = 512
    temperature: float = 0.0
    bias_check: float = 0.1  # share of pairs judged both ways
    seed: int = 0

    def identity(self) -> dict[str, Any]:
        """What makes two judges the same scorer (endpoint, sampling and seed left out: a judge
        moved to another host, or re-seeded, keeps its cached verdicts)."""
        rubric = hashlib.blake2b(self.rubric.encode(), digest_size=8).hexdigest()
        return {
            "kind": "judge",
            "provider": self.provider,
            "model": self.model,
            "rubric": rubric,
            "prompt": PROMPT_VERSION,
            "temperature": self.temperature,
        }


@dataclass
class Judgement:
    label: str | None  # win | tie | loss (the candidate's); None: the judge gave no verdict
    explanation: str
    order: str  # primary_first | candidate_first
    swapped_label: str | None = None  # the bias check's verdict, labels swapped
    consistent: bool | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return LABELS[self.label or "tie"]


def load_rubric(value: str | None) -> str:
    """A rubric given as text, or as a file: plain text, or YAML (a string, a ``rubric`` string, or a
    ``criteria`` list)."""
    if not value:
        return DEFAULT_RUBRIC
    path = Path(value)
    if len(value) < 4096 and "\n" not in value and path.suffix.lower() in {".yaml", ".yml", ".txt", ".md"}:
        if not path.exists():
            raise ConfigError(f"rubric file '{value}' does not exist; pass an existing file or the rubric text itself")
        text = read_text_file(path, MAX_RUBRIC_BYTES, "rubric file")
        if path.suffix.lower() in {".yaml", ".yml"}:
            return _rubric_of_yaml(text, value)
        return text.strip() or DEFAULT_RUBRIC
    if len(value.encode()) > MAX_RUBRIC_BYTES:
        raise ConfigError(f"the rubric is over {MAX_RUBRIC_BYTES // 1024} KiB; shorten it")
    return value.strip()


def _rubric_of_yaml(text: str, where: str) -> str:
    _, data = load_yaml(text, where, "a rubric file")
    if isinstance(data, str):
        return data.strip()
    if isinstance(data, dict):
        if isinstance(data.get("rubric"), str):
            return str(data["rubric"]).strip()
        criteria = data.get("criteria")
        if isinstance(criteria, list) and criteria and all(isinstance(c, str) for c in criteria):
            return "\n".join(f"- {c.strip()}" for c in criteria)
    raise ConfigError(f"rubric file '{where}': expected a string, 'rubric: <text>' or 'criteria: [<text>, ...]'")


def parse_verdict(text: str) -> str | None:
    """``A``, ``B`` or ``tie`` from the judge's last ``Verdict:`` line; None when there is none."""
    found = _VERDICT.findall(text or "")
    if not found:
        return None
    verdict = found[-1].lower()
    return "tie" if verdict == "tie" else verdict.upper()


def _neutral(text: str) -> str:
    """Content cannot close or open the prompt's own tags (an answer saying '</answer_A>')."""
    return _TAG.sub(lambda m: f"‹{m.group(1)}{m.group(2)}", text)


def _hash_unit(*parts: object) -> float:
    digest = hashlib.blake2b("|".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


class Judge:
    """Judges pairs through one endpoint; thread-safe (the SDK clients are)."""

    name = "judge"

    def __init__(
        self, config: JudgeConfig, *, api_key: str | None = None, max_retries: int = 5, timeout: float = 120.0
    ) -> None:
        self.config = config
        self.model = config.model
        if config.provider == "openai":
            try:
                import openai
            except ImportError as exc:
                raise ConfigError("the judge needs the openai client: pip install 'otel-shadow[openai]'") from exc
            try:
                self._client: Any = openai.OpenAI(
                    base_url=config.base_url, api_key=api_key, max_retries=max_retries, timeout=timeout
                )
            except openai.OpenAIError as exc:
                raise ConfigError(f"the judge's openai client: {exc} (any value will do for a local endpoint)") from exc
            self._refusals: tuple[type[BaseException], ...] = (
                openai.NotFoundError,
                openai.AuthenticationError,
                openai.PermissionDeniedError,
                openai.BadRequestError,
            )
        elif config.provider == "anthropic":
            try:
                import anthropic
            except ImportError as exc:
                raise ConfigError("the judge needs the anthropic client: pip install 'otel-shadow[anthropic]'") from exc
            try:
                self._client = anthropic.Anthropic(
                    base_url=config.base_url, api_key=api_key, max_retries=max_retries, timeout=timeout
                )
            except anthropic.AnthropicError as exc:
                raise ConfigError(
                    f"the judge's anthropic client: {exc} (any value will do for a local endpoint)"
                ) from exc
            self._refusals = (
                anthropic.NotFoundError,
                anthropic.AuthenticationError,
                anthropic.PermissionDeniedError,
                anthropic.BadRequestError,
            )
        else:
            raise ConfigError(f"--judge-provider {config.provider!r}: use 'openai' or 'anthropic'")

    # --- planning (no I/O) ------------------------------------------------------------------------
    def candidate_first(self, pair: Pair) -> bool:
        return _hash_unit(self.config.seed, pair.trace_id, pair.candidate_span_id, "order") < 0.5

    def checks_bias(self, pair: Pair) -> bool:
        return _hash_unit(self.config.seed, pair.trace_id, pair.candidate_span_id, "bias") < self.config.bias_check

    def prompt(self, pair: Pair, candidate_first: bool) -> str:
        a, b = (
            (pair.candidate_output, pair.primary_output)
            if candidate_first
            else (pair.primary_output, pair.candidate_output)
        )
        return (
            f"<request>\n{_neutral(pair.request or '')}\n</request>\n\n"
            f"<rubric>\n{_neutral(self.config.rubric)}\n</rubric>\n\n"
            f"<answer_A>\n{_neutral(a or '')}\n</answer_A>\n\n"
            f"<answer_B>\n{_neutral(b or '')}\n</answer_B>\n\n"
            "Which answer is better for the request, following the rubric? "
            "End with 'Verdict: A', 'Verdict: B' or 'Verdict: tie'."
        )

    def estimate(self, pair: Pair) -> int:
        """Tokens one call may use at most (about 3 characters a token, plus the answer's cap)."""
        prompt, answer = self.estimate_split(pair)
        return prompt + answer

    def estimate_split(self, pair: Pair) -> tuple[int, int]:
        """(input, output) tokens one call may use at most: the prompt's estimate and the answer's cap."""
        chars = (
            len(SYSTEM_PROMPT)
            + len(self.config.rubric)
            + sum(len(t or "") for t in (pair.request, pair.primary_output, pair.candidate_output))
        )
        return chars // 3 + 64, self.config.max_tokens

    def calls(self, pair: Pair) -> int:
        return 2 if self.checks_bias(pair) else 1

    # --- judging ------------------------------------------------------------------------------------
    def judge(self, pair: Pair) -> Judgement:
        """The candidate's verdict on ``pair`` (``label`` None when the judge gave no verdict)."""
        first = self.candidate_first(pair)
        text, tokens_in, tokens_out = self._ask(self.prompt(pair, first))
        label = _label(parse_verdict(text), first)
        result = Judgement(
            label=label,
            explanation=_explanation(text),
            order="candidate_first" if first else "primary_first",
            input_tokens=tokens_in,
            output_tokens=tokens_out,
        )
        if label is not None and self.checks_bias(pair):
            text2, in2, out2 = self._ask(self.prompt(pair, not first))
            result.input_tokens += in2
            result.output_tokens += out2
            swapped = _label(parse_verdict(text2), not first)
            result.swapped_label = swapped
            result.consistent = swapped == label if swapped is not None else None
            if swapped is not None and swapped != label:
                result.label = "tie"  # the verdict followed the order, not the answers
        return result

    def _ask(self, prompt: str) -> tuple[str, int, int]:
        c = self.config
        try:
            if c.provider == "openai":
                response = self._client.chat.completions.create(
                    model=c.model,
                    temperature=c.temperature,
                    max_tokens=c.max_tokens,
                    messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}],
                )
                text = response.choices[0].message.content or "" if response.choices else ""
                usage = response.usage
                return (
                    text,
                    int(getattr(usage, "prompt_tokens", 0) or 0),
                    int(getattr(usage, "completion_tokens", 0) or 0),
                )
            response = self._client.messages.create(  # temperature in the body: not every SDK version takes it
                model=c.model,
                max_tokens=c.max_tokens,
                system=SYSTEM_PROMPT,
                messages=[{"role": "user", "content": prompt}],
                extra_body={"temperature": c.temperature},
            )
            text = "".join(getattr(block, "text", "") for block in response.content)
            usage = response.usage
            return text, int(getattr(usage, "input_tokens", 0) or 0), int(getattr(usage, "output_tokens", 0) or 0)
        except self._refusals as exc:
            raise JudgeError(
                f"the judge endpoint ({c.base_url or c.provider}) refused model {c.model!r}: {exc}. "
                "Check --judge-model, --judge-base-url and the API key"
            ) from exc


def _label(verdict: str | None, candidate_first: bool) -> str | None:
    if verdict is None:
        return None
    if verdict == "tie":
        return "tie"
    candidate_label = "A" if candidate_first else "B"
    return "win" if verdict == candidate_label else "loss"


def _explanation(text: str) -> str:
    body = _VERDICT.sub("", text).strip().rstrip(".:").strip()
    return body[:MAX_EXPLANATION_CHARS]
