"""Client CPU per model call of a one-agent Vox flow, against a bare aiohttp loop.

    python bench/run_overhead.py [--quick] [--labels] [--profile vox64]

Starts the simulator in a *child process* (``vox.runtime.sim.start_process``) and points a
one-agent program at it through an ``openai_compatible`` provider whose ``base_url`` comes from
``BENCH_BASE_URL`` (so nothing is simulated in this process: ``simulate="never"``). The agent has
a small prompt, a structured result (a record with an enum, a string and a bool), budget caps,
no tools and no gates; the flow calls it once, so one run is one model call.

For each client and concurrency (1 and 64) it warms up (connections opened, caches filled), then
runs a measured window of calls with that many in flight and reports:

* client CPU per completed model call: ``getrusage(RUSAGE_SELF)`` user + sys over the window
  only (every thread of this process, so DBOS's threads count too), divided by the calls made;
  each window is three rounds and the median round is reported (with the min-max of the rounds);
* the ratio to the bare aiohttp loop at the same concurrency;
* the simulator's CPU per request, from ``/proc/<pid>/stat`` (utime + stime) over the same
  window, and its share of one core (near 100 % would mean the simulator is the limit);
* wall time per call.

Clients:

* ``aiohttp``  a bare ``aiohttp.ClientSession`` POSTing the request the runtime sends (captured
  from one Vox run: the same JSON body and headers, the run header varied per call as the runtime
  does) and parsing the JSON reply;
* ``vox``      ``Runtime.run`` with durability off;
* ``vox+dbos`` ``Runtime.run`` with durability on (DBOS on SQLite in a temp dir).

Last, a fresh subprocess starts 1,000 non-durable runs at once (the simulator holding every
answer back for a while with a latency fault, so they are all in flight together) and reports
its peak RSS (``ru_maxrss``), next to the RSS before the runs started.

``--profile vox64`` (or ``vox1``, ``dbos64``...) runs that one phase under cProfile instead and
prints the top functions by own time and by cumulative time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Awaitable, Callable

PROGRAM = '''
provider local = openai_compatible {
  base_url: env("BENCH_BASE_URL")
  clearance: [public]
}

model m = local/"gpt-4o-mini" {
  context: 128_000
  max_output: 200
  price: { input: $0.15, output: $0.60 }
  capabilities: [json_schema]
}

enum Category { billing, shipping, refund, other }

type Triage = {
  category: Category
  summary: str
  urgent: bool
}

agent triage(subject: str, body: str) -> Triage {
  model: m
  budget: { tokens: 4_000, cost: $0.01, steps: 2 }
  prompt: """
    Classify this support ticket and summarise it in one sentence.
    Subject: {subject}
    Body: {body}
  """
}

flow handle(subject: str, body: str) -> Triage {
  budget: { cost: $0.05, wall: 60s }
  return triage(subject: subject, body: body)
}
'''
FLOW = "handle"
INPUT = {"subject": "Parcel never arrived", "body": "I ordered a kettle two weeks ago (order A-1042) and it has "
                                                    "not arrived. Can you check where it is?"}

# calls per measured window: (warm-up, measured) for each client and concurrency
FULL = {
    ("aiohttp", 1): (200, 2000), ("aiohttp", 64): (500, 6000),
    ("vox", 1): (100, 1500), ("vox", 64): (300, 4000),
    ("vox+dbos", 1): (30, 300), ("vox+dbos", 64): (200, 1500),
}
QUICK = {
    ("aiohttp", 1): (100, 500), ("aiohttp", 64): (300, 2000),
    ("vox", 1): (50, 400), ("vox", 64): (200, 1500),
    ("vox+dbos", 1): (20, 100), ("vox+dbos", 64): (100, 500),
}
IN_FLIGHT = 1000
ROUNDS = 3  # measured rounds per window; the median is reported
HOLD_MS = 1500  # the simulator's added latency while the 1,000 runs are in flight


# ``--labels``: the same program with the ticket body labelled, so the run-time label monitor is on
# (spec/labels.md); the difference in client CPU per call is the monitor's cost.
LABELLED = ("label pii\n" + PROGRAM.replace("clearance: [public]", "clearance: [public, pii]")
            .replace("agent triage(subject: str, body: str)", "agent triage(subject: str, body: str @pii)")
            .replace("flow handle(subject: str, body: str)", "flow handle(subject: str, body: str @pii)"))


def compile_plan():
    from vox.compiler.api import check_source
    from vox.compiler.plan import lower_plan

    text = LABELLED if "--labels" in sys.argv else PROGRAM
    result = check_source("bench_overhead.vox", text)
    assert result.ok, [d.message for d in result.errors]
    return lower_plan(result)


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(call: Callable[[int], Awaitable[Any]], n: int, concurrency: int, start: int = 0) -> int:
    """Make ``n`` calls with ``concurrency`` in flight; return how many succeeded."""
    state = {"next": start, "end": start + n, "ok": 0}

    async def worker() -> None:
        while state["next"] < state["end"]:
            i = state["next"]
            state["next"] += 1
            if await call(i):
                state["ok"] += 1

    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return state["ok"]


class Phase:
    """One measured window: client and simulator CPU, wall time, calls completed."""

    def __init__(self, sim_pid: int):
        self.sim_pid = sim_pid

    async def measure(self, call, warm: int, n: int, concurrency: int, counter: Callable[[], int]) -> dict:
        """Warm up, then ROUNDS rounds of n/ROUNDS calls; the round with the median client CPU
        per call (this machine is shared: the median shrugs off a round that shared its core)."""
        await drive(call, warm, concurrency, start=0)
        start, rounds = warm, []
        for _ in range(ROUNDS):
            before_calls = counter()
            t0, c0, s0 = time.perf_counter(), cpu_self(), cpu_of(self.sim_pid)
            ok = await drive(call, n // ROUNDS, concurrency, start=start)
            t1, c1, s1 = time.perf_counter(), cpu_self(), cpu_of(self.sim_pid)
            start += n // ROUNDS
            calls = counter() - before_calls
            wall = t1 - t0
            rounds.append({"calls": calls, "ok": ok, "client_ms": (c1 - c0) * 1000 / max(calls, 1),
                           "sim_ms": (s1 - s0) * 1000 / max(calls, 1), "sim_util": (s1 - s0) / wall,
                           "client_util": (c1 - c0) / wall, "wall_ms": wall * 1000 / max(calls, 1)})
        rounds.sort(key=lambda r: r["client_ms"])
        median = dict(rounds[len(rounds) // 2])
        median["spread"] = (rounds[0]["client_ms"], rounds[-1]["client_ms"])
        return median


# ---------------------------------------------------------------------------------------- capture


class _Recorder:
    """Stands in for the runtime's HTTP client for one call, to record what it sends."""

    def __init__(self, client):
        self.client = client
        self.sent: list[tuple[str, bytes, dict]] = []

    async def post(self, url, *, content, headers, timeout=None):
        self.sent.append((url, content, dict(headers)))
        return await self.client.post(url, content=content, headers=headers, timeout=timeout)


