"""The label analysis (V3): sinks, call-site sensitivity, redact/declassify, and the report.

Diagnostics are stated as (code, underlined source text). The hypothesis property checks that a
program whose provider and tools are cleared for every declared label never has a V3 error.
"""

from __future__ import annotations

import pathlib
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vox.compiler.api import check_source

ROOT = pathlib.Path(__file__).resolve().parent.parent
REFERENCE = (ROOT / "examples" / "reference.vox").read_text()

PRELUDE = """\
label pii
label payment

provider openai = openai { key: env("OPENAI_API_KEY"), clearance: [public] }
provider onprem = openai_compatible { base_url: "http://10.0.0.12/v1", clearance: [public, pii, payment] }

model mini = openai/"gpt-4o-mini" {
  context: 128_000
  max_output: 500
  price: free
  capabilities: [tools, logprobs]
}
model local = onprem/"llama3.1:8b" {
  context: 8_192
  max_output: 500
  price: free
  capabilities: [tools, logprobs]
}

type Ticket = { id: str, body: str @pii }
type Order = { id: str, card_last4: str @payment }

tool lookup_order(id: str) -> Order {
  effect: read
  clearance: [public, pii, payment]
}

tool search_kb(query: str) -> list[str] {
  effect: read
  bind: http.get("https://kb.example/search?q={query}")
}

tool note(text: str) -> str {
  effect: read
  bind: python("kb:note")
}
"""


def check(body: str, prelude: str = PRELUDE):
    text = prelude + body
    return check_source("t.vox", text), text


def v3(body: str, prelude: str = PRELUDE) -> list[tuple[str, str]]:
    """(code, underlined text) of every V3 diagnostic of ``prelude + body``."""
    result, text = check(body, prelude)
    return [(d.code, text[d.span.start:d.span.end]) for d in result.diagnostics if d.code.startswith("V3")]


def codes(body: str, prelude: str = PRELUDE) -> list[str]:
    return [d.code for d in check(body, prelude)[0].diagnostics]


def only(text: str, code: str):
    result = check_source("t.vox", text)
    found = [d for d in result.diagnostics if d.code == code]
    assert len(found) == 1, [(d.code, d.message) for d in result.diagnostics]
    return found[0], text


def apply_fix(text: str, fix) -> str:
    for edit in sorted(fix.edits, key=lambda e: e.span.start, reverse=True):
        text = text[: edit.span.start] + edit.new_text + text[edit.span.end:]
    return text


TRIAGER = """
agent triager(text: str) -> str {
  model: local
  fallback: [mini]
  prompt: "Classify: {text}"
}
"""


# ---- V3001: prompts reach every model of the chain ------------------------------------------------


def test_v3001_labelled_argument_reaches_a_fallback_model():
    body = TRIAGER + """
flow handle(ticket: Ticket) -> str {
  return triager(text: ticket.body)
}
"""
    assert v3(body) == [("V3001", "ticket.body")]
    d, text = only(PRELUDE + body, "V3001")
    assert "`mini`" in d.message and "fallback" in d.message and "`openai`" in d.message
    assert "remove `mini` from `fallback`" in d.help
    secondary = {text[lb.span.start:lb.span.end]: lb.message for lb in d.labels}
    assert "@pii" not in secondary and "pii" in secondary  # the `@pii` on Ticket.body
    assert "mini" in secondary and "[public]" in secondary and "{text}" in secondary


def test_v3001_redacted_argument_is_public():
    body = TRIAGER + """
flow handle(ticket: Ticket) -> str {
  return triager(text: redact(ticket.body))
}
"""
    assert v3(body) == []


def test_v3001_fix_wraps_the_argument_in_redact():
    body = TRIAGER + """
flow handle(ticket: Ticket) -> str {
  return triager(text: ticket.body)
}
"""
    d, text = only(PRELUDE + body, "V3001")
    fixed = apply_fix(text, d.fix)
    assert "triager(text: redact(ticket.body))" in fixed
    assert not [x for x in check_source("t.vox", fixed).diagnostics if x.code.startswith("V3")]


