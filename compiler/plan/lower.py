"""Lowering a checked program (HIR + analysis reports) to the plan the runtime executes.

>>> from vox.compiler.api import check_source
>>> plan = lower_plan(check_source("x.vox", '''
... provider p = openai { key: env("K") }
... model m = p/"gpt" { context: 8_000, max_output: 500, price: { input: $1, output: $2 } }
... agent a(q: str) -> str { model: m, budget: { steps: 2 }, prompt: "{q}" }
... flow f(q: str) -> str {
...   let x = a(q: q)
...   return a(q: x)
... }
... '''))
>>> [s.value.pos for s in plan.flows["f"].body]
['f.s0.a', 'f.s1.a']
>>> plan.providers["p"].key_env
'K'
"""

from __future__ import annotations

import hashlib
from importlib.metadata import PackageNotFoundError, version

from vox.compiler import defaults
from vox.compiler.analysis import results as r
from vox.compiler.analysis.budgets import fixed_loop_lengths
from vox.compiler.hir import nodes as h
from vox.compiler.hir import types as t
from vox.compiler.hir.members import template_parts
from vox.compiler.plan import ir
from vox.compiler.plan import model as p
from vox.compiler.plan.serde import PlanError, compute_plan_hash
from vox.compiler.plan.value_schema import object_schema, output_schema, value_schema
from vox.compiler.source import NO_SPAN, SourceFile, Span

_PLACEHOLDER_HASH = "0" * 64


def compiler_version() -> str:
    """The installed voxc version, recorded in every plan."""
    try:
        return version("voxc")
    except PackageNotFoundError:
        return "unknown"


def lower_plan(result) -> p.Plan:
    """The plan of a checked file (a :class:`vox.compiler.api.CheckResult`).

    Raises :class:`PlanError` when the check found errors: a plan is only made of a program that
    checks cleanly (warnings are fine).
    """
    if result.errors:
        n = len(result.errors)
        raise PlanError(f"{result.source.path} has {n} error{'s' if n != 1 else ''}; "
                        "fix them (see `voxc check`) before making a plan",
                        tuple(f"{d.code}: {d.message}" for d in result.errors))
    return PlanLowering(result.program, result.analysis, result.source).plan()


