"""Honest accounting, end to end against the simulator's injected faults (spec/runtime.md, Budgets).

Every attempt of a model call that may have been billed is charged: from the usage the provider
reported, or else its whole reservation (a 5xx, a dropped or truncated answer, a malformed 200, a
call cut off by a failing `par` sibling or a `wall` deadline). Only a failure that proves nothing
was billed (a refused connection, a 4xx) is charged nothing. The run's spend is the sum of what
its calls were charged, and the charges that are not the provider's word are listed with it.
"""

from __future__ import annotations

import importlib
import json
import socket
import sys

import pytest

from vox.runtime.executor.journal import NoJournal

from vox.compiler.api import check_source
from vox.compiler.plan import lower_plan
from vox.runtime.host import RunOptions, Runtime
from vox.runtime.providers import RetryPolicy

TRIPS = '''
import threading

STARTED = threading.Event()  # set by the test once the sibling's model call has started


def trip(x):
    STARTED.wait(10)
    raise RuntimeError("tripped")
'''

PROGRAM = '''
provider sim = sim { clearance: [public] }
provider dead = openai_compatible {
  base_url: env("VOX_TEST_DEAD_URL", "http://127.0.0.1:9/v1")
  clearance: [public]
}

model small = sim/"sim-small" {
  context: 16_000
  max_output: 200
  price: { input: $1, output: $2 }
  capabilities: [json_schema]
}
model gone = dead/"gone" {
  context: 16_000
  max_output: 200
  price: { input: $1, output: $2 }
  capabilities: [json_schema]
}

tool trip(x: str) -> str {
  effect: read
  bind: python("trips:trip")
}

agent say(x: str) -> str {
  model: small
  budget: { cost: $0.05, steps: 2 }
  prompt: "Say {x}."
}
agent reach(x: str) -> str {
  model: gone
  fallback: [small]
  budget: { cost: $0.05, steps: 2 }
  prompt: "Say {x}."
}
agent hurry(x: str) -> str {
  model: small
  budget: { cost: $0.05, steps: 1, wall: 300ms }
  prompt: "Say {x}."
}

flow one(x: str) -> str {
  return say(x: x)
}
flow far(x: str) -> str {
  return reach(x: x)
}
flow quick(x: str) -> str {
  return hurry(x: x)
}
flow race(x: str) -> list[str] {
  par {
    let a = say(x: x)
    let b = trip(x: x)
  }
  return [a, b]
}
'''

# $1 per million input tokens and $2 per million output tokens: one and two micro-dollars a token
PRICE_IN, PRICE_OUT = 1, 2


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    (tmp_path / "trips.py").write_text(TRIPS)
    monkeypatch.delitem(sys.modules, "trips", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    trips = importlib.import_module("trips")  # the module object the runtime's binding will use
    yield tmp_path
    trips.STARTED.set()


def plan_of(folder):
    result = check_source(str(folder / "prog.vox"), PROGRAM)
    assert result.ok, [d.message for d in result.errors]
    return lower_plan(result)


def closed_port() -> int:
    """A local port nothing listens on: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def options(folder) -> RunOptions:
    return RunOptions(durable=False, state_dir=str(folder / ".vox"), simulate="auto", base_dir=str(folder),
                      env={"VOX_RECEIPT_KEY": "test-key", "VOX_TEST_DEAD_URL": f"http://127.0.0.1:{closed_port()}/v1"})


class Ledger:
    """The run's events, and what they say each model call was reserved and charged."""

    def __init__(self):
        self.events: list[dict] = []
        self.hook = None

    def __call__(self, event: dict) -> None:
        self.events.append(event)
        if self.hook is not None:
            self.hook(event)

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["event"] == kind]

    def reserved(self, step_suffix: str = "") -> int:
        [start] = [e for e in self.of("model_start") if e["step"].endswith(step_suffix)]
        return start["reserved"]


