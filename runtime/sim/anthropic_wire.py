"""The Anthropic Messages wire format: ``POST /v1/messages`` (and ``/v1/messages/count_tokens``).

:func:`parse` validates what the real API validates — alternating turns starting with the user,
non-empty content, every ``tool_result`` answering a ``tool_use`` of the previous assistant turn
and every ``tool_use`` answered in the next user turn, unique tool names, ``tool_choice``, at most
four ``cache_control`` breakpoints — and answers 400 ``invalid_request_error`` with the same kind
of message. Structured output is the ``vox_output`` tool convention: when the request offers a
tool named ``vox_output``, the final answer is a ``tool_use`` of it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from vox.runtime.sim import tokens
from vox.runtime.sim.engine import Answer, CacheResult, Exchange, dump, ident

OUTPUT_TOOL = "vox_output"
_KNOWN = frozenset({
    "model", "messages", "max_tokens", "system", "tools", "tool_choice", "temperature", "top_p", "top_k",
    "stop_sequences", "stream", "metadata", "thinking", "service_tier", "container", "mcp_servers",
})
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_MESSAGE_OVERHEAD = 3
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
                529: "overloaded_error"}


class WireError(Exception):
    """A request the real API would refuse."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status


def error_body(status: int, message: str | None = None) -> dict:
    """Anthropic's error object for ``status``."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    if message is None:
        message = {"rate_limit_error": "Number of requests has exceeded your rate limit (simulated).",
                   "overloaded_error": "Overloaded (simulated)", "api_error": "Internal server error (simulated)"}.get(
            kind, "Invalid request")
    return {"type": "error", "error": {"type": kind, "message": message}}


def check_headers(headers) -> None:
    """The API's header checks: a key (``x-api-key`` or bearer token) and ``anthropic-version``."""
    if not headers.get("x-api-key") and not headers.get("authorization"):
        raise WireError("x-api-key header is required", 401)
    if not headers.get("anthropic-version"):
        raise WireError("anthropic-version: header is required")


