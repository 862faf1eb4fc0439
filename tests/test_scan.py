"""One scanner for strings and comments (compiler/syntax/scan.py).

It finds what the lark lexer finds, and every part of the compiler that looks at raw text (the
parser's declaration split and error recovery, the formatter, the language server's completion)
agrees with it on where strings and comments are.
"""

from __future__ import annotations

import functools
import pathlib
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lark import Lark
from lark.exceptions import UnexpectedInput
from pygls.workspace.position_codec import PositionCodec

from vox.compiler.diagnostics.model import DiagnosticSink
from vox.compiler.format import format_source
from vox.compiler.format.structure import closing_paren_end
from vox.compiler.syntax.literals import decode_string
from vox.compiler.syntax.parser import _mend_unterminated_string, _structure, grammar_text, parse_module
from vox.compiler.syntax.scan import COMMENT, LONG_STRING, STRING, code_spans, region_at, regions, scan
from vox.lsp import completion
from vox.lsp.documents import DocumentStore

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.vox"))
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces that make strings, escapes and comments run into each other.
TRICKY = ['"', '"""', "\\", '\\"', "\\\\", "//", "/", "\n", " ", "x", "{", "}", "(", ")", "[", "]", ","]
texts = st.lists(st.sampled_from(TRICKY + ["'", "\r\n", "{{", "é", "\t", '"""\n', "x: "]), max_size=40).map("".join)
lexable = st.lists(st.sampled_from(TRICKY), max_size=24).map("".join)


def spans(found) -> list[tuple[str, int, int]]:
    return [(r.kind, r.start, r.end) for r in found]


# ---- the scanner and the lark lexer ---------------------------------------------------------


@functools.cache
def _lexer() -> Lark:
    # the contextual lexer depends on the parser's state; the basic one lexes any text
    return Lark(grammar_text(), parser="lalr", lexer="basic", start=["start", "chunk"], maybe_placeholders=True)


def lexed_regions(text: str) -> list[tuple[str, int, int]] | None:
    """The strings and comments lark's lexer finds in ``text``, or None when it cannot lex it.

    Comments on their own lines are part of a newline token (``_NL``, ``NEWLINE_CONT``)."""
    try:
        tokens = list(_lexer().lex(text, dont_ignore=True))
    except UnexpectedInput:
        return None
    out = []
    for tok in tokens:
        if tok.type in (STRING, LONG_STRING):
            out.append((tok.type, tok.start_pos, tok.end_pos))
        elif tok.type in (COMMENT, "_NL", "NEWLINE_CONT"):
            for m in re.finditer(r"//[^\n]*", str(tok)):
                out.append((COMMENT, tok.start_pos + m.start(), tok.start_pos + m.end()))
    return out


def assert_agrees_with_lexer(text: str) -> None:
    lexed = lexed_regions(text)
    if lexed is None:
        return
    found = regions(text)
    unclosed = [r for r in found if not r.closed]
    if unclosed:
        # The one difference: lark reads a `"""` that never closes as `""` and a string right
        # after it. Two strings in a row never parse, so no program depends on it.
        assert [r.kind for r in unclosed] == [LONG_STRING], (text, found)
        assert any(a[0] == STRING and a[2] == b[1] and b[0] != COMMENT for a, b in zip(lexed, lexed[1:]))
        return
    assert spans(found) == lexed, text


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_scanner_finds_what_the_lexer_finds_in_every_example(path):
    text = path.read_text(encoding="utf-8")
    assert lexed_regions(text) is not None
    assert_agrees_with_lexer(text)


@FAST
@given(lexable)
def test_the_scanner_finds_what_the_lexer_finds(text):
    assert_agrees_with_lexer(text)


