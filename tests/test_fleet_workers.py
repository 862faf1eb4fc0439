"""Fleet trial: two `voxc worker` processes on the local PostgreSQL, one killed mid-run with
SIGKILL. Its pending runs are recovered by the other (heartbeats), and every run completes exactly
once: each run's effect is applied once per idempotency key, and no finished step runs again.
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

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"

TOOLS = '''
import json, os, time

def work(job, idempotency_key=None):
    with open(os.environ["EFFECTS_LOG"], "a") as f:
        f.write(json.dumps({"job": job, "key": idempotency_key, "pid": os.getpid()}) + "\\n")
    time.sleep(1.0)
    return "done " + job
'''

PROGRAM = '''
provider sim = sim { clearance: [public] }
model tiny = sim/"sim-small" { context: 8_000, max_output: 100, price: { input: $1, output: $2 } }
tool work(job: str) -> str {
  effect: write
  idempotent: true
  bind: python("jobs:work")
}
agent namer(job: str) -> str {
  model: tiny
  budget: { tokens: 2_000, steps: 1 }
  prompt: "Name the job {job}."
}
flow job(job: str) -> str {
  let name = namer(job: job)
  return work(job: job)
}
'''


def _pg_up() -> bool:
    try:
        import psycopg

        with psycopg.connect(ADMIN, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001
        return False


pytestmark = pytest.mark.skipif(not _pg_up(), reason="PostgreSQL is not running")


@pytest.fixture
def database():
    import psycopg

    name = "vox_fleet_" + uuid.uuid4().hex[:10]
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    yield ADMIN.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _env(root: pathlib.Path) -> dict:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root), "PYTHONPATH": str(root),
            "EFFECTS_LOG": str(root / "effects.log"), "VOX_RECEIPT_KEY": "fleet-key"}


def _worker(root: pathlib.Path, db: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-m", "vox.cli.main", "worker", "--db", db, "--heartbeat", "0.5",
                          "--concurrency", "4", "--fleet-concurrency", "8", "--tenant-concurrency", "8",
                          "--state-dir", str(root / ".vox")], cwd=root, env=_env(root),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("worker "), p.stderr.read()
    return p


def _effects(root: pathlib.Path) -> list[dict]:
    path = root / "effects.log"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_a_killed_worker_s_runs_are_finished_by_another_exactly_once(tmp_path, database):
    (tmp_path / "jobs.py").write_text(TOOLS)
    (tmp_path / "prog.vox").write_text(PROGRAM)
    workers = [_worker(tmp_path, database), _worker(tmp_path, database)]
    runs = [f"job-{i}" for i in range(8)]
    try:
        for run in runs:
            done = subprocess.run([sys.executable, "-m", "vox.cli.main", "run", "prog.vox", "--input",
                                   json.dumps({"job": run}), "--db", database, "--submit", "--run-id", run],
                                  cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
        # wait until the first worker is inside a tool call, then kill it there
        victim = workers[0]
        deadline = time.monotonic() + 60
        while not any(e["pid"] == victim.pid for e in _effects(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(e["pid"] == victim.pid for e in _effects(tmp_path)), "the first worker never took a run"
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)

        from dbos import DBOSClient

        client = DBOSClient(system_database_url=database)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                statuses = {s.workflow_id: s for s in client.list_workflows(workflow_ids=runs)}
                if all(statuses[r].status == "SUCCESS" for r in runs):
                    break
                time.sleep(0.25)
            assert {r: statuses[r].status for r in runs} == {r: "SUCCESS" for r in runs}
            assert all(statuses[r].output["status"] == "ok" for r in runs)
            assert {statuses[r].output["output"] for r in runs} == {f"done {r}" for r in runs}
        finally:
            client.destroy()
        effects = _effects(tmp_path)
        by_job = {r: [e for e in effects if e["job"] == r] for r in runs}
        for run, seen in by_job.items():
            assert len({e["key"] for e in seen}) == 1, (run, seen)  # one effect per run
            # a second execution only for the call the killed worker was in the middle of
            assert len(seen) == 1 or (len(seen) == 2 and seen[0]["pid"] == victim.pid), (run, seen)
        assert any(e["pid"] == workers[1].pid for e in effects)
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
                try:
                    w.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    w.kill()