def test_v3001_without_the_fallback_the_primary_is_cleared():
    body = TRIAGER.replace("  fallback: [mini]\n", "") + """
flow handle(ticket: Ticket) -> str {
  return triager(text: ticket.body)
}
"""
    assert v3(body) == []


def test_v3001_uncalled_agent_with_a_labelled_parameter():
    body = """
agent a(note: str @pii) -> str {
  model: mini
  prompt: "Say {note}"
}
"""
    assert v3(body) == [("V3001", "{note}")]
    fixed = body.replace("model: mini", "model: local")
    assert v3(fixed) == []


def test_v3001_uncalled_agent_whose_fallback_is_not_cleared_points_at_the_fallback():
    body = """
agent a(ticket: Ticket) -> str {
  model: local
  fallback: [mini]
  prompt: \"\"\"
    Read this.
    Ticket: {ticket.body}
  \"\"\"
}
"""
    assert v3(body) == [("V3001", "mini")]
    d, text = only(PRELUDE + body, "V3001")
    assert "{ticket.body}" in [text[lb.span.start:lb.span.end] for lb in d.labels]


def test_v3001_placeholders_are_precise_per_path():
    body = """
agent a(ticket: Ticket) -> str {
  model: mini
  prompt: "Ticket {ticket.id}"
}
agent b(ticket: Ticket) -> str {
  model: mini
  prompt: "Ticket {ticket}"
}
"""
    assert v3(body) == [("V3001", "{ticket}")]


def test_v3001_system_prompt_is_a_sink_too():
    body = """
agent a(ticket: Ticket, q: str) -> str {
  model: mini
  system: "Context: {ticket.body}"
  prompt: "Answer {q}"
}
"""
    assert v3(body) == [("V3001", "{ticket.body}")]


def test_v3001_call_site_reports_only_what_the_arguments_add():
    # The agent on its own already has `pii` in `{ticket.body}`: one error, at the placeholder.
    body = """
agent a(ticket: Ticket) -> str {
  model: mini
  prompt: "Ticket {ticket.body}"
}
flow f(t: Ticket) -> str {
  return a(ticket: t)
}
"""
    assert v3(body) == [("V3001", "{ticket.body}")]


# ---- V3002: tool arguments and URLs ---------------------------------------------------------------


def test_v3002_labelled_tool_argument_in_a_url():
    body = """
flow f(ticket: Ticket) -> list[str] {
  return search_kb(query: ticket.body)
}
"""
    assert v3(body) == [("V3002", "ticket.body")]
    d, _ = only(PRELUDE + body, "V3002")
    assert "URL" in d.message


def test_v3002_python_binding_message_does_not_mention_a_url():
    body = """
flow f(ticket: Ticket) -> str {
  return note(text: ticket.body)
}
"""
    assert v3(body) == [("V3002", "ticket.body")]
    d, _ = only(PRELUDE + body, "V3002")
    assert "URL" not in d.message


def test_v3002_public_field_and_declassified_value_are_fine():
    body = """
flow f(ticket: Ticket) -> list[str] {
  let q = declassify(ticket.body, reason: "Reviewed: tickets in this queue are public forum posts.")
  let a = search_kb(query: ticket.id)
  return search_kb(query: q)
}
"""
    assert v3(body) == []


def test_v3002_tool_result_labels_reach_a_public_tool():
    body = """
flow f(id: str) -> list[str] {
  let order = lookup_order(id: id)
  return search_kb(query: order.card_last4)
}
"""
    assert v3(body) == [("V3002", "order.card_last4")]
    assert v3(body.replace("order.card_last4", "order.id")) == []


def test_v3002_labels_flow_through_let_records_lists_and_for():
    body = """
flow f(tickets: list[Ticket]) -> list[str] {
  let bodies = for t in tickets max 5 { t.body }
  let ids = for t in tickets max 5 { t.id }
  let a = search_kb(query: ids[0])
  return search_kb(query: bodies[0] + "!")
}
"""
    assert v3(body) == [("V3002", 'bodies[0] + "!"')]


