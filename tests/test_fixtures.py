"""Fixture files of the analyses: ``tests/fixtures/<analysis>/*.vox``.

Each file is a small program with what the checker must say about it written under the source
it is about, as ``//`` comment lines of carets (the format is in tests/fixtures/README.md):

    return send(to: e)
    //              ^ V3002 argument `to` of `send` carries `pii`

Every diagnostic of the file must be annotated and every annotation must be reported: code,
span and the start of the message. On a mismatch the test shows the file as annotated and as the
checker sees it, as a diff. To see what the checker says about a new fixture, run
``python tests/test_fixtures.py FILE...``: it prints each file annotated with its diagnostics.
"""

from __future__ import annotations

import difflib
import pathlib
import re
import sys
from dataclasses import dataclass

import pytest

from vox.compiler.api import CheckResult, check_source
from vox.compiler.units import format_duration, format_money, format_tokens

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
ANALYSES = ("budgets", "effects", "gates", "labels", "results")
FILES = sorted(FIXTURES.glob("*/*.vox"))
NO_DIAGNOSTICS = "// no diagnostics"

_ANNOTATION = re.compile(r"(?P<lead>[ \t]*//[ \t]*)(?P<carets>\^+)(?:[ \t]+(?P<rest>.*?))?[ \t]*")
_DIAGNOSTIC = re.compile(r"(?P<code>V\d{4})(?:[ \t]+(?P<message>.*))?")
_FACT = re.compile(r"(?P<fact>bound|derived|labels|result labels):[ \t]*(?P<value>.*)")
_DIMENSIONS = (  # how a bound is written: the words of a budget, in the order of `Bound`
    ("cost", "cost_micros", format_money),
    ("tokens", "tokens", format_tokens),
    ("wall", "wall_ms", format_duration),
    ("model_calls", "model_calls", format_tokens),
    ("tool_calls", "tool_calls", format_tokens),
)


class FixtureError(Exception):
    """The fixture itself is malformed (not a failure of the checker)."""


@dataclass(frozen=True)
class Note:
    """One annotation: a diagnostic (``what`` is its code) or a fact (``what`` is its kind, as
    ``bound``), about the span ``[start, end)``, with the message's start or the fact's value."""

    line: int  # the source line (0-based, annotations removed) it stands under
    start: int  # offsets into the file as written
    end: int
    what: str
    text: str

    @property
    def is_diagnostic(self) -> bool:
        return _DIAGNOSTIC.fullmatch(self.what) is not None


@dataclass(frozen=True)
class Fixture:
    text: str
    source_lines: tuple[tuple[int, int, str], ...]  # (line start offset, line number, text), annotations left out
    notes: tuple[Note, ...]
    no_diagnostics: bool


def read_fixture(text: str) -> Fixture:
    """The program lines and annotations of a fixture's text.

    >>> f = read_fixture("flow f() {\\n  g()\\n//^^^ V1001 unknown\\n}\\n")
    >>> [(n.what, f.text[n.start:n.end], n.text) for n in f.notes]
    [('V1001', 'g()', 'unknown')]
    """
    lines: list[tuple[int, int, str]] = []
    notes: list[Note] = []
    no_diagnostics = False
    offset = 0
    for raw in text.splitlines(keepends=True):
        line = raw.rstrip("\r\n")
        start, offset = offset, offset + len(raw)
        if line.strip() == NO_DIAGNOSTICS:
            no_diagnostics = True
        m = _ANNOTATION.fullmatch(line)
        if m is None:
            lines.append((start, len(lines), line))
            continue
        if not lines:
            raise FixtureError(f"an annotation before any source line: {line!r}")
        target_start, target_line, target = lines[-1]
        column, width = len(m.group("lead")), len(m.group("carets"))
        if column + width > len(target):
            raise FixtureError(f"the carets of {line!r} run past the end of the line above: {target!r}")
        rest = m.group("rest") or ""
        found = _DIAGNOSTIC.fullmatch(rest) or _FACT.fullmatch(rest)
        if found is None:
            raise FixtureError(f"expected a code (V1234) or a fact (bound, derived, labels) after the carets: {line!r}")
        what, said = (found.group("code"), found.group("message")) if "code" in found.groupdict() else (
            found.group("fact"), found.group("value"))
        notes.append(Note(target_line, target_start + column, target_start + column + width, what, (said or "").strip()))
    if no_diagnostics and any(n.is_diagnostic for n in notes):
        raise FixtureError(f"`{NO_DIAGNOSTICS}` and diagnostic annotations in one file")
    if not no_diagnostics and not any(n.is_diagnostic for n in notes):
        raise FixtureError(f"no expected diagnostics: annotate them, or write `{NO_DIAGNOSTICS}`")
    return Fixture(text, tuple(lines), tuple(notes), no_diagnostics)


