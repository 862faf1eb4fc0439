"""The JSON Schema subset the simulator understands: validating values and strict-mode schemas.

Two jobs, both small on purpose:

* :func:`validate` checks a value against a schema (the keywords OpenAI's strict mode allows, plus
  the usual numeric and length bounds) and returns what is wrong, one message per problem;
* :func:`strict_schema_problems` checks that a schema is shaped as OpenAI's strict mode demands,
  so the simulator answers 400 where the real API would.

>>> validate({"a": "1.50"}, {"type": "object", "properties": {"a": {"type": "string",
...     "pattern": "^-?[0-9]+(\\\\.[0-9]{1,6})?$"}}, "required": ["a"], "additionalProperties": False})
[]
>>> validate({"a": 1}, {"type": "object", "properties": {}, "additionalProperties": False})
["at $: unexpected property 'a'"]
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

_TYPE_CHECKS = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


@functools.lru_cache(maxsize=1024)
def compiled_pattern(pattern: str) -> re.Pattern[str]:
    """A schema's ``pattern``, compiled once."""
    return re.compile(pattern)


def resolve_ref(ref: str, root: dict) -> dict:
    """Follow a local ``$ref`` (``#``, ``#/$defs/X``, ``#/definitions/X``, or any JSON pointer)."""
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref is supported, not {ref!r}")
    node: Any = root
    for part in ref[1:].split("/"):
        if part:
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def validate(value: Any, schema: dict, root: dict | None = None, path: str = "$") -> list[str]:
    """Every way ``value`` fails ``schema``, as ``at PATH: problem`` messages (empty when valid)."""
    root = schema if root is None else root
    if schema is True or schema == {}:
        return []
    if schema is False:
        return [f"at {path}: no value is allowed here"]
    if "$ref" in schema:
        return validate(value, resolve_ref(schema["$ref"], root), root, path)
    problems: list[str] = []
    if "anyOf" in schema or "oneOf" in schema:
        branches = schema.get("anyOf", schema.get("oneOf"))
        matching = [b for b in branches if not validate(value, b, root, path)]
        if not matching:
            problems.append(f"at {path}: {_show(value)} matches none of the {len(branches)} alternatives")
        elif "oneOf" in schema and len(matching) > 1:
            problems.append(f"at {path}: {_show(value)} matches more than one alternative of oneOf")
    for sub in schema.get("allOf", ()):
        problems += validate(value, sub, root, path)
    if "const" in schema and value != schema["const"]:
        problems.append(f"at {path}: expected {_show(schema['const'])}, found {_show(value)}")
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        problems.append(f"at {path}: {_show(value)} is not one of {schema['enum']!r}")
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(_TYPE_CHECKS[t](value) for t in types):
            return problems + [f"at {path}: expected {' or '.join(types)}, found {_show(value)}"]
    if isinstance(value, dict):
        problems += _validate_object(value, schema, root, path)
    elif isinstance(value, list):
        problems += _validate_array(value, schema, root, path)
    elif isinstance(value, str):
        problems += _validate_string(value, schema, path)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        problems += _validate_number(value, schema, path)
    return problems


def is_valid(value: Any, schema: dict) -> bool:
    """Whether ``value`` satisfies ``schema``."""
    return not validate(value, schema)


def _validate_object(value: dict, schema: dict, root: dict, path: str) -> list[str]:
    problems = []
    props = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in value:
            problems.append(f"at {path}: missing required property {name!r}")
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in props:
            problems += validate(item, props[name], root, f"{path}.{name}")
        elif extra is False:
            problems.append(f"at {path}: unexpected property {name!r}")
        elif isinstance(extra, dict):
            problems += validate(item, extra, root, f"{path}.{name}")
    return problems


def _validate_array(value: list, schema: dict, root: dict, path: str) -> list[str]:
    problems = []
    if len(value) < schema.get("minItems", 0):
        problems.append(f"at {path}: fewer than {schema['minItems']} items")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        problems.append(f"at {path}: more than {schema['maxItems']} items")
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            problems += validate(item, items, root, f"{path}[{i}]")
    if schema.get("uniqueItems"):
        seen = []
        for item in value:
            if any(_same(item, s) for s in seen):
                problems.append(f"at {path}: items are not unique")
                break
            seen.append(item)
    return problems


def _validate_string(value: str, schema: dict, path: str) -> list[str]:
    problems = []
    if len(value) < schema.get("minLength", 0):
        problems.append(f"at {path}: shorter than {schema['minLength']} characters")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        problems.append(f"at {path}: longer than {schema['maxLength']} characters")
    if "pattern" in schema and not compiled_pattern(schema["pattern"]).search(value):
        problems.append(f"at {path}: {value!r} does not match pattern {schema['pattern']!r}")
    return problems


def _validate_number(value: float, schema: dict, path: str) -> list[str]:
    problems = []
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"at {path}: {value} is not a JSON number")
    if "minimum" in schema and value < schema["minimum"]:
        problems.append(f"at {path}: {value} is less than {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        problems.append(f"at {path}: {value} is more than {schema['maximum']}")
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        problems.append(f"at {path}: {value} is not more than {schema['exclusiveMinimum']}")
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        problems.append(f"at {path}: {value} is not less than {schema['exclusiveMaximum']}")
    step = schema.get("multipleOf")
    if step and abs(value / step - round(value / step)) > 1e-9:
        problems.append(f"at {path}: {value} is not a multiple of {step}")
    return problems


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == True`` in Python, not in JSON."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def strict_schema_problems(schema: Any, path: str = "") -> list[str]:
    """What makes ``schema`` unacceptable to OpenAI's strict mode (empty when it is fine).

    Strict mode wants every object closed (``additionalProperties: false``) with every property
    listed in ``required``; optional values are ``anyOf`` with null, not missing keys.

    >>> strict_schema_problems({"type": "object", "properties": {"a": {"type": "string"}}})
    ["In context=(), 'additionalProperties' is required to be supplied and to be false", "In context=(), 'required' is required to be supplied and to be an array including every key in properties. Missing 'a'"]
    """
    problems: list[str] = []
    if not isinstance(schema, dict):
        return [f"In context=({path}), schema must be a JSON object"]
    context = f"In context=({path})"
    kind = schema.get("type")
    if kind == "object" or (isinstance(kind, list) and "object" in kind):
        if schema.get("additionalProperties") is not False:
            problems.append(f"{context}, 'additionalProperties' is required to be supplied and to be false")
        props = schema.get("properties", {})
        required = schema.get("required", [])
        missing = [name for name in props if name not in required]
        if missing:
            problems.append(
                f"{context}, 'required' is required to be supplied and to be an array including every key "
                f"in properties. Missing '{missing[0]}'"
            )
        for name, sub in props.items():
            problems += strict_schema_problems(sub, _join(path, "properties", name))
    if isinstance(schema.get("items"), dict):
        problems += strict_schema_problems(schema["items"], _join(path, "items"))
    for key in ("anyOf",):
        for i, sub in enumerate(schema.get(key, ())):
            problems += strict_schema_problems(sub, _join(path, key, str(i)))
    for key in ("$defs", "definitions"):
        for name, sub in schema.get(key, {}).items():
            problems += strict_schema_problems(sub, _join(path, key, name))
    if "oneOf" in schema:
        problems.append(f"{context}, 'oneOf' is not permitted")
    if path == "" and kind != "object":
        problems.append(f"{context}, schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{kind}\"'")
    return problems


def _join(path: str, *parts: str) -> str:
    quoted = ", ".join(f"'{p}'" for p in parts)
    return f"{path}, {quoted}" if path else quoted
