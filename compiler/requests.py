"""What one model request holds, as the runtime sends it, and the compiler's estimate of its size.

The runtime reserves a call's prompt tokens before sending it (``runtime/tokens.py``,
``count_request``): the text of every message, every tool definition (its name, description and
parameter schema as JSON), the output schema as JSON, and a fixed overhead per request, message
and tool that depends on the protocol. The compiler checks that an agent can afford one call
before anything runs (V2003, V2006), so it must count the same parts in the same way; only the
tokenizer differs (the compiler counts 4 bytes of literal text per token, since loading the
real encodings takes seconds, and placeholders count nothing).

This module holds the parts both sides need, with no runtime imports, so the runtime can import
it: the protocol overheads, how schemas are written as text, what a tool definition and a judge
request say. The compiler never imports the runtime (a test checks it).

>>> estimate_request("openai", ["user", "Hello, world!"], messages=1)
11
>>> estimate_request("openai", ["user", "Hi"], messages=1, tools=[("lookup", {"type": "object"})])
45
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

BYTES_PER_TOKEN = 4  # the compiler's static estimate; the runtime counts with the model's tokenizer


@dataclass(frozen=True, slots=True)
class Overheads:
    """Tokens a protocol adds around the text: per message, once per request, per tool."""

    per_message: int
    per_request: int
    per_tool: int
    tools_preamble: int  # once when the request has tools (a system prompt describing tool use)


OVERHEADS: dict[str, Overheads] = {
    # OpenAI's cookbook: 3 per message (+ the role, counted as text) and 3 priming the reply.
    "openai": Overheads(per_message=3, per_request=3, per_tool=10, tools_preamble=16),
    # Anthropic: no public figure per message; tool use adds a system prompt of ~350 tokens.
    "anthropic": Overheads(per_message=8, per_request=8, per_tool=16, tools_preamble=400),
    # Open models behind an OpenAI-compatible server: chat templates (Llama 3, Qwen, ...) add a
    # header per message, sometimes a default system preamble, and a tools preamble.
    "openai_compatible": Overheads(per_message=8, per_request=32, per_tool=16, tools_preamble=200),
}
DEFAULT_OVERHEADS = Overheads(per_message=8, per_request=32, per_tool=16, tools_preamble=400)

#: The judge request a `judge(model, rubric: ...)` signal sends (runtime/executor/agent.py).
JUDGE_SYSTEM = "You judge another model's answer against a rubric. Be strict."
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object", "properties": {"pass": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["pass", "reason"], "additionalProperties": False}


def judge_prompt(rubric: str, answer: str) -> str:
    """The user message of a judge request."""
    return f"Rubric: {rubric}\n\nAnswer to judge:\n{answer}"


def overheads(protocol: str) -> Overheads:
    return OVERHEADS.get(protocol, DEFAULT_OVERHEADS)


def request_overhead(protocol: str, messages: int, tools: int, tool_calls: int = 0) -> int:
    """The tokens a request costs beyond its text: per request, per message, per tool (and the
    tool-use preamble when there are tools), and 3 delimiting each tool call in the messages."""
    o = overheads(protocol)
    total = o.per_request + o.per_message * messages
    if tools:
        total += o.tools_preamble + o.per_tool * tools
    return total + 3 * tool_calls


def schema_json(value: Any) -> str:
    """A schema (or a tool call's arguments) as the text that is counted: compact, keys sorted."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)


def tool_description(name: str) -> str:
    """The description a tool definition carries to the model."""
    return f"tool `{name}`"


def tool_texts(name: str, description: str, parameters: dict[str, Any]) -> list[str]:
    """The counted text of one tool definition."""
    return [name, description, schema_json(parameters)]


def estimate_tokens(text: str) -> int:
    """Tokens of a text at :data:`BYTES_PER_TOKEN` bytes per token, rounded up.

    >>> estimate_tokens("Classify this ticket."), estimate_tokens("")
    (6, 0)
    """
    return -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN)


def estimate_request(protocol: str, texts: Iterable[str], *, messages: int,
                     tools: Sequence[tuple[str, dict[str, Any]]] = (),
                     output_schema: dict[str, Any] | None = None) -> int:
    """The compiler's estimate of a request's prompt tokens: the messages' ``texts`` (roles and
    literal content), each tool definition (name, description, parameters) and the output schema,
    each at 4 bytes per token, plus the protocol's overheads, as ``count_request`` counts them."""
    total = sum(estimate_tokens(t) for t in texts if t)
    for name, parameters in tools:
        total += sum(estimate_tokens(t) for t in tool_texts(name, tool_description(name), parameters))
    if output_schema is not None:
        total += estimate_tokens(schema_json(output_schema))
    return total + request_overhead(protocol, messages, len(tools))
