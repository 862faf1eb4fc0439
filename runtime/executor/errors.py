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


class BoundBroken(RunError):
    """A call was refused because it would take the run past the bound the compiler proved for
    its flow (the runtime's budget monitor). Nothing of it was sent and no ledger was charged
    for it. The compiler accepted the program because its calls fit that bound, so this is a bug
    in voxc's budget analysis, not in the program: `voxc run` exits with its own status (5)."""

    kind = "bound_broken"

    def __init__(self, message: str, step: str | None = None, flow: str = "", dimension: str = "",
                 bound: int = 0, would_be: int = 0):
        super().__init__(message, step)
        self.flow = flow
        self.dimension = dimension
        self.bound = bound
        self.would_be = would_be


class ModelFailed(RunError):
    """Every model of an agent's chain failed (after retries and fallbacks)."""

    kind = "model"


class InvalidOutput(RunError):
    """A model's output did not fit the agent's result type, even after a repair attempt."""

    kind = "invalid_output"


class ToolFailed(RunError):
    """A tool call failed on every attempt (``attempts`` counts them, for its cost)."""

    kind = "tool"

    unknown_outcome = False  # whether the tool may have acted although the call failed

    def __init__(self, message: str, step: str | None = None, attempts: int = 1):
        super().__init__(message, step)
        self.attempts = attempts


class ToolTimedOut(ToolFailed):
    """A tool call's last attempt ran past the tool's `timeout`; its late result, if any, is dropped.

    ``unknown_outcome`` is set for a `write` or `external` tool: it may have acted before, or
    after, it was abandoned. Such a tool is not tried again after a timeout unless it is
    `idempotent` (the same idempotency key makes a repeat safe)."""

    kind = "tool_timeout"

    def __init__(self, message: str, step: str | None = None, attempts: int = 1, unknown_outcome: bool = False):
        super().__init__(message, step, attempts)
        self.unknown_outcome = unknown_outcome


class FabricatedReceipt(RunError):
    """An agent's output names a receipt that the run's ledger does not hold."""

    kind = "fabricated_receipt"


class GateHalted(RunError):
    """A gate check failed with `halt`, or its retries ran out."""

    kind = "gate"


class Abstained(RunError):
    """An agent abstained (a gate's `abstain`, or `fallback` past the last model)."""

    kind = "abstained"


class LabelRefused(RunError):
    """The label monitor stopped a send of labelled data to a sink not cleared for it (before
    anything was sent). The compiler accepted the program, so this is a bug in its analysis."""

    kind = "label"

    def __init__(self, message: str, step: str | None = None, labels: list[str] | None = None, sink: str = ""):
        super().__init__(message, step)
        self.labels = labels or []
        self.sink = sink


class ApprovalDenied(RunError):
    kind = "denied"


class InputInvalid(RunError):
    """The run's input does not fit the flow's parameters."""

    kind = "input"


class ApprovalNeeded(Exception):
    """A call waits for a person (not an error: the run pauses). ``waiting`` says what for:
    ``{step, kind, tool, arguments, ...}``, ``kind`` one of ``call`` (an `approval: human` tool),
    ``again`` (a call that may already have acted before a crash) or ``answer`` (a gate's
    `ask_human`)."""

    def __init__(self, waiting: dict):
        super().__init__(f"`{waiting.get('tool')}` needs a person's decision at {waiting.get('step')}")
        self.waiting = waiting
        self.step = waiting.get("step")
        self.tool = waiting.get("tool")
        self.arguments = waiting.get("arguments")
