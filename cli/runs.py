"""`voxc runs [--state-dir DIR | --db URL]` lists runs; `voxc runs show RUN_ID` shows one's steps;
`voxc runs doctor [--repair]` checks the state files.

Runs are read from the deployment's state store (:mod:`vox.runtime.state`): the SQLite file under
the state folder, or the fleet's PostgreSQL database. The helpers here also find a run's plan for
`voxc approve` and `voxc run --resume`.

`doctor` checks each state file (`PRAGMA integrity_check`), the receipt ledger's chain of every
run, and the runs of the journal against DBOS's workflows, and reports per file. With `--repair`
a damaged SQLite file is moved aside (`FILE.damaged-<UTC time>`, never deleted) and what can be
read of the state file is written to a new one; DBOS's file is not rebuilt from a damaged copy
(DBOS makes a new one, and each run that is not finished is carried on from its journal).

Exit status: 0 nothing is wrong (`doctor`: or all of it was repaired), 1 `show`: the run failed;
`doctor`: something is wrong (and was not repaired), 2 bad usage, no runs there, or a state file
that is damaged or cannot be read (named, with what to do).
"""

from __future__ import annotations

import argparse
import json
import os
from contextlib import contextmanager
from datetime import datetime, timezone

from vox.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, InputError, Streams, usable_database, whole_number
from vox.compiler.units import format_money

NAME = "runs"
HELP = "list durable runs (status, spend, last step), show the steps of one, or check the state files (doctor)"
STATE_FILES = (("state.sqlite", "runs, journals, decisions, plans, receipts"),
               ("dbos.sqlite", "DBOS's workflows: which process carries each run on"))


class RunNotFound(Exception):
    pass


def add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", metavar="DIR", default=os.environ.get("VOX_STATE_DIR", ".vox"),
                        help="where the runs are (default: .vox)")
    parser.add_argument("--db", metavar="URL", default=os.environ.get("VOX_DATABASE_URL"),
                        help="the fleet's PostgreSQL database instead of the local state folder")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=("list", "show", "doctor"), default="list")
    parser.add_argument("run_id", nargs="?", metavar="RUN_ID", help="the run to show")
    parser.add_argument("--limit", type=whole_number(1), default=50, help="how many runs to list, newest first")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--repair", action="store_true",
                        help="with doctor: move each damaged state file aside, keeping what can be read")
    add_location(parser)


def check_state_files(args, names: tuple[str, ...] = ("state.sqlite", "dbos.sqlite")) -> None:
    """RunNotFound naming the state file of the folder (``--state-dir``) that is damaged, and what
    to do; nothing for a fleet's database, whose damage is named as it is met."""
    from vox.runtime.state import StateDamaged, check_state_file

    if args.db:
        return
    for name in names:
        try:
            check_state_file(os.path.join(os.path.abspath(args.state_dir), name))
        except StateDamaged as e:
            raise RunNotFound(str(e)) from None


@contextmanager
def state_store(args):
    """The deployment's state store named by ``--state-dir``/``--db``, read with the state key
    when there is one (sealed values of a run show as ``<sealed>`` without it)."""
    from vox.runtime.durable import state_url
    from vox.runtime.fleet.store import StoreError
    from vox.runtime.sealing import SealError, load_sealer
    from vox.runtime.state import StateStore

    url = state_url(args.state_dir, args.db)
    if not args.db and os.path.exists(args.state_dir) and not os.path.isdir(args.state_dir):
        raise RunNotFound(f"--state-dir {args.state_dir} is a file, not a folder of runs (use --state-dir or --db to "
                          "say where they are)")
    if not args.db and not os.path.isfile(url[len("sqlite:///"):]):
        raise RunNotFound(f"no runs in {args.state_dir}/ (use --state-dir or --db to say where they are)")
    if args.db:
        try:  # never created here: a mistyped URL must not leave an empty store behind
            usable_database(args.db, must_exist=True)
        except InputError as e:
            raise RunNotFound(str(e)) from None
    check_state_files(args, ("state.sqlite",))  # a damaged file is named, never read half
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
    from vox.runtime.fleet.store import StoreDamaged
    from vox.runtime.state import RunMissing

    with state_store(args) as state:
        try:
            return what(state)
        except (RunMissing, StoreDamaged) as e:
            raise RunNotFound(str(e)) from None


