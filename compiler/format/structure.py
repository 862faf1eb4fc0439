"""The line structure of a module: which nodes are *items* and which lists hold them.

An item is anything the formatter may put on a line of its own: a declaration, a member, a
statement, a gate check, a test mock, a record field, a list element, a call argument, a
parameter, an enum variant, a scripted turn. A :class:`Container` is a list of items together
with the source region that encloses it (a declaration body, a block, a record, the parentheses
of a call, ...). Comments are attached to items and containers (see :mod:`.comments`), and the
printer prints every container's items with their comments; both use this module, so they agree
on what the items are.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from vox.compiler.syntax import ast
from vox.compiler.syntax.scan import Region, region_at, regions


@dataclass(frozen=True, slots=True)
class Container:
    """The items ``owner`` holds in the role ``role``, and the region ``[start, end)`` around them."""

    owner: Any
    role: str
    start: int
    end: int
    items: tuple[Any, ...]

    @property
    def key(self) -> tuple[int, str]:
        return container_key(self.owner, self.role)

    def encloses(self, offset: int) -> bool:
        return self.start <= offset < self.end


def container_key(owner: Any, role: str) -> tuple[int, str]:
    """Identifies a container by its owning node (by identity: equal nodes may be distinct)."""
    return (id(owner), role)


# Roles, so that the comment map and the printer name the same containers.
DECLS = "decls"
PARAMS = "params"
BODY = "body"
FIELDS = "fields"
VARIANTS = "variants"
ELEMENTS = "elements"
ARGS = "args"
TURNS = "turns"
STMTS = "stmts"


def module_container(module: ast.Module, text: str) -> Container:
    return Container(module, DECLS, 0, len(text), module.decls)


def containers_in(node: Any, text: str) -> tuple[Container, ...]:
    """The containers directly inside ``node`` (an item or an expression), outermost first.

    Containers nested inside their items are not included: walk into those items for them.
    """
    if isinstance(node, DECL_TYPES):
        return _decl_containers(node, text)
    if isinstance(node, (ast.Member, ast.RecordField, ast.Arg)):
        return expr_containers(node.value)
    if isinstance(node, ast.Check):
        return expr_containers(node.cond) + expr_containers(node.action)
    if isinstance(node, ast.Mock):
        return _mock_containers(node, text)
    if isinstance(node, ast.ReplyTurn):
        return expr_containers(node.value)
    if isinstance(node, ast.CallTurn):
        return (Container(node, ARGS, node.tool.span.end, node.span.end, node.args),)
    if isinstance(node, STMT_TYPES):
        return _stmt_containers(node)
    if isinstance(node, (ast.Param, ast.FieldDecl, ast.Ident)):
        return ()
    return expr_containers(node)


def expr_containers(e: Any) -> tuple[Container, ...]:
    """The containers inside expression ``e`` that are not inside one of its items."""
    if isinstance(e, ast.RecordLit):
        return (Container(e, FIELDS, e.span.start, e.span.end, e.fields),)
    if isinstance(e, ast.ListLit):
        return (Container(e, ELEMENTS, e.span.start, e.span.end, e.items),)
    if isinstance(e, ast.Call):
        return expr_containers(e.callee) + (Container(e, ARGS, e.callee.span.end, e.span.end, e.args),)
    if isinstance(e, ast.FieldAccess):
        return expr_containers(e.target)
    if isinstance(e, ast.Index):
        return expr_containers(e.target) + expr_containers(e.index)
    if isinstance(e, ast.Unary):
        return expr_containers(e.operand)
    if isinstance(e, ast.Binary):
        return expr_containers(e.left) + expr_containers(e.right)
    if isinstance(e, ast.Rate):
        return expr_containers(e.amount)
    if isinstance(e, ast.ForExpr):
        bound = expr_containers(e.bound) if e.bound is not None else ()
        return expr_containers(e.iterable) + bound + (block_container(e.body),)
    return ()


def block_container(block: ast.Block) -> Container:
    return Container(block, STMTS, block.span.start, block.span.end, block.stmts)


def _stmt_containers(s: Any) -> tuple[Container, ...]:
    if isinstance(s, ast.Let):
        return expr_containers(s.value)
    if isinstance(s, ast.Return):
        return expr_containers(s.value) if s.value is not None else ()
    if isinstance(s, ast.ExprStmt):
        return expr_containers(s.expr)
    if isinstance(s, ast.Par):
        return (block_container(s.body),)
    # an `if`, with its `else if` chain: one statement, so one item
    found = expr_containers(s.cond) + (block_container(s.then),)
    if isinstance(s.orelse, ast.Block):
        found += (block_container(s.orelse),)
    elif s.orelse is not None:
        found += _stmt_containers(s.orelse)
    return found


def _mock_containers(m: ast.Mock, text: str) -> tuple[Container, ...]:
    if isinstance(m.value, tuple):
        return (Container(m, TURNS, m.target.span.end, m.span.end, m.value),)
    return containers_in(m.value, text)


# ---- declarations ---------------------------------------------------------------------------


DECL_TYPES = tuple(ast.DECL_KEYWORDS)
STMT_TYPES = (ast.Let, ast.If, ast.Par, ast.Return, ast.ExprStmt)


def decl_items(decl: Any) -> tuple[Any, ...]:
    """The items of a declaration's `{ }` body."""
    if isinstance(decl, (ast.GateDecl, ast.FlowDecl, ast.TestDecl)):
        return decl.items
    if isinstance(decl, ast.EnumDecl):
        return decl.variants
    if isinstance(decl, ast.TypeDecl):
        return decl.type.fields if isinstance(decl.type, ast.RecordType) else ()
    return decl.members


