"""Mock scripts: the turns a test installs for a run's agents, and `$receipt` substitution.

A script is a list of turns per agent; each request from (run, agent) consumes the next one:

* ``{"reply": VALUE}`` — the final, structured answer (plain text when VALUE is a string and the
  request asks for no schema);
* ``{"call": {"tool": NAME, "args": {...}}}`` — a tool call (``{"calls": [...]}`` for several at
  once);
* ``{"text": "..."}`` — plain text, even when the request asks for a schema (to test repair).

Any turn may add ``"confidence": P`` (0 < P <= 1): every token of the answer then has
probability P in its logprobs, so gates on confidence and entropy can be driven from a test.

>>> substitute_receipts({"refund": {"$receipt": "issue_refund"}}, lambda tool: "rcpt_" + tool)
{'refund': 'rcpt_issue_refund'}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from vox.runtime.sim.generate import MISSING_RECEIPT


class ScriptError(ValueError):
    """A script the simulator cannot follow."""


@dataclass(frozen=True, slots=True)
class Turn:
    kind: str  # reply | call | text
    value: Any = None  # reply: the value; text: the string
    calls: tuple[tuple[str, Any], ...] = ()  # call: (tool, args) pairs
    confidence: float | None = None


def parse_turn(spec: Any, where: str) -> Turn:
    """A :class:`Turn` from its JSON form; ``where`` names it in errors."""
    if not isinstance(spec, dict):
        raise ScriptError(f"{where}: a turn is a JSON object like {{\"reply\": ...}}")
    confidence = spec.get("confidence")
    if confidence is not None and (
        isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence <= 1
    ):
        raise ScriptError(f"{where}: confidence must be a number in (0, 1]")
    kinds = [k for k in ("reply", "call", "calls", "text") if k in spec]
    extra = sorted(set(spec) - {"reply", "call", "calls", "text", "confidence"})
    if len(kinds) != 1 or extra:
        raise ScriptError(f"{where}: a turn has exactly one of reply, call, calls, text (found {sorted(spec)})")
    kind = kinds[0]
    if kind == "reply":
        return Turn("reply", spec["reply"], confidence=confidence)
    if kind == "text":
        if not isinstance(spec["text"], str):
            raise ScriptError(f"{where}: text must be a string")
        return Turn("text", spec["text"], confidence=confidence)
    raw_calls = [spec["call"]] if kind == "call" else spec["calls"]
    if not isinstance(raw_calls, list) or not raw_calls:
        raise ScriptError(f"{where}: calls must be a non-empty list")
    calls = []
    for call in raw_calls:
        if not isinstance(call, dict) or not isinstance(call.get("tool"), str):
            raise ScriptError(f"{where}: a call is {{\"tool\": NAME, \"args\": {{...}}}}")
        args = call.get("args", {})
        if not isinstance(args, dict):
            raise ScriptError(f"{where}: a call's args must be a JSON object")
        calls.append((call["tool"], args))
    return Turn("call", calls=tuple(calls), confidence=confidence)


def parse_scripts(spec: Any) -> dict[str, list[Turn]]:
    """The ``scripts`` object of ``POST /_sim/runs/{run}``: agent name → turns."""
    if not isinstance(spec, dict):
        raise ScriptError("scripts must be an object mapping agent names to lists of turns")
    out = {}
    for agent, turns in spec.items():
        if not isinstance(turns, list):
            raise ScriptError(f"scripts.{agent}: expected a list of turns")
        out[agent] = [parse_turn(t, f"scripts.{agent}[{i}]") for i, t in enumerate(turns)]
    return out


def substitute_receipts(value: Any, receipt_for: Callable[[str], str]) -> Any:
    """``value`` with every ``{"$receipt": TOOL}`` replaced by ``receipt_for(TOOL)``."""
    if isinstance(value, dict):
        if len(value) == 1 and "$receipt" in value and isinstance(value["$receipt"], str):
            return receipt_for(value["$receipt"])
        return {k: substitute_receipts(v, receipt_for) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_receipts(v, receipt_for) for v in value]
    return value


def receipt_finder(tool_results: list[tuple[str, str]]) -> Callable[[str], str]:
    """Look up receipts in a conversation's tool results ``(tool name, content text)``, in order.

    The receipt of ``tool`` is the ``receipt`` field of the latest result of a call of ``tool``
    that has one (results are JSON like ``{"result": ..., "receipt": "rcpt_..."}``), else
    :data:`MISSING_RECEIPT`.

    >>> find = receipt_finder([("pay", '{"result": 1, "receipt": "rcpt_1"}'), ("pay", '{"error": "x"}')])
    >>> find("pay"), find("other")
    ('rcpt_1', 'rcpt_missing')
    """

    def find(tool: str) -> str:
        for name, content in reversed(tool_results):
            if name != tool:
                continue
            try:
                data = json.loads(content)
            except (ValueError, TypeError):
                continue
            if isinstance(data, dict) and isinstance(data.get("receipt"), str):
                return data["receipt"]
        return MISSING_RECEIPT

    return find
