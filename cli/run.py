"""`voxc run FILE [--flow NAME] [--input JSON|@file]`: run a flow and print its result.

Providers without an API key in the environment (and `sim` ones) are served by the built-in
simulator, which is said on stderr. On a terminal a live view shows each step, the spend against
the flow's caps and the receipts signed. Runs are durable by default (`.vox/` in the current
folder); a run that waits for a person's approval exits with status 4 and says how to approve it.

Exit status: 0 the run finished, 1 it failed (or the program has errors), 2 bad usage, 3 a bug in
voxc, 4 the run waits for approval (`voxc approve RUN_ID`), 5 the runtime's budget monitor stopped
a call the compiler's bound did not allow for (a bug in voxc's budget analysis).
"""

from __future__ import annotations

import argparse
import json
import os
from contextlib import nullcontext
from dataclasses import replace

import anyio

from vox.cli.common import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, InputError, Streams, compile_plan, usable_database,
                             usable_state_dir, whole_number)
from vox.cli.inputs import check_flow_input, read_input
from vox.cli.limits import MAX_SEED
from vox.compiler.units import format_money

NAME = "run"
HELP = "run a flow of a Vox program (on the built-in simulator when no API key is set)"
EXIT_WAITING = 4
# A run error's `kind` → its exit status, where it is not EXIT_FAILED: a refusal by the budget
# monitor means the compiler's bound was wrong, not the program (runtime/executor/errors.py).
# A monitor stopped a call the compiler should have refused (a bug in voxc's analyses).
EXIT_BY_KIND = {"bound_broken": 5, "label": 5}


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
    parser.add_argument("--seed", type=whole_number(0, MAX_SEED), default=0, help="the simulator's seed (0 or more)")
    parser.add_argument("--db", metavar="URL", default=os.environ.get("VOX_DATABASE_URL"),
                        help="keep the run (journal, receipts, ledgers) in this PostgreSQL database (a fleet's) "
                             "instead of .vox/")
    parser.add_argument("--submit", action="store_true",
                        help="with --db: enqueue the run for the fleet's workers and print its id")
    parser.add_argument("--tenant", metavar="NAME", default="default",
                        help="the tenant the run belongs to (its `budget tenant` and concurrency)")
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
        streams.fail(f"{args.file} has no flow to run" if not plan.flows
                     else f"choose a flow with --flow NAME (flows: {names})" if flow is None
                     else f"the program has no flow `{flow}` (flows: {names})")
        return EXIT_USAGE
    if args.input is None and plan.flows[flow].params:  # refused before a run starts, not at its first step
        params = [p.name for p in plan.flows[flow].params]
        example = ", ".join(f'"{n}": ...' for n in params)
        streams.fail(f"flow `{flow}` needs its arguments ({', '.join(f'`{n}`' for n in params)}): pass them as a "
                     f"JSON object, as in --input '{{{example}}}' (or --input @FILE.json)")
        return EXIT_USAGE
    if args.submit and not args.db:
        streams.fail("--submit needs the fleet's database: --db postgresql://...")
        return EXIT_USAGE
    try:
        check_run_request(args, plan, flow, raw_input)
    except InputError as e:
        streams.fail(str(e))
        return EXIT_USAGE
    from vox.runtime.host import new_run_id
    from vox.runtime.state import RunSpec, hide_password
    from vox.runtime.durable import state_url

    spec = RunSpec(run_id=args.run_id or new_run_id(), plan_hash=plan.plan_hash, flow=flow, input=raw_input,
                   base_dir=os.path.dirname(os.path.abspath(args.file)),
                   simulate="all" if args.sim else "never" if args.live else "auto", seed=args.seed,
                   tenant=args.tenant, store=hide_password(state_url(args.state_dir, args.db)),
                   approve=tuple(args.approve))
    if args.submit:
        return submit(args, streams, plan, spec)

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
    if args.no_durable:
        return report(anyio.run(run_plain, plan, spec, args, events, streams, live), args, streams)
    return carry_on(args, streams, plan, spec, events, live)


def check_run_request(args, plan, flow: str, raw_input: dict) -> None:
    """Refuse, before a run starts, what would only fail it (or crash it) later: an input that
    does not fit the flow, a tool to `--approve` that the program lacks, conflicting flags, and a
    state folder or database that cannot be used."""
    check_flow_input(plan, flow, raw_input)
    unknown = [t for t in args.approve if t not in plan.tools]
    if unknown:
        asks = ", ".join(f"`{t.name}`" for t in plan.tools.values() if t.approval == "human") or "none"
        raise InputError(f"--approve {unknown[0]}: the program has no tool `{unknown[0]}` (tools that wait for "
                         f"approval: {asks})")
    if args.submit and args.no_durable:
        raise InputError("--submit and --no-durable cannot go together: a submitted run is durable")
    if args.submit:
        return  # its database is checked once the fleet's keys are (see submit)
    if args.db:
        usable_database(args.db, must_exist=False)
    else:
        usable_state_dir(args.state_dir)


async def run_plain(plan, spec, args, events, streams: Streams, live):
    """A run that is not journaled (`--no-durable`): it cannot be resumed."""
    from vox.runtime.host import Runtime, options_for
    from vox.runtime.executor.journal import NoJournal

    options = replace(options_for(spec, args.state_dir, dict(os.environ), args.db), durable=False)
    async with Runtime(plan, options, events) as rt:
        for note in rt.notes:
            print(f"voxc: {note}", file=streams.err)
        with live if live is not None else nullcontext():
            return await rt.execute_spec(spec, NoJournal(rt.store.run))


