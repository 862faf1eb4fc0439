"""Diagnostics are values: passes return them, nothing raises them.

Each diagnostic has a stable code (see :mod:`vox.compiler.diagnostics.codes`), a primary span,
optional secondary labels, notes, a ``help`` line saying how to fix it, and optionally a
machine-applicable fix (text edits) that the language server offers as a code action.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from vox.compiler.source import Span


class Severity(enum.IntEnum):
    ERROR = 1
    WARNING = 2
    NOTE = 3

    @property
    def word(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Label:
    """A secondary span with a short message, e.g. "the label comes from here"."""

    span: Span
    message: str
    path: str | None = None  # another file; None means the diagnostic's own file


@dataclass(frozen=True, slots=True)
class TextEdit:
    span: Span
    new_text: str


@dataclass(frozen=True, slots=True)
class Fix:
    """A machine-applicable change, described for humans by ``message``."""

    message: str
    edits: tuple[TextEdit, ...]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    severity: Severity
    message: str
    path: str
    span: Span
    labels: tuple[Label, ...] = ()
    notes: tuple[str, ...] = ()
    help: str | None = None
    fix: Fix | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple:
        return (self.path, self.span.start, self.span.end, self.code, self.message)


def error(code: str, message: str, path: str, span: Span, **more) -> Diagnostic:
    return Diagnostic(code, Severity.ERROR, message, path, span, **more)


def warning(code: str, message: str, path: str, span: Span, **more) -> Diagnostic:
    return Diagnostic(code, Severity.WARNING, message, path, span, **more)


def replace_fix(message: str, span: Span, new_text: str) -> Fix:
    return Fix(message, (TextEdit(span, new_text),))


def sort_diagnostics(diagnostics) -> list[Diagnostic]:
    """Sorted by file and position; exact duplicates (same code, span and message) dropped."""
    seen = set()
    out = []
    for d in sorted(diagnostics, key=Diagnostic.sort_key):
        key = (d.path, d.span, d.code, d.message)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


@dataclass
class DiagnosticSink:
    """Collects diagnostics for one file while a pass runs."""

    path: str
    items: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, message: str, span: Span, **more) -> Diagnostic:
        d = Diagnostic(code, Severity.ERROR, message, self.path, span, **more)
        self.items.append(d)
        return d

    def warning(self, code: str, message: str, span: Span, **more) -> Diagnostic:
        d = Diagnostic(code, Severity.WARNING, message, self.path, span, **more)
        self.items.append(d)
        return d
