"""A small document algebra for pretty printing, and the renderer that lays it out.

The printer describes the output as a tree of documents; :func:`render` chooses where to break
lines so that each :class:`Group` is printed on one line when it fits in the line width and
with all its line breaks otherwise (Wadler's "prettier printer", in the variant used by
Prettier: a group fits when its flat text and everything after it up to the next possible line
break fit on the current line).

Every composite node knows whether it contains a forced line break (``hard``); a group that
does can never be flat, so breaks propagate outwards without a separate pass.

>>> doc = group(concat("{", nest(concat(LINE, "a: 1,", LINE, "b: 2")), LINE, "}"))
>>> render(doc, width=80)
'{ a: 1, b: 2 }'
>>> print(render(doc, width=8))
{
  a: 1,
  b: 2
}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Union

INDENT = 2


@dataclass(frozen=True, slots=True)
class Text:
    """Literal text without line breaks."""

    text: str
    hard: bool = field(default=False, init=False)


@dataclass(frozen=True, slots=True)
class Line:
    """A possible line break: ``flat`` when its group is flat, a newline and indentation otherwise."""

    flat: str
    hard: bool = field(default=False, init=False)


@dataclass(frozen=True, slots=True)
class HardLine:
    """A line break in every mode; the groups around it can never be flat."""

    hard: bool = field(default=True, init=False)


@dataclass(frozen=True, slots=True)
class BlankLine:
    """An empty line when its group is broken (kept from the source); nothing when flat."""

    hard: bool = field(default=False, init=False)


@dataclass(frozen=True, slots=True)
class BreakParent:
    """Prints nothing but makes every enclosing group break."""

    hard: bool = field(default=True, init=False)


@dataclass(frozen=True, slots=True)
class LineSuffix:
    """A trailing ``// comment``: printed where it stands, ignored when measuring, breaks parents."""

    text: str
    hard: bool = field(default=True, init=False)


@dataclass(frozen=True, slots=True)
class TripleString:
    """A multi-line string: its content lines indented two more than the line it starts on,
    and the closing quotes at that line's indentation."""

    lines: tuple[str, ...]
    hard: bool = field(default=False, init=False)


@dataclass(frozen=True, slots=True)
class Concat:
    parts: tuple["Doc", ...]
    hard: bool


@dataclass(frozen=True, slots=True)
class Nest:
    """Its content's line breaks are indented one more level."""

    doc: "Doc"
    hard: bool


@dataclass(frozen=True, slots=True)
class Group:
    """Flat if it fits on the line, broken otherwise; ``hard`` groups are always broken."""

    doc: "Doc"
    hard: bool


@dataclass(frozen=True, slots=True)
class IfBreak:
    """``broken`` when the enclosing group is broken, ``flat`` otherwise."""

    broken: "Doc"
    flat: "Doc"
    hard: bool


@dataclass(frozen=True, slots=True)
class Choice:
    """Alternative layouts, best first: the first whose first line fits is used, else the last.

    Only the first option is considered when the choice sits inside a flat group.
    """

    options: tuple["Doc", ...]
    hard: bool


Doc = Union[Text, Line, HardLine, BlankLine, BreakParent, LineSuffix, TripleString, Concat, Nest, Group, IfBreak, Choice]

LINE = Line(" ")
SOFTLINE = Line("")
HARDLINE = HardLine()
BLANKLINE = BlankLine()
BREAK_PARENT = BreakParent()
EMPTY = Text("")


def as_doc(part: "Doc | str") -> Doc:
    return Text(part) if isinstance(part, str) else part


def concat(*parts: "Doc | str") -> Doc:
    docs = tuple(as_doc(p) for p in parts if p != "" and p is not EMPTY)
    if len(docs) == 1:
        return docs[0]
    return Concat(docs, any(d.hard for d in docs))


def join(separator: "Doc | str", docs: "list[Doc | str] | tuple[Doc | str, ...]") -> Doc:
    """``docs`` with ``separator`` between each pair."""
    parts: list[Doc | str] = []
    for i, d in enumerate(docs):
        if i:
            parts.append(separator)
        parts.append(d)
    return concat(*parts)


def nest(doc: "Doc | str") -> Doc:
    doc = as_doc(doc)
    return Nest(doc, doc.hard)


def group(doc: "Doc | str", *, force_break: bool = False) -> Doc:
    doc = as_doc(doc)
    return Group(doc, doc.hard or force_break)


def if_break(broken: "Doc | str", flat: "Doc | str" = EMPTY) -> Doc:
    broken, flat = as_doc(broken), as_doc(flat)
    return IfBreak(broken, flat, flat.hard)


def choice(*options: Doc) -> Doc:
    return options[0] if len(options) == 1 else Choice(tuple(options), options[0].hard)


def flat_text(doc: Doc, limit: int | None = None) -> str | None:
    """The one-line text of ``doc``, or None when it cannot be printed on one line (or, with
    ``limit``, when that line would be longer than ``limit``: the walk stops there).

    >>> flat_text(group(concat("f(", SOFTLINE, "x", SOFTLINE, ")")))
    'f(x)'
    >>> flat_text(group(concat("f(", SOFTLINE, "x", SOFTLINE, ")")), 3) is None
    True
    """
    if doc.hard:
        return None
    out: list[str] = []
    length = 0
    stack: list[Doc] = [doc]
    while stack:
        if limit is not None and length > limit:
            return None
        d = stack.pop()
        if isinstance(d, Text):
            out.append(d.text)
            length += len(d.text)
        elif isinstance(d, Line):
            out.append(d.flat)
            length += len(d.flat)
        elif isinstance(d, TripleString):
            return None
        elif isinstance(d, Concat):
            stack.extend(reversed(d.parts))
        elif isinstance(d, (Nest, Group)):
            stack.append(d.doc)
        elif isinstance(d, IfBreak):
            stack.append(d.flat)
        elif isinstance(d, Choice):
            stack.append(d.options[0])
    if limit is not None and length > limit:
        return None
    return "".join(out)


