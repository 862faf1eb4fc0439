"""Worker heartbeats, and which live worker recovers a dead one's runs.

The durable-execution engine journals every run and can resume one on any worker, but its
open-source edition does not notice that a worker died: it recovers a process's own pending
runs when that process restarts, and leaves other workers' to the application. This module
is that part of the application, and knows nothing of the engine:

* every worker :meth:`~WorkerRegistry.beat`\\ s every ``interval_s``;
* a worker whose last beat is older than ``ttl_s`` is :meth:`~WorkerRegistry.dead`;
* live workers race to :meth:`~WorkerRegistry.claim_recovery` of it, one conditional
  ``UPDATE``: exactly one wins, and it alone recovers the dead worker's runs;
* :meth:`~WorkerRegistry.heartbeat_loop` does all three and calls ``on_dead(dead_id)``.

With DBOS 3.4 the ``on_dead`` callback (see :func:`vox.runtime.worker.serve`) lists the dead
executor's PENDING workflows and puts each back on the fleet's queue with the public
``DBOS.resume_workflow``, from where a live worker runs them and their journaled steps are not
repeated. See ``spec/fleet.md``.

A worker that was only slow, declared dead and recovered, learns it at its next beat
(:meth:`~WorkerRegistry.beat` returns True): its runs are being resumed elsewhere and it
should stop them (the engine refuses the duplicate's checkpoints anyway).

>>> import os, tempfile
>>> t = [1000.0]
>>> reg = WorkerRegistry("sqlite:///" + os.path.join(tempfile.mkdtemp(), "fleet.sqlite"), clock=lambda: t[0])
>>> reg.beat("w1", {"host": "a"}), reg.beat("w2", {"host": "b"})
(False, False)
>>> t[0] += 20; _ = reg.beat("w2")
>>> [w.executor_id for w in reg.dead(ttl_s=15)], [w.executor_id for w in reg.alive(ttl_s=15)]
(['w1'], ['w2'])
>>> reg.claim_recovery("w1", "w2", ttl_s=15), reg.claim_recovery("w1", "w3", ttl_s=15)
(True, False)
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import anyio

from vox.runtime.fleet.store import Store, Tx, as_store

Clock = Callable[[], float]
log = logging.getLogger("vox.fleet")


@dataclass(frozen=True, slots=True)
class Worker:
    executor_id: str
    info: dict[str, Any]
    started_at: float
    last_beat: float
    recovered_by: str | None  # the live worker that claimed this one's runs, once it died
    recovered_at: float | None


_MIGRATIONS = (
    (
        "CREATE TABLE IF NOT EXISTS {p}worker (executor_id TEXT PRIMARY KEY, info TEXT NOT NULL, "
        "started_at DOUBLE PRECISION NOT NULL, last_beat DOUBLE PRECISION NOT NULL, recovered_by TEXT, "
        "recovered_at DOUBLE PRECISION)",
    ),
)
_COLS = "executor_id, info, started_at, last_beat, recovered_by, recovered_at"


def _worker(row: tuple) -> Worker:
    return Worker(row[0], json.loads(row[1]), row[2], row[3], row[4], row[5])


class WorkerRegistry:
    """Heartbeats of the workers sharing one store. Times are wall-clock seconds from ``clock``."""

    def __init__(self, url_or_store: str | Store, *, prefix: str = "vox_", clock: Clock = time.time):
        self.store = as_store(url_or_store, prefix)
        self.clock = clock
        self.store.ensure("workers", _MIGRATIONS)

    def beat(self, executor_id: str, info: dict[str, Any] | None = None) -> bool:
        """Record that ``executor_id`` is alive now (``info``: what to show about it, kept
        until replaced). Returns True when it had been declared dead and its runs recovered
        by another worker since its previous beat; it is alive again from here on."""
        if not executor_id:
            raise ValueError("a worker needs an executor id")

        def record(tx: Tx) -> bool:
            now = self.clock()
            row = tx.one("SELECT info, recovered_by FROM {p}worker WHERE executor_id = ? FOR UPDATE", (executor_id,))
            if row is None:
                tx.execute(
                    "INSERT INTO {p}worker VALUES (?, ?, ?, ?, NULL, NULL)",
                    (executor_id, json.dumps(info or {}), now, now),
                )
                return False
            body = row[0] if info is None else json.dumps(info)
            tx.execute(
                "UPDATE {p}worker SET info = ?, last_beat = ?, recovered_by = NULL, recovered_at = NULL "
                "WHERE executor_id = ?",
                (body, now, executor_id),
            )
            return row[1] is not None

        return self.store.run(record)

    def workers(self) -> list[Worker]:
        """Every registered worker, alive or not."""
        rows = self.store.run(lambda tx: tx.all(f"SELECT {_COLS} FROM {{p}}worker ORDER BY executor_id"))
        return [_worker(r) for r in rows]

    def alive(self, ttl_s: float) -> list[Worker]:
        """Workers that beat within the last ``ttl_s`` seconds."""
        cut = self.clock() - ttl_s
        return [w for w in self.workers() if w.last_beat > cut]

    def dead(self, ttl_s: float) -> list[Worker]:
        """Workers whose last beat is older than ``ttl_s`` (``recovered_by`` set once claimed)."""
        cut = self.clock() - ttl_s
        return [w for w in self.workers() if w.last_beat <= cut]

    def claim_recovery(self, dead_executor_id: str, by_executor_id: str, ttl_s: float | None = None) -> bool:
        """Claim the right to recover ``dead_executor_id``'s runs. Exactly one claimant wins.

        With ``ttl_s``, the claim also requires the worker to be dead still (no beat within
        ``ttl_s``), so a worker that came back in the meantime is left alone.
        """
        if dead_executor_id == by_executor_id:
            raise ValueError("a worker cannot recover itself; it recovers its own runs when it restarts")

        def claim(tx: Tx) -> bool:
            now = self.clock()
            sql = (
                "UPDATE {p}worker SET recovered_by = ?, recovered_at = ? "
                "WHERE executor_id = ? AND recovered_by IS NULL"
            )
            params: tuple = (by_executor_id, now, dead_executor_id)
            if ttl_s is not None:
                sql += " AND last_beat <= ?"
                params += (now - ttl_s,)
            return tx.execute(sql, params).rowcount == 1

        return self.store.run(claim)

    def unclaim(self, dead_executor_id: str, by_executor_id: str) -> bool:
        """Give a claim back (recovery failed), so that a worker may claim it again."""
        return self.store.run(
            lambda tx: tx.execute(
                "UPDATE {p}worker SET recovered_by = NULL, recovered_at = NULL "
                "WHERE executor_id = ? AND recovered_by = ?",
                (dead_executor_id, by_executor_id),
            ).rowcount
            == 1
        )

    def retire(self, executor_id: str) -> None:
        """Forget a worker that stopped cleanly with no runs pending (it will not be recovered)."""
        self.store.run(lambda tx: tx.execute("DELETE FROM {p}worker WHERE executor_id = ?", (executor_id,)))

    def abandon(self, executor_id: str) -> None:
        """A worker stopping with runs pending: its last beat is set to long ago, so a peer
        recovers its runs at its next beat instead of waiting out the TTL."""
        self.store.run(lambda tx: tx.execute(
            "UPDATE {p}worker SET last_beat = 0 WHERE executor_id = ?", (executor_id,)))

    async def heartbeat_loop(
        self,
        executor_id: str,
        interval_s: float,
        on_dead: Callable[[str], Awaitable[Any]],
        *,
        ttl_s: float | None = None,
        info: dict[str, Any] | None = None,
        on_declared_dead: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        """Beat every ``interval_s``; claim each peer dead for ``ttl_s`` (default three
        intervals) and ``await on_dead(peer_id)`` for the claims won. Runs until cancelled.

        Beats come from a thread of their own, so a busy event loop (a run doing synchronous
        work, a slow recovery) does not make a live worker look dead; a dead process stops
        beating all the same. A failed ``on_dead`` gives its claim back, to be tried again at
        a later beat. A store that cannot be reached is logged and retried. When this worker
        learns it was declared dead itself, ``on_declared_dead()`` is awaited (default: a
        warning in the log).
        """
        ttl = 3 * interval_s if ttl_s is None else ttl_s
        if ttl <= interval_s:
            raise ValueError(f"ttl_s ({ttl}) must be longer than interval_s ({interval_s})")
        await anyio.to_thread.run_sync(self.beat, executor_id, info)
        stop = threading.Event()
        revived = threading.Event()

        def beating() -> None:
            while not stop.wait(interval_s):
                try:
                    if self.beat(executor_id):
                        revived.set()
                except Exception:  # noqa: BLE001 - the store may be unreachable for a while
                    log.exception("heartbeat of worker %s failed; retrying", executor_id)

        beater = threading.Thread(target=beating, name=f"vox-heartbeat-{executor_id}", daemon=True)
        beater.start()
        try:
            while True:
                try:
                    if revived.is_set():
                        revived.clear()
                        if on_declared_dead is not None:
                            await on_declared_dead()
                        else:
                            log.warning("worker %s was declared dead and its runs recovered elsewhere", executor_id)
                    await self._recover_dead(executor_id, ttl, on_dead)
                except Exception:  # noqa: BLE001 - the store may be unreachable for a while
                    log.exception("looking for dead workers from %s failed; retrying", executor_id)
                await anyio.sleep(interval_s)
        finally:
            stop.set()

    async def _recover_dead(self, executor_id: str, ttl: float, on_dead: Callable[[str], Awaitable[Any]]) -> None:
        for peer in await anyio.to_thread.run_sync(self.dead, ttl):
            if peer.recovered_by is not None or peer.executor_id == executor_id:
                continue
            won = await anyio.to_thread.run_sync(self.claim_recovery, peer.executor_id, executor_id, ttl)
            if not won:
                continue
            try:
                await on_dead(peer.executor_id)
            except Exception:  # noqa: BLE001 - logged; the claim goes back for a retry
                log.exception("recovering worker %s failed; releasing the claim", peer.executor_id)
                await anyio.to_thread.run_sync(self.unclaim, peer.executor_id, executor_id)
