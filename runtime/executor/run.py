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
from vox.runtime.budget import BoundExceeded, BudgetExceeded, BudgetScope
from vox.runtime.executor.agent import AgentCall
from vox.runtime.executor.errors import (
    ApprovalDenied,
    ApprovalNeeded,
    BoundBroken,
    BudgetRefused,
    FabricatedReceipt,
    InputInvalid,
    RunError,
    ToolFailed,
    ToolTimedOut,
)
from vox.runtime.executor.interpreter import Frame, Interpreter
from vox.runtime.executor.journal import EffectUnrecorded, Journal
from vox.runtime.executor.labels import PUBLIC, LabelMonitor, Taint, because, join_why, with_own
from vox.runtime.executor.tools import CURRENT_CALL, CallContext, ToolRunner
from vox.runtime.executor.values import ValueMismatch, from_json, to_json
from vox.runtime.pii import scrub_value
from vox.runtime.receipts import ReceiptError, SignedCall


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
        self.labels = LabelMonitor(plan)
        self.interpreter = Interpreter(self)
        self.declassified: list[dict] = []
        self.receipts: dict[str, SignedCall] = {}  # receipt id → the call it signs, for the receipts this run made
        self.watched = services.events is not no_events  # whether events are worth building

    # ---- entry ---------------------------------------------------------------------------------------

    async def execute(self, flow_name: str, raw_input: dict[str, Any]) -> Any:
        """Run ``flow_name`` on JSON input; return the flow's result as a runtime value."""
        flow = self.plan.flows.get(flow_name)
        if flow is None:
            raise RunError(f"the program has no flow `{flow_name}`; flows: {', '.join(self.plan.flows) or 'none'}")
        args = self.read_input(flow, raw_input)
        bound = flow.bound.bound if flow.bound is not None else None
        if bound is not None:  # the budget monitor: the run is held to what the compiler proved
            self.root = BudgetScope.bounded(f"run {self.run_id}", flow.name, {
                "cost_micros": bound.cost_micros, "tokens": bound.tokens, "model_calls": bound.model_calls,
                "tool_calls": bound.tool_calls, "wall_ms": bound.wall_ms})
        frame = Frame(flow, {}, self.root)
        taints = None
        if self.labels.on:
            taints = {p.name: self.labels.typed(p.type, p.labels, f"parameter `{p.name}` of `{flow.name}` is declared so")
                      for p in flow.params}
        try:
            return await self.enter_flow(flow, args, frame, prefix="", taints=taints)
        except BoundExceeded as e:  # refused before it was sent: a bug in the compiler's bound
            raise BoundBroken(str(e), None, e.flow, e.dimension, e.bound, e.would_be) from None

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
                args[p.name] = from_json(raw.get(p.name), p.type, self.plan.types, f"$.{p.name}", receipts=False)
            except ValueMismatch as e:
                raise InputInvalid(f"input {e.path}: {e.message}") from None
        return args

    # ---- flows -----------------------------------------------------------------------------------

    async def call_flow(self, e: CallExpr, args: dict, frame: Frame, taints: dict[str, Taint] | None = None) -> Any:
        flow = self.plan.flows[e.name]
        step = frame.step_name(e.pos)
        if taints is not None:  # each parameter carries what it was given and what it declares
            given = taints
            taints = {}
            for p in flow.params:
                v = given.get(p.name, PUBLIC)
                declared = frozenset(p.labels) - {"public"}
                hop = because(v.own, f"`{flow.name}` was called with it (line {e.line})")
                taints[p.name] = with_own(v, declared, join_why(hop, because(declared, f"parameter `{p.name}` of "
                                          f"`{flow.name}` is declared so")), p.type if v.shape is not None else None)
        return await self.enter_flow(flow, args, frame, prefix=step + "/", taints=taints, site=id(e))

    async def enter_flow(self, flow, args: dict, caller: Frame, prefix: str, taints: dict[str, Taint] | None = None,
                         site: int | None = None) -> Any:
        """An activation of ``flow``; with the label monitor on, ``taints`` says what each
        argument carries, and what the result carries is left in ``caller.calls[site]``."""
        depth = caller.depth.get(flow.name, 0) + 1
        limit = flow.caps.depth
        if depth > (limit if limit is not None else 1):
            raise BudgetRefused(f"`{flow.name}` would nest {depth} deep, more than its `depth` of {limit or 1}",
                                prefix.rstrip("/") or flow.name)
        scope = self._open(caller.scope, f"flow {flow.name}", flow.caps, prefix.rstrip("/") or flow.name)
        frame = Frame(flow, dict(args), scope, prefix, [], {**caller.depth, flow.name: depth})
        if taints is not None:  # everything the callee does happens under the caller's conditions
            frame.labels, frame.pc, frame.entry_pc = dict(taints), caller.pc, caller.pc.own
        self.emit("flow_start", step=prefix.rstrip("/") or flow.name, flow=flow.name)
        try:
            async with _deadline(scope):
                value = await self.interpreter.flow(frame)
            if site is not None:
                caller.calls[site] = frame.result
            return value
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

    async def call_agent(self, e: CallExpr, args: dict, frame: Frame, taints: dict[str, Taint] | None = None) -> Any:
        agent: Agent = self.plan.agents[e.name]
        step = frame.step_name(e.pos)
        scope = self._open(frame.scope, f"agent {agent.name}", agent.caps, step)
        self.emit("agent_start", step=step, agent=agent.name)
        try:
            async with _deadline(scope, step):
                call = AgentCall(self, agent, args, scope, step, taints, frame.pc)
                value = await call.answer()
            if taints is not None:
                frame.calls[id(e)] = call.output_taint()
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
        effect = tool.effect in ("write", "external")
        finish = self._signer(tool, wire_args, step) if tool.receipted and self.services.receipts else None
        attested = None
        if effect:  # its `began` marker, and a check of the receipt store, commit before it acts
            attested = await self.confirm_repeat(tool, wire_args, step, getattr(finish, "check", None))
        self.emit("tool_start", step=step, tool=tool.name)
        acted: dict = {}  # what the call returned, once it returned: a record that fails after it lost an effect
        try:
            call = (lambda: self._attested(tool, attested)) if attested is not None else \
                (lambda: self._run_tool(tool, wire_args, step))

            async def run() -> dict:
                acted["outcome"] = out = await call()
                return out

            outcome = await self.services.journal.step(step, run if effect else call, finish)
        except BaseException as e:
            # cut off (a failing `par` sibling, a `wall` deadline) once it may have started: it may
            # have acted and cost what it costs, so it is charged its whole reservation, never nothing
            reservation.settle(reservation.amounts[0], 0)
            scope.log.charge({"step": step, "tool": tool.name, "charged": "reserved",
                              "cost_micros": reservation.amounts[0], "tokens": 0, "why": "cancelled in flight",
                              "cancelled": True})
            self.emit("tool_end", step=step, tool=tool.name, cost=reservation.amounts[0], charged="reserved",
                      cancelled=True)
            done = acted.get("outcome")
            if isinstance(e, Exception) and done is not None and "value" in done and not done.get("attested"):
                raise EffectUnrecorded(tool.name, step, idempotency_key(self.run_id, step), done["value"], e,
                                       self.run_id, tool.idempotent,  # a sealed run's values are never shown
                                       show_result=all(label == "public" for label in self.plan.labels)) from e
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
        if receipt:  # on a replay too, from the journal: the receipts are rebuilt as they were made
            self.receipts[receipt] = SignedCall(tool.name, wire_args, value)
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
        journal = self.services.journal
        before = getattr(journal, "before_effect", None)
        if before is not None and await before(step + "#again", getattr(finish, "check", None)):
            # the run stopped while the call was made again: that call may have acted too
            verdict, result = await self.decision({
                "step": step + "#again#again", "kind": "again", "tool": tool.name, "arguments": wire_args,
                "idempotency_key": idempotency_key(self.run_id, step),
                "reason": "the run stopped while this call was being made again, so it may already have acted"})
            if verdict == "deny":
                return outcome
            if verdict == "done":
                return await journal.step(step + "#again", lambda: self._attested(tool, {"result": result}), finish)
        try:
            again = scope.reserve(cost_micros=(tool.cost_micros or 0) * (1 + tool.retries), tool_calls=1,
                                  what=f"calling `{tool.name}` again after its timeout")
        except BudgetExceeded as e:
            raise BudgetRefused(str(e), step) from None
        acted: dict = {}

        async def run() -> dict:
            acted["outcome"] = out = await self._run_tool(tool, wire_args, step)
            return out

        try:
            outcome = await journal.step(step + "#again", run, finish)
        except Exception as e:
            if "value" not in acted.get("outcome", {}):
                raise
            raise EffectUnrecorded(tool.name, step + "#again", idempotency_key(self.run_id, step),
                                   acted["outcome"]["value"], e, self.run_id, tool.idempotent,
                                   show_result=all(label == "public" for label in self.plan.labels)) from e
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
        crash leaves both or neither (a replay never signs a second, different result).

        ``finish.check(tx)`` runs before the call acts, in the transaction of its `began` marker,
        and raises if the ledger could not take the receipt: it reads the run's chain head and
        writes, then takes back (a savepoint), an entry where this receipt will go, so a damaged
        or unwritable ledger stops the run before the effect, not after it. It returns True if
        the ledger signed this call already (it acted, and the journal lost its record)."""
        ledger = self.services.receipts
        run_id = self.run_id

        def finish(tx, outcome: dict) -> dict:
            if "error" in outcome:
                return outcome
            entry = ledger.append(run_id, step, tool.name, wire_args, outcome["value"], tx)
            return {**outcome, "receipt": entry.id}

        def check(tx) -> bool:
            probe = getattr(ledger, "probe", None)  # the ledger's own check, where it has one
            if probe is not None:
                return bool(probe(run_id, step, tx))
            head = tx.one("SELECT count FROM {p}receipt_run WHERE run = ? FOR UPDATE", (run_id,))
            if tx.one("SELECT id FROM {p}receipt WHERE run = ? AND pos = ?", (run_id, step)) is not None:
                return True  # signed already: it acted
            seq = head[0] if head else 0
            tx.execute("SAVEPOINT vox_receipt_check")
            try:
                tx.execute("INSERT INTO {p}receipt (id, run, seq, pos, tool, args_sha256, result_sha256, at, prev, mac) "
                           "VALUES (?, ?, ?, ?, ?, '', '', 0, '', '')",
                           (f"check:{run_id}:{step}", run_id, seq, step, tool.name))
                tx.execute("INSERT INTO {p}receipt_run (run, count, head, tag) VALUES (?, ?, '', '') "
                           "ON CONFLICT (run) DO UPDATE SET count = excluded.count", (run_id, seq + 1))
            finally:
                tx.execute("ROLLBACK TO SAVEPOINT vox_receipt_check")
                tx.execute("RELEASE SAVEPOINT vox_receipt_check")
            return False

        finish.check = check
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

    async def confirm_repeat(self, tool: Tool, args: dict, step: str, check=None) -> dict | None:
        """Before a `write` or `external` call acts, its `began` marker is committed, with
        ``check`` (can its receipt be written?) in the same transaction.

        A tool that is not `idempotent` and was running when the run stopped (or whose record
        could not be written after it ran) may or may not have acted: it is not called again
        unless a person says so. ``approve`` calls it again, ``deny`` fails the run, ``done``
        says it already happened: the result the person entered is returned (``{"result": ...}``)
        and used instead of calling it. An `idempotent` tool is called again, with the same key."""
        journal = self.services.journal
        before = getattr(journal, "before_effect", None)  # a journal of its own may only know `interrupted`
        interrupted = await (before(step, check) if before is not None else journal.interrupted(step))
        if not interrupted or tool.idempotent:
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
        for receipt, call in reversed(list(self.receipts.items())):
            if call.tool == tool:
                return receipt
        return "rcpt_missing"

    def receipt_known(self, receipt: str, tool: str) -> bool:
        ledger = self.services.receipts
        if ledger is None:
            call = self.receipts.get(receipt)
            return call is not None and call.tool == tool
        return ledger.has(self.run_id, receipt, tool)

    def receipt_part(self, receipt: str, tool: str, part: str) -> Any:
        """`r.args` or `r.result` (``part``) of a receipt of this run: the arguments or the result
        of the call of ``tool`` it signs, checked (once) against the digests the ledger signed."""
        call = self.receipts.get(receipt) or self.receipts.get(receipt.lower())
        if call is None or call.tool != tool:
            raise FabricatedReceipt(f"receipt {receipt!r} was not made by a call of `{tool}` in this run")
        ledger = self.services.receipts
        if not call.checked and ledger is not None:
            try:
                ledger.require_call(self.run_id, receipt.lower(), tool, call.args, call.result)
            except ReceiptError as e:
                raise FabricatedReceipt(str(e)) from None
            call.checked = True
        spec = self.plan.tools[tool]
        if part == "args":
            return {p.name: from_json(call.args.get(p.name), p.type, self.plan.types, f"`{tool}` argument `{p.name}`")
                    for p in spec.params}
        return from_json(call.result, spec.result, self.plan.types, f"`{tool}` result")

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

