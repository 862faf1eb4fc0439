"""Crash trials over a generated corpus: every program, killed with SIGKILL at points across its
steps and resumed, ends as if nobody had interrupted it — from the installed `voxc` console script.

The corpus (tests/crashcorpus.py) is 30 programs generated from fixed seeds, mixing `par`,
`for ... max N`, nested flows, recursion with `depth`, tools of every effect (idempotent and not),
approvals (pre-approved with `--approve`, and real pauses answered with `voxc approve`) and
`budget tenant` / `budget fleet`. Each program is checked (`voxc check --preflight`; a program
that does not check is a generator bug), run once uninterrupted (the baseline), and then, for each
of its kill points, run again in a fresh state folder with the same run id and seed, killed at the
point, and resumed with `voxc run --resume` (a question the resumed run asks is answered with
`voxc approve`). A trial passes when the resumed run

* finishes with the baseline's output;
* asked for each approval the baseline asked for, once, and otherwise only "it may already have
  acted" about an interrupted call of a non-idempotent `write`/`external` tool, showing that
  call's arguments. The test answers as a person would: `voxc approve` (the tool runs again, as
  spec/runtime.md documents) or, in every other program when the tools' log shows the call did
  act, `voxc approve --already-done --result JSON` with what it returned (it runs no more);
* ran each tool call of the baseline with the baseline's idempotency key, once — twice only for
  a call the kill caught in the middle (its own, or a sibling `par` branch's), and for a
  non-idempotent effectful tool only after a person allowed it;
* asked the model nothing twice: the simulator holds the request the kill catches (and those of
  sibling branches) without answering, so any answer beyond the baseline's was paid for and lost;
* reports the baseline's spend, and the tenant (and fleet) ledger holds exactly that, with no
  reservation left open;
* has receipts that `voxc receipts verify` accepts, as many as the baseline's.

By default each program gets 2 kill points, chosen so that the corpus covers every kind
(`crashcorpus.CATEGORIES`). Knobs: `VOX_CRASH_SWEEP=1` tries every kill point of every program;
`VOX_CRASH_PROGRAMS=N` the number of programs, `VOX_CRASH_POINTS=K` the kill points of each,
`VOX_CRASH_SEED` the first seed; `VOX_CRASH_JOBS` how many programs run at once (3: much of a
resuming `voxc`'s time is spent waiting); `VOXC` the console script under test. The trial counts
are printed at the end (also without `-s`) and written to `crash-corpus-summary.txt` in pytest's
temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

import crashcorpus as cc

SWEEP = os.environ.get("VOX_CRASH_SWEEP") == "1"
COUNT = int(os.environ.get("VOX_CRASH_PROGRAMS", "30"))
JOBS = max(1, int(os.environ.get("VOX_CRASH_JOBS", "3")))
POINTS = None if SWEEP else int(os.environ.get("VOX_CRASH_POINTS", "2"))
PROGRAMS = cc.corpus(COUNT, cc.corpus_seed(), points=POINTS)
BY_NAME = {p.name: p for p in PROGRAMS}
TRIALS = {f"{p.name}-{k.label}": (p, k) for p in PROGRAMS for k in p.kill_points}


def console_script() -> str:
    """The installed `voxc` (next to this interpreter), never `python -m`: the trials must see
    what a user's shell runs (no program folder on the module path, the entry point's own setup)."""
    found = os.environ.get("VOXC") or str(Path(sys.executable).with_name("voxc"))
    if not os.path.exists(found):
        found = shutil.which("voxc") or found
    return found


class CorpusRun:
    """The corpus's programs, run on a pool of workers (each with a simulator of its own) as the
    tests ask for them; each program's baseline and trials run one after another."""

    def __init__(self, root: Path, selected: set[str]):
        self.root = root
        self.voxc = console_script()
        self.local = threading.local()
        self.sims: list[subprocess.Popen] = []
        self.runners: list[cc.Runner] = []
        self.lock = threading.Lock()
        self.checked = self.check()
        wanted: dict[str, list] = {}
        for trial_id in TRIALS:
            if trial_id in selected:
                program, point = TRIALS[trial_id]
                wanted.setdefault(program.name, []).append(point)
        self.pool = ThreadPoolExecutor(max_workers=JOBS, thread_name_prefix="crash-corpus")
        self.futures: dict[str, Future] = {
            name: self.pool.submit(self.run_program, BY_NAME[name], points) for name, points in wanted.items()}

    def check(self) -> dict[str, list[str]]:
        """`voxc check --preflight` over the whole corpus, in one process: the errors of each program."""
        files = []
        for program in PROGRAMS:
            folder = self.root / program.name / "program"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "main.vox").write_text(program.source)
            (folder / f"{program.module}.py").write_text(program.module_source)
            files.append(str(folder / "main.vox"))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root), "NO_COLOR": "1",
               "TRIAL_SIM_URL": "http://127.0.0.1:9/v1"}
        if os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        p = subprocess.run([self.voxc, "check", "--preflight", "--format", "json", *files], cwd=self.root, env=env,
                           capture_output=True, text=True, timeout=300)
        try:
            diagnostics = json.loads(p.stdout)["diagnostics"]
        except (json.JSONDecodeError, KeyError):
            raise AssertionError(f"`voxc check` printed no diagnostics (exit {p.returncode}): {p.stderr[-2000:]}")
        errors: dict[str, list[str]] = {program.name: [] for program in PROGRAMS}
        for d in diagnostics:
            if d["severity"] == "error":
                name = Path(d["file"]).parent.parent.name
                errors.setdefault(name, []).append(f"{d['code']} line {d['range']['start']['line'] + 1}: {d['message']}")
        return errors

    def runner(self) -> cc.Runner:
        found = getattr(self.local, "runner", None)
        if found is None:
            from vox.runtime.sim.server import start_process

            url, process = start_process(seed=0)
            found = self.local.runner = cc.Runner(self.voxc, url, self.root)
            with self.lock:
                self.sims.append(process)
                self.runners.append(found)
        return found

    def run_program(self, program: cc.Program, points: list[cc.KillPoint]) -> tuple[str | None, dict]:
        if self.checked.get(program.name):
            return "the generated program does not check (a generator bug): " + "; ".join(self.checked[program.name]), {}
        try:
            runner = self.runner()
            base = runner.baseline(program)
        except cc.TrialError as e:
            return str(e), {}
        except Exception as e:  # noqa: BLE001 - a harness bug fails this program's trials, not the corpus
            import traceback

            return f"the baseline itself failed: {type(e).__name__}: {e}\n{traceback.format_exc()}", {}
        return None, {point.label: runner.trial(program, point, base) for point in points}

    def result(self, program: cc.Program, point: cc.KillPoint) -> tuple[str | None, cc.TrialResult | None]:
        failure, results = self.futures[program.name].result()
        return failure, results.get(point.label)

    def close(self) -> str:
        results, failures = [], {}
        try:
            for name, future in self.futures.items():
                failure, done = future.result()
                if failure:
                    failures[name] = failure
                results += done.values()
        finally:
            self.pool.shutdown(cancel_futures=True)
            for runner in self.runners:
                runner.close()
            for process in self.sims:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=10)
        return cc.summarize([BY_NAME[n] for n in self.futures], results, failures)


