"""Differential budget soundness: what the compiler proves against what the runtime spends.

Hypothesis writes small Vox programs (agents with and without caps, priced models with fallbacks,
judges and retries in gates, tools with costs and retries, `if`, `for ... max N`, `par`, nested
flows, recursion with `depth`), checks each with the compiler, and runs every one that checks
cleanly on the real local simulator, scripted towards its worst case: the longest outputs a
model may write, tool calls until a cap refuses one, gates that fail so that they retry, judges
that reject, provider errors on every attempt but the last (so every retry is made and billed),
and primaries that fail so every fallback is taken.

For every run: the runtime's budget monitor never fires (a refusal would mean the compiler's
bound is wrong), and what the run spent (cost, tokens, model calls, tool calls) never exceeds
the bound the compiler proved for its flow. ``-s`` prints how many programs and runs were covered.
"""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vox.compiler.api import check_source
from vox.compiler.plan import PlanError, lower_plan

# ---- the tools the programs bind --------------------------------------------------------------------

TOOLS_MODULE = '''
import threading

MODE = {}  # tool -> "ok" | "flaky" (fails every attempt but the last) | "fail"
RETRIES = {}  # tool -> its `retries`
_SEEN = {}
_LOCK = threading.Lock()


def _attempt(name, q, idempotency_key):
    with _LOCK:
        n = _SEEN[idempotency_key] = _SEEN.get(idempotency_key, 0) + 1
    mode = MODE.get(name, "ok")
    if mode == "fail" or (mode == "flaky" and n <= RETRIES.get(name, 0)):
        raise RuntimeError(f"{name} failed (attempt {n})")
    return f"{name}:{q}"

''' + "".join(f'''
def t{i}(q, idempotency_key):
    return _attempt("t{i}", q, idempotency_key)
''' for i in range(3))

# ---- the programs ------------------------------------------------------------------------------------

PRICES = ["$0.15", "$0.6", "$1", "$2.5", "$3", "$15", "$0.075"]
CACHED = ["$0.015", "$0.3", "$0.05"]
WRITES = ["$3.75", "$1.25", "$0.2"]


@dataclass
class Program:
    source: str
    agents: dict[str, dict] = field(default_factory=dict)  # name → {tools, gate, chain}
    tools: dict[str, int] = field(default_factory=dict)  # name → retries
    entry: str = "main"


