"""The one scanner for strings and comments, and the split of a file into declarations.

Brackets, quotes and ``//`` mean nothing inside a string or a comment, so every part of the
compiler that looks at raw text (the declaration split below, the parser's error recovery, the
formatter, the language server) asks :func:`regions` where the strings and comments are instead
of matching them itself. The rules are those of the lark lexer (``STRING``, ``LONG_STRING`` and
``COMMENT`` in ``lang/grammar/vox.lark``, described in spec/lexical.md), plus what the lexer
cannot say, where a string that is never closed ends:

* ``//`` outside a string starts a comment that runs to the end of its line;
* ``\"""`` starts a long string, which may span lines and ends at the next ``\"""`` not escaped;
  one that is never closed runs to the end of the text;
* ``"`` starts a string on one line, which ends at the next ``"`` not escaped; one that is never
  closed (a line break or the end of the text comes first) runs to the end of its line;
* a backslash escapes the character after it, whatever it is (decoding is :mod:`.literals`'s
  business), except that a line break never continues a one-line string.

The lexer differs in one case only, text that never parses: ``\"""`` with no closing ``\"""``
lexes as the empty string ``""`` followed by a string starting at the third quote.

The parser works one declaration at a time: a syntax error then stays inside its declaration,
and an editor can reparse only the declarations whose text changed. A declaration starts at a
line whose first column, outside any string or comment, holds a declaration keyword followed by
a name (or, for `test`, a string); so a keyword inside a prompt never splits.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Iterator

from vox.compiler.source import Span

DECL_KEYWORDS = (
    "label",
    "budget",
    "provider",
    "model",
    "type",
    "enum",
    "tool",
    "gate",
    "agent",
    "flow",
    "test",
)

# Kinds of region, named like the lark terminals they match.
STRING = "STRING"
LONG_STRING = "LONG_STRING"
COMMENT = "COMMENT"

_SIGNIFICANT = re.compile(r'"""|"|//|\n')
_LONG_STRING_REST = re.compile(r'(?:[^"\\]|\\.|"(?!""))*"""', re.S)  # after the opening `"""`
_STRING_REST = re.compile(r'(?:[^"\\\n]|\\.)*"')  # after the opening `"`; `.` stops at `\n`
_DECL_START = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)[ \t]+[A-Za-z_\"]")


@dataclass(frozen=True, slots=True)
class Region:
    """A string literal (quotes included) or a comment (``//`` included, line break excluded).

    ``closed`` is False for a string whose closing quote never comes.
    """

    kind: str
    start: int
    end: int
    closed: bool = True

    @property
    def span(self) -> Span:
        return Span(self.start, self.end)

    @property
    def is_string(self) -> bool:
        return self.kind != COMMENT

    def holds_cursor(self, offset: int) -> bool:
        """Whether a cursor at ``offset`` (between two characters) is inside the region's text:
        after its opening ``"``, ``\"""`` or ``//``, and before its closing quotes.

        >>> r = regions('x = "ab"')[0]
        >>> [r.holds_cursor(i) for i in range(4, 9)]
        [False, True, True, True, False]
        """
        if self.kind == COMMENT:
            return self.start < offset <= self.end
        opener = 3 if self.kind == LONG_STRING else 1
        if not self.closed:
            return self.start + opener <= offset <= self.end
        return self.start + opener <= offset <= self.end - opener


def regions(text: str) -> tuple[Region, ...]:
    """Every string and comment of ``text``, in order.

    >>> [(r.kind, r.start, r.end) for r in regions('a("x // y") // z "q"')]
    [('STRING', 2, 10), ('COMMENT', 12, 20)]
    >>> [(r.kind, r.closed) for r in regions('\"""open\\n"still')]
    [('LONG_STRING', False)]
    """
    return _scan_regions(text, None)


def code_spans(text: str, found: tuple[Region, ...] | None = None) -> Iterator[tuple[int, int]]:
    """The stretches ``(start, end)`` of ``text`` outside every string and comment (the regions
    ``found`` in it, if given), in order; empty stretches are left out.

    >>> text = 'f("(") // )'
    >>> [text[s:e] for s, e in code_spans(text)]
    ['f(', ') ']
    """
    pos = 0
    for region in regions(text) if found is None else found:
        if region.start > pos:
            yield pos, region.start
        pos = region.end
    if pos < len(text):
        yield pos, len(text)


