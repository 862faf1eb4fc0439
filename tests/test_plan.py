"""The runtime plan: lowering, validation, serde, the published schema and `voxc plan`.

Layers: (1) every example lowers to a plan that validates and round-trips; (2) what the plan must
never or always hold (no secret values, strict-mode JSON Schemas, stable unique `pos`); (3) the
analysis reports as the plan carries them (with hand-built reports); (4) reading plans: versions,
tampering, readable errors; (5) the published schema; (6) the CLI; (7) a hypothesis round trip over
generated programs.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vox.cli.main import main
from vox.compiler.analysis import results as r
from vox.compiler.api import check_source
from vox.compiler.plan import (
    Plan,
    PlanError,
    compute_plan_hash,
    load_plan,
    lower_plan,
    plan_to_dict,
    plan_to_json,
    select_flow,
)
from vox.compiler.plan import ir
from vox.compiler.plan.model import walk_plan
from vox.compiler.plan.schema import plan_json_schema_text
from vox.compiler.plan.value_schema import MONEY_PATTERN
from vox.compiler.source import Span

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.vox"))
REFERENCE = ROOT / "examples" / "reference.vox"
SCHEMA_FILE = ROOT / "spec" / "plan.schema.json"


def plan_of(path: Path | str, text: str | None = None) -> Plan:
    text = Path(path).read_text(encoding="utf-8") if text is None else text
    result = check_source(str(path), text)
    assert result.ok, [f"{d.code} {d.message}" for d in result.errors]
    return lower_plan(result)


def positions(plan: Plan) -> list[str]:
    return [node.pos for node, _ in walk_plan(plan)
            if isinstance(node, (ir.CallExpr, ir.ForExpr)) and node.pos is not None]


def durable_calls(plan: Plan) -> list[ir.CallExpr]:
    return [node for node, _ in walk_plan(plan)
            if isinstance(node, ir.CallExpr) and node.kind in ("agent", "tool", "flow")]


# ---- 1. every example ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_lowers_to_a_plan_that_round_trips(path):
    plan = plan_of(path)
    text = plan_to_json(plan)
    again = load_plan(text)
    assert again == plan
    assert plan_to_json(again) == text
    assert plan.plan_hash == compute_plan_hash(json.loads(text))
    assert plan.source.path == str(path)


def test_the_reference_plan_has_every_part():
    plan = plan_of(REFERENCE)
    assert plan.plan_version == 4 and plan.compiler.name == "voxc"
    assert plan.labels == ("payment", "pii", "public")
    assert set(plan.providers) == {"openai", "anthropic", "onprem"}
    assert plan.models["mini"].price.output_micros == 600_000
    assert plan.models["local"].price.free
    assert plan.types["Intent"].variants == ("order_status", "refund", "other")
    body = next(f for f in plan.types["Ticket"].fields if f.name == "body")
    assert body.labels == ("pii",)
    refund = plan.tools["issue_refund"]
    assert (refund.effect, refund.approval, refund.idempotent, refund.receipted) == ("write", "human", True, True)
    url = plan.tools["lookup_order"].binding
    assert (url.kind, url.method) == ("http", "GET")
    assert url.url.parts[-1].path == ("id",)
    assert [c.action for c in plan.gates["confident"].checks] == ["retry", "retry", "fallback", "abstain"]
    triager = plan.agents["triager"]
    assert (triager.model, triager.fallback, triager.caps.cost_micros) == ("mini", ("local",), 10_000)
    assert triager.prompt.parts[1].path == ("ticket_text",)
    assert plan.agents["resolver"].compaction.keep_last == 4
    assert plan.budgets["tenant"].tokens.amount == 200_000
    (test,) = plan.tests
    assert test.flow == "handle" and test.approve == ("issue_refund",)
    resolver_mock = next(m for m in test.mocks if m.target == "resolver")
    assert [t.turn for t in resolver_mock.turns] == ["call", "call", "reply"]
    assert test.expect.node == "binary"


def test_a_program_with_errors_gets_no_plan():
    result = check_source("bad.vox", "flow f() -> str {\n  return tickt\n}\n")
    with pytest.raises(PlanError, match="bad.vox has 1 error; fix them") as info:
        lower_plan(result)
    assert info.value.problems == ("V1001: unknown name `tickt`",)


# ---- 2. invariants ----------------------------------------------------------------------------------


def test_no_secret_values_only_env_var_names(monkeypatch):
    secret = "sk-test-THIS-MUST-NEVER-APPEAR-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    monkeypatch.setenv("OPENAI_BASE_URL", "https://secret-proxy.internal/v1")
    plan = plan_of(REFERENCE)
    text = plan_to_json(plan)
    assert secret not in text and "secret-proxy" not in text
    assert plan.providers["openai"].key_env == "OPENAI_API_KEY"
    assert plan.providers["anthropic"].key_env == "ANTHROPIC_API_KEY"
    assert plan.providers["onprem"].key_env is None
    assert plan.providers["openai"].base_url.env == "OPENAI_BASE_URL"
    for provider in json.loads(text)["providers"].values():
        assert set(provider) & {"key", "api_key", "key_value"} == set()


STRICT_KEYWORDS = {"type", "properties", "required", "additionalProperties", "items", "anyOf", "enum",
                   "description", "pattern", "maxItems"}


def assert_strict(schema: dict, where: str = "$") -> None:
    """The shape OpenAI's strict mode accepts: closed objects with every property required."""
    assert set(schema) <= STRICT_KEYWORDS, f"{where}: unexpected keywords {set(schema) - STRICT_KEYWORDS}"
    if "anyOf" in schema:
        assert set(schema) <= {"anyOf", "description"}
        for i, alt in enumerate(schema["anyOf"]):
            assert_strict(alt, f"{where}.anyOf[{i}]")
        return
    kind = schema["type"]
    assert kind in ("object", "array", "string", "integer", "number", "boolean", "null"), where
    if kind == "object":
        assert schema["additionalProperties"] is False, where
        assert schema["required"] == list(schema["properties"]), f"{where}: every property must be required"
        for name, sub in schema["properties"].items():
            assert_strict(sub, f"{where}.{name}")
    if kind == "array":
        assert_strict(schema["items"], f"{where}[]")
    if "enum" in schema:
        assert kind == "string" and all(isinstance(v, str) for v in schema["enum"])
    if "pattern" in schema:
        re.compile(schema["pattern"])


