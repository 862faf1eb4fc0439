"""Tool timeouts that hold, end to end on the simulator with real Python tool bindings.

The bindings block on a :class:`threading.Event` the test holds: a call fails at its timeout while
the tool is still blocked, and once the test lets the tool go, what it returns is dropped. A
`write` tool that times out is not tried again (its outcome is unknown) unless it is
`idempotent`, and then every attempt carries the same idempotency key.
"""

from __future__ import annotations

import importlib
import json
import sys

import anyio
import pytest

from vox.compiler.api import check_source
from vox.compiler.plan import lower_plan
from vox.runtime.host import RunOptions, Runtime

SLOW = '''
import threading

import anyio

RELEASE = threading.Event()   # the test lets the blocked tools return
RETURNED = threading.Event()  # a blocked tool has returned (late)
CALLS = []                    # (tool, idempotency key) of every attempt that started
LATE = []                     # what the blocked tools returned, after their timeout
CANCELLED = []                # async attempts that were cancelled


def stall(x):
    CALLS.append(("stall", None))
    RELEASE.wait()
    LATE.append("late " + x)
    RETURNED.set()
    return "late " + x


def send(x, idempotency_key=None):
    CALLS.append(("send", idempotency_key))
    RELEASE.wait()
    LATE.append("sent " + x)
    return "sent " + x


def put(x, idempotency_key=None):
    CALLS.append(("put", idempotency_key))
    RELEASE.wait()
    LATE.append("put " + x)
    return "put " + x


async def wait_async(x):
    CALLS.append(("wait_async", None))
    try:
        await anyio.sleep_forever()
    except BaseException:
        CANCELLED.append(x)
        raise
'''

