"""The plan carries every effective default, and a stored plan sends the same requests.

Layers: (1) the one table of defaults, lowered into the plan for programs that leave things out;
(2) what the runtime derives from a plan equals the plan's values and the budget analysis's
assumptions: the request it builds for each agent, the provider timeout it uses, the tool timeout
a bound counts, with a scan of the runtime's source for fallbacks as a second line; (3) a plan
that leaves a signal's argument or a retry count out is refused; (4) a plan read back from its
JSON builds byte-identical requests (examples and generated programs), its schemas in
declaration order, and a plan re-serialised with sorted keys fails its hash.
"""

from __future__ import annotations

import doctest
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vox.compiler.analysis.budgets import MODEL_ATTEMPTS, TOOL_RETRY_DELAY_MS
from vox.compiler import defaults
from vox.compiler.api import check_source
from vox.compiler.hir.expressions import SIGNAL_CALLS, SIGNAL_VALUES
from vox.compiler.plan import PlanError, compute_plan_hash, load_plan, lower_plan, plan_to_json
from vox.compiler.plan import ir
from vox.compiler.plan.model import SIGNAL_PARAMS, Plan, walk_plan
from vox.compiler.units import cost_of_tokens
from vox.runtime.executor.agent import AgentCall, Signals
from vox.runtime.executor.labels import LabelMonitor
from vox.runtime.host import Runtime
from vox.runtime.providers import PROTOCOLS
from vox.runtime.providers.messages import ModelRequest, ModelResponse, TokenLogprob, Usage

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.vox"))
RUNTIME = ROOT / "runtime"


def plan_of(text: str, path: str = "t.vox") -> Plan:
    result = check_source(path, text)
    assert result.ok, ([f"{d.code} {d.message}" for d in result.errors], text)
    return lower_plan(result)


def agent_call(plan: Plan, agent: str) -> AgentCall:
    """The runtime's own object for one call of ``agent``; building requests needs no network."""
    run = SimpleNamespace(plan=plan, run_id="run_defaults", labels=LabelMonitor(plan))
    return AgentCall(run, plan.agents[agent], {}, scope=None, step=f"test.{agent}")


def request_of(plan: Plan, agent: str, model: str | None = None) -> ModelRequest:
    """The request the runtime sends for ``agent``'s first call on ``model`` (its primary)."""
    call = agent_call(plan, agent)
    return call.request(call.opening(), plan.models[model or plan.agents[agent].model])


def wire_bodies(request: ModelRequest) -> dict[str, bytes]:
    """The request's body as each protocol sends it (the bytes ``HTTPProvider.complete`` posts)."""
    return {name: json.dumps(cls("http://127.0.0.1:9", None, None).build_body(request), ensure_ascii=False,
                             separators=(",", ":")).encode("utf-8")
            for name, cls in PROTOCOLS.items()}


def runtime_provider(plan: Plan, name: str):
    """The provider client the runtime makes for ``name`` (live, so its own settings are used)."""
    p = plan.providers[name]
    env = {p.base_url.env: "http://127.0.0.1:9/v1"} if p.base_url is not None and not isinstance(p.base_url, str) else {}
    host = SimpleNamespace(simulated={}, options=SimpleNamespace(env=env), http=None)
    return Runtime.provider(host, p)


