"""Publish and subscribe within a scope: the agents of one run, or the runs of one tenant.

A scope is ``run:<id>`` or ``tenant:<id>``; within it, each topic is an append-only log whose
events are numbered 1, 2, 3, ... with no gaps. Numbers are given while the topic's row is
locked, so they follow commit order: a reader that has seen every event up to ``seq`` never
misses one that commits later with a smaller number. Reading after ``seq`` is therefore all a
subscriber needs, and it can resume from the last ``seq`` it handled, in another process.

Subscribers poll (``subscribe``), with a backoff from 5 ms up to ``poll_max_s`` while the
topic is quiet, and back to 5 ms after an event. That is the same on SQLite and on
PostgreSQL: LISTEN/NOTIFY would cut latency on PostgreSQL but needs a connection held per
subscriber, and polling an indexed key is cheap at the rates agents publish.

Payloads are JSON values.

>>> import os, tempfile
>>> bus = EventBus("sqlite:///" + os.path.join(tempfile.mkdtemp(), "fleet.sqlite"))
>>> bus.publish("run:1", "notes", {"text": "draft ready"}), bus.publish("run:1", "notes", {"text": "revised"})
(1, 2)
>>> [(e.seq, e.payload["text"]) for e in bus.read("run:1", "notes", after_seq=1)]
[(2, 'revised')]
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

import anyio

from vox.runtime.fleet.leases import _MIGRATIONS as _LEASE_MIGRATIONS  # a fence reads the lease table
from vox.runtime.fleet.leases import Lease, StaleLease, current_token
from vox.runtime.fleet.store import Store, Tx, as_store

Clock = Callable[[], float]


def _check_scope(scope: str) -> None:
    kind, _, ident = scope.partition(":")
    if kind not in ("run", "tenant") or not ident:
        raise ValueError(f"event scope {scope!r} must be `run:<id>` or `tenant:<id>`")


@dataclass(frozen=True, slots=True)
class Event:
    scope: str
    topic: str
    seq: int
    payload: Any
    at: float  # wall-clock seconds at publication


_MIGRATIONS = (
    (
        "CREATE TABLE IF NOT EXISTS {p}event_topic (scope TEXT NOT NULL, topic TEXT NOT NULL, "
        "last_seq BIGINT NOT NULL, PRIMARY KEY (scope, topic))",
        "CREATE TABLE IF NOT EXISTS {p}event (scope TEXT NOT NULL, topic TEXT NOT NULL, seq BIGINT NOT NULL, "
        "payload TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, PRIMARY KEY (scope, topic, seq))",
    ),
)


class EventBus:
    """Topics of events per scope, in one store. ``url_or_store``: a store URL or a :class:`Store`."""

    def __init__(self, url_or_store: str | Store, *, prefix: str = "vox_", clock: Clock = time.time):
        self.store = as_store(url_or_store, prefix)
        self.clock = clock
        self.store.ensure("events", _MIGRATIONS)
        self.store.ensure("leases", _LEASE_MIGRATIONS)

    def publish(self, scope: str, topic: str, payload: Any, *, fence: Lease | None = None) -> int:
        """Append ``payload`` to ``topic`` in ``scope`` and return its sequence number.

        With ``fence``, the event is written only if that lease is still its holder's (checked
        in the same transaction); otherwise :class:`~vox.runtime.fleet.leases.StaleLease`.
        """
        _check_scope(scope)
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True)

        def append(tx: Tx) -> int:
            now = self.clock()
            if fence is not None:
                current = current_token(tx, fence.name, now)
                if current != fence.token:
                    raise StaleLease(fence.name, fence.token, current)
            tx.execute("INSERT INTO {p}event_topic VALUES (?, ?, 0) ON CONFLICT DO NOTHING", (scope, topic))
            tx.execute(
                "UPDATE {p}event_topic SET last_seq = last_seq + 1 WHERE scope = ? AND topic = ?", (scope, topic)
            )
            row = tx.one("SELECT last_seq FROM {p}event_topic WHERE scope = ? AND topic = ?", (scope, topic))
            seq = row[0]  # type: ignore[index]
            tx.execute("INSERT INTO {p}event VALUES (?, ?, ?, ?, ?)", (scope, topic, seq, body, now))
            return seq

        return self.store.run(append)

    def read(self, scope: str, topic: str, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        """The events of ``topic`` numbered above ``after_seq``, oldest first."""
        _check_scope(scope)
        sql = "SELECT seq, payload, at FROM {p}event WHERE scope = ? AND topic = ? AND seq > ? ORDER BY seq"
        params: tuple = (scope, topic, after_seq)
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        rows = self.store.run(lambda tx: tx.all(sql, params))
        return [Event(scope, topic, seq, json.loads(body), at) for seq, body, at in rows]

    def last_seq(self, scope: str, topic: str) -> int:
        """The number of the newest event of ``topic`` (0 when there is none)."""
        row = self.store.run(
            lambda tx: tx.one("SELECT last_seq FROM {p}event_topic WHERE scope = ? AND topic = ?", (scope, topic))
        )
        return 0 if row is None else row[0]

    async def subscribe(
        self, scope: str, topic: str, after_seq: int = 0, *, poll_max_s: float = 0.5, batch: int = 100
    ) -> AsyncIterator[Event]:
        """Every event of ``topic`` after ``after_seq``, waiting for new ones as they come.

        Runs until the consumer stops iterating (or is cancelled); to wait for one event with
        a time limit, wrap the iteration in ``anyio.fail_after``.
        """
        _check_scope(scope)
        delay = 0.005
        while True:
            events = await anyio.to_thread.run_sync(self.read, scope, topic, after_seq, batch)
            for event in events:
                after_seq = event.seq
                yield event
            if events:
                delay = 0.005
                continue
            await anyio.sleep(delay)
            delay = min(delay * 2, poll_max_s)

    def drop(self, scope: str) -> int:
        """Delete every event of ``scope``; returns how many were deleted.

        Numbering restarts at 1 afterwards, so drop only a scope nothing will publish to or
        read from again (a finished run's).
        """

        def delete(tx: Tx) -> int:
            n = tx.execute("DELETE FROM {p}event WHERE scope = ?", (scope,)).rowcount
            tx.execute("DELETE FROM {p}event_topic WHERE scope = ?", (scope,))
            return n

        return self.store.run(delete)