def _blocks(content: Any, where: str, role: str, final: bool) -> list[dict]:
    if isinstance(content, str):
        if not content and not (final and role == "assistant"):
            raise WireError(f"{where}: all messages must have non-empty content except for the optional final "
                            "assistant message")
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise WireError(f"{where}.content: Input should be a valid list")
    if not content and not (final and role == "assistant"):
        raise WireError(f"{where}: all messages must have non-empty content except for the optional final "
                        "assistant message")
    for j, block in enumerate(content):
        at = f"{where}.content.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise WireError(f"{at}.text: Field required")
            if not block["text"]:
                raise WireError(f"{where}: text content blocks must be non-empty")
        elif kind == "tool_use":
            if role != "assistant":
                raise WireError(f"{at}: tool_use blocks are only allowed in assistant messages")
            if not isinstance(block.get("id"), str) or not _TOOL_ID.match(block["id"]):
                raise WireError(f"{at}.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
            if not isinstance(block.get("name"), str):
                raise WireError(f"{at}.name: Field required")
            if not isinstance(block.get("input"), dict):
                raise WireError(f"{at}.input: Input should be a valid dictionary")
        elif kind == "tool_result":
            if role != "user":
                raise WireError(f"{at}: tool_result blocks are only allowed in user messages")
            if not isinstance(block.get("tool_use_id"), str):
                raise WireError(f"{at}.tool_use_id: Field required")
            inner = block.get("content", "")
            if isinstance(inner, list):
                for k, part in enumerate(inner):
                    if not isinstance(part, dict) or part.get("type") not in ("text", "image", "document", "search_result"):
                        raise WireError(f"{at}.content.{k}: Input tag does not match any of the expected tags")
                    if part.get("type") == "text" and not part.get("text"):
                        raise WireError(f"{where}: text content blocks must be non-empty")
            elif not isinstance(inner, str):
                raise WireError(f"{at}.content: Input should be a valid string or list")
            if "is_error" in block and not isinstance(block["is_error"], bool):
                raise WireError(f"{at}.is_error: Input should be a valid boolean")
        elif kind in ("image", "document", "thinking", "redacted_thinking"):
            pass
        else:
            raise WireError(f"{at}: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
                            "'text', 'image', 'document', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking'")
    return content


def _result_text(block: dict) -> str:
    inner = block.get("content", "")
    if isinstance(inner, str):
        return inner
    return "\n".join(p.get("text", "") for p in inner if isinstance(p, dict))


def _block_text(block: dict) -> str:
    kind = block.get("type")
    if kind == "text":
        return block["text"]
    if kind == "tool_use":
        return block["name"] + dump(block["input"])
    if kind == "tool_result":
        return _result_text(block)
    if kind == "image":
        return "x" * 1600 * 4  # roughly what a small image costs
    return dump(block)


def parse(body: Any, headers) -> tuple[Exchange, dict[str, Any]]:
    """Validate ``body`` and make the engine's view of it, plus the options rendering needs."""
    check_headers(headers)
    if not isinstance(body, dict):
        raise WireError("The request body must be a JSON object")
    unknown = sorted(set(body) - _KNOWN)
    if unknown:
        raise WireError(f"{unknown[0]}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise WireError("model: Field required")
    limit = body.get("max_tokens")
    if limit is None:
        raise WireError("max_tokens: Field required")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise WireError("max_tokens: Input should be greater than or equal to 1")
    temperature = body.get("temperature")
    if temperature is not None and (not isinstance(temperature, (int, float)) or not 0 <= temperature <= 1):
        raise WireError("temperature: range: 0..1")

    units: list[tuple[str, int]] = []
    breakpoints: list[int] = []

    def unit(block: Any, text: str, extra: int = 0) -> None:
        if isinstance(block, dict) and block.get("cache_control") is not None:
            breakpoints.append(len(units))
        units.append((dump(block), tokens.count(text) + extra))

    tools, output_schema = _parse_tools(body.get("tools"), unit)
    _parse_tool_choice(body.get("tool_choice"), tools)
    system = body.get("system")
    if isinstance(system, str):
        if system:
            unit(system, system)
    elif isinstance(system, list):
        for j, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
                raise WireError(f"system.{j}: Input should be a valid text block")
            if not block["text"]:
                raise WireError("system: text content blocks must be non-empty")
            unit(block, block["text"])
    elif system is not None:
        raise WireError("system: Input should be a valid string or list")

    messages = body.get("messages")
    if not isinstance(messages, list):
        raise WireError("messages: Field required")
    if not messages:
        raise WireError("messages: at least one message is required")
    tool_results: list[tuple[str, str]] = []
    names: dict[str, str] = {}
    previous_uses: list[str] = []
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise WireError(f"{where}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise WireError("messages: first message must use the \"user\" role")
        if i > 0 and messages[i - 1].get("role") == role:
            raise WireError(f"messages: roles must alternate between \"user\" and \"assistant\", but found multiple "
                            f"\"{role}\" roles in a row")
        blocks = _blocks(message.get("content"), where, role, i == len(messages) - 1)
        uses = [b["id"] for b in blocks if b.get("type") == "tool_use"]
        if len(set(uses)) != len(uses):
            raise WireError(f"{where}: `tool_use` ids must be unique")
        results = [b for b in blocks if b.get("type") == "tool_result"]
        if results:
            unexpected = [b["tool_use_id"] for b in results if b["tool_use_id"] not in previous_uses]
            if unexpected:
                raise WireError(
                    f"{where}.content.0: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{', '.join(unexpected)}. Each `tool_result` block must have a corresponding `tool_use` block "
                    "in the previous message.")
            first_other = next((j for j, b in enumerate(blocks) if b.get("type") != "tool_result"), len(blocks))
            if any(b.get("type") == "tool_result" for b in blocks[first_other:]):
                raise WireError(f"{where}: `tool_result` blocks must come before any other content in a user message")
        if previous_uses:
            answered = {b["tool_use_id"] for b in results}
            missing = [u for u in previous_uses if u not in answered]
            if missing:
                raise WireError(
                    f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in "
                    "the next message.")
        for b in blocks:
            if b.get("type") == "tool_use":
                names[b["id"]] = b["name"]
            elif b.get("type") == "tool_result":
                tool_results.append((names[b["tool_use_id"]], _result_text(b)))
        for j, b in enumerate(blocks):
            unit(b, _block_text(b), _MESSAGE_OVERHEAD if j == 0 else 0)
        previous_uses = uses
    if len(breakpoints) > 4:
        raise WireError(f"A maximum of 4 blocks with cache_control may be provided. Found {len(breakpoints)}.")

    run, agent, step = (headers.get("x-vox-run", ""), headers.get("x-vox-agent", ""), headers.get("x-vox-step", ""))
    exchange = Exchange(
        protocol="anthropic", run=run, agent=agent, step=step, tools=tuple(tools), tool_results=tool_results,
        output_schema=output_schema, temperature=temperature, units=units, breakpoints=tuple(breakpoints),
    )
    return exchange, {"model": body["model"], "max_tokens": limit, "stream": bool(body.get("stream")),
                      "structured_tool": output_schema is not None}


def _parse_tools(tools: Any, unit) -> tuple[list[str], dict | None]:
    if tools is None:
        return [], None
    if not isinstance(tools, list):
        raise WireError("tools: Input should be a valid list")
    names: list[str] = []
    output_schema = None
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise WireError(f"tools.{i}: Input should be a valid dictionary")
        if tool.get("type") not in (None, "custom"):  # server tools (web search, ...): taken as given
            names.append(str(tool.get("name")))
            unit(tool, dump(tool))
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise WireError(f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise WireError(f"tools.{i}.custom.input_schema: Field required")
        if schema.get("type") != "object":
            raise WireError(f"tools.{i}.custom.input_schema.type: Input should be 'object'")
        if name in names:
            raise WireError("tools: Tool names must be unique.")
        names.append(name)
        if name == OUTPUT_TOOL:
            output_schema = schema
        unit(tool, dump(tool), 8)
    return names, output_schema


def _parse_tool_choice(choice: Any, tools: list[str]) -> None:
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise WireError("tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'")
    if kind in ("any", "tool") and not tools:
        raise WireError(f"tool_choice: tool_choice.type '{kind}' may only be specified while providing tools")
    if kind == "tool" and choice.get("name") not in tools:
        raise WireError(f"tool_choice.name: tool `{choice.get('name')}` was not found in tools")


# --- responses ------------------------------------------------------------------------------


def _content(answer: Answer, options: dict) -> tuple[list[dict], str, int, str | None]:
    """Content blocks, stop reason, output tokens, and (for a cut tool_use) its partial JSON."""
    limit = options["max_tokens"]
    if answer.kind == "call":
        blocks = [{"type": "tool_use", "id": ident("toolu_", answer.key + key.encode()), "name": tool, "input": args}
                  for key, tool, args in answer.calls]
        used = sum(tokens.count(b["name"] + dump(b["input"])) + 3 for b in blocks)
        return blocks, "tool_use", used, None
    if answer.kind == "structured" and options["structured_tool"]:
        text, used, cut = tokens.truncate(answer.text, limit)
        block = {"type": "tool_use", "id": ident("toolu_", answer.key), "name": OUTPUT_TOOL,
                 "input": {} if cut else answer.value}
        return [block], "max_tokens" if cut else "tool_use", used + 3, text if cut else None
    text, used, cut = tokens.truncate(answer.text, limit)
    return [{"type": "text", "text": text, "citations": None}], "max_tokens" if cut else "end_turn", used, None


def _usage(cache: CacheResult, output: int) -> dict:
    return {
        "input_tokens": cache.total - cache.read - cache.written,
        "cache_creation_input_tokens": cache.written,
        "cache_read_input_tokens": cache.read,
        "cache_creation": {"ephemeral_5m_input_tokens": cache.written, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output,
        "service_tier": "standard",
        "server_tool_use": None,
    }


def render(answer: Answer, cache: CacheResult, options: dict) -> tuple[dict, int]:
    """The ``message`` object, and its output token count."""
    blocks, stop, used, _partial = _content(answer, options)
    return {
        "id": ident("msg_sim_", answer.key),
        "type": "message",
        "role": "assistant",
        "model": options["model"],
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": _usage(cache, used),
    }, used


def _event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: ".encode() + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def _delta(index: int, kind: str, field: str, piece: str) -> bytes:
    """A content_block_delta event, formatted directly (the hot path of streaming)."""
    return (f'event: content_block_delta\ndata: {{"type":"content_block_delta","index":{index},'
            f'"delta":{{"type":"{kind}","{field}":{json.dumps(piece, ensure_ascii=False)}}}}}\n\n').encode()


def render_stream(answer: Answer, cache: CacheResult, options: dict) -> tuple[list[bytes], int]:
    """The server-sent events of a streamed message, and its output token count."""
    blocks, stop, used, partial = _content(answer, options)
    start_usage = _usage(cache, 1)
    events = [_event("message_start", {"type": "message_start", "message": {
        "id": ident("msg_sim_", answer.key), "type": "message", "role": "assistant", "model": options["model"],
        "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}})]
    events.append(_event("ping", {"type": "ping"}))
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            events.append(_event("content_block_start", {"type": "content_block_start", "index": index,
                                                          "content_block": {"type": "text", "text": "", "citations": None}}))
            for piece, _raw in tokens.pieces(block["text"]):
                events.append(_delta(index, "text_delta", "text", piece))
        else:
            head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            events.append(_event("content_block_start", {"type": "content_block_start", "index": index,
                                                          "content_block": head}))
            text = partial if partial is not None else dump(block["input"])
            for piece, _raw in tokens.pieces(text):
                events.append(_delta(index, "input_json_delta", "partial_json", piece))
        events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    final_usage = {"input_tokens": start_usage["input_tokens"], "cache_creation_input_tokens": cache.written,
                   "cache_read_input_tokens": cache.read, "output_tokens": used, "server_tool_use": None}
    events.append(_event("message_delta", {"type": "message_delta",
                                           "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": final_usage}))
    events.append(_event("message_stop", {"type": "message_stop"}))
    return events, used


def count_tokens(body: Any, headers) -> dict:
    """``/v1/messages/count_tokens``: the prompt's size, validated like a message request."""
    if isinstance(body, dict):
        body = {**body, "max_tokens": 1}
    exchange, _ = parse(body, headers)
    return {"input_tokens": sum(t for _k, t in exchange.units)}
