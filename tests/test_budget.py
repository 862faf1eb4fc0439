"""Runtime budget ledger: reservations against nested caps (vox.runtime.budget)."""

from __future__ import annotations

import doctest
import threading

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vox.runtime import budget
from vox.runtime.budget import DIMENSIONS, BudgetExceeded, BudgetScope, ScopeClosed

# A branch's scope may be closed under it when another branch closes an ancestor: a refusal too.
REFUSED = (BudgetExceeded, ScopeClosed)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_doctests():
    assert doctest.testmod(budget).failed == 0


def test_refused_before_anything_is_spent():
    flow = BudgetScope("flow triage", {"tokens": 1_000, "cost_micros": 5_000})
    flow.reserve(tokens=900, cost_micros=100, model_calls=1, what="first call")
    before = flow.snapshot()
    with pytest.raises(BudgetExceeded) as err:
        # cost fits, tokens do not: nothing at all may change
        flow.reserve(tokens=200, cost_micros=100, model_calls=1, what="model call gpt-4o-mini")
    assert flow.snapshot() == before
    e = err.value
    assert (e.scope, e.dimension, e.needed, e.left, e.cap) == ("flow triage", "tokens", 200, 100, 1_000)
    message = str(e)
    assert "model call gpt-4o-mini" in message and "flow triage" in message
    assert "200 tokens" in message and "100 tokens left" in message and "`tokens` cap" in message


def test_money_in_messages_is_exact():
    flow = BudgetScope("flow f", {"cost_micros": 20_000})
    with pytest.raises(BudgetExceeded, match=r"needs \$0\.020001 but flow f has \$0\.02 left of its `cost` cap"):
        flow.reserve(cost_micros=20_001, what="call")


def test_steps_are_named_as_in_source():
    agent = BudgetScope("agent a", {"model_calls": 1})
    agent.reserve(model_calls=1)
    with pytest.raises(BudgetExceeded, match="`steps` cap"):
        agent.reserve(model_calls=1, what="gate retry")


def test_settle_down_returns_the_difference():
    flow = BudgetScope("flow", {"tokens": 1_000, "cost_micros": 1_000})
    r = flow.reserve(tokens=600, cost_micros=500, model_calls=1)
    assert flow.left["tokens"] == 400
    r.settle(cost_micros=120, tokens=250)
    assert flow.spent == {"cost_micros": 120, "tokens": 250, "model_calls": 1, "tool_calls": 0}
    assert flow.reserved == dict.fromkeys(DIMENSIONS, 0)
    assert flow.left["tokens"] == 750 and flow.left["cost_micros"] == 880
    assert flow.overshoots == []


def test_settle_up_is_charged_and_recorded():
    flow = BudgetScope("flow", {"tokens": 1_000})
    r = flow.reserve(tokens=300, what="model call m")
    r.settle(cost_micros=0, tokens=340)
    assert flow.spent["tokens"] == 340
    [o] = flow.overshoots
    assert (o.kind, o.dimension, o.reserved, o.actual, o.what) == ("estimate", "tokens", 300, 340, "model call m")
    assert flow.snapshot()["overshoots"][0]["actual"] == 340


def test_overshoot_past_a_cap_is_recorded_on_the_capped_scopes():
    flow = BudgetScope("flow", {"tokens": 1_000})
    agent = flow.open_child("agent", {"tokens": 100})
    agent.reserve(tokens=100, what="call").settle(cost_micros=0, tokens=150)
    kinds = [(o.kind, o.scope) for o in agent.overshoots]
    assert ("estimate", "agent") in kinds and ("cap", "agent") in kinds
    # the excess is charged upwards at once, not only at close
    assert flow.reserved["tokens"] == 150 and flow.left["tokens"] == 850
    with pytest.raises(BudgetExceeded):
        agent.reserve(tokens=1)
    agent.close()
    assert flow.spent["tokens"] == 150 and flow.reserved["tokens"] == 0


