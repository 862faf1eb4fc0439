"""Providers against a real local HTTP server that answers with canned wire responses.

The fake server records every request it gets, so the tests assert the exact JSON we sent, and
answers each one with the next queued reply: a JSON body, raw bytes, an SSE stream (complete,
cut short, or dropped mid-way), or a reply that never comes (timeouts). The client is the
shipped one (``make_http_client``), so these also exercise the aiohttp transport end to end.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import pytest
from aiohttp import web

from vox.runtime.providers import (
    AuthError,
    BadRequest,
    ConnectionFailed,
    Delta,
    MalformedResponse,
    Message,
    ModelRequest,
    NotFound,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RetryPolicy,
    ServerError,
    ToolCall,
    ToolSpec,
    TruncatedStream,
    make_http_client,
    make_provider,
)
from vox.runtime.providers.errors import parse_retry_after
from vox.runtime.providers.sse import parse_lines

KEY = "sk-test-SECRET-0123456789abcdef"

# ---------------------------------------------------------------------------------- fake server

Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeServer:
    replies: deque[Reply] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # ends replies that hang
    base_url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.release.set()
        assert self._runner is not None
        await self._runner.cleanup()

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.received.append(Received(request.path, {k.lower(): v for k, v in request.headers.items()}, json.loads(raw)))
        if not self.replies:
            return web.json_response({"error": {"message": "no reply queued"}}, status=599)
        return await self.replies.popleft()(request)

    @property
    def last(self) -> Any:
        return self.received[-1].body


def reply_json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        return web.json_response(data, status=status, headers=headers)

    return reply


def reply_raw(body: bytes, status: int = 200, content_type: str = "application/json") -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, status=status, content_type=content_type)

    return reply


def reply_sse(events: list[str | asyncio.Event], *, drop: bool = False, hang: asyncio.Event | None = None) -> Reply:
    """A 200 event stream of ``events`` (each a complete SSE event text, or an asyncio.Event to
    wait for before going on); ``drop`` closes the socket afterwards without ending the chunked
    body; ``hang`` waits on the event first."""

    async def reply(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        try:
            for event in events:
                if isinstance(event, asyncio.Event):
                    await event.wait()
                else:
                    await response.write(event.encode())
            if hang is not None:
                await hang.wait()
            if drop:
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write_eof()
        except (ConnectionResetError, RuntimeError):  # the client hung up (halted stream)
            pass
        return response

    return reply


def reply_never(server: FakeServer) -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        await server.release.wait()
        return web.json_response({})

    return reply


def data(obj: Any) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def event(name: str, obj: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps({'type': name, **obj})}\n\n"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def server():
    fake = FakeServer()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def client():
    async with make_http_client() as http:
        yield http


@dataclass
class FakeClock:
    slept: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def openai(server: FakeServer, client, clock: FakeClock | None = None, protocol: str = "openai", key: str | None = KEY, **kw):
    retry = RetryPolicy(sleep=(clock or FakeClock()).sleep, random=lambda: 0.0)
    return make_provider(protocol, f"{server.base_url}/v1", key, client, retry=retry, **kw)


def anthropic(server: FakeServer, client, clock: FakeClock | None = None, **kw):
    retry = RetryPolicy(sleep=(clock or FakeClock()).sleep, random=lambda: 0.0)
    return make_provider("anthropic", server.base_url, KEY, client, retry=retry, **kw)


WEATHER = ToolSpec(
    "get_weather",
    "Weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False},
)
ANSWER = {"type": "object", "properties": {"temp": {"type": "integer"}}, "required": ["temp"], "additionalProperties": False}
CALL = ToolCall("call_1", "get_weather", {"city": "Oslo"}, '{"city":"Oslo"}')

# A conversation with every kind of turn: instructions, prompt, a tool call, its result.
CONVERSATION = (
    Message("system", "You are terse.", cache=True),
    Message("user", "Weather in Oslo?"),
    Message("assistant", "", tool_calls=(CALL,)),
    Message("tool", '{"temp": 7}', tool_call_id="call_1", tool_name="get_weather"),
)


def chat_completion(message: dict[str, Any], finish: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "model": "gpt-test",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish, **extra}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 64}},
    }


def anthropic_message(content: list[dict[str, Any]], stop: str = "end_turn") -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": content,
        "stop_reason": stop,
        "usage": {"input_tokens": 10, "output_tokens": 7, "cache_read_input_tokens": 80, "cache_creation_input_tokens": 20},
    }


# ------------------------------------------------------------------------------- OpenAI wire


@pytest.mark.anyio
async def test_openai_request_carries_tools_results_schema_logprobs_and_metadata(server, client):
    server.queue(reply_json(chat_completion({"content": '{"temp": 7}'})))
    request = ModelRequest(
        "gpt-test",
        CONVERSATION,
        max_output=50,
        tools=(WEATHER,),
        output_schema=ANSWER,
        output_name="Forecast",
        temperature=0.0,
        logprobs=True,
        top_logprobs=3,
        metadata={"run": "r1", "agent": "triager", "step": "3"},
    )
    await openai(server, client).complete(request)
    sent = server.received[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert (sent.headers["x-vox-run"], sent.headers["x-vox-agent"], sent.headers["x-vox-step"]) == ("r1", "triager", "3")
    assert sent.body == {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 7}'},
        ],
        "max_completion_tokens": 50,
        "temperature": 0.0,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather for a city.",
                    "parameters": WEATHER.parameters,
                    "strict": True,
                },
            }
        ],
        "response_format": {"type": "json_schema", "json_schema": {"name": "Forecast", "schema": ANSWER, "strict": True}},
        "logprobs": True,
        "top_logprobs": 3,
    }


@pytest.mark.anyio
async def test_openai_compatible_without_key_sends_no_authorization(server, client):
    server.queue(reply_json(chat_completion({"content": "hi"})))
    request = ModelRequest("local-model", (Message("user", "hi"),), max_output=5)
    response = await openai(server, client, protocol="openai_compatible", key=None).complete(request)
    assert response.text == "hi"
    assert "authorization" not in server.received[0].headers
    assert server.last["max_tokens"] == 5 and "max_completion_tokens" not in server.last


@pytest.mark.anyio
async def test_openai_response_tool_calls_usage_and_logprobs(server, client):
    logprobs = {
        "content": [
            {"token": "Hi", "logprob": -0.1, "top_logprobs": [{"token": "Hi", "logprob": -0.1}, {"token": "Yo", "logprob": -2.5}]},
        ]
    }
    server.queue(
        reply_json(
            chat_completion(
                {
                    "content": "Hi",
                    "tool_calls": [
                        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
                        {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": '}},
                    ],
                },
                finish="tool_calls",
                logprobs=logprobs,
            )
        )
    )
    request = ModelRequest("gpt-test", (Message("user", "?"),), max_output=5, tools=(WEATHER,), logprobs=True, top_logprobs=2)
    response = await openai(server, client).complete(request)
    assert response.finish == "tool_calls"
    assert response.tool_calls[0] == ToolCall("call_a", "get_weather", {"city": "Oslo"}, '{"city": "Oslo"}')
    # arguments that are not JSON stay visible for a repair message
    assert response.tool_calls[1].arguments == {} and response.tool_calls[1].raw_arguments == '{"city": '
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.cached_input_tokens) == (100, 5, 64)
    assert response.logprobs is not None and response.logprobs[0].token == "Hi"
    assert response.logprobs[0].top == (("Hi", -0.1), ("Yo", -2.5))
    assert (response.model, response.provider_id) == ("gpt-test", "chatcmpl-1")


@pytest.mark.anyio
async def test_openai_tool_call_round_trip(server, client):
    """A tool call the model made goes back, with its result, under the same id."""
    call = {"id": "call_Z9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}
    server.queue(reply_json(chat_completion({"content": None, "tool_calls": [call]}, "tool_calls")))
    server.queue(reply_json(chat_completion({"content": "Warm."})))
    provider = openai(server, client)
    first = ModelRequest("gpt-test", (Message("user", "Rome?"),), max_output=20, tools=(WEATHER,))
    reply = await provider.complete(first)
    history = first.messages + (
        Message("assistant", reply.text, tool_calls=reply.tool_calls),
        Message("tool", '{"temp": 25}', tool_call_id=reply.tool_calls[0].id, tool_name="get_weather"),
    )
    await provider.complete(ModelRequest("gpt-test", history, max_output=20, tools=(WEATHER,)))
    assistant, result = server.last["messages"][1:]
    assert assistant["tool_calls"] == [call]
    assert result == {"role": "tool", "tool_call_id": "call_Z9", "content": '{"temp": 25}'}


@pytest.mark.anyio
async def test_non_object_output_schema_is_wrapped_and_unwrapped(server, client):
    server.queue(reply_json(chat_completion({"content": '{"value": ["a", "b"]}'})))
    schema = {"type": "array", "items": {"type": "string"}}
    request = ModelRequest("gpt-test", (Message("user", "?"),), max_output=20, output_schema=schema)
    response = await openai(server, client).complete(request)
    assert server.last["response_format"]["json_schema"]["schema"]["properties"]["value"] == schema
    assert json.loads(response.text) == ["a", "b"]


# ----------------------------------------------------------------------------- OpenAI streams


def openai_chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> str:
    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = {"content": logprobs}
    return data({"id": "chatcmpl-s", "model": "gpt-test", "choices": [choice]})


OPENAI_STREAM = [
    openai_chunk({"role": "assistant", "content": ""}),
    openai_chunk({"content": "Hel"}, logprobs=[{"token": "Hel", "logprob": -0.5, "top_logprobs": []}]),
    openai_chunk({"content": "lo"}, logprobs=[{"token": "lo", "logprob": -0.25, "top_logprobs": []}]),
    openai_chunk({"tool_calls": [{"index": 0, "id": "call_s", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
    openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
    openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
    openai_chunk({}, finish="tool_calls"),
    data({"id": "chatcmpl-s", "model": "gpt-test", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 0}}}),
    ": keep-alive comment\n\n",
    "data: [DONE]\n\n",
]


@pytest.mark.anyio
async def test_openai_stream_assembles_text_tools_logprobs_and_usage(server, client):
    server.queue(reply_sse(OPENAI_STREAM))
    seen: list[Delta] = []
    request = ModelRequest("gpt-test", (Message("user", "?"),), max_output=20, tools=(WEATHER,), stream=True, logprobs=True)
    response = await openai(server, client).complete(request, observer=lambda d: seen.append(d) or True)
    assert server.last["stream"] is True and server.last["stream_options"] == {"include_usage": True}
    assert [d.text for d in seen] == ["Hel", "lo"] and seen[0].logprobs[0].logprob == -0.5
    assert response.text == "Hello"
    assert response.tool_calls == (ToolCall("call_s", "get_weather", {"city": "Oslo"}, '{"city":"Oslo"}'),)
    assert response.finish == "tool_calls"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (9, 4)
    assert [lp.token for lp in response.logprobs or ()] == ["Hel", "lo"]


@pytest.mark.anyio
async def test_stream_deltas_arrive_before_the_stream_ends(server, client):
    """The transport does not buffer: the server sends the rest only after the observer saw
    the first delta (otherwise this would hang, and fail on the client's timeout)."""
    seen_first = asyncio.Event()
    server.queue(reply_sse(OPENAI_STREAM[:2] + [seen_first] + OPENAI_STREAM[2:]))
    seen: list[str] = []

    def observer(delta: Delta) -> bool:
        seen.append(delta.text)
        seen_first.set()
        return True

    provider = openai(server, client, timeout_s=5)
    provider.retry = RetryPolicy(max_attempts=1)
    request = ModelRequest("gpt-test", (Message("user", "?"),), max_output=20, stream=True)
    response = await provider.complete(request, observer=observer)
    assert seen == ["Hel", "lo"] and response.text == "Hello"


@pytest.mark.anyio
async def test_observer_halts_a_stream(server, client):
    words = [openai_chunk({"content": f"w{i} "}) for i in range(50)]
    server.queue(reply_sse(words + ["data: [DONE]\n\n"]))
    seen: list[str] = []

    def observer(delta: Delta) -> bool:
        seen.append(delta.text)
        return len(seen) < 3

    request = ModelRequest("gpt-test", (Message("user", "?"),), max_output=100, stream=True)
    response = await openai(server, client).complete(request, observer=observer)
    assert response.finish == "halted"
    assert response.text == "w0 w1 w2 " and len(seen) == 3
    assert len(server.received) == 1  # a halt is not a failure: no retry


@pytest.mark.anyio
async def test_stream_without_done_is_truncated_and_retried_with_a_restart(server, client, clock):
    cut = OPENAI_STREAM[:3]  # ends cleanly, but before [DONE]
    server.queue(reply_sse(cut), reply_sse(OPENAI_STREAM))
    seen: list[Delta] = []
    request = ModelRequest("gpt-test", (Message("user", "?"),), max_output=20, stream=True)
    response = await openai(server, client, clock).complete(request, observer=lambda d: seen.append(d) or True)
    assert response.text == "Hello" and len(server.received) == 2 and clock.slept == [0.0]
    assert [(d.text, d.restart) for d in seen] == [("Hel", False), ("lo", False), ("", True), ("Hel", False), ("lo", False)]


@pytest.mark.anyio
@pytest.mark.parametrize("drop", [False, True], ids=["ended", "dropped"])
async def test_truncated_stream_error(server, client, drop):
    server.queue(reply_sse(OPENAI_STREAM[:2], drop=drop))
    provider = openai(server, client, timeout_s=5)
    provider.retry = RetryPolicy(max_attempts=1)
    with pytest.raises(TruncatedStream) as caught:
        await provider.complete(ModelRequest("gpt-test", (Message("user", "?"),), max_output=5, stream=True))
    assert caught.value.retryable and "gpt-test" in str(caught.value) and "[DONE]" in str(caught.value)


@pytest.mark.anyio
async def test_error_inside_an_openai_stream(server, client):
    server.queue(reply_sse([openai_chunk({"content": "a"}), data({"error": {"message": "model crashed", "type": "server_error"}})]))
    provider = openai(server, client)
    provider.retry = RetryPolicy(max_attempts=1)
    with pytest.raises(ServerError, match="model crashed"):
        await provider.complete(ModelRequest("gpt-test", (Message("user", "?"),), max_output=5, stream=True))


@pytest.mark.anyio
async def test_stalled_stream_times_out(server, client):
    server.queue(reply_sse(OPENAI_STREAM[:2], hang=server.release))
    provider = openai(server, client, timeout_s=0.3)
    provider.retry = RetryPolicy(max_attempts=1)
    with pytest.raises(ProviderTimeout, match="stream stalled"):
        await provider.complete(ModelRequest("gpt-test", (Message("user", "?"),), max_output=5, stream=True))


# ---------------------------------------------------------------------------- Anthropic wire


@pytest.mark.anyio
async def test_anthropic_request_alternates_pairs_ids_and_never_sends_empty_content(server, client):
    server.queue(reply_json(anthropic_message([{"type": "text", "text": "ok"}])))
    calls = (CALL, ToolCall("call_2", "get_weather", {"city": "Rome"}, ""))
    messages = (
        Message("system", "You are terse.", cache=True),
        Message("system", "Answer in English."),
        Message("user", "Weather in Oslo and Rome?", cache=True),
        Message("user", ""),  # empty: dropped
        Message("assistant", "", tool_calls=calls),  # only tool calls: only tool_use blocks
        Message("tool", '{"temp": 7}', tool_call_id="call_1", tool_name="get_weather"),
        Message("tool", "city not found", tool_call_id="call_2", tool_name="get_weather", is_error=True),
        Message("user", "Be brief."),
        Message("assistant", "Noted. "),
        Message("assistant", "Oslo is"),
    )
    request = ModelRequest("claude-test", messages, max_output=64, tools=(WEATHER,), temperature=0.5, metadata={"run": "r9"})
    await anthropic(server, client).complete(request)
    sent = server.received[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers and sent.headers["x-vox-run"] == "r9"
    assert sent.body == {
        "model": "claude-test",
        "max_tokens": 64,
        "system": [
            {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Answer in English."},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo and Rome?", "cache_control": {"type": "ephemeral"}}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": '{"temp": 7}'},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "city not found", "is_error": True},
                    {"type": "text", "text": "Be brief."},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "Noted. "}, {"type": "text", "text": "Oslo is"}]},
        ],
        "temperature": 0.5,
        "tools": [{"name": "get_weather", "description": "Weather for a city.", "input_schema": WEATHER.parameters}],
    }
    roles = [turn["role"] for turn in sent.body["messages"]]
    assert all(a != b for a, b in zip(roles, roles[1:]))


