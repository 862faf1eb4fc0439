"""The checker: examples check clean, each diagnostic names the right source text."""

from __future__ import annotations

import doctest
import pathlib
import re

import pytest

from vox.compiler.api import check_source
from vox.compiler.diagnostics.codes import CODES
from vox.compiler.hir import problems
from vox.compiler.hir import types as t

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.vox"))
SHARED_REFERENCE = ROOT.parent / "shared" / "design" / "reference.vox"

PRELUDE = """\
label pii
provider sim = sim { clearance: [public, pii] }
model mini = sim/"mini" {
  context: 8_000
  max_output: 500
  price: { input: $0.15, output: $0.60 }
  capabilities: [tools, logprobs, json_schema]
}
type Ticket = { id: str, body: str @pii, order: str? }
enum Intent { refund, other }
type Triage = { intent: Intent, summary: str }
agent triager(ticket: Ticket) -> Triage {
  model: mini
  prompt: "Classify: {ticket.body}"
}
tool lookup(id: str) -> str {
  effect: read
  clearance: [public, pii]
}
"""


def diags(body: str):
    """(code, underlined source text) of every diagnostic of PRELUDE + body."""
    text = PRELUDE + body
    result = check_source("t.vox", text)
    return [(d.code, text[d.span.start : d.span.end]) for d in result.diagnostics]


def test_reference_is_the_shared_design_copy():
    if SHARED_REFERENCE.exists():
        assert (ROOT / "examples" / "reference.vox").read_text() == SHARED_REFERENCE.read_text()


def test_there_are_at_least_five_realistic_examples_besides_reference():
    assert len([p for p in EXAMPLES if p.name != "reference.vox"]) >= 5


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_check_with_zero_diagnostics(path):
    result = check_source(str(path), path.read_text())
    assert [(d.code, d.message) for d in result.diagnostics] == []


def test_prelude_is_clean():
    assert diags("") == []


