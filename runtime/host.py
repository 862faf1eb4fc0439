"""The runtime for one plan: providers (or the simulator), the receipt ledger, durability.

>>> # async with Runtime(plan, RunOptions(durable=False)) as rt:
>>> #     result = await rt.run("handle", {"ticket": {...}})

A provider is simulated when its protocol is `sim`, when its API key's environment variable is not
set, or (a provider without a key, such as a local server) when its base URL comes from an
environment variable that is not set; :attr:`Runtime.notes` says which, for the CLI to print.
``simulate="all"`` simulates every provider, ``"never"`` none.
"""

from __future__ import annotations

import gc
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import anyio

from vox.compiler.plan.model import Plan, Provider
from vox.runtime.executor.errors import ApprovalNeeded, RunError
from vox.runtime.executor.journal import Journal, NoJournal
from vox.runtime.executor.run import Approvals, Run, Services, no_events
from vox.runtime.executor.tools import ToolRunner
from vox.runtime.executor.values import to_json
from vox.runtime.providers import make_http_client, make_provider
from vox.runtime.providers.messages import ModelRequest, ModelResponse
from vox.runtime.runwide import RunWide
from vox.runtime.state import RunSpec, hide_password


@dataclass(frozen=True)
class RunOptions:
    durable: bool = True
    state_dir: str = ".vox"
    simulate: str = "auto"  # auto all never
    seed: int = 0
    approve: tuple[str, ...] = ()  # tools approved for every call of these runs
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    base_dir: str | None = None  # where `python(...)` bindings are imported from
    tenant: str = "default"  # whose `budget tenant` the runs count against
    db: str | None = None  # the deployment's database (a fleet's PostgreSQL); else SQLite in state_dir

    @property
    def store_url(self) -> str:
        from vox.runtime.durable import state_url

        return state_url(self.state_dir, self.db)


def options_for(spec: RunSpec, state_dir: str, env: Mapping[str, str], db: str | None) -> RunOptions:
    """The one way a runtime is configured for a run: from its spec, and the process's state
    folder (where its keys are), environment (API keys) and database."""
    return RunOptions(durable=True, state_dir=state_dir, simulate=spec.simulate, seed=spec.seed,
                      approve=(), env=env, base_dir=spec.base_dir, tenant=spec.tenant, db=db)


@dataclass
class RunResult:
    run_id: str
    flow: str
    status: str  # ok failed waiting
    output: Any = None  # the result as JSON (money as dollar strings)
    error: dict | None = None  # {kind, message, step}
    waiting: dict | None = None  # {step, tool, arguments} while paused for approval
    spent: dict = field(default_factory=dict)
    receipts: list[str] = field(default_factory=list)
    # charges not verified by a provider's reported usage (settled to a reservation, or counted by
    # the runtime), each {step, model, attempt, charged, cost_micros, tokens, why|error, cancelled}
    charges: list[dict] = field(default_factory=list)
    overshoots: list[dict] = field(default_factory=list)  # spend beyond a reservation or a cap

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class ModelRouter:
    """Sends each model's requests to its provider (real, or the simulator)."""

    def __init__(self, plan: Plan, providers: dict[str, Any]):
        self.plan = plan
        self.providers = providers

    async def complete(self, model: str, request: ModelRequest, observer=None) -> ModelResponse:
        return await self.providers[self.plan.models[model].provider].complete(request, observer=observer)


