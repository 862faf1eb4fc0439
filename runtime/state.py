"""The deployment's state store: run specs, the step journal, decisions and plans, in one database.

Everything a run needs to be carried on by another process lives here, next to the receipts, the
run-wide ledgers, leases, events and heartbeats (one :class:`~vox.runtime.fleet.store.Store`):
``sqlite:///.vox/state.sqlite`` by default, the fleet's PostgreSQL database with ``--db``.
DBOS keeps only what it is good at, in its own tables: which process owns a run, its queue, and
recovery; its workflow input is the run id, its output the final status (no program data).

Tables (``vox_`` prefix):

* ``run``: one row per run: its :class:`RunSpec` (JSON), status (``running``, ``waiting``,
  ``ok``, ``failed``), what it waits for, its result (JSON), overshoots, timestamps;
* ``step``: the journal, keyed by ``(run_id, step name)``, never by the order steps started:
  ``began`` markers for calls that must not silently repeat, and ``done`` values;
* ``decision``: a person's answer for one step of one run (approve, deny, or "it already happened"
  with the result they entered);
* ``plan``: plans by hash, written in declaration order, so a stored plan reloads to the
  identical requests.

Values of runs whose program declares a label other than `public` are sealed (see
:mod:`vox.runtime.sealing`): the spec's input, every step value, waiting arguments and the result.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from vox.compiler.plan.serde import canonical_json as canonical
from vox.runtime.fleet.store import Store, StoreDamaged, Tx, damaged_remedy, open_store
from vox.runtime.sealing import Sealer, is_sealed

STATE_MIGRATIONS = (
    (
        "CREATE TABLE IF NOT EXISTS {p}run (run_id TEXT PRIMARY KEY, plan_hash TEXT NOT NULL, flow TEXT NOT NULL, "
        "spec TEXT NOT NULL, status TEXT NOT NULL, waiting TEXT, result TEXT, tenant TEXT NOT NULL, "
        "created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE IF NOT EXISTS {p}step (run_id TEXT NOT NULL, step TEXT NOT NULL, state TEXT NOT NULL, "
        "value TEXT, at DOUBLE PRECISION NOT NULL, PRIMARY KEY (run_id, step))",
        "CREATE TABLE IF NOT EXISTS {p}decision (run_id TEXT NOT NULL, step TEXT NOT NULL, verdict TEXT NOT NULL, "
        "result TEXT, at DOUBLE PRECISION NOT NULL, PRIMARY KEY (run_id, step))",
    ),
    (  # 2: who carries the run on, and its fencing token
        "ALTER TABLE {p}run ADD COLUMN owner TEXT",
        "ALTER TABLE {p}run ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0",
    ),
)
PLANS_TABLE = (("CREATE TABLE IF NOT EXISTS {p}plan (plan_hash TEXT PRIMARY KEY, plan TEXT NOT NULL)",),)


class RunConflict(Exception):
    """A run id reused for a different program, flow or input."""


class StateDamaged(StoreDamaged, RunConflict):
    """A state file (or the database) that a run cannot use: damaged, or not writable now. Its
    message names the file, what is wrong and what to do. It is a :class:`RunConflict` too, so that
    every entry point that refuses a run it cannot carry on (exit 2: a file that cannot be read or
    written) refuses this one in the same words, never as a bug in voxc."""

    @classmethod
    def of(cls, e: StoreDamaged) -> "StateDamaged":
        if isinstance(e, cls):
            return e
        found = cls(e.where, e.problem, e.remedy, e.damaged, e.fix)
        found.args = e.args  # the same words, however ``e`` put them
        return found


class RunMissing(LookupError):
    """No run, or no plan, with that id in this store."""


class Superseded(asyncio.CancelledError):
    """This execution of a run was superseded: another process took the run over (its worker was
    declared dead and the run recovered elsewhere). It stops at once, recording nothing more; a
    cancellation, so that the engine leaves the run to its new owner."""


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides what a run does, stored with the run; every entry point (run,
    submit, resume, approve, worker, test, the Python API) builds its runtime from this alone."""

    run_id: str
    plan_hash: str
    flow: str
    input: Any
    base_dir: str | None = None  # where `python(...)` bindings are imported from
    simulate: str = "auto"  # auto all never
    seed: int = 0
    tenant: str = "default"
    store: str = ""  # the store the run was started in (password hidden), for `voxc runs show`
    approve: tuple[str, ...] = ()  # standing approvals: every call of these tools
    tool_mocks: dict = field(default_factory=dict)  # a test's mocked tool replies
    scripts: dict = field(default_factory=dict)  # a test's scripted replies of mocked agents (simulator)

    def to_json(self) -> dict:
        data = asdict(self)
        data["approve"] = list(self.approve)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "RunSpec":
        return cls(**{**data, "approve": tuple(data.get("approve", ()))})

    def same_run(self, other: "RunSpec") -> str | None:
        """Why ``other`` is not a start of this same run, or None if it is."""
        for what, a, b in (("program", self.plan_hash, other.plan_hash), ("flow", self.flow, other.flow),
                           ("input", canonical(self.input), canonical(other.input))):
            if a != b:
                return what
        return None


