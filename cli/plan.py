"""`voxc plan FILE`: check a file and show the plan the runtime would execute.

The file is checked first; if it has errors they are printed exactly as `voxc check` prints them
and the exit status is 1. Otherwise, with ``--json`` the plan is printed as JSON (the document
described in spec/plan.md, keys sorted, so the same source always gives the same bytes); without
it, a readable summary: each flow's and agent's worst-case bound with its breakdown per call, the
data sinks, the tools that are receipted or wait for approval, and the declassifications.

``--flow NAME`` keeps only that flow and what it can reach. ``--output PATH`` writes what would be
printed to PATH (replacing it atomically) instead of standard output; warnings are still printed.

Exit status: 0 a plan was made (warnings allowed), 1 the file has errors, 2 bad usage (an unknown
flow) or a file that cannot be read or written.
"""

from __future__ import annotations

import argparse
import io
import os

from rich.color import ColorSystem
from rich.style import Style

from vox.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    InputError,
    Streams,
    compile_plan,
    use_color,
    write_atomically,
)
from vox.compiler.plan import Plan, PlanError, plan_to_json, select_flow
from vox.compiler.plan import ir
from vox.compiler.plan.model import Bound, BoundValues, Param, walk_nodes
from vox.compiler.units import format_duration, format_money, format_tokens

NAME = "plan"
HELP = "check a Vox file and print its runtime plan (a summary, or --json)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add `plan`'s arguments."""
    parser.add_argument("file", metavar="FILE", help="the .vox file to plan")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON instead of a summary")
    parser.add_argument("--flow", metavar="NAME", help="keep only this flow and what it reaches")
    parser.add_argument("--output", "-o", metavar="PATH", help="write to PATH instead of standard output")


def run(args: argparse.Namespace, streams: Streams) -> int:
    """Check the file, make its plan, print it; return the exit status."""
    # Errors block the plan and print as `voxc check` prints them; warnings go to stderr when
    # stdout carries the plan's JSON or the plan goes to a file.
    quiet = streams.err if (args.json or args.output) else streams.out
    if args.output is not None and _same_file(args.output, args.file):
        streams.fail(f"--output {args.output} is the program itself: writing the plan there would replace its "
                     "source; choose another path")
        return EXIT_USAGE
    plan, status = compile_plan(args.file, streams, args.color, streams.out, quiet)
    if plan is None:
        return status
    if args.flow is not None:
        try:
            plan = select_flow(plan, args.flow)
        except PlanError as e:
            streams.fail(str(e))
            return EXIT_USAGE
    if args.json:
        output = plan_to_json(plan) + "\n"
    else:
        output = render_summary(plan, color=args.output is None and use_color(args.color, streams.out))
    if args.output is None:
        streams.out.write(output)
        return EXIT_OK
    try:
        write_atomically(args.output, output)
    except InputError as e:
        streams.fail(str(e))
        return EXIT_USAGE
    return EXIT_OK


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # either is missing (the output is new): not the same file
        return False


# ---- the summary ---------------------------------------------------------------------------------


