"""Sensitivity labels (V3): where labelled data may go, proved before a run.

A pure function of the HIR (:func:`analyse_labels`). Every value in a flow gets a
:class:`Labelled` description: the labels it carries itself and the type whose declared field
labels apply to its parts. The analysis walks each flow once on its own (parameters carry only
their declared labels) and once per distinct assignment of argument labels from its callers
and control context (memoised; recursion iterates to a fixpoint); each agent is checked on its own
and at every call site. Record literals keep their labels per field; a tool's result carries its
arguments' labels except those it `declassifies`; a flow's result carries its declared labels;
`redact(x)` lowers only the labels of ``x`` that the scrubber's detectors cover (compiler/redaction.py)
and warns (V3007) about those it keeps.
Sinks (prompts to every model in an agent's chain, tool results going back to that chain, tool
arguments and URLs, the tools an agent may call, judge models in gates, and every sink of a call
made under a labelled `if` or `for`) are compared with their clearance, and each problem is
reported once per (place, sink) after all contexts have been seen. spec/labels.md is the
normative description.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from vox.compiler.analysis.results import Declassification, LabelReport, SinkUse
from vox.compiler.diagnostics.model import DiagnosticSink, Fix, Label, TextEdit
from vox.compiler.hir import nodes as h
from vox.compiler.hir.walk import expressions
from vox.compiler.hir import types as t
from vox.compiler.redaction import DETECTORS_OF_LABEL, KIND_WORDS, kept_by_redact, lowered_by_redact
from vox.compiler.signals import SIGNALS
from vox.compiler.source import Span

PUBLIC = "public"
_NO_LABELS: frozenset[str] = frozenset()
_MAX_WHY = 12  # origins kept per value: enough for every label of a diagnostic, bounded for speed
_MAX_FIXPOINT_ROUNDS = 64
_URL_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_WARNINGS = frozenset({"V3007"})  # a label `redact` keeps is still tracked: any uncleared sink is an error

# (label, where it comes from, what to say there)
Why = tuple[tuple[str, Span, str], ...]


def analyse_labels(program: h.Program, sink: DiagnosticSink) -> LabelReport:
    """Check every sink of ``program`` against its clearance; report V3xxx into ``sink``.

    >>> from vox.compiler.api import check_source
    >>> src = '''label pii
    ... provider p = sim { clearance: [public] }
    ... model m = p/"m" { context: 1000, max_output: 10, price: free }
    ... agent a(x: str @pii) -> str {
    ...   model: m
    ...   prompt: "Say {x}"
    ... }'''
    >>> [d.code for d in check_source("a.vox", src).diagnostics]
    ['V3001']
    """
    return _LabelAnalysis(program).run(sink)


# ---- values -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Labelled:
    """What a value carries: its own labels, and the type whose declared labels apply to its parts.

    ``shape`` is None once the structure no longer speaks for the value (after `redact`,
    `declassify`, or arithmetic, whose own labels already include everything).
    """

    own: frozenset[str] = _NO_LABELS
    shape: t.Type | None = None
    why: Why = field(default=(), compare=False)
    # A record literal's fields, each with what it carries: reading `r.id` back gets only `id`'s labels.
    # None when the value's parts are known only from ``shape``.
    fields: tuple[tuple[str, "Labelled"], ...] | None = None


PUBLIC_VALUE = Labelled()


def _with_own(v: Labelled, own: frozenset[str], shape: t.Type | None, why: Why) -> Labelled:
    """``v``'s fields with other own labels and shape (fields only make sense with a shape)."""
    return Labelled(own, shape, why, v.fields if shape is not None else None)


def _join(a: Labelled | None, b: Labelled) -> Labelled:
    """What a value carries when it may be ``a`` or ``b`` (the returns of a flow)."""
    if a is None:
        return b
    shape = a.shape if a.shape is not None else b.shape
    why = _join_why(a.why, b.why)
    if a.fields is not None and b.fields is not None:
        fa, fb = dict(a.fields), dict(b.fields)
        fields = tuple((n, _join(fa.get(n), fb[n]) if n in fb else fa[n]) for n in sorted(set(fa) | set(fb)))
        return Labelled(a.own | b.own, shape, why, fields)
    own = a.own | b.own | _field_labels(a) | _field_labels(b)
    return Labelled(own, shape, why)


def _field_labels(v: Labelled) -> frozenset[str]:
    """Every label a record literal's fields carry themselves (not those their types declare)."""
    if not v.fields:
        return _NO_LABELS
    out = set()
    for _, fv in v.fields:
        out |= fv.own | _field_labels(fv)
    return frozenset(out)


def _clean(labels) -> frozenset[str]:
    return frozenset(x for x in labels if x != PUBLIC) if labels else _NO_LABELS


def _join_why(*whys: Why) -> Why:
    out: list = []
    seen = set()
    for why in whys:
        for entry in why:
            key = (entry[0], entry[1])
            if key not in seen:
                seen.add(key)
                out.append(entry)
                if len(out) >= _MAX_WHY:
                    return tuple(out)
    return tuple(out)


def _only(why: Why, labels: frozenset[str]) -> Why:
    return tuple(w for w in why if w[0] in labels)


@dataclass(frozen=True)
class _Pc:
    """The control context of a call: labels of the `if` conditions and `for` lists around it.

    A call made only when a condition on `pii` data holds (or once per element of a `pii` list)
    tells whoever receives it something about that data, so each of its sinks must be cleared for
    ``labels`` too. ``where`` is the innermost condition or loop (kind, span), for diagnostics.
    """

    labels: frozenset[str] = _NO_LABELS
    why: Why = ()
    where: tuple = ()  # ("if" | "for" | "flow", span) of the innermost labelled context

    def under(self, labels: frozenset[str], why: Why, kind: str, span: Span) -> "_Pc":
        if not labels - self.labels:
            return self
        return _Pc(self.labels | labels, _join_why(why, self.why), (kind, span))


_NO_PC = _Pc()


# ---- problems (collected over all contexts, reported once) ----------------------------------------


@dataclass
class _Problem:
    code: str
    span: Span
    sink: str
    build: Callable[[frozenset[str], Why], dict]
    labels: set = field(default_factory=set)
    why: Why = ()


@dataclass
class _Sinks:
    uses: dict = field(default_factory=dict)  # (owner, kind, sink, span) -> SinkUse

    def add(self, owner: str, kind: str, sink: str, cleared: frozenset[str], labels: frozenset[str], span: Span):
        key = (owner, kind, sink, span.start, span.end)
        old = self.uses.get(key)
        if old is not None:
            labels = old.labels | labels
        self.uses[key] = SinkUse(owner, kind, sink, cleared, labels, labels <= cleared, span)


