"""The plan's small typed IR: types, expressions and flow steps.

Every node is a frozen pydantic model; unions are discriminated on a tag (``kind`` for types,
``node`` for expressions and steps), so a reader dispatches on one field and the published JSON
Schema says exactly which fields each node has.

Values are exact: money is integer micro-dollars, durations integer milliseconds, token counts
integers. Lines and columns are 1-based (columns count code points), as `voxc check` prints them.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class Node(BaseModel):
    """Base of every plan model: immutable, and unknown fields are an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# ---- types -----------------------------------------------------------------------------------------

PrimName = Literal["str", "int", "float", "bool", "money", "duration", "tokens"]
RateUnit = Literal["second", "minute", "hour", "day", "week", "month"]


class PrimType(Node):
    """A primitive: `money` is integer micro-dollars, `duration` integer ms, `tokens` a count."""

    kind: Literal["prim"] = "prim"
    name: PrimName


class ListType(Node):
    kind: Literal["list"] = "list"
    elem: "PlanType"


class OptionalType(Node):
    """``T?``: a value of ``inner`` or none (JSON null)."""

    kind: Literal["optional"] = "optional"
    inner: "PlanType"


class RecordType(Node):
    """A record, by name: its fields are in ``Plan.types[name]``."""

    kind: Literal["record"] = "record"
    name: str


class EnumType(Node):
    """An enum, by name: its variants are in ``Plan.types[name]``."""

    kind: Literal["enum"] = "enum"
    name: str


class ReceiptType(Node):
    """``Receipt[tool]``: the id of a receipt in the run's ledger, signed for a call of ``tool``."""

    kind: Literal["receipt"] = "receipt"
    tool: str


class NoneType(Node):
    """The type of the literal ``none``."""

    kind: Literal["none"] = "none"


class NeverType(Node):
    """The element type of an empty list literal: fits anywhere."""

    kind: Literal["never"] = "never"


class RateType(Node):
    """``amount per unit`` (only in run budgets and rate expressions)."""

    kind: Literal["rate"] = "rate"
    amount: "PlanType"
    unit: RateUnit


class DeclType(Node):
    """A declaration used as a value (a model passed to `judge`, a tool named in `receipt(...)`)."""

    kind: Literal["decl"] = "decl"
    decl: Literal["model", "tool", "agent", "flow", "gate", "label", "provider"]
    name: str


PlanType = Annotated[
    Union[PrimType, ListType, OptionalType, RecordType, EnumType, ReceiptType, NoneType, NeverType, RateType,
          DeclType],
    Field(discriminator="kind"),
]


# ---- expressions -----------------------------------------------------------------------------------

LitValue = Union[bool, int, float, str, None]


class LitExpr(Node):
    """A literal. Money, durations and tokens are integers (micro-dollars, ms, count)."""

    node: Literal["lit"] = "lit"
    value: LitValue
    type: PlanType


class VarExpr(Node):
    """A local: a parameter, a `let`, a loop variable (in a gate: its parameter; in `expect`: `output`)."""

    node: Literal["var"] = "var"
    name: str
    type: PlanType


class EnumExpr(Node):
    node: Literal["enum"] = "enum"
    enum: str
    variant: str
    type: PlanType


class RefExpr(Node):
    """A declaration named as a value."""

    node: Literal["ref"] = "ref"
    decl: str  # model tool agent flow gate label provider
    name: str
    type: PlanType


class FieldValue(Node):
    """One named part of a record literal or one named argument of a call."""

    name: str
    value: "Expr"


class RecordExpr(Node):
    """A record literal; fields in source order (optional fields left out are none)."""

    node: Literal["record"] = "record"
    fields: tuple[FieldValue, ...]
    type: PlanType


class ListExpr(Node):
    node: Literal["list"] = "list"
    items: tuple["Expr", ...]
    type: PlanType


class FieldExpr(Node):
    """``target.name``; ``labels`` are those the record type declares on the field. On a receipt
    (``target`` of type ``receipt``), ``name`` is ``id``, ``args`` or ``result``: the receipt's id, and
    the arguments and result of the call it signs."""

    node: Literal["field"] = "field"
    target: "Expr"
    name: str
    labels: tuple[str, ...] = ()
    type: PlanType


