"""The HTTP client the providers run on: the httpx API over aiohttp's connection pool.

Providers are written against ``httpx.AsyncClient``. httpx's own pool (httpcore) costs a lot of
client CPU per call under concurrency (encode/httpx#3215); ``bench/transport.py`` measures the
candidates against a local server. At 64 calls in flight the aiohttp-backed transport from
``httpx-aiohttp`` has the lowest floor of the httpx-API options: about 0.3 ms of client CPU per
call, 2.5-3x raw aiohttp, against 0.65-0.8 ms (5-8x) for httpx2 and 1.7-2.2 ms (16-20x) for
httpx's default pool; at one call in flight it is also the cheapest (about 2x raw aiohttp, httpx
and httpx2 3x). So that is what :func:`make_http_client` ships. (Raising httpx's keep-alive limit
to the concurrency makes it *worse*, about 7.5 ms a call: httpcore scans its pool per request.)

Plain (non-streaming) POSTs of the providers skip even that layer when the client is the shipped
one: :class:`DirectPost` sends them on the same aiohttp session (``bench/run_overhead.py``).

The transport maps aiohttp exceptions to httpx ones, but maps a dropped connection
(``ServerDisconnectedError``) to ``httpx.ConnectTimeout``; :func:`transport_failure` looks
through to the cause so a reset is reported as a connection failure, not a timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any

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


class DirectPost:
    """Plain (non-streaming) POSTs sent straight on the aiohttp session under the shipped client.

    httpx's request and response models (URL parsing, header normalisation, cookie extraction,
    the byte-stream adapters of ``httpx-aiohttp``) cost about as much client CPU per call as the
    socket work itself, and a model call needs none of them: the body is ready-made bytes and the
    answer is one JSON document. So when a provider's client is exactly what
    :func:`make_http_client` returns (an aiohttp transport, no proxy, no mounts, auth, base URL or
    event hooks), its plain POSTs skip httpx and go to the same aiohttp session (the same
    connection pool, cookie jar and limits). Errors are the aiohttp exceptions the transport would
    have wrapped; :func:`transport_failure` classifies them the same way. Any other client (a
    test's mock transport, a proxy from the environment) keeps the httpx path.
    """

    __slots__ = ("client", "transport", "headers", "timeout")

    def __init__(self, client: httpx.AsyncClient, transport, timeout_s: float):
        self.client = client
        self.transport = transport
        # the client's default headers, but aiohttp negotiates (and undoes) its own content-encoding
        self.headers = {k: v for k, v in client.headers.items() if k.lower() != "accept-encoding"}
        # httpx's path bounds the pool wait, the connect and each read by timeout_s, and the whole
        # answer too; none of the others can fire before the whole-answer bound, so it alone is set
        # (each bound aiohttp keeps is a timer armed and cancelled per call)
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    @classmethod
    def of(cls, client: Any, timeout_s: float) -> "DirectPost | None":
        """A direct path for ``client``, or None when it must go through httpx."""
        try:
            from httpx_aiohttp.transport import AiohttpTransport
        except ImportError:  # pragma: no cover
            return None
        transport = getattr(client, "_transport", None)
        if (type(client) is not HttpxAiohttpClient or type(transport) is not AiohttpTransport
                or transport.proxy is not None or transport.uds is not None or getattr(client, "_mounts", None)
                or client.auth is not None or str(client.base_url) or any(client.event_hooks.values())
                or client.params):
            return None
        if transport.client is not None and not isinstance(transport.client, aiohttp.ClientSession):
            return None  # a session factory of the caller's: leave it to the transport
        return cls(client, transport, timeout_s)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        """(status, the response's raw headers, the decoded body)."""
        if self.client.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        session = self.transport.client
        if session is None:  # opened lazily, in the running loop (as the transport does)
            session = self.transport.client = self.transport.get_client()
        async with session.post(url, data=body, headers={**self.headers, **headers}, allow_redirects=False,
                                timeout=self.timeout) as resp:
            return resp.status, resp.raw_headers, await resp.read()


def response_for(status: int, raw_headers: Any, content: bytes, url: str) -> httpx.Response:
    """An ``httpx.Response`` of what :class:`DirectPost` got (for the rare error paths)."""
    headers = [(k, v) for k, v in raw_headers if k.lower() not in (b"content-encoding", b"content-length")]
    return httpx.Response(status, headers=headers, content=content, request=httpx.Request("POST", url))
