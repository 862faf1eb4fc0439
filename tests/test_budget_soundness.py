"""Budget and gate holes (issue 11): each test tries to break one promise.

Where a promise is about what the runtime does (recursion, the prompt it counts, the steps a judge
takes), the test also asks the runtime itself: its token counter, or a run on the simulator. The
second half is the runtime's: the budget monitor that holds a run to the bound the compiler
proved, and the budget classes on which the compiler and the runtime must agree.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vox.compiler.api import check_source
from vox.compiler.plan import PlanError, load_plan, lower_plan, plan_to_json
from vox.runtime.budget import BoundExceeded, BudgetScope
from vox.runtime.executor.journal import NoJournal
from vox.runtime.executor.run import Run
from vox.runtime.host import RunOptions, Runtime, execute

PRELUDE = """\
provider openai = openai { key: env("OPENAI_API_KEY") }
model mini = openai/"gpt-4o-mini" {
  context: 128_000
  max_output: 1_000
  price: { input: $0.15, output: $0.60 }
  capabilities: [tools, logprobs, json_schema]
}
agent cheap(q: str) -> str {
  model: mini
  budget: { cost: $0.01, steps: 2, wall: 10s }
  prompt: "Answer: {q}"
}
"""


def diags(body: str, prelude: str = PRELUDE):
    """(code, underlined source text) of every diagnostic."""
    text = prelude + body
    return [(d.code, text[d.span.start:d.span.end]) for d in check_source("t.vox", text).diagnostics]


def codes(body: str, prelude: str = PRELUDE) -> list[str]:
    return [c for c, _ in diags(body, prelude)]


def bounds(body: str, prelude: str = PRELUDE):
    result = check_source("t.vox", prelude + body)
    assert not result.errors, [(d.code, d.message) for d in result.errors]
    return result.analysis.budgets.bounds


def only(body: str, prelude: str = PRELUDE):
    (d,) = check_source("t.vox", prelude + body).diagnostics
    return d


# ---- 1. negative amounts, zero time limits ------------------------------------------------------------


@pytest.mark.parametrize("member, shown", [
    ("cost: -$0.001", "-$0.001"), ("timeout: -5s", "-5s"), ("timeout: 0ms", "0ms"), ("timeout: 0s", "0s"),
    ("cost: $0.002 - $0.003", "$0.002 - $0.003"),  # folded: arithmetic cannot smuggle one in
])
def test_a_tool_cannot_lower_a_bound(member, shown):
    body = f'tool t(id: str) -> str {{\n  effect: read\n  {member}\n  bind: python("m:t")\n}}\n'
    assert diags(body) == [("V2009", shown)]


def test_a_negative_amount_is_fixed_by_its_magnitude_and_a_zero_timeout_by_the_default():
    fix = only('tool t(id: str) -> str { effect: read, cost: -$0.25 }\n').fix
    assert fix.edits[0].new_text == "$0.25"
    fix = only('tool t(id: str) -> str { effect: read, timeout: 0ms }\n').fix
    assert fix.edits[0].new_text == "30s"
    fix = only('provider p = openai { key: env("K"), timeout: 0ms }\n').fix
    assert fix.edits[0].new_text == "1m"


@pytest.mark.parametrize("field", ["input", "output", "cached_input", "cache_write"])
def test_no_price_may_be_negative(field):
    price = {"input": "$1", "output": "$2", "cached_input": "$0.5", "cache_write": "$1.25"}
    price[field] = "-" + price[field]
    body = ('model m = openai/"m" { context: 1_000, price: { '
            + ", ".join(f"{k}: {v}" for k, v in price.items()) + " } }\n")
    assert diags(body) == [("V2009", price[field])]


def test_a_provider_timeout_must_be_positive_and_a_cap_never_negative():
    assert diags('provider p = openai { key: env("K"), timeout: -1s }\n') == [("V2009", "-1s")]
    assert diags('flow f() -> int {\n  budget: { cost: -$1 }\n  return 1\n}\n') == [("V2009", "-$1")]


def test_a_plan_edited_to_hold_a_negative_amount_is_refused():
    body = ('tool t(id: str) -> str { effect: read, cost: $0.001, bind: python("m:t") }\n'
            'flow f() -> str {\n  budget: { depth: 1 }\n  return t(id: "x")\n}\n')
    data = json.loads(plan_to_json(lower_plan(check_source("t.vox", PRELUDE + body))))
    for path, value in ((("tools", "t", "cost_micros"), -1), (("tools", "t", "timeout_ms"), 0),
                        (("models", "mini", "price", "output_micros"), -1), (("flows", "f", "caps", "depth"), 0)):
        edited = json.loads(json.dumps(data))
        target = edited
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(PlanError):
            load_plan(json.dumps(edited))


# ---- 2. depth 0 ----------------------------------------------------------------------------------------


RECURSIVE = """
flow f(n: int) -> int {
  budget: { depth: DEPTH }
  let a = cheap(q: "x")
  if n > 0 {
    return f(n: n - 1)
  }
  return n
}
"""


def test_depth_zero_is_refused_and_does_not_make_a_flow_free():
    assert diags(RECURSIVE.replace("DEPTH", "0")) == [("V2010", "0")]  # and no V2008 beside it
    caller = RECURSIVE.replace("DEPTH", "0") + 'flow g() -> int {\n  budget: { cost: $0.001 }\n  return f(n: 3)\n}\n'
    assert codes(caller) == ["V2010"]  # no plan: nothing runs it for free
    assert only(RECURSIVE.replace("DEPTH", "0")).fix.edits[0].new_text == "1"


# ---- 3. one recursion model -------------------------------------------------------------------------


def cycle(depth_ping: int, depth_pong: int, cap: str = "") -> str:
    return f"""
