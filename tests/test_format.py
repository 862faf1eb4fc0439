"""The canonical formatter: examples are canonical, formatting is idempotent and keeps the
program and every comment, and any re-layout of an example formats back to the same text."""

from __future__ import annotations

import functools
import pathlib
import random
import re
from collections import Counter
from dataclasses import fields, is_dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vox.compiler.format import LINE_WIDTH, format_source
from vox.compiler.format.comments import attach_comments
from vox.compiler.format.equivalence import same_meaning
from vox.compiler.format.structure import (
    ARGS,
    BODY,
    ELEMENTS,
    FIELDS,
    PARAMS,
    STMTS,
    TURNS,
    VARIANTS,
    Container,
    containers_in,
    module_container,
)
from vox.compiler.syntax import ast
from vox.compiler.syntax.parser import DeclCache, parse_module

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.vox"))
EXAMPLE_NAMES = [p.name for p in EXAMPLES]

FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Parses are deterministic: sharing them keeps the property tests fast.
CACHE = DeclCache()
INDENTS = [" ", "  ", "\t", "      ", "   \t", "         "]


def fmt(text: str) -> str:
    result = format_source(text, "test.vox", cache=CACHE)
    assert result.text is not None, [d.message for d in result.diagnostics]
    return result.text


def decls(text: str) -> tuple:
    parsed = parse_module("test.vox", text, CACHE)
    assert not [d for d in parsed.diagnostics if d.is_error], [d.message for d in parsed.diagnostics]
    return parsed.module.decls


def comment_texts(text: str) -> Counter[str]:
    return Counter(c.text.rstrip() for c in parse_module("test.vox", text, CACHE).module.comments)


@functools.cache
def example_text(name: str) -> str:
    return (ROOT / "examples" / name).read_text(encoding="utf-8")


@functools.cache
def canonical_text(name: str) -> str:
    return fmt(example_text(name))


# ---- 1. the examples are canonical ----------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_is_canonical(name):
    assert canonical_text(name) == example_text(name)


# ---- 2. idempotent, and the same program ----------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_formatting_an_example_is_idempotent_and_keeps_its_ast(name):
    formatted = canonical_text(name)
    assert fmt(formatted) == formatted
    assert decls(formatted) == decls(example_text(name))
    assert comment_texts(formatted) == comment_texts(example_text(name))


# ---- 3. random re-layouts format back to the canonical text ---------------------------------

NEWLINE_SEPARATED = {BODY, STMTS, FIELDS, VARIANTS}  # a newline or a comma separates their items
COMMA_SEPARATED = {ELEMENTS, ARGS, PARAMS, TURNS, FIELDS, VARIANTS}
DECL_START = re.compile(r"(?:label|budget|provider|model|type|enum|tool|gate|agent|flow|test) ")
EXPR_TYPES = (
    ast.Name, ast.IntLit, ast.FloatLit, ast.MoneyLit, ast.DurationLit, ast.StrLit, ast.BoolLit, ast.NoneLit,
    ast.ListLit, ast.RecordLit, ast.FieldAccess, ast.Index, ast.Call, ast.Unary, ast.Binary, ast.Rate,
    ast.ForExpr,
)  # fmt: skip


def all_containers(module: ast.Module, text: str) -> list[Container]:
    found, pending = [], [module_container(module, text)]
    while pending:
        container = pending.pop()
        found.append(container)
        for item in container.items:
            pending.extend(containers_in(item, text))
    return found[1:]  # declarations are split at line starts: never join them


def item_gaps(module: ast.Module, text: str, roles: set[str]) -> list[tuple[int, int]]:
    """The text between consecutive items of containers in ``roles`` (comments excluded)."""
    gaps = []
    for container in all_containers(module, text):
        if container.role not in roles:
            continue
        for a, b in zip(container.items, container.items[1:]):
            if not text[a.span.end : b.span.start].strip(" \t\n,"):
                gaps.append((a.span.end, b.span.start))
    return gaps