@dataclass
class StoredRun:
    spec: RunSpec
    status: str  # running waiting ok failed
    waits: list  # what the run waits for, oldest first (several `par` branches may wait at once)
    result: dict | None
    created: float
    updated: float

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    @property
    def waiting(self) -> dict | None:
        """The oldest open wait: the one `voxc run` reported and `voxc approve` answers first."""
        return self.waits[0] if self.waits and isinstance(self.waits[0], dict) else None


def hide_password(url: str) -> str:
    """``url`` with its password replaced by ``***``, fit to print.

    >>> hide_password("postgresql://u:secret@h/db")
    'postgresql://u:***@h/db'
    """
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


class StateStore:
    """Runs, their journals and decisions in the deployment's store."""

    def __init__(self, url_or_store: str | Store, sealer: Sealer):
        self.store = url_or_store if isinstance(url_or_store, Store) else open_store(url_or_store)
        self.url = self.store.url
        self.sealer = sealer
        self.store.ensure("state", STATE_MIGRATIONS)
        self.store.ensure("plans", PLANS_TABLE)
        self._sealed: dict[str, bool] = {}
        self._plans_saved: set[str] = set()

    def close(self) -> None:
        self.store.close()

    # ---- plans -----------------------------------------------------------------------------------

    def save_plan(self, plan) -> None:
        """Keep ``plan`` by hash (idempotent), so any process can run or resume its runs."""
        from vox.compiler.plan import plan_to_json

        if plan.plan_hash in self._plans_saved:
            return
        text = plan_to_json(plan)
        self.store.run(lambda tx: tx.execute(
            "INSERT INTO {p}plan (plan_hash, plan) VALUES (?, ?) ON CONFLICT (plan_hash) DO NOTHING",
            (plan.plan_hash, text)))
        self._plans_saved.add(plan.plan_hash)

    def load_plan(self, plan_hash: str):
        from vox.compiler.plan import load_plan

        row = self.store.run(lambda tx: tx.one("SELECT plan FROM {p}plan WHERE plan_hash = ?", (plan_hash,)))
        if row is None:
            raise RunMissing(f"plan {plan_hash[:12]} is not in the state store ({hide_password(self.url)})")
        return load_plan(row[0])

    # ---- runs ------------------------------------------------------------------------------------

    def create_run(self, spec: RunSpec, sealed: bool) -> StoredRun | None:
        """Record a new run; return the stored run if ``spec.run_id`` exists already with the same
        program, flow and input (a repeated start), :class:`RunConflict` if it exists otherwise."""
        data = spec.to_json()
        if sealed:
            data["input"] = self.sealer.seal(spec.input, spec.run_id, "input")
        text = json.dumps(data, ensure_ascii=False)
        now = time.time()

        def create(tx: Tx) -> bool:
            if tx.one("SELECT 1 FROM {p}run WHERE run_id = ?", (spec.run_id,)) is not None:
                return False
            tx.execute("INSERT INTO {p}run (run_id, plan_hash, flow, spec, status, tenant, created, updated) "
                       "VALUES (?, ?, ?, ?, 'running', ?, ?, ?)",
                       (spec.run_id, spec.plan_hash, spec.flow, text, spec.tenant, now, now))
            return True

        if self.store.run(create):
            self._sealed[spec.run_id] = sealed
            return None
        existing = self.get_run(spec.run_id)
        why = existing.spec.same_run(spec)
        if why is not None:
            raise RunConflict(
                f"run id `{spec.run_id}` is already used by a run of another {why} "
                f"(flow `{existing.spec.flow}`, plan {existing.spec.plan_hash[:12]}); choose a new --run-id, "
                f"or resume that run with: voxc run --resume {spec.run_id}")
        return existing

    def get_run(self, run_id: str, strict: bool = True) -> StoredRun:
        row = self.store.run(lambda tx: tx.one(
            "SELECT spec, status, waiting, result, created, updated FROM {p}run WHERE run_id = ?", (run_id,)))
        if row is None:
            raise RunMissing(f"there is no run `{run_id}` in {hide_password(self.url)}")
        return self._stored(run_id, *row, strict=strict)

    def list_runs(self, limit: int = 50) -> list[StoredRun]:
        rows = self.store.run(lambda tx: tx.all(
            "SELECT run_id, spec, status, waiting, result, created, updated FROM {p}run "
            "ORDER BY created DESC, run_id LIMIT ?", (limit,)))
        return [self._stored(*row, strict=False) for row in rows]

    def _stored(self, run_id, spec, status, waiting, result, created, updated, strict: bool = True) -> StoredRun:
        data = json.loads(spec)
        sealed = is_sealed(data.get("input"))
        self._sealed.setdefault(run_id, sealed)
        if sealed:
            data["input"] = self._open(data["input"], run_id, "input", strict)
        waits = self._read(waiting, run_id, "waiting", strict)
        if not isinstance(waits, list):
            waits = [waits] if waits else []
        return StoredRun(RunSpec.from_json(data), status, waits, self._read(result, run_id, "result", strict),
                         created, updated)

    def open_wait(self, run_id: str, wait: dict) -> None:
        """The run waits for a person about ``wait["step"]`` (besides any other open waits)."""
        self._change_waits(run_id, lambda waits: [w for w in waits if w.get("step") != wait["step"]] + [wait])

    def close_wait(self, run_id: str, step: str) -> None:
        """The wait at ``step`` is answered; the run is running unless another wait is open."""
        self._change_waits(run_id, lambda waits: [w for w in waits if w.get("step") != step])

    def _change_waits(self, run_id: str, change: Callable[[list], list]) -> None:
        def write(tx: Tx) -> None:
            row = tx.one("SELECT status, waiting FROM {p}run WHERE run_id = ? FOR UPDATE", (run_id,))
            if row is None or row[0] not in ("running", "waiting"):
                return
            waits = self._read(row[1], run_id, "waiting") if row[1] is not None else []
            before = waits if isinstance(waits, list) else [waits]
            waits = change(before)
            if waits == before and row[0] == ("waiting" if waits else "running"):
                return  # nothing changes (a replay closing a wait it answered before)
            text = self._write(waits, run_id, "waiting") if waits else None
            tx.execute("UPDATE {p}run SET status = ?, waiting = ?, updated = ? WHERE run_id = ?",
                       ("waiting" if waits else "running", text, time.time(), run_id))

        self.store.run(write)

    def finish(self, run_id: str, result: dict, epoch: int | None = None) -> None:
        text = self._write(result, run_id, "result")
        status = "waiting" if result.get("status") == "waiting" else result.get("status", "failed")

        def write(tx: Tx) -> None:
            self.check_epoch(run_id, epoch, tx)
            tx.execute("UPDATE {p}run SET status = ?, result = ?, updated = ? WHERE run_id = ?",
                       (status, text, time.time(), run_id))

        self.store.run(write)

    # ---- ownership -------------------------------------------------------------------------------

    def claim(self, run_id: str, owner: str) -> int:
        """Make ``owner`` the run's executor; return its epoch. Every later write of an older
        epoch is refused (:class:`Superseded`): a fencing token, so two processes never both
        carry a run on."""
        def take(tx: Tx) -> int:
            row = tx.one("SELECT epoch FROM {p}run WHERE run_id = ? FOR UPDATE", (run_id,))
            if row is None:
                raise RunMissing(f"there is no run `{run_id}` in {hide_password(self.url)}")
            # The run's open waits stay as they are: until a person answers one, the run waits there,
            # whichever process carries it on (and one that stops before it reaches them again
            # must not leave a run nobody can approve). The new execution closes each wait it
            # finds answered, and opens again the ones it reaches.
            tx.execute("UPDATE {p}run SET owner = ?, epoch = ? WHERE run_id = ?", (owner, row[0] + 1, run_id))
            return row[0] + 1

        return self.store.run(take)

    def check_epoch(self, run_id: str, epoch: int | None, tx: Tx | None = None) -> None:
        if epoch is None:
            return
        query = "SELECT epoch, owner FROM {p}run WHERE run_id = ?" + (" FOR UPDATE" if tx is not None else "")
        row = tx.one(query, (run_id,)) if tx is not None else self.store.run(lambda t: t.one(query, (run_id,)))
        if row is None or row[0] != epoch:
            raise Superseded(f"run {run_id} was taken over by {row[1] if row else 'nobody'}; this execution stops")

    # ---- the journal -----------------------------------------------------------------------------

    def recorded(self, run_id: str, step: str) -> tuple[bool, Any]:
        """``(True, value)`` if step ``step`` of the run is done, else ``(False, None)``."""
        row = self.store.run(lambda tx: tx.one(
            "SELECT value FROM {p}step WHERE run_id = ? AND step = ? AND state = 'done'", (run_id, step)))
        if row is None:
            return False, None
        return True, self._read(row[0], run_id, "step " + step)

    def record(self, run_id: str, step: str, value: Any, finish: Callable[[Tx, Any], Any] | None = None,
               epoch: int | None = None) -> Any:
        """Record step ``step`` as done with ``value`` and return what was recorded: ``finish(tx,
        value)``, when given, runs in the same transaction and gives the value to record (a receipt
        is signed in the same commit as the step that made it: both or neither survive a crash)."""

        def write(tx: Tx) -> Any:
            self.check_epoch(run_id, epoch, tx)
            final = finish(tx, value) if finish is not None else value
            text = self._write(final, run_id, "step " + step)
            tx.execute("DELETE FROM {p}step WHERE run_id = ? AND step = ?", (run_id, step))
            tx.execute("INSERT INTO {p}step (run_id, step, state, value, at) VALUES (?, ?, 'done', ?, ?)",
                       (run_id, step, text, time.time()))
            return final

        return self.store.run(write)

    def begin(self, run_id: str, step: str, epoch: int | None = None,
              check: Callable[[Tx], bool | None] | None = None) -> bool:
        """Mark ``step`` as begun; True if an earlier execution had begun it and not finished it.

        ``check(tx)``, when given, runs in the same transaction and raises when what the step
        will write when it ends cannot be written (the receipt ledger of an effect): the marker
        and the check commit together, before the step acts, or neither does. It returns True
        if the step's receipt is signed already: it acted before, though the journal lost it."""
        def mark(tx: Tx) -> bool:
            self.check_epoch(run_id, epoch, tx)
            row = tx.one("SELECT state FROM {p}step WHERE run_id = ? AND step = ? FOR UPDATE", (run_id, step))
            signed = bool(check(tx)) if check is not None else False
            if row is not None:
                return row[0] == "began" or signed
            tx.execute("INSERT INTO {p}step (run_id, step, state, value, at) VALUES (?, ?, 'began', NULL, ?)",
                       (run_id, step, time.time()))
            return signed

        return self.store.run(mark)

    def steps(self, run_id: str) -> list[dict]:
        rows = self.store.run(lambda tx: tx.all(
            "SELECT step, state, value, at FROM {p}step WHERE run_id = ? ORDER BY at, step", (run_id,)))
        out = []
        for step, state, value, at in rows:
            entry: dict[str, Any] = {"step": step, "state": state, "at": at}
            if value is not None:
                entry["value"] = self._read(value, run_id, "step " + step, strict=False)
            out.append(entry)
        return out

    # ---- decisions -------------------------------------------------------------------------------

    def decide(self, run_id: str, step: str, verdict: str, result: Any = None) -> None:
        """A person's answer for ``step``: ``approve``, ``deny`` or ``done`` (with ``result``)."""
        text = self._write(result, run_id, "decision " + step) if result is not None else None

        def write(tx: Tx) -> None:
            tx.execute("DELETE FROM {p}decision WHERE run_id = ? AND step = ?", (run_id, step))
            tx.execute("INSERT INTO {p}decision (run_id, step, verdict, result, at) VALUES (?, ?, ?, ?, ?)",
                       (run_id, step, verdict, text, time.time()))

        self.store.run(write)

    def decision(self, run_id: str, step: str) -> tuple[str, Any] | None:
        row = self.store.run(lambda tx: tx.one(
            "SELECT verdict, result FROM {p}decision WHERE run_id = ? AND step = ?", (run_id, step)))
        if row is None:
            return None
        return row[0], self._read(row[1], run_id, "decision " + step) if row[1] is not None else None

    # ---- values ----------------------------------------------------------------------------------

    def is_sealed_run(self, run_id: str) -> bool:
        if run_id not in self._sealed:
            self.get_run(run_id, strict=False)
        return self._sealed[run_id]

    def _write(self, value: Any, run_id: str, what: str) -> str:
        if self.is_sealed_run(run_id):
            return self.sealer.seal(value, run_id, what)
        return json.dumps(value, ensure_ascii=False)

    def _read(self, text: str | None, run_id: str, what: str, strict: bool = True) -> Any:
        if text is None:
            return None
        if is_sealed(text):
            return self._open(text, run_id, what, strict)
        return json.loads(text)

    def _open(self, text: str, run_id: str, what: str, strict: bool = True) -> Any:
        if not strict and not self.sealer.can_open:
            return "<sealed>"
        return self.sealer.open(text, run_id, what)


