"""One call of an agent: the model/tool loop, structured output, receipts and gates.

The loop: send the conversation to the current model of the chain; run the tools it asks for and
send their results back; when it answers, read the answer against the agent's result type (one
repair request if it does not fit), check every receipt it names against the run's ledger, then
run the gates. Every model call reserves its worst case first (the prompt's tokens counted with
the model's tokenizer, plus its whole `max_output`) and settles to the usage reported.
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from vox.compiler.plan.ir import ListType, OptionalType, ReceiptType
from vox.compiler.requests import JUDGE_SCHEMA, JUDGE_SYSTEM, judge_prompt
from vox.compiler.signals import NEEDS, SIGNALS
from vox.compiler.plan.model import Agent, Model, Plan, RecordDef
from vox.runtime.budget import BudgetExceeded, BudgetScope
from vox.runtime.executor.errors import (
    Abstained,
    BudgetRefused,
    FabricatedReceipt,
    GateHalted,
    InvalidOutput,
    ModelFailed,
    ToolFailed,
)
from vox.runtime.executor.interpreter import Frame
from vox.runtime.executor.labels import PUBLIC, Taint, because, join_why, with_own
from vox.runtime.executor.values import ValueMismatch, from_json, render, resolve, to_json
from vox.runtime.providers.messages import (
    Message,
    ModelRequest,
    ModelResponse,
    TokenLogprob,
    ToolCall,
    ToolSpec,
    Usage,
)
from vox.runtime.providers.retry import ATTEMPTS, AttemptLog
from vox.runtime.tokens import count_request, reservation_cost, usage_cost

if TYPE_CHECKING:
    from vox.runtime.executor.run import Run

MAX_REPAIRS = 1  # a reply that does not fit the result type gets one request to fix it




def price_of(model: Model, usage: Usage) -> int:
    """What a call cost, from the usage the provider reported (cached input, and input written to
    the prompt cache, at their own prices; rounded up once, as the compiler's bound assumes)."""
    return usage_cost(model.price, usage)


# How an attempt of a model call was charged: from the usage the provider `reported`; its whole
# reservation (`reserved`: it may have been billed, but no usage was reported: a timeout after
# sending, a 5xx, a malformed 200, a stream cut short, a cancellation in flight, a 200 without
# usage); the runtime's own count of a stream it stopped (`counted`); or nothing (`none`: the
# failure proves nothing was billed). `reserved` and `counted` are not the provider's word: the
# run lists them among its unverified charges.
UNVERIFIED = ("reserved", "counted")


def attempt_charge(model: Model, estimate: dict, *, usage: Usage | None = None, error=None,
                   counted: bool = False) -> dict:
    """One attempt's charge, as journaled with the step (so a replay settles the same).

    ``estimate`` is the attempt's reservation (``cost_micros``, ``tokens``); ``usage`` what an
    answer reported; ``error`` the :class:`ProviderError` of a failed attempt; neither: an
    attempt cut off in flight.
    """
    if usage is not None and (usage.input_tokens or usage.output_tokens):
        return {"charged": "counted" if counted else "reported", "cost_micros": price_of(model, usage),
                "tokens": usage.input_tokens + usage.output_tokens}
    if error is not None and not getattr(error, "may_have_billed", True):
        return {"charged": "none", "cost_micros": 0, "tokens": 0, "error": str(error)}
    why = (str(error) if error is not None else "no usage reported" if usage is not None
           else "cancelled in flight")
    return {"charged": "reserved", "cost_micros": estimate["cost_micros"], "tokens": estimate["tokens"],
            "error" if error is not None else "why": why}


def charged_as(charges: list[dict]) -> str:
    """How a call as a whole was charged: its least verified attempt's way (``none``: nothing)."""
    ways = {c["charged"] for c in charges}
    return next((w for w in ("reserved", "counted", "reported") if w in ways), "none")


class _Derived:
    """What every call of one agent derives from the (frozen) plan the same way."""

    __slots__ = ("plan", "agent", "chain", "tools", "params", "signals", "halt")

    def __init__(self, plan: Plan, agent: Agent):
        self.plan, self.agent = plan, agent  # kept alive, so their ids stay theirs
        self.chain = (agent.model, *agent.fallback)
        self.tools = tuple(ToolSpec(name, f"tool `{name}`", plan.tools[name].params_schema) for name in agent.tools)
        self.params = {p.name: p.type for p in agent.params}
        self.signals = frozenset(agent.signals)
        self.halt = halting_check(plan, agent)


_DERIVED: dict[tuple[int, int], _Derived] = {}


def _derived(plan: Plan, agent: Agent) -> _Derived:
    hit = _DERIVED.get((id(plan), id(agent)))
    if hit is None or hit.plan is not plan or hit.agent is not agent:
        if len(_DERIVED) >= 1024:
            _DERIVED.clear()
        hit = _DERIVED[(id(plan), id(agent))] = _Derived(plan, agent)
    return hit


LOGPROB_SIGNALS = frozenset(NEEDS["logprobs"])  # requests ask for log-probabilities when a gate reads one


class AgentCall:
    def __init__(self, run: "Run", agent: Agent, args: dict, scope: BudgetScope, step: str,
                 taints: dict[str, Taint] | None = None, pc: Taint = PUBLIC):
        self.run = run
        self.plan = run.plan
        self.agent = agent
        self.args = args
        self.scope = scope
        self.step = step
        derived = _derived(self.plan, agent)
        self.chain = derived.chain
        self.model_index = 0
        self.model_calls = 0
        self.tool_calls = 0
        self.observations: list[str] = []
        self.tools = derived.tools
        self.derived = derived
        # The label monitor: everything the model has seen (its prompt, the results of its tools,
        # the conditions around the call) goes with every request, tool call and judge.
        self.monitor = run.labels
        if self.monitor.on:
            self.seen, self.seen_why = self.prompt_labels(taints or {}, pc)

    def prompt_labels(self, taints: dict[str, Taint], pc: Taint) -> tuple[frozenset[str], tuple]:
        """The labels of the parts of the arguments the prompt and system prompt read."""
        mon = self.monitor
        params = {}
        for p in self.agent.params:
            declared = frozenset(p.labels) - {"public"}
            v = taints.get(p.name)
            origin = f"parameter `{p.name}` of `{self.agent.name}` is declared so"
            params[p.name] = mon.typed(p.type, declared, origin) if v is None else \
                with_own(v, declared, because(declared, origin), p.type if v.shape is not None else None)
        labels, whys = set(pc.own), [pc.why]
        templates = [t for t in (self.agent.prompt, self.agent.system) if t is not None]
        reads = [part.path for t in templates for part in t.parts if part.part == "placeholder"] if templates \
            else [(p.name,) for p in self.agent.params]  # no prompt at all: it may read anything
        for path in reads:
            value = params.get(path[0])
            if value is None:
                continue
            for name in path[1:]:
                value = mon.get_field(value, name)
            own, why = mon.whole(value)
            labels |= own
            whys.append(why)
        return frozenset(labels), join_why(*whys)

    def output_taint(self) -> Taint:
        """What the answer carries: what the model has seen, and what the result type declares."""
        if not self.monitor.on:
            return PUBLIC
        declared = frozenset(self.agent.result_labels) - {"public"}
        return Taint(self.seen | declared, self.agent.result, None,
                     join_why(self.seen_why, because(declared, f"`{self.agent.name}`'s result is labelled so")))

    # ---- the loop --------------------------------------------------------------------------------

    async def answer(self) -> Any:
        base = self.opening()
        messages = list(base)
        repairs = 0
        retried: dict[tuple[str, int], int] = {}
        while True:
            response = await self.model_call(messages)
            if response.finish == "halted":
                gate, index, check, _ = self.derived.halt
                self.run.emit("gate_halted_stream", step=self.step, gate=gate, check=index)
                action = "halt" if check.action == "ask_human" else check.action  # nothing to show a person
                if action == "retry" and retried.get((gate, index), 0) < check.retries:
                    retried[(gate, index)] = retried.get((gate, index), 0) + 1
                    continue  # the same request again: a fresh sample
                if action == "fallback" and self.model_index + 1 < len(self.chain):
                    self.model_index += 1
                    messages = list(base)
                    continue
                where = f"gate `{gate}`, check {index + 1} (line {check.line})"
                raise (Abstained if action in ("fallback", "abstain") else GateHalted)(
                    f"`{self.agent.name}`'s answer was stopped mid-stream: its confidence fell below {where}",
                    self.step)
            if response.tool_calls:
                messages.append(Message("assistant", response.text, response.tool_calls))
                for call in response.tool_calls:
                    messages.append(await self.tool_call(call))
                continue
            try:
                value = self.read_output(response.text)
            except (ValueMismatch, ValueError) as problem:
                if repairs >= MAX_REPAIRS:
                    raise InvalidOutput(f"`{self.agent.name}`'s answer does not fit `{_type_name(self.agent)}`: "
                                        f"{problem}", self.step) from None
                repairs += 1
                messages += [Message("assistant", response.text or "(empty)"),
                             Message("user", f"That answer is not valid: {problem}. Reply again with JSON that "
                                             "matches the schema exactly.")]
                continue
            self.check_receipts(value)
            failed = await self.gates(value, response)
            if failed is None:
                return value
            gate, index, check = failed
            where = f"gate `{gate}`, check {index + 1} (line {check.line})"
            if check.action == "retry":
                used = retried.get((gate, index), 0)
                if used < check.retries:
                    retried[(gate, index)] = used + 1
                    messages += [Message("assistant", response.text),
                                 Message("user", "That answer did not pass a quality check. Reconsider and answer "
                                                 "again, following the instructions exactly.")]
                    self.run.emit("gate_retry", step=self.step, gate=gate, check=index)
                    continue
                raise GateHalted(f"`{self.agent.name}` still failed {where} after {used} retries", self.step)
            if check.action == "fallback":
                self.model_index += 1
                if self.model_index >= len(self.chain):
                    raise Abstained(f"`{self.agent.name}` failed {where} on its last model", self.step)
                self.run.emit("gate_fallback", step=self.step, gate=gate, model=self.chain[self.model_index])
                messages = list(base)
                continue
            if check.action == "ask_human":
                await self.run.approve_gate(self.agent.name, gate, self.step, to_json(value, self.agent.result, self.plan.types))
                return value
            if check.action == "abstain":
                raise Abstained(f"`{self.agent.name}` abstained: {where}", self.step)
            raise GateHalted(f"`{self.agent.name}` failed {where}", self.step)

    def opening(self) -> list[Message]:
        """The system prompt (if any) and the rendered prompt; the prompt is a stable prefix.
        Both are the first of the agent's `observations`, before the results of its tools."""
        out = []
        if self.agent.system is not None:
            out.append(Message("system", self.fill(self.agent.system), cache=True))
        prompt = self.fill(self.agent.prompt) if self.agent.prompt is not None else ""
        out.append(Message("user", prompt, cache=bool(self.agent.tools)))
        if not self.observations:
            self.observations.extend(m.content for m in out)
        return out

    def fill(self, template) -> str:
        parts = []
        params = self.derived.params
        for part in template.parts:
            if part.part == "text":
                parts.append(part.text)
                continue
            value, ty = self.args.get(part.path[0]), params.get(part.path[0])
            for name in part.path[1:]:
                definition = resolve(ty, self.plan.types)
                ty = next((f.type for f in definition.fields if f.name == name), None) \
                    if isinstance(definition, RecordDef) else None
                value = None if value is None else value.get(name)
            parts.append("none" if value is None else render(value, ty, self.plan.types))
        return "".join(parts)

    # ---- model calls ------------------------------------------------------------------------------

    @property
    def model(self) -> Model:
        return self.plan.models[self.chain[self.model_index]]

    def request(self, messages, model: Model, *, schema=None, name=None, tools=None, temperature=None) -> ModelRequest:
        signals = self.derived.signals
        logprobs = bool(signals & LOGPROB_SIGNALS) and "logprobs" in model.capabilities
        return ModelRequest(
            model=model.model_id,
            messages=tuple(messages),
            max_output=model.max_output,
            tools=self.tools if tools is None else tools,
            output_schema=self.agent.output_schema if schema is None else schema,
            output_name=name or self.agent.name,
            temperature=self.agent.temperature if temperature is None else temperature,
            logprobs=logprobs,
            top_logprobs=self.agent.top_logprobs if logprobs else 0,
            stream=logprobs and self.derived.halt is not None and schema is None,
            metadata={"run": self.run.run_id, "agent": self.agent.name, "step": self.step},
        )

    async def model_call(self, messages, **overrides) -> ModelResponse:
        """One model call on the current model, falling back along the chain when a model fails."""
        while True:
            model = self.model
            try:
                return await self.call_model(model, self.request(messages, model, **overrides))
            except ModelFailed as failure:
                if self.model_index + 1 >= len(self.chain):
                    raise
                self.model_index += 1
                self.run.emit("fallback", step=self.step, failed=model.name, error=failure.message,
                              model=self.chain[self.model_index])

    async def call_model(self, model: Model, request: ModelRequest, judging: bool = False) -> ModelResponse:
        if self.monitor.on:  # before anything is reserved or sent
            if judging:  # a judge reads the answer
                labels, why = self.monitor.whole(self.output_taint())
                what = f"judging `{self.agent.name}`'s answer"
            else:
                labels, why, what = self.seen, self.seen_why, f"for `{self.agent.name}`"
            self.monitor.check_model(labels, why, model.name, what, f"{self.step}/model[{self.model_calls}]")
        provider = self.plan.providers[model.provider]
        prompt = count_request(model.model_id, provider.protocol, request.messages, request.tools,
                               request.output_schema)
        name = f"{self.step}/model[{self.model_calls}]"
        if model.context is not None and prompt + request.max_output > model.context:
            # A provider refuses such a request unbilled; the budget bounds every call by its model's
            # context, so it is never sent (nothing reserved, nothing charged): the next model tries.
            raise ModelFailed(f"`{model.name}` cannot take this call: its prompt is {prompt:,} tokens and its reply "
                              f"may be {request.max_output:,}, more than the {model.context:,}-token context", name)
        # the prompt at the dearest price a prompt token may be billed at (a cache write, say)
        worst = reservation_cost(model.price, prompt, request.max_output)
        self.model_calls += 1
        try:
            reservation = self.scope.reserve(cost_micros=worst, tokens=prompt + request.max_output, model_calls=1,
                                             what=f"a call of `{model.name}` for `{self.agent.name}`")
        except BudgetExceeded as e:
            raise BudgetRefused(str(e), name) from None
        runwide = self.run.services.runwide
        if runwide is not None and runwide.rates:
            try:
                await runwide.throttle(name, prompt + request.max_output)
            except BaseException:
                reservation.release()  # cancelled before anything was sent
                raise
        self.run.emit("model_start", step=name, model=model.name, reserved=worst)
        estimate = {"cost_micros": worst, "tokens": prompt + request.max_output}
        log = AttemptLog(lambda n, error: _reserve_retry(reservation, estimate))
        try:
            data = await self.run.services.journal.step(
                name, lambda: self._complete(model, request, prompt, estimate, log))
        except BaseException:
            # cancelled (a failing `par` sibling, a `wall` deadline) or stopped: an attempt that was
            # sent may have been billed, so it is charged its reservation, never nothing
            self.settle(model, name, reservation, estimate, attempt_charges(log, model, estimate), log,
                        cancelled=True)
            raise
        charges = data.get("charges")
        if charges is None:  # a step journaled before attempts were charged: its answer, or nothing
            usage = Usage(**data["usage"]) if "error" not in data else None
            charges = [attempt_charge(model, estimate, usage=usage)] if usage is not None else []
        self.settle(model, name, reservation, estimate, charges, log, data=data)
        if "error" in data:
            raise ModelFailed(f"`{model.name}` failed: {data['error']}", name)
        return response_from_dict(data)

    def settle(self, model: Model, name: str, reservation, estimate: dict, charges: list[dict], log,
               data: dict | None = None, cancelled: bool = False) -> None:
        """Settle a model call to the sum of its attempts' charges (derived from the journaled
        step, or, for a call cut off, from what was sent), and report the unverified ones."""
        for _ in range(len(charges) - 1 - log.allowed):  # a replay: reserve the retries as the run did
            try:
                reservation.grow(**estimate)
            except BudgetExceeded:
                break  # settled anyway (money spent is spent): an overshoot is recorded
        cost = sum(c["cost_micros"] for c in charges)
        tokens = sum(c["tokens"] for c in charges)
        if any(c["charged"] != "none" for c in charges):
            reservation.settle(cost, tokens)
        else:
            reservation.release()  # nothing was sent, or every attempt proved it was not billed
        for attempt, charge in enumerate(charges, 1):
            if charge["charged"] in UNVERIFIED:
                self.scope.log.charge({"step": name, "model": model.name, "attempt": attempt,
                                       **charge, "cancelled": cancelled})
        if self.run.watched:
            event = {"cost": cost, "tokens": tokens, "charged": charged_as(charges), "attempts": len(charges)}
            if data is not None and "error" not in data:
                event["usage"] = data["usage"]
            elif data is not None:
                event["error"] = data["error"]
            else:
                event["cancelled"] = True
            self.run.emit("model_end", step=name, model=model.name, **event)

    async def _complete(self, model: Model, request: ModelRequest, prompt: int, estimate: dict, log) -> dict:
        """The durable step: the provider's answer, or its failure, as JSON, with ``charges``:
        what each attempt may have cost (see :func:`attempt_charge`), so that a replay settles
        from the journal exactly as the run did, and ``charged``, how the call as a whole was.

        A streamed answer is watched by the agent's halting check; a halted one is charged its
        whole prompt and every token received (providers report no usage for a stream cut short)."""
        from vox.runtime.providers import ProviderError

        observer = None
        if request.stream and self.derived.halt is not None:
            observer = ConfidenceWatch(self.derived.halt[3])
        token = ATTEMPTS.set(log)
        try:
            response = await self.run.services.models.complete(model.name, request, observer)
        except ProviderError as e:
            charges = attempt_charges(log, model, estimate) or [attempt_charge(model, estimate, error=e)]
            why = "; not tried again: its budget cannot cover another attempt" if log.declined else ""
            return {"error": str(e) + why, "charges": charges, "charged": charged_as(charges)}
        finally:
            ATTEMPTS.reset(token)
        data = response_to_dict(response)
        usage, counted = response.usage, response.finish == "halted"
        if counted:
            usage = data["usage"]
            usage["input_tokens"] = max(usage["input_tokens"], prompt)
            usage["output_tokens"] = max(usage["output_tokens"], len(response.logprobs or ()), observer.tokens)
            usage = Usage(**usage)
        charges = attempt_charges(log, model, estimate)[:-1]  # the failed attempts before the answer
        charges.append(attempt_charge(model, estimate, usage=usage, counted=counted))
        data["charges"], data["charged"] = charges, charged_as(charges)
        return data

    # ---- tools -----------------------------------------------------------------------------------

    async def tool_call(self, call: ToolCall) -> Message:
        """Run a tool the model asked for; its result (or why it failed) goes back as a message."""
        tool = self.plan.tools.get(call.name)
        step = f"{self.step}/tool[{self.tool_calls}].{call.name}"
        self.tool_calls += 1
        if tool is None or call.name not in self.agent.tools:
            return _tool_message(call, {"error": f"there is no tool `{call.name}`"}, True)
        try:
            args = {p.name: from_json(call.arguments.get(p.name), p.type, self.plan.types, f"$.{p.name}")
                    for p in tool.params}
            unknown = sorted(set(call.arguments) - {p.name for p in tool.params})
            if unknown:
                raise ValueMismatch(f"$.{unknown[0]}", "no such parameter")
        except ValueMismatch as e:
            return _tool_message(call, {"error": f"invalid arguments: {e}"}, True)
        if self.monitor.on:  # the model writes the arguments: they carry everything it has seen
            self.monitor.check(self.seen, self.seen_why, f"tool `{tool.name}` (called by `{self.agent.name}`'s model)",
                               tool.clearance, step)
        try:
            value, receipt = await self.run.tool_step(tool, args, self.scope, step)
        except ToolFailed as e:
            return _tool_message(call, {"error": e.message}, True)
        if self.monitor.on:  # the result goes back to the model
            own, why = self.monitor.whole(self.monitor.typed(tool.result, tool.result_labels,
                                                             f"`{tool.name}` returns data labelled so"))
            self.seen, self.seen_why = self.seen | own, join_why(self.seen_why, why)
        content = {"result": to_json(value, tool.result, self.plan.types)}
        if receipt:
            content["receipt"] = receipt
        self.observations.append(json.dumps(content["result"], ensure_ascii=False))
        return _tool_message(call, content, False)

    # ---- the answer ------------------------------------------------------------------------------

    def read_output(self, text: str) -> Any:
        data = json.loads(text) if text.strip() else None
        if self.agent.output_wrapped:
            if not isinstance(data, dict) or "value" not in data:
                raise ValueMismatch("$", 'expected an object {"value": ...}')
            data = data["value"]
        return from_json(data, self.agent.result, self.plan.types)

    def check_receipts(self, value: Any) -> None:
        """Every receipt the answer names must be in the run's ledger, for the right tool."""
        for receipt, tool in _receipts(value, self.agent.result, self.plan.types):
            if not self.run.receipt_known(receipt, tool):
                raise FabricatedReceipt(
                    f"`{self.agent.name}` claims receipt {receipt!r} of `{tool}`, but no call of `{tool}` in this "
                    "run was signed with it: the model claimed an action that did not happen", self.step)

    async def gates(self, value: Any, response: ModelResponse):
        """The first failing check as (gate, index, check), or None when every check passes."""
        signals = Signals(self, value, response)
        for name in self.agent.gates:
            gate = self.plan.gates[name]
            frame = Frame(None, {gate.param.name: value} if gate.param else {}, self.scope,
                          signals=signals.read)
            for index, check in enumerate(gate.checks):
                if not await self.run.interpreter.eval(check.cond, frame):
                    self.run.emit("gate_failed", step=self.step, gate=name, check=index, action=check.action)
                    return name, index, check
        return None


class Signals:
    """The runtime signals a gate reads, for one answer (computed on first use)."""

    def __init__(self, call: AgentCall, value: Any, response: ModelResponse):
        self.call = call
        self.value = value
        self.response = response

    async def read(self, name: str, args: dict) -> Any:
        """The value of signal ``name`` (compiler/signals.py): the method of that name, called with
        the arguments the plan spells out."""
        if name not in SIGNALS:
            raise GateHalted(f"unknown signal `{name}`", self.call.step)
        return await getattr(self, name)(**args)

    # ---- one method per signal of compiler/signals.py ---------------------------------------------

    async def confidence(self) -> float:
        return confidence(self.response.logprobs)

    async def entropy(self, window: int) -> float:
        return entropy(self.response.logprobs, window)

    async def receipts_ok(self) -> bool:
        return True  # the answer's receipts were verified before the gates ran

    async def observations(self) -> list[str]:
        return list(self.call.observations)

    async def grounded(self, text: str, sources: list[str]) -> bool:
        return grounded(text, sources)

    async def consistency(self, n: int) -> float:
        """The share of ``n`` answers (this one and n-1 fresh samples) equal to this one."""
        call = self.call
        answer = json.dumps(to_json(self.value, call.agent.result, call.plan.types), sort_keys=True)
        same = 1
        for _ in range(n - 1):
            sample = await call.model_call(call.opening(), tools=())
            try:
                other = call.read_output(sample.text)
            except (ValueMismatch, ValueError):
                continue
            same += json.dumps(to_json(other, call.agent.result, call.plan.types), sort_keys=True) == answer
        return same / n

    async def judge(self, model: str, rubric: str) -> bool:
        call = self.call
        judge = call.plan.models[model]
        answer = json.dumps(to_json(self.value, call.agent.result, call.plan.types), ensure_ascii=False)
        # the request the compiler's budget analysis estimated (compiler/requests.py)
        messages = [Message("system", JUDGE_SYSTEM), Message("user", judge_prompt(rubric, answer))]
        request = call.request(messages, judge, schema=JUDGE_SCHEMA, name="verdict", tools=(), temperature=0)
        metadata = {**request.metadata, "agent": f"{call.agent.name}.judge"}
        request = ModelRequest(**{**asdict_shallow(request), "logprobs": False, "top_logprobs": 0, "metadata": metadata})
        response = await call.call_model(judge, request, judging=True)
        try:
            return bool(json.loads(response.text)["pass"])
        except (ValueError, KeyError, TypeError):
            return False


def confidence(logprobs: tuple[TokenLogprob, ...] | None) -> float:
    """exp of the mean token log-probability: 1.0 is certain. No logprobs: 0 (fail closed)."""
    if not logprobs:
        return 0.0
    return math.exp(sum(t.logprob for t in logprobs) / len(logprobs))


def entropy(logprobs: tuple[TokenLogprob, ...] | None, window: int) -> float:
    """The highest mean token entropy (nats) over any ``window`` consecutive tokens, from each
    token's top alternatives. No logprobs: infinity (fail closed)."""
    if not logprobs:
        return math.inf
    per_token = []
    for t in logprobs:
        probs = [math.exp(lp) for _, lp in t.top] or [math.exp(t.logprob)]
        total = sum(probs)
        per_token.append(-sum(p / total * math.log(p / total) for p in probs if p > 0))
    window = max(1, min(window, len(per_token)))
    return max(sum(per_token[i:i + window]) / window for i in range(len(per_token) - window + 1))


HALT_AFTER_TOKENS = 32  # a stream is judged once this many tokens have arrived


def halting_check(plan: Plan, agent: Agent):
    """The gate check that can stop a streamed answer early: the first `confidence >= X` (or `>`)
    among the agent's gates, as (gate, index, check, X); None if there is none."""
    from vox.compiler.plan.ir import BinaryExpr, CallExpr, LitExpr

    for name in agent.gates:
        for index, check in enumerate(plan.gates[name].checks):
            cond = check.cond
            if (isinstance(cond, BinaryExpr) and cond.op in (">=", ">") and isinstance(cond.left, CallExpr)
                    and cond.left.kind == "signal" and cond.left.name == "confidence"
                    and isinstance(cond.right, LitExpr) and isinstance(cond.right.value, (int, float))):
                return name, index, check, float(cond.right.value)
    return None


class ConfidenceWatch:
    """Stops a stream once, after :data:`HALT_AFTER_TOKENS` tokens, the running confidence (exp of
    the mean log-probability so far) is below ``threshold``: the answer would most likely fail
    the check anyway, and the output tokens not yet generated are never paid for."""

    def __init__(self, threshold: float):
        self.floor = math.log(threshold) if threshold > 0 else -math.inf
        self.total = 0.0
        self.tokens = 0

    def __call__(self, delta) -> bool:
        if delta.restart:  # the provider retried the stream from the start
            self.total, self.tokens = 0.0, 0
            return True
        for t in delta.logprobs:
            self.total += t.logprob
            self.tokens += 1
        return self.tokens < HALT_AFTER_TOKENS or self.total / self.tokens >= self.floor


_CLAIM = re.compile(r"[^\W_]*\d[\w.,/-]*\w|\d")  # a token with a digit: an amount, a date, an id
_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")


def grounded(text: str, sources: list[str]) -> bool:
    """Whether every number and every id-like token of ``text`` (a word with a digit in it: an
    amount, a date, an order number) also occurs in ``sources``; numbers compare by value, so
    `49.90` matches `49.9`. This catches the hallucinations that cost money (an invented amount,
    order or date); it does not judge paraphrase, for which gates use `judge`.

    >>> grounded("A refund of $49.90 for order A-17.", ['{"total": "49.9", "id": "A-17"}'])
    True
    >>> grounded("A refund of $59.90.", ['{"total": "49.9"}'])
    False
    """
    known = " ".join(str(s) for s in sources).lower()
    numbers = {_value(n) for n in _NUMBER.findall(known)}
    for claim in _CLAIM.findall(text.lower()):
        claim = claim.rstrip(".,")
        if claim in known:
            continue
        parts = _NUMBER.findall(claim)
        if parts and _NUMBER.fullmatch(claim) and _value(claim) in numbers:
            continue
        return False
    return True


def _value(number: str):
    from decimal import Decimal

    return Decimal(number.replace(",", ""))


def _receipts(value: Any, ty, types) -> list[tuple[str, str]]:
    """Every (receipt id, tool) in ``value`` of type ``ty``."""
    if value is None:
        return []
    t = resolve(ty, types)
    if isinstance(t, OptionalType):
        return _receipts(value, t.inner, types)
    if isinstance(t, ReceiptType):
        return [(value, t.tool)]
    if isinstance(t, ListType):
        return [r for v in value for r in _receipts(v, t.elem, types)]
    if isinstance(t, RecordDef):
        return [r for f in t.fields for r in _receipts(value.get(f.name), f.type, types)]
    return []


def _tool_message(call: ToolCall, content: dict, is_error: bool) -> Message:
    return Message("tool", json.dumps(content, ensure_ascii=False), tool_call_id=call.id, tool_name=call.name,
                   is_error=is_error)


def _type_name(agent: Agent) -> str:
    return getattr(agent.result, "name", None) or getattr(agent.result, "kind", "result")


def attempt_charges(log, model: Model, estimate: dict) -> list[dict]:
    """The charge of every attempt ``log`` recorded (an answered one from its usage)."""
    out = []
    for attempt in log.attempts:
        if attempt.state == "answered":
            out.append(attempt_charge(model, estimate, usage=attempt.response.usage))
        elif attempt.state == "failed":
            out.append(attempt_charge(model, estimate, error=attempt.error))
        else:
            out.append(attempt_charge(model, estimate))
    return out


def _reserve_retry(reservation, estimate: dict) -> bool:
    """Reserve one more attempt of a call (a retry); False, and no retry, when it does not fit."""
    try:
        reservation.grow(**estimate)
    except BudgetExceeded:
        return False
    return True


def asdict_shallow(request: ModelRequest) -> dict:
    return {name: getattr(request, name) for name in request.__dataclass_fields__}


def usage_to_dict(usage: Usage) -> dict:
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "cached_input_tokens": usage.cached_input_tokens, "cache_creation_tokens": usage.cache_creation_tokens}


