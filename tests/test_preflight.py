"""Pre-flight (V6): python bindings imported from a real module beside the program, environment
variables, and the reservation of a flow's bound against the run-wide budgets; and
`voxc check --preflight`."""

from __future__ import annotations

import dataclasses
import itertools
import sys
import textwrap

import anyio
import pytest

from vox.cli.main import main
from vox.compiler.analysis.results import Analysis, Bound, BudgetReport, CallableBound
from vox.compiler.api import check_source
from vox.compiler.preflight import preflight

_modules = itertools.count()


@pytest.fixture
def project(tmp_path):
    """Write a program and, optionally, a python module beside it; return (text, result, module name)."""

    def make(vox: str, python: str | None = None):
        module = f"vox_preflight_case_{next(_modules)}"  # unique: imported modules stay cached
        text = vox.replace("MODULE", module)
        path = tmp_path / "app.vox"
        path.write_text(text)
        if python is not None:
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(python))
        return text, check_source(str(path), text), module

    return make


def underlined(text: str, diagnostics) -> list[tuple[str, str]]:
    return [(d.code, text[d.span.start : d.span.end]) for d in diagnostics]


TOOL = """\
tool issue_refund(order_id: str, amount: money, note: str?) -> str {
  effect: write
  idempotent: true
  bind: python("MODULE:issue_refund")
}
"""
BIND = 'python("MODULE:issue_refund")'


# ---- bindings -------------------------------------------------------------------------------------


def test_a_good_binding_passes_and_sys_path_is_restored(project):
    text, result, _ = project(TOOL, "def issue_refund(order_id, amount, note=None):\n    return 'rf'\n")
    assert result.ok
    before = list(sys.path)
    assert preflight(result.program, result.analysis, {}) == []
    assert sys.path == before


@pytest.mark.parametrize("python", [
    "def issue_refund(**kwargs): ...",
    "def issue_refund(order_id, *args, amount, note='', dry_run=False, **kw): ...",
    "class issue_refund:\n    def __init__(self, order_id, amount, note): ...",
    "async def issue_refund(order_id, amount, note): ...",
])
def test_signatures_that_accept_the_tools_parameters_by_name(project, python):
    _, result, _ = project(TOOL, python + "\n")
    assert preflight(result.program, result.analysis, {}) == []


def test_missing_module(project):
    text, result, module = project(TOOL)
    found = preflight(result.program, result.analysis, {})
    assert underlined(text, found) == [("V6001", BIND.replace("MODULE", module))]
    assert f"no module named `{module}`" in found[0].message


def test_module_raising_at_import_is_a_diagnostic_not_a_traceback(project):
    text, result, module = project(TOOL, "import os\nprint('noise')\nraise RuntimeError('database is down')\n")
    [d] = preflight(result.program, result.analysis, {})
    assert d.code == "V6001"
    assert "RuntimeError: database is down" in d.message and f"{module}.py:3" in d.message


def test_module_exiting_or_failing_its_own_import_at_import(project):
    text, result, _ = project(TOOL, "import sys\nsys.exit(3)\n")
    [d] = preflight(result.program, result.analysis, {})
    assert d.code == "V6001" and "SystemExit" in d.message
    text, result, _ = project(TOOL, "import not_a_real_dependency_xyz\n")
    [d] = preflight(result.program, result.analysis, {})
    assert d.code == "V6001" and "not_a_real_dependency_xyz" in d.message


def test_missing_function(project):
    text, result, module = project(TOOL, "def issue_refunds(order_id, amount, note=None): ...\n")
    [d] = preflight(result.program, result.analysis, {})
    assert underlined(text, [d]) == [("V6002", BIND.replace("MODULE", module))]
    assert d.help == "did you mean `issue_refunds`?"


def test_not_callable(project):
    _, result, _ = project(TOOL, "issue_refund = 42\n")
    [d] = preflight(result.program, result.analysis, {})
    assert d.code == "V6002" and "not a function" in d.message


@pytest.mark.parametrize("python", [
    "def issue_refund(order_id, amount, note=None, *, idempotency_key): ...",
    "def issue_refund(order_id, idempotency_key, amount, note=None): ...",
])
def test_an_idempotency_key_without_a_default_is_accepted(project, python):
    """The runtime passes every call's key as `idempotency_key=` to a function that takes one."""
    _, result, _ = project(TOOL, python + "\n")
    assert preflight(result.program, result.analysis, {}) == []


