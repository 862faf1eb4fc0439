"""The OpenAI chat-completions wire format (``openai`` and ``openai_compatible`` servers).

POST ``{base_url}/chat/completions`` (base URLs include ``/v1``). Quirks kept here:

* tool calls go out as ``tool_calls`` with ``function.arguments`` as a JSON *string*; results
  as ``role: tool`` messages with ``tool_call_id``;
* structured output is ``response_format: json_schema`` (strict); the answer is the message text;
* ``openai`` gets ``max_completion_tokens`` and ``strict`` tools (what current models require);
  ``openai_compatible`` servers (vLLM, llama.cpp, Ollama, ...) get the older ``max_tokens``
  and plain tools, which all of them accept;
* streams ask for ``stream_options.include_usage`` and end with ``data: [DONE]``; tool-call
  arguments arrive in pieces keyed by ``index``;
* usage: ``prompt_tokens`` (cached ones included), ``prompt_tokens_details.cached_tokens``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from .base import HTTPProvider, StreamSink, output_schema_on_wire, parse_arguments, unwrap_output
from .errors import TruncatedStream
from .messages import Delta, Message, ModelRequest, ModelResponse, TokenLogprob, ToolCall, Usage
from .sse import iter_events

FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls"}


def schema_name(name: str) -> str:
    """A ``json_schema.name`` the API accepts (``^[a-zA-Z0-9_-]{1,64}$``).

    >>> schema_name("list[Ticket]")
    'list_Ticket_'
    """
    return re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64] or "output"


def message_to_wire(message: Message) -> dict[str, Any]:
    """One message in the chat-completions shape.

    >>> message_to_wire(Message("tool", '{"ok": true}', tool_call_id="call_1"))
    {'role': 'tool', 'tool_call_id': 'call_1', 'content': '{"ok": true}'}
    """
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content or None,  # null, not "", beside tool calls
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    # what the model wrote, when we have it: the same bytes keep the prefix cacheable
                    "function": {"name": call.name, "arguments": call.raw_arguments or json.dumps(call.arguments)},
                }
                for call in message.tool_calls
            ],
        }
    return {"role": message.role, "content": message.content}


def logprobs_from_wire(content: Any) -> tuple[TokenLogprob, ...]:
    if not isinstance(content, list):
        return ()
    out = []
    for item in content:
        if not isinstance(item, dict) or "token" not in item:
            continue
        top = tuple(
            (str(t.get("token", "")), float(t.get("logprob", 0.0)))
            for t in item.get("top_logprobs") or ()
            if isinstance(t, dict)
        )
        out.append(TokenLogprob(str(item["token"]), float(item.get("logprob", 0.0)), top))
    return tuple(out)


def usage_from_wire(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cached_input_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
    )


class OpenAIProvider(HTTPProvider):
    protocol = "openai"
    terminator = "data: [DONE]"

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def not_found_hint(self) -> str:
        return f"check the model id, and that the base URL ends in /v1 (this request went to {self.url})"

    def build_body(self, request: ModelRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [message_to_wire(m) for m in request.messages],
        }
        body["max_completion_tokens" if self.protocol == "openai" else "max_tokens"] = request.max_output
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.tools:
            tools = []
            for tool in request.tools:
                function: dict[str, Any] = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
                if self.protocol == "openai":
                    function["strict"] = True
                tools.append({"type": "function", "function": function})
            body["tools"] = tools
        if request.output_schema is not None:
            schema, _ = output_schema_on_wire(request.output_schema)
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name(request.output_name), "schema": schema, "strict": True},
            }
        if request.logprobs:
            body["logprobs"] = True
            if request.top_logprobs > 0:
                body["top_logprobs"] = request.top_logprobs
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def answer_text(self, text: str, request: ModelRequest) -> str:
        """The answer as the executor expects it: the output JSON unwrapped if we wrapped it."""
        if request.output_schema is None or not output_schema_on_wire(request.output_schema)[1]:
            return text
        try:
            return json.dumps(unwrap_output(json.loads(text)))
        except ValueError:
            return text  # not JSON: the executor's validation reports it and asks for a repair

    def parse_response(self, data: Any, request: ModelRequest) -> ModelResponse:
        if not isinstance(data, dict):
            return self.malformed(request, "the body is not a JSON object")
        if "error" in data and "choices" not in data:
            raise self.stream_error(request, data["error"])
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return self.malformed(request, "no choices in the body")
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            return self.malformed(request, "choices[0] has no message")
        calls = []
        for raw_call in message.get("tool_calls") or ():
            function = raw_call.get("function") if isinstance(raw_call, dict) else None
            if not isinstance(function, dict) or not function.get("name"):
                return self.malformed(request, "a tool call without a function name")
            raw = function.get("arguments")
            raw = raw if isinstance(raw, str) else json.dumps(raw or {})
            calls.append(ToolCall(str(raw_call.get("id") or ""), str(function["name"]), parse_arguments(raw), raw))
        text = message.get("content") or ""
        if not isinstance(text, str):  # some compatible servers send a list of parts
            text = "".join(p.get("text", "") for p in text if isinstance(p, dict)) if isinstance(text, list) else str(text)
        if not text and message.get("refusal"):
            text = str(message["refusal"])
        logprobs = None
        if request.logprobs:
            logprobs = logprobs_from_wire((choice.get("logprobs") or {}).get("content"))
        reason = choice.get("finish_reason") or ("tool_calls" if calls else "stop")
        return ModelResponse(
            text=self.answer_text(text, request),
            tool_calls=tuple(calls),
            usage=usage_from_wire(data.get("usage")),
            finish=FINISH.get(reason, reason),
            model=str(data.get("model") or request.model),
            logprobs=logprobs,
            provider_id=str(data.get("id") or ""),
        )

    async def read_stream(self, response: httpx.Response, request: ModelRequest, sink: StreamSink) -> ModelResponse:
        text: list[str] = []
        logprobs: list[TokenLogprob] = []
        calls: dict[int, dict[str, Any]] = {}  # index -> id, name, argument pieces
        usage: Usage | None = None
        reason = ""
        model, provider_id = request.model, ""
        deltas = 0
        done = False
        async for event in iter_events(response.aiter_lines()):
            if event.data == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(event.data)
            except ValueError:
                return self.malformed(request, f"a stream chunk is not JSON: {event.data[:200]!r}")
            if not isinstance(chunk, dict):
                return self.malformed(request, "a stream chunk is not a JSON object")
            if "error" in chunk:
                raise self.stream_error(request, chunk["error"])
            model = chunk.get("model") or model
            provider_id = chunk.get("id") or provider_id
            if chunk.get("usage"):
                usage = usage_from_wire(chunk["usage"])
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta") or {}
                piece = delta.get("content") or ""
                lps = logprobs_from_wire((choice.get("logprobs") or {}).get("content")) if request.logprobs else ()
                if piece or lps:
                    deltas += 1
                    text.append(piece)
                    logprobs.extend(lps)
                    if not sink.emit(Delta(piece, lps)):
                        return ModelResponse(
                            text="".join(text),
                            tool_calls=(),
                            # usage comes last in a stream; a halted one reports what it can see
                            usage=usage or Usage(output_tokens=deltas),
                            finish="halted",
                            model=model,
                            logprobs=tuple(logprobs) if request.logprobs else None,
                            provider_id=provider_id,
                        )
                for part in delta.get("tool_calls") or ():
                    slot = calls.setdefault(int(part.get("index", len(calls))), {"id": "", "name": "", "args": []})
                    slot["id"] = part.get("id") or slot["id"]
                    function = part.get("function") or {}
                    slot["name"] = function.get("name") or slot["name"]
                    if function.get("arguments"):
                        slot["args"].append(function["arguments"])
                if choice.get("finish_reason"):
                    reason = choice["finish_reason"]
        if not done:
            raise self.error(
                TruncatedStream,
                f"the stream from model {request.model!r} ended without {self.terminator}"
                f" after {deltas} text deltas",
                request,
            )
        tool_calls = []
        for index in sorted(calls):
            slot = calls[index]
            raw = "".join(slot["args"])
            tool_calls.append(ToolCall(slot["id"], slot["name"], parse_arguments(raw), raw))
        reason = reason or ("tool_calls" if tool_calls else "stop")
        return ModelResponse(
            text=self.answer_text("".join(text), request),
            tool_calls=tuple(tool_calls),
            usage=usage or Usage(),
            finish=FINISH.get(reason, reason),
            model=model,
            logprobs=tuple(logprobs) if request.logprobs else None,
            provider_id=provider_id,
        )


class OpenAICompatibleProvider(OpenAIProvider):
    """A server that speaks the chat-completions format (vLLM, llama.cpp, Ollama, the simulator)."""

    protocol = "openai_compatible"
