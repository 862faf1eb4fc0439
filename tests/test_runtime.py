"""The runtime end to end, against the real simulator over loopback: no internals mocked.

Each test compiles a small program, runs a flow with the simulator answering (scripts for the
agents, faults on demand) and real Python tool bindings that count their executions.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
import subprocess
import sys

import pytest

from vox.compiler.api import check_source
from vox.compiler.plan import lower_plan
from vox.runtime.host import RunOptions, Runtime
from vox.runtime.program import ProgramError, load

SHOP = '''
import json, os, pathlib

def _count(name):
    path = pathlib.Path(os.environ["SHOP_COUNTS"])
    counts = json.loads(path.read_text()) if path.exists() else {}
    counts[name] = counts.get(name, 0) + 1
    path.write_text(json.dumps(counts))

def lookup(id):
    _count("lookup")
    return {"id": id, "total": "19.99"}

def refund(order_id, amount):
    _count("refund")
    return "rf_" + order_id
'''

PROGRAM = '''
label pii
provider sim = sim { clearance: [public, pii] }
provider claude = anthropic { key: env("VOX_TEST_NO_SUCH_KEY"), clearance: [public, pii] }

model small = sim/"sim-small" {
  context: 16_000
  max_output: 300
  price: { input: $1, output: $2 }
  capabilities: [tools, logprobs, json_schema]
}
model backup = claude/"claude-sim" {
  context: 16_000
  max_output: 300
  price: { input: $1, output: $2 }
  capabilities: [tools, json_schema]
}

type Order = { id: str, total: money }
type Result = { reply: str, refund: Receipt[refund]? }

tool lookup(id: str) -> Order {
  effect: read
  bind: python("shop:lookup")
}
tool refund(order_id: str, amount: money) -> str {
  effect: write
  idempotent: true
  approval: human
  bind: python("shop:refund")
}

agent clerk(request: str) -> Result {
  model: small
  fallback: [backup]
  tools: [lookup, refund]
  budget: { tokens: 20_000, cost: $0.10, steps: 6, tool_calls: 4 }
  prompt: "Handle this request: {request}"
}

agent claude_clerk(request: str) -> Result {
  model: backup
  tools: [lookup, refund]
  budget: { tokens: 20_000, cost: $0.10, steps: 6, tool_calls: 4 }
  prompt: "Handle this request: {request}"
}

agent tight(text: str) -> str {
  model: small
  budget: { tokens: 400, steps: 1 }
  prompt: "Summarise: {text}"
}

flow handle(request: str) -> Result {
  budget: { cost: $0.20 }
  return clerk(request: request)
}

flow handle_claude(request: str) -> Result {
  budget: { cost: $0.20 }
  return claude_clerk(request: request)
}

flow summarise(text: str) -> str {
  return tight(text: text)
}

flow pay(order_id: str) -> Result {
  return { reply: "paid", refund: refund(order_id: order_id, amount: $5) }
}

flow fan_out(a: str, b: str, c: str) -> list[str] {
  budget: { cost: $0.30 }
  par {
    let x = clerk(request: a)
    let y = clerk(request: b)
    let z = clerk(request: c)
  }
  return [x.reply, y.reply, z.reply]
}
'''

SCRIPT = [
    {"call": {"tool": "lookup", "args": {"id": "42"}}},
    {"call": {"tool": "refund", "args": {"order_id": "42", "amount": "19.99"}}},
    {"reply": {"reply": "Refunded 19.99 for order 42.", "refund": {"$receipt": "refund"}}},
]

# The installed console script, as a user runs it (never `python -m`, which hides import-path bugs).
VOXC = str(pathlib.Path(sys.executable).with_name("voxc"))


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def shop(tmp_path, monkeypatch):
    (tmp_path / "shop.py").write_text(SHOP)
    (tmp_path / "prog.vox").write_text(PROGRAM)
    monkeypatch.setenv("SHOP_COUNTS", str(tmp_path / "counts.json"))
    monkeypatch.delitem(sys.modules, "shop", raising=False)
    return tmp_path


def counts(folder: pathlib.Path) -> dict:
    path = folder / "counts.json"
    return json.loads(path.read_text()) if path.exists() else {}


def plan_of(folder: pathlib.Path, text: str = PROGRAM):
    result = check_source(str(folder / "prog.vox"), text)
    assert result.ok, [d.message for d in result.errors]
    return lower_plan(result)


def options(folder: pathlib.Path, **more) -> RunOptions:
    values = dict(durable=False, state_dir=str(folder / ".vox"), simulate="auto", base_dir=str(folder),
                  env={"VOX_RECEIPT_KEY": "test-key"})
    values.update(more)
    return RunOptions(**values)


async def sim(rt: Runtime, method: str, path: str, body: dict | None = None) -> dict:
    response = await rt.http.request(method, rt.sim_url + path, json=body)
    assert response.status_code < 300, response.text
    return response.json() if response.content else {}


# ---- agents, tools, receipts -----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("flow", ["handle", "handle_claude"], ids=["openai-wire", "anthropic-wire"])
async def test_a_tool_call_round_trip_signs_a_receipt(shop, flow):
    async with Runtime(plan_of(shop), options(shop)) as rt:
        agent = "clerk" if flow == "handle" else "claude_clerk"
        result = await rt.run(flow, {"request": "refund order 42"}, scripts={agent: SCRIPT}, approve=("refund",))
        assert result.ok, result.error
        assert result.output["reply"] == "Refunded 19.99 for order 42."
        receipt = result.output["refund"]
        assert receipt.startswith("rcpt_") and result.receipts == [receipt]
        assert rt.receipts.verify(result.run_id).ok
        assert 0 < result.spent["cost_micros"] <= 200_000
    assert counts(shop) == {"lookup": 1, "refund": 1}


@pytest.mark.anyio
async def test_a_fabricated_receipt_fails_the_run(shop):
    script = [{"reply": {"reply": "Refunded.", "refund": "rcpt_madeupmadeupmade"}}]
    async with Runtime(plan_of(shop), options(shop)) as rt:
        result = await rt.run("handle", {"request": "refund order 42"}, scripts={"clerk": script})
    assert result.status == "failed" and result.error["kind"] == "fabricated_receipt"
    assert "rcpt_madeupmadeupmade" in result.error["message"]
    assert counts(shop) == {}


@pytest.mark.anyio
async def test_a_receipt_of_another_run_is_fabricated_too(shop):
    async with Runtime(plan_of(shop), options(shop)) as rt:
        first = await rt.run("handle", {"request": "r"}, scripts={"clerk": SCRIPT}, approve=("refund",))
        stolen = [{"reply": {"reply": "Refunded.", "refund": first.output["refund"]}}]
        second = await rt.run("handle", {"request": "r"}, scripts={"clerk": stolen})
    assert second.error["kind"] == "fabricated_receipt"


@pytest.mark.anyio
async def test_a_flow_call_in_a_receipt_slot_gives_the_receipt(shop):
    async with Runtime(plan_of(shop), options(shop)) as rt:
        result = await rt.run("pay", {"order_id": "7"}, approve=("refund",))
    assert result.ok and result.output["refund"].startswith("rcpt_")
    assert counts(shop) == {"refund": 1}


@pytest.mark.anyio
async def test_an_invalid_answer_gets_one_repair_then_fails(shop):
    bad = [{"text": "not json"}, {"text": "still not json"}]
    async with Runtime(plan_of(shop), options(shop)) as rt:
        result = await rt.run("handle", {"request": "x"}, scripts={"clerk": bad})
    assert result.error["kind"] == "invalid_output"


@pytest.mark.anyio
async def test_invalid_input_is_refused_with_where(shop):
    async with Runtime(plan_of(shop), options(shop)) as rt:
        result = await rt.run("handle", {"request": 5})
    assert result.error["kind"] == "input" and "$.request" in result.error["message"]


# ---- budgets ---------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_call_that_cannot_fit_is_refused_before_it_is_sent(shop):
    async with Runtime(plan_of(shop), options(shop)) as rt:
        before = (await sim(rt, "GET", "/_sim/stats"))["requests"]
        result = await rt.run("summarise", {"text": "word " * 500})
        after = (await sim(rt, "GET", "/_sim/stats"))["requests"]
    assert result.error["kind"] == "budget" and "tokens" in result.error["message"]
    assert after == before  # nothing reached the provider


@pytest.mark.anyio
@pytest.mark.parametrize("latencies", [(0, 0, 0), (30, 0, 10), (0, 40, 5)])
async def test_racing_par_branches_never_overshoot_a_cap(shop, latencies):
    """The flow's cost cap is cut (as a tenant budget would) below what its three branches may
    reserve: whichever order the branches reach the ledger, the run never spends past it."""
    plan = plan_of(shop)
    flow = plan.flows["fan_out"]
    cut = flow.model_copy(update={"caps": flow.caps.model_copy(update={"cost_micros": 150_000})})
    plan = plan.model_copy(update={"flows": {**plan.flows, "fan_out": cut}})
    reply = [{"reply": {"reply": "ok", "refund": None}}]
    async with Runtime(plan, options(shop)) as rt:
        run_id = "race-" + "-".join(map(str, latencies))
        for ms, agent_step in zip(latencies, ("par0", "par1", "par2")):
            if ms:
                await sim(rt, "POST", "/_sim/faults", {"faults": [
                    {"kind": "latency", "ms": ms, "run": run_id, "step": f"fan_out.s0.{agent_step}.clerk"}]})
        result = await rt.run("fan_out", {"a": "1", "b": "2", "c": "3"}, run_id,
                              scripts={"clerk": reply * 3})
        await sim(rt, "DELETE", "/_sim/faults")
    assert result.error["kind"] == "budget"  # the third branch cannot reserve its $0.10 cap
    assert result.spent["cost_micros"] <= 150_000


# ---- faults and fallback -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_rate_limit_is_retried_after_its_retry_after(shop):
    async with Runtime(plan_of(shop), options(shop)) as rt:
        await sim(rt, "POST", "/_sim/faults", {"faults": [
            {"kind": "status", "status": 429, "retry_after": 0.05, "count": 1, "agent": "clerk"}]})
        result = await rt.run("handle", {"request": "x"}, scripts={"clerk": [{"reply": {"reply": "ok", "refund": None}}]})
        stats = await sim(rt, "GET", "/_sim/stats")
    assert result.ok, result.error
    assert sum(stats["faults_injected"].values()) == 1


@pytest.mark.anyio
async def test_a_failing_model_falls_back_to_the_next_in_the_chain(shop):
    events = []
    async with Runtime(plan_of(shop), options(shop), events.append) as rt:
        await sim(rt, "POST", "/_sim/faults", {"faults": [
            {"kind": "status", "status": 500, "count": 20, "protocol": "openai"}]})
        result = await rt.run("handle", {"request": "x"}, scripts={"clerk": [{"reply": {"reply": "ok", "refund": None}}]})
    assert result.ok, result.error
    assert [e["model"] for e in events if e["event"] == "fallback"] == ["backup"]


# ---- durability and approval -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_finished_durable_run_is_not_run_again(shop):
    async with Runtime(plan_of(shop), options(shop, durable=True)) as rt:
        first = await rt.run("pay", {"order_id": "9"}, "run-once", approve=("refund",))
        again = await rt.run("pay", {"order_id": "9"}, "run-once", approve=("refund",))
    assert first.ok and again.output == first.output
    assert counts(shop) == {"refund": 1}


def voxc(folder: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "SHOP_COUNTS": str(folder / "counts.json"), "VOX_RECEIPT_KEY": "test-key",
           "HOME": str(folder)}
    return subprocess.run([VOXC, *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_run_waits_for_approval_and_resumes_after_voxc_approve(shop):
    waiting = voxc(shop, "run", "prog.vox", "--flow", "pay", "--input", '{"order_id": "42"}', "--run-id", "r1")
    assert waiting.returncode == 4, waiting.stderr
    assert "waiting for approval of `refund`" in waiting.stderr and "voxc approve r1" in waiting.stderr
    assert counts(shop) == {}
    approved = voxc(shop, "approve", "r1")
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["refund"].startswith("rcpt_")
    assert counts(shop) == {"refund": 1}
    again = voxc(shop, "approve", "r1")
    assert again.returncode == 1 and "not waiting" in again.stderr
    verified = voxc(shop, "receipts", "verify", "r1")
    assert verified.returncode == 0 and "1 receipts" in verified.stdout


def test_a_denied_call_fails_the_run_without_calling_the_tool(shop):
    assert voxc(shop, "run", "prog.vox", "--flow", "pay", "--input", '{"order_id": "1"}', "--run-id", "r2").returncode == 4
    denied = voxc(shop, "approve", "r2", "--deny")
    assert denied.returncode == 1 and "denied" in denied.stderr
    assert counts(shop) == {}


def test_tampered_receipts_fail_verification(shop):
    assert voxc(shop, "run", "prog.vox", "--flow", "pay", "--input", '{"order_id": "3"}', "--run-id", "r3",
                "--approve", "refund").returncode == 0
    con = sqlite3.connect(str(shop / ".vox" / "state.sqlite"), isolation_level=None)
    con.execute("DROP TRIGGER IF EXISTS vox_receipt_no_update")  # what someone with the file can do
    con.execute("UPDATE vox_receipt SET tool = 'lookup'")
    con.close()
    verified = voxc(shop, "receipts", "verify", "r3")
    assert verified.returncode == 1 and "FAILED" in verified.stdout


# ---- embedding ---------------------------------------------------------------------------------------


def test_the_python_api_loads_and_runs_a_program(shop):
    program = load(str(shop / "prog.vox"), options(shop))
    result = program.run("pay", {"order_id": "5"}, approve=("refund",))
    assert result.ok and result.output["reply"] == "paid"
    with pytest.raises(ProgramError, match="V1001"):
        (shop / "broken.vox").write_text("flow f() -> str {\n  return nope\n}\n")
        load(str(shop / "broken.vox"))


@pytest.mark.anyio
async def test_the_async_api(shop):
    program = load(str(shop / "prog.vox"), options(shop))
    result = await program.run_async("pay", {"order_id": "6"}, approve=("refund",))
    assert result.ok


def test_every_example_test_passes_on_the_simulator():
    root = pathlib.Path(__file__).resolve().parent.parent
    done = subprocess.run([VOXC, "test", *sorted(map(str, (root / "examples").glob("*.vox")))],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 failed" in done.stdout



# ---- the command line --------------------------------------------------------------------------------


def test_voxc_run_prints_the_result_and_says_what_is_simulated(shop):
    done = voxc(shop, "run", "prog.vox", "--flow", "summarise", "--input", '{"text": "short"}', "--no-durable")
    assert done.returncode == 0, done.stderr
    assert isinstance(json.loads(done.stdout), str)
    assert "provider `sim` is simulated: its protocol is `sim`" in done.stderr
    assert "provider `claude` is simulated: VOX_TEST_NO_SUCH_KEY is not set" in done.stderr


def test_voxc_run_json_and_failures(shop):
    done = voxc(shop, "run", "prog.vox", "--flow", "summarise", "--input", json.dumps({"text": "w " * 500}),
                "--json", "--no-durable")
    assert done.returncode == 1
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "failed" and outcome["error"]["kind"] == "budget"
    assert "failed at summarise.s0.tight/model[0]" in done.stderr


@pytest.mark.parametrize("args, message", [
    (["--input", "{nope"], "--input is not valid JSON"),
    (["--input", "[1]"], "--input is a JSON object"),
    (["--input", "@missing.json"], "cannot read missing.json"),
    (["--flow", "nope"], "no flow `nope`"),
    ([], "choose a flow with --flow NAME"),
])
def test_voxc_run_usage_errors(shop, args, message):
    done = voxc(shop, "run", "prog.vox", *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_voxc_run_refuses_a_program_with_errors(shop):
    (shop / "bad.vox").write_text("flow f() -> str {\n  return nope\n}\n")
    done = voxc(shop, "run", "bad.vox")
    assert done.returncode == 1 and "V1001" in done.stderr


def test_voxc_test_reports_failures(shop):
    (shop / "t.vox").write_text(PROGRAM + '''
test "the clerk replies" {
  flow: handle
  input: { request: "hi" }
  mock clerk: reply { reply: "hello", refund: none }
  expect: output.reply == "hello"
}
test "a wrong expectation fails" {
  flow: handle
  input: { request: "hi" }
  mock clerk: reply { reply: "hello", refund: none }
  expect: output.reply == "bye"
}
''')
    done = voxc(shop, "test", "t.vox")
    assert done.returncode == 1
    assert "the clerk replies PASSED" in done.stdout and "a wrong expectation fails FAILED" in done.stdout
    assert "1 passed, 1 failed" in done.stdout
    only = voxc(shop, "test", "t.vox", "-k", "clerk")
    assert only.returncode == 0 and "1 passed, 0 failed" in only.stdout


# ---- gates -------------------------------------------------------------------------------------------

GATED = '''
provider sim = sim { clearance: [public] }
model scored = sim/"sim-scored" {
  context: 16_000
  max_output: 400
  price: { input: $1, output: $2 }
  capabilities: [logprobs, json_schema]
}
type Essay = { title: str, body: str }
gate sure(e: Essay) {
  check confidence >= 0.7 else retry(1)
}
agent writer(topic: str) -> Essay {
  model: scored
  budget: { tokens: 8_000, steps: 3 }
  gates: [sure]
  prompt: "Write about {topic}."
}
flow write(topic: str) -> Essay {
  return writer(topic: topic)
}
'''

LONG = {"title": "On rivers", "body": " ".join(["the river runs to the sea"] * 40)}


@pytest.mark.anyio
async def test_a_low_confidence_answer_is_stopped_mid_stream_and_retried(shop):
    events = []
    async with Runtime(plan_of(shop, GATED), options(shop), events.append) as rt:
        script = [{"reply": LONG, "confidence": 0.2}, {"reply": LONG, "confidence": 0.95}]
        result = await rt.run("write", {"topic": "rivers"}, "halt-then-pass", scripts={"writer": script})
    assert result.ok, result.error
    assert [e["event"] for e in events if e["event"].startswith("gate")] == ["gate_halted_stream"]
    halted, full = [e["usage"]["output_tokens"] for e in events if e["event"] == "model_end"]
    assert halted < 50 < 200 < full  # the first answer was cut short, not paid for in full


@pytest.mark.anyio
async def test_a_stream_stopped_every_time_fails_the_gate(shop):
    async with Runtime(plan_of(shop, GATED), options(shop)) as rt:
        script = [{"reply": LONG, "confidence": 0.2}] * 2
        result = await rt.run("write", {"topic": "rivers"}, "halt-twice", scripts={"writer": script})
    assert result.error["kind"] == "gate" and "stopped mid-stream" in result.error["message"]
    assert result.spent["model_calls"] == 2


# ---- run-wide budgets --------------------------------------------------------------------------------

RUNWIDE = '''
budget tenant { cost: $0.05 per day, requests: 2 per second }
provider sim = sim { clearance: [public] }
model small = sim/"sim-small" { context: 8_000, max_output: 100, price: { input: $1, output: $2 } }
agent say(x: str) -> str {
  model: small
  budget: { cost: $0.01, steps: 1 }
  prompt: "Say {x}."
}
flow thrice(x: str) -> list[str] {
  budget: { cost: $0.04 }
  let a = say(x: x)
  let b = say(x: x)
  let c = say(x: x)
  return [a, b, c]
}
'''


@pytest.mark.anyio
async def test_a_run_reserves_its_bound_against_the_tenant_and_settles_what_it_spent(shop):
    from vox.runtime.fleet import SpendLedger

    async with Runtime(plan_of(shop, RUNWIDE), options(shop, tenant="acme")) as rt:
        started = anyio_clock()
        first = await rt.run("thrice", {"x": "hi"}, "rw-1")
        took = anyio_clock() - started
        ledger = SpendLedger(rt.runwide.url)
        usage = ledger.usage("tenant:acme", "day")
        assert first.ok and usage.spent == first.spent["cost_micros"] and usage.reserved == 0
        assert took >= 0.9  # 3 model calls at 2 per second: the third waited for the next second
        ledger.reserve("tenant:acme", "day", 50_000, 30_000, "another-run/run")  # someone else's run
        second = await rt.run("thrice", {"x": "hi"}, "rw-2")
    assert second.error["kind"] == "budget" and "cannot start" in second.error["message"]
    assert second.spent.get("model_calls", 0) == 0  # refused before any request


def anyio_clock() -> float:
    import time

    return time.monotonic()


# ---- coordination: events and leases from a program ------------------------------------------------

COORDINATED = '''
provider sim = sim { clearance: [public] }
tool publish(topic: str, message: str) -> int {
  effect: write
  bind: python("vox.stdlib.coordination:publish")
}
tool read_events(topic: str, after: int) -> list[str] {
  effect: read
  bind: python("vox.stdlib.coordination:read_events")
}
tool take_lease(name: str, seconds: int) -> int {
  effect: write
  bind: python("vox.stdlib.coordination:take_lease")
}
tool check_lease(name: str, token: int) -> bool {
  effect: read
  bind: python("vox.stdlib.coordination:check_lease")
}
type Seen = { first: int, second: int, messages: list[str], token: int, other: int, valid: bool }
flow talk(x: str) -> Seen {
  let a = publish(topic: "notes", message: x)
  let b = publish(topic: "notes", message: "and more")
  let token = take_lease(name: "ledger", seconds: 30)
  let again = take_lease(name: "ledger", seconds: 30)
  return { first: a, second: b, messages: read_events(topic: "notes", after: 0), token: token,
           other: again, valid: check_lease(name: "ledger", token: token) }
}
'''


@pytest.mark.anyio
async def test_a_program_publishes_events_and_takes_leases(shop):
    async with Runtime(plan_of(shop, COORDINATED), options(shop, tenant="acme")) as rt:
        first = await rt.run("talk", {"x": "hello"}, "talk-1")
        second = await rt.run("talk", {"x": "again"}, "talk-2")
    assert first.ok, first.error
    out = first.output
    assert (out["first"], out["second"], out["messages"]) == (1, 2, ["hello", "and more"])
    assert out["token"] > 0 and out["other"] == out["token"] and out["valid"]  # the holder re-takes its lease
    # another run of the tenant: its own events, but the lease is held by the first run
    assert second.output["messages"] == ["again", "and more"] and second.output["token"] == 0