# A program that leaves out every member that has a default.
BARE = """
provider openai = openai { key: env("OPENAI_API_KEY") }
provider claude = anthropic { key: env("ANTHROPIC_API_KEY"), timeout: 15s }
provider local = openai_compatible { base_url: "http://127.0.0.1:11434/v1" }
model plain = openai/"gpt-4o-mini" {
  context: 128_000
  price: { input: $1, output: $2 }
  capabilities: [tools, logprobs, json_schema, sampling]
}
model small = local/"qwen2.5:0.5b" { context: 600, price: free, capabilities: [logprobs, sampling] }
model sized = claude/"claude-haiku-4-5" { context: 200_000, max_output: 300, price: { input: $1, output: $5 } }
type Answer = { zeta: str, alpha: int, mid: money? }
tool lookup(id: str) -> str {
  effect: read
  retries: 2
  bind: python("shop:lookup")
}
gate sure(a: Answer) {
  check entropy(window: 8) <= 2.5 else retry(2)
  check consistency(n: 3) >= 0.6 else retry(0)
}
gate calm(a: str) {
  check confidence >= 0.5 else retry(1)
}
agent unsized(q: str) -> Answer {
  model: plain
  tools: [lookup]
  gates: [sure]
  temperature: 0.7
  budget: { steps: 4, tokens: 20_000, tool_calls: 2 }
  prompt: "Answer: {q}"
}
agent tiny(q: str) -> str {
  model: plain
  gates: [calm]
  budget: { steps: 1 }
  prompt: "{q}"
}
agent declared(q: str) -> Answer {
  model: sized
  budget: { steps: 2, tokens: 10_000 }
  prompt: "{q}"
}
flow ask(q: str) -> str {
  let found = lookup(id: q)
  let a = unsized(q: found)
  return a.zeta
}
"""


@pytest.fixture(scope="module")
def bare() -> Plan:
    return plan_of(BARE)


# ---- 1. the defaults, lowered -------------------------------------------------------------------------


def test_the_defaults_table_doctests():
    assert doctest.testmod(defaults).failed == 0


def test_every_default_is_in_the_plan(bare):
    assert bare.models["plain"].max_output == defaults.MAX_OUTPUT == 1_024
    assert bare.models["small"].max_output == 600  # never more than the context
    assert bare.models["sized"].max_output == 300
    assert bare.providers["openai"].timeout_ms == defaults.PROVIDER_TIMEOUT_MS == 60_000
    assert bare.providers["claude"].timeout_ms == 15_000
    assert bare.providers["openai"].base_url == "https://api.openai.com/v1"
    assert bare.providers["claude"].base_url == "https://api.anthropic.com"
    assert bare.providers["local"].base_url == "http://127.0.0.1:11434/v1"
    tool = bare.tools["lookup"]
    assert tool.timeout_ms == defaults.TOOL_TIMEOUT_MS == 30_000 and tool.cost_micros == 0
    assert bare.agents["unsized"].top_logprobs == defaults.ENTROPY_TOP_LOGPROBS == 5
    assert bare.agents["tiny"].top_logprobs == 0 and bare.agents["declared"].top_logprobs == 0


def test_signal_arguments_and_retries_are_in_the_plan_as_written(bare):
    checks = bare.gates["sure"].checks
    assert [c.retries for c in checks] == [2, 0]  # retry(0) is no retry, not the runtime's guess
    calls = {node.name: node for node, _ in walk_plan(bare)
             if isinstance(node, ir.CallExpr) and node.kind == "signal"}
    assert [(a.name, a.value.value) for a in calls["entropy"].args] == [("window", 8)]
    assert [(a.name, a.value.value) for a in calls["consistency"].args] == [("n", 3)]


def test_the_plans_signal_table_is_the_languages():
    assert SIGNAL_PARAMS == {**{name: () for name in SIGNAL_VALUES},
                             **{name: params for name, (params, _) in SIGNAL_CALLS.items()}}


# ---- 2. what the runtime derives equals the plan and the bound -------------------------------------------


def test_requests_ask_for_the_plans_max_output_and_logprobs(bare):
    for agent in bare.agents.values():
        for model in (agent.model, *agent.fallback):
            request = request_of(bare, agent.name, model)
            assert request.max_output == bare.models[model].max_output, (agent.name, model)
            assert request.top_logprobs == (agent.top_logprobs if request.logprobs else 0)
    assert request_of(bare, "unsized").top_logprobs == 5
    assert request_of(bare, "tiny").logprobs and request_of(bare, "tiny").top_logprobs == 0
    for body in wire_bodies(request_of(bare, "unsized")).values():
        assert b'"max_completion_tokens":1024' in body or b'"max_tokens":1024' in body


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_requests_match_the_plan(path):
    plan = plan_of(path.read_text(encoding="utf-8"), str(path))
    for agent in plan.agents.values():
        for model in (agent.model, *agent.fallback, *agent.judges):
            request = request_of(plan, agent.name, model)
            assert request.max_output == plan.models[model].max_output
            assert request.output_schema == agent.output_schema
    for p in plan.providers.values():
        if p.protocol != "sim" and p.base_url is not None:
            assert runtime_provider(plan, p.name).timeout_s * 1000 == p.timeout_ms


