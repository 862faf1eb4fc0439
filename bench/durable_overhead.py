"""Per-step overhead of a durable Vox run against a raw DBOS step doing the same work.

    python bench/durable_overhead.py [--steps N] [--runs R] [--rounds K] [--quick] [--pg URL | --no-pg]

Defaults: N=100 steps, R=5 runs, K=3 rounds (under a minute); --quick: 30, 3, 1 (about 10 s).

Three kinds of run, each N steps, R runs one after the other (after one warm-up run):

* ``dbos``       raw DBOS: one ``@DBOS.workflow()`` async function awaiting N
                 ``DBOS.run_step_async({"name": f"s{i}"}, fn)``, where ``fn`` is a trivial async
                 function returning the JSON a Vox tool step records (``{"value": {...}, "attempts": 1}``);
                 started with ``SetWorkflowID`` + ``DBOS.start_workflow_async`` and awaited, as the
                 runtime starts ``vox.run``;
* ``vox``        a Vox flow looping ``for i in items max N { work(i: i) }`` over an N-element input,
                 ``work`` an ``effect: read`` tool bound to ``python("benchtool:work")`` (a trivial
                 async function in a temp dir), run by ``Runtime.run`` with ``durable=True``;
* ``vox-nodur``  the same with ``durable=False`` (no DBOS at all: the interpreter's own cost).

The durable kinds run on SQLite (the DBOS system database a file in a temp dir) and on PostgreSQL
(a fresh database per phase, ``vox_bench_<random>``, created here and dropped after it). Each
phase runs in its own subprocess, so each has its own DBOS instance (DBOS is a process-wide
singleton) and nothing warmed up by one phase helps another. All phases run K times, interleaved
(in a rotated order each round), so a busy spell of a shared machine hits every phase alike.

Reported per step: wall time (``perf_counter``) and client CPU (``getrusage(RUSAGE_SELF)``:
every thread of the process, DBOS's included; not the PostgreSQL server's), each the median over
the R×K runs of (run time / N), with the range of the wall figure. The run-level costs (starting the workflow, awaiting its result) are
spread over the N steps. Rows:

* ``dbos``          raw DBOS time / N;
* ``vox``           durable Vox time / N;
* ``vox overhead``  (durable − non-durable Vox time) / N: what durability adds to a Vox step;
* ``ratio``         the row's figure over the raw ``dbos`` figure on the same backend.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"

PAYLOAD = {"i": 0, "ok": True, "note": "done"}  # the tool result, as JSON

TOOL_MODULE = '''
async def work(i):
    return {"i": i, "ok": True, "note": "done"}
'''

PROGRAM = '''
type Echo = {{
  i: int
  ok: bool
  note: str
}}

tool work(i: int) -> Echo {{
  effect: read
  bind: python("benchtool:work")
}}

flow loop(items: list[int]) -> list[Echo] {{
  let out = for i in items max {n} {{ work(i: i) }}
  return out
}}
'''

# ------------------------------------------------------------------------------------ raw DBOS
# The workflow is registered at import, before any DBOS.launch(), as `vox.run` is by
# vox.runtime.durable; only the `dbos` phase starts it.

from dbos import DBOS, SetWorkflowID  # noqa: E402


@DBOS.workflow(name="bench.raw")
async def raw_workflow(n: int) -> list:
    out = []
    for i in range(n):
        async def fn(i=i) -> dict:
            return {"value": {**PAYLOAD, "i": i}, "attempts": 1}

        out.append((await DBOS.run_step_async({"name": f"s{i}"}, fn))["value"])
    return out


# ------------------------------------------------------------------------------------ measuring


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def timed(runs: int, one_run) -> list[tuple[float, float]]:
    """(wall s, CPU s) of each of ``runs`` sequential calls of ``one_run(k)``, after a warm-up."""
    await one_run(-1)
    gc.collect()
    out = []
    for k in range(runs):
        t0, c0 = time.perf_counter(), cpu_self()
        await one_run(k)
        out.append((time.perf_counter() - t0, cpu_self() - c0))
    return out


def dbos_url(backend: str, tmp: str, pg_url: str | None) -> str:
    return pg_url if backend == "postgres" else "sqlite:///" + os.path.join(tmp, "dbos.sqlite")


async def phase_dbos(backend: str, n: int, runs: int, pg_url: str | None) -> list:
    with tempfile.TemporaryDirectory() as tmp:
        DBOS(config={"name": "voxbench", "system_database_url": dbos_url(backend, tmp, pg_url),
                     "application_version": "bench", "log_level": "ERROR"})
        DBOS.launch()
        gc.collect()
        gc.freeze()
        prefix = f"raw_{secrets.token_hex(4)}_"
        try:
            async def one_run(k: int) -> None:
                with SetWorkflowID(f"{prefix}{k}"):
                    handle = await DBOS.start_workflow_async(raw_workflow, n)
                result = await handle.get_result()
                assert len(result) == n, result

            return await timed(runs, one_run)
        finally:
            DBOS.destroy(destroy_registry=False)


async def phase_vox(backend: str, n: int, runs: int, pg_url: str | None, durable: bool) -> list:
    from vox.compiler.api import check_source
    from vox.compiler.plan import lower_plan
    from vox.runtime.host import Runtime, RunOptions

    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "benchtool.py"), "w") as f:
            f.write(TOOL_MODULE)
        plan = lower_plan(check_source("bench_durable.vox", PROGRAM.format(n=n)))
        env = {"VOX_RECEIPT_KEY": "bench"}
        options = RunOptions(durable=durable, state_dir=tmp, simulate="all", base_dir=tmp, env=env,
                             db=pg_url if backend == "postgres" else None)
        items = list(range(n))
        prefix = f"run_{secrets.token_hex(4)}_"
        async with Runtime(plan, options) as rt:
            async def one_run(k: int) -> None:
                result = await rt.run("loop", {"items": items}, f"{prefix}{k}")
                if not result.ok:
                    raise SystemExit(f"a Vox run failed: {result.error}")
                assert len(result.output) == n, result.output

            return await timed(runs, one_run)


def child(args) -> None:
    backend, kind = args.child.split(":")
    if kind == "dbos":
        coro = phase_dbos(backend, args.steps, args.runs, args.pg)
    else:
        coro = phase_vox(backend, args.steps, args.runs, args.pg, durable=(kind == "vox"))
    print(json.dumps(asyncio.run(coro)))


# ------------------------------------------------------------------------------------ driver


def create_db(admin_url: str) -> str:
    """A fresh database next to ``admin_url``'s; its URL."""
    import psycopg

    name = f"vox_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_db(admin_url: str, url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_phase(backend: str, kind: str, n: int, runs: int, pg_url: str | None) -> list:
    cmd = [sys.executable, __file__, "--child", f"{backend}:{kind}", "--steps", str(n), "--runs", str(runs)]
    if pg_url:
        cmd += ["--pg", pg_url]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"phase {backend}:{kind} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def per_step(samples: list, n: int) -> dict:
    """Median over the runs of wall ms / N and CPU ms / N, and the wall range (min, max)."""
    walls = [w * 1000 / n for w, _ in samples]
    return {"wall_ms": statistics.median(walls), "cpu_ms": statistics.median(c * 1000 / n for _, c in samples),
            "wall_min": min(walls), "wall_max": max(walls), "runs": len(samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, help="steps per run (default 100; 30 with --quick)")
    parser.add_argument("--runs", type=int, help="measured runs per phase and round (default 5; 3 with --quick)")
    parser.add_argument("--rounds", type=int, help="rounds of every phase, interleaved (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="fewer steps, runs and rounds (about 10 s)")
    parser.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL server URL (a database is created and dropped)")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.steps = args.steps or (30 if args.quick else 100)
    args.runs = args.runs or (3 if args.quick else 5)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.child:
        child(args)
        return

    n, runs = args.steps, args.runs
    started = time.perf_counter()
    backends = ["sqlite"] + ([] if args.no_pg else ["postgres"])
    phases = [("-", "vox-nodur")] + [(b, k) for b in backends for k in ("dbos", "vox")]
    samples: dict[tuple[str, str], list] = {p: [] for p in phases}
    # The machine may be shared: every round runs every phase (in a rotated order), so a slow
    # spell hits all of them rather than one.
    for r in range(args.rounds):
        for backend, kind in phases[r % len(phases):] + phases[:r % len(phases)]:
            url = create_db(args.pg) if backend == "postgres" else None
            try:
                samples[(backend, kind)] += run_phase("sqlite" if backend == "-" else backend, kind, n, runs, url)
            finally:
                if url:
                    drop_db(args.pg, url)
    results = {p: per_step(s, n) for p, s in samples.items()}

    nodur = results[("-", "vox-nodur")]
    rows = [f"{'backend':<9} {'kind':<13} {'steps':>6} {'ms/step wall':>13} {'ms/step CPU':>12} "
            f"{'ratio wall':>11} {'ratio CPU':>10}  wall range (ms/step)"]

    def row(backend, kind, r, base=None):
        ratio = (f"{r['wall_ms'] / base['wall_ms']:>11.2f} {r['cpu_ms'] / base['cpu_ms']:>10.2f}"
                 if base else f"{'':>11} {'':>10}")
        spread = f"{r['wall_min']:.3f}-{r['wall_max']:.3f}" if "wall_min" in r else ""
        rows.append(f"{backend:<9} {kind:<13} {n:>6} {r['wall_ms']:>13.3f} {r['cpu_ms']:>12.3f} {ratio}  {spread}")

    row("-", "vox-nodur", nodur)
    out = {"steps": n, "runs": runs * args.rounds, "vox_nodur": nodur}
    for backend in backends:
        base, vox = results[(backend, "dbos")], results[(backend, "vox")]
        over = {"wall_ms": vox["wall_ms"] - nodur["wall_ms"], "cpu_ms": vox["cpu_ms"] - nodur["cpu_ms"]}
        row(backend, "dbos", base, base)
        row(backend, "vox", vox, base)
        row(backend, "vox overhead", over, base)
        out[backend] = {"dbos": base, "vox": vox, "vox_overhead": over}
    print(f"{n} steps per run; median of {runs * args.rounds} runs per phase ({args.rounds} round(s) of {runs}, "
          f"each after a warm-up run, in a fresh process); ratio = the row over raw dbos on the same backend")
    print("\n".join(rows))
    if args.json:
        print(json.dumps(out))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
