"""One constructor per kind of problem the checker reports, so each code means one thing and its
wording lives here.

Each function reports one code to ``sink`` and returns the diagnostic; callers pass what differs
from one occurrence to the next (names, types, spans), never message text.

>>> from vox.compiler.diagnostics.model import DiagnosticSink
>>> from vox.compiler.source import Span
>>> d = call_outside_flow(DiagnosticSink("a.vox"), Span(0, 7), "agent", "gate")
>>> d.code, d.message
('V1043', 'agents can only be called from a flow')
"""

from __future__ import annotations

from vox.compiler.diagnostics.model import Diagnostic, DiagnosticSink, Label
from vox.compiler.hir import types as t
from vox.compiler.source import Span

# What each binary operator takes, for V1028 (the operators of types.binary_result).
_OPERANDS = {
    "==": "two values of compatible types",
    "!=": "two values of compatible types",
    "<": "two numbers, amounts of money, durations or strings",
    "<=": "two numbers, amounts of money, durations or strings",
    ">": "two numbers, amounts of money, durations or strings",
    ">=": "two numbers, amounts of money, durations or strings",
    "+": "numbers, or two amounts of money, durations, strings or lists of one type",
    "-": "numbers, or two amounts of money or durations",
    "*": "numbers, or money or a duration and a whole number",
    "/": "numbers, money or a duration and a whole number, or two of one unit",
    "%": "two whole numbers",
}


# ---- V1005 and what it used to cover: types ---------------------------------------------------


def type_mismatch(sink: DiagnosticSink, span: Span, expected: t.Type, found: str,
                  help: str | None = None) -> Diagnostic:
    """V1005: a value whose type does not fit; ``found`` is shown as given (a type in backticks,
    or words such as "a record literal")."""
    return sink.error("V1005", f"expected `{expected.show()}`, found {found}", span, help=help)


def untyped_record_literal(sink: DiagnosticSink, span: Span) -> Diagnostic:
    """V1027: a record literal where nothing says which record type it is."""
    return sink.error("V1027", "cannot tell which record type this literal is", span,
                      help="give the name a type: `let x: TypeName = { ... }`")


def wrong_operand(sink: DiagnosticSink, span: Span, operation: str, found: tuple[t.Type, ...],
                  takes: str | None = None, labels: tuple[Label, ...] = ()) -> Diagnostic:
    """V1028: an operator, `for`, indexing or `len` applied to values of types it does not take.
    ``takes`` defaults to what the binary operator ``operation`` takes."""
    takes = takes or _OPERANDS[operation]
    shown = " and ".join(f"`{ty.show()}`" for ty in found)
    name = operation if operation == "indexing" else f"`{operation}`"
    return sink.error("V1028", f"{name} takes {takes}, not {shown}", span, labels=labels)


def always_none(sink: DiagnosticSink, span: Span, name: str) -> Diagnostic:
    """V1029: `let x = none` with no type: the name could never hold anything else."""
    return sink.error("V1029", f"`{name}` would always be `none`", span,
                      help=f"give it a type: `let {name}: T? = none`")


def return_without_value(sink: DiagnosticSink, span: Span, returns: t.Type) -> Diagnostic:
    """V1030: a bare `return` in a flow that declares a result."""
    return sink.error("V1030", f"this flow returns `{returns.show()}`: return a value", span,
                      help=f"write the value after `return`, of type `{returns.show()}`")


def return_with_value(sink: DiagnosticSink, span: Span, found: t.Type) -> Diagnostic:
    """V1031: `return x` in a flow that declares no result."""
    return sink.error("V1031", "this flow declares no result, but this `return` gives one", span,
                      help=f"declare one: `-> {found.show()}` after the parameters, or write a bare `return`")


def wrong_form(sink: DiagnosticSink, span: Span, expected: str, what: str | None = None,
               help: str | None = None) -> Diagnostic:
    """V1032: a member value that is not of the form its member takes (a list of names, a record,
    a string, `env(...)`, a binding, a rate ...). ``what`` names the member, as in "`fallback`"."""
    message = f"{what} must be {expected}" if what else f"expected {expected}"
    return sink.error("V1032", message, span, help=help)


def gate_rejects_result(sink: DiagnosticSink, span: Span, gate: str, accepts: t.Type, agent: str,
                        returns: t.Type, param: Span) -> Diagnostic:
    """V1033: an agent lists a gate whose parameter does not accept the agent's result."""
    return sink.error(
        "V1033", f"gate `{gate}` checks `{accepts.show()}`, but `{agent}` returns `{returns.show()}`", span,
        labels=(Label(param, "the gate's parameter"),),
        help=f"give `{agent}` a gate that checks `{returns.show()}`, or change the gate's parameter type",
    )


# ---- what V1026 used to cover: values, statements and calls in the wrong place --------------


def not_constant(sink: DiagnosticSink, span: Span, what: str, help: str | None = None) -> Diagnostic:
    """V1034: a value the compiler must know before running (a cap, a price, a limit, a loop bound)
    that is computed instead of written."""
    return sink.error(
        "V1034", f"{what} must be written in the program", span,
        help=help or "write a literal, or arithmetic on literals: the compiler needs it to prove bounds before running",
    )