def test_the_runtime_uses_the_plans_provider_timeout_and_endpoint(bare):
    for name in ("openai", "claude", "local"):
        client = runtime_provider(bare, name)
        assert client.timeout_s * 1000 == bare.providers[name].timeout_ms
        assert client.base_url == bare.providers[name].base_url.rstrip("/")


def test_the_bound_counts_the_max_output_the_runtime_sends(bare):
    # `unsized`: 4 calls of up to MODEL_ATTEMPTS billed attempts, each × the max_output its requests
    # ask for, at $2/M; the rest of its 20k tokens at $1/M; 1 micro-dollar of rounding per attempt.
    sent = request_of(bare, "unsized").max_output
    attempts = 4 * MODEL_ATTEMPTS
    out = min(attempts * sent, 20_000)
    assert bare.agents["unsized"].bound.derived.cost_micros == cost_of_tokens(out, 2_000_000) + cost_of_tokens(
        20_000 - out, 1_000_000) + attempts
    sent = request_of(bare, "declared").max_output
    attempts = 2 * MODEL_ATTEMPTS
    out = min(attempts * sent, 10_000)
    assert bare.agents["declared"].bound.derived.cost_micros == cost_of_tokens(out, 5_000_000) + cost_of_tokens(
        10_000 - out, 1_000_000) + attempts


def test_a_cap_below_the_default_reservation_is_refused_before_the_run():
    # Before the default was the compiler's too, this checked clean and every run was refused.
    source = BARE.replace("budget: { steps: 4, tokens: 20_000, tool_calls: 2 }", "budget: { steps: 4, tokens: 1_000 }")
    errors = [d for d in check_source("t.vox", source).errors if d.code == "V2003"]
    said = " ".join(d.message + " ".join(d.notes) + " ".join(label.message for label in d.labels) for d in errors)
    assert errors and "reserves 1_024 tokens for its reply (the default `max_output`: `plain` declares none)" in said


def test_a_small_context_counts_the_default_reply():
    # `small` has a 600-token context and no max_output: the reply takes all of it, so no prompt
    # fits beside it (the runtime counts the role, the output schema and the overheads even for a
    # prompt that is only a placeholder).
    source = BARE + 'agent on_small(q: str) -> str {\n  model: small\n  prompt: "{q}"\n}\n'
    errors = check_source("t.vox", source).errors
    assert [d.code for d in errors] == ["V2006"]
    assert "600-token context of `small`" in errors[0].message


def test_a_tools_bound_counts_the_timeout_the_runtime_gives_it(bare):
    tool = bare.tools["lookup"]
    item = next(i for i in bare.flows["ask"].bound.items if i.callee == "lookup")
    # every attempt, and the runtime's waits between them (TOOL_RETRY_DELAY_MS after the first, twice that after the second)
    assert item.bound.wall_ms == tool.timeout_ms * (1 + tool.retries) + TOOL_RETRY_DELAY_MS * 3 == 90_600
    assert bare.flows["ask"].bound.derived.wall_ms is None  # `unsized` declares no wall


def test_the_runtime_has_no_answer_of_its_own_for_a_missing_signal_argument(bare):
    call = agent_call(bare, "unsized")
    response = ModelResponse(text="{}", tool_calls=(), usage=Usage(0, 0), finish="stop", model="m",
                             logprobs=(TokenLogprob("a", -0.1, (("a", -0.1), ("b", -2.0))),))
    signals = Signals(call, {}, response)
    with pytest.raises(TypeError, match="window"):
        import anyio

        anyio.run(signals.read, "entropy", {})


# What a runtime fallback for a plan field looks like; none may remain (a second line behind the
# tests above, which build the runtime's requests from plans).
_FIELDS = r"max_output|timeout_ms|retries|cost_micros|top_logprobs"
FALLBACKS = re.compile(rf"\b(?:{_FIELDS})\s+or\b|\.({_FIELDS})\s+if\s+[\w.]+\.\1\s+is\s+not\s+None\s+else\b"
                       r"|\bor\s+1_?024\b|\bor\s+60_?000\b"
                       r'|DEFAULT_MAX_OUTPUT|\bargs\.get\("\w+"\s*,|\bargs\.get\("\w+"\)\s*or\b')