async def capture(plan, env) -> tuple[str, bytes, dict]:
    """The URL, body and headers of the chat-completion request the runtime sends for one run."""
    from vox.runtime.host import Runtime, RunOptions

    with tempfile.TemporaryDirectory() as state:
        async with Runtime(plan, RunOptions(durable=False, simulate="never", state_dir=state, env=env)) as rt:
            provider = rt.providers["local"]
            recorder = _Recorder(provider.client)
            provider.client = recorder
            result = await rt.run(FLOW, INPUT, "run_capture")
            provider.client = recorder.client
            if not result.ok:
                raise SystemExit(f"the capture run failed: {result.error}")
    return recorder.sent[0]


# ---------------------------------------------------------------------------------------- clients


async def bare_aiohttp(phase: Phase, captured, plan_for: dict) -> dict:
    import aiohttp

    url, body, headers = captured
    headers = {k: v for k, v in headers.items()}
    template = headers.get("x-vox-run", "")
    count = {"n": 0}
    out = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        async def call(i: int) -> bool:
            h = dict(headers)
            if template:
                h["x-vox-run"] = f"run_bare{i:011d}"
            async with session.post(url, data=body, headers=h) as r:
                data = json.loads(await r.read())
            count["n"] += 1
            return r.status == 200 and bool(data.get("choices"))

        for conc in (1, 64):
            warm, n = plan_for[("aiohttp", conc)]
            out[conc] = await phase.measure(call, warm, n, conc, lambda: count["n"])
    return out