def fact_value(result: CheckResult, note: Note) -> str:
    """What the analyses report for the fact ``note`` asks about, written as a fact is."""
    analysis = result.analysis
    subject = result.source.text[note.start : note.end]
    if note.what in ("bound", "derived"):
        found = analysis.budgets.bounds.get(subject)
        if found is None:
            return f"no bound of `{subject}`"
        bound = found.bound if note.what == "bound" else found.derived
        return ", ".join(f"{word} {fmt(getattr(bound, field))}" for word, field, fmt in _DIMENSIONS)
    if note.what == "result labels":
        labels = analysis.labels.outputs.get(subject)
        if labels is None:
            return f"no result of `{subject}`"
    else:
        labels = analysis.labels.values.get((note.start, note.end))
        if labels is None:
            return f"no value is reported for `{subject}`"
    return ", ".join(sorted(set(labels) - {"public"})) or "none"


def fact_holds(note: Note, actual: str) -> bool:
    """Whether the fact as written holds: a bound may list only some of its dimensions."""
    if note.what not in ("bound", "derived"):
        return note.text == actual
    reported = dict(part.split(" ", 1) for part in actual.split(", ") if " " in part)
    stated = [part.split(None, 1) for part in note.text.split(",") if part.strip()]
    return bool(stated) and all(len(p) == 2 and reported.get(p[0]) == p[1].strip() for p in stated)


def compare(fixture: Fixture, result: CheckResult) -> tuple[str, str]:
    """The fixture as annotated and as the checker sees it, both written the same way, so that
    they are equal exactly when every annotation holds and nothing else is reported."""
    expected = list(fixture.notes)
    actual: list[Note] = []
    unmatched = list(result.diagnostics)
    for note in fixture.notes:
        if not note.is_diagnostic:
            value = fact_value(result, note)
            actual.append(note if fact_holds(note, value) else Note(note.line, note.start, note.end, note.what, value))
            continue
        match = next((d for d in unmatched if (d.code, d.span.start, d.span.end) == (note.what, note.start, note.end)
                      and d.message.startswith(note.text)), None)
        if match is not None:
            unmatched.remove(match)
            actual.append(note)
    for d in unmatched:
        actual.append(_note_of(fixture, d.span.start, d.span.end, d.code, d.message))
    return render(fixture, expected), render(fixture, actual)


def _note_of(fixture: Fixture, start: int, end: int, what: str, text: str) -> Note:
    """A note for a reported diagnostic, saying so where its span cannot be drawn exactly."""
    line = next((n for s, n, _ in reversed(fixture.source_lines) if s <= start), 0)
    line_start, _, line_text = fixture.source_lines[line] if fixture.source_lines else (0, 0, "")
    if end > line_start + len(line_text):  # over several lines: drawn up to the first line's end
        text, end = f"{text}  [the span ends at offset {end}]", max(line_start + len(line_text), start + 1)
    elif end == start:
        text, end = f"{text}  [an empty span]", start + 1
    if start - line_start < 2:
        text = f"{text}  [the span starts at column {start - line_start}, left of any `//`]"
    return Note(line, start, end, what, text)


def render(fixture: Fixture, notes: list[Note]) -> str:
    """The program with ``notes`` written under their lines, in a canonical order and layout."""
    by_line: dict[int, list[Note]] = {}
    for note in notes:
        by_line.setdefault(note.line, []).append(note)
    out: list[str] = []
    for line_start, number, line in fixture.source_lines:
        out.append(line)
        for note in sorted(by_line.get(number, ()), key=lambda n: (n.start, n.end, n.what, n.text)):
            column, width = note.start - line_start, max(note.end - note.start, 1)
            indent = len(line) - len(line.lstrip(" "))
            # `//` under the line's indentation when there is room, and a space before the carets
            slash = min(indent, column - 3) if column >= 3 else max(column - 2, 0)
            lead = " " * slash + "//" + " " * max(column - slash - 2, 0)
            said = f"{note.what}: {note.text}" if not note.is_diagnostic else f"{note.what} {note.text}".rstrip()
            out.append(f"{lead}{'^' * width} {said}")
    return "\n".join(out) + "\n"


