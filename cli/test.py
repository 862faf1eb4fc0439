"""`voxc test FILE...`: run every `test` block on the simulator and report, pytest-style.

Exit status 0 when every test passed, 1 when one failed (or a file has errors), 2 for usage.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import anyio

from vox.cli.common import EXIT_FAILED, EXIT_OK, Streams, compile_plan, whole_number
from vox.cli.limits import MAX_SEED

NAME = "test"
HELP = "run the `test` blocks of Vox programs on the simulator"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="a .vox program")
    parser.add_argument("-k", metavar="TEXT", dest="keyword", help="run only tests whose name contains TEXT")
    parser.add_argument("--seed", type=whole_number(0, MAX_SEED), default=0, help="the simulator's seed (0 or more)")


def run(args: argparse.Namespace, streams: Streams) -> int:
    passed = failed = 0
    worst = EXIT_OK
    for path in args.files:
        plan, status = compile_plan(path, streams, args.color)
        if plan is None:
            worst = max(worst, status)
            continue
        tests = [t for t in plan.tests if not args.keyword or args.keyword in t.name]
        if not tests:
            print(f"{path}: no tests", file=streams.out)
            continue
        outcomes = anyio.run(_run_all, plan, tests, os.path.dirname(os.path.abspath(path)), args.seed)
        for o in outcomes:
            mark = "PASSED" if o.passed else "FAILED"
            print(f"{path}::{o.name} {mark} ({o.seconds * 1000:.0f} ms)", file=streams.out)
            if not o.passed:
                print(f"    {o.message}", file=streams.out)
        passed += sum(o.passed for o in outcomes)
        failed += sum(not o.passed for o in outcomes)
    print(f"{passed} passed, {failed} failed", file=streams.out)
    if failed:
        worst = max(worst, EXIT_FAILED)
    return worst


async def _run_all(plan, tests, base_dir: str, seed: int):
    from vox.runtime.host import RunOptions, Runtime
    from vox.runtime.testing import run_test

    with tempfile.TemporaryDirectory(prefix="vox-test-") as state:
        options = RunOptions(durable=False, state_dir=state, simulate="all", seed=seed, base_dir=base_dir,
                             env={"VOX_RECEIPT_KEY": "vox-test-key"})
        async with Runtime(plan, options) as rt:
            return [await run_test(rt, t) for t in tests]