# Fallbacks in code owned by other changes in flight (lines holding these words are let through);
# each entry goes when its fallback does.
PENDING = {"executor/tools.py": {"DEFAULT_TIMEOUT_S"}, "executor/run.py": {"cost_micros or"}}


def test_the_runtime_source_holds_no_fallback_for_plan_fields():
    found = []
    for path in sorted(RUNTIME.rglob("*.py")):
        rel = path.relative_to(RUNTIME).as_posix()
        if rel.startswith("sim/"):
            continue  # the simulator plays a provider; it reads wire requests, not plans
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in FALLBACKS.finditer(line):
                if not any(p in line for p in PENDING.get(rel, ())):
                    found.append(f"runtime/{rel}:{n}: {line.strip()}")
    assert not found, "the runtime fills in plan fields itself:\n" + "\n".join(found)


def test_a_pending_tool_timeout_fallback_agrees_with_the_compiler():
    from vox.runtime.executor import tools

    fallback = getattr(tools, "DEFAULT_TIMEOUT_S", None)
    assert fallback is None or fallback * 1000 == defaults.TOOL_TIMEOUT_MS


# ---- 3. plans that leave something out are refused ------------------------------------------------------


def _rehash(data: dict) -> dict:
    data["plan_hash"] = compute_plan_hash(data)
    return data


def _signal_calls(data):
    if isinstance(data, dict):
        if data.get("node") == "call" and data.get("kind") == "signal":
            yield data
        for value in data.values():
            yield from _signal_calls(value)
    elif isinstance(data, list):
        for value in data:
            yield from _signal_calls(value)


def test_a_signal_without_its_argument_is_not_a_plan(bare):
    data = json.loads(plan_to_json(bare))
    entropy = next(c for c in _signal_calls(data["gates"]) if c["name"] == "entropy")
    entropy["args"] = []
    with pytest.raises(PlanError, match=r"reads signal `entropy` with arguments \(\), but it takes \(window\)"):
        load_plan(_rehash(data))


def test_a_retry_without_its_count_is_not_a_plan(bare):
    data = json.loads(plan_to_json(bare))
    data["gates"]["sure"]["checks"][0]["retries"] = None
    with pytest.raises(PlanError, match="a `retry` check without its number of retries"):
        load_plan(_rehash(data))


@pytest.mark.parametrize("where, field", [("models.plain", "max_output"), ("tools.lookup", "timeout_ms"),
                                          ("providers.openai", "timeout_ms"), ("tools.lookup", "cost_micros")])
def test_a_default_left_out_of_a_plan_is_an_error(bare, where, field):
    data = json.loads(plan_to_json(bare))
    table, name = where.split(".")
    data[table][name][field] = None
    with pytest.raises(PlanError, match=re.escape(f"at {where}.{field}: Input should be a valid integer")):
        load_plan(_rehash(data))


# ---- 4. a stored plan sends the same requests -------------------------------------------------------------


def assert_same_requests(plan: Plan) -> None:
    """Everything the runtime sends, built from ``plan`` and from it read back, byte for byte."""
    text = plan_to_json(plan)
    again = load_plan(text)
    assert plan_to_json(again) == text
    for agent in plan.agents.values():
        before, after = request_of(plan, agent.name), request_of(again, agent.name)
        assert wire_bodies(before) == wire_bodies(after), agent.name
    for name, t in plan.types.items():
        assert json.dumps(again.types[name].json_schema) == json.dumps(t.json_schema), name
    for name, t in plan.tools.items():
        assert json.dumps(again.tools[name].params_schema) == json.dumps(t.params_schema), name