# ---- damaged state files -------------------------------------------------------------------------

QUICK_CHECK_MAX_BYTES = 256 * 2**20  # a larger file is checked as it is read, not up front


def file_problem(path: str, thorough: bool = False) -> str | None:
    """What is wrong with the SQLite file at ``path`` ("is damaged: ..."), or None if it reads whole
    (``PRAGMA quick_check``; ``integrity_check`` when ``thorough``, which also compares every
    index with its table). The file is opened read-only and never created.

    >>> import tempfile
    >>> bad = os.path.join(tempfile.mkdtemp(), "state.sqlite")
    >>> _ = open(bad, "wb").write(b"not a database" * 512)
    >>> file_problem(bad)
    'is not a SQLite database (file is not a database)'
    """
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        return f"cannot be opened ({e})"
    try:
        rows = con.execute("PRAGMA integrity_check" if thorough else "PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as e:
        code = (getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF
        return ("is not a SQLite database" if code == 26 or "not a database" in str(e) else
                "is damaged" if code == 11 else "cannot be read") + f" ({e})"
    finally:
        con.close()
    found = [line for (text,) in rows for line in str(text).splitlines() if line and not line.startswith("***")]
    if found == ["ok"]:
        return None
    more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
    return "is damaged: " + "; ".join(found[:3]) + more


def damaged_file(path: str, problem: str) -> StateDamaged:
    """The error that stops a command at the damaged state file ``path``: named, with what to do."""
    return StateDamaged(f"the state file {path}", problem, "no run can use it until it is repaired; "
                        + damaged_remedy(path), fix=damaged_remedy(path))


def check_state_file(path: str) -> None:
    """:class:`StateDamaged` if the SQLite state file ``path`` (when it exists, and is not too
    large to check quickly) is damaged: found before a run starts, not in the middle of it."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return  # not there yet: made by the store that opens it
    if size <= QUICK_CHECK_MAX_BYTES:
        problem = file_problem(path)
        if problem is not None:
            raise damaged_file(path, problem)


@dataclass
class Salvaged:
    """What :func:`salvage` kept of a damaged SQLite file: rows per table, and what was lost."""

    tables: dict[str, int] = field(default_factory=dict)  # table -> rows kept
    partial: list[str] = field(default_factory=list)  # tables some rows of which could not be read
    lost: list[str] = field(default_factory=list)  # what could not be rebuilt at all (a table, an index)
    schema_lost: bool = False  # not even the list of tables could be read: nothing was kept

    @property
    def whole(self) -> bool:
        return not (self.partial or self.lost or self.schema_lost)


def move_aside(path: str, now: datetime | None = None) -> str:
    """Rename the SQLite file ``path`` (and its ``-wal`` and ``-shm`` files, which belong to it) to
    ``path.damaged-<UTC time>``, and return that name. Nothing is deleted."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    aside, n = f"{path}.damaged-{stamp}", 1
    while any(os.path.exists(aside + suffix) for suffix in ("", "-wal", "-shm")):
        n += 1
        aside = f"{path}.damaged-{stamp}.{n}"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.rename(path + suffix, aside + suffix)
    return aside


def salvage(damaged: str, path: str) -> Salvaged:
    """Write at ``path`` (a new file) what can be read of the damaged SQLite file ``damaged``:
    its schema, every row that can be read (a table is read by rowid, past pages that cannot be,
    never through its possibly damaged indexes, which are built again), its indexes and triggers.
    ``damaged`` is only read."""
    out = Salvaged()
    src = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True)
    try:
        try:
            schema = src.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                                 "ORDER BY rowid").fetchall()
        except sqlite3.DatabaseError:
            out.schema_lost = True
            return out
        tmp = path + ".salvaging"
        for suffix in ("", "-journal"):
            if os.path.exists(tmp + suffix):
                os.unlink(tmp + suffix)  # an earlier salvage's half-written copy, never the state
        dst = sqlite3.connect(tmp, isolation_level=None)
        try:
            dst.execute("BEGIN")
            tables = [(name, sql) for kind, name, _, sql in schema if kind == "table" and not name.startswith("sqlite_")]
            for name, sql in tables:
                dst.execute(sql)
            for name, _ in tables:
                kept, whole = _copy_rows(src, dst, name)
                out.tables[name] = kept
                if not whole:
                    out.partial.append(name)
            for kind, name, _, sql in schema:
                if kind in ("index", "trigger", "view"):
                    try:
                        dst.execute(sql)
                    except sqlite3.DatabaseError:  # a unique index the kept rows no longer fit
                        out.lost.append(f"{kind} {name}")
            for pragma in ("user_version", "application_id"):
                try:
                    value = int(src.execute(f"PRAGMA {pragma}").fetchone()[0])
                    dst.execute(f"PRAGMA {pragma} = {value}")
                except (sqlite3.DatabaseError, TypeError):
                    pass
            dst.execute("COMMIT")
        finally:
            dst.close()
        os.replace(tmp, path)
    finally:
        src.close()
    return out


