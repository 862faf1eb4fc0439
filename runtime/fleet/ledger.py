"""Run-wide spend ledgers and rate limits, shared by every worker through one store.

:class:`SpendLedger` is the cross-process layer over :mod:`vox.runtime.budget`: where a
:class:`~vox.runtime.budget.BudgetScope` caps one run in memory, the ledger caps a whole
deployment (``budget fleet``) or one tenant (``budget tenant``) per period of UTC time, for
all runs on all workers together.

* **A reservation is atomic across processes.** It either fits (``spent + reserved + amount
  <= cap`` in the period's bucket, checked and booked in one transaction holding the bucket's
  lock) or raises :class:`SpendRefused` and books nothing. Two workers can never overspend a
  tenant together.
* **A reservation is idempotent by key.** The key names the spend (a run id and a step name); a
  resumed run that reserves the same key again gets the first reservation back, whatever it
  asks now and whenever it asks, and is never charged twice.
* **Settle replaces the estimate by the actual**; the rest of the reservation is released.
  An actual above the reservation is charged anyway (money spent is spent), as in
  :meth:`vox.runtime.budget.Reservation.settle`, and shows as ``actual > amount``.
* **Every change is journaled** in the same transaction (``vox_spend_journal``), with the
  bucket's state after it, so an audit can replay a bucket and check it never went over.

Periods are buckets of UTC time: ``second minute hour day`` start at the unit's boundary,
``week`` on Monday 00:00, ``month`` on the 1st at 00:00.

>>> import os, tempfile
>>> ledger = SpendLedger("sqlite:///" + os.path.join(tempfile.mkdtemp(), "fleet.sqlite"))
>>> r = ledger.reserve("tenant:acme", "day", cap_micros=1_000_000, amount_micros=600_000, key="run-1/ask")
>>> ledger.reserve("tenant:acme", "day", 1_000_000, 600_000, key="run-2/ask")  # doctest: +ELLIPSIS
Traceback (most recent call last):
  ...
vox.runtime.fleet.ledger.SpendRefused: spend refused: tenant:acme needs $0.60 but has $0.40 left ...
>>> ledger.reserve("tenant:acme", "day", 1_000_000, 600_000, key="run-1/ask") == r
True
>>> [s.state for s in ledger.settle("run-1/ask", 250_000)]
['settled']
>>> u = ledger.usage("tenant:acme", "day"); (u.spent, u.reserved, u.left)
(250000, 0, 750000)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Sequence

import anyio

from vox.compiler.units import format_money
from vox.runtime.fleet.store import Store, Tx, as_store

PERIODS: tuple[str, ...] = ("second", "minute", "hour", "day", "week", "month")
# Window lengths for the rate limiter's sliding windows (a month counts as 30 days there).
UNIT_SECONDS: dict[str, int] = {
    "second": 1,
    "minute": 60,
    "hour": 3_600,
    "day": 86_400,
    "week": 7 * 86_400,
    "month": 30 * 86_400,
}

Clock = Callable[[], float]
Now = float | datetime | None


def bucket_start(period: str, now: float | datetime) -> int:
    """Start of the UTC bucket of ``period`` holding ``now``, in epoch seconds.

    >>> t = datetime(2025, 3, 5, 14, 30, 59, tzinfo=timezone.utc).timestamp()  # a Wednesday
    >>> [datetime.fromtimestamp(bucket_start(p, t), timezone.utc).isoformat()[:19] for p in ("hour", "week", "month")]
    ['2025-03-05T14:00:00', '2025-03-03T00:00:00', '2025-03-01T00:00:00']
    """
    dt = now if isinstance(now, datetime) else datetime.fromtimestamp(now, timezone.utc)
    if dt.tzinfo is None:
        raise ValueError("a datetime `now` must be timezone-aware")
    dt = dt.astimezone(timezone.utc).replace(microsecond=0)
    if period == "second":
        pass
    elif period == "minute":
        dt = dt.replace(second=0)
    elif period == "hour":
        dt = dt.replace(minute=0, second=0)
    elif period == "day":
        dt = dt.replace(hour=0, minute=0, second=0)
    elif period == "week":
        dt = dt.replace(hour=0, minute=0, second=0) - timedelta(days=dt.weekday())
    elif period == "month":
        dt = dt.replace(day=1, hour=0, minute=0, second=0)
    else:
        raise ValueError(f"unknown period {period!r}; expected one of {', '.join(PERIODS)}")
    return int(dt.timestamp())


def _iso(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def _check_scope(scope: str) -> None:
    if scope == "fleet" or (scope.startswith("tenant:") and len(scope) > len("tenant:")):
        return
    raise ValueError(f"spend scope {scope!r} must be `fleet` or `tenant:<id>`")


def _check_micros(name: str, value: object) -> int:
    if value.__class__ is not int or value < 0:  # type: ignore[operator]
        raise ValueError(f"{name} must be a non-negative integer (micro-dollars), got {value!r}")
    return value  # type: ignore[return-value]


class SpendRefused(Exception):
    """A reservation that would take a run-wide budget over its cap. Nothing was booked."""

    def __init__(self, scope: str, period: str, bucket_start: int, cap: int, spent: int, reserved: int, needed: int):
        self.scope = scope
        self.period = period
        self.bucket_start = bucket_start
        self.cap = cap
        self.spent = spent
        self.reserved = reserved
        self.needed = needed
        left = max(cap - spent - reserved, 0)
        super().__init__(
            f"spend refused: {scope} needs {format_money(needed)} but has "
            f"{format_money(left)} left of its {format_money(cap)} per {period} cap "
            f"({format_money(spent)} spent, {format_money(reserved)} reserved, "
            f"{period} from {_iso(bucket_start)})"
        )


class UnknownReservation(KeyError):
    """``settle`` or ``release`` of a key that was never reserved."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """One key's reservation against one scope and period. ``state``: open, settled, released."""

    key: str
    scope: str
    period: str
    bucket_start: int
    amount_micros: int
    actual_micros: int | None
    state: str

    @property
    def bucket(self) -> str:
        return _iso(self.bucket_start)


