"""Every `// error:` note of reference.vox, applied, is rejected with a diagnostic of its family.

The design's reference program is the compatibility anchor: it checks clean as written, and each
note names a one-line change the compiler must reject. Each change here is that line, edited.
"""

from __future__ import annotations

import pathlib
import re

import pytest

from vox.compiler.api import check_source

REFERENCE = (pathlib.Path(__file__).resolve().parent.parent / "examples" / "reference.vox").read_text()

# (the note's words, the text to change, the change, the family, the source text the error points at)
NOTES = [
    ("calling it with ticket.body is V3xxx",
     "search_kb(query: triage.summary)", "search_kb(query: ticket.body)", "V3", "ticket.body"),
    ("judging with `mini` is V3xxx",
     "check judge(local,", "check judge(mini,", "V3", None),
    ("adding `sonnet` to the fallbacks is V5xxx",
     "fallback: [local]", "fallback: [local, sonnet]", "V5", "sonnet"),
    ("passing ticket.body instead of redact(ticket.body) is V3xxx",
     "triager(ticket_text: redact(ticket.body))", "triager(ticket_text: ticket.body)", "V3", "ticket.body"),
    ("raising resolver's cost cap to $0.05 is V2xxx",
     "tokens: 30_000, cost: $0.02", "tokens: 30_000, cost: $0.05", "V2", "$0.05"),
    ("dropping `max 10` is V2xxx",
     "for t in tickets max 10 {", "for t in tickets {", "V2", None),
]


def test_every_note_is_covered():
    notes = re.findall(r"error: (.*)", REFERENCE)
    assert len(notes) == len(NOTES)
    for words, *_ in NOTES:
        assert any(words in n for n in notes), words


def test_the_reference_checks_clean():
    assert check_source("reference.vox", REFERENCE).diagnostics == ()


@pytest.mark.parametrize("words,old,new,family,underlined", NOTES, ids=[n[0] for n in NOTES])
def test_each_note_applied_is_rejected(words, old, new, family, underlined):
    assert REFERENCE.count(old) == 1
    text = REFERENCE.replace(old, new)
    errors = [d for d in check_source("reference.vox", text).diagnostics if d.is_error]
    assert errors, f"no error after: {new}"
    assert {d.code[:2] for d in errors} == {family}, [(d.code, d.message) for d in errors]
    if underlined is not None:
        assert underlined in [text[d.span.start:d.span.end] for d in errors]
