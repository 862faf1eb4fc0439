"""`voxc approve RUN_ID [--deny | --already-done --result JSON]`: answer a run that waits for a
person, and let it finish.

The run's program is not needed: its plan and spec are in the state store, and the run resumes
from its journal (no step it already took is repeated), in this process for a local run. In a
fleet (`--db`), the worker holding the run carries it on; this command records the answer and
waits for the run to move on.

For a call that was running when its run stopped (`kind: again`), a person can also say that it
already happened (`--already-done`), entering the call's result (`--result JSON`); the run then
goes on with that result, and the call is not made again.

Exit status: as `voxc run` (0 the run finished, 1 it failed, 4 it waits for a person again); 1 also
when the run does not wait for a person; 2 bad usage (an unknown run, a --result that is not JSON,
flags that contradict each other, a state folder that cannot be written).
"""

from __future__ import annotations

import argparse
import json

import anyio

from vox.cli.common import EXIT_FAILED, EXIT_USAGE, InputError, Streams, usable_state_dir
from vox.cli.inputs import read_json_text
from vox.cli.run import carry_on, report, waiting_what
from vox.cli.runs import RunNotFound, add_location, check_state_files, find_run, load_stored_plan

NAME = "approve"
HELP = "approve (or --deny) the call a waiting run asks a person about, and resume the run"
FLEET_WAIT_S = 600  # how long `approve --db` follows the run before leaving it to the fleet
HEARTBEAT_TTL_S = 30.0  # a worker that beat within this is taken to be alive


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID", help="the waiting run")
    verdict = parser.add_mutually_exclusive_group()
    verdict.add_argument("--deny", action="store_true", help="refuse the call instead (the run fails)")
    verdict.add_argument("--already-done", action="store_true",
                         help="the interrupted call already happened: carry on with --result instead of calling it")
    parser.add_argument("--result", metavar="JSON", help="with --already-done: the call's result, as JSON (or @file)")
    parser.add_argument("--step", metavar="STEP",
                        help="which question to answer, when several `par` branches wait at once (default: the oldest)")
    parser.add_argument("--json", action="store_true", help="print the whole outcome as JSON")
    add_location(parser)


def run(args: argparse.Namespace, streams: Streams) -> int:
    # The flags are checked before the store is opened: a mistake in them is reported as such.
    if args.result is not None and not args.already_done:
        streams.fail("--result goes with --already-done")
        return EXIT_USAGE
    result = None
    if args.already_done:
        if args.result is None:
            streams.fail("say what the interrupted call returned: --already-done --result JSON")
            return EXIT_USAGE
        try:
            result = read_json_text(args.result, "--result")
        except InputError as e:
            streams.fail(str(e))
            return EXIT_USAGE
    try:
        stored = find_run(args, args.run_id)
    except RunNotFound as e:
        streams.fail(str(e))
        return EXIT_USAGE
    waiting = stored.waiting if isinstance(stored.waiting, dict) else None
    if stored.status != "waiting" or not waiting:
        streams.fail(f"run `{args.run_id}` is not waiting for a person (it is {stored.status})")
        return EXIT_FAILED
    if args.step is not None:
        chosen = [w for w in stored.waits if isinstance(w, dict) and w.get("step") == args.step]
        if not chosen:
            steps = ", ".join(w.get("step", "?") for w in stored.waits if isinstance(w, dict))
            streams.fail(f"run `{args.run_id}` does not wait at `{args.step}`; it waits at: {steps}")
            return EXIT_USAGE
        waiting = chosen[0]
    step = waiting["step"]
    if args.already_done and waiting.get("kind") != "again":
        streams.fail(f"--already-done answers a call interrupted by a crash; run `{args.run_id}` waits for "
                     f"{waiting_what(waiting)}: approve or deny it")
        return EXIT_USAGE
    if not args.db:
        try:
            usable_state_dir(args.state_dir)
            check_state_files(args)  # a damaged file is named before any answer is taken
        except (InputError, RunNotFound) as e:
            streams.fail(str(e))
            return EXIT_USAGE
    verdict = "deny" if args.deny else "done" if args.already_done else "approve"
    said = {"deny": "denied", "done": "recorded as already done:", "approve": "approved"}[verdict]
    print(f"voxc: {said} {waiting_what(waiting)} at {step}; resuming run {args.run_id}", file=streams.err)
    if args.db and held_by_live_worker(args.db, args.run_id):
        return _in_fleet(args, streams, step, verdict, result)
    try:
        plan = load_stored_plan(args, stored.spec.plan_hash)
    except RunNotFound as e:
        streams.fail(str(e))
        return EXIT_FAILED
    return carry_on(args, streams, plan, stored.spec, before=lambda d: d.decide(args.run_id, step, verdict, result),
                    resume=True)


def held_by_live_worker(db: str, run_id: str) -> bool:
    """Whether a live `voxc worker` of the fleet is executing (and so waiting in) the run."""
    from dbos import DBOSClient

    from vox.runtime.fleet import WorkerRegistry

    client = DBOSClient(system_database_url=db)
    try:
        found = client.list_workflows(workflow_ids=[run_id])
    finally:
        client.destroy()
    if not found or found[0].status != "PENDING":
        return False
    alive = {w.executor_id for w in WorkerRegistry(db).alive(ttl_s=HEARTBEAT_TTL_S)}
    return found[0].executor_id in alive


def _in_fleet(args, streams: Streams, step: str, verdict: str, result) -> int:
    """Record the answer in the fleet's store; the worker waiting on the run picks it up (or, if
    that worker died, the peer that recovers it). Follow the run until it moves on."""
    from vox.runtime.fleet.store import StoreDamaged

    try:
        return _follow_in_fleet(args, streams, step, verdict, result)
    except (RunNotFound, StoreDamaged) as e:
        streams.fail(str(e))
        return EXIT_USAGE


def _follow_in_fleet(args, streams: Streams, step: str, verdict: str, result) -> int:
    from vox.cli.runs import state_store
    from vox.runtime.host import RunResult

    with state_store(args) as state:
        state.decide(args.run_id, step, verdict, result)

        async def follow():
            with anyio.move_on_after(FLEET_WAIT_S):
                while True:
                    r = state.get_run(args.run_id)
                    if r.status in ("ok", "failed") and isinstance(r.result, dict):
                        return RunResult(**r.result)
                    if r.status == "waiting" and isinstance(r.waiting, dict) and r.waiting.get("step") != step:
                        return RunResult(args.run_id, r.spec.flow, "waiting", waiting=r.waiting)
                    await anyio.sleep(0.2)
            return None

        outcome = anyio.run(follow)
    if outcome is None:
        print(f"voxc: run {args.run_id} is still going; follow it with: voxc runs show {args.run_id} --db URL",
              file=streams.err)
        return 0
    return report(outcome, args, streams)
