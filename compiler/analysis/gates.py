"""Gates (V5): the signals a gate reads must exist on every model that can produce the output.

A gate runs on every output of every agent that lists it, whichever model of the agent's chain
(primary, then fallbacks) produced that output. So a signal's requirement is checked against
each model of each chain:

* `confidence` and `entropy(window)` are computed from token log-probabilities: every model in
  the chain must list the `logprobs` capability (V5001);
* `consistency(n)` draws `n - 1` extra outputs for the same prompt and measures agreement: every
  model must list `sampling` (V5002), `n` must be a literal of at least 2 (V5003), and at
  `temperature: 0` the samples would all agree (V5006);
* `fallback` on an agent without fallback models abstains (V5004), and `retry(n)` on an agent
  whose `steps` cap cannot hold the first attempt and `n` retries is cut short (V5005).

`judge(m, ...)` is checked by the label analysis (clearance) and the budget analysis (price);
this pass reports which judges each agent's gates call in :class:`GateReport`.
"""

from __future__ import annotations

from collections.abc import Iterator

from vox.compiler.analysis.results import GateReport
from vox.compiler.diagnostics.model import DiagnosticSink, Fix, Label, TextEdit
from vox.compiler.hir import nodes as h
from vox.compiler.hir.walk import expressions
from vox.compiler.signals import NEEDS, SIGNALS, extra_calls
from vox.compiler.source import Span

# What each protocol's API cannot give, whatever a model declares. Anthropic's Messages API has no
# log-probabilities: a model on it that listed `logprobs` would get none, so `confidence` would be
# 0 and `entropy` infinite on every answer (the runtime fails closed) and every gate reading them
# would fail. OpenAI-compatible servers and the simulator may provide every capability.
PROTOCOL_LACKS: dict[str, frozenset[str]] = {
    "openai": frozenset(),
    "anthropic": frozenset({"logprobs"}),
    "openai_compatible": frozenset(),
    "sim": frozenset(),
}


def analyse_gates(program: h.Program, sink: DiagnosticSink) -> GateReport:
    """Check every gate against every agent that uses it; report V5xxx to ``sink``.

    >>> from vox.compiler.api import check_source
    >>> report = check_source("x.vox", '''
    ... provider sim = sim
    ... model m = sim/"m" { context: 1_000, max_output: 100, price: free, capabilities: [sampling] }
    ... gate agree(s: str) { check consistency(n: 3) >= 0.6 else retry(1) }
    ... agent a(x: str) -> str { model: m, gates: [agree], prompt: "{x}" }
    ... ''').analysis.gates
    >>> sorted(report.signals["a"]), report.extra_samples["a"], report.judges["a"]
    (['consistency'], 2, ())
    """
    for model in program.models.values():
        _check_protocol(program, model, sink)
    for gate in program.gates.values():
        _check_arguments(gate, sink)
    signals: dict[str, frozenset[str]] = {}
    extra: dict[str, int] = {}
    judges: dict[str, tuple[str, ...]] = {}
    for agent in program.agents.values():
        gates = [program.gates[g] for g in dict.fromkeys(agent.gates) if g in program.gates]
        reads = [(gate, check, call) for gate in gates for check in gate.checks for call in signal_calls(check.cond)]
        signals[agent.name] = frozenset(call.name for _, _, call in reads)
        extra[agent.name] = sum(extra_calls(call.name, _int_args(call)) for _, _, call in reads
                                if SIGNALS[call.name].samples is not None)
        judges[agent.name] = tuple(model for _, _, call in reads if SIGNALS[call.name].judge is not None
                                   if (model := _model_arg(call)) is not None)
        _check_chain(program, agent, reads, sink)
        _check_actions(agent, gates, sink)
    return GateReport(signals, extra, judges)


# ---- models ---------------------------------------------------------------------------------------


def _check_protocol(program: h.Program, model: h.Model, sink: DiagnosticSink) -> None:
    """V5007: a model may not list a capability its provider's protocol cannot provide."""
    provider = program.providers.get(model.provider)
    if provider is None:
        return
    for capability in sorted(model.capabilities & PROTOCOL_LACKS.get(provider.protocol, frozenset())):
        span = model.spans.get(f"capabilities.{capability}", model.spans.get("capabilities", model.span))
        symbol = program.symbols.get(provider.name)
        sink.error(
            "V5007", f"model `{model.name}` lists `{capability}`, but its provider `{provider.name}` speaks the "
            f"`{provider.protocol}` protocol, which has no {capability}", span,
            labels=(Label(symbol.span if symbol is not None else provider.span,
                          f"`{provider.name}` is an `{provider.protocol}` provider"),),
            notes=("a gate reading `confidence` or `entropy` on this model would get no log-probabilities, so "
                   "every answer would fail it",) if capability == "logprobs" else (),
            help=f"remove `{capability}` from `{model.name}`'s capabilities; gates that need it must run on "
                 "models of a protocol that provides it",
            fix=_remove_item_fix(model.spans, "capabilities", capability),
        )