class Runtime:
    def __init__(self, plan: Plan, options: RunOptions | None = None, events: Callable[[dict], None] | None = None,
                 *, durability=None):
        self.plan = plan
        self.options = options or RunOptions()
        self.events = events or no_events
        self.notes: list[str] = []
        self.sim_url: str | None = None
        self._stack = None
        self.durability = durability  # given: a runtime opened for the process's durable runs

    # ---- setting up ----------------------------------------------------------------------------

    async def __aenter__(self) -> "Runtime":
        from contextlib import AsyncExitStack

        _freeze_long_lived()
        self._stack = AsyncExitStack()
        await self._stack.__aenter__()
        self.http = await self._stack.enter_async_context(make_http_client())
        self.simulated = {p.name: why for p in self.plan.providers.values()
                          if (why := simulation_reason(p, self.options)) is not None}
        self.notes = [f"provider `{name}` is simulated: {why}" for name, why in self.simulated.items()]
        if self.simulated:
            from vox.runtime.sim import running_simulator

            self.sim_url = await self._stack.enter_async_context(running_simulator(seed=self.options.seed))
        self.providers = {p.name: self.provider(p) for p in self.plan.providers.values()}
        self.router = ModelRouter(self.plan, self.providers)
        self.tools = ToolRunner(self.http, self.options.base_dir)
        os.makedirs(self.options.state_dir, exist_ok=True)
        if self.options.durable and self.durability is None:
            # The Python API's durable runtime: it owns the process's durability, and serves its
            # own plan's runs on this loop.
            from vox.runtime.durable import Durability

            self.durability = await self._stack.enter_async_context(
                Durability(self.options.state_dir, self.options.env, self.options.db))
            self.durability.adopt(self)
        from vox.runtime.receipts import ReceiptLedger, load_key
        from vox.runtime.sealing import withdraw_key_variables

        # Before any tool runs: the key variables leave os.environ (and so the environment of
        # every program a tool starts); see spec/runtime.md, "What tool code can reach".
        withdraw_key_variables()
        if self.durability is not None:  # one store: journal and receipts commit together
            self.store = self.durability.state.store
            keys = self.durability.receipt_key
        else:
            from vox.runtime.fleet.store import open_store

            self.store = open_store(self.options.store_url)
            self._stack.callback(self.store.close)
            keys = load_key(self.options.state_dir, self.options.env)
        self.receipts = ReceiptLedger(self.store, keys)
        self._stack.callback(self.receipts.note_head)  # the head this process leaves, in its high-water mark
        if keys.signing is not None and keys.signing.created:
            self.notes.append(created_key_note(keys.signing))
        if any(t.receipted for t in self.plan.tools.values()):
            try:  # a rolled-back ledger, or one signed with another key: refused before any tool acts
                self.receipts.check_ready()
            except BaseException:
                await self._stack.aclose()
                raise
        runwide = RunWide(self.plan, self.store, self.options.tenant)
        self.runwide = runwide if runwide.active else None
        return self

    async def __aexit__(self, *exc) -> None:
        await self._stack.__aexit__(*exc)

    def provider(self, p: Provider):
        if p.name in self.simulated:
            protocol = "anthropic" if p.protocol == "anthropic" else "openai_compatible"
            base = self.sim_url if protocol == "anthropic" else self.sim_url + "/v1"
            return make_provider(protocol, base, "sim", self.http)
        base = p.base_url
        if base is not None and not isinstance(base, str):
            base = self.options.env.get(base.env) or base.default
        key = self.options.env.get(p.key_env) if p.key_env else None
        return make_provider(p.protocol, base, key, self.http, timeout_s=p.timeout_ms / 1000)

    # ---- running -------------------------------------------------------------------------------

    def spec(self, flow: str, raw_input: dict, run_id: str | None = None, *, scripts: dict | None = None,
             tool_mocks: dict | None = None, approve: tuple[str, ...] = ()) -> RunSpec:
        """The spec of a new run of this runtime's plan."""
        o = self.options
        return RunSpec(run_id=run_id or new_run_id(), plan_hash=self.plan.plan_hash, flow=flow, input=raw_input,
                       base_dir=o.base_dir, simulate=o.simulate, seed=o.seed, tenant=o.tenant,
                       store=hide_password(o.store_url), approve=tuple(o.approve) + tuple(approve),
                       tool_mocks=dict(tool_mocks or {}), scripts=dict(scripts or {}))

    def services(self, spec: RunSpec, journal: Journal, decisions: dict | None = None) -> Services:
        runwide = self.runwide
        if runwide is not None and spec.tenant != runwide.tenant:
            runwide = RunWide(self.plan, self.store, spec.tenant)
        return Services(
            models=self.router,
            tools=self.tools,
            receipts=self.receipts,
            journal=journal,
            approvals=Approvals(frozenset(spec.approve), dict(decisions or {})),
            events=self.events,
            tool_mocks=dict(spec.tool_mocks),
            runwide=runwide,
            tenant=spec.tenant,
            store_url=self.options.store_url,
        )

    async def run(self, flow: str, raw_input: dict, run_id: str | None = None, *, scripts: dict | None = None,
                  tool_mocks: dict | None = None, approve: tuple[str, ...] = ()) -> RunResult:
        """Run ``flow`` to completion (or until it waits for approval)."""
        spec = self.spec(flow, raw_input, run_id, scripts=scripts, tool_mocks=tool_mocks, approve=approve)
        if self.options.durable:
            return await self.durability.start(self.plan, spec)
        return await self.execute_spec(spec, NoJournal(self.store.run))

    async def execute_spec(self, spec: RunSpec, journal: Journal, decisions: dict | None = None) -> RunResult:
        """Carry out the run ``spec`` describes, recording its steps in ``journal``."""
        if spec.scripts:
            await self.install_scripts(spec.run_id, spec.scripts)
        run = Run(self.plan, self.services(spec, journal, decisions), spec.run_id)
        return await execute(run, spec.flow, spec.input)

    async def install_scripts(self, run_id: str, scripts: dict) -> None:
        """Give the simulator the scripted replies of mocked agents for one run."""
        if self.sim_url is None:
            raise RunError("mocked agents need the simulator, but every provider of this program is live")
        response = await self.http.post(f"{self.sim_url}/_sim/runs/{run_id}", json={"scripts": scripts})
        if response.status_code >= 300:
            raise RunError(f"the simulator refused the test's scripts: {response.text}")


