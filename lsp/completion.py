"""Completion from what the cursor follows: declaration keywords at top level, member keys in a
declaration body, statement keywords in a flow, declared names of the kind the place expects
(models after `model:`, tools in `tools: [...]`, labels after `@`, types in signatures, fields
after `.`), and prompt placeholders from the agent's parameters inside a prompt string."""

from __future__ import annotations

import re

from lsprotocol import types as lsp

from vox.compiler import query
from vox.compiler.hir import types as t
from vox.compiler.hir.members import CAPABILITIES, EFFECTS, MEMBERS
from vox.compiler.syntax.scan import DECL_KEYWORDS, code_spans, region_at_cursor, scan
from vox.lsp.documents import Checked

CK = lsp.CompletionItemKind
STATEMENT_KEYWORDS = ("let", "if", "else", "for", "par", "return")
BUILTINS = ("len", "min", "max", "redact", "declassify", "receipt")
# `{` opening a placeholder at the end of the text: not one of a run of `{{` (a literal brace)
_OPEN_PLACEHOLDER = re.compile(r"(?<!\{)(?:\{\{)*\{([\w.]*)$")

_LIST_OF = {"tools": "tool", "fallback": "model", "gates": "gate", "clearance": "label"}


def complete(checked: Checked, position: lsp.Position) -> lsp.CompletionList:
    offset = checked.positions.offset(position)
    text = checked.result.source.text
    program = checked.result.program
    scanned = scan(text)
    chunk = next((c for c in scanned.chunks if c.start <= offset <= c.end), None)
    keyword = chunk.keyword if chunk is not None else None
    before = text[chunk.start:offset] if chunk is not None else text[:offset]
    line = text[text.rfind("\n", 0, offset) + 1:offset]
    owner = _owner_name(before, keyword)
    region = region_at_cursor(scanned.regions, offset)
    items: list[lsp.CompletionItem]

    if region is not None:  # in a comment nothing, in a string (a prompt) its placeholders
        m = _OPEN_PLACEHOLDER.search(text, region.start, offset) if region.is_string else None
        items = _placeholders(program, owner, m.group(1)) if m else []
    elif m := re.search(r"@\w*$", line):
        items = _names(program, "label") + [_item("public", CK.Constant, "label")]
    elif m := re.search(r"([A-Za-z_]\w*(?:\.\w+)*)\.\w*$", line):
        items = _fields(_type_of_path(program, owner, m.group(1).split(".")))
    elif m := re.search(r"\b(tools|fallback|gates|clearance)\s*:\s*\[[^\]]*$", line):
        items = _names(program, _LIST_OF[m.group(1)])
        if m.group(1) == "clearance":
            items.append(_item("public", CK.Constant, "label"))
    elif re.search(r"\b(model\s*:|judge\s*\()\s*\w*$", line):
        items = _names(program, "model")
    elif re.search(r"\beffect\s*:\s*\w*$", line):
        items = [_item(e, CK.EnumMember, "effect") for e in EFFECTS]
    elif re.search(r"\bcapabilities\s*:\s*\[[^\]]*$", line):
        items = [_item(c, CK.EnumMember, "capability") for c in CAPABILITIES]
    elif _in_type_position(before, keyword, line):
        items = [_item(p, CK.TypeParameter, "type") for p in (*t.PRIMITIVES, "list", "Receipt")]
        items += _names(program, "type") + _names(program, "enum")
    else:
        depth = _depth(before)
        if depth == 0 and re.fullmatch(r"\w*", line):
            items = [_item(k, CK.Keyword, "declaration") for k in DECL_KEYWORDS]
        elif depth == 1 and re.fullmatch(r"\s*\w*", line) and keyword in MEMBERS and keyword != "flow":
            items = [_item(k, CK.Property, v, insert=f"{k}: ") for k, v in MEMBERS[keyword].items()]
            if keyword == "gate":
                items.append(_item("check", CK.Keyword, "check <condition> else <action>"))
            if keyword == "test":
                items.append(_item("mock", CK.Keyword, "mock <agent or tool>: reply ..."))
        else:
            items = []
            if keyword == "flow" and re.fullmatch(r"\s*\w*", line):
                items += [_item(k, CK.Keyword, "statement") for k in STATEMENT_KEYWORDS]
                if depth == 1:
                    items.append(_item("budget", CK.Property, MEMBERS["flow"]["budget"], insert="budget: "))
            items += _locals(program, owner)
            for kind in ("agent", "tool", "flow"):
                items += _names(program, kind)
            items += [_item(b, CK.Function, "builtin") for b in BUILTINS]
    return lsp.CompletionList(is_incomplete=False, items=items)


