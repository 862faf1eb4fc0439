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
    "V2009": "negative amount or zero time limit",
    "V2010": "`depth` below 1",
    # ---- V3: sensitivity labels (compiler/analysis/labels.py)
    "V3001": "labelled data in a prompt reaches an uncleared model",
    "V3002": "labelled data in a tool argument",
    "V3003": "agent's tool not cleared for what its model has seen",
    "V3004": "judge model not cleared for the output it reads",
    "V3005": "tool result reaches an uncleared model of its agent",
    "V3006": "call under a labelled condition reaches an uncleared sink",
    # ---- V4: effects and receipts (compiler/analysis/effects.py)
    "V4001": "receipt not made by its tool",
    "V4002": "tool result claims a receipt",
    "V4003": "agent output claims a receipt of a tool it lacks",
    "V4004": "receipt of a tool that is never receipted",
    "V4005": "effectful call that a resumed run could repeat",
    "V4006": "approval on a pure tool",
    "V4007": "retried effectful tool is not idempotent",
    # ---- V5: gates (compiler/analysis/gates.py)
    "V5001": "signal needs logprobs on every model in the chain",
    "V5002": "consistency needs sampling on every model in the chain",
    "V5003": "bad signal argument",
    "V5004": "`fallback` on an agent without fallback models",
    "V5005": "retries cannot fit in the steps cap",
    "V5006": "consistency at temperature 0",
    "V5007": "capability the model's protocol cannot provide",
    "V5008": "model lists a capability it refuses",
    # ---- V6: pre-flight, checks that read the environment (compiler/preflight.py)
    "V6001": "binding module cannot be imported",
    "V6002": "binding function not found",
    "V6003": "binding signature does not match the tool",
    "V6004": "environment variable not set",
    "V6005": "flow cost is unbounded and cannot be reserved",
    "V6006": "flow cost exceeds a run-wide budget",
}


def title(code: str) -> str:
    return CODES[code]