def assert_declaration_order(plan: Plan) -> None:
    """A record's schema lists its properties as the record lists its fields."""
    for t in plan.types.values():
        if t.kind == "record":
            assert list(t.json_schema["properties"]) == [f.name for f in t.fields] == t.json_schema["required"]
    for agent in plan.agents.values():
        result = plan.types.get(getattr(agent.result, "name", ""))
        if result is not None and result.kind == "record" and not agent.output_wrapped:
            sent = request_of(plan, agent.name).output_schema
            assert list(sent["properties"]) == [f.name for f in result.fields]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_example_plan_read_back_sends_identical_requests(path):
    plan = plan_of(path.read_text(encoding="utf-8"), str(path))
    assert_same_requests(plan)
    assert_declaration_order(plan)


def test_a_plan_resorted_by_a_store_fails_its_hash(bare):
    assert list(bare.types["Answer"].json_schema["properties"]) == ["zeta", "alpha", "mid"]
    resorted = json.dumps(json.loads(plan_to_json(bare)), sort_keys=True)
    with pytest.raises(PlanError, match="does not match its contents"):
        load_plan(resorted)


FIELD_NAMES = ["zeta", "id", "body", "alpha", "amount", "mid", "created_at", "b2", "omega", "beta"]
FIELD_TYPES = ["str", "int", "money", "bool", "str?", "list[str]", "duration", "float"]


@st.composite
def record_programs(draw) -> str:
    """Records with fields in arbitrary (rarely alphabetical) order, nested, returned by agents
    and taken by tools, on models, providers and tools that do or do not declare their defaults."""
    lines = [
        'provider openai = openai { key: env("OPENAI_API_KEY")'
        + draw(st.sampled_from(["", ", timeout: 20s"])) + " }",
        'provider claude = anthropic { key: env("ANTHROPIC_API_KEY") }',
    ]
    # Anthropic's API has no logprobs (V5007), so only m0 lists them.
    for name, provider, logprobs in (("m0", "openai", "logprobs, "), ("m1", "claude", "")):
        max_output = draw(st.sampled_from(["", "max_output: 700, "]))
        lines.append(f'model {name} = {provider}/"{name}" {{ context: 64_000, {max_output}'
                     f"price: {{ input: $1, output: $4 }}, capabilities: [tools, {logprobs}json_schema, sampling] }}")
    records = []
    for i in range(draw(st.integers(1, 3))):
        fields = draw(st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=6, unique=True))
        types = [draw(st.sampled_from(FIELD_TYPES + records + [f"list[{r}]" for r in records])) for _ in fields]
        lines.append(f"type R{i} = {{ " + ", ".join(f"{f}: {t}" for f, t in zip(fields, types)) + " }")
        records.append(f"R{i}")
    timeout = draw(st.sampled_from(["", "timeout: 3s\n  "]))
    lines.append(f"tool keep(item: {records[0]}, note: str) -> str {{\n  effect: read\n  {timeout}"
                 'bind: python("store:keep")\n}')
    signal = draw(st.sampled_from(["entropy(window: 4) <= 3.0", "consistency(n: 2) >= 0.5", "confidence >= 0.2"]))
    lines.append(f"gate ok(r: {records[-1]}) {{ check {signal} else retry(1) }}")
    for i, record in enumerate(records):
        result = draw(st.sampled_from([record, f"list[{record}]"]))
        gates = "gates: [ok], " if result == records[-1] else ""
        model = draw(st.sampled_from(["m0", "m1"]))
        fallback = draw(st.sampled_from(["", f", fallback: [{'m1' if model == 'm0' else 'm0'}]"]))
        if gates and not signal.startswith("consistency"):  # reads logprobs: only m0 has them
            model, fallback = "m0", ""
        lines.append(f"agent a{i}(q: str) -> {result} {{ model: {model}{fallback}, tools: [keep], {gates}"
                     'temperature: 0.5, budget: { steps: 3, tokens: 30_000, tool_calls: 2 }, prompt: "Do: {q}" }')
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None)
@given(record_programs())
def test_generated_plans_read_back_send_identical_requests(source):
    plan = plan_of(source)
    assert_same_requests(plan)
    assert_declaration_order(plan)
    for agent in plan.agents.values():
        for model in (agent.model, *agent.fallback):
            assert request_of(plan, agent.name, model).max_output == plan.models[model].max_output
