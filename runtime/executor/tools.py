"""Running a tool's binding: a Python function, or an HTTP request.

Arguments and results are JSON values, as a model would write them (money as a dollar string
like ``"19.99"``): a Python binding is called with them by name, an HTTP binding puts the URL's
placeholders (URL-encoded) in the path and sends the other arguments as the query (GET, DELETE)
or as a JSON body (POST, PUT, PATCH). Each attempt has the tool's `timeout`; a failed attempt is
tried again up to `retries` times.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio

from vox.compiler.plan.model import Tool
from vox.runtime.executor.errors import ToolFailed

@dataclass(frozen=True)
class CallContext:
    """Who is calling a tool: what `vox.stdlib.coordination` bindings need to scope events and leases."""

    run_id: str
    step: str
    tenant: str
    store_url: str  # the fleet's database, or the local .vox/fleet.sqlite


CURRENT_CALL: ContextVar[CallContext | None] = ContextVar("vox_current_call", default=None)

DEFAULT_TIMEOUT_S = 30.0
RETRY_DELAY_S = 0.2


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
        timeout = (tool.timeout_ms or DEFAULT_TIMEOUT_S * 1000) / 1000
        attempts = 1 + tool.retries
        problem = ""
        for attempt in range(1, attempts + 1):
            try:
                with anyio.fail_after(timeout):
                    return await self._once(tool, args, key), attempt
            except TimeoutError:
                problem = f"timed out after {timeout:g}s"
            except ToolFailed as e:
                problem = e.message
                if not e.attempts:  # not worth retrying (a binding that cannot load)
                    break
            except Exception as e:  # noqa: BLE001 - a tool's own failure, reported to the run
                problem = f"{type(e).__name__}: {e}"
            if attempt < attempts:
                await anyio.sleep(RETRY_DELAY_S * attempt)
        raise ToolFailed(f"`{tool.name}` failed: {problem}", attempts=attempts)

    async def _once(self, tool: Tool, args: dict[str, Any], key: str | None) -> Any:
        if tool.binding.kind == "python":
            fn = self.function(tool)
            if key is not None and self._takes_key(fn):
                args = {**args, "idempotency_key": key}
            if inspect.iscoroutinefunction(fn):
                return await fn(**args)
            return await anyio.to_thread.run_sync(lambda: fn(**args))
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
            module_name, _, attr = target.partition(":")
            added = self.base_dir is not None and self.base_dir not in sys.path
            if added:
                sys.path.insert(0, self.base_dir)
            try:
                obj = importlib.import_module(module_name)
                for part in attr.split("."):
                    obj = getattr(obj, part)
            except Exception as e:  # noqa: BLE001 - user code; pre-flight reports this earlier
                raise ToolFailed(f"cannot load {target}: {type(e).__name__}: {e}", attempts=0) from None
            finally:
                if added:
                    sys.path.remove(self.base_dir)
            self._functions[target] = obj
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
