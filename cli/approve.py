"""`voxc approve RUN_ID [--deny]`: answer a run that waits for a person, and let it finish.

The run's program is not needed: its plan was kept in the state folder when the run started,
and the run resumes from its journal (no step it already took is repeated).
"""

from __future__ import annotations

import argparse

from vox.cli.common import EXIT_FAILED, EXIT_USAGE, Streams
from vox.cli.run import report, resume_stored
from vox.cli.runs import RunNotFound, add_location, find_run

NAME = "approve"
HELP = "approve (or --deny) the call a waiting run asks a person about, and resume the run"

def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID", help="the waiting run")
    parser.add_argument("--deny", action="store_true", help="refuse the call instead (the run fails)")
    parser.add_argument("--json", action="store_true", help="print the whole outcome as JSON")
    add_location(parser)

def run(args: argparse.Namespace, streams: Streams) -> int:
    try:
        stored = find_run(args, args.run_id)
    except RunNotFound as e:
        streams.fail(str(e))
        return EXIT_USAGE
    if stored.status != "PENDING" or not stored.waiting:
        streams.fail(f"run `{args.run_id}` is not waiting for approval (it is {stored.status.lower()})")
        return EXIT_FAILED
    step = stored.waiting["step"]
    verdict = "denied" if args.deny else "approved"
    print(f"voxc: {verdict} {stored.waiting['tool']} at {step}; resuming run {args.run_id}", file=streams.err)

    async def answer():
        from vox.runtime import durable

        await durable.decide(args.run_id, step, not args.deny)

    result = resume_stored(args, streams, stored, before=answer, answered=step)
    return result if isinstance(result, int) else report(result, args, streams)