def conforms(value, schema: dict) -> bool:
    """A small JSON Schema validator for the keywords the plan's value schemas use."""
    if "anyOf" in schema:
        return any(conforms(value, alt) for alt in schema["anyOf"])
    kind = schema["type"]
    checks = {"object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
              "string": lambda v: isinstance(v, str), "null": lambda v: v is None,
              "boolean": lambda v: isinstance(v, bool),
              "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}
    if not checks[kind](value):
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "pattern" in schema and not re.search(schema["pattern"], value):
        return False
    if kind == "array":
        return all(conforms(v, schema["items"]) for v in value)
    if kind == "object":
        props = schema["properties"]
        if set(value) != set(schema["required"]) or not set(value) <= set(props):
            return False
        return all(conforms(v, props[k]) for k, v in value.items())
    return True


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_tool_and_agent_schemas_are_strict_mode_json_schema(path):
    plan = plan_of(path)
    for tool in plan.tools.values():
        assert tool.params_schema["type"] == "object"
        assert_strict(tool.params_schema, f"tool {tool.name} params")
        assert_strict(tool.result_schema, f"tool {tool.name} result")
    for agent in plan.agents.values():
        assert agent.output_schema["type"] == "object"
        assert_strict(agent.output_schema, f"agent {agent.name} output")
        if agent.output_wrapped:
            assert agent.output_schema["properties"]["value"] == agent.result_schema
        else:
            assert agent.output_schema == agent.result_schema
    for type_def in plan.types.values():
        assert_strict(type_def.json_schema, f"type {type_def.name}")


def test_value_schemas_accept_the_values_models_would_send():
    plan = plan_of(REFERENCE)
    triage = plan.agents["triager"].output_schema
    assert conforms({"intent": "refund", "order_id": None, "summary": "s", "confidence": 0.9}, triage)
    assert not conforms({"intent": "refund", "order_id": None, "summary": "s"}, triage)  # missing field
    assert not conforms({"intent": "sideways", "order_id": "1", "summary": "s", "confidence": 1}, triage)
    refund = plan.tools["issue_refund"].params_schema
    assert conforms({"order_id": "42", "amount": "19.99"}, refund)
    assert not conforms({"order_id": "42", "amount": 19.99}, refund)  # money is a decimal string
    assert not conforms({"order_id": "42", "amount": "$19.99"}, refund)
    resolution = plan.types["Resolution"].json_schema
    assert conforms({"reply": "done", "refund": "rcpt_01"}, resolution)  # a receipt id
    assert "issue_refund" in resolution["properties"]["refund"]["anyOf"][0]["description"]
    for good, bad in (("0.000001", "0.0000001"), ("-3", "3."), ("1000000", "1e6")):
        assert re.fullmatch(MONEY_PATTERN, good) and not re.fullmatch(MONEY_PATTERN, bad)


def test_pos_values_are_unique_and_named_by_path():
    plan = plan_of(REFERENCE)
    assert positions(plan) == ["handle.s0.triager", "handle.s2.par0.search_kb", "handle.s2.par1.search_kb",
                               "handle.s3.resolver", "handle_batch.s0.for", "handle_batch.s0.for.s0.handle"]
    for path in EXAMPLES:
        found = positions(plan_of(path))
        assert len(found) == len(set(found)), path.name
        assert all(call.pos for call in durable_calls(plan_of(path)))


def test_repeated_callees_in_one_statement_are_numbered():
    src = PRELUDE + """
flow f(q: str) -> str {
  budget: { cost: $100 }
  let a = ask(q: ask(q: q)) + ask(q: q)
  if len(a) > 2 {
    let b = for x in [a, q] max 2 { ask(q: x) + ask(q: x) }
  }
  return a
}
"""
    assert positions(plan_of("f.vox", src)) == [
        "f.s0.ask", "f.s0.ask#2", "f.s0.ask#3", "f.s1.then.s0.for", "f.s1.then.s0.for.s0.ask",
        "f.s1.then.s0.for.s0.ask#2"]


def test_pos_is_stable_when_unrelated_declarations_change():
    text = REFERENCE.read_text(encoding="utf-8")
    before = plan_of(REFERENCE, text)
    edited = text.replace("label pii\n", 'label pii\nlabel extra\n\ntool unrelated(x: str) -> str {\n'
                          '  effect: pure\n  bind: python("m:f")\n}\n\nenum Color { red, green }\n', 1)
    edited = edited.replace("flow handle(", 'flow another(t: Ticket) -> str {\n  return unrelated(x: t.id)\n}\n\n'
                            'flow handle(', 1)
    after = plan_of(REFERENCE, edited)
    assert before.plan_hash != after.plan_hash
    assert set(positions(before)) <= set(positions(after))
    for name in before.flows:
        assert [p for p in positions(after) if p.startswith(name + ".")] == \
            [p for p in positions(before) if p.startswith(name + ".")]


def test_the_same_source_gives_byte_identical_plans():
    text = REFERENCE.read_text(encoding="utf-8")
    assert plan_to_json(plan_of(REFERENCE, text)) == plan_to_json(plan_of(REFERENCE, text))


# ---- 3. analysis reports ---------------------------------------------------------------------------


def test_hand_built_analysis_reports_reach_the_plan():
    text = REFERENCE.read_text(encoding="utf-8")
    result = check_source("reference.vox", text)
    at = text.index("triager(ticket_text")
    line = text[:at].count("\n") + 1
    col = at - text.rfind("\n", 0, at)
    bound = r.Bound(cost_micros=12_000, tokens=6_000, wall_ms=None, model_calls=2, tool_calls=0)
    analysis = r.Analysis(
        budgets=r.BudgetReport({"handle": r.CallableBound(
            "handle", "flow", bound, bound, frozenset({"cost_micros"}),
            (r.BoundItem("triager(...)", "triager", "agent", 1, bound, Span(at, at + 7)),))}),
        labels=r.LabelReport(
            sinks=(r.SinkUse("handle", "model", "mini", frozenset({"public"}), frozenset({"pii"}), False,
                             Span(at, at + 7)),),
            declassifications=(r.Declassification("handle", frozenset({"pii", "payment"}), "audited",
                                                  Span(at, at + 1)),),
            redactions=(("handle", Span(at, at + 1), frozenset({"pii"})),),
            outputs={"resolver": frozenset({"pii"})}),
        effects=r.EffectReport(
            sites=(r.EffectSite("resolver", "issue_refund", "write", True, True, True, Span(at, at + 1)),),
            receipted_tools=frozenset({"issue_refund"}), approval_tools=frozenset({"issue_refund"})),
        gates=r.GateReport(signals={"triager": frozenset({"entropy", "confidence"})},
                           extra_samples={"triager": 3}, judges={"resolver": ("local",)}),
    )
    plan = lower_plan(dataclasses.replace(result, analysis=analysis))
    b = plan.flows["handle"].bound
    assert b.bound.cost_micros == 12_000 and b.bound.wall_ms is None and b.from_caps == ("cost_micros",)
    (item,) = b.items
    assert (item.callee, item.kind, item.multiplier, item.line, item.col) == ("triager", "agent", 1, line, col)
    assert plan.agents["triager"].bound is None  # no report for it
    (sink,) = plan.analysis.sinks
    assert (sink.ok, sink.labels, sink.cleared, sink.line, sink.col) == (False, ("pii",), ("public",), line, col)
    (d,) = plan.analysis.declassifications
    assert d.labels == ("payment", "pii") and d.reason == "audited"
    assert plan.analysis.redactions[0].owner == "handle"
    (site,) = plan.analysis.effect_sites
    assert site.approval and site.receipted and site.tool == "issue_refund"
    assert plan.analysis.approval_tools == ("issue_refund",)
    assert plan.agents["triager"].signals == ("confidence", "entropy")
    assert plan.agents["triager"].extra_samples == 3
    assert plan.agents["resolver"].judges == ("local",)
    assert plan.agents["resolver"].result_labels == ("pii",)


# ---- 4. reading plans -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_data() -> dict:
    return plan_to_dict(plan_of(REFERENCE))


def rehash(data: dict) -> dict:
    data["plan_hash"] = compute_plan_hash(data)
    return data


def test_an_unknown_plan_version_is_rejected_with_a_fix(reference_data):
    data = dict(reference_data, plan_version=1)  # a plan of the voxc before the defaults were lowered
    with pytest.raises(PlanError) as info:
        load_plan(json.dumps(data))
    message = str(info.value)
    assert "plan_version 1" in message and "reads plan_version 4 only" in message
    assert "recompile the source with this voxc" in message and "voxc plan FILE --json" in message


@pytest.mark.parametrize("text, expected", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object, found an array"),
    ('{"agents": {}}', "it has no `plan_version`"),
])
def test_what_is_not_a_plan_is_said_plainly(text, expected):
    with pytest.raises(PlanError, match=re.escape(expected)):
        load_plan(text)


