"""The simulator, judged by code we did not write: the official `openai` and `anthropic` SDKs.

Every response the SDKs receive is also validated strictly against the SDKs' own pydantic
models (the SDKs themselves parse leniently), so a missing or mistyped field fails here.
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys

import anthropic
import httpx
import openai
import pydantic
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from hypothesis import given, strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from vox.runtime.sim import running_simulator, start_process
from vox.runtime.sim.generate import MISSING_RECEIPT, generate_value, string_matching
from vox.runtime.sim.schema import is_valid, strict_schema_problems, validate

MONEY = r"^-?[0-9]+(\.[0-9]{1,6})?$"

REFUND_SCHEMA = {
    "type": "object",
    "properties": {
        "reply": {"type": "string"},
        "refund": {"anyOf": [{"type": "string", "description": "the id of a receipt for a call of tool "
                                                               "`issue_refund`, as that call returned it"},
                             {"type": "null"}]},
        "amount": {"type": "string", "pattern": MONEY},
        "intent": {"type": "string", "enum": ["refund", "question", "other"]},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["reply", "refund", "amount", "intent", "tags"],
    "additionalProperties": False,
}
REFUND_PARAMS = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "amount": {"type": "string", "pattern": MONEY}},
    "required": ["order_id", "amount"],
    "additionalProperties": False,
}


@pytest.fixture
def anyio_backend():
    return "asyncio"


_open_clients: list = []


@pytest.fixture
async def sim():
    async with running_simulator(seed=7) as url:
        async with httpx.AsyncClient(base_url=url) as control:
            try:
                yield url, control
            finally:
                while _open_clients:
                    await _open_clients.pop().close()


def oai(url: str, **headers: str) -> openai.AsyncOpenAI:
    """An OpenAI client on the simulator (closed when the test's simulator stops)."""
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="sim", max_retries=0, timeout=5.0,
                                default_headers=headers)
    _open_clients.append(client)
    return client


def ant(url: str, **headers: str) -> anthropic.AsyncAnthropic:
    """An Anthropic client on the simulator (closed when the test's simulator stops)."""
    client = anthropic.AsyncAnthropic(base_url=url, api_key="sim", max_retries=0, timeout=5.0,
                                      default_headers=headers)
    _open_clients.append(client)
    return client


async def stream_text(raw) -> str:
    """The body of a raw streamed response, read to the end."""
    return (await raw.http_response.aread()).decode()


def vox(run: str, agent: str, step: str = "s0") -> dict[str, str]:
    return {"x-vox-run": run, "x-vox-agent": agent, "x-vox-step": step}


def strict(model: type[pydantic.BaseModel], data: dict) -> pydantic.BaseModel:
    """Validate ``data`` against an SDK model: a missing or mistyped field raises."""
    return model.model_validate(data)


def sse_data(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ") and line != "data: [DONE]"]


async def install(control: httpx.AsyncClient, run: str, scripts: dict, seed: int | None = None) -> None:
    body = {"scripts": scripts} if seed is None else {"scripts": scripts, "seed": seed}
    response = await control.post(f"/_sim/runs/{run}", json=body)
    assert response.status_code == 200, response.text


OPENAI_TOOLS = [{"type": "function", "function": {"name": "issue_refund", "description": "refund an order",
                                                   "parameters": REFUND_PARAMS, "strict": True}}]
OPENAI_FORMAT = {"type": "json_schema", "json_schema": {"name": "answer", "schema": REFUND_SCHEMA, "strict": True}}
ANTHROPIC_TOOLS = [
    {"name": "issue_refund", "description": "refund an order", "input_schema": REFUND_PARAMS},
    {"name": "vox_output", "description": "the final answer", "input_schema": REFUND_SCHEMA},
]
SCRIPT = [
    {"call": {"tool": "issue_refund", "args": {"order_id": "42", "amount": "19.99"}}},
    {"reply": {"reply": "Your refund is on its way.", "refund": {"$receipt": "issue_refund"}, "amount": "19.99",
               "intent": "refund", "tags": []}},
]


# --- OpenAI ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_openai_tool_call_round_trip_with_receipt(sim):
    url, control = sim
    await install(control, "r1", {"resolver": SCRIPT})
    client = oai(url, **vox("r1", "resolver"))
    messages = [{"role": "system", "content": "You resolve tickets."},
                {"role": "user", "content": "Refund order 42 please"}]
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, tools=OPENAI_TOOLS, response_format=OPENAI_FORMAT)
    strict(ChatCompletion, raw.http_response.json())
    first = raw.parse()
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_") and call.function.name == "issue_refund"
    assert json.loads(call.function.arguments) == {"order_id": "42", "amount": "19.99"}

    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id,
                  "content": json.dumps({"result": "rf_001", "receipt": "rcpt_abc123"})}]
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, tools=OPENAI_TOOLS, response_format=OPENAI_FORMAT)
    strict(ChatCompletion, raw.http_response.json())
    second = raw.parse()
    answer = json.loads(second.choices[0].message.content)
    assert second.choices[0].finish_reason == "stop"
    assert answer["refund"] == "rcpt_abc123"
    assert validate(answer, REFUND_SCHEMA) == []
    state = (await control.get("/_sim/runs/r1")).json()
    assert state["agents"]["resolver"] == {"calls": 2, "scripted": 2, "remaining": 0}


