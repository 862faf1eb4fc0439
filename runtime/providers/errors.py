"""Typed provider errors: what went wrong talking to a model, and whether trying again can help.

Every failure of a provider call ends as one of these, never as a raw ``httpx`` or ``KeyError``:

=====================  ==========================================  =========  ==============
error                  when                                        retryable  may have billed
=====================  ==========================================  =========  ==============
``AuthError``          401, 403                                    no         no
``NotFound``           404 (names the model id and base URL)       no         no
``BadRequest``         400 and other 4xx (the provider's message)  no         no
``RateLimited``        429 (``retry_after`` from the headers)      yes        no
``ServerError``        5xx, 529 overloaded, 408/409                yes        5xx only
``ProviderTimeout``    connect/read timeout, attempt deadline      yes        after sending
``ConnectionFailed``   refused, reset, DNS                         yes        after sending
``MalformedResponse``  unparseable body, missing fields            no         yes
``TruncatedStream``    a stream ended before its terminator        yes        yes
=====================  ==========================================  =========  ==============

``may_have_billed`` says whether the provider may have charged for the failed attempt, and is set
by where the failure happened: it is false only when the failure proves nothing was billed (the
connection was never made, so the request was never sent; or the provider answered a 4xx, which
rejects a request before processing it). Anything else (a 5xx, a timeout or a reset after the
request went out, a 200 that cannot be read, a stream cut short, an error event inside a 200
stream) may have been billed, and the runtime charges it (see ``spec/runtime.md``).

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
    _may_have_billed = True  # unless the failure proves otherwise (see the table above)

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        may_have_billed: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status = status
        self.retry_after = retry_after  # seconds the provider asked us to wait, when it said
        self.attempts = 1  # calls made before giving up (set by RetryPolicy.run)
        # whether the provider may have charged for this attempt (None: what the class says)
        self.may_have_billed = self._may_have_billed if may_have_billed is None else may_have_billed

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed if sent again later."""
        return self._retryable

    def __reduce__(self):  # keep keyword fields across pickling (process pools, journals)
        fields = (self.message, self.provider, self.model, self.status, self.retry_after, self.attempts,
                  self.may_have_billed)
        return (_rebuild, (type(self), *fields))


def _rebuild(cls, message, provider, model, status, retry_after, attempts, may_have_billed=None):
    error = cls(message, provider=provider, model=model, status=status, retry_after=retry_after,
                may_have_billed=may_have_billed)
    error.attempts = attempts
    return error


class AuthError(ProviderError):
    """401/403: the key is missing, wrong, or not allowed to use this model."""

    _may_have_billed = False


class NotFound(ProviderError):
    """404: usually a wrong model id or a base URL missing (or doubling) its ``/v1``."""

    _may_have_billed = False


class BadRequest(ProviderError):
    """400 and other 4xx: the provider rejected the request; its message says why."""

    _may_have_billed = False


class RateLimited(ProviderError):
    """429: too many requests or tokens; ``retry_after`` is set when the provider said."""

    _retryable = True
    _may_have_billed = False


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