def test_the_runtime_passes_the_idempotency_key_preflight_accepts(project, tmp_path):
    from vox.compiler.plan import lower_plan
    from vox.runtime.executor.tools import ToolRunner

    python = "def issue_refund(order_id, amount, note=None, *, idempotency_key):\n    return idempotency_key\n"
    _, result, _ = project(TOOL, python)
    assert preflight(result.program, result.analysis, {}) == []
    tool = lower_plan(result).tools["issue_refund"]
    runner = ToolRunner(base_dir=str(tmp_path))
    value, attempts = anyio.run(runner.call, tool, {"order_id": "o1", "amount": "1.00", "note": None}, "key-1")
    assert (value, attempts) == ("key-1", 1)


def test_a_positional_only_idempotency_key_is_refused(project):
    _, result, _ = project(TOOL, "def issue_refund(idempotency_key, /, order_id, amount, note=None): ...\n")
    [d] = preflight(result.program, result.analysis, {})
    assert d.code == "V6003" and "`idempotency_key` can only be passed by position" in d.message


def test_bindings_doctests():
    import doctest

    from vox.compiler import bindings

    assert doctest.testmod(bindings).failed == 0


@pytest.mark.parametrize("python, problem, labelled", [
    ("def issue_refund(order_id, amount): ...", "no parameter `note`", ["note"]),
    ("def issue_refund(order_id, amount, note, currency): ...",
     "it requires `currency`, which the tool does not declare", []),
    ("def issue_refund(order_id, total, note=None): ...", "no parameter `amount`", ["amount"]),
    ("def issue_refund(order_id, amount, note, /): ...", "can only be passed by position", ["order_id", "amount", "note"]),
])
def test_wrong_parameters(project, python, problem, labelled):
    text, result, module = project(TOOL, python + "\n")
    [d] = preflight(result.program, result.analysis, {})
    assert underlined(text, [d]) == [("V6003", BIND.replace("MODULE", module))]
    assert problem in d.message
    assert [text[label.span.start : label.span.end] for label in d.labels] == labelled


def test_bindings_are_not_imported_when_told_not_to(project):
    _, result, _ = project(TOOL)
    assert preflight(result.program, result.analysis, {}, import_bindings=False) == []


def test_http_bindings_are_not_contacted(project):
    text, result, _ = project('tool get(id: str) -> str {\n  effect: read\n  bind: http.get("https://x.invalid/{id}")\n}\n')
    assert preflight(result.program, result.analysis, {}) == []


# ---- environment variables -------------------------------------------------------------------------

PROVIDERS = """\
provider openai = openai {
  base_url: env("OPENAI_BASE_URL")
  key: env("OPENAI_API_KEY")
}
provider anthropic = anthropic {
  key: env("ANTHROPIC_API_KEY")
}
provider local = openai_compatible {
  base_url: env("LOCAL_URL", "http://127.0.0.1:11434/v1")
}
model mini = openai/"gpt-4o-mini" { context: 128_000, max_output: 1_000, price: { input: $0.15, output: $0.60 } }
model claude = anthropic/"claude" { context: 200_000, max_output: 1_000, price: { input: $3, output: $15 } }
model small = local/"llama" { context: 8_000, max_output: 500, price: free }

gate polite(s: str) {
  check judge(claude, rubric: "polite") else retry(1)
}
agent greeter(name: str) -> str {
  model: mini
  prompt: "Greet {name}."
}
agent judged(name: str) -> str {
  model: small
  gates: [polite]
  prompt: "Greet {name}."
}
flow greet(name: str) -> str {
  return greeter(name: name)
}
flow local_greet(name: str) -> str {
  return judged(name: name)
}
"""
ALL_SET = {"OPENAI_BASE_URL": "https://proxy.example/v1", "OPENAI_API_KEY": "sk-1", "ANTHROPIC_API_KEY": "a-1"}


def test_env_vars_present(project):
    _, result, _ = project(PROVIDERS)
    assert result.ok
    assert preflight(result.program, result.analysis, ALL_SET) == []


def test_env_vars_missing_say_which_provider_needs_them(project):
    text, result, _ = project(PROVIDERS)
    found = preflight(result.program, result.analysis, {"OPENAI_BASE_URL": "https://x", "OPENAI_API_KEY": ""})
    assert underlined(text, found) == [("V6004", 'env("OPENAI_API_KEY")'), ("V6004", 'env("ANTHROPIC_API_KEY")')]
    assert found[0].message == "`OPENAI_API_KEY` is set but empty: provider `openai` reads its API key from it"
    assert found[1].message == "`ANTHROPIC_API_KEY` is not set: provider `anthropic` reads its API key from it"


def test_a_base_url_without_default_is_required_and_a_default_is_enough(project):
    text, result, _ = project(PROVIDERS)
    env = dict(ALL_SET)
    del env["OPENAI_BASE_URL"]
    [d] = preflight(result.program, result.analysis, env)
    assert underlined(text, [d]) == [("V6004", 'env("OPENAI_BASE_URL")')]
    assert "base URL" in d.message and 'env("OPENAI_BASE_URL", "https://...")' in d.help