@dataclass(frozen=True, slots=True)
class Usage:
    """A bucket's state. ``cap`` is the last cap a reservation was checked against (None: none yet)."""

    scope: str
    period: str
    bucket_start: int
    cap: int | None
    spent: int
    reserved: int

    @property
    def left(self) -> int | None:
        return None if self.cap is None else self.cap - self.spent - self.reserved


@dataclass(frozen=True, slots=True)
class JournalEntry:
    seq: int
    scope: str
    period: str
    bucket_start: int
    key: str
    op: str  # reserve | settle | release
    d_reserved: int
    d_spent: int
    spent_after: int
    reserved_after: int
    cap: int
    at: float


_LEDGER_MIGRATIONS = (
    (
        "CREATE TABLE IF NOT EXISTS {p}spend_bucket (scope TEXT NOT NULL, period TEXT NOT NULL, "
        "bucket_start BIGINT NOT NULL, cap BIGINT NOT NULL, spent BIGINT NOT NULL, reserved BIGINT NOT NULL, "
        "PRIMARY KEY (scope, period, bucket_start))",
        "CREATE TABLE IF NOT EXISTS {p}spend_reservation (key TEXT NOT NULL, scope TEXT NOT NULL, "
        "period TEXT NOT NULL, bucket_start BIGINT NOT NULL, amount BIGINT NOT NULL, actual BIGINT, "
        "state TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (key, scope, period))",
        "CREATE TABLE IF NOT EXISTS {p}spend_journal (seq {serial}, scope TEXT NOT NULL, period TEXT NOT NULL, "
        "bucket_start BIGINT NOT NULL, key TEXT NOT NULL, op TEXT NOT NULL, d_reserved BIGINT NOT NULL, "
        "d_spent BIGINT NOT NULL, spent_after BIGINT NOT NULL, reserved_after BIGINT NOT NULL, "
        "cap BIGINT NOT NULL, at DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX IF NOT EXISTS {p}spend_journal_bucket ON {p}spend_journal (scope, period, bucket_start, seq)",
    ),
)