flow ping(n: int) -> int {{
  budget: {{ depth: {depth_ping}{cap} }}
  let a = cheap(q: "ping")
  if n > 0 {{
    return pong(n: n - 1)
  }}
  return n
}}
flow pong(n: int) -> int {{
  budget: {{ depth: {depth_pong} }}
  let b = cheap(q: "pong")
  if n > 0 {{
    return ping(n: n - 1)
  }}
  return n
}}
"""


def activations(first: str, depth: dict[str, int]) -> int:
    """How many activations the runtime's rule allows along ping → pong → ping ...: a call of a
    flow is refused when the flow already has `depth` activations on the stack."""
    stack = {"ping": 0, "pong": 0}
    flow, total = first, 0
    while stack[flow] < depth[flow]:
        stack[flow] += 1
        total += 1
        flow = "pong" if flow == "ping" else "ping"
    return total


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6))
def test_mutual_recursion_counts_what_the_runtime_allows(dp, dq):
    b = bounds(cycle(dp, dq))
    depth = {"ping": dp, "pong": dq}
    for first in ("ping", "pong"):
        # every activation calls `cheap` once, and `cheap` reserves its $0.01 cap
        assert b[first].derived.cost_micros == activations(first, depth) * 10_000, (first, dp, dq)


def test_the_callee_in_a_cycle_is_not_free():
    # ping (depth 1) → pong (depth 5) → ping is refused: one activation of each, two calls of cheap
    b = bounds(cycle(1, 5))
    assert b["ping"].derived.cost_micros == 2 * 10_000
    assert b["pong"].derived.cost_micros == 3 * 10_000  # pong → ping → pong → ping refused


def test_a_nested_call_of_a_capped_flow_counts_its_whole_cap():
    # ping's nested activations each reserve ping's $0.05: pong's bound counts the cap, not the
    # $0.02 a ping activation may spend, so ping → pong → ping needs $0.07 inside ping's $0.05
    result = check_source("t.vox", PRELUDE + cycle(2, 2, cap=", cost: $0.05"))
    item = next(i for i in result.analysis.budgets.bounds["pong"].items if i.callee == "ping")
    assert item.bound.cost_micros == 50_000
    assert [d.code for d in result.diagnostics] == ["V2005"]
    # a flow capped at $0.05 that spends before calling itself can never hold its own cap again
    assert codes(RECURSIVE.replace("depth: DEPTH", "cost: $0.05, depth: 3")) == ["V2001"]


def test_a_deep_cycle_is_bounded_or_refused_never_free():
    b = bounds(cycle(200, 300))  # 201 × 301 states: the coarser model
    assert b["ping"].derived.cost_micros >= activations("ping", {"ping": 200, "pong": 300}) * 10_000
    assert codes(cycle(6_000, 6_000) + 'flow g() -> int {\n  budget: { cost: $1 }\n  return ping(n: 1)\n}\n') \
        == ["V2007"]  # past 10_000 activations: unbounded, and a capped caller is told so


SHOP = '''
import json, os, pathlib

def tick(n):
    path = pathlib.Path(os.environ["TICKS"])
    path.write_text(str(int(path.read_text() or 0) + 1) if path.exists() else "1")
    return n
'''

RUN_CYCLE = """
provider sim = sim
tool tick(n: int) -> int {
  effect: read
  cost: $0.001
  bind: python("ticks:tick")
}
flow ping(n: int) -> int {
  budget: { depth: 2 }
  let a = tick(n: n)
  if n > 0 {
    return pong(n: n - 1)
  }
  return a
}
flow pong(n: int) -> int {
  budget: { depth: 3 }
  let b = tick(n: n)
  if n > 0 {
    return ping(n: n - 1)
  }
  return b
}
"""


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize("first", ["ping", "pong"])
async def test_the_runtime_spends_exactly_the_compilers_recursion_bound(tmp_path, monkeypatch, first):
    from vox.runtime.host import RunOptions, Runtime

    (tmp_path / "ticks.py").write_text(SHOP)
    monkeypatch.setenv("TICKS", str(tmp_path / "ticks.txt"))
    monkeypatch.delitem(sys.modules, "ticks", raising=False)
    result = check_source(str(tmp_path / "prog.vox"), RUN_CYCLE)
    assert result.ok, [d.message for d in result.errors]
    bound = result.analysis.budgets.bounds[first].derived.cost_micros
    options = RunOptions(durable=False, state_dir=str(tmp_path / ".vox"), simulate="auto", base_dir=str(tmp_path),
                         env={"VOX_RECEIPT_KEY": "test-key"})
    async with Runtime(lower_plan(result), options) as rt:
        run = await rt.run(first, {"n": 50})
    assert not run.ok and "deep" in str(run.error)  # the recursion ran into a `depth`
    ticks = int((tmp_path / "ticks.txt").read_text())
    assert ticks == activations(first, {"ping": 2, "pong": 3})
    assert run.spent["cost_micros"] == ticks * 1_000 == bound


# ---- 4. judge calls take steps ----------------------------------------------------------------------


JUDGED = """
gate polite(s: str) {
  check judge(mini, rubric: "Polite.") else CHECK_ACTION
}
agent a(q: str) -> str {
  model: mini
  gates: [polite]
  budget: { steps: STEPS }
  prompt: "Answer: {q}"
}
"""


def test_a_judge_call_is_one_of_the_agents_steps():
    body = JUDGED.replace("CHECK_ACTION", "abstain")
    assert diags(body.replace("STEPS", "1")) == [("V2003", "1")]
    assert only(body.replace("STEPS", "1")).fix.edits[0].new_text == "2"
    assert codes(body.replace("STEPS", "2")) == []


def test_retries_count_the_judge_calls_of_each_attempt():
    body = JUDGED.replace("CHECK_ACTION", "retry(1)")
    # two attempts, each the turn and its judge call: 4 steps
    assert codes(body.replace("STEPS", "3")) == ["V5005"]
    assert codes(body.replace("STEPS", "4")) == []


def test_the_runtime_reserves_a_judge_call_in_the_agents_scope():
    """The rule the compiler follows, read from the runtime: a judge call goes through
    ``call_model``, which reserves one model call in the agent's scope."""
    import inspect

    from vox.runtime.executor.agent import AgentCall, Signals

    assert "call.call_model(" in inspect.getsource(Signals.judge)
    assert "model_calls=1" in inspect.getsource(AgentCall.call_model)


