"""Where a run's steps are recorded: the state store when durable, nowhere when not.

A step is a function whose JSON result is recorded under the step's name; a run that resumes
after a crash gets recorded results back instead of calling again, so no effect happens twice.
Steps are keyed by name (``run_id``, step name), never by the order they started, so `par`
branches, loop bodies, nested flows and recursion replay correctly in any interleaving. The
interpreter calls :meth:`Journal.step` for every model call and tool call,
:meth:`Journal.interrupted` before a call that must not silently repeat, and
:meth:`Journal.wait_for_approval` where a person must decide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol

import anyio

from vox.runtime.fleet.store import StoreDamaged

if TYPE_CHECKING:
    from vox.runtime.state import StateStore

APPROVAL_WAIT_S = 7 * 24 * 3600  # a paused run waits this long for `voxc approve`
Finish = Callable[[Any, Any], Any]  # (tx, value) -> value: work committed with the step's record
Check = Callable[[Any], Any]  # (tx) -> signed already?, or raises: can the step's record be written?


class EffectUnrecorded(StoreDamaged):
    """A call acted, and then its record (the journal's step, its receipt) could not be written.

    The run stops there and is not marked failed: its ``began`` marker is in the journal, so a
    resumed run (once the store is repaired) asks a person whether the call happened, or, for an
    `idempotent` tool, calls it again with the same idempotency key. ``str()`` says all of this."""

    def __init__(self, tool: str, step: str, key: str, result: Any, cause: BaseException, run_id: str,
                 idempotent: bool, show_result: bool = True):
        where = cause.where if isinstance(cause, StoreDamaged) else "the run's store"
        problem = cause.problem if isinstance(cause, StoreDamaged) else f"failed ({type(cause).__name__}: {cause})"
        fix = cause.fix if isinstance(cause, StoreDamaged) else "fix the store"
        shown = f" It returned {_shown(result)}." if show_result else ""  # never a sealed value
        then = (f"then resume it with `voxc run --resume {run_id}`: `{tool}` is idempotent, so it is called again "
                f"with the same idempotency key, which its service must recognise" if idempotent else
                f"then resume it with `voxc run --resume {run_id}`: it asks whether this call already happened; "
                f"say so with `voxc approve {run_id} --already-done --result JSON` (its result), or call it again "
                f"with `voxc approve {run_id}`")
        super().__init__(where, problem, fix, cause.damaged if isinstance(cause, StoreDamaged) else False)
        self.args = (f"the call of `{tool}` at {step} acted (idempotency key {key}), but it could not be recorded, "
                     f"nor its receipt signed: {where} {problem}. The run stopped there, before anything else "
                     f"happened.{shown} First {fix}; {then}.",)
        self.tool, self.step, self.key, self.result = tool, step, key, result


def _shown(value: Any) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 400 else text[:400] + "..."


class Journal(Protocol):
    async def step(self, name: str, fn: Callable[[], Awaitable[Any]], finish: Finish | None = None) -> Any: ...

    async def before_effect(self, name: str, check: Check | None = None) -> bool: ...

    async def interrupted(self, name: str) -> bool: ...

    async def wait_for_approval(self, step: str, waiting: dict) -> tuple[str, Any] | None: ...

    def strands_changed(self, delta: int) -> None: ...


class NoJournal:
    """Runs steps directly and records nothing: for `--no-durable` runs, tests and benchmarks.

    A call that needs approval cannot wait (nothing would resume it), so it stops the run."""

    def __init__(self, receipts_tx: Callable[[Callable[[Any], Any]], Any] | None = None):
        self.receipts_tx = receipts_tx  # runs ``finish`` in a transaction of the receipt store

    async def step(self, name: str, fn: Callable[[], Awaitable[Any]], finish: Finish | None = None) -> Any:
        value = await fn()
        if finish is not None and self.receipts_tx is not None:
            value = self.receipts_tx(lambda tx: finish(tx, value))
        return value

    async def before_effect(self, name: str, check: Check | None = None) -> bool:
        """Nothing is recorded; the receipt store is checked before the call acts, all the same."""
        receipts_tx = getattr(self, "receipts_tx", None)
        if check is not None and receipts_tx is not None:
            receipts_tx(check)
        return False

    async def interrupted(self, name: str) -> bool:
        return False

    async def wait_for_approval(self, step: str, waiting: dict) -> tuple[str, Any] | None:
        return None

    def strands_changed(self, delta: int) -> None:
        pass


class StoreJournal:
    """Steps of one run recorded in the state store, by name.

    ``on_wait(run_id, waiting)`` is told when the run starts waiting for a person (the process
    that started the run reports it and may exit; the run carries on when a decision arrives,
    in this process or, after `voxc approve`, in another)."""

    POLL_S = 0.25  # how often a waiting run looks for a person's decision

    def __init__(self, state: "StateStore", run_id: str, on_wait: Callable[[str, dict], None] | None = None,
                 epoch: int | None = None):
        self.state = state
        self.run_id = run_id
        self.on_wait = on_wait
        self.epoch = epoch  # this execution's fencing token (see StateStore.claim)
        # Strands: the branches of the run that can make progress (the flow's body, and each
        # branch of a `par`, whose parent is suspended until they end). The run is at rest when
        # every strand waits for a person: only then is the pause reported, so that the process
        # that reported it may exit with no call in flight.
        self.strands = 1
        self.waits: list[dict] = []  # open waits of this execution, oldest first
        self.reported = False

    async def step(self, name: str, fn: Callable[[], Awaitable[Any]], finish: Finish | None = None) -> Any:
        done, value = self.state.recorded(self.run_id, name)
        if done:
            return value
        self.state.check_epoch(self.run_id, self.epoch)  # a superseded execution calls nothing more
        return self.state.record(self.run_id, name, await fn(), finish, self.epoch)

    def strands_changed(self, delta: int) -> None:
        """A `par` began (``+branches - 1``: its parent waits for them), or one of its branches
        ended while others go on (``-1``; the last one hands its strand back to the parent)."""
        self.strands += delta
        self._report()

    def _report(self) -> None:
        if self.waits and not self.reported and self.on_wait is not None and len(self.waits) >= self.strands:
            self.reported = True
            self.on_wait(self.run_id, self.waits[0])

    async def before_effect(self, name: str, check: Check | None = None) -> bool:
        """Mark step ``name`` as begun, durably, before it acts, in one transaction with
        ``check(tx)`` (which raises if the step's receipt could not be written): a store that
        cannot take the record stops the run before the effect, never after it. True if an
        earlier execution had begun it and stopped before it was recorded (a crash in the middle
        of it, or a record that failed), or if its receipt is signed though the journal does not
        have it (a journal salvaged from a damaged file): it may already have acted."""
        done, _ = self.state.recorded(self.run_id, name)
        if done:
            return False
        return self.state.begin(self.run_id, name + "#began", self.epoch, check)

    async def interrupted(self, name: str) -> bool:
        """:meth:`before_effect` with nothing to check."""
        return await self.before_effect(name)

    async def wait_for_approval(self, step: str, waiting: dict) -> tuple[str, Any] | None:
        """A person's decision for ``step``: recorded already, or waited for (durably)."""
        found = self.state.decision(self.run_id, step)
        if found is not None:
            self.state.close_wait(self.run_id, step)  # answered while no execution was there
            return found
        wait = {**_jsonable(waiting), "step": step}
        self.state.open_wait(self.run_id, wait)
        self.waits.append(wait)
        self._report()
        try:
            with anyio.move_on_after(APPROVAL_WAIT_S):
                while found is None:
                    await anyio.sleep(self.POLL_S)
                    found = self.state.decision(self.run_id, step)
        finally:
            self.waits.remove(wait)
        if found is not None:
            self.state.close_wait(self.run_id, step)
        return found


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
