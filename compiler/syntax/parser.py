"""The lark boundary: source text in, AST and syntax diagnostics out.

This is the only module that imports lark. A file is split into declarations (see
:mod:`.scan`) and each is parsed on its own with the ``chunk`` start rule. On a syntax error the
parser reports one diagnostic, blanks out the smallest enclosing item (a member, statement,
record field or argument, keeping line breaks so every later position is unchanged) and parses
the declaration again, so one mistake yields one diagnostic and the rest still parses.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from vox.compiler import limits
from vox.compiler.diagnostics.model import Diagnostic, DiagnosticSink, Severity, replace_fix
from vox.compiler.source import Span
from vox.compiler.syntax import ast
from vox.compiler.syntax.errors import describe_syntax_error
from vox.compiler.syntax.literals import (
    decode_duration,
    decode_float,
    decode_int,
    decode_money,
    decode_string,
    number_problem,
)
from vox.compiler.syntax.scan import COMMENT, LONG_STRING, Chunk, Region, code_spans, regions, scan

MAX_RECOVERIES_PER_DECL = 24


class _Layout:
    """Drops newline tokens inside ( ) and [ ]: there a newline never separates anything.

    The contextual lexer already turns most such newlines into whitespace; this catches the
    states that LALR merged with one where a newline is a separator.
    """

    always_accept = ()

    def process(self, stream):
        stack: list[str] = []
        for tok in stream:
            kind = tok.type
            if kind == "_NL":
                if stack and stack[-1] != "LBRACE":
                    continue
            elif kind in ("LPAR", "LSQB", "LBRACE"):
                stack.append(kind)
            elif kind in ("RPAR", "RSQB", "RBRACE"):
                if stack:
                    stack.pop()
            yield tok


def grammar_text() -> str:
    return resources.files("vox.lang").joinpath("grammar/vox.lark").read_text(encoding="utf-8")


@functools.cache
def lark_parser() -> Lark:
    """The shared, immutable LALR parser (built once per process)."""
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        start=["start", "chunk"],
        postlex=_Layout(),
        cache=True,  # grammar analysis cached in the temp dir, keyed by grammar and options
    )


@dataclass(frozen=True, slots=True)
class ParsedDecl:
    """One declaration's parse, relative to the start of its chunk (so it can be cached)."""

    decl: ast.Decl | None
    diagnostics: tuple[Diagnostic, ...]  # spans relative to the chunk start, path ""
    broken_name: str | None  # the declared name, when a syntax error hid the whole declaration
    had_errors: bool


@dataclass(frozen=True, slots=True)
class ParseResult:
    module: ast.Module
    diagnostics: tuple[Diagnostic, ...]
    broken_names: frozenset[str]  # names declared by declarations that did not parse at all
    decls_with_errors: frozenset[int]  # indexes into module.decls of declarations with errors


class DeclCache:
    """Parses of declarations keyed by their exact text, shared by the CLI and the LSP."""

    def __init__(self, limit: int = 20_000):
        self._items: dict[str, ParsedDecl] = {}
        self._placed: dict[tuple[str, int], ast.Decl] = {}  # (key, offset) -> the decl moved there
        self._limit = limit

    def placed(self, text: str, offset: int, parsed: ParsedDecl) -> ast.Decl:
        """``parsed.decl`` with its spans moved to ``offset``, reused while the text stays there."""
        key = (_key(text), offset)
        decl = self._placed.get(key)
        if decl is None:
            if len(self._placed) >= self._limit:
                self._placed.clear()
            decl = self._placed[key] = shift_spans(parsed.decl, offset)
        return decl

    def get(self, text: str) -> ParsedDecl | None:
        return self._items.get(_key(text))

    def put(self, text: str, parsed: ParsedDecl) -> None:
        if len(self._items) >= self._limit:
            self._items.clear()
        self._items[_key(text)] = parsed


