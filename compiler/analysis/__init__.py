"""The analyses that make the guarantees: budgets (V2), labels (V3), effects (V4), gates (V5).

Each is a pure function of the checked HIR. :func:`analyse` runs them in dependency order (the
budget bound counts the extra samples and judge calls the gates make).
"""

from __future__ import annotations

from vox.compiler.analysis.budgets import analyse_budgets
from vox.compiler.analysis.effects import analyse_effects
from vox.compiler.analysis.gates import analyse_gates
from vox.compiler.analysis.labels import analyse_labels
from vox.compiler.analysis.results import Analysis
from vox.compiler.diagnostics.model import DiagnosticSink
from vox.compiler.hir.nodes import Program


def analyse(program: Program, sink: DiagnosticSink) -> Analysis:
    gates = analyse_gates(program, sink)
    effects = analyse_effects(program, sink)
    labels = analyse_labels(program, sink)
    budgets = analyse_budgets(program, gates, sink)
    return Analysis(budgets, labels, effects, gates)