def _copy_rows(src: sqlite3.Connection, dst: sqlite3.Connection, table: str) -> tuple[int, bool]:
    """Copy the rows of ``table`` that can be read, in rowid order; (rows kept, whether all were)."""
    try:
        columns = [row[1] for row in src.execute(f'PRAGMA table_info("{table}")')]
    except sqlite3.DatabaseError:
        return 0, False
    names = ", ".join(f'"{c}"' for c in columns)
    insert = f'INSERT INTO "{table}" (rowid, {names}) VALUES (?{", ?" * len(columns)})'
    read = f'SELECT rowid, {names} FROM "{table}" NOT INDEXED WHERE rowid > ? ORDER BY rowid LIMIT ?'
    kept, whole, last = 0, True, -(2**63)
    while True:
        try:
            rows = src.execute(read, (last, 256)).fetchall()
        except sqlite3.OperationalError as e:
            if "rowid" in str(e):  # a WITHOUT ROWID table: read it in one go, as far as it reads
                return _copy_without_rowid(src, dst, table, names, len(columns))
            raise
        except sqlite3.DatabaseError:
            whole = False
            rows = _rows_one_by_one(src, read, last)
            if not rows:  # the next row does not read: skip it, or the pages it is on
                found = _next_rowid(src, table, last)
                last = found if found is not _UNREADABLE else _next_readable(src, table, last)
                if last is None:
                    break
                continue
        if not rows:
            break
        dst.executemany(insert, rows)
        kept += len(rows)
        last = rows[-1][0]
    return kept, whole