def _key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def parse_module(path: str, text: str, cache: DeclCache | None = None) -> ParseResult:
    """Parse a whole file. Never raises on bad input; problems become diagnostics."""
    if len(text) > limits.MAX_SOURCE_CHARS:
        return _too_large(path, text)
    diagnostics: list[Diagnostic] = _invalid_characters(path, text)
    if diagnostics:
        # reported; the rest of the file is read with U+FFFD in their place (one code point for one)
        text = limits.SURROGATE.sub("\ufffd", text)
    scanned = scan(text)
    decls: list[ast.Decl] = []
    broken: set[str] = set()
    with_errors: set[int] = set()
    for chunk in scanned.chunks:
        chunk_text = text[chunk.start : chunk.end]
        parsed = cache.get(chunk_text) if cache is not None else None
        if parsed is None:
            parsed = parse_chunk(chunk_text, chunk.keyword)
            if cache is not None:
                cache.put(chunk_text, parsed)
        for d in parsed.diagnostics:
            diagnostics.append(_relocate(d, path, chunk.start))
        if parsed.broken_name:
            broken.add(parsed.broken_name)
        if parsed.decl is not None:
            if parsed.had_errors:
                with_errors.add(len(decls))
            if not chunk.start:
                decls.append(parsed.decl)
            elif cache is not None:
                decls.append(cache.placed(chunk_text, chunk.start, parsed))
            else:
                decls.append(shift_spans(parsed.decl, chunk.start))
    comments = tuple(ast.Comment(text[c.start : c.end], c.span) for c in scanned.comments)
    module = ast.Module(path, tuple(decls), comments, Span(0, len(text)))
    return ParseResult(module, tuple(diagnostics), frozenset(broken), frozenset(with_errors))


def _too_large(path: str, text: str) -> ParseResult:
    """A file over the size limit is not read at all: one V0021 where the limit is passed."""
    at = limits.MAX_SOURCE_CHARS
    diagnostic = Diagnostic(
        "V0021", Severity.ERROR,
        f"this file has {len(text):_} characters, more than the {limits.MAX_SOURCE_CHARS:_} a file may have",
        path, Span(at, at + 1),
        notes=("the file is not checked any further",),
        help="a program this large is most likely generated: generate less, or keep the data in a tool",
    )
    module = ast.Module(path, (), (), Span(0, len(text)))
    return ParseResult(module, (diagnostic,), frozenset(), frozenset())


def _invalid_characters(path: str, text: str) -> list[Diagnostic]:
    """V0025 at each lone surrogate: text with one cannot be written as UTF-8 (it comes from
    bytes decoded with ``surrogateescape``, or from an editor's broken UTF-16)."""
    out = []
    for m in limits.SURROGATE.finditer(text):
        out.append(Diagnostic(
            "V0025", Severity.ERROR,
            f"U+{ord(m.group()):04X} is half of a UTF-16 surrogate pair, not a character",
            path, Span(m.start(), m.end()),
            help="remove it; a file must be valid UTF-8 text",
            fix=replace_fix("remove it", Span(m.start(), m.end()), ""),
        ))
        if len(out) == 20:  # enough to say what is wrong
            break
    return out


def parse_chunk(text: str, keyword: str | None) -> ParsedDecl:
    """Parse one declaration's text, recovering from syntax errors by blanking items."""
    sink = DiagnosticSink("")
    work, had_errors = _mend_keyword(text, keyword, sink)
    if work is None:
        return ParsedDecl(None, _clamped(sink.items, len(text)), _declared_name(text, keyword), True)
    reported: set[int] = set()
    mended = False
    for _ in range(MAX_RECOVERIES_PER_DECL):
        if not work.strip() or _only_comments(work):
            return ParsedDecl(None, _clamped(sink.items, len(text)), None, had_errors)
        try:
            tree = lark_parser().parse(work, start="chunk")
        except UnexpectedInput as e:
            had_errors = True
            if not mended:
                # Only now look for unclosed strings and brackets: clean text never pays for it.
                mended = True
                before = work
                work, swallowed = _mend_unterminated_string(work, sink)
                # brackets swallowed by a string that never ends are that string's fault
                work, _ = _mend_brackets(work, DiagnosticSink("") if swallowed else sink)
                if work != before:
                    continue
            continuation = _continuation_region(work, e)
            if continuation is not None:
                start, end, ending = continuation
                sink.items.append(
                    Diagnostic(
                        "V0020",
                        Severity.ERROR,
                        f"this line ends with `{work[ending.start:ending.end]}`, so the next line was read as its continuation",
                        "",
                        ending,
                        help="finish the expression on this line",
                    )
                )
            else:
                offset = _error_offset(e, work)
                if offset not in reported:
                    reported.add(offset)
                    sink.items.append(describe_syntax_error(e, work, offset, keyword))
                region = recovery_region(work, offset)
                if region is None:
                    return ParsedDecl(None, _clamped(sink.items, len(text)), _declared_name(text, keyword), True)
                start, end = region
            work = work[:start] + _blank(work[start:end]) + work[end:]
            continue
        try:
            decl = _AstBuilder(sink).build(tree).children[0]
        except _NestedTooDeeply as deep:
            sink.items.append(deep.diagnostic())
            return ParsedDecl(None, _clamped(sink.items, len(text)), _declared_name(text, keyword), True)
        if len(work) > len(text):  # a closing brace was appended: keep spans inside the text
            decl = shift_spans(decl, 0, len(text))
        return ParsedDecl(decl, _clamped(sink.items, len(text)), None, had_errors)
    return ParsedDecl(None, _clamped(sink.items, len(text)), _declared_name(text, keyword), True)