@st.composite
def programs(draw) -> Program:
    lines = ['provider sim = sim', 'provider claude = anthropic { key: env("VOX_TEST_NO_SUCH_KEY") }']
    models = []
    on_anthropic = set()  # no log-probabilities or samples there: `sure` and `agree` cannot check them
    for i in range(draw(st.integers(1, 3))):
        anthropic = draw(st.booleans())
        if anthropic:
            on_anthropic.add(f"m{i}")
        context = draw(st.sampled_from([4_000, 8_000, 16_000]))
        max_output = draw(st.sampled_from([40, 120, 300]))
        price = [f"input: {draw(st.sampled_from(PRICES))}", f"output: {draw(st.sampled_from(PRICES))}"]
        if draw(st.booleans()):
            price.append(f"cached_input: {draw(st.sampled_from(CACHED))}")
        if anthropic and draw(st.booleans()):
            price.append(f"cache_write: {draw(st.sampled_from(WRITES))}")
        model_id = "claude-sim" if anthropic else draw(st.sampled_from(["sim-small", "gpt-4o-mini"]))
        caps = "[tools, json_schema]" if anthropic else "[tools, json_schema, logprobs, sampling]"
        lines.append(f'model m{i} = {"claude" if anthropic else "sim"}/"{model_id}" {{ context: {context}, '
                     f'max_output: {max_output}, price: {{ {", ".join(price)} }}, capabilities: {caps} }}')
        models.append(f"m{i}")
    tools: dict[str, int] = {}
    for i in range(draw(st.integers(0, 3))):
        retries = draw(st.integers(0, 2))
        cost = draw(st.sampled_from(["", "cost: $0.001, ", "cost: $0.0005, "]))
        lines.append(f'tool t{i}(q: str) -> str {{ effect: read, {cost}timeout: 2s, retries: {retries}, '
                     f'bind: python("difftools:t{i}") }}')
        tools[f"t{i}"] = retries
    prog = Program("", tools=tools)
    gates = []
    if draw(st.booleans()):
        lines.append(f'gate exact(s: str) {{ check s == "ok" else retry({draw(st.integers(0, 2))}) }}')
        gates.append("exact")
    if draw(st.booleans()):
        action = draw(st.sampled_from(["retry(1)", "fallback", "abstain"]))
        lines.append(f'gate judged(s: str) {{ check judge({draw(st.sampled_from(models))}, rubric: "Short.") '
                     f'else {action} }}')
        gates.append("judged")
    if draw(st.booleans()):  # streamed and watched: an unsure answer is stopped after 32 tokens
        lines.append(f'gate sure(s: str) {{ check confidence >= 0.9 else {draw(st.sampled_from(["retry(1)", "fallback"]))} }}')
        gates.append("sure")
    if draw(st.integers(0, 3)) == 0:  # extra samples
        lines.append('gate agree(s: str) { check consistency(n: 3) >= 0.6 else retry(1) }')
        gates.append("agree")
    agents = []
    for i in range(draw(st.integers(1, 3))):
        chain = draw(st.lists(st.sampled_from(models), min_size=1, max_size=3, unique=True))
        own_tools = draw(st.lists(st.sampled_from(sorted(tools)), max_size=2, unique=True)) if tools else []
        caps = []
        if draw(st.booleans()):
            caps.append(f"steps: {draw(st.integers(1, 6))}")
        if draw(st.booleans()):
            caps.append(f"tokens: {draw(st.sampled_from([3_000, 8_000, 30_000]))}")
        if draw(st.booleans()):
            caps.append(f"cost: {draw(st.sampled_from(['$0.002', '$0.01', '$0.05']))}")
        if own_tools and draw(st.booleans()):
            caps.append(f"tool_calls: {draw(st.integers(0, 3))}")
        if draw(st.integers(0, 4)) == 0:
            caps.append("wall: 20s")
        usable = [g for g in gates if not (on_anthropic & set(chain) and g in ("sure", "agree"))]
        gate = draw(st.sampled_from([None, *usable])) if usable else None
        members = [f"model: {chain[0]}"]
        if chain[1:]:
            members.append(f"fallback: [{', '.join(chain[1:])}]")
        if own_tools:
            members.append(f"tools: [{', '.join(own_tools)}]")
        if gate:
            members.append(f"gates: [{gate}]")
        if caps:
            members.append(f"budget: {{ {', '.join(caps)} }}")
        if draw(st.booleans()):
            members.append('system: "You answer briefly. Never use more words than you need to answer."')
        members.append('prompt: "Answer {q}."')
        lines.append(f"agent a{i}(q: str) -> str {{\n  " + "\n  ".join(members) + "\n}")
        agents.append(f"a{i}")
        prog.agents[f"a{i}"] = {"tools": own_tools, "gate": gate, "chain": chain}

    counter = itertools.count()
    callables = [("agent", a) for a in agents] + [("tool", t) for t in tools]

    def call(flows: list[str]) -> str:
        kind, name = draw(st.sampled_from(callables + [("flow", f) for f in flows]))
        if kind == "flow" and name == "rec":
            return f"rec(q: q, n: {draw(st.integers(0, 6))})"
        return f"{name}(q: q)"

    def body(flows: list[str], depth: int) -> list[str]:
        out = []
        for _ in range(draw(st.integers(1, 3))):
            shape = draw(st.sampled_from(["call", "call", "if", "for", "par", "let_for"] if depth < 2 else ["call"]))
            v = f"v{next(counter)}"
            if shape == "call":
                out.append(f"let {v} = {call(flows)}")
            elif shape == "if":
                then = body(flows, depth + 1)
                orelse = body(flows, depth + 1) if draw(st.booleans()) else []
                out.append('if q == "x" {\n' + "\n".join(then) + "\n}" + (
                    " else {\n" + "\n".join(orelse) + "\n}" if orelse else ""))
            elif shape == "for":
                n = draw(st.integers(0, 3))
                out.append(f'let {v} = for x in ["a", "b", "c", "d"] max {n} {{ {call(flows).replace("q: q", "q: x")} }}')
            elif shape == "let_for":
                out.append(f'let {v}s = ["a", "b"]')
                out.append(f"let {v} = for x in {v}s {{ {call(flows).replace('q: q', 'q: x')} }}")
            elif shape == "par":
                out.append("par {\n" + "\n".join(f"let {v}p{k} = {call(flows)}" for k in range(2)) + "\n}")
        return out

    flows: list[str] = []
    if draw(st.booleans()):  # a recursive flow
        depth = draw(st.integers(1, 3))
        cap = draw(st.sampled_from(["", ", tool_calls: 40"]))  # a capped cost could never hold its own nested call
        inner = call([])
        lines.append(f"flow rec(q: str, n: int) -> str {{\n  budget: {{ depth: {depth}{cap} }}\n  let a = {inner}\n"
                     "  if n > 0 {\n    return rec(q: q, n: n - 1)\n  }\n  return \"done\"\n}")
        flows.append("rec")
    if draw(st.booleans()):  # a nested flow, with caps or without
        cap = draw(st.sampled_from(["", "  budget: { cost: $0.5 }\n", "  budget: { tool_calls: 20 }\n"]))
        lines.append("flow helper(q: str) -> str {\n" + cap + "\n".join(body(flows, 1)) + '\nreturn "helped"\n}')
        flows.append("helper")
    cap = draw(st.sampled_from(["", "  budget: { cost: $2 }\n", "  budget: { tokens: 500_000 }\n"]))
    lines.append("flow main(q: str) -> str {\n" + cap + "\n".join(body(flows, 0)) + '\nreturn "done"\n}')
    prog.source = "\n".join(lines) + "\n"
    return prog


