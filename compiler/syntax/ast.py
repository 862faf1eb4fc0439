"""The abstract syntax tree: frozen, slotted nodes with tuple children.

Every node has a ``span`` (absolute character offsets) that takes no part in equality, so two
parses of differently laid-out text compare equal when they mean the same thing; the formatter's
round-trip test relies on that. Names that a later pass binds are :class:`Ident` so that each
occurrence keeps its own span (for go-to-definition and rename).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from vox.compiler.source import Span, span_field


@dataclass(frozen=True, slots=True)
class Ident:
    name: str
    span: Span = span_field()


# ---- types ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TypeExpr:
    """``name[args]? @label...``: ``str``, ``list[Ticket]``, ``str? @pii``, ``Receipt[refund]``."""

    name: Ident
    args: tuple["TypeExpr", ...] = ()
    optional: bool = False
    labels: tuple[Ident, ...] = ()
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class FieldDecl:
    name: Ident
    type: TypeExpr
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class RecordType:
    fields: tuple[FieldDecl, ...]
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Param:
    name: Ident
    type: TypeExpr
    span: Span = span_field()


# ---- expressions ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class IntLit:
    value: int
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class FloatLit:
    value: float
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class MoneyLit:
    """Exact money, in integer micro-dollars (``$0.15`` is 150_000)."""

    micros: int
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class DurationLit:
    """A duration in integer milliseconds (``5s`` is 5_000)."""

    millis: int
    text: str  # as written, so the formatter keeps `2m` rather than `120000ms`
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class StrLit:
    """A string literal.

    ``value`` is the decoded text (escapes resolved, triple-quoted strings dedented);
    ``raw`` is the source text including quotes, which templates use to map placeholders
    back to exact spans.
    """

    value: str
    raw: str = field(compare=False)  # layout: re-indenting a prompt does not change its meaning
    span: Span = span_field()

    @property
    def triple(self) -> bool:
        return self.raw.startswith('"""')


@dataclass(frozen=True, slots=True)
class BoolLit:
    value: bool
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class NoneLit:
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class ListLit:
    items: tuple["Expr", ...]
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class RecordField:
    name: Ident
    value: "Expr"
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class RecordLit:
    fields: tuple[RecordField, ...]
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class FieldAccess:
    target: "Expr"
    name: Ident
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Index:
    target: "Expr"
    index: "Expr"
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Arg:
    """A call argument; ``name`` is None for a positional argument."""

    name: Ident | None
    value: "Expr"
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Call:
    callee: "Expr"
    args: tuple[Arg, ...]
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "-" or "not"
    operand: "Expr"
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # "or" "and" "==" "!=" "<" "<=" ">" ">=" "+" "-" "*" "/" "%"
    left: "Expr"
    right: "Expr"
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Rate:
    """``amount per unit``: ``$5 per day``, ``60 per minute``."""

    amount: "Expr"
    unit: Ident
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class ForExpr:
    """``for x in xs max N { ... }``: a list of the body's last expression, one per element."""

    var: Ident
    iterable: "Expr"
    bound: "Expr | None"
    body: "Block"
    span: Span = span_field()


Expr = Union[
    Name,
    IntLit,
    FloatLit,
    MoneyLit,
    DurationLit,
    StrLit,
    BoolLit,
    NoneLit,
    ListLit,
    RecordLit,
    FieldAccess,
    Index,
    Call,
    Unary,
    Binary,
    Rate,
    ForExpr,
]


# ---- statements -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Block:
    stmts: tuple["Stmt", ...]
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Let:
    name: Ident
    type: TypeExpr | None
    value: Expr
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class If:
    cond: Expr
    then: Block
    orelse: "Block | If | None"
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Par:
    body: Block
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Return:
    value: Expr | None
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class ExprStmt:
    expr: Expr
    span: Span = span_field()


Stmt = Union[Let, If, Par, Return, ExprStmt]


# ---- members and declaration items ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    """``key: value`` inside a declaration body; any word is a key."""

    key: Ident
    value: Expr
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Check:
    """``check cond else action`` in a gate."""

    cond: Expr
    action: Expr
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class ReplyTurn:
    """``reply <value>``: a scripted model reply in a test mock."""

    value: Expr
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class CallTurn:
    """``call tool(args)``: a scripted tool call chosen by the model in a test mock."""

    tool: Ident
    args: tuple[Arg, ...]
    span: Span = span_field()


Turn = Union[ReplyTurn, CallTurn]


@dataclass(frozen=True, slots=True)
class Mock:
    """``mock target: value``; ``value`` is an expression, one turn, or a list of turns."""

    target: Ident
    value: "Expr | Turn | tuple[Turn, ...]"
    span: Span = span_field()


# ---- declarations ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LabelDecl:
    name: Ident
    members: tuple[Member, ...] = ()
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class BudgetDecl:
    scope: Ident  # fleet or tenant
    members: tuple[Member, ...] = ()
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class ProviderDecl:
    name: Ident
    protocol: Ident
    members: tuple[Member, ...] = ()
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class ModelDecl:
    name: Ident
    provider: Ident
    model_id: StrLit
    members: tuple[Member, ...] = ()
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class TypeDecl:
    name: Ident
    type: RecordType | TypeExpr
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class EnumDecl:
    name: Ident
    variants: tuple[Ident, ...]
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class ToolDecl:
    name: Ident
    params: tuple[Param, ...]
    returns: TypeExpr
    members: tuple[Member, ...]
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class GateDecl:
    name: Ident
    params: tuple[Param, ...]
    items: tuple[Member | Check, ...]
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class AgentDecl:
    name: Ident
    params: tuple[Param, ...]
    returns: TypeExpr
    members: tuple[Member, ...]
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class FlowDecl:
    name: Ident
    params: tuple[Param, ...]
    returns: TypeExpr | None
    items: tuple[Member | Stmt, ...]
    span: Span = span_field()

    @property
    def members(self) -> tuple[Member, ...]:
        return tuple(i for i in self.items if isinstance(i, Member))

    @property
    def body(self) -> tuple[Stmt, ...]:
        return tuple(i for i in self.items if not isinstance(i, Member))


@dataclass(frozen=True, slots=True)
class TestDecl:
    name: StrLit
    items: tuple[Member | Mock, ...]
    span: Span = span_field()


Decl = Union[
    LabelDecl,
    BudgetDecl,
    ProviderDecl,
    ModelDecl,
    TypeDecl,
    EnumDecl,
    ToolDecl,
    GateDecl,
    AgentDecl,
    FlowDecl,
    TestDecl,
]

DECL_KEYWORDS = {
    LabelDecl: "label",
    BudgetDecl: "budget",
    ProviderDecl: "provider",
    ModelDecl: "model",
    TypeDecl: "type",
    EnumDecl: "enum",
    ToolDecl: "tool",
    GateDecl: "gate",
    AgentDecl: "agent",
    FlowDecl: "flow",
    TestDecl: "test",
}


@dataclass(frozen=True, slots=True)
class Comment:
    text: str  # including the leading //
    span: Span = span_field()


@dataclass(frozen=True, slots=True)
class Module:
    """One parsed file: its declarations in source order and every comment."""

    path: str
    decls: tuple[Decl, ...]
    comments: tuple[Comment, ...] = ()
    span: Span = span_field()
