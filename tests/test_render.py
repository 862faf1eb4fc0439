"""The diagnostic renderer: rustc-style text and JSON.

Tests name the underlined *source text*, not offsets: spans are made with :func:`span_of`, and
:func:`underlined` reads back which text each run of markers sits under.
"""

from __future__ import annotations

import json
import re
import textwrap

import pytest

from vox.compiler.api import check_source
from vox.compiler.diagnostics.model import Fix, Label, Severity, TextEdit, error, replace_fix, warning
from vox.compiler.diagnostics.render import display_width, render_json, render_text, summary_line
from vox.compiler.source import SourceFile, Span

PATH = "examples/x.vox"

PROGRAM = textwrap.dedent(
    """\
    label pii

    flow triage(ticket: str) -> str {
      let t = triager(tickt)
      return t + 1
    }
    """
)


def span_of(text: str, needle: str, occurrence: int = 0) -> Span:
    """The span of the ``occurrence``-th appearance of ``needle`` in ``text``."""
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(needle, start + 1)
    return Span(start, start + len(needle))


def underlined(rendered: str, marker: str = "^") -> list[str]:
    """The source text above each run of ``marker`` (ASCII source lines only)."""
    lines = rendered.split("\n")
    found = []
    source_row = None
    for line in lines:
        if re.match(r"^\s*\d+ \|", line):
            source_row = line
            continue
        if source_row is not None and re.match(r"^\s*\|", line):
            bar = line.index("|")
            for m in re.finditer(re.escape(marker) + "+", line[bar + 1 :]):
                start, end = bar + 1 + m.start(), bar + 1 + m.end()
                found.append(source_row[start:end])
            source_row = source_row if line.strip() != "|" else None
    return found


def render(diag, text: str = PROGRAM, **kw) -> str:
    return render_text(diag, SourceFile(PATH, text), **kw)


# ---- text: the basic layout ------------------------------------------------------------------


def test_primary_label_secondary_label_notes_and_help():
    diag = error(
        "V1001",
        "unknown name `tickt`",
        PATH,
        span_of(PROGRAM, "tickt"),
        labels=(
            Label(span_of(PROGRAM, "tickt"), "not declared"),
            Label(span_of(PROGRAM, "ticket"), "a parameter with a similar name"),
        ),
        notes=("names are looked up in the flow, then in the module",),
        help="did you mean `ticket`?",
    )
    assert render(diag) == textwrap.dedent(
        """\
        error[V1001]: unknown name `tickt`
         --> examples/x.vox:4:19
          |
        3 | flow triage(ticket: str) -> str {
          |             ------ a parameter with a similar name
        4 |   let t = triager(tickt)
          |                   ^^^^^ not declared
          |
          = note: names are looked up in the flow, then in the module
          = help: did you mean `ticket`?"""
    )


def test_gutter_widens_with_two_digit_line_numbers():
    text = "\n" * 11 + "  let t = triager(tickt)\n"
    out = render(error("V1001", "unknown name `tickt`", PATH, span_of(text, "tickt")), text)
    assert out.split("\n")[1:5] == [
        "  --> examples/x.vox:12:19",
        "   |",
        "12 |   let t = triager(tickt)",
        "   |                   ^^^^^",
    ]


def test_secondary_labels_come_in_line_order_whatever_their_order_in_the_diagnostic():
    diag = error(
        "V1002",
        "duplicate declaration",
        PATH,
        span_of(PROGRAM, "t + 1"),
        labels=(Label(span_of(PROGRAM, "tickt"), "second"), Label(span_of(PROGRAM, "pii"), "first")),
    )
    out = render(diag)
    assert out.index("1 | label pii") < out.index("4 |   let t") < out.index("5 |   return")
    assert underlined(out, "-") == ["pii", "tickt"]
    assert underlined(out, "^") == ["t + 1"]


def test_labels_inside_the_primary_span_stay_visible_with_hanging_messages():
    left, right = span_of(PROGRAM, "t + 1"), span_of(PROGRAM, "1\n")
    diag = error(
        "V1005",
        "cannot add `str` and `int`",
        PATH,
        span_of(PROGRAM, "t + 1"),
        labels=(
            Label(Span(left.start, left.start + 1), "`str`"),
            Label(Span(right.start, right.start + 1), "`int`"),
        ),
    )
    assert render(diag).split("\n")[3:] == [
        "5 |   return t + 1",
        "  |          -^^^- `int`",
        "  |          |",
        "  |          `str`",
    ]


def test_one_hidden_line_is_shown_and_longer_gaps_are_elided():
    text = "label a\nlabel b\nlabel c\nlabel d\nlabel e\nlabel f\n"
    near = error("V1002", "dup", PATH, span_of(text, "c"), labels=(Label(span_of(text, "a"), "here"),))
    assert "2 | label b" in render(near, text)
    far = error("V1002", "dup", PATH, span_of(text, "f"), labels=(Label(span_of(text, "a"), "here"),))
    lines = render(far, text).split("\n")
    assert "..." in lines
    assert not any("label c" in line for line in lines)