def value_out_of_range(sink: DiagnosticSink, span: Span, what: str, allowed: str,
                       help: str | None = None) -> Diagnostic:
    """V1026: a count or number outside the range its place accepts (``allowed``, as in "at least 1")."""
    return sink.error("V1026", f"{what} must be {allowed}", span, help=help)


def output_exceeds_context(sink: DiagnosticSink, span: Span, context: Span) -> Diagnostic:
    """V1035: a model whose `max_output` is larger than its context window."""
    return sink.error("V1035", "`max_output` is larger than the context window", span,
                      labels=(Label(context, "the context window"),),
                      help="a reply is part of the context: make `max_output` at most `context`")


def malformed_string(sink: DiagnosticSink, span: Span, text: str, form: str, help: str | None = None) -> Diagnostic:
    """V1036: a string whose text is not of the form its place needs (a model id, an environment
    variable name, a `module:function`, an HTTP URL)."""
    return sink.error("V1036", f'"{text}" is not {form}', span, help=help)


def declassify_without_reason(sink: DiagnosticSink, span: Span) -> Diagnostic:
    """V1037: `declassify(x, reason: ...)` whose reason is empty or not a string literal."""
    return sink.error(
        "V1037", "a declassification needs a reason written in the program", span,
        help='say why this data may go down, e.g. reason: "only the department is shared"; it is '
             "recorded in the plan for audit",
    )


def for_body_without_value(sink: DiagnosticSink, span: Span) -> Diagnostic:
    """V1038: a `for` body whose last statement is not an expression."""
    return sink.error("V1038", "a `for` body must end with the value of each element", span,
                      help="end the body with an expression, e.g. `{ summarize(t) }`")


def statement_in_par(sink: DiagnosticSink, span: Span) -> Diagnostic:
    """V1039: a statement in a `par` block that is neither a `let` nor a call."""
    return sink.error("V1039", "a `par` block holds `let` bindings or calls that run together", span,
                      help="move this statement after the `par` block")


def return_in_for(sink: DiagnosticSink, span: Span) -> Diagnostic:
    """V1040: `return` inside a `for` body."""
    return sink.error("V1040", "`return` inside a `for` body", span,
                      help="a `for` body gives one element per item; return after the loop")


def dropped_value(sink: DiagnosticSink, span: Span) -> Diagnostic:
    """V1041 (a warning): an expression statement that computes a value nobody uses."""
    return sink.warning("V1041", "this value is computed and then dropped", span,
                        help="bind it with `let`, return it, or remove it")


def callee_not_a_name(sink: DiagnosticSink, span: Span) -> Diagnostic:
    """V1042: a call of something other than a name (`a.b()`, `(f)(x)`)."""
    return sink.error("V1042", "only agents, tools, flows and builtins can be called", span,
                      help="call a declared agent, tool or flow by name")


_OUTSIDE_FLOW_HELP = {
    "gate": 'a gate checks its parameter and runtime signals; to ask a model, use `judge(model: m, rubric: "...")`',
    "test": "a test runs its flow (`flow:` and `input:`) and mocks the calls the flow makes",
}


def call_outside_flow(sink: DiagnosticSink, span: Span, kind: str, where: str) -> Diagnostic:
    """V1043: an agent, tool or flow called from ``where``: a gate, a test or a member value."""
    return sink.error("V1043", f"{kind}s can only be called from a flow", span,
                      help=_OUTSIDE_FLOW_HELP.get(where, "member values are constants: make the call in a flow"))


def receipt_outside_mock(sink: DiagnosticSink, span: Span) -> Diagnostic:
    """V1044: `receipt(tool)` anywhere but a test."""
    return sink.error("V1044", "`receipt(tool)` only appears in test mocks", span,
                      help="in a flow, a receipt comes from calling the tool itself")


def receipt_read_in_test(sink: DiagnosticSink, span: Span, field: str) -> Diagnostic:
    """V1045: a test reading the `args` or `result` of a receipt, which only the run's ledger has."""
    return sink.error("V1045", f"a test cannot read the `{field}` of a receipt", span,
                      help="check the call in the flow (`if r.args.x != ...`) or in a gate; a test can "
                           "compare the receipt's `id`")


def needless_approval(sink: DiagnosticSink, span: Span, tool: str) -> Diagnostic:
    """V1046 (a warning): a test approves a tool that never asks for approval."""
    return sink.warning("V1046", f"`{tool}` needs no approval", span,
                        help="only tools with `approval: human` pause for approval")


def mock_without_reply(sink: DiagnosticSink, span: Span) -> Diagnostic:
    """V1047: a mocked agent's script whose last turn is not `reply ...`."""
    return sink.error("V1047", "a mocked agent's script ends with `reply ...`", span,
                      help="add the final `reply { ... }`")


def tool_mock_calls(sink: DiagnosticSink, span: Span, tool: str) -> Diagnostic:
    """V1048: a `call` turn in the mock of a tool: only agents call tools."""
    return sink.error("V1048", f"only a mocked agent can call tools, and `{tool}` is a tool", span,
                      help=f"mock the tool's result instead: `mock {tool}: value`")


def mock_call_not_in_tools(sink: DiagnosticSink, span: Span, agent: str, tool: str) -> Diagnostic:
    """V1049: a mocked agent's script calls a tool that is not in the agent's `tools`."""
    return sink.error("V1049", f"`{agent}` cannot call `{tool}`: it is not in its `tools`", span,
                      help=f"add `{tool}` to the agent's tools, or mock another call")