def test_v3002_agent_output_carries_its_inputs():
    body = TRIAGER.replace("  fallback: [mini]\n", "") + """
flow f(ticket: Ticket) -> list[str] {
  let kind = triager(text: ticket.body)
  return search_kb(query: kind)
}
"""
    assert v3(body) == [("V3002", "kind")]
    redacted = body.replace("triager(text: ticket.body)", "triager(text: redact(ticket.body))")
    assert v3(redacted) == []


def test_v3002_flow_to_flow_propagation():
    body = """
flow inner(x: str) -> list[str] {
  return search_kb(query: x)
}
flow outer(ticket: Ticket) -> list[str] {
  let a = inner(x: ticket.id)
  return inner(x: ticket.body)
}
"""
    assert v3(body) == [("V3002", "x")]
    d, text = only(PRELUDE + body, "V3002")
    assert "ticket.body" in [text[lb.span.start:lb.span.end] for lb in d.labels]
    assert v3(body.replace("inner(x: ticket.body)", "inner(x: ticket.id)")) == []


def test_flow_results_carry_labels_to_the_caller_and_recursion_terminates():
    body = """
flow echo(x: str, n: int) -> str {
  if n > 0 {
    return echo(x: x, n: n - 1)
  }
  return x
}
flow outer(ticket: Ticket) -> list[str] {
  let e = echo(x: ticket.body, n: 3)
  return search_kb(query: e)
}
"""
    assert v3(body) == [("V3002", "e")]


# ---- V3003: tools an agent may call ----------------------------------------------------------------


def test_v3003_tool_not_cleared_for_the_agents_prompt():
    body = """
agent helper(ticket: Ticket) -> str {
  model: local
  tools: [search_kb]
  prompt: "Answer: {ticket.body}"
}
"""
    assert v3(body) == [("V3003", "search_kb")]
    assert v3(body.replace("{ticket.body}", "{ticket.id}")) == []


def test_v3003_tool_results_are_in_the_context():
    body = """
agent helper(q: str) -> str {
  model: local
  tools: [lookup_order, search_kb]
  prompt: "Answer: {q}"
}
"""
    assert v3(body) == [("V3003", "search_kb")]
    assert v3(body.replace("[lookup_order, search_kb]", "[search_kb]")) == []


def test_v3003_at_the_call_site_points_at_the_argument():
    body = """
agent helper(q: str) -> str {
  model: local
  tools: [search_kb]
  prompt: "Answer: {q}"
}
flow f(ticket: Ticket) -> str {
  let a = helper(q: redact(ticket.body))
  return helper(q: ticket.body)
}
"""
    assert v3(body) == [("V3003", "ticket.body")]


# ---- V3004: judges ---------------------------------------------------------------------------------


JUDGED = """
gate polite(r: str) {
  check judge(MODEL, rubric: "Polite.") else retry(1)
}
agent responder(ticket: Ticket) -> str {
  model: local
  gates: [polite]
  prompt: "Reply to {ticket.body}"
}
"""


def test_v3004_judge_model_not_cleared_for_the_output():
    assert v3(JUDGED.replace("MODEL", "mini")) == [("V3004", "mini")]
    d, text = only(PRELUDE + JUDGED.replace("MODEL", "mini"), "V3004")
    assert apply_fix(text, d.fix).count("judge(local") == 1
    assert v3(JUDGED.replace("MODEL", "local")) == []


def test_v3004_judge_reads_the_output_at_each_call_site():
    body = """
gate polite(r: str) {
  check judge(mini, rubric: "Polite.") else retry(1)
}
agent responder(q: str) -> str {
  model: local
  gates: [polite]
  prompt: "Reply to {q}"
}
flow f(ticket: Ticket) -> str {
  return responder(q: ticket.body)
}
"""
    assert v3(body) == [("V3004", "mini")]
    assert v3(body.replace("responder(q: ticket.body)", "responder(q: ticket.id)")) == []


# ---- the reference program's notes -----------------------------------------------------------------


