"""The HTTP client the providers run on: the httpx API over aiohttp's connection pool.

Providers are written against ``httpx.AsyncClient``. httpx's own pool (httpcore) costs a lot of
client CPU per call under concurrency (encode/httpx#3215); ``bench/transport.py`` measures the
candidates against a local server. At 64 calls in flight the aiohttp-backed transport from
``httpx-aiohttp`` has the lowest floor of the httpx-API options: about 0.3 ms of client CPU per
call, 2.5-3x raw aiohttp, against 0.65-0.8 ms (5-8x) for httpx2 and 1.7-2.2 ms (16-20x) for
httpx's default pool; at one call in flight it is also the cheapest (about 2x raw aiohttp, httpx
and httpx2 3x). So that is what :func:`make_http_client` ships. (Raising httpx's keep-alive limit
to the concurrency makes it *worse*, about 7.5 ms a call: httpcore scans its pool per request.)

The transport maps aiohttp exceptions to httpx ones, but maps a dropped connection
(``ServerDisconnectedError``) to ``httpx.ConnectTimeout``; :func:`transport_failure` looks
through to the cause so a reset is reported as a connection failure, not a timeout.
"""

from __future__ import annotations

import asyncio

import aiohttp
import httpx
from httpx_aiohttp import HttpxAiohttpClient

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_CONNECTIONS = 256


def make_http_client(
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> httpx.AsyncClient:
    """The shipped client: ``httpx.AsyncClient`` on aiohttp. Use as ``async with`` or ``aclose()``.

    One client serves every provider and every concurrent call of a run; it opens its aiohttp
    session lazily, inside the event loop that first uses it.
    """
    return HttpxAiohttpClient(
        timeout=httpx.Timeout(timeout_s),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        follow_redirects=False,
    )


def transport_failure(exc: BaseException) -> str:
    """``"timeout"`` or ``"connection"``: what kind of transport failure ``exc`` really is."""
    cause = exc
    seen = 0
    while cause is not None and seen < 8:  # the aiohttp exception the transport re-raised
        if isinstance(cause, (aiohttp.ServerTimeoutError, asyncio.TimeoutError, TimeoutError)):
            return "timeout"
        if isinstance(cause, aiohttp.ClientError):
            return "connection"
        cause, seen = cause.__cause__, seen + 1
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    return "connection"
