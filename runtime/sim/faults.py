"""Faults injected on demand: error statuses, timeouts, malformed and truncated bodies, latency.

A fault matches requests by the optional filters ``protocol``, ``run``, ``agent`` and ``step``,
and hits the next ``count`` of them (``latency`` hits every match while installed, unless it has
a ``count``). Faults are tried in the order they were installed; the first that matches wins,
and any matching latency is added before it.

A request hit by a fault consumes no script turn and leaves the prompt cache alone: the client's
retry gets the answer the failed attempt would have got.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KINDS = ("status", "timeout", "malformed", "truncate", "latency")
_FILTERS = ("protocol", "run", "agent", "step")


class FaultSpecError(ValueError):
    """A fault description the simulator does not understand."""


@dataclass(slots=True)
class Fault:
    kind: str
    remaining: int | None  # None: unlimited
    protocol: str | None = None
    run: str | None = None
    agent: str | None = None
    step: str | None = None
    status: int = 500
    retry_after: float | None = None
    message: str | None = None
    delay_s: float = 30.0
    ms: int = 0
    token_ms: int = 0
    hits: int = 0

    def matches(self, protocol: str, run: str, agent: str, step: str) -> bool:
        return (
            (self.remaining is None or self.remaining > 0)
            and (self.protocol is None or self.protocol == protocol)
            and (self.run is None or self.run == run)
            and (self.agent is None or self.agent == agent)
            and (self.step is None or self.step == step)
        )

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "remaining": self.remaining, "hits": self.hits}
        out.update({k: getattr(self, k) for k in _FILTERS if getattr(self, k) is not None})
        if self.kind == "status":
            out.update(status=self.status, retry_after=self.retry_after)
        elif self.kind == "timeout":
            out["delay_s"] = self.delay_s
        elif self.kind == "latency":
            out.update(ms=self.ms, token_ms=self.token_ms)
        return out


def parse_fault(spec: Any) -> Fault:
    """A :class:`Fault` from its JSON description (see the module docstring)."""
    if not isinstance(spec, dict):
        raise FaultSpecError("a fault is a JSON object")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise FaultSpecError(f"unknown fault kind {kind!r}; kinds: {', '.join(KINDS)}")
    known = {"kind", "count", "status", "retry_after", "message", "delay_s", "ms", "token_ms", *_FILTERS}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise FaultSpecError(f"unknown fault field(s): {', '.join(unknown)}")
    count = spec.get("count", None if kind == "latency" else 1)
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
        raise FaultSpecError("count must be a non-negative integer")
    fault = Fault(kind=kind, remaining=count)
    for name in _FILTERS:
        value = spec.get(name)
        if value is not None and not isinstance(value, str):
            raise FaultSpecError(f"{name} must be a string")
        setattr(fault, name, value)
    if fault.protocol not in (None, "openai", "anthropic"):
        raise FaultSpecError("protocol must be 'openai' or 'anthropic'")
    try:
        if kind == "status":
            fault.status = int(spec.get("status", 500))
            if not 400 <= fault.status <= 599:
                raise FaultSpecError("status must be between 400 and 599")
            retry = spec.get("retry_after")
            fault.retry_after = None if retry is None else float(retry)
            fault.message = spec.get("message")
        elif kind == "timeout":
            fault.delay_s = float(spec.get("delay_s", 30.0))
        elif kind == "latency":
            fault.ms = int(spec.get("ms", 0))
            fault.token_ms = int(spec.get("token_ms", 0))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, FaultSpecError):
            raise
        raise FaultSpecError(f"bad number in fault: {exc}") from None
    return fault


class FaultSet:
    """The installed faults, in installation order."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.injected: dict[str, int] = {}

    def install(self, specs: list[Any]) -> list[Fault]:
        new = [parse_fault(s) for s in specs]  # all or nothing
        self.faults.extend(new)
        return new

    def clear(self) -> None:
        self.faults.clear()

    def take(self, protocol: str, run: str, agent: str, step: str) -> tuple[Fault | None, int, int]:
        """The fault that hits this request (consumed), and the latency and per-token pacing to add."""
        if not self.faults:
            return None, 0, 0
        latency = token_ms = 0
        hit = None
        for fault in self.faults:
            if not fault.matches(protocol, run, agent, step):
                continue
            if fault.kind == "latency":
                latency += fault.ms
                token_ms = max(token_ms, fault.token_ms)
                self._use(fault)
            elif hit is None:
                hit = fault
                self._use(fault)
        return hit, latency, token_ms

    def _use(self, fault: Fault) -> None:
        fault.hits += 1
        if fault.remaining is not None:
            fault.remaining -= 1
        label = f"{fault.kind}:{fault.status}" if fault.kind == "status" else fault.kind
        self.injected[label] = self.injected.get(label, 0) + 1