# ---- 5. the prompt estimate counts what the runtime counts -------------------------------------------


TOOLED = """
type Card = { holder: str, last4: str, expires: str, network: str }
tool lookup_card(customer_id: str, include_expired: bool) -> Card { effect: read, bind: python("m:f") }
tool block_card(customer_id: str, reason: str) -> str { effect: write, idempotent: true, bind: python("m:g") }
agent clerk(q: str) -> Card {
  model: mini
  tools: [lookup_card, block_card]
  budget: { tokens: TOKENS, steps: 2, tool_calls: 2 }
  prompt: "Help: {q}"
}
"""


def runtime_prompt_tokens(source: str, agent: str) -> int:
    from vox.runtime.executor.agent import AgentCall
    from vox.runtime.tokens import count_request

    plan = lower_plan(check_source("t.vox", source))
    run = SimpleNamespace(plan=plan, run_id="r", labels=SimpleNamespace(on=False))
    call = AgentCall(run, plan.agents[agent], {"q": ""}, scope=None, step="s")
    model = plan.models[plan.agents[agent].model]
    request = call.request(call.opening(), model)
    return count_request(model.model_id, "openai", request.messages, request.tools, request.output_schema)


def test_the_prompt_estimate_counts_tools_and_the_output_schema():
    fits = PRELUDE + TOOLED.replace("TOKENS", "5_000")
    counted = runtime_prompt_tokens(fits, "clerk")
    assert counted > 150  # the tool definitions and the schema, not the 9 bytes of text
    # the cap the old estimate accepted (text only: 3 tokens + 1_000 for the reply) is refused now
    assert codes(TOOLED.replace("TOKENS", "1_010")) == ["V2003"]
    d = only(TOOLED.replace("TOKENS", "1_010"))
    estimate = int(d.fix.edits[0].new_text.replace("_", "")) - 1_000
    # the estimate is of the same parts: within a third of the runtime's exact count
    assert 0.66 * counted <= estimate <= 1.34 * counted, (estimate, counted)
    assert codes(TOOLED.replace("TOKENS", f"{estimate + 1_000:_}")) == []


def test_compiler_and_runtime_share_the_request_overheads():
    from vox.compiler import requests
    from vox.runtime import tokens

    # The lead switches runtime/tokens.py to compiler/requests.py; until then the tables must agree.
    ours = {k: (v.per_message, v.per_request, v.per_tool, v.tools_preamble) for k, v in requests.OVERHEADS.items()}
    theirs = {k: (v.per_message, v.per_request, v.per_tool, v.tools_preamble) for k, v in tokens.OVERHEADS.items()}
    assert ours == theirs
    assert tokens._json({"b": 1, "a": "é"}) == requests.schema_json({"b": 1, "a": "é"})


# ---- 6. cache writes ------------------------------------------------------------------------------------


CACHED = """
provider anthropic = anthropic { key: env("ANTHROPIC_API_KEY") }
model sonnet = anthropic/"claude-sonnet-4-5" {
  context: 200_000
  max_output: 1_000
  price: { input: $3, output: $15, cached_input: $0.30, cache_write: $3.75 }
}
agent a(q: str) -> str {
  model: sonnet
  budget: { tokens: 11_000, steps: 2 }
  prompt: "{q}"
}
"""


def test_cache_write_prices_reach_the_plan_and_the_bound():
    result = check_source("t.vox", CACHED)
    assert result.ok
    assert lower_plan(result).models["sonnet"].price.cache_write_micros == 3_750_000
    # 2 calls × 4 attempts × 1_000 output tokens at $15, the other 3_000 at the dearer of input ($3)
    # and cache write ($3.75), and a micro-dollar of rounding per attempt
    assert result.analysis.budgets.bounds["a"].derived.cost_micros == 120_000 + 11_250 + 8
    without = check_source("t.vox", CACHED.replace(", cache_write: $3.75", ""))
    assert without.analysis.budgets.bounds["a"].derived.cost_micros == 120_000 + 9_000 + 8


def test_one_call_must_afford_its_prompt_at_the_cache_write_price():
    body = CACHED.replace("tokens: 11_000, steps: 2", "cost: $0.015, steps: 2")
    # 1_000 output tokens at $15 alone are $0.015: the prompt's tokens tip it over at either price
    assert [d.code for d in check_source("t.vox", body).diagnostics] == ["V2003"]


# ---- 7. a `let`-bound list literal bounds a loop --------------------------------------------------


def test_a_let_bound_list_literal_bounds_its_loop():
    body = 'flow f() -> list[str] {\n  let qs = ["a", "b", "c"]\n  return for q in qs { cheap(q: q) }\n}\n'
    assert bounds(body)["f"].derived.cost_micros == 3 * 10_000
    # and through a bounded loop's result: at most 2 elements
    body2 = ('flow f(xs: list[str]) -> list[str] {\n  let firsts = for x in xs max 2 { x }\n'
             '  return for q in firsts { cheap(q: q) }\n}\n')
    assert bounds(body2)["f"].derived.cost_micros == 2 * 10_000
    # `max` and the literal: the smaller wins
    body3 = 'flow f() -> list[str] {\n  let qs = ["a", "b", "c"]\n  return for q in qs max 5 { cheap(q: q) }\n}\n'
    assert bounds(body3)["f"].derived.cost_micros == 3 * 10_000


def test_a_name_of_unknown_length_is_still_a_loop_without_max():
    assert codes('flow f(qs: list[str]) -> list[str] {\n  return for q in qs { cheap(q: q) }\n}\n') == ["V2002"]


def test_same_named_bindings_in_two_branches_keep_their_own_lengths():
    body = """flow f(c: bool) -> int {
  if c {
    let qs = ["a"]
    let r = for q in qs { cheap(q: q) }
  } else {
    let qs = ["a", "b", "c", "d"]
    let r = for q in qs { cheap(q: q) }
  }
  return 1
}
"""
    assert bounds(body)["f"].derived.cost_micros == 4 * 10_000


