"""`voxc run FILE [--flow NAME] [--input JSON|@file]`: run a flow and print its result.

Providers without an API key in the environment (and `sim` ones) are served by the built-in
simulator, which is said on stderr. On a terminal a live view shows each step, the spend against
the flow's caps and the receipts signed. Runs are durable by default (`.vox/` in the current
folder); a run that waits for a person's approval exits with status 4 and says how to approve it.

Exit status: 0 the run finished, 1 it failed (or the program has errors), 2 bad usage, 3 a bug in
voxc, 4 the run waits for approval (`voxc approve RUN_ID`).
"""

from __future__ import annotations

import argparse
import json
import os

import anyio

from vox.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, InputError, Streams, compile_plan
from vox.compiler.units import format_money

NAME = "run"
HELP = "run a flow of a Vox program (on the built-in simulator when no API key is set)"
EXIT_WAITING = 4


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", nargs="?", help="the .vox program (optional with --resume)")
    parser.add_argument("--resume", metavar="RUN_ID",
                        help="finish an interrupted run from its journal (no step it took is repeated)")
    parser.add_argument("--flow", metavar="NAME", help="the flow to run (needed when the program has several)")
    parser.add_argument("--input", metavar="JSON", default=None,
                        help="the flow's arguments as a JSON object, or @path to a JSON file")
    parser.add_argument("--json", action="store_true", help="print the whole outcome as JSON")
    parser.add_argument("--approve", metavar="TOOL", action="append", default=[],
                        help="approve every call of TOOL (`approval: human`) for this run")
    simulation = parser.add_mutually_exclusive_group()
    simulation.add_argument("--sim", action="store_true", help="simulate every provider, keys or not")
    simulation.add_argument("--live", action="store_true", help="never simulate: fail when a key is missing")
    parser.add_argument("--no-durable", action="store_true", help="do not journal the run (it cannot resume)")
    parser.add_argument("--state-dir", metavar="DIR", default=os.environ.get("VOX_STATE_DIR", ".vox"),
                        help="where runs, receipts and their key live (default: .vox)")
    parser.add_argument("--run-id", metavar="ID", help="the run's id (default: a new random one)")
    parser.add_argument("--seed", type=int, default=0, help="the simulator's seed")
    parser.add_argument("--db", metavar="URL", default=os.environ.get("VOX_DATABASE_URL"),
                        help="journal the run in this PostgreSQL database (a fleet's) instead of .vox/")
    parser.add_argument("--submit", action="store_true",
                        help="with --db: enqueue the run for the fleet's workers and print its id")
    parser.add_argument("--tenant", metavar="NAME", default="default", help="the tenant a submitted run belongs to")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="print each step as it finishes (a terminal shows a live view instead)")


def run(args: argparse.Namespace, streams: Streams) -> int:
    if args.resume:
        return resume(args, streams)
    if args.file is None:
        streams.fail("say which program to run: voxc run FILE (or --resume RUN_ID)")
        return EXIT_USAGE
    try:
        raw_input = read_input(args.input)
    except InputError as e:
        streams.fail(str(e))
        return EXIT_USAGE
    plan, status = compile_plan(args.file, streams, args.color)
    if plan is None:
        return status
    flow = args.flow or (next(iter(plan.flows)) if len(plan.flows) == 1 else None)
    if flow is None or flow not in plan.flows:
        names = ", ".join(plan.flows) or "none"
        streams.fail(f"choose a flow with --flow NAME (flows: {names})" if flow is None
                     else f"the program has no flow `{flow}` (flows: {names})")
        return EXIT_USAGE
    if args.submit:
        if not args.db:
            streams.fail("--submit needs the fleet's database: --db postgresql://...")
            return EXIT_USAGE
        from vox.runtime.host import new_run_id
        from vox.runtime.worker import submit

        run_id = submit(args.db, plan, flow, raw_input, args.run_id or new_run_id(), tuple(args.approve), args.tenant)
        print(run_id, file=streams.out)
        print(f"voxc: submitted run {run_id}; see it with: voxc runs --db URL", file=streams.err)
        return EXIT_OK
    from vox.runtime.host import RunOptions, Runtime

    env = dict(os.environ)
    if args.db:
        env["VOX_DATABASE_URL"] = args.db
    options = RunOptions(
        durable=not args.no_durable,
        state_dir=args.state_dir,
        simulate="all" if args.sim else "never" if args.live else "auto",
        seed=args.seed,
        approve=tuple(args.approve),
        base_dir=os.path.dirname(os.path.abspath(args.file)),
        env=env,
    )

    def line(event: dict) -> None:
        if event["event"] in ("agent_end", "tool_end"):
            spent = event.get("spent", {})
            cost = f"  {format_money(spent.get('cost_micros', 0))}" if spent else ""
            receipt = f"  receipt {event['receipt']}" if event.get("receipt") else ""
            print(f"  done {event['step']}{cost}{receipt}", file=streams.err)

    live = None
    if not args.json and streams.err.isatty():
        from vox.cli.live import LiveView
        from vox.runtime.executor.run import caps_of

        live = LiveView(streams.err, caps_of(plan.flows[flow].caps))
    events = live if live is not None else line if args.verbose else None

    async def go():
        async with Runtime(plan, options, events) as rt:
            for note in rt.notes:
                print(f"voxc: {note}", file=streams.err)
            if live is None:
                return await rt.run(flow, raw_input, args.run_id)
            with live:
                return await rt.run(flow, raw_input, args.run_id)

    result = anyio.run(go)
    return report(result, args, streams)


