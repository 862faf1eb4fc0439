"""The limits every program is held to, in one place (documented in spec/lexical.md#limits).

They exist so that no input, however large or strange, makes the compiler, the formatter or the
planner fail: Python's recursion limit, its 4 300-digit limit on converting integers to text,
non-finite floats (which JSON cannot hold), and the 64-bit integers in which the budget ledger
keeps amounts. Each is far beyond what a program needs, each is diagnosed where it is exceeded
with its own code, and nothing past a limit reaches a later stage.

>>> MAX_AMOUNT == 2**63 - 1
True
"""

from __future__ import annotations

import math
import re

# V0021: characters (code points) in one source file.
MAX_SOURCE_CHARS = 1_000_000

# V0022: how deeply expressions, statements and types may nest. Each operator application, call,
# field access, index, list, record, `for`, `if` (every `else if` too), `par` and type argument
# list is one level (parentheses are not). Every walk of the trees (checking, the analyses,
# formatting, plan lowering) recurses at most a few Python frames per level, so a tree this deep
# stays far inside Python's default recursion limit of 1 000 frames, with room for the callers
# (a test runner, the language server) already on the stack; tests/test_fuzz.py checks it.
MAX_NESTING = 64

# V0023: digits in one number literal (integer, float, money or duration), before any is converted.
MAX_NUMBER_DIGITS = 40

# V0024: the largest integer a program may hold: an integer literal, an amount of money in
# micro-dollars, a duration in milliseconds, a token count. It is what the budget ledger's
# 64-bit integers hold (a little over $9.2 trillion, or 292 million years).
MAX_AMOUNT = 2**63 - 1

# V0025: lone surrogates (U+D800 to U+DFFF) are not text: UTF-8 cannot encode them.
SURROGATE = re.compile("[\ud800-\udfff]")

_NOT_DIGITS = str.maketrans("", "", "_.$eE+-mshd")


def literal_digits(text: str) -> int:
    """The decimal digits in a number literal's source text.

    >>> literal_digits("$1_000.50"), literal_digits("1.5e-3"), literal_digits("250ms")
    (6, 3, 3)
    """
    return len(text.translate(_NOT_DIGITS))


def amount_in_range(value: int) -> bool:
    """Whether an integer fits in what plans and budgets hold.

    >>> amount_in_range(MAX_AMOUNT), amount_in_range(-MAX_AMOUNT), amount_in_range(MAX_AMOUNT + 1)
    (True, True, False)
    """
    return -MAX_AMOUNT <= value <= MAX_AMOUNT


def float_in_range(value: float) -> bool:
    """Whether a float is finite (JSON, and so a plan, holds no infinity or NaN)."""
    return math.isfinite(value)