# ---- the analysis ---------------------------------------------------------------------------------


class _LabelAnalysis:
    def __init__(self, program: h.Program):
        self.p = program
        self.problems: dict[tuple, _Problem] = {}
        self.sinks = _Sinks()
        self.declassified: dict[tuple[int, int], list] = {}  # span -> [owner, labels, reason, span]
        self.redactions: dict[tuple[int, int], list] = {}  # span -> [owner, span, labels it lowers]
        self.values: dict[tuple[int, int], frozenset[str]] = {}
        self._deep: dict[int, tuple[frozenset[str], Why]] = {}
        self._keep: list = []  # types whose id() is a cache key stay alive
        # flow contexts
        self.done: dict[tuple, Labelled] = {}
        self.approx: dict[tuple, Labelled] = {}
        self.stack: list[tuple] = []
        self.heads: set[tuple] = set()
        self.tainted: set[tuple] = set()
        # agents on their own: labels each template read, context and output carry
        self.standalone_reads: dict[str, dict[int, frozenset[str]]] = {}
        self.standalone_context: dict[str, frozenset[str]] = {}

    def run(self, sink: DiagnosticSink) -> LabelReport:
        outputs: dict[str, frozenset[str]] = {}
        for tool in self.p.tools.values():  # a tool that drops labels is audited like `declassify`
            if tool.declassifies:
                span = tool.spans.get("declassifies", tool.span)
                self.declassified[(span.start, span.end)] = [tool.name, tool.declassifies,
                                                             _declassifies_reason(tool), span]
        for agent in self.p.agents.values():
            out = self.agent_use(agent, None, None)
            outputs[agent.name] = self.whole(out)[0]
        for flow in self.p.flows.values():
            params = tuple(Labelled(_clean(p.labels), p.type, self.param_why(p)) for p in flow.params)
            out = self.flow_result(flow, params)
            outputs[flow.name] = self.whole(out)[0]
        self.emit(sink)
        declassifications = tuple(
            Declassification(owner, frozenset(labels), reason, span)
            for owner, labels, reason, span in sorted(self.declassified.values(), key=lambda d: d[3].start))
        return LabelReport(
            sinks=tuple(sorted(self.sinks.uses.values(), key=lambda s: (s.span.start, s.span.end, s.kind, s.sink))),
            declassifications=declassifications,
            redactions=tuple((owner, span, frozenset(lowers))
                             for owner, span, lowers in (self.redactions[k] for k in sorted(self.redactions))),
            outputs=outputs,
            values=dict(self.values),
        )

    # ---- labels of types and parts ------------------------------------------------------------------

    def deep(self, ty: t.Type | None) -> tuple[frozenset[str], Why]:
        """Every label declared anywhere inside ``ty`` (its fields, their fields, list elements)."""
        if ty is None:
            return _NO_LABELS, ()
        key = id(ty)
        hit = self._deep.get(key)
        if hit is not None:
            return hit
        self._deep[key] = (_NO_LABELS, ())  # guards against a cycle; recursive types are errors anyway
        self._keep.append(ty)
        labels: frozenset[str] = _NO_LABELS
        why: Why = ()
        if isinstance(ty, t.OptionalType):
            labels, why = self.deep(ty.inner)
        elif isinstance(ty, t.ListType):
            labels, why = self.deep(ty.elem)
        elif isinstance(ty, t.RecordType):
            parts = set()
            whys = []
            for f in ty.fields:
                own = _clean(f.labels)
                if own:
                    parts |= own
                    whys.append(self.field_why(ty, f.name, own))
                inner, inner_why = self.deep(f.type)
                parts |= inner
                whys.append(inner_why)
            labels, why = frozenset(parts), _join_why(*whys)
        self._deep[key] = (labels, why)
        return labels, why

    def whole(self, v: Labelled) -> tuple[frozenset[str], Why]:
        """The labels of a value used at once (passed along, or read whole by a prompt)."""
        inner, inner_why = self.deep(v.shape)
        if v.fields:
            parts = [self.whole(fv) for _, fv in v.fields]
            inner = inner.union(*(x[0] for x in parts))
            inner_why = _join_why(inner_why, *(x[1] for x in parts))
        if not inner:
            return v.own, v.why
        if not v.own:
            return inner, inner_why
        return v.own | inner, _join_why(v.why, inner_why)

    def as_whole(self, v: Labelled) -> Labelled:
        labels, why = self.whole(v)
        return Labelled(labels, None, why)

    def get_field(self, v: Labelled, name: str) -> Labelled:
        shape = t.strip_optional(v.shape) if v.shape is not None else None
        info = shape.field(name) if isinstance(shape, t.RecordType) else None
        own, why, fields, part = v.own, v.why, None, None
        if v.fields is not None:
            part = dict(v.fields).get(name)
            if part is not None:  # a record literal's field: what was put there, not the whole record
                own, why, fields = own | part.own, _join_why(why, part.why), part.fields
        if info is None:
            inner = part.shape if part is not None else None
            return Labelled(own, inner, why, fields if inner is not None else None)
        extra = _clean(info.labels)
        if extra:
            own, why = own | extra, _join_why(why, self.field_why(shape, name, extra))
        return Labelled(own, info.type, why, fields)

    def field_why(self, record: t.RecordType, name: str, labels: frozenset[str]) -> Why:
        info = record.field(name)
        origins = dict(info.origins) if info is not None else {}
        fallback = self.p.symbols.get(record.name)
        out = []
        for label in sorted(labels):
            span = origins.get(label) or (fallback.span if fallback is not None else None)
            if span is not None:
                out.append((label, span, f"`{record.name}.{name}` is labelled `{label}`"))
        return tuple(out)

    def param_why(self, p: h.Param) -> Why:
        return tuple((label, p.span, f"`{p.name}` is declared `@{label}`") for label in sorted(_clean(p.labels)))

    # ---- flows ----------------------------------------------------------------------------------------

    def flow_result(self, flow: h.Flow, params: tuple[Labelled, ...], pc: "_Pc | None" = None) -> Labelled:
        """The result of ``flow`` when its parameters carry ``params`` and it is called under the
        control context ``pc`` (the labels of the conditions and loops around the call), memoised."""
        pc = pc or _NO_PC
        key = (flow.name, pc.labels) + tuple((p.own, p.shape is not None, p.fields) for p in params)
        if key in self.done:
            return self.done[key]
        bottom = self.declared_result(flow, Labelled(_NO_LABELS, flow.returns))
        if key in self.stack:
            i = self.stack.index(key)
            self.heads.add(key)
            self.tainted.update(self.stack[i + 1:])
            return self.approx.get(key, bottom)
        self.stack.append(key)
        result = bottom
        for _ in range(_MAX_FIXPOINT_ROUNDS):
            result = self.declared_result(flow, _FlowRun(self, flow, params, pc).run())
            previous = self.approx.get(key)
            self.approx[key] = result
            if key not in self.heads or previous == result:
                break
        self.stack.pop()
        if key in self.tainted:
            self.tainted.discard(key)  # depended on an unfinished approximation: recompute next time
        else:
            self.done[key] = result
        self.heads.discard(key)
        return result

    def declared_result(self, flow: h.Flow, value: Labelled) -> Labelled:
        """A flow's result as its callers see it: at least the labels its result type declares
        (on the type, through aliases, and inside it), whatever the body computed."""
        declared = _clean(flow.return_labels)
        why = value.why
        if declared - value.own:
            sym = self.p.symbols.get(flow.name)
            where = flow.spans.get("->", sym.span if sym is not None else flow.span)
            why = _join_why(why, tuple((x, where, f"`{flow.name}`'s result is declared `@{x}`")
                                       for x in sorted(declared - value.own)))
        shape = flow.returns if flow.returns is not None and not t.is_error(flow.returns) else value.shape
        return Labelled(value.own | declared, shape, why, value.fields if shape is not None else None)

    # ---- agents ---------------------------------------------------------------------------------------

    def agent_use(self, agent: h.Agent, args: dict[str, tuple[Labelled, Span]] | None,
                  site: Span | None) -> Labelled:
        """Check ``agent``'s sinks for one use and return its output.

        ``args`` is None for the agent on its own (parameters carry their declared labels).
        """
        standalone = args is None
        params: dict[str, Labelled] = {}
        arg_spans: dict[str, Span] = {}
        for p in agent.params:
            declared = _clean(p.labels)
            base = Labelled(declared, p.type, self.param_why(p))
            if not standalone and p.name in args:
                value, span = args[p.name]
                arg_spans[p.name] = span
                base = _with_own(value, value.own | declared, p.type if value.shape is not None else None,
                                 _join_why(value.why, base.why))
            params[p.name] = base

        # What the templates read: (index, path, labels, why)
        reads = []
        index = 0
        for which, template in (("prompt", agent.prompt), ("system", agent.system)):
            if template is None:
                continue
            spans = self.template_spans(template)
            k = 0
            for part in template.parts:
                if not isinstance(part, tuple):
                    continue
                value = params.get(part[0])
                if value is not None:
                    for name in part[1:]:
                        value = self.get_field(value, name)
                    labels, why = self.whole(value)
                    reads.append((index, part, labels, why, which, spans[k] if k < len(spans) else None))
                index += 1
                k += 1
        if agent.prompt is None and agent.system is None:  # broken prompt: assume it reads everything
            for p in agent.params:
                labels, why = self.whole(params[p.name])
                reads.append((index, (p.name,), labels, why, "prompt", None))
                index += 1
        if standalone:
            self.standalone_reads[agent.name] = {r[0]: r[2] for r in reads}
        seen_alone = self.standalone_reads.get(agent.name, {})

        prompt_labels = frozenset().union(*(r[2] for r in reads)) if reads else _NO_LABELS
        prompt_why = _join_why(*(r[3] for r in reads))
        site_span = site if site is not None else agent.spans.get("prompt", agent.span)

        # (1) the prompt goes to every model in the chain
        for role_index, model_name in enumerate(agent.chain):
            clearance, provider = self.model_clearance(model_name)
            if clearance is None:
                continue
            self.sinks.add(agent.name, "model", model_name, clearance, prompt_labels, site_span)
            if prompt_labels <= clearance:
                continue
            fallback = role_index > 0 or model_name != agent.model
            for r in reads:
                idx, path, labels, why, which, placeholder = r
                missing = labels - clearance
                if not standalone:
                    missing -= seen_alone.get(idx, _NO_LABELS)
                if not missing:
                    continue
                if standalone:
                    span = agent.spans.get(f"fallback.{model_name}") if fallback else None
                    span = span or placeholder or agent.spans.get(which, agent.span)
                else:
                    span = arg_spans.get(path[0], site_span)
                self.problem("V3001", span, model_name, missing, why,
                             self.prompt_problem(agent, model_name, provider, clearance, fallback, path, which,
                                                 span, standalone and not fallback, placeholder, arg_spans,
                                                 not standalone and path[0] in arg_spans))

        # tools: the model has seen their results
        tool_labels = set()
        tool_whys = []
        for name in agent.tools:
            tool = self.p.tools.get(name)
            if tool is None:
                continue
            result = self.tool_result(tool)
            labels, why = self.whole(result)
            if labels:
                tool_labels |= labels
                where = agent.spans.get(f"tools.{name}", agent.span)
                tool_whys.append(tuple((x, where, f"`{agent.name}` sees the results of `{name}`, "
                                        f"labelled `{x}`") for x in sorted(labels)))
                tool_whys.append(why)
        context = prompt_labels | tool_labels
        context_why = _join_why(prompt_why, *tool_whys)
        if standalone:
            self.standalone_context[agent.name] = context
            self.tool_results_to_models(agent)

        # (3) the arguments the model writes for its tools carry everything it has seen
        for name in agent.tools:
            tool = self.p.tools.get(name)
            if tool is None:
                continue
            clearance = self.tool_clearance(tool)
            self.sinks.add(agent.name, "tool_choice", name, clearance, context,
                           site_span if not standalone else agent.spans.get(f"tools.{name}", agent.span))
            missing = context - clearance
            if not missing:
                continue
            if standalone:
                span = agent.spans.get(f"tools.{name}", agent.span)
                shown = tuple((r[1], r[5]) for r in reads if r[2] & missing and r[5] is not None)
                self.problem("V3003", span, name, missing, context_why,
                             self.tool_choice_problem(agent, tool, clearance, span, None, shown))
                continue
            missing -= self.standalone_context.get(agent.name, _NO_LABELS)
            for r in reads:
                extra = (r[2] & missing) - seen_alone.get(r[0], _NO_LABELS)
                if not extra or r[1][0] not in arg_spans:
                    continue
                span = arg_spans[r[1][0]]
                self.problem("V3003", span, name, extra, r[3],
                             self.tool_choice_problem(agent, tool, clearance, span, r[1], ((r[1], r[5]),)))

        # the output: what the model has seen, and what its result type declares
        returns = _clean(agent.return_labels)
        out_why = context_why
        if returns:
            sym = self.p.symbols.get(agent.name)
            where = sym.span if sym is not None else agent.span
            out_why = _join_why(tuple((x, where, f"`{agent.name}`'s result is labelled `{x}`")
                                      for x in sorted(returns)), out_why)
        if site is not None and context:
            hop = tuple((x, site, f"the output of `{agent.name}` carries `{x}`: its model has seen it")
                        for x in sorted(context))
            out_why = _join_why(hop, out_why)
        output = Labelled(context | returns, agent.returns, out_why)

        # (4) judges in the agent's gates read the output (and so what it was computed from)
        out_labels, why = self.whole(output)
        for gate_name in agent.gates:
            gate = self.p.gates.get(gate_name)
            if gate is None:
                continue
            for judge_model, judge_span in _judges(gate):
                clearance, provider = self.model_clearance(judge_model)
                if clearance is None:
                    continue
                self.sinks.add(gate.name, "judge", judge_model, clearance, out_labels, judge_span)
                missing = out_labels - clearance
                if missing:
                    self.problem("V3004", judge_span, judge_model, missing, why,
                                 self.judge_problem(agent, gate, judge_model, provider, clearance, judge_span))
        return output

    def tool_results_to_models(self, agent: h.Agent) -> None:
        """(2) Each tool's result goes back to the agent's model, and so to every model of its chain."""
        for name in agent.tools:
            tool = self.p.tools.get(name)
            if tool is None:
                continue
            labels, why = self.whole(self.tool_result(tool))
            span = agent.spans.get(f"tools.{name}", agent.span)
            for role_index, model_name in enumerate(agent.chain):
                clearance, provider = self.model_clearance(model_name)
                if clearance is None:
                    continue
                self.sinks.add(agent.name, "model", model_name, clearance, labels, span)
                missing = labels - clearance
                if missing:
                    fallback = role_index > 0 or model_name != agent.model
                    self.problem("V3005", span, model_name, missing, why,
                                 self.tool_result_problem(agent, tool, model_name, provider, clearance, fallback,
                                                          span))

    def agent_sinks(self, agent: h.Agent) -> list[tuple[str, str, frozenset[str], Span | None]]:
        """Every place a call of ``agent`` reaches: (kind, name, clearance, where the agent names it)."""
        out = []
        for role_index, model_name in enumerate(agent.chain):
            clearance, _ = self.model_clearance(model_name)
            if clearance is not None:
                fallback = role_index > 0 or model_name != agent.model
                out.append(("model", model_name, clearance,
                            agent.spans.get(f"fallback.{model_name}" if fallback else "model")))
        for name in agent.tools:
            tool = self.p.tools.get(name)
            if tool is not None:
                out.append(("tool_choice", name, self.tool_clearance(tool), agent.spans.get(f"tools.{name}")))
        for gate_name in agent.gates:
            gate = self.p.gates.get(gate_name)
            for judge_model, judge_span in (_judges(gate) if gate is not None else ()):
                clearance, _ = self.model_clearance(judge_model)
                if clearance is not None:
                    out.append(("judge", judge_model, clearance, judge_span))
        return out

    def receipt_part(self, v: Labelled, receipt: t.ReceiptType, name: str) -> Labelled:
        """`r.id`, `r.args`, `r.result`: what the receipt carries, and what the tool declares on the
        part read (its parameters' labels on `args`, its result's on `result`). The arguments are
        the call's as given, before the tool lowered what it `declassifies`: they may carry it."""
        tool = self.p.tools.get(receipt.tool)
        if tool is None or name not in ("args", "result"):
            return Labelled(v.own, t.STR if name == "id" else None, v.why)
        if name == "result":
            declared = self.tool_result(tool)
            return Labelled(v.own | declared.own, tool.returns, _join_why(v.why, declared.why))
        _, args, _ = t.receipt_fields(tool.name, ((p.name, p.type, p.labels) for p in tool.params), tool.returns)
        kept = _clean(tool.declassifies)
        why = tuple((x, tool.span, f"`{tool.name}` declassifies `{x}` in its result, not in its receipt's arguments")
                    for x in sorted(kept))
        return Labelled(v.own | kept, args.type, _join_why(v.why, why))

    def tool_result(self, tool: h.Tool) -> Labelled:
        labels = _clean(tool.return_labels)
        why: Why = ()
        if labels:
            sym = self.p.symbols.get(tool.name)
            where = sym.span if sym is not None else tool.span
            why = tuple((x, where, f"`{tool.name}` returns data labelled `{x}`") for x in sorted(labels))
        return Labelled(labels, tool.returns, why)

    def model_clearance(self, name: str) -> tuple[frozenset[str] | None, str | None]:
        model = self.p.models.get(name)
        if model is None:
            return None, None
        provider = self.p.providers.get(model.provider)
        if provider is None:
            return None, None
        return _clean(provider.clearance) | {PUBLIC}, provider.name

    @staticmethod
    def tool_clearance(tool: h.Tool) -> frozenset[str]:
        return _clean(tool.clearance) | {PUBLIC}

    def template_spans(self, template: h.Template) -> list[Span | None]:
        return list(template.placeholder_spans)

    # ---- recording ------------------------------------------------------------------------------------

    def problem(self, code: str, span: Span, sink_name: str, labels: frozenset[str], why: Why, build) -> None:
        key = (code, span.start, span.end, sink_name)
        found = self.problems.get(key)
        if found is None:
            found = self.problems[key] = _Problem(code, span, sink_name, build)
        found.labels |= labels
        found.why = _join_why(found.why, _only(why, labels))

    def emit(self, sink: DiagnosticSink) -> None:
        for pr in sorted(self.problems.values(), key=lambda x: (x.span.start, x.span.end, x.code, x.sink)):
            labels = frozenset(pr.labels)
            parts = pr.build(labels, pr.why)
            origins = []
            seen = set()
            for label, span, message in pr.why:
                if label in labels and (span.start, span.end) not in seen and span != pr.span:
                    seen.add((span.start, span.end))
                    origins.append(Label(span, message))
            report = sink.warning if pr.code in _WARNINGS else sink.error
            report(pr.code, parts["message"], pr.span,
                   labels=(*parts.get("first", ()), *origins[:4], *parts.get("labels", ())),
                   notes=parts.get("notes", ()), help=parts.get("help"), fix=parts.get("fix"))

    # ---- messages -------------------------------------------------------------------------------------

    def clearance_label(self, kind: str, name: str, clearance: frozenset[str], spans: dict) -> Label | None:
        if "clearance" in spans:
            return Label(spans["clearance"], f"`{name}` is cleared for {_show(clearance)}")
        sym = self.p.symbols.get(name)
        if sym is None:
            return None
        return Label(sym.span, f"{kind} `{name}` has no `clearance`: public data only")

    def prompt_problem(self, agent, model_name, provider_name, clearance, fallback, path, which, span,
                       at_placeholder, placeholder, arg_spans, at_argument):
        provider = self.p.providers.get(provider_name)
        role = "a fallback model" if fallback else "its primary model"
        where = "system prompt" if which == "system" else "prompt"
        shown = "{" + ".".join(path) + "}"

        def build(labels, why):
            message = (f"`{agent.name}`'s {where} may be sent to `{model_name}` ({role}), but provider "
                       f"`{provider_name}` is not cleared for {_show(labels)}")
            first = []
            if at_argument:
                first.append(Label(span, f"this carries {_show(labels)} into `{shown}`"))
            elif at_placeholder:
                first.append(Label(span, f"`{shown}` carries {_show(labels)}"))
            else:
                first.append(Label(span, f"the {where} may go to `{model_name}` when the models before it fail"
                                   if fallback else f"`{model_name}` receives the {where}"))
            more = []
            if not at_placeholder and placeholder is not None and placeholder != span:
                more.append(Label(placeholder, f"the {where} reads `{shown}` here"))
            model_span = agent.spans.get(f"fallback.{model_name}") if fallback else agent.spans.get("model")
            if model_span is not None and model_span != span:
                more.append(Label(model_span, "a fallback: the prompt goes here when the models before it fail"
                                  if fallback else f"`{agent.name}` runs on `{model_name}`"))
            if provider is not None:
                cl = self.clearance_label("provider", provider_name, clearance, provider.spans)
                if cl is not None:
                    more.append(cl)
            names = _show(labels)
            redactable = not kept_by_redact(labels)
            options = []
            if at_argument and redactable:
                options.append("wrap the argument in `redact(...)` (the runtime scrubs personal data)")
            options.append(f"add {names} to the clearance of provider `{provider_name}` if your agreement with "
                           f"it allows")
            if fallback:
                options.append(f"remove `{model_name}` from `fallback`")
            if at_argument:
                help_ = "; ".join(options) + "; or, if a person has decided it is not sensitive here, " \
                    "`declassify(x, reason: \"...\")`"
            elif redactable:
                options.append(f"or let the prompt read a `redact(...)`ed copy: a parameter without {names}, "
                               f"given `redact(...)` where `{agent.name}` is called")
                help_ = "; ".join(options)
            else:
                options.append(f"or let the prompt read a parameter without {names}")
                help_ = "; ".join(options)
            if not redactable:
                help_ += f" ({_redact_remark(labels)})"
            fix = _redact_fix(span) if at_argument and redactable else None
            return {"message": message, "first": first, "labels": more, "help": help_, "fix": fix}

        return build

    def tool_choice_problem(self, agent: h.Agent, tool: h.Tool, clearance, span: Span, path, shown):
        def build(labels, why):
            message = (f"`{agent.name}` may call `{tool.name}` with arguments its model writes, and the model has "
                       f"seen {_show(labels)}; `{tool.name}` is not cleared for it")
            first = []
            more = []
            item = agent.spans.get(f"tools.{tool.name}")
            if path is not None:
                first.append(Label(span, f"this carries {_show(labels)} into `{{{'.'.join(path)}}}`"))
                if item is not None:
                    more.append(Label(item, f"`{agent.name}` may call `{tool.name}`"))
            else:
                first.append(Label(span, f"the model chooses the arguments of `{tool.name}`"))
            for read_path, read_span in shown[:2]:
                if read_span is not None and read_span != span:
                    more.append(Label(read_span, f"the model sees `{{{'.'.join(read_path)}}}`"))
            cl = self.clearance_label("tool", tool.name, clearance, tool.spans)
            if cl is not None:
                more.append(cl)
            names = _show(labels)
            redactable = not kept_by_redact(labels)
            options = []
            if path is not None and redactable:
                options.append("wrap the argument in `redact(...)`")
            options += [f"add {names} to the clearance of tool `{tool.name}`",
                        f"or remove `{tool.name}` from the `tools` of `{agent.name}`"]
            help_ = ", ".join(options) + ("" if redactable or path is None else f" ({_redact_remark(labels)})")
            return {"message": message, "first": first, "labels": more, "help": help_,
                    "fix": _redact_fix(span) if path is not None and redactable else None}

        return build

    def tool_result_problem(self, agent: h.Agent, tool: h.Tool, model_name: str, provider_name, clearance,
                            fallback: bool, span: Span):
        provider = self.p.providers.get(provider_name)
        role = "a fallback model" if fallback else "its primary model"

        def build(labels, why):
            names = _show(labels)
            message = (f"the results of `{tool.name}` carry {names} and go back to `{agent.name}`'s model "
                       f"`{model_name}` ({role}), but provider `{provider_name}` is not cleared for it")
            first = [Label(span, f"`{agent.name}` may call `{tool.name}` and read its result")]
            more = []
            model_span = agent.spans.get(f"fallback.{model_name}") if fallback else agent.spans.get("model")
            if model_span is not None:
                more.append(Label(model_span, f"the result may go to `{model_name}` when the models before it fail"
                                  if fallback else f"`{agent.name}` runs on `{model_name}`"))
            if provider is not None:
                cl = self.clearance_label("provider", provider_name, clearance, provider.spans)
                if cl is not None:
                    more.append(cl)
            options = [f"add {names} to the clearance of provider `{provider_name}` if your agreement with it allows"]
            if fallback:
                options.append(f"remove `{model_name}` from `fallback`")
            options += [f"remove `{tool.name}` from the `tools` of `{agent.name}`",
                        f"or have `{tool.name}` return redacted data: a result type without {names}"]
            return {"message": message, "first": first, "labels": more, "help": "; ".join(options), "fix": None}

        return build

    def implicit_problem(self, callee: str, kind: str, sink_name: str, clearance, sink_span, span: Span, pc: _Pc):
        where_kind, where_span = pc.where if pc.where else ("if", None)
        tool = self.p.tools.get(sink_name) if kind in ("tool", "tool_choice") else None

        def build(labels, why):
            names = _show(labels)
            if where_kind == "for":
                how = f"runs once per element of a list that carries {names}"
            else:
                how = f"happens only when a condition on {names} data holds"
            if kind == "model" or kind == "judge":
                _, provider_name = self.model_clearance(sink_name)
                what = f"model `{sink_name}` (provider `{provider_name}`)"
                sink_decl = self.p.providers.get(provider_name)
                cl = self.clearance_label("provider", provider_name, clearance, sink_decl.spans) if sink_decl else None
                clear = f"add {names} to the clearance of provider `{provider_name}`"
            else:
                what = f"tool `{sink_name}`"
                cl = self.clearance_label("tool", sink_name, clearance, tool.spans) if tool is not None else None
                clear = f"add {names} to the clearance of tool `{sink_name}`"
            message = (f"this call of `{callee}` {how}, so {what} learns something about it, but it is not "
                       f"cleared for {names}")
            first = [Label(span, f"how often this call happens depends on {names} data" if where_kind == "for"
                           else f"whether this call happens depends on {names} data")]
            more = []
            if where_span is not None and where_span != span:
                more.append(Label(where_span, "the loop runs over this list" if where_kind == "for"
                                  else "this condition decides whether the call happens"))
            if sink_span is not None and sink_span != span:
                more.append(Label(sink_span, f"`{callee}` reaches `{sink_name}`"))
            if cl is not None:
                more.append(cl)
            if kept_by_redact(labels):
                help_ = (f"{clear}; or decide on data without {names} (the condition or list through "
                         f"`declassify(x, reason: \"...\")` if a person has decided it is not sensitive here; "
                         f"{_redact_remark(labels)}); or make the call unconditionally")
            else:
                help_ = (f"{clear}; or decide on data without {names} (the condition or list through `redact(...)`, "
                         f"or `declassify(x, reason: \"...\")` if a person has decided it is not sensitive here); "
                         f"or make the call unconditionally")
            return {"message": message, "first": first, "labels": more, "help": help_, "fix": None}

        return build

    def judge_problem(self, agent: h.Agent, gate: h.Gate, model_name: str, provider_name, clearance, span):
        provider = self.p.providers.get(provider_name)

        def build(labels, why):
            message = (f"judge model `{model_name}` reads the output of `{agent.name}`, which carries "
                       f"{_show(labels)}, but provider `{provider_name}` is not cleared for it")
            first = [Label(span, f"`{model_name}` reads the output of `{agent.name}`")]
            more = []
            item = agent.spans.get(f"gates.{gate.name}")
            if item is not None:
                more.append(Label(item, f"`{agent.name}`'s output goes through `{gate.name}`"))
            if provider is not None:
                cl = self.clearance_label("provider", provider_name, clearance, provider.spans)
                if cl is not None:
                    more.append(cl)
            cleared = sorted(m for m in self.p.models
                             if m != model_name and (c := self.model_clearance(m)[0]) is not None and labels <= c)
            names = _show(labels)
            fix = None
            if cleared:
                help_ = (f"judge with a model whose provider is cleared for {names}, such as `{cleared[0]}`, or add "
                         f"{names} to the clearance of provider `{provider_name}`")
                fix = Fix(f"judge with `{cleared[0]}`", (TextEdit(span, cleared[0]),))
            else:
                help_ = (f"judge with a model whose provider is cleared for {names}, or add {names} to the "
                         f"clearance of provider `{provider_name}`")
            return {"message": message, "first": first, "labels": more, "help": help_, "fix": fix}

        return build

    def redact_problem(self, span: Span):
        def build(labels, why):
            names = _show(labels)
            it = "it" if len(labels) == 1 else "them"
            message = f"`redact(...)` keeps {names} on its result: no detector of the scrubber covers {it}"
            first = [Label(span, f"the redacted copy still carries {names}")]
            covered = [f"`{label}` ({_words(kinds)})" for label, kinds in DETECTORS_OF_LABEL.items()]
            notes = (f"`redact` removes only the labels its detectors cover: {_and(covered)}; any other label stays "
                     f"on its result, so every sink that receives the copy must still be cleared for {names}",)
            declassifies = ", ".join(sorted(labels))
            help_ = (f"if a person has decided that this value is not sensitive here, use "
                     f"`declassify(x, reason: \"...\")` instead; or pass it through a tool that declares "
                     f"`declassifies: [{declassifies}]` (both are audited); or send the copy only where {names} "
                     f"{'is' if len(labels) == 1 else 'are'} cleared")
            return {"message": message, "first": first, "notes": notes, "help": help_, "fix": None}

        return build


