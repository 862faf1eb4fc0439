"""Running a tool's binding: a Python function, or an HTTP request.

Arguments and results are JSON values, as a model would write them (money as a dollar string
like ``"19.99"``): a Python binding is called with them by name, an HTTP binding puts the URL's
placeholders (URL-encoded) in the path and sends the other arguments as the query (GET, DELETE)
or as a JSON body (POST, PUT, PATCH). Each attempt has the tool's `timeout`; a failed attempt is
tried again up to `retries` times.

A timeout holds: the attempt fails when it is due, whatever the tool is doing, and whatever the
tool returns later is dropped (never used, never journaled, never signed). An `async def` tool
and an HTTP call are cancelled. A plain function runs in a thread of its own, which Python cannot
stop: it is abandoned, and finishes (or not) in the background. A thread, not a process, because
a tool shares the program's memory, its imported modules and their state (clients, caches,
`vox.stdlib` coordination), and starting one is cheap; a process would need its arguments and
result pickled and its imports redone. The thread is a daemon, so a tool stuck for good does not
hold up the exit of `voxc` either (the anyio worker threads would: the interpreter joins them).

A timed-out `write` or `external` tool may have acted, so its outcome is unknown
(:class:`ToolTimedOut` with ``unknown_outcome``): it is not tried again, whatever its `retries`,
unless it is `idempotent`, where a repeat with the same idempotency key is safe.
"""

from __future__ import annotations

import contextvars
import inspect
import threading
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio
import anyio.from_thread
import anyio.lowlevel

from vox.compiler.bindings import load_binding
from vox.compiler.plan.model import Tool
from vox.runtime.executor.errors import ToolFailed, ToolTimedOut

@dataclass(frozen=True)
class CallContext:
    """Who is calling a tool: what `vox.stdlib.coordination` bindings need to scope events and leases."""

    run_id: str
    step: str
    tenant: str
    store_url: str  # the fleet's database, or the local .vox/fleet.sqlite


CURRENT_CALL: ContextVar[CallContext | None] = ContextVar("vox_current_call", default=None)

DEFAULT_TIMEOUT_S = 30.0
# After failed attempt n the runtime waits n × this before the next. The compiler counts these
# waits in a tool call's wall bound (compiler/analysis/budgets.py, TOOL_RETRY_DELAY_MS; a test
# keeps the two equal).
RETRY_DELAY_MS = 200