def run(args: argparse.Namespace, streams: Streams) -> int:
    from vox.runtime.fleet.store import StoreDamaged

    if args.repair and args.action != "doctor":
        streams.fail("--repair goes with doctor: voxc runs doctor --repair")
        return EXIT_USAGE
    try:
        if args.action == "doctor":
            return doctor(args, streams)
        if args.action == "show" and not args.run_id:
            streams.fail("say which run: voxc runs show RUN_ID")
            return EXIT_USAGE
        try:  # not read here, but what a run needs to go on: said, and the runs listed all the same
            check_state_files(args, ("dbos.sqlite",))
        except RunNotFound as e:
            print(f"voxc: warning: {e}", file=streams.err)
        return show(args, streams) if args.action == "show" else listing(args, streams)
    except (RunNotFound, StoreDamaged) as e:
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


# ---- voxc runs doctor -----------------------------------------------------------------------------


def doctor(args, streams: Streams) -> int:
    """Check the state files, the receipt chains and the runs against DBOS's workflows; with
    ``--repair``, move each damaged SQLite file aside, keeping what can be read."""
    if args.run_id:
        streams.fail("doctor checks the whole state folder (or database): voxc runs doctor [--repair]")
        return EXIT_USAGE
    if args.db:
        report = _doctor_database(args)
    else:
        folder = os.path.abspath(args.state_dir)
        if not os.path.isdir(folder) or not any(os.path.exists(os.path.join(folder, n)) for n, _ in STATE_FILES):
            streams.fail(f"no state files in {args.state_dir}/ (use --state-dir or --db to say where they are)")
            return EXIT_USAGE
        report = _doctor_folder(args, folder)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False, default=str), file=streams.out)
    else:
        for entry in report["checks"]:
            print(f"{entry['what']:<14} {entry['verdict']}", file=streams.out)
            for line in entry.get("notes", []):
                print(f"{'':<14}   {line}", file=streams.out)
        if report["problems"] and not args.repair and report.get("repairable"):
            print(f"voxc: to move the damaged files aside, keeping what can be read: voxc runs doctor "
                  f"{_where(args)} --repair", file=streams.err)
    return EXIT_FAILED if report["problems"] else EXIT_OK


def _where(args) -> str:
    from vox.runtime.state import hide_password

    return f"--db {hide_password(args.db)}" if args.db else f"--state-dir {args.state_dir}"