class _FlowRun:
    """One walk of a flow's body with one assignment of parameter labels."""

    def __init__(self, an: _LabelAnalysis, flow: h.Flow, params: tuple[Labelled, ...], pc: _Pc = _NO_PC):
        self.an = an
        self.flow = flow
        self.params = {p.name: v for p, v in zip(flow.params, params)}
        self.env: dict[tuple, Labelled] = {}
        self.returned: Labelled | None = None
        self.pc = pc
        self.entry_pc = pc.labels  # the caller's context: it already covers whatever uses the result

    def run(self) -> Labelled:
        self.block(self.flow.body)
        if self.returned is None:
            return Labelled(_NO_LABELS, self.flow.returns)
        return self.returned

    # ---- statements ---------------------------------------------------------------------------------

    def block(self, stmts) -> None:
        for s in stmts:
            self.stmt(s)

    def stmt(self, s) -> None:
        if isinstance(s, h.LetStmt):
            value = self.expr(s.value)
            declared = _clean(s.symbol.labels)
            if declared:
                why = tuple((x, s.symbol.span, f"`{s.symbol.name}` is declared `@{x}`") for x in sorted(declared))
                value = _with_own(value, value.own | declared, value.shape, _join_why(value.why, why))
            self.env[_key(s.symbol)] = value
        elif isinstance(s, h.IfStmt):
            labels, why = self.an.whole(self.expr(s.cond))
            outer = self.pc
            self.pc = outer.under(labels, why, "if", s.cond.span)
            self.block(s.then)
            self.block(s.orelse)
            self.pc = outer
        elif isinstance(s, h.ParStmt):
            self.block(s.branches)
        elif isinstance(s, h.ReturnStmt):
            if s.value is not None:
                value = self.expr(s.value)
                inner = self.pc.labels - self.entry_pc
                if inner:  # which `return` runs tells the caller about the conditions around it
                    value = _with_own(value, value.own | inner, value.shape,
                                      _join_why(value.why, _only(self.pc.why, inner)))
                self.returned = _join(self.returned, value)
        elif isinstance(s, h.ExprStatement):
            self.expr(s.expr)

    # ---- expressions --------------------------------------------------------------------------------

    def expr(self, e) -> Labelled:
        method = getattr(self, "_" + type(e).__name__, None)
        value = method(e) if method is not None else PUBLIC_VALUE
        span = getattr(e, "span", None)
        if span is not None:
            key = (span.start, span.end)
            labels = self.an.whole(value)[0]
            old = self.an.values.get(key)
            self.an.values[key] = labels if old is None else old | labels
        return value

    def _Lit(self, e):
        return PUBLIC_VALUE

    _EnumValue = _Ref = _ErrorExpr = _Lit

    def _Var(self, e: h.Var):
        sym = e.symbol
        if sym.kind == "param" and sym.name in self.params:
            return self.params[sym.name]
        found = self.env.get(_key(sym))
        if found is not None:
            return found
        return Labelled(_clean(sym.labels), sym.type)

    def _RecordValue(self, e: h.RecordValue):
        # Each field keeps what was put in it; the record carries nothing beyond its fields.
        return Labelled(_NO_LABELS, e.type, (), tuple((name, self.expr(v)) for name, v in e.fields))

    def _ListValue(self, e: h.ListValue):
        return self._union(e.items, e.type)

    def _union(self, exprs, shape) -> Labelled:
        labels = set()
        whys = []
        for x in exprs:
            own, why = self.an.whole(self.expr(x))
            labels |= own
            whys.append(why)
        return Labelled(frozenset(labels), shape, _join_why(*whys))

    def _GetField(self, e: h.GetField):
        receipt = t.strip_optional(e.target.type)
        if isinstance(receipt, t.ReceiptType):
            return self.an.receipt_part(self.expr(e.target), receipt, e.name)
        return self.an.get_field(self.expr(e.target), e.name)

    def _GetIndex(self, e: h.GetIndex):
        target = self.expr(e.target)
        index, index_why = self.an.whole(self.expr(e.index))
        shape = t.strip_optional(target.shape) if target.shape is not None else None
        elem = shape.elem if isinstance(shape, t.ListType) else None
        return Labelled(target.own | index, elem, _join_why(target.why, index_why))

    def _UnaryExpr(self, e: h.UnaryExpr):
        return self.an.as_whole(self.expr(e.operand))

    def _BinaryExpr(self, e: h.BinaryExpr):
        return self._union((e.left, e.right), None)

    def _RateExpr(self, e: h.RateExpr):
        return self.an.as_whole(self.expr(e.amount))

    def _ForEach(self, e: h.ForEach):
        iterable = self.expr(e.iterable)
        shape = t.strip_optional(iterable.shape) if iterable.shape is not None else None
        elem = shape.elem if isinstance(shape, t.ListType) else None
        self.env[_key(e.var)] = Labelled(iterable.own, elem, iterable.why)
        outer = self.pc
        # How many times the body runs depends on the list: its calls are sinks for the list's labels.
        self.pc = outer.under(iterable.own, iterable.why, "for", e.iterable.span)
        self.block(e.body)
        if e.result is None:
            self.pc = outer
            return Labelled(iterable.own, None, iterable.why)
        result = self.expr(e.result)
        self.pc = outer
        own = iterable.own | result.own | _field_labels(result)  # elements of a list are not tracked per field
        return Labelled(own, t.ListType(result.shape) if result.shape is not None else None,
                        _join_why(iterable.why, result.why))

    def _CallExpr(self, e: h.CallExpr):
        if e.kind == "builtin":
            return self.builtin(e)
        args = [(name, x, self.expr(x)) for name, x in e.args]
        if e.kind == "tool":
            tool = self.an.p.tools.get(e.name)
            if tool is None:
                return Labelled(_NO_LABELS, e.type)
            self.tool_call(tool, args)
            self.implicit(e, [("tool", tool.name, self.an.tool_clearance(tool), None)])
            return self.tool_result_of_call(tool, args, e.span)
        if e.kind == "agent":
            agent = self.an.p.agents.get(e.name)
            if agent is None:
                return Labelled(_NO_LABELS, e.type)
            self.implicit(e, self.an.agent_sinks(agent))
            return self.an.agent_use(agent, {name: (v, x.span) for name, x, v in args}, e.span)
        if e.kind == "flow":
            callee = self.an.p.flows.get(e.name)
            if callee is None:
                return Labelled(_NO_LABELS, e.type)
            given = {name: (v, x.span) for name, x, v in args}
            params = []
            for p in callee.params:
                declared = _clean(p.labels)
                if p.name not in given:
                    params.append(Labelled(declared, p.type, self.an.param_why(p)))
                    continue
                v, span = given[p.name]
                hop = tuple((x, span, f"`{callee.name}` is called with `{x}` data here") for x in sorted(v.own))
                params.append(_with_own(v, v.own | declared, p.type if v.shape is not None else None,
                                        _join_why(hop, v.why, self.an.param_why(p))))
            pc = self.pc
            if pc.labels:  # everything the callee does happens under this call's conditions
                hop = tuple((x, e.span, f"`{callee.name}` is called here under a condition on `{x}` data")
                            for x in sorted(pc.labels))
                pc = _Pc(pc.labels, _join_why(hop, pc.why), pc.where)
            return self.an.flow_result(callee, tuple(params), pc)
        return Labelled(_NO_LABELS, None)

    def builtin(self, e: h.CallExpr) -> Labelled:
        args = {name: x for name, x in e.args}
        if e.name == "redact":
            # The scrubber lowers only the labels its detectors cover (compiler/redaction.py); any
            # other label stays on the copy, whole: the structure no longer speaks for the value.
            labels, why = self.an.whole(self.expr(args["x"])) if "x" in args else (_NO_LABELS, ())
            entry = self.an.redactions.setdefault((e.span.start, e.span.end), [self.flow.name, e.span, _NO_LABELS])
            entry[2] = entry[2] | lowered_by_redact(labels)
            kept = kept_by_redact(labels)
            if not kept:
                return PUBLIC_VALUE
            self.an.problem("V3007", e.span, "redact", kept, why, self.an.redact_problem(e.span))
            hop = tuple((x, e.span, f"`redact` keeps `{x}`: no detector of the scrubber covers it")
                        for x in sorted(kept))
            return Labelled(kept, None, _join_why(hop, _only(why, kept)))
        if e.name == "declassify":
            labels = _NO_LABELS
            if "x" in args:
                labels = self.an.whole(self.expr(args["x"]))[0]
            reason = args.get("reason")
            text = reason.value if isinstance(reason, h.Lit) and isinstance(reason.value, str) else ""
            if reason is not None:
                self.expr(reason)
            key = (e.span.start, e.span.end)
            entry = self.an.declassified.setdefault(key, [self.flow.name, frozenset(), text, e.span])
            entry[1] = entry[1] | labels
            return PUBLIC_VALUE
        if e.name == "receipt":
            return PUBLIC_VALUE
        return self._union([x for _, x in e.args], None)

    def tool_result_of_call(self, tool: h.Tool, args, span: Span) -> Labelled:
        """A tool's result: what its declaration labels, and what its arguments carry, except the
        labels it declares it drops (`declassifies`), which are recorded for the audit."""
        result = self.an.tool_result(tool)
        carried: set = set()
        whys = []
        for name, x, value in args:
            labels, why = self.an.whole(value)
            carried |= labels
            whys.append(why)
        dropped = frozenset(carried) & tool.declassifies
        if dropped:
            key = (span.start, span.end)
            entry = self.an.declassified.setdefault(key, [self.flow.name, frozenset(), _declassifies_reason(tool), span])
            entry[1] = entry[1] | dropped
        kept = frozenset(carried) - tool.declassifies
        if not kept:
            return result
        hop = tuple((x, span, f"`{tool.name}` is given `{x}` data here, so its result carries it")
                    for x in sorted(kept))
        return Labelled(result.own | kept, result.shape, _join_why(result.why, hop, _only(_join_why(*whys), kept)))

    def implicit(self, e: h.CallExpr, sinks) -> None:
        """Report the sinks of a call that are not cleared for the labels of its control context."""
        pc = self.pc
        if not pc.labels:
            return
        for kind, name, clearance, span_of_sink in sinks:
            self.an.sinks.add(self.flow.name, kind, name, clearance, pc.labels, e.span)
            missing = pc.labels - clearance
            if missing:
                self.an.problem("V3006", e.span, name, missing, pc.why,
                                self.an.implicit_problem(e.name, kind, name, clearance, span_of_sink, e.span, pc))

    def tool_call(self, tool: h.Tool, args) -> None:
        clearance = self.an.tool_clearance(tool)
        url_params = _url_params(tool)
        for name, x, value in args:
            labels, why = self.an.whole(value)
            kind = "url" if name in url_params else "tool"
            self.an.sinks.add(self.flow.name, kind, tool.name, clearance, labels, x.span)
            missing = labels - clearance
            if missing:
                self.an.problem("V3002", x.span, tool.name, missing, why,
                                self.tool_problem(tool, name, kind == "url", clearance, x.span))

    def tool_problem(self, tool: h.Tool, param: str, in_url: bool, clearance, span: Span):
        an = self.an

        def build(labels, why):
            if in_url:
                message = (f"argument `{param}` of `{tool.name}` carries {_show(labels)} and becomes part of the "
                           f"URL of its HTTP binding, but `{tool.name}` is not cleared for it")
            else:
                message = f"argument `{param}` of `{tool.name}` carries {_show(labels)}, but `{tool.name}` is not " \
                    "cleared for it"
            first = [Label(span, f"this carries {_show(labels)}")]
            more = []
            if in_url and "bind" in tool.spans:
                more.append(Label(tool.spans["bind"], f"`{{{param}}}` is sent in the URL"))
            cl = an.clearance_label("tool", tool.name, clearance, tool.spans)
            if cl is not None:
                more.append(cl)
            names = _show(labels)
            if kept_by_redact(labels):
                help_ = (f"add {names} to the clearance of tool `{tool.name}`; or, if a person has decided it is not "
                         f"sensitive here, `declassify(x, reason: \"...\")` ({_redact_remark(labels)})")
                return {"message": message, "first": first, "labels": more, "help": help_, "fix": None}
            help_ = (f"wrap the argument in `redact(...)` (the runtime scrubs personal data), or add {names} to "
                     f"the clearance of tool `{tool.name}`; or, if a person has decided it is not sensitive here, "
                     "`declassify(x, reason: \"...\")`")
            return {"message": message, "first": first, "labels": more, "help": help_, "fix": _redact_fix(span)}

        return build