# ---- how a run is pushed towards its worst case ------------------------------------------------------

LONG = " ".join(["word"] * 400)  # more than any model's `max_output`: the reply is cut at the limit
LONG_INPUT = " ".join(f"w{i}" for i in range(3_000))  # a prompt longer than some models' context


@st.composite
def scenarios(draw, prog: Program) -> dict:
    scripts: dict[str, list] = {}
    faults: list[dict] = []
    for name, agent in prog.agents.items():
        behaviour = draw(st.sampled_from(["plain", "long", "tools", "gate", "short", "unsure"]))
        turns: list = []
        if behaviour == "tools" and agent["tools"]:
            turns = [{"call": {"tool": draw(st.sampled_from(agent["tools"])), "args": {"q": "x"}}}] * 6
        elif behaviour == "long":
            turns = [{"reply": LONG}] * 3
        elif behaviour == "gate":
            turns = [{"reply": "no"}] * 6  # fails `exact`, so it retries
        elif behaviour == "unsure":  # fails `sure` mid-stream
            turns = [{"reply": LONG, "confidence": 0.05}] * 6
        elif behaviour == "short":
            turns = [{"reply": "ok"}] * 6
        if turns:
            scripts[name] = turns
        if agent["gate"] == "judged" and draw(st.booleans()):
            scripts[f"{name}.judge"] = [{"reply": {"pass": False, "reason": "too long"}}] * 6
        fault = draw(st.sampled_from(["none", "none", "retries", "fallback", "dead", "truncate", "malformed"]))
        if fault == "retries":  # every attempt but the last fails: each retry is made, and billed
            faults.append({"kind": "status", "status": 500, "count": 3, "agent": name})
        elif fault == "fallback":  # the first model fails on every attempt: the fallback takes over
            faults.append({"kind": "status", "status": 503, "count": 4, "agent": name, "retry_after": 0.001})
        elif fault == "dead":  # every model fails
            faults.append({"kind": "status", "status": 500, "count": 40, "agent": name})
        elif fault in ("truncate", "malformed"):
            faults.append({"kind": fault, "count": draw(st.integers(1, 2)), "agent": name})
    modes = {t: draw(st.sampled_from(["ok", "flaky", "flaky", "fail"])) for t in prog.tools}
    inputs = ["x", "y", LONG_INPUT]  # the long one cannot fit some contexts: refused, never sent
    return {"q": draw(st.sampled_from(inputs)), "scripts": scripts, "faults": faults, "modes": modes}


# ---- running them ------------------------------------------------------------------------------------

DIMENSIONS = ("cost_micros", "tokens", "model_calls", "tool_calls")
COUNTS = {"programs": 0, "checked": 0, "rejected": 0, "runs": 0, "ok": 0, "failed": 0, "seconds": 0.0,
          "monitor_fired": 0, "recursive": 0, "with_fallbacks": 0}
SPEND = {d: 0 for d in DIMENSIONS}  # the largest share of a bound a run spent, in per mille
ENDINGS: dict[str, int] = {}  # how the runs ended: ok, or the kind of their error
REJECTIONS: dict[str, int] = {}  # the first error code of each program the compiler rejected
FINDINGS: list[str] = []


RUNS_PER_PROGRAM = 2


async def run_program(prog: Program, plan, runs: list[dict], folder: str) -> list[tuple[dict, object]]:
    from vox.runtime.host import RunOptions, Runtime
    from vox.runtime.providers import RetryPolicy

    difftools = sys.modules["difftools"]
    options = RunOptions(durable=False, state_dir=folder + "/.vox", simulate="auto", base_dir=folder,
                         env={"VOX_RECEIPT_KEY": "test-key"})
    out = []
    async with Runtime(plan, options) as rt:
        for provider in rt.providers.values():  # the provider's waits are not what is tested
            provider.retry = RetryPolicy(base_s=0.0005, cap_s=0.001, max_retry_after_s=1.0)
        for k, scenario in enumerate(runs):
            run_id = f"run_{COUNTS['programs']}_{k}"
            difftools.MODE.clear()
            difftools.MODE.update(scenario["modes"])
            difftools.RETRIES.clear()
            difftools.RETRIES.update(prog.tools)
            if scenario["faults"]:
                faults = [{**f, "run": run_id} for f in scenario["faults"]]
                response = await rt.http.post(rt.sim_url + "/_sim/faults", json={"faults": faults})
                assert response.status_code < 300, response.text
            result = await rt.run(prog.entry, {"q": scenario["q"]}, run_id, scripts=scenario["scripts"])
            out.append((scenario, result))
    return out


