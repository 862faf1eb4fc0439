"""The one renderer of diagnostics: rustc-style text for people, JSON for tools.

Text looks like this (columns in the ``-->`` line are 1-based code points)::

    error[V1001]: unknown name `tickt`
      --> examples/x.vox:12:20
       |
    12 |   let t = triager(tickt)
       |                   ^^^^^ not declared
       |
       = note: ...
       = help: did you mean `ticket`?

Conventions:

* The primary span is underlined with ``^``. A label whose span is exactly the primary span (in
  the same file) gives the carets their message; other labels are underlined with ``-`` and
  their message, on their own source lines, in line order. Labels in another file get a
  ``:::`` section when that file is among ``sources``, else a ``= note:`` line.
* A span over several lines underlines the first line from its start to the line's end and the
  last line from its first non-blank character to the span's end; the message goes on the last
  line. Hidden lines in between become ``...`` (a single hidden line is shown instead).
* A zero-width span gets one marker; tabs show as four spaces; wide characters count two
  columns and combining marks none; control characters show as their Unicode pictures.
* A fix whose edits each stay on one line is shown as a ``help:`` block with the changed lines
  and ``~`` under replaced text or ``+`` under inserted text. Any other fix is a ``= help:``
  line. ``help`` text equal to the fix's message is not repeated.

rich is used only to colour; with ``color=False`` the output is plain text.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from rich.color import ColorSystem
from rich.style import Style

from vox.compiler.diagnostics.model import Diagnostic, Fix, Label, Severity
from vox.compiler.source import SourceFile, Span

TAB_WIDTH = 4

# Roles of pieces of output, and how each is coloured (rustc's palette).
STYLES: Mapping[str, str] = MappingProxyType(
    {
        "error": "bold red",
        "warning": "bold yellow",
        "note": "bold green",
        "help": "bold cyan",
        "message": "bold",
        "gutter": "bold blue",
        "secondary": "bold blue",
        "addition": "bold green",
    }
)


# ---- text --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mark:
    """One underline on one source line: code point columns ``[start, end)`` of ``line``."""

    line: int
    start: int
    end: int
    role: str  # "error" / "warning" / "note" for the primary span, else "secondary" or "addition"
    char: str
    message: str = ""


def render_text(
    diag: Diagnostic,
    source: SourceFile,
    color: bool = False,
    sources: Mapping[str, SourceFile] | None = None,
) -> str:
    """Render one diagnostic in rustc's layout, without a trailing newline.

    ``source`` is the file of ``diag.path``; ``sources`` optionally holds other files that
    labels point into.

    >>> from vox.compiler.diagnostics.model import error
    >>> src = SourceFile("a.vox", "let x = y\\n")
    >>> print(render_text(error("V1001", "unknown name `y`", "a.vox", Span(8, 9)), src))
    error[V1001]: unknown name `y`
     --> a.vox:1:9
      |
    1 | let x = y
      |         ^
    """
    role = diag.severity.word
    primary_message, local, foreign = _split_labels(diag)
    marks = _span_marks(source, diag.span, role, "^", primary_message)
    for label in local:
        marks += _span_marks(source, label.span, "secondary", "-", label.message)
    others = _foreign_sections(foreign, sources or {})
    preview = _fix_preview(diag.fix, source)
    numbered = [m.line for m in marks] + [m.line for _, _, section in others for m in section]
    numbered += [m.line for m in preview[1]] if preview else []
    width = len(str(max(numbered, default=0) + 1))
    pad = " " * width

    out = [_paint(f"{role}[{diag.code}]", role, color) + _paint(f": {diag.message}", "message", color)]
    out.append(_paint(f"{pad}--> ", "gutter", color) + _location(diag.path, source, diag.span.start))
    out.append(_gutter(pad, color))
    out += _snippet(source, marks, pad, color)
    for path, other, other_marks in others:
        where = _location(path, other, _first_offset(other, other_marks))
        out.append(_paint(f"{pad}::: ", "gutter", color) + where)
        out.append(_gutter(pad, color))
        out += _snippet(other, other_marks, pad, color)
    trailer = _trailer_lines(diag, foreign, sources or {}, preview is not None)
    if trailer or preview is not None:
        out.append(_gutter(pad, color))
        out += [_note_line(pad, kind, text, color) for kind, text in trailer]
    if preview is not None:
        fixed, fix_marks = preview
        out.append(_paint("help", "help", color) + _paint(f": {diag.fix.message}", "message", color))
        out.append(_gutter(pad, color))
        out += _snippet(fixed, fix_marks, pad, color)
    return "\n".join(out)


def _split_labels(diag: Diagnostic) -> tuple[str, list[Label], list[Label]]:
    """The primary span's message, the other labels in this file, and labels in other files."""
    primary_message = ""
    local: list[Label] = []
    foreign: list[Label] = []
    for label in diag.labels:
        if label.path not in (None, diag.path):
            foreign.append(label)
        elif label.span == diag.span and not primary_message:
            primary_message = label.message
        else:
            local.append(label)
    return primary_message, local, foreign


