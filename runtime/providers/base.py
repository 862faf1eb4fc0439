"""What every HTTP provider shares: the attempt loop, error mapping, headers, streaming plumbing.

A protocol module (``openai.py``, ``anthropic.py``) supplies only its wire format: the URL, the
auth headers, request translation, response parsing and stream assembly. Everything about
failing well (status codes to typed errors, retries, deadlines, redaction) lives here once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import json
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp
import anyio
import httpx

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
    parse_retry_after,
    redact,
)
from .messages import Delta, ModelRequest, ModelResponse, Observer
from .retry import RetryPolicy
from .transport import DirectPost, response_for, transport_failure

# Structured output must be a JSON object at the root (OpenAI strict mode, Anthropic tool input);
# any other schema is wrapped as {"value": ...} on the wire and unwrapped on the way back.
WRAP_KEY = "value"


def output_schema_on_wire(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the schema to send, whether it was wrapped in an object)."""
    if schema.get("type") == "object":
        return schema, False
    wrapped = {"type": "object", "properties": {WRAP_KEY: schema}, "required": [WRAP_KEY], "additionalProperties": False}
    if "$defs" in schema:  # references are resolved from the root: move the definitions up
        inner = {k: v for k, v in schema.items() if k != "$defs"}
        wrapped = {**wrapped, "properties": {WRAP_KEY: inner}, "$defs": schema["$defs"]}
    return wrapped, True


def unwrap_output(value: Any) -> Any:
    if isinstance(value, dict) and WRAP_KEY in value:
        return value[WRAP_KEY]
    return value


def header_value(value: str) -> str:
    """A header-safe form of ``value``: ASCII printable kept, anything else percent-encoded."""
    if value.isascii() and value.isprintable():
        return value
    return quote(value, safe="")


def parse_arguments(raw: str) -> dict[str, Any]:
    """A tool call's arguments object, or ``{}`` when the model wrote something else.

    The raw text is kept on the :class:`ToolCall`, so the executor can tell the model what it
    wrote when the call needs repair.
    """
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class StreamSink:
    """Gives deltas to a request's observer; remembers whether any were given (for retries)."""

    __slots__ = ("observer", "delivered", "halted")

    def __init__(self, observer: Observer | None) -> None:
        self.observer = observer
        self.delivered = False
        self.halted = False

    def restart(self) -> None:
        """A retried stream starts over: tell the observer to forget what it saw."""
        if self.observer is not None and self.delivered:
            self.observer(Delta(restart=True))
        self.delivered = False
        self.halted = False

    def emit(self, delta: Delta) -> bool:
        """Give ``delta`` to the observer; False when it asked to stop the stream."""
        if self.observer is None or (not delta.text and not delta.logprobs):
            return True
        self.delivered = True
        if self.observer(delta) is False:
            self.halted = True
            return False
        return True


