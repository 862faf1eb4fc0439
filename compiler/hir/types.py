"""Semantic types of the language.

Units are distinct types: `money` (integer micro-dollars), `duration` (integer milliseconds) and
`tokens` (an integer count, interchangeable with `int`) never mix with each other or with plain
numbers except as the rules in :func:`binary_result` allow.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class Type:
    """Base of all types. Subclasses are frozen dataclasses, compared structurally."""

    __slots__ = ()

    def show(self) -> str:
        """How diagnostics write the type; every subclass defines its own."""
        return type(self).__name__

    def __str__(self) -> str:
        return self.show()


@dataclass(frozen=True, slots=True)
class Prim(Type):
    name: str  # str int float bool money duration tokens

    def show(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class NoneType(Type):
    def show(self) -> str:
        return "none"


@dataclass(frozen=True, slots=True)
class Never(Type):
    """The type of an empty list's elements: fits anywhere."""

    def show(self) -> str:
        return "never"


@dataclass(frozen=True, slots=True)
class ErrorType(Type):
    """The type of an expression that already has an error; it fits anywhere, silently."""

    def show(self) -> str:
        return "<error>"


@dataclass(frozen=True, slots=True)
class ListType(Type):
    elem: Type

    def show(self) -> str:
        return f"list[{self.elem.show()}]"


@dataclass(frozen=True, slots=True)
class OptionalType(Type):
    inner: Type

    def show(self) -> str:
        return f"{self.inner.show()}?"


@dataclass(frozen=True, slots=True)
class FieldInfo:
    name: str
    type: Type
    labels: frozenset[str] = frozenset()  # every label written on the field's type, through aliases
    # (label, span of the `@label` that puts it there), for diagnostics only
    origins: tuple = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class RecordType(Type):
    name: str
    fields: tuple[FieldInfo, ...]

    def show(self) -> str:
        return self.name

    def field(self, name: str) -> FieldInfo | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


