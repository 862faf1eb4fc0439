"""Effects and receipts (V4): each code with a program that produces it and the minimal fix that
does not, the effect report, and robustness on broken programs."""

from __future__ import annotations

import pathlib

import pytest

from vox.compiler.api import check_source

ROOT = pathlib.Path(__file__).resolve().parent.parent

PRELUDE = """\
provider sim = sim
model small = sim/"small" { context: 8_000, max_output: 500, price: free, capabilities: [tools] }

tool lookup_order(id: str) -> str {
  effect: read
}

tool issue_refund(order_id: str) -> str {
  effect: write
  idempotent: true
}

type Resolution = { reply: str, refund: Receipt[issue_refund]? }
"""


def check(body: str, prelude: str = PRELUDE):
    text = prelude + body
    return text, check_source("t.vox", text)


def diags(body: str, prelude: str = PRELUDE) -> list[tuple[str, str]]:
    """(code, underlined source text) of every diagnostic of the program."""
    text, result = check(body, prelude)
    return [(d.code, text[d.span.start : d.span.end]) for d in result.diagnostics]


def codes(body: str, prelude: str = PRELUDE) -> list[str]:
    return [code for code, _ in diags(body, prelude)]


def labels(body: str, code: str, prelude: str = PRELUDE) -> list[str]:
    text, result = check(body, prelude)
    d = next(d for d in result.diagnostics if d.code == code)
    return [text[label.span.start : label.span.end] for label in d.labels]


def apply_fix(body: str, code: str, prelude: str = PRELUDE) -> str:
    text, result = check(body, prelude)
    d = next(d for d in result.diagnostics if d.code == code)
    assert d.fix is not None
    for edit in sorted(d.fix.edits, key=lambda e: e.span.start, reverse=True):
        text = text[: edit.span.start] + edit.new_text + text[edit.span.end :]
    return text


def test_the_prelude_is_clean():
    assert diags("") == []


# ---- V4001: a receipt only from a call of its tool ------------------------------------------------

FORGER = """
tool pretend_refund(order_id: str) -> Receipt[issue_refund] {
  effect: read
}
"""


def test_v4001_a_call_of_another_tool_cannot_fill_a_receipt():
    body = FORGER + """
flow resolve(id: str) -> Resolution {
  return { reply: "done", refund: pretend_refund(order_id: id) }
}
"""
    assert ("V4001", "pretend_refund(order_id: id)") in diags(body)
    assert labels(body, "V4001") == ["Receipt[issue_refund]"]  # the forger's declared result


def test_v4001_fix_call_the_tool_itself():
    body = """
flow resolve(id: str) -> Resolution {
  return { reply: "done", refund: issue_refund(order_id: id) }
}
"""
    assert diags(body) == []


@pytest.mark.parametrize("flow, underlined", [
    ('flow f(id: str) -> Resolution {\n  let r = pretend_refund(order_id: id)\n  return { reply: "x", refund: r }\n}',
     "pretend_refund(order_id: id)"),
    ("flow f(ids: list[str]) -> list[Receipt[issue_refund]] {\n"
     "  return for i in ids max 3 { pretend_refund(order_id: i) }\n}", "pretend_refund(order_id: i)"),
    ("flow f(id: str) -> list[Receipt[issue_refund]] {\n  return [pretend_refund(order_id: id)]\n}",
     "pretend_refund(order_id: id)"),
    ('flow f(id: str) -> Resolution {\n  return { reply: "x", refund: redact(pretend_refund(order_id: id)) }\n}',
     "pretend_refund(order_id: id)"),
])
def test_v4001_is_found_in_lets_loops_lists_and_builtins(flow, underlined):
    assert ("V4001", underlined) in diags(FORGER + flow)


@pytest.mark.parametrize("flow", [
    # a variable, field or list item that holds a receipt; none; a loop of calls; a flow result
    "flow f(id: str) -> Resolution {\n  let r: Receipt[issue_refund] = issue_refund(order_id: id)\n"
    '  return { reply: "x", refund: r }\n}',
    'flow f(id: str) -> Resolution {\n  let a: Resolution = { reply: "a", refund: issue_refund(order_id: id) }\n'
    '  return { reply: "x", refund: a.refund }\n}',
    'flow f(id: str) -> Resolution {\n  return { reply: "x", refund: none }\n}',
    "flow f(ids: list[str]) -> list[Receipt[issue_refund]] {\n"
    "  return for i in ids max 3 { issue_refund(order_id: i) }\n}",
    "flow g(id: str) -> Receipt[issue_refund] {\n  return issue_refund(order_id: id)\n}\n"
    'flow f(id: str) -> Resolution {\n  return { reply: "x", refund: g(id) }\n}',
    "flow f(ids: list[str]) -> Receipt[issue_refund] {\n"
    "  let rs: list[Receipt[issue_refund]] = for i in ids max 3 { issue_refund(order_id: i) }\n  return rs[0]\n}",
])
def test_genuine_receipts_are_accepted(flow):
    assert codes(flow) == []


