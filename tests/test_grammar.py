"""The grammar itself: LALR with zero conflicts, and the layout rules of the language sketch."""

from __future__ import annotations

import pytest
from lark import Lark

from vox.compiler.api import check_source
from vox.compiler.syntax.parser import _Layout, grammar_text, parse_module


def test_grammar_has_no_lalr_conflicts_and_no_terminal_collisions():
    pytest.importorskip("interegular")
    # strict: lark raises on any shift/reduce conflict instead of silently shifting
    Lark(grammar_text(), parser="lalr", lexer="contextual", start=["start", "chunk"], strict=True,
         maybe_placeholders=True, postlex=_Layout())


def decls(text: str):
    result = parse_module("t.vox", text)
    assert result.diagnostics == (), result.diagnostics
    return result.module.decls


def test_keywords_are_ordinary_member_and_field_keys():
    text = (
        "type T = { model: str, agent: str, flow: str, type: str, let: int, input: str, output: str }\n"
        "agent a(x: T) -> T {\n  model: m\n  prompt: \"{x.model}\"\n}\n"
    )
    (record, agent) = decls(text)
    assert [f.name.name for f in record.type.fields][:3] == ["model", "agent", "flow"]
    assert agent.members[0].key.name == "model"


def test_newline_or_comma_separates_members():
    one = decls("agent a(x: str) -> str { model: m, prompt: \"{x}\" }\n")
    two = decls("agent a(x: str) -> str {\n  model: m\n  prompt: \"{x}\"\n}\n")
    assert one == two


def test_newlines_inside_parentheses_and_brackets_are_ignored():
    a = decls("flow f() {\n  g(a: 1,\n    b: [1,\n 2\n ]\n  )\n}\n")
    b = decls("flow f() {\n  g(a: 1, b: [1, 2])\n}\n")
    assert a == b


def test_a_line_ending_in_an_operator_continues():
    a = decls("flow f() -> int {\n  return 1 +\n    2\n}\n")
    b = decls("flow f() -> int {\n  return 1 + 2\n}\n")
    assert a == b


def test_lines_starting_with_else_and_or_continue():
    a = decls("flow f(x: bool) -> int {\n  if x\n    and x\n    or x {\n    return 1\n  }\n  else {\n    return 2\n  }\n}\n")
    b = decls("flow f(x: bool) -> int {\n  if x and x or x { return 1 } else { return 2 }\n}\n")
    assert a == b


def test_comments_between_a_block_and_else_are_allowed():
    decls("flow f(x: bool) -> int {\n  if x {\n    return 1\n  }\n  // otherwise\n  else {\n    return 2\n  }\n}\n")


def test_for_without_max_is_not_a_syntax_error():
    (flow,) = decls("flow f(xs: list[int]) -> list[int] {\n  return for x in xs { x }\n}\n")
    assert flow.body[0].value.bound is None


def test_literals_keep_exact_units():
    (flow,) = decls("flow f() {\n  g(a: $0.15, b: 250ms, c: 2m, d: 200_000, e: 1.5s)\n}\n")
    args = flow.body[0].expr.args
    assert [a.value.micros if hasattr(a.value, "micros") else getattr(a.value, "millis", None) or a.value.value
            for a in args] == [150_000, 250, 120_000, 200_000, 1_500]


def test_triple_quoted_prompts_are_dedented():
    (agent,) = decls('agent a(x: str) -> str {\n  prompt: """\n    Hello {x}\n      indented\n  """\n}\n')
    assert agent.members[0].value.value == "Hello {x}\n  indented"


def test_declaration_keyword_inside_a_prompt_does_not_split_the_file():
    text = 'agent a(x: str) -> str {\n  model: m\n  prompt: """\nflow of text {x}\nagent smith here\n"""\n}\n'
    assert len(decls(text)) == 1


def test_reference_program_checks_clean():
    import pathlib

    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / "reference.vox"
    assert check_source(str(path), path.read_text()).diagnostics == ()