# ---- text: awkward spans ----------------------------------------------------------------------


def test_zero_width_span_gets_one_caret():
    text = "flow f() {\n  return g(\n}\n"
    at = text.index("(\n") + 1  # just after the `(`
    out = render(error("V0003", "this `(` is never closed", PATH, Span(at, at)), text)
    assert out.split("\n")[1:5] == [
        " --> examples/x.vox:2:12",
        "  |",
        "2 |   return g(",
        "  |            ^",
    ]


def test_zero_width_span_at_the_end_of_the_file():
    text = "label a"
    out = render(error("V0002", "unexpected end of file", PATH, Span(7, 7)), text)
    assert out.split("\n")[2:] == ["  |", "1 | label a", "  |        ^"]


def test_multi_line_primary_span_marks_its_first_and_last_lines():
    text = "label a\nflow f() {\n  return 1\n}\nlabel b\n"
    span = Span(text.index("flow"), text.index("}") + 1)
    out = render(error("V1022", "missing return", PATH, span, labels=(Label(span, "this flow"),)), text)
    assert out.split("\n")[1:] == [
        " --> examples/x.vox:2:1",
        "  |",
        "2 | flow f() {",
        "  | ^^^^^^^^^^",
        "3 |   return 1",
        "4 | }",
        "  | ^ this flow",
    ]


def test_multi_line_span_elides_its_middle_and_ignores_a_final_newline():
    text = "flow f() {\n" + "  x\n" * 5 + "  }\n"
    span = Span(0, len(text))  # ends after the last newline: displayed as ending on line 7
    out = render(error("V1022", "long", PATH, span), text)
    assert out.split("\n")[3:] == ["1 | flow f() {", "  | ^^^^^^^^^^", "...", "7 |   }", "  |   ^"]


def test_tabs_are_expanded_and_carets_follow():
    text = "\tlet t = tickt\n"
    out = render(error("V1001", "unknown name", PATH, span_of(text, "tickt")), text)
    assert out.split("\n")[1:] == [
        " --> examples/x.vox:1:10",
        "  |",
        "1 |     let t = tickt",
        "  |             ^^^^^",
    ]


def test_non_ascii_lines_align_carets_by_display_width_and_count_columns_in_code_points():
    text = 'let s = "日本é" + tickt\n'
    out = render(error("V1001", "unknown name", PATH, span_of(text, "tickt")), text)
    lines = out.split("\n")
    assert lines[1] == " --> examples/x.vox:1:17"  # 16 code points before `tickt`
    assert lines[3] == '1 | let s = "日本é" + tickt'
    assert lines[4] == "  |                   ^^^^^"  # the two wide characters take two columns each
    assert lines[4].index("^") - lines[3].index("let") == display_width('let s = "日本é" + ')


def test_wide_characters_are_underlined_across_their_full_width():
    text = 'let s = "日本"\n'
    out = render(error("V1005", "bad", PATH, span_of(text, "日本")), text)
    assert out.split("\n")[4] == "  |          ^^^^"


def test_combining_marks_take_no_column():
    text = "let cafe\u0301 = tickt\n"
    out = render(error("V1001", "unknown name", PATH, span_of(text, "tickt")), text)
    assert out.split("\n")[4] == "  |            ^^^^^"  # `é` is `e` plus a combining accent


def test_control_characters_are_shown_as_pictures_not_sent_to_the_terminal():
    text = "label a\x1b[31m\n"
    out = render(error("V0001", "unexpected character", PATH, span_of(text, "\x1b")), text)
    assert "\x1b" not in out
    assert "1 | label a\u241b[31m" in out


def test_lines_never_end_in_spaces():
    text = "label a   \n\nlabel b\n"
    diag = error("V1002", "dup", PATH, span_of(text, "b"), labels=(Label(span_of(text, "a"), "first"),))
    assert all(line == line.rstrip() for line in render(diag, text).split("\n"))


# ---- text: fixes, other files, colour ---------------------------------------------------------


def test_a_one_line_fix_is_previewed_and_its_help_not_repeated():
    result = check_source(PATH, "agent a(x: str) -> str {\n  model = mini\n}\n")
    (diag,) = result.diagnostics
    assert diag.fix is not None and diag.help == diag.fix.message
    out = render_text(diag, result.source)
    assert out.split("\n") == [
        "error[V0011]: members are written `key: value`, not `key = value`",
        " --> examples/x.vox:2:9",
        "  |",
        "2 |   model = mini",
        "  |         ^",
        "  |",
        "help: replace `=` with `:`",
        "  |",
        "2 |   model: mini",
        "  |        ~",
    ]
    assert "= help" not in out


def test_an_insertion_fix_is_marked_with_plus():
    text = "flow f() -> str {\n  return g(x\n}\n"
    at = span_of(text, "x\n").end - 1
    fix = Fix("add `)`", (TextEdit(Span(at, at), ")"),))
    out = render(error("V0003", "unclosed", PATH, Span(at, at), help="close the call", fix=fix), text)
    assert out.split("\n")[5:] == [
        "  |",
        "  = help: close the call",
        "help: add `)`",
        "  |",
        "2 |   return g(x)",
        "  |             +",
    ]


