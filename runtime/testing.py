"""`test` blocks: each runs its flow on the simulator with its mocks, then checks `expect`.

A mocked agent's turns become the simulator's script for that run (the reply values as the
model would write them; `receipt(t)` as a placeholder the simulator fills with the receipt of
the run's call of `t`); a mocked tool's reply is returned for every call of it, and is still
signed into the receipt ledger when the tool is receipted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from vox.compiler.plan.model import Mock, MockCall, Plan, Test
from vox.runtime.executor.interpreter import Frame, Interpreter
from vox.runtime.executor.values import from_json, to_json
from vox.runtime.host import RunResult, Runtime
from vox.runtime.pii import scrub_value


@dataclass
class TestOutcome:
    name: str
    passed: bool
    seconds: float
    result: RunResult | None
    message: str = ""


JUDGE_TURNS = 64  # judge verdicts scripted per agent and test run


class _NoMonitor:
    """A test's literals go nowhere: nothing to check."""

    on = False


_NO_MONITOR = _NoMonitor()


class _Constants:
    """What evaluating a test's literal expressions needs from a run: no calls, receipts as placeholders."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.labels = _NO_MONITOR

    def mock_receipt(self, tool: str) -> dict:
        return {"$receipt": tool}

    def redact(self, value: Any, e) -> Any:
        return scrub_value(value)

    def audit_declassify(self, e, reason: str) -> None:
        pass


async def constant(plan: Plan, expr, env: dict | None = None) -> Any:
    interpreter = Interpreter(_Constants(plan))
    return await interpreter.eval(expr, Frame(None, dict(env or {}), None))


async def scripts_of(plan: Plan, mocks: tuple[Mock, ...]) -> tuple[dict, dict]:
    """(simulator scripts of mocked agents, replies of mocked tools), as JSON."""
    scripts: dict[str, list] = {}
    tools: dict[str, Any] = {}
    for mock in mocks:
        if mock.kind == "tool":
            tool = plan.tools[mock.target]
            tools[mock.target] = to_json(await constant(plan, mock.turns[0].value), tool.result, plan.types)
            continue
        agent = plan.agents[mock.target]
        turns = []
        for turn in mock.turns:
            if isinstance(turn, MockCall):
                params = {p.name: p.type for p in plan.tools[turn.tool].params}
                args = {a.name: to_json(await constant(plan, a.value), params[a.name], plan.types) for a in turn.args}
                turns.append({"call": {"tool": turn.tool, "args": args}})
            else:
                value = to_json(await constant(plan, turn.value), agent.result, plan.types)
                turns.append({"reply": {"value": value} if agent.output_wrapped else value})
        scripts[mock.target] = turns
    # A test's judges pass unless it says otherwise: gates are tested by the mocked answers.
    for agent in plan.agents.values():
        if agent.judges:
            verdict = {"reply": {"pass": True, "reason": "the test's default judge passes every answer"}}
            scripts[f"{agent.name}.judge"] = [verdict] * JUDGE_TURNS
    return scripts, tools


def test_run_id(plan, test: Test) -> str:
    """The run id of a test: the same for the same program and test, so that the simulator, whose
    answers are a function of (seed, run, agent, step), answers a test the same way every time."""
    import hashlib

    return "test_" + hashlib.sha256(f"{plan.plan_hash}\x00{test.name}".encode()).hexdigest()[:16]


test_run_id.__test__ = False  # not a pytest test, whatever its name


async def run_test(rt: Runtime, test: Test) -> TestOutcome:
    plan = rt.plan
    flow = plan.flows[test.flow]
    started = time.perf_counter()
    params = {p.name: p.type for p in flow.params}
    raw_input = {a.name: to_json(await constant(plan, a.value), params[a.name], plan.types) for a in test.input}
    scripts, tool_mocks = await scripts_of(plan, test.mocks)
    result = await rt.run(test.flow, raw_input, test_run_id(plan, test), scripts=scripts, tool_mocks=tool_mocks,
                          approve=test.approve)
    seconds = time.perf_counter() - started
    if not result.ok:
        what = result.error["message"] if result.error else f"the run is waiting for approval: {result.waiting}"
        return TestOutcome(test.name, False, seconds, result, what)
    if test.expect is not None:
        output = from_json(result.output, flow.result, plan.types)
        if not await constant(plan, test.expect, {"output": output}):
            return TestOutcome(test.name, False, seconds, result, "`expect` is false for the output")
    return TestOutcome(test.name, True, seconds, result)
