"""The plan: the versioned, validated document the runtime executes (see spec/plan.md).

:func:`lower_plan` makes one from a clean :class:`~vox.compiler.api.CheckResult`;
:func:`plan_to_json` writes it (in order, never sorted) and :func:`load_plan` reads it back, validated.
"""

from vox.compiler.plan.lower import compiler_version, lower_plan
from vox.compiler.plan.model import PLAN_VERSION, SUPPORTED_PLAN_VERSIONS, Plan
from vox.compiler.plan.select import select_flow
from vox.compiler.plan.serde import PlanError, canonical_json, compute_plan_hash, load_plan, plan_to_dict, plan_to_json

__all__ = [
    "PLAN_VERSION", "SUPPORTED_PLAN_VERSIONS", "Plan", "PlanError", "canonical_json", "compiler_version",
    "compute_plan_hash", "load_plan", "lower_plan", "plan_to_dict", "plan_to_json", "select_flow",
]
