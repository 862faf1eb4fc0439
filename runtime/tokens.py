"""Counting a request's prompt tokens before it is sent, for the budget reservation.

Before each model call the executor reserves the prompt's tokens plus the whole ``max_output``
(see :mod:`vox.runtime.budget`). :func:`count_request` gives the prompt part:

* **Exact tokenizer where one fits.** OpenAI models (``o200k_base`` / ``cl100k_base``,
  ``o200k_harmony`` for gpt-oss), Llama 3 and Qwen 2/2.5/3 are counted with the bundled
  ``quicktok`` encodings, which agree token for token with tiktoken. The text of every message,
  every tool call's name and arguments, every tool spec and the output schema's JSON are counted.
* **Template overheads on top.** OpenAI documents about 3 tokens per message plus 3 to prime the
  reply; chat templates of open models cost a few more (Llama 3: 5 per message and 4 for the
  reply header; Qwen: 5 and 3), so :data:`OVERHEADS` holds a generous figure per protocol. Tool
  specs are counted as their JSON, which is longer than the compact form providers render them
  in, plus a fixed amount per tool and for the tool-use preamble.
* **A conservative over-estimate elsewhere.** Claude's tokenizers are not public (the exact
  count is an API call, too slow for every step and impossible offline), and an unknown model
  may have any tokenizer. For those, the request's text counts as::

      max(ceil(1.25 * max(count under each bundled encoding)), ceil(utf8_bytes / 3))

  The bundled encodings are cl100k, o200k, Llama 3 and Qwen 3, so the estimate is never below
  any of them (they differ more than one might think: Qwen splits numbers into single digits,
  cl100k spends twice o200k's tokens on Arabic or Chinese); the 25 % margin stands for a tokenizer
  up to a quarter less efficient than the worst of them on this text, and the bytes/3 floor for
  text on which all of them happen to be unusually efficient. Measured on this repository's
  README the estimate is 1.33x the cl100k count; on faker-generated English word lists 1.87x
  (the bytes floor); on JSON 1.5x; on German, French, Chinese, Japanese, Arabic, Hindi and Russian
  text 1.25x to 1.3x the worst bundled count. There is no Claude tokenizer to check against
  offline, so this is a margin, not a proof: what proves it is the settle after the call.
  For Anthropic requests with tools, Anthropic's documented tool-use system prompt (up to
  about 350 tokens per request on current models) is added too.

Reservations are meant to be over-estimates: when a provider reports more prompt tokens than
were counted, the budget records an ``Overshoot`` (visible in the live view and the trace).

>>> from vox.runtime.providers.messages import Message
>>> count_request("gpt-4o-mini", "openai", [Message("user", "Hello, world!")])
11
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Iterable, Sequence

import quicktok

from .providers.messages import Message, ModelRequest, ToolSpec

#: Encodings the conservative estimate takes the maximum of.
BUNDLED = ("cl100k_base", "o200k_base", "llama3", "qwen3")
#: Margin of the conservative estimate over the worst bundled encoding, as a fraction.
MARGIN_NUM, MARGIN_DEN = 5, 4
#: Floor of the conservative estimate: one token per this many UTF-8 bytes.
BYTES_PER_TOKEN_FLOOR = 3

# Ids quicktok's own table gets wrong or does not know ("gpt-4.1" would match its "gpt-4" prefix
# and get cl100k). Checked before quicktok's table; longest prefix wins.
_OWN_PREFIXES: dict[str, str] = {
    "gpt-4.1": "o200k_base",
    "gpt-4.5": "o200k_base",
    "gpt-5": "o200k_base",
    "gpt-4o": "o200k_base",
    "chatgpt-4o": "o200k_base",
    "o1": "o200k_base",
    "o3": "o200k_base",
    "o4": "o200k_base",
    "gpt-oss": "o200k_harmony",
    "gpt-4": "cl100k_base",
    "gpt-3.5": "cl100k_base",
    "text-embedding-3": "cl100k_base",
}
_NEVER_EXACT = ("claude", "anthropic")


# The protocols' overheads are defined once, in the compiler, whose prompt estimate uses them too.
from vox.compiler.requests import DEFAULT_OVERHEADS as _DEFAULT_OVERHEADS  # noqa: E402
from vox.compiler.requests import OVERHEADS, Overheads  # noqa: E402,F401


@lru_cache(maxsize=None)
def _encoding(name: str) -> Any:
    return quicktok.get_encoding(name)


def _normalise(model_id: str) -> str:
    m = model_id.strip().lower()
    if m.startswith("ft:"):  # fine-tuned OpenAI model: ft:gpt-4o-mini:org::id
        m = m[3:].split(":", 1)[0]
    m = m.rsplit("/", 1)[-1]  # provider or organisation prefix: meta-llama/..., openai/...
    return m.replace(":", "-")  # ollama style: qwen3:8b


@lru_cache(maxsize=4096)
def encoding_name(model_id: str, protocol: str = "openai") -> str | None:
    """The bundled encoding that counts ``model_id`` exactly, or ``None`` (use the over-estimate).

    >>> encoding_name("gpt-4.1-mini"), encoding_name("meta-llama/Llama-3.1-8B-Instruct")
    ('o200k_base', 'llama3')
    >>> encoding_name("claude-sonnet-4-5", "anthropic") is None
    True
    """
    if protocol == "anthropic":
        return None
    m = _normalise(model_id)
    if not m or any(m.startswith(p) for p in _NEVER_EXACT):
        return None
    for prefix in sorted(_OWN_PREFIXES, key=len, reverse=True):
        if m == prefix or m.startswith(prefix + "-") or m.startswith(prefix + "."):
            return _OWN_PREFIXES[prefix]
    try:
        return quicktok.encoding_for_model(m).name
    except KeyError:
        return None


def _clean(text: str) -> str:
    # A lone surrogate cannot be tokenized; it goes on the wire escaped (\udXXX), so count that.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _count(enc: Any, text: str) -> int:
    try:
        return enc.count(text)
    except TypeError:
        return enc.count(_clean(text))


def count_text(model_id: str, text: str, protocol: str = "openai") -> int:
    """Tokens of one text for this model: exact, or the conservative over-estimate."""
    name = encoding_name(model_id, protocol)
    if name is not None:
        return _count(_encoding(name), text)
    return conservative_count([text])


def conservative_count(texts: Iterable[str]) -> int:
    """The over-estimate for a model without a bundled tokenizer (see the module docstring).

    >>> conservative_count(["Hello, world!"])  # cl100k and o200k: 4 tokens; 13 bytes
    5
    """
    texts = [t for t in texts if t]
    if not texts:
        return 0
    worst = max(sum(_count(_encoding(name), t) for t in texts) for name in BUNDLED)
    n_bytes = sum(len(t.encode("utf-8", "backslashreplace")) for t in texts)
    by_margin = -(-worst * MARGIN_NUM // MARGIN_DEN)  # ceiling, in integers
    by_bytes = -(-n_bytes // BYTES_PER_TOKEN_FLOOR)
    return max(by_margin, by_bytes)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)


_JSON_OF: dict[int, tuple[Any, str]] = {}  # id → (the value, kept alive so the id stays its own; its JSON)


def _json_of(value: Any) -> str:
    """:func:`_json` of a schema the plan owns (an output schema, a tool's parameters): the same
    dicts come back on every call of an agent, so their text is made once. The plan's schemas
    are never changed in place."""
    hit = _JSON_OF.get(id(value))
    if hit is not None and hit[0] is value:
        return hit[1]
    text = _json(value)
    if len(_JSON_OF) >= 4096:
        _JSON_OF.clear()
    _JSON_OF[id(value)] = (value, text)
    return text


@lru_cache(maxsize=4096)
def _count_stable(name: str, text: str) -> int:
    """Tokens of a text that recurs on every call (tool specs, output schemas)."""
    return _count(_encoding(name), text)


def _stable_texts(tools: Sequence[ToolSpec], output_schema: dict[str, Any] | None) -> list[str]:
    texts: list[str] = []
    for t in tools:
        texts.append(t.name)
        texts.append(t.description)
        texts.append(_json_of(t.parameters))
    if output_schema is not None:
        texts.append(_json_of(output_schema))
    return texts


def request_texts(messages: Sequence[Message], tools: Sequence[ToolSpec] = (), output_schema: dict[str, Any] | None = None) -> list[str]:
    """Every piece of text of a request that the model reads, in order."""
    texts: list[str] = []
    for m in messages:
        texts.append(m.role)
        if m.content:
            texts.append(m.content)
        if m.tool_name:
            texts.append(m.tool_name)
        if m.tool_call_id:
            texts.append(m.tool_call_id)
        for call in m.tool_calls:
            texts.append(call.id)
            texts.append(call.name)
            texts.append(call.raw_arguments or _json(call.arguments))
    texts.extend(_stable_texts(tools, output_schema))
    return texts


def count_request(
    model_id: str,
    protocol: str,
    messages: Sequence[Message],
    tools: Sequence[ToolSpec] = (),
    output_schema: dict[str, Any] | None = None,
) -> int:
    """Prompt tokens of a request, counted before it is sent (never fewer than the model reads,
    as far as the overheads in :data:`OVERHEADS` hold).
    """
    name = encoding_name(model_id, protocol)
    if name is not None:
        enc = _encoding(name)
        text_tokens = sum(_count(enc, t) for t in request_texts(messages) if t)
        text_tokens += sum(_count_stable(name, t) for t in _stable_texts(tools, output_schema) if t)
    else:
        text_tokens = conservative_count(request_texts(messages, tools, output_schema))
    o = OVERHEADS.get(protocol, _DEFAULT_OVERHEADS)
    overhead = o.per_request + o.per_message * len(messages)
    if tools:
        overhead += o.tools_preamble + o.per_tool * len(tools)
    for m in messages:
        overhead += 3 * len(m.tool_calls)  # delimiters around each call
    return text_tokens + overhead


def reservation_tokens(request: ModelRequest, protocol: str) -> int:
    """What a call reserves in the ``tokens`` dimension: the prompt plus the whole ``max_output``."""
    return count_request(request.model, protocol, request.messages, request.tools, request.output_schema) + request.max_output


def is_exact(model_id: str, protocol: str = "openai") -> bool:
    """Whether the model's text is counted with its own tokenizer (else over-estimated)."""
    return encoding_name(model_id, protocol) is not None


# ---- what a call costs ---------------------------------------------------------------------------
#
# Both are rounded up to the micro-dollar once per attempt, as the compiler's bound assumes
# (compiler/analysis/budgets.py, ROUNDING_MICROS): rounding each kind of token apart would add up
# to a micro-dollar per kind, and could take a reported charge past its own reservation.


def usage_cost(price: Any, usage: Any) -> int:
    """Micro-dollars one attempt cost, from the usage the provider reported: prompt tokens at
    `input`, those read from the prompt cache at `cached_input` and those written to it at
    `cache_write` (each `input` where the model declares none), output tokens at `output`.

    ``price`` is the plan's price of the model (``None`` or ``free``: nothing), ``usage`` a
    :class:`~vox.runtime.providers.messages.Usage` (its ``input_tokens`` include the cached and
    written ones).

    >>> from vox.compiler.plan.model import Price
    >>> from vox.runtime.providers.messages import Usage
    >>> sonnet = Price(input_micros=3_000_000, output_micros=15_000_000, cached_input_micros=300_000,
    ...                cache_write_micros=3_750_000)
    >>> usage_cost(sonnet, Usage(input_tokens=1_000, output_tokens=100, cached_input_tokens=200,
    ...                          cache_creation_tokens=600))  # 200 × $3 + 200 × $0.30 + 600 × $3.75 + 100 × $15
    4410
    >>> usage_cost(Price(input_micros=150_000), Usage(input_tokens=1))  # rounded up, once
    1
    """
    if price is None or price.free:
        return 0
    total = max(usage.input_tokens, 0)
    cached = min(max(usage.cached_input_tokens, 0), total)
    written = min(max(usage.cache_creation_tokens, 0), total - cached)
    plain = total - cached - written
    cached_price = price.cached_input_micros if price.cached_input_micros is not None else price.input_micros
    write_price = price.cache_write_micros if price.cache_write_micros is not None else price.input_micros
    exact = (plain * price.input_micros + cached * cached_price + written * write_price
             + max(usage.output_tokens, 0) * price.output_micros)
    return -(-exact // 1_000_000)


def reservation_cost(price: Any, prompt: int, max_output: int) -> int:
    """Micro-dollars one attempt reserves: its ``prompt`` tokens at the dearest price a prompt
    token may be billed at (input, cached input or cache write) and its whole ``max_output`` at
    `output`. Never less than :func:`usage_cost` of any usage within those counts.

    >>> from vox.compiler.plan.model import Price
    >>> sonnet = Price(input_micros=3_000_000, output_micros=15_000_000, cache_write_micros=3_750_000)
    >>> reservation_cost(sonnet, 1_000, 100)  # 1_000 × $3.75 + 100 × $15
    5250
    """
    if price is None or price.free:
        return 0
    dearest = max(price.input_micros, price.cached_input_micros or 0, price.cache_write_micros or 0)
    return -(-(prompt * dearest + max_output * price.output_micros) // 1_000_000)
