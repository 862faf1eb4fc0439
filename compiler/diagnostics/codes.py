"""Every diagnostic code the compiler can emit, with a one-line title.

`spec/diagnostics.md` documents each code (tests/test_diagnostic_codes.py checks that every code
here has a section there and a golden rendering under tests/golden/diagnostics/).
Families: V0xxx syntax, V1xxx names and types, V2xxx budgets, V3xxx sensitivity labels,
V4xxx effects and receipts, V5xxx gates.
"""

from __future__ import annotations

CODES: dict[str, str] = {
    # ---- V0: syntax
    "V0001": "unexpected character",
    "V0002": "unexpected token",
    "V0003": "unclosed bracket",
    "V0004": "single-quoted string",
    "V0005": "unterminated string",
    "V0006": "unknown duration unit",
    "V0007": "unknown escape in a string",
    "V0008": "money below one micro-dollar",
    "V0009": "malformed number",
    "V0010": "missing `:` in a member",
    "V0011": "`=` instead of `:` in a member",
    "V0012": "missing return type",
    "V0013": "`=` instead of `==`",
    "V0014": "missing separator between items",
    "V0015": "not a declaration",
    "V0016": "keyword from another language",
    "V0017": "parameter without a type",
    "V0018": "missing comma between arguments or list items",
    "V0019": "unmatched closing bracket",
    "V0020": "line ends in the middle of an expression",
    # ---- V1: names and types
    "V1001": "unknown name",
    "V1002": "duplicate declaration",
    "V1003": "unknown type",
    "V1004": "wrong kind of name",
    "V1005": "type mismatch",
    "V1006": "unknown field",
    "V1007": "missing field",
    "V1008": "unknown member",
    "V1009": "missing member",
    "V1010": "duplicate member or field",
    "V1011": "unknown label",
    "V1012": "unknown enum member",
    "V1013": "bad call arguments",
    "V1014": "unknown prompt placeholder",
    "V1015": "mixed units",
    "V1016": "optional value used as required",
    "V1017": "`Receipt[...]` must name a tool",
    "V1018": "model refers to an unknown provider",
    "V1019": "secret written in source",
    "V1020": "unknown protocol, effect or capability",
    "V1021": "wrong number of type arguments",
    "V1022": "missing return",
    "V1023": "unknown rate unit",
    "V1024": "duplicate name in scope",
    "V1025": "bad template",
    "V1026": "value not allowed here",
    # ---- V2: budgets (compiler/analysis/budgets.py)
    "V2001": "flow may exceed its budget",
    "V2002": "loop without `max`",
    "V2003": "agent cannot afford a single call",
    "V2004": "budgeted path reaches a model with no price",
    "V2005": "callee cap exceeds the caller's",
    "V2006": "call needs more tokens than a model's context window",
    "V2007": "callee without a bound",
    "V2008": "recursion without `depth`",
    # ---- V3: sensitivity labels (compiler/analysis/labels.py)
    "V3001": "labelled data in a prompt reaches an uncleared model",
    "V3002": "labelled data in a tool argument",
    "V3003": "agent's tool not cleared for what its model has seen",
    "V3004": "judge model not cleared for the output it reads",
    # ---- V4: effects and receipts (compiler/analysis/effects.py)
    # ---- V5: gates (compiler/analysis/gates.py)
    # ---- V6: pre-flight, checks that read the environment (compiler/preflight.py)
}


def title(code: str) -> str:
    return CODES[code]