@pytest.mark.anyio
async def test_anthropic_keeps_at_most_four_cache_breakpoints(server, client):
    server.queue(reply_json(anthropic_message([{"type": "text", "text": "ok"}])))
    messages = tuple(Message("user" if i % 2 == 0 else "assistant", f"turn {i}", cache=True) for i in range(7))
    await anthropic(server, client).complete(ModelRequest("claude-test", messages, max_output=5))
    marked = [t["content"][0]["text"] for t in server.last["messages"] if "cache_control" in t["content"][-1]]
    assert marked == ["turn 0", "turn 4", "turn 5", "turn 6"]


@pytest.mark.anyio
async def test_anthropic_tool_call_round_trip(server, client):
    use = {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Rome"}}
    server.queue(reply_json(anthropic_message([{"type": "text", "text": "Checking."}, use], stop="tool_use")))
    server.queue(reply_json(anthropic_message([{"type": "text", "text": "Warm."}])))
    provider = anthropic(server, client)
    first = ModelRequest("claude-test", (Message("user", "Rome?"),), max_output=20, tools=(WEATHER,))
    reply = await provider.complete(first)
    assert reply.finish == "tool_calls" and reply.text == "Checking."
    assert reply.tool_calls == (ToolCall("toolu_01A", "get_weather", {"city": "Rome"}, '{"city": "Rome"}'),)
    history = first.messages + (
        Message("assistant", reply.text, tool_calls=reply.tool_calls),
        Message("tool", '{"temp": 25}', tool_call_id=reply.tool_calls[0].id),
    )
    await provider.complete(ModelRequest("claude-test", history, max_output=20, tools=(WEATHER,)))
    assistant, result = server.last["messages"][1:]
    assert assistant == {"role": "assistant", "content": [{"type": "text", "text": "Checking."}, use]}
    assert result == {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": '{"temp": 25}'}]}


@pytest.mark.anyio
@pytest.mark.parametrize("with_tools", [False, True])
async def test_anthropic_structured_output_through_vox_output(server, client, with_tools):
    answer = {"type": "tool_use", "id": "toolu_out", "name": "vox_output", "input": {"temp": 7}}
    server.queue(reply_json(anthropic_message([answer], stop="tool_use")))
    request = ModelRequest(
        "claude-test",
        (Message("user", "Temp?"),),
        max_output=20,
        tools=(WEATHER,) if with_tools else (),
        output_schema=ANSWER,
        output_name="Forecast",
    )
    response = await anthropic(server, client).complete(request)
    tools = server.last["tools"]
    assert tools[-1]["name"] == "vox_output" and tools[-1]["input_schema"] == ANSWER
    expected_choice = {"type": "any"} if with_tools else {"type": "tool", "name": "vox_output"}
    assert server.last["tool_choice"] == expected_choice
    assert json.loads(response.text) == {"temp": 7}
    assert response.tool_calls == () and response.finish == "stop"


@pytest.mark.anyio
async def test_anthropic_usage_counts_cache_reads_and_writes_as_input(server, client):
    server.queue(reply_json(anthropic_message([{"type": "text", "text": "ok"}], stop="max_tokens")))
    response = await anthropic(server, client).complete(ModelRequest("claude-test", (Message("user", "?"),), max_output=5))
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, usage.cache_creation_tokens) == (110, 7, 80, 20)
    assert response.finish == "length" and response.provider_id == "msg_1"


# -------------------------------------------------------------------------- Anthropic streams

ANTHROPIC_STREAM = [
    event("message_start", {"message": {"id": "msg_s", "model": "claude-test", "usage": {"input_tokens": 5, "cache_read_input_tokens": 50, "output_tokens": 1}}}),
    event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    event("ping", {}),
    event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Let me "}}),
    event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "check."}}),
    event("content_block_stop", {"index": 0}),
    event("content_block_start", {"index": 1, "content_block": {"type": "tool_use", "id": "toolu_s", "name": "get_weather", "input": {}}}),
    event("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city"'}}),
    event("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": ': "Oslo"}'}}),
    event("content_block_stop", {"index": 1}),
    event("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}}),
    event("message_stop", {}),
]