def render_summary(plan: Plan, color: bool = False) -> str:
    """The plan in a few readable lines per flow and agent.

    >>> from vox.compiler.api import check_source
    >>> from vox.compiler.plan import lower_plan
    >>> print(render_summary(lower_plan(check_source("x.vox", "label pii\\n"))), end="")  # doctest: +ELLIPSIS
    plan of x.vox (plan_version 1, hash ...)
    <BLANKLINE>
    no flows or agents
    """
    out = io.StringIO()

    def line(text: str = "", role: str | None = None) -> None:
        print(_paint(text, role, color), file=out)

    line(f"plan of {plan.source.path} (plan_version {plan.plan_version}, hash {plan.plan_hash[:12]})", "bold")
    for flow in plan.flows.values():
        line()
        line(f"flow {flow.name}{_signature(flow.params, flow.result)}", "bold")
        calls = [n for n, _ in _calls(flow.body)]
        if calls:
            line(f"  durable steps: {', '.join(calls)}")
        _bound_lines(line, flow.bound)
    for agent in plan.agents.values():
        line()
        line(f"agent {agent.name}{_signature(agent.params, agent.result)}", "bold")
        chain = agent.model + "".join(f" → {m}" for m in agent.fallback)
        line(f"  models: {chain}")
        if agent.tools:
            line(f"  tools: {', '.join(agent.tools)}")
        if agent.gates:
            signals = f" (reads {', '.join(agent.signals)})" if agent.signals else ""
            line(f"  gates: {', '.join(agent.gates)}{signals}")
        _bound_lines(line, agent.bound)
    if not plan.flows and not plan.agents:
        line()
        line("no flows or agents")
    a = plan.analysis
    sinks = [s for s in a.sinks if s.labels]
    if sinks:
        line()
        line("labelled data reaching sinks", "bold")
        for s in sinks:
            verdict = "ok" if s.ok else "NOT CLEARED"
            line(f"  {s.owner}: {', '.join(s.labels)} → {s.kind} {s.sink} "
                 f"(cleared for {', '.join(s.cleared) or 'public'}) {verdict}  [{s.line}:{s.col}]",
                 None if s.ok else "red")
    tools = [t for t in plan.tools.values() if t.receipted or t.approval]
    if tools:
        line()
        line("actions", "bold")
        for t in tools:
            notes = [t.effect or "no effect declared"]
            if t.receipted:
                notes.append("receipted")
            if t.approval:
                notes.append(f"approval: {t.approval} (the run pauses)")
            if t.idempotent:
                notes.append("idempotent")
            line(f"  {t.name}: {', '.join(notes)}")
    if a.declassifications:
        line()
        line("declassifications", "bold")
        for d in a.declassifications:
            line(f"  {d.owner}: {', '.join(d.labels) or 'public'} → public, reason: {d.reason!r}  [{d.line}:{d.col}]")
    return out.getvalue()


def _bound_lines(line, bound: Bound | None) -> None:
    if bound is None:
        return
    capped = f" (capped: {', '.join(_DIMENSION_WORDS[d] for d in bound.from_caps)})" if bound.from_caps else ""
    line(f"  bound: {_values(bound.bound)}{capped}")
    for item in bound.items:
        where = f"  [{item.line}:{item.col}]" if item.line is not None else ""
        times = f" ×{item.multiplier}" if item.multiplier != 1 else ""
        line(f"    {item.what}{times}: {_values(item.bound)}{where}")


_DIMENSION_WORDS = {"cost_micros": "cost", "tokens": "tokens", "wall_ms": "wall", "model_calls": "model calls",
                    "tool_calls": "tool calls"}


def _values(b: BoundValues) -> str:
    return (f"cost {format_money(b.cost_micros)}, tokens {format_tokens(b.tokens)}, "
            f"wall {format_duration(b.wall_ms)}, model calls {format_tokens(b.model_calls)}, "
            f"tool calls {format_tokens(b.tool_calls)}")


def _signature(params: tuple[Param, ...], result) -> str:
    return f"({', '.join(f'{p.name}: {_type(p.type)}' for p in params)}) -> {_type(result)}"


def _type(ty) -> str:
    if isinstance(ty, ir.PrimType):
        return ty.name
    if isinstance(ty, ir.ListType):
        return f"list[{_type(ty.elem)}]"
    if isinstance(ty, ir.OptionalType):
        return f"{_type(ty.inner)}?"
    if isinstance(ty, (ir.RecordType, ir.EnumType)):
        return ty.name
    if isinstance(ty, ir.ReceiptType):
        return f"Receipt[{ty.tool}]"
    if isinstance(ty, ir.RateType):
        return f"{_type(ty.amount)} per {ty.unit}"
    if isinstance(ty, ir.DeclType):
        return ty.name
    return ty.kind


def _calls(steps):
    """(pos, call) of every durable step under ``steps``, in order."""
    for node, _ in walk_nodes(steps, ""):
        if isinstance(node, ir.CallExpr) and node.pos is not None:
            yield node.pos, node


def _paint(text: str, role: str | None, color: bool) -> str:
    if not color or role is None or not text:
        return text
    return Style.parse(role).render(text, color_system=ColorSystem.STANDARD)