def reference_v3(old: str, new: str) -> list[tuple[str, str]]:
    assert old in REFERENCE
    text = REFERENCE.replace(old, new)
    result = check_source("reference.vox", text)
    return [(d.code, text[d.span.start:d.span.end]) for d in result.diagnostics if d.code.startswith("V3")]


def test_reference_is_clean():
    assert [d.code for d in check_source("reference.vox", REFERENCE).diagnostics] == []


def test_reference_note_unredacted_ticket_body_to_triager():
    found = reference_v3("triager(ticket_text: redact(ticket.body))", "triager(ticket_text: ticket.body)")
    assert ("V3001", "ticket.body") in found


def test_reference_note_judging_with_mini():
    found = reference_v3("check judge(local,", "check judge(mini,")
    assert found == [("V3004", "mini")]


def test_reference_note_search_kb_with_ticket_body():
    found = reference_v3("search_kb(query: triage.summary)", "search_kb(query: ticket.body)")
    assert found == [("V3002", "ticket.body")]


# ---- the report ------------------------------------------------------------------------------------


def test_report_of_the_reference():
    result = check_source("reference.vox", REFERENCE)
    report = result.analysis.labels
    assert report.outputs["triager"] == frozenset()
    assert report.outputs["resolver"] == {"pii", "payment"}
    assert report.outputs["handle"] == {"pii", "payment"}
    kinds = {(s.kind, s.sink) for s in report.sinks}
    assert {("model", "mini"), ("model", "local"), ("url", "search_kb"), ("judge", "local"),
            ("tool_choice", "lookup_order"), ("tool_choice", "issue_refund")} <= kinds
    assert all(s.ok for s in report.sinks)
    assert all("public" not in s.labels for s in report.sinks)
    resolver_prompt = [s for s in report.sinks if s.kind == "model" and s.owner == "resolver"]
    assert any(s.labels == {"pii"} for s in resolver_prompt)
    [(owner, span, lowers)] = report.redactions
    assert owner == "handle" and REFERENCE[span.start:span.end] == "redact(ticket.body)" and lowers == {"pii"}
    values = {REFERENCE[a:b]: labels for (a, b), labels in report.values.items()}
    assert values["ticket.body"] == {"pii"} and values["redact(ticket.body)"] == frozenset()
    assert values["triage.summary"] == frozenset()


def test_report_records_declassifications_with_their_reason():
    body = """
flow f(ticket: Ticket) -> list[str] {
  let q = declassify(ticket.body, reason: "Only the product name is used.")
  return search_kb(query: q)
}
"""
    result, text = check(body)
    [d] = result.analysis.labels.declassifications
    assert d.owner == "f" and d.labels == {"pii"} and d.reason == "Only the product name is used."
    assert text[d.span.start:d.span.end].startswith("declassify(ticket.body")
    [use] = [s for s in result.analysis.labels.sinks if s.sink == "search_kb"]
    assert use.kind == "url" and use.ok and use.labels == frozenset()


def test_report_lists_failing_sinks():
    body = """
flow f(ticket: Ticket) -> str {
  return note(text: ticket.body)
}
"""
    result, _ = check(body)
    [use] = [s for s in result.analysis.labels.sinks if s.sink == "note"]
    assert use.kind == "tool" and not use.ok and use.labels == {"pii"} and use.cleared == {"public"}


# ---- broken programs -------------------------------------------------------------------------------


def test_broken_programs_do_not_crash_the_analysis():
    body = """
agent a(t: Tickt) -> str {
  model: nope
  fallback: [mini, gone]
  tools: [search_kb, missing]
  gates: [nogate]
  prompt: "Hi {t.body} {zzz}"
}
flow f(ticket: Ticket) -> str {
  let x = a(t: ticket.bdy)
  let y = undefined_flow(ticket)
  return search_kb(query: x)
}
"""
    result, _ = check(body)
    assert result.diagnostics  # name and type errors, and no exception


# ---- redact: it lowers only the labels its detectors cover (spec/labels.md, "Going down") -------


