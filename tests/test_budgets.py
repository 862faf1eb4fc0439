"""Budget bounds (V2): the worst case of agents and flows, and the errors when caps cannot fit."""

from __future__ import annotations

import itertools
import pathlib
import re

from hypothesis import given
from hypothesis import strategies as st

from vox.compiler.api import check_source

ROOT = pathlib.Path(__file__).resolve().parent.parent
REFERENCE = (ROOT / "examples" / "reference.vox").read_text()

PRELUDE = """\
provider openai = openai { key: env("OPENAI_API_KEY") }
provider onprem = openai_compatible { base_url: "http://127.0.0.1:11434/v1" }
model mini = openai/"gpt-4o-mini" {
  context: 128_000
  max_output: 1_000
  price: { input: $0.15, output: $0.60 }
}
model unpriced = onprem/"llama3.1:8b" { context: 8_192, max_output: 512 }
model tiny = onprem/"qwen2.5:0.5b" { context: 64, max_output: 48, price: free }
agent cheap(q: str) -> str {
  model: mini
  budget: { cost: $0.01, steps: 2, wall: 10s }
  prompt: "Answer: {q}"
}
agent dear(q: str) -> str {
  model: mini
  budget: { cost: $0.04, steps: 4, wall: 20s }
  prompt: "Answer carefully: {q}"
}
tool fetch(id: str) -> str {
  effect: read
  cost: $0.001
  retries: 2
  timeout: 2s
}
"""


def check(body: str):
    return check_source("t.vox", PRELUDE + body)


def diags(body: str):
    """(code, underlined source text) of every diagnostic."""
    text = PRELUDE + body
    return [(d.code, text[d.span.start:d.span.end]) for d in check_source("t.vox", text).diagnostics]


def codes(body: str) -> list[str]:
    return [c for c, _ in diags(body)]


def bound(body: str, name: str):
    result = check(body)
    assert not result.errors, result.errors
    return result.analysis.budgets.bounds[name]


# ---- agents ----------------------------------------------------------------------------------------


