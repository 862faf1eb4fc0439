"""Pre-flight (V6): the checks that read the environment, but not the network, before a run.

A program that checks clean can still fail in its first second: a `python(...)` binding that does
not import, a function whose parameters are not the tool's, an API key that is not set, a flow
that may spend more than the tenant's whole budget for a period. :func:`preflight` finds those,
as diagnostics pointing at the declaration to fix, so that `voxc check --preflight` and the
runtime (before it reserves anything) say the same thing.

What it reads: Python's import system (bindings are imported, with the program's folder first on
the module search path; nothing is called), the environment variables named by `env("...")`, and
the flow bounds of the budget analysis. It never opens a connection.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator, Mapping

from vox.compiler.analysis.gates import signal_calls
from vox.compiler.signals import SIGNALS
from vox.compiler.analysis.results import Analysis
from vox.compiler.bindings import load_binding
from vox.compiler.diagnostics.model import Diagnostic, DiagnosticSink, Label, sort_diagnostics
from vox.compiler.hir import nodes as h
from vox.compiler.hir.walk import calls_in_stmt
from vox.compiler.names import did_you_mean
from vox.compiler.source import Span
from vox.compiler.units import format_money

# The runtime passes every call's idempotency key by this name to a Python function that has a
# parameter of that name (runtime/executor/tools.py), so the tool need not declare it.
IDEMPOTENCY_KEY = "idempotency_key"


def preflight(
    program: h.Program,
    analysis: Analysis,
    env: Mapping[str, str] | None = None,
    *,
    flow: str | None = None,
    import_bindings: bool = True,
    base_dir: str | None = None,
) -> list[Diagnostic]:
    """The pre-flight diagnostics of a checked program, sorted by position.

    ``env`` is the environment the run starts in (``os.environ`` when None). With ``flow``, only
    what that flow can reach is checked (its tools' bindings, its models' providers, its own
    bound); without, everything in the program is. ``import_bindings=False`` skips importing
    Python bindings (for callers that must not run user code, such as an editor).
    ``base_dir`` is where binding modules are looked for first (default: the program's folder).

    Raises ValueError if ``flow`` names no flow of the program: that is a caller's mistake, not
    a problem of the program.
    """
    if flow is not None and flow not in program.flows:
        raise ValueError(f"no flow is named `{flow}`; flows: {', '.join(program.flows) or 'none'}")
    env = os.environ if env is None else env
    sink = DiagnosticSink(program.path)
    reach = _Reach(program, flow)
    if import_bindings:
        folder = base_dir if base_dir is not None else os.path.dirname(os.path.abspath(program.path))
        for name in sorted(reach.tools, key=lambda n: program.tools[n].span.start):
            tool = program.tools[name]
            if tool.binding is not None and tool.binding.kind == "python":
                check_python_binding(tool, folder, sink)
    for name in sorted(reach.providers, key=lambda n: program.providers[n].span.start):
        check_provider_env(program.providers[name], reach.why.get(name), env, sink)
    for name in reach.flows:
        check_reservation(program, analysis, program.flows[name], sink)
    return sort_diagnostics(sink.items)


# ---- what a flow reaches --------------------------------------------------------------------------


class _Reach:
    """The flows, tools and providers a run of ``flow`` can use (all of them when ``flow`` is None)."""

    def __init__(self, program: h.Program, flow: str | None):
        self.flows: list[str] = []
        self.tools: set[str] = set()
        self.providers: set[str] = set()
        self.why: dict[str, str] = {}  # provider → which model of which agent needs it
        agents: list[str] = []
        if flow is None:
            self.flows = list(program.flows)
            agents = list(program.agents)
            self.tools = set(program.tools)
            self.providers = set(program.providers)
        else:
            todo = [flow]
            while todo:
                name = todo.pop()
                if name in self.flows or name not in program.flows:
                    continue
                self.flows.append(name)
                for call in _calls(program.flows[name]):
                    if call.kind == "flow":
                        todo.append(call.name)
                    elif call.kind == "agent" and call.name not in agents:
                        agents.append(call.name)
                    elif call.kind == "tool" and call.name in program.tools:
                        self.tools.add(call.name)
        for agent_name in agents:
            agent = program.agents.get(agent_name)
            if agent is None:
                continue
            self.tools.update(n for n in agent.tools if n in program.tools)
            models = [(m, f"model `{m}` of agent `{agent_name}`") for m in agent.chain]
            for gate_name in agent.gates:
                for check in getattr(program.gates.get(gate_name), "checks", ()):
                    for call in signal_calls(check.cond):
                        judge = SIGNALS[call.name].judge if call.name in SIGNALS else None
                        value = next((v for k, v in call.args if k == judge), None)
                        if isinstance(value, h.Ref):  # a signal that sends the answer to a model
                            models.append((value.symbol.name, f"judge `{value.symbol.name}` of gate `{gate_name}`"))
            for model_name, why in models:
                model = program.models.get(model_name)
                if model is not None and model.provider in program.providers:
                    if flow is not None:
                        self.providers.add(model.provider)
                    self.why.setdefault(model.provider, why)


def _calls(flow: h.Flow) -> Iterator[h.CallExpr]:
    for s in flow.body:
        yield from calls_in_stmt(s)


# ---- bindings -------------------------------------------------------------------------------------


def check_python_binding(tool: h.Tool, folder: str, sink: DiagnosticSink) -> None:
    """V6001–V6003 for the `python("module:function")` binding of ``tool``."""
    binding = tool.binding
    assert binding is not None
    span = tool.spans.get("bind", binding.span)
    loaded = load_binding(binding.target, folder)
    module_name, attr_path, module, target = loaded.module_name, loaded.attr_path, loaded.module, loaded.function
    if loaded.failed == "import":
        sink.error("V6001", f"the binding of `{tool.name}` cannot be imported: {loaded.problem}", span,
                   notes=("modules are looked for in the program's folder first, then on the Python path",),
                   help=f"install or create the module `{module_name}`, or correct the binding")
        return
    if loaded.failed == "attribute":
        where = getattr(module, "__file__", None) or module_name
        if os.path.abspath(where).startswith(os.path.abspath(folder) + os.sep):
            where = os.path.relpath(where, folder) + ", in the program's folder"
        sink.error("V6002", f"{loaded.problem} for tool `{tool.name}`", span,
                   notes=(f"the module was loaded from {where}",),
                   help=_near_names(module, attr_path) or f"define `{attr_path}` in `{module_name}`, or correct "
                                                           "the binding")
        return
    if target is None:
        sink.error("V6002", loaded.problem, span, help="bind the tool to a function")
        return
    problems = signature_problems(target, tool.params)
    if problems:
        try:
            shown = f"{attr_path}{inspect.signature(target)}"
        except (TypeError, ValueError):
            shown = attr_path
        declared = ", ".join(f"{p.name}: {p.type.show()}" for p in tool.params)
        accepted = _keyword_names(target)
        labels = tuple(Label(p.span, f"the function has no `{p.name}`") for p in tool.params
                       if accepted is not None and p.name not in accepted)
        sink.error(
            "V6003", f"`{binding.target}` does not match tool `{tool.name}`: " + "; ".join(problems), span,
            labels=labels,
            notes=(f"the function: def {shown}", f"the tool: {tool.name}({declared})",
                   "the runtime passes every declared parameter by name (an omitted optional one as `none`)"),
            help="make the function's parameters the tool's (a default for any it does not declare), or accept "
                 "`**kwargs`",
        )


def signature_problems(func: object, params: tuple[h.Param, ...]) -> list[str]:
    """Why ``func`` cannot be called with the tool's parameters by name; empty when it can.

    >>> def f(order_id, amount, note=""): ...
    >>> signature_problems(f, (h.Param("order_id", t.STR), h.Param("amount", t.MONEY)))
    []
    >>> signature_problems(f, (h.Param("order_id", t.STR),))
    ['it requires `amount`, which the tool does not declare']
    >>> def g(order_id, idempotency_key): ...  # the runtime passes the call's key to a function that takes one
    >>> signature_problems(g, (h.Param("order_id", t.STR),))
    []
    """
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return []  # a builtin without a signature: nothing to compare
    kinds = inspect.Parameter
    fparams = list(sig.parameters.values())
    declared = [p.name for p in params]
    any_keyword = any(p.kind is kinds.VAR_KEYWORD for p in fparams)
    by_keyword = {p.name for p in fparams if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)}
    problems = []
    unknown = [n for n in declared if n not in by_keyword and not any_keyword]
    if unknown:
        problems.append(f"it has no parameter {_names(unknown)}")
    required = [p.name for p in fparams if p.default is kinds.empty and p.name not in declared
                and p.name != IDEMPOTENCY_KEY and p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)]
    if required:
        problems.append(f"it requires {_names(required)}, which the tool does not declare")
    positional = [p.name for p in fparams if p.kind is kinds.POSITIONAL_ONLY and p.default is kinds.empty]
    if positional:
        problems.append(f"{_names(positional)} can only be passed by position, and the runtime passes arguments "
                        "by name")
    return problems


def _keyword_names(func: object) -> set[str] | None:
    """The names ``func`` accepts by keyword; None when it takes any (``**kwargs``) or is opaque."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = inspect.Parameter
    if any(p.kind is kinds.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)}


