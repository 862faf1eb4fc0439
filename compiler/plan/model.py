"""The plan: what the runtime executes, as frozen pydantic models (see spec/plan.md).

A plan is self-contained: the runtime never reads source text. It names secrets only by the
environment variable that holds them, never by value. :class:`Plan` checks on load that every
name it uses (a model's provider, an agent's tools, a call's callee, a named type, ...) is
declared in it, so a runtime can index into it without guarding every lookup. Defaults are
filled in (compiler/defaults.py): a runtime reads each value as it is and derives none of its own.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator

from vox.compiler.plan.ir import (
    CallExpr,
    DeclType,
    EnumType,
    Expr,
    FieldValue,
    ForExpr,
    Node,
    PlanType,
    RateUnit,
    ReceiptType,
    RecordType,
    Step,
)
from vox.compiler.signals import SIGNALS

PLAN_VERSION = 4
SUPPORTED_PLAN_VERSIONS = (4,)

JsonSchema = dict[str, Any]

# The runtime signals a gate may read, with their arguments. A call of one in the plan spells out
# every argument, so the runtime has nothing to default (the language requires them all).
SIGNAL_PARAMS: dict[str, tuple[str, ...]] = {s.name: tuple(p.name for p in s.params) for s in SIGNALS.values()}


class Loc(Node):
    """Where a declaration starts in the source (1-based line and column)."""

    line: int
    col: int


# ---- providers and models -------------------------------------------------------------------------


class EnvValue(Node):
    """A value read from the environment when the run starts: ``env``, else ``default``."""

    env: str
    default: str | None = None


class Provider(Node):
    name: str
    protocol: Literal["openai", "anthropic", "openai_compatible", "sim"]
    base_url: str | EnvValue | None  # the protocol's endpoint filled in; None: none (sim, openai_compatible)
    key_env: str | None  # the NAME of the environment variable holding the API key; never a value
    clearance: tuple[str, ...]  # labels this provider may receive (sorted)
    zdr: bool = False  # zero data retention agreed
    region: str | None = None
    timeout_ms: int = Field(gt=0)  # of one request; the default filled in (compiler/defaults.py)
    loc: Loc


class Price(Node):
    """Integer micro-dollars per 1M tokens; ``free`` models cost nothing."""

    free: bool = False
    input_micros: int = Field(0, ge=0)
    output_micros: int = Field(0, ge=0)
    cached_input_micros: int | None = Field(None, ge=0)
    cache_write_micros: int | None = Field(None, ge=0)  # writing a prompt-cache entry; None: billed as input


class Model(Node):
    name: str
    provider: str
    model_id: str
    context: int | None
    max_output: int  # what every call asks for and reserves; the default filled in (compiler/defaults.py)
    price: Price | None  # None: no price declared (no budgeted path may use it)
    capabilities: tuple[str, ...]  # tools logprobs json_schema prompt_cache ..., no_logprobs (sorted)
    loc: Loc


# ---- named types ----------------------------------------------------------------------------------


class FieldDef(Node):
    name: str
    type: PlanType
    labels: tuple[str, ...] = ()


class RecordDef(Node):
    kind: Literal["record"] = "record"
    name: str
    fields: tuple[FieldDef, ...]
    json_schema: JsonSchema  # strict-mode JSON Schema of a value of this record


class EnumDef(Node):
    kind: Literal["enum"] = "enum"
    name: str
    variants: tuple[str, ...]
    json_schema: JsonSchema


class AliasDef(Node):
    """``type Name = T`` where T is not a record literal: another name for T."""

    kind: Literal["alias"] = "alias"
    name: str
    type: PlanType
    json_schema: JsonSchema


TypeDef = Annotated[Union[RecordDef, EnumDef, AliasDef], Field(discriminator="kind")]


# ---- tools and gates ------------------------------------------------------------------------------


class Param(Node):
    name: str
    type: PlanType
    labels: tuple[str, ...] = ()


class TemplateText(Node):
    part: Literal["text"] = "text"
    text: str  # literal text, braces already unescaped


class TemplatePlaceholder(Node):
    """``{a.b.c}``: a parameter, then field names. In a URL, the value is URL-encoded."""

    part: Literal["placeholder"] = "placeholder"
    path: tuple[str, ...]


TemplatePart = Annotated[Union[TemplateText, TemplatePlaceholder], Field(discriminator="part")]


class Template(Node):
    parts: tuple[TemplatePart, ...]


class Binding(Node):
    """How a tool runs: ``python`` calls ``target`` ("pkg.mod:func") with the arguments by name;
    ``http`` sends ``method`` to the URL ``target`` with placeholders filled from ``url``."""

    kind: Literal["python", "http"]
    target: str
    method: str | None = None
    url: Template | None = None  # the parts of ``target`` for an http binding


class Tool(Node):
    name: str
    params: tuple[Param, ...]
    result: PlanType
    result_labels: tuple[str, ...] = ()
    params_schema: JsonSchema  # strict-mode object schema of the arguments (a model's tool definition)
    result_schema: JsonSchema  # JSON Schema of the result value
    effect: Literal["pure", "read", "write", "external"] | None
    timeout_ms: int = Field(gt=0)  # per attempt; the default filled in (compiler/defaults.py)
    cost_micros: int = Field(ge=0)  # per attempt; 0 when none is declared
    retries: int
    idempotent: bool
    approval: Literal["human"] | None  # `human`: the run pauses before each call until approved
    clearance: tuple[str, ...]  # labels its arguments may carry (public only when empty)
    declassifies: tuple[str, ...] = ()  # labels of its arguments its result does not carry (audited)
    binding: Binding | None
    receipted: bool  # every call is signed into the run's receipt ledger
    loc: Loc


class GateCheck(Node):
    cond: Expr  # true: passes; reads the gate's parameter and runtime signals
    action: Literal["retry", "fallback", "ask_human", "abstain", "halt"]
    retries: int | None = None  # for `retry(n)`
    line: int
    col: int


class Gate(Node):
    name: str
    param: Param | None
    checks: tuple[GateCheck, ...]
    loc: Loc


# ---- budgets and bounds ---------------------------------------------------------------------------


class Caps(Node):
    """Declared caps; None where not declared. Hard limits, enforced by the runtime."""

    tokens: int | None = Field(None, ge=0)
    cost_micros: int | None = Field(None, ge=0)
    steps: int | None = Field(None, ge=0)
    tool_calls: int | None = Field(None, ge=0)
    depth: int | None = Field(None, ge=1)  # activations of the flow on the stack at once
    wall_ms: int | None = Field(None, ge=0)


class BoundValues(Node):
    """A worst case per dimension; None is unbounded (for wall time: no declared limit on the path)."""

    cost_micros: int | None
    tokens: int | None
    wall_ms: int | None
    model_calls: int | None
    tool_calls: int | None


class BoundItem(Node):
    """One line of a breakdown: a call site and what it adds (already multiplied by ``multiplier``)."""

    what: str
    callee: str | None
    kind: str  # agent flow tool model gate
    multiplier: int
    bound: BoundValues
    line: int | None = None
    col: int | None = None


class Bound(Node):
    """What one call of an agent or flow may spend at most, and where it comes from."""

    bound: BoundValues  # what a caller must afford (the declared cap where there is one)
    derived: BoundValues  # computed from callees and prices alone
    from_caps: tuple[str, ...]  # dimensions of ``bound`` taken from declared caps
    items: tuple[BoundItem, ...]


class Rate(Node):
    amount: int  # micro-dollars for cost; a count for requests and tokens
    per: RateUnit


class RunBudget(Node):
    """`budget fleet` / `budget tenant`: cost per period is reserved at pre-flight; request and token
    rates are throttles applied while running."""

    scope: Literal["fleet", "tenant"]
    cost: Rate | None = None
    requests: Rate | None = None
    tokens: Rate | None = None


# ---- agents and flows -----------------------------------------------------------------------------


class Compaction(Node):
    strategy: str  # summarize truncate
    keep_last: int


class Agent(Node):
    name: str
    params: tuple[Param, ...]
    result: PlanType
    result_labels: tuple[str, ...] = ()  # labels the output carries (from the label analysis)
    result_schema: JsonSchema  # JSON Schema of the result value
    output_schema: JsonSchema  # strict-mode object schema to request from the model
    output_wrapped: bool  # True: output_schema is {"value": result}; unwrap the reply's `value`
    model: str
    fallback: tuple[str, ...]  # tried in order after ``model``; `fallback` on the last one abstains
    tools: tuple[str, ...]
    caps: Caps
    gates: tuple[str, ...]
    compaction: Compaction | None
    prompt: Template | None
    system: Template | None
    temperature: float | None
    signals: tuple[str, ...] = ()  # runtime signals its gates read (request logprobs for entropy, ...)
    top_logprobs: int  # alternatives per token its requests ask for (for `entropy`; 0: none)
    extra_samples: int = 0  # most extra samples a gate takes per output (consistency)
    judges: tuple[str, ...] = ()  # models its gates call as judges
    bound: Bound | None
    loc: Loc


class Flow(Node):
    name: str
    params: tuple[Param, ...]
    result: PlanType
    result_labels: tuple[str, ...] = ()
    caps: Caps
    body: tuple[Step, ...]
    bound: Bound | None
    loc: Loc


# ---- tests ----------------------------------------------------------------------------------------


class MockReply(Node):
    turn: Literal["reply"] = "reply"
    value: Expr


class MockCall(Node):
    """A mocked agent calls ``tool`` (the real tool, or its mock) before replying."""

    turn: Literal["call"] = "call"
    tool: str
    args: tuple[FieldValue, ...]


MockTurn = Annotated[Union[MockReply, MockCall], Field(discriminator="turn")]


class Mock(Node):
    """A scripted agent or tool. A tool's mock has one reply, returned for every call."""

    target: str
    kind: Literal["agent", "tool"]
    turns: tuple[MockTurn, ...]


