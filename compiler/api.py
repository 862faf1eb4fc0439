"""The compiler's public entry points, shared by the CLI, the language server and the runtime.

>>> result = check_source("hello.vox", "label pii\\n")
>>> result.ok
True
"""

from __future__ import annotations

from dataclasses import dataclass

from vox.compiler.analysis import analyse
from vox.compiler.analysis.results import Analysis
from vox.compiler.diagnostics.model import Diagnostic, DiagnosticSink, sort_diagnostics
from vox.compiler.hir.lower import lower_module
from vox.compiler.hir.nodes import Program
from vox.compiler.source import SourceFile
from vox.compiler.syntax.parser import DeclCache, ParseResult, parse_module


@dataclass(frozen=True)
class CheckResult:
    source: SourceFile
    parse: ParseResult
    program: Program
    diagnostics: tuple[Diagnostic, ...]
    analysis: Analysis = Analysis()  # bounds, labels, effect sites, gate signals

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)

    @property
    def ok(self) -> bool:
        return not self.errors


def check_source(path: str, text: str, cache: DeclCache | None = None) -> CheckResult:
    """Parse and check one file's text. Never raises on bad input."""
    source = SourceFile(path, text)
    # The parser enforces the limits (vox.compiler.limits) that keep every later pass inside
    # Python's recursion limit and every number inside what a plan holds.
    parsed = parse_module(path, text, cache)
    program, semantic = lower_module(parsed)
    sink = DiagnosticSink(path)
    analysis = analyse(program, sink)
    diagnostics = list(parsed.diagnostics)
    diagnostics.extend(semantic)
    # Like the checker, the analyses stay quiet inside a declaration that has a syntax error.
    broken = [parsed.module.decls[i].span for i in parsed.decls_with_errors]
    diagnostics.extend(d for d in sink.items if not any(s.start <= d.span.start <= s.end for s in broken))
    return CheckResult(source, parsed, program, tuple(sort_diagnostics(diagnostics)), analysis)


def check_file(path: str, cache: DeclCache | None = None) -> CheckResult:
    """Read ``path`` (UTF-8, a leading byte-order mark dropped) and check it. OSError and
    UnicodeDecodeError propagate to the caller."""
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    return check_source(path, text, cache)