class Accounts:
    """A runtime on the simulator whose providers retry at once (the waits are not under test)."""

    def __init__(self, folder, ledger: Ledger):
        self.rt = Runtime(plan_of(folder), options(folder), ledger)

    async def __aenter__(self) -> Runtime:
        rt = await self.rt.__aenter__()
        for provider in rt.providers.values():
            provider.retry = RetryPolicy(base_s=0.001, cap_s=0.002, max_retry_after_s=1.0)
        return rt

    async def __aexit__(self, *exc):
        await self.rt.__aexit__(*exc)


async def sim(rt: Runtime, method: str, path: str, body: dict | None = None) -> dict:
    response = await rt.http.request(method, rt.sim_url + path, json=body)
    assert response.status_code < 300, response.text
    return response.json() if response.content else {}


def reported(usage: dict) -> int:
    return usage["input_tokens"] * PRICE_IN + usage["output_tokens"] * PRICE_OUT


def assert_spent_is_the_sum_of_the_charges(result, ledger: Ledger) -> None:
    ends = ledger.of("model_end") + ledger.of("tool_end")
    assert result.spent["cost_micros"] == sum(e.get("cost", 0) for e in ends)
    assert result.spent["tokens"] == sum(e.get("tokens", 0) for e in ends)


# ---- attempts that may have been billed ----------------------------------------------------------


BILLED_FAULTS = {
    "server error": {"kind": "status", "status": 500},
    "dropped after sending": {"kind": "timeout", "delay_s": 0.05},
    "truncated body": {"kind": "truncate"},
}


@pytest.mark.anyio
@pytest.mark.parametrize("fault", list(BILLED_FAULTS), ids=list(BILLED_FAULTS))
async def test_a_faulted_attempt_that_may_have_been_billed_is_charged_its_reservation(folder, fault):
    ledger = Ledger()
    async with Accounts(folder, ledger) as rt:
        await sim(rt, "POST", "/_sim/faults", {"faults": [{**BILLED_FAULTS[fault], "count": 1, "agent": "say"}]})
        result = await rt.run("one", {"x": "hi"})
    assert result.ok, result.error
    reserved = ledger.reserved()
    [end] = ledger.of("model_end")
    assert end["attempts"] == 2 and end["charged"] == "reserved"
    assert end["cost"] == reserved + reported(end["usage"])  # the faulted attempt, and the answer
    [charge] = result.charges
    assert charge["attempt"] == 1 and charge["charged"] == "reserved" and charge["cost_micros"] == reserved
    assert charge["error"] and not charge["cancelled"]
    assert_spent_is_the_sum_of_the_charges(result, ledger)


@pytest.mark.anyio
async def test_a_malformed_200_is_charged_although_the_call_fails(folder):
    ledger = Ledger()
    async with Accounts(folder, ledger) as rt:
        await sim(rt, "POST", "/_sim/faults", {"faults": [{"kind": "malformed", "count": 1, "agent": "say"}]})
        result = await rt.run("one", {"x": "hi"})
    assert result.status == "failed" and result.error["kind"] == "model"
    assert result.spent["cost_micros"] == ledger.reserved() > 0  # not $0 for a failed run
    assert [c["charged"] for c in result.charges] == ["reserved"]
    assert_spent_is_the_sum_of_the_charges(result, ledger)


@pytest.mark.anyio
async def test_a_retried_call_charges_every_attempt(folder):
    ledger = Ledger()
    async with Accounts(folder, ledger) as rt:
        await sim(rt, "POST", "/_sim/faults", {"faults": [{"kind": "status", "status": 503, "count": 3,
                                                           "retry_after": 0.001, "agent": "say"}]})
        result = await rt.run("one", {"x": "hi"})
        stats = await sim(rt, "GET", "/_sim/stats")
    assert result.ok, result.error
    assert sum(stats["faults_injected"].values()) == 3
    [end] = ledger.of("model_end")
    assert end["attempts"] == 4
    assert end["cost"] == 3 * ledger.reserved() + reported(end["usage"])
    assert [c["attempt"] for c in result.charges] == [1, 2, 3]
    assert result.spent["model_calls"] == 1  # one call, however many attempts (`steps` counts calls)
    assert_spent_is_the_sum_of_the_charges(result, ledger)