@pytest.mark.parametrize(
    "body, expected",
    [
        ("flow f(t: Ticket) -> str {\n  return t.bdy\n}\n", [("V1006", "bdy")]),
        ("flow f(t: Ticket) -> str {\n  return t.order\n}\n", [("V1016", "t.order")]),
        ("flow f(t: Ticket) -> str {\n  if t.order != none { return t.order }\n  return \"\"\n}\n", []),
        ("flow f(t: Ticket) -> str {\n  if t.order == none { return \"\" } else { return t.order }\n}\n", []),
        ("flow f(t: Ticket) -> str {\n  if t.order == none { return \"\" }\n  return t.order\n}\n", []),
        ("flow f(t: Ticket) -> str {\n  if t.order == none { let x = 1 }\n  return t.order\n}\n",
         [("V1016", "t.order")]),
        ("flow f(t: Ticket) -> str {\n  if t.order == none { return t.order }\n  return \"\"\n}\n",
         [("V1016", "t.order")]),
        ("flow f(t: Ticket) -> Triage {\n  return triager(tickt: t)\n}\n", [("V1013", "tickt")]),
        ("flow f(t: Ticket) -> Triage {\n  return triager(ticket: tickt)\n}\n", [("V1001", "tickt")]),
        ("flow f(t: Ticket) -> Triage {\n  return triager(t)\n}\n", []),
        ("flow f(t: Ticket) -> bool {\n  let x = triager(ticket: t)\n  return x.intent == refund\n}\n", []),
        ("flow f(t: Ticket) -> bool {\n  let x = triager(ticket: t)\n  return refund == x.intent\n}\n", []),
        ("flow f(t: Ticket) -> Triage {\n  return { intent: refnd, summary: \"s\" }\n}\n", [("V1012", "refnd")]),
        ("flow f() -> Triage {\n  return { intent: other }\n}\n", [("V1007", "{ intent: other }")]),
        ("flow f() -> money {\n  return $1 + 2\n}\n", [("V1015", "$1 + 2")]),
        ("flow f() -> money {\n  return $1 * 2 + $0.5\n}\n", []),
        ("flow f() -> duration {\n  return 5s + 250ms\n}\n", []),
        ("flow f() -> bool {\n  return 5s < $1\n}\n", [("V1015", "5s < $1")]),
        ("flow f(x: int) -> int {\n  if x > 1 { return 1 }\n}\n", [("V1022", "}")]),
        ("flow f(x: int) -> int {\n  if x > 1 { return 1 } else { return 2 }\n}\n", []),
        ("flow f(xs: list[Ticket]) -> list[str] {\n  return for t in xs max 3 { lookup(id: t.id) }\n}\n", []),
        ("flow f(xs: list[Ticket]) -> list[int] {\n  return for t in xs max 3 { lookup(id: t.id) }\n}\n",
         [("V1005", "lookup(id: t.id)")]),
        ("flow f(t: Ticket) -> str {\n  par {\n    let a = lookup(id: t.id)\n    let b = lookup(id: a)\n  }\n  return b\n}\n",
         [("V1001", "a")]),
        ("flow f(t: Ticket) -> str {\n  par {\n    let a = lookup(id: t.id)\n    let b = lookup(id: \"x\")\n  }\n  return a + b\n}\n",
         []),
        ("type R = { r: Receipt[lookup] }\n", [("V4004", "lookup")]),  # a tool, but `read` ones give no receipts
        ("type R = { r: Receipt[triager] }\n", [("V1017", "triager")]),
        ("type R = { r: Receipt[nothing] }\n", [("V1017", "nothing")]),
        ("type R = { r: str @secret }\n", [("V1011", "secret")]),
        ("model m2 = nowhere/\"x\" { context: 1_000 }\n", [("V1018", "nowhere")]),
        ("model m2 = sim/\"x\" { context: $5 }\n", [("V1015", "$5")]),
        ("tool t2(x: str) -> str {\n  effect: read\n  timeout: 5\n}\n", [("V1015", "5")]),
        ("agent a2(x: str) -> str {\n  model: mini\n  prompt: \"{x.y}\"\n}\n", [("V1014", "{x.y}")]),
        ("agent a2(x: Ticket) -> str {\n  model: mini\n  prompt: \"{x.body} {{literal}}\"\n}\n", []),
        ("agent a2(x: str) -> str {\n  model: lookup\n  prompt: \"{x}\"\n}\n", [("V1004", "lookup")]),
        ("agent a2(x: str) -> str {\n  model: mini\n  fallback: [mni]\n  prompt: \"{x}\"\n}\n", [("V1001", "mni")]),
        ("agent a2(x: str) -> str {\n  model: mini\n  tokens: 5\n  prompt: \"{x}\"\n}\n", [("V1008", "tokens")]),
        ("agent a2(x: str) -> str {\n  model: mini\n  budget: { cost: 5 }\n  prompt: \"{x}\"\n}\n",
         [("V1015", "5")]),
        ("agent a2(x: str) -> str {\n  model: mini\n  budget: { wall: 60 }\n  prompt: \"{x}\"\n}\n",
         [("V1015", "60")]),
        ("agent a2(x: str) -> str {\n  model: mini\n  budget: { tokens: 5s }\n  prompt: \"{x}\"\n}\n",
         [("V1015", "5s")]),
        ("provider p2 = openai { key: \"sk-abc\" }\n", [("V1019", "\"sk-abc\"")]),
        ("provider p2 = openai { key: env(\"OPENAI_API_KEY\") }\n", []),
        ("provider p2 = opena { key: env(\"K\") }\n", [("V1020", "opena")]),
        ("budget tenant { cost: $5 per day, requests: 60 per minute }\n", []),
        ("budget tenant { cost: $5 per fortnight }\n", [("V1023", "fortnight")]),
        ("budget tenant { cost: 5 per day }\n", [("V1015", "5 per day")]),
        ("gate g(t: Triage) {\n  check confidence >= 0.5 else retry(1)\n  check t.summary != \"\" else abstain\n}\n", []),
        ("gate g(t: Triage) {\n  check confidense >= 0.5 else retry(1)\n}\n", [("V1001", "confidense")]),
        ("gate g(t: Triage) {\n  check t.summary else halt\n}\n", [("V1005", "t.summary")]),
        ("gate g(t: Triage) {\n  check receipts_ok else explode\n}\n", [("V1020", "explode")]),
        ("label pii\n", [("V1002", "pii")]),
        ("type str = { a: int }\n", [("V1002", "str")]),
    ],
)
def test_checker_diagnostics(body, expected):
    assert diags(body) == expected


