"""The Anthropic Messages API, natively (not through an OpenAI-compatible shim).

POST ``{base_url}/v1/messages`` (base URLs do not include ``/v1``) with ``x-api-key`` and
``anthropic-version: 2023-06-01``. Quirks kept here:

* ``system`` messages leave the conversation for the top-level ``system`` blocks;
* turns strictly alternate user/assistant: consecutive same-role turns are merged, and tool
  results are ``tool_result`` blocks inside a ``user`` turn (first in it, as the API requires),
  with ``tool_use_id`` equal to the ``tool_use`` block's ``id``;
* no empty content: empty text blocks are dropped, a turn left with no blocks is dropped, an
  assistant turn with only tool calls holds only ``tool_use`` blocks;
* ``cache_control: ephemeral`` goes on the last block of each message marked ``cache``; the API
  takes at most 4 breakpoints, so the first and the last three are kept;
* structured output is a forced tool ``vox_output`` whose input is the answer;
* usage: ``input_tokens`` excludes cache reads and writes; :class:`Usage` counts them all.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from .base import HTTPProvider, StreamSink, output_schema_on_wire, parse_arguments, unwrap_output
from .errors import TruncatedStream
from .messages import Delta, Message, ModelRequest, ModelResponse, ToolCall, Usage
from .sse import iter_events

API_VERSION = "2023-06-01"
OUTPUT_TOOL = "vox_output"
MAX_CACHE_BREAKPOINTS = 4
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}
_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
EPHEMERAL = {"type": "ephemeral"}


def tool_id(call_id: str) -> str:
    """A tool-use id the API accepts (``^[a-zA-Z0-9_-]+$``); the same for a call and its result.

    >>> tool_id("call:7/a")
    'call_7_a'
    """
    return _ID_UNSAFE.sub("_", call_id) or "call"


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_id(message.tool_call_id or "")}
        if message.content:  # an empty result is sent without content, never as ""
            block["content"] = message.content
        if message.is_error:
            block["is_error"] = True
        return [block]
    blocks: list[dict[str, Any]] = []
    if message.content.strip():
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        blocks.append({"type": "tool_use", "id": tool_id(call.id), "name": call.name, "input": call.arguments})
    return blocks


def _cache_marks(messages: tuple[Message, ...]) -> set[int]:
    marked = [i for i, m in enumerate(messages) if m.cache]
    if len(marked) <= MAX_CACHE_BREAKPOINTS:
        return set(marked)
    # the first mark (usually the system prompt) is shared across runs; the last ones cover most
    return {marked[0], *marked[-(MAX_CACHE_BREAKPOINTS - 1):]}


def messages_to_wire(messages: tuple[Message, ...]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, alternating turns) for the Messages API.

    >>> system, turns = messages_to_wire((Message("system", "Be brief."), Message("user", "Hi"),
    ...                                   Message("user", "there")))
    >>> system
    [{'type': 'text', 'text': 'Be brief.'}]
    >>> turns
    [{'role': 'user', 'content': [{'type': 'text', 'text': 'Hi'}, {'type': 'text', 'text': 'there'}]}]
    """
    marks = _cache_marks(messages)
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if message.role == "system":
            if message.content.strip():
                system.append({"type": "text", "text": message.content})
                if index in marks:
                    system[-1]["cache_control"] = EPHEMERAL
            continue
        blocks = _blocks(message)
        if not blocks:
            continue
        if index in marks:
            blocks[-1] = {**blocks[-1], "cache_control": EPHEMERAL}
        role = "assistant" if message.role == "assistant" else "user"
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":  # tool results first in their turn, or the API refuses them
            turn["content"].sort(key=lambda b: b["type"] != "tool_result")
    if turns and turns[-1]["role"] == "assistant":  # a prefill may not end in whitespace
        last = turns[-1]["content"][-1]
        if last["type"] == "text":
            last["text"] = last["text"].rstrip()
    return system, turns