def expressions(node, parent_field: str = "") -> list:
    """Every expression in an AST subtree (not the model id or test name, which are tokens)."""
    if isinstance(node, tuple):
        return [e for n in node for e in expressions(n, parent_field)]
    if not is_dataclass(node) or parent_field in ("model_id", "name"):
        return []
    found = [node] if isinstance(node, EXPR_TYPES) else []
    for f in fields(node):
        if f.name != "span":
            found += expressions(getattr(node, f.name), f.name)
    return found


def colon_gaps(module: ast.Module) -> list[tuple[int, int]]:
    """The `: ` between a key and its value or type."""
    gaps = []

    def visit(node):
        if isinstance(node, tuple):
            for n in node:
                visit(n)
            return
        if not is_dataclass(node):
            return
        if isinstance(node, (ast.Member, ast.RecordField, ast.FieldDecl, ast.Param)):
            key = node.key if isinstance(node, ast.Member) else node.name
            value = node.type if isinstance(node, (ast.FieldDecl, ast.Param)) else node.value
            gaps.append((key.span.end, value.span.start))
        elif isinstance(node, ast.Arg) and node.name is not None:
            gaps.append((node.name.span.end, node.value.span.start))
        for f in fields(node):
            if f.name != "span":
                visit(getattr(node, f.name))

    visit(module.decls)
    return gaps


def apply_edits(text: str, replacements: dict[tuple[int, int], str], opens: Counter, closes: Counter) -> str:
    """Replace non-overlapping ranges and insert parentheses (closing before opening)."""
    points = sorted(set(replacements) | {(p, p) for p in opens | closes}, reverse=True)
    for start, end in points:
        if start == end:
            text = text[:start] + ")" * closes[start] + "(" * opens[start] + text[start:]
        else:
            text = text[:start] + replacements[(start, end)] + text[end:]
    return text


def in_triple_string(text: str, offset: int) -> bool:
    return text.count('"""', 0, offset) % 2 == 1


@st.composite
def relayout(draw, name: str) -> str:
    """A random layout of the canonical text of example ``name`` with the same meaning."""
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))  # one draw: fast to generate
    text = canonical_text(name)
    module = parse_module(name, text, CACHE).module
    odds = rnd.random()
    subset = lambda items: [x for x in items if rnd.random() < odds]  # noqa: E731
    replacements: dict[tuple[int, int], str] = {}
    for gap in subset(item_gaps(module, text, NEWLINE_SEPARATED)):
        if text[gap[0] : gap[1]].count("\n") == 1:
            replacements[gap] = rnd.choice([", ", ",", " ,  "])
    for gap in subset(item_gaps(module, text, COMMA_SEPARATED)):
        if "\n" not in text[gap[0] : gap[1]]:
            replacements[gap] = rnd.choice([",\n", " ,\n", ",\n\n"])
    for gap in subset(colon_gaps(module)):
        replacements[gap] = rnd.choice([":", ":   ", ":\t", ":\n"])
    wrapped = subset(expressions(module.decls))
    opens = Counter(e.span.start for e in wrapped)
    closes = Counter(e.span.end for e in wrapped)
    return relayout_lines(rnd, apply_edits(text, replacements, opens, closes))


def relayout_lines(rnd, text: str) -> str:
    """Random indentation, trailing spaces and extra blank lines, outside triple-quoted strings
    (whose lines all move by the same amount, which keeps the string's value)."""
    string_shift = " " * rnd.randint(0, 4)
    out, offset = [], 0
    for line in text.split("\n"):
        start, end = offset, offset + len(line)
        offset = end + 1
        if in_triple_string(text, start):
            out.append(string_shift + line if line.strip() else line)
            continue
        body = line.strip()
        starts_declaration = not line[:1].isspace() and DECL_START.match(body)
        indent = "" if starts_declaration or not body else rnd.choice(INDENTS)
        tail = "" if in_triple_string(text, end) else rnd.choice(["", "", " ", "\t "])
        out.append(indent + body + tail if body else rnd.choice(["", "  "]))
        opens_container = body.endswith(("{", "[", "(")) and "//" not in body
        if (opens_container or not body) and not in_triple_string(text, end) and rnd.random() < 0.5:
            out.append("")
    return "\n".join(out)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
