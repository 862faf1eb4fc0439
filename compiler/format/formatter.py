"""``format_source``: parse, attach comments, print, and prove nothing was lost."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from vox.compiler.diagnostics.model import Diagnostic
from vox.compiler.format.comments import attach_comments
from vox.compiler.format.equivalence import same_meaning
from vox.compiler.format.printer import LINE_WIDTH, PrintContext, comment_text, print_module
from vox.compiler.syntax import ast
from vox.compiler.syntax.parser import DeclCache, parse_module


@dataclass(frozen=True, slots=True)
class FormatResult:
    """The formatted text, or None when the input has syntax errors (it is then left alone);
    and the parser's diagnostics."""

    text: str | None
    diagnostics: tuple[Diagnostic, ...]


class FormattingBug(RuntimeError):
    """The formatter produced text that does not mean what its input meant (a compiler bug)."""


def format_source(
    text: str, path: str = "<input>", *, line_width: int = LINE_WIDTH, cache: DeclCache | None = None
) -> FormatResult:
    """Format one file's text in the canonical layout.

    The result is parsed again and compared with the input before it is returned; ``cache``
    (shared with the checker or the language server, or a fresh one) saves parsing the
    declarations that formatting left unchanged a second time.

    >>> format_source("label pii\\nflow f() -> int {   return  (1 + 2) * 3 }").text
    'label pii\\n\\nflow f() -> int {\\n  return (1 + 2) * 3\\n}\\n'
    >>> format_source("flow f( {").text is None
    True
    """
    cache = cache if cache is not None else DeclCache()
    parsed = parse_module(path, text, cache)
    if any(d.is_error for d in parsed.diagnostics):
        return FormatResult(None, parsed.diagnostics)
    context = PrintContext(text, attach_comments(parsed.module, text), line_width)
    formatted = print_module(parsed.module, context)
    check_same_module(parsed.module, formatted, path, cache)
    return FormatResult(formatted, parsed.diagnostics)


def check_same_module(original: ast.Module, formatted: str, path: str, cache: DeclCache | None = None) -> None:
    """Raise :class:`FormattingBug` unless ``formatted`` parses cleanly to the same declarations
    with the same comments as ``original``."""
    reparsed = parse_module(path, formatted, cache)
    errors = [d for d in reparsed.diagnostics if d.is_error]
    if errors:
        raise FormattingBug(f"formatted {path} does not parse: {errors[0].message} at {errors[0].span}")
    if not same_meaning(reparsed.module.decls, original.decls):
        raise FormattingBug(f"formatting changed the meaning of {path}")
    if _comment_texts(reparsed.module) != _comment_texts(original):
        raise FormattingBug(f"formatting lost or changed a comment in {path}")


def _comment_texts(module: ast.Module) -> Counter[str]:
    return Counter(comment_text(c) for c in module.comments)
