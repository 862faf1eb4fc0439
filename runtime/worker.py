"""Fleet mode: many `voxc worker` processes sharing one PostgreSQL database through DBOS.

`voxc run --db URL --submit` stores the plan in the database (by hash) and enqueues the run on the
`vox` DBOS queue; any worker dequeues it, loads the plan by hash, and runs it as the same durable
workflow as a local run. Fleet workflows share one application version (plans are addressed by
hash, so a run always executes against exactly the plan it was submitted with). Each worker beats
a heartbeat; when one stops beating, exactly one of the others claims it and has DBOS recover its
pending runs, which the open-source engine does not do by itself.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from contextlib import AsyncExitStack
from dataclasses import replace

import anyio

from vox.compiler.plan import load_plan, plan_to_json
from vox.compiler.plan.model import Plan

FLEET_VERSION = "vox-fleet-1"
QUEUE = "vox"
PLANS_TABLE = (("CREATE TABLE IF NOT EXISTS {p}plan (plan_hash TEXT PRIMARY KEY, plan TEXT NOT NULL)",),)
log = logging.getLogger("vox.worker")


def save_plan(url: str, plan: Plan) -> None:
    """Keep ``plan`` in the fleet's database, so that any worker can run it (idempotent)."""
    from vox.runtime.fleet import open_store

    store = open_store(url)
    store.ensure("plans", PLANS_TABLE)
    text = plan_to_json(plan)
    store.run(lambda tx: tx.execute(
        "INSERT INTO {p}plan (plan_hash, plan) VALUES (?, ?) ON CONFLICT (plan_hash) DO NOTHING",
        (plan.plan_hash, text)))


def fetch_plan(url: str, plan_hash: str) -> Plan:
    from vox.runtime.fleet import open_store

    store = open_store(url)
    store.ensure("plans", PLANS_TABLE)
    row = store.run(lambda tx: tx.one("SELECT plan FROM {p}plan WHERE plan_hash = ?", (plan_hash,)))
    if row is None:
        raise LookupError(f"plan {plan_hash[:12]} is not in the fleet's database")
    return load_plan(row[0])


def submit(url: str, plan: Plan, flow: str, raw_input: dict, run_id: str, approve: tuple[str, ...] = (),
           tenant: str = "default") -> str:
    """Enqueue a run of ``flow`` for the fleet; return its id."""
    from dbos import DBOSClient

    save_plan(url, plan)
    client = DBOSClient(system_database_url=url)
    try:
        client.enqueue({"queue_name": QUEUE, "workflow_name": "vox.run", "workflow_id": run_id,
                        "app_version": FLEET_VERSION, "queue_partition_key": tenant},
                       plan.plan_hash, flow, raw_input, {"approve": list(approve), "tool_mocks": {}, "tenant": tenant})
    finally:
        client.destroy()
    return run_id


class Fleet:
    """What a worker process serves: a runtime per plan, opened on first use on DBOS's loop."""

    def __init__(self, url: str, options):
        self.url = url
        self.options = options
        self.stack = AsyncExitStack()
        self.lock = anyio.Lock()

    async def host(self, plan_hash: str):
        """The runtime of ``plan_hash``, opened once; its runs are journaled by the worker's DBOS."""
        from vox.runtime import durable
        from vox.runtime.host import Runtime

        async with self.lock:
            if plan_hash not in durable._HOSTS:
                plan = await anyio.to_thread.run_sync(fetch_plan, self.url, plan_hash)
                runtime = Runtime(plan, replace(self.options, durable=False))
                durable._HOSTS[plan_hash] = await self.stack.enter_async_context(runtime)
            return durable._HOSTS[plan_hash]


def executor_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def serve(url: str, options, concurrency: int, heartbeat_s: float = 2.0, ready=None, *,
                fleet_concurrency: int | None = None, tenant_concurrency: int | None = None) -> None:
    """Run a worker until cancelled: dequeue runs, beat, recover dead peers' runs.

    ``concurrency`` bounds this worker; ``fleet_concurrency`` and ``tenant_concurrency`` bound
    all workers together (the queue is partitioned by tenant), kept by DBOS in the shared database.
    """
    from dbos import DBOS

    from vox.runtime import durable
    from vox.runtime.fleet import WorkerRegistry

    me = executor_id()
    fleet = Fleet(url, options)
    durable._LOADER = fleet.host
    DBOS(config={"name": "vox", "system_database_url": url, "application_version": FLEET_VERSION,
                 "executor_id": me, "log_level": "ERROR"})
    DBOS.launch()
    if fleet_concurrency is not None:
        concurrency = min(concurrency, fleet_concurrency)  # DBOS: a worker may not exceed the fleet
    await DBOS.register_queue_async(QUEUE, worker_concurrency=concurrency, global_concurrency=fleet_concurrency,
                                    partition_concurrency=tenant_concurrency, polling_interval_sec=0.2)
    registry = WorkerRegistry(url)

    async def recover(dead: str) -> None:
        log.warning("worker %s stopped beating: recovering its runs", dead)
        await anyio.to_thread.run_sync(DBOS._recover_pending_workflows, [dead])

    try:
        if ready is not None:
            ready(me)
        await registry.heartbeat_loop(me, heartbeat_s, recover, info={"pid": os.getpid()})
    finally:
        DBOS.destroy(destroy_registry=False)
        durable._LOADER = None