def _mend_keyword(text: str, keyword: str | None, sink: DiagnosticSink) -> tuple[str | None, bool]:
    """A declaration whose keyword is misspelled (`agnet`): report it and, when the spelling
    has the keyword's length, parse it as the keyword so the rest is still checked."""
    if keyword is None:
        return text, False
    stripped = text.lstrip(" \t\r\n\f\ufeff")
    start = len(text) - len(stripped)
    word = stripped.split(None, 1)[0].split("(")[0] if stripped else ""
    if word == keyword:
        return text, False
    span = Span(start, start + len(word))
    sink.items.append(
        Diagnostic(
            "V0015",
            Severity.ERROR,
            f"`{word}` is not a declaration keyword",
            "",
            span,
            help=f"did you mean `{keyword}`?",
            fix=replace_fix(f"replace with `{keyword}`", span, keyword),
        )
    )
    if len(word) != len(keyword):
        return None, True
    return text[:start] + keyword + text[start + len(word) :], True


def _mend_unterminated_string(text: str, sink: DiagnosticSink) -> tuple[str, bool]:
    """A triple-quoted string that never ends swallows the rest of the declaration: report it
    once and blank it, so its brackets are not reported as unbalanced one by one."""
    for region in _regions(text):
        if region.kind == LONG_STRING and not region.closed:
            start = region.start
            sink.items.append(
                Diagnostic("V0005", Severity.ERROR, "this string is never closed", "", Span(start, start + 3),
                           help='end the string with `"""`')
            )
            # `""` plus a space keeps the value an (empty) string and every position in place
            return text[:start] + '"" ' + _blank(text[start + 3 :]), True
    return text, False


@functools.lru_cache(maxsize=64)
def _regions(text: str) -> tuple[Region, ...]:
    """The strings and comments of a declaration's text (recovery asks about one text often)."""
    return regions(text)


def _mend_brackets(text: str, sink: DiagnosticSink) -> tuple[str, bool]:
    """Report each unclosed or unmatched bracket once and mend the text around it.

    An unclosed bracket is taken to end before the first later line indented no deeper than the
    line that opened it; that stretch is blanked (or, for the declaration's own body, a closing
    `}` is appended at the very end, which moves no position).
    """
    changed = False
    for _ in range(MAX_RECOVERIES_PER_DECL):
        problem = _first_unbalanced(text)
        if problem is None:
            return text, changed
        before = text
        changed = True
        kind, pos = problem
        if kind in "})]":
            sink.items.append(
                Diagnostic("V0019", Severity.ERROR, f"this `{kind}` closes nothing", "", Span(pos, pos + 1),
                           help=f"remove it, or add the `{_OPENER[kind]}` it was meant to close")
            )
            text = text[:pos] + " " + text[pos + 1 :]
            continue
        close = _CLOSER[kind]
        sink.items.append(
            Diagnostic("V0003", Severity.ERROR, f"this `{kind}` is never closed", "", Span(pos, pos + 1),
                       help=f"add `{close}` where it should end")
        )
        line_start = text.rfind("\n", 0, pos) + 1
        if kind == "{" and _is_outermost(text, pos):
            text = text.rstrip() + "\n}"
        else:
            end = _end_by_indentation(text, pos)
            end = len(text) if end is None else end
            text = text[:line_start] + _blank(text[line_start:end]) + text[end:]
        if text == before:
            break
    return text, changed


