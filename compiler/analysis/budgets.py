"""Budgets (V2): the worst case of every agent and flow, and whether it fits the caps.

An agent's **bound** is what a caller must be able to afford for one call of it. In each dimension
(cost, tokens, wall time, model calls, tool calls) it is the agent's declared cap where there is one
(the runtime reserves the cap when the call starts, and never lets the agent exceed it), and
otherwise what its other caps and its models' prices imply:

* model calls: the `steps` cap (every model call counts, including gate retries and samples);
* tokens: `steps` × :data:`MODEL_ATTEMPTS` × the largest context window in the chain (every
  attempt of a call that the provider layer retries may be billed);
* cost: the tokens at the chain's (and its judges') dearest prices, with at most `max_output`
  output tokens per attempt (for a model that declares none, the default the plan carries and the
  runtime sends: see compiler/defaults.py), plus a micro-dollar of rounding per attempt, plus
  `tool_calls` × the dearest tool (a tool's `cost` per attempt, and each of its `retries` is
  another attempt).

A flow's derived bound is its body's worst path: sequential calls add, `par` branches add (wall
time takes the longest branch), `if` takes the larger branch, `for ... max N` multiplies (so does
the length of a list the program fixes), and recursion follows the runtime's rule: a call of a
flow is refused when `depth` activations of it are already on the stack, counted per flow (see
:meth:`_Budgets._cycle_levels`). A flow's bound is its cap where it declares one, else that; a
call of a capped flow counts its caps, since the runtime reserves them when the call starts.

>>> from vox.compiler.api import check_source
>>> r = check_source("x.vox", '''
... model m = p/"m" { context: 8_000, max_output: 500, price: { input: $1, output: $2 } }
... provider p = openai { key: env("K") }
... agent a(q: str) -> str { model: m, budget: { steps: 2, tokens: 4_000 }, prompt: "{q}" }
... flow f(q: str) -> str {
...   budget: { cost: $1 }
...   return a(q: q)
... }
... ''')
>>> r.diagnostics
()
>>> b = r.analysis.budgets.bounds
>>> b["a"].bound.cost_micros, b["a"].bound.tokens, b["f"].derived.cost_micros  # 8 attempts: all 4_000 as output
(8008, 4000, 8008)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from vox.compiler import defaults, requests
from vox.compiler.analysis.results import Bound, BoundItem, BudgetReport, CallableBound, GateReport
from vox.compiler.diagnostics.model import DiagnosticSink, Fix, Label, TextEdit, replace_fix
from vox.compiler.hir import nodes as h
from vox.compiler.hir.walk import calls_in_block, children
from vox.compiler.source import Span
from vox.compiler.units import cost_of_tokens, format_duration, format_money, format_tokens

# Dimension of a bound → the cap that limits it, and how to write a value of it.
CAP_OF = {"cost_micros": "cost", "tokens": "tokens", "wall_ms": "wall", "model_calls": "steps",
          "tool_calls": "tool_calls"}
_SHOW = {"cost_micros": format_money, "tokens": format_tokens, "wall_ms": format_duration,
         "model_calls": format_tokens, "tool_calls": format_tokens}
_WORD = {"cost_micros": "cost", "tokens": "tokens", "wall_ms": "wall time", "model_calls": "model calls",
         "tool_calls": "tool calls"}

BYTES_PER_TOKEN = requests.BYTES_PER_TOKEN  # static estimate; the runtime counts with the model's tokenizer
MODEL_ATTEMPTS = 4
"""Attempts one model call may make, the first included: the provider layer retries a failed call
up to this many times in all (``runtime/providers/retry.py``, ``MAX_ATTEMPTS``; a test keeps the
two equal), and every attempt that may have been billed is charged, each reserving its prompt and
its whole `max_output`. A call is one of the agent's `steps` however many attempts it takes."""
ROUNDING_MICROS = 1
"""What rounding may add to one attempt's charge: the runtime rounds each attempt's cost up to the
micro-dollar once (``runtime/tokens.py``), where a bound rounds its total once."""
TOOL_RETRY_DELAY_MS = 200
"""The runtime waits this long × n after a tool's failed attempt n before trying again
(``runtime/executor/tools.py``, ``RETRY_DELAY_MS``; a test keeps the two equal)."""
MAX_UNROLL = 10_000  # recursion deeper than this (in activations of one cycle) is not unrolled
MAX_STATES = 20_000  # stack states of one recursion cycle followed exactly; beyond, a coarser bound


def estimate_tokens(text: str) -> int:
    """Tokens of the literal text of a prompt, at 4 bytes per token (rounded up).

    >>> estimate_tokens("Classify this ticket."), estimate_tokens("")
    (6, 0)
    """
    return requests.estimate_tokens(text)


def input_price(price: h.Price) -> int:
    """The dearest price one prompt token may be billed at: input, reading it from the cache, or
    writing it there.

    >>> input_price(h.Price(1_000_000, 2_000_000, 100_000, cache_write=1_250_000))
    1250000
    """
    return max(price.input, price.cached_input or 0, price.cache_write or 0)


def tool_wall_ms(timeout_ms: int | None, retries: int) -> int:
    """The longest one call of a tool may take: every attempt its whole `timeout` (the default
    where it declares none), and the runtime's wait before each retry (:data:`TOOL_RETRY_DELAY_MS`
    × n after attempt n).

    >>> tool_wall_ms(1_000, 2), tool_wall_ms(None, 0)
    (3600, 30000)
    """
    return defaults.tool_timeout_ms(timeout_ms) * (1 + retries) + TOOL_RETRY_DELAY_MS * retries * (retries + 1) // 2


