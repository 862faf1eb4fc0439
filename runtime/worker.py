"""Fleet mode: many `voxc worker` processes sharing one PostgreSQL database, and nothing else.

`voxc run --db URL --submit` stores the plan and the run's spec in the database's state store and
enqueues the run on the `vox` DBOS queue; any worker dequeues it and carries it out from its spec,
as the same durable workflow as a local run (:mod:`vox.runtime.durable`). Journal, receipts,
ledgers, leases, events and heartbeats are all in the same database, so workers on different
machines share only its URL (and the state key and the receipt signing key, given explicitly).
Each worker beats a heartbeat; when one stops beating, exactly one of the others claims it and
puts its pending runs back on the queue, which the open-source engine does not do by itself.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Mapping

import anyio

from vox.compiler.plan.model import Plan
from vox.runtime.durable import APP_VERSION, QUEUE, Durability, is_sealed_plan, state_url, system_url
from vox.runtime.state import RunSpec, StateStore

log = logging.getLogger("vox.worker")


class WorkerDeclaredDead(Exception):
    """This worker was declared dead by its peers (it stopped beating for too long) and its runs
    are being carried on elsewhere: it stops, so no run executes twice at once."""


class FleetKeysMissing(Exception):
    """A fleet member started without the keys every member must be given explicitly."""


def fleet_keys_missing(env: Mapping[str, str]) -> list[str]:
    """The keys every member of a fleet must be given explicitly, when missing: the state key
    (``VOX_STATE_KEY``), and the receipt signing key (``VOX_SIGNING_KEY``, or a key file named by
    ``VOX_SIGNING_KEY_FILE``, or the older ``VOX_RECEIPT_KEY`` it is derived from). A key file in
    one machine's state folder would make its runs unreadable on the others, and a key a worker
    made for itself in its config folder would sign receipts no other machine trusts."""
    from vox.runtime.receipts import KEY_ENV, SIGNING_KEY_ENV, SIGNING_KEY_FILE_ENV
    from vox.runtime.sealing import env_secret

    missing = [] if env_secret(env, "VOX_STATE_KEY") else ["VOX_STATE_KEY"]
    if not any(env_secret(env, name) for name in (SIGNING_KEY_ENV, SIGNING_KEY_FILE_ENV, KEY_ENV)):
        missing.append(SIGNING_KEY_ENV)
    return missing


def submit(url: str, plan: Plan, spec: RunSpec, state_dir: str, env: Mapping[str, str]) -> str:
    """Store ``spec`` (and its plan) in the fleet's database and enqueue the run; return its id."""
    from dbos import DBOSClient

    from vox.runtime.sealing import load_sealer

    state = StateStore(state_url(state_dir, url), load_sealer(state_dir, env))
    try:
        state.save_plan(plan)
        existing = state.create_run(spec, is_sealed_plan(plan))
    finally:
        state.close()
    if existing is not None:
        return spec.run_id  # submitted before, with the same program, flow and input
    from dbos import DBOS

    DBOS.migrate(system_url(state_dir, url))  # a fresh database has no queue yet (idempotent)
    client = DBOSClient(system_database_url=system_url(state_dir, url))
    try:
        client.enqueue({"queue_name": QUEUE, "workflow_name": "vox.run", "workflow_id": spec.run_id,
                        "app_version": APP_VERSION, "queue_partition_key": spec.tenant}, spec.run_id)
    finally:
        client.destroy()
    return spec.run_id


def executor_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def serve(url: str, state_dir: str, env: Mapping[str, str], concurrency: int, heartbeat_s: float = 2.0,
                ready=None, *, fleet_concurrency: int | None = None, tenant_concurrency: int | None = None) -> None:
    """Run a worker until cancelled: dequeue runs, beat, recover dead peers' runs.

    ``concurrency`` bounds this worker; ``fleet_concurrency`` and ``tenant_concurrency`` bound
    all workers together (the queue is partitioned by tenant), kept by DBOS in the shared database.
    Raises :class:`WorkerDeclaredDead` when its peers declared it dead.
    """
    from dbos import DBOS

    from vox.runtime.fleet import WorkerRegistry

    missing = fleet_keys_missing(env)
    if missing:  # never a key of its own making: the fleet's receipts must verify on every machine
        raise FleetKeysMissing(f"a fleet worker needs {' and '.join(missing)} (the same on every machine)")
    me = executor_id()
    async with Durability(state_dir, env, db=url, executor_id=me):
        if fleet_concurrency is not None:
            concurrency = min(concurrency, fleet_concurrency)  # DBOS: a worker may not exceed the fleet
        await DBOS.register_queue_async(QUEUE, worker_concurrency=concurrency, global_concurrency=fleet_concurrency,
                                        partition_concurrency=tenant_concurrency, polling_interval_sec=0.2)
        registry = WorkerRegistry(url)

        async def recover(dead: str) -> None:
            log.warning("worker %s stopped beating: recovering its runs", dead)
            for status in await DBOS.list_workflows_async(status="PENDING", executor_id=dead):
                await DBOS.resume_workflow_async(status.workflow_id, queue_name=QUEUE)

        async def declared_dead() -> None:
            raise WorkerDeclaredDead(f"worker {me} was declared dead by its peers; its runs go on elsewhere")

        stopped_cleanly = False
        try:
            if ready is not None:
                ready(me)
            await registry.heartbeat_loop(me, heartbeat_s, recover, info={"pid": os.getpid()},
                                          on_declared_dead=declared_dead)
        except anyio.get_cancelled_exc_class():
            stopped_cleanly = True
            raise
        finally:
            if stopped_cleanly:
                with anyio.CancelScope(shield=True):
                    await _step_down(registry, me)


async def _step_down(registry, me: str) -> None:
    """A worker told to stop (SIGTERM, SIGINT): retired if it holds no pending run; otherwise
    marked dead at once, so a peer carries its runs on now rather than after the heartbeat's TTL."""
    from dbos import DBOS

    pending = await DBOS.list_workflows_async(status="PENDING", executor_id=me)
    if not pending:
        await anyio.to_thread.run_sync(registry.retire, me)
    else:
        await anyio.to_thread.run_sync(registry.abandon, me)
