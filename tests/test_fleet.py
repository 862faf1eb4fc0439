"""The fleet layer on SQLite and on PostgreSQL: run-wide spend, rates, leases, events, heartbeats.

Every test runs on both backends. PostgreSQL is ``VOX_TEST_POSTGRES_URL`` (default: the local
server CI provides); its variants are skipped, saying why, only when it cannot be reached. Each
test gets its own table prefix and drops its tables afterwards.

Cross-process tests start real OS processes (``spawn``) that line up on a barrier and then
race; they report what they did through a queue, and the checks run on the store's own rows.
"""

from __future__ import annotations

import doctest
import multiprocessing as mp
import os
import random
import time
import traceback
import uuid
from datetime import datetime, timezone

import anyio
import pytest

from vox.runtime import fleet
from vox.runtime.fleet import (
    EventBus,
    Leases,
    LeaseTimeout,
    RateLimiter,
    SpendLedger,
    SpendRefused,
    StaleLease,
    UnknownReservation,
    WorkerRegistry,
    open_store,
)
from vox.runtime.fleet import events, leases, ledger, store, workers

PG_URL = os.environ.get("VOX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
_pg_problem: list[str] = []


def _postgres_unreachable() -> str | None:
    if not _pg_problem:
        try:
            import psycopg

            psycopg.connect(PG_URL, connect_timeout=3).close()
            _pg_problem.append("")
        except Exception as e:  # noqa: BLE001 - any failure means: skip, and say why
            _pg_problem.append(
                f"PostgreSQL at {PG_URL} is unreachable ({type(e).__name__}: {e}); set VOX_TEST_POSTGRES_URL"
            )
    return _pg_problem[0] or None


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """``(url, prefix)`` of an empty store on one backend."""
    if request.param == "sqlite":
        url, prefix = "sqlite:///" + str(tmp_path / "fleet.sqlite"), "vox_"
    else:
        problem = _postgres_unreachable()
        if problem:
            pytest.skip(problem)
        url, prefix = PG_URL, f"vox_t{uuid.uuid4().hex[:10]}_"
    yield url, prefix
    s = open_store(url, prefix)
    s.drop_all()
    s.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    def __init__(self, t: float = 1_750_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


# -- processes ----------------------------------------------------------------------------------


def _child(target, barrier, results, index, args):
    try:
        barrier.wait(timeout=60)
        results.put((index, target(*args), None))
    except BaseException:  # noqa: BLE001 - reported to the parent
        results.put((index, None, traceback.format_exc()))


def in_processes(target, argsets, timeout_s: float = 60.0) -> list:
    """``target(*args)`` in one spawned process per argument tuple, started together."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(argsets))
    results = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(target, barrier, results, i, a)) for i, a in enumerate(argsets)]
    for p in procs:
        p.start()
    try:
        out = [results.get(timeout=timeout_s) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    errors = [e for _, _, e in out if e]
    assert not errors, errors[0]
    return [value for _, value, _ in sorted(out, key=lambda r: r[0])]


def test_doctests():
    for module in (fleet, store, ledger, leases, events, workers):
        assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0, module.__name__


def test_store_urls_and_prefixes():
    with pytest.raises(fleet.StoreError, match="unsupported scheme"):
        open_store("mysql://x/y")
    with pytest.raises(fleet.StoreError, match="must start with `vox_`"):
        open_store("sqlite:///x.db", prefix="other_")
    assert open_store("postgresql+psycopg://u:secret@h/db").kind == "postgresql"
    assert "secret" not in repr(open_store("postgresql://u:secret@h/db"))


def test_migrations_are_idempotent(db):
    url, prefix = db
    SpendLedger(url, prefix=prefix)
    again = SpendLedger(url, prefix=prefix)  # a second process starting: nothing to apply
    versions = again.store.run(lambda tx: tx.all("SELECT component, version FROM {p}schema ORDER BY component"))
    assert versions == [("ledger", 1)]


# -- spend ledger -------------------------------------------------------------------------------

DAY1 = datetime(2025, 3, 5, 23, 59, 30, tzinfo=timezone.utc)
DAY2 = datetime(2025, 3, 6, 0, 0, 10, tzinfo=timezone.utc)


def test_ledger_refuses_over_cap_and_books_nothing(db):
    url, prefix = db
    lg = SpendLedger(url, prefix=prefix)
    lg.reserve("tenant:acme", "day", 1_000_000, 700_000, key="run-1/a", now=DAY1)
    with pytest.raises(SpendRefused) as refused:
        lg.reserve("tenant:acme", "day", 1_000_000, 300_001, key="run-2/a", now=DAY1)
    e = refused.value
    assert (e.scope, e.period, e.cap) == ("tenant:acme", "day", 1_000_000)
    assert (e.spent, e.reserved, e.needed) == (0, 700_000, 300_001)
    assert str(e) == (
        "spend refused: tenant:acme needs $0.300001 but has $0.30 left of its $1 per day cap "
        "($0 spent, $0.70 reserved, day from 2025-03-05T00:00Z)"
    )
    assert lg.get("run-2/a") == []
    lg.reserve("tenant:acme", "day", 1_000_000, 300_000, key="run-2/a", now=DAY1)  # exactly the cap fits
    u = lg.usage("tenant:acme", "day", now=DAY1)
    assert (u.cap, u.spent, u.reserved, u.left) == (1_000_000, 0, 1_000_000, 0)


def test_ledger_settle_and_release(db):
    url, prefix = db
    lg = SpendLedger(url, prefix=prefix)
    lg.reserve("fleet", "hour", 500, 200, key="r1/s1", now=DAY1)
    lg.reserve("fleet", "hour", 500, 300, key="r1/s2", now=DAY1)
    (settled,) = lg.settle("r1/s1", 120)  # below the reservation: the other 80 is released
    assert (settled.state, settled.amount_micros, settled.actual_micros) == ("settled", 200, 120)
    (released,) = lg.release("r1/s2")
    assert released.state == "released"
    u = lg.usage("fleet", "hour", now=DAY1)
    assert (u.spent, u.reserved, u.left) == (120, 0, 380)
    # Settling or releasing again changes nothing.
    assert lg.settle("r1/s1", 999)[0].actual_micros == 120
    assert lg.release("r1/s1")[0].state == "settled"
    assert lg.settle("r1/s2", 50)[0].state == "released"
    assert lg.usage("fleet", "hour", now=DAY1).spent == 120
    with pytest.raises(UnknownReservation):
        lg.settle("never", 1)
    # An actual above the estimate is charged anyway, and shows.
    lg.reserve("fleet", "hour", 500, 10, key="r1/s3", now=DAY1)
    assert lg.settle("r1/s3", 25)[0].actual_micros == 25
    assert lg.usage("fleet", "hour", now=DAY1).spent == 145
    ops = [j.op for j in lg.journal("fleet", "hour")]
    assert ops == ["reserve", "reserve", "settle", "release", "reserve", "settle"]


def test_ledger_reserve_is_idempotent_by_key(db):
    url, prefix = db
    lg = SpendLedger(url, prefix=prefix)
    first = lg.reserve("tenant:acme", "day", 1_000, 400, key="run-7/ask", now=DAY1)
    # A resumed run asks again: a different estimate, even the next day: same reservation.
    assert lg.reserve("tenant:acme", "day", 1_000, 900, key="run-7/ask", now=DAY1) == first
    assert lg.reserve("tenant:acme", "day", 1_000, 400, key="run-7/ask", now=DAY2) == first
    assert lg.usage("tenant:acme", "day", now=DAY1).reserved == 400
    assert lg.usage("tenant:acme", "day", now=DAY2).reserved == 0
    lg.settle("run-7/ask", 300)
    again = lg.reserve("tenant:acme", "day", 1_000, 400, key="run-7/ask", now=DAY1)
    assert (again.state, again.actual_micros) == ("settled", 300)
    assert lg.usage("tenant:acme", "day", now=DAY1).spent == 300
    assert len(lg.journal("tenant:acme", "day")) == 2


def test_ledger_periods_roll_over(db):
    url, prefix = db
    lg = SpendLedger(url, prefix=prefix)
    lg.reserve("tenant:acme", "day", 100, 100, key="a", now=DAY1)
    with pytest.raises(SpendRefused):
        lg.reserve("tenant:acme", "day", 100, 1, key="b", now=DAY1)
    b = lg.reserve("tenant:acme", "day", 100, 100, key="b", now=DAY2)  # a new day, a new bucket
    assert b.bucket == "2025-03-06T00:00Z"
    # Week and month buckets hold both days (Wednesday and Thursday of one week, one month).
    lg.reserve("tenant:acme", "week", 150, 100, key="a", now=DAY1)
    with pytest.raises(SpendRefused, match="per week cap"):
        lg.reserve("tenant:acme", "week", 150, 100, key="b", now=DAY2)
    lg.reserve("fleet", "minute", 10, 10, key="m1", now=DAY1)
    with pytest.raises(SpendRefused, match="minute from 2025-03-05T23:59Z"):
        lg.reserve("fleet", "minute", 10, 10, key="m3", now=DAY1.replace(second=59, microsecond=999_999))
    assert lg.reserve("fleet", "minute", 10, 10, key="m3", now=DAY2).bucket == "2025-03-06T00:00Z"
    assert ledger.bucket_start("month", DAY2) == int(datetime(2025, 3, 1, tzinfo=timezone.utc).timestamp())


def test_ledger_reserve_many_is_all_or_nothing(db):
    url, prefix = db
    lg = SpendLedger(url, prefix=prefix)
    caps = [("tenant:acme", "day", 1_000), ("fleet", "day", 1_500)]
    lg.reserve_many(caps, 800, key="r1", now=DAY1)
    lg.reserve("tenant:other", "day", 1_000, 0, key="noop", now=DAY1)
    lg.reserve("fleet", "day", 1_500, 600, key="r2", now=DAY1)
    with pytest.raises(SpendRefused) as refused:  # the tenant has room, the fleet has not
        lg.reserve_many(caps, 150, key="r3", now=DAY1)
    assert refused.value.scope == "fleet"
    assert lg.get("r3") == []
    assert lg.usage("tenant:acme", "day", now=DAY1).reserved == 800
    assert [r.state for r in lg.settle("r1", 700)] == ["settled", "settled"]
    assert lg.usage("fleet", "day", now=DAY1).spent == 700


def _ledger_hammer(url, prefix, seed, ops, caps, now):
    """One worker of the trial: random reserve / settle / release / re-reserve."""
    rnd = random.Random(seed)
    lg = SpendLedger(url, prefix=prefix)
    log = {"reserved": [], "refused": 0, "settled": [], "released": [], "rereserved": 0, "refused_by": set()}
    open_keys: list[tuple[str, str, int]] = []
    done: list[tuple[str, object]] = []
    for i in range(ops):
        roll = rnd.random()
        if open_keys and roll < 0.4:
            key, tenant, amount = open_keys.pop(rnd.randrange(len(open_keys)))
            if rnd.random() < 0.7:
                actual = rnd.randint(0, amount)
                (r, *_) = lg.settle(key, actual)
                assert r.actual_micros == actual
                log["settled"].append((key, tenant, actual))
            else:
                lg.release(key)
                log["released"].append((key, tenant, amount))
            done.append((key, None))
        elif done and 0.4 <= roll < 0.5:
            key, _ = rnd.choice(done)
            before = lg.get(key)
            tenant = next(r.scope for r in before if r.scope != "fleet")
            again = lg.reserve_many(
                [(tenant, "day", caps[tenant]), ("fleet", "day", caps["fleet"])], rnd.randint(1, 10**6), key, now
            )
            assert again == sorted(before, key=lambda r: r.scope == "fleet")  # the same, never a second charge
            log["rereserved"] += 1
        else:
            tenant = rnd.choice(["tenant:a", "tenant:b"])
            key, amount = f"run-{seed}-{i}/step", rnd.randint(1, 80_000)
            try:
                lg.reserve_many([(tenant, "day", caps[tenant]), ("fleet", "day", caps["fleet"])], amount, key, now)
            except SpendRefused as e:
                log["refused"] += 1
                log["refused_by"].add(e.scope)
                continue
            open_keys.append((key, tenant, amount))
            log["reserved"].append((key, tenant, amount))
    log["open"] = open_keys
    return log


def test_trial_concurrent_reservations_never_overspend(db):
    """The trial: processes race random reservations against two tenants and the fleet.

    ``VOX_FLEET_TRIAL=<processes>x<ops>`` runs a bigger one (default 6x150).
    """
    url, prefix = db
    lg = SpendLedger(url, prefix=prefix)  # migrate once, before the race
    n_procs, ops = (int(x) for x in os.environ.get("VOX_FLEET_TRIAL", "6x150").split("x"))
    scale = max(1, n_procs * ops // 900)  # caps grow with the trial, so that it runs at them throughout
    caps = {"tenant:a": 2_000_000 * scale, "tenant:b": 600_000 * scale, "fleet": 2_400_000 * scale}
    now = DAY1.timestamp()
    logs = in_processes(_ledger_hammer, [(url, prefix, seed, ops, caps, now) for seed in range(n_procs)])

    settled = {s: 0 for s in caps}
    still_open = {s: 0 for s in caps}
    reserves = {s: 0 for s in caps}
    for log in logs:
        for _, tenant, actual in log["settled"]:
            settled[tenant] += actual
            settled["fleet"] += actual
        for _, tenant, amount in log["open"]:
            still_open[tenant] += amount
            still_open["fleet"] += amount
        for _, tenant, _ in log["reserved"]:
            reserves[tenant] += 1
            reserves["fleet"] += 1
    peak = {}
    for scope, cap in caps.items():
        entries = lg.journal(scope, "day")
        spent = reserved = top = 0
        for e in entries:  # replay the bucket in commit order
            spent, reserved = spent + e.d_spent, reserved + e.d_reserved
            assert (spent, reserved) == (e.spent_after, e.reserved_after), f"lost update in {scope} at seq {e.seq}"
            assert spent + reserved <= cap, f"{scope} overspent: {spent} + {reserved} > {cap} at seq {e.seq}"
            top = max(top, spent + reserved)
        u = lg.usage(scope, "day", now=now)
        assert (u.spent, u.reserved) == (spent, reserved)
        assert u.spent == settled[scope], f"{scope}: ledger spent {u.spent}, workers settled {settled[scope]}"
        assert u.reserved == still_open[scope]
        assert sum(1 for e in entries if e.op == "reserve") == reserves[scope]
        peak[scope] = top
    refused = sum(log["refused"] for log in logs)
    refused_by = set().union(*(log["refused_by"] for log in logs))
    # The race ran at the caps: the small tenant's, and the fleet's or the other tenant's.
    assert "tenant:b" in refused_by and refused_by & {"fleet", "tenant:a"}, refused_by
    for scope in refused_by:
        assert peak[scope] > caps[scope] - 80_000, (scope, peak[scope], caps[scope])
    print(
        f"\ntrial on {url.split(':')[0]}: {n_procs} processes x {ops} ops; "
        f"{sum(len(log['reserved']) for log in logs)} reserved, {refused} refused, "
        f"{sum(len(log['settled']) for log in logs)} settled, {sum(len(log['released']) for log in logs)} released, "
        f"{sum(log['rereserved'] for log in logs)} idempotent re-reserves; peak use/cap {peak} / {caps}; overspend 0"
    )


# -- rate limits --------------------------------------------------------------------------------


def test_rate_limiter_waits_and_keys(db):
    url, prefix = db
    clock = FakeClock()
    rl = RateLimiter(url, prefix=prefix, clock=clock)
    assert rl.acquire("tenant:acme", "minute", limit=10, n=6) == 0.0
    clock.t += 20
    assert rl.acquire("tenant:acme", "minute", limit=10, n=4, key="run-1/call-1") == 0.0
    assert rl.acquire("tenant:acme", "minute", limit=10, n=4, key="run-1/call-1") == 0.0  # resumed: not counted again
    clock.t += 5
    # Full: 4 more fit once the first 6 leave the window, 35 s from now.
    assert rl.acquire("tenant:acme", "minute", limit=10, n=4) == pytest.approx(35.0)
    clock.t += 35.001
    assert rl.acquire("tenant:acme", "minute", limit=10, n=4) == 0.0
    assert rl.acquire("tenant:other", "minute", limit=10, n=10) == 0.0  # scopes are separate
    with pytest.raises(ValueError, match="can never fit"):
        rl.acquire("tenant:acme", "minute", limit=10, n=11)


def _rate_hammer(url, prefix, seed, duration_s, limit):
    rnd = random.Random(seed)
    rl = RateLimiter(url, prefix=prefix, retention_s=3_600)
    admitted = waits = 0
    end = time.time() + duration_s
    while time.time() < end:
        n = rnd.choice((1, 1, 2))
        delay = rl.acquire("tenant:acme", "second", limit, n=n)
        if delay == 0:
            admitted += n
        else:
            waits += 1
            time.sleep(min(delay, 0.02))
    return admitted, waits


def test_rate_limiter_admits_at_most_limit_per_window_across_processes(db):
    url, prefix = db
    rl = RateLimiter(url, prefix=prefix, retention_s=3_600)
    limit, n_procs = 7, 4
    results = in_processes(_rate_hammer, [(url, prefix, seed, 1.6, limit) for seed in range(n_procs)])
    admissions = rl.admitted("tenant:acme", "second")
    assert sum(n for n, _ in results) == sum(n for _, n in admissions)
    for at, _ in admissions:  # every window ending at an admission holds at most `limit`
        assert sum(n for t, n in admissions if at - 1 < t <= at) <= limit
    assert sum(n for _, n in admissions) >= 2 * limit  # it did admit, window after window
    assert sum(w for _, w in results) > 0  # and it did hold processes back


@pytest.mark.anyio
async def test_rate_limiter_wait(db):
    url, prefix = db
    rl = RateLimiter(url, prefix=prefix)
    await rl.wait("run:1", "second", limit=1)
    with pytest.raises(TimeoutError, match="not admitted within"):
        await rl.wait("run:1", "second", limit=1, timeout_s=0.01)
    started = time.monotonic()
    await rl.wait("run:1", "second", limit=1, timeout_s=5)  # admitted once the first leaves the window
    assert time.monotonic() - started > 0.5


# -- leases -------------------------------------------------------------------------------------


def test_lease_ttl_expiry_and_fencing(db):
    url, prefix = db
    clock = FakeClock()
    ls = Leases(url, prefix=prefix, clock=clock)
    bus = EventBus(ls.store, clock=clock)
    a = ls.acquire("run:1/notes", "writer", ttl_s=10)
    assert ls.acquire("run:1/notes", "reader", ttl_s=10) is None
    assert ls.acquire("run:1/notes", "writer", ttl_s=10) == a  # the holder asking again
    assert bus.publish("run:1", "notes", "v1", fence=a) == 1
    clock.t += 10.5  # the writer stalls past its TTL...
    b = ls.acquire("run:1/notes", "reader", ttl_s=10)  # ...and another owner gets in
    assert b is not None and b.token > a.token
    assert not ls.check("run:1/notes", a.token) and ls.check("run:1/notes", b.token)
    with pytest.raises(StaleLease, match=f"token {a.token} was refused; the current holder has token {b.token}"):
        bus.publish("run:1", "notes", "v2 from a stale writer", fence=a)
    assert [e.payload for e in bus.read("run:1", "notes")] == ["v1"]
    assert ls.renew(a) is None and not ls.release(a)
    clock.t += 5
    b2 = ls.renew(b)
    assert b2 is not None and b2.token == b.token and b2.expires_at == clock.t + 10
    assert ls.holder("run:1/notes").owner == "reader"
    assert ls.release(b)
    assert ls.holder("run:1/notes") is None and not ls.check("run:1/notes", b.token)
    c = ls.acquire("run:1/notes", "writer", ttl_s=10)
    assert c.token == b.token + 1  # release does not reset the token


def _lease_contender(url, prefix, owner, rounds):
    async def main():
        ls = Leases(url, prefix=prefix)
        bus = EventBus(ls.store)
        tokens = []
        for _ in range(rounds):
            async with ls.hold("run:1/counter", owner, ttl_s=10, wait_s=30) as lease:
                bus.publish("run:1", "log", {"owner": owner, "what": "enter", "token": lease.token}, fence=lease)
                # A read-modify-write in separate transactions: safe only under the lease.
                last = bus.read("run:1", "counter")
                value = last[-1].payload + 1 if last else 1
                await anyio.sleep(0)
                bus.publish("run:1", "counter", value, fence=lease)
                bus.publish("run:1", "log", {"owner": owner, "what": "exit", "token": lease.token}, fence=lease)
                tokens.append(lease.token)
        return tokens

    return anyio.run(main)


def test_leases_exclude_across_processes_with_increasing_tokens(db):
    url, prefix = db
    bus = EventBus(url, prefix=prefix)
    n_procs, rounds = 4, 6
    tokens = in_processes(_lease_contender, [(url, prefix, f"agent-{i}", rounds) for i in range(n_procs)])
    log = [e.payload for e in bus.read("run:1", "log")]
    assert len(log) == 2 * n_procs * rounds
    for enter, leave in zip(log[::2], log[1::2]):  # never two holders at once
        assert (enter["what"], leave["what"]) == ("enter", "exit")
        assert (enter["owner"], enter["token"]) == (leave["owner"], leave["token"])
    entered = [e["token"] for e in log[::2]]
    assert entered == sorted(entered) and len(set(entered)) == len(entered)  # fencing tokens strictly increase
    assert sorted(t for ts in tokens for t in ts) == entered
    assert [e.payload for e in bus.read("run:1", "counter")] == list(range(1, n_procs * rounds + 1))


@pytest.mark.anyio
async def test_lease_hold_waits_then_times_out(db):
    url, prefix = db
    ls = Leases(url, prefix=prefix)
    async with ls.hold("tenant:acme/index", "a", ttl_s=0.3) as held:
        with pytest.raises(LeaseTimeout):
            async with ls.hold("tenant:acme/index", "b", ttl_s=5, wait_s=0.05):
                pass  # pragma: no cover
        # Kept renewed past its TTL while the block runs: wait on the store, not a clock.
        with anyio.fail_after(5):
            while ls.holder("tenant:acme/index").expires_at <= held.expires_at:
                await anyio.sleep(0.01)
        assert ls.check("tenant:acme/index", held.token)
    async with ls.hold("tenant:acme/index", "b", ttl_s=5, wait_s=1) as second:
        assert second.token == held.token + 1


# -- events -------------------------------------------------------------------------------------


def test_events_publish_and_read_in_order(db):
    url, prefix = db
    bus = EventBus(url, prefix=prefix)
    for i in range(5):
        assert bus.publish("run:r1", "progress", {"step": i}) == i + 1
    bus.publish("run:r2", "progress", {"step": "other run"})
    bus.publish("run:r1", "other-topic", [1, 2])
    assert [e.payload["step"] for e in bus.read("run:r1", "progress")] == [0, 1, 2, 3, 4]
    assert [e.seq for e in bus.read("run:r1", "progress", after_seq=3)] == [4, 5]
    assert [e.seq for e in bus.read("run:r1", "progress", after_seq=1, limit=2)] == [2, 3]
    assert bus.last_seq("run:r1", "progress") == 5 and bus.last_seq("run:r9", "x") == 0
    assert bus.drop("run:r1") == 6 and bus.read("run:r1", "progress") == []
    with pytest.raises(ValueError, match="must be `run:<id>` or `tenant:<id>`"):
        bus.publish("fleet", "x", 1)


def _publisher(url, prefix, who, n):
    bus = EventBus(url, prefix=prefix)
    return [bus.publish("tenant:acme", "news", {"who": who, "i": i}) for i in range(n)]


@pytest.mark.anyio
async def test_subscribe_wakes_on_publish_across_processes(db):
    url, prefix = db
    bus = EventBus(url, prefix=prefix)
    bus.publish("tenant:acme", "news", {"who": "main", "i": 0})
    got = []
    with anyio.fail_after(30):
        async for event in bus.subscribe("tenant:acme", "news"):
            got.append(event)
            break
        # The subscriber is now polling an idle topic; publishers in other processes wake it.
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, in_processes, _publisher, [(url, prefix, w, 5) for w in "ab"])
            async for event in bus.subscribe("tenant:acme", "news", after_seq=got[-1].seq, poll_max_s=0.05):
                got.append(event)
                if len(got) == 11:
                    break
    assert [e.seq for e in got] == list(range(1, 12))
    for who in "ab":
        assert [e.payload["i"] for e in got if e.payload["who"] == who] == list(range(5))


# -- heartbeats and recovery --------------------------------------------------------------------


def test_a_silent_worker_is_dead_after_the_ttl(db):
    url, prefix = db
    clock = FakeClock()
    reg = WorkerRegistry(url, prefix=prefix, clock=clock)
    for w in ("w1", "w2", "w3"):
        reg.beat(w, {"pid": w})
    clock.t += 9
    reg.beat("w2")
    reg.beat("w3")
    assert reg.dead(ttl_s=10) == []
    clock.t += 1  # w1's last beat is now 10 s old
    assert [w.executor_id for w in reg.dead(ttl_s=10)] == ["w1"]
    assert [w.executor_id for w in reg.alive(ttl_s=10)] == ["w2", "w3"]
    assert reg.claim_recovery("w1", "w2", ttl_s=10)
    assert not reg.claim_recovery("w1", "w3", ttl_s=10)
    assert reg.dead(ttl_s=10)[0].recovered_by == "w2"
    assert not reg.claim_recovery("w3", "w2", ttl_s=10)  # w3 is alive
    assert reg.beat("w1") is True  # w1 was only slow: it learns its runs were recovered
    assert reg.beat("w1") is False and reg.workers()[0].info == {"pid": "w1"}
    assert reg.unclaim("w1", "w2") is False
    reg.retire("w1")
    assert [w.executor_id for w in reg.workers()] == ["w2", "w3"]


def _claimant(url, prefix, me):
    return WorkerRegistry(url, prefix=prefix).claim_recovery("dead-1", me, ttl_s=30)


def test_exactly_one_claimant_wins_recovery_across_processes(db):
    url, prefix = db
    WorkerRegistry(url, prefix=prefix, clock=lambda: time.time() - 120).beat("dead-1")
    wins = in_processes(_claimant, [(url, prefix, f"live-{i}") for i in range(6)])
    assert sorted(wins) == [False] * 5 + [True]
    (dead,) = WorkerRegistry(url, prefix=prefix).dead(ttl_s=30)
    assert dead.recovered_by == f"live-{wins.index(True)}"


@pytest.mark.anyio
async def test_heartbeat_loops_recover_a_dead_worker_once(db):
    url, prefix = db
    reg = WorkerRegistry(url, prefix=prefix)
    reg.beat("crashed", {"note": "beats once, then stops"})
    recovered: list[tuple[str, str]] = []
    failed_once: list[str] = []
    done = anyio.Event()

    def recover_as(me):
        async def on_dead(dead_id):
            if not failed_once:  # the first recovery attempt fails: its claim goes back
                failed_once.append(me)
                raise RuntimeError("engine not ready")
            recovered.append((me, dead_id))
            done.set()

        return on_dead

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for me in ("live-a", "live-b", "live-c"):
                loop_reg = WorkerRegistry(url, prefix=prefix)
                tg.start_soon(lambda r=loop_reg, m=me: r.heartbeat_loop(m, 0.05, recover_as(m), ttl_s=0.4))
            await done.wait()
            # Let the loops go round a few more times: nobody recovers it again.
            seen = {w.executor_id: w.last_beat for w in reg.workers()}
            while any(w.last_beat <= seen[w.executor_id] + 0.15 for w in reg.alive(ttl_s=0.4)):
                await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
    assert len(recovered) == 1 and recovered[0][1] == "crashed"
    assert len(failed_once) == 1
    crashed = next(w for w in reg.workers() if w.executor_id == "crashed")
    assert crashed.recovered_by == recovered[0][0]
    assert "crashed" in {w.executor_id for w in reg.dead(ttl_s=0.4)}


@pytest.mark.anyio
async def test_a_blocked_event_loop_does_not_make_a_live_worker_look_dead(db):
    url, prefix = db
    reg = WorkerRegistry(url, prefix=prefix)

    async def never(dead_id):  # pragma: no cover - nobody is dead here
        raise AssertionError(dead_id)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: WorkerRegistry(url, prefix=prefix).heartbeat_loop("busy", 0.05, never, ttl_s=0.3))
            while not reg.alive(ttl_s=0.3):
                await anyio.sleep(0.01)
            time.sleep(0.8)  # a run doing synchronous work on the loop, for longer than the TTL
            assert [w.executor_id for w in reg.alive(ttl_s=0.3)] == ["busy"]
            tg.cancel_scope.cancel()