@pytest.mark.anyio
async def test_a_run_that_fails_after_its_retries_reports_what_they_cost(folder):
    ledger = Ledger()
    async with Accounts(folder, ledger) as rt:
        await sim(rt, "POST", "/_sim/faults", {"faults": [{"kind": "status", "status": 500, "count": 10,
                                                           "agent": "say"}]})
        result = await rt.run("one", {"x": "hi"})
    assert result.status == "failed"
    assert result.spent["cost_micros"] == 4 * ledger.reserved()  # every attempt, not $0
    assert len(result.charges) == 4
    assert_spent_is_the_sum_of_the_charges(result, ledger)


# ---- failures that prove nothing was billed --------------------------------------------------------


@pytest.mark.anyio
async def test_a_refused_connection_is_charged_nothing(folder):
    ledger = Ledger()
    async with Accounts(folder, ledger) as rt:
        result = await rt.run("far", {"x": "hi"})  # `gone` is unreachable; `small` answers
    assert result.ok, result.error
    refused, answered = ledger.of("model_end")
    assert refused["model"] == "gone" and refused["attempts"] == 4
    assert refused["charged"] == "none" and refused["cost"] == 0 and "cannot reach" in refused["error"]
    assert answered["model"] == "small" and answered["charged"] == "reported"
    assert result.spent["cost_micros"] == reported(answered["usage"])
    assert result.spent["model_calls"] == 1  # the refused call is not counted against `steps` either
    assert result.charges == []
    assert_spent_is_the_sum_of_the_charges(result, ledger)


@pytest.mark.anyio
@pytest.mark.parametrize("status", [429, 401, 400])
async def test_a_4xx_is_charged_nothing(folder, status):
    ledger = Ledger()
    async with Accounts(folder, ledger) as rt:
        await sim(rt, "POST", "/_sim/faults", {"faults": [{"kind": "status", "status": status, "count": 1,
                                                           "retry_after": 0.001, "agent": "say"}]})
        result = await rt.run("one", {"x": "hi"})
    [end] = ledger.of("model_end")
    if status == 429:  # retried: the answer is all that is charged
        assert result.ok and end["attempts"] == 2 and end["charged"] == "reported"
        assert end["cost"] == reported(end["usage"])
    else:  # not retryable: the call fails, charged nothing
        assert result.status == "failed" and end["charged"] == "none" and end["cost"] == 0
        assert result.spent["cost_micros"] == 0
    assert result.charges == []
    assert_spent_is_the_sum_of_the_charges(result, ledger)


# ---- calls cut off in flight -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_call_cancelled_by_a_failing_par_sibling_is_charged_its_reservation(folder):
    ledger = Ledger()

    def release_the_sibling(event: dict) -> None:
        if event["event"] == "model_start":
            sys.modules["trips"].STARTED.set()

    async with Accounts(folder, ledger) as rt:
        # the model call is held until the simulator stops, so only the sibling's failure ends it
        await sim(rt, "POST", "/_sim/faults", {"faults": [{"kind": "timeout", "delay_s": 60, "agent": "say"}]})
        ledger.hook = release_the_sibling
        result = await rt.run("race", {"x": "hi"})
    assert result.status == "failed" and result.error["kind"] == "tool"
    reserved = ledger.reserved()
    [end] = ledger.of("model_end")
    assert end["cancelled"] and end["charged"] == "reserved" and end["cost"] == reserved > 0
    [charge] = result.charges
    assert charge["cancelled"] and charge["cost_micros"] == reserved and charge["why"] == "cancelled in flight"
    assert result.spent["cost_micros"] == reserved
    assert_spent_is_the_sum_of_the_charges(result, ledger)


