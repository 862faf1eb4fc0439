"""Name resolution and type checking: a parsed module becomes a typed HIR :class:`Program`.

Pass order: collect every declaration's name (duplicates reported), resolve named types, then
lower each declaration. Declaration bodies are lists of `key: value` members; each kind has a
table of known members (see :mod:`.members`) that says what each value must be.
"""

from __future__ import annotations

from dataclasses import replace

from vox.compiler.diagnostics.model import Diagnostic, DiagnosticSink, Label, replace_fix
from vox.compiler.hir import nodes as h
from vox.compiler.hir import problems
from vox.compiler.hir import types as t
from vox.compiler.hir.builtins import Builtins
from vox.compiler.hir.expressions import GATE_ACTIONS, Context, ExpressionChecker, access_path
from vox.compiler.hir.members import MemberReader, member_spans, result_span
from vox.compiler.hir.scope import Scope
from vox.compiler.names import closest, did_you_mean
from vox.compiler.source import Span
from vox.compiler.syntax import ast
from vox.compiler.syntax.parser import ParseResult

BUILTIN_TYPE_NAMES = set(t.PRIMITIVES) | {"list", "Receipt"}
BUILTIN_LABELS = ("public",)
DECLASSIFIES = "declassifies"  # the tool member naming the argument labels its result drops
_KIND_OF = {
    ast.LabelDecl: "label",
    ast.ProviderDecl: "provider",
    ast.ModelDecl: "model",
    ast.TypeDecl: "type",
    ast.EnumDecl: "enum",
    ast.ToolDecl: "tool",
    ast.GateDecl: "gate",
    ast.AgentDecl: "agent",
    ast.FlowDecl: "flow",
}


def lower_module(parsed: ParseResult) -> tuple[h.Program, list[Diagnostic]]:
    """Resolve and type-check a parsed module. Returns the program and its diagnostics."""
    return Lowering(parsed).run()


