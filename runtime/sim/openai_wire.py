"""The OpenAI Chat Completions wire format: ``POST /v1/chat/completions``.

:func:`parse` validates a request the way the real API does (the checks a provider's translation
can get wrong) and makes an :class:`~.engine.Exchange`; :func:`render` and :func:`render_stream`
make the response body, field for field as OpenAI sends it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from vox.runtime.sim import tokens
from vox.runtime.sim.engine import CREATED, Answer, CacheResult, Exchange, dump, ident
from vox.runtime.sim.schema import strict_schema_problems

_KNOWN = frozenset({
    "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "response_format", "max_tokens",
    "max_completion_tokens", "temperature", "top_p", "n", "logprobs", "top_logprobs", "stream",
    "stream_options", "stop", "seed", "user", "metadata", "store", "frequency_penalty", "presence_penalty",
    "logit_bias", "service_tier", "reasoning_effort", "modalities", "prediction", "audio",
    "web_search_options", "prompt_cache_key", "safety_identifier", "verbosity", "functions", "function_call",
})
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_MESSAGE_OVERHEAD = 3  # tokens each message costs beyond its text (as in OpenAI's cookbook)
_REPLY_PRIMING = 3


class WireError(Exception):
    """A request the real API would refuse: answered with ``status`` and an OpenAI error body."""

    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str | None = None):
        super().__init__(message)
        self.message, self.param, self.status, self.code = message, param, status, code


def error_body(status: int, message: str | None = None, param: str | None = None, code: str | None = None) -> dict:
    """OpenAI's error object for ``status``."""
    if status == 429:
        kind, code = "requests", code or "rate_limit_exceeded"
        message = message or "Rate limit reached for requests (simulated). Please try again later."
    elif status >= 500:
        kind = "server_error"
        message = message or "The server had an error while processing your request (simulated)."
    elif status == 401:
        kind, code = "invalid_request_error", code or "invalid_api_key"
        message = message or "Incorrect API key provided."
    elif status == 404:
        kind = "invalid_request_error"
        message = message or "The requested resource does not exist."
    else:
        kind = "invalid_request_error"
        message = message or "Invalid request."
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _text_of(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or "type" not in part:
                raise WireError(f"Invalid value for '{where}[{i}]': expected an object with 'type'.", f"{where}[{i}]")
            if part["type"] in ("text", "input_text", "refusal"):
                text = part.get("text", part.get("refusal"))
                if not isinstance(text, str):
                    raise WireError(f"Missing required parameter: '{where}[{i}].text'.", f"{where}[{i}].text")
                texts.append(text)
        return "\n".join(texts)
    raise WireError(f"Invalid type for '{where}': expected a string or an array of content parts.", where)


def parse(body: Any, headers) -> tuple[Exchange, dict[str, Any]]:
    """Validate ``body`` and make the engine's view of it, plus the options rendering needs."""
    if not isinstance(body, dict):
        raise WireError("The request body must be a JSON object.")
    unknown = sorted(set(body) - _KNOWN)
    if unknown:
        raise WireError(f"Unrecognized request argument supplied: {unknown[0]}", unknown[0])
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise WireError("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise WireError("Invalid 'messages': empty array. Expected an array with minimum length 1.", "messages")

    tools, tool_units = _parse_tools(body.get("tools"))
    schema, json_mode, schema_unit = _parse_response_format(body.get("response_format"))
    units: list[tuple[str, int]] = [
        (dump([body.get("tools"), body.get("response_format")]), _REPLY_PRIMING + tool_units + schema_unit)
    ]
    tool_results: list[tuple[str, str]] = []
    call_names: dict[str, str] = {}
    open_calls: list[str] = []  # ids of the last assistant message's calls not yet answered
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise WireError(f"Invalid type for '{where}': expected an object.", where)
        role = message.get("role")
        if role not in _ROLES:
            raise WireError(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', "
                f"'tool', and 'developer'.", f"{where}.role",
            )
        if open_calls and role != "tool":
            raise WireError(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(open_calls)}",
                "messages",
            )
        text = _text_of(message.get("content"), f"{where}.content")
        if role == "assistant":
            calls = message.get("tool_calls") or []
            if message.get("content") is None and not calls:
                raise WireError(
                    f"Invalid value for '{where}.content': expected a string, got null.", f"{where}.content")
            for j, call in enumerate(calls):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not isinstance(call.get("id"), str) or not isinstance(fn.get("name"), str):
                    raise WireError(f"Missing required parameter: '{where}.tool_calls[{j}].id'.",
                                    f"{where}.tool_calls[{j}]")
                if not isinstance(fn.get("arguments"), str):
                    raise WireError(
                        f"Invalid type for '{where}.tool_calls[{j}].function.arguments': expected a string.",
                        f"{where}.tool_calls[{j}].function.arguments")
                call_names[call["id"]] = fn["name"]
                text += fn["name"] + fn["arguments"]
            open_calls = [c["id"] for c in calls]
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in open_calls:
                raise WireError(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    "with 'tool_calls'.", f"{where}.role")
            open_calls.remove(call_id)
            tool_results.append((call_names[call_id], text))
        elif role == "user" and message.get("content") is None:
            raise WireError(f"Invalid value for '{where}.content': expected a string, got null.", f"{where}.content")
        units.append((dump(message), tokens.count(text) + _MESSAGE_OVERHEAD))

    options = _parse_options(body, schema is not None or json_mode)
    meta = _meta(headers)
    exchange = Exchange(
        protocol="openai", run=meta[0], agent=meta[1], step=meta[2], tools=tuple(tools),
        tool_results=tool_results, output_schema=schema, json_mode=json_mode, n=options["n"],
        temperature=body.get("temperature"), units=units,
    )
    options["model"] = model
    return exchange, options


def _meta(headers) -> tuple[str, str, str]:
    return headers.get("x-vox-run", ""), headers.get("x-vox-agent", ""), headers.get("x-vox-step", "")


def _parse_tools(tools: Any) -> tuple[list[str], int]:
    if tools is None:
        return [], 0
    if not isinstance(tools, list):
        raise WireError("Invalid type for 'tools': expected an array.", "tools")
    names, cost = [], 0
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(fn, dict):
            raise WireError(f"Missing required parameter: 'tools[{i}].function'.", f"tools[{i}].function")
        name = fn.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise WireError(
                f"Invalid 'tools[{i}].function.name': string does not match pattern. Expected a string that "
                "matches the pattern '^[a-zA-Z0-9_-]+$'.", f"tools[{i}].function.name")
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if fn.get("strict"):
            problems = strict_schema_problems(params)
            if problems:
                raise WireError(f"Invalid schema for function '{name}': {problems[0]}.", f"tools[{i}].function.parameters",
                                code="invalid_function_parameters")
        names.append(name)
        cost += tokens.count(dump(fn)) + 8
    return names, cost


def _parse_response_format(fmt: Any) -> tuple[dict | None, bool, int]:
    if fmt is None:
        return None, False, 0
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None, False, 0
    if kind == "json_object":
        return None, True, 0
    if kind != "json_schema":
        raise WireError(
            f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and 'text'.",
            "response_format.type")
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise WireError("Missing required parameter: 'response_format.json_schema.name'.",
                        "response_format.json_schema.name")
    schema = spec.get("schema", {"type": "object"})
    if spec.get("strict"):
        problems = strict_schema_problems(schema)
        if problems:
            raise WireError(f"Invalid schema for response_format '{spec['name']}': {problems[0]}.",
                            "response_format", code="invalid_json_schema")
    return schema, False, tokens.count(dump(schema)) + 10


def _parse_options(body: dict, structured: bool) -> dict[str, Any]:
    n = body.get("n", 1) or 1
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128:
        raise WireError(f"Invalid 'n': integer out of range ({n}); expected 1..128.", "n")
    temperature = body.get("temperature")
    if temperature is not None and (not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2):
        raise WireError(f"Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got "
                        f"{temperature} instead.", "temperature")
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise WireError("Invalid 'max_tokens': integer below minimum value. Expected a value >= 1.", "max_tokens")
    logprobs = bool(body.get("logprobs"))
    top = body.get("top_logprobs") or 0
    if top and not logprobs:
        raise WireError("Invalid value for 'logprobs': must be true when 'top_logprobs' is specified.", "logprobs")
    if not isinstance(top, int) or not 0 <= top <= 20:
        raise WireError("Invalid 'top_logprobs': expected an integer in 0..20.", "top_logprobs")
    stream = bool(body.get("stream"))
    stream_options = body.get("stream_options")
    if stream_options is not None and not stream:
        raise WireError("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
    return {
        "n": n, "max_tokens": limit, "logprobs": logprobs, "top_logprobs": top, "stream": stream,
        "include_usage": bool((stream_options or {}).get("include_usage")),
    }


# --- responses ------------------------------------------------------------------------------


def _choice_parts(answer: Answer, limit: int | None):
    """(content text, pieces, tool calls, finish, completion tokens) of one choice."""
    if answer.kind == "call":
        calls = [
            {"id": ident("call_", answer.key + key.encode()), "type": "function",
             "function": {"name": tool, "arguments": dump(args)}}
            for key, tool, args in answer.calls
        ]
        used = sum(tokens.count(c["function"]["name"] + c["function"]["arguments"]) + 3 for c in calls)
        return None, (), calls, "tool_calls", used
    text = answer.text
    finish = "stop"
    if limit is not None:
        text, used, cut = tokens.truncate(text, limit)
        finish = "length" if cut else "stop"
    parts = tokens.pieces(text)
    return text, parts, None, finish, len(parts)


def _usage(cache: CacheResult, completion: int) -> dict:
    return {
        "prompt_tokens": cache.total,
        "completion_tokens": completion,
        "total_tokens": cache.total + completion,
        "prompt_tokens_details": {"cached_tokens": cache.read, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
        },
    }


def render(answers: list[Answer], cache: CacheResult, options: dict) -> tuple[dict, int]:
    """The ``chat.completion`` object, and its completion token count."""
    choices, completion = [], 0
    for index, answer in enumerate(answers):
        text, parts, calls, finish, used = _choice_parts(answer, options["max_tokens"])
        completion += used
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
        if calls:
            message["tool_calls"] = calls
        logprobs = None
        if options["logprobs"]:
            content = tokens.token_logprobs(parts, answer.draw, 0, answer.confidence, options["top_logprobs"])
            logprobs = {"content": content if calls is None else None, "refusal": None}
        choices.append({"index": index, "message": message, "logprobs": logprobs, "finish_reason": finish})
    return {
        "id": ident("chatcmpl-sim-", answers[0].key),
        "object": "chat.completion",
        "created": CREATED,
        "model": options["model"],
        "choices": choices,
        "usage": _usage(cache, completion),
        "service_tier": "default",
        "system_fingerprint": "fp_sim",
    }, completion


def render_stream(answers: list[Answer], cache: CacheResult, options: dict) -> tuple[list[bytes], int]:
    """The server-sent events of a streamed reply (``data: [DONE]`` last), and the completion tokens."""
    rid = ident("chatcmpl-sim-", answers[0].key)
    model = options["model"]
    usage_field = options["include_usage"]

    # Every chunk shares its envelope: only `choices` is encoded per chunk (the hot path of streaming).
    head = ('data: {"id":%s,"object":"chat.completion.chunk","created":%d,"model":%s,"service_tier":"default",'
            '"system_fingerprint":"fp_sim","choices":' % (json.dumps(rid), CREATED, json.dumps(model, ensure_ascii=False)))
    tail = ',"usage":null}\n\n' if usage_field else "}\n\n"

    def event(choices: list) -> bytes:
        return (head + json.dumps(choices, ensure_ascii=False, separators=(",", ":")) + tail).encode()

    def content_event(index: int, piece: str, logprobs: Any) -> bytes:
        lp = "null" if logprobs is None else json.dumps(logprobs, ensure_ascii=False, separators=(",", ":"))
        return (f'{head}[{{"index":{index},"delta":{{"content":{json.dumps(piece, ensure_ascii=False)}}},'
                f'"logprobs":{lp},"finish_reason":null}}]{tail}').encode()

    events, completion = [], 0
    for index, answer in enumerate(answers):
        text, parts, calls, finish, used = _choice_parts(answer, options["max_tokens"])
        completion += used
        first = {"role": "assistant", "content": "" if calls is None else None, "refusal": None}
        events.append(event([{"index": index, "delta": first, "logprobs": None, "finish_reason": None}]))
        if calls is not None:
            for k, call in enumerate(calls):
                opening = {"index": k, "id": call["id"], "type": "function",
                           "function": {"name": call["function"]["name"], "arguments": ""}}
                events.append(event([{"index": index, "delta": {"tool_calls": [opening]}, "logprobs": None,
                                      "finish_reason": None}]))
                for piece, _raw in tokens.pieces(call["function"]["arguments"]):
                    delta = {"tool_calls": [{"index": k, "function": {"arguments": piece}}]}
                    events.append(event([{"index": index, "delta": delta, "logprobs": None, "finish_reason": None}]))
        else:
            lps = (tokens.token_logprobs(parts, answer.draw, 0, answer.confidence, options["top_logprobs"])
                   if options["logprobs"] else None)
            for i, (piece, _raw) in enumerate(parts):
                logprobs = {"content": [lps[i]], "refusal": None} if lps is not None else None
                events.append(content_event(index, piece, logprobs))
        events.append(event([{"index": index, "delta": {}, "logprobs": None, "finish_reason": finish}]))
    if usage_field:
        usage = json.dumps(_usage(cache, completion), separators=(",", ":"))
        events.append(f'{head}[],"usage":{usage}}}\n\n'.encode())
    events.append(b"data: [DONE]\n\n")
    return events, completion
