"""`voxc approve RUN_ID [--deny]`: answer a run that waits for a person, and let it finish.

The run's program is not needed: its plan was kept in the state folder when the run started,
and the run resumes from its journal (no step it already took is repeated).
"""

from __future__ import annotations

import argparse
import os

import anyio

from vox.cli.common import EXIT_FAILED, EXIT_USAGE, Streams
from vox.cli.run import report

NAME = "approve"
HELP = "approve (or --deny) the call a waiting run asks a person about, and resume the run"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID", help="the waiting run")
    parser.add_argument("--deny", action="store_true", help="refuse the call instead (the run fails)")
    parser.add_argument("--state-dir", metavar="DIR", default=os.environ.get("VOX_STATE_DIR", ".vox"),
                        help="where the run's journal is (default: .vox)")
    parser.add_argument("--json", action="store_true", help="print the whole outcome as JSON")


def run(args: argparse.Namespace, streams: Streams) -> int:
    from dbos import DBOSClient

    from vox.compiler.plan import PlanError, load_plan
    from vox.runtime.durable import database_url

    db = os.path.join(args.state_dir, "dbos.sqlite")
    if not os.path.exists(db) and "VOX_DATABASE_URL" not in os.environ:
        streams.fail(f"no runs in {args.state_dir}/ (use --state-dir to say where they are)")
        return EXIT_USAGE
    client = DBOSClient(system_database_url=database_url(args.state_dir, os.environ))
    try:
        found = client.list_workflows(workflow_ids=[args.run_id])
        if not found:
            streams.fail(f"there is no run `{args.run_id}` in {args.state_dir}/")
            return EXIT_USAGE
        status = found[0]
        waiting = client.get_event(args.run_id, "waiting", timeout_seconds=0)
    finally:
        client.destroy()
    if status.status != "PENDING" or not waiting:
        streams.fail(f"run `{args.run_id}` is not waiting for approval (it is {status.status.lower()})")
        return EXIT_FAILED
    inputs = status.input
    plan_hash, flow = (inputs["args"] if isinstance(inputs, dict) else inputs.args)[:2]
    try:
        with open(os.path.join(args.state_dir, "plans", plan_hash + ".json"), encoding="utf-8") as f:
            plan = load_plan(f.read())
    except (OSError, PlanError) as e:
        streams.fail(f"cannot load the plan of run `{args.run_id}`: {e}")
        return EXIT_FAILED

    async def go():
        from vox.runtime import durable
        from vox.runtime.host import RunOptions, Runtime

        options = RunOptions(durable=True, state_dir=args.state_dir)
        async with Runtime(plan, options) as rt:
            for note in rt.notes:
                print(f"voxc: {note}", file=streams.err)
            await durable.decide(args.run_id, waiting["step"], not args.deny)
            return await durable.resume(args.run_id, flow, waiting["step"])

    verdict = "denied" if args.deny else "approved"
    print(f"voxc: {verdict} `{waiting['tool']}` at {waiting['step']}; resuming run {args.run_id}", file=streams.err)
    return report(anyio.run(go), args, streams)