def test_an_agent_bound_is_its_caps_and_the_rest_is_derived():
    b = bound("", "cheap")
    assert b.bound.cost_micros == 10_000 and b.bound.model_calls == 2 and b.bound.wall_ms == 10_000
    assert b.from_caps == {"cost_micros", "model_calls", "wall_ms"}
    # no tokens cap: at most 2 steps × the 128k context, and at most what $0.01 buys at the cheapest
    # price per token ($0.15 per million): 66_666 tokens
    assert b.bound.tokens == min(256_000, 10_000 * 1_000_000 // 150_000) == 66_666
    assert b.bound.tool_calls == 0


def test_derived_cost_spends_tokens_the_dearest_way():
    b = bound('agent a(q: str) -> str { model: mini, budget: { tokens: 6_000, steps: 2 }, prompt: "{q}" }', "a")
    # 2 calls of up to 4 billed attempts (spec/budgets.md), each at most 1_000 output tokens: all
    # 6_000 tokens can be output, at $0.60/M, plus 1 micro-dollar of rounding per attempt
    assert b.derived.cost_micros == 3_600 + 8
    assert b.bound.cost_micros == 3_608 and "cost_micros" not in b.from_caps


def test_tool_attempts_count_in_an_agents_cost():
    b = bound('agent a(q: str) -> str { model: mini, tools: [fetch], budget: { tokens: 1_200, steps: 1, tool_calls: 3 }, '
              'prompt: "{q}" }', "a")
    # 3 calls × 3 attempts × $0.001, plus (over up to 4 billed attempts of the one model call) all
    # 1_200 tokens as output at $0.60/M, and 1 micro-dollar of rounding per attempt
    assert b.derived.cost_micros == 9_000 + 720 + 4


def test_an_agent_without_caps_is_unbounded():
    b = bound('agent a(q: str) -> str { model: mini, tools: [fetch], prompt: "{q}" }', "a")
    assert b.bound.cost_micros is None and b.bound.tokens is None and b.bound.tool_calls is None


def test_v2003_tokens_cap_below_one_call():
    body = 'agent a(q: str) -> str { model: mini, budget: { tokens: 900 }, prompt: "{q}" }'
    assert diags(body) == [("V2003", "900")]
    # the prompt counts its text, the output schema `{"value": string}` and OpenAI's overheads, as
    # the runtime counts them: about 34 tokens, so one call needs 1_034
    assert codes(body.replace("900", "1_033")) == ["V2003"]
    assert codes(body.replace("900", "1_034")) == []


def test_v2003_cost_cap_below_one_call():
    body = 'agent a(q: str) -> str { model: mini, budget: { cost: $0.0005 }, prompt: "{q}" }'
    assert diags(body) == [("V2003", "$0.0005")]  # 1_000 output tokens cost $0.0006, 34 prompt tokens $0.000006
    assert codes(body.replace("$0.0005", "$0.000605")) == ["V2003"]
    assert codes(body.replace("$0.0005", "$0.000606")) == []


def test_v2003_no_steps():
    body = 'agent a(q: str) -> str { model: mini, budget: { steps: 0 }, prompt: "{q}" }'
    assert diags(body) == [("V2003", "0")]
    fixed = check(body).diagnostics[0].fix
    assert fixed is not None and fixed.edits[0].new_text == "1"


def test_v2004_cost_cap_on_an_unpriced_model():
    body = 'agent a(q: str) -> str { model: mini, fallback: [unpriced], budget: { cost: $1 }, prompt: "{q}" }'
    assert diags(body) == [("V2004", "unpriced")]
    assert codes(body.replace("fallback: [unpriced], ", "")) == []


def test_v2004_flow_cost_cap_reaching_an_unpriced_model():
    body = """
agent a(q: str) -> str { model: unpriced, budget: { steps: 1 }, prompt: "{q}" }
flow f(q: str) -> str {
  budget: { cost: $1 }
  return a(q: q)
}
"""
    assert diags(body) == [("V2004", "a(q: q)")]
    assert codes(body.replace("budget: { cost: $1 }", "budget: { tokens: 100_000 }")) == []


def test_v2006_prompt_does_not_fit_a_fallback_context():
    long = "word " * 20
    body = f'agent a(q: str) -> str {{ model: mini, fallback: [tiny], prompt: "{long}{{q}}" }}'
    assert diags(body) == [("V2006", "tiny")]
    assert codes(body.replace(", fallback: [tiny]", "")) == []


# ---- flows -----------------------------------------------------------------------------------------


def test_sequence_adds_and_loops_multiply():
    b = bound("""
flow f(xs: list[str]) -> list[str] {
  let one = cheap(q: "a")
  return for x in xs max 3 { dear(q: x) }
}
""", "f")
    assert b.derived.cost_micros == 10_000 + 3 * 40_000
    assert b.derived.wall_ms == 10_000 + 3 * 20_000
    assert [(i.callee, i.multiplier) for i in b.items] == [("cheap", 1), ("dear", 3)]


def test_if_takes_the_larger_branch_and_return_ends_a_path():
    b = bound("""
flow f(x: bool) -> str {
  if x {
    return cheap(q: "a")
  }
  let y = dear(q: "b")
  return cheap(q: y)
}
""", "f")
    # worst path: the fall-through with dear + cheap, not the sum of all three calls
    assert b.derived.cost_micros == 40_000 + 10_000


def test_par_adds_spend_and_takes_the_longest_wall():
    b = bound("""
flow f() -> str {
  par {
    let a = cheap(q: "a")
    let b = dear(q: "b")
  }
  return a
}
""", "f")
    assert b.derived.cost_micros == 50_000
    assert b.derived.wall_ms == 20_000


def test_tool_calls_count_their_retries():
    b = bound('flow f() -> str {\n  return fetch(id: "1")\n}', "f")
    # 3 attempts of at most 2s, and the waits between them (200 ms after the first, 400 ms after the second)
    assert b.derived.cost_micros == 3_000 and b.derived.wall_ms == 6_000 + 600 and b.derived.tool_calls == 1


def test_a_list_literal_bounds_a_loop_without_max():
    body = 'flow f() -> list[str] {\n  return for x in ["a", "b"] { cheap(q: x) }\n}'
    assert codes(body) == []
    assert bound(body, "f").derived.cost_micros == 20_000


def test_a_loop_that_calls_nothing_needs_no_max():
    assert codes('flow f(xs: list[int]) -> list[int] {\n  return for x in xs { x * 2 }\n}') == []


def test_v2002_loop_without_max():
    body = 'flow f(xs: list[str]) -> list[str] {\n  return for x in xs { cheap(q: x) }\n}'
    assert diags(body) == [("V2002", 'for x in xs { cheap(q: x) }')]
    assert codes(body.replace("in xs {", "in xs max 5 {")) == []
    fix = check(body).diagnostics[0].fix
    text = PRELUDE + body
    edit = fix.edits[0]
    assert (text[:edit.span.start] + edit.new_text + text[edit.span.end:]).count("for x in xs max 10 {") == 1


def test_v2001_calls_exceed_the_flow_cap():
    body = """
flow f() -> str {
  budget: { cost: $0.05 }
  let a = cheap(q: "a")
  return dear(q: a)
}
"""
    assert codes(body) == []
    over = body.replace("$0.05", "$0.049")
    assert diags(over) == [("V2001", "$0.049")]
    d = check(over).diagnostics[0]
    assert "total $0.05 > cap $0.049" in d.notes[-1]
    assert d.fix.edits[0].new_text == "$0.05"
    assert "lower `dear`'s `cost` to $0.039" in d.help


def test_v2001_on_every_capped_dimension():
    body = """
flow f() -> str {
  budget: { steps: 5, wall: 25s }
  let a = cheap(q: "a")
  return dear(q: a)
}
"""
    assert sorted(diags(body)) == [("V2001", "25s"), ("V2001", "5")]


def test_v2005_one_callee_alone_exceeds_the_cap():
    body = 'flow f() -> str {\n  budget: { cost: $0.03 }\n  return dear(q: "x")\n}'
    assert diags(body) == [("V2005", 'dear(q: "x")')]
    assert codes(body.replace("dear", "cheap")) == []


def test_v2007_callee_without_a_bound():
    body = """
agent open(q: str) -> str { model: mini, prompt: "{q}" }
flow f() -> str {
  budget: { cost: $1 }
  return open(q: "x")
}
"""
    assert diags(body) == [("V2007", 'open(q: "x")')]
    assert codes(body.replace('model: mini,', 'model: mini, budget: { steps: 2 },')) == []


def test_v2008_recursion_needs_depth_and_is_unrolled():
    body = """
flow f(n: int) -> int {
  budget: { cost: $1 }
  let a = cheap(q: "x")
  if n > 0 {
    return f(n: n - 1)
  }
  return n
}
"""
    assert diags(body) == [("V2008", "f(n: n - 1)")]
    # five activations of `f` on the stack at most: five calls of `cheap`
    with_depth = body.replace("budget: { cost: $1 }", "budget: { depth: 5 }")
    assert codes(with_depth) == []
    assert bound(with_depth, "f").derived.cost_micros == 5 * 10_000
    caller = with_depth + 'flow g() -> int {\n  budget: { cost: $0.04 }\n  return f(n: 9)\n}\n'
    assert codes(caller) == ["V2005"]
    assert codes(caller.replace("$0.04", "$0.05")) == []
    # a nested call of a flow with a cost cap reserves the whole cap, which its caller (itself,
    # having spent on `cheap`) can never hold: rejected, as the runtime would refuse the call
    assert codes(body.replace("budget: { cost: $1 }", "budget: { cost: $1, depth: 5 }")) == ["V2001"]


def test_mutual_recursion():
    body = """
flow ping(n: int) -> int {
  budget: { depth: 4 }
  let a = cheap(q: "x")
  if n > 0 {
    return pong(n: n - 1)
  }
  return n
}
flow pong(n: int) -> int {
  budget: { depth: 4 }
  return ping(n: n)
}
"""
    assert codes(body) == []
    # the runtime allows 4 activations of each flow on the stack: ping, pong, ... ping, pong, so
    # four calls of `cheap` (one per activation of ping)
    assert bound(body, "ping").derived.cost_micros == 4 * 10_000
    assert codes(body.replace("budget: { depth: 4 }\n  return", "return")) == ["V2008"]


# ---- the reference program's notes -----------------------------------------------------------------


def reference_diags(old: str, new: str):
    assert old in REFERENCE
    text = REFERENCE.replace(old, new)
    return [(d.code, text[d.span.start:d.span.end]) for d in check_source("r.vox", text).diagnostics]


def test_reference_bounds():
    result = check_source("r.vox", REFERENCE)
    bounds = result.analysis.budgets.bounds
    assert bounds["handle"].derived.cost_micros == 10_000 + 20_000
    assert bounds["handle"].derived.tokens == 6_000 + 30_000
    assert bounds["handle_batch"].derived.cost_micros == 10 * 50_000


def test_reference_raising_resolvers_cost_cap():
    assert reference_diags("tokens: 30_000, cost: $0.02", "tokens: 30_000, cost: $0.05") == [("V2001", "$0.05")]


def test_reference_dropping_the_loop_bound():
    found = reference_diags("for t in tickets max 10 {", "for t in tickets {")
    assert [c for c, _ in found] == ["V2002"]


# ---- properties ------------------------------------------------------------------------------------

CALLS = ['cheap(q: "a")', 'dear(q: "b")', 'fetch(id: "c")', 'g(x: "d")']


def statement(depth: int):
    call = st.sampled_from(CALLS)
    leaf = st.one_of(call.map(lambda c: f"let _v = {c}"), st.just("let _v = 1"))
    if depth == 0:
        return st.lists(leaf, max_size=3)
    inner = st.deferred(lambda: statement(depth - 1))
    compound = st.one_of(
        inner.map(lambda b: ["if true {", *b, "}"]),
        st.tuples(inner, inner).map(lambda p: ["if false {", *p[0], "} else {", *p[1], "}"]),
        st.tuples(st.integers(0, 4), inner).map(lambda p: [f"let _l = for i in [1, 2] max {p[0]} {{", *p[1], "1", "}"]),
        st.lists(call, min_size=1, max_size=3).map(lambda cs: ["par {", *[f"let _p{i} = {c}" for i, c in enumerate(cs)], "}"]),
    )
    return st.lists(st.one_of(leaf, compound), max_size=4).map(
        lambda items: [line for item in items for line in (item if isinstance(item, list) else [item])])


def flow_text(lines: list[str]) -> str:
    names = itertools.count()
    body = re.sub(r"let _\w+", lambda m: f"let _{next(names)}", "\n".join("  " + line for line in lines))
    return ('flow g(x: str) -> str {\n  budget: { steps: 3 }\n  return cheap(q: x)\n}\n'
            f"flow f() -> int {{\n{body}\n  return 0\n}}\n")


def at_least(a, b) -> bool:
    return a is None or (b is not None and a >= b)


@given(statement(2), st.data())
def test_adding_a_call_never_lowers_a_flows_bound(lines, data):
    before = check(flow_text(lines)).analysis.budgets.bounds["f"].derived
    at = data.draw(st.integers(0, len(lines)))
    # insert a call only between complete statements (not inside an unclosed block)
    while sum(line.count("{") - line.count("}") for line in lines[:at]):
        at -= 1
    call = data.draw(st.sampled_from(CALLS))
    grown = lines[:at] + [f"let _n = {call}"] + lines[at:]
    result = check(flow_text(grown))
    assert not result.errors, [d.message for d in result.errors]
    after = result.analysis.budgets.bounds["f"].derived
    for dim in ("cost_micros", "tokens", "wall_ms", "model_calls", "tool_calls"):
        assert at_least(getattr(after, dim), getattr(before, dim)), dim
