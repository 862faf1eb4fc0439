"""Typing of expressions and statements: AST expression in, typed HIR expression out.

The checker is told the type the context expects (when it knows one): that is how a record
literal gets its record type and a bare word like `refund` becomes a member of the expected enum.
Errors are reported once; the result is then an :class:`ErrorExpr` whose type fits anywhere, so
one mistake does not cascade.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vox.compiler.diagnostics.model import DiagnosticSink, Label, replace_fix
from vox.compiler.hir import nodes as h
from vox.compiler.hir import problems
from vox.compiler.hir import types as t
from vox.compiler.hir.scope import Scope
from vox.compiler.names import closest, did_you_mean
from vox.compiler.signals import SIGNALS
from vox.compiler.source import Span
from vox.compiler.syntax import ast

# The types of the registry's kinds of signal parameters and results (compiler/signals.py).
_KIND_TYPES = {"int": t.INT, "str": t.STR, "float": t.FLOAT, "bool": t.BOOL, "list[str]": t.ListType(t.STR),
               "model": t.RefType("model", "")}
# Runtime signals a gate may read, by name: read as a value (its type), or called (parameters, result type).
SIGNAL_VALUES = {s.name: _KIND_TYPES[s.result] for s in SIGNALS.values() if not s.called}
SIGNAL_CALLS = {s.name: (tuple(p.name for p in s.params), _KIND_TYPES[s.result]) for s in SIGNALS.values() if s.called}
GATE_ACTIONS = {"retry": 1, "fallback": 0, "ask_human": 0, "abstain": 0, "halt": 0}
BUILTIN_CALLS = ("len", "min", "max", "redact", "declassify", "receipt")


@dataclass
class Context:
    """Where an expression sits: decides which builtins and signals are allowed."""

    kind: str  # flow gate test member
    owner: str
    scope: Scope
    returns: t.Type | None = None  # a flow's declared result
    mock_tools: tuple[str, ...] = ()  # tools a mocked agent may call (for `receipt(...)`)
    loop_depth: int = 0
    narrowed: dict[tuple[str, ...], t.Type] = field(default_factory=dict)  # paths known not to be none


class ExpressionChecker:
    """Types expressions against the program's global symbols; reports to ``sink``."""

    def __init__(self, sink: DiagnosticSink, globals_, references: list):
        self.sink = sink
        self.globals = globals_  # the Resolver: .symbol(name), .type_of_decl(...)
        self.references = references

    # ---- entry points -----------------------------------------------------------------------

    def expect(self, e: ast.Expr, expected: t.Type, ctx: Context, what: str = "this value") -> h.TExpr:
        """Type ``e`` and report a mismatch with ``expected``."""
        out = self.check(e, ctx, expected)
        self.require(out, expected, e.span, what)
        return out

    def require(self, out: h.TExpr, expected: t.Type, span: Span, what: str = "this value") -> bool:
        if self.fits(out, expected):
            return True
        self.mismatch(out.type, expected, span, what)
        return False

    def fits(self, out: h.TExpr, expected: t.Type) -> bool:
        if t.assignable(out.type, expected):
            return True
        # A receipt can only come from calling its tool: `refund: issue_refund(...)`.
        target = t.strip_optional(expected)
        if isinstance(target, t.ReceiptType) and isinstance(out, h.CallExpr):
            return out.kind == "tool" and out.name == target.tool
        return False

    def mismatch(self, found: t.Type, expected: t.Type, span: Span, what: str) -> None:
        if t.is_error(found) or t.is_error(expected):
            return
        help_ = _unit_help(found, expected)
        if isinstance(found, t.OptionalType) and t.assignable(found.inner, expected):
            self.sink.error(
                "V1016",
                f"{what} may be `none`, but `{expected.show()}` is required",
                span,
                help="check it first (`if x != none { ... }`) or make the expected type optional",
            )
            return
        if _is_unit_clash(found, expected):
            self.sink.error("V1015", f"expected `{expected.show()}`, found `{found.show()}`", span, help=help_)
            return
        problems.type_mismatch(self.sink, span, expected, f"`{found.show()}`", help=help_)

    # ---- expressions --------------------------------------------------------------------------

    def check(self, e: ast.Expr, ctx: Context, expected: t.Type | None = None) -> h.TExpr:
        method = getattr(self, "_" + type(e).__name__)
        return method(e, ctx, expected)

    def _IntLit(self, e: ast.IntLit, ctx, expected):
        target = t.strip_optional(expected) if expected else None
        if target in (t.FLOAT,):
            return h.Lit(float(e.value), t.FLOAT, e.span)
        if target == t.TOKENS:
            return h.Lit(e.value, t.TOKENS, e.span)
        return h.Lit(e.value, t.INT, e.span)

    def _FloatLit(self, e, ctx, expected):
        return h.Lit(e.value, t.FLOAT, e.span)

    def _MoneyLit(self, e, ctx, expected):
        return h.Lit(e.micros, t.MONEY, e.span)

    def _DurationLit(self, e, ctx, expected):
        return h.Lit(e.millis, t.DURATION, e.span)

    def _StrLit(self, e, ctx, expected):
        return h.Lit(e.value, t.STR, e.span)

    def _BoolLit(self, e, ctx, expected):
        return h.Lit(e.value, t.BOOL, e.span)

    def _NoneLit(self, e, ctx, expected):
        return h.Lit(None, t.NONE, e.span)

    def _Name(self, e: ast.Name, ctx: Context, expected):
        name = e.name
        target = t.strip_optional(expected) if expected else None
        if isinstance(target, t.EnumType) and name in target.variants and ctx.scope.lookup(name) is None:
            return h.EnumValue(target.name, name, target, e.span)
        local = ctx.scope.lookup(name)
        if local is not None:
            self.references.append((e.span, local))
            return h.Var(local, ctx.narrowed.get((name,), local.type or t.ERROR), e.span)
        if ctx.kind == "gate" and name in SIGNAL_VALUES:
            return h.CallExpr("signal", name, (), SIGNAL_VALUES[name], e.span)
        if ctx.kind == "gate" and name in SIGNAL_CALLS:
            self.sink.error("V1013", f"`{name}` is a signal with arguments: call it", e.span,
                            help=f"write `{name}({', '.join(a + ': ...' for a in SIGNAL_CALLS[name][0])})`")
            return h.ErrorExpr(t.ERROR, e.span)
        symbol = self.globals.symbol(name)
        if symbol is not None:
            self.references.append((e.span, symbol))
            if symbol.kind in ("type", "enum"):
                self.sink.error("V1004", f"`{name}` is a type, not a value", e.span,
                                help="write a value of the type, for example a record literal `{ ... }`")
                return h.ErrorExpr(t.ERROR, e.span)
            return h.Ref(symbol, t.RefType(symbol.kind, name), e.span)
        if self.globals.is_broken(name):
            return h.ErrorExpr(t.ERROR, e.span)
        enums = self.globals.enums_with_variant(name)
        if len(enums) == 1:
            enum = enums[0]
            return h.EnumValue(enum.name, name, enum, e.span)
        if isinstance(target, t.EnumType):
            guess = closest(name, target.variants)
            self.sink.error(
                "V1012", f"`{target.name}` has no member `{name}`", e.span,
                help=f"did you mean `{guess}`?" if guess else None,
                fix=replace_fix(f"replace with `{guess}`", e.span, guess) if guess else None,
                notes=(f"`{target.name}` has members: " + ", ".join(target.variants),),
            )
            return h.ErrorExpr(t.ERROR, e.span)
        candidates = ctx.scope.visible_names() | set(self.globals.value_names())
        if isinstance(target, t.EnumType):
            candidates |= set(target.variants)
        if ctx.kind == "gate":
            candidates |= set(SIGNAL_VALUES)
        help_ = did_you_mean(name, candidates)
        fix = None
        if help_:
            fix = replace_fix(f"replace with `{closest(name, candidates)}`", e.span, closest(name, candidates))
        notes = ()
        if isinstance(target, t.EnumType):
            notes = (f"`{target.name}` has members: " + ", ".join(target.variants),)
        self.sink.error("V1001", f"unknown name `{name}`", e.span, help=help_, fix=fix, notes=notes)
        return h.ErrorExpr(t.ERROR, e.span)

    def _ListLit(self, e: ast.ListLit, ctx, expected):
        target = t.strip_optional(expected) if expected else None
        elem_expected = target.elem if isinstance(target, t.ListType) else None
        items = []
        elem_type: t.Type | None = elem_expected
        for item in e.items:
            out = self.check(item, ctx, elem_type)
            if elem_type is None:
                elem_type = out.type
            else:
                self.require(out, elem_type, item.span, "this list item")
            items.append(out)
        if elem_type is None:
            elem_type = t.NEVER
        return h.ListValue(tuple(items), t.ListType(elem_type), e.span)

    def _RecordLit(self, e: ast.RecordLit, ctx, expected):
        target = t.strip_optional(expected) if expected else None
        if isinstance(target, (t.ErrorType,)):
            for f in e.fields:
                self.check(f.value, ctx, None)
            return h.ErrorExpr(t.ERROR, e.span)
        if not isinstance(target, t.RecordType):
            for f in e.fields:
                self.check(f.value, ctx, None)
            if target is None:
                problems.untyped_record_literal(self.sink, e.span)
            else:
                problems.type_mismatch(self.sink, e.span, target, "a record literal")
            return h.ErrorExpr(t.ERROR, e.span)
        return self.record_value(e, target, ctx)

    def record_value(self, e: ast.RecordLit, record: t.RecordType, ctx: Context) -> h.TExpr:
        seen: dict[str, Span] = {}
        fields = []
        for f in e.fields:
            name = f.name.name
            if name in seen:
                self.sink.error("V1010", f"field `{name}` is given twice", f.name.span,
                                labels=(Label(seen[name], "first given here"),))
                continue
            seen[name] = f.name.span
            info = record.field(name)
            if info is None:
                help_ = did_you_mean(name, [x.name for x in record.fields])
                self.sink.error("V1006", f"`{record.name}` has no field `{name}`", f.name.span, help=help_)
                self.check(f.value, ctx, None)
                continue
            fields.append((name, self.expect(f.value, info.type, ctx, f"field `{name}`")))
        missing = [x.name for x in record.fields if x.name not in seen and not isinstance(x.type, t.OptionalType)]
        if missing:
            listed = ", ".join(f"`{m}`" for m in missing)
            self.sink.error("V1007", f"missing field{'s' if len(missing) > 1 else ''} {listed} of `{record.name}`",
                            e.span, help="add " + ", ".join(f"`{m}: ...`" for m in missing))
        return h.RecordValue(tuple(fields), record, e.span)

    def _FieldAccess(self, e: ast.FieldAccess, ctx, expected):
        target = self.check(e.target, ctx, None)
        ty = target.type
        name = e.name.name
        if t.is_error(ty):
            return h.ErrorExpr(t.ERROR, e.span)
        if isinstance(ty, t.OptionalType):
            self.sink.error("V1016", f"this value may be `none`, so `.{name}` may fail", e.target.span,
                            help="check it first: `if x != none { ... }`")
            return h.ErrorExpr(t.ERROR, e.span)
        if isinstance(ty, t.ReceiptType):
            return self.receipt_field(target, ty, e, ctx)
        if isinstance(ty, t.RecordType):
            info = ty.field(name)
            if info is None:
                help_ = did_you_mean(name, [f.name for f in ty.fields])
                fix = replace_fix(f"replace with `{closest(name, [f.name for f in ty.fields])}`", e.name.span,
                                  closest(name, [f.name for f in ty.fields])) if help_ else None
                self.sink.error("V1006", f"`{ty.name}` has no field `{name}`", e.name.span, help=help_, fix=fix,
                                notes=("fields: " + ", ".join(f.name for f in ty.fields),))
                return h.ErrorExpr(t.ERROR, e.span)
            path = access_path(e)
            return h.GetField(target, name, ctx.narrowed.get(path, info.type) if path else info.type, info.labels,
                              e.span)
        self.sink.error("V1006", f"`{ty.show()}` has no fields", e.name.span)
        return h.ErrorExpr(t.ERROR, e.span)

    def receipt_field(self, target: h.TExpr, receipt: t.ReceiptType, e: ast.FieldAccess, ctx: Context) -> h.TExpr:
        """`r.id`, `r.args`, `r.result`: the receipt's id, and the arguments and result of the call of
        its tool that it signs, typed by the tool's parameters and result (spec/types.md)."""
        name = e.name.name
        symbol = self.globals.symbol(receipt.tool)
        params, returns = self.globals.signature(symbol) if symbol is not None else ((), t.ERROR)
        fields = t.receipt_fields(receipt.tool, ((p.name, p.type, p.labels) for p in params), returns,
                                  self.globals.result_labels.get(receipt.tool, frozenset()))
        info = next((f for f in fields if f.name == name), None)
        if info is None:
            guess = closest(name, t.RECEIPT_FIELDS)
            self.sink.error("V1006", f"`{receipt.show()}` has no field `{name}`", e.name.span,
                            help=f"did you mean `{guess}`?" if guess else None,
                            fix=replace_fix(f"replace with `{guess}`", e.name.span, guess) if guess else None,
                            notes=("a receipt has `id`, `args` (the arguments of the call it signs) and `result`",))
            return h.ErrorExpr(t.ERROR, e.span)
        if name != "id" and ctx.kind == "test":
            # A test's `expect` is read after its run, without the run's ledger.
            problems.receipt_read_in_test(self.sink, e.name.span, name)
            return h.ErrorExpr(t.ERROR, e.span)
        path = access_path(e)
        return h.GetField(target, name, ctx.narrowed.get(path, info.type) if path else info.type, info.labels, e.span)

    def _Index(self, e: ast.Index, ctx, expected):
        target = self.check(e.target, ctx, None)
        index = self.expect(e.index, t.INT, ctx, "a list index")
        ty = target.type
        if t.is_error(ty):
            return h.ErrorExpr(t.ERROR, e.span)
        if not isinstance(ty, t.ListType):
            problems.wrong_operand(self.sink, e.target.span, "indexing", (ty,), "a list")
            return h.ErrorExpr(t.ERROR, e.span)
        return h.GetIndex(target, index, ty.elem, e.span)

    def _Unary(self, e: ast.Unary, ctx, expected):
        if e.op == "not":
            operand = self.expect(e.operand, t.BOOL, ctx, "the operand of `not`")
            return h.UnaryExpr("not", operand, t.BOOL, e.span)
        operand = self.check(e.operand, ctx, expected)
        if not (t.is_numeric(operand.type) or operand.type in (t.MONEY, t.DURATION) or t.is_error(operand.type)):
            problems.wrong_operand(self.sink, e.span, "-", (operand.type,), "a number, money or a duration")
            return h.ErrorExpr(t.ERROR, e.span)
        return h.UnaryExpr("-", operand, operand.type, e.span)

    def _Binary(self, e: ast.Binary, ctx, expected):
        if e.op in ("and", "or"):
            left = self.expect(e.left, t.BOOL, ctx, f"the left side of `{e.op}`")
            right = self.expect(e.right, t.BOOL, ctx, f"the right side of `{e.op}`")
            return h.BinaryExpr(e.op, left, right, t.BOOL, e.span)
        if isinstance(e.left, ast.Name) and not isinstance(e.right, ast.Name) and e.op in ("==", "!="):
            # `refund == t.intent`: type the side that can be typed alone first
            right = self.check(e.right, ctx, None)
            left = self.check(e.left, ctx, right.type)
        else:
            left = self.check(e.left, ctx, None if e.op not in ("+", "-", "*") else _numeric_hint(expected))
            right = self.check(e.right, ctx, left.type if e.op in ("==", "!=", "<", "<=", ">", ">=", "+", "-") else None)
        result = t.binary_result(e.op, left.type, right.type)
        if result is None:
            self._operator_error(e, left.type, right.type)
            return h.ErrorExpr(t.ERROR, e.span)
        return h.BinaryExpr(e.op, left, right, result, e.span)

    def _operator_error(self, e: ast.Binary, left: t.Type, right: t.Type) -> None:
        for side, ty in ((e.left, left), (e.right, right)):
            if isinstance(ty, t.OptionalType):
                self.sink.error("V1016", f"this value may be `none`, so `{e.op}` may fail", side.span,
                                help="check it first: `if x != none { ... }`")
                return
        if _is_unit_clash(left, right) or (left in (t.MONEY, t.DURATION) or right in (t.MONEY, t.DURATION)):
            self.sink.error(
                "V1015",
                f"`{e.op}` cannot combine {t.unit_name(left)} and {t.unit_name(right)}",
                e.span,
                labels=(Label(e.left.span, f"`{left.show()}`"), Label(e.right.span, f"`{right.show()}`")),
                help=_unit_help(right, left) or "use values of the same unit on both sides",
            )
            return
        labels = (Label(e.left.span, f"`{left.show()}`"), Label(e.right.span, f"`{right.show()}`"))
        problems.wrong_operand(self.sink, e.span, e.op, (left, right), labels=labels)

    def _Rate(self, e: ast.Rate, ctx, expected):
        target = expected if isinstance(expected, t.RateType) else None
        amount = self.check(e.amount, ctx, target.amount if target else None)
        unit = e.unit.name
        if unit.endswith("s") and unit[:-1] in t.RATE_UNITS:
            unit = unit[:-1]
        if unit not in t.RATE_UNITS:
            help_ = did_you_mean(unit, t.RATE_UNITS) or "units: " + ", ".join(t.RATE_UNITS)
            self.sink.error("V1023", f"unknown rate unit `{e.unit.name}`", e.unit.span, help=help_)
            return h.ErrorExpr(t.ERROR, e.span)
        return h.RateExpr(amount, unit, t.RateType(amount.type, unit), e.span)

    def _ForExpr(self, e: ast.ForExpr, ctx: Context, expected):
        iterable = self.check(e.iterable, ctx, None)
        elem: t.Type = t.ERROR
        if isinstance(iterable.type, t.ListType):
            elem = iterable.type.elem
        elif not t.is_error(iterable.type):
            problems.wrong_operand(self.sink, e.iterable.span, "for", (iterable.type,), "a list")
        bound = None
        if e.bound is not None:
            bound_expr = self.expect(e.bound, t.INT, ctx, "the loop bound")
            written = _int_literal(bound_expr)
            if written is not None:
                bound = max(written, 0)
                if written < 0:
                    problems.value_out_of_range(self.sink, e.bound.span, "a loop bound", "at least 0",
                                                help="`max n` runs the body at most n times")
            elif not isinstance(bound_expr, h.ErrorExpr) and self.fits(bound_expr, t.INT):  # else already reported
                problems.not_constant(self.sink, e.bound.span, "a loop bound", help="write a literal such as "
                                      "`max 10`, so the worst case is known before running")
        var = h.Symbol("loop", e.var.name, e.var.span, elem, owner=ctx.owner)
        inner = Context(ctx.kind, ctx.owner, ctx.scope.child(), ctx.returns, ctx.mock_tools, ctx.loop_depth + 1)
        inner.scope.bind(var)
        self.references.append((e.var.span, var))
        expected_elem = None
        target = t.strip_optional(expected) if expected else None
        if isinstance(target, t.ListType):
            expected_elem = target.elem
        body, result = self.globals.check_block_value(e.body, inner, expected_elem)
        result_type = result.type if result is not None else t.NONE
        if expected_elem is not None:
            result_type = expected_elem  # a mismatch in the body is already reported there
        return h.ForEach(var, iterable, bound, body, result, t.ListType(result_type), e.span,
                         # no `max`: an empty span where one would go, for the fix that adds it
                         e.bound.span if e.bound is not None else Span(e.iterable.span.end, e.iterable.span.end))

    def _Call(self, e: ast.Call, ctx: Context, expected):
        if not isinstance(e.callee, ast.Name):
            problems.callee_not_a_name(self.sink, e.callee.span)
            for a in e.args:
                self.check(a.value, ctx, None)
            return h.ErrorExpr(t.ERROR, e.span)
        name = e.callee.name
        if ctx.scope.lookup(name) is not None:
            self.sink.error("V1004", f"`{name}` is a value, not something to call", e.callee.span)
            return h.ErrorExpr(t.ERROR, e.span)
        if ctx.kind == "gate" and name in SIGNAL_CALLS:
            return self._signal_call(e, name, ctx)
        if name in BUILTIN_CALLS:
            return self.globals.builtins.call(self, e, name, ctx, expected)
        symbol = self.globals.symbol(name)
        if symbol is None:
            if self.globals.is_broken(name):
                return h.ErrorExpr(t.ERROR, e.span)
            callable_names = set(self.globals.callable_names()) | set(BUILTIN_CALLS)
            if ctx.kind == "gate":
                callable_names |= set(SIGNAL_CALLS)
            help_ = did_you_mean(name, callable_names)
            fix = replace_fix(f"replace with `{closest(name, callable_names)}`", e.callee.span,
                              closest(name, callable_names)) if help_ else None
            self.sink.error("V1001", f"unknown name `{name}`", e.callee.span, help=help_, fix=fix)
            for a in e.args:
                self.check(a.value, ctx, None)
            return h.ErrorExpr(t.ERROR, e.span)
        self.references.append((e.callee.span, symbol))
        if symbol.kind not in ("agent", "tool", "flow"):
            self.sink.error("V1004", f"`{name}` is a {symbol.kind}; only agents, tools and flows can be called",
                            e.callee.span, labels=(Label(symbol.span, f"`{name}` is declared here"),))
            return h.ErrorExpr(t.ERROR, e.span)
        if ctx.kind not in ("flow",):
            problems.call_outside_flow(self.sink, e.callee.span, symbol.kind, ctx.kind)
            return h.ErrorExpr(t.ERROR, e.span)
        params, returns = self.globals.signature(symbol)
        args = self.bind_args(e, name, params, ctx)
        if args is None:
            return h.ErrorExpr(returns, e.span)
        return h.CallExpr(symbol.kind, name, args, returns, e.span)

    def bind_args(self, e: ast.Call | ast.CallTurn, name: str, params: tuple[h.Param, ...], ctx: Context):
        """Match arguments to parameters: positional ones first, in order, then by name."""
        given: dict[str, tuple[ast.Arg, Span]] = {}
        ok = True
        misnamed = False  # a misspelt argument name already explains a missing one
        positional_done = False
        by_name = {p.name: p for p in params}
        for i, a in enumerate(e.args):
            if a.name is None:
                if positional_done:
                    self.sink.error("V1013", "a positional argument cannot follow a named one", a.span,
                                    help="name this argument")
                    ok = False
                    continue
                if i >= len(params):
                    self.sink.error("V1013", f"`{name}` takes {len(params)} argument{'s' if len(params) != 1 else ''}",
                                    a.span, help="remove this argument")
                    ok = False
                    continue
                given[params[i].name] = (a, a.span)
            else:
                positional_done = True
                pname = a.name.name
                if pname not in by_name:
                    help_ = did_you_mean(pname, by_name) or (
                        "parameters: " + ", ".join(by_name) if by_name else f"`{name}` takes no arguments")
                    self.sink.error("V1013", f"`{name}` has no parameter `{pname}`", a.name.span, help=help_)
                    self.check(a.value, ctx, None)
                    ok = False
                    misnamed = True
                    continue
                if pname in given:
                    self.sink.error("V1013", f"argument `{pname}` is given twice", a.name.span,
                                    labels=(Label(given[pname][1], "first given here"),))
                    ok = False
                    continue
                given[pname] = (a, a.name.span)
        out = []
        for p in params:
            if p.name not in given:
                if isinstance(p.type, t.OptionalType) or misnamed:
                    continue
                self.sink.error("V1013", f"missing argument `{p.name}` of `{name}`", e.span,
                                help=f"add `{p.name}: ...`")
                ok = False
                continue
            arg = given[p.name][0]
            out.append((p.name, self.expect(arg.value, p.type, ctx, f"argument `{p.name}`")))
        return tuple(out) if ok else None

    def _signal_call(self, e: ast.Call, name: str, ctx: Context) -> h.TExpr:
        result = SIGNAL_CALLS[name][1]
        params = tuple(h.Param(p.name, _KIND_TYPES[p.kind]) for p in SIGNALS[name].params)
        args = self.bind_args_loose(e, name, params, ctx)
        if args is None:
            return h.ErrorExpr(result, e.span)
        return h.CallExpr("signal", name, args, result, e.span)

    def bind_args_loose(self, e, name, params, ctx):
        """Like :meth:`bind_args`, but model parameters take a model's name."""
        model_params = [p for p in params if isinstance(p.type, t.RefType)]
        if not model_params:
            return self.bind_args(e, name, params, ctx)
        plain = tuple(p if not isinstance(p.type, t.RefType) else h.Param(p.name, t.ERROR) for p in params)
        args = self.bind_args(e, name, plain, ctx)
        if args is None:
            return None
        out = []
        for pname, value in args:
            if pname == "model":
                if not (isinstance(value, h.Ref) and value.symbol.kind == "model"):
                    if not isinstance(value, h.ErrorExpr):
                        self.sink.error("V1004", "expected the name of a model", value.span,
                                        help=did_you_mean(getattr(value, "name", ""), self.globals.names_of("model"))
                                        or "models: " + ", ".join(self.globals.names_of("model")))
                    return None
            out.append((pname, value))
        return tuple(out)