@pytest.mark.anyio
async def test_a_call_cut_off_by_a_wall_deadline_is_charged_its_reservation(folder):
    ledger = Ledger()
    async with Accounts(folder, ledger) as rt:
        await sim(rt, "POST", "/_sim/faults", {"faults": [{"kind": "timeout", "delay_s": 60, "agent": "hurry"}]})
        result = await rt.run("quick", {"x": "hi"})
    assert result.status == "failed" and "wall-clock" in result.error["message"]
    reserved = ledger.reserved()
    assert result.spent["cost_micros"] == reserved > 0
    assert [(c["charged"], c["cancelled"]) for c in result.charges] == [("reserved", True)]
    assert_spent_is_the_sum_of_the_charges(result, ledger)


# ---- replays and overshoots --------------------------------------------------------------------------


class KeptJournal(NoJournal):
    """A journal that keeps each step's result as JSON, as a durable one does, and gives it back
    when the same step runs again: the second execution of a run is a replay."""

    def __init__(self):
        self.steps: dict[str, str] = {}

    async def step(self, name, fn, finish=None):
        if name not in self.steps:
            self.steps[name] = json.dumps(await fn())
        return json.loads(self.steps[name])

    async def interrupted(self, name):
        return False

    async def wait_for_approval(self, step, waiting):
        return None


@pytest.mark.anyio
async def test_a_replay_settles_from_the_journal_exactly_as_the_run_did(folder):
    ledger = Ledger()
    async with Accounts(folder, ledger) as rt:
        await sim(rt, "POST", "/_sim/faults", {"faults": [{"kind": "status", "status": 500, "count": 2,
                                                           "agent": "say"}]})
        spec = rt.spec("one", {"x": "hi"}, "replayed")
        journal = KeptJournal()
        first = await rt.execute_spec(spec, journal)
        before = (await sim(rt, "GET", "/_sim/stats"))["requests"]
        again = await rt.execute_spec(spec, journal)
        after = (await sim(rt, "GET", "/_sim/stats"))["requests"]
    assert after == before  # nothing was sent the second time
    assert first.ok and again.output == first.output
    assert again.spent == first.spent and again.charges == first.charges and len(first.charges) == 2
    assert again.overshoots == first.overshoots == []
    [charged] = [json.loads(v) for k, v in journal.steps.items() if k.endswith("/model[0]")]
    assert [c["charged"] for c in charged["charges"]] == ["reserved", "reserved", "reported"]


@pytest.mark.anyio
async def test_usage_above_the_reservation_is_charged_and_recorded_as_an_overshoot(folder, monkeypatch):
    import vox.runtime.executor.agent as agent

    monkeypatch.setattr(agent, "count_request", lambda *args: 1)  # a tokenizer that under-counts badly
    ledger = Ledger()
    async with Accounts(folder, ledger) as rt:
        result = await rt.run("one", {"x": "word " * 600})
    assert result.ok, result.error
    [end] = ledger.of("model_end")
    assert end["charged"] == "reported" and end["cost"] == reported(end["usage"]) > ledger.reserved()
    kinds = {(o["kind"], o["dimension"]) for o in result.overshoots}
    assert ("estimate", "cost_micros") in kinds and ("estimate", "tokens") in kinds
    [cost] = [o for o in result.overshoots if o["dimension"] == "cost_micros"]
    assert cost["reserved"] == ledger.reserved() and cost["actual"] == end["cost"]
    assert_spent_is_the_sum_of_the_charges(result, ledger)


def test_provider_errors_say_whether_they_may_have_been_billed():
    import pickle

    from vox.runtime.providers import BadRequest, ConnectionFailed, ProviderTimeout, RateLimited, ServerError

    assert not RateLimited("x").may_have_billed and not BadRequest("x").may_have_billed
    assert ServerError("x").may_have_billed and ProviderTimeout("x").may_have_billed
    refused = ConnectionFailed("x", may_have_billed=False)
    assert not pickle.loads(pickle.dumps(refused)).may_have_billed  # kept across processes and journals
