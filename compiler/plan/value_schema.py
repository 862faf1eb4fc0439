"""JSON Schema of Vox values, as model providers receive it for tool definitions and structured output.

The schemas are shaped for OpenAI's strict mode (which Anthropic and OpenAI-compatible servers
also accept): every object lists all its properties in ``required`` and has
``additionalProperties: false``; an optional value is ``anyOf [T, {"type": "null"}]``; records are
written inline (no ``$ref``), which is possible because record types cannot contain themselves.

Units travel as JSON numbers or strings that keep them exact:

* ``money``: a string of dollars with at most six decimals, matching :data:`MONEY_PATTERN`
  (``"19.99"``, ``"-0.000150"``); the runtime converts it to integer micro-dollars;
* ``duration``: an integer of milliseconds; ``tokens``: an integer count;
* ``Receipt[t]``: a string, the id of a receipt the run's ledger signed for a call of ``t``.

>>> from vox.compiler.hir import types as t
>>> value_schema(t.OptionalType(t.MONEY))["anyOf"][1]
{'type': 'null'}
>>> object_schema([("id", t.STR)])
{'type': 'object', 'properties': {'id': {'type': 'string'}}, 'required': ['id'], 'additionalProperties': False}
"""

from __future__ import annotations

from collections.abc import Iterable

from vox.compiler.hir import types as t

MONEY_PATTERN = r"^-?[0-9]+(\.[0-9]{1,6})?$"

_PRIMS = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "money": {"type": "string", "pattern": MONEY_PATTERN,
              "description": "an amount of money in US dollars, as a decimal string with at most 6 decimals"},
    "duration": {"type": "integer", "description": "a duration in milliseconds"},
    "tokens": {"type": "integer", "description": "a number of tokens"},
}


class SchemaError(Exception):
    """A type that has no JSON form (a bug: the checker never lets one reach a signature)."""


def value_schema(ty: t.Type) -> dict:
    """The JSON Schema of a value of ``ty``."""
    if isinstance(ty, t.Prim):
        return dict(_PRIMS[ty.name])
    if isinstance(ty, t.ListType):
        if isinstance(ty.elem, t.Never):
            return {"type": "array", "items": {"type": "null"}, "maxItems": 0}
        return {"type": "array", "items": value_schema(ty.elem)}
    if isinstance(ty, t.OptionalType):
        inner = value_schema(ty.inner)
        return {"anyOf": [inner, {"type": "null"}]}
    if isinstance(ty, t.NoneType):
        return {"type": "null"}
    if isinstance(ty, t.EnumType):
        return {"type": "string", "enum": list(ty.variants)}
    if isinstance(ty, t.ReceiptType):
        return {"type": "string",
                "description": f"the id of a receipt for a call of tool `{ty.tool}`, as that call returned it"}
    if isinstance(ty, t.RecordType):
        return object_schema(((f.name, f.type) for f in ty.fields))
    raise SchemaError(f"type `{ty.show()}` has no JSON Schema")


def object_schema(fields: Iterable[tuple[str, t.Type]]) -> dict:
    """A strict-mode object: every property required, nothing else allowed."""
    properties = {name: value_schema(ty) for name, ty in fields}
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def output_schema(ty: t.Type) -> tuple[dict, bool]:
    """The schema to request from a model for a result of ``ty``, and whether it is wrapped.

    Structured output must be an object, so a result that is not a record is asked for as
    ``{"value": ...}`` and the runtime unwraps it.

    >>> schema, wrapped = output_schema(t.STR)
    >>> schema["properties"], schema["required"], wrapped
    ({'value': {'type': 'string'}}, ['value'], True)
    """
    if isinstance(ty, t.RecordType):
        return value_schema(ty), False
    return object_schema([("value", ty)]), True