@settings(FAST, max_examples=8)
@given(data=st.data())
def test_any_relayout_formats_back_to_the_canonical_text(name, data):
    text = data.draw(relayout(name))
    parsed = parse_module(name, text, CACHE)
    assert not [d for d in parsed.diagnostics if d.is_error], "the re-layout itself should parse"
    assert same_meaning(parsed.module.decls, decls(canonical_text(name)))
    formatted = fmt(text)
    assert formatted == canonical_text(name)
    assert same_meaning(decls(formatted), parsed.module.decls)


# ---- 4. comments are never dropped ----------------------------------------------------------


@st.composite
def commented(draw) -> str:
    """An example with comments added at the ends of lines and on lines of their own."""
    text = example_text(draw(st.sampled_from(EXAMPLE_NAMES)))
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))  # one draw: fast to generate
    odds = rnd.random() / 4
    out, offset = [], 0
    for number, line in enumerate(text.split("\n")):
        start, end = offset, offset + len(line)
        offset = end + 1
        if not in_triple_string(text, start) and rnd.random() < odds:
            out.append(" " * rnd.randint(0, 6) + f"// own line {number}")
        if not in_triple_string(text, end) and line.strip() and rnd.random() < odds:
            line += f" // end of line {number}"
        out.append(line)
    return "\n".join(out)


@settings(FAST, max_examples=30)
@given(commented())
def test_no_comment_is_ever_dropped(text):
    formatted = fmt(text)
    assert comment_texts(formatted) == comment_texts(text)
    for marker in re.findall(r"// (?:own line|end of line) \d+", text):
        assert marker in formatted
    assert fmt(formatted) == formatted
    assert same_meaning(decls(formatted), decls(text))


def test_comment_counts_before_and_after_formatting():
    for name in EXAMPLE_NAMES:
        before = parse_module(name, example_text(name), CACHE).module.comments
        after = parse_module(name, canonical_text(name), CACHE).module.comments
        assert len(after) == len(before) > 0, name


COMMENTED = """\
// file header

label pii // trailing on a declaration
flow f(x: int) -> int { // after the brace
  // leads the budget
  budget: { cost: $1 } // trails the budget, which stays on one line
  let y = x + // inside the expression
    1
  if y > 1 {
    return y // trails the return
    // ends the if block
  }
  let z = g(
    // leads the first argument
    a: 1, // trails the first argument
    b: 2
  )
  return z
  // ends the flow
}
// ends the file
"""

COMMENTED_FORMATTED = """\
// file header

label pii // trailing on a declaration

flow f(x: int) -> int {
  // after the brace
  // leads the budget
  budget: { cost: $1 } // trails the budget, which stays on one line
  // inside the expression
  let y = x + 1
  if y > 1 {
    return y // trails the return
    // ends the if block
  }
  let z = g(
    // leads the first argument
    a: 1, // trails the first argument
    b: 2
  )
  return z
  // ends the flow
}
// ends the file
"""


def test_comments_lead_trail_or_end_their_block():
    assert fmt(COMMENTED) == COMMENTED_FORMATTED
    assert fmt(COMMENTED_FORMATTED) == COMMENTED_FORMATTED


def test_every_comment_is_attached_exactly_once():
    module = parse_module("t.vox", COMMENTED).module
    comments = attach_comments(module, COMMENTED)
    placed = [c for cs in comments.leading.values() for c in cs] + list(comments.trailing.values())
    placed += [c for cs in comments.dangling.values() for c in cs]
    assert sorted(c.span.start for c in placed) == [c.span.start for c in module.comments]


