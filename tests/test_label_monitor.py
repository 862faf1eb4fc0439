"""The run-time label monitor: the label guarantee checked a second time, on the values that flow.

Two kinds of trial, both on the real local simulator:

* **A compiler that missed a flow.** A program is checked with every sink cleared for every label,
  then run with the sinks' real clearances put back into its plan: exactly what would happen if the
  label analysis had missed the flow. The monitor must stop the run at the uncleared sink, before
  anything reaches it (the simulator receives no request, the tool is not called).
* **Differential.** Hypothesis writes flows (tests/test_label_soundness.py's generator: aliases,
  records, tool results, `if`, `for`, flows with labelled results, `redact`, `declassifies`, an
  agent with a labelled tool result). A program that checks clean must run without the monitor
  ever firing; one that does not must, run on its real clearances, be stopped by the monitor at
  one of the sinks the diagnostics name (so the diagnostics stay honest).
"""

from __future__ import annotations

import json
import re

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vox.compiler.api import check_source
from vox.compiler.plan import lower_plan
from vox.runtime.host import RunOptions, Runtime

import test_label_soundness as gen

EVERYTHING = "[public, pii, phi]"

# the input that makes every `if` of the generated flows true and every `for` run
INPUT = {"s": "yes", "e": "a@b.example", "d": "flu", "c": {"number": "4111111111111111", "brand": "visa"},
         "n": {"text": "flu", "tag": "t"}, "es": ["a@b.example", "c@d.example"], "ss": ["x"]}
MOCKS = {"get_card": {"number": "4111111111111111", "brand": "visa"}, "get_email": "a@b.example",
         "echo": "yes", "scrub": "yes", "send_pub": "yes", "send_pii": "yes", "send_all": "yes"}
BOT_SCRIPT = [{"call": {"tool": "get_card", "args": {"id": "1"}}}, {"reply": "done"}]


def cleared_for_everything(text: str) -> str:
    """The program with every provider and tool cleared for every label."""
    text = re.sub(r"clearance: \[[^\]]*\]", f"clearance: {EVERYTHING}", text)
    return re.sub(r"(tool send_pub\(x: str\) -> str \{\n  effect: read\n)", rf"\1  clearance: {EVERYTHING}\n", text)


def real_clearances(plan, text: str):
    """``plan`` (of the program cleared for everything) with the clearances ``text`` declares."""
    declared_providers = dict(re.findall(r"provider (\w+) = \w+ \{[^}]*clearance: \[([^\]]*)\]", text))
    tools = {}
    for name, body in re.findall(r"tool (\w+)\([^)]*\) -> \w+ \{([^}]*)\}", text):
        found = re.search(r"clearance: \[([^\]]*)\]", body)
        tools[name] = found.group(1) if found else ""

    def names(listed: str) -> tuple[str, ...]:
        return tuple(sorted(x.strip() for x in listed.split(",") if x.strip()))

    providers = {n: p.model_copy(update={"clearance": names(declared_providers.get(n, ""))})
                 for n, p in plan.providers.items()}
    tools = {n: t.model_copy(update={"clearance": names(tools.get(n, ""))}) for n, t in plan.tools.items()}
    return plan.model_copy(update={"providers": providers, "tools": tools})


def plan_of(text: str):
    result = check_source("prog.vox", text)
    assert result.ok, [(d.code, d.message) for d in result.errors]
    return lower_plan(result)


async def run(plan, tmp_path, flow="main", raw=None, scripts=None, mocks=None):
    options = RunOptions(durable=False, state_dir=str(tmp_path / ".vox"), simulate="all", base_dir=str(tmp_path),
                         env={"VOX_RECEIPT_KEY": "test-key"})
    async with Runtime(plan, options) as rt:
        result = await rt.run(flow, INPUT if raw is None else raw, scripts=scripts,
                              tool_mocks=MOCKS if mocks is None else mocks)
        stats = (await rt.http.get(f"{rt.sim_url}/_sim/stats")).json()
    return result, stats


