"""Effects and receipts (V4). (being written)"""
from vox.compiler.analysis.results import EffectReport


def analyse_effects(program, sink) -> EffectReport:
    return EffectReport()
