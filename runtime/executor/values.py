"""Runtime values, and their exact conversion to and from the JSON that models and tools speak.

Inside a run a value is plain Python: ``str``, ``int`` (also money in micro-dollars, durations in
milliseconds, token counts), ``float``, ``bool``, ``None``, ``list``, ``dict`` (a record, by field
name), an enum variant as its name (``str``), a receipt as its id (``str``).

On the wire (model outputs, tool arguments and results, a run's input) money is a decimal string
of dollars (``"19.99"``), never a float; :func:`from_json` checks a value against its plan type and
says exactly where it does not fit.

>>> from vox.compiler.plan.ir import PrimType
>>> from_json("19.99", PrimType(name="money"), {}), to_json(19_990_000, PrimType(name="money"), {})
(19990000, '19.99')
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from vox.compiler.plan.ir import (
    DeclType,
    EnumType,
    ListType,
    NeverType,
    NoneType,
    OptionalType,
    PlanType,
    PrimType,
    RateType,
    ReceiptType,
    RecordType,
)
from vox.compiler.plan.model import AliasDef, EnumDef, RecordDef, TypeDef

_MONEY = re.compile(r"-?[0-9]+(\.[0-9]{1,6})?")


class ValueMismatch(ValueError):
    """A JSON value that does not fit its type; ``path`` says where (``$.refund``)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def parse_money(text: str) -> int:
    """``"19.99"`` (dollars, at most six decimals) as exact micro-dollars.

    >>> parse_money("0.000001"), parse_money("-3")
    (1, -3000000)
    """
    if not _MONEY.fullmatch(text):
        raise ValueError(f"{text!r} is not an amount of dollars like \"19.99\"")
    return int(Decimal(text) * 1_000_000)


def show_money(micros: int) -> str:
    """Micro-dollars as the decimal dollar string the wire uses (no `$`, no separators)."""
    sign = "-" if micros < 0 else ""
    dollars, rest = divmod(abs(micros), 1_000_000)
    return f"{sign}{dollars}" + (f".{rest:06d}".rstrip("0") if rest else "")


def resolve(ty: PlanType, types: dict[str, TypeDef]) -> PlanType | TypeDef:
    """A named type's definition (aliases followed); other types as they are."""
    while isinstance(ty, (RecordType, EnumType)) and ty.name in types:
        found = types[ty.name]
        if isinstance(found, AliasDef):
            ty = found.type
            continue
        return found
    return ty


def from_json(value: Any, ty: PlanType, types: dict[str, TypeDef], path: str = "$", *,
              receipts: bool = True) -> Any:
    """Check ``value`` (parsed JSON) against ``ty`` and convert it to a runtime value.

    With ``receipts`` false (a run's input), a receipt anywhere in ``value`` does not fit: a
    `Receipt[t]` can only come from calling `t` in the run itself, never from outside it.

    >>> from vox.compiler.plan.ir import OptionalType, ReceiptType
    >>> from_json(None, OptionalType(inner=ReceiptType(tool="refund")), {}, receipts=False) is None
    True
    >>> from_json("rcpt_x", ReceiptType(tool="refund"), {}, "$.r", receipts=False)
    Traceback (most recent call last):
    ...
    vox.runtime.executor.values.ValueMismatch: $.r: a receipt can only come from calling `refund` in this run, not from its input
    """
    t = resolve(ty, types)
    if isinstance(t, OptionalType):
        return None if value is None else from_json(value, t.inner, types, path, receipts=receipts)
    if isinstance(t, (NoneType, NeverType)):
        if value is not None:
            raise ValueMismatch(path, "expected null")
        return None
    if isinstance(t, PrimType):
        return _prim(value, t.name, path)
    if isinstance(t, ListType):
        if not isinstance(value, list):
            raise ValueMismatch(path, f"expected a list, found {_kind(value)}")
        return [from_json(v, t.elem, types, f"{path}[{i}]", receipts=receipts) for i, v in enumerate(value)]
    if isinstance(t, RecordDef):
        if not isinstance(value, dict):
            raise ValueMismatch(path, f"expected an object ({t.name}), found {_kind(value)}")
        known = {f.name for f in t.fields}
        extra = sorted(set(value) - known)
        if extra:
            raise ValueMismatch(path, f"unknown field `{extra[0]}` for {t.name}")
        out = {}
        for f in t.fields:
            if f.name not in value and not isinstance(resolve(f.type, types), OptionalType):
                raise ValueMismatch(f"{path}.{f.name}", "missing")
            out[f.name] = from_json(value.get(f.name), f.type, types, f"{path}.{f.name}", receipts=receipts)
        return out
    if isinstance(t, EnumDef):
        if value not in t.variants:
            raise ValueMismatch(path, f"expected one of {', '.join(t.variants)}, found {value!r}")
        return value
    if isinstance(t, ReceiptType):
        if not receipts:
            raise ValueMismatch(path, f"a receipt can only come from calling `{t.tool}` in this run, not from its input")
        if not isinstance(value, str) or not value:
            raise ValueMismatch(path, f"expected a receipt id of a `{t.tool}` call, found {_kind(value)}")
        return value
    if isinstance(t, (DeclType, RateType)):
        return value
    raise ValueMismatch(path, f"cannot read a value of type {t}")


def to_json(value: Any, ty: PlanType, types: dict[str, TypeDef]) -> Any:
    """A runtime value as JSON for a model or a tool: money becomes a dollar string."""
    if value is None:
        return None
    t = resolve(ty, types)
    if isinstance(t, OptionalType):
        return to_json(value, t.inner, types)
    if isinstance(t, PrimType) and t.name == "money":
        return show_money(value)
    if isinstance(t, ListType):
        return [to_json(v, t.elem, types) for v in value]
    if isinstance(t, RecordDef):
        return {f.name: to_json(value.get(f.name), f.type, types) for f in t.fields}
    return value


def render(value: Any, ty: PlanType, types: dict[str, TypeDef]) -> str:
    """A value as prompt text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    import json

    return json.dumps(to_json(value, ty, types), ensure_ascii=False, separators=(", ", ": "))


def _prim(value: Any, name: str, path: str) -> Any:
    if name == "str":
        if not isinstance(value, str):
            raise ValueMismatch(path, f"expected a string, found {_kind(value)}")
        return value
    if name == "bool":
        if not isinstance(value, bool):
            raise ValueMismatch(path, f"expected true or false, found {_kind(value)}")
        return value
    if name in ("int", "tokens", "duration"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise ValueMismatch(path, f"expected a whole number, found {_kind(value)}")
        return int(value)
    if name == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueMismatch(path, f"expected a number, found {_kind(value)}")
        return float(value)
    if name == "money":
        if isinstance(value, str):
            try:
                return parse_money(value)
            except (ValueError, InvalidOperation) as e:
                raise ValueMismatch(path, str(e)) from None
        raise ValueMismatch(path, f'expected money as a string of dollars like "19.99", found {_kind(value)}')
    raise ValueMismatch(path, f"unknown type {name}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