def test_a_tampered_plan_gives_a_readable_error(reference_data):
    data = json.loads(json.dumps(reference_data))
    data["agents"]["triager"]["caps"]["tokens"] = "lots"
    data["tools"]["issue_refund"]["effect"] = "explosive"
    del data["flows"]["handle"]["body"][0]["value"]["type"]
    with pytest.raises(PlanError) as info:
        load_plan(rehash(data))
    message = str(info.value)
    assert message.startswith("this plan is not valid:\n")
    assert "at agents.triager.caps.tokens: Input should be a valid integer" in message and '(found "lots")' in message
    assert "at tools.issue_refund.effect:" in message
    assert "flows.handle.body.0.let.value.call.type: Field required" in message
    assert "pydantic" not in message and "Traceback" not in message
    assert len(info.value.problems) == 3


def test_names_the_plan_uses_must_be_declared_in_it(reference_data):
    data = json.loads(json.dumps(reference_data))
    data["agents"]["triager"]["fallback"] = ["gpt5"]
    data["flows"]["handle"]["body"][0]["value"]["name"] = "missing_agent"
    with pytest.raises(PlanError) as info:
        load_plan(rehash(data))
    assert "agent `triager` names model `gpt5`, which the plan does not declare" in str(info.value)
    assert "flow `handle` names agent `missing_agent`" in str(info.value)


