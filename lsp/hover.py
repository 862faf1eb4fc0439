"""Hover: what a name is (its type, labels, a tool's effect and clearance, an agent's or flow's
worst-case bound with its breakdown), the type and labels of a field or value, or what a member
key means."""

from __future__ import annotations

from lsprotocol import types as lsp

from vox.compiler import query
from vox.compiler.analysis.results import Bound, CallableBound
from vox.compiler.hir import nodes as h
from vox.compiler.hir.members import MEMBERS
from vox.compiler.units import format_duration, format_money, format_tokens
from vox.lsp.documents import Checked


def hover(checked: Checked, position: lsp.Position) -> lsp.Hover | None:
    offset = checked.positions.offset(position)
    result = checked.result
    program = result.program
    found = query.symbol_at(program, offset)
    expr = query.expression_at(program, offset)
    if isinstance(expr, h.GetField) and expr.span.end - len(expr.name) <= offset <= expr.span.end:
        span = expr.span
        text = f"```vox\n(field) {expr.name}: {expr.type.show()}\n```"
        text += _labels_line(expr.labels | result.analysis.labels.values.get((span.start, span.end), frozenset()))
        return _hover(checked, text, span)
    if found is not None:
        span, symbol = found
        text = describe_symbol(checked, symbol)
        carried = result.analysis.labels.values.get((span.start, span.end))
        if carried and symbol.owner is not None:
            text += _labels_line(carried, "this value carries")
        return _hover(checked, text, span)
    decl = query.decl_at(result.parse.module, offset)
    if decl is not None:
        member = query.member_at(decl, offset)
        kind = query.decl_kind(decl)
        if member is not None and member.key.name in MEMBERS.get(kind, {}):
            text = f"```vox\n{member.key.name}:\n```\n{MEMBERS[kind][member.key.name]}"
            return _hover(checked, text, member.key.span)
    if expr is not None and not isinstance(expr, h.ErrorExpr):
        text = f"```vox\n{expr.type.show()}\n```"
        text += _labels_line(result.analysis.labels.values.get((expr.span.start, expr.span.end), frozenset()))
        return _hover(checked, text, expr.span)
    return None


def _hover(checked: Checked, markdown: str, span) -> lsp.Hover:
    return lsp.Hover(
        contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=markdown),
        range=checked.positions.range(span),
    )


def _labels_line(labels, lead: str = "labels") -> str:
    labels = sorted(set(labels) - {"public"})
    return f"\n\n{lead}: " + ", ".join(f"`@{name}`" for name in labels) if labels else ""


def _params(params) -> str:
    return ", ".join(f"{p.name}: {p.type.show()}" + "".join(f" @{lb}" for lb in sorted(p.labels)) for p in params)


