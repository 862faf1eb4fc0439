"""The flow interpreter: runs the plan's step IR deterministically.

Each activation of a flow is a :class:`Frame` (its variables, its budget scope, where it is in the
run's step names). Calls of agents, tools and flows are the only effects; each is a durable step
named by its plan ``pos``, made unique per execution (loop iterations, nested flow calls) as
spec/plan.md describes. Everything between calls is pure and replays identically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from vox.compiler.plan.ir import (
    BinaryExpr,
    CallExpr,
    EnumExpr,
    ExprStep,
    FieldExpr,
    ForExpr,
    IfStep,
    IndexExpr,
    LetStep,
    ListExpr,
    ListType,
    LitExpr,
    OptionalType,
    ParStep,
    PlanType,
    PrimType,
    RateExpr,
    ReceiptType,
    RecordExpr,
    RefExpr,
    ReturnStep,
    UnaryExpr,
    VarExpr,
)
from vox.compiler.plan.model import Flow, Plan, RecordDef
from vox.runtime.executor.errors import RunError
from vox.runtime.executor.labels import PUBLIC, Taint, because, join_why, with_own
from vox.runtime.executor.values import resolve

if TYPE_CHECKING:
    from vox.runtime.budget import BudgetScope
    from vox.runtime.executor.run import Run


class _Return(Exception):
    def __init__(self, value: Any, taint: Taint = PUBLIC):
        self.value = value
        self.taint = taint


@dataclass
class Frame:
    """One activation of a flow: its variables, budget scope and place among the run's steps."""

    flow: Flow
    env: dict[str, Any]
    scope: "BudgetScope"
    prefix: str = ""  # the calling step's name and "/", for a flow called from a flow
    loops: list[tuple[str, int]] = field(default_factory=list)  # enclosing loops: (pos, iteration)
    depth: dict[str, int] = field(default_factory=dict)  # activations of each flow on the stack
    signals: Any = None  # in a gate: async (name, args) -> value of a runtime signal
    # The label monitor's view (spec/labels.md), kept only when the program has labels:
    labels: dict[str, Taint] = field(default_factory=dict)  # what each variable carries
    pc: Taint = PUBLIC  # the labels of the conditions and loops around what runs now
    entry_pc: frozenset[str] = frozenset()  # the caller's part of ``pc``
    calls: dict[int, Taint] = field(default_factory=dict)  # id of a call or `for` → what its result carries
    result: Taint = PUBLIC  # what the flow's result carries, once it returned

    def step_name(self, pos: str) -> str:
        """The execution's step name: ``pos`` with each enclosing loop's iteration, after the caller's."""
        name = pos
        for loop_pos, i in sorted(self.loops, key=lambda li: -len(li[0])):
            if name.startswith(loop_pos + "."):
                name = f"{loop_pos}[{i}]" + name[len(loop_pos):]
        return self.prefix + name

    def child(self, **changes) -> "Frame":
        values = {"flow": self.flow, "env": dict(self.env), "scope": self.scope, "prefix": self.prefix,
                  "loops": list(self.loops), "depth": self.depth, "signals": self.signals,
                  "labels": dict(self.labels), "pc": self.pc, "entry_pc": self.entry_pc}
        values.update(changes)
        return Frame(**values)