@pytest.mark.parametrize("text", [
    '"a//b" // c "d',            # `//` in a string, `"` in a comment
    '"\\"" x "\\\\" y',           # escaped quote, escaped backslash
    '"""a "" b \\""" c"""',      # quotes inside a long string, an escaped `"""`
    '"""\nline\n  // not a comment\n"""',
    '"""""""',                   # an empty long string, then a lone quote
    '""""',                      # lark: two empty strings
    '"a\\\nb"',                  # a backslash does not continue a one-line string
])
def test_edge_cases_agree_with_the_lexer(text):
    assert_agrees_with_lexer(text)


# ---- the scanner on its own -----------------------------------------------------------------


@FAST
@given(texts)
def test_regions_are_ordered_and_every_quote_and_comment_is_in_one(text):
    found = regions(text)
    pos = 0
    for r in found:
        assert pos <= r.start < r.end <= len(text)
        pos = r.end
        body = text[r.start : r.end]
        line_end = text.find("\n", r.start)
        line_end = len(text) if line_end == -1 else line_end
        if r.kind == COMMENT:
            assert body.startswith("//") and r.end == line_end
        elif r.kind == STRING:
            assert body.startswith('"') and "\n" not in body
            if r.closed:
                assert len(body) >= 2 and body.endswith('"')
                decode_string(body)
            else:
                assert r.end == line_end
        else:
            assert body.startswith('"""')
            if r.closed:
                assert len(body) >= 6 and body.endswith('"""')
                decode_string(body)
            else:
                assert r.end == len(text)
    for start, end in code_spans(text):
        assert '"' not in text[start:end] and "//" not in text[start:end]


def test_a_string_that_never_closes():
    assert [(r.kind, r.closed, r.end) for r in regions('x = "abc\ny')] == [(STRING, False, 8)]
    assert [(r.kind, r.closed, r.end) for r in regions('x = """abc\ny "z"')] == [(LONG_STRING, False, 16)]
    assert [(r.kind, r.closed) for r in regions('"a\\')] == [(STRING, False)]


# ---- every user agrees with the scanner -----------------------------------------------------


def code_offsets(text: str) -> set[int]:
    found = regions(text)
    return {i for i in range(len(text)) if region_at(found, i) is None}


@FAST
@given(texts)
@example('"a\\\n{" }')  # a backslash before a line break does not continue a string
@example('"""a"{\\')  # a long string that never closes hides everything after it
def test_the_parsers_brackets_are_outside_strings_and_comments(text):
    code = code_offsets(text)
    expected = [(c, i, i + 1) for i, c in enumerate(text) if c in "{}()[],\n" and i in code]
    assert _structure(text) == expected


@FAST
@given(texts)
def test_the_parsers_comments_are_the_scanners(text):
    comments = parse_module("t.vox", text).module.comments
    assert [(c.span.start, c.span.end) for c in comments] == [
        (r.start, r.end) for r in regions(text) if r.kind == COMMENT
    ]


def test_a_url_in_a_string_does_not_end_its_line_with_an_operator():
    # `//` in the string is not a comment, so the line ends with `)`, not with `http:`
    text = 'provider p = openai_compatible {\n  base_url: env("X", "http://127.0.0.1/v1")\n  clearance: [public,,x]\n}\n'
    assert [(d.code, text[d.span.start : d.span.end]) for d in parse_module("t.vox", text).diagnostics] == [
        ("V0002", ",")
    ]


@FAST
@given(texts)
def test_declarations_start_outside_strings_and_comments(text):
    code = code_offsets(text)
    for chunk in scan(text).chunks[1:]:
        assert chunk.start in code or text.startswith("\ufeff")


@FAST
@given(texts)
@example('x = """a\\')
def test_an_unclosed_long_string_is_found_where_the_scanner_finds_it(text):
    sink = DiagnosticSink("")
    _, swallowed = _mend_unterminated_string(text, sink)
    unclosed = [r for r in regions(text) if r.kind == LONG_STRING and not r.closed]
    assert swallowed == bool(unclosed)
    if unclosed:
        assert [(d.code, d.span.start) for d in sink.items] == [("V0005", unclosed[0].start)]


