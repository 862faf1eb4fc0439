"""Decoding of literal tokens: money, durations, numbers and strings.

Each decoder returns the value and, when the text is not acceptable, an error message; the
parser turns that message into a diagnostic at the token.
"""

from __future__ import annotations

import re

from vox.compiler import limits

MICROS_PER_DOLLAR = 1_000_000
_DURATION = re.compile(r"([0-9][0-9_]*)(?:\.([0-9]+))?(ms|s|m|h|d)")
_MILLIS_PER_UNIT = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "0": "\0"}


def number_problem(text: str) -> tuple[str, str] | None:
    """The limit a number literal's text passes, as ``(code, message)``, or None.

    Digits are counted before anything is converted (V0023); then the value must fit what plans
    and budgets hold (V0024): integers, micro-dollars and milliseconds up to
    ``limits.MAX_AMOUNT``, and finite floats.

    >>> number_problem("1_000"), number_problem("$9_223_372_036_854.775807")
    (None, None)
    >>> number_problem("1" * 41)[0], number_problem("9_223_372_036_854_775_808")[0]
    ('V0023', 'V0024')
    >>> number_problem("1.0e400")[1]
    'this number is too large to be held as a float (it would be infinite)'
    """
    digits = limits.literal_digits(text)
    if digits > limits.MAX_NUMBER_DIGITS:
        return "V0023", f"this number has {digits} digits, more than the {limits.MAX_NUMBER_DIGITS} a literal may have"
    largest = limits.MAX_AMOUNT
    if text.startswith("$"):
        if decode_money(text)[0] > largest:
            return "V0024", f"this is more money than a program can hold (at most ${largest // MICROS_PER_DOLLAR:_}.{largest % MICROS_PER_DOLLAR:06d})"
    elif text[-1].isalpha():
        if decode_duration(text)[0] > largest:
            return "V0024", f"this is a longer time than a program can hold (at most {largest:_}ms)"
    elif "." in text:
        if not limits.float_in_range(decode_float(text)[0]):
            return "V0024", "this number is too large to be held as a float (it would be infinite)"
    elif decode_int(text)[0] > largest:
        return "V0024", f"this number is larger than a program can hold (at most {largest:_})"
    return None


def decode_int(text: str) -> tuple[int, str | None]:
    """``200_000`` is 200000.

    >>> decode_int("200_000")
    (200000, None)
    """
    return int(text.replace("_", "")), _underscore_problem(text)


def decode_float(text: str) -> tuple[float, str | None]:
    return float(text.replace("_", "")), _underscore_problem(text)


def decode_money(text: str) -> tuple[int, str | None]:
    """Exact money in micro-dollars.

    >>> decode_money("$0.15")
    (150000, None)
    >>> decode_money("$19.99")
    (19990000, None)
    >>> decode_money("$0.0000001")[1]
    'money has at most 6 decimal places (one micro-dollar)'
    """
    body = text[1:]
    whole, _, frac = body.partition(".")
    problem = _underscore_problem(whole)
    if len(frac) > 6:
        frac_value = int(frac[:6])
        problem = "money has at most 6 decimal places (one micro-dollar)"
    else:
        frac_value = int(frac.ljust(6, "0")) if frac else 0
    return int(whole.replace("_", "")) * MICROS_PER_DOLLAR + frac_value, problem


def decode_duration(text: str) -> tuple[int, str | None]:
    """A duration in milliseconds.

    >>> decode_duration("250ms")
    (250, None)
    >>> decode_duration("1.5s")
    (1500, None)
    >>> decode_duration("2m")
    (120000, None)
    """
    m = _DURATION.fullmatch(text)
    assert m, text
    whole, frac, unit = m.groups()
    scale = _MILLIS_PER_UNIT[unit]
    frac = frac or ""
    numerator = int(whole.replace("_", "") + frac) * scale
    denominator = 10 ** len(frac)
    problem = _underscore_problem(whole)
    if numerator % denominator:
        problem = "a duration must be a whole number of milliseconds"
    return numerator // denominator, problem


def _underscore_problem(digits: str) -> str | None:
    if "__" in digits or digits.endswith("_"):
        return "`_` separates digits: write it between two digits"
    return None


def decode_string(raw: str) -> tuple[str, str | None]:
    """Decode a string literal's source text (quotes included).

    Triple-quoted strings are dedented: a newline right after the opening quotes and the
    whitespace-only last line are dropped, then the common indentation of the non-blank lines.

    >>> decode_string('"a\\\\tb"')
    ('a\\tb', None)
    >>> decode_string('\"\"\"\\n    Hi {x}\\n      there\\n  \"\"\"')
    ('Hi {x}\\n  there', None)
    """
    if raw.startswith('"""'):
        body = raw[3:-3]
        body = _dedent(body)
    else:
        body = raw[1:-1]
    return _unescape(body)


def _dedent(body: str) -> str:
    lines = body.split("\n")
    if len(lines) > 1 and lines[0].strip() == "":
        lines = lines[1:]
    if len(lines) > 1 and lines[-1].strip() == "":
        lines = lines[:-1]
    indents = [len(line) - len(line.lstrip(" \t")) for line in lines if line.strip()]
    cut = min(indents) if indents else 0
    return "\n".join(line[cut:] for line in lines)


def _unescape(body: str) -> tuple[str, str | None]:
    if "\\" not in body:
        return body, None
    out = []
    problem = None
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            else:
                problem = f"unknown escape `\\{nxt}` (known: \\n \\t \\r \\\" \\\\ \\0)"
                out.append(nxt)
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out), problem
