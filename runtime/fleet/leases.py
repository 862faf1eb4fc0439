"""Named leases: locks with a time to live and a fencing token, shared by all workers.

A lease lets one holder at a time act on a name (``run:<id>/notes``, ``tenant:<id>/index``):
an agent that writes holds it, and another agent's read waits for it. A holder that dies
stops renewing, and once the TTL passes another owner may take the lease.

TTLs alone cannot make that safe: a holder paused past its TTL (a long GC, a stalled
worker) still believes it holds the lease. So every acquisition gets a **fencing token**, an
integer that increases strictly per name, across processes and across releases (the lease's
row is never deleted). A write guarded by a lease carries its token, and the store refuses a
token that is no longer the current holder's (:meth:`Leases.check`, or
:meth:`vox.runtime.fleet.events.EventBus.publish` with ``fence=``, which checks in the
same transaction as the write).

Times come from ``clock`` (wall-clock seconds) on each worker: TTLs should be far longer
than the clock skew between workers. Fencing does not depend on clocks.

>>> import os, tempfile
>>> leases = Leases("sqlite:///" + os.path.join(tempfile.mkdtemp(), "fleet.sqlite"))
>>> a = leases.acquire("run:1/notes", "agent writer", ttl_s=30)
>>> leases.acquire("run:1/notes", "agent reader", ttl_s=30) is None
True
>>> leases.release(a)
True
>>> b = leases.acquire("run:1/notes", "agent reader", ttl_s=30)
>>> (a.token, b.token, leases.check("run:1/notes", a.token), leases.check("run:1/notes", b.token))
(1, 2, False, True)
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import AsyncIterator, Callable

import anyio

from vox.runtime.fleet.store import Store, Tx, as_store

Clock = Callable[[], float]


class LeaseTimeout(TimeoutError):
    """:meth:`Leases.hold` waited ``wait_s`` and the lease stayed taken."""


class StaleLease(Exception):
    """A write guarded by a fencing token that is no longer the lease's current one."""

    def __init__(self, name: str, token: int, current: int | None):
        self.name = name
        self.token = token
        self.current = current
        super().__init__(
            f"stale lease: a write guarded by lease `{name}` token {token} was refused; "
            + ("the lease is not held" if current is None else f"the current holder has token {current}")
            + ". Re-acquire the lease and read again before writing."
        )


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    owner: str
    token: int
    expires_at: float  # wall-clock seconds
    ttl_s: float


_MIGRATIONS = (
    (
        "CREATE TABLE IF NOT EXISTS {p}lease (name TEXT PRIMARY KEY, owner TEXT, token BIGINT NOT NULL, "
        "expires_at DOUBLE PRECISION NOT NULL, acquired_at DOUBLE PRECISION NOT NULL)",
    ),
)


def current_token(tx: Tx, name: str, now: float) -> int | None:
    """The token of ``name``'s live holder (locking the row for this transaction), or None."""
    row = tx.one("SELECT owner, token, expires_at FROM {p}lease WHERE name = ? FOR UPDATE", (name,))
    if row is None or row[0] is None or row[2] <= now:
        return None
    return row[1]


