"""JSON given on the command line (`run --input`, `approve --result`): read, held to the limits
of :mod:`vox.cli.limits`, and checked against a flow's parameters before a run starts.

Every refusal is an :class:`~vox.cli.common.InputError` naming the flag and the JSON path of the
value at fault (``--input $.tickets[3].id: ...``).
"""

from __future__ import annotations

import json
import math
import re

from vox.cli.common import InputError, read_source
from vox.cli.limits import MAX_JSON_BYTES, MAX_JSON_DEPTH, MAX_JSON_INT_DIGITS


def read_input(text: str | None) -> dict:
    """The flow's arguments given with ``--input`` (``{}`` without it)."""
    if text is None:
        return {}
    value = read_json_text(text, "--input")
    if not isinstance(value, dict):
        raise InputError("--input is a JSON object of the flow's arguments, as in '{\"ticket\": {...}}'")
    return value


def read_json_text(text: str, flag: str):
    """``text`` as JSON, or the JSON in the file ``@path``; an InputError saying where it is wrong.

    >>> read_json_text('{"a": [1, 2.5, "x"]}', "--input")
    {'a': [1, 2.5, 'x']}
    >>> try:
    ...     read_json_text('{"a": [1, NaN]}', "--input")
    ... except InputError as e:
    ...     print(e)
    --input $.a[1]: NaN is not a JSON number; write a finite number
    """
    if text.startswith("@"):
        text = read_source(text[1:], limit=MAX_JSON_BYTES, what="a JSON file")
    too_deep = _too_deep(text)
    if too_deep is not None:
        raise InputError(f"{flag} {too_deep}: nested deeper than {MAX_JSON_DEPTH} arrays and objects, the most voxc "
                         "reads")
    try:
        value = json.loads(text, parse_int=_integer, parse_float=_number, parse_constant=_not_a_number)
    except json.JSONDecodeError as e:
        raise InputError(f"{flag} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    refused = _first_refused(value, "$")
    if refused is not None:
        path, why = refused
        raise InputError(f"{flag} {path}: {why}")
    try:  # a lone surrogate: a "\ud800" escape, or bytes on the command line that are not UTF-8
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(f"{flag} is not valid Unicode text: it holds a lone surrogate "
                         f"(U+{ord(e.object[e.start]):04X}); write text as UTF-8, and a \\ud800-\\udbff escape "
                         "only followed by a \\udc00-\\udfff one") from None
    return value


def check_flow_input(plan, flow_name: str, given: dict) -> None:
    """Refuse ``given`` unless it fits the parameters of ``flow_name`` (as the runtime reads them),
    so that a mistyped input is a usage error before any run starts, not a failed run."""
    from vox.runtime.executor.values import ValueMismatch, from_json

    flow = plan.flows[flow_name]
    names = [p.name for p in flow.params]
    takes = ", ".join(f"`{n}`" for n in names) or "no arguments"
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise InputError(f"--input $.{unknown[0]}: flow `{flow_name}` has no parameter `{unknown[0]}`; it takes "
                         f"{takes}")
    for p in flow.params:
        try:
            from_json(given.get(p.name), p.type, plan.types, f"$.{p.name}", receipts=False)
        except ValueMismatch as e:
            if p.name not in given:
                raise InputError(f"--input has no `{p.name}`: flow `{flow_name}` takes {takes}") from None
            raise InputError(f"--input {e.path}: {e.message}") from None


class _Refused:
    """A JSON value read but not accepted, kept in place so that its path can be reported."""

    __slots__ = ("why",)

    def __init__(self, why: str):
        self.why = why


def _integer(text: str):
    digits = len(text.lstrip("-"))
    if digits > MAX_JSON_INT_DIGITS:
        return _Refused(f"an integer of {digits} digits; voxc reads integers of at most {MAX_JSON_INT_DIGITS} digits")
    return int(text)


def _number(text: str):
    value = float(text)
    if not math.isfinite(value):
        return _Refused(f"{_abbreviated(text)} is beyond the range of a 64-bit float (about ±1.8e308)")
    return value


def _not_a_number(name: str):
    return _Refused(f"{name} is not a JSON number; write a finite number")


def _abbreviated(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}...{text[-8:]}"


def _first_refused(value, path: str) -> tuple[str, str] | None:
    """The path and reason of the first refused value in ``value``, in document order."""
    if isinstance(value, _Refused):
        return path, value.why
    if isinstance(value, dict):
        for key, item in value.items():
            found = _first_refused(item, _member(path, key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _first_refused(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _member(path: str, key: str) -> str:
    """``path.key``, or ``path["key"]`` for a key that is not a plain name."""
    return f"{path}.{key}" if _NAME.match(key) else f"{path}[{json.dumps(key, ensure_ascii=False)}]"


# A string (escapes included), a bracket, a comma or a colon; a lone `"` is a string left open.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:"]', re.DOTALL)


def _too_deep(text: str) -> str | None:
    """Where ``text`` opens more than MAX_JSON_DEPTH nested arrays and objects, as a JSON path and
    a line and column, else None. Done before parsing, as the parser itself would overflow its
    stack on a deep enough document; text that is not JSON is left for the parser to report.

    >>> _too_deep('{"a": [[1], [2, [3]]]}') is None
    True
    """
    stack: list[list] = []  # per open container: [kind, key or index]
    for m in _TOKEN.finditer(text):
        token = m.group()
        c = token[0]
        if c == '"':
            if len(token) == 1:
                return None
            if stack and stack[-1][0] == "{" and stack[-1][1] is None:
                try:
                    stack[-1][1] = json.loads(token)
                except ValueError:
                    stack[-1][1] = token[1:-1]
        elif c in "[{":
            if len(stack) == MAX_JSON_DEPTH:
                line = text.count("\n", 0, m.start()) + 1
                column = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
                return f"{_path_of(stack)} (line {line}, column {column})"
            stack.append([c, None if c == "{" else 0])
        elif c in "]}":
            if stack:
                stack.pop()
        elif c == "," and stack:
            if stack[-1][0] == "[":
                stack[-1][1] += 1
            else:
                stack[-1][1] = None  # the next string is a key
    return None


def _path_of(stack: list[list]) -> str:
    """The JSON path of the innermost open container, its middle elided when it is long.

    >>> _path_of([["{", "a"]] * 10)
    '$.a.a.a.a<2 more>.a.a.a.a'
    """
    parts = [f"[{where}]" if kind == "[" else _member("", str(where or "")) for kind, where in stack]
    if len(parts) > 8:
        parts = [*parts[:4], f"<{len(parts) - 8} more>", *parts[-4:]]
    return "$" + "".join(parts)
