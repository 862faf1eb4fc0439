"""Syntax error messages in words, with specific codes for common mistakes.

Two layers. First, ``EXAMPLES``: a table of small wrong programs, each with the code and message
it must produce. As in lark's ``match_examples``, each example is parsed once to learn the parser
state and token where it fails; an error that fails in the same state on the same kind of token
gets that example's code. Second, rules over the expected tokens (a missing separator, `=` for
`:`, a missing return type) catch the same mistakes in states no example reached. Everything else
is V0002, "expected X, found Y", with X and Y in words and never lark's token names.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from vox.compiler.diagnostics.model import Diagnostic, Severity, replace_fix
from vox.compiler.names import closest
from vox.compiler.source import Span
from vox.compiler.syntax.scan import DECL_KEYWORDS


@dataclass(frozen=True)
class SyntaxExample:
    code: str
    message: str
    help: str
    source: str  # one declaration that fails where the mistake is


EXAMPLES: tuple[SyntaxExample, ...] = (
    SyntaxExample(
        "V0010",
        "missing `:` between a member's key and its value",
        "write the member as `key: value`",
        'agent a(x: str) -> str {\n  model mini\n}\n',
    ),
    SyntaxExample(
        "V0010",
        "missing `:` between a member's key and its value",
        "write the member as `key: value`",
        'provider p = openai {\n  key env("K")\n}\n',
    ),
    SyntaxExample(
        "V0011",
        "members are written `key: value`, not `key = value`",
        "replace `=` with `:`",
        'agent a(x: str) -> str {\n  model = mini\n}\n',
    ),
    SyntaxExample(
        "V0011",
        "members are written `key: value`, not `key = value`",
        "replace `=` with `:`",
        'flow f() {\n  budget = { cost: $1 }\n}\n',
    ),
    SyntaxExample(
        "V0012",
        "missing return type: write `-> Type` after the parameters",
        "add the type of the result, for example `-> str`",
        'agent a(x: str) {\n  model: mini\n}\n',
    ),
    SyntaxExample(
        "V0012",
        "missing return type: write `-> Type` after the parameters",
        "add the type of the result, for example `-> str`",
        'tool t(x: str) {\n  effect: read\n}\n',
    ),
    SyntaxExample(
        "V0013",
        "`=` binds a name; use `==` to compare",
        "replace `=` with `==`",
        'flow f(x: int) -> int {\n  if x = 1 { return 1 }\n  return 0\n}\n',
    ),
    SyntaxExample(
        "V0014",
        "two items on one line need a comma or a line break between them",
        "put a `,` or a new line before this item",
        'agent a(x: str) -> str { model: mini prompt: "x" }\n',
    ),
    SyntaxExample(
        "V0014",
        "two items on one line need a comma or a line break between them",
        "put a `,` or a new line before this item",
        'agent a(x: str) -> str { budget: { steps: 1 tokens: 2 } }\n',
    ),
    SyntaxExample(
        "V0014",
        "two items on one line need a comma or a line break between them",
        "put a `,` or a new line before this item",
        'agent a(x: str) -> str { prompt: "a" model: mini }\n',
    ),
    SyntaxExample(
        "V0017",
        "a parameter needs a type: write `name: Type`",
        "add `: Type` after the parameter's name",
        'agent a(x) -> str {\n  model: mini\n}\n',
    ),
    SyntaxExample(
        "V0018",
        "arguments are separated by commas",
        "put a `,` before this item",
        'flow f() {\n  g(a: 1 b: 2)\n}\n',
    ),
)

# Words from other languages, found where Vox expects something else.
FOREIGN_WORDS: dict[str, tuple[str, str]] = {
    "elif": ("Vox writes `else if`", "else if"),
    "elsif": ("Vox writes `else if`", "else if"),
    "while": ("loops are `for x in xs max N { ... }`", ""),
    "function": ("declare a `flow` (deterministic code) or an `agent` (a model call)", "flow"),
    "def": ("declare a `flow` (deterministic code) or an `agent` (a model call)", "flow"),
    "fn": ("declare a `flow` (deterministic code) or an `agent` (a model call)", "flow"),
    "func": ("declare a `flow` (deterministic code) or an `agent` (a model call)", "flow"),
    "var": ("bind names with `let`", "let"),
    "const": ("bind names with `let`", "let"),
    "struct": ("declare records with `type Name = { ... }`", "type"),
    "class": ("declare records with `type Name = { ... }`", "type"),
    "import": ("imports are not part of the language yet; declare everything in one file", ""),
}

_EXPRESSION_STARTS = {"NAME", "INT", "FLOAT", "MONEY", "DURATION", "STRING", "LONG_STRING"}
_TERMINAL_WORDS = {
    "NAME": "a name",
    "INT": "a number",
    "FLOAT": "a number",
    "MONEY": "an amount like `$0.05`",
    "DURATION": "a duration like `5s`",
    "STRING": "a string",
    "LONG_STRING": "a string",
    "_NL": "a line break",
    "$END": "the end of the declaration",
    "OPTIONAL": "`?`",
}


def _terminal_word(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    from vox.compiler.syntax.parser import lark_parser

    try:
        pattern = lark_parser().get_terminal(name).pattern
    except KeyError:
        return name.lower()
    return f"`{pattern.value}`"


def expected_in_words(expected: set[str]) -> str:
    """A short English list of what the parser accepts next.

    >>> expected_in_words({"COLON"})
    '`:`'
    >>> expected_in_words({"NAME", "RBRACE"})
    'a name or `}`'
    """
    names = set(expected)
    words: list[str] = []
    if {"NAME", "INT", "STRING"} <= names:
        words.append("an expression")
        names -= _EXPRESSION_STARTS | {"LPAR", "LSQB", "LBRACE", "MINUS", "NOT", "TRUE", "FALSE", "NONE", "FOR"}
    if "LONG_STRING" in names and "STRING" in names:
        names.discard("LONG_STRING")
    if "FLOAT" in names and "INT" in names:
        names.discard("FLOAT")
    if names & {"_NL", "COMMA"} and len(names) > 6:
        # after a complete expression almost anything may follow; say the useful part
        keep = [n for n in ("COMMA", "RBRACE", "RPAR", "RSQB") if n in names]
        words.append("a line break")
        names = set(keep)
    words.extend(sorted((_terminal_word(n) for n in names), key=_word_order))
    words = list(dict.fromkeys(words))
    if len(words) > 6:
        words = words[:6] + ["..."]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _word_order(word: str) -> tuple[int, str]:
    return (0 if not word.startswith("`") else 1, word)


def _found_in_words(e: UnexpectedInput) -> str:
    if isinstance(e, UnexpectedCharacters):
        return f"`{e.char}`"
    if isinstance(e, UnexpectedEOF):
        return "the end of the declaration"
    tok = e.token
    if tok.type == "$END":
        return "the end of the declaration"
    if tok.type == "_NL":
        return "a line break"
    if tok.type == "NAME":
        return f"the name `{tok}`"
    if tok.type in ("STRING", "LONG_STRING"):
        return "a string"
    if tok.type in ("INT", "FLOAT", "MONEY", "DURATION"):
        return f"`{tok}`"
    if str(tok).isidentifier():
        return f"the keyword `{tok}`"
    return f"`{tok}`"


@functools.cache
def _example_states() -> dict[tuple[int, str], SyntaxExample]:
    """Parse every example once and remember the (state, token type) where it fails."""
    from vox.compiler.syntax.parser import lark_parser

    table: dict[tuple[int, str], SyntaxExample] = {}
    for example in EXAMPLES:
        try:
            lark_parser().parse(example.source, start="chunk")
        except UnexpectedToken as e:
            table.setdefault((e.state.position if hasattr(e.state, "position") else e.state, e.token.type), example)
        except UnexpectedInput:
            pass
    return table


def example_for(e: UnexpectedInput) -> SyntaxExample | None:
    if not isinstance(e, UnexpectedToken):
        return None
    state = e.state.position if hasattr(e.state, "position") else e.state
    return _example_states().get((state, e.token.type))


def describe_syntax_error(e: UnexpectedInput, text: str, offset: int, keyword: str | None) -> Diagnostic:
    """One diagnostic for a syntax error; spans are relative to ``text`` (one declaration)."""

    def diag(code, message, span, help=None, fix=None, notes=()):
        return Diagnostic(code, Severity.ERROR, message, "", span, help=help, fix=fix, notes=tuple(notes))

    if keyword is None:
        return _not_a_declaration(text, diag)

    if isinstance(e, UnexpectedCharacters):
        return _bad_character(e, text, diag)

    tok = e.token if isinstance(e, UnexpectedToken) else None
    expected = set(getattr(e, "expected", ()) or ())
    found = _found_in_words(e)
    if tok is None or tok.type == "$END" or isinstance(e, UnexpectedEOF):
        opener = _unclosed_bracket(text)
        if opener is not None:
            pos, char = opener
            close = {"{": "}", "(": ")", "[": "]"}[char]
            return diag(
                "V0003",
                f"this `{char}` is never closed",
                Span(pos, pos + 1),
                help=f"add `{close}` where it should end",
            )
        return diag(
            "V0002",
            f"the declaration ends too early: expected {expected_in_words(expected)}",
            Span(offset, offset),
        )

    span = Span(tok.start_pos, tok.end_pos)
    if tok.type == "NAME" and str(tok) in FOREIGN_WORDS:
        advice, _ = FOREIGN_WORDS[str(tok)]
        return diag("V0016", f"`{tok}` is not a Vox keyword: {advice}", span, help=advice)

    if tok.type == "NAME" and tok.start_pos > 0 and text[tok.start_pos - 1].isdigit():
        return diag(
            "V0006",
            f"unknown duration unit `{tok}`",
            span,
            help="durations are written with ms, s, m, h or d, as in `250ms`, `5s` or `2m`",
        )

    if tok.type in _EXPRESSION_STARTS | {"LBRACE"} and ({"_NL", "COMMA"} & expected) and expected != {"COLON"}:
        bracket = _innermost_bracket(text, tok.start_pos)
        if bracket in ("(", "["):
            what = "arguments" if bracket == "(" else "list items"
            return diag("V0018", f"{what} are separated by commas", span, help="put a `,` before this item",
                        fix=_after_previous_fix(text, span, ","))
        return diag("V0014", "two items on one line need a comma or a line break between them", span,
                    help="put a `,` or a new line before this item", fix=_after_previous_fix(text, span, ","))

    example = example_for(e)
    if example is not None:
        return diag(example.code, example.message, span, help=example.help, fix=_fix_for(example.code, span, text))

    if tok.type == "EQUAL" and "COLON" in expected:
        return diag("V0011", "members are written `key: value`, not `key = value`", span,
                    help="replace `=` with `:`", fix=_fix_for("V0011", span, text))
    if tok.type == "EQUAL" and ("EQUAL" not in expected) and ({"LBRACE", "_NL"} & expected):
        return diag("V0013", "`=` binds a name; use `==` to compare", span, help="replace `=` with `==`",
                    fix=_fix_for("V0013", span))
    if tok.type == "LBRACE" and _arrow_expected(expected):
        return diag("V0012", "missing return type: write `-> Type` after the parameters", span,
                    help="add the type of the result, for example `-> str`")
    if expected == {"COLON"}:
        return diag("V0010", "missing `:` between a member's key and its value", span,
                    help="write the member as `key: value`", fix=_after_previous_fix(text, span, ":"))
    return diag("V0002", f"expected {expected_in_words(expected)}, found {found}", span)


def _arrow_expected(expected: set[str]) -> bool:
    from vox.compiler.syntax.parser import lark_parser

    for name in expected:
        try:
            if lark_parser().get_terminal(name).pattern.value == "->":
                return True
        except (KeyError, AttributeError):
            continue
    return False


def _after_previous_fix(text: str, span: Span, insert: str):
    """Insert ``insert`` right after the token before ``span`` (before any spaces)."""
    end_of_previous = len(text[: span.start].rstrip())
    return replace_fix(f"insert `{insert}`", Span(end_of_previous, end_of_previous), insert)


def _fix_for(code: str, span: Span, text: str = ""):
    if code == "V0011":
        start = len(text[: span.start].rstrip()) if text else span.start  # `key = v` becomes `key: v`
        return replace_fix("replace `=` with `:`", Span(start, span.end), ":")
    if code == "V0013":
        return replace_fix("replace `=` with `==`", span, "==")
    if code == "V0010" and text:
        return _after_previous_fix(text, span, ":")
    if code == "V0014" and text:
        return _after_previous_fix(text, span, ",")
    return None


def _bad_character(e: UnexpectedCharacters, text: str, diag) -> Diagnostic:
    pos = e.pos_in_stream
    char = e.char
    if char == "'":
        end = text.find("'", pos + 1)
        line_end = text.find("\n", pos)
        if end != -1 and (line_end == -1 or end < line_end):
            inner = text[pos + 1 : end]
            return diag("V0004", "strings are written with double quotes", Span(pos, end + 1),
                        help=f'write "{inner}"', fix=replace_fix("use double quotes", Span(pos, end + 1), f'"{inner}"'))
        return diag("V0004", "strings are written with double quotes", Span(pos, pos + 1), help='use "..."')
    if char == '"':
        line_end = text.find("\n", pos)
        line_end = len(text) if line_end == -1 else line_end
        if text.startswith('"""', pos):
            return diag("V0005", "this string is never closed", Span(pos, pos + 3),
                        help='end the string with `"""`')
        return diag("V0005", "this string is never closed", Span(pos, line_end),
                    help='end the string with `"` on the same line, or use `"""` for text over several lines')
    if char == "$":
        return diag("V0001", "money is written `$` followed by digits, as in `$0.05`", Span(pos, pos + 1),
                    help="write the amount right after `$`")
    return diag("V0001", f"unexpected character `{char}`", Span(pos, pos + 1),
                help="remove it; comments start with `//`" if char in "#;" else None)


