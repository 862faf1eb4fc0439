"""The one message model the runtime speaks; each provider translates it to its wire format.

Nothing outside ``vox.runtime.providers`` knows what OpenAI or Anthropic requests look like: the
executor builds a :class:`ModelRequest` and gets a :class:`ModelResponse` back, whatever the
protocol. Translation (and every quirk of a wire format) lives in one module per protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asked for. ``id`` pairs it with its result message."""

    id: str
    name: str
    arguments: dict[str, Any]  # parsed JSON object
    raw_arguments: str = ""  # as the model wrote it (for repair messages when it is not valid JSON)


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation.

    * ``system``: instructions (providers that take them out of band, like Anthropic, do so);
    * ``user``: text from the program (the rendered prompt, repair requests);
    * ``assistant``: the model's text and/or tool calls;
    * ``tool``: the result of the tool call ``tool_call_id`` (``content`` is JSON text).
    """

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    tool_name: str | None = None  # on a ``tool`` message: the tool that was called
    is_error: bool = False  # on a ``tool`` message: the call failed; ``content`` says why
    cache: bool = False  # a stable prefix ends here: providers with prompt caching mark it


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments object (strict-mode shaped)


@dataclass(frozen=True, slots=True)
class ModelRequest:
    model: str  # the provider's model id, e.g. "gpt-4o-mini"
    messages: tuple[Message, ...]
    max_output: int
    tools: tuple[ToolSpec, ...] = ()
    output_schema: dict[str, Any] | None = None  # JSON Schema the final answer must satisfy
    output_name: str = "output"
    temperature: float | None = None
    logprobs: bool = False  # ask for per-token log-probabilities (OpenAI-style providers only)
    top_logprobs: int = 0
    stream: bool = False  # use the provider's streaming (SSE) API
    metadata: dict[str, str] = field(default_factory=dict)  # sent as `x-vox-*` headers (run, agent, step)


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0  # all prompt tokens, cached ones included
    output_tokens: int = 0
    cached_input_tokens: int = 0  # prompt tokens read from the provider's cache
    cache_creation_tokens: int = 0  # prompt tokens written to it (Anthropic)


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class ModelResponse:
    text: str  # the answer's text (for a structured output: its JSON)
    tool_calls: tuple[ToolCall, ...]
    usage: Usage
    finish: str  # stop length tool_calls halted
    model: str = ""
    logprobs: tuple[TokenLogprob, ...] | None = None
    provider_id: str = ""  # the provider's response id


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of a streamed reply, given to a request's observer as it arrives."""

    text: str = ""
    logprobs: tuple[TokenLogprob, ...] = ()
    # a failed stream is being retried from the start: forget the deltas seen so far
    restart: bool = False


# An observer sees each delta of a streamed reply; returning False stops the stream (the
# response then has ``finish == "halted"``). Gates use it to halt on low confidence.
Observer = Callable[[Delta], bool]