def test_an_edited_plan_fails_its_hash(reference_data):
    data = json.loads(json.dumps(reference_data))
    data["agents"]["triager"]["caps"]["cost_micros"] = 10_000_000
    with pytest.raises(PlanError, match="does not match its contents"):
        load_plan(data)
    assert load_plan(data, verify_hash=False).agents["triager"].caps.cost_micros == 10_000_000


def test_plans_are_frozen():
    plan = plan_of(REFERENCE)
    with pytest.raises(Exception):
        plan.plan_hash = "0" * 64  # type: ignore[misc]


def test_select_flow_keeps_what_the_flow_reaches():
    plan = plan_of(REFERENCE)
    one = select_flow(plan, "handle")
    assert set(one.flows) == {"handle"} and set(one.agents) == {"triager", "resolver"}
    assert set(one.tools) == {"lookup_order", "issue_refund", "search_kb"}
    assert set(one.models) == {"mini", "local"} and set(one.providers) == {"openai", "onprem"}
    assert positions(one) == [p for p in positions(plan) if p.startswith("handle.")]
    assert load_plan(plan_to_json(one)) == one
    with pytest.raises(PlanError, match="no flow named `nope` \\(flows: handle, handle_batch\\)"):
        select_flow(plan, "nope")


# ---- 5. the published schema ------------------------------------------------------------------------