async def vox_runs(phase: Phase, plan, env, durable: bool, plan_for: dict, only: int | None = None,
                   profile: bool = False) -> dict:
    from vox.runtime.host import Runtime, RunOptions

    name = "vox+dbos" if durable else "vox"
    count = {"n": 0}  # model calls, from each run's `spent` (no events sink: as `voxc run` without -v)
    out = {}
    prefix = f"run_{'d' if durable else 'v'}{os.getpid()}_"
    with tempfile.TemporaryDirectory() as state:
        options = RunOptions(durable=durable, simulate="never", state_dir=state, env=env)
        async with Runtime(plan, options) as rt:
            async def call(i: int) -> bool:
                result = await rt.run(FLOW, INPUT, f"{prefix}{i}")
                if not result.ok:
                    raise SystemExit(f"a run failed: {result.error}")
                count["n"] += result.spent.get("model_calls", 0)
                return True

            for conc in (1, 64):
                if only is not None and conc != only:
                    continue
                warm, n = plan_for[(name, conc)]
                if profile:
                    import cProfile
                    import pstats

                    await drive(call, warm, conc)
                    prof = cProfile.Profile()
                    prof.enable()
                    c0 = cpu_self()
                    await drive(call, n, conc, start=warm)
                    c1 = cpu_self()
                    prof.disable()
                    print(f"{name} c={conc}: {(c1 - c0) * 1000 / n:.3f} ms/call under the profiler")
                    stats = pstats.Stats(prof).strip_dirs()
                    stats.sort_stats("tottime").print_stats(45)
                    stats.sort_stats("cumulative").print_stats(60)
                    continue
                out[conc] = await phase.measure(call, warm, n, conc, lambda: count["n"])
                # a fresh prefix per window: run ids (DBOS workflow ids) are never reused
                prefix = prefix + "x"
    return out


# ---------------------------------------------------------------------------------------- peak RSS


def rss_now_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rss_child(url: str) -> None:
    """In a fresh process: start 1,000 non-durable runs at once; print RSS figures as JSON."""
    from vox.runtime.host import Runtime, RunOptions

    plan = compile_plan()
    env = {**os.environ, "BENCH_BASE_URL": url + "/v1"}

    async def go() -> dict:
        flight = {"now": 0, "peak": 0, "rss_kb": 0}

        def events(event: dict) -> None:
            if event["event"] == "model_start":
                flight["now"] += 1
                flight["peak"] = max(flight["peak"], flight["now"])
            elif event["event"] == "model_end":
                flight["now"] -= 1

        with tempfile.TemporaryDirectory() as state:
            options = RunOptions(durable=False, simulate="never", state_dir=state, env=env)
            async with Runtime(plan, options, events=events) as rt:
                await rt.run(FLOW, INPUT, "run_rss_warm")  # imports, connection, caches
                before = rss_now_kb()

                async def sample() -> None:  # the largest RSS while the runs are in flight
                    while True:
                        flight["rss_kb"] = max(flight["rss_kb"], rss_now_kb())
                        await asyncio.sleep(0.02)

                sampler = asyncio.create_task(sample())
                t0 = time.perf_counter()
                results = await asyncio.gather(*(rt.run(FLOW, INPUT, f"run_rss_{i}") for i in range(IN_FLIGHT)))
                wall = time.perf_counter() - t0
                sampler.cancel()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"before_kb": before, "peak_kb": peak, "all_in_flight_kb": flight["rss_kb"],
                "ok": sum(r.ok for r in results), "peak_in_flight": flight["peak"], "wall_s": wall}

    print(json.dumps(asyncio.run(go())))


