"""The client cache: the SDK clients candidates call through, made once per client and options.

A candidate calls a copy of the user's own client (its auth and base URL, with the rule's retries
and timeout, and the SDK's own spans off: a candidate's GenAI span is ours), or, for a candidate
on another provider, a client of that provider. Making a client costs an HTTP connection pool:
they are cached, the copies for as long as the user's client lives.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from typing import Any

from .rules import CandidateRule, Rule

__all__ = ["ClientCache"]


def _without_native_spans(client: Any) -> dict[str, Any]:
    """Options that turn off an SDK's own spans (a candidate's GenAI span is ours: one per model call)."""
    return {"open_telemetry": False} if hasattr(client, "open_telemetry") else {}


class ClientCache:
    """Candidate clients: copies of the users' clients, and clients of other providers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._foreign_clients: dict[tuple[Any, ...], Any] = {}
        self._candidate_clients: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Any]] = (
            weakref.WeakKeyDictionary()
        )

    def candidate_client(self, client: Any, options: dict[str, Any]) -> Any:
        """A copy of the user's client with the rule's options, made once per client and options."""
        key = tuple(sorted(options.items()))
        with self._lock:
            per_client = self._candidate_clients.get(client)
            if per_client is None:
                per_client = self._candidate_clients[client] = {}
            copy_ = per_client.get(key)
            if copy_ is None:
                copy_ = per_client[key] = client.with_options(**options, **_without_native_spans(client))
        return copy_

    def foreign_client(self, provider: str, candidate: CandidateRule, rule: Rule, is_async: bool) -> Any:
        loop = id(asyncio.get_running_loop()) if is_async else None
        key = (provider, candidate.base_url, candidate.api_key_env, is_async, loop, rule.max_retries, rule.timeout)
        client = self._foreign_clients.get(key)
        if client is None:
            env = candidate.api_key_env or ("OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY")
            options: dict[str, Any] = {
                "api_key": os.environ.get(env, "unset"),
                "max_retries": rule.max_retries,
                "timeout": rule.timeout,
            }
            if candidate.base_url:
                options["base_url"] = candidate.base_url
            if provider == "openai":
                import openai

                client = (openai.AsyncOpenAI if is_async else openai.OpenAI)(**options)
            else:
                import anthropic

                client = (anthropic.AsyncAnthropic if is_async else anthropic.Anthropic)(
                    **options, **_without_native_spans(anthropic.Anthropic)
                )
            self._foreign_clients[key] = client
        return client
