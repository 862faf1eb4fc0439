"""Damaged state: a state file with a page overwritten is named, with what to do, by every command
that needs it; no effect happens without its receipt; `voxc runs doctor` finds the damage and moves
the file aside keeping what can be read; and a run waiting for a person can be approved whatever
other runs of the program do meanwhile (on SQLite, on PostgreSQL, and in a fleet).

Everything goes through the installed console script, from a folder outside the repository, as a
user runs it. The effects are a `write` tool bound to a Python function that appends a line to a
file: its lines are the effects that happened.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager, nullcontext

import pytest

VOXC = str(pathlib.Path(sys.executable).with_name("voxc"))
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
PAGE = 4096

PROGRAM = '''
provider sim = sim { clearance: [public] }
tool note(order_id: str) -> str {
  effect: write
  bind: python("effects:note")
}
tool refund(order_id: str) -> str {
  effect: write
  idempotent: true
  approval: human
  bind: python("effects:refund")
}
tool spoil(order_id: str) -> str {
  effect: read
  bind: python("effects:spoil")
}
tool note_and_spoil(order_id: str) -> str {
  effect: write
  bind: python("effects:note_and_spoil")
}
tool lag(order_id: str) -> str {
  effect: read
  timeout: 120s
  bind: python("effects:lag")
}
flow write(order_id: str) -> str {
  return note(order_id: order_id)
}
flow pay(order_id: str) -> str {
  return refund(order_id: order_id)
}
flow pay_twice(order_id: str) -> str {
  let first = refund(order_id: order_id)
  return refund(order_id: first)
}
flow spoilt(order_id: str) -> str {
  let s = spoil(order_id: order_id)
  return note(order_id: s)
}
flow pay_spoilt(order_id: str) -> str {
  let r = refund(order_id: order_id)
  let s = spoil(order_id: r)
  return note(order_id: s)
}
flow lost(order_id: str) -> str {
  return note_and_spoil(order_id: order_id)
}
flow slow(order_id: str) -> str {
  return lag(order_id: order_id)
}
'''

EFFECTS = '''
import os, pathlib, sqlite3, time

def _effect(what):
    with open(os.environ["EFFECTS_LOG"], "a") as f:
        f.write(what + "\\n")
        f.flush()
        os.fsync(f.fileno())

def damage(name):
    """Overwrite the root page of the table or index `name` of the state file, as a failing disk
    would, while the run that called this tool has the file open."""
    path = os.path.join(os.environ["STATE_DIR"], "state.sqlite")
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the page's last version is in the file itself
    page = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
    size = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    with open(path, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(b"\\xa5" * size)
        f.flush()
        os.fsync(f.fileno())

def note(order_id, idempotency_key=None):
    _effect("note " + order_id)
    return "noted " + order_id

def refund(order_id, idempotency_key=None):
    _effect("refund " + order_id)
    return "refunded " + order_id

def spoil(order_id):
    damage(os.environ["SPOIL"])
    return order_id

def note_and_spoil(order_id, idempotency_key=None):
    _effect("note " + order_id)
    damage(os.environ["SPOIL"])
    return "noted " + order_id

def lag(order_id):
    pathlib.Path(os.environ["LAG_STARTED"]).write_text("started")
    release = pathlib.Path(os.environ["LAG_RELEASE"])
    deadline = time.monotonic() + float(os.environ.get("LAG_S", "60"))
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return "lagged " + order_id
'''

# The index of the receipt ledger that finds a run's receipt at a step: what the receipt's append,
# and the check before the effect, read first. Rebuilt from the table by a repair, so nothing of
# the ledger is lost with it.
RECEIPT_INDEX = "(run, pos) index of vox_receipt"


def _pg_up() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means: not available here
        return False


PG = pytest.mark.skipif(not _pg_up(), reason="PostgreSQL is not running")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=PG)]


@contextmanager
def fresh_database():
    """A database of its own on the local PostgreSQL (its receipt ledger has this test's key)."""
    import psycopg

    name = "vox_damage_" + uuid.uuid4().hex[:10]
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class Folder:
    """A program's folder and its state folder, with the environment `voxc` runs in."""

    def __init__(self, root: pathlib.Path, db: str | None = None):
        self.root = root
        self.state = root / ".vox"
        self.db = db
        (root / "prog.vox").write_text(PROGRAM)
        (root / "effects.py").write_text(EFFECTS)

    def env(self, **more: str) -> dict:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root),
               "EFFECTS_LOG": str(self.root / "effects.log"), "VOX_RECEIPT_KEY": "damage-trial-key",
               "STATE_DIR": str(self.state), "LAG_STARTED": str(self.root / "lag.started"),
               "LAG_RELEASE": str(self.root / "lag.release"), **more}
        if self.db:
            env["VOX_DATABASE_URL"] = self.db
        return env

    def voxc(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([VOXC, *args], cwd=self.root, env=self.env(**env), capture_output=True, text=True,
                              timeout=timeout)

    def start(self, flow: str, order: str, run_id: str, *more: str, **env: str) -> subprocess.CompletedProcess:
        return self.voxc("run", "prog.vox", "--flow", flow, "--input", json.dumps({"order_id": order}),
                         "--run-id", run_id, *more, **env)

    def effects(self) -> list[str]:
        path = self.root / "effects.log"
        return path.read_text().splitlines() if path.exists() else []

    def file(self, name: str) -> pathlib.Path:
        return self.state / name


def checkpoint(path: pathlib.Path) -> None:
    """Fold the file's write-ahead log into it, so that a page overwritten in the file is the page
    SQLite reads."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def damage_page(path: pathlib.Path, page: int) -> None:
    with open(path, "r+b") as f:
        f.seek((page - 1) * PAGE)
        f.write(b"\xa5" * PAGE)


def damage_middle(path: pathlib.Path) -> int:
    """Overwrite the middle page of the SQLite file ``path`` (the next one, if SQLite would not
    notice: a page that is not in use); return its number."""
    checkpoint(path)
    pages = path.stat().st_size // PAGE
    original = path.read_bytes()
    for page in range(pages // 2 + 1, pages + 1):
        damage_page(path, page)
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            noticed = con.execute("PRAGMA integrity_check").fetchall() != [("ok",)]
        except sqlite3.DatabaseError:
            noticed = True
        finally:
            con.close()
        if noticed:
            return page
        path.write_bytes(original)
    raise AssertionError(f"no page of {path} past the middle is in use")


def receipt_index(path: pathlib.Path) -> str:
    """The name of the receipt ledger's (run, pos) index in the state file ``path``."""
    con = sqlite3.connect(path)
    try:
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'vox_receipt'"):
            if [row[2] for row in con.execute(f'PRAGMA index_info("{name}")')] == ["run", "pos"]:
                return name
    finally:
        con.close()
    raise AssertionError(f"no {RECEIPT_INDEX} in {path}")


def assert_named(done: subprocess.CompletedProcess, path: pathlib.Path, code: int = 2) -> None:
    """The command failed with ``code``, naming the damaged file and what to do, with no traceback."""
    said = done.stdout + done.stderr
    assert done.returncode == code, (done.returncode, said)
    assert str(path) in done.stderr and "voxc runs doctor" in done.stderr, said
    assert "Traceback" not in said and "internal error" not in said and "bug in voxc" not in said, said


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> pathlib.Path:
    """A state folder with three finished runs (each with a receipt) and one run waiting for a
    person: copied by each test, which then damages its copy."""
    root = tmp_path_factory.mktemp("template")
    folder = Folder(root)
    for n in range(3):
        done = folder.start("write", f"o{n}", f"done-{n}")
        assert done.returncode == 0, done.stderr
    waiting = folder.start("pay", "w1", "waiting")
    assert waiting.returncode == 4, waiting.stderr
    for name in ("state.sqlite", "dbos.sqlite"):
        checkpoint(folder.file(name))
    return root


@pytest.fixture
def folder(template, tmp_path) -> Folder:
    root = tmp_path / "shop"
    shutil.copytree(template, root)
    return Folder(root)


# ---- every command names a damaged file ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["state.sqlite", "dbos.sqlite"])
def test_every_command_names_a_damaged_state_file_and_nothing_acts(folder, name):
    path = folder.file(name)
    damage_middle(path)
    before = folder.effects()

    assert_named(folder.start("write", "x1", "new-run"), path)
    assert_named(folder.voxc("run", "--resume", "waiting"), path)
    approved = folder.voxc("approve", "waiting")
    assert_named(approved, path)
    assert "approved" not in approved.stderr  # refused before an answer was taken
    for args in (("runs",), ("runs", "show", "waiting")):
        listed = folder.voxc(*args)
        if name == "state.sqlite":
            assert_named(listed, path)
        else:  # the runs are in the state file: listed, with a warning about DBOS's file
            assert listed.returncode == 0 and "waiting" in listed.stdout, listed.stderr
            assert "warning" in listed.stderr and str(path) in listed.stderr, listed.stderr
    assert folder.effects() == before  # not one effect, with or without a receipt


@pytest.mark.xfail(strict=True, reason="cli/receipts.py (or cli/main.py) must catch StoreDamaged and exit 2 "
                                       "with its message; today it is reported as an internal error")
def test_receipts_verify_names_a_damaged_state_file(folder):
    path = folder.file("state.sqlite")
    damage_middle(path)
    assert_named(folder.voxc("receipts", "verify", "done-0"), path)


def test_receipts_verify_does_not_need_dbos_s_file(folder):
    damage_middle(folder.file("dbos.sqlite"))
    verified = folder.voxc("receipts", "verify", "done-0")
    assert verified.returncode == 0 and "1 receipts" in verified.stdout, verified.stdout + verified.stderr


# ---- no effect without a receipt ------------------------------------------------------------------------


def test_a_receipt_ledger_damaged_during_a_run_stops_it_before_the_effect(folder):
    index = receipt_index(folder.file("state.sqlite"))
    # `spoil` damages the ledger's index, then the flow calls `note`, a write tool
    stopped = folder.start("spoilt", "s1", "spoilt-1", SPOIL=index)
    assert_named(stopped, folder.file("state.sqlite"))
    assert "note s1" not in folder.effects()  # it never acted: its receipt could not have been signed

    found = folder.voxc("runs", "doctor")
    assert found.returncode == 1 and "state.sqlite   DAMAGED" in found.stdout, found.stdout + found.stderr
    repaired = folder.voxc("runs", "doctor", "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "moved aside" in repaired.stdout and "receipts       ok" in repaired.stdout, repaired.stdout

    resumed = folder.voxc("run", "--resume", "spoilt-1", "--json")
    assert resumed.returncode == 0 and json.loads(resumed.stdout)["output"] == "noted s1", resumed.stderr
    assert folder.effects().count("note s1") == 1
    verified = folder.voxc("receipts", "verify", "spoilt-1")
    assert verified.returncode == 0 and "1 receipts" in verified.stdout, verified.stdout


def test_a_run_approved_and_then_damaged_stops_before_the_effect_and_approve_says_why(folder):
    index = receipt_index(folder.file("state.sqlite"))
    asked = folder.start("pay_spoilt", "a1", "approved-1", SPOIL=index)
    assert asked.returncode == 4, asked.stderr
    # carried on by `approve` (on DBOS's thread): the ledger goes bad before `note` acts
    approved = folder.voxc("approve", "approved-1", SPOIL=index, timeout=90)
    assert_named(approved, folder.file("state.sqlite"))
    assert folder.effects().count("refund a1") == 1 and "note refunded a1" not in folder.effects()


def test_a_receipt_table_damaged_during_a_run_stops_it_before_the_effect(folder):
    stopped = folder.start("spoilt", "s2", "spoilt-2", SPOIL="vox_receipt")
    assert_named(stopped, folder.file("state.sqlite"))
    assert "note s2" not in folder.effects()


def test_an_effect_whose_receipt_cannot_be_written_stops_the_run_saying_so(folder):
    index = receipt_index(folder.file("state.sqlite"))
    # the tool acts, and then the ledger's page goes bad: its receipt cannot be written
    stopped = folder.start("lost", "l1", "lost-1", SPOIL=index)
    assert_named(stopped, folder.file("state.sqlite"))
    said = stopped.stderr
    assert "acted" in said and "idempotency key" in said and "--already-done" in said, said
    assert "voxc run --resume lost-1" in said and '"noted l1"' in said, said  # its result, to enter
    assert folder.effects().count("note l1") == 1

    assert folder.voxc("runs", "doctor", "--repair").returncode == 0
    asked = folder.voxc("run", "--resume", "lost-1", "--json")
    assert asked.returncode == 4, asked.stderr  # it may have acted: a person says
    waiting = json.loads(asked.stdout)["waiting"]
    assert waiting["kind"] == "again" and "may already have acted" in waiting["reason"]
    assert folder.effects().count("note l1") == 1  # not called again by itself
    done = folder.voxc("approve", "lost-1", "--already-done", "--result", '"noted l1"', "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["output"] == "noted l1", done.stderr
    assert folder.effects().count("note l1") == 1
    verified = folder.voxc("receipts", "verify", "lost-1")
    assert verified.returncode == 0 and "1 receipts" in verified.stdout, verified.stdout


# ---- voxc runs doctor ---------------------------------------------------------------------------------


def test_voxc_runs_doctor_on_a_healthy_folder(folder):
    checked = folder.voxc("runs", "doctor")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[:2] == ["state.sqlite   ok", "dbos.sqlite    ok"], lines
    assert "receipts       ok: the chains of 3 runs verify" in lines, lines
    assert any(line.startswith("runs vs DBOS   ok") for line in lines), lines
    report = json.loads(folder.voxc("runs", "doctor", "--json").stdout)
    assert report["problems"] == 0 and [c["what"] for c in report["checks"]][:2] == ["state.sqlite", "dbos.sqlite"]


def root_page(path: pathlib.Path, name: str) -> int:
    checkpoint(path)
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
    finally:
        con.close()


def test_voxc_runs_doctor_moves_damaged_files_aside_keeping_what_can_be_read(folder):
    state, system = folder.file("state.sqlite"), folder.file("dbos.sqlite")
    damage_page(state, root_page(state, "sqlite_autoindex_vox_step_1"))  # the journal's index: built again
    damage_middle(system)
    damaged = {p.name: p.read_bytes() for p in (state, system)}

    found = folder.voxc("runs", "doctor")
    assert found.returncode == 1, found.stdout + found.stderr
    assert "state.sqlite   DAMAGED" in found.stdout and "dbos.sqlite    DAMAGED" in found.stdout, found.stdout
    assert "--repair" in found.stderr
    assert {p.name: p.read_bytes() for p in (state, system)} == damaged  # checking changes nothing

    repaired = folder.voxc("runs", "doctor", "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    aside = {p.name.split(".damaged-")[0]: p for p in folder.state.iterdir() if ".damaged-" in p.name
             and not p.name.endswith(("-wal", "-shm"))}
    assert set(aside) == {"state.sqlite", "dbos.sqlite"}
    assert {name: p.read_bytes() for name, p in aside.items()} == damaged  # set aside whole, never deleted
    assert not system.exists()  # DBOS's is not rebuilt from a damaged copy: DBOS makes a new one

    again = folder.voxc("runs", "doctor")
    assert again.returncode == 0 and "state.sqlite   ok" in again.stdout, again.stdout + again.stderr
    listed = folder.voxc("runs")
    assert listed.returncode == 0 and "waiting" in listed.stdout, listed.stderr
    # the waiting run's workflow went with DBOS's file: approving it starts one again, from its journal
    approved = folder.voxc("approve", "waiting", "--json")
    assert approved.returncode == 0 and json.loads(approved.stdout)["output"] == "refunded w1", approved.stderr
    assert folder.effects().count("refund w1") == 1


def test_voxc_runs_doctor_says_which_receipts_a_repair_could_not_keep(folder):
    state = folder.file("state.sqlite")
    damage_page(state, root_page(state, "vox_receipt"))  # the ledger's entries themselves
    repaired = folder.voxc("runs", "doctor", "--repair")
    assert repaired.returncode == 1, repaired.stdout + repaired.stderr  # a lost receipt is not repaired
    assert "state.sqlite   REPAIRED" in repaired.stdout and "lost from: vox_receipt" in repaired.stdout
    assert "receipts       FAILED: 3 of 3 runs' chains do not verify" in repaired.stdout, repaired.stdout
    again = folder.voxc("runs", "doctor")
    assert again.returncode == 1 and "state.sqlite   ok" in again.stdout and "receipts       FAILED" in again.stdout


def test_voxc_runs_doctor_without_a_state_folder(tmp_path):
    checked = Folder(tmp_path).voxc("runs", "doctor")
    assert checked.returncode == 2 and "no state files" in checked.stderr, checked.stderr


# ---- a waiting run stays waiting, whatever else runs ------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_run_waiting_for_approval_survives_other_runs(tmp_path, backend):
    """Runs waiting for a person, another run of the program, and a slow one in flight while they
    are approved: each approved run is carried on in the process that approved it (before, any
    `voxc` process on the same database could take it, and leave it half done when it exited)."""
    with fresh_database() if backend == "postgresql" else nullcontext() as db:
        approvals_survive_other_runs(Folder(tmp_path, db))


def approvals_survive_other_runs(folder: Folder) -> None:
    tmp_path = folder.root
    tag = uuid.uuid4().hex[:8]
    runs = [f"twice-{tag}-{n}" for n in range(3)]
    for n, run_id in enumerate(runs):
        started = folder.start("pay_twice", f"p{n}", run_id)
        assert started.returncode == 4, started.stderr
    other = folder.start("write", "other", f"other-{tag}")
    assert other.returncode == 0, other.stderr

    slow = subprocess.Popen([VOXC, "run", "prog.vox", "--flow", "slow", "--input", '{"order_id": "z"}',
                             "--run-id", f"slow-{tag}"], cwd=tmp_path, env=folder.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "lag.started").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (tmp_path / "lag.started").exists(), "the slow run did not start"
        for run_id in runs:  # the slow run's process is alive and polling all along
            first = folder.voxc("approve", run_id, "--json", timeout=90)
            assert first.returncode == 4, first.stderr
            assert json.loads(first.stdout)["waiting"]["step"] == "pay_twice.s1.refund"
    finally:
        (tmp_path / "lag.release").write_text("go")
        slow.communicate(timeout=90)
    assert slow.returncode == 0, slow.stderr
    for n, run_id in enumerate(runs):  # and after it exited
        listed = folder.voxc("runs", "show", run_id)
        assert "waiting for approval of `refund` at pay_twice.s1.refund" in listed.stdout, listed.stdout
        second = folder.voxc("approve", run_id, "--json", timeout=90)
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)["output"] == f"refunded refunded p{n}"
    effects = folder.effects()
    for n in range(3):
        assert effects.count(f"refund p{n}") == 1 and effects.count(f"refund refunded p{n}") == 1, effects


@PG
def test_in_a_fleet_a_waiting_run_stays_waiting_and_a_queued_run_stays_queued(tmp_path):
    """A `voxc run --db` of the program, while the fleet's queue holds a run, never takes it (it
    would leave it half done when it exits, on an executor no worker recovers); a run waiting in a
    worker stays waiting while others run, and is approved there."""
    with fresh_database() as db:
        queued_and_waiting_runs_stay_so(Folder(tmp_path, db))


def queued_and_waiting_runs_stay_so(folder: Folder) -> None:
    tmp_path, db = folder.root, folder.db
    keys = {"VOX_STATE_KEY": "cd" * 32}

    def worker() -> subprocess.Popen:
        home = tmp_path / f"worker-{uuid.uuid4().hex[:6]}"
        home.mkdir()
        p = subprocess.Popen([VOXC, "worker", "--db", db, "--heartbeat", "1", "--concurrency", "4",
                              "--state-dir", str(home / ".vox")], cwd=tmp_path,
                             env={**folder.env(**keys), "PYTHONPATH": str(tmp_path)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stdout.readline().startswith("worker "), p.stderr.read()
        return p

    def stop(p: subprocess.Popen) -> None:
        p.terminate()
        p.communicate(timeout=60)

    def status(run_id: str) -> str:
        shown = folder.voxc("runs", "show", run_id, "--json", **keys)
        return json.loads(shown.stdout)["status"] if shown.returncode in (0, 1) else shown.stderr

    def wait_for(run_id: str, wanted: str) -> None:
        deadline = time.monotonic() + 90
        while status(run_id) != wanted and time.monotonic() < deadline:
            time.sleep(0.3)
        assert status(run_id) == wanted, (run_id, status(run_id))

    stop(worker())  # the fleet's queue exists, and no worker serves it now
    queued = folder.voxc("run", "prog.vox", "--flow", "slow", "--input", '{"order_id": "q"}', "--run-id", "queued",
                         "--submit", **keys)
    assert queued.returncode == 0, queued.stderr
    for n in range(2):  # local runs of the program on the fleet's database, coming and going
        local = folder.start("write", f"local{n}", f"local-{n}", **keys)
        assert local.returncode == 0, local.stderr
    assert status("queued") == "running"  # still on the queue: no local process took it

    w = worker()
    try:
        (tmp_path / "lag.release").write_text("go")  # a run a local process took would have gone with it
        wait_for("queued", "ok")
        asked = folder.voxc("run", "prog.vox", "--flow", "pay", "--input", '{"order_id": "f1"}', "--run-id", "asks",
                            "--submit", **keys)
        assert asked.returncode == 0, asked.stderr
        wait_for("asks", "waiting")
        for n in range(3):
            other = folder.voxc("run", "prog.vox", "--flow", "write", "--input", json.dumps({"order_id": f"f{n}x"}),
                                "--run-id", f"other-{n}", "--submit", **keys)
            assert other.returncode == 0, other.stderr
        for n in range(3):
            wait_for(f"other-{n}", "ok")
        assert status("asks") == "waiting"
        approved = folder.voxc("approve", "asks", "--json", **keys)
        assert approved.returncode == 0 and json.loads(approved.stdout)["output"] == "refunded f1", \
            approved.stdout + approved.stderr
    finally:
        stop(w)
    assert folder.effects().count("refund f1") == 1
