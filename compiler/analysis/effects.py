"""Effects and receipts (V4): what a run may change in the world, and the proof that it did.

A `write` or `external` tool is *effectful*: the runtime signs every call of it into the run's
receipt ledger, and only such a call gives a `Receipt[tool]`. This pass

* lists every place an effectful tool can run (:class:`EffectSite`): each call of one in a flow,
  and each agent that has one in its `tools`;
* closes the ways a receipt could be forged: a tool whose result claims a receipt (V4002), a
  flow value in a receipt position that does not come from a call of its tool (V4001), an agent
  output that claims a receipt of a tool the agent cannot call (V4003), a receipt of a tool that
  is never receipted (V4004);
* warns where a crash, a resume or a retry could repeat an action (V4005, V4007) and where an
  approval guards nothing (V4006).

Like every analysis it runs on programs with name and type errors too, and stays quiet where an
earlier error already explains the problem (error types, unknown names, a missing model).
"""

from __future__ import annotations

from collections.abc import Iterator

from vox.compiler.analysis.results import EffectReport, EffectSite
from vox.compiler.diagnostics.model import DiagnosticSink, Fix, Label, TextEdit
from vox.compiler.hir import nodes as h
from vox.compiler.hir.walk import calls_in_block
from vox.compiler.hir import types as t
from vox.compiler.source import Span

EFFECTFUL = ("write", "external")
_UNRECEIPTED = ("pure", "read")


def analyse_effects(program: h.Program, sink: DiagnosticSink) -> EffectReport:
    """Find the effect sites of ``program`` and check its receipts; report V4xxx to ``sink``."""
    return _Effects(program, sink).run()


# ---- receipts inside types -----------------------------------------------------------------------


def receipt_paths(ty: t.Type, path: str = "") -> list[tuple[str, t.ReceiptType]]:
    """Every `Receipt[...]` inside ``ty``, with the field path that reaches it.

    >>> receipt_paths(t.OptionalType(t.ReceiptType("refund")))
    [('', ReceiptType(tool='refund'))]
    >>> r = t.RecordType("R", (t.FieldInfo("ids", t.ListType(t.ReceiptType("send"))),))
    >>> receipt_paths(r)
    [('ids[]', ReceiptType(tool='send'))]
    """
    out: list[tuple[str, t.ReceiptType]] = []
    _collect_receipts(ty, path, out, set())
    return out


def _collect_receipts(ty: t.Type, path: str, out: list, seen: set[str]) -> None:
    if isinstance(ty, t.ReceiptType):
        out.append((path, ty))
    elif isinstance(ty, t.OptionalType):
        _collect_receipts(ty.inner, path, out, seen)
    elif isinstance(ty, t.ListType):
        _collect_receipts(ty.elem, path + "[]", out, seen)
    elif isinstance(ty, t.RecordType) and ty.name not in seen:
        for f in ty.fields:
            _collect_receipts(f.type, f"{path}.{f.name}" if path else f.name, out, seen | {ty.name})


def contains_receipt(ty: t.Type | None) -> bool:
    return ty is not None and bool(receipt_paths(ty))


def _where(path: str, receipt: t.ReceiptType) -> str:
    return f"`{receipt.show()}`" + (f" (at `{path}`)" if path else "")


# ---- the pass ------------------------------------------------------------------------------------