def _decl_containers(decl: Any, text: str) -> tuple[Container, ...]:
    if isinstance(decl, ast.TypeDecl):
        if isinstance(decl.type, ast.RecordType):
            return (Container(decl.type, FIELDS, decl.type.span.start, decl.type.span.end, decl.type.fields),)
        return ()
    if isinstance(decl, ast.EnumDecl):
        return (Container(decl, VARIANTS, decl.name.span.end, decl.span.end, decl.variants),)
    found: tuple[Container, ...] = ()
    header_end = _header_end(decl)
    if isinstance(decl, (ast.ToolDecl, ast.GateDecl, ast.AgentDecl, ast.FlowDecl)):
        params_end = closing_paren_end(text, decl.name.span.end)
        found += (Container(decl, PARAMS, decl.name.span.end, params_end, decl.params),)
        header_end = max(header_end, params_end)
    return found + (Container(decl, BODY, header_end, decl.span.end, decl_items(decl)),)


def _header_end(decl: Any) -> int:
    """Where the part of a declaration before its `{ }` body ends (parameters aside)."""
    if isinstance(decl, ast.ModelDecl):
        return decl.model_id.span.end
    if isinstance(decl, ast.ProviderDecl):
        return decl.protocol.span.end
    if isinstance(decl, (ast.ToolDecl, ast.AgentDecl)):
        return decl.returns.span.end
    if isinstance(decl, ast.FlowDecl) and decl.returns is not None:
        return decl.returns.span.end
    if isinstance(decl, ast.BudgetDecl):
        return decl.scope.span.end
    return decl.name.span.end


def closing_paren_end(text: str, start: int) -> int:
    """The offset just after the `)` closing the first `(` at or after ``start``, outside
    strings and comments (a parameter list holds no other parentheses).

    >>> closing_paren_end("f // (a)\\n(x: str) // )", 0)
    17
    """
    found = _regions(text)
    opening = _find_code(text, found, "(", start)
    closing = _find_code(text, found, ")", opening) if opening >= 0 else -1
    return closing + 1 if closing >= 0 else len(text)


def _find_code(text: str, found: tuple[Region, ...], char: str, start: int) -> int:
    """The first ``char`` at or after ``start`` outside strings and comments, or -1."""
    i = text.find(char, start)
    while i >= 0:
        region = region_at(found, i)
        if region is None:
            return i
        i = text.find(char, region.end)
    return -1


@functools.lru_cache(maxsize=4)
def _regions(text: str) -> tuple[Region, ...]:
    """The strings and comments of a module's text (asked once per declaration)."""
    return regions(text)
