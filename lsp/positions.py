"""Compiler spans (character offsets) to LSP positions and back, through pygls's position codec.

The compiler counts code points; LSP clients count UTF-16 code units by default (or whatever
encoding was negotiated). Lines come from :class:`~vox.compiler.source.SourceFile`'s index, so a
conversion costs one line's worth of work, not a pass over the whole document.
"""

from __future__ import annotations

from collections.abc import Sequence

from lsprotocol import types as lsp
from pygls.workspace.position_codec import PositionCodec, ServerTextPosition

from vox.compiler.source import Position, SourceFile, Span


class _Lines(Sequence[str]):
    """The lines of a SourceFile as the sequence of strings the codec indexes into."""

    def __init__(self, source: SourceFile):
        self._source = source

    def __len__(self) -> int:
        return self._source.line_count

    def __getitem__(self, line):  # the codec only asks for single lines
        return self._source.line_text(line)


class DocumentPositions:
    """Converts between offsets into one text and client positions."""

    def __init__(self, source: SourceFile, codec: PositionCodec):
        self.source = source
        self._codec = codec
        self._lines = _Lines(source)

    def position(self, offset: int) -> lsp.Position:
        p = self.source.position(offset)
        return self._codec.position_to_client_units(self._lines, ServerTextPosition(p.line, p.character))

    def range(self, span: Span) -> lsp.Range:
        return lsp.Range(start=self.position(span.start), end=self.position(span.end))

    def offset(self, position: lsp.Position) -> int:
        # the codec may clamp the position it is given in place: hand it a copy
        copy = lsp.Position(line=position.line, character=position.character)
        p = self._codec.position_from_client_units(self._lines, copy)
        return self.source.offset(Position(p.line, p.character))

    def span(self, range_: lsp.Range) -> Span:
        return Span(self.offset(range_.start), self.offset(range_.end))
