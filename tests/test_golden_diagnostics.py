"""Golden renderings: tests/golden/diagnostics/CODE.vox must produce CODE, rendered as CODE.txt.

Pre-flight codes (V6xxx) read the environment: their goldens also run
:func:`vox.compiler.preflight.preflight`, with the environment in CODE.env (a JSON object; empty
when there is none) and python bindings looked for beside the golden.

Set VOX_UPDATE_GOLDEN=1 to rewrite the .txt files after an intended change, then review the diff.
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest

from vox.compiler.api import check_source
from vox.compiler.diagnostics.codes import CODES
from vox.compiler.diagnostics.model import sort_diagnostics
from vox.compiler.diagnostics.render import render_text
from vox.compiler.preflight import preflight

GOLDEN = pathlib.Path(__file__).resolve().parent / "golden" / "diagnostics"
SOURCES = sorted(GOLDEN.glob("*.vox"))


def rendered(path: pathlib.Path) -> tuple[str, list[str]]:
    result = check_source(f"golden/{path.name}", path.read_text())
    diagnostics = list(result.diagnostics)
    if path.stem.startswith("V6"):
        env_file = path.with_suffix(".env")
        env = json.loads(env_file.read_text()) if env_file.exists() else {}
        diagnostics = sort_diagnostics(diagnostics + preflight(result.program, result.analysis, env, base_dir=str(GOLDEN)))
        if path.stem in ("V6005", "V6006") and not result.analysis.budgets.bounds:
            pytest.skip("the reservation check needs the flow bounds of the budget analysis")
    text = "\n".join(render_text(d, result.source) for d in diagnostics) + "\n"
    return text, [d.code for d in diagnostics]


def test_every_code_has_a_golden():
    have = {p.stem for p in SOURCES}
    missing = sorted(set(CODES) - have)
    assert not missing, f"codes without a golden file in {GOLDEN}: {missing}"


def test_every_golden_names_a_known_code():
    assert {p.stem for p in SOURCES} <= set(CODES)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_golden(path):
    text, codes = rendered(path)
    assert path.stem in codes, f"{path.name} no longer produces {path.stem}: {codes}"
    expected_file = path.with_suffix(".txt")
    # Goldens never bless themselves: a missing one fails; writing them is a deliberate command
    # (VOX_UPDATE_GOLDEN=1 python -m pytest tests/test_golden_diagnostics.py) whose diff is reviewed.
    if os.environ.get("VOX_UPDATE_GOLDEN"):
        expected_file.write_text(text)
    if not expected_file.exists():
        pytest.fail(f"{expected_file.name} is missing; generate it with VOX_UPDATE_GOLDEN=1 and review it")
    assert text == expected_file.read_text()