def test_a_fix_that_cannot_be_previewed_becomes_a_help_line():
    text = "label a;\n"
    fix = Fix("remove the `;`", (TextEdit(span_of(text, ";"), ""),))
    out = render(error("V0002", "unexpected `;`", PATH, span_of(text, ";"), fix=fix), text)
    assert out.split("\n")[-2:] == ["  |", "  = help: remove the `;`"]


def test_labels_in_other_files():
    other = SourceFile("lib.vox", "label pii\n")
    elsewhere = Label(Span(6, 9), "first declared here", path="lib.vox")
    diag = error("V1002", "duplicate", PATH, span_of(PROGRAM, "pii"), labels=(elsewhere,))
    with_source = render(diag, sources={"lib.vox": other})
    assert " ::: lib.vox:1:7" in with_source
    assert underlined(with_source, "-") == ["pii"]
    without = render(diag)
    assert without.endswith("  = note: first declared here (in lib.vox)")


def test_multi_line_notes_are_indented_under_their_text():
    out = render(error("V1001", "m", PATH, span_of(PROGRAM, "tickt"), notes=("one\ntwo",)))
    assert out.split("\n")[-2:] == ["  = note: one", "          two"]


def test_severity_words():
    out = render(warning("V1019", "secret", PATH, span_of(PROGRAM, "pii")))
    assert out.startswith("warning[V1019]: secret")


def test_color_only_when_asked():
    diag = error("V1001", "unknown", PATH, span_of(PROGRAM, "tickt"), help="did you mean `ticket`?")
    plain = render(diag)
    assert "\x1b" not in plain
    colored = render(diag, color=True)
    assert "\x1b[" in colored
    assert re.sub(r"\x1b\[[0-9;]*m", "", colored) == plain


# ---- JSON -------------------------------------------------------------------------------------


def test_json_has_every_field_with_zero_based_ranges():
    text = 'label pii\nlet s = "é𝒳" + tickt\n'
    source = SourceFile(PATH, text)
    diag = error(
        "V1001",
        "unknown name `tickt`",
        PATH,
        span_of(text, "tickt"),
        labels=(Label(span_of(text, "pii"), "like this"),),
        notes=("a note",),
        help="did you mean `ticket`?",
        fix=replace_fix("replace with `ticket`", span_of(text, "tickt"), "ticket"),
    )
    out = render_json([diag], {PATH: source})
    json.dumps(out)  # serialisable as it is
    (item,) = out["diagnostics"]
    # characters are code points: `é` and `𝒳` (outside the BMP) count one each
    tickt = {"start": {"line": 1, "character": 15}, "end": {"line": 1, "character": 20}}
    assert item == {
        "code": "V1001",
        "severity": "error",
        "message": "unknown name `tickt`",
        "file": PATH,
        "range": tickt,
        "labels": [
            {
                "message": "like this",
                "file": PATH,
                "range": {"start": {"line": 0, "character": 6}, "end": {"line": 0, "character": 9}},
            }
        ],
        "notes": ["a note"],
        "help": "did you mean `ticket`?",
        "fix": {"message": "replace with `ticket`", "edits": [{"range": tickt, "new_text": "ticket"}]},
    }
    assert text.split("\n")[1][15:20] == "tickt"


def test_json_without_fix_or_help_and_with_a_label_in_another_file():
    other = SourceFile("lib.vox", "\nlabel pii\n")
    diag = warning("V1019", "w", PATH, Span(0, 5), labels=(Label(Span(7, 10), "there", path="lib.vox"),))
    (item,) = render_json([diag], {PATH: SourceFile(PATH, PROGRAM), "lib.vox": other})["diagnostics"]
    assert item["severity"] == "warning"
    assert item["fix"] is None and item["help"] is None and item["notes"] == []
    assert item["labels"] == [
        {
            "message": "there",
            "file": "lib.vox",
            "range": {"start": {"line": 1, "character": 6}, "end": {"line": 1, "character": 9}},
        }
    ]


def test_json_range_is_null_without_the_source():
    (item,) = render_json([error("V1001", "m", "gone.vox", Span(0, 1))], {})["diagnostics"]
    assert item["range"] is None


def test_json_of_nothing():
    assert render_json([], {}) == {"diagnostics": []}


# ---- summary ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severities", "files", "expected"),
    [
        ([], 1, "ok: no problems in 1 file"),
        ([Severity.ERROR, Severity.ERROR, Severity.WARNING], 1, "error: 2 errors, 1 warning in 1 file"),
        ([Severity.WARNING], 3, "warning: 1 warning in 3 files"),
        ([Severity.ERROR], 2, "error: 1 error in 2 files"),
    ],
)
def test_summary_line(severities, files, expected):
    make = {Severity.ERROR: error, Severity.WARNING: warning}
    diags = [make[s]("V1001", "m", PATH, Span(0, 1)) for s in severities]
    assert summary_line(diags, files) == expected
    assert "\x1b" not in summary_line(diags, files)
