"""The generated crash-trial corpus: programs, their kill points, and the driver of one trial.

:func:`generate` writes a Vox program from a seed (the same seed, the same program, on every
machine): a `main` flow mixing `par`, `for ... max N`, nested flows, a recursive flow with a
`depth`, tools of every effect (`read`, `write`, `external`; idempotent and not; `approval: human`
pre-approved with ``--approve`` or really pausing), agents, and a `budget tenant` (sometimes a
`budget fleet` too). The generator knows how often each call site runs, so it lists every point
where a trial can kill the run:

* ``model``: during a model call. The simulator, in a process of its own, holds the request (a
  `timeout` fault, which never answers and never advances the simulator's state) and the test
  kills the run once the simulator has received it;
* ``after``: inside a tool, after its effect is logged and before the runtime records the call
  (the tool kills its own process);
* ``before``: inside a tool, before it acts: the steps before it are recorded, this one is not.

A point inside a ``par`` branch is one of these with the branch's siblings running. So that a
trial is deterministic, the model requests of the sibling branches are held too (a run killed
while a sibling's answer is on the wire would ask the simulator again, and the simulator answers
a repeated request differently, as a real model would). The step names this needs (and the
simulator's filter for a model point) come from `voxc runs show --json` of the baseline.
The calls a kill may have caught in the middle — the point's own, and those of sibling
branches — are the only ones that may run twice.

:class:`Runner` drives the console script `voxc` (never ``python -m``) against one simulator:
the uninterrupted baseline, then each trial in a fresh state folder with the same run id and
seed, and :func:`judge` compares the two.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# ---- programs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolSpec:
    name: str
    effect: str  # read write external
    idempotent: bool
    approval: str  # none pre pause
    cost: str | None  # a money literal, or None

    @property
    def effectful(self) -> bool:
        return self.effect in ("write", "external")

    @property
    def asks_before_repeating(self) -> bool:
        """A resumed run may not repeat an interrupted call of this tool without asking a person."""
        return self.effectful and not self.idempotent


@dataclass(frozen=True)
class Site:
    """A call site of a tool or an agent, and how many times one run executes it."""

    kind: str  # tool agent
    name: str
    times: int
    tags: frozenset[str]  # par loop nested recursion


@dataclass(frozen=True)
class KillPoint:
    phase: str  # model before after
    target: str  # the tool or agent
    occurrence: int  # 0: its first execution in the run
    tags: frozenset[str]  # what the point covers (see CATEGORIES)

    @property
    def label(self) -> str:
        return f"{self.target}:{self.phase}#{self.occurrence}"

    @property
    def crash_at(self) -> str | None:
        """What the tools read from CRASH_AT: ``tool:phase:k`` (model points are the test's)."""
        return None if self.phase == "model" else f"{self.target}:{self.phase}:{self.occurrence}"


# What the corpus must cover, each at least once (tests/test_crash_corpus.py checks it).
CATEGORIES = (
    "model",  # during a model call
    "model-in-par",  # during a model call in a par branch
    "between-steps",  # a tool killed before acting
    "unrecorded:idempotent",  # after an idempotent write/external tool acted, before it was recorded
    "unrecorded:non-idempotent",  # the same for a tool that is not idempotent: a person must be asked
    "unrecorded:read",
    "par-branch",  # a tool in a par branch
    "loop-iteration",  # a later iteration of a `for`
    "nested",  # inside a called flow
    "recursion",  # inside a recursive flow
    "approval:pre",  # an `approval: human` tool approved with --approve
    "approval:paused",  # at or after a real pause answered with `voxc approve`
)

THEMES = ("par", "loop", "nested", "recursion", "pause", "par", "loop", "approval:pre")


@dataclass
class Program:
    index: int
    seed: int
    source: str
    module: str  # the tools' Python module
    module_source: str
    tools: dict[str, ToolSpec]
    agents: list[str]
    sites: list[Site]
    approve: tuple[str, ...]  # --approve TOOL for each pre-approved tool
    pauses: bool  # whether a run really waits for `voxc approve`
    budgets: tuple[tuple[str, str], ...]  # (ledger scope, period) of each run-wide cost budget
    features: frozenset[str]
    flow: str = "main"
    kill_points: list[KillPoint] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"p{self.index:02d}"

    @property
    def run_id(self) -> str:
        return f"crash-{self.name}-s{self.seed}"

    @property
    def input(self) -> dict:
        return {"order": f"A{self.seed}", "items": ["i0", "i1", "i2"]}

    def candidates(self) -> list[KillPoint]:
        """Every kill point of the program: each execution of each call site."""
        out = []
        for site in self.sites:
            for k in range(site.times):
                if site.kind == "agent":
                    out.append(KillPoint("model", site.name, k, _point_tags(site, "model", k, None, self.pauses)))
                    continue
                tool = self.tools[site.name]
                for phase in ("before", "after"):
                    out.append(KillPoint(phase, site.name, k, _point_tags(site, phase, k, tool, self.pauses)))
        return out


def _point_tags(site: Site, phase: str, k: int, tool: ToolSpec | None, pauses: bool) -> frozenset[str]:
    tags = set()
    if phase == "model":
        tags.add("model")
        if "par" in site.tags:
            tags.add("model-in-par")
    elif phase == "before":
        tags.add("between-steps")
    else:
        tags.add("unrecorded:read" if tool.effect == "read"
                 else "unrecorded:idempotent" if tool.idempotent else "unrecorded:non-idempotent")
    if phase != "model" and "par" in site.tags:
        tags.add("par-branch")
    if "loop" in site.tags and k > 0:
        tags.add("loop-iteration")
    tags |= site.tags & {"nested", "recursion"}
    if tool is not None and tool.approval == "pre":
        tags.add("approval:pre")
    if (pauses and "after-pause" in site.tags) or (tool is not None and tool.approval == "pause"):
        tags.add("approval:paused")
    return frozenset(tags)


@dataclass(frozen=True)
class _Ctx:
    times: int = 1  # executions of this block per run
    tags: frozenset[str] = frozenset()
    depth: int = 0  # flows nested below main
    may_pause: bool = True  # no pausing tool in a par branch (the run would stop with siblings mid-call)
    may_loop: bool = True

    def inside(self, tag: str, times: int = 1, **changes) -> "_Ctx":
        values = {"times": self.times * times, "tags": self.tags | {tag}, "depth": self.depth,
                  "may_pause": self.may_pause, "may_loop": self.may_loop}
        values.update(changes)
        return _Ctx(**values)


class _Generator:
    def __init__(self, index: int, seed: int, theme: str):
        self.index = index
        self.seed = seed
        self.rng = random.Random(seed)
        self.theme = theme
        self.module = f"effects_p{index:02d}"
        self.tools: dict[str, ToolSpec] = {}
        self.tool_decls: list[str] = []
        self.agents: list[str] = []
        self.flows: list[str] = []
        self.sites: list[Site] = []
        self.features: set[str] = set()
        self.counter = Counter()
        self.paused = False  # a pausing tool has been placed: later sites run after the pause

    def fresh(self, prefix: str) -> str:
        n = self.counter[prefix]
        self.counter[prefix] += 1
        return f"{prefix}{n}"

    # -- declarations --------------------------------------------------------------------------

    def tool(self, ctx: _Ctx, approval: str = "none") -> str:
        rng = self.rng
        name = self.fresh("t")
        effect = "write" if approval == "pause" and rng.random() < 0.5 else rng.choice(("read", "write", "external"))
        if approval == "none" and rng.random() < 0.12:
            approval = "pre"
        idempotent = rng.random() < 0.5
        cost = rng.choice((None, None, "$0.001", "$0.0005"))
        retries = 1 if idempotent and rng.random() < 0.3 else 0
        spec = ToolSpec(name, effect, idempotent, approval, cost)
        self.tools[name] = spec
        lines = [f"tool {name}(arg: str) -> str {{", f"  effect: {effect}"]
        if idempotent:
            lines.append("  idempotent: true")
        if approval != "none":
            lines.append("  approval: human")
            self.features.add("pause" if approval == "pause" else "approval:pre")
        if cost:
            lines.append(f"  cost: {cost}")
        if retries:
            lines.append(f"  retries: {retries}")
        lines += [f'  bind: python("{self.module}:{name}")', "}"]
        self.tool_decls.append("\n".join(lines))
        self.site("tool", name, ctx)
        return name

    def agent(self, ctx: _Ctx) -> str:
        name = self.fresh("a")
        self.agents.append(name)
        self.site("agent", name, ctx)
        return name

    def site(self, kind: str, name: str, ctx: _Ctx) -> None:
        tags = ctx.tags | ({"after-pause"} if self.paused else set())
        self.sites.append(Site(kind, name, ctx.times, frozenset(tags)))

    # -- expressions and statements -----------------------------------------------------------

    def text(self, scope: dict[str, str]) -> str:
        """A `str` expression over the names in scope."""
        options = [n for n, t in scope.items() if t == "str"]
        options += [f"{n}.title" for n, t in scope.items() if t == "Note"]
        if not options or self.rng.random() < 0.1:
            return f'"w{self.rng.randrange(100)}"'
        recent = options[-3:]
        return self.rng.choice(recent)

    def call(self, kind: str, ctx: _Ctx, scope: dict[str, str]) -> tuple[str, str]:
        """A call expression of a new callee of ``kind`` and its type."""
        if kind == "tool":
            return f"{self.tool(ctx)}(arg: {self.text(scope)})", "str"
        if kind == "pause":
            self.paused = True  # sites declared from now on run after the pause
            name = self.tool(ctx, approval="pause")
            return f"{name}(arg: {self.text(scope)})", "str"
        if kind == "agent":
            return f"{self.agent(ctx)}(x: {self.text(scope)})", "Note"
        if kind == "nested":
            return f"{self.nested(ctx.inside('nested'))}(x: {self.text(scope)})", "str"
        if kind == "recursion":
            depth = self.rng.choice((2, 3))
            return f"{self.recursive(ctx, depth)}(n: {depth - 1}, x: {self.text(scope)})", "str"
        raise AssertionError(kind)

    def statements(self, ctx: _Ctx, scope: dict[str, str], kinds: list[str], out: list[str], indent: str) -> None:
        """Append one statement per kind to ``out``, binding new names in ``scope``."""
        for kind in kinds:
            if kind == "par":
                self.par(ctx, scope, out, indent)
            elif kind == "loop":
                self.loop(ctx, scope, out, indent)
            elif kind == "expr":
                expr, _ = self.call("tool", ctx, scope)
                out.append(f"{indent}{expr}")
            else:
                self.features.add(kind)
                expr, ty = self.call(kind, ctx, scope)
                name = self.fresh("v")
                out.append(f"{indent}let {name} = {expr}")
                scope[name] = ty

    def par(self, ctx: _Ctx, scope: dict[str, str], out: list[str], indent: str) -> None:
        self.features.add("par")
        inner = ctx.inside("par", may_pause=False)
        choices = ["tool", "tool", "agent"] + (["nested"] if ctx.depth < 2 else [])
        kinds = [self.rng.choice(choices) for _ in range(self.rng.choice((2, 2, 3)))]
        if "agent" not in kinds and self.rng.random() < 0.5:
            kinds[0] = "agent"
        before = dict(scope)  # each branch sees only the names bound before the par
        out.append(f"{indent}par {{")
        for kind in kinds:
            expr, ty = self.call(kind, inner, before)
            name = self.fresh("v")
            out.append(f"{indent}  let {name} = {expr}")
            scope[name] = ty
        out.append(f"{indent}}}")

    def loop(self, ctx: _Ctx, scope: dict[str, str], out: list[str], indent: str) -> None:
        self.features.add("loop")
        rng = self.rng
        if "items" in scope and rng.random() < 0.5:
            source, length = "items", 3
        else:
            length = rng.choice((2, 3))
            source = "[" + ", ".join(f'"e{i}"' for i in range(length)) + "]"
        bound = rng.choice((2, 3))
        var = self.fresh("it")
        inner = ctx.inside("loop", times=min(length, bound), may_loop=False)
        body_scope = {**scope, var: "str"}
        choices = ["tool", "tool", "agent", "par"] + (["nested"] if ctx.depth < 2 else [])
        body: list[str] = []
        self.statements(inner, body_scope, [rng.choice(choices) for _ in range(rng.choice((1, 2)))], body,
                        indent + "  ")
        last = next(n for n in reversed(body_scope) if n not in scope and n != var)
        name = self.fresh("v")
        out.append(f"{indent}let {name} = for {var} in {source} max {bound} {{")
        out.extend(body)
        out.append(f"{indent}  {last}")
        out.append(f"{indent}}}")
        scope[name] = f"list[{body_scope[last]}]"

    def nested(self, ctx: _Ctx) -> str:
        name = self.fresh("sub")
        scope = {"x": "str"}
        body: list[str] = []
        choices = ["tool", "agent"] + (["par"] if ctx.depth < 1 else [])
        if ctx.may_loop and ctx.depth < 1:
            choices.append("loop")
        if ctx.may_pause and not self.paused and self.theme == "pause" and self.rng.random() < 0.3:
            choices.append("pause")
        kinds = [self.rng.choice(choices) for _ in range(self.rng.choice((1, 2)))]
        self.statements(_Ctx(ctx.times, ctx.tags, ctx.depth + 1, ctx.may_pause, ctx.may_loop), scope, kinds, body,
                        "  ")
        result = next((n for n in reversed(scope) if scope[n] == "str" and n != "x"), None)
        if result is None:
            result = next((f"{n}.title" for n in reversed(scope) if scope[n] == "Note"), "x")
        self.flows.append("\n".join([f"flow {name}(x: str) -> str {{", *body, f"  return {result}", "}"]))
        return name

    def recursive(self, ctx: _Ctx, depth: int) -> str:
        """`recK(n, x)` calls itself until n is 0: `depth` activations, `depth - 1` of them acting."""
        self.features.add("recursion")
        name = self.fresh("rec")
        inner = ctx.inside("recursion", times=depth - 1)
        scope = {"x": "str"}
        body: list[str] = []
        kinds = ["tool"] if self.rng.random() < 0.6 else ["agent", "tool"]
        self.statements(_Ctx(inner.times, inner.tags | {"nested"}, ctx.depth + 1, False, False), scope, kinds, body,
                        "  ")
        last = next(n for n in reversed(scope) if scope[n] == "str" and n != "x")
        self.flows.append("\n".join([
            f"flow {name}(n: int, x: str) -> str {{",
            # No cost cap here: a nested activation reserves the callee's whole cap from its caller
            # (spec/budgets.md), so a recursive flow capped at $X could never nest.
            f"  budget: {{ depth: {depth} }}",
            "  if n <= 0 {",
            "    return x",
            "  }",
            *body,
            f"  return {name}(n: n - 1, x: {last})",
            "}",
        ]))
        return name

    # -- the program -------------------------------------------------------------------------------

    def program(self) -> Program:
        rng = self.rng
        kinds = [self.theme if self.theme in ("par", "loop", "nested", "recursion") else "tool"]
        extra = ["tool", "agent", "par", "loop", "nested", "recursion", "expr", "tool"]
        kinds += [rng.choice(extra) for _ in range(rng.randint(2, 4))]
        rng.shuffle(kinds)
        if self.theme == "pause":
            kinds.insert(rng.randint(1, len(kinds)), "pause")
        if self.theme == "approval:pre":
            kinds.insert(0, "tool")
        scope = {"order": "str", "items": "list[str]"}
        body: list[str] = []
        for kind in kinds:
            self.statements(_Ctx(), scope, [kind], body, "  ")
        if self.theme == "approval:pre" and not any(t.approval == "pre" for t in self.tools.values()):
            self.features.add("approval:pre")
            first = next(iter(self.tools.values()))
            self.tools[first.name] = ToolSpec(first.name, first.effect, first.idempotent, "pre", first.cost)
            self.tool_decls[0] = self.tool_decls[0].replace("  bind:", "  approval: human\n  bind:")
        fields = {n: t for n, t in scope.items() if n not in ("order", "items")}
        budgets = [("tenant:default", "day")]
        header = [f"// generated crash-trial program {self.index} (seed {self.seed}, theme {self.theme})"]
        requests = ", requests: 600 per minute" if rng.random() < 0.3 else ""
        header.append(f"budget tenant {{ cost: $5 per day{requests} }}")
        if rng.random() < 0.5:
            header.append("budget fleet { cost: $50 per day }")
            budgets.append(("fleet", "day"))
            self.features.add("fleet")
        source = "\n\n".join([
            "\n".join(header),
            'provider sim = openai_compatible { base_url: env("TRIAL_SIM_URL"), clearance: [public] }',
            "\n".join([
                'model m = sim/"sim-model" {',
                "  context: 8_000",
                "  max_output: 100",
                "  price: { input: $1, output: $2 }",
                "  capabilities: [json_schema]",
                "}",
            ]),
            "type Note = { title: str, body: str }",
            "type Out = { " + ", ".join(f"{n}: {t}" for n, t in fields.items()) + " }",
            *self.tool_decls,
            *[
                "\n".join([
                    f"agent {a}(x: str) -> Note {{",
                    "  model: m",
                    "  budget: { tokens: 2_000, cost: $0.01, steps: 1 }",
                    f'  prompt: "Write a short note ({a}) about {{x}}."',
                    "}",
                ])
                for a in self.agents
            ],
            *self.flows,
            "\n".join([
                "flow main(order: str, items: list[str]) -> Out {",
                "  budget: { cost: $2 }",
                *body,
                "  return { " + ", ".join(f"{n}: {n}" for n in fields) + " }",
                "}",
            ]),
        ]) + "\n"
        return Program(
            index=self.index, seed=self.seed, source=source, module=self.module,
            module_source=module_source(self.tools), tools=dict(self.tools), agents=list(self.agents),
            sites=list(self.sites), approve=tuple(t.name for t in self.tools.values() if t.approval == "pre"),
            pauses=any(t.approval == "pause" for t in self.tools.values()), budgets=tuple(budgets),
            features=frozenset(self.features),
        )


def module_source(tools: dict[str, ToolSpec]) -> str:
    """The tools' Python module: each call logs its execution (fsync) with its idempotency key.

    ``CRASH_AT=tool:phase:k`` kills the process in the k-th execution of ``tool`` in this trial
    (counted in the log, so across the processes of one trial), before or after it acts."""
    lines = [
        '"""Generated tools of a crash trial: each execution is logged, with its idempotency key."""',
        "import json, os",
        "",
        "def _executions(tool):",
        "    try:",
        '        with open(os.environ["EFFECTS_LOG"]) as f:',
        '            return sum(1 for line in f if line.strip() and json.loads(line)["tool"] == tool)',
        "    except FileNotFoundError:",
        "        return 0",
        "",
        "def _act(tool, arg, key):",
        '    crash = os.environ.get("CRASH_AT")',
        "    n = _executions(tool)",
        '    if crash == f"{tool}:before:{n}":',
        "        os.kill(os.getpid(), 9)",
        '    with open(os.environ["EFFECTS_LOG"], "a") as f:',
        '        f.write(json.dumps({"tool": tool, "key": key, "arg": arg, "pid": os.getpid()}) + "\\n")',
        "        f.flush()",
        "        os.fsync(f.fileno())",
        '    if crash == f"{tool}:after:{n}":',
        "        os.kill(os.getpid(), 9)",
        '    return tool + "(" + arg + ")"',
    ]
    for name in tools:
        lines += ["", f"def {name}(arg, idempotency_key=None):", f"    return _act({name!r}, arg, idempotency_key)"]
    return "\n".join(lines) + "\n"


def generate(index: int, seed: int) -> Program:
    """Program number ``index`` of the corpus, from ``seed``: the same on every machine.

    >>> generate(3, 1003).source == generate(3, 1003).source
    True
    """
    return _Generator(index, seed, THEMES[index % len(THEMES)]).program()


def corpus(count: int = 30, base_seed: int = 1000, points: int | None = 2) -> list[Program]:
    """``count`` programs, each with ``points`` kill points (None: all of them), chosen so that
    the corpus covers every category of :data:`CATEGORIES`: each pick is the point whose
    categories the corpus has covered least so far (ties broken by the program's seed)."""
    programs = [generate(i, base_seed + i) for i in range(count)]
    covered: Counter = Counter()
    for program in programs:
        candidates = program.candidates()
        if points is None:
            program.kill_points = candidates
            continue
        rng = random.Random(program.seed * 7919)
        rng.shuffle(candidates)
        chosen: list[KillPoint] = []
        for _ in range(min(points, len(candidates))):
            def novelty(p: KillPoint) -> float:
                phase_seen = sum(1 for c in chosen if c.phase == p.phase)
                return sum(1 / (1 + covered[t]) for t in p.tags) - phase_seen
            best = max((p for p in candidates if p not in chosen), key=novelty)
            chosen.append(best)
            covered.update(best.tags)
        program.kill_points = chosen
    return programs


# ---- running -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """How one `voxc` process ended."""

    code: int
    result: dict | None  # the outcome printed with --json
    stderr: str
    stdout: str = ""

    @property
    def status(self) -> str | None:
        return (self.result or {}).get("status")

    def why(self) -> str:
        """The outcome in one line, for a failure message: the run's error, or the exception of
        an internal error (`VOXC_BACKTRACE=1` is set), or the last thing `voxc` said."""
        if self.result and self.result.get("error"):
            e = self.result["error"]
            return f"exit {self.code}, {self.status}: {e.get('message')} (at {e.get('step')})"
        lines = [line.strip(" |") for line in self.stderr.splitlines() if line.strip(" |")]
        raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Conflict|Refused|Group)\b", line)]
        said = [line for line in lines if line.startswith("voxc:") and "this is a bug in voxc" not in line]
        last = (raised or said or lines or [""])[-1]
        return f"exit {self.code}{', ' + self.status if self.status else ''}: {last[:400]}"