_CLOSER = {"{": "}", "(": ")", "[": "]"}
_OPENER = {v: k for k, v in _CLOSER.items()}


def _first_unbalanced(text: str) -> tuple[str, int] | None:
    stack: list[tuple[str, int]] = []
    for kind, start, _end in _structure(text):
        if kind in "{([":
            stack.append((kind, start))
        elif kind in "})]":
            if stack and stack[-1][0] == _OPENER[kind]:
                stack.pop()
            elif any(k == _OPENER[kind] for k, _ in stack):
                return stack[-1]
            else:
                return kind, start
    return stack[-1] if stack else None


def _is_outermost(text: str, pos: int) -> bool:
    """Whether the `{` at ``pos`` is the declaration's own body (its first brace)."""
    return next((start for kind, start, _ in _structure(text) if kind == "{"), None) == pos


def _indent(text: str, line_start: int) -> int:
    i = line_start
    while i < len(text) and text[i] in " \t":
        i += 1
    return i - line_start


def _end_by_indentation(text: str, pos: int) -> int | None:
    """Start of the first line after ``pos``'s line indented no deeper than it, or None.

    Blank lines and lines that start with `//` do not count. This goes by layout alone, not by
    where the scanner finds strings: a stray quote is as likely a cause of the error as the
    bracket, and the indentation is what the author meant."""
    line_start = text.rfind("\n", 0, pos) + 1
    base = _indent(text, line_start)
    nl = text.find("\n", pos)
    while nl != -1:
        start = nl + 1
        nl = text.find("\n", start)
        stripped = text[start : len(text) if nl == -1 else nl].strip()
        if stripped and not stripped.startswith("//") and _indent(text, start) <= base:
            return start
    return None


_CONTINUATION_ENDINGS = ("+", "-", "*", "/", "%", "=", ",", ":", "(", "[", "<", ">", "->", " and", " or", " not")
_LINE_STARTERS = ("let ", "if ", "return", "par ", "check ", "mock ")


def _continuation_region(text: str, e: UnexpectedInput) -> tuple[int, int, Span] | None:
    """When a line ends with an operator, the next line is read as its continuation and the
    error shows up there; blank the unfinished line instead."""
    if not isinstance(e, UnexpectedToken) or e.token.start_pos is None:
        return None
    line_start = text.rfind("\n", 0, e.token.start_pos) + 1
    prev_end = line_start - 1
    if prev_end <= 0:
        return None
    prev_start = text.rfind("\n", 0, prev_end) + 1
    prev = text[prev_start:_comment_start(text, prev_start, prev_end)].rstrip()
    line = text[line_start:].lstrip()
    if prev.endswith(_CONTINUATION_ENDINGS) and (line.startswith(_LINE_STARTERS) or _is_member_line(line)):
        ending = next(x for x in _CONTINUATION_ENDINGS if prev.endswith(x)).strip()
        end = prev_start + len(prev)
        return prev_start, prev_end, Span(end - len(ending), end)
    return None


def _comment_start(text: str, start: int, end: int) -> int:
    """Where the comment on the line ``text[start:end]`` starts (``end`` when it has none)."""
    for region in _regions(text):
        if region.kind == COMMENT and start <= region.start < end:
            return region.start
    return end


def _is_member_line(line: str) -> bool:
    head, colon, _ = line.partition(":")
    return bool(colon) and head.strip().isidentifier()


def _clamped(diagnostics, limit: int) -> tuple[Diagnostic, ...]:
    """Diagnostics with spans cut off at ``limit`` (text appended while mending has no place)."""
    from dataclasses import replace

    out = []
    for d in diagnostics:
        if d.span.end > limit:
            d = replace(d, span=Span(min(d.span.start, limit), limit), fix=None)
        out.append(d)
    return tuple(out)


def _only_comments(text: str) -> bool:
    found = _regions(text)
    if any(r.kind != COMMENT for r in found):
        return False
    return not any(text[s:e].strip() for s, e in code_spans(text, found))


def _error_offset(e: UnexpectedInput, text: str) -> int:
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END" or tok.start_pos is None:
            return len(text.rstrip())
        return tok.start_pos
    if isinstance(e, UnexpectedCharacters):
        return e.pos_in_stream
    if isinstance(e, UnexpectedEOF):
        return len(text.rstrip())
    return 0