class ToolRunner:
    def __init__(self, http_client=None, base_dir: str | None = None):
        self.http = http_client
        self.base_dir = base_dir
        self._functions: dict[str, Any] = {}
        self._keyed: dict[Any, bool] = {}

    async def call(self, tool: Tool, args: dict[str, Any], key: str | None = None) -> tuple[Any, int]:
        """The tool's JSON result and how many attempts it took; :class:`ToolFailed` if all failed.

        ``key`` is the call's idempotency key: the same on every attempt and after a resume. A
        Python binding receives it as ``idempotency_key`` if it has a parameter of that name; an
        HTTP binding sends it as the ``Idempotency-Key`` header."""
        if tool.binding is None:
            raise ToolFailed(f"`{tool.name}` has no `bind:`, so it cannot run (mock it in a test)")
        # the plan carries every tool's effective timeout; the default is for a plan that does not
        timeout = (tool.timeout_ms if tool.timeout_ms is not None else DEFAULT_TIMEOUT_S * 1000) / 1000
        attempts = 1 + tool.retries
        acts = tool.effect in ("write", "external")
        problem, tried, timed_out = "", 0, False
        for attempt in range(1, attempts + 1):
            tried, timed_out = attempt, False
            try:
                with anyio.move_on_after(timeout) as deadline:
                    value = await self._once(tool, args, key)
                if not deadline.cancel_called:
                    return value, attempt
                # past its timeout: whatever the attempt returns (now or later) is dropped
                timed_out, problem = True, f"timed out after {timeout:g}s"
                if acts and not tool.idempotent:
                    raise ToolTimedOut(
                        f"`{tool.name}` timed out after {timeout:g}s; it may have acted, so its outcome is "
                        "unknown and it was not tried again (it is not `idempotent`)",
                        attempts=attempt, unknown_outcome=True)
            except ToolTimedOut:
                raise
            except ToolFailed as e:
                problem = e.message
                if not e.attempts:  # not worth retrying (a binding that cannot load): nothing ran
                    tried = 0
                    break
            except Exception as e:  # noqa: BLE001 - a tool's own failure, reported to the run
                problem = f"{type(e).__name__}: {e}"
            if attempt < attempts:
                await anyio.sleep(RETRY_DELAY_MS * attempt / 1000)
        if timed_out:
            unknown = " (it may have acted: its outcome is unknown)" if acts else ""
            raise ToolTimedOut(f"`{tool.name}` failed: {problem}{unknown}", attempts=tried, unknown_outcome=acts)
        raise ToolFailed(f"`{tool.name}` failed: {problem}", attempts=tried)

    async def _once(self, tool: Tool, args: dict[str, Any], key: str | None) -> Any:
        if tool.binding.kind == "python":
            fn = self.function(tool)
            if key is not None and self._takes_key(fn):
                args = {**args, "idempotency_key": key}
            if inspect.iscoroutinefunction(fn):
                return await fn(**args)
            return await run_in_thread(fn, args, f"vox tool {tool.name}")
        return await self.http_call(tool, args, key)

    def _takes_key(self, fn) -> bool:
        """Whether ``fn`` has an ``idempotency_key`` parameter (looked up once per function)."""
        found = self._keyed.get(fn)
        if found is None:
            try:
                found = "idempotency_key" in inspect.signature(fn).parameters
            except (TypeError, ValueError):
                found = False
            self._keyed[fn] = found
        return found

    def function(self, tool: Tool):
        target = tool.binding.target
        if target not in self._functions:
            loaded = load_binding(target, self.base_dir)
            if loaded.function is None:  # pre-flight reports the same problem earlier (V6001, V6002)
                raise ToolFailed(f"cannot load {target}: {loaded.problem}", attempts=0)
            self._functions[target] = loaded.function
        return self._functions[target]

    async def http_call(self, tool: Tool, args: dict[str, Any], key: str | None = None) -> Any:
        if self.http is None:
            raise ToolFailed("no HTTP client is configured for HTTP tools", attempts=0)
        url_parts, used = [], set()
        for part in tool.binding.url.parts if tool.binding.url else ():
            if part.part == "text":
                url_parts.append(part.text)
            else:
                used.add(part.path[0])
                url_parts.append(quote(str(args.get(part.path[0], "")), safe=""))
        url = "".join(url_parts) or tool.binding.target
        rest = {k: v for k, v in args.items() if k not in used and v is not None}
        method = (tool.binding.method or "GET").upper()
        headers = {"Idempotency-Key": key} if key else None
        if method in ("GET", "DELETE"):
            response = await self.http.request(method, url, params={k: str(v) for k, v in rest.items()},
                                               headers=headers)
        else:
            response = await self.http.request(method, url, json=rest, headers=headers)
        if response.status_code >= 400:
            raise ToolFailed(f"HTTP {response.status_code} from {method} {url.split('?')[0]}")
        if "json" in response.headers.get("content-type", ""):
            return response.json()
        return response.text


async def run_in_thread(fn, kwargs: dict[str, Any], name: str) -> Any:
    """``fn(**kwargs)`` in a new daemon thread, awaited; a cancelled wait abandons the thread.

    The thread sees the caller's context variables (:data:`CURRENT_CALL`). Once the wait is
    cancelled (a timeout, a failing `par` sibling, a `wall` deadline), whatever ``fn`` returns or
    raises is dropped: nothing waits for it any more.
    """
    context = contextvars.copy_context()
    token = anyio.lowlevel.current_token()
    done = anyio.Event()
    outcome: list[tuple[bool, Any]] = []

    def work() -> None:
        try:
            outcome.append((True, context.run(fn, **kwargs)))
        except BaseException as e:  # noqa: BLE001 - handed to the waiting task to raise
            outcome.append((False, e))
        try:
            anyio.from_thread.run_sync(done.set, token=token)
        except Exception:  # noqa: BLE001 - the event loop is gone: nobody waits for this result
            pass

    threading.Thread(target=work, name=name, daemon=True).start()
    await done.wait()
    ok, value = outcome[0]
    if ok:
        return value
    raise value