class PlanLowering:
    """Builds the plan's models from the HIR; one instance per plan."""

    def __init__(self, program: h.Program, analysis: r.Analysis, source: SourceFile):
        self.program = program
        self.analysis = analysis
        self.source = source
        self.extra_types: dict[str, t.Type] = {}  # records/enums met in expressions but not declared

    # ---- the whole plan ----------------------------------------------------------------------

    def plan(self) -> p.Plan:
        prog = self.program
        providers = {n: self.provider(d) for n, d in sorted(prog.providers.items())}
        models = {n: self.model(d) for n, d in sorted(prog.models.items())}
        tools = {n: self.tool(d) for n, d in sorted(prog.tools.items())}
        gates = {n: self.gate(d) for n, d in sorted(prog.gates.items())}
        agents = {n: self.agent(d) for n, d in sorted(prog.agents.items())}
        flows = {n: self.flow(d) for n, d in sorted(prog.flows.items())}
        tests = tuple(self.test(d) for d in prog.tests)
        budgets = {n: self.run_budget(d) for n, d in sorted(prog.budgets.items())}
        types = self.types()  # last: includes the record and enum types met on the way
        labels = tuple(sorted(set(prog.labels) | {"public"}))
        plan = p.Plan.model_construct(
            plan_version=p.PLAN_VERSION,
            compiler=p.Compiler(version=compiler_version()),
            source=p.Source(path=self.source.path,
                            sha256=hashlib.sha256(self.source.text.encode("utf-8")).hexdigest()),
            plan_hash=_PLACEHOLDER_HASH,
            labels=labels, providers=providers, models=models, types=types, tools=tools, gates=gates,
            agents=agents, flows=flows, tests=tests, budgets=budgets, analysis=self.analysis_results(),
        )
        data = plan.model_dump(mode="json")
        data["plan_hash"] = compute_plan_hash(data)
        # Validating the JSON form checks the plan exactly as a runtime will read it.
        return p.Plan.model_validate(data)

    # ---- locations ---------------------------------------------------------------------------

    def loc(self, span: Span) -> p.Loc:
        line, col = self.line_col(span)
        return p.Loc(line=line, col=col)

    def line_col(self, span: Span) -> tuple[int, int]:
        pos = self.source.position(span.start)
        return pos.line + 1, pos.character + 1

    def maybe_line_col(self, span: Span) -> tuple[int | None, int | None]:
        return (None, None) if span == NO_SPAN else self.line_col(span)

    # ---- types -------------------------------------------------------------------------------

    def type(self, ty: t.Type) -> ir.PlanType:
        if isinstance(ty, t.Prim):
            return ir.PrimType(name=ty.name)
        if isinstance(ty, t.ListType):
            return ir.ListType(elem=self.type(ty.elem))
        if isinstance(ty, t.OptionalType):
            return ir.OptionalType(inner=self.type(ty.inner))
        if isinstance(ty, t.RecordType):
            self._note_named(ty)
            return ir.RecordType(name=ty.name)
        if isinstance(ty, t.EnumType):
            self._note_named(ty)
            return ir.EnumType(name=ty.name)
        if isinstance(ty, t.ReceiptType):
            return ir.ReceiptType(tool=ty.tool)
        if isinstance(ty, t.NoneType):
            return ir.NoneType()
        if isinstance(ty, t.Never):
            return ir.NeverType()
        if isinstance(ty, t.RateType):
            return ir.RateType(amount=self.type(ty.amount), unit=ty.unit)
        if isinstance(ty, t.RefType):
            return ir.DeclType(decl=ty.kind, name=ty.name)
        raise PlanError(f"internal: type `{ty.show()}` reached the plan")

    def _note_named(self, ty: t.RecordType | t.EnumType) -> None:
        declared = self.program.types.get(ty.name)
        if declared != ty and ty.name not in self.extra_types:
            self.extra_types[ty.name] = ty
            if isinstance(ty, t.RecordType):
                for f in ty.fields:
                    self.type(f.type)

    def types(self) -> dict[str, p.TypeDef]:
        out: dict[str, p.TypeDef] = {}
        named = dict(self.program.types)
        # Declared records' fields may name records that only aliases reach; walk them all first.
        for ty in list(named.values()):
            self.type(ty)
        named.update(self.extra_types)
        for name, ty in sorted(named.items()):
            schema = value_schema(ty)
            if isinstance(ty, t.RecordType) and ty.name == name:
                fields = tuple(p.FieldDef(name=f.name, type=self.type(f.type), labels=_sorted(f.labels))
                               for f in ty.fields)
                out[name] = p.RecordDef(name=name, fields=fields, json_schema=schema)
            elif isinstance(ty, t.EnumType) and ty.name == name:
                out[name] = p.EnumDef(name=name, variants=ty.variants, json_schema=schema)
            else:
                out[name] = p.AliasDef(name=name, type=self.type(ty), json_schema=schema)
        return out

    def param(self, param: h.Param) -> p.Param:
        return p.Param(name=param.name, type=self.type(param.type), labels=_sorted(param.labels))

    # ---- declarations ------------------------------------------------------------------------

    def provider(self, d: h.Provider) -> p.Provider:
        base_url: str | p.EnvValue | None
        if isinstance(d.base_url, h.EnvRef):
            base_url = p.EnvValue(env=d.base_url.var, default=d.base_url.default)
        else:
            base_url = defaults.base_url(d.protocol, d.base_url)
        flags = dict(d.flags)
        # Only the variable's name: a default for a key would be a secret written in the source.
        return p.Provider(name=d.name, protocol=d.protocol, base_url=base_url,
                          key_env=d.key.var if d.key is not None else None, clearance=_sorted(d.clearance),
                          zdr=bool(flags.get("zdr", False)), region=flags.get("region"),
                          timeout_ms=defaults.provider_timeout_ms(flags.get("timeout_ms")), loc=self.loc(d.span))

    def model(self, d: h.Model) -> p.Model:
        price = None
        if d.price is not None:
            price = p.Price(free=d.price.free, input_micros=d.price.input, output_micros=d.price.output,
                            cached_input_micros=d.price.cached_input, cache_write_micros=d.price.cache_write)
        return p.Model(name=d.name, provider=d.provider, model_id=d.model_id, context=d.context,
                       max_output=defaults.max_output(d.max_output, d.context), price=price,
                       capabilities=_sorted(d.capabilities), loc=self.loc(d.span))

    def tool(self, d: h.Tool) -> p.Tool:
        binding = None
        if d.binding is not None:
            url = self.template(template_parts(d.binding.target)) if d.binding.kind == "http" else None
            binding = p.Binding(kind=d.binding.kind, target=d.binding.target, method=d.binding.method, url=url)
        effects = self.analysis.effects
        receipted = d.effect in ("write", "external") or d.name in effects.receipted_tools
        return p.Tool(
            name=d.name, params=tuple(self.param(x) for x in d.params), result=self.type(d.returns),
            result_labels=_sorted(d.return_labels),
            params_schema=object_schema(((x.name, x.type) for x in d.params)),
            result_schema=value_schema(d.returns),
            effect=d.effect, timeout_ms=defaults.tool_timeout_ms(d.timeout_ms),
            cost_micros=defaults.tool_cost_micros(d.cost_micros), retries=d.retries,
            idempotent=d.idempotent, approval=d.approval, clearance=_sorted(d.clearance),
            declassifies=_sorted(d.declassifies), binding=binding,
            receipted=receipted, loc=self.loc(d.span),
        )

    def gate(self, d: h.Gate) -> p.Gate:
        checks = []
        for c in d.checks:
            line, col = self.line_col(c.span)
            checks.append(p.GateCheck(cond=ExprLowering(self, None).expr(c.cond), action=c.action,
                                      retries=c.retries, line=line, col=col))
        return p.Gate(name=d.name, param=self.param(d.param) if d.param else None, checks=tuple(checks),
                      loc=self.loc(d.span))

    def agent(self, d: h.Agent) -> p.Agent:
        if d.model is None:
            raise PlanError(f"internal: agent `{d.name}` has no model")
        gates = self.analysis.gates
        signals = gates.signals.get(d.name, ())
        schema, wrapped = output_schema(d.returns)
        return p.Agent(
            name=d.name, params=tuple(self.param(x) for x in d.params), result=self.type(d.returns),
            result_labels=_sorted(self.analysis.labels.outputs.get(d.name, d.return_labels)),
            result_schema=value_schema(d.returns), output_schema=schema,
            output_wrapped=wrapped, model=d.model, fallback=d.fallback, tools=d.tools, caps=self.caps(d.caps),
            gates=d.gates,
            compaction=p.Compaction(strategy=d.compaction.strategy, keep_last=d.compaction.keep_last)
            if d.compaction else None,
            prompt=self.template(d.prompt.parts) if d.prompt else None,
            system=self.template(d.system.parts) if d.system else None,
            temperature=d.temperature, signals=_sorted(signals), top_logprobs=defaults.top_logprobs(signals),
            extra_samples=gates.extra_samples.get(d.name, 0), judges=tuple(gates.judges.get(d.name, ())),
            bound=self.bound(d.name), loc=self.loc(d.span),
        )

    def flow(self, d: h.Flow) -> p.Flow:
        lowering = ExprLowering(self, d.name)
        lowering.lengths = fixed_loop_lengths(d.body)  # a `for` without `max` over a list the program fixes
        body = lowering.block_steps(d.body, d.name)
        return p.Flow(name=d.name, params=tuple(self.param(x) for x in d.params), result=self.type(d.returns),
                      result_labels=_sorted(self.analysis.labels.outputs.get(d.name, ())), caps=self.caps(d.caps),
                      body=body, bound=self.bound(d.name), loc=self.loc(d.span))

    def test(self, d: h.Test) -> p.Test:
        if d.flow is None:
            raise PlanError(f"internal: test {d.name!r} has no flow")
        lower = ExprLowering(self, None)
        mocks = []
        for m in d.mocks:
            turns: list = []
            for kind, value in m.replies:
                if kind == "reply":
                    turns.append(p.MockReply(value=lower.expr(value)))
                else:
                    tool, args = value
                    turns.append(p.MockCall(tool=tool, args=tuple(
                        ir.FieldValue(name=n, value=lower.expr(v)) for n, v in args)))
            mocks.append(p.Mock(target=m.target, kind=m.kind, turns=tuple(turns)))
        return p.Test(name=d.name, flow=d.flow,
                      input=tuple(ir.FieldValue(name=n, value=lower.expr(v)) for n, v in d.input),
                      mocks=tuple(mocks), approve=d.approve,
                      expect=lower.expr(d.expect) if d.expect is not None else None, loc=self.loc(d.span))

    def run_budget(self, d: h.RunBudget) -> p.RunBudget:
        def rate(pair):
            return p.Rate(amount=pair[0], per=pair[1]) if pair is not None else None

        return p.RunBudget(scope=d.scope, cost=rate(d.cost), requests=rate(d.requests), tokens=rate(d.tokens))

    def caps(self, c: h.Caps) -> p.Caps:
        return p.Caps(tokens=c.tokens, cost_micros=c.cost, steps=c.steps, tool_calls=c.tool_calls, depth=c.depth,
                      wall_ms=c.wall)

    def template(self, parts) -> p.Template:
        return p.Template(parts=tuple(
            p.TemplateText(text=part) if isinstance(part, str) else p.TemplatePlaceholder(path=tuple(part))
            for part in parts))

    # ---- analysis results --------------------------------------------------------------------

    def bound(self, name: str) -> p.Bound | None:
        found = self.analysis.budgets.bounds.get(name)
        if found is None:
            return None
        items = []
        for item in found.items:
            line, col = self.maybe_line_col(item.span)
            items.append(p.BoundItem(what=item.what, callee=item.callee, kind=item.kind,
                                     multiplier=item.multiplier, bound=_bound_values(item.bound),
                                     line=line, col=col))
        return p.Bound(bound=_bound_values(found.bound), derived=_bound_values(found.derived),
                       from_caps=_sorted(found.from_caps), items=tuple(items))

    def analysis_results(self) -> p.Analysis:
        labels, effects = self.analysis.labels, self.analysis.effects

        def at(span: Span) -> dict:
            line, col = self.line_col(span)
            return {"line": line, "col": col}

        return p.Analysis(
            sinks=tuple(p.SinkUse(owner=s.owner, kind=s.kind, sink=s.sink, cleared=_sorted(s.cleared),
                                  labels=_sorted(s.labels), ok=s.ok, **at(s.span)) for s in labels.sinks),
            declassifications=tuple(p.Declassification(owner=d.owner, labels=_sorted(d.labels), reason=d.reason,
                                                       **at(d.span)) for d in labels.declassifications),
            redactions=tuple(p.Redaction(owner=owner, lowers=_sorted(lowers), **at(span))
                             for owner, span, lowers in labels.redactions),
            effect_sites=tuple(p.EffectSite(owner=s.owner, tool=s.tool, effect=s.effect, receipted=s.receipted,
                                            idempotent=s.idempotent, approval=s.approval, **at(s.span))
                               for s in effects.sites),
            receipted_tools=_sorted(set(effects.receipted_tools) | {
                n for n, d in self.program.tools.items() if d.effect in ("write", "external")}),
            approval_tools=_sorted(set(effects.approval_tools) | {
                n for n, d in self.program.tools.items() if d.approval == "human"}),
        )