def check_fixture(path: pathlib.Path) -> tuple[str, str]:
    text = path.read_text(encoding="utf-8")
    return compare(read_fixture(text), check_source(str(path), text))


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture(path):
    expected, actual = check_fixture(path)
    if expected != actual:
        diff = difflib.unified_diff(expected.splitlines(), actual.splitlines(), "as annotated", "as checked",
                                    lineterm="", n=2)
        pytest.fail(f"{path.relative_to(FIXTURES)}: the checker disagrees with the annotations\n" + "\n".join(diff),
                    pytrace=False)


def test_every_analysis_has_fixtures_and_every_fixture_an_analysis():
    counts = {name: len(list((FIXTURES / name).glob("*.vox"))) for name in ANALYSES}
    assert all(n >= 4 for n in counts.values()), counts
    assert {p.parent.name for p in FILES} <= set(ANALYSES)


# ---- the harness itself ----------------------------------------------------------------------------


SEND = """\
label pii
tool send(to: str) -> str { effect: read }
flow f(e: str @pii) -> str {
  return send(to: e)
  //              ^ V3002 argument `to` of `send`
}
"""


def test_a_matching_fixture_renders_the_same_both_ways():
    expected, actual = compare(read_fixture(SEND), check_source("t.vox", SEND))
    assert expected == actual


def test_a_missing_and_an_extra_diagnostic_both_show_in_the_diff():
    wrong = SEND.replace("^ V3002", "^ V3001")
    expected, actual = compare(read_fixture(wrong), check_source("t.vox", wrong))
    assert "  //              ^ V3001 argument `to` of `send`" in expected
    assert "  //              ^ V3002 argument `to` of `send` carries `pii`, but" in actual
    assert "V3001" not in actual


def test_a_message_must_start_with_the_annotated_text():
    wrong = SEND.replace("argument `to` of `send`", "argument `to` of `mail`")
    expected, actual = compare(read_fixture(wrong), check_source("t.vox", wrong))
    assert expected != actual


def test_a_fact_that_does_not_hold_shows_the_reported_value():
    text = SEND.replace("  return send(to: e)\n", "  return send(to: e)\n  //              ^ labels: none\n")
    expected, actual = compare(read_fixture(text), check_source("t.vox", text))
    assert "^ labels: none" in expected and "^ labels: pii" in actual


def test_no_diagnostics_must_be_said():
    with pytest.raises(FixtureError):
        read_fixture("label pii\n")
    assert read_fixture(f"label pii\n{NO_DIAGNOSTICS}\n").no_diagnostics


def test_carets_must_stay_on_their_line():
    with pytest.raises(FixtureError):
        read_fixture("label pii\n//  ^^^^^^^^^ V1001 x\n")


def annotated(text: str) -> str:
    """``text`` annotated with what the checker reports: every diagnostic, and the value of each
    fact it asks about (write ``^^^ bound: ?`` to see one)."""
    kept = [line for line in text.splitlines() if line.strip() != NO_DIAGNOSTICS and not (
        (m := _ANNOTATION.fullmatch(line)) and _DIAGNOSTIC.fullmatch(m.group("rest") or ""))]
    bare = "\n".join(kept) + "\n"
    fixture = read_fixture(bare + NO_DIAGNOSTICS)
    result = check_source("fixture.vox", bare)
    notes = []
    for n in fixture.notes:  # a fact that holds is kept as written (a bound may be partial)
        value = fact_value(result, n)
        notes.append(n if n.text != "?" and fact_holds(n, value) else Note(n.line, n.start, n.end, n.what, value))
    notes += [_note_of(fixture, d.span.start, d.span.end, d.code, d.message) for d in result.diagnostics]
    shown = render(fixture, notes).removesuffix(NO_DIAGNOSTICS + "\n")
    return shown if result.diagnostics else shown + NO_DIAGNOSTICS + "\n"


if __name__ == "__main__":  # print fixtures annotated with what the checker reports
    for name in sys.argv[1:]:
        print(annotated(pathlib.Path(name).read_text(encoding="utf-8")), end="")