def _foreign_sections(labels: list[Label], sources: Mapping[str, SourceFile]):
    """``(path, source, marks)`` for each other file with labels whose text we have."""
    sections: dict[str, list[Mark]] = {}
    for label in labels:
        if label.path in sources:
            marks = _span_marks(sources[label.path], label.span, "secondary", "-", label.message)
            sections.setdefault(label.path, []).extend(marks)
    return [(path, sources[path], marks) for path, marks in sections.items()]


def _first_offset(source: SourceFile, marks: list[Mark]) -> int:
    """Offset of the earliest mark, for a ``:::`` location line."""
    first = min(marks, key=lambda m: (m.line, m.start))
    return source.line_start(first.line) + first.start


def _trailer_lines(diag: Diagnostic, foreign: list[Label], sources, previewed: bool) -> list[tuple[str, str]]:
    """The ``= note:`` and ``= help:`` lines, as (kind, text) pairs."""
    unseen = [label for label in foreign if label.path not in sources]
    lines = [("note", f"{label.message} (in {label.path})") for label in unseen]
    lines += [("note", note) for note in diag.notes]
    fix_message = diag.fix.message if diag.fix is not None else None
    if diag.help and not (previewed and diag.help == fix_message):
        lines.append(("help", diag.help))
    if fix_message and not previewed and fix_message != diag.help:
        lines.append(("help", fix_message))
    return lines


def _note_line(pad: str, kind: str, text: str, color: bool) -> str:
    """``   = note: text``, with continuation lines indented under the text."""
    head = _paint(f"{pad} = ", "gutter", color) + _paint(f"{kind}:", "message", color)
    indent = " " * (len(pad) + 3 + len(kind) + 2)
    first, *rest = text.split("\n")
    return "\n".join([f"{head} {first}".rstrip()] + [(indent + line).rstrip() for line in rest])


def _location(path: str, source: SourceFile, offset: int) -> str:
    """``path:line:column`` of ``offset``, both 1-based."""
    pos = source.position(offset)
    return f"{path}:{pos.line + 1}:{pos.character + 1}"


def _gutter(pad: str, color: bool) -> str:
    return _paint(f"{pad} |", "gutter", color)


def _span_marks(source: SourceFile, span: Span, role: str, char: str, message: str) -> list[Mark]:
    """The marks that underline ``span``: one for a one-line span, two for a longer one."""
    start = source.position(span.start)
    end = source.position(max(span.start, span.end))
    if end.line > start.line and end.character == 0:
        # A span that ends just after a newline ends, for display, at the end of the line before.
        end_line = end.line - 1
        end_col = len(source.line_text(end_line))
    else:
        end_line, end_col = end.line, end.character
    if end_line == start.line:
        return [Mark(start.line, start.character, max(start.character, end_col), role, char, message)]
    first_text = source.line_text(start.line)
    last_text = source.line_text(end_line)
    indent = min(len(last_text) - len(last_text.lstrip()), end_col)
    return [
        Mark(start.line, start.character, max(start.character, len(first_text)), role, char),
        Mark(end_line, indent, end_col, role, char, message),
    ]


def _snippet(source, marks: list[Mark], pad: str, color: bool) -> list[str]:
    """Numbered source lines with their underline rows, in line order, with gaps elided.

    ``source`` is anything with ``line_text(i)``.
    """
    by_line: dict[int, list[Mark]] = {}
    for mark in marks:
        by_line.setdefault(mark.line, []).append(mark)
    out: list[str] = []
    previous = None
    for line in sorted(by_line):
        if previous is not None and line - previous == 2:
            out.append(_source_row(line - 1, source.line_text(line - 1), pad, color))
        elif previous is not None and line - previous > 2:
            out.append(_paint("...", "gutter", color))
        text = source.line_text(line)
        out.append(_source_row(line, text, pad, color))
        out += [_gutter(pad, color) + " " + row for row in _mark_rows(text, by_line[line], color)]
        previous = line
    return out