class _Effects:
    def __init__(self, program: h.Program, sink: DiagnosticSink):
        self.p = program
        self.sink = sink
        self.sites: list[EffectSite] = []
        self.warned_repeat: set[tuple[str, str]] = set()  # (owner, tool): one V4005 each

    def run(self) -> EffectReport:
        for tool in self.p.tools.values():
            self.tool_declaration(tool)
        self.receipt_type_uses()
        called_agents = set()
        for flow in self.p.flows.values():
            for call in _calls_in_flow(flow):
                if call.kind == "agent":
                    called_agents.add(call.name)
            self.flow(flow)
        for agent in self.p.agents.values():
            self.agent(agent, reachable=agent.name in called_agents)
        receipted = frozenset(n for n, tool in self.p.tools.items() if tool.effect in EFFECTFUL)
        approval = frozenset(n for n, tool in self.p.tools.items() if tool.approval == "human")
        sites = tuple(sorted(self.sites, key=lambda s: (s.span.start, s.owner, s.tool)))
        return EffectReport(sites, receipted, approval)

    # ---- declarations ----------------------------------------------------------------------------

    def tool_declaration(self, tool: h.Tool) -> None:
        for path, receipt in receipt_paths(tool.returns)[:1]:
            self.sink.error(
                "V4002", f"tool `{tool.name}` claims to return {_where(path, receipt)}",
                tool.spans.get("->", tool.span),
                help="a tool returns plain data; declare the result the binding really returns, and use the "
                     "call itself where the receipt is needed",
                notes=("only the runtime makes receipts: it signs each call of a `write` or `external` tool into "
                       "the run's ledger, and that call is the receipt",),
            )
        if tool.approval == "human" and tool.effect == "pure":
            self.sink.warning(
                "V4006", f"`{tool.name}` is `pure`, so its approval guards nothing",
                tool.spans.get("approval", tool.span),
                labels=self.effect_label(tool),
                help="remove `approval: human`, or declare the effect the tool really has",
            )
        if tool.effect in EFFECTFUL and not tool.idempotent and tool.retries > 0:
            self.sink.warning(
                "V4007", f"retrying `{tool.name}` could apply it twice: it is `{tool.effect}` and not idempotent",
                tool.spans.get("retries", tool.span),
                labels=self.effect_label(tool),
                help="a call that timed out may still have happened; declare `idempotent: true` if repeating "
                     "it is harmless, otherwise set `retries: 0`",
                fix=self.idempotent_fix(tool),
            )

    def receipt_type_uses(self) -> None:
        """V4004 at every `Receipt[t]` written for a tool `t` that is never receipted."""
        not_type_uses: set[tuple[int, int]] = set()
        for sym in self.p.symbols.values():
            not_type_uses.add((sym.span.start, sym.span.end))
        for agent in self.p.agents.values():
            for key, span in agent.spans.items():
                if key.startswith("tools."):
                    not_type_uses.add((span.start, span.end))
        call_starts = {c.span.start for flow in self.p.flows.values() for c in _calls_in_flow(flow)}
        tests = [test.span for test in self.p.tests]
        for span, sym in self.p.references:
            if sym.kind != "tool" or (span.start, span.end) in not_type_uses or span.start in call_starts:
                continue
            if any(s.start <= span.start < s.end for s in tests):
                continue  # mocks, `approve`, `receipt(...)`
            tool = self.p.tools.get(sym.name)
            if tool is None or tool.effect not in _UNRECEIPTED:
                continue
            self.sink.error(
                "V4004", f"`{tool.name}` is `{tool.effect}`, so no `Receipt[{tool.name}]` ever exists", span,
                labels=self.effect_label(tool),
                help=f"receipts prove `write` and `external` calls; if `{tool.name}` changes something, declare "
                     f"that effect, otherwise use its result type instead of a receipt",
            )

    def agent(self, agent: h.Agent, reachable: bool) -> None:
        for name in agent.tools:
            tool = self.p.tools.get(name)
            if tool is None or tool.effect not in EFFECTFUL:
                continue
            span = agent.spans.get(f"tools.{name}", agent.span)
            self.site(agent.name, tool, span)
            if reachable:
                self.repeat_warning(agent.name, tool, span, via_agent=True)
        missing: dict[str, str] = {}
        for path, receipt in receipt_paths(agent.returns):
            if receipt.tool not in agent.tools and receipt.tool in self.p.tools:
                missing.setdefault(receipt.tool, path)
        for tool_name, path in missing.items():
            receipt = t.ReceiptType(tool_name)
            labels = []
            if "tools" in agent.spans:
                labels.append(Label(agent.spans["tools"], f"`{tool_name}` is not among these"))
            notes = (f"`{agent.returns.show()}` holds {_where(path, receipt)}",) if path else ()
            self.sink.error(
                "V4003", f"`{agent.name}` cannot return {_where(path, receipt)}: it cannot call `{tool_name}`",
                agent.spans.get("->", agent.span),
                labels=tuple(labels), notes=notes,
                help=f"add `{tool_name}` to the agent's `tools`, or drop the receipt from its output type",
                fix=self.add_tool_fix(agent, tool_name),
            )

    # ---- flows -----------------------------------------------------------------------------------

    def flow(self, flow: h.Flow) -> None:
        for stmt in flow.body:
            self.stmt(stmt, flow)

    def stmt(self, s: h.TStmt, flow: h.Flow) -> None:
        if isinstance(s, h.LetStmt):
            self.expr(s.value, s.symbol.type, flow)
        elif isinstance(s, h.ReturnStmt):
            if s.value is not None:
                self.expr(s.value, flow.returns, flow)
        elif isinstance(s, h.IfStmt):
            self.expr(s.cond, None, flow)
            for inner in s.then + s.orelse:
                self.stmt(inner, flow)
        elif isinstance(s, h.ParStmt):
            for branch in s.branches:
                self.stmt(branch, flow)
        elif isinstance(s, h.ExprStatement):
            self.expr(s.expr, None, flow)

    def expr(self, e: h.TExpr, expected: t.Type | None, flow: h.Flow) -> None:
        """Visit ``e`` (a value used where ``expected`` is wanted) and everything inside it."""
        if expected is not None and contains_receipt(expected):
            self.receipt_origin(e, expected, flow)
        if isinstance(e, h.CallExpr):
            params = self.params_of(e)
            for name, arg in e.args:
                passthrough = e.kind == "builtin" and e.name in ("redact", "declassify") and name == "x"
                self.expr(arg, expected if passthrough else params.get(name), flow)
            if e.kind == "tool":
                tool = self.p.tools.get(e.name)
                if tool is not None and tool.effect in EFFECTFUL:
                    self.site(flow.name, tool, e.span)
                    self.repeat_warning(flow.name, tool, e.span, via_agent=False)
        elif isinstance(e, h.RecordValue):
            record = e.type if isinstance(e.type, t.RecordType) else None
            for name, value in e.fields:
                info = record.field(name) if record else None
                self.expr(value, info.type if info else None, flow)
        elif isinstance(e, h.ListValue):
            elem = _elem(expected) or (e.type.elem if isinstance(e.type, t.ListType) else None)
            for item in e.items:
                self.expr(item, elem, flow)
        elif isinstance(e, h.ForEach):
            self.expr(e.iterable, None, flow)
            for s in e.body:
                self.stmt(s, flow)
            if e.result is not None:
                self.expr(e.result, _elem(expected) or _elem(e.type), flow)
        elif isinstance(e, (h.GetField,)):
            self.expr(e.target, None, flow)
        elif isinstance(e, h.GetIndex):
            self.expr(e.target, None, flow)
            self.expr(e.index, None, flow)
        elif isinstance(e, h.UnaryExpr):
            self.expr(e.operand, None, flow)
        elif isinstance(e, h.BinaryExpr):
            self.expr(e.left, None, flow)
            self.expr(e.right, None, flow)
        elif isinstance(e, h.RateExpr):
            self.expr(e.amount, None, flow)

    def receipt_origin(self, e: h.TExpr, expected: t.Type, flow: h.Flow) -> None:
        """V4001 when ``e`` passed the type checker in a receipt position without being a receipt.

        Genuine origins: a call of the receipt's own tool, a value that already holds a receipt
        (a variable, a field, a list item: each was checked where it was made), the result of an
        agent (checked by V4003 and by the runtime's ledger) or of a flow (checked in that flow),
        and `none`. Records, lists and loops are checked part by part as they are visited.
        """
        target = t.strip_optional(expected)
        if isinstance(e, h.CallExpr) and e.kind == "tool":
            if isinstance(target, t.ReceiptType) and e.name == target.tool:
                return
            tool = self.p.tools.get(e.name)
            if tool is None or not t.assignable(e.type, expected):
                return  # an unknown tool, or a mismatch the type checker has reported
            wanted = target.tool if isinstance(target, t.ReceiptType) else None
            labels = (Label(tool.spans.get("->", tool.span),
                            "the tool's declared result claims the receipt"),)
            self.sink.error(
                "V4001",
                f"this receipt would be forged: only a call of `{wanted}` gives `Receipt[{wanted}]`" if wanted else
                f"the receipts in `{expected.show()}` would be forged: `{e.name}` is not the tool they name",
                e.span, labels=labels,
                help=f"call `{wanted}` itself here" if wanted else "build the value from calls of the tools it names",
            )
            return
        if isinstance(e, h.Lit) and e.value is not None and t.assignable(e.type, expected):
            self.sink.error("V4001", f"a literal cannot be a `{expected.show()}`", e.span,
                            help="a receipt comes only from calling its tool")

    # ---- sites and warnings -----------------------------------------------------------------------

    def site(self, owner: str, tool: h.Tool, span: Span) -> None:
        self.sites.append(EffectSite(owner, tool.name, tool.effect or "", True, tool.idempotent,
                                     tool.approval == "human", span))

    def repeat_warning(self, owner: str, tool: h.Tool, span: Span, via_agent: bool) -> None:
        if tool.idempotent or (owner, tool.name) in self.warned_repeat:
            return
        self.warned_repeat.add((owner, tool.name))
        how = f"a call of `{tool.name}` by `{owner}`" if via_agent else f"this call of `{tool.name}`"
        self.sink.warning(
            "V4005", f"{how} could run twice if the run resumes: it is `{tool.effect}` and not idempotent",
            span, labels=self.effect_label(tool),
            help=f"if repeating `{tool.name}` with the same arguments is harmless, declare `idempotent: true`; "
                 "otherwise a run resumed after a crash during this call pauses for a person to decide",
            fix=self.idempotent_fix(tool),
        )

    def effect_label(self, tool: h.Tool) -> tuple[Label, ...]:
        span = tool.spans.get("effect")
        return (Label(span, f"`{tool.name}` is declared `{tool.effect}` here"),) if span else ()

    # ---- fixes and spans --------------------------------------------------------------------------

    def idempotent_fix(self, tool: h.Tool) -> Fix | None:
        if "idempotent" in tool.spans:
            return Fix("declare `idempotent: true`", (TextEdit(tool.spans["idempotent"], "true"),))
        effect = tool.spans.get("effect")
        if effect is None:
            return None
        at = Span(effect.end, effect.end)
        return Fix("declare `idempotent: true`", (TextEdit(at, ", idempotent: true"),))

    def add_tool_fix(self, agent: h.Agent, tool: str) -> Fix | None:
        message = f"add `{tool}` to `tools`"
        tools = agent.spans.get("tools")
        if tools is not None:
            has_items = any(k.startswith("tools.") for k in agent.spans)
            at = Span(tools.end - 1, tools.end - 1)  # just before the closing `]`
            return Fix(message, (TextEdit(at, f", {tool}" if has_items else tool),))
        model = agent.spans.get("model")
        if model is None:
            return None
        return Fix(message, (TextEdit(Span(model.end, model.end), f", tools: [{tool}]"),))

    def params_of(self, call: h.CallExpr) -> dict[str, t.Type]:
        decl = {"agent": self.p.agents, "tool": self.p.tools, "flow": self.p.flows}.get(call.kind, {}).get(call.name)
        if decl is None:
            return {}
        return {p.name: p.type for p in decl.params}


def _elem(ty: t.Type | None) -> t.Type | None:
    ty = t.strip_optional(ty) if ty is not None else None
    return ty.elem if isinstance(ty, t.ListType) else None


def _calls_in_flow(flow: h.Flow) -> Iterator[h.CallExpr]:
    return calls_in_block(flow.body)