def resume(args, streams: Streams) -> int:
    """`--resume RUN_ID`: carry an interrupted run on with the plan it started with."""
    from vox.cli.runs import RunNotFound, find_run

    args.db = os.environ.get("VOX_DATABASE_URL")
    try:
        stored = find_run(args, args.resume)
    except RunNotFound as e:
        streams.fail(str(e))
        return EXIT_USAGE
    if args.file is not None:
        plan, status = compile_plan(args.file, streams, args.color)
        if plan is None:
            return status
        if plan.plan_hash != stored.plan_hash:
            streams.fail(
                f"run `{args.resume}` was started by another version of this program (plan "
                f"{stored.plan_hash[:12]}, this one compiles to {plan.plan_hash[:12]}): resuming it with a changed "
                "program could replay its history against different steps. Resume it without FILE to finish it "
                "with the plan it started with, or start a new run.")
            return EXIT_FAILED
    if stored.status != "PENDING":
        print(f"voxc: run {args.resume} already ended ({stored.status.lower()}); its outcome:", file=streams.err)
    result = resume_stored(args, streams, stored)
    return result if isinstance(result, int) else report(result, args, streams)


def resume_stored(args, streams: Streams, stored, before=None, answered: str | None = None):
    """Launch the journal with the run's stored plan (DBOS recovers the run) and wait for it; an
    exit status instead when the plan cannot be loaded."""
    from vox.cli.runs import load_stored_plan
    from vox.compiler.plan import PlanError
    from vox.runtime.host import RunOptions, Runtime

    try:
        plan = load_stored_plan(args.state_dir, stored.plan_hash)
    except (OSError, PlanError) as e:
        streams.fail(f"cannot load the plan of run `{stored.run_id}`: {e}")
        return EXIT_FAILED
    options = RunOptions(durable=True, state_dir=args.state_dir, approve=tuple(getattr(args, "approve", ()) or ()))

    async def go():
        from vox.runtime import durable

        async with Runtime(plan, options) as rt:
            for note in rt.notes:
                print(f"voxc: {note}", file=streams.err)
            if before is not None:
                await before()
            return await durable.resume(stored.run_id, stored.flow, answered)

    return anyio.run(go)


def read_input(text: str | None) -> dict:
    if text is None:
        return {}
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise InputError(f"cannot read {text[1:]}: {e.strerror or e}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"--input is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(value, dict):
        raise InputError("--input is a JSON object of the flow's arguments, as in '{\"ticket\": {...}}'")
    return value


def report(result, args, streams: Streams) -> int:
    from dataclasses import asdict

    if args.json:
        print(json.dumps(asdict(result), indent=2, ensure_ascii=False), file=streams.out)
    elif result.status == "ok":
        print(json.dumps(result.output, indent=2, ensure_ascii=False), file=streams.out)
    if result.status == "ok":
        spent = result.spent.get("cost_micros", 0) if result.spent else 0
        print(f"voxc: run {result.run_id} finished; spent {format_money(spent)}", file=streams.err)
        return EXIT_OK
    if result.status == "waiting":
        w = result.waiting or {}
        print(f"voxc: run {result.run_id} is waiting for approval of `{w.get('tool')}` at {w.get('step')}\n"
              f"  arguments: {json.dumps(w.get('arguments'), ensure_ascii=False)}\n"
              f"  approve it with: voxc approve {result.run_id}   (or deny: voxc approve {result.run_id} --deny)",
              file=streams.err)
        return EXIT_WAITING
    e = result.error or {}
    where = f" at {e['step']}" if e.get("step") else ""
    print(f"voxc: run {result.run_id} failed{where}: {e.get('message')}", file=streams.err)
    return EXIT_FAILED