def check_run(prog: Program, bound, scenario: dict, result) -> None:
    COUNTS["runs"] += 1
    COUNTS["ok" if result.ok else "failed"] += 1
    ending = "ok" if result.ok else (result.error or {}).get("kind", result.status)
    ENDINGS[ending] = ENDINGS.get(ending, 0) + 1
    where = f"\n{prog.source}\nscenario: {json.dumps(scenario)}\noutcome: {result.status} {result.error}"
    if result.error and result.error["kind"] == "bound_broken":
        COUNTS["monitor_fired"] += 1
        FINDINGS.append(result.error["message"])
        raise AssertionError(f"the budget monitor fired: {result.error['message']}{where}")
    for d in DIMENSIONS:
        cap = getattr(bound, d)
        if cap is None:
            continue
        spent = result.spent.get(d, 0)
        assert spent <= cap, f"spent {spent} {d}, more than the compiler's bound of {cap}{where}"
        if cap:
            SPEND[d] = max(SPEND[d], spent * 1000 // cap)
    assert not [o for o in result.overshoots if o["kind"] == "bound"], f"{result.overshoots}{where}"


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as tmp:
        with open(tmp + "/difftools.py", "w") as f:
            f.write(TOOLS_MODULE)
        sys.path.insert(0, tmp)
        sys.modules.pop("difftools", None)
        import difftools  # noqa: F401 - the module the programs' bindings load

        yield tmp
        sys.path.remove(tmp)
        sys.modules.pop("difftools", None)


# The profile's examples: each compiles a program and makes two runs on a fresh simulator (dev:
# 100 programs, the CI profile 400; about 0.1 s a program).
EXAMPLES = settings.default.max_examples


def test_the_runtime_never_spends_more_than_the_compiler_proved(folder, monkeypatch, record_property):
    import vox.runtime.executor.tools as tools

    monkeypatch.setattr(tools, "RETRY_DELAY_MS", 1)  # the waits are bounded as 200 ms × n anyway
    started = time.monotonic()

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(st.data())
    def one_program(data):
        prog = data.draw(programs(), label="program")
        COUNTS["programs"] += 1
        result = check_source(folder + "/prog.vox", prog.source)
        if not result.ok:
            COUNTS["rejected"] += 1
            code = result.errors[0].code
            REJECTIONS[code] = REJECTIONS.get(code, 0) + 1
            return
        plan = lower_plan(result)
        bound = plan.flows[prog.entry].bound.bound
        runs = [data.draw(scenarios(prog), label=f"run {k}") for k in range(RUNS_PER_PROGRAM)]
        COUNTS["checked"] += 1  # counted once its runs are drawn (a draw may end the example)
        COUNTS["recursive"] += "flow rec(" in prog.source
        COUNTS["with_fallbacks"] += "fallback: [" in prog.source
        for scenario, outcome in anyio.run(run_program, prog, plan, runs, folder):
            check_run(prog, bound, scenario, outcome)

    try:
        one_program()
    finally:
        COUNTS["seconds"] = round(time.monotonic() - started, 1)
        print(f"\nbudget differential: {COUNTS['programs']} programs generated, {COUNTS['checked']} checked "
              f"cleanly ({COUNTS['rejected']} rejected by the compiler), {COUNTS['runs']} runs "
              f"({COUNTS['ok']} ok, {COUNTS['failed']} failed), monitor fired {COUNTS['monitor_fired']} times, "
              f"{COUNTS['recursive']} recursive, {COUNTS['with_fallbacks']} with fallbacks, "
              f"in {COUNTS['seconds']} s; largest share of a bound spent (per mille): {SPEND}; "
              f"runs ended: {ENDINGS}; rejections: {REJECTIONS}")
        record_property("budget_differential", json.dumps({**COUNTS, "spend_per_mille": SPEND, "endings": ENDINGS}))
    assert COUNTS["checked"] >= EXAMPLES // 3, COUNTS  # the generator mostly writes programs that check
    assert COUNTS["runs"] == COUNTS["checked"] * RUNS_PER_PROGRAM
