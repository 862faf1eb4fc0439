"""A light scanner that splits a file into top-level declarations and finds its comments.

The parser works one declaration at a time: a syntax error then stays inside its declaration,
and an editor can reparse only the declarations whose text changed. A declaration starts at a
line whose first column holds a declaration keyword followed by a name (or, for `test`, a
string); the scanner knows strings and comments, so a keyword inside a prompt never splits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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

_SIGNIFICANT = re.compile(r'"""|"|//|\n')
_TRIPLE_END = re.compile(r'(?:[^"\\]|\\.|"(?!""))*"""', re.S)
_STRING_END = re.compile(r'(?:[^"\\\n]|\\.)*"')
_LINE_END = re.compile(r"[^\n]*")
_DECL_START = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)[ \t]+[A-Za-z_\"]")


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
    comments: tuple[tuple[int, int], ...]  # (start, end) of each `//` comment


def _looks_like_decl_keyword(word: str) -> str | None:
    """The declaration keyword ``word`` is, or is a likely misspelling of, else None."""
    if word in DECL_KEYWORDS:
        return word
    from vox.compiler.names import closest

    if len(word) >= 4 and word not in ("let", "return", "check", "mock", "else"):
        return closest(word, DECL_KEYWORDS, max_distance=1)
    return None


def scan(text: str) -> Scan:
    """Split ``text`` into declaration chunks and list its comments.

    >>> s = scan('label pii\\n// hi\\nagent a() -> T { prompt: "x" }\\n')
    >>> [(c.keyword, text[c.start:c.end].split()[0]) for c in s.chunks]  # doctest: +SKIP
    """
    starts: list[tuple[int, str | None]] = []
    comments: list[tuple[int, int]] = []
    n = len(text)

    def line_start_check(pos: int) -> None:
        m = _DECL_START.match(text, pos)
        if m:
            keyword = _looks_like_decl_keyword(m.group(1))
            if keyword is not None:
                starts.append((pos, keyword))

    line_start_check(1 if text.startswith("\ufeff") else 0)  # a byte-order mark is not text
    pos = 0
    search = _SIGNIFICANT.search
    while True:
        m = search(text, pos)
        if m is None:
            break
        tok = m.group()
        end = m.end()
        if tok == "\n":
            if end < n:
                line_start_check(end)
            pos = end
        elif tok == "//":
            le = _LINE_END.match(text, end).end()
            comments.append((m.start(), le))
            pos = le
        elif tok == '"""':
            close = _TRIPLE_END.match(text, end)
            pos = close.end() if close else n
        else:
            close = _STRING_END.match(text, end)
            pos = close.end() if close else _LINE_END.match(text, end).end()

    chunks: list[Chunk] = []
    if starts and starts[0][0] == 1 and text.startswith("\ufeff"):
        starts[0] = (0, starts[0][1])
    if not starts or starts[0][0] > 0:
        first = starts[0][0] if starts else n
        chunks.append(Chunk(0, first, None))
    for i, (start, keyword) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else n
        chunks.append(Chunk(start, end, keyword))
    return Scan(tuple(chunks), tuple(comments))