def response_to_dict(response: ModelResponse) -> dict:
    """``dataclasses.asdict(response)``, written out (it runs once per model call; asdict's
    generic recursion and deep copies cost more than the rest of the step's bookkeeping)."""
    if type(response) is not ModelResponse:  # a subclass (a test's) may carry more fields
        return asdict(response)
    logprobs = response.logprobs
    return {
        "text": response.text,
        "tool_calls": tuple({"id": c.id, "name": c.name, "arguments": copy.deepcopy(c.arguments),
                             "raw_arguments": c.raw_arguments} for c in response.tool_calls),
        "usage": usage_to_dict(response.usage),
        "finish": response.finish,
        "model": response.model,
        "logprobs": None if logprobs is None else tuple(
            {"token": t.token, "logprob": t.logprob, "top": tuple(tuple(x) for x in t.top)} for t in logprobs),
        "provider_id": response.provider_id,
    }


def response_from_dict(data: dict) -> ModelResponse:
    """A journaled response back as a :class:`ModelResponse`."""
    logprobs = data.get("logprobs")
    return ModelResponse(
        text=data.get("text", ""),
        tool_calls=tuple(ToolCall(c["id"], c["name"], c["arguments"], c.get("raw_arguments", ""))
                         for c in data.get("tool_calls", ())),
        usage=Usage(**data.get("usage", {})),
        finish=data.get("finish", "stop"),
        model=data.get("model", ""),
        logprobs=None if logprobs is None else tuple(
            TokenLogprob(t["token"], t["logprob"], tuple(tuple(x) for x in t.get("top", ()))) for t in logprobs),
        provider_id=data.get("provider_id", ""),
    )