def _blank(text: str) -> str:
    return "".join(c if c in "\r\n" else " " for c in text)


def _declared_name(text: str, keyword: str | None) -> str | None:
    if keyword is None:
        return None
    parts = text.split(None, 2)
    if len(parts) >= 2:
        name = parts[1].split("(")[0].split("{")[0].split("=")[0].strip()
        if name.isidentifier():
            return name
    return None


# ---- recovery -------------------------------------------------------------------------------


def recovery_region(text: str, offset: int) -> tuple[int, int] | None:
    """The item around ``offset`` to blank out: the text between the separators (newline or
    comma) that enclose it inside its innermost bracket, or None at declaration level.

    >>> t = 'agent a() -> T {\\n  model mini\\n  prompt: "x"\\n}'
    >>> s, e = recovery_region(t, t.index("mini"))
    >>> t[s:e]
    '\\n  model mini'
    """
    tokens = _structure(text)
    while True:  # a loop, not recursion: brackets may be nested arbitrarily deep here
        found = _item_around(text, tokens, offset)
        if found is None or isinstance(found, tuple):
            return found
        offset = found  # nothing to remove there: widen to the enclosing bracket's own item


def _item_around(text: str, tokens, offset: int) -> tuple[int, int] | int | None:
    """:func:`recovery_region`'s step: the item's ``(start, end)``, None at declaration level,
    or the offset of the bracket to widen to when the item is empty."""
    # innermost open bracket before offset
    stack: list[int] = []
    for i, (kind, start, _end) in enumerate(tokens):
        if start >= offset:
            break
        if kind in "{([":
            stack.append(i)
        elif kind in "})]":
            if stack:
                stack.pop()
    if not stack:
        return None
    open_i = stack[-1]
    open_kind = tokens[open_i][0]
    close_kind = {"{": "}", "(": ")", "[": "]"}[open_kind]

    def is_sep(kind: str) -> bool:
        return kind == "," or (kind == "\n" and open_kind == "{")

    # walk back from the error to a separator at this depth
    start = tokens[open_i][2]
    depth = 0
    for kind, s, e in _before(tokens, open_i, offset):
        if kind in "{([":
            depth += 1
        elif kind in "})]":
            depth -= 1
        elif depth == 0 and is_sep(kind):
            start = s
    end = len(text)
    depth = 0
    for kind, s, _e in tokens[open_i + 1 :]:
        if s < offset:
            if kind in "{([":
                depth += 1
            elif kind in "})]":
                depth -= 1
            continue
        if kind in "{([":
            depth += 1
        elif kind in "})]":
            if depth <= 0:
                end = s if kind == close_kind else s
                break
            depth -= 1
        elif depth <= 0 and is_sep(kind) and s > offset:
            end = s
            break
    if not text[start:end].strip(" \t\r\n,"):
        return tokens[open_i][1]
    return start, end


def _before(tokens, open_i, offset):
    for kind, s, e in tokens[open_i + 1 :]:
        if s >= offset:
            break
        yield kind, s, e


@functools.lru_cache(maxsize=64)
def _structure(text: str) -> list[tuple[str, int, int]]:
    """Brackets, commas and newlines of ``text``, skipping strings and comments."""
    out: list[tuple[str, int, int]] = []
    for start, end in code_spans(text, _regions(text)):
        out.extend((m.group(), m.start(), m.end()) for m in _STRUCTURE.finditer(text, start, end))
    return out


_STRUCTURE = re.compile(r"[{}()\[\],\n]")


# ---- spans ----------------------------------------------------------------------------------


def _relocate(d: Diagnostic, path: str, delta: int) -> Diagnostic:
    from dataclasses import replace

    fix = d.fix
    if fix is not None and delta:
        fix = replace(fix, edits=tuple(replace(e, span=e.span.shift(delta)) for e in fix.edits))
    return replace(
        d,
        path=path,
        span=d.span.shift(delta),
        labels=tuple(replace(lb, span=lb.span.shift(delta)) for lb in d.labels),
        fix=fix,
    )