def access_path(e: ast.Expr) -> tuple[str, ...] | None:
    """`a.b.c` as ("a", "b", "c"); None for anything that is not a plain name or field chain."""
    if isinstance(e, ast.Name):
        return (e.name,)
    if isinstance(e, ast.FieldAccess):
        inner = access_path(e.target)
        return inner + (e.name.name,) if inner else None
    return None


def _int_literal(e: h.TExpr) -> int | None:
    """The value of an integer literal, negated ones (`-1`) included; None for anything else."""
    if isinstance(e, h.UnaryExpr) and e.op == "-":
        inner = _int_literal(e.operand)
        return -inner if inner is not None else None
    if isinstance(e, h.Lit) and isinstance(e.value, int) and not isinstance(e.value, bool):
        return e.value
    return None


def _numeric_hint(expected: t.Type | None) -> t.Type | None:
    if expected in (t.FLOAT, t.TOKENS):
        return expected
    return None


def _is_unit_clash(a: t.Type, b: t.Type) -> bool:
    units = (t.MONEY, t.DURATION)
    numbers = (t.INT, t.FLOAT, t.TOKENS)
    a_unit = a in units or a in numbers
    b_unit = b in units or b in numbers
    return a_unit and b_unit and a != b and not (a in numbers and b in numbers)


def _unit_help(found: t.Type, expected: t.Type) -> str | None:
    if expected == t.MONEY and t.is_numeric(found):
        return "write money with a dollar sign, as in `$5` or `$0.05`"
    if expected == t.DURATION and t.is_numeric(found):
        return "write a duration with its unit, as in `30s`, `250ms` or `2m`"
    if expected in (t.INT, t.TOKENS) and found == t.MONEY:
        return "this is a count (tokens, steps, calls): drop the `$`"
    if expected in (t.INT, t.TOKENS) and found == t.DURATION:
        return "this is a count: drop the unit"
    return None
