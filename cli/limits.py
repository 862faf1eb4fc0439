"""The limits `voxc` holds what a user gives it to, all in one place (documented in spec/runtime.md).

Each is far beyond what a real program or input needs, and each is reported where it is
exceeded (the file, the flag, the JSON path), never as a crash: without them a 30,000-deep JSON
array overflows the parser's stack, a 5,000-digit number trips Python's integer-conversion guard,
`/dev/zero` given as a program is read until memory runs out, and `1e400` or `NaN` reaches the
budgets as a float that is no number.
"""

from __future__ import annotations

MAX_SOURCE_BYTES = 8 * 1024 * 1024  # a .vox program (the largest example is under 10 KiB)
MAX_JSON_BYTES = 64 * 1024 * 1024  # an `--input @FILE` or `--result @FILE` document
MAX_JSON_DEPTH = 100  # arrays and objects nested in a JSON value, the outermost one counted
# Digits of a JSON integer: at most this many, so that every integer of an input also converts to
# a 64-bit float (a `float` parameter accepts integers; the largest float is about 1.8e308) and
# stays well under Python's own guard of 4,300 digits.
MAX_JSON_INT_DIGITS = 300
MAX_SEED = 2**63 - 1  # `--seed`: 0 to this, so that a seed fits a 64-bit integer column
