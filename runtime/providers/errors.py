"""Typed provider errors: what went wrong talking to a model, and whether trying again can help.

Every failure of a provider call ends as one of these, never as a raw ``httpx`` or ``KeyError``:

=====================  ==========================================  =========
error                  when                                        retryable
=====================  ==========================================  =========
``AuthError``          401, 403                                    no
``NotFound``           404 (names the model id and base URL)       no
``BadRequest``         400 and other 4xx (the provider's message)  no
``RateLimited``        429 (``retry_after`` from the headers)      yes
``ServerError``        5xx, 529 overloaded, 408/409                yes
``ProviderTimeout``    connect/read timeout, attempt deadline      yes
``ConnectionFailed``   refused, reset, DNS                         yes
``MalformedResponse``  unparseable body, missing fields            no
``TruncatedStream``    a stream ended before its terminator        yes
=====================  ==========================================  =========

Messages name the provider and the model and never contain the API key: providers build them
with :func:`redact`.
"""

from __future__ import annotations

import email.utils
import re
import time
from typing import Mapping


class ProviderError(Exception):
    """A model call failed. ``str(error)`` is a complete, key-free sentence for a person."""

    _retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status = status
        self.retry_after = retry_after  # seconds the provider asked us to wait, when it said
        self.attempts = 1  # calls made before giving up (set by RetryPolicy.run)

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed if sent again later."""
        return self._retryable

    def __reduce__(self):  # keep keyword fields across pickling (process pools, journals)
        fields = (self.message, self.provider, self.model, self.status, self.retry_after, self.attempts)
        return (_rebuild, (type(self), *fields))


def _rebuild(cls, message, provider, model, status, retry_after, attempts):
    error = cls(message, provider=provider, model=model, status=status, retry_after=retry_after)
    error.attempts = attempts
    return error


class AuthError(ProviderError):
    """401/403: the key is missing, wrong, or not allowed to use this model."""


class NotFound(ProviderError):
    """404: usually a wrong model id or a base URL missing (or doubling) its ``/v1``."""


class BadRequest(ProviderError):
    """400 and other 4xx: the provider rejected the request; its message says why."""


class RateLimited(ProviderError):
    """429: too many requests or tokens; ``retry_after`` is set when the provider said."""

    _retryable = True


class ServerError(ProviderError):
    """5xx (and Anthropic's 529 overloaded): the provider failed; trying later may work."""

    _retryable = True


class ProviderTimeout(ProviderError):
    """No answer (or no next byte of a stream) in time."""

    _retryable = True


class ConnectionFailed(ProviderError):
    """The connection could not be made or broke before a response arrived."""

    _retryable = True


class MalformedResponse(ProviderError):
    """The provider answered 2xx with a body we cannot read as its wire format."""


class TruncatedStream(ProviderError):
    """A streamed reply stopped before its terminator (``[DONE]`` / ``message_stop``)."""

    _retryable = True


_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` (nor any bearer token), for messages that people and logs see.

    >>> redact("bad key sk-abc123456789 (Bearer sk-abc123456789)", "sk-abc123456789")
    'bad key [redacted] (Bearer [redacted])'
    """
    if secret:
        text = text.replace(secret, "[redacted]")
        # providers echo keys partly masked ("sk-abc1***6789"); a long prefix alone is still a leak
        if len(secret) >= 16:
            text = text.replace(secret[:12], "[redacted]")
    return _BEARER.sub(r"\1[redacted]", text)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date).

    >>> parse_retry_after({"retry-after": "2"})
    2.0
    >>> parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"})
    1.5
    >>> parse_retry_after({"retry-after": "soon"}) is None
    True
    """
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000
            if value >= 0:
                return value
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
        return value if value >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