def test_the_published_schema_is_up_to_date():
    expected = plan_json_schema_text()
    found = SCHEMA_FILE.read_text(encoding="utf-8") if SCHEMA_FILE.exists() else ""
    assert found == expected, (
        "spec/plan.schema.json differs from the plan's models; regenerate it with\n"
        "    python -m vox.compiler.plan.schema > spec/plan.schema.json"
    )


def test_the_schema_describes_the_plan_version():
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert schema["properties"]["plan_version"] == {"const": 4, "title": "Plan Version", "type": "integer"}
    assert {"LitExpr", "CallExpr", "ForExpr", "LetStep", "ParStep", "Tool", "Agent"} <= set(schema["$defs"])


# ---- 6. the CLI -----------------------------------------------------------------------------------


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_voxc_plan_json_round_trips(capsys):
    code, out, err = run(capsys, "plan", "--json", str(REFERENCE))
    assert (code, err) == (0, "")
    assert load_plan(out) == plan_of(REFERENCE)


def test_voxc_plan_prints_a_summary(capsys):
    code, out, err = run(capsys, "plan", str(REFERENCE))
    assert (code, err) == (0, "")
    assert out.startswith(f"plan of {REFERENCE} (plan_version 4, hash ")
    assert "flow handle(ticket: Ticket) -> Resolution\n" in out
    assert "durable steps: handle.s0.triager, handle.s2.par0.search_kb" in out
    assert re.search(r"  bound: cost \$0\.05, tokens [\d_]+, wall 2m", out)
    assert "issue_refund: write, receipted, approval: human (the run pauses), idempotent" in out


def test_voxc_plan_reports_errors_like_check(capsys, tmp_path):
    bad = tmp_path / "bad.vox"
    bad.write_text("flow f() -> str {\n  return tickt\n}\n", encoding="utf-8")
    code, out, err = run(capsys, "plan", "--json", str(bad))
    assert code == 1 and err == ""
    assert run(capsys, "check", str(bad))[1] == out
    assert out.startswith("error[V1001]: unknown name `tickt`")


