"""Durable runs: one DBOS workflow per run, over a run spec and a journal keyed by step name.

DBOS does what it is good at: it owns each run (which process executes it), queues fleet runs,
and recovers a run whose process died. Everything else lives in the deployment's state store
(:mod:`vox.runtime.state`): the run's spec (the workflow's only input is the run id), its journal
keyed by step name, decisions, plans and receipts. We do not use DBOS steps: DBOS identifies a
step by the order it starts, and the branches of a `par` start in a different order on replay.

One :class:`Durability` per process, owned by the entry point (`voxc run`, `approve`, `worker`,
the Python API), launches DBOS and serves the runs it executes; the workflow function finds it
through ``_launched``, because DBOS's registry of workflow functions is process-global too.

Where a run executes: a run started here runs on the caller's event loop; a run DBOS resumes or
dequeues runs on DBOS's own event loop thread. A runtime (HTTP client, simulator) belongs to one
loop, so runtimes are opened per loop, on first use, from the run's spec alone.

Which process executes a run: the one that started it, or resumed it. DBOS would put a resumed
run on its internal queue, from which every process on the same database dequeues, so a run
approved in one process could be taken by another, unrelated `voxc run`, and left half done when
that one exits (and the approving process would wait for it for ever). So each process resumes
runs on a queue of its own, and listens to no queue but its own; a `voxc worker` listens to the
fleet's queue only. A run's state is the state store's: if DBOS lost or ended its workflow while the run is
not finished, resuming starts the workflow again, and the journal replays.

Damaged state: a SQLite state file is checked (``PRAGMA quick_check``) before DBOS or the store
use it, and every error that says a file is damaged or cannot be written becomes a
:class:`~vox.runtime.state.StateDamaged` that names it and says what to do. A run that meets one
in the middle stops there (its workflow is left pending, to be resumed once the file is
repaired), and its caller gets the error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sqlite3
from contextlib import AsyncExitStack, contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

import anyio
from dbos import DBOS, SetWorkflowID

from vox.runtime.executor.journal import StoreJournal
from vox.runtime.fleet.store import StoreDamaged, damaged_remedy, sqlite_damage
from vox.runtime.state import RunSpec, StateDamaged, StateStore, check_state_file, hide_password

if TYPE_CHECKING:
    from vox.compiler.plan.model import Plan
    from vox.runtime.host import RunResult, Runtime

APP_VERSION = "vox-2"  # every run, local or fleet: the workflow loads its plan by hash from the store
QUEUE = "vox"  # the fleet's queue
START_WAIT_S = 30.0  # a run resumed here that has not started in this long will not: the caller is told why
FINISHED = ("SUCCESS", "ERROR")  # DBOS statuses of a workflow that DBOS will not resume

log = logging.getLogger("vox.durable")

_launched: list["Durability"] = []


class RunStopped(asyncio.CancelledError):
    """The run met a state file it cannot use and stopped where it was: a cancellation, so that
    DBOS leaves its workflow pending (to be resumed once the file is repaired), never ended."""


@DBOS.workflow(name="vox.run")
async def vox_run(run_id: str) -> str:
    """The one workflow: carry out the run ``run_id`` as its stored spec says."""
    if not _launched:
        raise RuntimeError("no durable runtime is open in this process")
    return await _launched[0].execute(run_id)


def state_url(state_dir: str, db: str | None) -> str:
    """The deployment's state store: the fleet's database, else ``<state_dir>/state.sqlite``."""
    return db or "sqlite:///" + os.path.abspath(os.path.join(state_dir, "state.sqlite"))


def system_url(state_dir: str, db: str | None) -> str:
    """DBOS's system database: the fleet's database, else ``<state_dir>/dbos.sqlite``."""
    return db or "sqlite:///" + os.path.abspath(os.path.join(state_dir, "dbos.sqlite"))


def is_sealed_plan(plan: "Plan") -> bool:
    """Whether runs of ``plan`` are sealed at rest: it declares a label other than `public`."""
    return any(label != "public" for label in plan.labels)


class Durability:
    """DBOS launched on the deployment's database, the state store, and the runtimes serving runs."""

    def __init__(self, state_dir: str = ".vox", env: Mapping[str, str] | None = None, db: str | None = None,
                 *, executor_id: str | None = None, fleet: bool | None = None):
        self.state_dir = state_dir
        self.env = dict(os.environ if env is None else env)
        self.db = db
        # A fresh executor id per process: DBOS recovers at launch only the runs of its own id,
        # so starting `voxc run` never silently resumes another, crashed run (`--resume` does).
        self.executor_id = executor_id or f"local-{os.getpid()}-{secrets.token_hex(4)}"
        # Whether this process takes runs off the fleet's queue: a `voxc worker` (which names its
        # executor), never a `voxc run` or `approve`, which would leave them half done on exit.
        self.fleet = executor_id is not None if fleet is None else fleet
        self.queue = "vox-here-" + self.executor_id  # the runs this process resumes, and only it
        self._queue_made = False
        self._started: dict[str, asyncio.Event] = {}  # run id -> set when its execution begins here
        self._stopped: dict[str, StoreDamaged] = {}  # run id -> why its execution stopped here
        self.state: StateStore | None = None
        self.receipt_key = None
        self._runtimes: dict[tuple, "Runtime"] = {}
        self._stacks: dict[int, tuple[asyncio.AbstractEventLoop, AsyncExitStack]] = {}
        self._opening: dict[int, anyio.Lock] = {}
        # run id -> (loop, future) of a caller in this process waiting to hear the run pause
        self._pauses: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future]] = {}

    # ---- the process's lifetime ------------------------------------------------------------------

    async def __aenter__(self) -> "Durability":
        from vox.runtime.receipts import load_key
        from vox.runtime.sealing import load_sealer

        if _launched:
            raise RuntimeError("durable runs are already open in this process")
        os.makedirs(self.state_dir, exist_ok=True)
        with self._named_damage():
            if self.db is None:  # found before anything uses them, not in the middle of a run
                for url in (system_url(self.state_dir, None), state_url(self.state_dir, None)):
                    check_state_file(url[len("sqlite:///"):])
            self.state = StateStore(state_url(self.state_dir, self.db), load_sealer(self.state_dir, self.env))
        dbos_made = False
        try:
            self.receipt_key = load_key(self.state_dir, self.env)
            with self._named_damage():
                DBOS(config={"name": "vox", "system_database_url": system_url(self.state_dir, self.db),
                             "application_version": APP_VERSION, "executor_id": self.executor_id,
                             "log_level": "ERROR"})
                dbos_made = True
                # a worker takes runs off the fleet's queue only (it resumes none itself)
                DBOS.listen_queues([QUEUE] if self.fleet else [self.queue])
                DBOS.launch()
                _launched.append(self)
                if not self.fleet:
                    await DBOS.register_queue_async(self.queue, polling_interval_sec=0.1)
                    self._queue_made = True
        except BaseException:
            if _launched:
                await self.__aexit__(None, None, None)
            else:
                if dbos_made:
                    DBOS.destroy(destroy_registry=False)
                self.state.close()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            await self._close_runtimes()
        finally:
            _launched.clear()
            if self._queue_made:  # the queue of this process goes with it (a waiting run is resumed anew)
                try:
                    await DBOS.delete_queue_async(self.queue)
                except Exception:  # noqa: BLE001 - a queue left behind is a row, never a lost run
                    log.debug("could not delete queue %s", self.queue, exc_info=True)
            DBOS.destroy(destroy_registry=False)
            self.state.close()

    @contextmanager
    def _named_damage(self) -> Iterator[None]:
        """Errors that say a state file is damaged or cannot be written, as :class:`StateDamaged`
        naming the file (the state store's, or DBOS's system database) and what to do."""
        try:
            yield
        except Exception as e:
            damage = self._damage_in(e)
            if damage is None:
                raise
            raise damage from e

    def _damage_in(self, e: BaseException, system: bool = True) -> StateDamaged | None:
        """The damage ``e`` reports (``e`` itself, or one of a task group's errors), if any; with
        ``system``, a driver's error raised under DBOS is taken to be about its system database."""
        if isinstance(e, StoreDamaged):
            return StateDamaged.of(e)
        if isinstance(e, BaseExceptionGroup):
            for inner in e.exceptions:
                found = self._damage_in(inner, system)
                if found is not None:
                    return found
            return None
        return self._system_damage(e) if system else None

    def _system_damage(self, e: BaseException) -> StateDamaged | None:
        """``e``, raised by DBOS (or SQLAlchemy under it), as damage to DBOS's system database."""
        seen: set[int] = set()
        cause: BaseException | None = e
        while cause is not None and id(cause) not in seen:  # SQLAlchemy keeps the driver's error in `orig`
            seen.add(id(cause))
            if isinstance(cause, sqlite3.DatabaseError) and self.db is None:
                path = system_url(self.state_dir, None)[len("sqlite:///"):]
                found = sqlite_damage(cause, path)
                if found is not None:
                    return StateDamaged.of(found)
                return None
            if type(cause).__module__.startswith("psycopg") and type(cause).__name__ in (
                    "DataCorrupted", "IndexCorrupted", "DiskFull"):
                return StateDamaged(f"DBOS's tables in {hide_password(self.db or '')}",
                                    f"cannot be used ({type(cause).__name__}: {str(cause).splitlines()[0]})",
                                    "repair the database (REINDEX, or restore from a backup); "
                                    "`voxc runs doctor --db URL` says what it can read")
            cause = getattr(cause, "orig", None) or cause.__cause__ or cause.__context__
        return None

    async def _close_runtimes(self) -> None:
        here = asyncio.get_running_loop()
        for loop, stack in list(self._stacks.values()):
            if loop is here:
                await stack.aclose()
            elif loop.is_running():
                await anyio.to_thread.run_sync(
                    lambda: asyncio.run_coroutine_threadsafe(stack.aclose(), loop).result(30))
        self._stacks.clear()
        self._runtimes.clear()

    # ---- runtimes --------------------------------------------------------------------------------

    def adopt(self, runtime: "Runtime") -> None:
        """Serve runs of ``runtime``'s plan and options with it, on the current loop (the Python
        API's runtime, which opened this durability)."""
        o = runtime.options
        key = (id(asyncio.get_running_loop()), runtime.plan.plan_hash, o.base_dir, o.simulate, o.seed)
        self._runtimes[key] = runtime

    async def runtime_for(self, spec: RunSpec, plan: "Plan | None" = None,
                          events: Callable[[dict], None] | None = None) -> "Runtime":
        """The runtime serving ``spec`` on this event loop, opened from the spec on first use."""
        from vox.runtime.host import Runtime, options_for

        loop = asyncio.get_running_loop()
        key = (id(loop), spec.plan_hash, spec.base_dir, spec.simulate, spec.seed)
        found = self._runtimes.get(key)
        if found is not None:
            return found
        lock = self._opening.setdefault(id(loop), anyio.Lock())
        async with lock:
            if key not in self._runtimes:
                if plan is None:
                    with self._named_damage():
                        plan = self.state.load_plan(spec.plan_hash)
                if id(loop) not in self._stacks:
                    stack = AsyncExitStack()
                    await stack.__aenter__()
                    self._stacks[id(loop)] = (loop, stack)
                runtime = Runtime(plan, options_for(spec, self.state_dir, self.env, self.db), events, durability=self)
                with self._named_damage():  # it opens the receipt ledger and the run-wide ledgers
                    self._runtimes[key] = await self._stacks[id(loop)][1].enter_async_context(runtime)
        return self._runtimes[key]

    # ---- runs ------------------------------------------------------------------------------------

    async def start(self, plan: "Plan", spec: RunSpec) -> "RunResult":
        """Start ``spec``'s run (or, for a run id already used with the same program, flow and
        input, carry it on) and wait until it ends or waits for a person."""
        from vox.runtime.host import RunResult

        with self._named_damage():
            self.state.save_plan(plan)
            existing = self.state.create_run(spec, is_sealed_plan(plan))
            if existing is not None:
                if existing.status in ("ok", "failed"):
                    return RunResult(**existing.result)
                return await self.resume(spec.run_id)
            paused = self._expect(spec.run_id)
            with SetWorkflowID(spec.run_id):
                handle = await DBOS.start_workflow_async(vox_run, spec.run_id)
            return await self.outcome(spec.run_id, handle, paused)

    async def resume(self, run_id: str) -> "RunResult":
        """Carry on a run whose process stopped (crashed, or exited while the run waited), here."""
        from vox.runtime.host import RunResult

        with self._named_damage():
            stored = self.state.get_run(run_id)
            if stored.status in ("ok", "failed") and stored.result is not None:
                return RunResult(**stored.result)
            paused = self._expect(run_id)
            status = await DBOS.get_workflow_status_async(run_id)
            if status is not None and status.status in FINISHED:
                # DBOS ended the workflow (an error outside the run, say) but the run is not
                # finished: its journal is the truth, so the workflow starts again and replays it
                await DBOS.delete_workflow_async(run_id)
                status = None
            if status is None:  # never started, or its workflow was lost (DBOS's file moved aside)
                with SetWorkflowID(run_id):
                    handle = await DBOS.start_workflow_async(vox_run, run_id)
            else:
                handle = await DBOS.resume_workflow_async(run_id, queue_name=QUEUE if self.fleet else self.queue)
            return await self.outcome(run_id, handle, paused)

    def _expect(self, run_id: str) -> asyncio.Future:
        """A future the run's journal resolves when the run starts waiting for a person; made
        before the run starts, so that a pause cannot come before anyone listens."""
        loop = asyncio.get_running_loop()
        paused = loop.create_future()
        self._pauses[run_id] = (loop, paused)
        self._started[run_id] = asyncio.Event()
        self._stopped.pop(run_id, None)
        return paused

    async def outcome(self, run_id: str, handle: Any, paused: asyncio.Future) -> "RunResult":
        """The run's result, or where it waits for a person, whichever comes first; a
        :class:`StateDamaged` if the run stopped at a state file it cannot use, or if it did not
        start at all (DBOS did not hand it to this process) within ``START_WAIT_S``."""
        from vox.runtime.host import RunResult

        found: dict[str, Any] = {}
        started = self._started[run_id]
        try:
            async with anyio.create_task_group() as tg:
                async def result() -> None:
                    try:
                        await handle.get_result()
                    except asyncio.CancelledError:
                        if run_id not in self._stopped:
                            raise
                    tg.cancel_scope.cancel()

                async def waiting() -> None:
                    # told by the run's journal, which executes in this process (on this loop or
                    # on DBOS's), the moment it starts waiting for a person (or stops)
                    try:
                        found["waiting"] = await paused
                    except StoreDamaged:
                        pass  # kept in self._stopped
                    tg.cancel_scope.cancel()

                async def begins() -> None:
                    with anyio.move_on_after(START_WAIT_S):
                        await started.wait()
                        return
                    found["not_started"] = True
                    tg.cancel_scope.cancel()

                tg.start_soon(result)
                tg.start_soon(waiting)
                tg.start_soon(begins)
        finally:
            self._pauses.pop(run_id, None)
            self._started.pop(run_id, None)
        stopped = self._stopped.pop(run_id, None)
        if stopped is not None:
            raise StateDamaged.of(stopped)
        if found.get("not_started"):
            raise self._not_started(run_id)
        stored = self.state.get_run(run_id)
        if stored.status in ("ok", "failed") and stored.result is not None:
            return RunResult(**stored.result)
        return RunResult(run_id, stored.spec.flow, "waiting", waiting=found.get("waiting") or stored.waiting)

    def _not_started(self, run_id: str) -> StateDamaged:
        """Why run ``run_id`` did not start: DBOS's system database, damaged, or not answering."""
        where = system_url(self.state_dir, self.db)
        if self.db is None:
            path = where[len("sqlite:///"):]
            check_state_file(path)  # raises, naming what is damaged, if it is
            return StateDamaged(f"DBOS's system database {path}", f"did not start run {run_id} within "
                                f"{START_WAIT_S:.0f} s", "nothing of the run was done meanwhile; try again, and if "
                                "it happens again " + damaged_remedy(path), damaged=False)
        return StateDamaged(f"DBOS's tables in {hide_password(where)}", f"did not start run {run_id} within "
                            f"{START_WAIT_S:.0f} s", "nothing of the run was done meanwhile; try again, and check "
                            "the database with `voxc runs doctor --db URL`", damaged=False)

    def _paused(self, run_id: str, waiting: dict) -> None:
        """The journal's ``on_wait``: wake the caller waiting on ``outcome`` (from any thread)."""
        found = self._pauses.get(run_id)
        if found is not None:
            loop, future = found
            loop.call_soon_threadsafe(lambda: future.done() or future.set_result(waiting))

    def _began(self, run_id: str) -> None:
        """The run's execution began in this process: its caller stops waiting for it to start."""
        found, event = self._pauses.get(run_id), self._started.get(run_id)
        if found is not None and event is not None:
            found[0].call_soon_threadsafe(event.set)

    def _stop(self, run_id: str, why: StoreDamaged) -> None:
        """The run stopped at a state file it cannot use: tell its caller, here, from any thread."""
        found = self._pauses.get(run_id)
        if found is not None:
            self._stopped[run_id] = why
            loop, future = found
            loop.call_soon_threadsafe(lambda: future.done() or future.set_exception(why))
        else:  # nobody here waits for it (a worker): say so where the worker's messages go
            log.error("run %s stopped: %s", run_id, why)

    def decide(self, run_id: str, step: str, verdict: str, result: Any = None) -> None:
        """Record a person's answer for a waiting run (it goes on wherever it is waiting)."""
        with self._named_damage():
            self.state.decide(run_id, step, verdict, result)

    async def execute(self, run_id: str) -> str:
        """The workflow's body: the run's spec, its runtime, its journal; the result is stored."""
        self._began(run_id)
        try:
            stored = self.state.get_run(run_id)
            epoch = self.state.claim(run_id, self.executor_id)
            runtime = await self.runtime_for(stored.spec)
            journal = StoreJournal(self.state, run_id, on_wait=self._paused, epoch=epoch)
            result = await runtime.execute_spec(stored.spec, journal)
            self.state.finish(run_id, asdict(result), epoch)
        except Exception as e:
            damage = self._damage_in(e, system=False)
            if damage is None:
                raise
            self._stop(run_id, damage)
            raise RunStopped(str(damage)) from None
        return result.status

    def describe(self) -> str:
        return hide_password(self.state.url)