def test_settle_and_release_are_idempotent():
    flow = BudgetScope("flow", {"tokens": 100})
    r = flow.reserve(tokens=50, model_calls=1)
    r.settle(cost_micros=0, tokens=40)
    r.settle(cost_micros=0, tokens=40)
    r.release()
    assert flow.spent["tokens"] == 40 and flow.spent["model_calls"] == 1
    q = flow.reserve(tokens=50)
    q.release()
    q.release()
    q.settle(cost_micros=0, tokens=50)
    assert flow.spent["tokens"] == 40 and flow.reserved["tokens"] == 0


def test_context_manager_releases_on_error_and_charges_in_full_otherwise():
    flow = BudgetScope("flow", {"tokens": 100})
    with pytest.raises(RuntimeError):
        with flow.reserve(tokens=60):
            raise RuntimeError("provider 500")
    assert flow.left["tokens"] == 100
    with flow.reserve(tokens=60):
        pass
    assert flow.spent["tokens"] == 60


def test_agent_in_flow_reserves_its_caps_up_front():
    flow = BudgetScope("flow triage", {"tokens": 50_000, "cost_micros": 30_000})
    agent = flow.open_child("agent resolver", {"tokens": 30_000, "cost_micros": 20_000, "model_calls": 8})
    assert flow.reserved["tokens"] == 30_000 and flow.left["tokens"] == 20_000
    # a second agent whose caps do not fit what is left is refused before it starts
    with pytest.raises(BudgetExceeded) as err:
        flow.open_child("agent reviewer", {"tokens": 25_000})
    assert "starting agent reviewer" in str(err.value)
    assert flow.reserved["tokens"] == 30_000
    # the agent's own reservations are checked against its caps, not the flow's
    agent.reserve(tokens=29_000, model_calls=1)
    with pytest.raises(BudgetExceeded) as err:
        agent.reserve(tokens=2_000, model_calls=1)
    assert err.value.scope == "agent resolver"
    assert flow.left["tokens"] == 20_000


def test_uncapped_dimensions_draw_from_the_nearest_capped_ancestor():
    flow = BudgetScope("flow", {"tool_calls": 3, "cost_micros": 1_000})
    middle = flow.open_child("flow inner", {})  # caps nothing
    agent = middle.open_child("agent", {"cost_micros": 400})
    r = agent.reserve(tool_calls=2, cost_micros=100, what="tool lookup")
    assert flow.reserved["tool_calls"] == 2 and middle.reserved["tool_calls"] == 2
    with pytest.raises(BudgetExceeded) as err:
        agent.reserve(tool_calls=2, what="tool refund")
    assert err.value.scope == "flow" and err.value.dimension == "tool_calls"
    r.settle(cost_micros=100, tokens=0)
    assert flow.spent["tool_calls"] == 2 and middle.spent["tool_calls"] == 2
    # the agent's money is its own (held in full by the flow until it closes)
    assert flow.reserved["cost_micros"] == 400 and middle.reserved["cost_micros"] == 400
    assert agent.left["tool_calls"] == 1 and agent.left["cost_micros"] == 300
    agent.close()
    assert flow.spent["cost_micros"] == 100 and flow.reserved["cost_micros"] == 0
    assert middle.spent["cost_micros"] == 100


def test_closing_returns_the_unused_part():
    flow = BudgetScope("flow", {"tokens": 10_000, "cost_micros": 10_000})
    agent = flow.open_child("agent", {"tokens": 6_000, "cost_micros": 3_000})
    agent.reserve(tokens=2_000, cost_micros=1_000, model_calls=1).settle(cost_micros=700, tokens=1_500)
    agent.close()
    agent.close()
    assert flow.spent["tokens"] == 1_500 and flow.spent["cost_micros"] == 700
    assert flow.reserved == dict.fromkeys(DIMENSIONS, 0)
    assert flow.left["tokens"] == 8_500
    with pytest.raises(ScopeClosed):
        agent.reserve(tokens=1)


