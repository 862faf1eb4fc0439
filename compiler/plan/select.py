"""Cutting a plan down to one flow and everything it can reach (`voxc plan --flow NAME`).

What stays: the flow, the flows, agents and tools it calls (transitively), their gates, models
(primary, fallbacks, judges) and providers, tools named by receipt types, all named types, labels
and run budgets, the tests of kept flows, and the analysis results about kept declarations. The
``pos`` of every kept call is unchanged (it depends only on its flow), and the plan gets a new
``plan_hash``.
"""

from __future__ import annotations

from vox.compiler.plan import ir
from vox.compiler.plan.model import Plan, walk_nodes
from vox.compiler.plan.serde import PlanError, compute_plan_hash


def select_flow(plan: Plan, name: str) -> Plan:
    """The part of ``plan`` that running flow ``name`` needs. Raises PlanError for an unknown flow."""
    if name not in plan.flows:
        known = ", ".join(sorted(plan.flows)) or "none"
        raise PlanError(f"the plan has no flow named `{name}` (flows: {known})")
    keep: dict[str, set[str]] = {k: set() for k in ("flow", "agent", "tool", "gate", "model", "provider")}
    work = [("flow", name)]
    for type_def in plan.types.values():
        work.extend(_references(type_def))
    while work:
        kind, item = work.pop()
        if kind not in keep or item in keep[kind]:
            continue
        keep[kind].add(item)
        if kind == "flow":
            work.extend(_references(plan.flows[item]))
        elif kind == "agent":
            a = plan.agents[item]
            work.extend(("model", m) for m in (a.model, *a.fallback, *a.judges))
            work.extend(("tool", t) for t in a.tools)
            work.extend(("gate", g) for g in a.gates)
            work.extend(_references(a))
        elif kind == "gate":
            work.extend(_references(plan.gates[item]))
        elif kind == "tool":
            work.extend(_references(plan.tools[item]))
        elif kind == "model":
            work.append(("provider", plan.models[item].provider))
    tests = tuple(t for t in plan.tests if t.flow in keep["flow"]
                  and all(m.target in keep[m.kind] for m in t.mocks))
    owners = keep["flow"] | keep["agent"] | keep["gate"]
    a = plan.analysis
    analysis = a.model_copy(update={
        "sinks": tuple(s for s in a.sinks if s.owner in owners),
        "declassifications": tuple(d for d in a.declassifications if d.owner in owners),
        "redactions": tuple(r for r in a.redactions if r.owner in owners),
        "effect_sites": tuple(s for s in a.effect_sites if s.owner in owners),
        "receipted_tools": tuple(t for t in a.receipted_tools if t in keep["tool"]),
        "approval_tools": tuple(t for t in a.approval_tools if t in keep["tool"]),
    })
    data = plan.model_copy(update={
        "providers": _only(plan.providers, keep["provider"]), "models": _only(plan.models, keep["model"]),
        "tools": _only(plan.tools, keep["tool"]), "gates": _only(plan.gates, keep["gate"]),
        "agents": _only(plan.agents, keep["agent"]), "flows": _only(plan.flows, keep["flow"]),
        "tests": tests, "analysis": analysis,
    }).model_dump(mode="json")
    data["plan_hash"] = compute_plan_hash(data)
    return Plan.model_validate(data)


def _only(table: dict, names: set[str]) -> dict:
    return {k: v for k, v in table.items() if k in names}


def _references(decl):
    """(kind, name) of every declaration an IR subtree names."""
    for node, _ in walk_nodes(decl, ""):
        if isinstance(node, ir.CallExpr) and node.kind in ("agent", "tool", "flow"):
            yield node.kind, node.name
        elif isinstance(node, ir.ReceiptType):
            yield "tool", node.tool
        elif isinstance(node, ir.DeclType):
            yield node.decl, node.name
        elif isinstance(node, ir.RefExpr):
            yield node.decl, node.name
