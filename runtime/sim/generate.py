"""Deterministic answers when no script says what to answer: schema-valid values and plain text.

Everything here is a pure function of a :class:`random.Random`, itself seeded from a hash of
(seed, run, agent, step, call index), so the same requests give the same answers.

>>> import random
>>> money = {"type": "string", "pattern": r"^-?[0-9]+(\\.[0-9]{1,6})?$"}
>>> from vox.runtime.sim.schema import is_valid
>>> all(is_valid(generate_value(money, random.Random(i)), money) for i in range(50))
True
"""

from __future__ import annotations

import random
import re
import re._constants as sre_c
import re._parser as sre_parse
import string
from functools import lru_cache
from typing import Any, Callable

from vox.runtime.sim.schema import compiled_pattern, is_valid, resolve_ref

WORDS = (
    "the order was shipped on time and the customer asked about a refund for item "
    "account balance invoice payment status ticket reply summary request support team "
    "review approved pending delivered returned card address update policy within days "
    "thanks please note that we have checked your details and found everything in order"
).split()

# Receipt-typed strings carry this description (see compiler/plan/value_schema.py); an
# unscripted answer copies the receipt from the conversation, as a well-behaved model would.
_RECEIPT_DESCRIPTION = re.compile(r"receipt for a call of tool `([^`]+)`")
MISSING_RECEIPT = "rcpt_missing"

_MAX_DEPTH = 6
_UNBOUNDED_EXTRA = 3  # how many repeats beyond the minimum an open-ended `*`/`+`/`{n,}` gets


def sentence(rng: random.Random, low: int = 6, high: int = 18) -> str:
    """A plain-text answer of ``low``..``high`` words.

    >>> sentence(random.Random(1)) == sentence(random.Random(1))
    True
    """
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    words[0] = words[0].capitalize()
    return " ".join(words) + "."