def _remove_item_fix(spans: dict[str, Span], member: str, item: str) -> Fix | None:
    """Delete ``item`` from the list written as member ``member``, with its separator."""
    items = sorted(((span, key[len(member) + 1:]) for key, span in spans.items()
                    if key.startswith(member + ".")), key=lambda entry: entry[0].start)
    index = next((i for i, (_, name) in enumerate(items) if name == item), None)
    if index is None:
        return None
    span = items[index][0]
    if len(items) == 1:
        edit = TextEdit(spans[member], "[]")
    elif index > 0:
        edit = TextEdit(Span(items[index - 1][0].end, span.end), "")
    else:
        edit = TextEdit(Span(span.start, items[1][0].start), "")
    return Fix(f"remove `{item}` from `{member}`", (edit,))


# ---- signals --------------------------------------------------------------------------------------


def signal_calls(e: h.TExpr) -> Iterator[h.CallExpr]:
    """Every runtime signal read inside a gate condition, in source order."""
    return (x for x in expressions(e) if isinstance(x, h.CallExpr) and x.kind == "signal")


def _arg(call: h.CallExpr, name: str) -> h.TExpr | None:
    return next((value for key, value in call.args if key == name), None)


def _int_arg(call: h.CallExpr, name: str) -> int | None:
    value = _arg(call, name)
    if isinstance(value, h.Lit) and isinstance(value.value, int) and not isinstance(value.value, bool):
        return value.value
    return None


def _int_args(call: h.CallExpr) -> dict[str, int]:
    """The arguments of ``call`` written as integer literals."""
    return {name: n for name, _ in call.args if (n := _int_arg(call, name)) is not None}


def _model_arg(call: h.CallExpr) -> str | None:
    """The model a signal sends the answer to (`judge(model: ...)`)."""
    param = SIGNALS[call.name].judge if call.name in SIGNALS else None
    value = _arg(call, param) if param is not None else None
    return value.symbol.name if isinstance(value, h.Ref) else None


def _check_arguments(gate: h.Gate, sink: DiagnosticSink) -> None:
    """V5003: sample counts and windows are literals the budget analysis and the runtime can use."""
    for check in gate.checks:
        for call in signal_calls(check.cond):
            for p in SIGNALS[call.name].params if call.name in SIGNALS else ():
                if p.least is not None:
                    _literal_at_least(call, p.name, p.least, p.why, sink)


def _literal_at_least(call: h.CallExpr, name: str, least: int, why: str, sink: DiagnosticSink) -> None:
    value = _arg(call, name)
    if value is None or isinstance(value, h.ErrorExpr):
        return
    n = _int_arg(call, name)
    if n is None:
        sink.error("V5003", f"`{name}` of `{call.name}` must be a number written in the program", value.span,
                   help=f"write a literal such as `{name}: {max(least, 3)}`; the budget counts the extra work "
                        "before the run")
    elif n < least:
        sink.error("V5003", f"{why}: `{name}` is {n}", value.span,
                   help=f"use `{name}: {least}` or more",
                   fix=Fix(f"use `{name}: {least}`", (TextEdit(value.span, str(least)),)))


# ---- the chain ------------------------------------------------------------------------------------


def _chain_span(agent: h.Agent, model: str) -> Span:
    if model == agent.model and "model" in agent.spans:
        return agent.spans["model"]
    return agent.spans.get(f"fallback.{model}", agent.spans.get("fallback", agent.span))


def _remove_fallback_fix(agent: h.Agent, model: str) -> Fix | None:
    """Delete ``model`` from the agent's `fallback` list, with its separator."""
    items = sorted(((span, key[len("fallback."):]) for key, span in agent.spans.items()
                    if key.startswith("fallback.")), key=lambda item: item[0].start)
    index = next((i for i, (_, name) in enumerate(items) if name == model), None)
    if index is None or model == agent.model:
        return None
    span = items[index][0]
    if len(items) == 1:
        edit = TextEdit(agent.spans["fallback"], "[]")
    elif index > 0:
        edit = TextEdit(Span(items[index - 1][0].end, span.end), "")
    else:
        edit = TextEdit(Span(span.start, items[1][0].start), "")
    return Fix(f"remove `{model}` from `fallback`", (edit,))