def test_voxc_plan_flow_and_output(capsys, tmp_path):
    target = tmp_path / "plan.json"
    code, out, err = run(capsys, "plan", str(REFERENCE), "--json", "--flow", "handle_batch", "--output", str(target))
    assert (code, out, err) == (0, "", "")
    plan = load_plan(target.read_text(encoding="utf-8"))
    assert set(plan.flows) == {"handle_batch", "handle"}
    code, out, err = run(capsys, "plan", str(REFERENCE), "--flow", "nope")
    assert code == 2 and err == "voxc: error: the plan has no flow named `nope` (flows: handle, handle_batch)\n"
    code, _, err = run(capsys, "plan", str(tmp_path / "missing.vox"))
    assert code == 2 and err.startswith("voxc: error: cannot read")
    code, _, err = run(capsys, "plan", str(REFERENCE), "--output", str(tmp_path / "no" / "dir" / "p.txt"))
    assert code == 2 and err.startswith("voxc: error: cannot write")


def test_voxc_plan_json_sends_warnings_to_stderr(capsys, monkeypatch):
    import vox.compiler.api
    from vox.compiler.diagnostics.model import warning

    real = vox.compiler.api.check_source

    def with_a_warning(path, text):
        result = real(path, text)
        extra = warning("V1041", "this value is computed and then dropped", path, Span(0, 5))
        return dataclasses.replace(result, diagnostics=result.diagnostics + (extra,))

    monkeypatch.setattr(vox.compiler.api, "check_source", with_a_warning)
    code, out, err = run(capsys, "plan", "--json", str(REFERENCE))
    assert code == 0 and load_plan(out).flows
    assert err.startswith("warning[V1041]") and err.endswith("warning: 1 warning in 1 file\n")
    code, out, err = run(capsys, "plan", str(REFERENCE))
    assert code == 0 and err == "" and out.startswith("warning[V1041]")
    assert "\nwarning: 1 warning in 1 file\nplan of " in out


# ---- 7. generated programs ----------------------------------------------------------------------------

PRELUDE = """
provider sim = sim { clearance: [public] }
model tiny = sim/"sim-small" {
  context: 8_192
  max_output: 256
  price: { input: $0.10, output: $0.40 }
}
enum Kind { alpha, beta, gamma }
type Item = {
  name: str
  n: int
  kind: Kind
  note: str?
}
agent ask(q: str) -> str {
  model: tiny
  budget: { tokens: 1_000, cost: $0.01, steps: 1 }
  prompt: "Answer: {q}"
}
agent classify(q: str) -> Item {
  model: tiny
  budget: { tokens: 1_000, cost: $0.01, steps: 1 }
  prompt: "Classify: {q}"
}
tool fetch(id: str) -> Item {
  effect: read
  timeout: 2s
  bind: python("store:fetch")
}
tool save(item: Item) -> str {
  effect: write
  idempotent: true
  timeout: 2s
  bind: python("store:save")
}
"""


