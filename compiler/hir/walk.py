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


def block_expressions(stmts: Iterable[h.TStmt]) -> Iterator[h.TExpr]:
    """Every expression in a sequence of statements, each before its parts, in source order."""
    for s in stmts:
        yield from statement_expressions(s)


def statement_expressions(s: h.TStmt) -> Iterator[h.TExpr]:
    if isinstance(s, h.LetStmt):
        yield from expressions(s.value)
    elif isinstance(s, h.ReturnStmt):
        if s.value is not None:
            yield from expressions(s.value)
    elif isinstance(s, h.IfStmt):
        yield from expressions(s.cond)
        yield from block_expressions(s.then + s.orelse)
    elif isinstance(s, h.ParStmt):
        yield from block_expressions(s.branches)
    elif isinstance(s, h.ExprStatement):
        yield from expressions(s.expr)


def expressions(e: h.TExpr) -> Iterator[h.TExpr]:
    """``e`` and every expression inside it (a loop's body included), each before its parts."""
    yield e
    for child in children(e):
        yield from expressions(child)
    if isinstance(e, h.ForEach):
        yield from block_expressions(e.body)
        if e.result is not None:
            yield from expressions(e.result)


def calls_in_block(stmts: Iterable[h.TStmt]) -> Iterator[h.CallExpr]:
    """Every call in a sequence of statements, nested ones included, in source order."""
    return (e for e in block_expressions(stmts) if isinstance(e, h.CallExpr))


def calls_in_stmt(s: h.TStmt) -> Iterator[h.CallExpr]:
    """Every call in a statement, nested ones included, in source order."""
    return (e for e in statement_expressions(s) if isinstance(e, h.CallExpr))