def test_close_with_outstanding_reservation_keeps_it_reserved_upstream():
    flow = BudgetScope("flow", {"tokens": 1_000})
    agent = flow.open_child("agent", {"tokens": 500})
    r = agent.reserve(tokens=300)
    agent.close()  # e.g. cancelled while the call was in flight
    assert flow.reserved["tokens"] == 300 and flow.left["tokens"] == 700
    r.settle(cost_micros=0, tokens=200)
    assert flow.spent["tokens"] == 200 and flow.reserved["tokens"] == 0


def test_closing_a_parent_closes_open_children():
    flow = BudgetScope("flow", {"tokens": 1_000})
    outer = flow.open_child("flow sub", {"tokens": 600})
    inner = outer.open_child("agent", {"tokens": 300})
    inner.reserve(tokens=100).settle(cost_micros=0, tokens=100)
    with outer:
        pass
    assert inner.closed and outer.closed
    assert flow.spent["tokens"] == 100 and flow.reserved["tokens"] == 0


def test_deadlines_nest_and_refuse():
    clock = FakeClock()
    flow = BudgetScope("flow", {}, deadline=clock() + 10.0, clock=clock)
    agent = flow.open_child("agent resolver", {}, wall_ms=60_000)
    assert agent.deadline == flow.deadline  # the flow's deadline is sooner
    short = flow.open_child("agent quick", {}, wall_ms=2_000)
    assert short.deadline == clock() + 2.0
    assert short.time_left_ms() == 2_000
    clock.now += 2.5
    assert short.time_left_ms() == 0
    with pytest.raises(BudgetExceeded) as err:
        short.reserve(tokens=1, what="model call m")
    assert err.value.dimension == "wall_ms" and "agent quick" in str(err.value) and "2,000 ms" in str(err.value)
    agent.reserve(tokens=1)  # still within the flow's 10 s
    clock.now += 8
    with pytest.raises(BudgetExceeded):
        agent.reserve(tokens=1)
    with pytest.raises(BudgetExceeded):
        flow.open_child("agent late", {"tokens": 1})


def test_bad_input_is_rejected():
    with pytest.raises(ValueError):
        BudgetScope("f", {"dollars": 3})
    with pytest.raises(ValueError):
        BudgetScope("f", {"tokens": 1.5})
    flow = BudgetScope("f", {"tokens": 10})
    with pytest.raises(ValueError):
        flow.reserve(tokens=-1)
    with pytest.raises(ValueError):
        flow.reserve(tokens=2.0)  # type: ignore[arg-type]
    assert flow.reserved["tokens"] == 0


def test_fits_agrees_with_reserve():
    flow = BudgetScope("f", {"tokens": 10})
    assert flow.fits(tokens=10) and not flow.fits(tokens=11)


def test_snapshot_shape():
    flow = BudgetScope("flow", {"tokens": 100})
    flow.open_child("agent", {"tokens": 40})
    snap = flow.snapshot(children=True)
    assert snap["left"]["tokens"] == 60 and snap["left"]["cost_micros"] is None
    assert snap["children"][0]["name"] == "agent" and snap["children"][0]["left"]["tokens"] == 40