class ExprLowering:
    """Lowers the expressions and statements of one declaration.

    In a flow (``flow`` set), each call of an agent, tool or flow and each `for` gets its ``pos``:
    the path of its statement within the flow (``s<i>`` per statement, ``then``/``else`` for an
    `if`'s blocks, ``par<i>`` for a `par` branch, ``for`` for a loop body) and then the callee's
    name (``for`` for a loop), with ``#2``, ``#3``... for repeats within one statement.
    """

    def __init__(self, plan: PlanLowering, flow: str | None):
        self.plan = plan
        self.flow = flow
        self.lengths: dict[tuple[int, int], int] = {}  # see budgets.fixed_loop_lengths
        self.statement = ""  # path of the statement being lowered
        self.seen: dict[str, int] = {}  # segments used in that statement

    # ---- statements --------------------------------------------------------------------------

    def block(self, stmts: tuple[h.TStmt, ...], path: str, result: h.TExpr | None = None):
        """Lower a block; ``result`` (a `for` body's value) is numbered as the statement after the last."""
        steps = tuple(self.stmt(s, f"{path}.s{i}") for i, s in enumerate(stmts))
        if result is None:
            return steps, None
        return steps, self.in_statement(f"{path}.s{len(stmts)}", lambda: self.expr(result))

    def block_steps(self, stmts, path: str) -> tuple:
        return self.block(stmts, path)[0]

    def in_statement(self, path: str, lower):
        saved = self.statement, self.seen
        self.statement, self.seen = path, {}
        try:
            return lower()
        finally:
            self.statement, self.seen = saved

    def stmt(self, s: h.TStmt, path: str):
        line, col = self.plan.line_col(s.span)
        if isinstance(s, h.LetStmt):
            return ir.LetStep(name=s.symbol.name, type=self.plan.type(s.symbol.type), labels=_sorted(s.symbol.labels),
                              value=self.in_statement(path, lambda: self.expr(s.value)), line=line, col=col)
        if isinstance(s, h.ExprStatement):
            return ir.ExprStep(expr=self.in_statement(path, lambda: self.expr(s.expr)), line=line, col=col)
        if isinstance(s, h.ReturnStmt):
            value = self.in_statement(path, lambda: self.expr(s.value)) if s.value is not None else None
            return ir.ReturnStep(value=value, line=line, col=col)
        if isinstance(s, h.IfStmt):
            cond = self.in_statement(path, lambda: self.expr(s.cond))
            return ir.IfStep(cond=cond, then=self.block_steps(s.then, f"{path}.then"),
                             orelse=self.block_steps(s.orelse, f"{path}.else"), line=line, col=col)
        if isinstance(s, h.ParStmt):
            return ir.ParStep(branches=tuple(self.stmt(b, f"{path}.par{i}") for i, b in enumerate(s.branches)),
                              line=line, col=col)
        raise PlanError(f"internal: statement {type(s).__name__} reached the plan")

    # ---- expressions -------------------------------------------------------------------------

    def pos(self, segment: str) -> str | None:
        if self.flow is None:
            return None
        n = self.seen.get(segment, 0) + 1
        self.seen[segment] = n
        return f"{self.statement}.{segment}" + (f"#{n}" if n > 1 else "")

    def expr(self, e: h.TExpr):
        ty = self.plan.type(e.type)
        if isinstance(e, h.Lit):
            return ir.LitExpr(value=e.value, type=ty)
        if isinstance(e, h.Var):
            return ir.VarExpr(name=e.symbol.name, type=ty)
        if isinstance(e, h.EnumValue):
            return ir.EnumExpr(enum=e.enum, variant=e.variant, type=ty)
        if isinstance(e, h.Ref):
            return ir.RefExpr(decl=e.symbol.kind, name=e.symbol.name, type=ty)
        if isinstance(e, h.RecordValue):
            return ir.RecordExpr(fields=self.named(e.fields), type=ty)
        if isinstance(e, h.ListValue):
            return ir.ListExpr(items=tuple(self.expr(i) for i in e.items), type=ty)
        if isinstance(e, h.GetField):
            return ir.FieldExpr(target=self.expr(e.target), name=e.name, labels=_sorted(e.labels), type=ty)
        if isinstance(e, h.GetIndex):
            return ir.IndexExpr(target=self.expr(e.target), index=self.expr(e.index), type=ty)
        if isinstance(e, h.UnaryExpr):
            return ir.UnaryExpr(op=e.op, operand=self.expr(e.operand), type=ty)
        if isinstance(e, h.BinaryExpr):
            return ir.BinaryExpr(op=e.op, left=self.expr(e.left), right=self.expr(e.right), type=ty)
        if isinstance(e, h.RateExpr):
            return ir.RateExpr(amount=self.expr(e.amount), unit=e.unit, type=ty)
        if isinstance(e, h.CallExpr):
            line, col = self.plan.line_col(e.span)
            # Numbered before its arguments: in source order, the callee's name comes first.
            pos = self.pos(e.name) if e.kind in ("agent", "tool", "flow") else None
            return ir.CallExpr(kind=e.kind, name=e.name, args=self.named(e.args), type=ty, pos=pos,
                               line=line, col=col)
        if isinstance(e, h.ForEach):
            bound = e.bound if e.bound is not None else self.lengths.get((e.span.start, e.span.end))
            if bound is None:
                raise PlanError("internal: a `for` without `max` reached the plan")
            line, col = self.plan.line_col(e.span)
            pos = self.pos("for")
            iterable = self.expr(e.iterable)
            body, result = self.block(e.body, pos or "for", e.result)
            return ir.ForExpr(var=e.var.name, iterable=iterable, bound=bound, body=body, result=result,
                              type=ty, pos=pos, line=line, col=col)
        raise PlanError(f"internal: expression {type(e).__name__} reached the plan")

    def named(self, pairs) -> tuple[ir.FieldValue, ...]:
        return tuple(ir.FieldValue(name=n, value=self.expr(v)) for n, v in pairs)


def _bound_values(b: r.Bound) -> p.BoundValues:
    return p.BoundValues(cost_micros=b.cost_micros, tokens=b.tokens, wall_ms=b.wall_ms, model_calls=b.model_calls,
                         tool_calls=b.tool_calls)


def _sorted(names) -> tuple[str, ...]:
    return tuple(sorted(names))