# ---- 5. text with syntax errors is never formatted -------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "flow f( {\n",
        "agent a() -> T {\n  model mini\n}\n",
        "label pii\nmodel m = p/\"x\" { price: $0.0000001 }\n",
        'tool t() -> str { bind: "unterminated }\n',
    ],
)
def test_text_with_syntax_errors_is_not_formatted(text):
    result = format_source(text, "bad.vox")
    assert result.text is None
    assert any(d.is_error and d.code.startswith("V0") for d in result.diagnostics)
    assert all(d.path == "bad.vox" for d in result.diagnostics)


# ---- layout rules ---------------------------------------------------------------------------


def flow_with(statement: str) -> str:
    return f"flow f() {{\n  {statement}\n}}\n"


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("let x = ((a + b)) * c", "let x = (a + b) * c"),
        ("let x = a - (b - c)", "let x = a - (b - c)"),
        ("let x = (a - b) - c", "let x = a - b - c"),
        ("let x = (a == b) == c", "let x = (a == b) == c"),
        ("let x = not (a and b)", "let x = not (a and b)"),
        ("let x = (not a) and b", "let x = not a and b"),
        ("let x = not (a == b)", "let x = not a == b"),
        ("let x = -(a.b)", "let x = -a.b"),
        ("let x = (-a).b", "let x = (-a).b"),
        ("let x = -(a * b)", "let x = -(a * b)"),
        ("let x = (a or b) per day", "let x = a or b per day"),
        ("let x = f((a per day))", "let x = f(a per day)"),
        ("let x = (f)(a)[(0)].b", "let x = f(a)[0].b"),
        ("let x = (for t in (xs) max (n + 1) { t }) ", "let x = for t in xs max n + 1 { t }"),
        ("let x = (for t in xs { t }) + 1", "let x = (for t in xs { t }) + 1"),
        ("let x = a * (b % c)", "let x = a * (b % c)"),
    ],
)
def test_parentheses_only_where_precedence_needs_them(written, canonical):
    assert fmt(flow_with(written)) == flow_with(canonical)


def test_literals_keep_their_source_text():
    text = 'model m = p/"id" {\n  context: 128_000\n  price: { input: $0.0001, output: $3, cached_input: $0.150 }\n  timeout: 2m\n  ratio: 1.50\n  name: "a\\tb"\n}\n'
    assert fmt(text) == text


def test_records_lists_and_arguments_break_past_the_line_width():
    fits = "let x = { a: " + '"' + "x" * 81 + '"' + " }"  # exactly 100 columns with the indentation
    assert len("  " + fits) == LINE_WIDTH
    assert fmt(flow_with(fits)) == flow_with(fits)
    too_long = fits.replace('"x', '"xx')
    assert fmt(flow_with(too_long)) == flow_with(too_long.replace("{ a", "{\n    a").replace('" }', '"\n  }'))


def test_a_call_hugs_its_last_record_argument():
    long_fields = ", ".join(f"field_{i}: {i}" for i in range(12))
    text = flow_with(f"let r = store(id: 1, record: {{ {long_fields} }})")
    lines = fmt(text).splitlines()
    assert lines[1] == "  let r = store(id: 1, record: {"
    assert lines[2:14] == [f"    field_{i}: {i}" for i in range(12)]
    assert lines[14] == "  })"


def test_blank_lines_collapse_to_one_and_vanish_at_block_edges():
    text = "agent a() -> T {\n\n\n  model: m\n\n\n\n  tools: [t]\n  gates: [g]\n\n}\n"
    assert fmt(text) == "agent a() -> T {\n  model: m\n\n  tools: [t]\n  gates: [g]\n}\n"


def test_declarations_are_separated_unless_one_line_of_a_kind():
    text = "label pii\nlabel phi\nenum E { a, b }\nenum F { c }\n\n\n\nlabel x"
    assert fmt(text) == "label pii\nlabel phi\n\nenum E { a, b }\nenum F { c }\n\nlabel x\n"


def test_a_short_for_body_stays_on_one_line():
    assert fmt(flow_with("let r = for t in ts max 3 {\n handle(t) }")) == flow_with("let r = for t in ts max 3 { handle(t) }")
    long_body = "let r = for t in ts max 3 { digest_one(transcript: t) }"
    assert fmt(flow_with(long_body)) == flow_with(
        "let r = for t in ts max 3 {\n    digest_one(transcript: t)\n  }"
    )


