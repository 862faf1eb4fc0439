"""Reservations against nested budget caps: the runtime half of "budgets compose".

A :class:`BudgetScope` is one flow run or one agent call. Scopes nest (an agent inside a flow, a
flow inside a flow) and each may cap any of four counted dimensions:

==================  ===================================  =====================
dimension           counts                               Vox cap
==================  ===================================  =====================
``cost_micros``     money, integer micro-dollars         ``cost``
``tokens``          input plus output tokens             ``tokens``
``model_calls``     model calls                          ``steps``
``tool_calls``      tool calls                           ``tool_calls``
==================  ===================================  =====================

plus wall time, held as a deadline on the monotonic clock.

The rules (they are the compiler's, see ``spec/budgets.md``):

* **A call reserves its caps when it starts.** Opening a child scope reserves the child's
  declared caps from its parent, whole, up front; :meth:`BudgetScope.close` gives back the part
  the child did not spend. A dimension the child does not cap is drawn from the parent (and on
  up to the nearest ancestor that caps it) one reservation at a time.
* **Reserve before, settle after.** Before a model call the executor reserves the estimate (the
  prompt counted with the model's tokenizer plus the whole ``max_output``, and the price of
  that); :meth:`Reservation.settle` replaces the estimate by the reported usage. A reservation
  that does not fit raises :class:`BudgetExceeded` and changes nothing, so caps never overshoot,
  however many ``par`` branches race.
* **Estimates are built to be over-estimates.** Should a provider report more than was reserved,
  the actual is charged anyway (money spent is spent) and an :class:`Overshoot` is recorded on
  the scope, where the live view and the trace show it, and in the tree's :class:`SpendLog`,
  which outlives the scopes and goes into the run's result. It is never silent.
* **A retried call reserves each attempt.** :meth:`Reservation.grow` adds a further attempt's
  estimate to a reservation, under the same checks as :meth:`BudgetScope.reserve`, so a retry
  that could break a cap is never sent.
* **The compiler's bound is checked too.** A run's root scope (:meth:`BudgetScope.bounded`) is
  capped by the bound the compiler proved for the run's flow. A reservation that would take the
  run past it raises :class:`BoundExceeded`, not :class:`BudgetExceeded`: the program was
  accepted because its calls fit that bound, so the refusal is a bug in the compiler's budget
  analysis, reported as one, and it comes before anything is sent or any run-wide ledger is
  touched.

Every operation is synchronous and takes one lock per scope tree, so it is atomic both under
anyio's single-threaded scheduling and if a thread should touch the ledger.

>>> flow = BudgetScope("flow triage", {"tokens": 1_000})
>>> agent = flow.open_child("agent resolver", {"tokens": 600})
>>> flow.left["tokens"]
400
>>> r = agent.reserve(tokens=500, model_calls=1, what="model call gpt-4o-mini")
>>> r.settle(cost_micros=0, tokens=320)
>>> agent.close()
>>> flow.spent["tokens"], flow.left["tokens"]
(320, 680)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from vox.compiler.units import format_money

DIMENSIONS: tuple[str, ...] = ("cost_micros", "tokens", "model_calls", "tool_calls")
_INDEX = {name: i for i, name in enumerate(DIMENSIONS)}
_N = len(DIMENSIONS)
COST, TOKENS, MODEL_CALLS, TOOL_CALLS = range(_N)

# How a dimension is named in Vox source, for messages a user reads.
CAP_NAMES = {"cost_micros": "cost", "tokens": "tokens", "model_calls": "steps", "tool_calls": "tool_calls"}

Clock = Callable[[], float]


def format_amount(dimension: str, amount: int) -> str:
    """An amount as a person reads it.

    >>> format_amount("cost_micros", 1_250)
    '$0.00125'
    >>> format_amount("tokens", 30_000)
    '30,000 tokens'
    """
    if dimension == "cost_micros":
        return format_money(amount)
    if dimension == "wall_ms":
        return f"{amount:,} ms"
    unit = {"tokens": "tokens", "model_calls": "model calls", "tool_calls": "tool calls"}[dimension]
    return f"{amount:,} {unit}"


class BudgetExceeded(Exception):
    """A reservation (or a child's up-front reservation) that does not fit a cap.

    Nothing was changed when this is raised. ``dimension`` is one of :data:`DIMENSIONS` or
    ``"wall_ms"`` (the scope's deadline has passed).
    """

    def __init__(self, scope: str, dimension: str, needed: int, left: int, cap: int, what: str):
        self.scope = scope
        self.dimension = dimension
        self.needed = needed
        self.left = left
        self.cap = cap
        self.what = what
        if dimension == "wall_ms":
            message = (
                f"budget exceeded: {scope} is out of wall time (cap `wall` of "
                f"{format_amount('wall_ms', cap)} reached); refused {what}"
            )
        else:
            message = (
                f"budget exceeded: {what} needs {format_amount(dimension, needed)} but {scope} has "
                f"{format_amount(dimension, max(left, 0))} left of its `{CAP_NAMES[dimension]}` cap "
                f"of {format_amount(dimension, cap)}"
            )
        super().__init__(message)


class BoundExceeded(Exception):
    """A reservation that would take a run past the bound the compiler proved for its flow.

    Raised only by a root scope made with :meth:`BudgetScope.bounded`, and, like
    :class:`BudgetExceeded`, before anything changes. It is not a :class:`BudgetExceeded`: a
    declared cap refusing a call is the program's business, a proven bound refusing one is a bug
    in voxc's budget analysis (the executor reports it as ``BoundBroken``). ``would_be`` is the
    run's use in ``dimension`` with the refused amount (for ``wall_ms``: the run's time so far).

    >>> print(BoundExceeded("f", "cost_micros", 50_000, 50_100, "a call of `mini` for `a`"))
    the compiler's bound for flow `f` was $0.05 of cost, but a call of `mini` for `a` would bring the run to $0.0501: this is a bug in voxc's budget analysis, please report it
    """

    def __init__(self, flow: str, dimension: str, bound: int, would_be: int, what: str):
        self.flow = flow
        self.dimension = dimension
        self.bound = bound
        self.would_be = would_be
        self.what = what
        of = {"cost_micros": " of cost", "wall_ms": " of wall time"}.get(dimension, "")
        if dimension == "wall_ms":
            middle = f"but {what} would start after {format_amount(dimension, would_be)}"
        else:
            middle = f"but {what} would bring the run to {format_amount(dimension, would_be)}"
        super().__init__(
            f"the compiler's bound for flow `{flow}` was {format_amount(dimension, bound)}{of}, {middle}: "
            "this is a bug in voxc's budget analysis, please report it")


class SpendLog:
    """What one scope tree's accounting found worth showing, kept for the whole run: every
    :class:`Overshoot`, and every charge that is not the provider's own word (``charges``: a call
    settled to its reservation because no usage was reported; see ``spec/runtime.md``).

    Scopes are closed (and dropped by their parents) as calls end; this log is shared by every
    scope of the tree and is not, so the run can report all of it at the end.
    """

    __slots__ = ("overshoots", "charges")

    def __init__(self) -> None:
        self.overshoots: list[Overshoot] = []
        self.charges: list[dict[str, object]] = []

    def charge(self, entry: dict[str, object]) -> None:
        """Record an unverified charge (a JSON-ready dict: step, what was charged and why)."""
        self.charges.append(entry)


class ScopeClosed(RuntimeError):
    """A reservation or child was asked of a scope that is already closed (an executor bug)."""


@dataclass(frozen=True, slots=True)
class Overshoot:
    """Spend beyond what was reserved, or beyond a cap. Recorded, never silent.

    ``kind`` is ``"estimate"`` (a call's actual use was more than its reservation; recorded on
    the scope that reserved), ``"cap"`` (that excess took a scope over its cap; recorded on
    the capped scope) or ``"bound"`` (it took the run past the bound the compiler proved;
    recorded on the root). ``reserved`` is the reservation (for ``"cap"`` and ``"bound"``: the
    cap or the bound), ``actual`` the actual use (for those: the scope's use after the charge).
    """

    kind: str
    scope: str
    dimension: str
    reserved: int
    actual: int
    what: str

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "scope": self.scope,
            "dimension": self.dimension,
            "reserved": self.reserved,
            "actual": self.actual,
            "what": self.what,
        }


def _check_caps(caps: dict[str, int | None] | None) -> list[int | None]:
    out: list[int | None] = [None] * _N
    for name, value in (caps or {}).items():
        if name not in _INDEX:
            raise ValueError(f"unknown budget dimension {name!r}; expected one of {', '.join(DIMENSIONS)}")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"budget cap {name} must be a non-negative integer, got {value!r}")
        out[_INDEX[name]] = value
    return out


class BudgetScope:
    """One flow run or agent call: caps, what is spent, what is reserved, a deadline.

    Create the root (a flow run) directly; create nested scopes with :meth:`open_child`, which
    reserves the child's caps from this scope first. Passing ``parent`` to the constructor does
    the same.
    """

    __slots__ = (
        "name",
        "parent",
        "deadline",
        "closed",
        "overshoots",
        "log",
        "_caps",
        "_spent",
        "_reserved",
        "_held",
        "_charge",
        "_children",
        "_lock",
        "_clock",
        "_wall_ms",
        "bound_of",
        "_bound_deadline",
        "_bound_wall_ms",
        "_started",
    )

    def __init__(
        self,
        name: str,
        caps: dict[str, int | None] | None = None,
        parent: BudgetScope | None = None,
        deadline: float | None = None,
        *,
        clock: Clock | None = None,
    ):
        self.name = name
        self.parent = parent
        self._caps = _check_caps(caps)
        self._spent = [0] * _N
        self._reserved = [0] * _N  # outstanding reservations made here or drawn through here
        self._held = [0] * _N  # up-front reservations of open capped descendants
        self._charge = [0] * _N  # what this scope holds in its parent's chain, per capped dimension
        self._children: list[BudgetScope] = []
        self.overshoots: list[Overshoot] = []
        self.closed = False
        self._wall_ms: int | None = None
        self.bound_of: str | None = None  # the flow whose proven bound these caps are (a run's root)
        self._bound_deadline: float | None = None
        self._bound_wall_ms: int | None = None
        self._started = 0.0
        if parent is None:
            self._lock = threading.Lock()
            self._clock = clock or time.monotonic
            self.deadline = deadline
            self.log = SpendLog()
            return
        self.log = parent.log
        self._lock = parent._lock
        self._clock = clock or parent._clock
        walled = deadline is not None  # a `wall` of its own: its start is checked against the run's wall bound
        if parent.deadline is not None and (deadline is None or parent.deadline < deadline):
            deadline = parent.deadline
        self.deadline = deadline
        with self._lock:
            if parent.closed:
                raise ScopeClosed(f"cannot open {name} inside {parent.name}: it is closed")
            parent._check_deadline(f"starting {name}")
            holds = [(i, cap) for i, cap in enumerate(self._caps) if cap is not None]
            parent._check_all([(i, cap, f"starting {name} (its `{CAP_NAMES[DIMENSIONS[i]]}` cap)") for i, cap in holds],
                              f"starting {name}", timed=walled)
            for i, cap in holds:
                self._charge[i] = cap
                parent._bump(i, 0, 0, cap, name)
            parent._children.append(self)

    @classmethod
    def bounded(cls, name: str, flow: str, bound: dict[str, int | None], *, clock: Clock | None = None) -> BudgetScope:
        """A run's root scope, capped by the bound the compiler proved for its entry flow ``flow``.

        ``bound`` holds the bound per dimension (:data:`DIMENSIONS` and ``wall_ms``; ``None`` is
        unbounded). A reservation that would exceed it raises :class:`BoundExceeded`. Wall time
        is checked when a call starts, outside any scope with a `wall` cap of its own (which
        bounds everything inside it, and was itself checked when it started): a call that starts
        once the run has taken its whole wall bound is refused. Nothing in flight is cut off.

        >>> run = BudgetScope.bounded("run r", "f", {"tokens": 1_000, "wall_ms": None})
        >>> agent = run.open_child("agent a", {"model_calls": 2})
        >>> _ = agent.reserve(tokens=800, model_calls=1, what="a call of `mini` for `a`")
        >>> try:
        ...     agent.reserve(tokens=800, model_calls=1, what="a call of `mini` for `a`")
        ... except BoundExceeded as broken:
        ...     print(broken.dimension, broken.bound, broken.would_be)
        tokens 1000 1600
        """
        wall = bound.get("wall_ms")
        scope = cls(name, {d: v for d, v in bound.items() if d != "wall_ms"}, clock=clock)
        scope.bound_of = flow
        scope._started = scope._clock()
        if wall is not None:
            if isinstance(wall, bool) or not isinstance(wall, int) or wall < 0:
                raise ValueError(f"wall_ms must be a non-negative integer, got {wall!r}")
            scope._bound_wall_ms = wall
            scope._bound_deadline = scope._started + wall / 1000
        return scope

    # -- opening and closing -------------------------------------------------------------

    def open_child(self, name: str, caps: dict[str, int | None] | None = None, wall_ms: int | None = None) -> BudgetScope:
        """Open a nested scope, reserving its ``caps`` from this one up front.

        Its deadline is the earlier of this scope's and ``now + wall_ms``. Raises
        :class:`BudgetExceeded` (and opens nothing) when this scope cannot cover the caps.
        """
        deadline = None
        if wall_ms is not None:
            if isinstance(wall_ms, bool) or not isinstance(wall_ms, int) or wall_ms < 0:
                raise ValueError(f"wall_ms must be a non-negative integer, got {wall_ms!r}")
            deadline = self._clock() + wall_ms / 1000
        child = BudgetScope(name, caps, self, deadline)
        child._wall_ms = wall_ms
        return child

    def close(self) -> None:
        """Give the unused part of the up-front reservation back to the parent. Idempotent.

        The scope's spend stays charged to the parent. Open children are closed first.
        Reservations still outstanding stay reserved in the parent's chain and settle there.
        """
        for child in list(self._children):
            child.close()
        with self._lock:
            if self.closed:
                return
            self.closed = True
            parent = self.parent
            if parent is None:
                return
            for i in range(_N):
                if self._caps[i] is None:
                    continue
                # Hand the parent this scope's real use in place of its hold.
                parent._bump(i, self._reserved[i], self._spent[i], -self._charge[i], self.name)
                self._charge[i] = 0
            parent._children.remove(self)

    def __enter__(self) -> BudgetScope:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reserving -----------------------------------------------------------------------

    def reserve(
        self,
        cost_micros: int = 0,
        tokens: int = 0,
        model_calls: int = 0,
        tool_calls: int = 0,
        what: str = "a call",
    ) -> Reservation:
        """Reserve amounts against this scope and every ancestor it draws from, or raise.

        Atomic: when any cap (or the deadline) would be exceeded, :class:`BudgetExceeded` says
        which, and nothing changes.
        """
        amounts = [cost_micros, tokens, model_calls, tool_calls]
        for a in amounts:
            if a.__class__ is not int or a < 0:
                raise ValueError(f"reservation amounts must be non-negative integers, got {amounts!r}")
        with self._lock:
            if self.closed:
                raise ScopeClosed(f"cannot reserve {what} in {self.name}: it is closed")
            self._check_deadline(what)
            self._check_all([(i, amounts[i], what) for i in range(_N) if amounts[i]], what)
            for i in range(_N):
                if amounts[i]:
                    self._bump(i, amounts[i], 0, 0, what)
        return Reservation(self, amounts, what)

    def fits(self, cost_micros: int = 0, tokens: int = 0, model_calls: int = 0, tool_calls: int = 0) -> bool:
        """Whether :meth:`reserve` would succeed now (for routing; reserve is still the check)."""
        try:
            with self._lock:
                self._check_deadline("")
                self._check_all([(i, a, "") for i, a in enumerate((cost_micros, tokens, model_calls, tool_calls)) if a],
                                "")
        except (BudgetExceeded, BoundExceeded):
            return False
        return True

    # -- the live view ---------------------------------------------------------------------

    @property
    def caps(self) -> dict[str, int]:
        return {d: c for d, c in zip(DIMENSIONS, self._caps) if c is not None}

    @property
    def spent(self) -> dict[str, int]:
        """Settled use, this scope's and its descendants' (closed ones, and uncapped dimensions)."""
        return dict(zip(DIMENSIONS, self._spent))

    @property
    def reserved(self) -> dict[str, int]:
        """Outstanding reservations plus the up-front holds of open children."""
        return {d: r + h for d, r, h in zip(DIMENSIONS, self._reserved, self._held)}

    @property
    def left(self) -> dict[str, int | None]:
        """What may still be reserved here, per dimension; ``None`` where nothing caps it.

        For a dimension this scope does not cap, that is what its nearest capped ancestor has left.
        """
        with self._lock:
            return {d: self._left(i) for i, d in enumerate(DIMENSIONS)}

    def time_left_ms(self) -> int | None:
        """Milliseconds to the deadline (0 once past), or ``None`` without one."""
        if self.deadline is None:
            return None
        return max(0, int((self.deadline - self._clock()) * 1000))

    def snapshot(self, children: bool = False) -> dict[str, object]:
        """A JSON-ready picture of the scope (and, with ``children``, its open descendants)."""
        with self._lock:
            out: dict[str, object] = {
                "name": self.name,
                "caps": self.caps,
                "spent": self.spent,
                "reserved": self.reserved,
                "left": {d: self._left(i) for i, d in enumerate(DIMENSIONS)},
                "time_left_ms": self.time_left_ms(),
                "closed": self.closed,
                "overshoots": [o.as_dict() for o in self.overshoots],
            }
            kids = list(self._children)
        if children:
            out["children"] = [c.snapshot(children=True) for c in kids]
        return out

    def __repr__(self) -> str:
        return f"BudgetScope({self.name!r}, caps={self.caps}, spent={self.spent}, reserved={self.reserved})"

    # -- internals (call with the lock held) -----------------------------------------------

    def _used(self, i: int) -> int:
        return self._spent[i] + self._reserved[i] + self._held[i]

    def _anchor(self, i: int) -> BudgetScope | None:
        """The scope whose cap bounds dimension ``i`` here: the nearest open one capping it."""
        s: BudgetScope | None = self
        while s is not None:
            if s._caps[i] is not None and not s.closed:
                return s
            s = s.parent
        return None

    def _left(self, i: int) -> int | None:
        a = self._anchor(i)
        if a is None:
            return None
        return a._caps[i] - a._used(i)  # type: ignore[operator]

    def _check_fits(self, i: int, amount: int, what: str) -> None:
        a = self._anchor(i)
        if a is None:
            return
        cap = a._caps[i]
        left = cap - a._used(i)  # type: ignore[operator]
        if amount > left:
            if a.bound_of is not None:
                raise BoundExceeded(a.bound_of, DIMENSIONS[i], cap, a._used(i) + amount, what)  # type: ignore[arg-type]
            raise BudgetExceeded(a.name, DIMENSIONS[i], amount, left, cap, what)  # type: ignore[arg-type]

    def _check_all(self, amounts: list[tuple[int, int, str]], what: str, timed: bool = True) -> None:
        """Check ``(dimension, amount, what)`` against every cap and the run's bound. A declared
        cap refuses first: the compiler's bound assumes every cap holds, so a call that a cap
        refuses anyway says nothing about the bound."""
        broken: BoundExceeded | None = None
        for i, amount, said in amounts:
            try:
                self._check_fits(i, amount, said)
            except BoundExceeded as e:
                broken = broken or e
        if broken is not None:
            raise broken
        if timed:
            self._check_bound_time(what)

    def _check_bound_time(self, what: str) -> None:
        """Refuse a call that starts after the run's wall bound, unless a scope on the way up
        has a `wall` cap of its own: inside it, its deadline holds (the compiler counted it as
        its cap, and this check was made when it started). Only what takes time in the bound is
        checked: a reservation, and the start of a scope with a `wall` cap (a scope without one
        only runs calls, each checked when it starts)."""
        s: BudgetScope | None = self
        while s is not None:
            if s.bound_of is not None:
                if s._bound_deadline is not None and s._clock() > s._bound_deadline:
                    elapsed = int((s._clock() - s._started) * 1000)
                    raise BoundExceeded(s.bound_of, "wall_ms", s._bound_wall_ms or 0, elapsed, what)
                return
            if s._wall_ms is not None:
                return
            s = s.parent

    def _check_deadline(self, what: str) -> None:
        if self.deadline is not None and self._clock() >= self.deadline:
            s: BudgetScope | None = self
            while s is not None and s._wall_ms is None:
                s = s.parent
            name, wall = (s.name, s._wall_ms) if s is not None else (self.name, 0)
            raise BudgetExceeded(name, "wall_ms", 0, 0, wall or 0, what)

    def _overshoot(self, overshoot: Overshoot) -> None:
        self.overshoots.append(overshoot)
        self.log.overshoots.append(overshoot)

    def _bump(self, i: int, d_reserved: int, d_spent: int, d_held: int, what: str) -> None:
        """Apply a change in dimension ``i`` here and up to the scope whose cap bounds it."""
        s: BudgetScope | None = self
        while s is not None:
            s._reserved[i] += d_reserved
            s._spent[i] += d_spent
            s._held[i] += d_held
            cap = s._caps[i]
            if cap is None or s.closed:
                s = s.parent
                continue
            used = s._spent[i] + s._reserved[i] + s._held[i]
            if used > cap and d_reserved + d_spent + d_held > 0:
                kind = "cap" if s.bound_of is None else "bound"
                s._overshoot(Overshoot(kind, s.name, DIMENSIONS[i], cap, used, what))
            parent = s.parent
            if parent is not None:
                # A capped scope holds its cap in its parent's chain, or its use if that is more
                # (after an overshoot), so that the excess is charged upwards too.
                charge = cap if used <= cap else used
                delta = charge - s._charge[i]
                if delta:
                    s._charge[i] = charge
                    d_reserved, d_spent, d_held = 0, 0, delta
                    s = parent
                    continue
            return


class Reservation:
    """Amounts reserved by one call; settle them to the actual use, or release them."""

    __slots__ = ("scope", "amounts", "what", "state", "actual")

    def __init__(self, scope: BudgetScope, amounts: list[int], what: str):
        self.scope = scope
        self.amounts = amounts
        self.what = what
        self.state = "open"  # open | settled | released
        self.actual: list[int] | None = None

    def settle(self, cost_micros: int, tokens: int) -> None:
        """Replace the estimate by the actual use. Idempotent (a second settle does nothing).

        ``model_calls`` and ``tool_calls`` are charged as reserved. An actual above the estimate
        is charged anyway and recorded as an :class:`Overshoot` (reservations are meant to be
        over-estimates, so this points at a wrong estimate or a wrong price).
        """
        for a in (cost_micros, tokens):
            if a.__class__ is not int or a < 0:
                raise ValueError(f"settled amounts must be non-negative integers, got {(cost_micros, tokens)!r}")
        scope = self.scope
        with scope._lock:
            if self.state != "open":
                return
            self.state = "settled"
            res = self.amounts
            actual = [cost_micros, tokens, res[MODEL_CALLS], res[TOOL_CALLS]]
            self.actual = actual
            for i in range(_N):
                if res[i] or actual[i]:
                    if actual[i] > res[i]:
                        scope._overshoot(
                            Overshoot("estimate", scope.name, DIMENSIONS[i], res[i], actual[i], self.what)
                        )
                    scope._bump(i, -res[i], actual[i], 0, self.what)

    def grow(self, cost_micros: int = 0, tokens: int = 0) -> None:
        """Reserve more for the same call (a retry's attempt), or raise :class:`BudgetExceeded`.

        The same checks as :meth:`BudgetScope.reserve` (every cap on the way up, the deadline);
        when one fails nothing changes. Only an open reservation grows.

        >>> scope = BudgetScope("agent a", {"tokens": 1_000})
        >>> r = scope.reserve(tokens=400, model_calls=1, what="a call")
        >>> r.grow(tokens=400)
        >>> try:
        ...     r.grow(tokens=400)
        ... except BudgetExceeded as refused:
        ...     print(refused)
        budget exceeded: a call needs 400 tokens but agent a has 200 tokens left of its `tokens` cap of 1,000 tokens
        >>> r.settle(cost_micros=0, tokens=700); scope.spent["tokens"], scope.overshoots
        (700, [])
        """
        extra = [cost_micros, tokens, 0, 0]
        for a in extra:
            if a.__class__ is not int or a < 0:
                raise ValueError(f"amounts must be non-negative integers, got {(cost_micros, tokens)!r}")
        scope = self.scope
        with scope._lock:
            if self.state != "open":
                raise ScopeClosed(f"cannot grow {self.what}: it is {self.state}")
            scope._check_deadline(self.what)
            scope._check_all([(i, extra[i], self.what) for i in range(_N) if extra[i]], self.what, timed=False)
            for i in range(_N):
                if extra[i]:
                    scope._bump(i, extra[i], 0, 0, self.what)
                    self.amounts[i] += extra[i]

    def release(self) -> None:
        """Give the whole reservation back (the call failed before spending). Idempotent."""
        scope = self.scope
        with scope._lock:
            if self.state != "open":
                return
            self.state = "released"
            for i in range(_N):
                if self.amounts[i]:
                    scope._bump(i, -self.amounts[i], 0, 0, self.what)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        """Release on an exception; without one, an unsettled reservation is charged in full."""
        if exc_type is not None:
            self.release()
        else:
            self.settle(self.amounts[COST], self.amounts[TOKENS])

    def __repr__(self) -> str:
        shown = {d: a for d, a in zip(DIMENSIONS, self.amounts) if a}
        return f"Reservation({self.scope.name!r}, {shown}, {self.what!r}, {self.state})"

