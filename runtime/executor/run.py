"""One run of a flow: the calls of agents, tools and flows, under budgets, receipts and approvals.

:class:`Run` is what the interpreter calls for every effect. Each model call and each tool call
is a durable step of the run's :class:`~vox.runtime.executor.journal.Journal`, named after its
execution's step name; reservations are made before a step and settled from its recorded
result, so a replayed run rebuilds exactly the same ledgers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import anyio

from vox.compiler.plan.ir import CallExpr
from vox.compiler.plan.model import Agent, Plan, Tool
from vox.runtime.budget import BudgetExceeded, BudgetScope
from vox.runtime.executor.agent import AgentCall
from vox.runtime.executor.errors import (
    ApprovalDenied,
    ApprovalNeeded,
    BudgetRefused,
    InputInvalid,
    RunError,
    ToolFailed,
    ToolTimedOut,
)
from vox.runtime.executor.interpreter import Frame, Interpreter
from vox.runtime.executor.journal import Journal
from vox.runtime.executor.tools import CURRENT_CALL, CallContext, ToolRunner
from vox.runtime.executor.values import ValueMismatch, from_json, to_json
from vox.runtime.pii import scrub_value


def caps_of(caps) -> dict[str, int]:
    """A plan's caps as the budget ledger's dimensions (wall time and depth are handled apart)."""
    hit = _CAPS.get(id(caps))
    if hit is not None and hit[0] is caps:  # the plan's caps are frozen: made once per caps
        return dict(hit[1])
    values = {"cost_micros": caps.cost_micros, "tokens": caps.tokens, "model_calls": caps.steps,
              "tool_calls": caps.tool_calls}
    out = {k: v for k, v in values.items() if v is not None}
    if len(_CAPS) >= 4096:
        _CAPS.clear()
    _CAPS[id(caps)] = (caps, out)
    return dict(out)


_CAPS: dict[int, tuple[Any, dict[str, int]]] = {}


def no_events(event: dict) -> None:
    """The events sink of a run nobody watches (a run then skips building its events)."""


@dataclass
class Approvals:
    """Which `approval: human` calls may go ahead: tools approved for the whole run (`--approve`,
    a test's `approve:`), and decisions given for one step (`voxc approve`)."""

    tools: frozenset[str] = frozenset()
    decisions: dict[str, bool] = field(default_factory=dict)  # step name → approved


@dataclass
class Services:
    """What a run needs from outside: models, tools, the receipt ledger, a journal, a clock of events."""

    models: Any  # ModelRouter: complete(model_name, request, observer) -> ModelResponse
    tools: ToolRunner
    receipts: Any | None  # ReceiptLedger
    journal: Journal
    approvals: Approvals = field(default_factory=Approvals)
    events: Callable[[dict], None] = no_events
    tool_mocks: dict[str, Any] = field(default_factory=dict)  # tool → mocked reply (tests)
    runwide: Any | None = None  # RunWide: the fleet and tenant budgets, when the program has any
    tenant: str = "default"
    store_url: str = ""  # the state store (events, leases): the fleet's database, or .vox/state.sqlite


class Run:
    def __init__(self, plan: Plan, services: Services, run_id: str):
        self.plan = plan
        self.services = services
        self.run_id = run_id
        self.root = BudgetScope(f"run {run_id}")
        self.interpreter = Interpreter(self)
        self.declassified: list[dict] = []
        self.receipts: dict[str, str] = {}  # receipt id → tool, for the receipts this run made
        self.watched = services.events is not no_events  # whether events are worth building

    # ---- entry ---------------------------------------------------------------------------------------

    async def execute(self, flow_name: str, raw_input: dict[str, Any]) -> Any:
        """Run ``flow_name`` on JSON input; return the flow's result as a runtime value."""
        flow = self.plan.flows.get(flow_name)
        if flow is None:
            raise RunError(f"the program has no flow `{flow_name}`; flows: {', '.join(self.plan.flows) or 'none'}")
        args = self.read_input(flow, raw_input)
        frame = Frame(flow, {}, self.root)
        return await self.enter_flow(flow, args, frame, prefix="")

    def read_input(self, flow, raw: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise InputInvalid(f"the input of `{flow.name}` is an object of its arguments, as in "
                               + json.dumps({p.name: "..." for p in flow.params}))
        unknown = sorted(set(raw) - {p.name for p in flow.params})
        if unknown:
            raise InputInvalid(f"`{flow.name}` has no parameter `{unknown[0]}`; it takes "
                               + ", ".join(p.name for p in flow.params))
        args = {}
        for p in flow.params:
            try:
                args[p.name] = from_json(raw.get(p.name), p.type, self.plan.types, f"$.{p.name}")
            except ValueMismatch as e:
                raise InputInvalid(f"input {e.path}: {e.message}") from None
        return args

    # ---- flows -----------------------------------------------------------------------------------

    async def call_flow(self, e: CallExpr, args: dict, frame: Frame) -> Any:
        flow = self.plan.flows[e.name]
        step = frame.step_name(e.pos)
        return await self.enter_flow(flow, args, frame, prefix=step + "/")

    async def enter_flow(self, flow, args: dict, caller: Frame, prefix: str) -> Any:
        depth = caller.depth.get(flow.name, 0) + 1
        limit = flow.caps.depth
        if depth > (limit if limit is not None else 1):
            raise BudgetRefused(f"`{flow.name}` would nest {depth} deep, more than its `depth` of {limit or 1}",
                                prefix.rstrip("/") or flow.name)
        scope = self._open(caller.scope, f"flow {flow.name}", flow.caps, prefix.rstrip("/") or flow.name)
        frame = Frame(flow, dict(args), scope, prefix, [], {**caller.depth, flow.name: depth})
        self.emit("flow_start", step=prefix.rstrip("/") or flow.name, flow=flow.name)
        try:
            async with _deadline(scope):
                return await self.interpreter.flow(frame)
        finally:
            scope.close()
            if self.watched:
                self.emit("flow_end", step=prefix.rstrip("/") or flow.name, flow=flow.name, spent=scope.spent)

    def _open(self, parent: BudgetScope, name: str, caps, step: str) -> BudgetScope:
        try:
            return parent.open_child(name, caps_of(caps), caps.wall_ms)
        except BudgetExceeded as e:
            raise BudgetRefused(str(e), step) from None

    # ---- agents ----------------------------------------------------------------------------------

    async def call_agent(self, e: CallExpr, args: dict, frame: Frame) -> Any:
        agent: Agent = self.plan.agents[e.name]
        step = frame.step_name(e.pos)
        scope = self._open(frame.scope, f"agent {agent.name}", agent.caps, step)
        self.emit("agent_start", step=step, agent=agent.name)
        try:
            async with _deadline(scope, step):
                value = await AgentCall(self, agent, args, scope, step).answer()
        finally:
            scope.close()
            if self.watched:
                self.emit("agent_end", step=step, agent=agent.name, spent=scope.spent)
        return value

    # ---- tools -----------------------------------------------------------------------------------

    async def call_tool(self, e: CallExpr, args: dict, frame: Frame, want_receipt: bool = False) -> Any:
        tool = self.plan.tools[e.name]
        value, receipt = await self.tool_step(tool, args, frame.scope, frame.step_name(e.pos))
        return receipt if want_receipt else value

    async def tool_step(self, tool: Tool, args: dict, scope: BudgetScope, step: str) -> tuple[Any, str | None]:
        """One call of ``tool`` as a durable step: reserve, approve, run (with its retries), sign."""
        attempts = 1 + tool.retries
        try:
            reservation = scope.reserve(cost_micros=(tool.cost_micros or 0) * attempts, tool_calls=1,
                                        what=f"a call of `{tool.name}`")
        except BudgetExceeded as e:
            raise BudgetRefused(str(e), step) from None
        wire_args = {p.name: to_json(args.get(p.name), p.type, self.plan.types) for p in tool.params}
        await self.approve(tool, wire_args, step)
        attested = None
        if tool.effect in ("write", "external") and not tool.idempotent:
            attested = await self.confirm_repeat(tool, wire_args, step)
        self.emit("tool_start", step=step, tool=tool.name)
        try:
            run = (lambda: self._attested(tool, attested)) if attested is not None else \
                (lambda: self._run_tool(tool, wire_args, step))
            finish = self._signer(tool, wire_args, step) if tool.receipted and self.services.receipts else None
            outcome = await self.services.journal.step(step, run, finish)
        except BaseException:
            # cut off (a failing `par` sibling, a `wall` deadline) once it may have started: it may
            # have acted and cost what it costs, so it is charged its whole reservation, never nothing
            reservation.settle(reservation.amounts[0], 0)
            scope.log.charge({"step": step, "tool": tool.name, "charged": "reserved",
                              "cost_micros": reservation.amounts[0], "tokens": 0, "why": "cancelled in flight",
                              "cancelled": True})
            self.emit("tool_end", step=step, tool=tool.name, cost=reservation.amounts[0], charged="reserved",
                      cancelled=True)
            raise
        reservation.settle((tool.cost_micros or 0) * outcome["attempts"], 0)
        if outcome.get("unknown_outcome") and not tool.idempotent:
            outcome = await self.after_unknown_outcome(tool, wire_args, scope, step, outcome, finish)
        if "error" in outcome:
            if outcome.get("timed_out"):
                raise ToolTimedOut(outcome["error"], step, outcome["attempts"], outcome.get("unknown_outcome", False))
            raise ToolFailed(outcome["error"], step)
        value = outcome["value"]
        receipt = outcome.get("receipt")
        if receipt:
            self.receipts[receipt] = tool.name
        cost = (tool.cost_micros or 0) * outcome["attempts"]
        self.emit("tool_end", step=step, tool=tool.name, receipt=receipt, cost=cost,
                  charged="declared" if cost else "none")
        return from_json(value, tool.result, self.plan.types, f"`{tool.name}` result"), receipt

    async def _run_tool(self, tool: Tool, wire_args: dict, step: str) -> dict:
        """The step itself: its result is what the journal records (JSON only)."""
        if tool.name in self.services.tool_mocks:
            value, attempts = self.services.tool_mocks[tool.name], 1
        else:
            token = CURRENT_CALL.set(CallContext(self.run_id, step, self.services.tenant, self.services.store_url))
            try:
                value, attempts = await self.services.tools.call(tool, wire_args, idempotency_key(self.run_id, step))
            except ToolFailed as e:
                if isinstance(e, ToolTimedOut):  # its late result, if any, is never recorded
                    return {"error": e.message, "attempts": e.attempts, "timed_out": True,
                            "unknown_outcome": e.unknown_outcome}
                return {"error": e.message, "attempts": e.attempts}
            finally:
                CURRENT_CALL.reset(token)
        try:
            from_json(value, tool.result, self.plan.types, "$")
        except ValueMismatch as e:
            return {"error": f"`{tool.name}` returned a value that is not a `{_show(tool.result)}`: {e}",
                    "attempts": attempts}
        return {"value": value, "attempts": attempts}

    async def after_unknown_outcome(self, tool: Tool, wire_args: dict, scope: BudgetScope, step: str,
                                    outcome: dict, finish) -> dict:
        """A `write`/`external` call that timed out may have acted, as one interrupted by a crash
        may: it is never retried silently. A person decides: call it again (``approve``, with
        the same idempotency key), enter the result it had (``done``), or let the call fail
        (``deny``: the caller sees the timeout)."""
        verdict, result = await self.decision({
            "step": step + "#timeout", "kind": "again", "tool": tool.name, "arguments": wire_args,
            "idempotency_key": idempotency_key(self.run_id, step),
            "reason": f"{outcome['error']}, so it may already have acted"})
        if verdict == "deny":
            return outcome
        if verdict == "done":
            return await self.services.journal.step(
                step + "#again", lambda: self._attested(tool, {"result": result}), finish)
        try:
            again = scope.reserve(cost_micros=(tool.cost_micros or 0) * (1 + tool.retries), tool_calls=1,
                                  what=f"calling `{tool.name}` again after its timeout")
        except BudgetExceeded as e:
            raise BudgetRefused(str(e), step) from None
        outcome = await self.services.journal.step(step + "#again", lambda: self._run_tool(tool, wire_args, step),
                                                   finish)
        again.settle((tool.cost_micros or 0) * outcome["attempts"], 0)
        return outcome

    async def _attested(self, tool: Tool, attested: dict) -> dict:
        """A call a person says already happened before a crash, with the result they entered."""
        try:
            from_json(attested["result"], tool.result, self.plan.types, "$")
        except ValueMismatch as e:
            return {"error": f"the result entered for `{tool.name}` is not a `{_show(tool.result)}`: {e}",
                    "attempts": 0}
        return {"value": attested["result"], "attempts": 1, "attested": True}  # it ran, and is charged

    def _signer(self, tool: Tool, wire_args: dict, step: str):
        """Signs the call's receipt in the same transaction as the journal records the step, so a
        crash leaves both or neither (a replay never signs a second, different result)."""
        ledger = self.services.receipts

        def finish(tx, outcome: dict) -> dict:
            if "error" in outcome:
                return outcome
            entry = ledger.append(self.run_id, step, tool.name, wire_args, outcome["value"], tx)
            return {**outcome, "receipt": entry.id}

        return finish

    async def decision(self, waiting: dict) -> tuple[str, Any]:
        """A person's decision on ``waiting``: given up front (a test's), recorded, or waited for."""
        step = waiting["step"]
        given = self.services.approvals.decisions.get(step)
        if given is not None:
            return ("approve" if given else "deny"), None
        found = await self.services.journal.wait_for_approval(step, waiting)
        if found is None:
            raise ApprovalNeeded(waiting)
        return found

    async def approve(self, tool: Tool, args: dict, step: str) -> None:
        if tool.approval != "human" or tool.name in self.services.approvals.tools:
            return
        verdict, _ = await self.decision({"step": step, "kind": "call", "tool": tool.name, "arguments": args})
        if verdict != "approve":
            raise ApprovalDenied(f"a person denied the call of `{tool.name}`", step)

    async def confirm_repeat(self, tool: Tool, args: dict, step: str) -> dict | None:
        """A tool that is not `idempotent` and was running when the run stopped may or may not have
        acted: it is not called again unless a person says so. ``approve`` calls it again, ``deny``
        fails the run, ``done`` says it already happened: the result the person entered is
        returned (``{"result": ...}``) and used instead of calling it."""
        if not await self.services.journal.interrupted(step):
            return None
        verdict, result = await self.decision({
            "step": step + "#again", "kind": "again", "tool": tool.name, "arguments": args,
            "idempotency_key": idempotency_key(self.run_id, step),
            "reason": "the run stopped while this call was running, so it may already have acted"})
        if verdict == "done":
            return {"result": result}
        if verdict != "approve":
            raise ApprovalDenied(f"a person chose not to call `{tool.name}` again after the run stopped", step)
        return None

    async def approve_gate(self, agent: str, gate: str, step: str, output: Any) -> None:
        """A gate's `ask_human`: a person accepts the agent's answer or rejects it (the run fails)."""
        what = f"the answer of `{agent}` (gate `{gate}`)"
        verdict, _ = await self.decision({"step": f"{step}/gate.{gate}", "kind": "answer", "tool": agent,
                                          "gate": gate, "arguments": {"output": output}})
        if verdict != "approve":
            raise ApprovalDenied(f"a person rejected {what}", step)

    # ---- labels and receipts ------------------------------------------------------------------------

    def redact(self, value: Any, e: CallExpr) -> Any:
        """`redact(x)`: the scrubbed copy. Fail closed: a scrubber error stops the run."""
        try:
            return scrub_value(value)
        except Exception as exc:  # noqa: BLE001 - any scrubber failure must stop the data
            raise RunError(f"redact failed, so the data was not sent on: {type(exc).__name__}: {exc}",
                           f"line {e.line}") from None

    def audit_declassify(self, e: CallExpr, reason: str) -> None:
        entry = {"line": e.line, "col": e.col, "reason": reason}
        self.declassified.append(entry)
        self.emit("declassify", **entry)

    def mock_receipt(self, tool: str) -> str:
        """`receipt(t)` in a test mock: the receipt of this run's latest call of ``t``."""
        for receipt, name in reversed(list(self.receipts.items())):
            if name == tool:
                return receipt
        return "rcpt_missing"

    def receipt_known(self, receipt: str, tool: str) -> bool:
        ledger = self.services.receipts
        if ledger is None:
            return self.receipts.get(receipt) == tool
        return ledger.has(self.run_id, receipt, tool)

    def emit(self, kind: str, **data) -> None:
        events = self.services.events
        if events is not no_events:
            events({"event": kind, "run": self.run_id, **data})


def idempotency_key(run_id: str, step: str) -> str:
    """The same for every attempt of one call in one run, and different for every other call:
    tools pass it on (an `Idempotency-Key` header, an `idempotency_key` argument) to act once."""
    return hashlib.sha256(f"{run_id}\x00{step}".encode()).hexdigest()[:32]


class _deadline:
    """``async with _deadline(scope):`` cancels the body when the scope's wall-clock deadline passes.

    On asyncio this is :func:`asyncio.timeout` (a third of the CPU of ``anyio.fail_after``, and
    every run enters two); on another event loop, ``anyio.fail_after``."""

    __slots__ = ("scope", "step", "cm", "native")

    def __init__(self, scope: BudgetScope, step: str | None = None):
        self.scope = scope
        self.step = step
        self.cm = None

    async def __aenter__(self):
        left = self.scope.time_left_ms()
        if left is not None:
            seconds = max(left, 0) / 1000
            self.native = asyncio._get_running_loop() is not None and asyncio.current_task() is not None
            if self.native:
                self.cm = asyncio.timeout(seconds)
                await self.cm.__aenter__()
            else:
                self.cm = anyio.fail_after(seconds)
                self.cm.__enter__()
        return self

    async def __aexit__(self, exc_type, exc, tb):
        if self.cm is None:
            return False
        try:
            if self.native:
                return await self.cm.__aexit__(exc_type, exc, tb)
            return self.cm.__exit__(exc_type, exc, tb)
        except TimeoutError:
            raise BudgetRefused(f"{self.scope.name} ran out of wall-clock time", self.step) from None


def _show(ty) -> str:
    return getattr(ty, "name", None) or getattr(ty, "kind", "value")

