"""Source files and spans: the one place that turns character offsets into lines and columns."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open range of character offsets ``[start, end)`` into one source file.

    >>> Span(3, 7).length
    4
    """

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def cover(self, other: "Span") -> "Span":
        """The smallest span containing both.

        >>> Span(2, 4).cover(Span(6, 9))
        Span(start=2, end=9)
        """
        return Span(min(self.start, other.start), max(self.end, other.end))

    def contains(self, offset: int) -> bool:
        return self.start <= offset <= self.end

    def shift(self, delta: int) -> "Span":
        return Span(self.start + delta, self.end + delta)


NO_SPAN = Span(0, 0)


def span_field():
    """A dataclass field for spans: kept on nodes but not part of their equality or hash."""
    return field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Position:
    """Zero-based line and character (a code point index within the line)."""

    line: int
    character: int


class SourceFile:
    """The text of one file with an index of line starts.

    >>> f = SourceFile("a.vox", "ab\\ncd\\n")
    >>> f.position(4)
    Position(line=1, character=1)
    >>> f.offset(Position(1, 1))
    4
    >>> f.line_text(1)
    'cd'
    """

    __slots__ = ("path", "text", "_line_starts")

    def __init__(self, path: str, text: str):
        self.path = path
        self.text = text
        starts = [0]
        find = text.find
        i = find("\n")
        while i >= 0:
            starts.append(i + 1)
            i = find("\n", i + 1)
        self._line_starts = starts

    @property
    def line_count(self) -> int:
        return len(self._line_starts)

    def position(self, offset: int) -> Position:
        offset = max(0, min(offset, len(self.text)))
        line = bisect_right(self._line_starts, offset) - 1
        return Position(line, offset - self._line_starts[line])

    def offset(self, position: Position) -> int:
        if position.line >= len(self._line_starts):
            return len(self.text)
        start = self._line_starts[position.line]
        end = self.line_end(position.line)
        return min(start + position.character, end)

    def line_start(self, line: int) -> int:
        return self._line_starts[line]

    def line_end(self, line: int) -> int:
        """Offset of the end of ``line``, before its newline."""
        if line + 1 < len(self._line_starts):
            end = self._line_starts[line + 1] - 1
            if end > 0 and self.text[end - 1 : end] == "\r":
                end -= 1
            return end
        return len(self.text)

    def line_text(self, line: int) -> str:
        return self.text[self._line_starts[line] : self.line_end(line)]

    def slice(self, span: Span) -> str:
        return self.text[span.start : span.end]