# ---- 8. a cost cap bounds tokens -----------------------------------------------------------------------


def test_a_cost_cap_on_a_priced_agent_bounds_its_tokens():
    body = 'agent spender(q: str) -> str { model: mini, budget: { cost: $0.03 }, prompt: "{q}" }\n'
    b = bounds(body)
    assert b["spender"].bound.tokens == 30_000 * 1_000_000 // 150_000  # at $0.15 per million, the cheapest
    flow = 'flow f() -> str {\n  budget: { tokens: 300_000 }\n  return spender(q: "x")\n}\n'
    assert codes(body + flow) == []
    assert codes(body + flow.replace("300_000", "100_000")) == ["V2005"]


def test_a_free_model_or_one_without_a_price_leaves_tokens_unbounded():
    body = ('model local = openai/"l" { context: 8_000, price: free }\n'
            'agent a(q: str) -> str { model: mini, fallback: [local], budget: { cost: $0.03 }, prompt: "{q}" }\n'
            'flow f() -> str {\n  budget: { tokens: 300_000 }\n  return a(q: "x")\n}\n')
    assert codes(body) == ["V2007"]


# ---- 9. gates: what each protocol can provide ---------------------------------------------------------


def test_logprobs_on_an_anthropic_model_is_refused():
    body = ('provider claude = anthropic { key: env("ANTHROPIC_API_KEY") }\n'
            'model sonnet = claude/"claude-sonnet-4-5" { context: 200_000, capabilities: [tools, logprobs] }\n')
    assert diags(body) == [("V5007", "logprobs")]
    fix = only(body).fix
    text = PRELUDE + body
    edit = fix.edits[0]
    assert (text[:edit.span.start] + edit.new_text + text[edit.span.end:]).count("[tools]") == 1


def test_a_model_that_refuses_logprobs_says_so():
    body = ('model o4 = openai/"o4-mini" { context: 200_000, capabilities: [tools, no_logprobs] }\n'
            'gate sure(s: str) { check confidence >= 0.5 else abstain }\n'
            'agent a(q: str) -> str { model: o4, gates: [sure], prompt: "{q}" }\n')
    d = only(body)
    assert d.code == "V5001" and any("refuses log-probabilities" in n for n in d.notes)
    both = 'model o4 = openai/"o4-mini" { context: 200_000, capabilities: [logprobs, no_logprobs] }\n'
    assert diags(both) == [("V5008", "logprobs")]
    plan = lower_plan(check_source("t.vox", PRELUDE + body.split("gate")[0]))
    assert "no_logprobs" in plan.models["o4"].capabilities


def test_the_reference_program_still_checks_cleanly():
    root = pathlib.Path(__file__).resolve().parent.parent
    for path in sorted((root / "examples").glob("*.vox")):
        result = check_source(str(path), path.read_text())
        assert result.ok and not result.diagnostics, (path.name, [d.code for d in result.diagnostics])


# =====================================================================================================
# The runtime half (issue 11): the budget monitor, and the budget classes the compiler and the
# runtime must agree on, each run on the simulator.
# =====================================================================================================

WORKS = '''
import json, os, pathlib, time

def _bump(name):
    path = pathlib.Path(os.environ["WORKS"])
    counts = json.loads(path.read_text()) if path.exists() else {}
    counts[name] = counts.get(name, 0) + 1
    path.write_text(json.dumps(counts))
    return counts[name]

def tick(q):
    _bump("tick")
    return q

def slow(q):
    _bump("slow")
    time.sleep(0.1)
    return q

def flaky(q):
    if _bump("flaky") < 3:
        raise RuntimeError("not yet")
    return q

def stuck(q):
    _bump("stuck")
    time.sleep(0.3)
    return q
'''

MONITORED = """
provider sim = sim
model small = sim/"sim-small" {
  context: 16_000
  max_output: 200
  price: { input: $1, output: $2 }
  capabilities: [tools, logprobs, json_schema]
}
tool tick(q: str) -> str { effect: read, cost: $0.001, timeout: 100ms, bind: python("works:tick") }
tool slow(q: str) -> str { effect: read, timeout: 1s, bind: python("works:slow") }
tool flaky(q: str) -> str { effect: read, timeout: 100ms, retries: 2, bind: python("works:flaky") }
agent say(q: str) -> str {
  model: small
  budget: { cost: $0.01, steps: 2 }
  prompt: "Say {q}."
}
flow one(q: str) -> str {
  return say(q: q)
}
flow inner(q: str) -> str {
  let a = tick(q: q)
  return say(q: a)
}
flow outer(q: str) -> str {
  return inner(q: q)
}
flow ticks() -> list[str] {
  return for q in ["a", "b", "c"] max 3 { tick(q: q) }
}
flow slowly(q: str) -> str {
  let a = slow(q: q)
  return slow(q: a)
}
flow retried(q: str) -> str {
  let a = flaky(q: q)
  return tick(q: a)
}
"""


@pytest.fixture
def works(tmp_path, monkeypatch):
    (tmp_path / "works.py").write_text(WORKS)
    monkeypatch.setenv("WORKS", str(tmp_path / "works.json"))
    monkeypatch.delitem(sys.modules, "works", raising=False)
    return tmp_path


def works_done(folder) -> dict:
    path = folder / "works.json"
    return json.loads(path.read_text()) if path.exists() else {}


def checked(folder, text: str = MONITORED):
    result = check_source(str(folder / "prog.vox"), text)
    assert result.ok, [(d.code, d.message) for d in result.errors]
    return result


def run_options(folder, **more) -> RunOptions:
    values = dict(durable=False, state_dir=str(folder / ".vox"), simulate="auto", base_dir=str(folder),
                  env={"VOX_RECEIPT_KEY": "test-key"})
    values.update(more)
    return RunOptions(**values)