@pytest.mark.anyio
async def test_openai_structured_output_is_schema_valid_and_sdk_parses_it(sim):
    url, _ = sim

    class Triage(pydantic.BaseModel):
        intent: str
        order_id: str | None
        confidence: float

    client = oai(url, **vox("r2", "triager"))
    parsed = await client.chat.completions.parse(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Refund order 42"}], response_format=Triage)
    assert isinstance(parsed.choices[0].message.parsed, Triage)

    response = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Refund order 42"}], response_format=OPENAI_FORMAT)
    value = json.loads(response.choices[0].message.content)
    assert validate(value, REFUND_SCHEMA) == []
    assert value["refund"] in (None, MISSING_RECEIPT)  # no tool was called: no real receipt to cite


@pytest.mark.anyio
async def test_openai_streamed_reply_with_usage(sim):
    url, control = sim
    await install(control, "r3", {"writer": [{"text": "Hello there, your refund is on its way."}]})
    client = oai(url, **vox("r3", "writer"))
    request = dict(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}], stream=True,
                   stream_options={"include_usage": True})
    raw = await client.chat.completions.with_raw_response.create(**request)
    chunks = sse_data(await stream_text(raw))
    for chunk in chunks:
        strict(ChatCompletionChunk, chunk)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == \
        "Hello there, your refund is on its way."
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert (await raw.http_response.aread()).endswith(b"data: [DONE]\n\n")

    await install(control, "r3", {"writer": [{"text": "Streaming through the helper."}]})
    async with client.chat.completions.stream(**{k: v for k, v in request.items() if k != "stream"}) as stream:
        pieces = [event.delta async for event in stream if event.type == "content.delta"]
        final = await stream.get_final_completion()
    assert "".join(pieces) == final.choices[0].message.content == "Streaming through the helper."
    assert final.usage.prompt_tokens > 0


@pytest.mark.anyio
async def test_openai_streamed_tool_call(sim):
    url, control = sim
    await install(control, "r4", {"resolver": SCRIPT[:1]})
    client = oai(url, **vox("r4", "resolver"))
    raw = await client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "refund"}], tools=OPENAI_TOOLS, stream=True)
    chunks = sse_data(await stream_text(raw))
    for chunk in chunks:
        strict(ChatCompletionChunk, chunk)
    args = "".join(c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                   for c in chunks if c["choices"] and c["choices"][0]["delta"].get("tool_calls"))
    assert json.loads(args) == {"order_id": "42", "amount": "19.99"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.anyio
async def test_openai_logprobs_n_and_usage(sim):
    url, _ = sim
    client = oai(url)
    raw = await client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "Tell me something"}], n=3, logprobs=True,
        top_logprobs=3, temperature=0.7)
    strict(ChatCompletion, raw.http_response.json())
    response = raw.parse()
    assert [c.index for c in response.choices] == [0, 1, 2]
    assert len({c.message.content for c in response.choices}) > 1  # temperature > 0: samples differ
    for choice in response.choices:
        tokens = choice.logprobs.content
        assert "".join(t.token for t in tokens) == choice.message.content
        for token in tokens:
            assert token.logprob <= 0 and len(token.top_logprobs) == 3
            assert token.top_logprobs[0].token == token.token
            assert sum(2.718281828 ** alt.logprob for alt in token.top_logprobs) <= 1.0001
    usage = response.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens >= sum(len(c.logprobs.content) for c in response.choices)
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details.reasoning_tokens == 0

    greedy = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Again"}], n=2, temperature=0)
    assert greedy.choices[0].message.content == greedy.choices[1].message.content