# One kind of problem, one code (issue 11): every place that used to report the catch-all V1005
# "type mismatch" or V1026 "value not allowed here", with the code it reports now.
HELPER = 'agent helper(q: str) -> str {\n  model: mini\n  tools: [lookup]\n  prompt: "{q}"\n}\n'
ASKS = 'flow asks(q: str) -> str {\n  return helper(q: q)\n}\n'


@pytest.mark.parametrize(
    "body, expected",
    [
        # V1005: a value of one type where another is expected
        ('flow f() -> int {\n  return "x"\n}\n', [("V1005", '"x"')]),
        ("flow f() -> int {\n  return { a: 1 }\n}\n", [("V1005", "{ a: 1 }")]),
        # V1027: a record literal with no type to take
        ("flow f() -> int {\n  let r = { a: 1 }\n  return 1\n}\n", [("V1027", "{ a: 1 }")]),
        # V1028: operations on types they do not take
        ("flow f(x: str) -> str {\n  return x[0]\n}\n", [("V1028", "x")]),
        ("flow f(x: str) -> str {\n  return -x\n}\n", [("V1028", "-x")]),
        ("flow f(x: bool) -> int {\n  return x + 1\n}\n", [("V1028", "x + 1")]),
        ("flow f(x: bool) -> bool {\n  return x < true\n}\n", [("V1028", "x < true")]),
        ("flow f(x: str) -> list[str] {\n  return for c in x max 3 { c }\n}\n", [("V1028", "x")]),
        ("flow f(x: int) -> int {\n  return len(x)\n}\n", [("V1028", "x")]),
        # V1029, V1030, V1031: `let` and `return` against what the flow declares
        ("flow f() -> int {\n  let n = none\n  return 1\n}\n", [("V1029", "none")]),
        ("flow f() -> int {\n  return\n}\n", [("V1030", "return")]),
        ("flow f() {\n  return 1\n}\n", [("V1031", "1")]),
        # V1032: member values of the wrong form
        ('agent a2(x: str) -> str {\n  model: mini\n  fallback: "mini"\n  prompt: "{x}"\n}\n',
         [("V1032", '"mini"')]),
        ('agent a2(x: str) -> str {\n  model: 1\n  prompt: "{x}"\n}\n', [("V1032", "1")]),
        ("provider p2 = openai { key: 5 }\n", [("V1032", "5")]),
        ('agent a2(x: str) -> str {\n  model: mini\n  prompt: 5\n}\n', [("V1032", "5")]),
        ('model m2 = sim/"m2" { context: 8_000, max_output: 500, price: free, capabilities: tools }\n',
         [("V1032", "tools")]),
        ('model m2 = sim/"m2" { context: 8_000, max_output: 500, price: $1 }\n', [("V1032", "$1")]),
        ('tool t2(id: str) -> str {\n  effect: read\n  bind: "x"\n}\n', [("V1032", '"x"')]),
        ("flow f() -> int {\n  budget: $1\n  return 1\n}\n", [("V1032", "$1")]),
        ('agent a2(x: str) -> str {\n  model: mini\n  compaction: keep(2)\n  prompt: "{x}"\n}\n',
         [("V1032", "keep(2)")]),
        ("budget tenant { cost: $5 }\n", [("V1032", "$5")]),
        ('flow f(name: str) -> str {\n  return name\n}\ntest "t" {\n  flow: f\n  input: "Ada"\n}\n',
         [("V1032", '"Ada"')]),
        # V1033: a gate that cannot read the agent's result
        ('gate g(n: int) {\n  check n > 0 else halt\n}\n'
         'agent a2(x: str) -> str {\n  model: mini\n  gates: [g]\n  prompt: "{x}"\n}\n', [("V1033", "[g]")]),
        # V1034: values the compiler must know before running
        ("flow f(xs: list[int], n: int) -> list[int] {\n  return for x in xs max n { x }\n}\n",
         [("V1034", "n")]),
        ('flow f() -> int {\n  budget: { cost: $0.01 * len("abc") }\n  return 1\n}\n',
         [("V1034", '$0.01 * len("abc")')]),
        ('model m2 = sim/"m2" { context: 8_000, max_output: 500, price: { input: $1 * len("a"), output: $1 } }\n',
         [("V1034", '{ input: $1 * len("a"), output: $1 }')]),
        ('budget tenant { cost: $1 * len("a") per day }\n', [("V1034", '$1 * len("a") per day')]),
        # V1026: values out of range
        ('model m2 = sim/"m2" { context: 0, max_output: 500, price: free }\n', [("V1026", "0")]),
        ('tool t2(id: str) -> str {\n  effect: read\n  retries: -1\n}\n', [("V1026", "-1")]),
        ('agent a2(x: str) -> str {\n  model: mini\n  temperature: 3.0\n  prompt: "{x}"\n}\n', [("V1026", "3.0")]),
        ('agent a2(x: str) -> str {\n  model: mini\n  compaction: truncate(keep_last: 0)\n  prompt: "{x}"\n}\n',
         [("V1026", "0")]),
        ("flow f(xs: list[int]) -> list[int] {\n  return for x in xs max -1 { x }\n}\n", [("V1026", "-1")]),
        # V1035, V1036: a model's size and strings of the wrong form
        ('model m2 = sim/"m2" { context: 8_000, max_output: 9_000, price: free }\n', [("V1035", "9_000")]),
        ('model m2 = sim/"" { context: 8_000, max_output: 500, price: free }\n', [("V1036", '""')]),
        ('provider p2 = openai { key: env("1KEY") }\n', [("V1036", '"1KEY"')]),
        ('tool t2(id: str) -> str {\n  effect: read\n  bind: python("lookup")\n}\n', [("V1036", '"lookup"')]),
        ('tool t2(id: str) -> str {\n  effect: read\n  bind: http.get("ftp://x/{id}")\n}\n',
         [("V1036", '"ftp://x/{id}"')]),
        # V1037: a declassification must say why
        ('flow f(t: Ticket) -> str {\n  return declassify(t.body, reason: "")\n}\n', [("V1037", '""')]),
        ("flow f(t: Ticket) -> str {\n  return declassify(t.body, reason: t.id)\n}\n", [("V1037", "t.id")]),
        # V1038 to V1041: statements in the wrong place
        ("flow f(xs: list[int]) -> list[int] {\n  return for x in xs max 3 { let y = x }\n}\n",
         [("V1038", "{ let y = x }")]),
        ("flow f(x: str) -> str {\n  par {\n    return x\n  }\n  return x\n}\n", [("V1039", "return x")]),
        ("flow f(xs: list[int]) -> list[int] {\n  let ys = for x in xs max 3 {\n    return []\n    x\n  }\n"
         "  return ys\n}\n", [("V1040", "return []")]),
        ("flow f() -> int {\n  1 + 2\n  return 1\n}\n", [("V1041", "1 + 2")]),
        # V1042 to V1045: calls and receipts in the wrong place
        ("flow f(t: Ticket) -> str {\n  return t.id()\n}\n", [("V1042", "t.id")]),
        ("gate g(t: Triage) {\n  check triager(ticket: t) else halt\n}\n", [("V1043", "triager")]),
        ("tool pay(id: str) -> str { effect: write }\ntype R = { r: Receipt[pay] }\n"
         "flow f() -> R {\n  return { r: receipt(pay) }\n}\n", [("V1044", "receipt(pay)")]),
        # V1046 to V1049: tests and their mocks
        ('flow f(x: str) -> str {\n  return lookup(id: x)\n}\ntest "t" {\n  flow: f\n  input: { x: "1" }\n'
         "  approve: [lookup]\n}\n", [("V1046", "[lookup]")]),
        (HELPER + ASKS + 'test "t" {\n  flow: asks\n  input: { q: "1" }\n  mock helper: [call lookup(id: "1")]\n}\n',
         [("V1047", 'mock helper: [call lookup(id: "1")]')]),
        ('flow f(x: str) -> str {\n  return lookup(id: x)\n}\ntest "t" {\n  flow: f\n  input: { x: "1" }\n'
         '  mock lookup: [call lookup(id: "1"), reply "x"]\n}\n', [("V1048", 'call lookup(id: "1")')]),
        ("tool pay(id: str) -> str {\n  effect: write\n  idempotent: true\n}\n" + HELPER + ASKS +
         'test "t" {\n  flow: asks\n  input: { q: "1" }\n  mock helper: [call pay(id: "1"), reply "x"]\n}\n',
         [("V1049", "pay")]),
    ],
)
def test_each_kind_of_problem_has_its_own_code(body, expected):
    assert diags(body) == expected