def test_prompts_are_reindented_to_their_member():
    text = 'agent a() -> T {\n  prompt: """\n          Hello {name},\n            indented\n\n          bye\n      """\n}\n'
    formatted = fmt(text)
    assert formatted == 'agent a() -> T {\n  prompt: """\n    Hello {name},\n      indented\n\n    bye\n  """\n}\n'
    assert decls(formatted)[0].members[0].value.value == decls(text)[0].members[0].value.value


def test_single_line_and_irregular_triple_strings_are_kept_as_written():
    text = 'agent a() -> T {\n  note: """one line"""\n  other: """first\n     second"""\n}\n'
    assert fmt(text) == text


def test_layout_of_statements_gates_and_tests():
    text = (
        'gate g(t: T) { check t.x >= 0.5 else retry(1), check receipts_ok else halt }\n'
        "flow f(x: int) -> int { par { let a = 1, let b = 2 }, if a > b { return a } else if a < b "
        "{ return b } else { return 0 } }\n"
        'test "t" { flow: f, mock m: [call t(a: 1), reply { a: 1 }], mock n: reply "x" }\n'
    )
    assert fmt(text) == (
        "gate g(t: T) {\n  check t.x >= 0.5 else retry(1)\n  check receipts_ok else halt\n}\n\n"
        "flow f(x: int) -> int {\n  par {\n    let a = 1\n    let b = 2\n  }\n  if a > b {\n    return a\n"
        "  } else if a < b {\n    return b\n  } else {\n    return 0\n  }\n}\n\n"
        'test "t" {\n  flow: f\n  mock m: [\n    call t(a: 1),\n    reply { a: 1 }\n  ]\n  mock n: reply "x"\n}\n'
    )


def test_types_and_parameters():
    text = "type T = { a: str?   @pii, b: list[ Receipt[ t ] ]?, c: int @pii @phi }\ntool t( a : int , ) -> list[str] { effect: read }"
    assert fmt(text) == (
        "type T = {\n  a: str? @pii\n  b: list[Receipt[t]]?\n  c: int @pii @phi\n}\n\n"
        "tool t(a: int) -> list[str] {\n  effect: read\n}\n"
    )


def test_empty_input_formats_to_empty_text():
    assert fmt("") == ""
    assert fmt("\n\n  \n") == ""
    assert fmt("// only a comment") == "// only a comment\n"


# ---- precedence round trip ------------------------------------------------------------------

ATOMS = st.sampled_from(["a", "b.c", "1", "2_000", "$0.15", "5s", '"s"', "true", "none", "f(x)", "[1, 2]"])
BINARY_OPS = ["or", "and", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%"]


def expression_source(depth: int):
    """Random expressions, fully parenthesised so that any tree can be written."""
    if depth == 0:
        return ATOMS
    sub = expression_source(depth - 1)
    return st.one_of(
        ATOMS,
        st.builds(lambda a, op, b: f"({a} {op} {b})", sub, st.sampled_from(BINARY_OPS), sub),
        st.builds(lambda a: f"(not {a})", sub),
        st.builds(lambda a: f"(-{a})", sub),
        st.builds(lambda a: f"({a}).f", sub),
        st.builds(lambda a, b: f"({a})[{b}]", sub, sub),
        st.builds(lambda a, b: f"g({a}, k: {b})", sub, sub),
        st.builds(lambda a: f"({a} per minute)", sub),
        st.builds(lambda a, b: f"(for t in ({a}) max ({b}) {{ t }})", sub, sub),
    )


@settings(FAST, max_examples=150)
@given(expression_source(4))
def test_printed_expressions_parse_back_to_the_same_tree(source):
    text = flow_with(f"let x = {source}")
    formatted = fmt(text)
    assert decls(formatted) == decls(text)
    assert fmt(formatted) == formatted