@st.composite
def programs(draw) -> str:
    """A small program that checks clean: flows of lets, ifs, loops, pars and calls."""
    counter = iter(range(10_000))
    flows: list[str] = []

    def fresh() -> str:
        return f"v{next(counter)}"

    def str_expr(scope: dict, depth: int = 0) -> str:
        options = ['"lit"'] + [n for n, ty in scope.items() if ty == "str"]
        items = [n for n, ty in scope.items() if ty == "Item"]
        choice = draw(st.integers(0, 3 if depth < 2 else 1))
        if choice == 2 and items:
            return f"{draw(st.sampled_from(items))}.name"
        if choice == 3:
            return f"{str_expr(scope, depth + 1)} + {str_expr(scope, depth + 1)}"
        return draw(st.sampled_from(options))

    def cond(scope: dict) -> str:
        items = [n for n, ty in scope.items() if ty == "Item"]
        lists = [n for n, ty in scope.items() if ty == "list"]
        choice = draw(st.integers(0, 3))
        if choice == 1 and items:
            return f"{draw(st.sampled_from(items))}.kind == {draw(st.sampled_from(['alpha', 'beta', 'gamma']))}"
        if choice == 2 and items:
            return f"{draw(st.sampled_from(items))}.n >= {draw(st.integers(-5, 5))}"
        if choice == 3 and lists:
            return f"len({draw(st.sampled_from(lists))}) > 1 and true"
        return f"len({str_expr(scope)}) > {draw(st.integers(0, 9))}"

    def call(scope: dict) -> tuple[str, str]:
        callees = ["ask", "classify", "fetch"] + [f"flow{i}" for i in range(len(flows))]
        callee = draw(st.sampled_from(callees))
        if callee == "ask":
            return f"ask(q: {str_expr(scope)})", "str"
        if callee == "classify":
            return f"classify(q: {str_expr(scope)})", "Item"
        if callee == "fetch":
            return f"fetch(id: {str_expr(scope)})", "Item"
        return f"{callee}(q: {str_expr(scope)})", "str"

    def block(scope: dict, depth: int, indent: str) -> list[str]:
        lines: list[str] = []
        for _ in range(draw(st.integers(1, 4))):
            kind = draw(st.sampled_from(["call", "call", "let_str", "record", "if", "for", "par", "save"]
                                        if depth < 2 else ["call", "let_str", "save"]))
            name = fresh()
            if kind == "call":
                text, ty = call(scope)
                lines.append(f"{indent}let {name} = {text}")
                scope[name] = ty
            elif kind == "let_str":
                lines.append(f"{indent}let {name} = {str_expr(scope)}")
                scope[name] = "str"
            elif kind == "record":
                note = draw(st.sampled_from(["none", '"n"']))
                lines.append(f'{indent}let {name}: Item = {{ name: {str_expr(scope)}, n: {draw(st.integers(0, 99))}, '
                             f"kind: {draw(st.sampled_from(['alpha', 'beta', 'gamma']))}, note: {note} }}")
                scope[name] = "Item"
            elif kind == "save":
                items = [n for n, ty in scope.items() if ty == "Item"]
                if items:
                    lines.append(f"{indent}save(item: {draw(st.sampled_from(items))})")
            elif kind == "if":
                lines.append(f"{indent}if {cond(scope)} {{")
                lines.extend(block(dict(scope), depth + 1, indent + "  "))
                if draw(st.booleans()):
                    lines.append(f"{indent}}} else {{")
                    lines.extend(block(dict(scope), depth + 1, indent + "  "))
                lines.append(f"{indent}}}")
            elif kind == "for":
                var = fresh()
                source = draw(st.sampled_from([f"[{str_expr(scope)}, {str_expr(scope)}]"]
                                              + [n for n, ty in scope.items() if ty == "list"]))
                inner = dict(scope)
                inner[var] = "str"
                lines.append(f"{indent}let {name} = for {var} in {source} max {draw(st.integers(1, 4))} {{")
                lines.extend(block(inner, depth + 1, indent + "  "))
                lines.append(f"{indent}  ask(q: {var})")
                lines.append(f"{indent}}}")
                scope[name] = "list"
            elif kind == "par":
                lines.append(f"{indent}par {{")
                bound = {}
                for _ in range(draw(st.integers(1, 3))):
                    branch = fresh()
                    text, ty = call(scope)
                    lines.append(f"{indent}  let {branch} = {text}")
                    bound[branch] = ty
                lines.append(f"{indent}}}")
                scope.update(bound)
        return lines

    for i in range(draw(st.integers(1, 3))):
        body = block({"q": "str"}, 0, "  ")
        cap = f"{1_000 * 10_000 ** i:_}"  # a flow may call the ones before it, many times over
        flows.append(f"flow flow{i}(q: str) -> str {{\n  budget: {{ cost: ${cap} }}\n"
                     + "\n".join(body) + f"\n  return {str_expr({'q': 'str'})}\n}}\n")
    return PRELUDE + "\n".join(flows)


@given(programs())
def test_generated_programs_round_trip_byte_for_byte(source):
    result = check_source("gen.vox", source)
    assert result.ok, ([f"{d.code} {d.message}" for d in result.errors], source)
    plan = lower_plan(result)
    text = plan_to_json(plan)
    again = load_plan(text)
    assert again == plan
    assert plan_to_json(again) == text
    found = positions(plan)
    assert len(found) == len(set(found))