async def peak_rss(url: str) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        await session.post(f"{url}/_sim/faults", json={"faults": [{"kind": "latency", "ms": HOLD_MS}]})
        try:
            proc = await asyncio.create_subprocess_exec(sys.executable, __file__, "--rss-child", url,
                                                        stdout=subprocess.PIPE)
            out, _ = await proc.communicate()
        finally:
            await session.delete(f"{url}/_sim/faults")
    return json.loads(out.decode().strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------- main


def table(results: dict[str, dict[int, dict]]) -> str:
    rows = [f"{'client':<10} {'conc':>4} {'calls':>6} {'client ms/call':>15} {'x aiohttp':>10} "
            f"{'sim ms/req':>11} {'sim core%':>10} {'client core%':>13} {'wall ms/call':>13}  rounds (min-max)"]
    for name, by_conc in results.items():
        for conc, r in sorted(by_conc.items()):
            base = results.get("aiohttp", {}).get(conc)
            ratio = r["client_ms"] / base["client_ms"] if base else float("nan")
            rows.append(f"{name:<10} {conc:>4} {r['calls']:>6} {r['client_ms']:>15.3f} {ratio:>10.2f} "
                        f"{r['sim_ms']:>11.3f} {r['sim_util'] * 100:>9.0f}% {r['client_util'] * 100:>12.0f}% "
                        f"{r['wall_ms']:>13.3f}  {r['spread'][0]:.3f}-{r['spread'][1]:.3f}")
    return "\n".join(rows)


async def main_async(args) -> None:
    from vox.runtime.sim import start_process

    plan_for = QUICK if args.quick else FULL
    plan = compile_plan()
    import vox.runtime.host  # noqa: F401  (imported before the freeze, as by every client below)

    # Every client is measured on the same heap: what was imported and compiled is moved out of
    # the collector's reach (the runtime does this itself at its first start), so a full
    # collection costs each client only what it allocates.
    gc.collect()
    gc.freeze()
    url, proc = start_process(seed=0)
    env = {**os.environ, "BENCH_BASE_URL": url + "/v1"}
    started = time.perf_counter()
    try:
        phase = Phase(proc.pid)
        if args.profile:
            name, conc = args.profile.rstrip("0123456789"), int(args.profile.lstrip("voxdbs+"))
            await vox_runs(phase, plan, env, name == "dbos", plan_for, only=conc, profile=True)
            return
        captured = await capture(plan, env)
        print(f"simulator pid {proc.pid} at {url}; request: {len(captured[1])} bytes to {captured[0]}")
        results: dict[str, dict[int, dict]] = {}
        results["aiohttp"] = await bare_aiohttp(phase, captured, plan_for)
        results["vox"] = await vox_runs(phase, plan, env, False, plan_for)
        if not args.no_durable:
            results["vox+dbos"] = await vox_runs(phase, plan, env, True, plan_for)
        print()
        print(table(results))
        if not args.no_rss:
            rss = await peak_rss(url)
            print()
            print(f"peak RSS with {IN_FLIGHT} non-durable runs in flight (fresh process): "
                  f"{rss['peak_kb'] / 1024:.1f} MiB; RSS before the runs {rss['before_kb'] / 1024:.1f} MiB, "
                  f"largest while in flight {rss['all_in_flight_kb'] / 1024:.1f} MiB "
                  f"(+{(rss['all_in_flight_kb'] - rss['before_kb']) / IN_FLIGHT:.1f} KiB per run); "
                  f"{rss['ok']}/{IN_FLIGHT} ok, {rss['peak_in_flight']} model calls in flight at once, "
                  f"{rss['wall_s']:.1f} s")
        print(f"\n(total {time.perf_counter() - started:.0f} s)")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (under a minute)")
    parser.add_argument("--no-durable", action="store_true", help="skip the durable runs")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS phase")
    parser.add_argument("--labels", action="store_true", help="label the ticket body: the label monitor is on")
    parser.add_argument("--profile", metavar="PHASE", help="profile one phase: vox1, vox64, dbos1, dbos64")
    parser.add_argument("--rss-child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