_RES_COLS = "key, scope, period, bucket_start, amount, actual, state"


class SpendLedger:
    """Fleet and tenant spend per period, in integer micro-dollars, shared by all workers.

    ``url_or_store`` is a store URL (see :mod:`vox.runtime.fleet.store`) or a :class:`Store`.
    """

    def __init__(self, url_or_store: str | Store, *, prefix: str = "vox_", clock: Clock = time.time):
        self.store = as_store(url_or_store, prefix)
        self.clock = clock
        self.store.ensure("ledger", _LEDGER_MIGRATIONS)

    def _now(self, now: Now) -> float | datetime:
        return self.clock() if now is None else now

    # -- reserving ----------------------------------------------------------------------

    def reserve(
        self, scope: str, period: str, cap_micros: int, amount_micros: int, key: str, now: Now = None
    ) -> Reservation:
        """Reserve ``amount_micros`` against ``scope``'s cap for the ``period`` holding ``now``.

        Returns the reservation (the existing one if ``key`` was reserved in this scope and
        period before: nothing is booked twice), or raises :class:`SpendRefused`.
        """
        return self.reserve_many([(scope, period, cap_micros)], amount_micros, key, now)[0]

    def reserve_many(
        self, caps: Sequence[tuple[str, str, int]], amount_micros: int, key: str, now: Now = None
    ) -> list[Reservation]:
        """Reserve one amount against several ``(scope, period, cap)`` at once, all or nothing.

        A run reserves against its tenant's and the fleet's budgets together: if either
        refuses, neither is booked. Caps are checked, and results come, in the order of
        ``caps``: when several would refuse, the first one is named.
        """
        _check_micros("amount_micros", amount_micros)
        if not key:
            raise ValueError("a reservation needs a key (a run id and a step name)")
        items = []
        for scope, period, cap in caps:
            _check_scope(scope)
            _check_micros("cap_micros", cap)
            items.append((scope, period, bucket_start(period, self._now(now)), cap))
        if len({(s, p) for s, p, _, _ in items}) != len(items):
            raise ValueError("reserve_many: a scope and period appears twice")
        at = time.time()

        def book(tx: Tx) -> list[Reservation]:
            found = {(r.scope, r.period): r for r in self._by_key(tx, key)}
            todo = sorted(i for i in items if (i[0], i[1]) not in found)
            if not todo:
                return [found[(s, p)] for s, p, _, _ in items]
            # Buckets are locked in one global order, so concurrent multi-scope reservations
            # cannot deadlock; the key is looked up again under the locks (a racing resume).
            held = {(s, p): self._lock_bucket(tx, s, p, start, cap) for s, p, start, cap in todo}
            found = {(r.scope, r.period): r for r in self._by_key(tx, key)}
            todo = [i for i in todo if (i[0], i[1]) not in found]
            for scope, period, start, cap in sorted(todo, key=lambda i: items.index(i)):  # the caller's order
                spent, reserved, _ = held[(scope, period)]
                if spent + reserved + amount_micros > cap:
                    raise SpendRefused(scope, period, start, cap, spent, reserved, amount_micros)
            for scope, period, start, cap in todo:
                tx.execute(
                    "INSERT INTO {p}spend_reservation VALUES (?, ?, ?, ?, ?, NULL, 'open', ?)",
                    (key, scope, period, start, amount_micros, at),
                )
                self._bump(tx, scope, period, start, key, "reserve", amount_micros, 0, cap, at)
                found[(scope, period)] = Reservation(key, scope, period, start, amount_micros, None, "open")
            return [found[(s, p)] for s, p, _, _ in items]

        return self.store.run(book)

    def settle(self, key: str, actual_micros: int) -> list[Reservation]:
        """Charge ``actual_micros`` for ``key`` (in every scope it reserved), releasing the rest.

        Idempotent: a settled or released reservation is left as it is. Raises
        :class:`UnknownReservation` if ``key`` was never reserved.
        """
        _check_micros("actual_micros", actual_micros)
        return self._close(key, "settle", actual_micros)

    def release(self, key: str) -> list[Reservation]:
        """Give ``key``'s open reservations back whole (the step failed before spending)."""
        return self._close(key, "release", 0)

    def _close(self, key: str, op: str, actual: int) -> list[Reservation]:
        at = time.time()

        def close(tx: Tx) -> list[Reservation]:
            rows = self._by_key(tx, key)
            if not rows:
                raise UnknownReservation(key)
            out = []
            # Lock order as in reserve: the bucket, then the reservation.
            for r in sorted(rows, key=lambda r: (r.scope, r.period, r.bucket_start)):
                if r.state != "open":
                    out.append(r)
                    continue
                cap = self._lock_bucket(tx, r.scope, r.period, r.bucket_start, None)[2]
                r = self._by_key(tx, key, r.scope, r.period, lock=True)[0]
                if r.state != "open":
                    out.append(r)
                    continue
                state = "settled" if op == "settle" else "released"
                spent = actual if op == "settle" else 0
                tx.execute(
                    "UPDATE {p}spend_reservation SET state = ?, actual = ? WHERE key = ? AND scope = ? AND period = ?",
                    (state, spent, key, r.scope, r.period),
                )
                self._bump(tx, r.scope, r.period, r.bucket_start, key, op, -r.amount_micros, spent, cap, at)
                out.append(Reservation(key, r.scope, r.period, r.bucket_start, r.amount_micros, spent, state))
            order = {(r.scope, r.period): i for i, r in enumerate(rows)}
            return sorted(out, key=lambda r: order[(r.scope, r.period)])

        return self.store.run(close)

    # -- reading ------------------------------------------------------------------------

    def get(self, key: str) -> list[Reservation]:
        """``key``'s reservations (one per scope and period it reserved), possibly none."""
        return self.store.run(lambda tx: self._by_key(tx, key))

    def usage(self, scope: str, period: str, now: Now = None) -> Usage:
        """The bucket of ``period`` holding ``now``: spent, reserved and the last cap used."""
        start = bucket_start(period, self._now(now))
        row = self.store.run(
            lambda tx: tx.one(
                "SELECT cap, spent, reserved FROM {p}spend_bucket WHERE scope = ? AND period = ? AND bucket_start = ?",
                (scope, period, start),
            )
        )
        if row is None:
            return Usage(scope, period, start, None, 0, 0)
        return Usage(scope, period, start, row[0], row[1], row[2])

    def journal(self, scope: str, period: str, bucket: int | None = None) -> list[JournalEntry]:
        """Every change to ``scope``'s ``period`` buckets (or one bucket), in commit order."""
        sql = "SELECT * FROM {p}spend_journal WHERE scope = ? AND period = ?"
        params: tuple = (scope, period)
        if bucket is not None:
            sql += " AND bucket_start = ?"
            params += (bucket,)
        rows = self.store.run(lambda tx: tx.all(sql + " ORDER BY bucket_start, seq", params))
        return [JournalEntry(*row) for row in rows]

    # -- internals ----------------------------------------------------------------------

    def _by_key(self, tx: Tx, key: str, scope: str | None = None, period: str | None = None, lock: bool = False):
        if scope is None:
            rows = tx.all(
                f"SELECT {_RES_COLS} FROM {{p}}spend_reservation WHERE key = ? ORDER BY created_at, scope, period",
                (key,),
            )
        else:
            rows = tx.all(
                f"SELECT {_RES_COLS} FROM {{p}}spend_reservation WHERE key = ? AND scope = ? AND period = ?"
                + (" FOR UPDATE" if lock else ""),
                (key, scope, period),
            )
        return [Reservation(*row) for row in rows]

    def _lock_bucket(self, tx: Tx, scope: str, period: str, start: int, cap: int | None) -> tuple[int, int, int]:
        """Lock the bucket's row (creating it first) and return (spent, reserved, cap)."""
        tx.execute(
            "INSERT INTO {p}spend_bucket VALUES (?, ?, ?, ?, 0, 0) ON CONFLICT DO NOTHING",
            (scope, period, start, cap or 0),
        )
        spent, reserved, old_cap = tx.one(
            "SELECT spent, reserved, cap FROM {p}spend_bucket WHERE scope = ? AND period = ? AND bucket_start = ? "
            "FOR UPDATE",
            (scope, period, start),
        )  # type: ignore[misc]
        return spent, reserved, old_cap if cap is None else cap

    def _bump(self, tx: Tx, scope, period, start, key, op, d_reserved: int, d_spent: int, cap: int, at: float) -> None:
        tx.execute(
            "UPDATE {p}spend_bucket SET reserved = reserved + ?, spent = spent + ?, cap = ? "
            "WHERE scope = ? AND period = ? AND bucket_start = ?",
            (d_reserved, d_spent, cap, scope, period, start),
        )
        spent, reserved = tx.one(
            "SELECT spent, reserved FROM {p}spend_bucket WHERE scope = ? AND period = ? AND bucket_start = ?",
            (scope, period, start),
        )  # type: ignore[misc]
        tx.execute(
            "INSERT INTO {p}spend_journal (scope, period, bucket_start, key, op, d_reserved, d_spent, spent_after, "
            "reserved_after, cap, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (scope, period, start, key, op, d_reserved, d_spent, spent, reserved, cap, at),
        )


