"""The alert webhook: an HTTP POST of the alert's JSON, with a timeout, retries with backoff, and a secret header.

Rules, and why:

* **http and https only**, a host required, no ``user:password@`` in the URL (the URL is logged;
  a credential belongs in the secret header). Checked when the watch starts, not at the first alert.
* **The secret** goes in ``X-Otel-Shadow-Secret`` (from ``OTEL_SHADOW_WEBHOOK_SECRET`` or a file);
  it is never logged, never in an error message, never in ``repr``.
* **No redirects are followed**: a redirect would carry the secret header to wherever the receiver
  points; a 3xx is a failed delivery.
* **Retries** on what may pass (connection errors, timeouts, 408, 429, 5xx), with exponential
  backoff; any other 4xx is the receiver refusing this request, and retrying cannot help.
* **Bounded**: each attempt has a timeout; at most ``max_response_bytes`` of the answer is read.
* **Never raises**: a delivery returns a ``Delivery`` saying how it went; the watch logs a failure.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..environment_variables import OTEL_SHADOW_WEBHOOK_SECRET
from ..errors import ConfigError

__all__ = ["SECRET_ENV", "SECRET_HEADER", "Delivery", "Webhook", "read_secret", "validate_url"]

logger = logging.getLogger("otel_shadow.rollout.webhook")

SECRET_HEADER = "X-Otel-Shadow-Secret"
SECRET_ENV = OTEL_SHADOW_WEBHOOK_SECRET
_MAX_SECRET_BYTES = 4096
_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


def validate_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host and no credentials; ``ConfigError`` otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a non-numeric port
    except ValueError as exc:
        raise ConfigError(
            f"webhook URL {url[:200]!r} is malformed ({exc}); give e.g. https://alerts.example.com/hook"
        ) from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(
            f"webhook URL {url[:200]!r} has scheme {parts.scheme!r}; only http:// and https:// are sent to "
            "(e.g. https://alerts.example.com/hook)"
        )
    if not parts.hostname:
        raise ConfigError(f"webhook URL {url[:200]!r} names no host; give e.g. https://alerts.example.com/hook")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "webhook URL holds a user or password (user:password@host); URLs are logged, so put the credential in "
            f"{SECRET_ENV} or --webhook-secret-file instead"
        )
    if port == 0:
        raise ConfigError(f"webhook URL {url[:200]!r} has port 0; give the receiver's port")
    if any(ord(ch) < 33 for ch in url):
        raise ConfigError("webhook URL holds spaces or control characters; percent-encode them")
    return url


def read_secret(path: str | None) -> str | None:
    """The shared secret: the file at ``path`` (first line, stripped), else ``OTEL_SHADOW_WEBHOOK_SECRET``, else None."""
    if path is None:
        value = os.environ.get(SECRET_ENV, "").strip()
        return value or None
    try:
        with open(Path(path), "rb") as f:
            data = f.read(_MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"webhook secret file '{path}' cannot be read: {exc.strerror or exc}") from None
    if len(data) > _MAX_SECRET_BYTES:
        raise ConfigError(
            f"webhook secret file '{path}' is larger than {_MAX_SECRET_BYTES} bytes; it should hold one line"
        )
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"webhook secret file '{path}' is not UTF-8 text; write the secret as one line") from None
    secret = text.splitlines()[0].strip() if text else ""
    if not secret:
        raise ConfigError(f"webhook secret file '{path}' is empty; write the secret on its first line")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in secret):
        raise ConfigError(f"webhook secret file '{path}' holds control characters; a header value cannot carry them")
    return secret


@dataclass(frozen=True, slots=True)
class Delivery:
    """How one POST went: ``delivered``, or why not after how many attempts."""

    delivered: bool
    attempts: int
    status: int | None  # the last HTTP status, if any answer came
    error: str | None  # why it failed (no secret in it)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx is raised as an HTTPError: a failed delivery


class Webhook:
    """POSTs JSON to one URL; see the module's rules."""

    def __init__(
        self,
        url: str,
        secret: str | None = None,
        *,
        timeout_s: float = 5.0,
        attempts: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        max_response_bytes: int = 64 * 1024,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = validate_url(url)
        self._secret = secret
        if attempts < 1 or timeout_s <= 0 or backoff_s < 0:
            raise ConfigError("webhook: attempts must be ≥ 1, timeout > 0 and backoff ≥ 0")
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_response_bytes = max_response_bytes
        self._sleep = sleep
        self._opener = urllib.request.build_opener(_NoRedirect())
        host = urlsplit(url).hostname or ""
        if secret and url.startswith("http://") and not _is_loopback(host):
            logger.warning(
                "webhook %s is plain http to another host: the secret and the alerts cross the network "
                "unencrypted; use https://",
                url,
            )

    def __repr__(self) -> str:
        return f"Webhook({self.url!r}, secret={'set' if self._secret else 'none'})"

    def send(self, payload: dict[str, Any]) -> Delivery:
        """POST ``payload`` as JSON until a 2xx, a permanent refusal, or the last attempt."""
        body = json.dumps(payload, allow_nan=False, default=str).encode()
        status: int | None = None
        error: str | None = None
        for attempt in range(1, self.attempts + 1):
            status, error, retry = self._attempt(body)
            if error is None:
                return Delivery(True, attempt, status, None)
            if not retry or attempt == self.attempts:
                return Delivery(False, attempt, status, error)
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
            logger.info("webhook %s: attempt %d failed (%s); retrying in %.1f s", self.url, attempt, error, delay)
            self._sleep(delay)
        return Delivery(False, self.attempts, status, error)  # not reached: the loop returns

    def _attempt(self, body: bytes) -> tuple[int | None, str | None, bool]:
        """(status, error or None, whether to retry)."""
        request = urllib.request.Request(self.url, data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("User-Agent", "otel-shadow-watch")
        if self._secret:
            request.add_header(SECRET_HEADER, self._secret)
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                response.read(self.max_response_bytes)
                return response.status, None, False
        except urllib.error.HTTPError as exc:
            code = exc.code
            exc.close()
            if 300 <= code < 400:
                return (
                    code,
                    f"the receiver answered {code} (a redirect; not followed, it would carry the secret)",
                    False,
                )
            return code, f"the receiver answered HTTP {code}", code in _RETRYABLE
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            return None, f"cannot reach the receiver: {reason}", True
