"""What the analyses find out about a checked program, besides diagnostics.

The plan, the language server (hover) and the runtime's pre-flight read these values; none of
them re-derive a bound or a label. Every analysis is a pure function of the HIR
(:class:`vox.compiler.hir.nodes.Program`) that returns one of these reports and writes its
diagnostics into a :class:`~vox.compiler.diagnostics.model.DiagnosticSink`.

Money is integer micro-dollars, durations integer milliseconds. ``None`` in a bound means
"unbounded" (no cap and nothing to derive one from).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vox.compiler.source import Span, span_field

# ---- budgets (V2) --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bound:
    """Worst case of one call of an agent or flow (or one call site), per dimension."""

    cost_micros: int | None = 0
    tokens: int | None = 0
    wall_ms: int | None = 0  # None: no declared limit on this path (the caller's deadline applies)
    model_calls: int | None = 0
    tool_calls: int | None = 0

    DIMENSIONS = ("cost_micros", "tokens", "wall_ms", "model_calls", "tool_calls")


@dataclass(frozen=True, slots=True)
class BoundItem:
    """One line of a breakdown: a call site (or a model/tool inside an agent) and what it adds."""

    what: str  # human text: "triager(...)", "search_kb(...) ×2 in par", "4 calls of lookup_order"
    callee: str | None  # the agent/flow/tool/model name, if any
    kind: str  # agent flow tool model gate
    multiplier: int  # loop bounds multiplied in (1 outside loops)
    bound: Bound  # already multiplied
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class CallableBound:
    """The bound of an agent or flow, and where each part comes from (hover shows this)."""

    name: str
    kind: str  # agent flow
    bound: Bound  # what a caller must afford: the declared cap where there is one, else derived
    derived: Bound  # computed from the callees / prices alone, ignoring the own caps
    from_caps: frozenset[str]  # dimensions of ``bound`` taken from declared caps
    items: tuple[BoundItem, ...]


@dataclass(frozen=True)
class BudgetReport:
    bounds: dict[str, CallableBound] = field(default_factory=dict)  # by agent/flow name


# ---- sensitivity labels (V3) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SinkUse:
    """Labelled data reaching a sink: a model's provider, a tool argument, a judge, a URL."""

    owner: str  # the agent, flow or gate where it happens
    kind: str  # model tool tool_choice judge url
    sink: str  # model or tool name
    cleared: frozenset[str]  # what the sink may receive
    labels: frozenset[str]  # what reaches it (``public`` is never listed)
    ok: bool
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Declassification:
    owner: str
    labels: frozenset[str]  # the labels the value carried before
    reason: str
    span: Span = span_field()


@dataclass(frozen=True)
class LabelReport:
    sinks: tuple[SinkUse, ...] = ()
    declassifications: tuple[Declassification, ...] = ()
    redactions: tuple[tuple[str, Span, frozenset[str]], ...] = ()  # (owner, span of the redact(...) call, labels it lowers)
    outputs: dict[str, frozenset[str]] = field(default_factory=dict)  # labels of each agent/flow result
    values: dict[tuple[int, int], frozenset[str]] = field(default_factory=dict)  # expr span → labels (hover)


# ---- effects and receipts (V4) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EffectSite:
    """A place where an effectful tool can run: a flow's call, or an agent that may call it."""

    owner: str  # flow or agent
    tool: str
    effect: str  # write external (read and pure tools are not listed)
    receipted: bool
    idempotent: bool
    approval: bool  # `approval: human`: the run pauses here
    span: Span = span_field()


@dataclass(frozen=True)
class EffectReport:
    sites: tuple[EffectSite, ...] = ()
    receipted_tools: frozenset[str] = frozenset()
    approval_tools: frozenset[str] = frozenset()


# ---- gates (V5) -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateReport:
    signals: dict[str, frozenset[str]] = field(default_factory=dict)  # agent → runtime signals its gates read
    extra_samples: dict[str, int] = field(default_factory=dict)  # agent → most extra samples per output
    judges: dict[str, tuple[str, ...]] = field(default_factory=dict)  # agent → judge models its gates call


@dataclass(frozen=True)
class Analysis:
    budgets: BudgetReport = field(default_factory=BudgetReport)
    labels: LabelReport = field(default_factory=LabelReport)
    effects: EffectReport = field(default_factory=EffectReport)
    gates: GateReport = field(default_factory=GateReport)