def test_only_providers_the_flow_reaches_are_checked(project):
    text, result, _ = project(PROVIDERS)
    assert underlined(text, preflight(result.program, result.analysis, {}, flow="greet")) == [
        ("V6004", 'env("OPENAI_BASE_URL")'), ("V6004", 'env("OPENAI_API_KEY")')]
    # `local_greet` runs on the local model, whose gate judges with claude (anthropic)
    [d] = preflight(result.program, result.analysis, {}, flow="local_greet")
    assert underlined(text, [d]) == [("V6004", 'env("ANTHROPIC_API_KEY")')]
    assert d.notes == ("needed by judge `claude` of gate `polite`",)


def test_an_unknown_flow_is_the_callers_mistake(project):
    _, result, _ = project(PROVIDERS)
    with pytest.raises(ValueError, match="no flow is named `nope`"):
        preflight(result.program, result.analysis, {}, flow="nope")


def test_the_process_environment_is_the_default(project, monkeypatch):
    _, result, _ = project(PROVIDERS)
    for name, value in ALL_SET.items():
        monkeypatch.setenv(name, value)
    assert preflight(result.program, result.analysis) == []


# ---- reservation against tenant and fleet budgets --------------------------------------------------

BUDGETED = """\
budget tenant { cost: $5 per day }
budget fleet { cost: $500 per day }
provider sim = sim
model m = sim/"m" { context: 8_000, max_output: 500, price: { input: $1, output: $2 } }
agent a(x: str) -> str {
  model: m
  budget: { cost: $0.05 }
  prompt: "{x}"
}
flow run(x: str) -> str {
  budget: { cost: $0.50 }
  return a(x: x)
}
"""


def with_bound(result, cost: int | None) -> Analysis:
    """The program's analysis with a hand-made flow bound for `run`."""
    bound = CallableBound("run", "flow", Bound(cost_micros=cost), Bound(cost_micros=cost), frozenset(), ())
    return dataclasses.replace(result.analysis, budgets=BudgetReport({"run": bound}))


def test_a_bound_that_fits_the_tenant(project):
    _, result, _ = project(BUDGETED)
    assert preflight(result.program, with_bound(result, 500_000), {}) == []
    assert preflight(result.program, with_bound(result, 5_000_000), {}) == []  # exactly a day's budget


def test_a_bound_over_the_tenants_period(project):
    text, result, _ = project(BUDGETED)
    [d] = preflight(result.program, with_bound(result, 7_500_000), {})
    assert underlined(text, [d]) == [("V6006", "$0.50")]  # the flow's own cost cap
    assert d.message == "one run of `run` may cost $7.50, more than `budget tenant` allows in a whole day ($5)"
    assert [text[label.span.start : label.span.end] for label in d.labels] == ["budget tenant { cost: $5 per day }"]


def test_an_unbounded_flow_cannot_be_reserved(project):
    text, result, _ = project(BUDGETED)
    [d] = preflight(result.program, with_bound(result, None), {})
    assert underlined(text, [d]) == [("V6005", "run")]
    assert "budget: { cost: $... }" in d.help


def test_no_run_wide_budget_means_nothing_to_reserve(project):
    _, result, _ = project(BUDGETED.replace("budget tenant { cost: $5 per day }\n", "")
                           .replace("budget fleet { cost: $500 per day }\n", ""))
    assert preflight(result.program, with_bound(result, None), {}) == []


def test_a_missing_bound_is_skipped(project):
    _, result, _ = project(BUDGETED)
    assert preflight(result.program, Analysis(), {}) == []


# ---- the command line ------------------------------------------------------------------------------


def test_voxc_check_preflight(project, capsys, monkeypatch):
    text, result, module = project(PROVIDERS + TOOL)
    path = result.source.path
    assert main(["check", path]) == 0
    capsys.readouterr()
    for name in ALL_SET:
        monkeypatch.delenv(name, raising=False)
    assert main(["check", "--preflight", path]) == 1
    out = capsys.readouterr().out
    assert "error[V6001]" in out and "error[V6004]" in out and "4 errors" in out  # three variables, one module
    for name, value in ALL_SET.items():
        monkeypatch.setenv(name, value)
    assert main(["check", "--preflight", "--format", "json", path]) == 1
    assert '"code": "V6001"' in capsys.readouterr().out


def test_voxc_check_preflight_skips_files_with_errors(project, capsys):
    _, result, _ = project(TOOL + "flow f() -> str {\n  return nope\n}\n")
    assert main(["check", "--preflight", result.source.path]) == 1
    out = capsys.readouterr().out
    assert "V1001" in out and "V6001" not in out
