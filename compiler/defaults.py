"""What a program gets for what it leaves out: every default, in one place.

The compiler's analyses use these values, and lowering writes them into the plan, so the runtime
never applies a default of its own: what it sends and waits for is what the compiler checked
(spec/plan.md, "Defaults"). A default changes here or nowhere; changing one changes what the
plan means, so it also bumps ``plan_version``.

>>> max_output(None, None), max_output(None, 512), max_output(300, 8_192)
(1024, 512, 300)
>>> tool_timeout_ms(None), tool_timeout_ms(5_000), provider_timeout_ms(None)
(30000, 5000, 60000)
>>> top_logprobs({"entropy", "confidence"}), top_logprobs({"confidence"})
(5, 0)
>>> base_url("anthropic", None), base_url("openai_compatible", None)
('https://api.anthropic.com', None)
"""

from __future__ import annotations

from collections.abc import Collection

from vox.compiler.signals import SIGNALS

MAX_OUTPUT = 1_024
"""Tokens a model without `max_output` may write in one reply, and what each of its calls
reserves (capped at its `context`, when that is smaller)."""

BASE_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
"""The endpoint of a provider without `base_url`, by protocol. `openai_compatible` has none (the
server is whatever the program names), and `sim` is always served by the built-in simulator."""

PROVIDER_TIMEOUT_MS = 60_000
"""Time limit of one request to a provider without `timeout`."""

TOOL_TIMEOUT_MS = 30_000
"""Time limit of one attempt of a tool without `timeout`."""

TOOL_COST_MICROS = 0
"""What one attempt of a tool without `cost` costs."""

ENTROPY_TOP_LOGPROBS = 5
"""Alternatives per token requested from a model whose agent's gates read `entropy`: the entropy
is computed over them, so a threshold means what it meant when it was written."""


def max_output(declared: int | None, context: int | None) -> int:
    """A model's `max_output`: as declared, else :data:`MAX_OUTPUT` but never above its `context`."""
    if declared is not None:
        return declared
    return MAX_OUTPUT if context is None else min(MAX_OUTPUT, context)


def base_url(protocol: str, declared):
    """A provider's `base_url`: as declared (a string or an `env(...)`), else its protocol's endpoint."""
    return BASE_URLS.get(protocol) if declared is None else declared


def provider_timeout_ms(declared: int | None) -> int:
    """A provider's request `timeout` in milliseconds."""
    return PROVIDER_TIMEOUT_MS if declared is None else declared


def tool_timeout_ms(declared: int | None) -> int:
    """A tool's per-attempt `timeout` in milliseconds."""
    return TOOL_TIMEOUT_MS if declared is None else declared


def tool_cost_micros(declared: int | None) -> int:
    """A tool's `cost` per attempt, in micro-dollars."""
    return TOOL_COST_MICROS if declared is None else declared


def top_logprobs(signals: Collection[str]) -> int:
    """Alternatives per token an agent's requests ask for, from the signals its gates read."""
    return ENTROPY_TOP_LOGPROBS if any(SIGNALS[n].alternatives for n in signals if n in SIGNALS) else 0