def _source_row(line: int, text: str, pad: str, color: bool) -> str:
    number = str(line + 1).rjust(len(pad))
    return (_paint(f"{number} |", "gutter", color) + " " + display_text(text)).rstrip()


def _mark_rows(text: str, marks: list[Mark], color: bool) -> list[str]:
    """Underline rows for one line: markers, the rightmost message inline, others hanging below.

    Narrower marks are drawn over wider ones, so labels inside the primary span stay visible.
    Hanging messages follow rustc: a row of ``|`` connectors, then one row per message from
    right to left.
    """
    placed = sorted(
        ((display_width(text[: m.start]), _mark_width(text, m), m) for m in marks),
        key=lambda t: (t[0], t[0] + t[1], t[2].role != "secondary"),
    )
    underline: list[tuple[str, str | None]] = []
    for col, width, mark in sorted(placed, key=lambda t: (-t[1], t[2].role != "secondary")):
        _put(underline, col, [(mark.char, mark.role)] * width)
    messaged = [t for t in placed if t[2].message]
    inline = None
    if messaged:
        col, width, mark = messaged[-1]
        if all(c <= col and c + w <= col + width for c, w, m in placed if m is not mark):
            inline = messaged.pop()
    rows = [_cells_text(underline, color)]
    if inline is not None:
        rows[0] += " " + _paint(inline[2].message, inline[2].role, color)
    anchored = _anchors(messaged)
    if anchored:
        rows.append(_cells_text(_connectors(anchored), color))
        for i in range(len(anchored) - 1, -1, -1):
            col, mark = anchored[i]
            cells = _connectors(anchored[:i])
            cells += [(" ", None)] * (col - len(cells))
            rows.append(_cells_text(cells, color) + _paint(mark.message, mark.role, color))
    return rows


def _mark_width(text: str, mark: Mark) -> int:
    """Columns a mark's markers take: its text's display width, at least one."""
    return max(1, display_width(text[mark.start : mark.end]))


def _anchors(placed) -> list[tuple[int, Mark]]:
    """The column where each hanging message's connector stands: its mark's first free column."""
    taken: set[int] = set()
    out = []
    for col, width, mark in placed:
        anchor = next((c for c in range(col, col + width) if c not in taken), col)
        taken.add(anchor)
        out.append((anchor, mark))
    return sorted(out, key=lambda t: t[0])


def _connectors(anchored) -> list[tuple[str, str | None]]:
    """Cells with a ``|`` at each anchor column."""
    cells: list[tuple[str, str | None]] = []
    for col, mark in anchored:
        _put(cells, col, [("|", mark.role)])
    return cells


def _put(cells: list, col: int, new: list) -> None:
    """Write ``new`` into ``cells`` from column ``col``, padding with blanks."""
    if len(cells) < col + len(new):
        cells.extend([(" ", None)] * (col + len(new) - len(cells)))
    cells[col : col + len(new)] = new


def _cells_text(cells: list[tuple[str, str | None]], color: bool) -> str:
    """Join cells into text, painting runs of one role together."""
    out = []
    run_role, run = None, []
    for char, role in cells:
        if role != run_role and run:
            out.append(_paint("".join(run), run_role, color))
            run = []
        run_role = role
        run.append(char)
    if run:
        out.append(_paint("".join(run), run_role, color))
    return "".join(out)


def display_text(text: str) -> str:
    """A source line as shown: tabs as spaces, control characters as their pictures.

    >>> display_text("a\\tb\\x07")
    'a    b␇'
    """
    return "".join(_display_char(c) for c in text)


def _display_char(c: str) -> str:
    if c == "\t":
        return " " * TAB_WIDTH
    code = ord(c)
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return c


def display_width(text: str) -> int:
    """Terminal columns taken by ``display_text(text)``.

    >>> display_width("a\\tb"), display_width("日本"), display_width("e\\u0301")
    (6, 4, 1)
    """
    return sum(_char_width(c) for c in text)


def _char_width(c: str) -> int:
    if c == "\t":
        return TAB_WIDTH
    if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf"):
        return 0
    if unicodedata.east_asian_width(c) in ("W", "F"):
        return 2
    return 1


def _paint(text: str, role: str | None, color: bool) -> str:
    """``text`` in the colour of ``role``; unchanged when colour is off."""
    if not color or role is None or not text:
        return text
    return Style.parse(STYLES[role]).render(text, color_system=ColorSystem.STANDARD)


# ---- fix previews ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FixedLines:
    """Source lines after a fix, for ``_snippet``."""

    lines: Mapping[int, str]

    def line_text(self, line: int) -> str:
        return self.lines[line]


