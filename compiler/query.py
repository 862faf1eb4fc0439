"""Questions editors ask about a checked file: what is at this offset, where is it used.

Pure functions of a :class:`~vox.compiler.api.CheckResult` (and its parts); the language server
turns their answers into LSP messages, and nothing here knows about LSP. Offsets are character
offsets into the file, like every span in the compiler.

>>> from vox.compiler.api import check_source
>>> text = "label pii\\ntype T = { a: str @pii }\\n"
>>> result = check_source("t.vox", text)
>>> span, symbol = symbol_at(result.program, text.index("pii }"))
>>> (symbol.kind, symbol.name, text[span.start:span.end])
('label', 'pii', 'pii')
>>> [text[s.start:s.end] for s in occurrences(result.program, symbol)]
['pii', 'pii']
"""

from __future__ import annotations

from typing import Iterator

from vox.compiler.hir import nodes as h
from vox.compiler.hir.walk import block_expressions
from vox.compiler.hir.walk import expressions as expression_tree
from vox.compiler.source import Span
from vox.compiler.syntax import ast


def symbol_key(symbol: h.Symbol) -> tuple:
    """What makes two symbols the same name: locals of one declaration are told apart by where
    they are declared (``Symbol`` equality ignores spans)."""
    if symbol.owner is None:
        return (symbol.kind in _LOCAL_KINDS, symbol.name)
    return (True, symbol.name, symbol.owner, symbol.span.start)


_LOCAL_KINDS = frozenset({"param", "let", "loop"})


def declared_symbols(program: h.Program) -> Iterator[h.Symbol]:
    """Every declared symbol: the top-level ones, then each local that is used somewhere."""
    yield from program.symbols.values()
    seen: set[tuple] = set()
    for _, symbol in program.references:
        if symbol.owner is not None:
            key = symbol_key(symbol)
            if key not in seen:
                seen.add(key)
                yield symbol


def symbol_at(program: h.Program, offset: int) -> tuple[Span, h.Symbol] | None:
    """The name under ``offset`` (a use or a declaration) and the symbol it denotes.

    The narrowest match wins, and a use wins over a declaration it sits in.
    """
    best: tuple[Span, h.Symbol] | None = None
    for span, symbol in program.references:
        if span.start <= offset <= span.end and (best is None or span.length < best[0].length):
            best = (span, symbol)
    if best is not None:
        return best
    for symbol in declared_symbols(program):
        span = symbol.span
        if span.length and span.start <= offset <= span.end:
            if best is None or span.length < best[0].length:
                best = (span, symbol)
    return best


def occurrences(program: h.Program, symbol: h.Symbol, *, include_declaration: bool = True) -> list[Span]:
    """Every span naming ``symbol`` in the file, in source order (its declaration included unless
    ``include_declaration`` is false)."""
    key = symbol_key(symbol)
    spans = {span for span, used in program.references if symbol_key(used) == key}
    if include_declaration:
        declared = program.symbols.get(symbol.name) if symbol.owner is None else symbol
        if declared is not None and declared.span.length and symbol_key(declared) == key:
            spans.add(declared.span)
    return sorted(spans, key=lambda s: (s.start, s.end))


def expressions(program: h.Program) -> Iterator[h.TExpr]:
    """Every typed expression of the program (flow bodies, gate checks, tests), outer first."""
    for flow in program.flows.values():
        yield from block_expressions(flow.body)
    for gate in program.gates.values():
        for check in gate.checks:
            yield from expression_tree(check.cond)
    for test in program.tests:
        for _, value in test.input:
            yield from expression_tree(value)
        if test.expect is not None:
            yield from expression_tree(test.expect)


def expression_at(program: h.Program, offset: int) -> h.TExpr | None:
    """The innermost typed expression whose span contains ``offset``."""
    best = None
    for e in expressions(program):
        span = e.span
        if span.length and span.start <= offset <= span.end:
            if best is None or span.length <= best.span.length:
                best = e
    return best


# ---- declarations (AST) ----------------------------------------------------------------------------

DECL_KINDS = {
    ast.LabelDecl: "label", ast.BudgetDecl: "budget", ast.ProviderDecl: "provider", ast.ModelDecl: "model",
    ast.TypeDecl: "type", ast.EnumDecl: "enum", ast.ToolDecl: "tool", ast.GateDecl: "gate",
    ast.AgentDecl: "agent", ast.FlowDecl: "flow", ast.TestDecl: "test",
}


def decl_kind(decl: ast.Decl) -> str:
    """The keyword that starts ``decl`` (``agent``, ``flow``, ...)."""
    return DECL_KINDS.get(type(decl), "decl")


def decl_name(decl: ast.Decl) -> tuple[str, Span]:
    """The declared name and its span (a test's name is its string; a budget's, its scope)."""
    if isinstance(decl, ast.BudgetDecl):
        return f"budget {decl.scope.name}", decl.scope.span
    if isinstance(decl, ast.TestDecl):
        return decl.name.value, decl.name.span
    return decl.name.name, decl.name.span


def decl_at(module: ast.Module, offset: int) -> ast.Decl | None:
    """The top-level declaration containing ``offset``."""
    for decl in module.decls:
        if decl.span.start <= offset <= decl.span.end:
            return decl
    return None


def member_at(decl: ast.Decl, offset: int) -> ast.Member | None:
    """The ``key: value`` member of ``decl`` whose key is under ``offset``."""
    for item in getattr(decl, "members", ()) or getattr(decl, "items", ()):
        if isinstance(item, ast.Member) and item.key.span.start <= offset <= item.key.span.end:
            return item
    return None


def field_names(ty) -> list[tuple[str, object]]:
    """The (name, FieldInfo) pairs of a record type (through optionals); empty for others."""
    from vox.compiler.hir import types as t

    ty = t.strip_optional(ty) if ty is not None else None
    if isinstance(ty, t.RecordType):
        return [(f.name, f) for f in ty.fields]
    return []
