"""Gates (V5): signals need capabilities on every model of the chain, signal arguments, actions
that fit the agent, and the gate report."""

from __future__ import annotations

import pathlib

import pytest

from vox.compiler.api import check_source

ROOT = pathlib.Path(__file__).resolve().parent.parent
REFERENCE = (ROOT / "examples" / "reference.vox").read_text()

PRELUDE = """\
provider sim = sim
model lp = sim/"lp" { context: 8_000, max_output: 500, price: free, capabilities: [logprobs, sampling] }
model lp2 = sim/"lp2" { context: 8_000, max_output: 500, price: free, capabilities: [logprobs, sampling] }
model plain = sim/"plain" { context: 8_000, max_output: 500, price: free, capabilities: [json_schema] }
"""


def program(gate: str, model: str = "lp", fallback: str = "", extra: str = "") -> str:
    members = f"  model: {model}\n" + (f"  fallback: [{fallback}]\n" if fallback else "") + extra
    return PRELUDE + f"""
gate g(s: str) {{
{gate}
}}

agent a(x: str) -> str {{
{members}  gates: [g]
  prompt: "Answer: {{x}}"
}}
"""


def diags(text: str) -> list[tuple[str, str]]:
    result = check_source("t.vox", text)
    return [(d.code, text[d.span.start : d.span.end]) for d in result.diagnostics]


def the(text: str, code: str):
    return next(d for d in check_source("t.vox", text).diagnostics if d.code == code)


def labels(text: str, code: str) -> list[str]:
    return [text[label.span.start : label.span.end] for label in the(text, code).labels]


def apply_fix(text: str, code: str) -> str:
    d = the(text, code)
    assert d.fix is not None
    for edit in sorted(d.fix.edits, key=lambda e: e.span.start, reverse=True):
        text = text[: edit.span.start] + edit.new_text + text[edit.span.end :]
    return text


# ---- the reference program's note ------------------------------------------------------------------


def test_reference_checks_clean():
    assert diags(REFERENCE) == []


def test_adding_sonnet_to_triagers_fallbacks_is_v5001_on_sonnet():
    text = REFERENCE.replace("  fallback: [local]\n", "  fallback: [local, sonnet]\n", 1)
    assert text != REFERENCE
    assert diags(text) == [("V5001", "sonnet")]
    assert labels(text, "V5001") == ["confidence", "entropy(window: 32)"]
    d = the(text, "V5001")
    assert "logprobs" in d.message and "triager" in d.message
    assert "remove `sonnet`" in d.help
    assert apply_fix(text, "V5001") == REFERENCE


# ---- V5001 ------------------------------------------------------------------------------------------


def test_v5001_on_a_fallback_without_logprobs():
    text = program("  check confidence >= 0.5 else fallback", fallback="plain")
    assert diags(text) == [("V5001", "plain")]
    assert labels(text, "V5001") == ["confidence"]


def test_v5001_on_the_primary_model():
    text = program("  check entropy(window: 8) <= 2.0 else retry(1)", model="plain")
    assert diags(text) == [("V5001", "plain")]
    assert the(text, "V5001").fix is None  # the primary cannot simply be removed


def test_v5001_fix_every_model_has_logprobs():
    assert diags(program("  check confidence >= 0.5 else fallback", fallback="lp2")) == []


def test_v5001_fix_removes_the_model_with_its_separator():
    for fallback, kept in (("lp2, plain", "[lp2]"), ("plain, lp2", "[lp2]"), ("plain", "[]")):
        text = program("  check confidence >= 0.5 else fallback", fallback=fallback)
        assert f"fallback: {kept}" in apply_fix(text, "V5001")


def test_signals_without_requirements_need_no_capabilities():
    gate = "\n".join([
        "  check receipts_ok else halt",
        "  check grounded(s, sources: observations) else ask_human",
        "  check judge(plain, rubric: \"polite\") else abstain",
        "  check len(s) > 0 else retry(1)",
    ])
    assert diags(program(gate, model="plain")) == []


def test_one_error_per_model_and_agent_with_every_reading_check_labelled():
    gate = "  check confidence >= 0.5 else retry(1)\n  check entropy(window: 8) <= 2.0 else retry(1)"
    text = program(gate, model="plain")
    assert diags(text) == [("V5001", "plain")]
    assert labels(text, "V5001") == ["confidence", "entropy(window: 8)"]


# ---- V5002, V5003, V5006 ----------------------------------------------------------------------------


def test_v5002_consistency_needs_sampling():
    text = program("  check consistency(n: 3) >= 0.6 else retry(1)", model="plain")
    assert diags(text) == [("V5002", "plain")]
    assert labels(text, "V5002") == ["consistency(n: 3)"]


def test_v5002_fix_a_model_that_samples():
    assert diags(program("  check consistency(n: 3) >= 0.6 else retry(1)")) == []


@pytest.mark.parametrize("gate, underlined", [
    ("  check consistency(n: 1) >= 0.6 else retry(1)", "1"),
    ("  check consistency(n: 0) >= 0.6 else retry(1)", "0"),
    ("  check entropy(window: 0) <= 2.0 else retry(1)", "0"),
    ("  check consistency(n: len(s)) >= 0.6 else retry(1)", "len(s)"),
])
def test_v5003_bad_signal_arguments(gate, underlined):
    assert diags(program(gate)) == [("V5003", underlined)]


