"""Crash trials: a run killed with SIGKILL anywhere is resumed to the same result, with no side
effect repeated and no spend lost or counted twice — on SQLite and on the local PostgreSQL.

Each trial runs `voxc run` in a child process that dies at a point hypothesis chooses: inside a
tool call before or after its effect (the tool kills its own process), or during a model call (the
test kills the process while the simulator, in a process of its own, holds the request). Then
`voxc run --resume RUN_ID` finishes the run and the trial compares it with an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EFFECTS = '''
import json, os, pathlib

def _log(entry):
    with open(os.environ["EFFECTS_LOG"], "a") as f:
        f.write(json.dumps(entry) + "\\n")
        f.flush()
        os.fsync(f.fileno())

def _crash(point):
    if os.environ.get("CRASH_AT") == point:
        os.kill(os.getpid(), 9)

def _act(tool, key):
    """An effect applied at most once per idempotency key, as an idempotent API does."""
    _crash(tool + ":before")
    _log({"tool": tool, "key": key, "event": "executed"})
    _crash(tool + ":after")
    return key

def charge(order_id, idempotency_key=None):
    _act("charge", idempotency_key)
    return "ch_" + order_id

def ship(order_id, note, idempotency_key=None):
    _act("ship", idempotency_key)
    return "sh_" + order_id

def notify(order_id):
    _act("notify", None)
    return "sent"
'''

PROGRAM = '''
provider sim = openai_compatible { base_url: env("TRIAL_SIM_URL"), clearance: [public] }
model writer_model = sim/"sim-writer" {
  context: 8_000
  max_output: 200
  price: { input: $1, output: $2 }
  capabilities: [json_schema]
}
type Note = { title: str, body: str }
type Done = { charge: str, shipment: str, title: str }

tool charge(order_id: str) -> str {
  effect: write
  idempotent: true
  bind: python("effects:charge")
}
tool ship(order_id: str, note: str) -> str {
  effect: external
  idempotent: true
  bind: python("effects:ship")
}
tool notify(order_id: str) -> str {
  effect: external
  bind: python("effects:notify")
}
agent writer(order: str) -> Note {
  model: writer_model
  budget: { tokens: 4_000, cost: $0.05, steps: 1 }
  prompt: "Write a shipping note for order {order}."
}
flow fulfil(order: str) -> Done {
  budget: { cost: $0.10 }
  let c = charge(order_id: order)
  let note = writer(order: order)
  let s = ship(order_id: order, note: note.title)
  return { charge: c, shipment: s, title: note.title }
}
flow announce(order: str) -> str {
  return notify(order_id: order)
}
'''

POINTS = ["charge:before", "charge:after", "model", "ship:before", "ship:after"]
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

# The installed console script, as a user runs it (never `python -m`, which hides import-path bugs).
VOXC = str(pathlib.Path(sys.executable).with_name("voxc"))


def _pg_up() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means: not available here
        return False


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(not _pg_up(), reason="PostgreSQL is not running"))]


class Trial:
    def __init__(self, root: pathlib.Path, backend: str, sim_url: str):
        self.root = root
        self.backend = backend
        self.sim_url = sim_url
        (root / "effects.py").write_text(EFFECTS)
        (root / "prog.vox").write_text(PROGRAM)

    def env(self, run: str, crash: str | None) -> dict:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root),
               "EFFECTS_LOG": str(self.root / f"{run}.log"), "VOX_RECEIPT_KEY": "trial-key",
               "TRIAL_SIM_URL": self.sim_url + "/v1"}
        if crash:
            env["CRASH_AT"] = crash
        if self.backend == "postgresql":
            env["VOX_DATABASE_URL"] = PG_URL
        return env

    def voxc(self, run: str, *args: str, crash: str | None = None) -> subprocess.Popen:
        return subprocess.Popen([VOXC, *args], cwd=self.root, env=self.env(run, crash),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def start(self, run: str, flow: str = "fulfil", crash: str | None = None) -> subprocess.Popen:
        return self.voxc(run, "run", "prog.vox", "--flow", flow, "--input", '{"order": "A7"}', "--run-id", run,
                         "--json", "--seed", "3", crash=crash)

    def resume(self, run: str, *more: str) -> tuple[int, dict | None, str]:
        p = self.voxc(run, "run", "--resume", run, "--json", *more)
        out, err = p.communicate(timeout=120)
        return p.returncode, (json.loads(out) if out.strip() else None), err

    def executions(self, run: str) -> list[dict]:
        path = self.root / f"{run}.log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def sim():
    from vox.runtime.sim.server import start_process

    url, process = start_process(seed=3)
    yield url
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)


def _sim(url: str, method: str, path: str, body: dict | None = None) -> dict:
    import httpx

    response = httpx.request(method, url + path, json=body, timeout=10)
    response.raise_for_status()
    return response.json() if response.content else {}


def crash_run(trial: Trial, run: str, point: str) -> None:
    """Start the run and let it die at ``point``."""
    if point == "model":
        _sim(trial.sim_url, "POST", "/_sim/faults", {"faults": [{"kind": "latency", "ms": 4000, "run": run}]})
        seen = _sim(trial.sim_url, "GET", "/_sim/stats")["requests"].get("openai", 0)
        p = trial.start(run)
        deadline = time.monotonic() + 60
        # the model request has reached the simulator, which holds it: kill the run there
        while _sim(trial.sim_url, "GET", "/_sim/stats")["requests"].get("openai", 0) == seen \
                and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        p.kill()
        p.wait(timeout=30)
        _sim(trial.sim_url, "DELETE", "/_sim/faults")
    else:
        p = trial.start(run, crash=point)
        p.communicate(timeout=120)
    assert p.returncode == -signal.SIGKILL, f"the run did not die at {point}"


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(point=st.sampled_from(POINTS))
def test_a_run_killed_anywhere_resumes_with_no_repeated_effect(tmp_path_factory, sim, backend, point):
    root = tmp_path_factory.mktemp("trial")
    trial = Trial(root, backend, sim)
    reference = f"ref-{uuid.uuid4().hex[:8]}"
    out, err = trial.start(reference).communicate(timeout=120)
    expected = json.loads(out)
    assert expected["status"] == "ok", err

    run = f"crash-{uuid.uuid4().hex[:8]}"
    crash_run(trial, run, point)
    code, outcome, err = trial.resume(run)
    assert code == 0, err
    assert outcome["status"] == "ok"
    # the same result as a run nobody interrupted (the simulator answers by run, so compare shapes)
    assert outcome["output"]["charge"] == expected["output"]["charge"]
    assert outcome["output"]["shipment"] == expected["output"]["shipment"]
    # every effect happened once per idempotency key; a step finished before the crash never ran again
    done = trial.executions(run)
    for tool in ("charge", "ship"):
        keys = [e["key"] for e in done if e["tool"] == tool]
        assert len(set(keys)) == 1, (tool, keys)
        crashed_inside = point == f"{tool}:after"
        assert len(keys) == (2 if crashed_inside else 1), (tool, point, keys)
    # spend counted once: the calls charged are those of an uninterrupted run (the simulator's answer
    # text depends on the run id, so costs differ by a few tokens; the counts may not)
    for dimension in ("model_calls", "tool_calls"):
        assert outcome["spent"][dimension] == expected["spent"][dimension] == {"model_calls": 1, "tool_calls": 2}[dimension]
    assert 0 < outcome["spent"]["cost_micros"] <= 100_000
    # one receipt per effectful call, and the chain verifies
    assert len(outcome["receipts"]) == 2
    p = trial.voxc(run, "receipts", "verify", run)
    verified, _ = p.communicate(timeout=60)
    assert p.returncode == 0 and "2 receipts" in verified


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_non_idempotent_tool_that_crashed_mid_call_waits_for_a_decision(tmp_path, sim, backend):
    trial = Trial(tmp_path, backend, sim)
    run = f"notify-{uuid.uuid4().hex[:8]}"
    p = trial.start(run, flow="announce", crash="notify:after")
    p.communicate(timeout=120)
    assert p.returncode == -signal.SIGKILL
    code, outcome, err = trial.resume(run)
    assert code == 4 and outcome["status"] == "waiting"
    assert outcome["waiting"]["kind"] == "again" and outcome["waiting"]["tool"] == "notify"
    assert "may already have acted" in outcome["waiting"]["reason"]
    assert len(trial.executions(run)) == 1  # not silently called again
    p = trial.voxc(run, "approve", run, "--json")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert json.loads(out)["output"] == "sent"
    assert len(trial.executions(run)) == 2  # a person chose to call it again


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_changed_program_cannot_resume_an_old_run(tmp_path, sim, backend):
    trial = Trial(tmp_path, backend, sim)
    run = f"changed-{uuid.uuid4().hex[:8]}"
    p = trial.start(run, crash="ship:before")
    p.communicate(timeout=120)
    (tmp_path / "prog.vox").write_text(PROGRAM.replace("max_output: 200", "max_output: 300"))
    code, _, err = trial.resume(run, "prog.vox")
    assert code == 1 and "started by another version of this program" in err
    code, outcome, err = trial.resume(run)  # with the plan it started with
    assert code == 0 and outcome["status"] == "ok", err


def test_voxc_runs_lists_and_shows_runs(tmp_path, sim):
    trial = Trial(tmp_path, "sqlite", sim)
    out, err = trial.start("listed").communicate(timeout=120)
    p = trial.voxc("listed", "runs", "--json")
    listing, _ = p.communicate(timeout=60)
    rows = json.loads(listing)
    assert [(r["run"], r["status"], r["flow"]) for r in rows] == [("listed", "ok", "fulfil")]
    assert rows[0]["spent_micros"] > 0
    p = trial.voxc("listed", "runs", "show", "listed")
    shown, _ = p.communicate(timeout=60)
    assert "fulfil.s0.charge" in shown and "fulfil.s1.writer/model[0]" in shown and "fulfil.s2.ship" in shown


# ---- the run spec, decisions and values at rest -----------------------------------------------------

def test_reusing_a_run_id_for_another_input_is_refused(tmp_path, sim):
    trial = Trial(tmp_path, "sqlite", sim)
    out, err = trial.start("reused").communicate(timeout=120)
    assert json.loads(out)["status"] == "ok", err
    again = trial.voxc("reused", "run", "prog.vox", "--flow", "fulfil", "--input", '{"order": "B8"}',
                       "--run-id", "reused", "--json", "--seed", "3")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 2 and "already used by a run of another input" in err, err
    same = trial.start("reused")  # the same start again: the stored outcome, nothing repeated
    out, err = same.communicate(timeout=120)
    assert same.returncode == 0 and json.loads(out)["output"]["charge"] == "ch_A7", err
    assert len(trial.executions("reused")) == 2  # charge and ship, once each


def test_resume_refuses_flags_it_would_ignore(tmp_path, sim):
    trial = Trial(tmp_path, "sqlite", sim)
    trial.start("flags", crash="ship:before").communicate(timeout=120)
    for flags in (["--seed", "9"], ["--input", "{}"], ["--approve", "ship"], ["--sim"]):
        code, _, err = trial.resume("flags", *flags)
        assert code == 2 and "cannot be given with --resume" in err, (flags, err)
    code, outcome, err = trial.resume("flags")
    assert code == 0 and outcome["status"] == "ok", err


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_interrupted_call_that_already_happened_goes_on_with_the_entered_result(tmp_path, sim, backend):
    trial = Trial(tmp_path, backend, sim)
    run = f"done-{uuid.uuid4().hex[:8]}"
    trial.start(run, flow="announce", crash="notify:after").communicate(timeout=120)
    code, outcome, err = trial.resume(run)
    assert code == 4 and outcome["waiting"]["kind"] == "again", err
    assert outcome["waiting"]["idempotency_key"] and outcome["waiting"]["arguments"] == {"order_id": "A7"}
    p = trial.voxc(run, "runs")
    listing, _ = p.communicate(timeout=60)
    assert "waits for whether to call `notify` again" in listing, listing
    p = trial.voxc(run, "approve", run, "--already-done", "--result", '"sent by hand"', "--json")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0 and json.loads(out)["output"] == "sent by hand", err
    assert len(trial.executions(run)) == 1  # not called again
    p = trial.voxc(run, "receipts", "verify", run)
    verified, err = p.communicate(timeout=60)
    assert p.returncode == 0 and "1 receipts" in verified, err


APPROVAL_PROGRAM = '''
provider sim = sim { clearance: [public] }
tool refund(order_id: str) -> str {
  effect: write
  idempotent: true
  approval: human
  bind: python("payments:refund")
}
flow pay(order_id: str) -> str {
  return refund(order_id: order_id)
}
'''

PAYMENTS = '''
import json, os

def refund(order_id, idempotency_key=None):
    with open(os.environ["EFFECTS_LOG"], "a") as f:
        f.write(json.dumps({"tool": "refund", "key": idempotency_key}) + "\\n")
    return "refunded " + order_id
'''


def test_approval_through_the_console_script_runs_the_tool_from_its_program_s_folder(tmp_path):
    """`voxc approve` from another folder, with only --state-dir: the spec says where the
    program's bindings are, so the approved python tool imports and runs."""
    program = tmp_path / "shop"
    program.mkdir()
    (program / "prog.vox").write_text(APPROVAL_PROGRAM)
    (program / "payments.py").write_text(PAYMENTS)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    state = str(tmp_path / "state")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "EFFECTS_LOG": str(tmp_path / "effects.log")}
    started = subprocess.run([VOXC, "run", str(program / "prog.vox"), "--input", '{"order_id": "42"}',
                              "--run-id", "pay-1", "--state-dir", state], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    assert started.returncode == 4 and "waiting for approval of `refund`" in started.stderr, started.stderr
    assert not (tmp_path / "effects.log").exists()
    approved = subprocess.run([VOXC, "approve", "pay-1", "--state-dir", state, "--json"], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=120)
    assert approved.returncode == 0, approved.stderr
    outcome = json.loads(approved.stdout)
    assert outcome["status"] == "ok" and outcome["output"] == "refunded 42", outcome
    assert len((tmp_path / "effects.log").read_text().splitlines()) == 1


SEALED_PROGRAM = '''
label pii
provider sim = sim { clearance: [public, pii] }
tool remember(email: str @pii) -> str @pii {
  effect: write
  idempotent: true
  clearance: [pii]
  bind: python("memory:remember")
}
flow keep(email: str @pii) -> str @pii {
  return remember(email: email)
}
'''


def test_labelled_values_are_sealed_at_rest(tmp_path):
    (tmp_path / "prog.vox").write_text(SEALED_PROGRAM)
    (tmp_path / "memory.py").write_text("def remember(email, idempotency_key=None):\n    return 'kept ' + email\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    secret = "ada.lovelace@example.org"
    done = subprocess.run([VOXC, "run", "prog.vox", "--input", json.dumps({"email": secret}), "--run-id", "k1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and secret in done.stdout, done.stderr
    key = tmp_path / ".vox" / "state.key"
    assert key.exists() and (key.stat().st_mode & 0o777) == 0o600
    for stored in (tmp_path / ".vox").iterdir():  # the databases, their WAL files, the keys
        if stored.is_file():
            assert secret.encode() not in stored.read_bytes(), stored.name
    shown = subprocess.run([VOXC, "runs", "show", "k1", "--json"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and secret in shown.stdout, shown.stderr
    key.rename(tmp_path / "key.moved")  # a reader without the key sees that values exist, not what they are
    shown = subprocess.run([VOXC, "runs", "show", "k1", "--json"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and secret not in shown.stdout and "<sealed>" in shown.stdout, shown.stderr


def test_a_superseded_execution_records_nothing(tmp_path):
    from vox.runtime.sealing import Sealer
    from vox.runtime.state import RunSpec, StateStore, Superseded

    state = StateStore("sqlite:///" + str(tmp_path / "state.sqlite"), Sealer(bytes(32)))
    state.create_run(RunSpec("r1", "0" * 64, "f", {}), sealed=True)
    old = state.claim("r1", "worker-a")
    new = state.claim("r1", "worker-b")  # worker-a was declared dead; worker-b took the run over
    with pytest.raises(Superseded, match="worker-b"):
        state.record("r1", "f.s0.t", {"value": 1}, epoch=old)
    with pytest.raises(Superseded):
        state.begin("r1", "f.s1.t#began", epoch=old)
    assert state.recorded("r1", "f.s0.t") == (False, None)
    state.record("r1", "f.s0.t", {"value": 2}, epoch=new)
    assert state.recorded("r1", "f.s0.t") == (True, {"value": 2})
