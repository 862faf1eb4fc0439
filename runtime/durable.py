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
"""

from __future__ import annotations

import asyncio
import os
import secrets
from contextlib import AsyncExitStack
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Callable, Mapping

import anyio
from dbos import DBOS, SetWorkflowID

from vox.runtime.executor.journal import StoreJournal
from vox.runtime.state import RunSpec, StateStore, hide_password

if TYPE_CHECKING:
    from vox.compiler.plan.model import Plan
    from vox.runtime.host import RunResult, Runtime

APP_VERSION = "vox-2"  # every run, local or fleet: the workflow loads its plan by hash from the store
QUEUE = "vox"  # the fleet's queue

_launched: list["Durability"] = []


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
                 *, executor_id: str | None = None):
        self.state_dir = state_dir
        self.env = dict(os.environ if env is None else env)
        self.db = db
        # A fresh executor id per process: DBOS recovers at launch only the runs of its own id,
        # so starting `voxc run` never silently resumes another, crashed run (`--resume` does).
        self.executor_id = executor_id or f"local-{os.getpid()}-{secrets.token_hex(4)}"
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
        self.state = StateStore(state_url(self.state_dir, self.db), load_sealer(self.state_dir, self.env))
        self.receipt_key = load_key(self.state_dir, self.env)
        DBOS(config={"name": "vox", "system_database_url": system_url(self.state_dir, self.db),
                     "application_version": APP_VERSION, "executor_id": self.executor_id, "log_level": "ERROR"})
        DBOS.launch()
        _launched.append(self)
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            await self._close_runtimes()
        finally:
            _launched.clear()
            DBOS.destroy(destroy_registry=False)
            self.state.close()

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
                    plan = self.state.load_plan(spec.plan_hash)
                if id(loop) not in self._stacks:
                    stack = AsyncExitStack()
                    await stack.__aenter__()
                    self._stacks[id(loop)] = (loop, stack)
                runtime = Runtime(plan, options_for(spec, self.state_dir, self.env, self.db), events, durability=self)
                self._runtimes[key] = await self._stacks[id(loop)][1].enter_async_context(runtime)
        return self._runtimes[key]

    # ---- runs ------------------------------------------------------------------------------------

    async def start(self, plan: "Plan", spec: RunSpec) -> "RunResult":
        """Start ``spec``'s run (or, for a run id already used with the same program, flow and
        input, carry it on) and wait until it ends or waits for a person."""
        from vox.runtime.host import RunResult

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
        """Carry on a run whose process stopped (crashed, or exited while the run waited)."""
        from vox.runtime.host import RunResult

        stored = self.state.get_run(run_id)
        if stored.status in ("ok", "failed") and stored.result is not None:
            return RunResult(**stored.result)
        paused = self._expect(run_id)
        handle = await DBOS.resume_workflow_async(run_id)
        return await self.outcome(run_id, handle, paused)

    def _expect(self, run_id: str) -> asyncio.Future:
        """A future the run's journal resolves when the run starts waiting for a person; made
        before the run starts, so that a pause cannot come before anyone listens."""
        loop = asyncio.get_running_loop()
        paused = loop.create_future()
        self._pauses[run_id] = (loop, paused)
        return paused

    async def outcome(self, run_id: str, handle: Any, paused: asyncio.Future) -> "RunResult":
        """The run's result, or where it waits for a person, whichever comes first."""
        from vox.runtime.host import RunResult

        found: dict[str, Any] = {}
        try:
            async with anyio.create_task_group() as tg:
                async def result() -> None:
                    await handle.get_result()
                    tg.cancel_scope.cancel()

                async def waiting() -> None:
                    # told by the run's journal, which executes in this process (on this loop or
                    # on DBOS's), the moment it starts waiting for a person
                    found["waiting"] = await paused
                    tg.cancel_scope.cancel()

                tg.start_soon(result)
                tg.start_soon(waiting)
        finally:
            self._pauses.pop(run_id, None)
        stored = self.state.get_run(run_id)
        if stored.status in ("ok", "failed") and stored.result is not None:
            return RunResult(**stored.result)
        return RunResult(run_id, stored.spec.flow, "waiting", waiting=found.get("waiting") or stored.waiting)

    def _paused(self, run_id: str, waiting: dict) -> None:
        """The journal's ``on_wait``: wake the caller waiting on ``outcome`` (from any thread)."""
        found = self._pauses.get(run_id)
        if found is not None:
            loop, future = found
            loop.call_soon_threadsafe(lambda: future.done() or future.set_result(waiting))

    def decide(self, run_id: str, step: str, verdict: str, result: Any = None) -> None:
        """Record a person's answer for a waiting run (it goes on wherever it is waiting)."""
        self.state.decide(run_id, step, verdict, result)

    async def execute(self, run_id: str) -> str:
        """The workflow's body: the run's spec, its runtime, its journal; the result is stored."""
        stored = self.state.get_run(run_id)
        epoch = self.state.claim(run_id, self.executor_id)
        runtime = await self.runtime_for(stored.spec)
        journal = StoreJournal(self.state, run_id, on_wait=self._paused, epoch=epoch)
        result = await runtime.execute_spec(stored.spec, journal)
        self.state.finish(run_id, asdict(result), epoch)
        return result.status

    def describe(self) -> str:
        return hide_password(self.state.url)