def describe_symbol(checked: Checked, symbol: h.Symbol) -> str:
    """Markdown for a hover over ``symbol``."""
    program = checked.result.program
    analysis = checked.result.analysis
    name, kind = symbol.name, symbol.kind
    if symbol.owner is not None:  # a parameter, `let` or loop variable
        ty = symbol.type.show() if symbol.type is not None else "?"
        text = f"```vox\n({kind}) {name}: {ty}\n```\nin `{symbol.owner}`"
        return text + _labels_line(symbol.labels)
    lines: list[str] = []
    if kind == "tool" and name in program.tools:
        tool = program.tools[name]
        lines.append(f"```vox\ntool {name}({_params(tool.params)}) -> {tool.returns.show()}\n```")
        lines.append(f"effect: `{tool.effect or 'unspecified'}`")
        clearance = ", ".join(sorted(tool.clearance)) or "public only"
        lines.append(f"clearance: {clearance}")
        extras = []
        if tool.cost_micros is not None:
            extras.append(f"cost {format_money(tool.cost_micros)} per call")
        if tool.timeout_ms is not None:
            extras.append(f"timeout {format_duration(tool.timeout_ms)}")
        if tool.idempotent:
            extras.append("idempotent")
        if tool.approval:
            extras.append(f"approval: {tool.approval}")
        if extras:
            lines.append(", ".join(extras))
    elif kind == "agent" and name in program.agents:
        agent = program.agents[name]
        lines.append(f"```vox\nagent {name}({_params(agent.params)}) -> {agent.returns.show()}\n```")
        if agent.chain:
            lines.append("models: " + " → ".join(f"`{m}`" for m in agent.chain))
        if agent.tools:
            lines.append("tools: " + ", ".join(f"`{t}`" for t in agent.tools))
        lines.extend(_bound_lines(analysis.budgets.bounds.get(name)))
    elif kind == "flow" and name in program.flows:
        flow = program.flows[name]
        lines.append(f"```vox\nflow {name}({_params(flow.params)}) -> {flow.returns.show()}\n```")
        lines.extend(_bound_lines(analysis.budgets.bounds.get(name)))
    elif kind == "model" and name in program.models:
        model = program.models[name]
        lines.append(f"```vox\nmodel {name} = {model.provider}/\"{model.model_id}\"\n```")
        if model.price is not None:
            price = "free" if model.price.free else (
                f"input {format_money(model.price.input)}, output {format_money(model.price.output)} per 1M tokens")
            lines.append(f"price: {price}")
        if model.context is not None:
            lines.append(f"context: {format_tokens(model.context)} tokens, max output: {format_tokens(model.max_output)}")
        if model.capabilities:
            lines.append("capabilities: " + ", ".join(sorted(model.capabilities)))
    elif kind == "provider" and name in program.providers:
        provider = program.providers[name]
        lines.append(f"```vox\nprovider {name} = {provider.protocol}\n```")
        lines.append("clearance: " + (", ".join(sorted(provider.clearance)) or "public only"))
    elif kind in ("type", "enum") and name in program.types:
        ty = program.types[name]
        fields = query.field_names(ty)
        if fields:
            body = "\n".join(
                f"  {n}: {f.type.show()}" + "".join(f" @{lb}" for lb in sorted(f.labels)) for n, f in fields)
            lines.append(f"```vox\ntype {name} = {{\n{body}\n}}\n```")
        elif hasattr(ty, "variants"):
            lines.append(f"```vox\nenum {name} {{ {', '.join(ty.variants)} }}\n```")
        else:
            lines.append(f"```vox\ntype {name} = {ty.show()}\n```")
    elif kind == "gate" and name in program.gates:
        gate = program.gates[name]
        param = f"{gate.param.name}: {gate.param.type.show()}" if gate.param else ""
        lines.append(f"```vox\ngate {name}({param})\n```")
        lines.append(f"{len(gate.checks)} check(s): " + ", ".join(c.action for c in gate.checks))
    else:
        lines.append(f"```vox\n{kind} {name}\n```")
    return "\n\n".join(lines)


def format_bound(b: Bound) -> str:
    return (f"cost ≤ {format_money(b.cost_micros)}, tokens ≤ {format_tokens(b.tokens)}, "
            f"wall ≤ {format_duration(b.wall_ms)}, model calls ≤ {format_tokens(b.model_calls)}, "
            f"tool calls ≤ {format_tokens(b.tool_calls)}")


def _bound_lines(bound: CallableBound | None) -> list[str]:
    if bound is None:
        return []
    lines = [f"**worst case per call:** {format_bound(bound.bound)}"]
    if bound.from_caps:
        lines.append("(" + ", ".join(sorted(bound.from_caps)) + " from the declared budget; "
                     f"derived from callees: cost {format_money(bound.derived.cost_micros)}, "
                     f"tokens {format_tokens(bound.derived.tokens)})")
    if bound.items:
        rows = [f"- {item.what}: cost {format_money(item.bound.cost_micros)}, tokens {format_tokens(item.bound.tokens)}"
                for item in bound.items]
        lines.append("breakdown:\n" + "\n".join(rows))
    return lines