REDACT_PRELUDE = """\
label pii
label payment
label phi
label secret
label internal

provider pub = openai_compatible { base_url: "http://a/v1", clearance: [public] }
provider med = openai_compatible { base_url: "http://b/v1", clearance: [public, phi, internal] }
model m_pub = pub/"a" { context: 8_000, max_output: 100, price: free, capabilities: [tools] }
model m_med = med/"b" { context: 8_000, max_output: 100, price: free, capabilities: [tools] }

type Visit = { patient: str @pii, notes: str @phi }
type Ticket = { id: str, body: str @pii }
type Login = { user: str @pii, key: str @secret, card: str @payment }

agent say_pub(x: str) -> str {
  model: m_pub
  prompt: "Say {x}"
}
agent say_med(x: str) -> str {
  model: m_med
  prompt: "Say {x}"
}
agent ask_pub(x: str) -> str {
  model: m_pub
  tools: [lookup]
  prompt: "Answer {x}"
}
tool check_login(l: Login) -> str {
  effect: read
}
tool file_visit(v: Visit) -> str {
  effect: read
  clearance: [public, phi, internal]
}
tool send_pub(x: str) -> str {
  effect: read
}
tool lookup(q: str) -> str {
  effect: read
}
"""


def redact_check(body: str):
    result, text = check(body, REDACT_PRELUDE)
    return result, text, [(d.code, text[d.span.start:d.span.end]) for d in result.diagnostics]


def test_the_redaction_table_doctests():
    import doctest

    from vox.compiler import redaction

    assert doctest.testmod(redaction).failed == 0 and doctest.testmod(redaction).attempted >= 2