def with_bound(plan, flow: str, **values):
    """``plan`` with the bound of ``flow`` changed: a stand-in for a compiler that got it wrong."""
    f = plan.flows[flow]
    bound = f.bound.model_copy(update={"bound": f.bound.bound.model_copy(update=values)})
    return plan.model_copy(update={"flows": {**plan.flows, flow: f.model_copy(update={"bound": bound})}})


async def sim_stats(rt: Runtime) -> dict:
    response = await rt.http.get(rt.sim_url + "/_sim/stats")
    return response.json()


async def run_kept(rt: Runtime, flow: str, raw: dict, decisions: dict | None = None, **spec) -> tuple:
    """Run ``flow`` and keep the :class:`Run`, to look at its root scope afterwards; ``decisions``
    are a person's, given up front (step → approved)."""
    s = rt.spec(flow, raw, **spec)
    if s.scripts:
        await rt.install_scripts(s.run_id, s.scripts)
    run = Run(rt.plan, rt.services(s, NoJournal(rt.store.run), decisions), s.run_id)
    return run, await execute(run, flow, raw)


# ---- the monitor ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_root_scope_is_capped_by_the_entry_flows_bound(works):
    result = checked(works)
    bound = result.analysis.budgets.bounds["outer"].bound
    async with Runtime(lower_plan(result), run_options(works)) as rt:
        run, outcome = await run_kept(rt, "outer", {"q": "hi"})
    assert outcome.ok, outcome.error
    assert run.root.bound_of == "outer"
    assert run.root.caps == {d: getattr(bound, d) for d in ("cost_micros", "tokens", "model_calls", "tool_calls")
                             if getattr(bound, d) is not None}
    assert all(outcome.spent[d] <= cap for d, cap in run.root.caps.items())


@pytest.mark.anyio
async def test_a_call_past_the_proven_bound_is_refused_before_it_is_sent_as_a_compiler_bug(works):
    plan = with_bound(lower_plan(checked(works)), "one", cost_micros=100)
    async with Runtime(plan, run_options(works)) as rt:
        before = (await sim_stats(rt))["requests"]
        outcome = await rt.run("one", {"q": "hi"})
        after = (await sim_stats(rt))["requests"]
    assert outcome.status == "failed" and outcome.error["kind"] == "bound_broken"
    message = outcome.error["message"]
    assert "the compiler's bound for flow `one` was $0.0001 of cost" in message
    assert "starting agent say (its `cost` cap) would bring the run to $0.01" in message  # held when it starts
    assert "this is a bug in voxc's budget analysis, please report it" in message
    assert after == before and outcome.spent["cost_micros"] == 0  # nothing was sent, nothing spent


@pytest.mark.anyio
async def test_the_monitor_counts_every_dimension(works):
    plan = with_bound(lower_plan(checked(works)), "ticks", tool_calls=2)
    async with Runtime(plan, run_options(works)) as rt:
        outcome = await rt.run("ticks", {})
    assert outcome.error["kind"] == "bound_broken"
    assert "bound for flow `ticks` was 2 tool calls, but a call of `tick` would bring the run to 3 tool calls" \
        in outcome.error["message"]
    assert works_done(works) == {"tick": 2}  # the third call never ran
    assert outcome.spent["tool_calls"] == 2


@pytest.mark.anyio
async def test_a_declared_cap_refuses_first_the_bound_only_what_the_caps_allow(works):
    # say's cost cap is reserved whole when it starts; within it the monitor never decides
    plan = with_bound(lower_plan(checked(works)), "one", tokens=10)
    async with Runtime(plan, run_options(works)) as rt:
        outcome = await rt.run("one", {"q": "hi"})
    assert outcome.error["kind"] == "bound_broken" and "was 10 tokens, but" in outcome.error["message"]
    tight = MONITORED.replace("budget: { cost: $0.01, steps: 2 }", "budget: { tokens: 300, steps: 2 }")
    async with Runtime(lower_plan(checked(works, tight)), run_options(works)) as rt:
        outcome = await rt.run("one", {"q": "word " * 200})
    assert outcome.error["kind"] == "budget"  # the agent's own cap: the program's business, not a bug


@pytest.mark.anyio
async def test_nested_flows_are_bounded_by_the_entry_flow_not_by_their_own_bound(works):
    plan = lower_plan(checked(works))
    plan = with_bound(plan, "inner", cost_micros=0, tokens=0, model_calls=0, tool_calls=0, wall_ms=0)
    async with Runtime(plan, run_options(works)) as rt:
        outcome = await rt.run("outer", {"q": "hi"})
    assert outcome.ok, outcome.error


@pytest.mark.anyio
async def test_a_call_that_starts_after_the_wall_bound_is_refused(works):
    plan = lower_plan(checked(works))
    assert plan.flows["slowly"].bound.bound.wall_ms == 2_000
    async with Runtime(with_bound(plan, "slowly", wall_ms=50), run_options(works)) as rt:
        outcome = await rt.run("slowly", {"q": "hi"})
    assert outcome.error["kind"] == "bound_broken"
    assert "was 50 ms of wall time, but a call of `slow` would start after" in outcome.error["message"]
    assert works_done(works) == {"slow": 1}


def test_spend_past_the_bound_is_an_overshoot_of_kind_bound():
    root = BudgetScope.bounded("run r", "f", {"tokens": 100})
    reservation = root.open_child("agent a").reserve(tokens=90, model_calls=1, what="a call")
    reservation.settle(cost_micros=0, tokens=150)  # a provider reported more than was counted
    assert ("bound", "run r", "tokens", 100, 150) in [(o.kind, o.scope, o.dimension, o.reserved, o.actual)
                                                      for o in root.log.overshoots]
    with pytest.raises(BoundExceeded):
        root.reserve(tokens=1, what="the next call")
    assert not root.fits(tokens=1)


