"""The JSON Schema of the plan, as published in spec/plan.schema.json.

Regenerate the published file after changing the plan's models::

    python -m vox.compiler.plan.schema > spec/plan.schema.json
"""

from __future__ import annotations

import json
import sys

from vox.compiler.plan.model import Plan


def plan_json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a plan, generated from the pydantic models."""
    schema = Plan.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def plan_json_schema_text() -> str:
    """The schema as the published file holds it: sorted keys, two-space indent, final newline."""
    return json.dumps(plan_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(plan_json_schema_text())