def created_key_note(key) -> str:
    """What `voxc run` says the first time it makes this user's receipt signing key."""
    from vox.runtime.receipts import public_key_path

    return (f"made a receipt signing key for this user: {key.source} (private: it signs this machine's receipts; "
            f"keep it out of the state folder and its backups) and {public_key_path(Path(key.source))} (public: "
            "give it to whoever verifies receipts, `voxc receipts verify RUN_ID --public-key FILE`)")


def simulation_reason(p: Provider, options: RunOptions) -> str | None:
    """Why provider ``p`` is served by the simulator in a run with ``options``; None if it is live."""
    if options.simulate == "never":
        return None
    if options.simulate == "all":
        return "--sim was given"
    if p.protocol == "sim":
        return "its protocol is `sim`"
    if p.key_env is not None:
        return None if options.env.get(p.key_env) else f"{p.key_env} is not set"
    if p.base_url is not None and not isinstance(p.base_url, str) and not options.env.get(p.base_url.env):
        return f"{p.base_url.env} is not set"
    return None


async def execute(run: Run, flow: str, raw_input: dict) -> RunResult:
    """Run a flow and describe the outcome (the same for a durable workflow and a plain run)."""
    result = RunResult(run.run_id, flow, "ok")
    runwide = run.services.runwide
    try:
        if runwide is not None and flow in run.plan.flows:
            bound = run.plan.flows[flow].bound
            await anyio.to_thread.run_sync(runwide.reserve, run.run_id, flow,
                                           bound.bound.cost_micros if bound is not None else None)
        value = await run.execute(flow, raw_input)
        result.output = to_json(value, run.plan.flows[flow].result, run.plan.types)
    except ApprovalNeeded as pause:
        result.status = "waiting"
        result.waiting = json.loads(json.dumps(pause.waiting, default=str))
    except RunError as e:
        result.status = "failed"
        result.error = {"kind": e.kind, "message": e.message, "step": e.step}
    result.spent = run.root.spent if hasattr(run.root, "snapshot") else {}
    result.receipts = list(run.receipts)
    log = getattr(run.root, "log", None)
    if log is not None:
        result.charges = [dict(c) for c in log.charges]
        result.overshoots = [o.as_dict() for o in log.overshoots]
    if runwide is not None and result.status != "waiting":
        await anyio.to_thread.run_sync(runwide.settle, run.run_id, result.spent.get("cost_micros", 0))
    return result


_frozen: list[bool] = []


def _freeze_long_lived() -> None:
    """Once per process, at the first runtime's start: move what exists (the compiler, the plan,
    the imported libraries: ~100k objects that live as long as the process) out of the cyclic
    collector's reach with :func:`gc.freeze`. Otherwise every full collection (a few per thousand
    runs, triggered by the runs' own short-lived objects) re-scans all of them, which cost about
    a quarter of the client CPU of a run. Garbage is collected first, so nothing dead is kept."""
    if _frozen or not gc.isenabled():
        return
    _frozen.append(True)
    gc.collect()
    gc.freeze()


def new_run_id() -> str:
    return "run_" + secrets.token_hex(8)


def run_sync(plan: Plan, flow: str, raw_input: dict, options: RunOptions | None = None, **kwargs) -> RunResult:
    """Run a flow from synchronous code (a script, a notebook cell)."""

    async def go() -> RunResult:
        async with Runtime(plan, options) as rt:
            return await rt.run(flow, raw_input, **kwargs)

    return anyio.run(go)