@dataclass(frozen=True, slots=True)
class EnumType(Type):
    name: str
    variants: tuple[str, ...]

    def show(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class ReceiptType(Type):
    tool: str

    def show(self) -> str:
        return f"Receipt[{self.tool}]"


RECEIPT_FIELDS = ("id", "args", "result")


def receipt_fields(tool: str, params, returns: "Type", return_labels: frozenset[str] = frozenset()) -> tuple[FieldInfo, ...]:
    """What a `Receipt[tool]` value holds: its ledger id, and the arguments and result of the call
    it signs. ``params`` are the tool's parameters as ``(name, type, labels)``; the arguments are a
    record of them, named after the receipt (a name no declaration can have).

    >>> [f"{f.name}: {f.type.show()}" for f in receipt_fields("refund", [("order_id", STR, frozenset())], MONEY)]
    ['id: str', 'args: Receipt[refund].args', 'result: money']
    """
    args = RecordType(f"Receipt[{tool}].args", tuple(FieldInfo(n, ty, frozenset(labels)) for n, ty, labels in params))
    return FieldInfo("id", STR), FieldInfo("args", args), FieldInfo("result", returns, frozenset(return_labels))


@dataclass(frozen=True, slots=True)
class RateType(Type):
    amount: Type
    unit: str  # second minute hour day week month

    def show(self) -> str:
        return f"{self.amount.show()} per {self.unit}"


@dataclass(frozen=True, slots=True)
class RefType(Type):
    """A declaration used as a value: a model in `model: mini`, a tool in `tools: [...]`."""

    kind: str  # model tool agent flow gate label provider
    name: str

    def show(self) -> str:
        return f"{self.kind} `{self.name}`"


STR = Prim("str")
INT = Prim("int")
FLOAT = Prim("float")
BOOL = Prim("bool")
MONEY = Prim("money")
DURATION = Prim("duration")
TOKENS = Prim("tokens")
NONE = NoneType()
NEVER = Never()
ERROR = ErrorType()

PRIMITIVES = {t.name: t for t in (STR, INT, FLOAT, BOOL, MONEY, DURATION, TOKENS)}
RATE_UNITS = ("second", "minute", "hour", "day", "week", "month")
_INTEGRAL = (INT, TOKENS)


def is_error(t: Type) -> bool:
    return isinstance(t, ErrorType)


def strip_optional(t: Type) -> Type:
    return t.inner if isinstance(t, OptionalType) else t


def assignable(source: Type, target: Type) -> bool:
    """Whether a value of type ``source`` may be used where ``target`` is expected.

    >>> assignable(INT, FLOAT), assignable(NONE, OptionalType(STR)), assignable(MONEY, INT)
    (True, True, False)
    """
    if source == target or isinstance(source, (ErrorType, Never)) or isinstance(target, ErrorType):
        return True
    if source in _INTEGRAL and target in _INTEGRAL:
        return True
    if source in _INTEGRAL and target == FLOAT:
        return True
    if isinstance(target, OptionalType):
        if isinstance(source, NoneType):
            return True
        inner_source = source.inner if isinstance(source, OptionalType) else source
        return assignable(inner_source, target.inner)
    if isinstance(source, ListType) and isinstance(target, ListType):
        return assignable(source.elem, target.elem)
    if isinstance(source, RateType) and isinstance(target, RateType):
        return source.unit == target.unit and assignable(source.amount, target.amount)
    return False


def is_numeric(t: Type) -> bool:
    return t in (INT, FLOAT, TOKENS)


def unit_name(t: Type) -> str:
    """How a unit mismatch names a type: 'money', 'a duration', 'a number'..."""
    if t == MONEY:
        return "money"
    if t == DURATION:
        return "a duration"
    if is_numeric(t):
        return "a number"
    return f"`{t.show()}`"


def binary_result(op: str, left: Type, right: Type) -> Type | None:
    """The type of ``left op right`` for arithmetic and comparisons, or None if not allowed.

    >>> binary_result("+", MONEY, MONEY), binary_result("*", MONEY, INT), binary_result("+", MONEY, INT)
    (Prim(name='money'), Prim(name='money'), None)
    >>> binary_result("/", MONEY, MONEY), binary_result("<=", DURATION, DURATION)
    (Prim(name='float'), Prim(name='bool'))
    """
    if isinstance(left, ErrorType) or isinstance(right, ErrorType):
        return ERROR
    if op in ("and", "or"):
        return BOOL if left == BOOL and right == BOOL else None
    if op in ("==", "!="):
        if assignable(left, right) or assignable(right, left):
            return BOOL
        return None
    if op in ("<", "<=", ">", ">="):
        if (is_numeric(left) and is_numeric(right)) or (left == right and left in (MONEY, DURATION, STR)):
            return BOOL
        return None
    units = (MONEY, DURATION)
    if op in ("+", "-"):
        if left == right and left in units:
            return left
        if is_numeric(left) and is_numeric(right):
            return _number_result(left, right)
        if op == "+" and left == STR and right == STR:
            return STR
        if op == "+" and isinstance(left, ListType) and isinstance(right, ListType) and left == right:
            return left
        return None
    if op == "*":  # money and durations scale by whole numbers only: they stay exact integers
        if left in units and right in _INTEGRAL:
            return left
        if right in units and left in _INTEGRAL:
            return right
        if is_numeric(left) and is_numeric(right):
            return _number_result(left, right)
        return None
    if op == "/":
        if left in units and right in _INTEGRAL:
            return left
        if left in units and left == right:
            return FLOAT
        if is_numeric(left) and is_numeric(right):
            return FLOAT if FLOAT in (left, right) else INT
        return None
    if op == "%":
        if left in _INTEGRAL and right in _INTEGRAL:
            return INT
        return None
    return None


def _number_result(left: Type, right: Type) -> Type:
    if FLOAT in (left, right):
        return FLOAT
    if TOKENS in (left, right):
        return TOKENS
    return INT