class Interpreter:
    """Evaluates expressions and steps of one run; calls go to the :class:`Run`."""

    def __init__(self, run: "Run"):
        self.run = run
        self.plan: Plan = run.plan
        self.mon = run.labels
        self._params: dict[tuple[str, str], dict] = {}

    # ---- flows -----------------------------------------------------------------------------------

    async def flow(self, frame: Frame) -> Any:
        """Run a flow's body; what its result carries is left in ``frame.result``."""
        try:
            await self.block(frame.flow.body, frame)
        except _Return as r:
            if self.mon.on:
                frame.result = self.declared_result(frame.flow, r.taint)
            return r.value
        if self.mon.on:
            frame.result = self.declared_result(frame.flow, PUBLIC)
        return None

    async def block(self, steps, frame: Frame) -> None:
        for step in steps:
            await self.step(step, frame)

    async def step(self, step, frame: Frame) -> None:
        if isinstance(step, LetStep):
            frame.env[step.name] = await self.eval_into(step.value, step.type, frame)
            if self.mon.on:
                frame.labels[step.name] = self.let_taint(step, frame)
        elif isinstance(step, ExprStep):
            await self.eval(step.expr, frame)
        elif isinstance(step, ReturnStep):
            value, taint = None, PUBLIC
            if step.value is not None:
                value = await self.eval_into(step.value, frame.flow.result, frame)
                if self.mon.on:
                    taint = self.taint(step.value, frame)
                    inner = frame.pc.own - frame.entry_pc
                    if inner:  # which `return` runs tells the caller about the conditions around it
                        taint = with_own(taint, inner, tuple(w for w in frame.pc.why if w[0] in inner))
            raise _Return(value, taint)
        elif isinstance(step, IfStep):
            cond = await self.eval(step.cond, frame)
            outer = frame.pc
            if self.mon.on:
                frame.pc = self.under(outer, self.taint(step.cond, frame), "an `if`", step.line)
            try:
                await self.block(step.then if cond else step.orelse, frame)
            finally:
                frame.pc = outer
        elif isinstance(step, ParStep):
            await self.par(step, frame)

    async def par(self, step: ParStep, frame: Frame) -> None:
        """Branches run together; each sees the variables bound before the `par`, and the names
        their `let`s bind are set once all have finished (in source order, whatever finished first)."""
        results: list[Any] = [None] * len(step.branches)
        journal = self.run.services.journal  # counts the branches that can make progress
        left = [len(step.branches)]

        async def branch(i: int, s) -> None:
            expr = s.value if isinstance(s, LetStep) else s.expr
            try:
                results[i] = await self.eval_into(expr, s.type if isinstance(s, LetStep) else None, frame)
            finally:
                left[0] -= 1
                if left[0]:  # the last branch to end hands its strand back to the parent
                    journal.strands_changed(-1)

        journal.strands_changed(len(step.branches) - 1)
        try:
            async with anyio.create_task_group() as tg:
                for i, s in enumerate(step.branches):
                    tg.start_soon(branch, i, s)
        except BaseExceptionGroup as group:
            raise first_failure(group) from None
        finally:
            if left[0]:  # branches cancelled before they ended: the parent goes on alone
                journal.strands_changed(1 - left[0])
                left[0] = 0
        for s, value in zip(step.branches, results):
            if isinstance(s, LetStep):
                frame.env[s.name] = value
                if self.mon.on:
                    frame.labels[s.name] = self.let_taint(s, frame)

    # ---- expressions -------------------------------------------------------------------------------

    async def eval_into(self, expr, expected: PlanType | None, frame: Frame) -> Any:
        """Evaluate ``expr`` where a value of ``expected`` goes: a call of tool `t` placed where a
        `Receipt[t]` is expected gives the call's receipt, not its result (spec/types.md)."""
        target = resolve(expected, self.plan.types) if expected is not None else None
        if isinstance(target, OptionalType):
            target = resolve(target.inner, self.plan.types)
        if isinstance(target, ReceiptType) and isinstance(expr, CallExpr) and expr.kind == "tool":
            return await self.tool_call(expr, frame, want_receipt=True)
        return await self.eval(expr, frame)

    async def eval(self, e, frame: Frame) -> Any:
        kind = type(e)
        if kind is CallExpr:  # the common cases first, by exact type
            return await self.call(e, frame)
        if kind is VarExpr:
            return frame.env[e.name]
        if isinstance(e, LitExpr):
            return e.value
        if isinstance(e, VarExpr):
            return frame.env[e.name]
        if isinstance(e, EnumExpr):
            return e.variant
        if isinstance(e, RefExpr):
            return e.name
        if isinstance(e, FieldExpr):
            target = await self.eval(e.target, frame)
            if target is not None and type(e.target.type) is ReceiptType:  # `r.id`, `r.args`, `r.result`
                return target if e.name == "id" else self.run.receipt_part(target, e.target.type.tool, e.name)
            return None if target is None else target.get(e.name)
        if isinstance(e, IndexExpr):
            target = await self.eval(e.target, frame)
            index = await self.eval(e.index, frame)
            if not -len(target) <= index < len(target):
                raise RunError(f"index {index} is outside a list of {len(target)} elements (line {_line(e)})")
            return target[index]
        if isinstance(e, RecordExpr):
            return await self.record(e, frame)
        if isinstance(e, ListExpr):
            elem = e.type.elem if isinstance(e.type, ListType) else None
            return [await self.eval_into(item, elem, frame) for item in e.items]
        if isinstance(e, UnaryExpr):
            value = await self.eval(e.operand, frame)
            return (not value) if e.op == "not" else -value
        if isinstance(e, BinaryExpr):
            return await self.binary(e, frame)
        if isinstance(e, CallExpr):
            return await self.call(e, frame)
        if isinstance(e, ForExpr):
            return await self.loop(e, frame)
        if isinstance(e, RateExpr):
            return await self.eval(e.amount, frame)
        raise RunError(f"cannot evaluate a `{getattr(e, 'node', type(e).__name__)}` expression")

    async def record(self, e: RecordExpr, frame: Frame) -> dict:
        definition = resolve(e.type, self.plan.types)
        types = {f.name: f.type for f in definition.fields} if isinstance(definition, RecordDef) else {}
        out = {name: None for name in types}
        for f in e.fields:
            out[f.name] = await self.eval_into(f.value, types.get(f.name), frame)
        return out

    async def binary(self, e: BinaryExpr, frame: Frame) -> Any:
        left = await self.eval(e.left, frame)
        if e.op == "and":
            return bool(left) and bool(await self.eval(e.right, frame))
        if e.op == "or":
            return bool(left) or bool(await self.eval(e.right, frame))
        right = await self.eval(e.right, frame)
        exact = not (isinstance(e.type, PrimType) and e.type.name == "float")
        return binary_op(e.op, left, right, _line(e), exact)

    async def loop(self, e: ForExpr, frame: Frame) -> list:
        """At most ``bound`` iterations, over the first elements of the list (spec/expressions.md)."""
        items = list(await self.eval(e.iterable, frame))[: e.bound]
        elem = e.type.elem if isinstance(e.type, ListType) else None  # a `Receipt[t]` element: the call's receipt
        on = self.mon.on
        if on:  # how many times the body runs depends on the list: its calls are sinks for its labels
            iterable = self.taint(e.iterable, frame)
            pc = self.under(frame.pc, Taint(iterable.own, None, None, iterable.why), "a `for`", e.line)
            var = Taint(iterable.own, self.mon.elem_type(iterable.shape), None, iterable.why)
            results: list[Taint] = []
        out = []
        for i, item in enumerate(items):
            inner = frame.child(loops=frame.loops + [(e.pos, i)] if e.pos else frame.loops)
            inner.env[e.var] = item
            if on:
                inner.pc = pc
                inner.labels[e.var] = var
            await self.block(e.body, inner)
            out.append(await self.eval_into(e.result, elem, inner) if e.result is not None else None)
            if on and e.result is not None:
                results.append(self.taint(e.result, inner))
        if on:
            result = self.mon.union(results) if results else PUBLIC
            own = iterable.own | result.own  # elements of a list are not tracked per field
            frame.calls[id(e)] = Taint(own, e.type, None, join_why(iterable.why, result.why)) if own else PUBLIC
        return out

    async def args(self, e: CallExpr, frame: Frame) -> dict[str, Any]:
        params = self.param_types(e)
        return {a.name: await self.eval_into(a.value, params.get(a.name), frame) for a in e.args}

    def param_types(self, e: CallExpr) -> dict:
        """The parameter types of the callee of ``e``, by name (computed once per callee)."""
        key = (e.kind, e.name)
        found = self._params.get(key)
        if found is None:
            decl = {"agent": self.plan.agents, "tool": self.plan.tools, "flow": self.plan.flows}.get(e.kind, {}).get(e.name)
            found = self._params[key] = {p.name: p.type for p in decl.params} if decl is not None else {}
        return found

    async def call(self, e: CallExpr, frame: Frame) -> Any:
        if e.kind == "builtin":
            return await self.builtin(e, frame)
        if e.kind == "signal":
            if frame.signals is None:
                raise RunError(f"signal `{e.name}` can only be read in a gate (line {e.line})")
            return await frame.signals(e.name, {a.name: await self.eval(a.value, frame) for a in e.args})
        if e.kind == "tool":
            return await self.tool_call(e, frame)
        args = await self.args(e, frame)
        taints = {a.name: self.taint(a.value, frame) for a in e.args} if self.mon.on else None
        if e.kind == "agent":
            return await self.run.call_agent(e, args, frame, taints)
        if e.kind == "flow":
            return await self.run.call_flow(e, args, frame, taints)
        raise RunError(f"unknown kind of call `{e.kind}` (line {e.line})")

    async def tool_call(self, e: CallExpr, frame: Frame, want_receipt: bool = False) -> Any:
        """A call of a tool from a flow: its arguments are checked against the tool's clearance
        (with the conditions around the call) before it runs; its result carries its declared
        labels and its arguments' labels, but those it `declassifies`."""
        args = await self.args(e, frame)
        if not self.mon.on:
            return await self.run.call_tool(e, args, frame, want_receipt=want_receipt)
        tool = self.plan.tools[e.name]
        taints = {a.name: self.taint(a.value, frame) for a in e.args}
        carried: set[str] = set()
        whys = []
        for name, taint in taints.items():
            labels, why = self.mon.whole(taint)
            self.mon.check(labels | frame.pc.own, join_why(why, frame.pc.why), f"tool `{tool.name}` (argument `{name}`)",
                           tool.clearance, frame.step_name(e.pos))
            carried |= labels
            whys.append(why)
        if not taints:
            self.mon.check(frame.pc.own, frame.pc.why, f"tool `{tool.name}`", tool.clearance, frame.step_name(e.pos))
        value = await self.run.call_tool(e, args, frame, want_receipt=want_receipt)
        result = self.mon.typed(tool.result, tool.result_labels, f"`{tool.name}` returns data labelled so")
        kept = frozenset(carried) - frozenset(tool.declassifies)
        if kept:
            result = with_own(result, kept, join_why(
                because(kept, f"`{tool.name}` was given it (line {e.line}), so its result carries it"), *whys))
        if want_receipt:  # what the receipt says was done: the call's arguments and result
            result = Taint(frozenset(), None, (("args", Taint(frozenset(), None, tuple(taints.items()))),
                                               ("result", result)))
        frame.calls[id(e)] = result
        return value

    # ---- labels ------------------------------------------------------------------------------------

    def under(self, pc: Taint, cond: Taint, what: str, line: int | None) -> Taint:
        """The control context inside an `if` or `for` whose condition or list carries ``cond``."""
        labels, why = self.mon.whole(cond)
        if not labels - pc.own:
            return pc
        return Taint(pc.own | labels, None, None,
                     join_why(pc.why, because(labels - pc.own, f"the code runs under {what} on it (line {line})"), why))

    def let_taint(self, step: LetStep, frame: Frame) -> Taint:
        """What a `let` binds carries: its value's labels and those its declared type writes."""
        taint = self.taint(step.value, frame)
        declared = frozenset(step.labels) - {"public"}
        if not declared:
            return taint
        return with_own(taint, declared, because(declared, f"`{step.name}` is declared so (line {step.line})"))

    def declared_result(self, flow: Flow, taint: Taint) -> Taint:
        """A flow's result as its callers see it: at least the labels its declaration gives it."""
        declared = frozenset(flow.result_labels) - {"public"}
        return Taint(taint.own | declared, flow.result, taint.fields,
                     join_why(taint.why, because(declared, f"`{flow.name}`'s result is labelled so")))

    def taint(self, e, frame: Frame) -> Taint:
        """What the value of ``e`` carries, given what its variables and calls carry (the same
        rules as the compiler's label analysis, on the path the run took)."""
        kind = type(e)
        mon = self.mon
        if kind is VarExpr:
            return frame.labels.get(e.name, PUBLIC)
        if kind is CallExpr:
            if e.kind == "builtin":
                return self.builtin_taint(e, frame)
            return frame.calls.get(id(e), PUBLIC)  # not called (a short-circuit): nothing came of it
        if kind is FieldExpr:
            return mon.get_field(self.taint(e.target, frame), e.name)
        if kind is IndexExpr:
            return mon.element(self.taint(e.target, frame), self.taint(e.index, frame))
        if kind is RecordExpr:
            fields = tuple((f.name, self.taint(f.value, frame)) for f in e.fields)
            if all(t is PUBLIC for _, t in fields) and not mon.deep(e.type)[0]:
                return PUBLIC
            return Taint(frozenset(), e.type, fields)
        if kind is ListExpr:
            items = mon.union(self.taint(x, frame) for x in e.items)
            return Taint(items.own, e.type, None, items.why) if items.own or mon.deep(e.type)[0] else PUBLIC
        if kind is BinaryExpr:
            return mon.union((self.taint(e.left, frame), self.taint(e.right, frame)))
        if kind in (UnaryExpr, RateExpr):
            return mon.flat(self.taint(e.operand if kind is UnaryExpr else e.amount, frame))
        if kind is ForExpr:
            return frame.calls.get(id(e), PUBLIC)
        return PUBLIC  # literals, enum variants, references

    def builtin_taint(self, e: CallExpr, frame: Frame) -> Taint:
        if e.name == "redact":
            return self.mon.lowered(self.taint(e.args[0].value, frame), self.mon.redact_lowers(e.line, e.col))
        if e.name in ("declassify", "receipt"):  # declassify: audited; receipt: a test's stand-in
            return PUBLIC
        return self.mon.union(self.taint(a.value, frame) for a in e.args)

    async def builtin(self, e: CallExpr, frame: Frame) -> Any:
        args = {a.name: a.value for a in e.args}
        values = [await self.eval(a.value, frame) for a in e.args]
        if e.name == "len":
            return len(values[0])
        if e.name in ("min", "max"):
            items = values[0] if len(values) == 1 and isinstance(values[0], list) else values
            if not items:
                raise RunError(f"`{e.name}` of an empty list (line {e.line})")
            return (min if e.name == "min" else max)(items)
        if e.name == "redact":
            return self.run.redact(values[0], e)
        if e.name == "declassify":
            reason = await self.eval(args["reason"], frame)
            self.run.audit_declassify(e, reason)
            return values[0]
        if e.name == "receipt":
            return self.run.mock_receipt(values[0])
        raise RunError(f"unknown builtin `{e.name}`")


def first_failure(group: BaseExceptionGroup) -> BaseException:
    """The first real failure of a `par` (others are the branches it cancelled)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return first_failure(exc)
        if not isinstance(exc, anyio.get_cancelled_exc_class()):
            return exc
    return group.exceptions[0]


def binary_op(op: str, left: Any, right: Any, line: int | None = None, exact: bool = True) -> Any:
    """Arithmetic and comparison with the language's exact semantics: integer division rounds
    toward zero (money and durations are integers) unless the result is a float (``exact`` False,
    as for money / money); comparisons of numbers are exact.

    >>> binary_op("/", -7, 2), binary_op("%", -7, 2), binary_op("/", 7, 2, exact=False)
    (-3, -1, 3.5)
    """
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op in ("/", "%"):
        if right == 0:
            raise RunError(f"division by zero (line {line})" if line else "division by zero")
        if exact and isinstance(left, int) and isinstance(right, int) and not isinstance(left, bool):
            quotient = abs(left) // abs(right) * (1 if (left >= 0) == (right >= 0) else -1)
            return quotient if op == "/" else left - right * quotient
        return left / right if op == "/" else left % right
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    raise RunError(f"unknown operator `{op}`")


def _line(e) -> int | None:
    return getattr(e, "line", None)