@FAST
@given(texts)
@example("f // ()\n(x)")
@example('f "(" // )\n(x)')
def test_the_formatter_finds_a_parameter_list_outside_comments(text):
    code = sorted(code_offsets(text))
    opening = next((i for i in code if text[i] == "("), None)
    closing = next((i for i in code if opening is not None and i > opening and text[i] == ")"), None)
    assert closing_paren_end(text, 0) == (len(text) if closing is None else closing + 1)


@FAST
@given(texts)
@example('x = "http://a" {')  # `//` in a string starts no comment
@example('// "\n{')  # `"` in a comment starts no string
def test_completion_counts_braces_outside_strings_and_comments(text):
    code = code_offsets(text)
    depth = 0
    for offset in range(len(text) + 1):
        assert completion._depth(text[:offset]) == max(0, depth), (text, offset)
        if offset in code:
            depth += {"{": 1, "}": -1}.get(text[offset], 0)


STORE = DocumentStore()


def completions(text: str, offset: int) -> set[str]:
    checked = STORE.check("file:///t.vox", text, 1, PositionCodec())
    items = completion.complete(checked, checked.positions.position(offset)).items
    return {item.label for item in items}


PROGRAM = '''agent a(ticket: str) -> str {
  model: m
  // a comment with a { and a """ in it
  prompt: "Hi {ticket} // not a comment"
  system: """
    Reply like {{"ok": true}}.
  """
}
'''


@pytest.mark.parametrize("needle, delta, expected", [
    ("// a comment", 12, set()),                     # in a comment: nothing
    ("// a comment", len("// a comment with a { and a \"\"\" in"), set()),
    ('"Hi {ticket}', 1, set()),                      # in a string, no placeholder open
    ('"Hi {ticket}', len('"Hi {'), {"ticket"}),      # a placeholder in a one-line prompt
    ("// not a comment", 5, set()),
    ('{{"ok"', 2, set()),                            # `{{` is a brace, not a placeholder
    ("  prompt:", 2, {"model", "prompt"}),           # member keys after a comment with `"""`
])
def test_completion_knows_strings_and_comments(needle, delta, expected):
    offset = PROGRAM.index(needle) + delta
    found = completions(PROGRAM, offset)
    assert expected <= found if expected else found == set(), found


# ---- well-formed programs are read as before ------------------------------------------------

plain_piece = st.sampled_from(["a", " ", "//", "{", "}", "{{", "}}", '\\"', "\\\\", "\\n", "'", "é", "#", "\\t"])
# every piece with a quote ends in a space, so that no two pieces make a closing `"""`
long_piece = st.sampled_from(["a", " ", "//", "{", "}", '" ', '"" ', '\\""" ', "\\\\", "\n    ", "'", "é", "("])
comment_piece = st.sampled_from(["a", " ", "//", '"', '"""', "{", ")", "\\", "'", "é"])


@st.composite
def program(draw):
    plain = '"' + "".join(draw(st.lists(plain_piece, max_size=8))) + '"'
    long = '"""\n    ' + "".join(draw(st.lists(long_piece, max_size=8))) + '\n  """'
    comments = ["// " + "".join(draw(st.lists(comment_piece, max_size=8))) for _ in range(3)]
    text = (
        f"{comments[0]}\n"
        f"flow f(x: str) -> str {{ {comments[1]}\n"
        f"  let a = {plain} {comments[2]}\n"
        f"  let b = {long}\n"
        "  return a\n"
        "}\n"
    )
    return text, [plain, long], comments


@FAST
@given(program())
def test_strings_and_comments_of_a_program_are_read_whole(case):
    text, strings, comments = case
    parsed = parse_module("t.vox", text)
    assert parsed.diagnostics == ()
    found = regions(text)
    assert [text[r.start : r.end] for r in found if r.is_string] == strings
    assert [c.text for c in parsed.module.comments] == comments
    formatted = format_source(text).text
    assert formatted is not None
    kept = [formatted[r.start : r.end] for r in regions(formatted) if r.kind == COMMENT]
    assert kept == [c.rstrip() for c in comments]
