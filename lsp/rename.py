"""Rename a declared name (or a local) everywhere it is used.

A Vox file is its own namespace (there are no imports), so every use of a name is in the file
that declares it; the edit is still a workspace edit keyed by document.
"""

from __future__ import annotations

import re

from lsprotocol import types as lsp

from vox.compiler import query
from vox.lsp.documents import Checked

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RESERVED = frozenset(
    "label budget provider model type enum tool gate agent flow test let if else for in max par return "
    "check mock true false none and or not per".split()
)


def prepare_rename(checked: Checked, position: lsp.Position) -> lsp.PrepareRenamePlaceholder | None:
    found = query.symbol_at(checked.result.program, checked.positions.offset(position))
    if found is None or found[1].kind == "test":
        return None
    span, symbol = found
    return lsp.PrepareRenamePlaceholder(range=checked.positions.range(span), placeholder=symbol.name)


def rename(checked: Checked, position: lsp.Position, new_name: str) -> lsp.WorkspaceEdit | None:
    program = checked.result.program
    found = query.symbol_at(program, checked.positions.offset(position))
    if found is None:
        return None
    _, symbol = found
    if not _IDENT.match(new_name) or new_name in _RESERVED:
        raise ValueError(f"`{new_name}` is not a name Vox can declare")
    if symbol.owner is None and new_name in program.symbols and new_name != symbol.name:
        raise ValueError(f"`{new_name}` is already declared in this file")
    edits = [lsp.TextEdit(range=checked.positions.range(s), new_text=new_name)
             for s in query.occurrences(program, symbol)]
    return lsp.WorkspaceEdit(changes={checked.uri: edits})