def test_a_string_where_a_receipt_is_expected_stays_a_type_error_only():
    body = 'flow f(id: str) -> Resolution {\n  return { reply: "x", refund: "rf_1" }\n}'
    assert diags(body) == [("V1005", '"rf_1"')]


def test_a_tools_own_result_is_not_its_receipt():
    body = 'flow f(id: str) -> Resolution {\n  let r = issue_refund(order_id: id)\n  return { reply: "x", refund: r }\n}'
    assert codes(body) == ["V1005"]


# ---- V4002: a tool cannot return a receipt --------------------------------------------------------


def test_v4002_a_tool_result_claiming_a_receipt():
    body = """
type Refunded = { order_id: str, receipt: Receipt[issue_refund] }
tool refund_status(order_id: str) -> Refunded {
  effect: read
}
"""
    assert diags(body) == [("V4002", "Refunded")]
    assert diags(FORGER) == [("V4002", "Receipt[issue_refund]")]


def test_v4002_fix_plain_data_and_a_receipt_parameter_is_fine():
    body = """
type Refunded = { order_id: str, refund_id: str }
tool refund_status(order_id: str) -> Refunded {
  effect: read
}
tool cancel_refund(refund: Receipt[issue_refund]) -> str {
  effect: write
  idempotent: true
}
"""
    assert diags(body) == []


# ---- V4003: an agent claims only receipts of its own tools ------------------------------------------

AGENT = """
agent resolver(request: str) -> {returns} {{
  model: small
  {tools}
  prompt: "Resolve: {{request}}"
}}
"""


def agent(returns: str = "Resolution", tools: str = "tools: [lookup_order]") -> str:
    return AGENT.format(returns=returns, tools=tools)


def test_v4003_points_at_the_output_type_and_labels_the_tools():
    body = agent()
    assert diags(body) == [("V4003", "Resolution")]
    assert labels(body, "V4003") == ["[lookup_order]"]


@pytest.mark.parametrize("returns", ["Receipt[issue_refund]", "list[Resolution]", "Resolution?"])
def test_v4003_finds_receipts_nested_anywhere_in_the_output(returns):
    assert diags(agent(returns=returns)) == [("V4003", returns)]


def test_v4003_fix_adds_the_tool_and_then_checks_clean():
    fixed = apply_fix(agent(), "V4003")
    assert "tools: [lookup_order, issue_refund]" in fixed
    assert check_source("t.vox", fixed).diagnostics == ()


def test_v4003_fix_without_a_tools_member():
    fixed = apply_fix(agent(tools=""), "V4003")
    assert "model: small, tools: [issue_refund]" in fixed
    assert check_source("t.vox", fixed).diagnostics == ()


def test_v4003_with_an_empty_tools_list():
    fixed = apply_fix(agent(tools="tools: []"), "V4003")
    assert "tools: [issue_refund]" in fixed


# ---- V4004: receipts exist only for effectful tools ------------------------------------------------


def test_v4004_receipt_of_a_read_tool_is_underlined_where_written():
    body = "type Checked = { status: str, proof: Receipt[lookup_order] }\n"
    assert diags(body) == [("V4004", "lookup_order")]
    assert labels(body, "V4004") == ["read"]


def test_v4004_fix_receipt_of_a_write_tool():
    assert diags("type Checked = { status: str, proof: Receipt[issue_refund] }\n") == []


def test_v4004_ignores_calls_tools_lists_and_tests_of_read_tools():
    body = """
agent a(x: str) -> str {
  model: small
  tools: [lookup_order]
  prompt: "{x}"
}
flow f(x: str) -> str {
  return lookup_order(id: x)
}
test "t" {
  flow: f
  input: { x: "1" }
  mock lookup_order: "shipped"
}
"""
    assert codes(body) == []


# ---- V4005: a resumed run could repeat a non-idempotent effect --------------------------------------

SEND = """
tool send_email(to: str, body: str) -> str {
  effect: external
}
"""


def test_v4005_a_flow_call_of_a_non_idempotent_external_tool():
    body = SEND + 'flow notify(to: str) -> str {\n  return send_email(to: to, body: "shipped")\n}\n'
    (found,) = check(body)[1].diagnostics
    assert (found.code, found.severity.word) == ("V4005", "warning")
    assert diags(body) == [("V4005", 'send_email(to: to, body: "shipped")')]
    assert labels(body, "V4005") == ["external"]
    assert "resume" in found.message and "idempotent" in found.help