@pytest.mark.anyio
async def test_anthropic_stream_assembles_text_tools_and_usage(server, client):
    server.queue(reply_sse(ANTHROPIC_STREAM))
    seen: list[str] = []
    request = ModelRequest("claude-test", (Message("user", "?"),), max_output=20, tools=(WEATHER,), stream=True)
    response = await anthropic(server, client).complete(request, observer=lambda d: seen.append(d.text) or True)
    assert server.last["stream"] is True
    assert seen == ["Let me ", "check."] and response.text == "Let me check."
    assert response.tool_calls == (ToolCall("toolu_s", "get_weather", {"city": "Oslo"}, '{"city": "Oslo"}'),)
    assert response.finish == "tool_calls" and response.provider_id == "msg_s"
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.cached_input_tokens) == (55, 12, 50)


@pytest.mark.anyio
async def test_anthropic_streamed_structured_output(server, client):
    stream = [
        ANTHROPIC_STREAM[0],
        event("content_block_start", {"index": 0, "content_block": {"type": "tool_use", "id": "toolu_o", "name": "vox_output", "input": {}}}),
        event("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"temp": '}}),
        event("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": "7}"}}),
        event("content_block_stop", {"index": 0}),
        event("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 6}}),
        event("message_stop", {}),
    ]
    server.queue(reply_sse(stream))
    seen: list[str] = []
    request = ModelRequest("claude-test", (Message("user", "?"),), max_output=20, output_schema=ANSWER, stream=True)
    response = await anthropic(server, client).complete(request, observer=lambda d: seen.append(d.text) or True)
    assert "".join(seen) == '{"temp": 7}' and json.loads(response.text) == {"temp": 7}
    assert response.tool_calls == () and response.finish == "stop"