@pytest.mark.anyio
async def test_the_monitor_refuses_before_the_tenant_ledger_or_the_rate_limiter_is_touched(works):
    from vox.runtime.fleet import RateLimiter, SpendLedger

    text = MONITORED + "budget tenant { cost: $5 per day, requests: 60 per minute }\n"
    plan = with_bound(lower_plan(checked(works, text)), "inner", tokens=10)
    async with Runtime(plan, run_options(works)) as rt:
        outcome = await rt.run("inner", {"q": "hi"})
        usage = SpendLedger(rt.store).usage("tenant:default", "day")
        admitted = RateLimiter(rt.store).admitted("tenant:default:requests", "minute")
    assert outcome.error["kind"] == "bound_broken"
    assert outcome.spent["cost_micros"] == 1_000  # the tool call before the refused model call
    assert (usage.spent, usage.reserved) == (1_000, 0)  # settled to what was spent, never past its reservation
    assert admitted == []  # the refused model call was never admitted by the rate limiter


def test_voxc_run_exits_5_when_the_monitor_fires(capsys):
    import argparse

    from vox.cli.common import Streams
    from vox.cli.run import report
    from vox.runtime.host import RunResult

    error = {"kind": "bound_broken", "message": "the compiler's bound for flow `f` was ...", "step": None}
    args = argparse.Namespace(json=False)
    streams = Streams(sys.stdout, sys.stderr, sys.stdin)
    assert report(RunResult("r", "f", "failed", error=error), args, streams) == 5
    assert report(RunResult("r", "f", "failed", error={**error, "kind": "budget"}), args, streams) == 1
    assert "the compiler's bound for flow `f`" in capsys.readouterr().err


# ---- budget classes: the compiler's bound and the runtime agree -----------------------------------


CLASSES = """
provider sim = sim
provider claude = anthropic { key: env("VOX_TEST_NO_SUCH_KEY") }
model small = sim/"sim-small" {
  context: 16_000
  max_output: 200
  price: { input: $1, output: $2 }
  capabilities: [tools, logprobs, json_schema]
}
model tiny = sim/"sim-tiny" {
  context: 2_000
  max_output: 1_500
  price: { input: $1, output: $2 }
  capabilities: [json_schema]
}
model cached = claude/"claude-sim" {
  context: 16_000
  max_output: 200
  price: { input: $1, output: $2, cached_input: $0.10, cache_write: $4 }
  capabilities: [tools, json_schema]
}
tool tick(q: str) -> str { effect: read, cost: $0.001, timeout: 100ms, bind: python("works:tick") }
tool flaky(q: str) -> str { effect: read, timeout: 100ms, retries: 2, bind: python("works:flaky") }
gate exact(s: str) {
  check s == "ok" else retry(0)
}
agent strict(q: str) -> str {
  model: small
  gates: [exact]
  budget: { steps: 1, cost: $0.01 }
  prompt: "Say ok to {q}."
}
agent spender(q: str) -> str {
  model: small
  tools: [tick]
  budget: { cost: $0.003 }
  prompt: "Spend on {q}."
}
agent retried(q: str) -> str {
  model: tiny
  budget: { steps: 1 }
  prompt: "Answer {q}."
}
agent writer(q: str) -> str {
  model: cached
  budget: { steps: 2 }
  system: "You write short answers. Always answer in one sentence, in plain English."
  prompt: "Answer {q}."
}
flow strictly(q: str) -> str {
  return strict(q: q)
}
flow spend(q: str) -> str {
  return spender(q: q)
}
flow backoff(q: str) -> str {
  let a = flaky(q: q)
  return tick(q: a)
}
flow resend(q: str) -> str {
  return retried(q: q)
}
flow write(q: str) -> str {
  return writer(q: q)
}
"""


FIXED_LOOP = CLASSES + """
flow ticks() -> list[str] {
  let qs = ["a", "b", "c"]
  return for q in qs { tick(q: q) }
}
"""


class Events(list):
    """A run's events (truthy when empty: the runtime takes a falsy sink for none)."""

    def __bool__(self) -> bool:
        return True

    def __call__(self, event: dict) -> None:
        self.append(event)

    def of(self, kind: str) -> list[dict]:
        return [e for e in self if e["event"] == kind]


class FastRetries:
    """A runtime whose providers retry at once (the provider's waits are not what is tested)."""

    def __init__(self, plan, folder, events=None):
        self.rt = Runtime(plan, run_options(folder), events)

    async def __aenter__(self) -> Runtime:
        from vox.runtime.providers import RetryPolicy

        rt = await self.rt.__aenter__()
        for provider in rt.providers.values():
            provider.retry = RetryPolicy(base_s=0.001, cap_s=0.002, max_retry_after_s=1.0)
        return rt

    async def __aexit__(self, *exc):
        await self.rt.__aexit__(*exc)


def test_retry_0_retries_zero_times_in_the_compiler():
    # one attempt and no retry fit `steps: 1`; `retry(1)` would need 2
    assert codes(CLASSES, prelude="") == []
    assert "V5005" in codes(CLASSES.replace("retry(0)", "retry(1)"), prelude="")


@pytest.mark.anyio
async def test_retry_0_retries_zero_times_at_run_time(works):
    events = Events()
    async with Runtime(lower_plan(checked(works, CLASSES)), run_options(works), events) as rt:
        outcome = await rt.run("strictly", {"q": "x"}, scripts={"strict": [{"reply": "no"}, {"reply": "ok"}]})
    assert outcome.error["kind"] == "gate" and "after 0 retries" in outcome.error["message"]
    assert len(events.of("model_start")) == 1 and outcome.spent["model_calls"] == 1
    assert events.of("gate_retry") == []


@pytest.mark.anyio
async def test_a_let_bound_list_literal_is_a_bounded_loop_at_run_time_too(works):
    result = checked(works, FIXED_LOOP)
    bound = result.analysis.budgets.bounds["ticks"].bound
    assert (bound.cost_micros, bound.tool_calls) == (3_000, 3)
    async with Runtime(lower_plan(result), run_options(works)) as rt:
        outcome = await rt.run("ticks", {})
    assert outcome.ok, outcome.error
    assert outcome.output == ["a", "b", "c"] and works_done(works) == {"tick": 3}
    assert (outcome.spent["cost_micros"], outcome.spent["tool_calls"]) == (3_000, 3)