def test_v4005_fix_declares_idempotent_and_the_warning_goes():
    body = SEND + 'flow notify(to: str) -> str {\n  return send_email(to: to, body: "shipped")\n}\n'
    fixed = apply_fix(body, "V4005")
    assert "effect: external, idempotent: true" in fixed
    assert check_source("t.vox", fixed).diagnostics == ()


def test_v4005_fix_replaces_idempotent_false():
    tool = "\ntool send_email(to: str, body: str) -> str {\n  effect: external\n  idempotent: false\n}\n"
    body = tool + 'flow notify(to: str) -> str {\n  return send_email(to: to, body: "shipped")\n}\n'
    assert "idempotent: true" in apply_fix(body, "V4005")


def test_v4005_once_per_flow_and_tool():
    body = SEND + ('flow notify(to: str) -> str {\n  let a = send_email(to: to, body: "one")\n'
                   '  return send_email(to: to, body: "two")\n}\n')
    assert diags(body) == [("V4005", 'send_email(to: to, body: "one")')]


def test_v4005_through_an_agent_that_a_flow_calls():
    body = SEND + """
agent notifier(to: str) -> str {
  model: small
  tools: [send_email]
  prompt: "Tell {to} the news."
}
"""
    assert codes(body) == []  # no flow calls the agent: nothing can resume
    body += 'flow f(to: str) -> str {\n  return notifier(to: to)\n}\n'
    assert diags(body) == [("V4005", "send_email")]  # the item of `tools`


def test_v4005_not_for_read_tools_or_idempotent_writes():
    body = 'flow f(id: str) -> str {\n  let s = lookup_order(id: id)\n  return issue_refund(order_id: s)\n}\n'
    assert codes(body) == []


# ---- V4006, V4007 ---------------------------------------------------------------------------------


def test_v4006_approval_on_a_pure_tool():
    body = "tool count(text: str) -> int {\n  effect: pure\n  approval: human\n}\n"
    assert diags(body) == [("V4006", "human")]


def test_v4006_fix_approval_on_a_read_tool_is_fine():
    assert codes("tool peek(id: str) -> str {\n  effect: read\n  approval: human\n}\n") == []


def test_v4007_retried_non_idempotent_write():
    body = "tool charge(amount: money) -> str {\n  effect: write\n  retries: 3\n}\n"
    assert diags(body) == [("V4007", "3")]
    fixed = apply_fix(body, "V4007")
    assert check_source("t.vox", fixed).diagnostics == ()


def test_v4007_fix_no_retries():
    assert codes("tool charge(amount: money) -> str {\n  effect: write\n  retries: 0\n}\n") == []


# ---- the report ----------------------------------------------------------------------------------


def test_the_report_of_the_reference_program():
    text = (ROOT / "examples" / "reference.vox").read_text()
    report = check_source("reference.vox", text).analysis.effects
    assert report.receipted_tools == {"issue_refund"}
    assert report.approval_tools == {"issue_refund"}
    [site] = report.sites
    assert (site.owner, site.tool, site.effect, site.receipted, site.idempotent, site.approval) == (
        "resolver", "issue_refund", "write", True, True, True)
    assert text[site.span.start : site.span.end] == "issue_refund"


def test_one_site_per_flow_call_and_per_agent():
    body = SEND + """
agent notifier(to: str) -> str {
  model: small
  tools: [send_email, lookup_order]
  prompt: "Tell {to} the news."
}
flow f(to: str) -> str {
  let a = send_email(to: to, body: "one")
  let b = send_email(to: to, body: "two")
  return notifier(to: to)
}
"""
    text, result = check(body)
    sites = [(s.owner, s.tool, text[s.span.start : s.span.end]) for s in result.analysis.effects.sites]
    assert sites == [
        ("notifier", "send_email", "send_email"),
        ("f", "send_email", 'send_email(to: to, body: "one")'),
        ("f", "send_email", 'send_email(to: to, body: "two")'),
    ]
    assert not any(s.idempotent for s in result.analysis.effects.sites)


# ---- robustness ----------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    "agent a(x: str) -> Resolution {\n  tools: [nope]\n  prompt: \"{x}\"\n}\n",
    "tool t() -> Receipt[nothing] {\n  effect: write\n}\n",
    "flow f() -> Resolution {\n  return { reply: missing, refund: nope() }\n}\n",
    "tool t(x: str) -> str {\n  bind: python(\"m:f\")\n}\nflow f() -> str {\n  return t(x: 1)\n}\n",
    "agent a(x: str) -> Receipt[issue_refund] {\n  model: nope\n  prompt: \"{x}\"\n}\n",
])
def test_broken_programs_do_not_crash_the_analysis(body):
    _, result = check(body)
    assert result.diagnostics  # the front end reports; the analysis must simply not raise