@pytest.mark.anyio
async def test_openai_cached_tokens_on_repeated_prefix(sim):
    url, _ = sim
    client = oai(url, **vox("r5", "a"))
    system = {"role": "system", "content": "You are a careful assistant. " * 40}
    first = await client.chat.completions.create(model="m", messages=[system, {"role": "user", "content": "one"}])
    second = await client.chat.completions.create(model="m", messages=[system, {"role": "user", "content": "two"}])
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert 200 < cached < second.usage.prompt_tokens


@pytest.mark.anyio
async def test_openai_max_tokens_truncates_with_length(sim):
    url, control = sim
    await install(control, "r6", {"a": [{"text": "one two three four five six seven eight"}]})
    response = await oai(url, **vox("r6", "a")).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "count"}], max_completion_tokens=3)
    assert response.choices[0].finish_reason == "length"
    assert response.choices[0].message.content == "one two three"
    assert response.usage.completion_tokens == 3


@pytest.mark.anyio
async def test_openai_rejects_what_the_api_rejects(sim):
    url, _ = sim
    client = oai(url)
    with pytest.raises(openai.BadRequestError, match="must be a response to a preceeding message"):
        await client.chat.completions.create(model="m", messages=[
            {"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "call_x", "content": "{}"}])
    loose = {"type": "json_schema", "json_schema": {"name": "x", "strict": True,
                                                    "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}
    with pytest.raises(openai.BadRequestError, match="additionalProperties"):
        await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                             response_format=loose)
    with pytest.raises(openai.BadRequestError, match="did not have response messages: call_1"):
        await client.chat.completions.create(model="m", messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                                                  "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "user", "content": "and?"}])


# --- Anthropic ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_anthropic_tool_use_round_trip_and_vox_output(sim):
    url, control = sim
    await install(control, "r7", {"resolver": SCRIPT})
    client = ant(url, **vox("r7", "resolver"))
    messages = [{"role": "user", "content": "Refund order 42 please"}]
    request = dict(model="claude-sim", max_tokens=1024, system="You resolve tickets.", tools=ANTHROPIC_TOOLS,
                   tool_choice={"type": "any"})
    raw = await client.messages.with_raw_response.create(messages=messages, **request)
    strict(Message, raw.http_response.json())
    first = await raw.parse()
    assert first.stop_reason == "tool_use"
    (use,) = first.content
    assert use.type == "tool_use" and use.id.startswith("toolu_") and use.name == "issue_refund"
    assert use.input == {"order_id": "42", "amount": "19.99"}

    messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                               "content": json.dumps({"result": "rf_001", "receipt": "rcpt_xyz"})}]}]
    raw = await client.messages.with_raw_response.create(messages=messages, **request)
    strict(Message, raw.http_response.json())
    final = await raw.parse()
    (output,) = final.content
    assert final.stop_reason == "tool_use" and output.name == "vox_output"
    assert output.input["refund"] == "rcpt_xyz" and validate(output.input, REFUND_SCHEMA) == []


@pytest.mark.anyio
async def test_anthropic_structured_output_unscripted_is_schema_valid(sim):
    url, _ = sim
    client = ant(url, **vox("r8", "triager"))
    message = await client.messages.create(model="c", max_tokens=1024, tools=ANTHROPIC_TOOLS[1:],
                                           tool_choice={"type": "tool", "name": "vox_output"},
                                           messages=[{"role": "user", "content": "triage this"}])
    (output,) = message.content
    assert output.name == "vox_output" and validate(output.input, REFUND_SCHEMA) == []


@pytest.mark.anyio
async def test_anthropic_streams_text_and_tool_input(sim):
    url, control = sim
    await install(control, "r9", {"writer": [{"text": "A streamed hello."}, SCRIPT[1]]})
    client = ant(url, **vox("r9", "writer"))
    raw = await client.messages.with_raw_response.create(
        model="c", max_tokens=100, messages=[{"role": "user", "content": "hi"}], stream=True)
    adapter = pydantic.TypeAdapter(RawMessageStreamEvent)
    events = sse_data(await stream_text(raw))
    for event in events:
        if event["type"] != "ping":  # pings are allowed, and not in the SDK's union
            adapter.validate_python(event)
    assert [e["type"] for e in events][:2] == ["message_start", "ping"] and events[-1]["type"] == "message_stop"

    await install(control, "r9", {"writer": [{"text": "A streamed hello."}, SCRIPT[1]]})
    async with client.messages.stream(model="c", max_tokens=100,
                                      messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        message = await stream.get_final_message()
    assert text == message.content[0].text == "A streamed hello."
    assert message.usage.output_tokens > 0

    async with client.messages.stream(model="c", max_tokens=500, tools=ANTHROPIC_TOOLS,
                                      messages=[{"role": "user", "content": "answer"}]) as stream:
        message = await stream.get_final_message()
    assert message.content[0].name == "vox_output"
    assert message.content[0].input["amount"] == "19.99"


@pytest.mark.anyio
async def test_anthropic_prompt_cache_reads_and_writes(sim):
    url, _ = sim
    client = ant(url, **vox("r10", "a"))
    system = [{"type": "text", "text": "Policy text. " * 200, "cache_control": {"type": "ephemeral"}}]
    first = await client.messages.create(model="c", max_tokens=50, system=system,
                                         messages=[{"role": "user", "content": "one"}])
    second = await client.messages.create(model="c", max_tokens=50, system=system,
                                          messages=[{"role": "user", "content": "two"}])
    assert first.usage.cache_creation_input_tokens > 200 and first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == first.usage.input_tokens  # the uncached rest
    counted = await client.messages.count_tokens(model="c", system=system, messages=[{"role": "user", "content": "one"}])
    assert counted.input_tokens == first.usage.input_tokens + first.usage.cache_creation_input_tokens


@pytest.mark.anyio
@pytest.mark.parametrize("messages, message", [
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "roles must alternate"),
    ([{"role": "assistant", "content": "a"}], "first message must use the \"user\" role"),
    ([{"role": "user", "content": [{"type": "text", "text": ""}]}], "text content blocks must be non-empty"),
    ([{"role": "user", "content": ""}], "must have non-empty content"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]}],
     "unexpected `tool_use_id`"),
    ([{"role": "user", "content": "a"},
      {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
      {"role": "user", "content": "no result"}], "without `tool_result` blocks immediately after"),
])
async def test_anthropic_validation_errors(sim, messages, message):
    url, _ = sim
    with pytest.raises(anthropic.BadRequestError, match=re.escape(message)) as caught:
        await ant(url).messages.create(model="c", max_tokens=10, messages=messages)
    assert caught.value.body["error"]["type"] == "invalid_request_error"


