"""Model providers: one message model in, one response model out, whatever the wire format.

    client = make_http_client()
    provider = make_provider("anthropic", "https://api.anthropic.com", key, client)
    response = await provider.complete(request, observer=None)

``openai`` and ``openai_compatible`` speak chat completions (base URLs include ``/v1``);
``anthropic`` speaks the Messages API (base URLs do not). Failures are :class:`ProviderError`
subclasses; retryable ones are retried inside ``complete`` per its :class:`RetryPolicy`.
"""

from __future__ import annotations

import httpx

from .anthropic import AnthropicProvider
from .base import HTTPProvider
from .errors import (
    AuthError,
    BadRequest,
    ConnectionFailed,
    MalformedResponse,
    NotFound,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    TruncatedStream,
)
from .messages import (
    Delta,
    Message,
    ModelRequest,
    ModelResponse,
    Observer,
    TokenLogprob,
    ToolCall,
    ToolSpec,
    Usage,
)
from .openai import OpenAICompatibleProvider, OpenAIProvider
from .retry import RetryPolicy
from .transport import make_http_client

PROTOCOLS: dict[str, type[HTTPProvider]] = {
    "openai": OpenAIProvider,
    "openai_compatible": OpenAICompatibleProvider,
    "anthropic": AnthropicProvider,
}


def make_provider(
    protocol: str,
    base_url: str,
    api_key: str | None,
    client: httpx.AsyncClient,
    *,
    timeout_s: float = 60.0,
    retry: RetryPolicy | None = None,
    name: str | None = None,
) -> HTTPProvider:
    """The provider for ``protocol`` at ``base_url``; ``name`` (default: the protocol) is what
    error messages call it. A missing ``api_key`` sends no auth header (local servers)."""
    try:
        cls = PROTOCOLS[protocol]
    except KeyError:
        known = ", ".join(PROTOCOLS)
        raise ValueError(f"unknown provider protocol {protocol!r} (known: {known})") from None
    return cls(base_url, api_key, client, timeout_s=timeout_s, retry=retry, name=name)


__all__ = [
    "PROTOCOLS",
    "AnthropicProvider",
    "AuthError",
    "BadRequest",
    "ConnectionFailed",
    "Delta",
    "HTTPProvider",
    "MalformedResponse",
    "Message",
    "ModelRequest",
    "ModelResponse",
    "NotFound",
    "Observer",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "ProviderError",
    "ProviderTimeout",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "TokenLogprob",
    "ToolCall",
    "ToolSpec",
    "TruncatedStream",
    "Usage",
    "make_http_client",
    "make_provider",
]
