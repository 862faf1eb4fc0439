"""Reading declaration members (`key: value`) into resolved values.

Each declaration kind has a table of the members it knows (:data:`MEMBERS`), with what each value
must be and a one-line description the language server shows on hover and in completion.
"""

from __future__ import annotations

import re

from vox.compiler import defaults
from vox.compiler.diagnostics.model import Label, replace_fix
from vox.compiler.hir import nodes as h
from vox.compiler.hir import problems
from vox.compiler.hir import types as t
from vox.compiler.hir.expressions import Context
from vox.compiler.hir.scope import Scope
from vox.compiler.names import closest, did_you_mean
from vox.compiler.source import Span
from vox.compiler.syntax import ast
from vox.compiler.units import format_duration, format_money, format_tokens

PROTOCOLS = ("openai", "anthropic", "openai_compatible", "sim")
EFFECTS = ("pure", "read", "write", "external")
CAPABILITIES = ("tools", "logprobs", "json_schema", "prompt_cache", "streaming", "vision", "sampling",
                "no_logprobs")
# `no_logprobs` is a refusal, not a capability: the model rejects requests for log-probabilities
# (OpenAI's reasoning models do), so it may not also list `logprobs` (spec/gates.md).
REFUSALS = {"no_logprobs": "logprobs"}
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
COMPACTIONS = ("summarize", "truncate")

MEMBERS: dict[str, dict[str, str]] = {
    "label": {"description": "what the label protects (documentation)"},
    "provider": {
        "base_url": "the API's base URL: a string or env(\"VAR\", \"default\")",
        "key": "the API key: env(\"VAR\") only, never a literal",
        "clearance": "labels the provider may receive: [public, pii, ...]",
        "zdr": "true if the provider retains no data (zero data retention)",
        "region": "where the provider processes data",
        "timeout": "per-request timeout (a duration)",
    },
    "model": {
        "context": "context window in tokens",
        "max_output": "most tokens one reply may have",
        "price": "{ input: $X, output: $Y, cached_input: $Z, cache_write: $W } per million tokens, or `free`",
        "capabilities": "[tools, logprobs, json_schema, prompt_cache, streaming, vision, sampling], "
                        "and `no_logprobs` for a model that refuses logprobs",
    },
    "tool": {
        "effect": "pure, read, write or external",
        "clearance": "labels the tool may receive (none: public only)",
        "declassifies": "labels of its arguments its result does not carry (audited; see spec/labels.md)",
        "timeout": "time limit of one call",
        "retries": "how often a failed call is retried",
        "cost": "money one call costs",
        "idempotent": "true if repeating a call is harmless",
        "approval": "`human`: pause the run until a person approves the call",
        "bind": "python(\"pkg.mod:func\") or http.get(\"https://.../{param}\") (also post, put, patch, delete)",
        "description": "what the tool does, shown to the model",
    },
    "agent": {
        "model": "the model that serves the agent",
        "fallback": "models tried in order when the primary fails",
        "tools": "tools the model may call",
        "budget": "{ tokens, cost, steps, tool_calls, depth, wall }",
        "gates": "gates every output must pass",
        "compaction": "summarize(keep_last: N) or truncate(keep_last: N)",
        "prompt": "the prompt template; {placeholders} name parameters",
        "system": "the system prompt template",
        "temperature": "sampling temperature",
    },
    "flow": {"budget": "{ cost, tokens, wall, steps, tool_calls, depth }"},
    "test": {
        "flow": "the flow under test",
        "input": "the flow's arguments, as a record",
        "approve": "tools approved in advance for `approval: human`",
        "expect": "a condition on `output` that must hold",
    },
    "budget": {
        "cost": "money per period, e.g. `$5 per day`",
        "requests": "requests per period, e.g. `60 per minute`",
        "tokens": "tokens per period, e.g. `200_000 per minute`",
    },
}
CAP_TYPES = {"tokens": t.TOKENS, "cost": t.MONEY, "steps": t.INT, "tool_calls": t.INT, "depth": t.INT,
             "wall": t.DURATION}
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def member_spans(ms: dict[str, ast.Member]) -> dict[str, Span]:
    """Where each member's value is written, for diagnostics and fixes of later passes.

    Keys: ``"key"`` (the value), ``"key:"`` (the key), ``"key.item"`` (a name in a list value, or
    a field's value in a record value, as in ``"budget.cost"`` or ``"fallback.local"``). Agents,
    tools and flows add ``"->"``: their result type.
    """
    out: dict[str, Span] = {}
    for key, m in ms.items():
        out[key] = m.value.span
        out[key + ":"] = m.key.span
        if isinstance(m.value, ast.ListLit):
            for item in m.value.items:
                if isinstance(item, ast.Name):
                    out[f"{key}.{item.name}"] = item.span
        elif isinstance(m.value, ast.RecordLit):
            for f in m.value.fields:
                out[f"{key}.{f.name.name}"] = f.value.span
    return out