@pytest.mark.anyio
async def test_anthropic_header_and_tool_choice_checks(sim):
    url, control = sim
    response = await control.post("/v1/messages", headers={"x-api-key": "k"},
                                  json={"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "a"}]})
    assert response.status_code == 400 and "anthropic-version" in response.text
    with pytest.raises(anthropic.BadRequestError, match="was not found in tools"):
        await ant(url).messages.create(model="c", max_tokens=10, tools=ANTHROPIC_TOOLS[:1],
                                       tool_choice={"type": "tool", "name": "nope"},
                                       messages=[{"role": "user", "content": "a"}])


# --- faults ------------------------------------------------------------------------------------


def openai_call(url):
    return oai(url, **vox("f", "x")).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


def anthropic_call(url):
    return ant(url, **vox("f", "x")).messages.create(model="c", max_tokens=20,
                                                     messages=[{"role": "user", "content": "hi"}])


@pytest.mark.anyio
@pytest.mark.parametrize("protocol, call, status, error", [
    ("openai", openai_call, 429, openai.RateLimitError),
    ("openai", openai_call, 500, openai.InternalServerError),
    ("anthropic", anthropic_call, 429, anthropic.RateLimitError),
    ("anthropic", anthropic_call, 529, anthropic.OverloadedError),
    ("anthropic", anthropic_call, 500, anthropic.InternalServerError),
])
async def test_status_faults(sim, protocol, call, status, error):
    url, control = sim
    await control.post("/_sim/faults", json={"faults": [
        {"kind": "status", "status": status, "retry_after": 1.5, "count": 2, "protocol": protocol, "agent": "x"}]})
    for _ in range(2):
        with pytest.raises(error) as caught:
            await call(url)
        assert caught.value.status_code == status
        assert caught.value.response.headers["retry-after"] == "1.5"
    await call(url)  # the fault is spent
    stats = (await control.get("/_sim/stats")).json()
    assert stats["faults_injected"] == {f"status:{status}": 2}


@pytest.mark.anyio
@pytest.mark.parametrize("protocol, call", [("openai", openai_call), ("anthropic", anthropic_call)])
async def test_malformed_truncate_and_timeout_faults(sim, protocol, call):
    url, control = sim
    await install(control, "f", {"x": [{"text": "the only scripted turn"}]})
    await control.post("/_sim/faults", json={"faults": [{"kind": "malformed"}]})
    with pytest.raises(json.JSONDecodeError):
        await call(url)
    await control.post("/_sim/faults", json={"faults": [{"kind": "truncate"}]})
    connection_error = openai.APIConnectionError if protocol == "openai" else anthropic.APIConnectionError
    with pytest.raises(connection_error):
        await call(url)
    await control.post("/_sim/faults", json={"faults": [{"kind": "timeout", "delay_s": 30}]})
    client = oai(url, **vox("f", "x")) if protocol == "openai" else ant(url, **vox("f", "x"))
    client = client.with_options(timeout=0.2)
    timeout_error = openai.APITimeoutError if protocol == "openai" else anthropic.APITimeoutError
    with pytest.raises(timeout_error):
        if protocol == "openai":
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        else:
            await client.messages.create(model="c", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    # Failed attempts consume no turn: the retry gets the scripted answer.
    response = await call(url)
    text = response.choices[0].message.content if protocol == "openai" else response.content[0].text
    assert text == "the only scripted turn"


@pytest.mark.anyio
async def test_truncated_stream_never_finishes(sim):
    url, control = sim
    await control.post("/_sim/faults", json={"faults": [{"kind": "truncate", "protocol": "openai"}]})
    stream = await oai(url).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                                    stream=True)
    seen_finish = False
    with pytest.raises(Exception) as caught:
        async for chunk in stream:
            seen_finish = seen_finish or any(c.finish_reason for c in chunk.choices)
    assert not seen_finish
    assert "peer closed" in str(caught.value) or isinstance(caught.value, openai.APIConnectionError)


@pytest.mark.anyio
async def test_bad_control_requests_are_refused(sim):
    _, control = sim
    response = await control.post("/_sim/runs/r", json={"scripts": {"a": [{"reply": 1, "text": "x"}]}})
    assert response.status_code == 400 and "exactly one of" in response.json()["error"]
    response = await control.post("/_sim/faults", json={"faults": [{"kind": "explode"}]})
    assert response.status_code == 400 and "unknown fault kind" in response.json()["error"]
    assert (await control.delete("/_sim/runs/nope")).json() == {"dropped": False}


# --- determinism -------------------------------------------------------------------------------


async def _transcript(seed: int) -> list[bytes]:
    async with running_simulator(seed=seed) as url, httpx.AsyncClient(base_url=url) as http:
        await http.post("/_sim/runs/d", json={"scripts": {"resolver": SCRIPT}})
        out = []
        headers = {"authorization": "Bearer sim", **vox("d", "resolver")}
        for agent in ("resolver", "resolver", "resolver", "other"):
            body = {"model": "m", "messages": [{"role": "user", "content": "go"}], "tools": OPENAI_TOOLS,
                    "response_format": OPENAI_FORMAT, "logprobs": True, "top_logprobs": 2, "n": 2}
            response = await http.post("/v1/chat/completions", json=body, headers={**headers, "x-vox-agent": agent})
            out.append(response.content)
            response = await http.post("/v1/messages", headers={**headers, "x-api-key": "k", "anthropic-version": "2023-06-01"},
                                       json={"model": "c", "max_tokens": 300, "tools": ANTHROPIC_TOOLS, "stream": True,
                                             "messages": [{"role": "user", "content": "go"}]})
            out.append(response.content)
        return out


@pytest.mark.anyio
async def test_same_seed_same_bytes():
    first, again, other = await _transcript(3), await _transcript(3), await _transcript(4)
    assert first == again
    assert first != other


# --- values from schemas -------------------------------------------------------------------------

_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
_scalars = st.one_of(
    st.just({"type": "string"}), st.just({"type": "integer"}), st.just({"type": "number"}),
    st.just({"type": "boolean"}), st.just({"type": "string", "pattern": MONEY}),
    st.just({"type": "integer", "minimum": -5, "maximum": 5}),
    st.just({"type": "string", "pattern": r"^[A-Z]{3}-[0-9]{2,4}$"}),
    st.just({"type": "string", "pattern": r"^(ok|error|pending)$"}),
    st.just({"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}),
    st.lists(_names, min_size=1, max_size=5, unique=True).map(lambda e: {"type": "string", "enum": e}),
)


def _strict_schemas():
    def extend(children):
        obj = st.dictionaries(_names, children, min_size=0, max_size=4).map(
            lambda props: {"type": "object", "properties": props, "required": list(props),
                           "additionalProperties": False})
        array = children.map(lambda item: {"type": "array", "items": item})
        optional = children.map(lambda inner: {"anyOf": [inner, {"type": "null"}]})
        return st.one_of(obj, array, optional)

    tree = st.recursive(_scalars, extend, max_leaves=12)
    return st.dictionaries(_names, tree, min_size=1, max_size=5).map(
        lambda props: {"type": "object", "properties": props, "required": list(props), "additionalProperties": False})


@given(schema=_strict_schemas(), seed=st.integers(0, 2**32))
def test_generated_values_satisfy_strict_schemas(schema, seed):
    assert strict_schema_problems(schema) == []
    value = generate_value(schema, random.Random(seed))
    assert validate(value, schema) == []
    assert generate_value(schema, random.Random(seed)) == value  # deterministic per seed


@given(seed=st.integers(0, 2**32))
def test_money_pattern_strings(seed):
    text = string_matching(MONEY, random.Random(seed))
    assert re.fullmatch(MONEY, text)


def test_validator_catches_what_it_should():
    assert is_valid({"amount": "19.999999"}, {"type": "object", "properties": {"amount": {"pattern": MONEY}}})
    assert validate("19.1234567", {"type": "string", "pattern": MONEY})
    assert validate({"a": 1, "b": 2}, {"type": "object", "properties": {"a": {"type": "integer"}},
                                       "required": ["a"], "additionalProperties": False})
    assert validate(True, {"type": "integer"})
    assert validate([1, "x"], {"type": "array", "items": {"type": "integer"}})
    assert validate(None, {"anyOf": [{"type": "string"}]})


# --- the process ---------------------------------------------------------------------------------


def test_start_process_serves_and_stops_cleanly():
    url, process = start_process(seed=5)
    try:
        response = httpx.post(url + "/v1/chat/completions", headers={"authorization": "Bearer k"},
                              json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 200 and response.json()["object"] == "chat.completion"
        assert httpx.get(url + "/_sim/stats").json()["requests"] == {"openai": 1}
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        process.stdout.close()


def test_cli_module_shape():
    from vox.cli import sim as command

    assert command.NAME == "sim" and callable(command.configure) and callable(command.run)
    output = subprocess.run([sys.executable, "-c", "from vox.cli import sim; print(sim.HELP)"],
                            capture_output=True, text=True, check=True).stdout
    assert "simulator" in output
