"""Where a run's steps are recorded: DBOS when durable, nowhere when not.

A step is a function whose JSON result is recorded under the step's name; a run that resumes
after a crash gets recorded results back instead of calling again, so no effect happens twice.
The interpreter calls :meth:`Journal.step` for every model call and tool call, and
:meth:`Journal.wait_for_approval` where a person must decide.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Protocol

APPROVAL_WAIT_S = 7 * 24 * 3600  # a paused run waits this long for `voxc approve`


class Journal(Protocol):
    async def step(self, name: str, fn: Callable[[], Awaitable[Any]]) -> Any: ...

    async def interrupted(self, name: str) -> bool: ...

    async def wait_for_approval(self, step: str, tool: str, args: dict) -> bool | None: ...


class NoJournal:
    """Runs steps directly and records nothing: for `--no-durable` runs, tests and benchmarks.

    A call that needs approval cannot wait (nothing would resume it), so it stops the run."""

    async def step(self, name: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        return await fn()

    async def interrupted(self, name: str) -> bool:
        return False

    async def wait_for_approval(self, step: str, tool: str, args: dict) -> bool | None:
        return None


class DBOSJournal:
    """Each step is a DBOS step of the run's workflow, named by the step's name."""

    async def step(self, name: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        from dbos import DBOS

        async def step() -> Any:  # DBOS awaits only coroutine functions
            return await fn()

        return await DBOS.run_step_async({"name": name}, step)

    async def interrupted(self, name: str) -> bool:
        """Whether an earlier execution of this run began step ``name`` and stopped before it was
        recorded (a crash in the middle of it). Marks the step as begun otherwise."""
        from dbos import DBOS

        began_now: list[bool] = []

        async def begin() -> bool:
            began_now.append(True)
            return True

        await DBOS.run_step_async({"name": name + "#begin"}, begin)
        if began_now:
            return False
        steps = await DBOS.list_workflow_steps_async(DBOS.workflow_id)
        return not any(s["function_name"] == name for s in steps)

    async def wait_for_approval(self, step: str, tool: str, args: dict) -> bool | None:
        """Publish what the run waits for, then wait (durably) for `voxc approve` to answer."""
        from dbos import DBOS

        await DBOS.set_event_async("waiting", {"step": step, "tool": tool, "arguments": _jsonable(args)})
        answer = await DBOS.recv_async(topic=approval_topic(step), timeout_seconds=APPROVAL_WAIT_S)
        await DBOS.set_event_async("waiting", None)
        if answer is None:
            return None
        return bool(answer.get("approved"))


def approval_topic(step: str) -> str:
    return f"approve:{step}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