def cheapest_token(price: h.Price) -> int:
    """The least one token (input, cached input, cache write or output) may be billed at."""
    return min(p for p in (price.input, price.output, price.cached_input, price.cache_write) if p is not None)


def max_output(model: h.Model) -> int:
    """What every call of ``model`` asks for and reserves for its reply: its `max_output`, or the
    default the plan carries for it (:func:`vox.compiler.defaults.max_output`)."""
    return defaults.max_output(model.max_output, model.context)


def _if_default(model: h.Model) -> str:
    """Said after a model's `max_output` where it is the default, not declared."""
    return "" if model.max_output is not None else f" (the default `max_output`: `{model.name}` declares none)"


def template_tokens(template: h.Template | None) -> int:
    """The estimate for a template's literal parts; placeholders count nothing (a lower bound)."""
    if template is None:
        return 0
    return estimate_tokens("".join(p for p in template.parts if isinstance(p, str)))


# ---- bound arithmetic -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Acc:
    """A bound under construction. ``None`` is unbounded; wall time keeps the part that is known
    (``wall``) apart from whether some part is open (a callee without a wall limit), because only
    the known part can be checked against a caller's `wall` cap."""

    cost: int | None = 0
    tokens: int | None = 0
    wall: int = 0
    wall_open: bool = False
    calls: int | None = 0
    tool_calls: int | None = 0

    def __add__(self, o: "_Acc") -> "_Acc":
        return _Acc(_add(self.cost, o.cost), _add(self.tokens, o.tokens), self.wall + o.wall,
                    self.wall_open or o.wall_open, _add(self.calls, o.calls), _add(self.tool_calls, o.tool_calls))

    def times(self, n: int) -> "_Acc":
        return _Acc(_mul(self.cost, n), _mul(self.tokens, n), self.wall * n, self.wall_open and n > 0,
                    _mul(self.calls, n), _mul(self.tool_calls, n))

    def join(self, o: "_Acc") -> "_Acc":
        """The larger of two alternatives, per dimension."""
        return _Acc(_max(self.cost, o.cost), _max(self.tokens, o.tokens), max(self.wall, o.wall),
                    self.wall_open or o.wall_open, _max(self.calls, o.calls), _max(self.tool_calls, o.tool_calls))

    def beside(self, o: "_Acc") -> "_Acc":
        """Two branches of a `par`: spend adds, wall time is the longer one."""
        return replace(self + o, wall=max(self.wall, o.wall))

    def value(self, dim: str) -> int | None:
        return {"cost_micros": self.cost, "tokens": self.tokens, "wall_ms": self.wall,
                "model_calls": self.calls, "tool_calls": self.tool_calls}[dim]

    def is_zero(self) -> bool:
        return not (self.cost or self.tokens or self.wall or self.wall_open or self.calls or self.tool_calls) \
            and None not in (self.cost, self.tokens, self.calls, self.tool_calls)

    def bound(self) -> Bound:
        return Bound(self.cost, self.tokens, None if self.wall_open else self.wall, self.calls, self.tool_calls)

    @staticmethod
    def of(b: Bound) -> "_Acc":
        return _Acc(b.cost_micros, b.tokens, b.wall_ms or 0, b.wall_ms is None, b.model_calls, b.tool_calls)


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


def _mul(a: int | None, n: int) -> int | None:
    return 0 if n == 0 else (None if a is None else a * n)


