"""Events and leases for Vox programs: Python bindings that tools declare with `bind: python(...)`.

Agents of one run, and runs of one tenant, coordinate through them; in fleet mode the store is the
fleet's PostgreSQL database, so they cross workers. A tool's declaration says what it may do:

    tool publish(topic: str, message: str) -> int {
      effect: write
      bind: python("vox.stdlib.coordination:publish")
    }
    tool take_lease(name: str, seconds: int) -> int {
      effect: write
      bind: python("vox.stdlib.coordination:take_lease")
    }

Events published with ``scope: "run"`` (the default) are seen by the agents of the same run;
``"tenant"`` by every run of the tenant. A lease is held by the run that took it; its fencing token
(strictly increasing per name) goes along with the guarded write, and `check_lease` refuses a
stale one. Outside a run (no calling run) these raise.
"""

from __future__ import annotations

from vox.runtime.executor.tools import CURRENT_CALL, CallContext
from vox.runtime.fleet import EventBus, Lease, Leases


def _call() -> CallContext:
    call = CURRENT_CALL.get()
    if call is None:
        raise RuntimeError("vox.stdlib.coordination tools run only inside a Vox run")
    return call


def _scope(call: CallContext, scope: str) -> str:
    if scope == "run":
        return f"run:{call.run_id}"
    if scope == "tenant":
        return f"tenant:{call.tenant}"
    raise ValueError(f"scope is `run` or `tenant`, not {scope!r}")


def publish(topic: str, message: str, scope: str = "run") -> int:
    """Append ``message`` to ``topic``; return its sequence number (1, 2, ... per topic)."""
    call = _call()
    return EventBus(call.store_url).publish(_scope(call, scope), topic, message)


def read_events(topic: str, after: int = 0, scope: str = "run") -> list[str]:
    """The messages of ``topic`` numbered above ``after``, oldest first."""
    call = _call()
    return [e.payload for e in EventBus(call.store_url).read(_scope(call, scope), topic, after)]


def take_lease(name: str, seconds: int) -> int:
    """Take the tenant's lease ``name`` for ``seconds``: its fencing token, or 0 if another run holds it."""
    call = _call()
    lease = Leases(call.store_url).acquire(f"tenant:{call.tenant}:{name}", call.run_id, float(seconds))
    return lease.token if lease is not None else 0


def release_lease(name: str, token: int) -> bool:
    """Give the lease back (False if it had expired and been taken since)."""
    call = _call()
    leases = Leases(call.store_url)
    return leases.release(Lease(f"tenant:{call.tenant}:{name}", call.run_id, token, 0.0, 0.0))


def check_lease(name: str, token: int) -> bool:
    """Whether a write guarded by ``token`` may go ahead: it is still the live holder's token."""
    call = _call()
    return Leases(call.store_url).check(f"tenant:{call.tenant}:{name}", token)