def test_v5003_fix():
    text = program("  check consistency(n: 1) >= 0.6 else retry(1)")
    assert diags(apply_fix(text, "V5003")) == []


def test_v5003_is_reported_for_gates_no_agent_uses():
    text = PRELUDE + "gate g(s: str) {\n  check consistency(n: 1) >= 0.6 else retry(1)\n}\n"
    assert diags(text) == [("V5003", "1")]


def test_v5006_consistency_at_temperature_zero():
    gate = "  check consistency(n: 3) >= 0.6 else retry(1)"
    assert diags(program(gate, extra="  temperature: 0\n")) == [("V5006", "0")]
    assert diags(program(gate, extra="  temperature: 0.7\n")) == []


# ---- actions: V5004, V5005 --------------------------------------------------------------------------


def test_v5004_fallback_without_fallback_models():
    text = program("  check confidence >= 0.5 else fallback")
    assert diags(text) == [("V5004", "g")]  # the gate's item in `gates: [...]`
    assert labels(text, "V5004") == ["check confidence >= 0.5 else fallback"]
    assert the(text, "V5004").severity.word == "warning"


def test_v5004_fix_a_fallback_model_or_abstain():
    assert diags(program("  check confidence >= 0.5 else fallback", fallback="lp2")) == []
    assert diags(program("  check confidence >= 0.5 else abstain")) == []


def test_v5005_retries_that_cannot_fit_the_steps_cap():
    text = program("  check len(s) > 0 else retry(2)", extra="  budget: { steps: 2 }\n")
    assert diags(text) == [("V5005", "2")]  # the `steps` value
    assert labels(text, "V5005") == ["check len(s) > 0 else retry(2)"]
    assert "steps: 3" in apply_fix(text, "V5005")
    assert diags(apply_fix(text, "V5005")) == []


def test_v5005_fix_fewer_retries_or_no_steps_cap():
    assert diags(program("  check len(s) > 0 else retry(1)", extra="  budget: { steps: 2 }\n")) == []
    assert diags(program("  check len(s) > 0 else retry(5)")) == []


# ---- the report ----------------------------------------------------------------------------------


def test_the_report_of_the_reference_program():
    report = check_source("reference.vox", REFERENCE).analysis.gates
    assert report.signals["triager"] == {"confidence", "entropy"}
    assert report.signals["resolver"] == {"receipts_ok", "grounded", "observations", "judge"}
    assert report.extra_samples == {"triager": 0, "resolver": 0}
    assert report.judges == {"triager": (), "resolver": ("local",)}


def test_extra_samples_add_up_over_consistency_checks_and_judges_are_counted_per_call():
    gate = "\n".join([
        "  check consistency(n: 3) >= 0.6 else retry(1)",
        "  check consistency(n: 5) >= 0.8 else abstain",
        "  check judge(lp, rubric: \"a\") and judge(lp2, rubric: \"b\") else retry(1)",
        "  check judge(lp, rubric: \"c\") else halt",
    ])
    report = check_source("t.vox", program(gate)).analysis.gates
    assert report.extra_samples["a"] == 2 + 4
    assert report.judges["a"] == ("lp", "lp2", "lp")
    assert report.signals["a"] == {"consistency", "judge"}


# ---- robustness ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    PRELUDE + "agent a(x: str) -> str {\n  gates: [g]\n  prompt: \"{x}\"\n}\n",
    PRELUDE + "gate g(s: str) {\n  check confidence >= 0.5 else fallback\n}\n"
              "agent a(x: str) -> str {\n  model: nope\n  fallback: [ghost, plain]\n  gates: [g, h]\n  prompt: \"{x}\"\n}\n",
    PRELUDE + "gate g(s: int) {\n  check consistency(n: \"3\") >= x else retry\n}\n"
              "agent a(x: str) -> str {\n  model: lp\n  gates: [g]\n  budget: { steps: 0 }\n  prompt: \"{x}\"\n}\n",
])
def test_broken_programs_do_not_crash_the_analysis(text):
    assert check_source("t.vox", text).diagnostics


def test_every_signal_of_the_registry_has_its_runtime_method():
    """compiler/signals.py is the one list of signals: the checker types them from it, the
    analyses read what they need from it, and the runtime implements each as a method."""
    import inspect

    from vox.compiler.hir.expressions import SIGNAL_CALLS, SIGNAL_VALUES
    from vox.compiler.plan.model import SIGNAL_PARAMS
    from vox.compiler.signals import SIGNALS
    from vox.runtime.executor.agent import Signals

    assert set(SIGNAL_CALLS) | set(SIGNAL_VALUES) == set(SIGNALS) == set(SIGNAL_PARAMS)
    for name, signal in SIGNALS.items():
        method = getattr(Signals, name)
        assert inspect.iscoroutinefunction(method), name
        assert list(inspect.signature(method).parameters)[1:] == [p.name for p in signal.params], name
    documented = (ROOT / "spec" / "gates.md").read_text()
    for name in SIGNALS:
        assert f"`{name}" in documented, f"spec/gates.md does not document signal `{name}`"