class IndexExpr(Node):
    node: Literal["index"] = "index"
    target: "Expr"
    index: "Expr"
    type: PlanType


class UnaryExpr(Node):
    node: Literal["unary"] = "unary"
    op: Literal["-", "not"]
    operand: "Expr"
    type: PlanType


BinaryOp = Literal["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "and", "or"]


class BinaryExpr(Node):
    """Arithmetic and comparisons, exact on integers; ``and``/``or`` short-circuit."""

    node: Literal["binary"] = "binary"
    op: BinaryOp
    left: "Expr"
    right: "Expr"
    type: PlanType


class CallExpr(Node):
    """A call. ``kind`` agent/tool/flow: a durable step of the run, named by ``pos`` (see spec/plan.md);
    builtin: len min max redact declassify receipt; signal: a runtime signal read by a gate."""

    node: Literal["call"] = "call"
    kind: Literal["agent", "tool", "flow", "builtin", "signal"]
    name: str
    args: tuple[FieldValue, ...]  # bound to parameter names, in source order (evaluate in this order)
    type: PlanType
    pos: str | None = None  # set for agent/tool/flow calls in a flow body, unique in the plan
    line: int
    col: int


class ForExpr(Node):
    """``for var in iterable max bound { body; result }``: one list element per iteration.

    The runtime takes at most the first ``bound`` elements of ``iterable`` (the budget was
    computed for at most ``bound`` iterations)."""

    node: Literal["for"] = "for"
    var: str
    iterable: "Expr"
    bound: int
    body: tuple["Step", ...]
    result: "Expr | None"
    type: PlanType
    pos: str | None = None  # set in a flow body: the calls in the body are numbered under it
    line: int
    col: int


class RateExpr(Node):
    node: Literal["rate"] = "rate"
    amount: "Expr"
    unit: RateUnit
    type: PlanType


Expr = Annotated[
    Union[LitExpr, VarExpr, EnumExpr, RefExpr, RecordExpr, ListExpr, FieldExpr, IndexExpr, UnaryExpr,
          BinaryExpr, CallExpr, ForExpr, RateExpr],
    Field(discriminator="node"),
]


# ---- steps -----------------------------------------------------------------------------------------


class LetStep(Node):
    """``let name: type = value``; ``type`` is the declared type, or the value's when none is written
    (a call of tool `t` bound as a `Receipt[t]` binds the call's receipt, not its result)."""

    node: Literal["let"] = "let"
    name: str
    type: PlanType
    labels: tuple[str, ...] = ()  # labels written on the declared type (`let e: Email = ...`)
    value: Expr
    line: int
    col: int


class IfStep(Node):
    node: Literal["if"] = "if"
    cond: Expr
    then: tuple["Step", ...]
    orelse: tuple["Step", ...]
    line: int
    col: int


class ParStep(Node):
    """Branches run together; the names their `let`s bind are visible after all have finished."""

    node: Literal["par"] = "par"
    branches: tuple[Annotated[Union[LetStep, "ExprStep"], Field(discriminator="node")], ...]
    line: int
    col: int


class ReturnStep(Node):
    node: Literal["return"] = "return"
    value: Expr | None
    line: int
    col: int


class ExprStep(Node):
    """An expression evaluated for its effect (a call); its value is dropped."""

    node: Literal["expr"] = "expr"
    expr: Expr
    line: int
    col: int


Step = Annotated[Union[LetStep, IfStep, ParStep, ReturnStep, ExprStep], Field(discriminator="node")]


for _model in (ListType, OptionalType, RateType, LitExpr, VarExpr, EnumExpr, RefExpr, FieldValue, RecordExpr,
               ListExpr, FieldExpr, IndexExpr, UnaryExpr, BinaryExpr, CallExpr, ForExpr, RateExpr, LetStep, IfStep,
               ParStep, ReturnStep, ExprStep):
    _model.model_rebuild()