PROGRAM = '''
provider sim = sim { clearance: [public] }

model small = sim/"sim-small" {
  context: 16_000
  max_output: 200
  price: { input: $1, output: $2 }
  capabilities: [tools, json_schema]
}

tool stall(x: str) -> str {
  effect: read
  timeout: 200ms
  bind: python("slow:stall")
}
tool send(x: str) -> str {
  effect: write
  timeout: 200ms
  retries: 2
  bind: python("slow:send")
}
tool put(x: str) -> str {
  effect: write
  idempotent: true
  timeout: 200ms
  retries: 2
  bind: python("slow:put")
}
tool wait_async(x: str) -> str {
  effect: read
  timeout: 200ms
  bind: python("slow:wait_async")
}

agent helper(x: str) -> str {
  model: small
  tools: [stall]
  budget: { tokens: 20_000, cost: $0.10, steps: 3, tool_calls: 2 }
  prompt: "Look up {x}."
}

flow direct(x: str) -> str {
  return stall(x: x)
}
flow asked(x: str) -> str {
  return helper(x: x)
}
flow send_once(x: str) -> str {
  return send(x: x)
}
flow put_again(x: str) -> str {
  return put(x: x)
}
flow wait_once(x: str) -> str {
  return wait_async(x: x)
}
'''


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def slow(tmp_path, monkeypatch):
    """The bindings' module, imported as the runtime will find it (the same module object)."""
    (tmp_path / "slow.py").write_text(SLOW)
    monkeypatch.delitem(sys.modules, "slow", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("slow")
    yield module
    module.RELEASE.set()  # let any thread still blocked finish


def plan_of(folder):
    result = check_source(str(folder / "prog.vox"), PROGRAM)
    assert result.ok, [d.message for d in result.errors]
    return lower_plan(result)


def options(folder) -> RunOptions:
    return RunOptions(durable=False, state_dir=str(folder / ".vox"), simulate="auto", base_dir=str(folder),
                      env={"VOX_RECEIPT_KEY": "test-key"})


@pytest.mark.anyio
async def test_a_blocked_tool_fails_at_its_timeout_and_its_late_result_is_dropped(slow, tmp_path):
    events: list[dict] = []
    async with Runtime(plan_of(tmp_path), options(tmp_path), events.append) as rt:
        result = await rt.run("direct", {"x": "a"})
        assert slow.LATE == []  # the run ended while the tool was still blocked
        slow.RELEASE.set()
        await anyio.to_thread.run_sync(slow.RETURNED.wait, 10)
    assert result.status == "failed"
    assert result.error["kind"] == "tool_timeout" and "timed out after 0.2s" in result.error["message"]
    assert slow.LATE == ["late a"]  # the tool did finish, later ...
    assert result.output is None and "late a" not in repr(result)  # ... and its result was not used
    assert not [e for e in events if e["event"] == "tool_end"]  # nor recorded as the step's end


@pytest.mark.anyio
async def test_an_agent_sees_the_timeout_not_the_late_result(slow, tmp_path):
    """The tool returns while the agent is still running (released when the agent's next model call
    starts): the model is told the call timed out, and the late value goes nowhere."""
    sent: list = []
    events: list[dict] = []

    def watch(event: dict) -> None:
        events.append(event)
        if event["event"] == "model_start" and event["step"].endswith("/model[1]"):
            slow.RELEASE.set()
            assert slow.RETURNED.wait(10)  # the tool has returned its late value by now

    script = [{"call": {"tool": "stall", "args": {"x": "a"}}}, {"reply": "it timed out"}]
    async with Runtime(plan_of(tmp_path), options(tmp_path), watch) as rt:
        complete = rt.router.complete

        async def spy(model, request, observer=None):  # what the model is sent, as it is sent
            sent.append(request.messages)
            return await complete(model, request, observer)

        rt.router.complete = spy
        result = await rt.run("asked", {"x": "a"}, scripts={"helper": script})
    assert result.ok, result.error
    assert result.output == "it timed out"
    assert slow.LATE == ["late a"]
    [tool_message] = [m for m in sent[1] if m.role == "tool"]
    assert tool_message.is_error and "timed out after 0.2s" in tool_message.content
    assert all("late a" not in m.content for messages in sent for m in messages)
    assert not [e for e in events if e["event"] == "tool_end"]


@pytest.mark.anyio
async def test_a_write_tool_that_times_out_is_not_retried(slow, tmp_path):
    """It may have acted: like a call cut off by a crash, it waits for a person instead."""
    async with Runtime(plan_of(tmp_path), options(tmp_path)) as rt:
        result = await rt.run("send_once", {"x": "a"})
    assert result.status == "waiting" and result.waiting["kind"] == "again", result
    assert result.waiting["step"].endswith("#timeout") and "may already have acted" in result.waiting["reason"]
    assert result.waiting["idempotency_key"]
    assert [name for name, _ in slow.CALLS] == ["send"]  # once, whatever its `retries: 2`
    assert result.receipts == []  # nothing was signed for it


@pytest.mark.anyio
@pytest.mark.parametrize("verdict", [True, False])
async def test_a_person_decides_what_happens_after_a_write_tool_timed_out(slow, tmp_path, verdict):
    async with Runtime(plan_of(tmp_path), options(tmp_path)) as rt:
        spec = rt.spec("send_once", {"x": "a"})
        from vox.runtime.executor.journal import NoJournal

        result = await rt.execute_spec(spec, NoJournal(), decisions={"send_once.s0.send#timeout": verdict})
    calls = [name for name, _ in slow.CALLS]
    if verdict:  # called again, with the same idempotency key: times out again, and fails
        assert calls == ["send", "send"] and len({key for _, key in slow.CALLS}) == 1
    else:  # the call fails with its timeout; the tool is not called again
        assert calls == ["send"]
    assert result.status in ("failed", "waiting"), result


@pytest.mark.anyio
async def test_an_idempotent_write_tool_is_retried_with_the_same_key(slow, tmp_path):
    async with Runtime(plan_of(tmp_path), options(tmp_path)) as rt:
        result = await rt.run("put_again", {"x": "a"})
    assert result.error["kind"] == "tool_timeout"
    keys = [key for name, key in slow.CALLS if name == "put"]
    assert len(keys) == 3 and len(set(keys)) == 1 and keys[0]  # 1 + retries attempts, one key
    assert "outcome is unknown" in result.error["message"]


@pytest.mark.anyio
async def test_an_async_tool_is_cancelled_at_its_timeout(slow, tmp_path):
    async with Runtime(plan_of(tmp_path), options(tmp_path)) as rt:
        result = await rt.run("wait_once", {"x": "a"})
    assert result.error["kind"] == "tool_timeout"
    assert slow.CANCELLED == ["a"]


def test_the_timeout_failure_says_whether_the_outcome_is_unknown():
    from vox.runtime.executor.errors import ToolFailed, ToolTimedOut

    failure = ToolTimedOut("`send` timed out", attempts=1, unknown_outcome=True)
    assert isinstance(failure, ToolFailed) and failure.unknown_outcome and failure.kind == "tool_timeout"
    assert not ToolFailed("`lookup` failed").unknown_outcome


CLI_PROGRAM = '''
provider sim = sim { clearance: [public] }
tool stall(x: str) -> str {
  effect: read
  timeout: 300ms
  bind: python("sleepy:stall")
}
flow direct(x: str) -> str {
  return stall(x: x)
}
'''

SLEEPY = '''
import os, pathlib, time

def stall(x):
    pathlib.Path(os.environ["STARTED"]).write_text("started")
    time.sleep(5)  # the tool's own work, far past its timeout
    pathlib.Path(os.environ["LATE"]).write_text("late " + x)
    return "late " + x
'''


def test_a_tool_sleeping_past_its_timeout_fails_the_run_from_the_console_script(tmp_path):
    import os
    import pathlib
    import subprocess

    (tmp_path / "prog.vox").write_text(CLI_PROGRAM)
    (tmp_path / "sleepy.py").write_text(SLEEPY)
    voxc = str(pathlib.Path(sys.executable).with_name("voxc"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "STARTED": str(tmp_path / "started"), "LATE": str(tmp_path / "late")}
    done = subprocess.run([voxc, "run", "prog.vox", "--input", '{"x": "a"}', "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert (tmp_path / "started").exists()  # the tool ran ...
    outcome = json.loads(done.stdout)
    assert done.returncode == 1 and outcome["status"] == "failed", done.stderr
    assert outcome["error"]["kind"] == "tool_timeout" and "timed out" in outcome["error"]["message"]
    assert not (tmp_path / "late").exists()  # ... and the run did not wait for its late result