def _max(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else max(a, b)


def _caps_dims(caps: h.Caps) -> dict[str, int]:
    values = {"cost_micros": caps.cost, "tokens": caps.tokens, "wall_ms": caps.wall,
              "model_calls": caps.steps, "tool_calls": caps.tool_calls}
    return {d: v for d, v in values.items() if v is not None}


# ---- the analysis -----------------------------------------------------------------------------------


def analyse_budgets(program: h.Program, gates: GateReport, sink: DiagnosticSink) -> BudgetReport:
    """Bounds of every agent and flow, with V2 diagnostics for those that cannot fit."""
    analysis = _Budgets(program, gates, sink)
    for agent in program.agents.values():
        analysis.agent(agent)
    for group in _flow_groups(program):
        analysis.flow_group(group)
    return BudgetReport(dict(analysis.bounds))


class _Budgets:
    def __init__(self, program: h.Program, gates: GateReport, sink: DiagnosticSink):
        self.program = program
        self.gates = gates
        self.sink = sink
        self.bounds: dict[str, CallableBound] = {}
        self.unpriced: dict[str, str] = {}  # agent → a model of its chain without a price
        self.broken: set[str] = set()  # flows left unbounded by an error already reported (V2008, V2010)
        self.cycle: dict[str, frozenset[str]] = {}  # flow → the flows of its recursion cycle

    # ---- agents --------------------------------------------------------------------------------

    def agent(self, a: h.Agent) -> None:
        chain = [self.program.models[m] for m in a.chain if m in self.program.models]
        judges = [self.program.models[m] for m in self.gates.judges.get(a.name, ()) if m in self.program.models]
        tools = [self.program.tools[t] for t in a.tools if t in self.program.tools]
        caps = a.caps
        served = chain + judges
        calls = caps.steps
        tool_calls = caps.tool_calls if caps.tool_calls is not None else (0 if not tools else None)
        contexts = [m.context for m in served]
        tokens = caps.tokens
        if tokens is None and calls is not None and served and None not in contexts:
            # every attempt of a call may be billed, each at most a whole context window
            tokens = calls * MODEL_ATTEMPTS * max(contexts)
        unpriced = [m for m in served if m.price is None]
        if caps.tokens is None and caps.cost is not None and served and not unpriced:
            # Every token is billed at least the cheapest price of a model that may spend it, and the
            # runtime holds the agent to its cost cap: the cap bounds the tokens too.
            cheapest = min(cheapest_token(m.price) for m in served)
            if cheapest > 0:
                by_cost = caps.cost * 1_000_000 // cheapest
                tokens = by_cost if tokens is None else min(tokens, by_cost)
        if unpriced:
            self.unpriced[a.name] = unpriced[0].name
        model_cost = None if unpriced or not served else _model_cost(served, tokens, calls)
        attempt = max((defaults.tool_cost_micros(t.cost_micros) * (1 + t.retries) for t in tools), default=0)
        tool_cost = 0 if attempt == 0 else (None if tool_calls is None else tool_calls * attempt)
        derived = Bound(_add(model_cost, tool_cost), tokens, None, calls, tool_calls)
        declared = _caps_dims(caps)
        bound = Bound(**{d: declared.get(d, getattr(derived, d)) for d in Bound.DIMENSIONS})
        on = ", ".join(m.name for m in chain) + "".join(f" (+ judge {j.name})" for j in judges)
        items = [BoundItem(f"up to {format_tokens(calls)} model calls on {on or 'no model'}",
                           a.model, "model", 1, Bound(model_cost, tokens, None, calls, 0), a.span)]
        if tools:
            items.append(BoundItem(f"up to {format_tokens(tool_calls)} tool calls", None, "tool", 1,
                                   Bound(tool_cost, 0, None, 0, tool_calls), a.span))
        self.bounds[a.name] = CallableBound(a.name, "agent", bound, derived, frozenset(declared), tuple(items))
        self._check_agent(a, chain, judges)

    def prompt_tokens(self, a: h.Agent, model: h.Model) -> int:
        """The estimate of the prompt of one call of ``a`` on ``model``: what the runtime counts
        (messages, tool definitions, the output schema and the protocol's overheads), with the
        literal text at 4 bytes per token and placeholders counting nothing."""
        from vox.compiler.plan.value_schema import SchemaError, object_schema, output_schema  # the plan imports this module

        texts = []
        if a.system is not None:
            texts += ["system", "".join(p for p in a.system.parts if isinstance(p, str))]
        texts += ["user", "".join(p for p in a.prompt.parts if isinstance(p, str)) if a.prompt else ""]
        tools = []
        for n in a.tools:
            if n in self.program.tools:
                try:
                    tools.append((n, object_schema((x.name, x.type) for x in self.program.tools[n].params)))
                except SchemaError:  # an erroneous parameter type: reported where it is written
                    pass
        try:
            schema = output_schema(a.returns)[0]
        except SchemaError:  # an erroneous result type: reported where it is written
            schema = None
        provider = self.program.providers.get(model.provider)
        protocol = provider.protocol if provider is not None else "sim"
        return requests.estimate_request(protocol, texts, messages=len(texts) // 2, tools=tools, output_schema=schema)

    def judge_tokens(self, a: h.Agent, answer: int, judge: h.Model, rubric: str) -> int:
        """One judge call: its request (the rubric, the answer of at most ``answer`` tokens, the
        verdict schema) plus the judge's `max_output`."""
        provider = self.program.providers.get(judge.provider)
        protocol = provider.protocol if provider is not None else "sim"
        texts = ["system", requests.JUDGE_SYSTEM, "user", requests.judge_prompt(rubric, "")]
        return (requests.estimate_request(protocol, texts, messages=2, output_schema=requests.JUDGE_SCHEMA)
                + answer + max_output(judge))

    def _check_agent(self, a: h.Agent, chain: list[h.Model], judges: list[h.Model]) -> None:
        caps = a.caps
        for i, m in enumerate(chain):
            where = a.spans.get("model") if i == 0 else a.spans.get(f"fallback.{m.name}")
            prompt = self.prompt_tokens(a, m)
            if m.context is not None and prompt + max_output(m) > m.context:
                self.sink.error(
                    "V2006", f"one call of `{a.name}` needs about {format_tokens(prompt + max_output(m))} tokens, "
                    f"more than the {format_tokens(m.context)}-token context of `{m.name}`", where or a.span,
                    labels=(Label(m.spans.get("context", m.span), f"`{m.name}`'s context window"),),
                    notes=(f"the prompt is about {format_tokens(prompt)} tokens, and every call reserves "
                           f"`max_output` ({format_tokens(max_output(m))}) for the reply{_if_default(m)}",),
                    help="shorten the prompt, " + ("lower the model's `max_output`" if m.max_output is not None else
                                                   f"give `{m.name}` a smaller `max_output`")
                         + ", or use a model with a larger context")
        if caps.cost is not None and a.name in self.unpriced:
            name = self.unpriced[a.name]
            where = a.spans.get("model") if name == a.model else a.spans.get(f"fallback.{name}")
            self.sink.error(
                "V2004", f"agent `{a.name}` has a cost cap, but model `{name}` has no price", where or a.spans.get("gates", a.span),
                labels=(Label(self._name_span(name), f"`{name}` declares no `price`"),
                        Label(a.spans.get("budget.cost", a.span), "the cost cap")),
                help=f"give `{name}` a `price: {{ input: $X, output: $Y }}` (per million tokens), or `price: free`",
            )
        if not chain:
            return
        primary = chain[0]
        prompt = self.prompt_tokens(a, primary)
        samples = 1 + self.gates.extra_samples.get(a.name, 0)
        per_call = prompt + max_output(primary)
        rubrics = _judge_rubrics(self.program, a)
        judge_tokens = sum(self.judge_tokens(a, max_output(primary), j, rubrics[i] if i < len(rubrics) else "")
                           for i, j in enumerate(judges))
        need_tokens = samples * per_call + judge_tokens
        # Each judge call is a model call of the agent's own, counted in its `steps` as the runtime does.
        need_calls = samples + len(judges)
        if caps.steps is not None and caps.steps < need_calls:
            parts = [f"{samples - 1} extra samples" if samples > 1 else "",
                     f"{len(judges)} judge call{'s' if len(judges) != 1 else ''}" if judges else ""]
            extra = " and ".join(p for p in parts if p)
            what = "one model call" if need_calls == 1 else f"{need_calls} model calls (the call, and its gates' {extra})"
            self.sink.error(
                "V2003", f"agent `{a.name}` cannot make a single call: one output needs {what}, "
                f"but `steps` is {caps.steps}", a.spans.get("budget.steps", a.span),
                help=f"raise `steps` to at least {need_calls}",
                fix=_replace_cap(a.spans, "steps", format_tokens(need_calls)))
        if caps.tokens is not None and need_tokens > caps.tokens:
            self.sink.error(
                "V2003", f"agent `{a.name}` cannot afford a single call: it needs about {format_tokens(need_tokens)} "
                f"tokens, but its cap is {format_tokens(caps.tokens)}", a.spans.get("budget.tokens", a.span),
                labels=(Label(primary.spans.get("max_output", primary.span),
                              f"every call of `{primary.name}` reserves {format_tokens(max_output(primary))} "
                              f"tokens for its reply{_if_default(primary)}"),),
                notes=(_call_need(prompt, primary, samples, judge_tokens),),
                help=f"raise the `tokens` cap to at least {format_tokens(need_tokens)}, or lower `max_output`",
                fix=_replace_cap(a.spans, "tokens", format_tokens(need_tokens)))
        if caps.cost is not None and primary.price is not None and a.name not in self.unpriced:
            one = (cost_of_tokens(prompt, input_price(primary.price))
                   + cost_of_tokens(max_output(primary), primary.price.output))
            judge_cost = sum(cost_of_tokens(self.judge_tokens(a, max_output(primary), j, rubrics[i] if i < len(rubrics) else "")
                                            - max_output(j), input_price(j.price))
                             + cost_of_tokens(max_output(j), j.price.output) for i, j in enumerate(judges) if j.price)
            need = samples * one + judge_cost
            if need > caps.cost:
                self.sink.error(
                    "V2003", f"agent `{a.name}` cannot afford a single call: one call of `{primary.name}` may cost "
                    f"{format_money(need)}, but its cap is {format_money(caps.cost)}", a.spans.get("budget.cost", a.span),
                    labels=(Label(primary.spans.get("price", primary.span), f"`{primary.name}`'s price"),),
                    notes=(_call_need(prompt, primary, samples, judge_tokens),),
                    help=f"raise the `cost` cap to at least {format_money(need)}, or use a cheaper model",
                    fix=_replace_cap(a.spans, "cost", format_money(need)))

    def _name_span(self, name: str) -> Span:
        symbol = self.program.symbols.get(name)
        return symbol.span if symbol is not None else self.program.models[name].span

    # ---- flows -----------------------------------------------------------------------------------

    def flow_group(self, group: list[str]) -> None:
        """One flow, or the flows of one recursion cycle (see :func:`_cycle_bounds`)."""
        flows = [self.program.flows[n] for n in group]
        recursive = len(flows) > 1 or _calls_flow(flows[0].body, flows[0].name)
        if not recursive:
            self._finish(flows[0], _Walk(self, flows[0], {}, report=True).run())
            return
        members = set(group)
        for n in group:
            self.cycle[n] = frozenset(group)
        missing = [f for f in flows if f.caps.depth is None]
        for f in missing:
            site = _first_call(f.body, members)
            self.sink.error(
                "V2008", f"flow `{f.name}` is recursive, but declares no `depth`", site.span if site else f.span,
                notes=("recursion " + " → ".join(group + [group[0]]),) if len(group) > 1 else (),
                help=f"add `depth: N` to `{f.name}`'s budget: at most N activations of it are on the stack at once",
            )
        invalid = any(f.caps.depth is not None and f.caps.depth < 1 for f in flows)  # V2010, reported
        levels = None if missing or invalid else self._cycle_levels(flows)
        if missing or invalid:
            self.broken.update(group)
        if levels is None:
            for f in flows:
                self._finish(f, (_Acc(None, None, 0, True, None, None), ()), checked=False)
            return
        for f in flows:
            self._finish(f, _Walk(self, f, levels[f.name], report=True).run())

    def _cycle_levels(self, flows: list[h.Flow]) -> dict[str, dict[str, _Acc]] | None:
        """For each flow F of a recursion cycle, what each call in F's body of a flow of the cycle
        may spend when F was entered from outside the cycle (the bound of that call as its caller
        must afford it: the callee's caps where it declares them, as the runtime reserves them).

        The model is the runtime's (``enter_flow``): a call of G is refused, before anything is
        spent, when G already has ``depth(G)`` activations on the stack; each flow's activations
        are counted on their own. The stack state that matters is how many activations of each
        flow of the cycle it holds, so the bound of a call of G is computed per state, from the
        states with the most activations down. A cycle whose depths add up to more than
        :data:`MAX_UNROLL` is unbounded (None). With more than :data:`MAX_STATES` states, each
        activation is only known to use up one of the cycle's ``sum(depth)``, which bounds the
        same calls more coarsely.
        """
        names = [f.name for f in flows]
        depth = [f.caps.depth for f in flows]
        by_name = {f.name: f for f in flows}
        refused = _Acc()  # a call past its depth is refused before it spends anything
        total = sum(depth)
        if total > MAX_UNROLL:
            return None
        states = 1
        for d in depth:
            states *= d + 1
        if states * len(flows) <= MAX_STATES:
            # bound[(i, used)]: a call of flows[i] from a stack holding used[j] activations of flows[j]
            bound: dict[tuple[int, tuple[int, ...]], _Acc] = {}

            def calls_from(used: tuple[int, ...]) -> dict[str, _Acc]:
                return {n: bound.get((j, used), refused) for j, n in enumerate(names)}

            for used in sorted(itertools.product(*(range(d + 1) for d in depth)), key=sum, reverse=True):
                for i, f in enumerate(flows):
                    if used[i] >= depth[i]:
                        continue
                    inner = used[:i] + (used[i] + 1,) + used[i + 1:]
                    bound[(i, used)] = self._as_called(f, _Walk(self, f, calls_from(inner), report=False).run()[0])
            empty = (0,) * len(flows)
            return {f.name: calls_from(empty[:i] + (1,) + empty[i + 1:]) for i, f in enumerate(flows)}
        level = {n: refused for n in names}  # with k activations left in the cycle, from k = 0 up
        for _ in range(total - 1):
            level = {n: self._as_called(by_name[n], _Walk(self, by_name[n], level, report=False).run()[0])
                     for n in names}
        return {n: level for n in names}

    def _as_called(self, flow: h.Flow, acc: _Acc) -> _Acc:
        """What a caller must afford for a call of ``flow`` whose body may spend ``acc``: the caps
        where ``flow`` declares them (the runtime reserves them when the call starts)."""
        declared = _caps_dims(flow.caps)
        derived = acc.bound()
        return _Acc.of(Bound(**{d: declared.get(d, getattr(derived, d)) for d in Bound.DIMENSIONS}))

    def _finish(self, flow: h.Flow, walked: tuple[_Acc, tuple[BoundItem, ...]], checked: bool = True) -> None:
        acc, items = walked
        declared = _caps_dims(flow.caps)
        derived = acc.bound()
        bound = Bound(**{d: declared.get(d, getattr(derived, d)) for d in Bound.DIMENSIONS})
        self.bounds[flow.name] = CallableBound(flow.name, "flow", bound, derived, frozenset(declared), items)
        if checked:
            self._check_flow(flow, acc, items, declared)

    def _check_flow(self, flow: h.Flow, acc: _Acc, items: tuple[BoundItem, ...], declared: dict[str, int]) -> None:
        for dim, cap in declared.items():
            total = acc.value(dim)
            if total is None:
                self._unbounded(flow, dim, items)
                continue
            if total <= cap:
                continue
            show = _SHOW[dim]
            alone = [i for i in items if (getattr(i.bound, dim) or 0) > cap and i.multiplier == 1]
            cap_span = flow.spans.get(f"budget.{CAP_OF[dim]}", flow.span)
            if alone:
                item = alone[0]
                callee = self.bounds.get(item.callee) if item.callee else None
                decl = self.program.agents.get(item.callee) or self.program.flows.get(item.callee)
                from_cap = callee is not None and dim in callee.from_caps and decl is not None
                nested = self._capped_in_cycle(flow, items, dim)
                labels = [Label(cap_span, f"`{flow.name}` allows {show(cap)}")]
                if from_cap:
                    labels.append(Label(decl.spans.get(f"budget.{CAP_OF[dim]}", decl.span), f"`{item.callee}`'s cap"))
                self.sink.error(
                    "V2005", f"`{item.callee}` alone may use {show(getattr(item.bound, dim))} of {_WORD[dim]}, "
                    f"more than flow `{flow.name}`'s cap of {show(cap)}", item.span, labels=tuple(labels),
                    notes=(f"a call of `{item.callee}` reserves its `{CAP_OF[dim]}` cap when it starts" if from_cap
                           else f"this is `{item.callee}`'s worst case",) + ((_nested_note(nested, dim),) if nested else ()),
                    help=_nested_help(nested, dim) if nested else
                    f"lower `{item.callee}`'s `{CAP_OF[dim]}` to at most {show(cap)}, or raise `{flow.name}`'s "
                    f"to {show(total)}",
                )
                continue
            nested = self._capped_in_cycle(flow, items, dim)
            self.sink.error(
                "V2001", f"the calls in flow `{flow.name}` may use {show(total)} of {_WORD[dim]}, "
                f"more than its cap of {show(cap)}", cap_span,
                labels=tuple(Label(i.span, f"{show(getattr(i.bound, dim))}" + (f" ({i.multiplier} times)" if i.multiplier > 1 else ""))
                             for i in items if getattr(i.bound, dim)),
                notes=_breakdown(items, dim, total, cap) + ((_nested_note(nested, dim),) if nested else ()),
                help=_nested_help(nested, dim) if nested else _fit_help(flow, items, dim, total, cap, self.bounds),
                fix=None if nested else _replace_cap(flow.spans, CAP_OF[dim], show(total),
                                                     f"raise `{flow.name}`'s `{CAP_OF[dim]}` to {show(total)}"),
            )

    def _capped_in_cycle(self, flow: h.Flow, items: tuple[BoundItem, ...], dim: str) -> str | None:
        """A flow of ``flow``'s own recursion cycle that it calls and that caps ``dim``, if any."""
        cycle = self.cycle.get(flow.name, frozenset())
        for i in items:
            if i.kind == "flow" and i.callee in cycle and CAP_OF[dim] in _cap_names(self.program.flows[i.callee].caps):
                return i.callee
        return None

    def _unbounded(self, flow: h.Flow, dim: str, items: tuple[BoundItem, ...]) -> None:
        """Say which call site makes ``dim`` unbounded (once per dimension)."""
        item = next((i for i in items if getattr(i.bound, dim) is None), None)
        if item is None or item.multiplier == 0:
            return  # a loop without `max`: reported where it is (V2002)
        if item.callee in self.broken:
            return  # its recursion is reported where it is (V2008, V2010)
        if item.kind == "agent" and dim == "cost_micros" and item.callee in self.unpriced:
            model = self.unpriced[item.callee]
            self.sink.error(
                "V2004", f"flow `{flow.name}` has a cost cap, but `{item.callee}` may run on model `{model}`, "
                "which has no price", item.span,
                labels=(Label(self._name_span(model), f"`{model}` declares no `price`"),
                        Label(flow.spans.get("budget.cost", flow.span), "the cost cap")),
                help=f"give `{model}` a `price: {{ input: $X, output: $Y }}` (per million tokens), or `price: free`",
            )
            return
        self.sink.error(
            "V2007", f"`{item.callee}` has no bound on {_WORD[dim]}, so flow `{flow.name}`'s "
            f"`{CAP_OF[dim]}` cap cannot be checked", item.span,
            labels=(Label(flow.spans.get(f"budget.{CAP_OF[dim]}", flow.span), "the cap"),),
            notes=(_why_unbounded(self.program, item, dim),),
            help=f"give `{item.callee}` a budget with `{CAP_OF[dim]}`" + (
                " (or `steps` and `tokens`, from which its cost follows)" if dim == "cost_micros" else ""),
        )


# ---- walking a flow's body ---------------------------------------------------------------------------


class _Walk:
    """The worst path through one flow body; in-cycle flow calls take the bounds in ``level``."""

    def __init__(self, budgets: _Budgets, flow: h.Flow, level: dict[str, _Acc], report: bool):
        self.b = budgets
        self.flow = flow
        self.level = level
        self.report = report
        self.items: list[BoundItem] = []
        self.lengths: dict[tuple, int] = {}  # a `let` binding → the most elements its list can have

    def run(self) -> tuple[_Acc, tuple[BoundItem, ...]]:
        fall, exited = self.block(self.flow.body, 1)
        return _join_opt(fall, exited) or _Acc(), tuple(self.items)

    def block(self, stmts, mult: int) -> tuple[_Acc | None, _Acc | None]:
        """(worst path that falls through the block or None if none does, worst path that returned)."""
        fall: _Acc | None = _Acc()
        exited: _Acc | None = None
        for s in stmts:
            if fall is None:
                break  # unreachable code adds nothing
            f, x = self.stmt(s, mult)
            if x is not None:
                exited = _join_opt(exited, fall + x)
            fall = None if f is None else fall + f
        return fall, exited

    def stmt(self, s, mult: int) -> tuple[_Acc | None, _Acc | None]:
        if isinstance(s, h.LetStmt):
            n = self.length(s.value)
            if n is not None:
                self.lengths[_key(s.symbol)] = n
            return self.expr(s.value, mult), None
        if isinstance(s, h.ExprStatement):
            return self.expr(s.expr, mult), None
        if isinstance(s, h.ReturnStmt):
            return None, self.expr(s.value, mult) if s.value is not None else _Acc()
        if isinstance(s, h.IfStmt):
            cond = self.expr(s.cond, mult)
            f1, x1 = self.block(s.then, mult)
            f2, x2 = self.block(s.orelse, mult)
            fall = _join_opt(f1, f2)
            exited = _join_opt(x1, x2)
            return (None if fall is None else cond + fall), (None if exited is None else cond + exited)
        if isinstance(s, h.ParStmt):
            total = _Acc()
            # branches bind their names for after the `par`
            for branch in s.branches:
                total = total.beside(self.stmt(branch, mult)[0] or _Acc())
            return total, None
        return _Acc(), None

    def expr(self, e, mult: int) -> _Acc:
        if isinstance(e, h.CallExpr):
            inner = _Acc()
            for _, arg in e.args:
                inner = inner + self.expr(arg, mult)
            return inner + self.call(e, mult)
        if isinstance(e, h.ForEach):
            return self.expr(e.iterable, mult) + self.loop(e, mult)
        total = _Acc()
        for child in children(e):
            total = total + self.expr(child, mult)
        return total

    def length(self, e) -> int | None:
        return list_length(e, self.lengths)

    def loop(self, e: h.ForEach, mult: int) -> _Acc:
        n = self.length(e)
        if n is None:
            probe = _Walk(self.b, self.flow, self.level, report=False)
            body = probe.block(e.body, 1)[0] or _Acc()
            if e.result is not None:
                body = body + probe.expr(e.result, 1)
            if body.is_zero():
                return _Acc()
            if self.report and e.bound_span.start == e.bound_span.end:  # no `max` written at all
                first = probe.items[0] if probe.items else None
                self.b.sink.error(
                    "V2002", "this loop runs over a list of unknown length with no `max`, so its spend has no bound",
                    e.span, labels=((Label(first.span, f"each iteration calls `{first.callee}`"),) if first else ()),
                    help="add a bound such as `max 10`: the loop then takes at most that many elements",
                    fix=Fix("add `max 10`", (TextEdit(e.bound_span, " max 10"),)))
            self.items.extend(replace(i, multiplier=0, bound=Bound(None, None, None, None, None)) for i in probe.items)
            return _Acc(None, None, 0, True, None, None)
        body_mult = mult * n
        fall, _ = self.block(e.body, body_mult)
        body = fall or _Acc()
        if e.result is not None:
            body = body + self.expr(e.result, body_mult)
        return body.times(n)

    def call(self, e: h.CallExpr, mult: int) -> _Acc:
        if e.kind == "tool":
            tool = self.b.program.tools.get(e.name)
            if tool is None:
                return _Acc()
            attempts = 1 + tool.retries
            # The runtime gives every attempt the tool's timeout, its default if it declares none,
            # and waits before each retry. A call that may wait for a person has no time limit,
            # and one that timed out without knowing whether it acted may be made again (once).
            calls = 2 if may_be_called_again(tool) else 1
            one = _Acc(defaults.tool_cost_micros(tool.cost_micros) * attempts * calls, 0,
                       tool_wall_ms(tool.timeout_ms, tool.retries) * calls, may_wait_for_a_person(tool), 0, calls)
        elif e.kind == "agent":
            cb = self.b.bounds.get(e.name)
            if cb is None:
                return _Acc()
            one = _Acc.of(cb.bound)
        elif e.kind == "flow":
            if e.name in self.level:
                one = self.level[e.name]
            elif e.name in self.b.bounds:
                one = _Acc.of(self.b.bounds[e.name].bound)
            else:
                return _Acc()
        else:
            return _Acc()
        self.items.append(BoundItem(f"{e.name}(...)", e.name, e.kind, mult, one.times(mult).bound(), e.span))
        return one


def list_length(e, lengths: dict[tuple, int]) -> int | None:
    """The most elements the list ``e`` can have, when the program fixes it: a list literal, a
    name `let`-bound to one (``lengths``: bindings never change), or a `for` (one element per
    iteration)."""
    if isinstance(e, h.ListValue):
        return len(e.items)
    if isinstance(e, h.Var):
        return lengths.get(_key(e.symbol))
    if isinstance(e, h.ForEach):
        n = list_length(e.iterable, lengths)
        return e.bound if n is None else (n if e.bound is None else min(n, e.bound))
    return None


def fixed_loop_lengths(body: tuple) -> dict[tuple[int, int], int]:
    """Each `for` without `max` in a flow body whose list the program fixes (see
    :func:`list_length`), by its span's (start, end): how many times it runs at most. The bound
    counts these loops that many times, so the plan gives them that bound.

    >>> from vox.compiler.api import check_source
    >>> src = 'flow f() -> list[int] {\\n  let xs = [1, 2, 3]\\n  return for x in xs { x }\\n}\\n'
    >>> list(fixed_loop_lengths(check_source("t.vox", src).program.flows["f"].body).values())
    [3]
    """
    lengths: dict[tuple, int] = {}
    found: dict[tuple[int, int], int] = {}

    def block(stmts) -> None:
        for s in stmts:
            stmt(s)

    def stmt(s) -> None:
        if isinstance(s, h.LetStmt):
            expr(s.value)
            n = list_length(s.value, lengths)
            if n is not None:
                lengths[_key(s.symbol)] = n
        elif isinstance(s, h.ReturnStmt):
            if s.value is not None:
                expr(s.value)
        elif isinstance(s, h.IfStmt):
            expr(s.cond)
            block(s.then)
            block(s.orelse)
        elif isinstance(s, h.ParStmt):
            block(s.branches)
        elif isinstance(s, h.ExprStatement):
            expr(s.expr)

    def expr(e) -> None:
        for child in children(e):
            expr(child)
        if isinstance(e, h.ForEach):
            if e.bound is None:
                n = list_length(e.iterable, lengths)
                if n is not None:
                    found[(e.span.start, e.span.end)] = n
            block(e.body)
            if e.result is not None:
                expr(e.result)

    block(body)
    return found


def may_be_called_again(tool: h.Tool) -> bool:
    """Whether a call of ``tool`` in a flow may be made a second time: a `write` or `external` tool
    that is not `idempotent` and timed out may have acted, and a person may have it called again
    (``Run.after_unknown_outcome``, which reserves that call afresh: its attempts and one more tool
    call). An agent's calls need nothing more: the second call is one of its `tool_calls`."""
    return tool.effect in ("write", "external") and not tool.idempotent


def may_wait_for_a_person(tool: h.Tool) -> bool:
    """Whether a call of ``tool`` may wait for a person's decision, for as long as that takes: an
    `approval: human` tool, and one that may be called again (:func:`may_be_called_again`: a
    person decides). Such a call bounds no wall time: only a `wall` cap around it does."""
    return tool.approval == "human" or may_be_called_again(tool)


def _cap_names(caps: h.Caps) -> set[str]:
    return {CAP_OF[d] for d in _caps_dims(caps)}


def _nested_note(callee: str, dim: str) -> str:
    return (f"each nested call of `{callee}` reserves its whole `{CAP_OF[dim]}` cap when it starts, as every "
            f"call does; inside the cycle that cap must be free again on top of what was spent before the call, "
            "so raising it never helps")


def _nested_help(callee: str, dim: str) -> str:
    return (f"remove the `{CAP_OF[dim]}` cap from `{callee}` (its `depth` already bounds it) and cap the flows "
            "that call into the recursion instead")


def _key(symbol: h.Symbol) -> tuple:
    """A local binding, told apart from another of the same name by where it is declared."""
    return (symbol.name, symbol.span.start, symbol.span.end)


def _judge_rubrics(program: h.Program, a: h.Agent) -> list[str]:
    """The literal rubric of each judge call of ``a``'s gates, in the order the gate report lists
    the judge models (a rubric not written as a literal counts nothing)."""
    from vox.compiler.analysis.gates import signal_calls

    out = []
    for g in dict.fromkeys(a.gates):
        gate = program.gates.get(g)
        for check in gate.checks if gate is not None else ():
            for call in signal_calls(check.cond):
                if call.name != "judge":
                    continue
                model = next((v for k, v in call.args if k == "model"), None)
                if not isinstance(model, h.Ref):
                    continue
                rubric = next((v for k, v in call.args if k == "rubric"), None)
                out.append(rubric.value if isinstance(rubric, h.Lit) and isinstance(rubric.value, str) else "")
    return out


def _join_opt(a: _Acc | None, b: _Acc | None) -> _Acc | None:
    if a is None:
        return b
    if b is None:
        return a
    return a.join(b)


def _model_cost(models: list[h.Model], tokens: int | None, calls: int | None) -> int | None:
    """The dearest way to spend ``tokens``: as many as possible as output at the dearest output
    price (at most ``max_output`` per attempt, :data:`MODEL_ATTEMPTS` attempts per call), the
    rest at the dearest input price; plus what rounding each attempt's charge on its own may add
    (:data:`ROUNDING_MICROS` per attempt; without `steps`, per token, as every attempt that is
    billed bills one at least)."""
    if tokens is None:
        return None
    price_in = max(input_price(m.price) for m in models)
    price_out = max(m.price.output for m in models)
    max_out = [max_output(m) for m in models]
    out = tokens
    attempts = tokens
    if calls is not None:
        out = min(tokens, calls * MODEL_ATTEMPTS * max(max_out))
        attempts = min(tokens, calls * MODEL_ATTEMPTS)
    if price_out < price_in:
        out = 0
    rounding = 0 if price_in == price_out == 0 else attempts * ROUNDING_MICROS
    return cost_of_tokens(out, price_out) + cost_of_tokens(tokens - out, price_in) + rounding


def _call_need(prompt: int, model: h.Model, samples: int, judge_tokens: int) -> str:
    text = (f"one call: about {format_tokens(prompt)} prompt tokens + {format_tokens(max_output(model))} "
            f"reserved for the reply{_if_default(model)}")
    if samples > 1:
        text += f", × {samples} samples drawn by its gates"
    if judge_tokens:
        text += f", + {format_tokens(judge_tokens)} for judge calls"
    return text


def _replace_cap(spans: dict[str, Span], cap: str, value: str, message: str | None = None) -> Fix | None:
    span = spans.get(f"budget.{cap}")
    return replace_fix(message or f"set `{cap}` to {value}", span, value) if span else None


def _breakdown(items: tuple[BoundItem, ...], dim: str, total: int, cap: int) -> tuple[str, ...]:
    show = _SHOW[dim]
    lines = []
    for i in items:
        value = getattr(i.bound, dim)
        if value:
            times = f" × {i.multiplier}" if i.multiplier > 1 else ""
            lines.append(f"  {i.what}{times}: {show(value)}")
    return ("worst case, per call site:", *lines, f"  total {show(total)} > cap {show(cap)}")


def _fit_help(flow: h.Flow, items, dim: str, total: int, cap: int, bounds: dict[str, CallableBound]) -> str:
    """Which single change makes the flow fit: lowering the cap of the callee that weighs most, or
    raising the flow's own cap."""
    show = _SHOW[dim]
    weight: dict[str, tuple[int, int]] = {}  # callee → (its calls, their total)
    for i in items:
        if i.callee in bounds and dim in bounds[i.callee].from_caps and getattr(i.bound, dim):
            n, v = weight.get(i.callee, (0, 0))
            weight[i.callee] = (n + i.multiplier, v + getattr(i.bound, dim))
    lower = ""
    if weight:
        callee, (n, v) = max(weight.items(), key=lambda kv: kv[1][1])
        target = (cap - (total - v)) // n
        if target > 0:
            lower = f"lower `{callee}`'s `{CAP_OF[dim]}` to {show(target)}, or "
    return f"{lower}raise `{flow.name}`'s `{CAP_OF[dim]}` to {show(total)}"


def _why_unbounded(program: h.Program, item: BoundItem, dim: str) -> str:
    if item.kind == "agent":
        a = program.agents[item.callee]
        if dim == "cost_micros":
            return (f"`{a.name}` declares no `cost` cap, and its cost cannot be derived: that needs `tokens` "
                    "(or `steps`), prices on every model, and `tool_calls` if its tools cost money")
        return f"`{a.name}` declares no `{CAP_OF[dim]}` cap" + (" and no `steps`" if dim == "tokens" else "")
    return f"`{item.callee}` declares no `{CAP_OF[dim]}` cap, and its body has no bound on {_WORD[dim]}"


# ---- the call graph of flows -------------------------------------------------------------------------


def _flow_calls(stmts) -> list[h.CallExpr]:
    return [c for c in calls_in_block(stmts) if c.kind == "flow"]


def _calls_flow(stmts, name: str) -> bool:
    return any(c.name == name for c in _flow_calls(stmts))


def _first_call(stmts, names: set[str]) -> h.CallExpr | None:
    return next((c for c in _flow_calls(stmts) if c.name in names), None)


def _flow_groups(program: h.Program) -> list[list[str]]:
    """Strongly connected components of the flow call graph, callees before callers (Tarjan)."""
    edges = {n: [c.name for c in _flow_calls(f.body) if c.name in program.flows] for n, f in program.flows.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0
    for root in program.flows:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(edges[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    group.append(top)
                    if top == node:
                        break
                groups.append(sorted(group, key=list(program.flows).index))
    return groups