def _rows_one_by_one(src: sqlite3.Connection, read: str, last: int) -> list[tuple]:
    rows: list[tuple] = []
    while True:
        try:
            row = src.execute(read, (rows[-1][0] if rows else last, 1)).fetchone()
        except sqlite3.DatabaseError:
            return rows
        if row is None:
            return rows
        rows.append(row)


_UNREADABLE = object()


def _next_rowid(src: sqlite3.Connection, table: str, last: int):
    """The rowid of the row after ``last`` (whose values may not read: an overflow page lost), None
    if there is none, or ``_UNREADABLE`` if even that cannot be read."""
    try:
        row = src.execute(f'SELECT rowid FROM "{table}" NOT INDEXED WHERE rowid > ? ORDER BY rowid LIMIT 1',
                          (last,)).fetchone()
    except sqlite3.DatabaseError:
        return _UNREADABLE
    return row[0] if row is not None else None


def _next_readable(src: sqlite3.Connection, table: str, last: int) -> int | None:
    """The greatest ``x`` past ``last`` from which ``table`` reads again (rows past ``last`` and up
    to ``x`` are on pages that cannot be read), or None if nothing past ``last`` reads."""
    probe = f'SELECT rowid FROM "{table}" NOT INDEXED WHERE rowid > ? ORDER BY rowid LIMIT 1'

    def reads(x: int) -> bool:
        try:
            src.execute(probe, (x,)).fetchone()
            return True
        except sqlite3.DatabaseError:
            return False

    step, bad = 1, last
    while bad + step < 2**63 - 1 and not reads(bad + step):  # widen past the damaged pages
        step *= 2
    if bad + step >= 2**63 - 1:
        return None
    good = bad + step
    while good - bad > 1:  # and come back to where the readable pages start
        middle = (good + bad) // 2
        if reads(middle):
            good = middle
        else:
            bad = middle
    return good


def _copy_without_rowid(src, dst, table: str, names: str, width: int) -> tuple[int, bool]:
    insert = f'INSERT INTO "{table}" ({names}) VALUES (?{", ?" * (width - 1)})'
    kept = 0
    try:
        for row in src.execute(f'SELECT {names} FROM "{table}"'):
            dst.execute(insert, row)
            kept += 1
    except sqlite3.DatabaseError:
        return kept, False
    return kept, True
