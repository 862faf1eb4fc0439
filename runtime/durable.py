"""Durable runs: a flow is one generic DBOS workflow over the plan.

Every model call and tool call of a run is a DBOS step named by its execution's step name (see
:mod:`vox.runtime.executor.journal`), so a run that is interrupted resumes where it was, with no
effect repeated. The DBOS application version is the plan's hash: a changed program never
replays an old run's history. The system database is SQLite under the state directory
(`.vox/dbos.sqlite`) unless a PostgreSQL URL is given.

A run waiting for a person (an `approval: human` tool without a pre-approval) publishes a
``waiting`` event and blocks on a DBOS message; `voxc approve RUN_ID` sends it, in this process
or a later one (which recovers the pending workflow first).
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import anyio
from dbos import DBOS, SetWorkflowID

from vox.compiler.plan import plan_to_json
from vox.runtime.executor.journal import DBOSJournal, approval_topic
from vox.runtime.executor.run import Run

if TYPE_CHECKING:
    from vox.runtime.host import RunResult, Runtime

_HOSTS: dict[str, "Runtime"] = {}  # plan hash → the runtime serving it in this process
_LOADER = None  # a fleet worker's async (plan hash) -> Runtime, for plans it has not served yet
_launched: list[str] = []  # the application version DBOS was launched with, while it is


@DBOS.workflow(name="vox.run")
async def vox_run(plan_hash: str, flow: str, raw_input: dict, options: dict) -> dict:
    """The one workflow: run ``flow`` of the plan with this hash."""
    from vox.runtime.host import execute

    host = _HOSTS.get(plan_hash)
    if host is None and _LOADER is not None:
        host = await _LOADER(plan_hash)
    if host is None:
        raise RuntimeError(f"plan {plan_hash[:12]} is not loaded in this process; run it with its program")
    services = host.services(DBOSJournal(), tuple(options.get("approve", ())), options.get("tool_mocks"))
    if options.get("tenant") and services.runwide is not None:
        from vox.runtime.runwide import RunWide

        services.runwide = RunWide(host.plan, services.runwide.url, options["tenant"])
    run = Run(host.plan, services, DBOS.workflow_id)
    return asdict(await execute(run, flow, raw_input))


def database_url(state_dir: str, env) -> str:
    return env.get("VOX_DATABASE_URL") or "sqlite:///" + os.path.abspath(os.path.join(state_dir, "dbos.sqlite"))


@asynccontextmanager
async def launched(host: "Runtime"):
    """DBOS launched for ``host``'s plan for the duration of the block."""
    plan_hash = host.plan.plan_hash
    if _launched and _launched[0] != plan_hash:
        raise RuntimeError("another program's durable runs are open in this process")
    save_plan(host)
    _HOSTS[plan_hash] = host
    first = not _launched
    if first:
        DBOS(config={
            "name": "vox",
            "system_database_url": database_url(host.options.state_dir, host.options.env),
            "application_version": plan_hash,
            "log_level": "ERROR",
        })
        DBOS.launch()
    _launched.append(plan_hash)
    try:
        yield
    finally:
        _launched.pop()
        if not _launched:
            _HOSTS.pop(plan_hash, None)
            DBOS.destroy(destroy_registry=False)


def save_plan(host: "Runtime") -> None:
    """Keep the plan next to the runs, so `voxc approve` can resume a run without its source."""
    folder = os.path.join(host.options.state_dir, "plans")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, host.plan.plan_hash + ".json")
    if not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(plan_to_json(host.plan))


async def run(host: "Runtime", flow: str, raw_input: dict, run_id: str, tool_mocks: dict,
              approve: tuple[str, ...]) -> "RunResult":
    options = {"approve": list(approve), "tool_mocks": tool_mocks}
    with SetWorkflowID(run_id):
        handle = await DBOS.start_workflow_async(vox_run, host.plan.plan_hash, flow, raw_input, options)
    if not may_wait(host.plan):
        from vox.runtime.host import RunResult

        return RunResult(**await handle.get_result())
    return await outcome(handle, run_id, flow)


def may_wait(plan) -> bool:
    """Whether a run of ``plan`` can pause for a person (an approval tool, an `ask_human` gate)."""
    return bool(plan.analysis.approval_tools) or any(
        check.action == "ask_human" for gate in plan.gates.values() for check in gate.checks)


async def outcome(handle, run_id: str, flow: str, answered: str | None = None) -> "RunResult":
    """The run's result, or where it waits for approval, whichever comes first (a wait at the
    step ``answered`` was just answered: the run is past it)."""
    from vox.runtime.host import RunResult

    found: dict[str, Any] = {}

    async with anyio.create_task_group() as tg:
        async def result() -> None:
            found["result"] = await handle.get_result()
            tg.cancel_scope.cancel()

        async def waiting() -> None:
            while True:
                event = await DBOS.get_event_async(run_id, "waiting", timeout_seconds=0.5)
                if event and event.get("step") != answered:
                    found["waiting"] = event
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(result)
        tg.start_soon(waiting)
    if "result" in found:
        return RunResult(**found["result"])
    return RunResult(run_id, flow, "waiting", waiting=found["waiting"])


async def decide(run_id: str, step: str, approved: bool) -> None:
    """Answer a waiting run's approval request (the run goes on when it is running)."""
    await DBOS.send_async(run_id, {"approved": approved}, topic=approval_topic(step))


async def resume(run_id: str, flow: str, answered: str | None = None) -> "RunResult":
    handle = await DBOS.retrieve_workflow_async(run_id)
    return await outcome(handle, run_id, flow, answered)