class Test(Node):
    name: str
    flow: str
    input: tuple[FieldValue, ...]  # the flow's arguments
    mocks: tuple[Mock, ...]
    approve: tuple[str, ...]  # tools whose approval the test grants
    expect: Expr | None  # reads `output`, the flow's result
    loc: Loc


# ---- analysis results ------------------------------------------------------------------------------


class SinkUse(Node):
    owner: str
    kind: str  # model tool tool_choice judge url
    sink: str
    cleared: tuple[str, ...]
    labels: tuple[str, ...]
    ok: bool
    line: int
    col: int


class Declassification(Node):
    owner: str
    labels: tuple[str, ...]
    reason: str
    line: int
    col: int


class Redaction(Node):
    """A `redact(...)` call, at the (line, col) of its call in the IR, and the labels it lowers there:
    those of its argument that the scrubber's detectors cover (compiler/redaction.py)."""

    owner: str
    line: int
    col: int
    lowers: tuple[str, ...] = ()


class EffectSite(Node):
    owner: str
    tool: str
    effect: str
    receipted: bool
    idempotent: bool
    approval: bool  # the run pauses here for a human
    line: int
    col: int


class Analysis(Node):
    sinks: tuple[SinkUse, ...] = ()
    declassifications: tuple[Declassification, ...] = ()
    redactions: tuple[Redaction, ...] = ()
    effect_sites: tuple[EffectSite, ...] = ()
    receipted_tools: tuple[str, ...] = ()
    approval_tools: tuple[str, ...] = ()