def _item(label: str, kind, detail: str, insert: str | None = None) -> lsp.CompletionItem:
    return lsp.CompletionItem(label=label, kind=kind, detail=detail, insert_text=insert)


_KIND_ICONS = {"label": CK.Constant, "model": CK.Class, "tool": CK.Function, "agent": CK.Method,
               "flow": CK.Function, "gate": CK.Interface, "type": CK.Struct, "enum": CK.Enum, "provider": CK.Module}


def _names(program, kind: str) -> list[lsp.CompletionItem]:
    return [_item(s.name, _KIND_ICONS.get(kind, CK.Reference), kind)
            for s in program.symbols.values() if s.kind == kind]


def _owner_name(before: str, keyword: str | None) -> str | None:
    m = re.match(r"\s*\w+\s+([A-Za-z_]\w*)", before)
    return m.group(1) if m and keyword else None


def _params(program, owner: str | None):
    for table in (program.agents, program.flows, program.tools):
        if owner in table:
            return table[owner].params
    gate = program.gates.get(owner) if owner else None
    return (gate.param,) if gate is not None and gate.param is not None else ()


def _locals(program, owner: str | None) -> list[lsp.CompletionItem]:
    if owner is None:
        return []
    seen = {p.name: p.type for p in _params(program, owner)}
    for symbol in query.declared_symbols(program):
        if symbol.owner == owner:
            seen.setdefault(symbol.name, symbol.type)
    return [_item(n, CK.Variable, ty.show() if ty is not None else "local") for n, ty in seen.items()]


def _type_of_path(program, owner: str | None, path: list[str]):
    ty = None
    for p in _params(program, owner):
        if p.name == path[0]:
            ty = p.type
    if ty is None:
        for symbol in query.declared_symbols(program):
            if symbol.owner == owner and symbol.name == path[0]:
                ty = symbol.type
    for name in path[1:]:
        fields = dict(query.field_names(ty))
        ty = fields[name].type if name in fields else None
    return ty


def _fields(ty) -> list[lsp.CompletionItem]:
    return [_item(n, CK.Field, f.type.show() + "".join(f" @{lb}" for lb in sorted(f.labels)))
            for n, f in query.field_names(ty)]


def _placeholders(program, owner: str | None, typed: str) -> list[lsp.CompletionItem]:
    path = typed.split(".")
    if len(path) > 1:
        return _fields(_type_of_path(program, owner, path[:-1]))
    return [_item(p.name, CK.Variable, p.type.show()) for p in _params(program, owner)]


def _code(before: str) -> str:
    """``before`` without its strings and comments."""
    return "".join(before[s:e] for s, e in code_spans(before))


def _depth(before: str) -> int:
    code = _code(before)
    return max(0, code.count("{") - code.count("}"))


def _in_type_position(before: str, keyword: str | None, line: str) -> bool:
    if re.search(r"(->\s*|\blist\[\s*)\w*$", line):
        return True
    if not re.search(r":\s*\w*$", line):
        return False
    if keyword == "type":
        return True
    # inside a signature's parentheses, before the body opens
    code = _code(before)
    return keyword in ("tool", "agent", "flow", "gate") and "{" not in code and code.count("(") > code.count(")")