def result_span(decl) -> dict[str, Span]:
    """``{"->": span}`` of the result type an agent, tool or flow declares, if it declares one."""
    return {"->": decl.returns.span} if getattr(decl, "returns", None) is not None else {}


def template_parts(text: str) -> tuple[str | tuple[str, ...], ...]:
    """A checked template's text split into literal text and placeholder paths.

    >>> template_parts("Hi {user.name}, {{ok}}")
    ('Hi ', ('user', 'name'), ', {ok}')
    """
    parts: list = []
    literal = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        literal.append(text[pos:m.start()])
        pos = m.end()
        if m.group(1) is not None:
            if "".join(literal):
                parts.append("".join(literal))
            literal = []
            parts.append(tuple(p.strip() for p in m.group(1).split(".")))
        else:
            literal.append(m.group()[0])  # `{{` or `}}` stand for one brace
    literal.append(text[pos:])
    if "".join(literal):
        parts.append("".join(literal))
    return tuple(parts)


class MemberReader:
    def __init__(self, lowering):
        self.lo = lowering
        self.sink = lowering.sink
        self.checker = lowering.checker

    # ---- generic helpers ----------------------------------------------------------------------

    def read(self, decl, kind: str, members: tuple[ast.Member, ...], required: tuple[str, ...] = ()) -> dict[str, ast.Member]:
        """Members by key, with unknown and duplicate keys reported."""
        known = MEMBERS[kind]
        out: dict[str, ast.Member] = {}
        for m in members:
            key = m.key.name
            if key not in known:
                self.unknown_member(m, kind, tuple(known))
                continue
            if key in out:
                self.sink.error("V1010", f"`{key}` is given twice", m.key.span,
                                labels=(Label(out[key].key.span, "first given here"),))
                continue
            out[key] = m
        for key in required:
            if key not in out:
                name_span = getattr(decl, "name", None)
                span = name_span.span if name_span is not None and hasattr(name_span, "span") else decl.span
                self.sink.error("V1009", f"{kind} `{_decl_name(decl)}` needs `{key}`", span,
                                help=f"add `{key}: ...` ({known[key]})")
        return out

    def unknown_member(self, m: ast.Member, kind: str, known) -> None:
        guess = closest(m.key.name, known)
        self.sink.error(
            "V1008", f"{kind}s have no member `{m.key.name}`", m.key.span,
            help=f"did you mean `{guess}`?" if guess else ("members: " + ", ".join(known) if known else None),
            fix=replace_fix(f"replace with `{guess}`", m.key.span, guess) if guess else None,
        )

    def ctx(self, owner: str) -> Context:
        return Context("member", owner, Scope())

    def constant(self, m: ast.Member | None, ty: t.Type, owner: str, what: str | None = None):
        """The value of a member that must be a literal of type ``ty`` (None if absent or wrong)."""
        if m is None:
            return None
        return self.constant_expr(m.value, ty, owner, what or f"`{m.key.name}`")

    def constant_expr(self, e: ast.Expr, ty: t.Type, owner: str, what: str):
        out = self.checker.expect(e, ty, self.ctx(owner), what)
        if isinstance(out, h.ErrorExpr) or not self.checker.fits(out, ty):
            return None  # a mismatch is already reported; its value must not reach arithmetic
        value = _fold(out)
        if value is _NOT_CONSTANT:
            problems.not_constant(self.sink, e.span, what)
            return None
        return value

    def amount(self, m: ast.Member | None, ty: t.Type, owner: str, what: str, *, positive: bool = False,
               default: int | None = None):
        """A money or duration member that a bound is built on: never negative (a negative `cost`
        or `price` would lower every bound it enters), and, with ``positive``, never zero either
        (a zero `timeout` fails every attempt). None when absent, wrong or out of range."""
        if m is None:
            return None
        value = self.constant(m, ty, owner, what)
        return self.in_range(value, m.value.span, ty, what, positive=positive, default=default)

    def in_range(self, value, span: Span, ty: t.Type, what: str, *, positive: bool = False,
                 default: int | None = None):
        """``value`` if it is ≥ 0 (> 0 with ``positive``), else None after V2009 at ``span``."""
        if value is None or (value > 0 if positive else value >= 0):
            return value
        show = _show_amount(ty)
        least = "more than " + show(0) if positive else "at least " + show(0)
        if value < 0:
            better = -value
            help_text = f"write `{show(better)}`: amounts are never negative"
        else:
            better = default
            help_text = (f"give it a positive value, such as `{show(default)}` (the default when none is declared), "
                         "or leave it out" if default is not None else "give it a positive value")
        self.sink.error(
            "V2009", f"{what} is {show(value)}, but it must be {least}", span,
            notes=("a negative amount would lower every bound it is counted in below what a run really spends",)
            if value < 0 else ("a time limit of zero fails every attempt before it starts",),
            help=help_text,
            fix=replace_fix(f"replace with `{show(better)}`", span, show(better)) if better else None,
        )
        return None

    def word(self, m: ast.Member | None, choices, what: str) -> str | None:
        if m is None:
            return None
        e = m.value
        if isinstance(e, ast.Name) and e.name in choices:
            return e.name
        found = e.name if isinstance(e, ast.Name) else None
        guess = closest(found, choices) if found else None
        self.sink.error(
            "V1020", f"unknown {what}" + (f" `{found}`" if found else ""), e.span,
            help=f"did you mean `{guess}`?" if guess else f"{what}s: " + ", ".join(choices),
            fix=replace_fix(f"replace with `{guess}`", e.span, guess) if guess else None,
        )
        return None

    def name_list(self, m: ast.Member | None, kind: str, owner: str) -> tuple[str, ...]:
        """`[a, b]` where each item names a declaration of ``kind`` (model, tool, gate, label)."""
        if m is None:
            return ()
        e = m.value
        items = e.items if isinstance(e, ast.ListLit) else (e,) if isinstance(e, ast.Name) else None
        if items is None:
            problems.wrong_form(self.sink, e.span, f"a list of {kind} names", f"`{m.key.name}`",
                                help="write the names in brackets: `[a, b]`")
            return ()
        out = []
        seen: dict[str, Span] = {}
        for item in items:
            name = self.decl_name(item, kind)
            if name is None:
                continue
            if name in seen:
                self.sink.error("V1010", f"`{name}` is listed twice", item.span,
                                labels=(Label(seen[name], "first listed here"),))
                continue
            seen[name] = item.span
            out.append(name)
        return tuple(out)

    def decl_name(self, e: ast.Expr, kind: str) -> str | None:
        """The name of a declaration of ``kind`` that ``e`` refers to, reporting problems."""
        if not isinstance(e, ast.Name):
            problems.wrong_form(self.sink, e.span, f"the name of a {kind}")
            return None
        if kind == "label":
            labels = self.lo.check_labels((ast.Ident(e.name, e.span),))
            return labels[0] if labels else None
        sym = self.lo.symbol(e.name)
        if sym is not None and sym.kind == kind:
            self.lo.references.append((e.span, sym))
            return e.name
        if sym is None and self.lo.is_broken(e.name):
            return None
        if sym is not None:
            self.sink.error("V1004", f"`{e.name}` is a {sym.kind}, not a {kind}", e.span,
                            labels=(Label(sym.span, "declared here"),),
                            help=did_you_mean(e.name, self.lo.names_of(kind)))
            return None
        candidates = self.lo.names_of(kind)
        guess = closest(e.name, candidates)
        self.sink.error(
            "V1001", f"no {kind} is named `{e.name}`", e.span,
            help=f"did you mean `{guess}`?" if guess else (
                f"{kind}s: " + ", ".join(candidates) if candidates else f"declare it: `{kind} {e.name} ...`"),
            fix=replace_fix(f"replace with `{guess}`", e.span, guess) if guess else None,
        )
        return None

    def env_ref(self, m: ast.Member | None, allow_literal: bool) -> h.EnvRef | str | None:
        if m is None:
            return None
        e = m.value
        if isinstance(e, ast.Call) and isinstance(e.callee, ast.Name) and e.callee.name == "env":
            strs = [a.value for a in e.args]
            if not 1 <= len(strs) <= 2 or any(not isinstance(s, ast.StrLit) for s in strs) or any(
                    a.name is not None for a in e.args):
                self.sink.error("V1013", 'write `env("VAR")` or `env("VAR", "default")`', e.span)
                return None
            var = strs[0].value
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", var):
                problems.malformed_string(self.sink, strs[0].span, var, "an environment variable name",
                                          help="a name is letters, digits and `_`, and does not start with a digit")
                return None
            if m.key.name == "key" and len(strs) == 2:
                self.sink.error("V1019", "an API key cannot have a default written in the source", strs[1].span,
                                help=f'remove the default: `env("{var}")`')
                return None
            return h.EnvRef(var, strs[1].value if len(strs) == 2 else None)
        if isinstance(e, ast.StrLit):
            if allow_literal:
                return e.value
            self.sink.error("V1019", "API keys come only from the environment, never from the source", e.span,
                            help='read it from an environment variable: `key: env("PROVIDER_API_KEY")`',
                            notes=("a key written in a file ends up in version control, logs and plans",))
            return None
        problems.wrong_form(self.sink, e.span, 'a string or `env("VAR")`', f"`{m.key.name}`")
        return None

    def template(self, m: ast.Member | None, params: tuple[h.Param, ...], what: str) -> h.Template | None:
        if m is None:
            return None
        if not isinstance(m.value, ast.StrLit):
            problems.wrong_form(self.sink, m.value.span, "a string", what)
            return None
        return self.template_of(m.value, params, what)

    def template_of(self, lit: ast.StrLit, params: tuple[h.Param, ...], what: str) -> h.Template | None:
        """Parse `{placeholders}` of a template and check each path against ``params``.

        Placeholders are found in the raw source text, so each one has an exact span.
        """
        raw = lit.raw
        quote = 3 if lit.triple else 1
        body_start = lit.span.start + quote
        body = raw[quote:-quote] if len(raw) >= 2 * quote else ""
        ok = True
        spans = []
        by_name = {p.name: p for p in params}
        for m in _PLACEHOLDER.finditer(body):
            token = m.group()
            if token in ("{{", "}}"):
                continue
            span = Span(body_start + m.start(), body_start + m.end())
            if token in ("{", "}"):
                self.sink.error("V1025", f"a lone `{token}` in {what}", span,
                                help=f"write `{token}{token}` for a literal brace")
                ok = False
                continue
            path = tuple(p.strip() for p in m.group(1).split("."))
            if not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p) for p in path):
                self.sink.error("V1025", f"`{token}` is not a placeholder: use `{{name}}` or `{{name.field}}`", span,
                                help="write `{{` and `}}` for literal braces")
                ok = False
                continue
            if not self._placeholder_ok(path, by_name, span, what):
                ok = False
            spans.append(span)
        return h.Template(template_parts(lit.value), lit.value, lit.span, tuple(spans)) if ok else None

    def _placeholder_ok(self, path, by_name, span, what) -> bool:
        head = path[0]
        if head not in by_name:
            guess = closest(head, by_name)
            self.sink.error(
                "V1014", f"`{{{head}}}` in {what} is not a parameter", span,
                help=f"did you mean `{{{guess}}}`?" if guess else (
                    "parameters: " + ", ".join(by_name) if by_name else "this declaration has no parameters"),
            )
            return False
        ty = by_name[head].type
        for name in path[1:]:
            ty = t.strip_optional(ty)
            if isinstance(ty, t.RecordType):
                info = ty.field(name)
                if info is None:
                    self.sink.error("V1014", f"`{ty.name}` has no field `{name}`", span,
                                    help=did_you_mean(name, [f.name for f in ty.fields]))
                    return False
                ty = info.type
            elif not t.is_error(ty):
                self.sink.error("V1014", f"`{ty.show()}` has no field `{name}`", span)
                return False
        return True

    # ---- declarations ---------------------------------------------------------------------------

    def provider(self, decl: ast.ProviderDecl) -> h.Provider:
        name = decl.name.name
        ms = self.read(decl, "provider", decl.members)
        protocol = decl.protocol.name
        if protocol not in PROTOCOLS:
            guess = closest(protocol, PROTOCOLS)
            self.sink.error("V1020", f"unknown provider protocol `{protocol}`", decl.protocol.span,
                            help=f"did you mean `{guess}`?" if guess else "protocols: " + ", ".join(PROTOCOLS),
                            fix=replace_fix(f"replace with `{guess}`", decl.protocol.span, guess) if guess else None)
        base_url = self.env_ref(ms.get("base_url"), allow_literal=True)
        key = self.env_ref(ms.get("key"), allow_literal=False)
        clearance = frozenset(self.name_list(ms.get("clearance"), "label", name)) or frozenset({"public"})
        flags = []
        if "zdr" in ms:
            flags.append(("zdr", self.constant(ms["zdr"], t.BOOL, name)))
        if "region" in ms:
            flags.append(("region", self.constant(ms["region"], t.STR, name)))
        if "timeout" in ms:
            flags.append(("timeout_ms", self.amount(ms["timeout"], t.DURATION, name, "`timeout`", positive=True,
                                                    default=defaults.PROVIDER_TIMEOUT_MS)))
        return h.Provider(name, protocol, base_url if not isinstance(base_url, type(None)) else None,
                          key if isinstance(key, h.EnvRef) else None, clearance, tuple(flags), decl.span,
                          member_spans(ms))

    def model(self, decl: ast.ModelDecl) -> h.Model:
        name = decl.name.name
        ms = self.read(decl, "model", decl.members)
        provider = decl.provider.name
        sym = self.lo.symbol(provider)
        if sym is None or sym.kind != "provider":
            if not self.lo.is_broken(provider):
                providers = self.lo.names_of("provider")
                guess = closest(provider, providers)
                what = f"`{provider}` is a {sym.kind}" if sym else f"no provider is named `{provider}`"
                self.sink.error(
                    "V1018", f"model `{name}` refers to an unknown provider: {what}", decl.provider.span,
                    help=f"did you mean `{guess}`?" if guess else f"declare it: `provider {provider} = openai {{ ... }}`",
                    fix=replace_fix(f"replace with `{guess}`", decl.provider.span, guess) if guess else None,
                )
        else:
            self.lo.references.append((decl.provider.span, sym))
        if not decl.model_id.value.strip():
            problems.malformed_string(self.sink, decl.model_id.span, decl.model_id.value, "a model id",
                                      help='write the provider\'s model id, e.g. "gpt-4o-mini"')
        context = self.constant(ms.get("context"), t.TOKENS, name)
        max_output = self.constant(ms.get("max_output"), t.TOKENS, name)
        for key, value in (("context", context), ("max_output", max_output)):
            if value is not None and value <= 0:
                problems.value_out_of_range(self.sink, ms[key].value.span, f"`{key}`", "positive")
        if context and max_output and max_output > context:
            problems.output_exceeds_context(self.sink, ms["max_output"].value.span, ms["context"].value.span)
        price = self.price(ms.get("price"), name)
        caps = self.name_words(ms.get("capabilities"), CAPABILITIES, "capability")
        for refusal, capability in REFUSALS.items():
            if refusal in caps and capability in caps:
                spans = member_spans(ms)
                self.sink.error(
                    "V5008", f"model `{name}` lists `{capability}` and `{refusal}`: it cannot both give and refuse "
                    f"{capability}", spans.get(f"capabilities.{capability}", ms["capabilities"].value.span),
                    labels=(Label(spans.get(f"capabilities.{refusal}", ms["capabilities"].value.span),
                                  f"`{refusal}`: the model refuses requests for {capability}"),),
                    help=f"remove `{capability}` if the model rejects it (OpenAI's reasoning models do), "
                         f"else remove `{refusal}`",
                )
                caps = tuple(c for c in caps if c != capability)
        return h.Model(name, provider, decl.model_id.value, context, max_output, price, frozenset(caps), decl.span,
                       member_spans(ms))

    def name_words(self, m: ast.Member | None, choices, what: str) -> tuple[str, ...]:
        if m is None:
            return ()
        e = m.value
        if not isinstance(e, ast.ListLit):
            problems.wrong_form(self.sink, e.span, f"a list of {what} names", f"`{m.key.name}`",
                                help="write the names in brackets: `[a, b]`")
            return ()
        out = []
        for item in e.items:
            word = self.word(ast.Member(ast.Ident(what, item.span), item, item.span), choices, what)
            if word is not None and word not in out:
                out.append(word)
        return tuple(out)

    def price(self, m: ast.Member | None, owner: str) -> h.Price | None:
        if m is None:
            return None
        e = m.value
        if isinstance(e, ast.Name) and e.name == "free":
            return h.Price(0, 0, 0, free=True)
        if not isinstance(e, ast.RecordLit):
            problems.wrong_form(self.sink, e.span, "`{ input: $X, output: $Y }` or `free`", "`price`",
                                help="prices are per million tokens, as in `{ input: $0.15, output: $0.60 }`")
            return None
        price_type = t.RecordType("price", (
            t.FieldInfo("input", t.MONEY), t.FieldInfo("output", t.MONEY),
            t.FieldInfo("cached_input", t.OptionalType(t.MONEY)), t.FieldInfo("cache_write", t.OptionalType(t.MONEY)),
        ))
        out = self.checker.record_value(e, price_type, self.ctx(owner))
        if not isinstance(out, h.RecordValue):
            return None
        values = {k: _fold(v) for k, v in out.fields}
        if any(v is _NOT_CONSTANT for v in values.values()):
            problems.not_constant(self.sink, e.span, "prices")
            return None
        spans = {f.name.name: f.value.span for f in e.fields}
        ok = True
        for key, value in values.items():
            if value is not None and key in spans and self.in_range(
                    value, spans[key], t.MONEY, f"the `{key}` price") is None:
                ok = False
        if not ok or "input" not in values or "output" not in values:
            return None
        return h.Price(values["input"], values["output"], values.get("cached_input"),
                       cache_write=values.get("cache_write"))

    def tool(self, decl: ast.ToolDecl) -> h.Tool:
        name = decl.name.name
        params, returns = self.lo.signatures[name]
        _, return_labels = self.lo.resolve_type(decl.returns)
        ms = self.read(decl, "tool", decl.members, required=("effect",))
        effect = self.word(ms.get("effect"), EFFECTS, "effect")
        approval = self.word(ms.get("approval"), ("human",), "approval")
        clearance = frozenset(self.name_list(ms.get("clearance"), "label", name)) or frozenset({"public"})
        retries = self.constant(ms.get("retries"), t.INT, name)
        if retries is not None and retries < 0:
            problems.value_out_of_range(self.sink, ms["retries"].value.span, "`retries`", "at least 0",
                                        help="write `retries: 0` for a tool that is never retried")
            retries = 0
        binding = self.binding(ms.get("bind"), params)
        return h.Tool(
            name, params, returns, return_labels, effect,
            self.amount(ms.get("timeout"), t.DURATION, name, "`timeout`", positive=True,
                        default=defaults.TOOL_TIMEOUT_MS),
            self.amount(ms.get("cost"), t.MONEY, name, "`cost`"),
            retries or 0,
            bool(self.constant(ms.get("idempotent"), t.BOOL, name)),
            approval, clearance, binding, decl.span, member_spans(ms) | result_span(decl),
        )

    def binding(self, m: ast.Member | None, params: tuple[h.Param, ...]) -> h.Binding | None:
        if m is None:
            return None
        e = m.value
        shape = 'python("pkg.module:function") or http.get("https://host/path/{param}")'
        if not (isinstance(e, ast.Call) and len(e.args) == 1 and e.args[0].name is None
                and isinstance(e.args[0].value, ast.StrLit)):
            problems.wrong_form(self.sink, e.span, shape, "`bind`")
            return None
        target: ast.StrLit = e.args[0].value
        callee = e.callee
        if isinstance(callee, ast.Name) and callee.name == "python":
            if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", target.value):
                problems.malformed_string(self.sink, target.span, target.value, "`module:function`",
                                          help='write python("package.module:function")')
                return None
            return h.Binding("python", target.value, None, e.span)
        if isinstance(callee, ast.FieldAccess) and isinstance(callee.target, ast.Name) and callee.target.name == "http":
            method = callee.name.name
            if method not in HTTP_METHODS:
                guess = closest(method, HTTP_METHODS)
                self.sink.error("V1020", f"unknown HTTP method `{method}`", callee.name.span,
                                help=f"did you mean `{guess}`?" if guess else "methods: " + ", ".join(HTTP_METHODS))
                return None
            if not re.match(r"https?://", target.value):
                problems.malformed_string(self.sink, target.span, target.value, "an http:// or https:// URL",
                                          help='write the whole URL: http.get("https://host/path/{param}")')
                return None
            if self.template_of(target, params, "the URL") is None:
                return None
            return h.Binding("http", target.value, method.upper(), e.span)
        self.sink.error("V1020", "unknown kind of binding", callee.span, help="a binding is " + shape)
        return None

    def caps(self, m: ast.Member, allowed: tuple[str, ...]) -> h.Caps:
        e = m.value
        if not isinstance(e, ast.RecordLit):
            problems.wrong_form(self.sink, e.span, "a record of caps", f"`{m.key.name}`",
                                help="write `{ cost: $0.10, tokens: 10_000 }`")
            return h.Caps()
        values: dict[str, int] = {}
        seen: dict[str, Span] = {}
        for f in e.fields:
            key = f.name.name
            if key not in allowed:
                guess = closest(key, allowed)
                self.sink.error("V1006", f"budgets have no cap `{key}`", f.name.span,
                                help=f"did you mean `{guess}`?" if guess else "caps: " + ", ".join(allowed),
                                fix=replace_fix(f"replace with `{guess}`", f.name.span, guess) if guess else None)
                continue
            if key in seen:
                self.sink.error("V1010", f"`{key}` is given twice", f.name.span,
                                labels=(Label(seen[key], "first given here"),))
                continue
            seen[key] = f.name.span
            value = self.constant_expr(f.value, CAP_TYPES[key], m.key.name, f"the `{key}` cap")
            if value is not None:
                if key == "depth" and value < 1:
                    self.sink.error(
                        "V2010", f"`depth: {value}` allows no activation at all", f.value.span,
                        notes=("`depth` is how many activations of a flow may be on the stack at once, the "
                               "first call included; the runtime refuses every call past it",),
                        help="write `depth: 1` for a flow that must not recurse, or the nesting it needs",
                        fix=replace_fix("replace with `depth: 1`", f.value.span, "1"))
                    values[key] = value  # kept, so that the flow is not also reported as missing a `depth`
                    continue
                if self.in_range(value, f.value.span, CAP_TYPES[key], f"the `{key}` cap") is None:
                    continue
                values[key] = value
        return h.Caps(**values, span=e.span)

    def agent(self, decl: ast.AgentDecl) -> h.Agent:
        name = decl.name.name
        params, returns = self.lo.signatures[name]
        _, return_labels = self.lo.resolve_type(decl.returns)
        ms = self.read(decl, "agent", decl.members, required=("model", "prompt"))
        model = self.decl_name(ms["model"].value, "model") if "model" in ms else None
        fallback = self.name_list(ms.get("fallback"), "model", name)
        if model is not None and model in fallback:
            self.sink.error("V1010", f"`{model}` is the primary model and a fallback", ms["fallback"].value.span,
                            help="remove it from `fallback`")
        tools = self.name_list(ms.get("tools"), "tool", name)
        gates = self.name_list(ms.get("gates"), "gate", name)
        for g in gates:
            self._gate_fits(g, returns, ms["gates"].value.span, name)
        caps = self.caps(ms["budget"], tuple(CAP_TYPES)) if "budget" in ms else h.Caps()
        compaction = self.compaction(ms.get("compaction"))
        prompt = self.template(ms.get("prompt"), params, "the prompt")
        system = self.template(ms.get("system"), params, "the system prompt")
        temperature = self.constant(ms.get("temperature"), t.FLOAT, name)
        if temperature is not None and not 0 <= temperature <= 2:
            problems.value_out_of_range(self.sink, ms["temperature"].value.span, "`temperature`", "between 0 and 2")
        return h.Agent(name, params, returns, return_labels, model, fallback, tools, caps, gates, compaction,
                       prompt, system, temperature, decl.span, member_spans(ms) | result_span(decl))

    def _gate_fits(self, gate: str, returns: t.Type, span: Span, agent: str) -> None:
        decl = self.lo.decl_of.get(gate)
        if not isinstance(decl, ast.GateDecl) or len(decl.params) != 1:
            return
        param_type, _ = self.lo.resolve_type(decl.params[0].type)
        if not t.assignable(returns, param_type):
            problems.gate_rejects_result(self.sink, span, gate, param_type, agent, returns, decl.params[0].span)

    def compaction(self, m: ast.Member | None) -> h.Compaction | None:
        if m is None:
            return None
        e = m.value
        if isinstance(e, ast.NoneLit):
            return None
        if (isinstance(e, ast.Call) and isinstance(e.callee, ast.Name) and e.callee.name in COMPACTIONS
                and len(e.args) == 1 and e.args[0].name is not None and e.args[0].name.name == "keep_last"):
            keep = self.constant_expr(e.args[0].value, t.INT, "compaction", "`keep_last`")
            if keep is not None and keep < 1:
                problems.value_out_of_range(self.sink, e.args[0].value.span, "`keep_last`", "at least 1",
                                            help="compaction always keeps the latest turn")
                return None
            return h.Compaction(e.callee.name, keep or 1)
        problems.wrong_form(self.sink, e.span, "`summarize(keep_last: N)`, `truncate(keep_last: N)` or `none`",
                            "`compaction`")
        return None

    def run_budget(self, decl: ast.BudgetDecl) -> h.RunBudget | None:
        scope = decl.scope.name
        if scope not in ("fleet", "tenant"):
            guess = closest(scope, ("fleet", "tenant"))
            self.sink.error("V1020", f"unknown budget scope `{scope}`", decl.scope.span,
                            help=f"did you mean `{guess}`?" if guess else "write `budget fleet` or `budget tenant`")
            return None
        ms = self.read(decl, "budget", decl.members)
        rates = {}
        for key, unit_type in (("cost", t.MONEY), ("requests", t.INT), ("tokens", t.TOKENS)):
            m = ms.get(key)
            if m is None:
                rates[key] = None
                continue
            out = self.checker.check(m.value, self.ctx(scope), t.RateType(unit_type, "day"))
            if isinstance(out, h.ErrorExpr):
                rates[key] = None
                continue
            if not isinstance(out, h.RateExpr):
                problems.wrong_form(self.sink, m.value.span, "a rate", f"`{key}`", help=f"write `{_rate_example(key)}`")
                rates[key] = None
                continue
            if not self.checker.require(out.amount, unit_type, m.value.span, f"`{key}`"):
                rates[key] = None
                continue
            amount = _fold(out.amount)
            if amount is _NOT_CONSTANT:
                problems.not_constant(self.sink, m.value.span, f"`{key}`")
                rates[key] = None
                continue
            rates[key] = (amount, out.unit)
        return h.RunBudget(scope, rates["cost"], rates["requests"], rates["tokens"], decl.span)

    def test(self, decl: ast.TestDecl) -> h.Test:
        name = decl.name.value
        members = tuple(i for i in decl.items if isinstance(i, ast.Member))
        ms = self.read(decl, "test", members, required=("flow",))
        flow = self.decl_name(ms["flow"].value, "flow") if "flow" in ms else None
        params: tuple[h.Param, ...] = ()
        returns: t.Type = t.ERROR
        if flow is not None:
            params, returns = self.lo.signatures.get(flow, ((), t.ERROR))
        ctx = Context("test", name, Scope())
        inputs: tuple = ()
        if "input" in ms:
            inputs = self.test_input(ms["input"].value, params, flow, ctx)
        elif flow is not None and any(not isinstance(p.type, t.OptionalType) for p in params):
            self.sink.error("V1009", f"test needs `input` for flow `{flow}`", decl.name.span,
                            help="add `input: { " + ", ".join(f"{p.name}: ..." for p in params) + " }`")
        mocks = tuple(self.mock(m, ctx) for m in decl.items if isinstance(m, ast.Mock))
        approve = self.name_list(ms.get("approve"), "tool", name)
        for tool in approve:
            decl_tool = self.lo.decl_of.get(tool)
            if isinstance(decl_tool, ast.ToolDecl) and not any(
                    m.key.name == "approval" for m in decl_tool.members):
                problems.needless_approval(self.sink, ms["approve"].value.span, tool)
        expect = None
        if "expect" in ms:
            scope = Scope()
            scope.bind(h.Symbol("param", "output", ms["expect"].key.span, returns, owner=name))
            expect = self.checker.expect(ms["expect"].value, t.BOOL, Context("test", name, scope), "`expect`")
        return h.Test(name, flow, inputs, mocks, approve, expect, decl.span)

    def test_input(self, e: ast.Expr, params, flow, ctx) -> tuple:
        if not isinstance(e, ast.RecordLit):
            problems.wrong_form(self.sink, e.span, "a record of the flow's arguments", "`input`",
                                help="write `input: { name: value, ... }`, one field per parameter")
            return ()
        record = t.RecordType(f"input of `{flow}`", tuple(t.FieldInfo(p.name, p.type) for p in params))
        out = self.checker.record_value(e, record, ctx)
        return out.fields if isinstance(out, h.RecordValue) else ()

    def mock(self, m: ast.Mock, ctx: Context) -> h.Mock:
        target = m.target.name
        sym = self.lo.symbol(target)
        if sym is None or sym.kind not in ("agent", "tool"):
            if not self.lo.is_broken(target):
                guess = closest(target, self.lo.names_of("agent") + self.lo.names_of("tool"))
                what = f"`{target}` is a {sym.kind}" if sym else f"nothing is named `{target}`"
                self.sink.error("V1004", f"only agents and tools can be mocked: {what}", m.target.span,
                                help=f"did you mean `{guess}`?" if guess else None)
            return h.Mock(target, "unknown", (), m.span)
        self.lo.references.append((m.target.span, sym))
        params, returns = self.lo.signatures.get(target, ((), t.ERROR))
        agent_tools: tuple[str, ...] = ()
        decl = self.lo.decl_of.get(target)
        if isinstance(decl, ast.AgentDecl):
            for member in decl.members:
                if member.key.name == "tools" and isinstance(member.value, ast.ListLit):
                    agent_tools = tuple(i.name for i in member.value.items if isinstance(i, ast.Name))
        mctx = Context("test", ctx.owner, Scope(), mock_tools=agent_tools)
        value = m.value
        replies: list = []
        if isinstance(value, ast.ReplyTurn) or isinstance(value, ast.CallTurn):
            value = (value,)
        if isinstance(value, tuple):
            for turn in value:
                if isinstance(turn, ast.ReplyTurn):
                    replies.append(("reply", self.checker.expect(turn.value, returns, mctx, "the reply")))
                else:
                    replies.append(("call", self.mock_call(turn, sym.kind, target, agent_tools, mctx)))
            if sym.kind == "agent" and (not replies or replies[-1][0] != "reply"):
                problems.mock_without_reply(self.sink, m.span)
        else:
            replies.append(("reply", self.checker.expect(value, returns, mctx, "the mocked result")))
        return h.Mock(target, sym.kind, tuple(replies), m.span)

    def mock_call(self, turn: ast.CallTurn, kind: str, target: str, agent_tools, ctx):
        tool = turn.tool.name
        if kind != "agent":
            problems.tool_mock_calls(self.sink, turn.span, target)
            return (tool, ())
        sym = self.lo.symbol(tool)
        if sym is None or sym.kind != "tool":
            self.sink.error("V1001", f"no tool is named `{tool}`", turn.tool.span,
                            help=did_you_mean(tool, self.lo.names_of("tool")))
            return (tool, ())
        self.lo.references.append((turn.tool.span, sym))
        if tool not in agent_tools:
            problems.mock_call_not_in_tools(self.sink, turn.tool.span, target, tool)
        params, _ = self.lo.signatures.get(tool, ((), t.ERROR))
        args = self.checker.bind_args(turn, tool, params, ctx)
        return (tool, args or ())


