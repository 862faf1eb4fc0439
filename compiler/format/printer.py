"""The canonical layout: a parsed module (with its comments) turned into documents and text.

The layout is the one of ``examples/reference.vox``:

* two-space indentation; a blank line between declarations, except between one-line
  declarations of the same kind that the source wrote without one (``label pii`` /
  ``label payment``);
* declaration bodies, blocks, gates and tests hold one member or statement per line; at most
  one blank line is kept where the source had blank lines between them;
* ``budget`` bodies, enums, and label/provider/model bodies with a single member are written
  like records: on one line when it fits, one item per line otherwise;
* records ``{ a: 1, b: 2 }``, lists ``[a, b]``, call arguments ``f(a: 1)`` and parameters are on
  one line when the whole line fits in the width (100 columns), one item per line otherwise;
  a call whose last argument is a record or list that must break keeps it hugged:
  ``call store(record: {`` ... ``})``;
* a ``for`` body holding a single short expression stays on one line: ``{ handle(t) }``;
* literals keep their source text (``$0.15``, ``200_000``, ``2m``); a triple-quoted prompt is
  re-indented to its line's indentation plus two, with the closing quotes at that indentation;
* parentheses only where precedence requires them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from vox.compiler.format.comments import CommentMap
from vox.compiler.format.doc import (
    BLANKLINE,
    BREAK_PARENT,
    HARDLINE,
    LINE,
    SOFTLINE,
    Doc,
    LayoutSteps,
    LineSuffix,
    Text,
    TripleString,
    choice,
    concat,
    flat_text,
    group,
    if_break,
    nest,
    render,
)
from vox.compiler.format.structure import (
    ARGS,
    BODY,
    ELEMENTS,
    FIELDS,
    PARAMS,
    TURNS,
    VARIANTS,
    Container,
    block_container,
    containers_in,
    module_container,
)
from vox.compiler.syntax import ast
from vox.compiler.syntax.literals import decode_string

LINE_WIDTH = 100
SHORT_FOR_BODY = 20  # columns: `{ handle(t) }` stays on one line, longer bodies get their own


@dataclass(frozen=True, slots=True)
class PrintContext:
    """What every printing function needs: the source (for literal text and blank lines),
    where the comments go, and the line width.

    ``docs`` holds the document of each expression once made (by node identity): several layouts
    of a call or a `for` share their parts' documents, so each part is made once, not once per
    layout of each enclosing node (which is exponential in the nesting). ``steps`` counts the
    work, for the test that keeps it linear.
    """

    text: str
    comments: CommentMap
    width: int = LINE_WIDTH
    docs: dict[int, Doc] = field(default_factory=dict)
    steps: LayoutSteps = field(default_factory=LayoutSteps)

    def source(self, node: Any) -> str:
        return self.text[node.span.start : node.span.end]

    def container(self, owner: Any, role: str, parent: Any | None = None) -> Container:
        """The container ``owner`` holds in ``role`` (found among ``parent``'s containers)."""
        for c in containers_in(owner if parent is None else parent, self.text):
            if c.owner is owner and c.role == role:
                return c
        raise LookupError(f"{type(owner).__name__} has no {role} container")


# ---- the module -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TopLine:
    """A top-level line group: a declaration's text, or a comment on its own line."""

    text: str
    start: int
    end: int
    is_decl: bool
    keyword: str | None  # of the declaration it is or leads; None for comments at the end
    multiline: bool  # whether that declaration spans several lines


def print_module(module: ast.Module, ctx: PrintContext) -> str:
    """The formatted text of ``module``."""
    lines = _top_lines(module, ctx)
    out: list[str] = []
    for i, line in enumerate(lines):
        if i and _blank_between_top(ctx.text, lines[i - 1], line):
            out.append("")
        out.append(line.text)
    return "\n".join(out) + "\n" if out else ""


def _top_lines(module: ast.Module, ctx: PrintContext) -> list[_TopLine]:
    lines: list[_TopLine] = []
    for decl in module.decls:
        text = render(_with_trailing(ctx, decl, decl_doc(ctx, decl)), ctx.width, ctx.steps)
        keyword, multiline = ast.DECL_KEYWORDS[type(decl)], "\n" in text
        for c in ctx.comments.leading_of(decl):
            lines.append(_TopLine(comment_text(c), c.span.start, c.span.end, False, keyword, multiline))
        trailing = ctx.comments.trailing_of(decl)
        end = trailing.span.end if trailing is not None else decl.span.end
        lines.append(_TopLine(text, decl.span.start, end, True, keyword, multiline))
    for c in ctx.comments.dangling_in(module_container(module, ctx.text)):
        lines.append(_TopLine(comment_text(c), c.span.start, c.span.end, False, None, False))
    return lines


def _blank_between_top(text: str, prev: _TopLine, line: _TopLine) -> bool:
    """A blank line where the source had one, and always between declarations unless both are
    one-liners of the same kind (``label pii`` / ``label payment`` may stay together)."""
    if has_blank_line(text, prev.end, line.start):
        return True
    starts_next_decl = prev.is_decl and line.keyword is not None
    same_kind_one_liners = not prev.multiline and not line.multiline and prev.keyword == line.keyword
    return starts_next_decl and not same_kind_one_liners


def has_blank_line(text: str, start: int, end: int) -> bool:
    """Whether the source between two items holds an empty line (commas count as empty)."""
    if end <= start:
        return False
    inner_lines = text[start:end].split("\n")[1:-1]
    return any(not line.strip(" \t\r\f,") for line in inner_lines)


def comment_text(comment: ast.Comment) -> str:
    return comment.text.rstrip()


def _comment_doc(comment: ast.Comment) -> Doc:
    return concat(comment_text(comment), BREAK_PARENT)


def _with_trailing(ctx: PrintContext, item: Any, doc: Doc) -> Doc:
    trailing = ctx.comments.trailing_of(item)
    return doc if trailing is None else concat(doc, LineSuffix(comment_text(trailing)))


# ---- item sequences -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SeqLine:
    doc: Doc
    start: int
    end: int
    is_comment: bool


def sequence(
    ctx: PrintContext,
    container: Container,
    item_doc: Callable[[Any], Doc],
    *,
    between: Doc,
    separator: Doc | str | None,
) -> Doc:
    """A container's items with their comments, ``between`` each pair of lines.

    ``separator`` follows every item but the last (before any trailing comment). A comment
    line is always followed by a hard line break; blank lines in the source become
    :data:`BLANKLINE` (printed when the enclosing group breaks).
    """
    lines = _sequence_lines(ctx, container, item_doc, separator)
    parts: list[Doc] = []
    for i, line in enumerate(lines):
        if i:
            prev = lines[i - 1]
            if has_blank_line(ctx.text, prev.end, line.start):
                parts.append(BLANKLINE)
            parts.append(HARDLINE if prev.is_comment else between)
        parts.append(line.doc)
    return concat(*parts)


def _sequence_lines(ctx, container, item_doc, separator) -> list[_SeqLine]:
    lines: list[_SeqLine] = []
    last = len(container.items) - 1
    for index, item in enumerate(container.items):
        for c in ctx.comments.leading_of(item):
            lines.append(_SeqLine(_comment_doc(c), c.span.start, c.span.end, True))
        doc = item_doc(item)
        if separator is not None and index < last:
            doc = concat(doc, separator)
        trailing = ctx.comments.trailing_of(item)
        end = trailing.span.end if trailing is not None else item.span.end
        lines.append(_SeqLine(_with_trailing(ctx, item, doc), item.span.start, end, False))
    for c in ctx.comments.dangling_in(container):
        lines.append(_SeqLine(_comment_doc(c), c.span.start, c.span.end, True))
    return lines


def _is_empty(ctx: PrintContext, container: Container) -> bool:
    return not container.items and not ctx.comments.dangling_in(container)


def block(ctx: PrintContext, container: Container, item_doc: Callable[[Any], Doc]) -> Doc:
    """``{`` one item per line ``}``, always broken (``{}`` when empty)."""
    if _is_empty(ctx, container):
        return Text("{}")
    body = sequence(ctx, container, item_doc, between=HARDLINE, separator=None)
    return concat("{", nest(concat(HARDLINE, body)), HARDLINE, "}")


def braced_group(
    ctx: PrintContext, container: Container, item_doc: Callable[[Any], Doc], *, force_break: bool = False
) -> Doc:
    """``{ a, b }`` on one line when it fits, else ``{`` one item per line (no commas) ``}``."""
    if _is_empty(ctx, container):
        return Text("{}")
    body = sequence(ctx, container, item_doc, between=LINE, separator=if_break("", ","))
    return group(concat("{", nest(concat(LINE, body)), LINE, "}"), force_break=force_break)


def delimited_group(
    ctx: PrintContext,
    container: Container,
    item_doc: Callable[[Any], Doc],
    brackets: str,
    *,
    force_break: bool = False,
) -> Doc:
    """``[a, b]`` / ``(a, b)`` on one line when it fits, else one item per line with commas."""
    open_, close = brackets
    if _is_empty(ctx, container):
        return Text(brackets)
    body = sequence(ctx, container, item_doc, between=LINE, separator=",")
    return group(concat(open_, nest(concat(SOFTLINE, body)), SOFTLINE, close), force_break=force_break)


# ---- declarations ---------------------------------------------------------------------------


def decl_doc(ctx: PrintContext, decl: Any) -> Doc:
    return _DECL_PRINTERS[type(decl)](ctx, decl)


def _label(ctx: PrintContext, d: ast.LabelDecl) -> Doc:
    return concat("label ", d.name.name, _settings_body(ctx, d))


def _budget(ctx: PrintContext, d: ast.BudgetDecl) -> Doc:
    members = braced_group(ctx, ctx.container(d, BODY), partial(_member, ctx))
    return concat("budget ", d.scope.name, " ", members)


def _provider(ctx: PrintContext, d: ast.ProviderDecl) -> Doc:
    return concat("provider ", d.name.name, " = ", d.protocol.name, _settings_body(ctx, d))


def _model(ctx: PrintContext, d: ast.ModelDecl) -> Doc:
    header = concat("model ", d.name.name, " = ", d.provider.name, "/", d.model_id.raw)
    return concat(header, _settings_body(ctx, d))


def _settings_body(ctx: PrintContext, d: Any) -> Doc:
    """A label, provider or model body: none when empty, like a record with one member."""
    container = ctx.container(d, BODY)
    if _is_empty(ctx, container):
        return Text("")
    member = partial(_member, ctx)
    if len(container.items) == 1:
        return concat(" ", braced_group(ctx, container, member))
    return concat(" ", block(ctx, container, member))


def _type(ctx: PrintContext, d: ast.TypeDecl) -> Doc:
    if isinstance(d.type, ast.TypeExpr):
        return Text(f"type {d.name.name} = {type_text(d.type)}")
    fields = ctx.container(d.type, FIELDS, parent=d)
    return concat("type ", d.name.name, " = ", block(ctx, fields, _field_decl))


def _enum(ctx: PrintContext, d: ast.EnumDecl) -> Doc:
    variants = braced_group(ctx, ctx.container(d, VARIANTS), lambda v: Text(v.name))
    return concat("enum ", d.name.name, " ", variants)


def _tool(ctx: PrintContext, d: ast.ToolDecl) -> Doc:
    return concat("tool ", d.name.name, _params(ctx, d), " -> ", type_text(d.returns), " ", _body(ctx, d))


def _gate(ctx: PrintContext, d: ast.GateDecl) -> Doc:
    return concat("gate ", d.name.name, _params(ctx, d), " ", _body(ctx, d))


def _agent(ctx: PrintContext, d: ast.AgentDecl) -> Doc:
    return concat("agent ", d.name.name, _params(ctx, d), " -> ", type_text(d.returns), " ", _body(ctx, d))


def _flow(ctx: PrintContext, d: ast.FlowDecl) -> Doc:
    returns = f" -> {type_text(d.returns)}" if d.returns is not None else ""
    return concat("flow ", d.name.name, _params(ctx, d), returns, " ", _body(ctx, d))


def _test(ctx: PrintContext, d: ast.TestDecl) -> Doc:
    return concat("test ", d.name.raw, " ", _body(ctx, d))


def _params(ctx: PrintContext, d: Any) -> Doc:
    return delimited_group(ctx, ctx.container(d, PARAMS), _param, "()")


def _body(ctx: PrintContext, d: Any) -> Doc:
    return block(ctx, ctx.container(d, BODY), partial(item_doc, ctx))


_DECL_PRINTERS: dict[type, Callable[[PrintContext, Any], Doc]] = {
    ast.LabelDecl: _label,
    ast.BudgetDecl: _budget,
    ast.ProviderDecl: _provider,
    ast.ModelDecl: _model,
    ast.TypeDecl: _type,
    ast.EnumDecl: _enum,
    ast.ToolDecl: _tool,
    ast.GateDecl: _gate,
    ast.AgentDecl: _agent,
    ast.FlowDecl: _flow,
    ast.TestDecl: _test,
}


# ---- members, statements and other items ----------------------------------------------------


def item_doc(ctx: PrintContext, item: Any) -> Doc:
    """A member, statement, check or mock: the items of declaration bodies and blocks."""
    if isinstance(item, ast.Member):
        return _member(ctx, item)
    if isinstance(item, ast.Check):
        return concat("check ", expr_doc(ctx, item.cond), " else ", expr_doc(ctx, item.action))
    if isinstance(item, ast.Mock):
        return concat("mock ", item.target.name, ": ", _mock_value(ctx, item))
    return stmt_doc(ctx, item)


def _member(ctx: PrintContext, m: ast.Member | ast.RecordField) -> Doc:
    return concat(m.key.name if isinstance(m, ast.Member) else m.name.name, ": ", expr_doc(ctx, m.value))


def _field_decl(f: ast.FieldDecl) -> Doc:
    return Text(f"{f.name.name}: {type_text(f.type)}")


def _param(p: ast.Param) -> Doc:
    return Text(f"{p.name.name}: {type_text(p.type)}")


def type_text(t: ast.TypeExpr) -> str:
    """``str? @pii``, ``list[Ticket]``, ``Receipt[refund]?``."""
    text = t.name.name
    if t.args:
        text += "[" + ", ".join(type_text(a) for a in t.args) + "]"
    if t.optional:
        text += "?"
    return text + "".join(f" @{label.name}" for label in t.labels)


def _mock_value(ctx: PrintContext, m: ast.Mock) -> Doc:
    if isinstance(m.value, tuple):
        turns = ctx.container(m, TURNS)
        body = sequence(ctx, turns, partial(_turn, ctx), between=HARDLINE, separator=",")
        return concat("[", nest(concat(HARDLINE, body)), HARDLINE, "]")
    if isinstance(m.value, (ast.ReplyTurn, ast.CallTurn)):
        return _turn(ctx, m.value)
    return expr_doc(ctx, m.value)


def _turn(ctx: PrintContext, turn: ast.ReplyTurn | ast.CallTurn) -> Doc:
    if isinstance(turn, ast.ReplyTurn):
        return concat("reply ", expr_doc(ctx, turn.value))
    return concat("call ", turn.tool.name, args_doc(ctx, ctx.container(turn, ARGS)))


def stmt_doc(ctx: PrintContext, s: Any) -> Doc:
    if isinstance(s, ast.Let):
        annotation = f": {type_text(s.type)}" if s.type is not None else ""
        return concat("let ", s.name.name, annotation, " = ", expr_doc(ctx, s.value))
    if isinstance(s, ast.If):
        return _if(ctx, s)
    if isinstance(s, ast.Par):
        return concat("par ", _block(ctx, s.body))
    if isinstance(s, ast.Return):
        return Text("return") if s.value is None else concat("return ", expr_doc(ctx, s.value))
    return expr_doc(ctx, s.expr)


def _if(ctx: PrintContext, s: ast.If) -> Doc:
    head = concat("if ", expr_doc(ctx, s.cond), " ", _block(ctx, s.then))
    if s.orelse is None:
        return head
    orelse = _block(ctx, s.orelse) if isinstance(s.orelse, ast.Block) else _if(ctx, s.orelse)
    return concat(head, " else ", orelse)


def _block(ctx: PrintContext, b: ast.Block) -> Doc:
    return block(ctx, block_container(b), partial(stmt_doc, ctx))


# ---- expressions ----------------------------------------------------------------------------

# Binding strength, loosest first, as in the grammar: `per`, or, and, not, comparisons,
# + -, * / %, unary -, postfix (.f (args) [i]), atoms. `for` sits at the loosest level.
RATE, OR, AND, NOT, COMPARE, SUM, PRODUCT, NEGATE, POSTFIX, ATOM = range(10)
BINARY_LEVEL = {
    "or": OR,
    "and": AND,
    "==": COMPARE,
    "!=": COMPARE,
    "<": COMPARE,
    "<=": COMPARE,
    ">": COMPARE,
    ">=": COMPARE,
    "+": SUM,
    "-": SUM,
    "*": PRODUCT,
    "/": PRODUCT,
    "%": PRODUCT,
}


def level(e: Any) -> int:
    """How tightly ``e`` binds (see the constants above)."""
    if isinstance(e, (ast.Rate, ast.ForExpr)):
        return RATE
    if isinstance(e, ast.Binary):
        return BINARY_LEVEL[e.op]
    if isinstance(e, ast.Unary):
        return NOT if e.op == "not" else NEGATE
    if isinstance(e, (ast.FieldAccess, ast.Call, ast.Index)):
        return POSTFIX
    return ATOM


def expr_doc(ctx: PrintContext, e: Any, min_level: int = RATE) -> Doc:
    """``e``, in parentheses when it binds more loosely than its position needs."""
    doc = ctx.docs.get(id(e))
    if doc is None:
        ctx.steps.docs += 1
        doc = ctx.docs[id(e)] = _EXPR_PRINTERS[type(e)](ctx, e)
    return concat("(", doc, ")") if level(e) < min_level else doc


def _binary(ctx: PrintContext, e: ast.Binary) -> Doc:
    op_level = BINARY_LEVEL[e.op]
    if op_level == COMPARE:  # comparisons do not chain: both sides are sums
        left_level = right_level = SUM
    else:  # left-associative
        left_level, right_level = op_level, op_level + 1
    return concat(expr_doc(ctx, e.left, left_level), f" {e.op} ", expr_doc(ctx, e.right, right_level))


def _unary(ctx: PrintContext, e: ast.Unary) -> Doc:
    if e.op == "not":
        return concat("not ", expr_doc(ctx, e.operand, NOT))
    return concat("-", expr_doc(ctx, e.operand, NEGATE))


def _rate(ctx: PrintContext, e: ast.Rate) -> Doc:
    return concat(expr_doc(ctx, e.amount, OR), " per ", e.unit.name)


def _field_access(ctx: PrintContext, e: ast.FieldAccess) -> Doc:
    return concat(expr_doc(ctx, e.target, POSTFIX), ".", e.name.name)


def _index(ctx: PrintContext, e: ast.Index) -> Doc:
    return concat(expr_doc(ctx, e.target, POSTFIX), "[", expr_doc(ctx, e.index), "]")


def _call(ctx: PrintContext, e: ast.Call) -> Doc:
    return concat(expr_doc(ctx, e.callee, POSTFIX), args_doc(ctx, ctx.container(e, ARGS)))


def args_doc(ctx: PrintContext, container: Container) -> Doc:
    """``(a, b: 1)`` on one line when it fits; else with the last argument hugged when it is a
    record or list (``f(x: {`` ... ``})``) and that first line fits; else one per line."""
    arg = partial(_arg, ctx)
    expanded = delimited_group(ctx, container, arg, "()")
    hugged = _hugged_args(ctx, container)
    if hugged is None:
        return expanded
    fully_broken = delimited_group(ctx, container, arg, "()", force_break=True)
    if expanded.hard:
        return choice(hugged, fully_broken)
    return choice(expanded, hugged, fully_broken)


def _hugged_args(ctx: PrintContext, container: Container) -> Doc | None:
    if not container.items or ctx.comments.has_any_in(container):
        return None
    *before, last = container.items
    hugged = _collection(ctx, last.value, force_break=True)
    leading = [_arg(ctx, a) for a in before]
    if hugged is None or any(d.hard for d in leading):
        return None
    parts: list[Doc | str] = ["("]
    for d in leading:
        parts += [d, ", "]
    if last.name is not None:
        parts.append(f"{last.name.name}: ")
    return concat(*parts, hugged, ")")


def _collection(ctx: PrintContext, e: Any, *, force_break: bool) -> Doc | None:
    """A non-empty record or list literal, broken open when ``force_break``; else None."""
    if isinstance(e, ast.RecordLit) and e.fields:
        return _record(ctx, e, force_break=force_break)
    if isinstance(e, ast.ListLit) and e.items:
        return _list(ctx, e, force_break=force_break)
    return None


def _arg(ctx: PrintContext, a: ast.Arg) -> Doc:
    value = expr_doc(ctx, a.value)
    return value if a.name is None else concat(a.name.name, ": ", value)


def _record(ctx: PrintContext, e: ast.RecordLit, *, force_break: bool = False) -> Doc:
    fields = ctx.container(e, FIELDS)
    return braced_group(ctx, fields, partial(_member, ctx), force_break=force_break)


def _list(ctx: PrintContext, e: ast.ListLit, *, force_break: bool = False) -> Doc:
    elements = ctx.container(e, ELEMENTS)
    return delimited_group(ctx, elements, partial(expr_doc, ctx), "[]", force_break=force_break)


def _for(ctx: PrintContext, e: ast.ForExpr) -> Doc:
    bound = concat(" max ", expr_doc(ctx, e.bound, OR)) if e.bound is not None else ""
    head = concat("for ", e.var.name, " in ", expr_doc(ctx, e.iterable, OR), bound, " ")
    return concat(head, _for_body(ctx, e.body))


def _for_body(ctx: PrintContext, body: ast.Block) -> Doc:
    """``{ handle(t) }`` when the body is one short expression, else a block."""
    container = block_container(body)
    if len(body.stmts) == 1 and isinstance(body.stmts[0], ast.ExprStmt):
        only = stmt_doc(ctx, body.stmts[0])
        text = flat_text(only, SHORT_FOR_BODY)
        if text is not None and not ctx.comments.has_any_in(container):
            return group(concat("{", nest(concat(LINE, only)), LINE, "}"))
    return _block(ctx, body)


def _string(ctx: PrintContext, e: ast.StrLit) -> Doc:
    lines = reindented_lines(e.raw)
    return Text(e.raw) if lines is None else TripleString(lines)


def reindented_lines(raw: str) -> tuple[str, ...] | None:
    """The content lines of a triple-quoted string with their common indentation removed, when
    it has the canonical shape (quotes on their own lines) and re-indenting keeps its value;
    None otherwise (the string is then kept exactly as written).

    >>> reindented_lines('\"\"\"\\n      Hi {name}\\n        there\\n  \"\"\"')
    ('Hi {name}', '  there')
    """
    if not raw.startswith('"""'):
        return None
    lines = raw[3:-3].split("\n")
    if len(lines) < 3 or lines[0].strip() or lines[-1].strip():
        return None
    content = lines[1:-1]
    indents = [len(line) - len(line.lstrip(" \t")) for line in content if line.strip()]
    if not indents:
        return None
    cut = min(indents)
    result = tuple(line[cut:] for line in content)
    rebuilt = '"""\n' + "\n".join("  " + line if line else "" for line in result) + '\n"""'
    return result if decode_string(rebuilt) == decode_string(raw) else None


def _source_text(ctx: PrintContext, e: Any) -> Doc:
    return Text(ctx.source(e))


_EXPR_PRINTERS: dict[type, Callable[[PrintContext, Any], Doc]] = {
    ast.Name: lambda ctx, e: Text(e.name),
    ast.IntLit: _source_text,
    ast.FloatLit: _source_text,
    ast.MoneyLit: _source_text,
    ast.DurationLit: lambda ctx, e: Text(e.text),
    ast.StrLit: _string,
    ast.BoolLit: lambda ctx, e: Text("true" if e.value else "false"),
    ast.NoneLit: lambda ctx, e: Text("none"),
    ast.ListLit: _list,
    ast.RecordLit: _record,
    ast.FieldAccess: _field_access,
    ast.Index: _index,
    ast.Call: _call,
    ast.Unary: _unary,
    ast.Binary: _binary,
    ast.Rate: _rate,
    ast.ForExpr: _for,
}