def _fix_preview(fix: Fix | None, source: SourceFile) -> tuple[_FixedLines, list[Mark]] | None:
    """The changed lines and their ``~``/``+`` marks, or None when the fix cannot be shown so.

    Only fixes whose edits each replace or insert text within one line are previewed.
    """
    if fix is None or not fix.edits:
        return None
    by_line: dict[int, list] = {}
    for edit in sorted(fix.edits, key=lambda e: (e.span.start, e.span.end)):
        start, end = source.position(edit.span.start), source.position(edit.span.end)
        if start.line != end.line or "\n" in edit.new_text or not edit.new_text:
            return None
        by_line.setdefault(start.line, []).append((start.character, end.character, edit.new_text))
    lines: dict[int, str] = {}
    marks: list[Mark] = []
    for line, edits in by_line.items():
        text, out, cursor = source.line_text(line), [], 0
        for start, end, new_text in edits:
            if start < cursor:
                return None  # overlapping edits
            out.append(text[cursor:start])
            col = sum(len(piece) for piece in out)
            marks.append(Mark(line, col, col + len(new_text), "addition", "+" if start == end else "~"))
            out.append(new_text)
            cursor = end
        out.append(text[cursor:])
        lines[line] = "".join(out)
    return _FixedLines(MappingProxyType(lines)), marks


# ---- JSON --------------------------------------------------------------------------------------


def render_json(diagnostics: Iterable[Diagnostic], sources: Mapping[str, SourceFile]) -> dict:
    """``{"diagnostics": [...]}`` with 0-based line/character ranges (characters are code points).

    A range is null when its file is not in ``sources``.

    >>> from vox.compiler.diagnostics.model import error
    >>> src = SourceFile("a.vox", "let x = y\\n")
    >>> item = render_json([error("V1001", "unknown name `y`", "a.vox", Span(8, 9))], {"a.vox": src})
    >>> item["diagnostics"][0]["range"]
    {'start': {'line': 0, 'character': 8}, 'end': {'line': 0, 'character': 9}}
    """
    return {"diagnostics": [diagnostic_json(d, sources) for d in diagnostics]}


def diagnostic_json(diag: Diagnostic, sources: Mapping[str, SourceFile]) -> dict:
    """One diagnostic as a JSON-ready dict."""
    source = sources.get(diag.path)
    return {
        "code": diag.code,
        "severity": diag.severity.word,
        "message": diag.message,
        "file": diag.path,
        "range": range_json(source, diag.span),
        "labels": [_label_json(diag, label, sources) for label in diag.labels],
        "notes": list(diag.notes),
        "help": diag.help,
        "fix": _fix_json(diag.fix, source),
    }


def _label_json(diag: Diagnostic, label: Label, sources: Mapping[str, SourceFile]) -> dict:
    path = label.path or diag.path
    return {"message": label.message, "file": path, "range": range_json(sources.get(path), label.span)}


def _fix_json(fix: Fix | None, source: SourceFile | None) -> dict | None:
    if fix is None:
        return None
    return {
        "message": fix.message,
        "edits": [{"range": range_json(source, e.span), "new_text": e.new_text} for e in fix.edits],
    }


def range_json(source: SourceFile | None, span: Span) -> dict | None:
    """``{"start": {"line", "character"}, "end": {...}}``, 0-based; None without a source."""
    if source is None:
        return None
    start, end = source.position(span.start), source.position(span.end)
    return {
        "start": {"line": start.line, "character": start.character},
        "end": {"line": end.line, "character": end.character},
    }


# ---- summary -----------------------------------------------------------------------------------


def summary_line(diagnostics: Iterable[Diagnostic], file_count: int, color: bool = False) -> str:
    """One line counting diagnostics by severity.

    >>> summary_line([], 2)
    'ok: no problems in 2 files'
    >>> from vox.compiler.diagnostics.model import error, warning
    >>> ds = [error("V1001", "m", "a", Span(0, 1))] * 2 + [warning("V1002", "m", "a", Span(0, 1))]
    >>> summary_line(ds, 1)
    'error: 2 errors, 1 warning in 1 file'
    """
    counts = {s: 0 for s in Severity}
    for d in diagnostics:
        counts[d.severity] += 1
    parts = [_plural(counts[s], s.word) for s in Severity if counts[s]]
    lead = next((s.word for s in (Severity.ERROR, Severity.WARNING) if counts[s]), "ok")
    body = ", ".join(parts) if parts else "no problems"
    files = _plural(file_count, "file")
    return _paint(lead, lead if lead != "ok" else "note", color) + f": {body} in {files}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
