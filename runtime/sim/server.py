"""The simulator's HTTP server (aiohttp): routes, fault injection, and ways to run it.

Routes:

* ``POST /v1/chat/completions`` — OpenAI (:mod:`.openai_wire`);
* ``POST /v1/messages``, ``POST /v1/messages/count_tokens`` — Anthropic (:mod:`.anthropic_wire`);
* ``GET /v1/models`` — one model, ``sim``, in OpenAI's list shape;
* control (JSON): ``POST|GET|DELETE /_sim/runs/{run}``, ``POST|GET|DELETE /_sim/faults``,
  ``GET /_sim/stats``, ``GET /_sim/health``.

Three ways to run it: ``async with running_simulator(seed=...) as url`` in the caller's event
loop; :func:`run_forever` (what ``voxc sim`` does); and :func:`start_process` in a child process,
so a benchmark can measure the simulator's own CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any, TextIO

from aiohttp import web

from vox.runtime.sim import anthropic_wire, openai_wire
from vox.runtime.sim.engine import SimState, ident
from vox.runtime.sim.faults import Fault, FaultSet, FaultSpecError
from vox.runtime.sim.scripts import ScriptError, parse_scripts

_JSON = "application/json"


def _dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _json(data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=_dumps(data), status=status, content_type=_JSON, headers=headers)


class SimServer:
    """The simulator: ``url = await SimServer(seed=1).start()`` ... ``await server.stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, seed: int = 0) -> None:
        self.host, self.port, self.seed = host, port, seed
        self.state = SimState(seed)
        self.faults = FaultSet()
        self.url: str | None = None
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._bug_as_error])
        app.add_routes([
            web.post("/v1/chat/completions", self.openai_chat),
            web.post("/v1/messages", self.anthropic_messages),
            web.post("/v1/messages/count_tokens", self.anthropic_count_tokens),
            web.get("/v1/models", self.models),
            web.post("/_sim/runs/{run}", self.install_run),
            web.get("/_sim/runs/{run}", self.describe_run),
            web.delete("/_sim/runs/{run}", self.drop_run),
            web.post("/_sim/faults", self.install_faults),
            web.get("/_sim/faults", self.list_faults),
            web.delete("/_sim/faults", self.clear_faults),
            web.get("/_sim/stats", self.stats),
            web.get("/_sim/health", self.health),
        ])
        return app

    async def start(self) -> str:
        """Start listening; return the base URL (``http://host:port``)."""
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024, reuse_address=True)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://{self.host}:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop listening; requests held by a timeout fault are dropped."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _bug_as_error(self, request: web.Request, handler) -> web.StreamResponse:
        """A bug in the simulator answers a 500 in the wire's error shape, saying it is the simulator's."""
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:  # noqa: BLE001 - reported to the client, which is where someone looks
            protocol = "anthropic" if request.path.startswith("/v1/messages") else "openai"
            return self._error(protocol, 500, f"simulator bug: {type(exc).__name__}: {exc}")

    # --- the model endpoints ----------------------------------------------------------------

    async def openai_chat(self, request: web.Request) -> web.StreamResponse:
        self._count("openai")
        try:
            body = await _read_json(request)
            exchange, options = openai_wire.parse(body, request.headers)
        except _BadJson as exc:
            return self._error("openai", 400, f"We could not parse the JSON body of your request. ({exc})")
        except openai_wire.WireError as exc:
            return self._error("openai", exc.status, exc.message, param=exc.param, code=exc.code)
        fault, token_ms = await self._faults_before(request, exchange)
        if isinstance(fault, web.StreamResponse):
            return fault
        answers, cache = self.state.answer(exchange, commit=fault is None)
        headers = {"x-request-id": ident("req_sim_", answers[0].key), "openai-processing-ms": "1"}
        if options["stream"]:
            events, completion = openai_wire.render_stream(answers, cache, options)
            return await self._stream(request, events, headers, fault, token_ms, cache.total, cache.read, completion)
        data, completion = openai_wire.render(answers, cache, options)
        return await self._body(request, data, headers, fault, cache.total, cache.read, completion)

    async def anthropic_messages(self, request: web.Request) -> web.StreamResponse:
        self._count("anthropic")
        try:
            body = await _read_json(request)
            exchange, options = anthropic_wire.parse(body, request.headers)
        except _BadJson as exc:
            return self._error("anthropic", 400, f"There was an error parsing the body: {exc}")
        except anthropic_wire.WireError as exc:
            return self._error("anthropic", exc.status, exc.message)
        fault, token_ms = await self._faults_before(request, exchange)
        if isinstance(fault, web.StreamResponse):
            return fault
        answers, cache = self.state.answer(exchange, commit=fault is None)
        headers = {"request-id": ident("req_sim_", answers[0].key)}
        if options["stream"]:
            events, completion = anthropic_wire.render_stream(answers[0], cache, options)
            return await self._stream(request, events, headers, fault, token_ms, cache.total, cache.read, completion)
        data, completion = anthropic_wire.render(answers[0], cache, options)
        return await self._body(request, data, headers, fault, cache.total, cache.read, completion)

    async def anthropic_count_tokens(self, request: web.Request) -> web.Response:
        self._count("anthropic_count_tokens")
        try:
            return _json(anthropic_wire.count_tokens(await _read_json(request), request.headers))
        except _BadJson as exc:
            return self._error("anthropic", 400, f"There was an error parsing the body: {exc}")
        except anthropic_wire.WireError as exc:
            return self._error("anthropic", exc.status, exc.message)

    async def models(self, request: web.Request) -> web.Response:
        return _json({"object": "list", "data": [{"id": "sim", "object": "model", "created": 0, "owned_by": "vox"}]})

    def _count(self, endpoint: str) -> None:
        requests = self.state.stats["requests"]
        requests[endpoint] = requests.get(endpoint, 0) + 1

    def _error(self, protocol: str, status: int, message: str | None = None, param: str | None = None,
               code: str | None = None, retry_after: float | None = None) -> web.Response:
        errors = self.state.stats["errors"]
        errors[f"{protocol}:{status}"] = errors.get(f"{protocol}:{status}", 0) + 1
        if protocol == "openai":
            data = openai_wire.error_body(status, message, param, code)
        else:
            data = anthropic_wire.error_body(status, message)
        headers = {}
        if retry_after is not None:
            headers["retry-after"] = _seconds(retry_after)
            headers["retry-after-ms"] = str(int(retry_after * 1000))
        headers["x-should-retry"] = "true" if status in (408, 409, 429) or status >= 500 else "false"
        return _json(data, status=status, headers=headers)

    # --- faults ------------------------------------------------------------------------------

    async def _faults_before(self, request: web.Request, ex) -> tuple[Any, int]:
        """Apply latency, then a status or timeout fault (returned as the response to send);
        a malformed or truncate fault is returned to spoil the real response."""
        fault, latency_ms, token_ms = self.faults.take(ex.protocol, ex.run, ex.agent, ex.step)
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        if fault is None:
            return None, token_ms
        if fault.kind == "status":
            retry = fault.retry_after
            if retry is None and fault.status in (429, 503, 529):
                retry = 1.0
            return self._error(ex.protocol, fault.status, fault.message, retry_after=retry), 0
        if fault.kind == "timeout":
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), fault.delay_s)
            _drop(request)
            return web.Response(status=504), 0  # never reaches the client: the connection is closed
        return fault, token_ms

    async def _body(self, request, data: dict, headers: dict, fault: Fault | None,
                    prompt: int, cached: int, completion: int) -> web.StreamResponse:
        body = _dumps(data)
        if fault is None:
            self._served(prompt, cached, completion)
            return web.Response(body=body, content_type=_JSON, headers=headers)
        if fault.kind == "malformed":
            return web.Response(body=body[: len(body) // 2] + b"<!-- upstream error -->", content_type=_JSON,
                                headers=headers)
        # truncate: promise the whole body, send half, hang up
        response = web.StreamResponse(headers=headers)
        response.content_type = _JSON
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        _drop(request)
        return response

    async def _stream(self, request, events: list[bytes], headers: dict, fault: Fault | None, token_ms: int,
                      prompt: int, cached: int, completion: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={**headers, "cache-control": "no-cache"})
        response.content_type = "text/event-stream"
        response.charset = "utf-8"
        await response.prepare(request)
        if fault is not None and fault.kind == "truncate":
            events = events[: max(1, len(events) // 2)]
        elif fault is not None and fault.kind == "malformed":
            half = len(events) // 2
            broken = b'data: {"choices": [{"delta": {"content": "oops\n\n'
            if request.path.endswith("/messages"):
                broken = b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {\n\n'
            events = [*events[:half], broken, *events[half:]]
        if token_ms:
            for event in events:
                await response.write(event)
                await asyncio.sleep(token_ms / 1000)
        else:
            await response.write(b"".join(events))
        if fault is not None and fault.kind == "truncate":
            _drop(request)
            return response
        if fault is None:
            self._served(prompt, cached, completion)
        await response.write_eof()
        return response

    def _served(self, prompt: int, cached: int, completion: int) -> None:
        counts = self.state.stats["tokens"]
        counts["prompt"] += prompt
        counts["cached"] += cached
        counts["completion"] += completion

    # --- control -----------------------------------------------------------------------------

    async def install_run(self, request: web.Request) -> web.Response:
        run = request.match_info["run"]
        try:
            body = await _read_json(request)
            if not isinstance(body, dict):
                raise ScriptError("the body is {\"scripts\": {...}, \"seed\": N}")
            seed = body.get("seed")
            if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
                raise ScriptError("seed must be an integer")
            scripts = parse_scripts(body.get("scripts", {}))
        except (_BadJson, ScriptError) as exc:
            return _json({"error": str(exc)}, status=400)
        return _json({"run": run, **self.state.install(run, scripts, seed).describe()})

    async def describe_run(self, request: web.Request) -> web.Response:
        run = request.match_info["run"]
        state = self.state.runs.get(run)
        if state is None:
            return _json({"error": f"no run {run!r}"}, status=404)
        return _json({"run": run, **state.describe()})

    async def drop_run(self, request: web.Request) -> web.Response:
        dropped = self.state.runs.pop(request.match_info["run"], None) is not None
        return _json({"dropped": dropped})

    async def install_faults(self, request: web.Request) -> web.Response:
        try:
            body = await _read_json(request)
            specs = body.get("faults") if isinstance(body, dict) else None
            if not isinstance(specs, list):
                raise FaultSpecError("the body is {\"faults\": [...]}")
            installed = self.faults.install(specs)
        except (_BadJson, FaultSpecError) as exc:
            return _json({"error": str(exc)}, status=400)
        return _json({"installed": [f.describe() for f in installed]})

    async def list_faults(self, request: web.Request) -> web.Response:
        return _json({"faults": [f.describe() for f in self.faults.faults]})

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return _json({"cleared": True})

    async def stats(self, request: web.Request) -> web.Response:
        return _json({**self.state.stats, "faults_injected": dict(self.faults.injected),
                      "runs": len(self.state.runs)})

    async def health(self, request: web.Request) -> web.Response:
        return _json({"ok": True, "seed": self.seed})


class _BadJson(ValueError):
    pass


async def _read_json(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw) if raw else None
    except ValueError as exc:
        raise _BadJson(str(exc)) from None


def _drop(request: web.Request) -> None:
    """Hang up on the client without finishing the response."""
    transport = request.transport
    if transport is not None:
        transport.abort()


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@contextlib.asynccontextmanager
async def running_simulator(seed: int = 0, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Run a simulator in this event loop for the ``with`` block; yields its base URL."""
    server = SimServer(host=host, port=port, seed=seed)
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()


def run_forever(host: str = "127.0.0.1", port: int = 8765, seed: int = 0, out: TextIO | None = None) -> int:
    """Serve until SIGINT or SIGTERM (what ``voxc sim`` does); the first line printed is the URL."""
    out = out or sys.stdout

    async def serve() -> None:
        server = SimServer(host=host, port=port, seed=seed)
        url = await server.start()
        print(f"sim listening on {url}", file=out, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.stop()

    asyncio.run(serve())
    return 0


def start_process(seed: int = 0, host: str = "127.0.0.1", port: int = 0,
                  env: dict[str, str] | None = None) -> tuple[str, subprocess.Popen]:
    """Start a simulator in a child process; return its URL and the process.

    Stop it with ``process.send_signal(signal.SIGTERM); process.wait()``.
    """
    command = [sys.executable, "-m", "vox.runtime.sim", "--host", host, "--port", str(port), "--seed", str(seed)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env or os.environ.copy())
    line = process.stdout.readline() if process.stdout else ""
    if not line.startswith("sim listening on "):
        process.kill()
        process.wait()
        raise RuntimeError(f"the simulator did not start (it printed {line!r})")
    return line.split()[-1], process
