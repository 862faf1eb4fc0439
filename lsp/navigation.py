"""Go to definition and find references, from the compiler's resolved names."""

from __future__ import annotations

from lsprotocol import types as lsp

from vox.compiler import query
from vox.lsp.documents import Checked


def definition(checked: Checked, position: lsp.Position) -> lsp.Location | None:
    found = query.symbol_at(checked.result.program, checked.positions.offset(position))
    if found is None or not found[1].span.length:
        return None
    _, symbol = found
    declared = checked.result.program.symbols.get(symbol.name, symbol) if symbol.owner is None else symbol
    return lsp.Location(uri=checked.uri, range=checked.positions.range(declared.span))


def references(checked: Checked, position: lsp.Position, include_declaration: bool) -> list[lsp.Location]:
    program = checked.result.program
    found = query.symbol_at(program, checked.positions.offset(position))
    if found is None:
        return []
    spans = query.occurrences(program, found[1], include_declaration=include_declaration)
    return [lsp.Location(uri=checked.uri, range=checked.positions.range(s)) for s in spans]