def usage_from_wire(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    read = int(usage.get("cache_read_input_tokens") or 0)
    created = int(usage.get("cache_creation_input_tokens") or 0)
    return Usage(
        input_tokens=int(usage.get("input_tokens") or 0) + read + created,
        output_tokens=int(usage.get("output_tokens") or 0),
        cached_input_tokens=read,
        cache_creation_tokens=created,
    )


class AnthropicProvider(HTTPProvider):
    protocol = "anthropic"
    terminator = "event: message_stop"

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1/messages"

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return headers

    def not_found_hint(self) -> str:
        return f"check the model id, and that the base URL does not end in /v1 (this request went to {self.url})"

    def build_body(self, request: ModelRequest) -> dict[str, Any]:
        system, turns = messages_to_wire(request.messages)
        body: dict[str, Any] = {"model": request.model, "max_tokens": request.max_output, "messages": turns}
        if system:
            body["system"] = system
        if request.temperature is not None:
            body["temperature"] = request.temperature
        tools = [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in request.tools]
        if request.output_schema is not None:
            schema, _ = output_schema_on_wire(request.output_schema)
            tools.append(
                {"name": OUTPUT_TOOL, "description": f"Give the final answer ({request.output_name}).", "input_schema": schema}
            )
            body["tool_choice"] = {"type": "any"} if request.tools else {"type": "tool", "name": OUTPUT_TOOL}
        if tools:
            body["tools"] = tools
        if request.stream:
            body["stream"] = True
        return body

    def _answer(self, value: Any, request: ModelRequest) -> str:
        if request.output_schema is not None and output_schema_on_wire(request.output_schema)[1]:
            value = unwrap_output(value)
        return json.dumps(value)

    def _finish(self, reason: str, calls: list[ToolCall], answered: bool) -> str:
        if reason == "tool_use" and answered and not calls:
            return "stop"  # the only tool used was the answer
        return FINISH.get(reason, reason or "stop")

    def parse_response(self, data: Any, request: ModelRequest) -> ModelResponse:
        if not isinstance(data, dict):
            return self.malformed(request, "the body is not a JSON object")
        if data.get("type") == "error":
            raise self.stream_error(request, data.get("error"))
        content = data.get("content")
        if not isinstance(content, list):
            return self.malformed(request, "no content list in the body")
        text: list[str] = []
        calls: list[ToolCall] = []
        answer: str | None = None
        for block in content:
            if not isinstance(block, dict):
                return self.malformed(request, "a content block is not an object")
            if block.get("type") == "text":
                text.append(str(block.get("text") or ""))
            elif block.get("type") == "tool_use":
                if not block.get("name") or "id" not in block:
                    return self.malformed(request, "a tool_use block without id or name")
                value = block.get("input") if isinstance(block.get("input"), dict) else {}
                if block["name"] == OUTPUT_TOOL and request.output_schema is not None:
                    answer = self._answer(value, request)
                else:
                    calls.append(ToolCall(str(block["id"]), str(block["name"]), value, json.dumps(value)))
        return ModelResponse(
            text=answer if answer is not None else "".join(text),
            tool_calls=tuple(calls),
            usage=usage_from_wire(data.get("usage")),
            finish=self._finish(str(data.get("stop_reason") or ""), calls, answer is not None),
            model=str(data.get("model") or request.model),
            provider_id=str(data.get("id") or ""),
        )

    async def read_stream(self, response: httpx.Response, request: ModelRequest, sink: StreamSink) -> ModelResponse:
        blocks: dict[int, dict[str, Any]] = {}  # index -> type, text / id, name, json pieces
        raw_usage: dict[str, Any] = {}
        model, provider_id, reason = request.model, "", ""
        done = False
        for_answer = request.output_schema is not None

        def halted() -> ModelResponse:
            text = "".join(p for b in blocks.values() if b["type"] == "text" for p in b["parts"])
            return ModelResponse(
                text=text, tool_calls=(), usage=usage_from_wire(raw_usage), finish="halted", model=model, provider_id=provider_id
            )

        async for event in iter_events(response.aiter_lines()):
            try:
                data = json.loads(event.data) if event.data else {}
            except ValueError:
                return self.malformed(request, f"a stream event is not JSON: {event.data[:200]!r}")
            if not isinstance(data, dict):
                return self.malformed(request, "a stream event is not a JSON object")
            kind = data.get("type") or event.event
            if kind == "message_start":
                message = data.get("message") or {}
                model = message.get("model") or model
                provider_id = message.get("id") or provider_id
                raw_usage.update(message.get("usage") or {})
            elif kind == "content_block_start":
                block = data.get("content_block") or {}
                slot: dict[str, Any] = {"type": block.get("type"), "parts": []}
                if block.get("type") == "text" and block.get("text"):
                    slot["parts"].append(block["text"])
                elif block.get("type") == "tool_use":
                    slot.update(id=str(block.get("id") or ""), name=str(block.get("name") or ""))
                blocks[int(data.get("index", len(blocks)))] = slot
            elif kind == "content_block_delta":
                slot = blocks.get(int(data.get("index", -1)))
                if slot is None:
                    return self.malformed(request, "a content_block_delta for a block that never started")
                delta = data.get("delta") or {}
                piece = ""
                if delta.get("type") == "text_delta":
                    piece = str(delta.get("text") or "")
                elif delta.get("type") == "input_json_delta":
                    piece = str(delta.get("partial_json") or "")
                else:
                    continue  # thinking, signature and citations deltas carry no answer text
                slot["parts"].append(piece)
                # the observer sees the answer as it is written: text, or the vox_output JSON
                visible = slot["type"] == "text" or (for_answer and slot.get("name") == OUTPUT_TOOL)
                if visible and not sink.emit(Delta(piece)):
                    return halted()
            elif kind == "message_delta":
                reason = (data.get("delta") or {}).get("stop_reason") or reason
                raw_usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            elif kind == "message_stop":
                done = True
                break
            elif kind == "error":
                raise self.stream_error(request, data.get("error"))
            # ping, content_block_stop and unknown future events need nothing
        if not done:
            raise self.error(
                TruncatedStream, f"the stream from model {request.model!r} ended without {self.terminator}", request
            )
        text: list[str] = []
        calls: list[ToolCall] = []
        answer: str | None = None
        for index in sorted(blocks):
            slot = blocks[index]
            if slot["type"] == "text":
                text.extend(slot["parts"])
            elif slot["type"] == "tool_use":
                raw = "".join(slot["parts"])
                value = parse_arguments(raw)
                if slot["name"] == OUTPUT_TOOL and for_answer:
                    try:
                        answer = self._answer(json.loads(raw), request)
                    except ValueError:
                        answer = raw  # not JSON: the executor's validation asks for a repair
                else:
                    calls.append(ToolCall(slot["id"], slot["name"], value, raw or "{}"))
        return ModelResponse(
            text=answer if answer is not None else "".join(text),
            tool_calls=tuple(calls),
            usage=usage_from_wire(raw_usage),
            finish=self._finish(reason, calls, answer is not None),
            model=model,
            provider_id=provider_id,
        )