# ---- a compiler that missed a flow ------------------------------------------------------------------


def trial(body: str, tmp_path, **kw):
    """Run ``body`` (after the generator's header) checked as cleared for everything, on its real
    clearances: what a run would do had the analysis missed what ``body`` does."""
    text = gen.HEADER + body
    plan = real_clearances(plan_of(cleared_for_everything(text)), text)
    return anyio.run(lambda: run(plan, tmp_path, **kw))


def refused(result) -> dict:
    assert result.status == "failed", result
    assert result.error["kind"] == "label", result.error
    assert "Nothing was sent" in result.error["message"]
    return result.error


def test_a_tools_labelled_result_never_reaches_an_uncleared_model(tmp_path):
    body = """
agent bot(q: str) -> str {
  model: m_pub
  tools: [get_card]
  prompt: "Look up {q}"
}
flow main(q: str) -> str {
  return bot(q: q)
}
"""
    result, stats = trial(body, tmp_path, raw={"q": "card 1"}, scripts={"bot": BOT_SCRIPT})
    error = refused(result)
    assert "`@pii`" in error["message"] and "model `m_pub`" in error["message"]
    assert "`Card.number` is labelled" in error["message"]  # where it came from
    assert error["step"].endswith("model[1]")  # the first request went out; the second, with the card, did not


def test_an_aliased_parameter_keeps_its_label_at_run_time(tmp_path):
    body = """
flow main(e: Email) -> str {
  return send_pub(x: e)
}
"""
    result, _ = trial(body, tmp_path, raw={"e": "a@b.example"}, mocks={"send_pub": "sent"})
    error = refused(result)
    assert "tool `send_pub`" in error["message"] and "parameter `e` of `main`" in error["message"]


def test_a_call_under_a_labelled_condition_is_refused(tmp_path):
    body = """
flow main(e: Email) -> str {
  if e == "a@b.example" {
    return send_pub(x: "it was them")
  }
  return "no"
}
"""
    result, _ = trial(body, tmp_path, raw={"e": "a@b.example"}, mocks={"send_pub": "sent"})
    assert "under an `if`" in refused(result)["message"]
    result, _ = trial(body, tmp_path, raw={"e": "other@b.example"}, mocks={"send_pub": "sent"})
    assert result.ok  # the path that reaches no sink runs


def test_a_loop_over_a_labelled_list_is_refused(tmp_path):
    body = """
flow main(es: Emails) -> list[str] {
  return for x in es max 3 { send_pub(x: "one more") }
}
"""
    result, _ = trial(body, tmp_path, raw={"es": ["a@b.example"]}, mocks={"send_pub": "sent"})
    assert "under a `for`" in refused(result)["message"]


def test_a_record_keeps_labels_per_field_at_run_time(tmp_path):
    body = """
flow main(c: Card) -> str {
  let p: Pair = { a: c.number, b: c.brand }
  let ok = send_pub(x: p.b)
  return send_pub(x: p.a)
}
"""
    result, _ = trial(body, tmp_path, raw={"c": {"number": "4111111111111111", "brand": "visa"}},
                      mocks={"send_pub": "sent"})
    error = refused(result)
    assert error["step"] == "main.s2.send_pub"  # the public field went; the card number did not


def test_a_flows_declared_result_label_is_enforced(tmp_path):
    body = """
flow main(s: str) -> str {
  return say_pub(x: tag_pii(x: s))
}
"""
    result, stats = trial(body, tmp_path, raw={"s": "hello"})
    assert "model `m_pub`" in refused(result)["message"]


def test_a_tool_result_carries_its_arguments_labels_unless_it_declassifies(tmp_path):
    body = """
flow main(e: Email) -> str {
  let clean = send_pub(x: scrub(x: e))
  return send_pub(x: echo(x: e))
}
"""
    result, _ = trial(body, tmp_path, raw={"e": "a@b.example"})
    assert refused(result)["step"] == "main.s1.send_pub"


