"""The canary call: a user call answered by the rule's FIRST candidate instead of the primary.

Opt-in only: a rule without a ``canary:`` block never gets here (``wrappers`` checks one
attribute). When ``core.canary.in_canary`` puts the caller in the cohort:

1. **The user's call is made with the candidate's request**: the rule's first candidate's
   overrides applied to a copy of the user's (model, temperature, max_tokens, system prompt,
   extra). With a ``base_url`` or ``api_key_env`` it goes through a copy of the user's client for
   that endpoint (the client cache; the user's own timeout and retries); otherwise through the
   user's own client, beneath the same instrumentations as the primary would.
2. **What it returns or raises is the user's**: the canary's answer IS the user's answer now, so
   its exception (a 404 for an unknown model, a rate limit, a timeout) reaches the caller as the
   primary's would. There is no fallback to the primary: a silent fallback would hide the very
   errors the canary verdict must count.
3. **Its span** is the primary call's span, with role ``canary`` (``attributes.ROLE_CANARY``),
   the candidate's config and config id (the id its shadow runs had, so the rollout's canary
   verdict and its shadow verdict speak of one config) and the config it replaced
   (``shadow.primary.config.id``). No candidate is scheduled: it is not a pair
   (``analysis.canary`` compares the cohorts, unpaired).

A first candidate on another provider cannot be served: its answer is another SDK's type the
caller's code cannot read. ``rules.Rule`` refuses that; a call that still meets one is served by
the primary.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any

from .. import attributes as A
from ..core.canary import in_canary
from ..core.config import config_id_of
from ._genai import Adapter
from ._wrapt import call_beneath, original
from .primary_call import PrimaryCall
from .rules import Rule

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from .engine import ShadowEngine

__all__ = ["CanaryCall", "canary_call"]

logger = logging.getLogger("otel_shadow")

_RESOURCE = {
    "chat": lambda client: client.chat.completions,
    "responses": lambda client: client.responses,
    "messages": lambda client: client.messages,
}


def canary_call(
    engine: ShadowEngine,
    rule: Rule,
    adapter: Adapter,
    method: str,
    instance: Any,
    kwargs: dict[str, Any],
    model: str | None,
    traced_by_sdk: bool,
) -> CanaryCall | None:
    """The canary call for this caller, or None: not in the cohort (or no canary), the primary answers."""
    canary = rule.canary
    if canary is None or not in_canary(rule.name, canary.fraction, canary.key, kwargs):
        return None
    candidate = rule.candidates[0]
    if candidate.provider is not None and candidate.provider != adapter.provider:
        return None  # refused by rules.Rule when match.provider is set; a call on another provider: primary
    return CanaryCall(engine, rule, adapter, method, instance, kwargs, model, traced_by_sdk)


class CanaryCall(PrimaryCall):
    """One user call in the canary cohort: the first candidate's request, its span role ``canary``."""

    def __init__(
        self,
        engine: ShadowEngine,
        rule: Rule,
        adapter: Adapter,
        method: str,
        instance: Any,
        kwargs: dict[str, Any],
        model: str | None,
        traced_by_sdk: bool,
    ) -> None:
        candidate = rule.candidates[0]
        primary_config_id = config_id_of(adapter.config_of(kwargs))
        request = adapter.candidate_request(kwargs, candidate, adapter)
        if "extra_headers" in kwargs:  # the user's own call: its headers as given (trace ones included)
            request["extra_headers"] = kwargs["extra_headers"]
        self.endpoint: Any = None  # another endpoint's resource, or None: the user's own client
        if candidate.base_url or candidate.api_key_env:
            options: dict[str, Any] = {}
            if candidate.base_url:
                options["base_url"] = candidate.base_url
            if candidate.api_key_env:
                options["api_key"] = os.environ.get(candidate.api_key_env, "unset")
            client = engine.clients.candidate_client(instance._client, options)  # its SDK spans off
            self.endpoint = instance = _RESOURCE[adapter.operation](client)
            traced_by_sdk = False
        super().__init__(engine, rule, adapter, method, instance, request, adapter.model(request), traced_by_sdk)
        if candidate.name:  # as candidate_call names it: the same config id as its shadow runs
            self.config["name"] = candidate.name
            self.config_id = config_id_of(self.config)
        self.primary_config_id = primary_config_id

    def _shadow_attributes(self) -> dict[str, Any]:
        attrs = super()._shadow_attributes()
        attrs[A.SHADOW_ROLE] = A.ROLE_CANARY
        attrs[A.SHADOW_PRIMARY_CONFIG_ID] = self.primary_config_id
        return attrs

    def run_sync(self, wrapped: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.endpoint is not None:
            return self._run_sync(self._endpoint_method(), (), self.kwargs)
        return call_beneath(wrapped, args, self.kwargs, self._run_sync)

    async def run_async(self, wrapped: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.endpoint is not None:
            return await self._run_async(self._endpoint_method(), (), self.kwargs)
        return await call_beneath(wrapped, args, self.kwargs, self._run_async)

    def _endpoint_method(self) -> Any:
        endpoint, fn = self.endpoint, original(self.endpoint, self.method)
        return lambda *a, **k: fn(endpoint, *a, **k)

    def _schedule(
        self, span: Span, attrs: dict[str, Any], primary_text: Any, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        """No candidates: a canary call is not a pair. Its run is counted under its role."""
        self.engine.telemetry.count_run(self.rule.name, A.ROLE_CANARY, attrs.get(A.SHADOW_OUTCOME, A.OUTCOME_OK))
