"""Writing plans as JSON and reading them back, validated, to an identical plan.

Order is kept, not sorted: a record's fields reach a model as the properties of a JSON Schema,
and models write fields in the order the schema lists them, so a plan read back from its JSON
must send byte-identical requests. Fields of the plan's models come out in their declared order
(the order pydantic dumps them), tables of declarations by name, and schemas as lowered.

>>> import json
>>> try:
...     load_plan(json.dumps({"plan_version": 99}))
... except PlanError as e:
...     print(e)  # doctest: +ELLIPSIS
this plan has plan_version 99, but this voxc reads plan_version 1 only; ...
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import ValidationError

from vox.compiler.plan.model import SUPPORTED_PLAN_VERSIONS, Plan

MAX_REPORTED_ERRORS = 8


class PlanError(Exception):
    """A plan that cannot be made (the program has errors) or read (invalid, or another version).

    ``str()`` is a readable message; ``problems`` lists each problem on its own."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()):
        super().__init__(message)
        self.problems = problems


def canonical_json(data: Any) -> str:
    """Compact JSON with sorted keys, for data whose key order means nothing."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def compute_plan_hash(data: dict) -> str:
    """sha256 of the compact JSON of a plan (as a JSON dict, in the order :func:`plan_to_dict`
    gives) without its ``plan_hash``.

    Keys are not sorted: the order of a schema's properties is part of what a plan sends, so a
    plan whose schemas were reordered (re-serialised with sorted keys, say) fails its hash rather
    than running as the same program. The source's path is left out: the same program compiled
    from another directory (a worker of a fleet, a moved checkout) is the same program. Its
    text's sha256 stays in.
    """
    body = {k: v for k, v in data.items() if k != "plan_hash"}
    if isinstance(body.get("source"), dict):
        body["source"] = {k: v for k, v in body["source"].items() if k != "path"}
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def plan_to_dict(plan: Plan) -> dict:
    """The plan as JSON data (lists, dicts, strings, numbers), in its order."""
    return plan.model_dump(mode="json")


def plan_to_json(plan: Plan, indent: int | None = 2) -> str:
    """The plan as JSON text, in its order (never sorted): the same plan always gives the same
    bytes, and :func:`load_plan` reads them back to a plan that sends the same requests."""
    return json.dumps(plan_to_dict(plan), indent=indent, ensure_ascii=False, allow_nan=False)


def load_plan(source: str | bytes | dict, verify_hash: bool = True) -> Plan:
    """Read and validate a plan from JSON text or already-parsed JSON data.

    Raises :class:`PlanError` with a readable message for text that is not JSON, a plan of a version
    this voxc does not read, a plan that does not validate, and (with ``verify_hash``) a plan whose
    ``plan_hash`` does not match its contents.
    """
    if isinstance(source, (str, bytes)):
        try:
            data = json.loads(source)
        except (ValueError, UnicodeDecodeError) as e:
            raise PlanError(f"this is not a plan: not valid JSON ({e})") from None
    else:
        data = source
    if not isinstance(data, dict):
        raise PlanError(f"this is not a plan: expected a JSON object, found {_json_kind(data)}")
    if "plan_version" not in data:
        raise PlanError("this is not a Vox plan: it has no `plan_version`; make one with `voxc plan FILE --json`")
    version = data["plan_version"]
    if version not in SUPPORTED_PLAN_VERSIONS or isinstance(version, bool):
        supported = ", ".join(str(v) for v in SUPPORTED_PLAN_VERSIONS)
        made_by = data.get("compiler", {}).get("version") if isinstance(data.get("compiler"), dict) else None
        by = f" (made by voxc {made_by})" if isinstance(made_by, str) else ""
        raise PlanError(
            f"this plan has plan_version {json.dumps(version)}{by}, but this voxc reads plan_version "
            f"{supported} only; recompile the source with this voxc: `voxc plan FILE --json`"
        )
    try:
        plan = Plan.model_validate(data)
    except ValidationError as e:
        problems = tuple(_describe(err) for err in e.errors())
        shown = problems[:MAX_REPORTED_ERRORS]
        more = len(problems) - len(shown)
        message = "this plan is not valid:\n" + "\n".join(f"  {p}" for p in shown)
        if more:
            message += f"\n  ... and {more} more"
        message += "\nrecompile the source with `voxc plan FILE --json` rather than editing the plan"
        raise PlanError(message, problems) from None
    if verify_hash:
        expected = compute_plan_hash(plan_to_dict(plan))
        if plan.plan_hash != expected:
            raise PlanError(
                f"this plan's plan_hash {plan.plan_hash[:12]}... does not match its contents ({expected[:12]}...): "
                "it was changed after it was compiled; recompile it with `voxc plan FILE --json`"
            )
    return plan


def _describe(err: dict) -> str:
    """One pydantic error as ``at agents.triager.caps.tokens: Input should be ... (found "x")``."""
    where = ".".join(str(part) for part in err.get("loc", ())) or "the top level"
    message = err.get("msg", "invalid")
    if err.get("type") in ("missing", "value_error", "assertion_error") or "input" not in err:
        return f"at {where}: {message}"
    found = json.dumps(err["input"], default=str, ensure_ascii=False)
    if len(found) > 60:
        found = found[:57] + "..."
    return f"at {where}: {message} (found {found})"


def _json_kind(value: Any) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)
