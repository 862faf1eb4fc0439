"""Property tests: the parser and checker never raise on any input, only report diagnostics.

The number of examples is set by the hypothesis profile (see conftest.py): `ci` runs more.
"""

from __future__ import annotations

import pathlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vox.compiler.api import check_source
from vox.compiler.source import SourceFile

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLE_TEXTS = [p.read_text() for p in sorted((ROOT / "examples").glob("*.vox"))]

# Fragments that make mutations likely to hit interesting parser states.
FRAGMENTS = [
    "{", "}", "(", ")", "[", "]", ",", ":", "=", "==", "->", "\n", '"', '"""', "'", "//", "$", "$0.5",
    "5s", "1__0", "@", "@pii", "?", "per", "max", "for", "in", "let", "if", "else", "par", "return",
    "agent", "flow", "tool", "model", "check", "mock", "reply", "call", "none", "x", "é", "\t", "#", "\\",
]


def _assert_well_formed(text: str) -> None:
    result = check_source("fuzz.vox", text)
    source = SourceFile("fuzz.vox", text)
    for d in result.diagnostics:
        assert d.code[0] == "V" and len(d.code) == 5, d
        assert 0 <= d.span.start <= d.span.end <= len(text), d
        assert d.message
        source.position(d.span.start)
        if d.fix is not None:
            for edit in d.fix.edits:
                assert 0 <= edit.span.start <= edit.span.end <= len(text)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=400))
def test_arbitrary_text_never_raises(text):
    _assert_well_formed(text)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=60).map(" ".join))
def test_token_soup_never_raises(text):
    _assert_well_formed(text)


@st.composite
def mutated_example(draw):
    text = draw(st.sampled_from(EXAMPLE_TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        pos = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        length = draw(st.integers(1, 12))
        if kind == "delete":
            text = text[:pos] + text[pos + length :]
        elif kind == "insert":
            text = text[:pos] + draw(st.sampled_from(FRAGMENTS)) + text[pos:]
        elif kind == "replace":
            text = text[:pos] + draw(st.sampled_from(FRAGMENTS)) + text[pos + length :]
        else:
            text = text[:pos] + text[pos : pos + length * 4] + text[pos:]
    return text


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(mutated_example())
def test_mutated_examples_never_raise(text):
    _assert_well_formed(text)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(EXAMPLE_TEXTS), st.data())
def test_truncated_examples_never_raise(text, data):
    cut = data.draw(st.integers(0, len(text)))
    _assert_well_formed(text[:cut])


# Inputs the generators above once found to crash the checker, kept so they stay fixed.
FOUND = [
    # a tool parameter of an unknown type reached the budget analysis's prompt estimate
    'provider sim = sim { clearance: [public] }\nmodel m = sim/"x" { context: 8000, max_output: 100 }\n'
    'tool lookup(id: Nope) -> str { effect: read }\n'
    'agent a(q: str) -> str {\n  model: m\n  tools: [lookup]\n  prompt: "hi {q}"\n}\n',
]


def test_inputs_found_by_fuzzing_never_raise():
    for text in FOUND:
        _assert_well_formed(text)
        assert check_source("fuzz.vox", text).diagnostics, text