def _show_amount(ty: t.Type):
    """How to write a value of ``ty`` in Vox (money, durations, counts)."""
    if ty == t.MONEY:
        return format_money
    if ty == t.DURATION:
        return format_duration
    return format_tokens


def _rate_example(key: str) -> str:
    return {"cost": "$5 per day", "requests": "60 per minute", "tokens": "200_000 per minute"}[key]


def _decl_name(decl) -> str:
    name = getattr(decl, "name", None)
    if isinstance(name, ast.Ident):
        return name.name
    if isinstance(name, ast.StrLit):
        return name.value
    return getattr(getattr(decl, "scope", None), "name", "?")


class _NotConstant:
    def __repr__(self) -> str:
        return "<not constant>"


_NOT_CONSTANT = _NotConstant()


def _fold(e: h.TExpr):
    """The value of a constant expression (literals and arithmetic on them), or _NOT_CONSTANT."""
    if isinstance(e, h.Lit):
        return e.value
    if isinstance(e, h.UnaryExpr) and e.op == "-":
        v = _fold(e.operand)
        return _NOT_CONSTANT if v is _NOT_CONSTANT else -v
    if isinstance(e, h.BinaryExpr) and e.op in ("+", "-", "*"):
        a, b = _fold(e.left), _fold(e.right)
        if a is _NOT_CONSTANT or b is _NOT_CONSTANT:
            return _NOT_CONSTANT
        value = a + b if e.op == "+" else a - b if e.op == "-" else a * b
        if e.type in (t.MONEY, t.DURATION, t.INT, t.TOKENS):
            return int(value)
        return value
    return _NOT_CONSTANT