class Lowering:
    def __init__(self, parsed: ParseResult):
        self.module = parsed.module
        self.path = parsed.module.path
        self.broken = set(parsed.broken_names)
        self.quiet_decls = {id(parsed.module.decls[i]) for i in parsed.decls_with_errors}
        self.sink = DiagnosticSink(self.path)
        self.symbols: dict[str, h.Symbol] = {}
        self.decl_of: dict[str, ast.Decl] = {}
        self.references: list[tuple[Span, h.Symbol]] = []
        self.types: dict[str, t.Type] = {}
        self._resolving: set[str] = set()
        self.builtins = Builtins()
        self.checker = ExpressionChecker(self.sink, self, self.references)
        self.members = MemberReader(self)
        self.signatures: dict[str, tuple[tuple[h.Param, ...], t.Type]] = {}
        self.result_labels: dict[str, frozenset[str]] = {}  # labels written on each flow's result type
        # A type alias keeps the labels written on it: `type Email = str @pii` makes every use `@pii`.
        self.alias_labels: dict[str, frozenset[str]] = {}
        self.alias_origins: dict[str, tuple] = {}

    # ---- the resolver interface used by the expression checker -----------------------------------

    def symbol(self, name: str) -> h.Symbol | None:
        return self.symbols.get(name)

    def is_broken(self, name: str) -> bool:
        return name in self.broken

    def names_of(self, kind: str) -> list[str]:
        return sorted(n for n, s in self.symbols.items() if s.kind == kind)

    def value_names(self) -> list[str]:
        return [n for n, s in self.symbols.items() if s.kind not in ("type", "enum", "budget", "test")]

    def callable_names(self) -> list[str]:
        return [n for n, s in self.symbols.items() if s.kind in ("agent", "tool", "flow")]

    def enums_with_variant(self, name: str) -> list[t.EnumType]:
        return [ty for ty in self.types.values() if isinstance(ty, t.EnumType) and name in ty.variants]

    def signature(self, symbol: h.Symbol) -> tuple[tuple[h.Param, ...], t.Type]:
        return self.signatures.get(symbol.name, ((), t.ERROR))

    # ---- driver ---------------------------------------------------------------------------------

    def run(self) -> tuple[h.Program, list[Diagnostic]]:
        self.collect()
        for name in list(self.decl_of):
            if self.symbols[name].kind in ("type", "enum"):
                self.named_type(name)
        self.collect_signatures()
        program = self.lower_all()
        kept = [d for d in self.sink.items if not self._in_quiet_decl(d)]
        return program, kept

    def _in_quiet_decl(self, d: Diagnostic) -> bool:
        """Checker errors inside a declaration that has syntax errors would mostly echo them."""
        for decl in self.module.decls:
            if id(decl) in self.quiet_decls and decl.span.start <= d.span.start <= decl.span.end:
                return True
        return False

    def collect(self) -> None:
        for decl in self.module.decls:
            if isinstance(decl, (ast.TestDecl, ast.BudgetDecl)):
                continue
            kind = _KIND_OF[type(decl)]
            name = decl.name.name
            if name in BUILTIN_TYPE_NAMES or name in BUILTIN_LABELS:
                self.sink.error("V1002", f"`{name}` is built in and cannot be declared again", decl.name.span,
                                help="choose another name")
                continue
            if name in self.symbols:
                first = self.symbols[name]
                self.sink.error(
                    "V1002",
                    f"`{name}` is declared twice",
                    decl.name.span,
                    labels=(Label(first.span, f"first declared here as a {first.kind}"),),
                    help="rename one of them",
                )
                continue
            self.symbols[name] = h.Symbol(kind, name, decl.name.span)
            self.decl_of[name] = decl
            self.references.append((decl.name.span, self.symbols[name]))

    # ---- types ----------------------------------------------------------------------------------

    def named_type(self, name: str) -> t.Type:
        if name in self.types:
            return self.types[name]
        decl = self.decl_of[name]
        if name in self._resolving:
            self.sink.error("V1003", f"type `{name}` contains itself", decl.name.span,
                            help="recursive types are not supported: refer to the other record by an id field instead")
            return t.ERROR
        self._resolving.add(name)
        if isinstance(decl, ast.EnumDecl):
            seen: dict[str, Span] = {}
            for v in decl.variants:
                if v.name in seen:
                    self.sink.error("V1010", f"enum member `{v.name}` is listed twice", v.span,
                                    labels=(Label(seen[v.name], "first listed here"),))
                seen[v.name] = v.span
            ty: t.Type = t.EnumType(name, tuple(seen))
        elif isinstance(decl.type, ast.RecordType):
            fields = []
            seen = {}
            for f in decl.type.fields:
                if f.name.name in seen:
                    self.sink.error("V1010", f"field `{f.name.name}` is declared twice", f.name.span,
                                    labels=(Label(seen[f.name.name], "first declared here"),))
                    continue
                seen[f.name.name] = f.name.span
                fty, labels, origins = self.resolve_type_with_origins(f.type)
                fields.append(t.FieldInfo(f.name.name, fty, labels, origins))
            ty = t.RecordType(name, tuple(fields))
        else:
            ty, alias_labels, origins = self.resolve_type_with_origins(decl.type)
            self.alias_labels[name] = frozenset(x for x in alias_labels if x != "public")
            self.alias_origins[name] = origins
        self._resolving.discard(name)
        self.types[name] = ty
        self.symbols[name] = h.Symbol(self.symbols[name].kind, name, decl.name.span, ty)
        return ty

    def resolve_type(self, te: ast.TypeExpr) -> tuple[t.Type, frozenset[str]]:
        """The type an annotation names, and every label written anywhere in it (or on an alias it names)."""
        ty, labels, _ = self.resolve_type_with_origins(te)
        return ty, labels

    def resolve_type_with_origins(self, te: ast.TypeExpr) -> tuple[t.Type, frozenset[str], tuple]:
        """As :meth:`resolve_type`, with (label, span of its `@label`) for each label, for diagnostics."""
        labels = set(self.check_labels(te.labels))
        origins = [(lb.name, lb.span) for lb in te.labels if lb.name in labels]
        name = te.name.name
        ty: t.Type
        if name == "list":
            if len(te.args) != 1:
                self.sink.error("V1021", "`list` takes one type: `list[T]`", te.span)
                ty = t.ERROR
            else:
                inner, inner_labels, inner_origins = self.resolve_type_with_origins(te.args[0])
                labels |= inner_labels
                origins += inner_origins
                ty = t.ListType(inner)
        elif name == "Receipt":
            ty = self._receipt_type(te)
        elif name in t.PRIMITIVES:
            if te.args:
                self.sink.error("V1021", f"`{name}` takes no type arguments", te.span)
            ty = t.PRIMITIVES[name]
        elif name in self.symbols and self.symbols[name].kind in ("type", "enum"):
            self.references.append((te.name.span, self.symbols[name]))
            if te.args:
                self.sink.error("V1021", f"`{name}` takes no type arguments", te.span)
            ty = self.named_type(name)
            labels |= self.alias_labels.get(name, frozenset())
            origins += self.alias_origins.get(name, ())
        elif name in self.symbols:
            sym = self.symbols[name]
            self.sink.error("V1004", f"`{name}` is a {sym.kind}, not a type", te.name.span,
                            labels=(Label(sym.span, "declared here"),))
            ty = t.ERROR
        elif name in self.broken:
            ty = t.ERROR
        else:
            candidates = BUILTIN_TYPE_NAMES | {n for n, s in self.symbols.items() if s.kind in ("type", "enum")}
            guess = closest(name, candidates)
            self.sink.error(
                "V1003", f"unknown type `{name}`", te.name.span,
                help=f"did you mean `{guess}`?" if guess else "declare it with `type " + name + " = { ... }`",
                fix=replace_fix(f"replace with `{guess}`", te.name.span, guess) if guess else None,
            )
            ty = t.ERROR
        if te.optional and not t.is_error(ty):
            ty = t.OptionalType(ty) if not isinstance(ty, t.OptionalType) else ty
        return ty, frozenset(labels), tuple(origins)

    def _receipt_type(self, te: ast.TypeExpr) -> t.Type:
        if len(te.args) != 1 or te.args[0].args or te.args[0].optional:
            self.sink.error("V1017", "`Receipt` names one tool: `Receipt[tool_name]`", te.span)
            return t.ERROR
        tool = te.args[0].name
        sym = self.symbols.get(tool.name)
        if sym is None or sym.kind != "tool":
            if tool.name in self.broken:
                return t.ERROR
            what = f"`{tool.name}` is a {sym.kind}" if sym else f"no tool is named `{tool.name}`"
            self.sink.error("V1017", f"`Receipt[...]` must name a tool: {what}", tool.span,
                            help=did_you_mean(tool.name, self.names_of("tool")) or
                            "a receipt is the proof that a tool ran; declare the tool first")
            return t.ERROR
        self.references.append((tool.span, sym))
        return t.ReceiptType(tool.name)

    def check_labels(self, idents) -> list[str]:
        out = []
        for ident in idents:
            name = ident.name
            sym = self.symbols.get(name)
            if name in BUILTIN_LABELS:
                out.append(name)
            elif sym is not None and sym.kind == "label":
                self.references.append((ident.span, sym))
                out.append(name)
            elif name in self.broken:
                continue
            else:
                labels = [*BUILTIN_LABELS, *self.names_of("label")]
                guess = closest(name, labels)
                self.sink.error(
                    "V1011", f"unknown label `{name}`", ident.span,
                    help=f"did you mean `{guess}`?" if guess else f"declare it: `label {name}`",
                    fix=replace_fix(f"replace with `{guess}`", ident.span, guess) if guess else None,
                )
        return out

    def params(self, params: tuple[ast.Param, ...], owner: str) -> tuple[h.Param, ...]:
        out = []
        seen: dict[str, Span] = {}
        for p in params:
            if p.name.name in seen:
                self.sink.error("V1024", f"parameter `{p.name.name}` is declared twice", p.name.span,
                                labels=(Label(seen[p.name.name], "first declared here"),))
                continue
            seen[p.name.name] = p.name.span
            ty, labels = self.resolve_type(p.type)
            out.append(h.Param(p.name.name, ty, labels, p.name.span))
        return tuple(out)

    def collect_signatures(self) -> None:
        for name, decl in self.decl_of.items():
            if isinstance(decl, (ast.AgentDecl, ast.ToolDecl, ast.FlowDecl)):
                params = self.params(decl.params, name)
                if decl.returns is None:
                    returns: t.Type = t.NONE
                else:
                    returns, labels = self.resolve_type(decl.returns)
                    self.result_labels[name] = frozenset(x for x in labels if x != "public")
                self.signatures[name] = (params, returns)

    # ---- declarations -----------------------------------------------------------------------------

    def lower_all(self) -> h.Program:
        labels, providers, models, tools, gates, agents, flows = {}, {}, {}, {}, {}, {}, {}
        budgets: dict[str, h.RunBudget] = {}
        tests = []
        for decl in self.module.decls:
            if isinstance(decl, ast.LabelDecl):
                if self.decl_of.get(decl.name.name) is decl:
                    self.members.read(decl, "label", decl.members)
                    labels[decl.name.name] = h.Label(decl.name.name, decl.name.span)
            elif isinstance(decl, ast.BudgetDecl):
                budget = self.members.run_budget(decl)
                if budget is not None:
                    if budget.scope in budgets:
                        self.sink.error("V1002", f"`budget {budget.scope}` is declared twice", decl.scope.span)
                    budgets[budget.scope] = budget
            elif isinstance(decl, ast.TestDecl):
                tests.append(self.members.test(decl))
            elif self.decl_of.get(decl.name.name) is not decl:
                continue  # a duplicate, already reported
            elif isinstance(decl, ast.ProviderDecl):
                providers[decl.name.name] = self.members.provider(decl)
            elif isinstance(decl, ast.ModelDecl):
                models[decl.name.name] = self.members.model(decl)
            elif isinstance(decl, ast.ToolDecl):
                tools[decl.name.name] = self.tool(decl)
            elif isinstance(decl, ast.GateDecl):
                gates[decl.name.name] = self.gate(decl)
            elif isinstance(decl, ast.AgentDecl):
                agents[decl.name.name] = self.members.agent(decl)
            elif isinstance(decl, ast.FlowDecl):
                flows[decl.name.name] = self.flow(decl)
        return h.Program(
            path=self.path,
            labels=labels,
            providers=providers,
            models=models,
            types=dict(self.types),
            tools=tools,
            gates=gates,
            agents=agents,
            flows=flows,
            tests=tuple(tests),
            budgets=budgets,
            symbols=dict(self.symbols),
            references=tuple(sorted(self.references, key=lambda r: (r[0].start, r[0].end))),
        )

    # ---- tools ------------------------------------------------------------------------------------

    def tool(self, decl: ast.ToolDecl) -> h.Tool:
        """A tool, with `declassifies: [labels]` read here (the labels its result does not inherit
        from its arguments; see spec/labels.md), the other members by the member reader."""
        given = [m for m in decl.members if m.key.name == DECLASSIFIES]
        if not given:
            return self.members.tool(decl)
        tool = self.members.tool(replace(decl, members=tuple(m for m in decl.members if m.key.name != DECLASSIFIES)))
        for extra in given[1:]:
            self.sink.error("V1010", f"`{DECLASSIFIES}` is given twice", extra.key.span,
                            labels=(Label(given[0].key.span, "first given here"),))
        labels = frozenset(self.members.name_list(given[0], "label", tool.name)) - {"public"}
        return replace(tool, declassifies=labels, spans=tool.spans | member_spans({DECLASSIFIES: given[0]}))

    # ---- gates ------------------------------------------------------------------------------------

    def gate(self, decl: ast.GateDecl) -> h.Gate:
        name = decl.name.name
        params = self.params(decl.params, name)
        if len(params) != 1:
            self.sink.error("V1013", "a gate takes one parameter: the agent's output", decl.name.span,
                            help="write `gate name(r: OutputType) { ... }`")
        scope = Scope()
        param = params[0] if params else None
        for p in params[:1]:
            sym = h.Symbol("param", p.name, p.span, p.type, p.labels, owner=name)
            scope.bind(sym)
            self.references.append((p.span, sym))
        ctx = Context("gate", name, scope)
        checks = []
        for item in decl.items:
            if isinstance(item, ast.Member):
                self.members.unknown_member(item, "gate", ())
                continue
            cond = self.checker.expect(item.cond, t.BOOL, ctx, "a check")
            action, retries = self.gate_action(item.action)
            checks.append(h.GateCheck(cond, action, retries, item.span))
        return h.Gate(name, param, tuple(checks), decl.span)

    def gate_action(self, e: ast.Expr) -> tuple[str, int | None]:
        if isinstance(e, ast.Name) and e.name in GATE_ACTIONS and GATE_ACTIONS[e.name] == 0:
            return e.name, None
        if isinstance(e, ast.Call) and isinstance(e.callee, ast.Name) and e.callee.name == "retry":
            if len(e.args) == 1 and e.args[0].name is None and isinstance(e.args[0].value, ast.IntLit):
                return "retry", e.args[0].value.value
            self.sink.error("V1013", "`retry` takes how many times to retry: `retry(1)`", e.span)
            return "retry", None
        word = e.name if isinstance(e, ast.Name) else e.callee.name if isinstance(e, ast.Call) and isinstance(
            e.callee, ast.Name) else ""
        if word == "retry":
            self.sink.error("V1013", "`retry` takes how many times to retry: `retry(1)`", e.span,
                            fix=replace_fix("write `retry(1)`", e.span, "retry(1)"))
            return "retry", None
        actions = ["retry(n)", "fallback", "ask_human", "abstain", "halt"]
        self.sink.error("V1020", "unknown gate action", e.span,
                        help=did_you_mean(word, GATE_ACTIONS) or "actions: " + ", ".join(actions))
        return "halt", None

    # ---- flows ------------------------------------------------------------------------------------

    def flow(self, decl: ast.FlowDecl) -> h.Flow:
        name = decl.name.name
        params, returns = self.signatures[name]
        scope = Scope()
        for p in params:
            sym = h.Symbol("param", p.name, p.span, p.type, p.labels, owner=name)
            scope.bind(sym)
            self.references.append((p.span, sym))
        caps = h.Caps()
        budget = {}
        for m in decl.members:
            if m.key.name == "budget":
                caps = self.members.caps(m, ("cost", "tokens", "wall", "steps", "tool_calls", "depth"))
                budget["budget"] = m
            else:
                self.members.unknown_member(m, "flow", ("budget",))
        ctx = Context("flow", name, scope, returns)
        body = self.block(decl.body, ctx)
        if returns != t.NONE and not t.is_error(returns) and not _always_returns(body):
            end = Span(decl.span.end - 1, decl.span.end)
            self.sink.error("V1022", f"flow `{name}` can end without returning a `{returns.show()}`", end,
                            labels=(Label(decl.returns.span, "the flow promises this result"),),
                            help="add a `return` at the end")
        return h.Flow(name, params, returns, caps, body, decl.span, member_spans(budget) | result_span(decl),
                      self.result_labels.get(name, frozenset()))

    def block(self, stmts, ctx: Context) -> tuple[h.TStmt, ...]:
        out = []
        for s in stmts:
            lowered = self.stmt(s, ctx)
            if lowered is not None:
                out.append(lowered)
        return tuple(out)

    def check_block_value(self, block: ast.Block, ctx: Context, expected: t.Type | None):
        """A `for` body: its statements, and its last expression as the element value."""
        stmts = list(block.stmts)
        last = stmts.pop() if stmts and isinstance(stmts[-1], ast.ExprStmt) else None
        body = self.block(stmts, ctx)
        if last is None:
            problems.for_body_without_value(self.sink, block.span)
            return body, None
        value = self.checker.check(last.expr, ctx, expected)
        if expected is not None:
            self.checker.require(value, expected, last.expr.span, "the loop's value")
        return body, value

    def stmt(self, s, ctx: Context) -> h.TStmt | None:
        if isinstance(s, ast.Let):
            return self.let(s, ctx)
        if isinstance(s, ast.If):
            return self.if_stmt(s, ctx)
        if isinstance(s, ast.Par):
            return self.par(s, ctx)
        if isinstance(s, ast.Return):
            return self.return_stmt(s, ctx)
        value = self.checker.check(s.expr, ctx, None)
        if not isinstance(value, (h.CallExpr, h.ErrorExpr, h.ForEach)):
            problems.dropped_value(self.sink, s.span)
        return h.ExprStatement(value, s.span)

    def let(self, s: ast.Let, ctx: Context) -> h.LetStmt:
        declared = None
        labels: frozenset[str] = frozenset()
        if s.type is not None:
            declared, labels = self.resolve_type(s.type)
        value = self.checker.check(s.value, ctx, declared)
        if declared is not None:
            self.checker.require(value, declared, s.value.span, f"`{s.name.name}`")
        ty = declared if declared is not None else value.type
        if ty == t.NONE and declared is None and not isinstance(value, h.ErrorExpr):
            problems.always_none(self.sink, s.value.span, s.name.name)
        sym = h.Symbol("let", s.name.name, s.name.span, ty, labels, owner=ctx.owner)
        existing = ctx.scope.local(s.name.name)
        if existing is not None:
            self.sink.error("V1024", f"`{s.name.name}` is already bound in this block", s.name.span,
                            labels=(Label(existing.span, "first bound here"),), help="choose another name")
        ctx.scope.bind(sym)
        self.references.append((s.name.span, sym))
        return h.LetStmt(sym, value, s.span)

    def if_stmt(self, s: ast.If, ctx: Context) -> h.IfStmt:
        cond = self.checker.expect(s.cond, t.BOOL, ctx, "the condition")
        then_ctx, else_ctx = _child(ctx), _child(ctx)
        narrowing = _none_test(s.cond, cond)
        if narrowing is not None:
            path, inner, is_none_branch = narrowing
            (else_ctx if is_none_branch else then_ctx).narrowed[path] = inner
        then = self.block(s.then.stmts, then_ctx)
        orelse: tuple = ()
        if isinstance(s.orelse, ast.Block):
            orelse = self.block(s.orelse.stmts, else_ctx)
        elif isinstance(s.orelse, ast.If):
            orelse = (self.if_stmt(s.orelse, else_ctx),)
        if narrowing is not None:
            # `if x == none { return ... }`: below the `if`, `x` is present.
            none_branch = then if is_none_branch else orelse
            if none_branch and _always_returns(none_branch):
                ctx.narrowed[path] = inner
        return h.IfStmt(cond, then, orelse, s.span)

    def par(self, s: ast.Par, ctx: Context) -> h.ParStmt:
        # Branches run together: each sees only what was bound before the `par`.
        branches = []
        bound: list[h.Symbol] = []
        for stmt in s.body.stmts:
            branch_ctx = _child(ctx)
            if isinstance(stmt, ast.Let):
                lowered = self.let(stmt, branch_ctx)
                bound.append(lowered.symbol)
                branches.append(lowered)
            elif isinstance(stmt, ast.ExprStmt):
                branches.append(self.stmt(stmt, branch_ctx))
            else:
                problems.statement_in_par(self.sink, stmt.span)
        for sym in bound:
            existing = ctx.scope.local(sym.name)
            if existing is not None:
                self.sink.error("V1024", f"`{sym.name}` is already bound in this block", sym.span,
                                labels=(Label(existing.span, "first bound here"),))
            ctx.scope.bind(sym)
        return h.ParStmt(tuple(branches), s.span)

    def return_stmt(self, s: ast.Return, ctx: Context) -> h.ReturnStmt:
        if ctx.loop_depth:
            problems.return_in_for(self.sink, s.span)
        if s.value is None:
            if ctx.returns not in (None, t.NONE) and not t.is_error(ctx.returns):
                problems.return_without_value(self.sink, s.span, ctx.returns)
            return h.ReturnStmt(None, s.span)
        if ctx.returns == t.NONE:
            value = self.checker.check(s.value, ctx, None)
            problems.return_with_value(self.sink, s.value.span, value.type)
            return h.ReturnStmt(value, s.span)
        value = self.checker.expect(s.value, ctx.returns, ctx, "the returned value")
        return h.ReturnStmt(value, s.span)


def _child(ctx: Context) -> Context:
    return Context(ctx.kind, ctx.owner, ctx.scope.child(), ctx.returns, ctx.mock_tools, ctx.loop_depth,
                   dict(ctx.narrowed))


def _none_test(cond: ast.Expr, typed: h.TExpr):
    """For `x != none` / `x == none` on an optional path: (path, type without `?`, whether the
    `then` branch is the none case)."""
    if not (isinstance(cond, ast.Binary) and cond.op in ("==", "!=") and isinstance(typed, h.BinaryExpr)):
        return None
    for side, other, typed_side in ((cond.left, cond.right, typed.left), (cond.right, cond.left, typed.right)):
        if isinstance(other, ast.NoneLit) and isinstance(typed_side.type, t.OptionalType):
            path = access_path(side)
            if path:
                return path, typed_side.type.inner, cond.op == "=="
    return None


def _always_returns(body: tuple[h.TStmt, ...]) -> bool:
    for s in body:
        if isinstance(s, h.ReturnStmt):
            return True
        if isinstance(s, h.IfStmt) and s.orelse and _always_returns(s.then) and _always_returns(s.orelse):
            return True
    return False