@pytest.mark.anyio
async def test_a_cost_cap_bounds_the_tokens_the_monitor_holds_the_run_to(works):
    result = checked(works, CLASSES)
    bound = result.analysis.budgets.bounds["spend"].bound
    assert bound.tokens == 3_000 * 1_000_000 // 1_000_000  # $0.003 at $1 per million, the cheapest token
    call = {"call": {"tool": "tick", "args": {"q": "x"}}}
    async with Runtime(lower_plan(result), run_options(works)) as rt:
        run, outcome = await run_kept(rt, "spend", {"q": "x"}, scripts={"spender": [call] * 50})
    assert run.root.caps["tokens"] == bound.tokens
    # the agent's own cost cap stops it, never the monitor: what the cap buys fits the token bound
    assert outcome.error["kind"] == "budget" and "`cost` cap" in outcome.error["message"]
    assert 0 < outcome.spent["tokens"] <= bound.tokens


@pytest.mark.anyio
async def test_the_wall_bound_counts_the_waits_between_tool_retries(works):
    from vox.compiler.analysis.budgets import TOOL_RETRY_DELAY_MS

    result = checked(works, CLASSES)
    bound = result.analysis.budgets.bounds["backoff"].bound.wall_ms
    assert bound == 3 * 100 + TOOL_RETRY_DELAY_MS * (1 + 2) + 100  # three attempts, two waits, then `tick`
    plan = lower_plan(result)
    async with Runtime(plan, run_options(works)) as rt:
        started = time.monotonic()
        outcome = await rt.run("backoff", {"q": "x"})
        took = time.monotonic() - started
    assert outcome.ok, outcome.error  # `tick` starts after the waits, inside the bound
    assert works_done(works) == {"flaky": 3, "tick": 1} and took >= 0.6
    (works / "works.json").unlink()
    async with Runtime(with_bound(plan, "backoff", wall_ms=3 * 100 + 100), run_options(works)) as rt:
        outcome = await rt.run("backoff", {"q": "x"})  # the bound without the waits
    assert outcome.error["kind"] == "bound_broken" and "a call of `tick` would start after" in outcome.error["message"]


def test_the_compiler_and_the_runtime_share_the_retry_constants():
    from vox.compiler.analysis import budgets
    from vox.runtime.executor import tools
    from vox.runtime.providers import RetryPolicy, retry

    assert budgets.MODEL_ATTEMPTS == retry.MAX_ATTEMPTS == RetryPolicy().max_attempts
    assert budgets.TOOL_RETRY_DELAY_MS == tools.RETRY_DELAY_MS


@pytest.mark.anyio
async def test_every_billed_attempt_of_a_model_call_is_reserved_settled_and_bounded(works):
    result = checked(works, CLASSES)
    bound = result.analysis.budgets.bounds["resend"].bound
    assert bound.tokens == 1 * 4 * 2_000  # a step, four attempts, each at most a context window
    events = Events()
    async with FastRetries(lower_plan(result), works, events) as rt:
        faults = [{"kind": "status", "status": 500, "count": 3, "agent": "retried"}]
        response = await rt.http.post(rt.sim_url + "/_sim/faults", json={"faults": faults})
        assert response.status_code < 300
        run, outcome = await run_kept(rt, "resend", {"q": "x"})
    assert outcome.ok, outcome.error
    [end] = events.of("model_end")
    assert end["attempts"] == 4 and [c["charged"] for c in outcome.charges] == ["reserved"] * 3
    assert outcome.spent["model_calls"] == 1
    # four attempts of one step: more than one context window, which is all the old bound allowed
    assert 2_000 < outcome.spent["tokens"] <= bound.tokens
    assert outcome.spent["cost_micros"] <= bound.cost_micros and outcome.overshoots == []


def test_one_attempt_is_priced_at_its_cache_write_price_and_rounded_once():
    from vox.compiler.plan.model import Price
    from vox.runtime.providers.messages import Usage
    from vox.runtime.tokens import reservation_cost, usage_cost

    price = Price(input_micros=1_000_000, output_micros=2_000_000, cached_input_micros=100_000,
                  cache_write_micros=4_000_000)
    usage = Usage(input_tokens=1_000, output_tokens=100, cached_input_tokens=300, cache_creation_tokens=500)
    assert usage_cost(price, usage) == 200 + 30 + 2_000 + 200
    assert reservation_cost(price, 1_000, 100) == 4_000 + 200 >= usage_cost(price, usage)
    cheap = Price(input_micros=150_000, output_micros=600_000, cached_input_micros=75_000)
    # 3 uncached, 3 cached and 1 output token: 0.45 + 0.225 + 0.6 micro-dollars, rounded up once
    assert usage_cost(cheap, Usage(input_tokens=6, output_tokens=1, cached_input_tokens=3)) == 2
    assert usage_cost(cheap, Usage(input_tokens=6, output_tokens=1, cached_input_tokens=3)) \
        <= reservation_cost(cheap, 6, 1)


@pytest.mark.anyio
async def test_cache_writes_are_billed_and_reserved_at_the_cache_write_price(works):
    from vox.runtime.providers.messages import Usage
    from vox.runtime.tokens import usage_cost

    events = Events()
    plan = lower_plan(checked(works, CLASSES))
    async with Runtime(plan, run_options(works), events) as rt:
        outcome = await rt.run("write", {"q": "x"})
    assert outcome.ok, outcome.error
    [start], [end] = events.of("model_start"), events.of("model_end")
    usage = Usage(**end["usage"])
    assert usage.cache_creation_tokens > 0  # the system prompt was written to the cache
    assert end["cost"] == usage_cost(plan.models["cached"].price, usage)
    assert end["cost"] > usage.input_tokens * 1 + usage.output_tokens * 2  # dearer than at the input price
    assert start["reserved"] >= end["cost"] and outcome.overshoots == []