def test_threads_do_not_break_the_caps():
    flow = BudgetScope("flow", {"tokens": 10_000})
    refused = []

    def work() -> None:
        for _ in range(2_000):
            try:
                flow.reserve(tokens=7).settle(cost_micros=0, tokens=7)
            except BudgetExceeded:
                refused.append(1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert flow.spent["tokens"] == 7 * (10_000 // 7)
    assert len(refused) == 8_000 - 10_000 // 7


# -- racing par branches ---------------------------------------------------------------------

def _check_invariants(scopes: list[BudgetScope]) -> None:
    for s in scopes:
        used = {d: s.spent[d] + s.reserved[d] for d in DIMENSIONS}
        for d, cap in s.caps.items():
            if not s.closed:
                assert used[d] <= cap, (s.name, d, used[d], cap)
        for d in DIMENSIONS:
            assert s.spent[d] >= 0 and s.reserved[d] >= 0


op = st.tuples(
    st.sampled_from(["reserve", "reserve", "reserve", "child"]),
    st.integers(0, 2),  # which scope (by depth) the branch works in
    st.lists(st.integers(0, 60), min_size=4, max_size=4),  # amounts
    st.sampled_from(["settle", "release", "settle_zero"]),
    st.integers(0, 3),  # yields between reserve and settle
)


@settings(max_examples=60)
@given(
    root_caps=st.fixed_dictionaries({}, optional={d: st.integers(0, 300) for d in DIMENSIONS}),
    child_caps=st.fixed_dictionaries({}, optional={d: st.integers(0, 150) for d in DIMENSIONS}),
    branches=st.lists(st.lists(op, min_size=1, max_size=8), min_size=2, max_size=8),
)
def test_racing_branches_never_exceed_a_cap(root_caps, child_caps, branches):
    root = BudgetScope("flow", root_caps)
    try:
        mid = root.open_child("agent", child_caps)
    except BudgetExceeded:
        mid = root.open_child("agent", {})
    all_scopes = [root, mid]
    settled_total = {d: 0 for d in DIMENSIONS}

    async def branch(ops) -> None:
        for kind, depth, amounts, ending, yields in ops:
            scope = all_scopes[min(depth, len(all_scopes) - 1)]
            if scope.closed:
                scope = root
            if kind == "child":
                try:
                    child = scope.open_child(f"agent {len(all_scopes)}", {"tokens": amounts[1], "cost_micros": amounts[0]})
                except REFUSED:
                    continue
                all_scopes.append(child)
                await anyio.sleep(0)
                r = None
                try:
                    r = child.reserve(tokens=amounts[1] // 2, tool_calls=amounts[3] % 3)
                except REFUSED:
                    pass
                _check_invariants(all_scopes)
                await anyio.sleep(0)
                if r is not None:
                    r.settle(cost_micros=0, tokens=amounts[1] // 3)
                    settled_total["tokens"] += amounts[1] // 3
                    settled_total["tool_calls"] += amounts[3] % 3
                child.close()
                _check_invariants(all_scopes)
                continue
            try:
                r = scope.reserve(*amounts, what="call")
            except REFUSED:
                _check_invariants(all_scopes)
                await anyio.sleep(0)
                continue
            _check_invariants(all_scopes)
            for _ in range(yields):
                await anyio.sleep(0)
            if ending == "release":
                r.release()
            else:
                cost, tokens = (0, 0) if ending == "settle_zero" else (amounts[0] // 2, amounts[1])
                r.settle(cost_micros=cost, tokens=tokens)
                settled_total["cost_micros"] += cost
                settled_total["tokens"] += tokens
                settled_total["model_calls"] += amounts[2]
                settled_total["tool_calls"] += amounts[3]
            _check_invariants(all_scopes)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for ops in branches:
                tg.start_soon(branch, ops)

    anyio.run(main)
    mid.close()
    _check_invariants(all_scopes)
    assert root.reserved == dict.fromkeys(DIMENSIONS, 0)
    assert root.spent == settled_total
    assert all(o.kind != "cap" for s in all_scopes for o in s.overshoots)


def test_reserve_and_settle_are_fast():
    import time

    flow = BudgetScope("flow", {"tokens": 10**12, "cost_micros": 10**12})
    agent = flow.open_child("agent", {"tokens": 10**11})
    n = 20_000
    t0 = time.perf_counter()
    for _ in range(n):
        agent.reserve(cost_micros=50, tokens=1_000, model_calls=1).settle(cost_micros=40, tokens=900)
    per_pair_us = (time.perf_counter() - t0) / n * 1e6
    assert per_pair_us < 40, per_pair_us  # reserve + settle together; generous for slow CI machines