def generate_value(
    schema: dict | bool,
    rng: random.Random,
    receipts: Callable[[str], str] | None = None,
    root: dict | None = None,
    depth: int = 0,
) -> Any:
    """A value valid against ``schema``, chosen by ``rng``.

    ``receipts(tool)`` gives the receipt id to use for a string described as a receipt of
    ``tool`` (default: :data:`MISSING_RECEIPT`).
    """
    if schema is True or schema is False or not schema:
        return None if schema is False else rng.choice(WORDS)
    root = schema if root is None else root
    if "$ref" in schema:
        return generate_value(resolve_ref(schema["$ref"], root), rng, receipts, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        return _generate_branch(schema, branches, rng, receipts, root, depth)
    if "allOf" in schema:
        merged: dict = {k: v for k, v in schema.items() if k != "allOf"}
        for sub in schema["allOf"]:
            merged.update(resolve_ref(sub["$ref"], root) if "$ref" in sub else sub)
        return generate_value(merged, rng, receipts, root, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        # Deep inside a recursive schema, prefer null to keep values finite.
        kind = "null" if depth >= _MAX_DEPTH and "null" in kind else rng.choice(kind)
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    return _GENERATORS[kind](schema, rng, receipts, root, depth)


def _generate_branch(schema, branches, rng, receipts, root, depth):
    order = list(range(len(branches)))
    non_null = [i for i in order if branches[i].get("type") != "null"]
    if depth >= _MAX_DEPTH and len(non_null) < len(order):
        order = [i for i in order if i not in non_null]
    elif non_null and rng.random() < 0.8:  # mostly present: a model fills in what it can
        order = non_null
    first = rng.choice(order)
    for i in [first, *order]:
        value = generate_value(branches[i], rng, receipts, root, depth + 1)
        if "oneOf" not in schema or sum(is_valid(value, b) for b in branches) == 1:
            return value
    return value


def _object(schema, rng, receipts, root, depth):
    required = set(schema.get("required", ()))
    out = {}
    for name, sub in schema.get("properties", {}).items():
        if name in required or (depth < _MAX_DEPTH and rng.random() < 0.5):
            out[name] = generate_value(sub, rng, receipts, root, depth + 1)
    return out


def _array(schema, rng, receipts, root, depth):
    low = schema.get("minItems", 0)
    high = schema.get("maxItems", max(low, 3 if depth < _MAX_DEPTH else low))
    items = schema.get("items", {})
    if items == {"type": "null"} and high == 0:
        return []
    count = rng.randint(low, max(low, min(high, low + 3)))
    out: list = []
    for _ in range(count * 4 if schema.get("uniqueItems") else count):
        if len(out) == count:
            break
        value = generate_value(items, rng, receipts, root, depth + 1)
        if not schema.get("uniqueItems") or value not in out:
            out.append(value)
    return out


def _string(schema, rng, receipts, root, depth):
    described = _RECEIPT_DESCRIPTION.search(schema.get("description", ""))
    if described:
        return (receipts or (lambda _tool: MISSING_RECEIPT))(described.group(1))
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if "pattern" in schema:
        pattern = compiled_pattern(schema["pattern"])
        for _ in range(20):
            text = string_matching(schema["pattern"], rng)
            if pattern.search(text) and low <= len(text) and (high is None or len(text) <= high):
                return text
        raise ValueError(f"cannot generate a string matching {schema['pattern']!r}")
    fmt = schema.get("format")
    if fmt in _FORMATS:
        return _FORMATS[fmt](rng)
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
    while len(text) < low:
        text += " " + rng.choice(WORDS)
    return text if high is None else text[:high]


def _integer(schema, rng, receipts, root, depth):
    low, high = _bounds(schema, 0, 100, integer=True)
    step = schema.get("multipleOf")
    if step and isinstance(step, int):
        first, last = -(-low // step), high // step
        return rng.randint(first, max(first, last)) * step
    return rng.randint(low, max(low, high))


def _number(schema, rng, receipts, root, depth):
    low, high = _bounds(schema, 0.0, 100.0, integer=False)
    value = round(rng.uniform(low, high), 2)
    return min(max(value, low), high)


def _bounds(schema, default_low, default_high, integer):
    nudge = 1 if integer else 1e-6
    low = schema.get("minimum", schema["exclusiveMinimum"] + nudge if "exclusiveMinimum" in schema else None)
    high = schema.get("maximum", schema["exclusiveMaximum"] - nudge if "exclusiveMaximum" in schema else None)
    if integer:
        low = None if low is None else int(-(-low // 1))
        high = None if high is None else int(high // 1)
    if low is None and high is None:
        return default_low, default_high
    if low is None:
        return high - (default_high - default_low), high
    if high is None:
        return low, low + (default_high - default_low)
    return low, high


_GENERATORS = {
    "object": _object,
    "array": _array,
    "string": _string,
    "integer": _integer,
    "number": _number,
    "boolean": lambda schema, rng, *_: rng.random() < 0.5,
    "null": lambda *_: None,
}

_FORMATS = {
    "date-time": lambda r: f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00Z",
    "date": lambda r: f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    "time": lambda r: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00",
    "email": lambda r: f"{r.choice(WORDS)}{r.randint(1, 99)}@example.com",
    "uuid": lambda r: "%08x-%04x-4%03x-a%03x-%012x" % (
        r.getrandbits(32), r.getrandbits(16), r.getrandbits(12), r.getrandbits(12), r.getrandbits(48)),
    "uri": lambda r: f"https://example.com/{r.choice(WORDS)}",
}


# --- strings matching a regular expression -------------------------------------------------


@lru_cache(maxsize=512)
def _parsed(pattern: str):
    return sre_parse.parse(pattern)


def string_matching(pattern: str, rng: random.Random) -> str:
    """A string the regular expression ``pattern`` matches (lookarounds are ignored).

    >>> string_matching(r"^[A-Z]{2}-[0-9]{3}$", random.Random(3))
    'SR-597'
    """
    groups: dict[int, str] = {}
    return _emit(_parsed(pattern), rng, groups)


_PRINTABLE = string.ascii_letters + string.digits + " -_.,"
_CATEGORIES = {
    sre_c.CATEGORY_DIGIT: string.digits,
    sre_c.CATEGORY_NOT_DIGIT: string.ascii_letters + " _-",
    sre_c.CATEGORY_SPACE: " ",
    sre_c.CATEGORY_NOT_SPACE: string.ascii_letters + string.digits,
    sre_c.CATEGORY_WORD: string.ascii_letters + string.digits + "_",
    sre_c.CATEGORY_NOT_WORD: " -.,",
}


def _emit(items, rng: random.Random, groups: dict[int, str]) -> str:
    out = []
    for op, arg in items:
        if op is sre_c.LITERAL:
            out.append(chr(arg))
        elif op is sre_c.NOT_LITERAL:
            out.append(rng.choice([c for c in _PRINTABLE if ord(c) != arg]))
        elif op is sre_c.ANY:
            out.append(rng.choice(string.ascii_letters + string.digits))
        elif op is sre_c.IN:
            out.append(_emit_class(arg, rng))
        elif op is sre_c.BRANCH:
            out.append(_emit(rng.choice(arg[1]), rng, groups))
        elif op is sre_c.SUBPATTERN:
            group, _add, _del, body = arg
            text = _emit(body, rng, groups)
            if group is not None:
                groups[group] = text
            out.append(text)
        elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", None)):
            low, high, body = arg
            high = low + _UNBOUNDED_EXTRA if high is sre_c.MAXREPEAT else high
            out.extend(_emit(body, rng, groups) for _ in range(rng.randint(low, high)))
        elif op is sre_c.GROUPREF:
            out.append(groups.get(arg, ""))
        elif op is sre_c.ATOMIC_GROUP:
            out.append(_emit(arg, rng, groups))
        # AT (anchors), ASSERT, ASSERT_NOT: nothing to emit
    return "".join(out)


def _emit_class(items, rng: random.Random) -> str:
    chars: list[str] = []
    negate = False
    for op, arg in items:
        if op is sre_c.NEGATE:
            negate = True
        elif op is sre_c.LITERAL:
            chars.append(chr(arg))
        elif op is sre_c.RANGE:
            low, high = arg
            chars.extend(chr(c) for c in range(low, min(high, low + 200) + 1))
        elif op is sre_c.CATEGORY:
            chars.extend(_CATEGORIES.get(arg, string.ascii_letters))
    if negate:
        excluded = set(chars)
        chars = [c for c in _PRINTABLE if c not in excluded]
    return rng.choice(chars)