def shift_spans(node, delta: int, limit: int | None = None):
    """A copy of an AST subtree with every span moved by ``delta`` characters (and, with
    ``limit``, cut off there)."""
    if type(node) is tuple:
        return tuple([shift_spans(n, delta, limit) for n in node])
    cls = type(node)
    fields = _FIELDS.get(cls)
    if fields is None:
        dataclass_fields = getattr(cls, "__dataclass_fields__", None)
        if dataclass_fields is None:
            return node
        fields = _FIELDS[cls] = tuple(dataclass_fields)
    # The nodes are frozen dataclasses without __post_init__: filling the slots directly copies
    # them exactly, without the cost of the generated __init__ (this runs for every node of every
    # declaration after an edit, so it is on the language server's hot path).
    new = object.__new__(cls)
    for name in fields:
        value = getattr(node, name)
        if name == "span":
            value = Span(value.start + delta, value.end + delta)
            if limit is not None:
                value = Span(min(value.start, limit), min(value.end, limit))
        elif type(value) is tuple or type(value) in _FIELDS or hasattr(type(value), "__dataclass_fields__"):
            value = shift_spans(value, delta, limit)
        _set(new, name, value)
    return new


_FIELDS: dict[type, tuple[str, ...]] = {}
_set = object.__setattr__


# ---- lark tree -> AST -----------------------------------------------------------------------


def _tok_span(tok: Token) -> Span:
    return Span(tok.start_pos, tok.end_pos)


def _ident(tok: Token) -> ast.Ident:
    return ast.Ident(str(tok), _tok_span(tok))


def _meta_span(meta) -> Span:
    if getattr(meta, "empty", True):
        return Span(0, 0)
    return Span(meta.start_pos, meta.end_pos)


def _opening_span(tree: Tree) -> Span:
    """A node's first character: where a diagnostic about the whole node points (its span may
    cover most of the declaration)."""
    span = _meta_span(tree.meta)
    return Span(span.start, min(span.end, span.start + 1))


_BINARY = {
    "or_op": "or",
    "and_op": "and",
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "add": "+",
    "sub": "-",
    "mul": "*",
    "div": "/",
    "mod": "%",
}


# The rules that are one level of nesting (see limits.MAX_NESTING): every other rule sits between
# two of these a bounded number of times (a call's `args` and `named_arg`, an `if`'s `block`).
_NESTING_RULES = frozenset(_BINARY) | {
    "not_op", "neg", "rate", "field", "call", "index", "list", "record", "for_expr", "if_stmt", "par_stmt",
    "type_args",
}


class _NestedTooDeeply(Exception):
    """Raised inside :meth:`_AstBuilder.build` (and caught by :func:`parse_chunk`) at the first
    node nested deeper than ``limits.MAX_NESTING``."""

    def __init__(self, span: Span):
        super().__init__(span)
        self.span = span

    def diagnostic(self) -> Diagnostic:
        return Diagnostic(
            "V0022", Severity.ERROR,
            f"this is nested more than {limits.MAX_NESTING} levels deep",
            "", self.span,
            notes=("the declaration is not checked any further",),
            help="give inner parts a name with `let`, or split the declaration",
        )