class Leases:
    """Named leases in one store. ``url_or_store``: a store URL or a :class:`Store`."""

    def __init__(self, url_or_store: str | Store, *, prefix: str = "vox_", clock: Clock = time.time):
        self.store = as_store(url_or_store, prefix)
        self.clock = clock
        self.store.ensure("leases", _MIGRATIONS)

    def acquire(self, name: str, owner: str, ttl_s: float) -> Lease | None:
        """Take ``name`` for ``ttl_s`` seconds, or return None while another owner holds it.

        A free or expired lease gets the next token. The owner that holds it already gets its
        lease back, extended, with the same token (an agent resumed after a crash).
        """
        if not owner:
            raise ValueError("a lease needs an owner")
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s!r}")

        def take(tx: Tx) -> Lease | None:
            now = self.clock()
            tx.execute("INSERT INTO {p}lease VALUES (?, NULL, 0, 0, 0) ON CONFLICT DO NOTHING", (name,))
            held_by, token, expires_at = tx.one(
                "SELECT owner, token, expires_at FROM {p}lease WHERE name = ? FOR UPDATE", (name,)
            )  # type: ignore[misc]
            live = held_by is not None and expires_at > now
            if live and held_by != owner:
                return None
            if not live:
                token += 1
            tx.execute(
                "UPDATE {p}lease SET owner = ?, token = ?, expires_at = ?, acquired_at = ? WHERE name = ?",
                (owner, token, now + ttl_s, now, name),
            )
            return Lease(name, owner, token, now + ttl_s, ttl_s)

        return self.store.run(take)

    def renew(self, lease: Lease, ttl_s: float | None = None) -> Lease | None:
        """Extend ``lease`` by its TTL (or ``ttl_s``) from now; None if it was lost.

        A lease that expired but that nobody took since can still be renewed: its token is
        still the newest, so no other holder's write can have come in between.
        """
        ttl = lease.ttl_s if ttl_s is None else ttl_s

        def extend(tx: Tx) -> Lease | None:
            now = self.clock()
            cur = tx.execute(
                "UPDATE {p}lease SET expires_at = ? WHERE name = ? AND owner = ? AND token = ?",
                (now + ttl, lease.name, lease.owner, lease.token),
            )
            return replace(lease, expires_at=now + ttl, ttl_s=ttl) if cur.rowcount == 1 else None

        return self.store.run(extend)

    def release(self, lease: Lease) -> bool:
        """Give ``lease`` up (False if it had been lost already). The token is not reused."""
        return self.store.run(
            lambda tx: tx.execute(
                "UPDATE {p}lease SET owner = NULL, expires_at = 0 WHERE name = ? AND owner = ? AND token = ?",
                (lease.name, lease.owner, lease.token),
            ).rowcount
            == 1
        )

    def check(self, name: str, token: int) -> bool:
        """Whether a write guarded by ``token`` may go ahead: it is the live holder's token.

        For a write to another system, check just before it and pass the token along so that
        system can refuse older ones; for a write to this store, check in the same
        transaction (:func:`current_token`).
        """
        return self.store.run(lambda tx: current_token(tx, name, self.clock()) == token)

    def holder(self, name: str) -> Lease | None:
        """The live lease on ``name``, if any."""

        def read(tx: Tx) -> Lease | None:
            row = tx.one("SELECT owner, token, expires_at, acquired_at FROM {p}lease WHERE name = ?", (name,))
            if row is None or row[0] is None or row[2] <= self.clock():
                return None
            return Lease(name, row[0], row[1], row[2], row[2] - row[3])

        return self.store.run(read)

    @asynccontextmanager
    async def hold(
        self, name: str, owner: str, ttl_s: float, wait_s: float | None = None, *, renew: bool = True
    ) -> AsyncIterator[Lease]:
        """Hold ``name`` for the block: wait for it (polling with backoff), keep it renewed
        every third of its TTL while the block runs, and release it at the end.

        Raises :class:`LeaseTimeout` when it is still taken after ``wait_s`` (None: wait on).
        Should renewal fail (the lease was lost), the block is cancelled rather than left to
        write unguarded, and :class:`StaleLease` is raised.
        """
        deadline = None if wait_s is None else time.monotonic() + wait_s
        delay = 0.005
        while True:
            lease = await anyio.to_thread.run_sync(self.acquire, name, owner, ttl_s)
            if lease is not None:
                break
            if deadline is not None and time.monotonic() + delay > deadline:
                raise LeaseTimeout(f"lease `{name}` is still held by another owner after {wait_s}s")
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.25, ttl_s / 4)
        try:
            if not renew:
                yield lease
                return
            holder = {"lease": lease, "lost": False}
            async with anyio.create_task_group() as tg:

                async def keep() -> None:
                    while True:
                        await anyio.sleep(ttl_s / 3)
                        renewed = await anyio.to_thread.run_sync(self.renew, holder["lease"])
                        if renewed is None:
                            holder["lost"] = True
                            tg.cancel_scope.cancel()
                            return
                        holder["lease"] = renewed

                tg.start_soon(keep)
                yield lease
                tg.cancel_scope.cancel()
            if holder["lost"]:
                raise StaleLease(name, lease.token, None)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.release, lease)