class HTTPProvider(ABC):
    """A provider reached over HTTP with JSON bodies. Subclasses define the wire format."""

    protocol: ClassVar[str] = ""
    terminator: ClassVar[str] = ""  # named in TruncatedStream messages

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        client: httpx.AsyncClient,
        *,
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        name: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or None
        self.client = client
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.name = name or self.protocol

    # ---- the wire format (subclasses) -------------------------------------------------------

    @property
    @abstractmethod
    def url(self) -> str:
        """Per wire format."""

    @abstractmethod
    def auth_headers(self) -> dict[str, str]:
        """Per wire format."""

    @abstractmethod
    def build_body(self, request: ModelRequest) -> dict[str, Any]:
        """Per wire format."""

    @abstractmethod
    def parse_response(self, data: Any, request: ModelRequest) -> ModelResponse:
        """Per wire format."""

    @abstractmethod
    async def read_stream(self, response: httpx.Response, request: ModelRequest, sink: StreamSink) -> ModelResponse:
        """Per wire format."""

    def not_found_hint(self) -> str:
        return "check the model id and the base URL"

    # ---- one call ---------------------------------------------------------------------------

    def __repr__(self) -> str:  # never the key
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})"

    def headers(self, request: ModelRequest) -> dict[str, str]:
        headers = {"content-type": "application/json", **self.auth_headers()}
        if request.stream:
            headers["accept"] = "text/event-stream"
        for key, value in request.metadata.items():
            headers[f"x-vox-{key.lower().replace('_', '-')}"] = header_value(str(value))
        return headers

    async def complete(self, request: ModelRequest, observer: Observer | None = None) -> ModelResponse:
        """Send ``request``; retry per the policy; a :class:`ModelResponse` or a ProviderError.

        With ``request.stream`` each text delta goes to ``observer`` as it arrives; when the
        observer returns False the stream is closed and the response so far comes back with
        ``finish == "halted"``. If a stream fails after deltas were given and is retried, the
        observer first gets ``Delta(restart=True)``.
        """
        body = json.dumps(self.build_body(request), ensure_ascii=False, separators=(",", ":")).encode()
        headers = self.headers(request)
        sink = StreamSink(observer)

        async def attempt(n: int) -> ModelResponse:
            if n > 1:
                sink.restart()
            return await self._attempt(request, body, headers, sink)

        return await self.retry.run(attempt)

    def _direct(self) -> DirectPost | None:
        """The aiohttp fast path for plain POSTs on ``self.client``, if it is the shipped client."""
        cached = self.__dict__.get("_direct_path")
        if cached is None or cached[0] is not self.client or cached[1] != self.timeout_s:  # once per client
            cached = (self.client, self.timeout_s, DirectPost.of(self.client, self.timeout_s))
            self.__dict__["_direct_path"] = cached
        return cached[2]

    async def _attempt(self, request: ModelRequest, body: bytes, headers: dict[str, str], sink: StreamSink) -> ModelResponse:
        timeout = httpx.Timeout(self.timeout_s)
        reading_stream = False
        try:
            if request.stream:
                async with self.client.stream("POST", self.url, content=body, headers=headers, timeout=timeout) as resp:
                    if resp.status_code >= 300:
                        await resp.aread()
                        raise self.status_error(resp, request)
                    reading_stream = True
                    return await self.read_stream(resp, request, sink)
            direct = self._direct()
            if direct is not None:  # the shipped client: straight to aiohttp (its total timeout bounds the answer)
                status, raw_headers, content = await direct.post(self.url, body, headers)
                if status < 300:
                    try:
                        data = json.loads(content)
                    except ValueError:
                        data = self.decode_json(response_for(status, raw_headers, content, self.url), request)
                    return self.parse_response(data, request)
                raise self.status_error(response_for(status, raw_headers, content, self.url), request)
            # the read timeout bounds each wait for bytes; this bounds the whole answer
            with anyio.fail_after(self.timeout_s):
                resp = await self.client.post(self.url, content=body, headers=headers, timeout=timeout)
            if resp.status_code >= 300:
                raise self.status_error(resp, request)
            return self.parse_response(self.decode_json(resp, request), request)
        except ProviderError:
            raise
        except (httpx.TransportError, aiohttp.ClientError) as exc:
            raise self.transport_error(exc, request, transport_failure(exc), reading_stream) from None
        except TimeoutError as exc:  # the attempt's deadline
            raise self.transport_error(exc, request, "timeout", reading_stream) from None

    # ---- errors -----------------------------------------------------------------------------

    def error(self, cls: type[ProviderError], what: str, request: ModelRequest, **fields: Any) -> ProviderError:
        """``cls`` with a message naming this provider and the model, without the key."""
        message = redact(f"{self.name}: {what}", self.api_key)
        return cls(message, provider=self.name, model=request.model, **fields)

    def transport_error(self, exc: BaseException, request: ModelRequest, kind: str, reading_stream: bool) -> ProviderError:
        detail = str(exc) or type(exc).__name__
        sent = reading_stream or request_may_have_been_sent(exc)
        if kind == "timeout":
            where = "the stream stalled" if reading_stream else "no answer"
            return self.error(
                ProviderTimeout,
                f"{where} from model {request.model!r} at {self.base_url} within {self.timeout_s:g}s ({detail})",
                request,
                may_have_billed=sent,
            )
        if reading_stream:
            return self.error(
                TruncatedStream,
                f"the stream from model {request.model!r} broke before {self.terminator} ({detail})",
                request,
            )
        return self.error(ConnectionFailed, f"cannot reach {self.base_url} for model {request.model!r} ({detail})", request,
                          may_have_billed=sent)

    def status_error(self, resp: httpx.Response, request: ModelRequest) -> ProviderError:
        """The typed error of a non-2xx answer. A 5xx may have been billed (the provider may have
        processed the request before failing); anything below 500 rejected it unprocessed."""
        error = self._status_error(resp, request)
        error.may_have_billed = resp.status_code >= 500
        return error

    def _status_error(self, resp: httpx.Response, request: ModelRequest) -> ProviderError:
        status = resp.status_code
        said = provider_message(resp)
        retry_after = parse_retry_after(resp.headers)
        model = f"model {request.model!r}"
        if status in (401, 403):
            what = "authentication failed" if status == 401 else "access denied"
            return self.error(
                AuthError, f"{what} for {model} at {self.base_url} (HTTP {status}): {said}; check the API key", request, status=status
            )
        if status == 404:
            return self.error(
                NotFound, f"{model} not found at {self.base_url} (HTTP 404): {said}; {self.not_found_hint()}", request, status=status
            )
        if status == 429:
            wait = f", retry after {retry_after:g}s" if retry_after is not None else ""
            return self.error(
                RateLimited, f"rate limited on {model} (HTTP 429{wait}): {said}", request, status=status, retry_after=retry_after
            )
        if status >= 500 or status in (408, 409):
            what = "overloaded" if status == 529 else "server error"
            return self.error(
                ServerError, f"{what} on {model} (HTTP {status}): {said}", request, status=status, retry_after=retry_after
            )
        if 300 <= status < 400:
            return self.error(
                BadRequest,
                f"unexpected redirect (HTTP {status}) to {resp.headers.get('location', '?')} for {model}; check the base URL",
                request,
                status=status,
            )
        return self.error(BadRequest, f"request rejected for {model} (HTTP {status}): {said}", request, status=status)

    def decode_json(self, resp: httpx.Response, request: ModelRequest) -> Any:
        try:
            return json.loads(resp.content)
        except ValueError:
            return self.malformed(request, f"the body is not JSON: {excerpt(resp.text)!r}")

    def malformed(self, request: ModelRequest, what: str) -> Any:
        raise self.error(MalformedResponse, f"malformed response for model {request.model!r}: {what}", request)

    def stream_error(self, request: ModelRequest, error: Any) -> ProviderError:
        """An ``error`` the provider sent inside a 200 stream, as the matching typed error. The
        request was accepted and processing had begun, so it may have been billed, whatever its type."""
        kind, message = "", ""
        if isinstance(error, dict):
            kind = str(error.get("type") or error.get("code") or "")
            message = str(error.get("message") or "")
        else:
            message = str(error)
        cls, status = STREAM_ERROR_TYPES.get(kind, (ServerError, None))
        return self.error(cls, f"error in the stream for model {request.model!r} ({kind or 'error'}): {message}", request,
                          status=status, may_have_billed=True)