class _AstBuilder:
    """Builds AST nodes bottom-up from lark's tree; literal problems go to ``sink``.

    The walk is iterative (lark's own transformers recurse, one Python frame or two per level)
    and it is where the nesting limit is enforced: nothing nested deeper reaches a pass that
    recurses.
    """

    def __init__(self, sink: DiagnosticSink):
        self.sink = sink

    def build(self, tree: Tree):
        """What the rule methods below make of ``tree``; raises :class:`_NestedTooDeeply`."""
        values: list = []
        # (node, nesting depth) to visit, or (tree, number of children) to build from ``values``
        pending: list[tuple[Any, int, bool]] = [(tree, 0, False)]
        limit = limits.MAX_NESTING
        while pending:
            node, n, ready = pending.pop()
            if ready:
                children = values[len(values) - n :]
                del values[len(values) - n :]
                values.append(self._apply(node, children))
            elif isinstance(node, Tree):
                depth = n + 1 if node.data in _NESTING_RULES else n
                if depth > limit:
                    raise _NestedTooDeeply(_opening_span(node))
                pending.append((node, len(node.children), True))
                pending.extend((child, depth, False) for child in reversed(node.children))
            else:
                values.append(node)  # a token, or None for an absent optional part
        return values[0]

    def _apply(self, tree: Tree, children: list):
        method = getattr(self, tree.data, None)
        if method is None or tree.data.startswith("_"):
            return self.__default__(tree.data, children, tree.meta)
        return method(tree.meta, children)

    def __default__(self, data, children, meta):
        if data in _BINARY:
            left, right = children
            return ast.Binary(_BINARY[data], left, right, _meta_span(meta))
        return Tree(data, children, meta)

    def _literal_problem(self, tok: Token, problem: str | None, code: str) -> None:
        if problem:
            self.sink.error(code, problem, _tok_span(tok))

    def _number_problem(self, tok: Token) -> bool:
        """Report a literal over the digit limit or out of range (V0023, V0024); True if so."""
        found = number_problem(str(tok))
        if found is None:
            return False
        code, message = found
        self.sink.error(code, message, _tok_span(tok),
                        help="write a smaller number" if code == "V0024" else "write fewer digits")
        return True

    # ---- declarations
    def chunk(self, meta, children):
        return Tree("chunk", children, meta)

    start = chunk

    def label_decl(self, meta, c):
        name, members = c[0], c[1] if len(c) > 1 else None
        return ast.LabelDecl(_ident(name), members or (), _meta_span(meta))

    def budget_decl(self, meta, c):
        return ast.BudgetDecl(_ident(c[0]), c[1], _meta_span(meta))

    def provider_decl(self, meta, c):
        members = c[2] if len(c) > 2 else ()
        return ast.ProviderDecl(_ident(c[0]), _ident(c[1]), members, _meta_span(meta))

    def model_decl(self, meta, c):
        members = c[3] if len(c) > 3 else ()
        return ast.ModelDecl(_ident(c[0]), _ident(c[1]), self._string(c[2]), members, _meta_span(meta))

    def type_decl(self, meta, c):
        return ast.TypeDecl(_ident(c[0]), c[1], _meta_span(meta))

    def enum_decl(self, meta, c):
        return ast.EnumDecl(_ident(c[0]), tuple(_ident(t) for t in c[1:]), _meta_span(meta))

    def tool_decl(self, meta, c):
        return ast.ToolDecl(_ident(c[0]), c[1], c[2], c[3], _meta_span(meta))

    def gate_decl(self, meta, c):
        return ast.GateDecl(_ident(c[0]), c[1], tuple(c[2:]), _meta_span(meta))

    def agent_decl(self, meta, c):
        return ast.AgentDecl(_ident(c[0]), c[1], c[2], c[3], _meta_span(meta))

    def flow_decl(self, meta, c):
        name, params, rest = c[0], c[1], c[2:]
        returns = None
        if rest and isinstance(rest[0], ast.TypeExpr):
            returns, rest = rest[0], rest[1:]
        return ast.FlowDecl(_ident(name), params, returns, tuple(rest), _meta_span(meta))

    def test_decl(self, meta, c):
        return ast.TestDecl(self._string(c[0]), tuple(c[1:]), _meta_span(meta))

    def members(self, meta, c):
        return tuple(c)

    def member(self, meta, c):
        return ast.Member(_ident(c[0]), c[1], _meta_span(meta))

    def check(self, meta, c):
        return ast.Check(c[0], c[1], _meta_span(meta))

    def mock(self, meta, c):
        return ast.Mock(_ident(c[0]), c[1], _meta_span(meta))

    def turns(self, meta, c):
        return tuple(c)

    def reply_turn(self, meta, c):
        return ast.ReplyTurn(c[0], _meta_span(meta))

    def call_turn(self, meta, c):
        return ast.CallTurn(_ident(c[0]), c[1] or (), _meta_span(meta))

    # ---- types
    def params(self, meta, c):
        return tuple(p for p in c if p is not None)

    def param(self, meta, c):
        return ast.Param(_ident(c[0]), c[1], _meta_span(meta))

    def type_expr(self, meta, c):
        name, args, optional, *labels = c
        return ast.TypeExpr(_ident(name), args or (), optional is not None, tuple(labels), _meta_span(meta))

    def type_args(self, meta, c):
        return tuple(c)

    def label_ann(self, meta, c):
        return _ident(c[0])

    def record_type(self, meta, c):
        return ast.RecordType(tuple(c), _meta_span(meta))

    def field_decl(self, meta, c):
        return ast.FieldDecl(_ident(c[0]), c[1], _meta_span(meta))

    # ---- statements
    def block(self, meta, c):
        return ast.Block(tuple(c), _meta_span(meta))

    def let_stmt(self, meta, c):
        return ast.Let(_ident(c[0]), c[1], c[2], _meta_span(meta))

    def if_stmt(self, meta, c):
        return ast.If(c[0], c[1], c[2], _meta_span(meta))

    def par_stmt(self, meta, c):
        return ast.Par(c[0], _meta_span(meta))

    def return_stmt(self, meta, c):
        return ast.Return(c[0], _meta_span(meta))

    def expr_stmt(self, meta, c):
        return ast.ExprStmt(c[0], _meta_span(meta))

    # ---- expressions
    def for_expr(self, meta, c):
        return ast.ForExpr(_ident(c[0]), c[1], c[2], c[3], _meta_span(meta))

    def rate(self, meta, c):
        return ast.Rate(c[0], _ident(c[1]), _meta_span(meta))

    def not_op(self, meta, c):
        return ast.Unary("not", c[0], _meta_span(meta))

    def neg(self, meta, c):
        return ast.Unary("-", c[0], _meta_span(meta))

    def field(self, meta, c):
        return ast.FieldAccess(c[0], _ident(c[1]), _meta_span(meta))

    def call(self, meta, c):
        return ast.Call(c[0], c[1] or (), _meta_span(meta))

    def index(self, meta, c):
        return ast.Index(c[0], c[1], _meta_span(meta))

    def args(self, meta, c):
        return tuple(c)

    def named_arg(self, meta, c):
        return ast.Arg(_ident(c[0]), c[1], _meta_span(meta))

    def positional_arg(self, meta, c):
        return ast.Arg(None, c[0], _meta_span(meta))

    def var(self, meta, c):
        return ast.Name(str(c[0]), _tok_span(c[0]))

    # A literal past a limit (V0023, V0024) keeps 0 as its value: nothing downstream sees a
    # number it cannot hold, and the error keeps the file from being planned.
    def int(self, meta, c):
        if self._number_problem(c[0]):
            return ast.IntLit(0, _tok_span(c[0]))
        value, problem = decode_int(c[0])
        self._literal_problem(c[0], problem, "V0009")
        return ast.IntLit(value, _tok_span(c[0]))

    def float(self, meta, c):
        if self._number_problem(c[0]):
            return ast.FloatLit(0.0, _tok_span(c[0]))
        value, problem = decode_float(c[0])
        self._literal_problem(c[0], problem, "V0009")
        return ast.FloatLit(value, _tok_span(c[0]))

    def money(self, meta, c):
        if self._number_problem(c[0]):
            return ast.MoneyLit(0, _tok_span(c[0]))
        value, problem = decode_money(c[0])
        self._literal_problem(c[0], problem, "V0008")
        return ast.MoneyLit(value, _tok_span(c[0]))

    def duration(self, meta, c):
        if self._number_problem(c[0]):
            return ast.DurationLit(0, str(c[0]), _tok_span(c[0]))
        value, problem = decode_duration(c[0])
        self._literal_problem(c[0], problem, "V0009")
        return ast.DurationLit(value, str(c[0]), _tok_span(c[0]))

    def string(self, meta, c):
        return self._string(c[0])

    def _string(self, tok: Token) -> ast.StrLit:
        value, problem = decode_string(str(tok))
        self._literal_problem(tok, problem, "V0007")
        return ast.StrLit(value, str(tok), _tok_span(tok))

    def true(self, meta, c):
        return ast.BoolLit(True, _meta_span(meta))

    def false(self, meta, c):
        return ast.BoolLit(False, _meta_span(meta))

    def none(self, meta, c):
        return ast.NoneLit(_meta_span(meta))

    def list(self, meta, c):
        return ast.ListLit(tuple(x for x in c if x is not None), _meta_span(meta))

    def record(self, meta, c):
        return ast.RecordLit(tuple(c), _meta_span(meta))

    def record_field(self, meta, c):
        return ast.RecordField(_ident(c[0]), c[1], _meta_span(meta))


__all__ = ["parse_module", "parse_chunk", "ParseResult", "DeclCache", "shift_spans", "Chunk"]