@pytest.mark.anyio
async def test_anthropic_stream_halts_and_truncates(server, client):
    server.queue(reply_sse(ANTHROPIC_STREAM))
    request = ModelRequest("claude-test", (Message("user", "?"),), max_output=20, stream=True)
    halted = await anthropic(server, client).complete(request, observer=lambda d: False)
    assert (halted.finish, halted.text, halted.usage.input_tokens) == ("halted", "Let me ", 55)

    server.queue(reply_sse(ANTHROPIC_STREAM[:-1]))  # no message_stop
    provider = anthropic(server, client)
    provider.retry = RetryPolicy(max_attempts=1)
    with pytest.raises(TruncatedStream, match="message_stop"):
        await provider.complete(request)


@pytest.mark.anyio
async def test_anthropic_stream_error_event_is_typed_and_retried(server, client, clock):
    overloaded = event("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
    server.queue(reply_sse([ANTHROPIC_STREAM[0], overloaded]), reply_sse(ANTHROPIC_STREAM))
    request = ModelRequest("claude-test", (Message("user", "?"),), max_output=20, stream=True)
    response = await anthropic(server, client, clock).complete(request)
    assert response.text == "Let me check." and len(server.received) == 2

    server.queue(reply_sse([ANTHROPIC_STREAM[0], overloaded]))
    provider = anthropic(server, client)
    provider.retry = RetryPolicy(max_attempts=1)
    with pytest.raises(ServerError, match="Overloaded") as caught:
        await provider.complete(request)
    assert caught.value.status == 529


# ------------------------------------------------------------------------------------ errors


def _error_body(message: str) -> dict[str, Any]:
    # providers echo (part of) the key back; it must not reach our messages
    return {"error": {"message": f"{message} (key {KEY}, Bearer {KEY})", "type": "some_error"}}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [
        (400, BadRequest, False),
        (401, AuthError, False),
        (403, AuthError, False),
        (404, NotFound, False),
        (422, BadRequest, False),
        (429, RateLimited, True),
        (500, ServerError, True),
        (503, ServerError, True),
        (529, ServerError, True),
    ],
)
@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_status_codes_become_typed_errors_without_the_key(server, client, status, error, retryable, protocol):
    server.queue(reply_json(_error_body("it went wrong"), status=status))
    provider = (openai if protocol == "openai" else anthropic)(server, client)
    provider.retry = RetryPolicy(max_attempts=1)
    with pytest.raises(error) as caught:
        await provider.complete(ModelRequest("model-x", (Message("user", "?"),), max_output=5))
    message = str(caught.value)
    assert KEY not in message and KEY[:12] not in message and KEY not in repr(caught.value)
    assert message.startswith(f"{protocol}: ") and "'model-x'" in message and "it went wrong" in message
    assert caught.value.retryable is retryable and caught.value.status == status
    if status == 404:
        assert server.base_url in message and "/v1" in message


