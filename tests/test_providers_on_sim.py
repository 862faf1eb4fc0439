"""Our providers against the real simulator: every injected fault becomes the right outcome.

A retryable fault (429 with retry-after, 5xx, a timeout, a truncated stream) is retried and the
call succeeds; a fault that retrying cannot fix (401, 404, a malformed body) is a typed error.
"""

from __future__ import annotations

import pytest

from vox.runtime.providers import (
    AuthError,
    MalformedResponse,
    NotFound,
    RetryPolicy,
    make_http_client,
    make_provider,
)
from vox.runtime.providers.messages import Message, ModelRequest, ToolSpec
from vox.runtime.sim import running_simulator

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
          "additionalProperties": False}


@pytest.fixture
def anyio_backend():
    return "asyncio"


def request(stream: bool = False, **more) -> ModelRequest:
    return ModelRequest(model="sim-model", messages=(Message("user", "Say hello."),), max_output=64,
                        output_schema=SCHEMA, stream=stream, metadata={"run": "faults", "agent": "a"}, **more)


async def with_fault(protocol: str, fault: dict, stream: bool = False):
    async with running_simulator(seed=1) as url, make_http_client() as client:
        await client.post(f"{url}/_sim/faults", json={"faults": [fault]})
        base = url if protocol == "anthropic" else url + "/v1"
        provider = make_provider(protocol, base, "sim-key", client, timeout_s=2.0,
                                 retry=RetryPolicy(max_attempts=3, base_s=0.01, cap_s=0.05))
        return await provider.complete(request(stream))


PROTOCOLS = ["openai_compatible", "anthropic"]


@pytest.mark.anyio
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("fault", [
    {"kind": "status", "status": 429, "retry_after": 0.05, "count": 1},
    {"kind": "status", "status": 503, "count": 2},
    {"kind": "timeout", "delay_s": 5, "count": 1},
    {"kind": "truncate", "count": 1},
], ids=["429", "503", "timeout", "truncate"])
async def test_retryable_faults_are_retried(protocol, stream, fault):
    response = await with_fault(protocol, fault, stream)
    assert response.text and '"answer"' in response.text
    assert response.usage.output_tokens > 0


@pytest.mark.anyio
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault, error", [
    ({"kind": "status", "status": 401, "count": 1}, AuthError),
    ({"kind": "status", "status": 404, "count": 1}, NotFound),
    ({"kind": "malformed", "count": 5}, MalformedResponse),
], ids=["401", "404", "malformed"])
async def test_faults_that_retrying_cannot_fix_are_typed_errors(protocol, fault, error):
    with pytest.raises(error) as caught:
        await with_fault(protocol, fault)
    assert "sim-key" not in str(caught.value)


@pytest.mark.anyio
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_scripted_tool_call_round_trip(protocol):
    tools = (ToolSpec("lookup", "look an order up", {"type": "object", "properties": {"id": {"type": "string"}},
                                                     "required": ["id"], "additionalProperties": False}),)
    async with running_simulator(seed=2) as url, make_http_client() as client:
        script = {"scripts": {"a": [{"call": {"tool": "lookup", "args": {"id": "42"}}}, {"reply": {"answer": "done"}}]}}
        await client.post(f"{url}/_sim/runs/trip", json=script)
        base = url if protocol == "anthropic" else url + "/v1"
        provider = make_provider(protocol, base, "sim-key", client)
        meta = {"run": "trip", "agent": "a"}
        first = await provider.complete(ModelRequest("m", (Message("user", "refund 42"),), 64, tools=tools,
                                                     output_schema=SCHEMA, metadata=meta))
        assert [(c.name, c.arguments) for c in first.tool_calls] == [("lookup", {"id": "42"})]
        call = first.tool_calls[0]
        messages = (Message("user", "refund 42"), Message("assistant", first.text, first.tool_calls),
                    Message("tool", '{"result": {"id": "42"}}', tool_call_id=call.id, tool_name="lookup"))
        second = await provider.complete(ModelRequest("m", messages, 64, tools=tools, output_schema=SCHEMA,
                                                      metadata=meta))
    assert second.text == '{"answer": "done"}' or second.text.replace(" ", "") == '{"answer":"done"}'
    assert not second.tool_calls