def _check_chain(program: h.Program, agent: h.Agent, reads, sink: DiagnosticSink) -> None:
    needs = (("logprobs", NEEDS["logprobs"], "V5001"), ("sampling", NEEDS["sampling"], "V5002"))
    for capability, names, code in needs:
        uses = [(gate, call) for gate, _, call in reads if call.name in names]
        if not uses:
            continue
        for model_name in dict.fromkeys(agent.chain):
            model = program.models.get(model_name)
            if model is None or capability in model.capabilities:
                continue
            read = sorted({call.name for _, call in uses})
            read_text = " and ".join(f"`{n}`" for n in read)
            role = "the primary model" if model_name == agent.model else "a fallback"
            labels = [Label(call.span, f"`{call.name}` is read here, in gate `{gate.name}`") for gate, call in uses]
            has = ", ".join(sorted(model.capabilities)) or "none"
            what = "log-probabilities" if capability == "logprobs" else "several outputs for one prompt"
            provider = program.providers.get(model.provider)
            if capability == "logprobs" and "no_logprobs" in model.capabilities:
                why = f"`{model_name}` refuses log-probabilities (`no_logprobs`)"
            elif provider is not None and capability in PROTOCOL_LACKS.get(provider.protocol, frozenset()):
                why = f"`{model_name}` is served over the `{provider.protocol}` protocol, which has no `{capability}`"
            else:
                why = f"`{model_name}` has capabilities: {has} (if it does support `{capability}`, list it there)"
            sink.error(
                code,
                f"`{model_name}` cannot give {read_text}: it has no `{capability}`, and it is {role} of "
                f"`{agent.name}`",
                _chain_span(agent, model_name),
                labels=tuple(labels),
                notes=(f"a gate's signals must exist on every model that can produce the output, because any "
                       f"of them may; {read_text} need{'s' if len(read) == 1 else ''} {what}",
                       why),
                help=f"remove `{model_name}` from the chain, pick a model with `{capability}`, or drop the checks "
                     f"that read {read_text}",
                fix=_remove_fallback_fix(agent, model_name),
            )
    if agent.temperature == 0:
        for gate, _, call in reads:
            if SIGNALS[call.name].samples is not None:  # samples at temperature 0 are all alike
                sink.warning(
                    "V5006", f"`{agent.name}` runs at `temperature: 0`, so `{call.name}` would always be 1",
                    agent.spans.get("temperature", agent.span),
                    labels=(Label(call.span, f"read here, in gate `{gate.name}`"),),
                    help="raise the temperature so that samples can differ, or drop the consistency check",
                )
                break


# ---- actions --------------------------------------------------------------------------------------


def check_calls(check: h.GateCheck) -> int:
    """Model calls of the agent that evaluating ``check`` may make: `n - 1` samples per
    `consistency(n)` and one per `judge` (each counts in the agent's `steps`, as at run time)."""
    return sum(extra_calls(call.name, _int_args(call)) for call in signal_calls(check.cond))


def _check_actions(agent: h.Agent, gates: list[h.Gate], sink: DiagnosticSink) -> None:
    """V5004 and V5005. Checks run in order and the first failing one decides, so an attempt that
    a check retries has made one model turn plus the calls of the checks up to that one."""
    fallback_checks = [(gate, check) for gate in gates for check in gate.checks if check.action == "fallback"]
    if fallback_checks and not agent.fallback and agent.model is not None:
        sink.warning(
            "V5004", f"`{agent.name}` has no fallback models, so `fallback` in its gates abstains",
            agent.spans.get(f"gates.{fallback_checks[0][0].name}", agent.spans.get("gates", agent.span)),
            labels=tuple(Label(check.span, "this check falls back") for _, check in fallback_checks),
            help="give the agent `fallback: [model, ...]`, or write `abstain` to say what happens",
        )
    steps = agent.caps.steps
    if steps is None:
        return
    retries = []
    before = 0  # model calls of the checks so far, in the order the runtime evaluates them
    for gate in gates:
        for check in gate.checks:
            before += check_calls(check)
            if check.action == "retry" and check.retries is not None and (1 + check.retries) * (1 + before) > steps:
                retries.append((gate, check, 1 + before))
    if retries:
        gate, worst, per_attempt = max(retries, key=lambda r: (1 + r[1].retries) * r[2])
        most = worst.retries
        room = max(steps // per_attempt - 1, 0)
        need = (most + 1) * per_attempt
        span = agent.spans.get("budget.steps", agent.spans.get("budget", agent.span))
        turn = ("the first attempt and each retry are one model turn each" if per_attempt == 1 else
                f"the first attempt and each retry are {per_attempt} model calls each (the turn, and the extra "
                "samples and judge calls of the checks up to the one that retries)")
        sink.warning(
            "V5005",
            f"`steps: {steps}` leaves room for {room} retr{'y' if room == 1 else 'ies'}, "
            f"but a gate of `{agent.name}` asks for {most}",
            span,
            labels=tuple(Label(check.span, f"`retry({check.retries})` in gate `{g.name}`")
                         for g, check, _ in retries),
            notes=(f"{turn}; the cap ends the call before the last retry, and the call fails instead",),
            help=f"raise `steps` to {need}, or retry fewer times",
            fix=Fix(f"raise `steps` to {need}", (TextEdit(span, str(need)),))
            if "budget.steps" in agent.spans else None,
        )
