"""Attaching every `//` comment to an item or a container, so the printer can keep it.

The rules, tried in order for each comment:

1. **Trailing.** A comment with code before it on its line belongs to the item that ends last on
   that line before it, provided only commas stand between the two (``a: 1, // why``). On ties
   (an item ending where its last element ends) the outermost item wins, so a comment after
   ``budget: { cost: $1 }`` stays with the member and does not break the record open. It is
   printed at the end of that item's line.
2. **Leading.** Otherwise the comment belongs to the innermost container around it: it leads
   the first item of that container that starts after it and is printed on its own lines just
   before that item.
3. **Dangling.** A comment after the last item of a container (before its `}`, or at the end
   of the file) stays at the end of that container.
4. **Inner.** A comment inside an item but in none of that item's containers (between
   ``check cond`` and ``else action`` on two lines, say) has no line of its own to keep, so it
   is moved to just before that item, as a leading comment.

Every comment lands in exactly one of these places, so none is ever lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vox.compiler.format.structure import Container, containers_in, module_container
from vox.compiler.syntax import ast


@dataclass(frozen=True, slots=True)
class CommentMap:
    """Where each comment of a module goes, by item and container identity."""

    leading: dict[int, tuple[ast.Comment, ...]]
    trailing: dict[int, ast.Comment]
    dangling: dict[tuple[int, str], tuple[ast.Comment, ...]]

    def leading_of(self, item: Any) -> tuple[ast.Comment, ...]:
        return self.leading.get(id(item), ())

    def trailing_of(self, item: Any) -> ast.Comment | None:
        return self.trailing.get(id(item))

    def dangling_in(self, container: Container) -> tuple[ast.Comment, ...]:
        return self.dangling.get(container.key, ())

    def has_any_in(self, container: Container) -> bool:
        """Whether any comment is attached to the container or directly to its items."""
        return bool(self.dangling_in(container)) or any(
            self.leading_of(i) or self.trailing_of(i) for i in container.items
        )


@dataclass(frozen=True, slots=True)
class _Placed:
    item: Any
    start: int
    end: int


def attach_comments(module: ast.Module, text: str) -> CommentMap:
    """Decide where each of ``module``'s comments is printed."""
    root = module_container(module, text)
    items = _all_items(root, text)
    leading: dict[int, list[ast.Comment]] = {}
    trailing: dict[int, ast.Comment] = {}
    dangling: dict[tuple[int, str], list[ast.Comment]] = {}
    for comment in module.comments:
        offset = comment.span.start
        target = _trailing_target(items, text, offset) if _code_before(text, offset) else None
        if target is not None:
            trailing[id(target)] = comment
            continue
        item, container = _place(root, text, offset)
        if item is not None:
            leading.setdefault(id(item), []).append(comment)
        else:
            dangling.setdefault(container.key, []).append(comment)
    return CommentMap(
        {k: tuple(v) for k, v in leading.items()},
        trailing,
        {k: tuple(v) for k, v in dangling.items()},
    )


def _code_before(text: str, offset: int) -> bool:
    line_start = text.rfind("\n", 0, offset) + 1
    return bool(text[line_start:offset].strip())


def _all_items(root: Container, text: str) -> list[_Placed]:
    """Every item of every container, at any depth."""
    found: list[_Placed] = []
    pending = [root]
    while pending:
        container = pending.pop()
        for item in container.items:
            found.append(_Placed(item, item.span.start, item.span.end))
            pending.extend(containers_in(item, text))
    return found


def _trailing_target(items: list[_Placed], text: str, offset: int) -> Any | None:
    """The item a comment at ``offset`` trails: the last to end before it on its line with
    only commas in between, the outermost on ties; None when there is no such item."""
    best: _Placed | None = None
    for placed in items:
        if placed.end > offset or not _only_commas(text[placed.end : offset]):
            continue
        if best is None or (placed.end, -placed.start) > (best.end, -best.start):
            best = placed
    return best.item if best is not None else None


def _only_commas(gap: str) -> bool:
    return "\n" not in gap and not gap.replace(",", "").strip()


def _place(root: Container, text: str, offset: int) -> tuple[Any | None, Container]:
    """The item a comment at ``offset`` leads (None: it dangles at the end of the container)."""
    container = root
    while True:
        inside = next((i for i in container.items if i.span.start < offset < i.span.end), None)
        if inside is None:
            following = next((i for i in container.items if i.span.start > offset), None)
            return following, container
        nested = next((c for c in containers_in(inside, text) if c.encloses(offset)), None)
        if nested is None:
            return inside, container
        container = nested