# -- rates ------------------------------------------------------------------------------

_RATE_MIGRATIONS = (
    (
        "CREATE TABLE IF NOT EXISTS {p}rate_scope (scope TEXT NOT NULL, unit TEXT NOT NULL, "
        "PRIMARY KEY (scope, unit))",
        "CREATE TABLE IF NOT EXISTS {p}rate_event (id {serial}, scope TEXT NOT NULL, unit TEXT NOT NULL, "
        "at DOUBLE PRECISION NOT NULL, n BIGINT NOT NULL, key TEXT)",
        "CREATE INDEX IF NOT EXISTS {p}rate_event_at ON {p}rate_event (scope, unit, at)",
        "CREATE UNIQUE INDEX IF NOT EXISTS {p}rate_event_key ON {p}rate_event (scope, unit, key)",
    ),
)


class RateLimiter:
    """Sliding-window rate limits (requests, tokens) shared by all workers.

    :meth:`acquire` admits ``n`` units in ``scope`` when the units admitted in the last
    window (one ``unit`` of time) plus ``n`` stay within ``limit``; otherwise it admits nothing
    and says how long to wait. Admission times are read from ``clock`` while the scope's row
    is locked, so they are in commit order and any window of that length holds at most
    ``limit`` across all processes (given workers whose clocks agree; see ``spec/fleet.md``).

    Admissions older than the window are deleted as they pass, unless ``retention_s`` keeps
    them longer (for audits and tests).

    >>> import os, tempfile
    >>> rl = RateLimiter("sqlite:///" + os.path.join(tempfile.mkdtemp(), "fleet.sqlite"))
    >>> [rl.acquire("tenant:acme", "minute", limit=2) for _ in range(2)]
    [0.0, 0.0]
    >>> 59 < rl.acquire("tenant:acme", "minute", limit=2) <= 60
    True
    """

    def __init__(
        self, url_or_store: str | Store, *, prefix: str = "vox_", clock: Clock = time.time, retention_s: float = 0.0
    ):
        self.store = as_store(url_or_store, prefix)
        self.clock = clock
        self.retention_s = retention_s
        self.store.ensure("rates", _RATE_MIGRATIONS)

    def acquire(self, scope: str, unit: str, limit: int, n: int = 1, key: str | None = None) -> float:
        """Admit ``n`` now and return 0.0, or admit nothing and return the seconds to wait.

        With a ``key``, an admission already made under that key (within the window) is not
        counted again: a resumed run re-acquiring for the same step gets 0.0.
        """
        if unit not in UNIT_SECONDS:
            raise ValueError(f"unknown rate unit {unit!r}; expected one of {', '.join(UNIT_SECONDS)}")
        for name, value in (("limit", limit), ("n", n)):
            if value.__class__ is not int or value < 1:
                raise ValueError(f"rate {name} must be a positive integer, got {value!r}")
        if n > limit:
            raise ValueError(f"{n} at once can never fit a rate limit of {limit} per {unit}")
        window = UNIT_SECONDS[unit]

        def admit(tx: Tx) -> float:
            tx.execute("INSERT INTO {p}rate_scope VALUES (?, ?) ON CONFLICT DO NOTHING", (scope, unit))
            tx.execute("SELECT scope FROM {p}rate_scope WHERE scope = ? AND unit = ? FOR UPDATE", (scope, unit))
            now = self.clock()
            if key is not None and tx.one(
                "SELECT id FROM {p}rate_event WHERE scope = ? AND unit = ? AND key = ?", (scope, unit, key)
            ):
                return 0.0
            tx.execute(
                "DELETE FROM {p}rate_event WHERE scope = ? AND unit = ? AND at <= ?",
                (scope, unit, now - max(window, self.retention_s)),
            )
            (used,) = tx.one(
                "SELECT COALESCE(SUM(n), 0) FROM {p}rate_event WHERE scope = ? AND unit = ? AND at > ?",
                (scope, unit, now - window),
            )  # type: ignore[misc]
            if used + n <= limit:
                tx.execute(
                    "INSERT INTO {p}rate_event (scope, unit, at, n, key) VALUES (?, ?, ?, ?, ?)",
                    (scope, unit, now, n, key),
                )
                return 0.0
            # Wait until enough of the oldest admissions leave the window.
            excess = used + n - limit
            for at, k in tx.all(
                "SELECT at, n FROM {p}rate_event WHERE scope = ? AND unit = ? AND at > ? ORDER BY at",
                (scope, unit, now - window),
            ):
                excess -= k
                if excess <= 0:
                    return max(at + window - now, 0.001)
            return float(window)  # unreachable while used + n > limit

        return self.store.run(admit)

    async def wait(
        self, scope: str, unit: str, limit: int, n: int = 1, key: str | None = None, timeout_s: float | None = None
    ) -> None:
        """Wait until ``n`` is admitted (raises ``TimeoutError`` after ``timeout_s``)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            delay = await anyio.to_thread.run_sync(self.acquire, scope, unit, limit, n, key)
            if delay <= 0:
                return
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= delay:
                    raise TimeoutError(f"rate limit {limit} per {unit} for {scope}: not admitted within {timeout_s}s")
            # Another worker may take the freed room first; then we are told to wait again.
            await anyio.sleep(delay)

    def admitted(self, scope: str, unit: str) -> list[tuple[float, int]]:
        """The admissions still kept for ``scope`` and ``unit``: ``(at, n)``, oldest first."""
        return self.store.run(
            lambda tx: [
                (at, k)
                for at, k in tx.all(
                    "SELECT at, n FROM {p}rate_event WHERE scope = ? AND unit = ? ORDER BY at, id", (scope, unit)
                )
            ]
        )