@dataclass
class Baseline:
    outcome: dict
    pauses: list[dict]  # each {step, tool, arguments} the run waited at, in order
    executions: list[dict]  # the tools' log
    ledger: dict[tuple[str, str], tuple[int, int, int]]  # (scope, period) -> (spent, reserved, entries)
    state: Path
    answered: dict[str, int]  # agent -> model requests the simulator answered for the run
    steps: list[str] | None = None  # the journal's step names, once a trial needed them

    def key(self, tool: str, occurrence: int) -> str | None:
        """The idempotency key of the ``occurrence``-th execution of ``tool``."""
        found = [e["key"] for e in self.executions if e["tool"] == tool]
        return found[occurrence] if occurrence < len(found) else None

    def where(self, key: str) -> str:
        """``tool#k``: which execution of which tool used ``key``."""
        for i, e in enumerate(self.executions):
            if e["key"] == key:
                return f"{e['tool']}#{sum(1 for x in self.executions[:i] if x['tool'] == e['tool'])}"
        return "?"


@dataclass
class TrialResult:
    program: str
    point: str
    tags: frozenset[str]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (category, message)
    resumed_ok: bool = False
    same_output: bool = False
    repeated: int = 0  # executions beyond the first of a key that were not allowed
    lost_micros: int = 0
    double_micros: int = 0
    asked: list[str] = field(default_factory=list)  # "may already have acted" questions, with the answer
    receipts_ok: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, category: str, message: str) -> None:
        self.problems.append((category, message))