def test_problem_constructors():
    assert doctest.testmod(problems).failed == 0
    source = pathlib.Path(problems.__file__).read_text()
    emitted = re.findall(r'sink\.(?:error|warning)\(\s*"(V\d{4})"', source)
    assert len(emitted) == len(set(emitted)), "two constructors report one code"
    assert set(emitted) <= set(CODES)
    # the catch-alls are reported only through their constructors, so each keeps one meaning
    for path in pathlib.Path(problems.__file__).parent.glob("*.py"):
        if path.name != "problems.py":
            assert not re.search(r'"V1005"|"V1026"', path.read_text()), path.name


def test_types_of_declarations_are_resolved():
    result = check_source("t.vox", PRELUDE)
    program = result.program
    ticket = program.types["Ticket"]
    assert isinstance(ticket, t.RecordType)
    assert ticket.field("body").labels == frozenset({"pii"})
    assert ticket.field("order").type == t.OptionalType(t.STR)
    assert program.models["mini"].price.input == 150_000
    assert program.agents["triager"].chain == ("mini",)
    assert program.tools["lookup"].clearance == frozenset({"public", "pii"})


def test_references_bind_every_use_to_its_declaration():
    result = check_source("t.vox", PRELUDE + "flow f(t: Ticket) -> Triage {\n  return triager(ticket: t)\n}\n")
    uses = [(PRELUDE_TEXT_AT(result, span), sym.kind) for span, sym in result.program.references]
    assert ("triager", "agent") in uses
    assert ("Ticket", "type") in uses
    assert ("mini", "model") in uses


def PRELUDE_TEXT_AT(result, span):
    return result.source.text[span.start : span.end]


def test_errors_inside_a_declaration_with_a_syntax_error_are_not_repeated():
    text = PRELUDE + "flow f(t: Ticket) -> str {\n  let x = lookup(id: t.id\n  return x\n}\n"
    codes = [d.code for d in check_source("t.vox", text).diagnostics]
    assert codes == ["V0003"]


def test_a_declaration_that_failed_to_parse_does_not_cause_unknown_names_elsewhere():
    text = PRELUDE + "agent broken(x: str) {\n  model: mini\n}\nflow f() -> str {\n  return broken(x: \"a\")\n}\n"
    codes = [d.code for d in check_source("t.vox", text).diagnostics]
    assert codes == ["V0012"]
