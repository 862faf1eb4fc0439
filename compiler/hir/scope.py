"""Lexical scopes of locals inside flows, gates and tests."""

from __future__ import annotations

from vox.compiler.hir.nodes import Symbol


class Scope:
    """A chain of dictionaries of locals; lookups walk outwards."""

    __slots__ = ("names", "parent")

    def __init__(self, parent: "Scope | None" = None):
        self.names: dict[str, Symbol] = {}
        self.parent = parent

    def child(self) -> "Scope":
        return Scope(self)

    def lookup(self, name: str) -> Symbol | None:
        scope: Scope | None = self
        while scope is not None:
            found = scope.names.get(name)
            if found is not None:
                return found
            scope = scope.parent
        return None

    def local(self, name: str) -> Symbol | None:
        return self.names.get(name)

    def bind(self, symbol: Symbol) -> None:
        self.names[symbol.name] = symbol

    def visible_names(self) -> set[str]:
        out: set[str] = set()
        scope: Scope | None = self
        while scope is not None:
            out.update(scope.names)
            scope = scope.parent
        return out