class TrialError(Exception):
    """A trial that could not be carried out: the uninterrupted run failed (a verdict on the
    runtime too), or the run never reached its kill point."""


class Runner:
    """Runs programs with the `voxc` console script against one simulator (one per worker, so
    faults and run states never cross between trials running at the same time)."""

    def __init__(self, voxc: str, sim_url: str, root: Path, timeout_s: float = 180.0):
        self.voxc = voxc
        self.sim_url = sim_url
        self.root = root
        self.timeout_s = timeout_s
        self.http = None  # an httpx.Client to the simulator, once needed
        self._already_done: bool | None = None  # whether `voxc approve` has --already-done

    # -- files and processes -----------------------------------------------------------------------

    def close(self) -> None:
        if self.http is not None:
            self.http.close()

    def write(self, program: Program) -> Path:
        folder = self.root / program.name / "program"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "main.vox").write_text(program.source)
        (folder / f"{program.module}.py").write_text(program.module_source)
        return folder / "main.vox"

    def env(self, log: Path, crash: str | None = None) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root),
               "EFFECTS_LOG": str(log), "VOX_RECEIPT_KEY": "crash-corpus-key", "TRIAL_SIM_URL": self.sim_url + "/v1",
               "NO_COLOR": "1", "VOXC_BACKTRACE": "1"}
        if os.environ.get("PYTHONPATH"):  # a snapshot of the sources under test, if one is given
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        if crash:
            env["CRASH_AT"] = crash
        return env

    def spawn(self, cwd: Path, env: dict, *args: str) -> subprocess.Popen:
        return subprocess.Popen([self.voxc, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)

    def finish(self, p: subprocess.Popen) -> Outcome:
        try:
            out, err = p.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            err += f"\n(the test killed `voxc` after {self.timeout_s:g}s without an answer)"
        try:
            result = json.loads(out) if out.strip() else None
        except json.JSONDecodeError:
            result = None
        return Outcome(p.returncode, result if isinstance(result, dict) else None, err, out)

    def voxc_run(self, cwd: Path, env: dict, *args: str) -> Outcome:
        return self.finish(self.spawn(cwd, env, *args))

    # -- the simulator -----------------------------------------------------------------------------

    def sim(self, method: str, path: str, body: dict | None = None) -> dict:
        if self.http is None:
            import httpx

            self.http = httpx.Client(base_url=self.sim_url, timeout=30)
        response = self.http.request(method, path, json=body)
        response.raise_for_status()
        return response.json() if response.content else {}

    def reset(self, program: Program) -> None:
        """A fresh simulator state for the run, answering from the program's seed."""
        self.sim("DELETE", "/_sim/faults")
        self.sim("POST", f"/_sim/runs/{program.run_id}", {"scripts": {}, "seed": program.seed})

    def hold(self, run_id: str, steps: list[str]) -> None:
        """Hold the next model request of each agent step: it never gets an answer."""
        if steps:
            self.sim("POST", "/_sim/faults", {"faults": [
                {"kind": "timeout", "delay_s": 600, "run": run_id, "step": s, "count": 1} for s in steps]})

    def answered(self, run_id: str) -> dict[str, int]:
        """How many model requests of each agent the simulator has answered for the run (a held
        request is not answered)."""
        agents = self.sim("GET", f"/_sim/runs/{run_id}").get("agents", {})
        return {agent: a["calls"] for agent, a in agents.items() if a.get("calls")}

    def held(self, step: str) -> bool:
        return any(f.get("step") == step and f.get("hits", 0) > 0 for f in self.sim("GET", "/_sim/faults")["faults"])

    # -- one program -----------------------------------------------------------------------------

    def start_args(self, program: Program, source: Path, state: Path) -> list[str]:
        args = ["run", str(source), "--flow", program.flow, "--input", json.dumps(program.input), "--run-id",
                program.run_id, "--state-dir", str(state), "--seed", str(program.seed), "--json"]
        for tool in program.approve:
            args += ["--approve", tool]
        return args

    def baseline(self, program: Program) -> Baseline:
        source = self.write(program)
        folder = self.root / program.name / "baseline"
        folder.mkdir(parents=True, exist_ok=True)
        state, log = folder / "state", folder / "effects.log"
        self.reset(program)
        env = self.env(log)
        outcome = self.voxc_run(folder, env, *self.start_args(program, source, state))
        pauses = []
        while outcome.code == 4 and outcome.status == "waiting" and len(pauses) < 10:
            pauses.append(outcome.result["waiting"])
            outcome = self.voxc_run(folder, env, "approve", program.run_id, "--state-dir", str(state), "--json")
        if outcome.code != 0 or outcome.status != "ok":
            raise TrialError(f"the uninterrupted run of {program.name} did not finish: {outcome.why()}"
                             + (f" after approving {len(pauses)} pause(s)" if pauses else ""))
        executions = read_log(log)
        keys = Counter(e["key"] for e in executions)
        if any(k is None for k in keys) or any(n > 1 for n in keys.values()):
            raise TrialError(f"the uninterrupted run of {program.name} gave its tools missing or repeated "
                             f"idempotency keys: {dict(keys)}")
        ledger = read_ledger(state, program)
        for (scope, period), (spent, reserved, entries) in ledger.items():
            if not entries or reserved or spent != outcome.result["spent"]["cost_micros"]:
                raise TrialError(f"the uninterrupted run of {program.name} left {scope} per {period} with {spent} µ$ "
                                 f"spent and {reserved} µ$ reserved in {entries} ledger entries (at "
                                 f"{ledger_url(state)}), but reports spending {outcome.result['spent']}")
        return Baseline(outcome.result, pauses, executions, ledger, state, self.answered(program.run_id))

    def steps(self, program: Program, base: Baseline) -> list[str]:
        """The step names of the uninterrupted run, from `voxc runs show --json` (asked once)."""
        if base.steps is None:
            shown = self.voxc_run(base.state.parent, self.env(base.state.parent / "effects.log"), "runs", "show",
                                  program.run_id, "--json", "--state-dir", str(base.state))
            base.steps = [s.get("name") or s.get("step") for s in (shown.result or {}).get("steps", [])]
            if not base.steps:
                raise TrialError(f"`voxc runs show {program.run_id} --json` listed no steps: {shown.why()}")
        return base.steps

    def trial(self, program: Program, point: KillPoint, base: Baseline) -> TrialResult:
        result = TrialResult(program.name, point.label, point.tags)
        started = time.monotonic()
        try:
            self._trial(program, point, base, result)
        except TrialError as e:
            result.fail("harness", str(e))
        except Exception as e:  # noqa: BLE001 - a bug of the harness: say so, and go on with the corpus
            import traceback

            result.fail("harness", f"the trial itself failed: {type(e).__name__}: {e}\n{traceback.format_exc()}")
        finally:
            try:
                self.sim("DELETE", "/_sim/faults")
            except Exception:  # noqa: BLE001 - the verdict is already made
                pass
        result.seconds = time.monotonic() - started
        return result

    def _trial(self, program: Program, point: KillPoint, base: Baseline, result: TrialResult) -> None:
        source = self.root / program.name / "program" / "main.vox"
        folder = self.root / program.name / f"trial-{point.label.replace(':', '-').replace('#', '-')}"
        folder.mkdir(parents=True, exist_ok=True)
        state, log = folder / "state", folder / "effects.log"
        run = program.run_id
        # Calls the kill may interrupt: the point's own, and (in a `par`) its siblings'. Their
        # step names come from the journal of the uninterrupted run; the simulator holds the
        # model requests among them, so that none is answered and then lost with the process.
        interrupted: set[str] = set()
        holds: list[str] = []
        target_step = None
        if point.phase != "model":
            interrupted.add(base.key(point.target, point.occurrence))
        if point.phase == "model" or point.tags & {"par-branch", "model-in-par"}:
            steps = self.steps(program, base)
            target_step = step_of(steps, point)
            if target_step is None:
                raise TrialError(f"no step of the uninterrupted run is {point.label}; its steps: {steps}")
            siblings = concurrent_steps(steps, target_step) - {target_step}
            holds = sorted(s for s in siblings if callee(s) in program.agents)
            interrupted |= {key_of_step(base, steps, s) for s in siblings if callee(s) in program.tools}
            if point.phase == "model":
                holds.append(target_step)
        self.reset(program)
        self.hold(run, holds)
        pauses: list[dict] = []

        # Run until the kill: the tool kills itself, or the test kills the run while the simulator
        # holds the model request. A pause before the point is answered as a person would.
        crash_env = self.env(log, point.crash_at)
        p = self.spawn(folder, crash_env, *self.start_args(program, source, state))
        while True:
            if point.phase == "model":
                self.kill_when_held(p, target_step)
            outcome = self.finish(p)
            if outcome.code == -signal.SIGKILL:
                break
            if outcome.code == 4 and outcome.status == "waiting" and len(pauses) < 10:
                pauses.append(outcome.result["waiting"])
                p = self.spawn(folder, crash_env, "approve", run, "--state-dir", str(state), "--json")
                continue
            raise TrialError(f"the run never reached {point.label}: {outcome.why()}")
        self.sim("DELETE", "/_sim/faults")
        before_kill = len(read_log(log))  # the executions of the processes up to the killed one

        # Resume, answering every question as a person would, until the run ends.
        env = self.env(log)
        outcome = self.voxc_run(folder, env, "run", "--resume", run, "--state-dir", str(state), "--json")
        while outcome.code == 4 and outcome.status == "waiting" and len(pauses) < 20:
            waiting = dict(outcome.result["waiting"])
            answer = self.answer(program, folder, waiting, read_log(log), interrupted)
            waiting["answered"] = answer[0] if answer else "approve"
            pauses.append(waiting)
            outcome = self.voxc_run(folder, env, "approve", run, "--state-dir", str(state), "--json", *answer)
        verify = self.voxc_run(folder, env, "receipts", "verify", run, "--state-dir", str(state))
        judge(program, base, outcome, pauses, read_log(log), before_kill, read_ledger(state, program), verify,
              interrupted, self.answered(run), result)

    def answer(self, program: Program, folder: Path, waiting: dict, executions: list[dict],
               interrupted: set[str | None]) -> list[str]:
        """What a person answers (the flags of `voxc approve`): approve, which repeats an
        interrupted call; or, in every other program where `voxc approve` offers it, when the
        tools' log shows that the interrupted call did act, "it already happened" with its result."""
        tool = tool_of_step(program, waiting.get("step"))
        arguments = waiting.get("arguments") if isinstance(waiting.get("arguments"), dict) else {}
        acted = any(e["tool"] == tool and e["key"] in interrupted and e["arg"] == arguments.get("arg")
                    for e in executions)
        if not (is_repeat_question(waiting) and acted and program.index % 2 and self.offers_already_done(folder)):
            return []
        return ["--already-done", "--result", json.dumps(f"{tool}({arguments['arg']})")]

    def offers_already_done(self, folder: Path) -> bool:
        if self._already_done is None:
            shown = self.voxc_run(folder, self.env(folder / "none.log"), "approve", "--help")
            self._already_done = "--already-done" in shown.stdout
        return self._already_done

    def kill_when_held(self, p: subprocess.Popen, step: str) -> None:
        """SIGKILL ``p`` once the simulator holds its request for ``step`` (or let it be, if it
        ends first: it paused, or failed)."""
        deadline = time.monotonic() + self.timeout_s
        while p.poll() is None and time.monotonic() < deadline:
            if self.held(step):
                p.kill()
                return
            time.sleep(0.05)


# ---- what a trial is judged on -------------------------------------------------------------------


def judge(program: Program, base: Baseline, outcome: Outcome, pauses: list[dict], executions: list[dict],
          before_kill: int, ledger: dict, verify: Outcome, interrupted: set[str | None], answered: dict[str, int],
          result: TrialResult) -> None:
    """Compare a killed-and-resumed run with the uninterrupted one; record every difference.

    ``executions[:before_kill]`` happened before the kill. ``interrupted`` holds the idempotency
    keys of the tool calls the kill may have caught in the middle: the only calls that may run a
    second time, once, after it."""
    # 1. It finished, with the output of the run nobody interrupted (same run id, same seed).
    if outcome.code == 0 and outcome.status == "ok":
        result.resumed_ok = True
    else:
        result.fail("resume", f"the resumed run did not finish: {outcome.why()}")
    if result.resumed_ok:
        if outcome.result.get("output") == base.outcome["output"]:
            result.same_output = True
        else:
            result.fail("output", "the output differs from the uninterrupted run's:\n  got      "
                        + json.dumps(outcome.result.get("output"), sort_keys=True)[:600] + "\n  expected "
                        + json.dumps(base.outcome["output"], sort_keys=True)[:600])

    # 2. Questions: every approval the uninterrupted run asked for, once; besides those, only
    # "it may already have acted" about a non-idempotent effectful call that was interrupted.
    approvals = Counter(p["step"] for p in base.pauses)
    asked = Counter(p.get("step") for p in pauses)
    allowed_repeat_of: set[str] = set()  # tools a person allowed to run again
    for step, n in asked.items():
        what = str(next(p for p in pauses if p.get("step") == step).get("tool"))
        if step in approvals:
            if n > 1:
                result.fail("pause", f"the approval at {step} was asked {n} times: a person's answer was forgotten")
            continue
        tool = tool_of_step(program, step)
        spec = program.tools.get(tool) if tool else None
        question = next(p for p in pauses if p.get("step") == step)
        repeat_question = is_repeat_question(question)
        if spec is not None and spec.asks_before_repeating and repeat_question:
            if question.get("answered") != "--already-done":
                allowed_repeat_of.add(tool)
            result.asked.append(f"{step} ({question.get('answered', 'approve')})")
            # The question is about a call the kill interrupted, and shows its arguments.
            shown = question.get("arguments")
            calls_of_tool = {e["arg"] for e in base.executions if e["tool"] == tool and e["key"] in interrupted}
            if not calls_of_tool:
                result.fail("pause", f"the resumed run asked whether to repeat `{tool}` at {step}, but the kill "
                            f"interrupted no call of `{tool}`: its calls had all been recorded, or not begun")
            elif not (isinstance(shown, dict) and shown.get("arg") in calls_of_tool):
                result.fail("pause", f"the question about repeating `{tool}` at {step} shows the arguments "
                            f"{shown!r}, not those of the interrupted call ({sorted(calls_of_tool)})")
            key = question.get("idempotency_key", question.get("key"))
            if key is not None and key not in interrupted:
                result.fail("pause", f"the question about repeating `{tool}` at {step} shows the idempotency key "
                            f"{key!r}, not the interrupted call's")
            continue
        if spec is not None and spec.approval == "pre" and not repeat_question:
            result.fail("pause", f"the resumed run asked to approve `{tool}` at {step}, although the run was started "
                        f"with --approve {tool}: a standing approval was lost")
        elif spec is not None and repeat_question:
            result.fail("pause", f"the resumed run asked whether to repeat `{tool}` at {step} ({what!r}), but "
                        f"`{tool}` is {spec.effect}{' and idempotent' if spec.idempotent else ''}: it may simply "
                        "run again")
        else:
            result.fail("pause", f"the resumed run waited at {step} ({what!r}), which the uninterrupted run never did")
    for step in approvals:
        if step not in asked:
            result.fail("pause", f"the approval at {step} was never asked for")

    # 3. Effects: the keys of the uninterrupted run, each executed once, except an interrupted
    # call of a tool that may repeat (read, idempotent) or that a person allowed to repeat.
    base_keys = {e["key"]: e["tool"] for e in base.executions}
    counts = Counter(e["key"] for e in executions)
    for key, tool in base_keys.items():
        if key not in counts:
            result.fail("effects", f"`{tool}` ({base.where(key)}, key {key[:8]}) never ran in the resumed run: "
                        "an effect was lost")
    for key, n in counts.items():
        tool = next(e["tool"] for e in executions if e["key"] == key)
        if key not in base_keys:
            result.fail("effects", f"`{tool}` ran with idempotency key {key!r}, which the uninterrupted run never "
                        "used: a repeated call must carry the same key")
            continue
        if n == 1:
            continue
        spec = program.tools[tool]
        first = next(i for i, e in enumerate(executions) if e["key"] == key)
        caught = key in interrupted and first < before_kill  # the kill caught this very call
        may_repeat = n == 2 and caught and (not spec.asks_before_repeating or tool in allowed_repeat_of)
        if not may_repeat:
            result.repeated += n - 1
            said_done = any(tool_of_step(program, p.get("step")) == tool and p.get("answered") == "--already-done"
                            for p in pauses)
            after = sum(1 for e in executions[before_kill:] if e["key"] == key)
            why = (f"it ran {after} times after the kill, in the processes that carried the run on (one stopped "
                   "with this call in flight, and the next called it again)" if first >= before_kill
                   else "the journal had recorded it before the kill" if not caught
                   else "a person said it had already happened" if said_done
                   else "it is not idempotent, and no person was asked" if spec.asks_before_repeating
                   else f"the kill caught it, and it then ran {after} times: a process that carried the run on "
                   "stopped with it in flight, and the next called it again")
            result.fail("repeated", f"`{tool}` ({spec.effect}{', idempotent' if spec.idempotent else ''}) ran "
                        f"{n} times with key {key[:8]} ({base.where(key)}): {why}")

    # 3b. Models: no request answered twice. The request the kill caught (and those of sibling
    # branches) were held by the simulator, never answered, so every answer beyond the
    # uninterrupted run's was bought and then lost by the runtime.
    for agent in sorted(set(answered) | set(base.answered)):
        extra = answered.get(agent, 0) - base.answered.get(agent, 0)
        if extra > 0:
            result.repeated += extra
            result.fail("repeated", f"the simulator answered `{agent}` {answered.get(agent, 0)} times, the "
                        f"uninterrupted run {base.answered.get(agent, 0)}: {extra} answer(s) paid for and lost (a "
                        "process stopped with the call in flight, and the model was asked again)")

    # 4. Spend: what the run reports, and what the tenant (and fleet) ledgers hold, equal the
    # uninterrupted run's: nothing lost, nothing counted twice, no reservation left open.
    reported = (outcome.result or {}).get("spent") or {}
    if result.resumed_ok and reported != base.outcome["spent"]:
        result.fail("spend", f"the run reports spending {reported}, the uninterrupted run {base.outcome['spent']}")
    for (scope, period), (base_spent, _, _) in base.ledger.items():
        spent, reserved, _ = ledger.get((scope, period), (0, 0, 0))
        says = f" (the run itself reports {reported['cost_micros']} µ$)" if "cost_micros" in reported else ""
        if spent < base_spent:
            result.lost_micros += base_spent - spent
            result.fail("spend", f"{scope} per {period}: the ledger holds {spent} µ$ spent, the uninterrupted "
                        f"run's {base_spent} µ$: {base_spent - spent} µ$ lost{says}")
        elif spent > base_spent:
            result.double_micros += spent - base_spent
            result.fail("spend", f"{scope} per {period}: the ledger holds {spent} µ$ spent, the uninterrupted "
                        f"run's {base_spent} µ$: {spent - base_spent} µ$ more{says}")
        if reserved and result.resumed_ok:
            result.fail("spend", f"{scope} per {period}: {reserved} µ$ still reserved after the run ended")

    # 5. Receipts: the chain verifies, with as many receipts as the uninterrupted run signed.
    expected = len(base.outcome.get("receipts") or [])
    if verify.code != 0:
        result.fail("receipts", f"`voxc receipts verify` failed: {verify.why()} {verify.stdout.strip()[:200]}")
    else:
        result.receipts_ok = True
        count = re.search(r"(\d+) receipts?", verify.stdout)
        if count and int(count.group(1)) != expected:
            result.fail("receipts", f"`voxc receipts verify` found {count.group(1)} receipts, the uninterrupted "
                        f"run signed {expected}")
    if result.resumed_ok and len(outcome.result.get("receipts") or []) != expected:
        result.fail("receipts", f"the run lists {len(outcome.result.get('receipts') or [])} receipts, the "
                    f"uninterrupted run {expected}")


# ---- reading what a run left -------------------------------------------------------------------


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ledger_url(state: Path) -> str:
    """Where the runtime keeps the run-wide ledgers of a local state folder, as the runtime says:
    the state store (`durable.state_url`) since issue 10, `.vox/fleet.sqlite` before it."""
    try:
        from vox.runtime.durable import state_url
    except ImportError:
        from vox.runtime.runwide import store_url

        return store_url(str(state), {})
    return state_url(str(state), None)


def read_ledger(state: Path, program: Program) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(spent, reserved, entries) of each run-wide budget, summed over the whole journal of its
    ledger (the state folder holds one run, so a period boundary in the middle changes nothing)."""
    from vox.runtime.fleet import SpendLedger

    ledger = SpendLedger(ledger_url(state))
    out = {}
    for scope, period in program.budgets:
        entries = ledger.journal(scope, period)
        out[(scope, period)] = (sum(e.d_spent for e in entries), sum(e.d_reserved for e in entries), len(entries))
    return out


_MODEL = re.compile(r"/model\[\d+\]$")
_PAR = re.compile(r"\.par(\d+)\.")


def agent_step(step: str) -> str:
    """The agent call of a model step (what the simulator sees as the request's step)."""
    return _MODEL.sub("", step)


def callee(step: str) -> str:
    """The callee a step calls: the last segment of its name."""
    return agent_step(step).rsplit("/", 1)[-1].rsplit(".", 1)[-1].split("#", 1)[0]


def calls(steps: list[str]) -> list[str]:
    """The tool steps and agent calls of a run, in the order the journal holds them."""
    out: list[str] = []
    for s in steps:
        if "#" in s.rsplit("/", 1)[-1]:
            continue  # markers (`#begin`, `#again`), not calls
        name = agent_step(s)
        if name not in out:
            out.append(name)
    return out


def step_of(steps: list[str], point: KillPoint) -> str | None:
    """The step name of the point's execution in the uninterrupted run."""
    found = [s for s in calls(steps) if callee(s) == point.target]
    return found[point.occurrence] if point.occurrence < len(found) else None


def concurrent_steps(steps: list[str], target: str) -> set[str]:
    """``target`` and the calls that may run at the same time: those of the sibling branches of
    every `par` it is in (a branch's steps share the `par`'s prefix and differ in its index)."""
    out = {agent_step(target)}
    for m in _PAR.finditer(target):
        prefix, own = target[: m.start()] + ".par", m.group(1)
        for s in calls(steps):
            if s.startswith(prefix) and s[len(prefix):].split(".", 1)[0] != own:
                out.add(s)
    return out


def is_repeat_question(waiting: dict) -> bool:
    """Whether a run waits to know if an interrupted call may run again (not for an approval)."""
    step, what = str(waiting.get("step")), str(waiting.get("tool")) + str(waiting.get("reason", ""))
    return waiting.get("kind") == "again" or "#" in step.rsplit("/", 1)[-1] or "again" in what or "already" in what


def tool_of_step(program: Program, step: str | None) -> str | None:
    if not step:
        return None
    name = callee(step)
    return name if name in program.tools else None


def key_of_step(base: Baseline, steps: list[str], step: str) -> str | None:
    """The idempotency key the uninterrupted run's call ``step`` used (its tool's executions are
    logged in the order the journal lists its steps)."""
    tool = callee(step)
    same = [s for s in calls(steps) if callee(s) == tool]
    return base.key(tool, same.index(step)) if step in same else None


def summarize(programs: list[Program], results: list[TrialResult], baseline_failures: dict[str, str]) -> str:
    """The trial counts, and each kind of failure with an example."""
    trials = len(results)
    lines = [
        f"crash corpus: {len(programs)} program(s) x {sum(len(p.kill_points) for p in programs)} kill points "
        f"({trials} trials run)",
        f"  passed:           {sum(r.ok for r in results)} / {trials}",
        f"  resumed OK:       {sum(r.resumed_ok for r in results)}",
        f"  same output:      {sum(r.same_output for r in results)}",
        f"  repeated effects: {sum(r.repeated for r in results)} executions in "
        f"{sum(1 for r in results if r.repeated)} trials (not allowed: see the failures)",
        f"  lost spend:       {sum(r.lost_micros for r in results)} µ$ in {sum(1 for r in results if r.lost_micros)} "
        f"trials ({sum(1 for r in results if r.lost_micros and r.resumed_ok)} of them resumed OK)",
        f"  spend above the uninterrupted run's: {sum(r.double_micros for r in results)} µ$ in "
        f"{sum(1 for r in results if r.double_micros)} trials (counted twice, or different requests)",
        f"  receipts verify:  exit 0 in {sum(r.receipts_ok for r in results)}",
        f"  asked a person before repeating a call: {sum(len(r.asked) for r in results)} times ("
        f"{sum(1 for r in results for a in r.asked if 'already-done' in a)} answered `--already-done`, the rest "
        "approved: called again)",
    ]
    if baseline_failures:
        lines.append(f"  programs whose uninterrupted run failed: {len(baseline_failures)}")
        for name, why in sorted(baseline_failures.items()):
            lines.append(f"    {name}: {why[:300]}")
    by_tag: dict[str, list[int]] = {}
    for r in results:
        for tag in r.tags & set(CATEGORIES):
            by_tag.setdefault(tag, [0, 0])
            by_tag[tag][0] += r.ok
            by_tag[tag][1] += 1
    lines.append("  by kind of point (passed/run): " + ", ".join(
        f"{t} {by_tag[t][0]}/{by_tag[t][1]}" for t in CATEGORIES if t in by_tag))
    kinds: Counter = Counter()
    example: dict[str, str] = {}
    for r in results:
        for category, message in r.problems:
            shape = category + ": " + _shape(message)
            kinds[shape] += 1
            example.setdefault(shape, f"{r.program} {r.point}: {message}")
    if kinds:
        lines.append("  failures (count, kind, first example):")
        for shape, n in kinds.most_common():
            lines.append(f"    {n:>3} x {shape[:160]}")
            lines.append(f"          e.g. {example[shape][:500]}")
    return "\n".join(lines)


def _shape(message: str) -> str:
    """A message with its particulars (names, numbers, keys) blanked, to group failures."""
    first = message.splitlines()[0]
    first = re.sub(r"`[^`]*`", "`_`", first)
    first = re.sub(r"\b[0-9a-f]{8,}\b", "#", first)
    first = re.sub(r"crash-p\d+-s\d+", "RUN", first)
    first = re.sub(r"[\w.\[\]/#]*\.(?:s\d+|par\d+)[\w.\[\]/#]*", "STEP", first)
    return re.sub(r"\d+", "N", first)


def corpus_seed() -> int:
    return int(os.environ.get("VOX_CRASH_SEED", "1000"))
