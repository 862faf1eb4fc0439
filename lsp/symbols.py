"""Document symbols (the outline) and workspace symbols across every `.vox` file."""

from __future__ import annotations

from lsprotocol import types as lsp

from vox.compiler import query
from vox.compiler.syntax import ast
from vox.lsp.documents import Checked

K = lsp.SymbolKind
_KINDS = {
    "label": K.Constant, "budget": K.Object, "provider": K.Module, "model": K.Class, "type": K.Struct,
    "enum": K.Enum, "tool": K.Function, "gate": K.Interface, "agent": K.Method, "flow": K.Function,
    "test": K.Event,
}


def document_symbols(checked: Checked) -> list[lsp.DocumentSymbol]:
    positions = checked.positions
    out = []
    for decl in checked.result.parse.module.decls:
        kind = query.decl_kind(decl)
        name, name_span = query.decl_name(decl)
        children = []
        if isinstance(decl, ast.TypeDecl) and isinstance(decl.type, ast.RecordType):
            for f in decl.type.fields:
                children.append(lsp.DocumentSymbol(name=f.name.name, kind=K.Field, range=positions.range(f.span),
                                                   selection_range=positions.range(f.name.span)))
        elif isinstance(decl, ast.EnumDecl):
            for v in decl.variants:
                children.append(lsp.DocumentSymbol(name=v.name, kind=K.EnumMember, range=positions.range(v.span),
                                                   selection_range=positions.range(v.span)))
        for p in getattr(decl, "params", ()):
            children.append(lsp.DocumentSymbol(name=p.name.name, kind=K.Variable, range=positions.range(p.span),
                                               selection_range=positions.range(p.name.span)))
        out.append(lsp.DocumentSymbol(
            name=name, detail=kind, kind=_KINDS.get(kind, K.Object), range=positions.range(decl.span),
            selection_range=positions.range(name_span), children=children or None,
        ))
    return out


def workspace_symbols(files: list[Checked], query_text: str) -> list[lsp.WorkspaceSymbol]:
    needle = query_text.lower()
    out = []
    for checked in files:
        for decl in checked.result.parse.module.decls:
            kind = query.decl_kind(decl)
            name, name_span = query.decl_name(decl)
            if _matches(needle, name.lower()):
                out.append(lsp.WorkspaceSymbol(
                    name=name, kind=_KINDS.get(kind, K.Object), container_name=kind,
                    location=lsp.Location(uri=checked.uri, range=checked.positions.range(name_span)),
                ))
    return out


def _matches(needle: str, name: str) -> bool:
    """Substring, or the letters of ``needle`` in order (as editors' fuzzy pickers do)."""
    if needle in name:
        return True
    i = 0
    for ch in name:
        if i < len(needle) and ch == needle[i]:
            i += 1
    return i == len(needle)