def test_the_spec_table_is_the_compilers_table():
    from vox.compiler.redaction import DETECTORS_OF_LABEL

    spec = (ROOT / "spec" / "labels.md").read_text(encoding="utf-8")
    section = spec.split("## Going down: redact and declassify", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`") and cells[0] != "`label`":
            rows[cells[0].strip("`")] = re.findall(r"`([A-Z]+)`", cells[1])
    assert rows == {label: list(kinds) for label, kinds in DETECTORS_OF_LABEL.items()}


def test_redact_lowers_pii_payment_and_secret():
    result, _, found = redact_check("""
flow f(l: Login, t: Ticket) -> str {
  let a = check_login(l: redact(l))
  let b = send_pub(x: redact(t.body))
  return say_pub(x: redact(l.key))
}
""")
    assert found == [] and result.ok
    lowers = {text_of(result, span): sorted(labels) for _, span, labels in result.analysis.labels.redactions}
    assert lowers == {"redact(l)": ["payment", "pii", "secret"], "redact(t.body)": ["pii"], "redact(l.key)": ["secret"]}


def text_of(result, span) -> str:
    return result.source.text[span.start:span.end]


def test_redact_keeps_a_label_no_detector_covers_and_warns_once():
    result, text, found = redact_check("""
flow f(v: Visit) -> str {
  return say_med(x: redact(v.notes))
}
""")
    assert found == [("V3007", "redact(v.notes)")] and result.ok  # a warning: `m_med` is cleared for `phi`
    d = result.diagnostics[0]
    assert d.severity.name == "WARNING"
    assert "`redact(...)` keeps `phi`" in d.message and "no detector" in d.message
    assert "`declassify(x, reason: \"...\")`" in d.help and "`declassifies: [phi]`" in d.help
    assert "`pii` (person names, street addresses" in d.notes[0] and "`payment` (card numbers and IBANs)" in d.notes[0]
    assert [text[lb.span.start:lb.span.end] for lb in d.labels] == ["redact(v.notes)", "phi"]
    [(_, _, lowers)] = result.analysis.labels.redactions
    assert lowers == frozenset()


def test_the_kept_label_reaches_the_sink_whose_help_does_not_offer_redact():
    result, text, found = redact_check("""
flow f(v: Visit) -> str {
  return say_pub(x: redact(v.notes))
}
""")
    assert found == [("V3001", "redact(v.notes)"), ("V3007", "redact(v.notes)")]
    sink = result.diagnostics[0]
    assert "not cleared for `phi`" in sink.message and sink.fix is None
    assert "wrap the argument in `redact" not in sink.help and "declassify" in sink.help
    assert "`redact(...)` cannot remove `phi`: no detector of the scrubber covers it" in sink.help


def test_a_partly_covered_value_loses_only_the_covered_labels():
    result, text, found = redact_check("""
flow f(v: Visit) -> str {
  let copy = redact(v)
  let a = send_pub(x: copy.patient)
  return file_visit(v: copy)
}
""")
    # the copy is one scrubbed value: `.patient` carries the `phi` the record held elsewhere
    assert found == [("V3007", "redact(v)"), ("V3002", "copy.patient")]
    sink = result.diagnostics[1]
    assert "carries `phi`" in sink.message and "`pii`" not in sink.message and sink.fix is None
    [(_, _, lowers)] = result.analysis.labels.redactions
    assert lowers == {"pii"}
    values = {text[a:b]: labels for (a, b), labels in result.analysis.labels.values.items()}
    assert values["redact(v)"] == {"phi"} and values["copy.patient"] == {"phi"}


def test_a_help_names_the_labels_redact_would_and_would_not_remove():
    result, _, found = redact_check("""
flow f(v: Visit) -> str {
  return say_pub(x: v.patient + v.notes)
}
""")
    assert found == [("V3001", "v.patient + v.notes")]
    d = result.diagnostics[0]
    assert "`redact(...)` would remove `pii` but not `phi`" in d.help and d.fix is None


def test_other_sinks_do_not_offer_redact_for_a_label_it_keeps():
    result, text, found = redact_check("""
flow f(v: Visit, i: str @internal) -> str {
  let a = send_pub(x: v.notes)
  let b = ask_pub(x: i)
  if v.notes == "urgent" {
    let c = send_pub(x: "page")
  }
  return "ok"
}
""")
    by_code = {d.code: d for d in result.diagnostics}
    assert set(by_code) == {"V3001", "V3002", "V3003", "V3006"}, found
    for code in ("V3001", "V3002", "V3003", "V3006"):
        d = by_code[code]
        assert "through `redact" not in d.help and "in `redact(...)`" not in d.help, (code, d.help)
        assert "`redact(...)` cannot remove" in d.help and d.fix is None, (code, d.help)


def test_a_redacted_record_with_only_covered_labels_is_public_in_every_field():
    result, _, found = redact_check("""
flow f(t: Ticket) -> str {
  let copy = redact(t)
  return say_pub(x: copy.body)
}
""")
    assert found == []


def test_a_redaction_warns_once_with_the_labels_of_every_call():
    result, text, found = redact_check("""
flow scrubbed(x: str) -> str {
  return say_med(x: redact(x))
}
flow a(v: Visit) -> str {
  return scrubbed(x: v.notes)
}
flow b(i: str @internal) -> str {
  return scrubbed(x: i)
}
""")
    assert found == [("V3007", "redact(x)")]
    assert "keeps `internal` and `phi`" in result.diagnostics[0].message


def test_the_plan_records_what_each_redaction_lowers_at_its_call():
    from vox.compiler.plan import ir, lower_plan
    from vox.compiler.plan.model import walk_plan

    result, text, found = redact_check("""
flow f(v: Visit, l: Login) -> str {
  let a = check_login(l: redact(l))
  return file_visit(v: redact(v))
}
""")
    assert [c for c, _ in found] == ["V3007"]
    plan = lower_plan(result)
    calls = {(n.line, n.col) for n, _ in walk_plan(plan) if isinstance(n, ir.CallExpr) and n.name == "redact"}
    lowers = {(r.line, r.col): r.lowers for r in plan.analysis.redactions}
    assert set(lowers) == calls and sorted(lowers.values()) == [("payment", "pii", "secret"), ("pii",)]
    at = text.index("redact(v)")
    assert lowers[(text[:at].count("\n") + 1, at - text.rfind("\n", 0, at))] == ("pii",)


# ---- property: a program cleared for everything has no V3 error ------------------------------------


_LABELS = ("pii", "phi")
_HEADER = """\
label pii
label phi
provider p = openai_compatible { base_url: "http://x/v1", clearance: [public, pii, phi] }
model m1 = p/"a" { context: 8_000, max_output: 100, price: free, capabilities: [tools] }
model m2 = p/"b" { context: 8_000, max_output: 100, price: free, capabilities: [tools] }
type Rec = { a: str @pii, b: str, c: str @phi, inner: Inner }
type Inner = { d: str @phi, e: str }
tool t0(x: str) -> Rec {
  effect: read
  clearance: [public, pii, phi]
  bind: http.get("https://x.example/{x}")
}
tool t1(x: str, r: Rec) -> str @pii {
  effect: read
  clearance: [public, pii, phi]
}
"""


@st.composite
def _programs(draw) -> str:
    parts = [_HEADER]
    n_agents = draw(st.integers(1, 3))
    for i in range(n_agents):
        label = draw(st.sampled_from(("", " @pii", " @phi")))
        placeholders = draw(st.lists(st.sampled_from(("{s}", "{r}", "{r.a}", "{r.inner.d}", "{r.b}")), max_size=3))
        tools = draw(st.lists(st.sampled_from(("t0", "t1")), unique=True, max_size=2))
        fallback = draw(st.booleans())
        judged = draw(st.booleans())
        if judged:
            parts.append(f'gate g{i}(o: str) {{\n  check judge(m2, rubric: "ok") else retry(1)\n}}\n')
        parts.append(
            f"agent a{i}(s: str{label}, r: Rec) -> str {{\n  model: m1\n"
            + ("  fallback: [m2]\n" if fallback else "")
            + (f"  tools: [{', '.join(tools)}]\n" if tools else "")
            + (f"  gates: [g{i}]\n" if judged else "")
            + f'  prompt: "Go {" ".join(placeholders)}"\n}}\n'
        )
    strs = ("r.a", "r.b", "r.c", "r.inner.d", "s", '"lit"')
    n_flows = draw(st.integers(1, 3))
    for j in range(n_flows):
        lines = []
        names = ["s"]
        for k in range(draw(st.integers(0, 5))):
            choice = draw(st.integers(0, 6))
            arg = draw(st.sampled_from(strs + tuple(names)))
            if choice == 0:
                value = f"a{draw(st.integers(0, n_agents - 1))}(s: {arg}, r: r)"
            elif choice == 1:
                value = f"t1(x: {arg}, r: t0(x: {arg}))"
            elif choice == 2:
                value = f"redact({arg})"
            elif choice == 3:
                value = f'declassify({arg}, reason: "reviewed")'
            elif choice == 4 and j > 0:
                value = f"f{draw(st.integers(0, j - 1))}(s: {arg}, r: r)"
            elif choice == 5:
                value = f'{arg} + "x"'
            else:
                value = f"t0(x: {arg}).inner.e"
            name = f"v{k}"
            lines.append(f"  let {name} = {value}")
            names.append(name)
        result = draw(st.sampled_from(names))
        parts.append(f"flow f{j}(s: str, r: Rec) -> str {{\n" + "\n".join(lines) + f"\n  return {result}\n}}\n")
    return "\n".join(parts)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_programs())
def test_a_program_cleared_for_every_label_has_no_v3_error(text):
    result = check_source("gen.vox", text)
    assert [(d.code, d.message) for d in result.diagnostics if d.is_error] == []
    assert all(use.ok for use in result.analysis.labels.sinks)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_programs())
def test_narrowing_the_provider_only_adds_model_and_judge_errors(text):
    narrowed = text.replace("clearance: [public, pii, phi] }", "clearance: [public] }", 1)
    result = check_source("gen.vox", narrowed)
    # prompts (V3001), judges (V3004) and the labelled results of an agent's tools (V3005); a
    # `redact` that keeps `phi` (V3007) is warned about whatever the clearances
    assert {d.code for d in result.diagnostics} <= {"V3001", "V3004", "V3005", "V3007"}
    failing = {use.kind for use in result.analysis.labels.sinks if not use.ok}
    assert failing <= {"model", "judge"}
