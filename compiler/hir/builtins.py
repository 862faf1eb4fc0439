"""Builtin functions of flow and test expressions: len, min, max, redact, declassify, receipt."""

from __future__ import annotations

from vox.compiler.hir import nodes as h
from vox.compiler.hir import problems
from vox.compiler.hir import types as t
from vox.compiler.names import did_you_mean
from vox.compiler.syntax import ast


class Builtins:
    """Types calls of builtins. ``checker`` is the ExpressionChecker doing the call."""

    def call(self, checker, e: ast.Call, name: str, ctx, expected) -> h.TExpr:
        return getattr(self, "_" + name)(checker, e, ctx, expected)

    def _arity(self, checker, e: ast.Call, name: str, positional: int, named: tuple[str, ...] = ()) -> bool:
        pos = [a for a in e.args if a.name is None]
        kw = {a.name.name: a for a in e.args if a.name is not None}
        ok = len(pos) == positional and set(kw) == set(named)
        if not ok:
            shape = ", ".join(["x"] * positional + [f"{n}: ..." for n in named])
            checker.sink.error("V1013", f"`{name}` is called as `{name}({shape})`", e.span)
        return ok

    def _len(self, checker, e, ctx, expected):
        if not self._arity(checker, e, "len", 1):
            return h.ErrorExpr(t.INT, e.span)
        arg = checker.check(e.args[0].value, ctx, None)
        if not (isinstance(arg.type, t.ListType) or arg.type == t.STR or t.is_error(arg.type)):
            problems.wrong_operand(checker.sink, e.args[0].span, "len", (arg.type,), "a list or a string")
        return h.CallExpr("builtin", "len", (("x", arg),), t.INT, e.span)

    def _min(self, checker, e, ctx, expected):
        return self._extremum(checker, e, ctx, expected, "min")

    def _max(self, checker, e, ctx, expected):
        return self._extremum(checker, e, ctx, expected, "max")

    def _extremum(self, checker, e, ctx, expected, name):
        if not self._arity(checker, e, name, 2):
            return h.ErrorExpr(t.ERROR, e.span)
        a = checker.check(e.args[0].value, ctx, expected)
        b = checker.check(e.args[1].value, ctx, a.type)
        result = t.binary_result("<", a.type, b.type)
        if result is None:
            checker.sink.error("V1015", f"`{name}` compares values of one unit, not `{a.type.show()}` and "
                               f"`{b.type.show()}`", e.span)
            return h.ErrorExpr(t.ERROR, e.span)
        ty = a.type if a.type == b.type else t.FLOAT if t.FLOAT in (a.type, b.type) else a.type
        return h.CallExpr("builtin", name, (("a", a), ("b", b)), ty, e.span)

    def _redact(self, checker, e, ctx, expected):
        if not self._arity(checker, e, "redact", 1):
            return h.ErrorExpr(t.ERROR, e.span)
        arg = checker.check(e.args[0].value, ctx, expected)
        return h.CallExpr("builtin", "redact", (("x", arg),), arg.type, e.span)

    def _declassify(self, checker, e, ctx, expected):
        if not self._arity(checker, e, "declassify", 1, ("reason",)):
            return h.ErrorExpr(t.ERROR, e.span)
        arg = checker.check(e.args[0].value, ctx, expected)
        reason_arg = next(a for a in e.args if a.name is not None)
        reason = checker.expect(reason_arg.value, t.STR, ctx, "the reason")
        written = isinstance(reason, h.Lit) and str(reason.value).strip()
        if not written and not isinstance(reason, h.ErrorExpr):
            problems.declassify_without_reason(checker.sink, reason_arg.value.span)
        return h.CallExpr("builtin", "declassify", (("x", arg), ("reason", reason)), arg.type, e.span)

    def _receipt(self, checker, e, ctx, expected):
        if ctx.kind != "test":
            problems.receipt_outside_mock(checker.sink, e.span)
            return h.ErrorExpr(t.ERROR, e.span)
        if not self._arity(checker, e, "receipt", 1):
            return h.ErrorExpr(t.ERROR, e.span)
        arg = e.args[0].value
        if not isinstance(arg, ast.Name) or checker.globals.symbol(arg.name) is None or \
                checker.globals.symbol(arg.name).kind != "tool":
            name = arg.name if isinstance(arg, ast.Name) else ""
            checker.sink.error("V1017", "`receipt(...)` must name a tool", arg.span,
                               help=did_you_mean(name, checker.globals.names_of("tool")))
            return h.ErrorExpr(t.ERROR, e.span)
        symbol = checker.globals.symbol(arg.name)
        checker.references.append((arg.span, symbol))
        return h.CallExpr("builtin", "receipt", (("tool", h.Ref(symbol, t.RefType("tool", arg.name), arg.span)),),
                          t.ReceiptType(arg.name), e.span)