def _names(names: list[str]) -> str:
    quoted = [f"`{n}`" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _near_names(module: object, wanted: str) -> str | None:
    names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None))]
    return did_you_mean(wanted, names)


# ---- environment ----------------------------------------------------------------------------------


def check_provider_env(provider: h.Provider, why: str | None, env: Mapping[str, str],
                       sink: DiagnosticSink) -> None:
    """V6004 for each `env("VAR")` without a default of ``provider`` that ``env`` lacks (or has empty)."""
    for member, ref, what in (("key", provider.key, "its API key"), ("base_url", provider.base_url, "its base URL")):
        if not isinstance(ref, h.EnvRef) or ref.default is not None:
            continue
        value = env.get(ref.var)
        if value:
            continue
        state = "is set but empty" if value == "" else "is not set"
        help_ = f"set `{ref.var}` in the environment the run starts in"
        if member == "base_url":
            help_ += f', or give a default: `env("{ref.var}", "https://...")`'
        sink.error("V6004", f"`{ref.var}` {state}: provider `{provider.name}` reads {what} from it",
                   provider.spans.get(member, provider.span),
                   notes=(f"needed by {why}",) if why else ("no agent uses this provider yet; remove it if it is "
                                                              "not needed",), help=help_)


# ---- reservation ----------------------------------------------------------------------------------