@pytest.fixture(scope="module")
def corpus_run(request, tmp_path_factory):
    selected = {item.callspec.params["trial_id"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_crash_trial" and hasattr(item, "callspec")}
    root = tmp_path_factory.mktemp("crash-corpus")
    run = CorpusRun(root, selected)
    yield run
    summary = run.close()
    path = tmp_path_factory.getbasetemp() / "crash-corpus-summary.txt"
    path.write_text(summary + "\n")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print("\n" + summary + f"\n(written to {path})")
    else:
        print(summary)


def test_the_corpus_is_reproducible_and_covers_every_kind_of_point():
    again = cc.corpus(COUNT, cc.corpus_seed(), points=POINTS)
    assert [(p.source, [k.label for k in p.kill_points]) for p in again] == \
        [(p.source, [k.label for k in p.kill_points]) for p in PROGRAMS]
    assert len(PROGRAMS) >= 30 or "VOX_CRASH_PROGRAMS" in os.environ
    features = set().union(*(p.features for p in PROGRAMS))
    assert {"par", "loop", "nested", "recursion", "pause", "approval:pre", "fleet"} <= features
    kinds = {(t.effect, t.idempotent) for p in PROGRAMS for t in p.tools.values()}
    assert kinds == {(e, i) for e in ("read", "write", "external") for i in (True, False)}
    covered = set().union(*(k.tags for k in (point for _, point in TRIALS.values())))
    assert set(cc.CATEGORIES) <= covered, set(cc.CATEGORIES) - covered
    assert any(p.pauses and any("approval:paused" in k.tags for k in p.kill_points) for p in PROGRAMS)


def test_every_generated_program_checks(corpus_run):
    broken = {name: errors for name, errors in corpus_run.checked.items() if errors}
    assert not broken, f"generated programs that do not check (a generator bug): {broken}"


@pytest.mark.parametrize("trial_id", list(TRIALS))
def test_crash_trial(corpus_run, trial_id):
    program, point = TRIALS[trial_id]
    failure, result = corpus_run.result(program, point)
    assert failure is None, f"{program.name}: {failure}"
    assert result is not None
    assert result.ok, (
        f"{program.name} killed at {point.label} ({', '.join(sorted(point.tags & set(cc.CATEGORIES)))}), "
        f"resumed from {corpus_run.root / program.name}:\n  "
        + "\n  ".join(f"[{category}] {message}" for category, message in result.problems)
    )