def test_a_fallback_model_is_checked_when_it_is_used(tmp_path):
    body = """
agent bot(q: str) -> str {
  model: m_all
  fallback: [m_pub]
  prompt: "Look up {q}"
}
flow main(e: Email) -> str {
  return bot(q: e)
}
"""
    text = gen.HEADER + body
    plan = real_clearances(plan_of(cleared_for_everything(text)), text)

    async def go():
        options = RunOptions(durable=False, state_dir=str(tmp_path / ".vox"), simulate="all",
                             base_dir=str(tmp_path), env={"VOX_RECEIPT_KEY": "test-key"})
        async with Runtime(plan, options) as rt:
            ok = await rt.run("main", {"e": "a@b.example"})
            # the primary model fails: the fallback, which may not see `@pii`, is not sent the prompt
            await rt.http.post(f"{rt.sim_url}/_sim/faults",
                               json={"faults": [{"kind": "status", "status": 400, "count": 100}]})
            failed = await rt.run("main", {"e": "a@b.example"})
            return ok, failed

    ok, failed = anyio.run(go)
    assert ok.ok
    assert "model `m_pub`" in refused(failed)["message"]


def test_a_judge_is_checked_for_what_it_reads(tmp_path):
    body = """
gate fair(out: str) {
  check judge(m_pub, rubric: "Fair.") else abstain
}
agent bot(q: str) -> str {
  model: m_all
  gates: [fair]
  prompt: "Answer {q}"
}
flow main(e: Email) -> str {
  return bot(q: e)
}
"""
    result, _ = trial(body, tmp_path, raw={"e": "a@b.example"})
    assert "judging `bot`'s answer" in refused(result)["message"]


def test_the_monitor_is_off_for_a_program_without_labels(tmp_path):
    text = """
provider pub = openai_compatible { base_url: "http://a/v1", clearance: [public] }
model m = pub/"a" { context: 8_000, max_output: 100, price: free }
agent a(q: str) -> str {
  model: m
  prompt: "Say {q}"
}
flow main(q: str) -> str {
  return a(q: q)
}
"""
    plan = plan_of(text)
    result, _ = anyio.run(lambda: run(plan, tmp_path, raw={"q": "hi"}, mocks={}))
    assert result.ok


# ---- differential -----------------------------------------------------------------------------------

COUNTS = {"clean": 0, "refused": 0, "runs": 0}


def without_fallbacks(text: str) -> str:
    """The generated program with `main` also calling the agent whose tool result is labelled, and
    without fallbacks: a run takes a fallback only when its model fails
    (test_a_fallback_model_is_checked_when_it_is_used covers that)."""
    text = text.replace('\n  return "ok"\n}\n', '\n  let bot = card_bot(q: "card 1")\n  return "ok"\n}\n')
    return re.sub(r"  fallback: \[\w+\]\n", "", text)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture], deadline=None,
          max_examples=40)
@given(gen.programs())
def test_the_monitor_fires_exactly_when_the_compiler_objects(tmp_path, case):
    text = without_fallbacks(case[0])
    errors = [d for d in check_source("gen.vox", text).diagnostics if d.is_error]
    assert all(d.code.startswith("V3") for d in errors), [(d.code, d.message) for d in errors]
    plan = real_clearances(plan_of(cleared_for_everything(text)), text)
    result, _ = anyio.run(lambda: run(plan, tmp_path, scripts={"card_bot": BOT_SCRIPT}))
    COUNTS["runs"] += 1
    if not errors:
        assert result.ok, (text, result.error)
        COUNTS["clean"] += 1
        return
    error = refused(result)  # every `if` and `for` of these programs runs: each sink is reached
    COUNTS["refused"] += 1
    sink = re.search(r"data to (tool|model) `(\w+)`", error["message"]).group(2)
    assert any(f"`{sink}`" in d.message for d in errors), (text, error, [d.message for d in errors])


def test_report_the_differential_counts():
    print(f"label monitor differential: {COUNTS}")
