"""`voxc runs [--state-dir DIR | --db URL]` lists runs; `voxc runs show RUN_ID` shows one's steps.

Runs are read from the deployment's state store (:mod:`vox.runtime.state`): the SQLite file under
the state folder, or the fleet's PostgreSQL database. The helpers here also find a run's plan for
`voxc approve` and `voxc run --resume`.
"""

from __future__ import annotations

import argparse
import json
import os
from contextlib import contextmanager
from datetime import datetime, timezone

from vox.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Streams
from vox.compiler.units import format_money

NAME = "runs"
HELP = "list durable runs (status, spend, last step), or show the steps of one"


class RunNotFound(Exception):
    pass


def add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", metavar="DIR", default=os.environ.get("VOX_STATE_DIR", ".vox"),
                        help="where the runs are (default: .vox)")
    parser.add_argument("--db", metavar="URL", default=os.environ.get("VOX_DATABASE_URL"),
                        help="the fleet's PostgreSQL database instead of the local state folder")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    parser.add_argument("run_id", nargs="?", metavar="RUN_ID", help="the run to show")
    parser.add_argument("--limit", type=int, default=50, help="how many runs to list, newest first")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_location(parser)


@contextmanager
def state_store(args):
    """The deployment's state store named by ``--state-dir``/``--db``, read with the state key
    when there is one (sealed values of a run show as ``<sealed>`` without it)."""
    from vox.runtime.durable import state_url
    from vox.runtime.fleet.store import StoreError
    from vox.runtime.sealing import SealError, load_sealer
    from vox.runtime.state import StateStore

    url = state_url(args.state_dir, args.db)
    if not args.db and not os.path.exists(url[len("sqlite:///"):]):
        raise RunNotFound(f"no runs in {args.state_dir}/ (use --state-dir or --db to say where they are)")
    try:
        sealer = load_sealer(args.state_dir, os.environ, create=False)
        state = StateStore(url, sealer)
    except (StoreError, SealError) as e:
        raise RunNotFound(str(e)) from None
    except Exception as e:  # noqa: BLE001 - a database that cannot be reached is the user's to fix
        raise RunNotFound(f"cannot open the runs' database: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    try:
        yield state
    finally:
        state.close()


def find_run(args, run_id: str):
    """The stored run ``run_id`` (spec, status, what it waits for, result)."""
    return _read(args, lambda state: state.get_run(run_id))


def load_stored_plan(args, plan_hash: str):
    return _read(args, lambda state: state.load_plan(plan_hash))


def _read(args, what):
    from vox.runtime.state import RunMissing

    with state_store(args) as state:
        try:
            return what(state)
        except RunMissing as e:
            raise RunNotFound(str(e)) from None


def run(args: argparse.Namespace, streams: Streams) -> int:
    try:
        if args.action == "show":
            if not args.run_id:
                streams.fail("say which run: voxc runs show RUN_ID")
                return EXIT_USAGE
            return show(args, streams)
        return listing(args, streams)
    except RunNotFound as e:
        streams.fail(str(e))
        return EXIT_USAGE


def listing(args, streams: Streams) -> int:
    with state_store(args) as state:
        rows = [(r, _last_step(state.steps(r.run_id))) for r in state.list_runs(args.limit)]
    if args.json:
        print(json.dumps([_row(r, last) for r, last in rows], indent=2, ensure_ascii=False), file=streams.out)
        return EXIT_OK
    print(f"{'RUN':<24} {'STATUS':<10} {'FLOW':<16} {'SPENT':>10}  {'STARTED':<20} LAST STEP", file=streams.out)
    for r, last in rows:
        row = _row(r, last)
        spent = format_money(row["spent_micros"]) if row["spent_micros"] is not None else "-"
        print(f"{r.run_id:<24} {row['status']:<10} {r.spec.flow:<16} {spent:>10}  {row['started']:<20} "
              f"{row['last_step'] or ''}", file=streams.out)
        if r.status == "waiting":
            from vox.cli.run import waiting_what

            for w in r.waits:
                if isinstance(w, dict):
                    print(f"{'':<24} waits for {waiting_what(w)} at {w.get('step')}", file=streams.out)
    return EXIT_OK


def show(args, streams: Streams) -> int:
    from vox.runtime.state import RunMissing

    with state_store(args) as state:
        try:
            r = state.get_run(args.run_id, strict=False)
        except RunMissing as e:
            raise RunNotFound(str(e)) from None
        steps = [s for s in state.steps(args.run_id)]
    done = [s for s in steps if s["state"] == "done"]
    row = _row(r, _last_step(steps))
    result = r.result if isinstance(r.result, dict) else {}
    row["overshoots"] = result.get("overshoots", [])
    row["charges"] = result.get("charges", [])
    if args.json:
        print(json.dumps({**row, "spec": r.spec.to_json(), "steps": steps}, indent=2, default=str,
                         ensure_ascii=False), file=streams.out)
        return EXIT_OK
    print(f"run {r.run_id}: {row['status']}, flow {r.spec.flow}, plan {r.spec.plan_hash[:12]}, "
          f"tenant {r.spec.tenant}", file=streams.out)
    for n, st in enumerate(done, start=1):
        print(f"  {n:>3}  {st['step']:<56} {_outcome(st.get('value')):<8}", file=streams.out)
    for st in steps:
        if st["state"] == "began" and not any(d["step"] + "#began" == st["step"] for d in done):
            print(f"       {st['step'][:-len('#began')]:<56} began, not recorded (interrupted)", file=streams.out)
    for c in row["charges"]:
        print(f"  charged {format_money(c.get('cost_micros'))} at {c.get('step')} ({c.get('charged')}: "
              f"{c.get('why') or 'the provider reported no usage'})", file=streams.out)
    for o in row["overshoots"]:
        print(f"  overshoot at {o.get('step') or o.get('what')}: {json.dumps(o, ensure_ascii=False)}", file=streams.out)
    if r.status == "waiting":
        from vox.cli.run import waiting_what

        for w in r.waits:
            if isinstance(w, dict):
                print(f"  waiting for {waiting_what(w)} at {w.get('step')}", file=streams.out)
    return EXIT_OK if r.status != "failed" else EXIT_FAILED


def _outcome(value) -> str:
    if value == "<sealed>":
        return "sealed"
    if isinstance(value, dict) and "error" in value:
        return "error"
    return "ok"


def _last_step(steps: list[dict]) -> str | None:
    done = [s for s in steps if s["state"] == "done"]
    return max(done, key=lambda s: s["at"])["step"] if done else None


def _row(r, last: str | None) -> dict:
    result = r.result if isinstance(r.result, dict) else {}
    spent = result.get("spent", {}).get("cost_micros") if result else None
    started = datetime.fromtimestamp(r.created, timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if r.created else ""
    return {"run": r.run_id, "status": r.status, "flow": r.spec.flow, "plan": r.spec.plan_hash,
            "tenant": r.spec.tenant, "spent_micros": spent, "started": started, "last_step": last,
            "error": result.get("error"), "waiting": r.waiting if r.status == "waiting" else None,
            "waits": r.waits if r.status == "waiting" else []}