@pytest.mark.anyio
async def test_a_call_that_cannot_fit_its_models_context_is_never_sent(works):
    """The token bound counts every attempt as at most a context window (a provider refuses a
    longer request, unbilled). A prompt filled in at run time can be longer: such a call must not
    be sent and reserved, or its retries take the run past the bound (the monitor fires)."""
    events = Events()
    async with FastRetries(lower_plan(checked(works, CLASSES)), works, events) as rt:
        faults = [{"kind": "status", "status": 500, "count": 3, "agent": "retried"}]
        await rt.http.post(rt.sim_url + "/_sim/faults", json={"faults": faults})
        outcome = await rt.run("resend", {"q": "word " * 3_000})  # about 3_000 tokens into a 2_000 context
        stats = await sim_stats(rt)
    assert outcome.error["kind"] == "model" and "2,000-token context" in outcome.error["message"]
    assert stats["agents"].get("retried", 0) == 0 and events.of("model_start") == []
    assert outcome.spent["cost_micros"] == outcome.spent["tokens"] == 0


@pytest.mark.anyio
async def test_the_monitor_never_cuts_off_a_call_in_flight(works):
    # the second `slow` starts at about 100 ms, inside a 150 ms bound, and ends past it: it finishes
    plan = with_bound(lower_plan(checked(works)), "slowly", wall_ms=150)
    async with Runtime(plan, run_options(works)) as rt:
        outcome = await rt.run("slowly", {"q": "hi"})
    assert outcome.ok, outcome.error
    assert works_done(works) == {"slow": 2}


ROUNDED = """
model penny = openai/"gpt-4o-mini" { context: 128_000, max_output: 1, price: { input: $0.15, output: $0.15 } }
agent a(q: str) -> str { model: penny, budget: { tokens: 1_000, steps: 2 }, prompt: "{q}" }
"""


def test_the_bound_covers_each_attempt_rounded_up_on_its_own():
    from vox.compiler.units import cost_of_tokens

    bound = bounds(ROUNDED)["a"].bound.cost_micros
    # 1_000 tokens at $0.15 per million are 150 micro-dollars in one sum; spent as 8 attempts
    # (2 steps × 4) of 125 tokens, each rounded up on its own, they are 8 × 19
    assert cost_of_tokens(1_000, 150_000) == 150
    worst = 8 * cost_of_tokens(125, 150_000)
    assert worst == 152 and bound >= worst
    # 8 output tokens (one per attempt), the other 992 as input, and a micro-dollar per attempt
    assert bound == cost_of_tokens(8, 150_000) + cost_of_tokens(992, 150_000) + 8


def test_a_prompt_token_may_cost_its_cached_input_price_when_that_is_the_dearest():
    odd = ROUNDED.replace("price: { input: $0.15, output: $0.15 }",
                          "price: { input: $0.15, output: $0.15, cached_input: $1 }")
    # a cached read at $1 per million is dearer than output: every token may be billed at $1
    assert bounds(odd)["a"].bound.cost_micros == 1_000 + 8


@pytest.mark.parametrize("member, waits", [
    ("effect: write, approval: human, idempotent: true", True),  # waits for its approval
    ("effect: write", True),  # timed out: whether to call it again is a person's decision
    ("effect: external, idempotent: true", False),
    ("effect: read", False),
])
def test_a_call_that_may_wait_for_a_person_bounds_no_wall_time(member, waits):
    body = (f'tool t(id: str) -> str {{ {member}, timeout: 1s, bind: python("m:t") }}\n'
            'flow f() -> str {\n  return t(id: "x")\n}\n'
            'flow g() -> str {\n  budget: { wall: 5s }\n  return t(id: "x")\n}\n')
    b = bounds(body)
    assert b["f"].bound.wall_ms == (None if waits else 1_000)  # a person may take a day
    assert b["g"].bound.wall_ms == 5_000  # a `wall` cap around it still bounds it


def test_a_write_that_may_be_called_again_after_its_timeout_counts_twice_in_a_flow():
    body = ('tool pay(id: str) -> str { effect: write, cost: $0.01, retries: 1, timeout: 1s, bind: python("m:t") }\n'
            'tool paid(id: str) -> str { effect: write, idempotent: true, cost: $0.01, retries: 1, timeout: 1s, '
            'bind: python("m:t") }\n'
            'flow f() -> str {\n  return pay(id: "x")\n}\n'
            'flow g() -> str {\n  return paid(id: "x")\n}\n')
    b = bounds(body)
    # a person may have a timed-out `pay` called again: `after_unknown_outcome` reserves it afresh
    assert (b["f"].bound.cost_micros, b["f"].bound.tool_calls) == (2 * 2 * 10_000, 2)
    assert (b["g"].bound.cost_micros, b["g"].bound.tool_calls) == (2 * 10_000, 1)  # idempotent: retried, not repeated


@pytest.mark.anyio
async def test_a_write_called_again_after_its_timeout_stays_inside_the_bound(works):
    text = MONITORED + """
tool pay(q: str) -> str { effect: write, cost: $0.01, timeout: 100ms, bind: python("works:stuck") }
flow charge(q: str) -> str {
  return pay(q: q)
}
"""
    result = checked(works, text)
    assert result.analysis.budgets.bounds["charge"].bound.tool_calls == 2
    async with Runtime(lower_plan(result), run_options(works)) as rt:
        # a person has it called again after it timed out (the second call times out too)
        run, outcome = await run_kept(rt, "charge", {"q": "x"}, decisions={"charge.s0.pay#timeout": True})
    assert outcome.error["kind"] == "tool_timeout", outcome.error
    assert works_done(works) == {"stuck": 2}
    assert (outcome.spent["tool_calls"], outcome.spent["cost_micros"]) == (2, 20_000)
    (works / "works.json").unlink()
    plan = with_bound(lower_plan(result), "charge", tool_calls=1, cost_micros=10_000)  # one call, as before
    async with Runtime(plan, run_options(works)) as rt:
        run, outcome = await run_kept(rt, "charge", {"q": "x"}, decisions={"charge.s0.pay#timeout": True})
    assert outcome.error["kind"] == "bound_broken" and works_done(works) == {"stuck": 1}