def _doctor_folder(args, folder: str) -> dict:
    from vox.runtime.state import file_problem, move_aside, salvage

    checks: list[dict] = []
    problems = 0
    repairable = False
    healthy: dict[str, bool] = {}
    for name, holds in STATE_FILES:
        path = os.path.join(folder, name)
        entry: dict = {"what": name, "file": path, "holds": holds}
        checks.append(entry)
        if not os.path.exists(path):
            entry.update(ok=True, verdict="not there yet (made when first needed)")
            healthy[name] = False
            continue
        problem = file_problem(path, thorough=True)
        if problem is None:
            entry.update(ok=True, verdict="ok")
            healthy[name] = True
            continue
        entry.update(ok=False, problem=problem, verdict=f"DAMAGED: {problem}")
        healthy[name] = False
        repairable = True
        if not args.repair:
            problems += 1
            continue
        aside = move_aside(path)
        notes = [f"moved aside to {aside} (nothing deleted)"]
        if name == "dbos.sqlite":
            notes.append("not rebuilt from the damaged copy: DBOS makes a new one when next used, and each run "
                         "that is not finished is carried on from its journal (voxc run --resume RUN_ID, or "
                         "voxc approve RUN_ID)")
        else:
            kept = salvage(aside, path)
            entry["salvaged"] = {"tables": kept.tables, "partial": kept.partial, "lost": kept.lost,
                                 "schema_lost": kept.schema_lost}
            if kept.schema_lost:
                notes.append("nothing could be read from it (not even its list of tables): the runs it held are "
                             "in the copy set aside only; a new, empty state file is made when next needed")
            else:
                notes.append("kept what could be read: " + ", ".join(f"{t} {n}" for t, n in kept.tables.items()))
                if kept.partial:
                    notes.append("rows that could not be read are lost from: " + ", ".join(kept.partial)
                                 + _what_lost(kept.partial))
                if kept.lost:
                    notes.append("could not be rebuilt: " + ", ".join(kept.lost))
                again = file_problem(path, thorough=True)
                if again is not None:
                    problems += 1
                    notes.append(f"the new file is not whole either: {again}")
                healthy[name] = again is None
        entry["notes"] = notes
        entry["verdict"] = f"REPAIRED (it was damaged: {problem})"
    state_path = os.path.join(folder, "state.sqlite")
    if healthy.get("state.sqlite"):
        problems += _check_receipts(args, "sqlite:///" + state_path, checks)
        if healthy.get("dbos.sqlite"):
            checks.append(_runs_against_workflows(args, "sqlite:///" + state_path, _folder_workflows(
                os.path.join(folder, "dbos.sqlite"))))
    return {"checks": checks, "problems": problems, "repairable": repairable}


def _what_lost(tables: list[str]) -> str:
    meaning = {"vox_step": "the journal: a resumed run asks a person before it repeats a call whose receipt is "
                           "signed, but may repeat another",
               "vox_receipt": "receipts: the chains of the runs concerned no longer verify",
               "vox_run": "runs: those lost are in the copy set aside only",
               "vox_plan": "plans: a run whose plan is lost cannot be resumed"}
    said = [meaning[t] for t in tables if t in meaning]
    return f" ({'; '.join(said)})" if said else ""


def _check_receipts(args, url: str, checks: list[dict]) -> int:
    """Verify the receipt chain of every run in the ledger, as `voxc receipts verify` does (with
    the keys it would use, made nowhere); the number of problems found."""
    from vox.runtime import receipts
    from vox.runtime.fleet.store import StoreDamaged, StoreError

    entry: dict = {"what": "receipts"}
    checks.append(entry)
    try:
        load = getattr(receipts, "load_keys", None)
        keys = load(args.state_dir, os.environ, create=False) if load else receipts.load_key(args.state_dir, os.environ)
        verifying = getattr(keys, "verifying", None)
        ledger = receipts.ReceiptLedger(url, verifying() if verifying else keys)
        with ledger:
            runs = ledger.runs()
            reports = {}
            for run_id in runs:
                try:
                    reports[run_id] = ledger.verify(run_id).problems
                except receipts.ReceiptError as e:
                    reports[run_id] = [str(e)]
    except (receipts.ReceiptError, StoreError) as e:
        entry.update(ok=False, verdict=f"cannot be checked: {e}")
        return 1 if isinstance(e, StoreDamaged) else 0
    failed = {run_id: problems for run_id, problems in reports.items() if problems}
    if not failed:
        entry.update(ok=True, verdict=f"ok: the chains of {len(runs)} runs verify")
        return 0
    entry.update(ok=False, verdict=f"FAILED: {len(failed)} of {len(runs)} runs' chains do not verify",
                 notes=[f"{run_id}: {problems[0]}" for run_id, problems in sorted(failed.items())])
    return 1


def _folder_workflows(path: str) -> dict[str, str] | str:
    """DBOS's workflows of runs in a state folder, read without DBOS: run id -> status."""
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return dict(con.execute("SELECT workflow_uuid, status FROM workflow_status WHERE name = 'vox.run'"))
        finally:
            con.close()
    except sqlite3.Error as e:
        return f"cannot be read ({e})"


