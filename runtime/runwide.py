"""Run-wide budgets: a program's `budget fleet` and `budget tenant`, shared by every run.

Before its first request a run reserves its flow's worst-case cost (the compiler's bound) against
the tenant's and the fleet's cost per period, all or nothing, and settles to what it spent when it
ends; a run that cannot fit is refused before it starts. The run's budget monitor (its root scope,
``runtime/budget.py``) holds it to that same bound, and refuses a call before the call reaches
anything here (the rate limiter included), so a run never settles to more than it reserved,
unless a provider reports more than a call reserved (an overshoot, recorded as such). Request and token rates are throttles:
every model call waits for its share of the minute. The ledgers live in the fleet's database
(PostgreSQL, so that all workers share them) or, for local runs, in the state store `.vox/state.sqlite`.
Reservations and admissions are keyed by run and step, so a resumed run is never charged twice.
"""

from __future__ import annotations

import os
from typing import Any

from vox.compiler.plan.model import Plan
from vox.runtime.executor.errors import BudgetRefused


class RunWide:
    def __init__(self, plan: Plan, url: Any, tenant: str = "default"):
        self.cost: list[tuple[str, str, int]] = []  # (scope, period, cap micros)
        self.rates: list[tuple[str, str, str, int]] = []  # (scope, requests|tokens, unit, limit)
        for budget in plan.budgets.values():
            scope = "fleet" if budget.scope == "fleet" else f"tenant:{tenant}"
            if budget.cost is not None:
                self.cost.append((scope, budget.cost.per, budget.cost.amount))
            for kind in ("requests", "tokens"):
                rate = getattr(budget, kind)
                if rate is not None:
                    self.rates.append((scope, kind, rate.per, rate.amount))
        self.url = url  # the state store, or its URL
        self.tenant = tenant
        self._ledger: Any = None
        self._limiter: Any = None

    @property
    def active(self) -> bool:
        return bool(self.cost or self.rates)

    def ledger(self):
        if self._ledger is None:
            from vox.runtime.fleet import SpendLedger

            self._ledger = SpendLedger(self.url)
        return self._ledger

    def reserve(self, run_id: str, flow: str, bound_micros: int | None) -> None:
        """Reserve a run's worst case against the run-wide cost budgets (idempotent per run)."""
        if not self.cost:
            return
        if bound_micros is None:
            raise BudgetRefused(f"`{flow}` has no cost bound, so it cannot be reserved against the run-wide "
                                "budgets: give it a `budget: { cost: ... }`", flow)
        from vox.runtime.fleet import SpendRefused

        try:
            self.ledger().reserve_many(self.cost, bound_micros, f"{run_id}/run")
        except SpendRefused as e:
            raise BudgetRefused(f"the run cannot start: {e}", flow) from None

    def settle(self, run_id: str, spent_micros: int) -> None:
        if not self.cost:
            return
        from vox.runtime.fleet import UnknownReservation

        try:
            self.ledger().settle(f"{run_id}/run", spent_micros)
        except UnknownReservation:
            pass  # already settled: a resumed run ending a second time

    async def throttle(self, step: str, tokens: int) -> None:
        """Wait until this model call fits every request and token rate."""
        if not self.rates:
            return
        if self._limiter is None:
            from vox.runtime.fleet import RateLimiter

            self._limiter = RateLimiter(self.url)
        for scope, kind, unit, limit in self.rates:
            n = 1 if kind == "requests" else min(tokens, limit)
            await self._limiter.wait(f"{scope}:{kind}", unit, limit, n, key=step)