@pytest.mark.anyio
async def test_malformed_bodies(server, client):
    provider = openai(server, client)
    request = ModelRequest("gpt-test", (Message("user", "?"),), max_output=5)
    server.queue(reply_raw(b"<html>502 gateway</html", content_type="text/html"))
    with pytest.raises(MalformedResponse, match="not JSON"):
        await provider.complete(request)
    server.queue(reply_json({"id": "x", "choices": []}))
    with pytest.raises(MalformedResponse, match="no choices"):
        await provider.complete(request)
    server.queue(reply_json({"id": "x", "content": "nope"}))
    with pytest.raises(MalformedResponse, match="no content"):
        await anthropic(server, client).complete(ModelRequest("claude-test", (Message("user", "?"),), max_output=5))
    server.queue(reply_sse(["data: {not json\n\n"]))
    with pytest.raises(MalformedResponse, match="not JSON"):
        await provider.complete(ModelRequest("gpt-test", (Message("user", "?"),), max_output=5, stream=True))
    assert len(server.received) == 4  # malformed bodies are not retried


@pytest.mark.anyio
async def test_timeout_and_connection_failure(server, client):
    server.queue(reply_never(server))
    provider = openai(server, client, timeout_s=0.3)
    provider.retry = RetryPolicy(max_attempts=1)
    with pytest.raises(ProviderTimeout, match="no answer") as caught:
        await provider.complete(ModelRequest("gpt-test", (Message("user", "?"),), max_output=5))
    assert caught.value.retryable

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = make_provider("anthropic", f"http://127.0.0.1:{port}", KEY, client, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(ConnectionFailed, match="cannot reach") as caught:
        await dead.complete(ModelRequest("claude-test", (Message("user", "?"),), max_output=5))
    assert KEY not in str(caught.value) and caught.value.retryable


# ------------------------------------------------------------------------------------ retries


@pytest.mark.anyio
async def test_retry_after_is_honoured(server, client, clock):
    server.queue(
        reply_json(_error_body("slow down"), status=429, headers={"retry-after": "3"}),
        reply_json(_error_body("slow down"), status=429, headers={"retry-after-ms": "250", "retry-after": "9"}),
        reply_json(chat_completion({"content": "done"})),
    )
    response = await openai(server, client, clock).complete(ModelRequest("gpt-test", (Message("user", "?"),), max_output=5))
    assert response.text == "done" and clock.slept == [3.0, 0.25]


@pytest.mark.anyio
async def test_backoff_without_retry_after_and_giving_up(server, client, clock):
    server.queue(*(reply_json(_error_body("boom"), status=503) for _ in range(4)))
    provider = openai(server, client)
    provider.retry = RetryPolicy(sleep=clock.sleep, random=lambda: 1.0)  # the top of each jitter window
    with pytest.raises(ServerError, match="boom") as caught:
        await provider.complete(ModelRequest("gpt-test", (Message("user", "?"),), max_output=5))
    assert len(server.received) == 4 and clock.slept == [0.5, 1.0, 2.0] and caught.value.attempts == 4


@pytest.mark.anyio
@pytest.mark.parametrize("status", [400, 401, 404])
async def test_client_errors_are_not_retried(server, client, clock, status):
    server.queue(reply_json(_error_body("no"), status=status), reply_json(chat_completion({"content": "unreached"})))
    with pytest.raises(ProviderError):
        await openai(server, client, clock).complete(ModelRequest("gpt-test", (Message("user", "?"),), max_output=5))
    assert len(server.received) == 1 and clock.slept == []


def test_retry_policy_jitter_and_long_retry_after():
    policy = RetryPolicy(random=lambda: 0.5, base_s=1.0, cap_s=4.0)
    backoff = [policy.delay(n, ServerError("x")) for n in (1, 2, 3)]
    assert backoff == [0.5, 1.0, 2.0]
    assert RetryPolicy(random=lambda: 1.0, base_s=1.0, cap_s=4.0, max_attempts=9).delay(6, ServerError("x")) == 4.0
    assert policy.delay(1, RateLimited("x", retry_after=2.0)) == 2.5  # jitter only above the floor
    assert policy.delay(1, RateLimited("x", retry_after=600.0)) is None  # too long: give up, route elsewhere
    assert policy.delay(1, BadRequest("x")) is None


def test_retry_after_headers():
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert parse_retry_after({"retry-after": "-1"}) is None
    assert parse_retry_after({}) is None


def test_sse_parsing_rules():
    events = parse_lines("event: a\ndata: 1\ndata: 2\n\n:comment\n\ndata:x\n\nevent: cut\ndata: 3")
    assert [(e.event, e.data) for e in events] == [("a", "1\n2"), ("message", "x")]


def test_unknown_protocol_and_repr_without_key():
    with pytest.raises(ValueError, match="unknown provider protocol 'gemini'"):
        make_provider("gemini", "http://x", KEY, None)  # type: ignore[arg-type]
    provider = make_provider("openai", "http://x/v1", KEY, None)  # type: ignore[arg-type]
    assert KEY not in repr(provider)
