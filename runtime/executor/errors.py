"""Why a run stops: one exception class per reason, each with a message a user can act on.

Every error names the step (the execution's step name, see spec/plan.md) where it happened.
"""

from __future__ import annotations


class RunError(Exception):
    """A run failed. ``kind`` is a stable word for machines (`voxc run --json`, run records)."""

    kind = "error"

    def __init__(self, message: str, step: str | None = None):
        super().__init__(message)
        self.message = message
        self.step = step

    def __str__(self) -> str:
        return f"{self.message} (at {self.step})" if self.step else self.message


class BudgetRefused(RunError):
    """A call was refused before it was made: it could exceed a cap."""

    kind = "budget"


class ModelFailed(RunError):
    """Every model of an agent's chain failed (after retries and fallbacks)."""

    kind = "model"


class InvalidOutput(RunError):
    """A model's output did not fit the agent's result type, even after a repair attempt."""

    kind = "invalid_output"


class ToolFailed(RunError):
    """A tool call failed on every attempt (``attempts`` counts them, for its cost)."""

    kind = "tool"

    def __init__(self, message: str, step: str | None = None, attempts: int = 1):
        super().__init__(message, step)
        self.attempts = attempts


class FabricatedReceipt(RunError):
    """An agent's output names a receipt that the run's ledger does not hold."""

    kind = "fabricated_receipt"


class GateHalted(RunError):
    """A gate check failed with `halt`, or its retries ran out."""

    kind = "gate"


class Abstained(RunError):
    """An agent abstained (a gate's `abstain`, or `fallback` past the last model)."""

    kind = "abstained"


class ApprovalDenied(RunError):
    kind = "denied"


class InputInvalid(RunError):
    """The run's input does not fit the flow's parameters."""

    kind = "input"


class ApprovalNeeded(Exception):
    """A tool with `approval: human` is waiting for a person (not an error: the run pauses)."""

    def __init__(self, step: str, tool: str, arguments: dict):
        super().__init__(f"`{tool}` needs approval at {step}")
        self.step = step
        self.tool = tool
        self.arguments = arguments