def check_reservation(program: h.Program, analysis: Analysis, flow: h.Flow, sink: DiagnosticSink) -> None:
    """V6005/V6006: one run of ``flow`` must be reservable against each run-wide cost budget.

    Pre-flight cannot see the ledgers' current spend, so it checks the part that never changes: a
    single run's worst case must fit in one whole period. The runtime reserves against what is
    left when the run starts.
    """
    budgets = [b for scope in ("tenant", "fleet") if (b := program.budgets.get(scope)) is not None and b.cost]
    bound = analysis.budgets.bounds.get(flow.name)
    if not budgets or bound is None:
        return  # nothing to reserve against, or no bound computed (an earlier error)
    name_span = _name_span(program, flow.name, flow.span)
    cost = bound.bound.cost_micros
    if cost is None:
        sink.error(
            "V6005", f"`{flow.name}` has no cost bound, so a run cannot be reserved against "
                     + " and ".join(f"`budget {b.scope}`" for b in budgets), name_span,
            labels=tuple(Label(b.span, f"each run reserves its worst-case cost against `budget {b.scope}`")
                         for b in budgets),
            help="give the flow a cost cap: `budget: { cost: $... }`, so that its worst case is known",
        )
        return
    for b in budgets:
        amount, unit = b.cost or (0, "day")
        if cost > amount:
            sink.error(
                "V6006", f"one run of `{flow.name}` may cost {format_money(cost)}, more than `budget {b.scope}` "
                         f"allows in a whole {unit} ({format_money(amount)})",
                flow.spans.get("budget.cost", name_span),
                labels=(Label(b.span, f"{format_money(amount)} per {unit}"),),
                help=f"lower the flow's worst case to at most {format_money(amount)} (its `budget: {{ cost }}` or "
                     f"its callees' caps), or raise the {b.scope}'s cost per {unit}",
            )


def _name_span(program: h.Program, name: str, fallback: Span) -> Span:
    sym = program.symbols.get(name)
    return sym.span if sym is not None else fallback