def _runs_against_workflows(args, url: str, workflows: dict[str, str] | str) -> dict:
    """The runs of the journal against DBOS's workflows: what each mismatch means, and what to do."""
    from vox.runtime.fleet.store import StoreError
    from vox.runtime.sealing import load_sealer
    from vox.runtime.state import StateStore

    entry: dict = {"what": "runs vs DBOS"}
    if isinstance(workflows, str):
        entry.update(ok=False, verdict=f"not checked: DBOS's workflows {workflows}")
        return entry
    try:
        state = StateStore(url, load_sealer(args.state_dir, os.environ, create=False))
        try:
            runs = {r.run_id: r.status for r in state.list_runs(limit=1_000_000)}
        finally:
            state.close()
    except (StoreError, Exception) as e:  # noqa: BLE001 - reported, as everything here
        entry.update(ok=False, verdict=f"not checked: the runs cannot be read ({e})")
        return entry
    notes = []
    for run_id, status in sorted(runs.items()):
        flow = workflows.get(run_id)
        if status in ("running", "waiting") and flow is None:
            notes.append(f"run {run_id} is {status} and DBOS has no workflow for it: `voxc run --resume {run_id}` "
                         "(or `voxc approve`) starts one again, and the run goes on from its journal")
        elif status in ("running", "waiting") and flow in ("SUCCESS", "ERROR"):
            notes.append(f"run {run_id} is {status} but DBOS ended its workflow ({flow}): `voxc run --resume "
                         f"{run_id}` starts it again from its journal")
    for run_id, flow in sorted(workflows.items()):
        if run_id not in runs and flow in ("PENDING", "ENQUEUED"):
            notes.append(f"DBOS's workflow {run_id} ({flow}) has no run in the state store: it cannot be carried "
                         "on (its run was lost with a damaged state file?)")
    entry.update(ok=True, verdict=f"ok: {len(runs)} runs, {len(workflows)} workflows" if not notes else
                 f"{len(notes)} to look at ({len(runs)} runs, {len(workflows)} workflows)", notes=notes)
    return entry


def _doctor_database(args) -> dict:
    """A fleet's database: every state table read through, the receipt chains, runs vs DBOS."""
    from vox.runtime.fleet.store import StoreDamaged, StoreError, open_store
    from vox.runtime.state import hide_password

    where = hide_password(args.db)
    entry: dict = {"what": "database", "file": where}
    checks = [entry]
    try:
        usable_database(args.db, must_exist=True)
        store = open_store(args.db)
    except (InputError, StoreError) as e:
        entry.update(ok=False, verdict=f"cannot be opened: {e}")
        return {"checks": checks, "problems": 1}
    listing = ("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'vox\\_%'"
               if store.kind == "postgresql" else
               "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'vox\\_%' ESCAPE '\\'")
    try:
        tables = [name for (name,) in store.run(lambda tx: tx.all(listing))]
        damaged = []
        for name in sorted(tables):
            try:
                store.run(lambda tx: tx.one(f'SELECT count(*) FROM "{name}"'))
            except StoreDamaged as e:
                damaged.append(f"{name}: {e.problem}")
    finally:
        store.close()
    if damaged:
        entry.update(ok=False, verdict=f"DAMAGED: {len(damaged)} of {len(tables)} tables cannot be read",
                     notes=damaged + ["--repair does not change a database: REINDEX a damaged index, or restore the "
                                      "damaged tables from a backup, then run `voxc runs doctor` again"])
        return {"checks": checks, "problems": 1}
    entry.update(ok=True, verdict=f"ok: {len(tables)} state tables read through")
    problems = _check_receipts(args, args.db, checks)
    try:
        from dbos import DBOSClient

        client = DBOSClient(system_database_url=args.db)
        try:
            workflows = {w.workflow_id: w.status for w in client.list_workflows(name="vox.run", load_input=False,
                                                                                 load_output=False)}
        finally:
            client.destroy()
    except Exception as e:  # noqa: BLE001 - reported
        workflows = f"cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    checks.append(_runs_against_workflows(args, args.db, workflows))
    return {"checks": checks, "problems": problems}
