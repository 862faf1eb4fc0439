"""The fleet layer: what workers sharing one database agree on.

Run-wide spend ledgers and rate limits (:mod:`.ledger`), named leases with fencing tokens
(:mod:`.leases`), events within a run or a tenant (:mod:`.events`) and worker heartbeats with
recovery claims (:mod:`.workers`), over one store on SQLite or PostgreSQL (:mod:`.store`).
Engine-agnostic: nothing here imports the durable-execution engine. See ``spec/fleet.md``.
"""

from vox.runtime.fleet.events import Event, EventBus
from vox.runtime.fleet.leases import Lease, Leases, LeaseTimeout, StaleLease
from vox.runtime.fleet.ledger import (
    JournalEntry,
    RateLimiter,
    Reservation,
    SpendLedger,
    SpendRefused,
    UnknownReservation,
    Usage,
    bucket_start,
)
from vox.runtime.fleet.store import Store, StoreError, open_store
from vox.runtime.fleet.workers import Worker, WorkerRegistry

__all__ = [
    "Event",
    "EventBus",
    "JournalEntry",
    "Lease",
    "LeaseTimeout",
    "Leases",
    "RateLimiter",
    "Reservation",
    "SpendLedger",
    "SpendRefused",
    "StaleLease",
    "Store",
    "StoreError",
    "UnknownReservation",
    "Usage",
    "Worker",
    "WorkerRegistry",
    "bucket_start",
    "open_store",
]
