"""Formatting: the same formatter as `voxc fmt`; a file with syntax errors is left alone."""

from __future__ import annotations

from lsprotocol import types as lsp

from vox.compiler.format.formatter import format_source
from vox.compiler.source import Span
from vox.lsp.documents import Checked, DocumentStore


def format_document(checked: Checked, store: DocumentStore) -> list[lsp.TextEdit]:
    text = checked.result.source.text
    formatted = format_source(text, checked.result.source.path, cache=store.cache).text
    if formatted is None or formatted == text:
        return []
    whole = checked.positions.range(Span(0, len(text)))
    return [lsp.TextEdit(range=whole, new_text=formatted)]