# ---- the plan -------------------------------------------------------------------------------------


class Compiler(Node):
    name: Literal["voxc"] = "voxc"
    version: str


class Source(Node):
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Plan(Node):
    """A compiled Vox program. ``plan_hash`` is the sha256 of the compact JSON of everything else, in order."""

    plan_version: Literal[4]
    compiler: Compiler
    source: Source
    plan_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    labels: tuple[str, ...]  # every label, `public` included
    providers: dict[str, Provider]
    models: dict[str, Model]
    types: dict[str, TypeDef]
    tools: dict[str, Tool]
    gates: dict[str, Gate]
    agents: dict[str, Agent]
    flows: dict[str, Flow]
    tests: tuple[Test, ...]
    budgets: dict[str, RunBudget]  # by scope: fleet, tenant
    analysis: Analysis

    @model_validator(mode="after")
    def _names_resolve(self) -> "Plan":
        problems = list(_unresolved_names(self))
        if problems:
            raise ValueError("; ".join(problems[:10]))
        return self


def _unresolved_names(plan: Plan):
    """Every name the plan uses but does not declare, and every signal call or `retry` left
    incomplete, as messages."""
    labels = set(plan.labels)

    def need(table: dict, name: str, what: str, where: str):
        if name not in table:
            yield f"{where} names {what} `{name}`, which the plan does not declare"

    for key, decls in (("providers", plan.providers), ("models", plan.models), ("types", plan.types),
                       ("tools", plan.tools), ("gates", plan.gates), ("agents", plan.agents),
                       ("flows", plan.flows), ("budgets", plan.budgets)):
        for name, decl in decls.items():
            declared = getattr(decl, "name", None) or getattr(decl, "scope", None)
            if declared != name:
                yield f"{key}.{name} holds the declaration of `{declared}`"
    for p in plan.providers.values():
        for label in p.clearance:
            if label not in labels:
                yield f"provider `{p.name}` is cleared for unknown label `{label}`"
    for m in plan.models.values():
        yield from need(plan.providers, m.provider, "provider", f"model `{m.name}`")
    for tool in plan.tools.values():
        for label in tool.clearance:
            if label not in labels:
                yield f"tool `{tool.name}` is cleared for unknown label `{label}`"
    for a in plan.agents.values():
        where = f"agent `{a.name}`"
        for m in (a.model, *a.fallback, *a.judges):
            yield from need(plan.models, m, "model", where)
        for tool in a.tools:
            yield from need(plan.tools, tool, "tool", where)
        for gate in a.gates:
            yield from need(plan.gates, gate, "gate", where)
    for test in plan.tests:
        yield from need(plan.flows, test.flow, "flow", f"test {test.name!r}")
        for mock in test.mocks:
            table = plan.agents if mock.kind == "agent" else plan.tools
            yield from need(table, mock.target, mock.kind, f"test {test.name!r}")
    tables = {"agent": plan.agents, "tool": plan.tools, "flow": plan.flows, "model": plan.models,
              "gate": plan.gates, "provider": plan.providers}
    positions: dict[str, str] = {}
    for node, where in walk_plan(plan):
        if isinstance(node, (RecordType, EnumType)):
            yield from need(plan.types, node.name, "type", where)
        elif isinstance(node, ReceiptType):
            yield from need(plan.tools, node.tool, "tool", where)
        elif isinstance(node, DeclType) and node.decl in tables:
            yield from need(tables[node.decl], node.name, node.decl, where)
        elif isinstance(node, CallExpr) and node.kind in ("agent", "tool", "flow"):
            yield from need(tables[node.kind], node.name, node.kind, where)
        elif isinstance(node, CallExpr) and node.kind == "signal":
            given = tuple(a.name for a in node.args)
            wanted = SIGNAL_PARAMS.get(node.name)
            if wanted is None:
                yield f"{where} reads unknown signal `{node.name}`"
            elif sorted(given) != sorted(wanted):
                yield (f"{where} reads signal `{node.name}` with arguments ({', '.join(given)}), "
                       f"but it takes ({', '.join(wanted)}), every one given")
        elif isinstance(node, GateCheck) and node.action == "retry" and node.retries is None:
            yield f"{where} has a `retry` check without its number of retries"
        if isinstance(node, (CallExpr, ForExpr)) and node.pos is not None:
            if node.pos in positions:
                yield f"pos `{node.pos}` is used twice ({positions[node.pos]} and {where})"
            positions[node.pos] = where


def walk_plan(plan: Plan):
    """Every IR node of the plan (types, expressions, steps), with the declaration it sits in."""
    for kind, decls in (("type", plan.types), ("tool", plan.tools), ("gate", plan.gates),
                        ("agent", plan.agents), ("flow", plan.flows)):
        for name, decl in decls.items():
            yield from walk_nodes(decl, f"{kind} `{name}`")
    for test in plan.tests:
        yield from walk_nodes(test, f"test {test.name!r}")


def walk_nodes(node, where: str):
    if isinstance(node, Node):
        yield node, where
        for name in type(node).model_fields:
            if name not in ("json_schema", "params_schema", "result_schema", "output_schema", "bound"):
                yield from walk_nodes(getattr(node, name), where)
    elif isinstance(node, tuple):
        for item in node:
            yield from walk_nodes(item, where)
