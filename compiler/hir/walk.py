"""Walking HIR flow bodies: the sub-expressions of an expression, and every call in a body.

The analyses share these so that none of them misses a place a call can hide (a loop body, a
record field, an argument of another call).
"""

from __future__ import annotations

from typing import Iterable, Iterator

from vox.compiler.hir import nodes as h


def children(e: h.TExpr) -> tuple[h.TExpr, ...]:
    """The direct sub-expressions of ``e``, in source order (a loop's body statements excepted)."""
    if isinstance(e, h.CallExpr):
        return tuple(arg for _, arg in e.args)
    if isinstance(e, h.RecordValue):
        return tuple(v for _, v in e.fields)
    if isinstance(e, h.ListValue):
        return e.items
    if isinstance(e, h.GetField):
        return (e.target,)
    if isinstance(e, h.GetIndex):
        return (e.target, e.index)
    if isinstance(e, h.UnaryExpr):
        return (e.operand,)
    if isinstance(e, h.BinaryExpr):
        return (e.left, e.right)
    if isinstance(e, h.RateExpr):
        return (e.amount,)
    if isinstance(e, h.ForEach):
        return (e.iterable,)
    return ()


def calls_in_block(stmts: Iterable[h.TStmt]) -> Iterator[h.CallExpr]:
    """Every call in a sequence of statements, nested ones included, in source order."""
    for s in stmts:
        yield from calls_in_stmt(s)


def calls_in_stmt(s: h.TStmt) -> Iterator[h.CallExpr]:
    """Every call in a statement, nested ones included, in source order."""
    if isinstance(s, h.LetStmt):
        yield from calls_in_expr(s.value)
    elif isinstance(s, h.ReturnStmt):
        if s.value is not None:
            yield from calls_in_expr(s.value)
    elif isinstance(s, h.IfStmt):
        yield from calls_in_expr(s.cond)
        yield from calls_in_block(s.then + s.orelse)
    elif isinstance(s, h.ParStmt):
        yield from calls_in_block(s.branches)
    elif isinstance(s, h.ExprStatement):
        yield from calls_in_expr(s.expr)


def calls_in_expr(e: h.TExpr) -> Iterator[h.CallExpr]:
    """Every call inside an expression (the expression itself first, if it is one)."""
    if isinstance(e, h.CallExpr):
        yield e
    for child in children(e):
        yield from calls_in_expr(child)
    if isinstance(e, h.ForEach):
        yield from calls_in_block(e.body)
        if e.result is not None:
            yield from calls_in_expr(e.result)