STREAM_ERROR_TYPES: dict[str, tuple[type[ProviderError], int | None]] = {
    "overloaded_error": (ServerError, 529),
    "api_error": (ServerError, 500),
    "server_error": (ServerError, 500),
    "rate_limit_error": (RateLimited, 429),
    "rate_limit_exceeded": (RateLimited, 429),
    "invalid_request_error": (BadRequest, 400),
    "authentication_error": (AuthError, 401),
    "permission_error": (AuthError, 403),
    "not_found_error": (NotFound, 404),
    "request_too_large": (BadRequest, 413),
}


# Failures that prove the request never left: the connection was never made.
_NOT_CONNECTED_AIOHTTP: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(aiohttp, "ClientConnectorError", None), getattr(aiohttp, "ConnectionTimeoutError", None))
    if t is not None)
_NOT_CONNECTED_HTTPX = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def request_may_have_been_sent(exc: BaseException) -> bool:
    """Whether a transport failure leaves open that the provider received (and billed) the request.

    False only for a failure to connect (refused, DNS, a connect timeout, no free connection). The
    aiohttp transport maps a dropped connection to ``httpx.ConnectTimeout``, so the aiohttp cause,
    where there is one, decides.

    >>> request_may_have_been_sent(aiohttp.ServerDisconnectedError())
    True
    >>> request_may_have_been_sent(httpx.ConnectError("refused"))
    False
    """
    cause: BaseException | None = exc
    for _ in range(8):
        if cause is None:
            break
        if isinstance(cause, aiohttp.ClientError):
            return not isinstance(cause, _NOT_CONNECTED_AIOHTTP)
        cause = cause.__cause__
    return not isinstance(exc, _NOT_CONNECTED_HTTPX)


def excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def provider_message(resp: httpx.Response) -> str:
    """The provider's own explanation from an error body (OpenAI and Anthropic shapes)."""
    try:
        data = json.loads(resp.content)
    except ValueError:
        return excerpt(resp.text) or resp.reason_phrase or "no message"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            message = err.get("message") or err.get("detail")
            kind = err.get("type") or err.get("code")
            if message:
                return excerpt(f"{message} [{kind}]" if kind else str(message))
        elif isinstance(err, str):
            return excerpt(err)
    return excerpt(resp.text)
