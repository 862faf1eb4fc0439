"""`voxc check FILE...`: parse and check files, print their diagnostics.

Diagnostics go to stdout in both formats, so that they pipe and redirect without ``2>&1``;
only a file that cannot be read is reported on stderr. Text output is each diagnostic in rustc's
layout followed by a blank line, then one summary line (``error: 2 errors, 1 warning in 1 file``,
or ``ok: no problems in 3 files``). JSON output is one object, ``{"diagnostics": [...]}``, as
made by :func:`vox.compiler.diagnostics.render.render_json`.

With ``--preflight``, each file that checks without errors then goes through pre-flight
(:func:`vox.compiler.preflight.preflight`): its `python(...)` bindings are imported and compared
with the tools' parameters, the `env("...")` variables its providers need are looked up in this
process's environment, and each flow's cost bound is compared with `budget tenant` / `budget
fleet`. Its diagnostics (`V6xxx`) are printed with the others. Nothing is sent over the network.

Exit status: 0 when no file has an error (warnings allowed), 1 when any does (pre-flight
included), 2 when a file cannot be read (the others are still checked).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace

from vox.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    InputError,
    Streams,
    print_diagnostics,
    read_source,
    use_color,
)
from vox.compiler.api import CheckResult, check_source
from vox.compiler.diagnostics.model import sort_diagnostics
from vox.compiler.diagnostics.render import render_json, summary_line
from vox.compiler.preflight import preflight
from vox.compiler.syntax.parser import DeclCache

NAME = "check"
HELP = "check Vox files and report diagnostics"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add `check`'s arguments."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="a .vox file to check")
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: text)"
    )
    parser.add_argument(
        "--preflight",
        action="store_true",
        help="after a clean check, also import python bindings, look up env(...) variables and compare "
        "flow bounds with the tenant and fleet budgets (no network)",
    )


def run(args: argparse.Namespace, streams: Streams) -> int:
    """Check every file named, print what was found, and return the exit status."""
    results: list[CheckResult] = []
    unreadable = False
    cache = DeclCache()  # the language server's per-declaration cache: shared declarations parse once
    for path in dict.fromkeys(args.files):
        try:
            text = read_source(path)
        except InputError as e:
            streams.fail(str(e))
            unreadable = True
            continue
        result = check_source(path, text, cache)
        if args.preflight and result.ok:
            found = preflight(result.program, result.analysis, os.environ)
            result = replace(result, diagnostics=tuple(sort_diagnostics([*result.diagnostics, *found])))
        results.append(result)
    if args.format == "json":
        _print_json(results, streams)
    else:
        _print_text(results, streams, use_color(args.color, streams.out))
    if unreadable:
        return EXIT_USAGE
    return EXIT_FAILED if any(not r.ok for r in results) else EXIT_OK


def _print_text(results: list[CheckResult], streams: Streams, color: bool) -> None:
    """Every diagnostic, then the summary line (nothing at all when no file could be read)."""
    if not results:
        return
    sources = {r.source.path: r.source for r in results}
    diagnostics = [d for r in results for d in r.diagnostics]
    print_diagnostics(diagnostics, sources, streams.out, color)
    print(summary_line(diagnostics, len(results), color=color), file=streams.out)


def _print_json(results: list[CheckResult], streams: Streams) -> None:
    """One JSON object with every file's diagnostics, in file order."""
    sources = {r.source.path: r.source for r in results}
    diagnostics = [d for r in results for d in r.diagnostics]
    print(json.dumps(render_json(diagnostics, sources), indent=2, ensure_ascii=False), file=streams.out)
