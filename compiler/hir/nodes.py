"""The HIR: a new tree in which every name is bound to a symbol and every expression is typed.

Declarations are resolved into plain values (a model's price in micro-dollars, an agent's caps as
integers, a tool's effect as a word), so the analyses of later passes never look at member syntax.
Spans are kept for diagnostics and the language server but take no part in equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from vox.compiler.hir.types import Type
from vox.compiler.source import Span, span_field

# ---- symbols ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Symbol:
    """A declared name: a top-level declaration or a local (parameter, `let`, loop variable)."""

    kind: str  # label budget provider model type enum tool gate agent flow test | param let loop
    name: str
    span: Span = span_field()  # where the name is declared
    type: Type | None = field(default=None, compare=False)
    labels: frozenset[str] = field(default=frozenset(), compare=False)
    owner: str | None = None  # enclosing declaration of a local


# ---- typed expressions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lit:
    value: object  # int (also micro-dollars, milliseconds), float, str, bool, None
    type: Type
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Var:
    symbol: Symbol
    type: Type
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class EnumValue:
    enum: str
    variant: str
    type: Type
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Ref:
    """A declaration named as a value (`mini` in `model: mini`, `issue_refund` in `receipt(...)`)."""

    symbol: Symbol
    type: Type
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class RecordValue:
    fields: tuple[tuple[str, "TExpr"], ...]
    type: Type
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class ListValue:
    items: tuple["TExpr", ...]
    type: Type
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class GetField:
    target: "TExpr"
    name: str
    type: Type
    labels: frozenset[str] = frozenset()  # labels the record type declares on the field
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class GetIndex:
    target: "TExpr"
    index: "TExpr"
    type: Type
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class CallExpr:
    """A call of an agent, tool, flow or builtin, with arguments bound to parameter names."""

    kind: str  # agent tool flow builtin signal
    name: str
    args: tuple[tuple[str, "TExpr"], ...]
    type: Type
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class UnaryExpr:
    op: str
    operand: "TExpr"
    type: Type
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class BinaryExpr:
    op: str
    left: "TExpr"
    right: "TExpr"
    type: Type
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class RateExpr:
    amount: "TExpr"
    unit: str
    type: Type
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class ForEach:
    var: Symbol
    iterable: "TExpr"
    bound: int | None  # None: no `max` (a budget error in a later pass)
    body: tuple["TStmt", ...]
    result: "TExpr | None"  # the body's last expression, one list element per iteration
    type: Type
    span: Span = span_field()
    bound_span: Span = span_field()  # the `max` value; an empty span where it would go if absent


@dataclass(frozen=True, slots=True)
class ErrorExpr:
    """Stands for an expression that had an error; later passes skip it."""

    type: Type
    span: Span = span_field()


TExpr = Union[
    Lit, Var, EnumValue, Ref, RecordValue, ListValue, GetField, GetIndex, CallExpr, UnaryExpr,
    BinaryExpr, RateExpr, ForEach, ErrorExpr,
]


# ---- statements -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LetStmt:
    symbol: Symbol
    value: TExpr
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class IfStmt:
    cond: TExpr
    then: tuple["TStmt", ...]
    orelse: tuple["TStmt", ...]
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class ParStmt:
    branches: tuple[LetStmt | "ExprStatement", ...]
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class ReturnStmt:
    value: TExpr | None
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class ExprStatement:
    expr: TExpr
    span: Span = span_field()


TStmt = Union[LetStmt, IfStmt, ParStmt, ReturnStmt, ExprStatement]


# ---- declarations -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: Type
    labels: frozenset[str] = frozenset()
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class EnvRef:
    """`env("NAME")` or `env("NAME", "default")`: a value read from the environment."""

    var: str
    default: str | None = None


@dataclass(frozen=True, slots=True)
class Label:
    name: str
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    protocol: str  # openai anthropic openai_compatible sim
    base_url: EnvRef | str | None
    key: EnvRef | None
    clearance: frozenset[str]
    flags: tuple[tuple[str, object], ...] = ()
    span: Span = span_field()
    spans: dict[str, Span] = field(default_factory=dict, compare=False)  # see member_spans


@dataclass(frozen=True, slots=True)
class Price:
    """Dollars per million tokens, held as micro-dollars per million tokens."""

    input: int
    output: int
    cached_input: int | None = None
    free: bool = False
    cache_write: int | None = None  # writing a prompt-cache entry, where the provider bills it apart


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    provider: str
    model_id: str
    context: int | None
    max_output: int | None
    price: Price | None
    capabilities: frozenset[str]
    span: Span = span_field()
    spans: dict[str, Span] = field(default_factory=dict, compare=False)  # see member_spans


@dataclass(frozen=True, slots=True)
class Binding:
    kind: str  # python http
    target: str  # "pkg.mod:func" or the URL template
    method: str | None = None  # GET POST ... for http
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    params: tuple[Param, ...]
    returns: Type
    return_labels: frozenset[str]
    effect: str | None  # pure read write external
    timeout_ms: int | None
    cost_micros: int | None
    retries: int
    idempotent: bool
    approval: str | None  # human
    clearance: frozenset[str]
    binding: Binding | None
    span: Span = span_field()
    spans: dict[str, Span] = field(default_factory=dict, compare=False)  # see member_spans
    # `declassifies: [pii]`: labels of the arguments that the result does NOT carry (audited)
    declassifies: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class GateCheck:
    cond: TExpr
    action: str  # retry fallback ask_human abstain halt
    retries: int | None
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Gate:
    name: str
    param: Param | None
    checks: tuple[GateCheck, ...]
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Caps:
    """Budget caps; None where not declared. cost in micro-dollars, wall in milliseconds."""

    tokens: int | None = None
    cost: int | None = None
    steps: int | None = None
    tool_calls: int | None = None
    depth: int | None = None
    wall: int | None = None
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Template:
    """A prompt or URL template: literal text and placeholder paths, in order."""

    parts: tuple[str | tuple[str, ...], ...]
    source: str
    span: Span = span_field()
    placeholder_spans: tuple[Span, ...] = field(default=(), compare=False)  # one per placeholder part


@dataclass(frozen=True, slots=True)
class Compaction:
    strategy: str  # summarize truncate
    keep_last: int


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    params: tuple[Param, ...]
    returns: Type
    return_labels: frozenset[str]
    model: str | None
    fallback: tuple[str, ...]
    tools: tuple[str, ...]
    caps: Caps
    gates: tuple[str, ...]
    compaction: Compaction | None
    prompt: Template | None
    system: Template | None
    temperature: float | None
    span: Span = span_field()
    spans: dict[str, Span] = field(default_factory=dict, compare=False)  # see member_spans

    @property
    def chain(self) -> tuple[str, ...]:
        """Every model that can serve a call: the primary, then each fallback."""
        return ((self.model,) if self.model else ()) + self.fallback


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    params: tuple[Param, ...]
    returns: Type
    caps: Caps
    body: tuple[TStmt, ...]
    span: Span = span_field()
    spans: dict[str, Span] = field(default_factory=dict, compare=False)  # see member_spans
    return_labels: frozenset[str] = frozenset()  # labels written on the result type: callers see them


@dataclass(frozen=True, slots=True)
class Mock:
    target: str
    kind: str  # agent tool
    replies: tuple[tuple[str, object], ...]  # ("reply", TExpr) or ("call", (tool, args))
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Test:
    name: str
    flow: str | None
    input: tuple[tuple[str, TExpr], ...]
    mocks: tuple[Mock, ...]
    approve: tuple[str, ...]
    expect: TExpr | None
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class RunBudget:
    """`budget fleet { ... }` or `budget tenant { ... }`: rates are (amount, unit) pairs."""

    scope: str
    cost: tuple[int, str] | None
    requests: tuple[int, str] | None
    tokens: tuple[int, str] | None
    span: Span = span_field()


@dataclass(frozen=True)
class Program:
    """A checked file: every declaration by name, and the symbol table for tools like the LSP."""

    path: str
    labels: dict[str, Label]
    providers: dict[str, Provider]
    models: dict[str, Model]
    types: dict[str, Type]
    tools: dict[str, Tool]
    gates: dict[str, Gate]
    agents: dict[str, Agent]
    flows: dict[str, Flow]
    tests: tuple[Test, ...]
    budgets: dict[str, RunBudget]
    symbols: dict[str, Symbol]
    references: tuple[tuple[Span, Symbol], ...]  # every resolved use of a name, in source order