def carry_on(args, streams: Streams, plan, spec, events=None, live=None, before=None,
             resume: bool = False) -> int:
    """Start (or, with ``resume``, carry on) the durable run ``spec`` in this process and report
    how it ended or where it waits: the one way `run`, `--resume` and `approve` execute a run."""
    from vox.runtime.durable import Durability
    from vox.runtime.receipts import ReceiptError
    from vox.runtime.sealing import SealError
    from vox.runtime.state import RunConflict

    async def go():
        async with Durability(args.state_dir, dict(os.environ), args.db) as d:
            rt = await d.runtime_for(spec, plan, events)
            for note in rt.notes:
                print(f"voxc: {note}", file=streams.err)
            if before is not None:
                before(d)
            with live if live is not None else nullcontext():
                if resume:
                    return await d.resume(spec.run_id)
                return await d.start(plan, spec)

    try:
        result = anyio.run(go)
    except RunConflict as e:
        streams.fail(str(e))
        return EXIT_USAGE
    except (SealError, ReceiptError) as e:  # a key or a ledger that cannot be used: before any tool acted
        streams.fail(str(e))
        return EXIT_FAILED
    return report(result, args, streams)


def submit(args, streams: Streams, plan, spec) -> int:
    from vox.runtime.state import RunConflict
    from vox.runtime.worker import fleet_keys_missing, submit as enqueue

    missing = fleet_keys_missing(os.environ)
    if missing:
        streams.fail(f"a fleet's runs must be readable and verifiable on every worker: set {' and '.join(missing)} "
                     "(the same values on every machine), e.g. export VOX_STATE_KEY=$(openssl rand -hex 32)")
        return EXIT_USAGE
    try:
        usable_database(args.db, must_exist=False)
        run_id = enqueue(args.db, plan, spec, args.state_dir, dict(os.environ))
    except (InputError, RunConflict) as e:
        streams.fail(str(e))
        return EXIT_USAGE
    print(run_id, file=streams.out)
    print(f"voxc: submitted run {run_id}; see it with: voxc runs --db URL", file=streams.err)
    return EXIT_OK


def resume(args, streams: Streams) -> int:
    """`--resume RUN_ID`: carry an interrupted run on with the plan and spec it started with."""
    from vox.cli.runs import RunNotFound, find_run, load_stored_plan

    ignored = [flag for flag, given in (("--seed", args.seed != 0), ("--input", args.input is not None),
                                        ("--flow", args.flow is not None), ("--run-id", args.run_id is not None),
                                        ("--submit", args.submit), ("--sim", args.sim), ("--live", args.live),
                                        ("--approve", bool(args.approve)), ("--tenant", args.tenant != "default"),
                                        ("--no-durable", args.no_durable))
               if given]
    if ignored:
        streams.fail(f"{', '.join(ignored)} cannot be given with --resume: a run carries on exactly as it was "
                     "started (its seed, input, flow, simulation and approvals are stored with it)")
        return EXIT_USAGE
    try:
        stored = find_run(args, args.resume)
        plan = load_stored_plan(args, stored.spec.plan_hash)
    except RunNotFound as e:
        streams.fail(str(e))
        return EXIT_USAGE
    if args.file is not None:
        compiled, status = compile_plan(args.file, streams, args.color)
        if compiled is None:
            return status
        if compiled.plan_hash != stored.spec.plan_hash:
            streams.fail(
                f"run `{args.resume}` was started by another version of this program (plan "
                f"{stored.spec.plan_hash[:12]}, this one compiles to {compiled.plan_hash[:12]}): resuming it with a "
                "changed program could replay its history against different steps. Resume it without FILE to finish "
                "it with the plan it started with, or start a new run.")
            return EXIT_FAILED
    if stored.status in ("ok", "failed"):
        print(f"voxc: run {args.resume} already ended ({stored.status}); its outcome:", file=streams.err)
    return carry_on(args, streams, plan, stored.spec, resume=True)


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
        print(waiting_message(result.run_id, result.waiting or {}), file=streams.err)
        return EXIT_WAITING
    e = result.error or {}
    where = f" at {e['step']}" if e.get("step") else ""
    print(f"voxc: run {result.run_id} failed{where}: {e.get('message')}", file=streams.err)
    return EXIT_BY_KIND.get(e.get("kind"), EXIT_FAILED)


def waiting_what(w: dict) -> str:
    """What a waiting run asks a person, in a few words."""
    kind, tool = w.get("kind", "call"), w.get("tool")
    if kind == "again":
        return f"whether to call `{tool}` again (the run stopped while it was running; it may already have acted)"
    if kind == "answer":
        return f"the answer of `{tool}` (gate `{w.get('gate')}`)"
    return f"approval of `{tool}`"


def waiting_message(run_id: str, w: dict) -> str:
    lines = [f"voxc: run {run_id} is waiting for {waiting_what(w)} at {w.get('step')}",
             f"  arguments: {json.dumps(w.get('arguments'), ensure_ascii=False)}"]
    if w.get("idempotency_key"):
        lines.append(f"  idempotency key: {w['idempotency_key']}")
    if w.get("kind") == "again":
        lines += [f"  call it again:           voxc approve {run_id}",
                  f"  it already happened:     voxc approve {run_id} --already-done --result JSON",
                  f"  fail the run:            voxc approve {run_id} --deny"]
    else:
        lines.append(f"  approve it with: voxc approve {run_id}   (or deny: voxc approve {run_id} --deny)")
    return "\n".join(lines)