def region_at(found: tuple[Region, ...], offset: int) -> Region | None:
    """The region of ``found`` (as :func:`regions` returns them) that holds the character at
    ``offset``, or None when that character is code.

    >>> found = regions('a "b" c')
    >>> [region_at(found, i) is not None for i in range(7)]
    [False, False, True, True, True, False, False]
    """
    i = bisect_right(found, offset, key=_start) - 1
    if i >= 0 and offset < found[i].end:
        return found[i]
    return None


def region_at_cursor(found: tuple[Region, ...], offset: int) -> Region | None:
    """The region of ``found`` whose text a cursor at ``offset`` is in (see
    :meth:`Region.holds_cursor`), or None when the cursor is in code."""
    i = bisect_right(found, offset, key=_start) - 1
    # a cursor right before a region is in the one before it, if anything
    for region in found[max(i - 1, 0) : i + 1]:
        if region.holds_cursor(offset):
            return region
    return None


def _start(region: Region) -> int:
    return region.start


@dataclass(frozen=True, slots=True)
class Chunk:
    """The text of one top-level declaration (plus the blank and comment lines after it)."""

    start: int
    end: int
    keyword: str | None  # None for text before the first declaration

    @property
    def span(self) -> Span:
        return Span(self.start, self.end)


@dataclass(frozen=True, slots=True)
class Scan:
    chunks: tuple[Chunk, ...]
    regions: tuple[Region, ...]  # every string and comment, in order

    @property
    def comments(self) -> tuple[Region, ...]:
        return tuple(r for r in self.regions if r.kind == COMMENT)


def _looks_like_decl_keyword(word: str) -> str | None:
    """The declaration keyword ``word`` is, or is a likely misspelling of, else None."""
    if word in DECL_KEYWORDS:
        return word
    from vox.compiler.names import closest

    if len(word) >= 4 and word not in ("let", "return", "check", "mock", "else"):
        return closest(word, DECL_KEYWORDS, max_distance=1)
    return None


def scan(text: str) -> Scan:
    """Split ``text`` into declaration chunks and find its strings and comments.

    >>> text = 'label pii\\n// hi\\nagent a() -> T { prompt: \"""\\nflow x\\n\""" }\\n'
    >>> s = scan(text)
    >>> [(c.keyword, text[c.start:c.end].split()[0]) for c in s.chunks]
    [('label', 'label'), ('agent', 'agent')]
    >>> [text[c.start:c.end] for c in s.comments]
    ['// hi']
    """
    starts: list[tuple[int, str | None]] = []
    found = _scan_regions(text, starts)
    chunks: list[Chunk] = []
    if starts and starts[0][0] == 1 and text.startswith("\ufeff"):
        starts[0] = (0, starts[0][1])
    if not starts or starts[0][0] > 0:
        first = starts[0][0] if starts else len(text)
        chunks.append(Chunk(0, first, None))
    for i, (start, keyword) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        chunks.append(Chunk(start, end, keyword))
    return Scan(tuple(chunks), found)


def _scan_regions(text: str, starts: list[tuple[int, str | None]] | None) -> tuple[Region, ...]:
    """The regions of ``text``; with ``starts``, also the declarations starting at a line
    outside every region are appended to it (offset and keyword)."""
    found: list[Region] = []
    n = len(text)

    def line_start_check(pos: int) -> None:
        m = _DECL_START.match(text, pos)
        if m:
            keyword = _looks_like_decl_keyword(m.group(1))
            if keyword is not None:
                starts.append((pos, keyword))

    if starts is not None:
        line_start_check(1 if text.startswith("\ufeff") else 0)  # a byte-order mark is not text
    pos = 0
    search = _SIGNIFICANT.search
    while True:
        m = search(text, pos)
        if m is None:
            break
        tok = m.group()
        start = m.start()
        end = m.end()
        if tok == "\n":
            if starts is not None and end < n:
                line_start_check(end)
            pos = end
            continue
        if tok == "//":
            pos = _line_end(text, end)
            found.append(Region(COMMENT, start, pos))
        elif tok == '"""':
            close = _LONG_STRING_REST.match(text, end)
            pos = close.end() if close else n
            found.append(Region(LONG_STRING, start, pos, close is not None))
        else:
            close = _STRING_REST.match(text, end)
            pos = close.end() if close else _line_end(text, end)
            found.append(Region(STRING, start, pos, close is not None))
    return tuple(found)


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end == -1 else end
