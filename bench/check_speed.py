"""`voxc check` wall time on a generated program vs the raw lark parse of the same file.

    python bench/check_speed.py [--lines 10000] [--repeat 3]

Generates a program of about N lines by repeating the declarations of examples/reference.vox
under fresh names (so it checks clean), then times, best of --repeat runs each:
  - raw lark: one LALR parse of the whole file with the same grammar (start rule `start`),
    positions kept, no AST building;
  - check (cold): parse per declaration + AST + name resolution + type checking;
  - check (warm cache): the same with the per-declaration parse cache filled, as the language
    server and a repeated CLI check in one process see it.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

_NAMES = (
    "pii payment fleet tenant openai anthropic onprem mini sonnet local Intent Ticket Order Triage Resolution "
    "lookup_order issue_refund search_kb confident truthful triager resolver handle handle_batch"
).split()


def generate(lines: int) -> str:
    """A clean program of about ``lines`` lines: reference.vox's declarations, renamed per copy."""
    reference = (ROOT / "examples" / "reference.vox").read_text()
    body = reference.split('test "refund')[0]  # tests name flows; keep declarations only
    header, rest = body.split("provider openai", 1)
    rest = "provider openai" + rest
    # labels and the run budgets are declared once; everything else is copied
    header = "\n".join(line for line in header.splitlines() if not line.startswith("//"))
    per_copy = rest.count("\n")
    copies = max(1, lines // per_copy)
    parts = [header]
    pattern = re.compile(r"\b(" + "|".join(n for n in _NAMES if n not in ("pii", "payment", "fleet", "tenant")) + r")\b")
    for i in range(copies):
        renamed = pattern.sub(lambda m: f"{m.group(1)}_{i}", rest)
        # provider protocols are words of the language, not names to rename
        parts.append(re.sub(r"= (openai|anthropic)_\d+ \{", r"= \1 {", renamed))
    return "\n".join(parts)


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    from vox.compiler.api import check_source
    from vox.compiler.syntax.parser import DeclCache, lark_parser

    text = generate(args.lines)
    n_lines = text.count("\n") + 1
    lark = lark_parser()
    result = check_source("bench.vox", text)
    if result.diagnostics:
        print("generated program does not check clean:", result.diagnostics[:3], file=sys.stderr)
        return 1

    raw = best_of(args.repeat, lambda: lark.parse(text, start="start"))
    cold = best_of(args.repeat, lambda: check_source("bench.vox", text))
    cache = DeclCache()
    check_source("bench.vox", text, cache)
    warm = best_of(args.repeat, lambda: check_source("bench.vox", text, cache))

    print(f"program: {n_lines} lines, {len(text) / 1024:.0f} KiB, {len(result.parse.module.decls)} declarations")
    print(f"raw lark parse      {raw * 1000:8.0f} ms  ({n_lines / raw:8.0f} lines/s)")
    print(f"voxc check (cold)   {cold * 1000:8.0f} ms  ({n_lines / cold:8.0f} lines/s)  {cold / raw:.2f}x raw parse")
    print(f"voxc check (warm)   {warm * 1000:8.0f} ms  ({n_lines / warm:8.0f} lines/s)  {warm / raw:.2f}x raw parse")
    return 0


if __name__ == "__main__":
    sys.exit(main())