# ---- rendering ------------------------------------------------------------------------------


class Mode(Enum):
    FLAT = 0
    BREAK = 1


Command = tuple[int, Mode, Doc]  # indentation, mode, document


@dataclass
class LayoutSteps:
    """The work one formatting did: documents made, rendering steps, and steps spent measuring
    whether a group fits. Each is linear in the size of the program (tests/test_format.py)."""

    docs: int = 0
    render: int = 0
    measure: int = 0

    @property
    def total(self) -> int:
        return self.docs + self.render + self.measure


def render(doc: Doc, width: int, steps: LayoutSteps | None = None) -> str:
    """Lay ``doc`` out in lines of at most ``width`` columns where its groups allow."""
    return _Renderer(width, steps if steps is not None else LayoutSteps()).run(doc)


class _Renderer:
    """One rendering pass; holds the output and the current column."""

    def __init__(self, width: int, steps: LayoutSteps):
        self.width = width
        self.steps = steps
        self.out: list[str] = []
        self.column = 0
        self.line_indent = 0

    def run(self, doc: Doc) -> str:
        stack: list[Command] = [(0, Mode.BREAK, doc)]
        while stack:
            indent, mode, d = stack.pop()
            self.step(indent, mode, d, stack)
            self.steps.render += 1
        return "".join(self.out)

    def step(self, indent: int, mode: Mode, d: Doc, stack: list[Command]) -> None:
        if isinstance(d, Text):
            self.emit(d.text)
        elif isinstance(d, Concat):
            stack.extend((indent, mode, p) for p in reversed(d.parts))
        elif isinstance(d, Nest):
            stack.append((indent + INDENT, mode, d.doc))
        elif isinstance(d, Group):
            stack.append((indent, self.group_mode(indent, mode, d, stack), d.doc))
        elif isinstance(d, Choice):
            stack.append(self.pick_option(indent, mode, d, stack))
        elif isinstance(d, IfBreak):
            stack.append((indent, mode, d.broken if mode is Mode.BREAK else d.flat))
        elif isinstance(d, Line):
            if mode is Mode.FLAT:
                self.emit(d.flat)
            else:
                self.newline(indent)
        elif isinstance(d, HardLine):
            self.newline(indent)
        elif isinstance(d, BlankLine):
            if mode is Mode.BREAK:
                self.out.append("\n")
        elif isinstance(d, LineSuffix):
            self.emit(" " + d.text)
        elif isinstance(d, TripleString):
            self.emit_triple_string(d)

    def group_mode(self, indent: int, mode: Mode, g: Group, rest: list[Command]) -> Mode:
        if g.hard:
            return Mode.BREAK
        if mode is Mode.FLAT:
            return Mode.FLAT
        fit = fits([(indent, Mode.FLAT, g.doc)], rest, self.width - self.column, self.steps)
        return Mode.FLAT if fit else Mode.BREAK

    def pick_option(self, indent: int, mode: Mode, c: Choice, rest: list[Command]) -> Command:
        if mode is Mode.FLAT:
            return (indent, Mode.FLAT, c.options[0])
        for option in c.options[:-1]:
            if fits([(indent, Mode.FLAT, option)], rest, self.width - self.column, self.steps):
                return (indent, Mode.FLAT, option)
        return (indent, Mode.BREAK, c.options[-1])

    def emit(self, text: str) -> None:
        self.out.append(text)
        self.column += len(text)

    def newline(self, indent: int) -> None:
        self.out.append("\n" + " " * indent)
        self.column = indent
        self.line_indent = indent

    def emit_triple_string(self, s: TripleString) -> None:
        content_indent = " " * (self.line_indent + INDENT)
        self.out.append('"""')
        for line in s.lines:
            self.out.append("\n" + (content_indent + line if line else ""))
        self.out.append("\n" + " " * self.line_indent + '"""')
        self.column = self.line_indent + 3


def fits(next_commands: list[Command], rest: list[Command], width: int, steps: LayoutSteps | None = None) -> bool:
    """Whether ``next_commands``, then ``rest`` up to its first line break, fit in ``width``."""
    stack = list(reversed(next_commands))
    rest_index = len(rest)
    while width >= 0:
        if steps is not None:
            steps.measure += 1
        if not stack:
            if rest_index == 0:
                return True
            rest_index -= 1
            stack.append(rest[rest_index])
            continue
        indent, mode, d = stack.pop()
        if isinstance(d, Text):
            width -= len(d.text)
        elif isinstance(d, Concat):
            stack.extend((indent, mode, p) for p in reversed(d.parts))
        elif isinstance(d, Nest):
            stack.append((indent + INDENT, mode, d.doc))
        elif isinstance(d, Group):
            stack.append((indent, Mode.BREAK if d.hard else mode, d.doc))
        elif isinstance(d, Choice):
            stack.append((indent, mode, d.options[0] if mode is Mode.FLAT else d.options[-1]))
        elif isinstance(d, IfBreak):
            stack.append((indent, mode, d.broken if mode is Mode.BREAK else d.flat))
        elif isinstance(d, Line):
            if mode is Mode.BREAK:
                return True
            width -= len(d.flat)
        elif isinstance(d, (HardLine, TripleString)):
            return True if isinstance(d, HardLine) else width >= 3
    return False
