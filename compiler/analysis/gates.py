"""Gates (V5). (being written)"""
from vox.compiler.analysis.results import GateReport


def analyse_gates(program, sink) -> GateReport:
    return GateReport()