# ---- helpers ------------------------------------------------------------------------------------


def _declassifies_reason(tool: h.Tool) -> str:
    names = ", ".join(sorted(tool.declassifies))
    return f"tool `{tool.name}` declares `declassifies: [{names}]`: its result does not carry them"


def _key(sym: h.Symbol) -> tuple:
    return (sym.kind, sym.name, sym.span.start, sym.span.end)


def _show(labels) -> str:
    """`pii` / `pii` and `payment` / `a`, `b` and `c`; for a clearance, `public` first.

    >>> _show(frozenset({"pii"})), _show(frozenset({"public", "pii", "payment"}))
    ('`pii`', '`public`, `payment` and `pii`')
    """
    names = sorted(labels, key=lambda x: (x != PUBLIC, x))
    quoted = [f"`{x}`" for x in names]
    if len(quoted) == 1 and names[0] == PUBLIC:
        return "`public` only"
    if len(quoted) <= 1:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _redact_remark(labels) -> str:
    """Why `redact` is no way out for ``labels`` (some of which no detector covers)."""
    kept, lowered = kept_by_redact(labels), lowered_by_redact(labels)
    it = "it" if len(kept) == 1 else "them"
    if lowered:
        return (f"`redact(...)` would remove {_show(lowered)} but not {_show(kept)}: no detector of the scrubber "
                f"covers {it}")
    return f"`redact(...)` cannot remove {_show(kept)}: no detector of the scrubber covers {it}"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _words(kinds) -> str:
    """What detector ``kinds`` find, in words: `e-mail addresses, phone numbers and IP addresses`."""
    return _and([KIND_WORDS[k] for k in kinds])


def _redact_fix(span: Span) -> Fix:
    return Fix("wrap it in `redact(...)`", (TextEdit(Span(span.start, span.start), "redact("),
                                             TextEdit(Span(span.end, span.end), ")")))


def _url_params(tool: h.Tool) -> frozenset[str]:
    if tool.binding is None or tool.binding.kind != "http":
        return _NO_LABELS
    out = set()
    for m in _URL_PLACEHOLDER.finditer(tool.binding.target):
        if m.group(1):
            out.add(m.group(1).split(".")[0].strip())
    return frozenset(out)


def _judges(gate: h.Gate):
    """(model name, span of the model argument) of every `judge(...)` in ``gate``'s checks."""
    out = []
    for check in gate.checks:
        for e in expressions(check.cond):
            judge = SIGNALS[e.name].judge if isinstance(e, h.CallExpr) and e.kind == "signal" and e.name in SIGNALS \
                else None
            if judge is not None:  # a signal that sends the answer to a model
                out.extend((arg.symbol.name, arg.span) for name, arg in e.args
                           if name == judge and isinstance(arg, h.Ref))
    return sorted(out, key=lambda x: x[1].start)