def _not_a_declaration(text: str, diag) -> Diagnostic:
    stripped = text.lstrip()
    start = len(text) - len(stripped)
    word = stripped.split(None, 1)[0] if stripped else ""
    word = word.split("(")[0].split("{")[0]
    end = start + max(len(word), 1)
    if word in FOREIGN_WORDS:
        advice, _ = FOREIGN_WORDS[word]
        return diag("V0016", f"`{word}` is not a Vox keyword: {advice}", Span(start, end), help=advice)
    guess = closest(word, DECL_KEYWORDS) if word.isidentifier() else None
    help = f"did you mean `{guess}`?" if guess else "a file is a list of declarations: " + ", ".join(
        f"`{k}`" for k in DECL_KEYWORDS
    )
    fix = replace_fix(f"replace with `{guess}`", Span(start, end), guess) if guess else None
    return diag("V0015", "expected a declaration", Span(start, end), help=help, fix=fix,
                notes=("a declaration starts at the beginning of a line",))


def _unclosed_bracket(text: str) -> tuple[int, str] | None:
    from vox.compiler.syntax.parser import _structure

    stack: list[tuple[int, str]] = []
    for kind, start, _end in _structure(text):
        if kind in "{([":
            stack.append((start, kind))
        elif kind in "})]" and stack:
            stack.pop()
    return stack[-1] if stack else None


def _innermost_bracket(text: str, offset: int) -> str | None:
    from vox.compiler.syntax.parser import _structure

    stack: list[str] = []
    for kind, start, _end in _structure(text):
        if start >= offset:
            break
        if kind in "{([":
            stack.append(kind)
        elif kind in "})]" and stack:
            stack.pop()
    return stack[-1] if stack else None
