"""`voxc runs [--state-dir DIR | --db URL]` lists runs; `voxc runs show RUN_ID` shows one's steps.

Runs are read from the durable journal (DBOS's system database): the local SQLite file under the
state folder, or the fleet's PostgreSQL database. The helpers here also find a run's plan for
`voxc approve` and `voxc run --resume`.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone

from vox.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Streams
from vox.compiler.units import format_money

NAME = "runs"
HELP = "list durable runs (status, spend, last step), or show the steps of one"


class RunNotFound(Exception):
    pass


@dataclass
class StoredRun:
    run_id: str
    status: str  # PENDING SUCCESS ERROR CANCELLED ...
    plan_hash: str
    flow: str
    output: dict | None  # the RunResult, for a finished run
    waiting: dict | None
    created: int | None


def add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", metavar="DIR", default=os.environ.get("VOX_STATE_DIR", ".vox"),
                        help="where the runs' journal is (default: .vox)")
    parser.add_argument("--db", metavar="URL", default=os.environ.get("VOX_DATABASE_URL"),
                        help="the fleet's PostgreSQL database instead of the local journal")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    parser.add_argument("run_id", nargs="?", metavar="RUN_ID", help="the run to show")
    parser.add_argument("--limit", type=int, default=50, help="how many runs to list, newest first")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_location(parser)


def database(args) -> str:
    from vox.runtime.durable import database_url

    env = dict(os.environ)
    if args.db:
        env["VOX_DATABASE_URL"] = args.db
    url = database_url(args.state_dir, env)
    if url.startswith("sqlite:///") and not os.path.exists(url[len("sqlite:///"):]):
        raise RunNotFound(f"no runs in {args.state_dir}/ (use --state-dir or --db to say where they are)")
    return url


def client(args):
    from dbos import DBOSClient

    return DBOSClient(system_database_url=database(args))


def find_run(args, run_id: str) -> StoredRun:
    """The run ``run_id``, with what `approve` and `--resume` need to carry it on."""
    c = client(args)
    try:
        found = c.list_workflows(workflow_ids=[run_id])
        if not found:
            raise RunNotFound(f"there is no run `{run_id}`")
        return _stored(c, found[0])
    finally:
        c.destroy()


def _stored(c, status) -> StoredRun:
    inputs = status.input
    positional = (inputs["args"] if isinstance(inputs, dict) else inputs.args) if inputs else ("", "")
    waiting = c.get_event(status.workflow_id, "waiting", timeout_seconds=0) if status.status == "PENDING" else None
    output = status.output if isinstance(status.output, dict) else None
    return StoredRun(status.workflow_id, status.status, positional[0], positional[1], output, waiting,
                     status.created_at)


def load_stored_plan(state_dir: str, plan_hash: str):
    from vox.compiler.plan import load_plan

    with open(os.path.join(state_dir, "plans", plan_hash + ".json"), encoding="utf-8") as f:
        return load_plan(f.read())


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
    c = client(args)
    try:
        rows = [_stored(c, s) for s in c.list_workflows(limit=args.limit, sort_desc=True)]
        last = {r.run_id: _last_step(c, r.run_id) for r in rows if r.status == "PENDING"}
    finally:
        c.destroy()
    if args.json:
        print(json.dumps([_row(r, last.get(r.run_id)) for r in rows], indent=2), file=streams.out)
        return EXIT_OK
    print(f"{'RUN':<24} {'STATUS':<10} {'FLOW':<16} {'SPENT':>10}  {'STARTED':<20} LAST STEP", file=streams.out)
    for r in rows:
        row = _row(r, last.get(r.run_id))
        spent = format_money(row["spent_micros"]) if row["spent_micros"] is not None else "-"
        print(f"{r.run_id:<24} {row['status']:<10} {r.flow:<16} {spent:>10}  {row['started']:<20} "
              f"{row['last_step'] or ''}", file=streams.out)
    return EXIT_OK


def show(args, streams: Streams) -> int:
    c = client(args)
    try:
        found = c.list_workflows(workflow_ids=[args.run_id])
        if not found:
            raise RunNotFound(f"there is no run `{args.run_id}`")
        r = _stored(c, found[0])
        steps = c.list_workflow_steps(args.run_id)
    finally:
        c.destroy()
    row = _row(r, steps[-1]["function_name"] if steps else None)
    if args.json:
        print(json.dumps({**row, "steps": [_step(s) for s in steps]}, indent=2, default=str), file=streams.out)
        return EXIT_OK
    print(f"run {r.run_id}: {row['status']}, flow {r.flow}, plan {r.plan_hash[:12]}", file=streams.out)
    for s in steps:
        st = _step(s)
        took = f"{st['ms']} ms" if st["ms"] is not None else ""
        print(f"  {st['n']:>3}  {st['name']:<56} {st['outcome']:<6} {took}", file=streams.out)
    if r.waiting:
        print(f"  waiting for approval of {r.waiting.get('tool')} at {r.waiting.get('step')}", file=streams.out)
    return EXIT_OK if r.status != "ERROR" else EXIT_FAILED


def _last_step(c, run_id: str) -> str | None:
    steps = c.list_workflow_steps(run_id)
    return steps[-1]["function_name"] if steps else None


def _row(r: StoredRun, last: str | None) -> dict:
    outcome = (r.output or {}).get("status")
    status = {"PENDING": "waiting" if r.waiting else "running", "SUCCESS": outcome or "ok",
              "ERROR": "crashed"}.get(r.status, r.status.lower())
    spent = (r.output or {}).get("spent", {}).get("cost_micros") if r.output else None
    started = datetime.fromtimestamp(r.created / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if r.created else ""
    return {"run": r.run_id, "status": status, "flow": r.flow, "plan": r.plan_hash, "spent_micros": spent,
            "started": started, "last_step": last, "error": (r.output or {}).get("error")}


def _step(s: dict) -> dict:
    start, end = s.get("started_at_epoch_ms"), s.get("completed_at_epoch_ms")
    return {"n": s["function_id"], "name": s["function_name"], "outcome": "error" if s.get("error") else "ok",
            "ms": (end - start) if start and end else None}
