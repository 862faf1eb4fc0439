"""Client CPU per model call for the HTTP transports the provider layer could ship.

    python bench/transport.py [--calls 400] [--concurrency 1,64] [--only NAME,...]

Starts a local aiohttp server in a *separate process* (so its CPU is not counted) that answers
every POST with a fixed small chat-completion JSON, then, for each client and concurrency,
makes three rounds of up to ``--calls`` POSTs (after a warm-up that opens the connections; slow
clients get fewer calls so a round stays under a second) and reports the median round's client
CPU time (``getrusage(RUSAGE_SELF)`` user + sys) divided by its number of calls, plus wall time
per call. Candidates:

  - ``aiohttp``        raw ``aiohttp.ClientSession`` (the floor: what the socket work costs)
  - ``httpx``          ``httpx.AsyncClient()`` with its default pool (httpcore)
  - ``httpx+keepalive`` the same with ``max_keepalive_connections`` raised to the concurrency
                        (shows how much of httpx's cost is connection churn)
  - ``httpx+aiohttp``  ``httpx.AsyncClient(transport=httpx_aiohttp.AiohttpTransport())``:
                        the httpx API the providers are written against, aiohttp underneath
  - ``vox``            ``vox.runtime.providers.make_http_client()`` (what is shipped)
  - ``httpx2``         ``httpx2.AsyncClient()`` (bench-only dependency)

Each call parses the JSON body, as a provider would. The whole run takes well under 20 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any, Awaitable, Callable

BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
    }
).encode()

REQUEST = {
    "model": "bench-model",
    "messages": [{"role": "user", "content": "Say ok."}],
    "max_tokens": 8,
}


# ---------------------------------------------------------------------------------------- server


def serve() -> None:
    """Run the fixed-answer server; print the port on stdout; exit when stdin closes."""
    from aiohttp import web

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=BODY, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", chat)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(port, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # parent closed the pipe: stop
        await runner.cleanup()

    asyncio.run(main())


# ---------------------------------------------------------------------------------------- clients

Call = Callable[[], Awaitable[Any]]


async def _aiohttp(url: str, conc: int):
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
    payload = json.dumps(REQUEST).encode()

    async def call() -> Any:
        async with session.post(url, data=payload, headers={"content-type": "application/json"}) as r:
            return json.loads(await r.read())

    return call, session.close


def _httpx_like(client: Any, url: str):
    async def call() -> Any:
        r = await client.post(url, json=REQUEST)
        return json.loads(r.content)

    return call, client.aclose


async def _httpx(url: str, conc: int):
    import httpx

    return _httpx_like(httpx.AsyncClient(), url)


async def _httpx_keepalive(url: str, conc: int):
    import httpx

    limits = httpx.Limits(max_connections=100, max_keepalive_connections=max(conc, 20))
    return _httpx_like(httpx.AsyncClient(limits=limits), url)


async def _httpx_aiohttp(url: str, conc: int):
    import httpx
    from httpx_aiohttp import AiohttpTransport

    return _httpx_like(httpx.AsyncClient(transport=AiohttpTransport()), url)


async def _vox(url: str, conc: int):
    from vox.runtime.providers import make_http_client

    return _httpx_like(make_http_client(), url)


async def _httpx2(url: str, conc: int):
    import httpx2

    return _httpx_like(httpx2.AsyncClient(), url)


CLIENTS: dict[str, Callable[[str, int], Awaitable[tuple[Call, Callable[[], Awaitable[None]]]]]] = {
    "aiohttp": _aiohttp,
    "httpx": _httpx,
    "httpx+keepalive": _httpx_keepalive,
    "httpx+aiohttp": _httpx_aiohttp,
    "vox": _vox,
    "httpx2": _httpx2,
}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _run(call: Call, calls: int, conc: int) -> None:
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    await asyncio.gather(*(worker() for _ in range(conc)))


async def measure(name: str, url: str, calls: int, conc: int, rounds: int = 3, budget_s: float = 0.4) -> tuple[float, float]:
    """(client CPU ms per call, wall ms per call): the median of ``rounds`` rounds of up to
    ``calls`` calls at ``conc`` in flight, fewer for slow clients so a round fits ``budget_s``."""
    call, close = await CLIENTS[name](url, conc)
    samples: list[tuple[float, float]] = []
    try:
        warm = max(conc * 2, 50)  # warm up: open the connections, fill caches
        cpu0, t0 = _cpu(), time.perf_counter()
        await _run(call, warm, conc)
        per_call = max((_cpu() - cpu0) / warm, (time.perf_counter() - t0) / warm, 1e-6)
        n = max(100, min(calls, int(budget_s / per_call)))
        for _ in range(rounds):
            cpu0, t0 = _cpu(), time.perf_counter()
            await _run(call, n, conc)
            cpu1, t1 = _cpu(), time.perf_counter()
            samples.append(((cpu1 - cpu0) * 1000 / n, (t1 - t0) * 1000 / n))
    finally:
        await close()
    samples.sort()
    return samples[len(samples) // 2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=1000, help="calls per round (at most)")
    ap.add_argument("--concurrency", default="1,64")
    ap.add_argument("--only", default="", help="comma-separated client names")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = ap.parse_args(argv)
    if args.serve:
        serve()
        return 0

    names = [n for n in (args.only.split(",") if args.only else CLIENTS) if n]
    concs = [int(c) for c in args.concurrency.split(",")]
    server = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        results: dict[str, dict[int, tuple[float, float]]] = {}

        async def all_runs() -> None:
            for name in names:
                for conc in concs:
                    try:
                        results.setdefault(name, {})[conc] = await measure(name, url, args.calls, conc)
                    except ImportError as e:  # e.g. httpx2 without the `bench` extra
                        print(f"skipping {name}: {e}", file=sys.stderr)
                        break

        asyncio.run(all_runs())
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)

    floor = results.get("aiohttp", {})
    header = f"{'client':<16}" + "".join(
        f"{f'cpu ms/call c={c}':>18}{f'wall ms c={c}':>14}{'x floor':>9}" for c in concs
    )
    print("median of 3 rounds per cell; server in a separate process; CPU = client user+sys")
    print(header)
    for name, row in results.items():
        line = f"{name:<16}"
        for c in concs:
            cpu, wall = row.get(c, (float("nan"), float("nan")))
            ratio = cpu / floor[c][0] if c in floor and floor[c][0] else float("nan")
            line += f"{cpu:>18.3f}{wall:>14.3f}{ratio:>9.1f}"
        print(line)
    if args.json:
        print(json.dumps({n: {str(c): {"cpu_ms": v[0], "wall_ms": v[1]} for c, v in r.items()} for n, r in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
