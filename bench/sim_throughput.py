"""How fast the simulator answers, and what it costs in CPU, measured from outside its process.

Starts ``python -m vox.runtime.sim`` as a child process, drives it with aiohttp at a fixed
concurrency for a fixed time with a mix of requests (OpenAI plain / structured / streamed with
logprobs, Anthropic plain / streamed tool output), then reports requests per second and the
simulator's CPU per request, read from ``/proc/<pid>/stat`` before and after (so the load
generator's own CPU is not counted). The load generator's CPU is reported too: when it is near
100% of a core, the client, not the simulator, is the limit.

    python bench/sim_throughput.py [--seconds 10] [--concurrency 64] [--mix all|openai|anthropic|stream]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import signal
import sys
import time

import aiohttp

from vox.runtime.sim import start_process

SCHEMA = {
    "type": "object",
    "properties": {
        "intent": {"type": "string", "enum": ["refund", "question", "other"]},
        "order_id": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "amount": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,6})?$"},
        "summary": {"type": "string"},
    },
    "required": ["intent", "order_id", "amount", "summary"],
    "additionalProperties": False,
}
SYSTEM = "You are a support agent for an online shop. Be brief and precise. " * 20
ANTHROPIC_HEADERS = {"x-api-key": "sim", "anthropic-version": "2023-06-01"}


def requests_for(mix: str) -> list[tuple[str, dict, dict]]:
    """(path, headers, body) of the request kinds in ``mix``."""
    user = {"role": "user", "content": "Refund order 42 please, it arrived broken."}
    openai_plain = ("/v1/chat/completions", {"authorization": "Bearer sim"},
                    {"model": "m", "messages": [{"role": "system", "content": SYSTEM}, user]})
    openai_structured = ("/v1/chat/completions", {"authorization": "Bearer sim"},
                         {"model": "m", "messages": [{"role": "system", "content": SYSTEM}, user],
                          "response_format": {"type": "json_schema",
                                              "json_schema": {"name": "t", "schema": SCHEMA, "strict": True}}})
    openai_stream = ("/v1/chat/completions", {"authorization": "Bearer sim"},
                     {"model": "m", "messages": [{"role": "system", "content": SYSTEM}, user], "stream": True,
                      "stream_options": {"include_usage": True}, "logprobs": True, "top_logprobs": 3})
    anthropic_plain = ("/v1/messages", ANTHROPIC_HEADERS,
                       {"model": "c", "max_tokens": 200, "system": SYSTEM, "messages": [user]})
    anthropic_stream = ("/v1/messages", ANTHROPIC_HEADERS,
                        {"model": "c", "max_tokens": 400, "system": SYSTEM, "messages": [user], "stream": True,
                         "tools": [{"name": "vox_output", "input_schema": SCHEMA}]})
    return {
        "all": [openai_plain, openai_structured, openai_stream, anthropic_plain, anthropic_stream],
        "openai": [openai_plain, openai_structured],
        "anthropic": [anthropic_plain],
        "stream": [openai_stream, anthropic_stream],
    }[mix]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(url: str, seconds: float, concurrency: int, mix: str) -> tuple[int, int, list[float]]:
    kinds = requests_for(mix)
    bodies = [(path, headers, json.dumps(body).encode()) for path, headers, body in kinds]
    deadline = time.perf_counter() + seconds
    done = errors = 0
    latencies: list[float] = []
    counter = itertools.count()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector) as session:

        async def worker(w: int) -> None:
            nonlocal done, errors
            while time.perf_counter() < deadline:
                path, headers, body = bodies[next(counter) % len(bodies)]
                headers = {**headers, "content-type": "application/json", "x-vox-run": "bench",
                           "x-vox-agent": f"a{w % 8}"}
                start = time.perf_counter()
                async with session.post(path, data=body, headers=headers) as response:
                    await response.read()
                    if response.status == 200:
                        done += 1
                    else:
                        errors += 1
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done, errors, latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--mix", choices=("all", "openai", "anthropic", "stream"), default="all")
    args = parser.parse_args(argv)

    url, process = start_process(seed=1)
    try:
        asyncio.run(drive(url, 1.0, args.concurrency, args.mix))  # warm up (tokenizer, caches)
        sim_before, client_before = cpu_seconds(process.pid), resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter()
        done, errors, latencies = asyncio.run(drive(url, args.seconds, args.concurrency, args.mix))
        wall = time.perf_counter() - wall
        sim_cpu = cpu_seconds(process.pid) - sim_before
        client_after = resource.getrusage(resource.RUSAGE_SELF)
        client_cpu = (client_after.ru_utime - client_before.ru_utime) + (client_after.ru_stime - client_before.ru_stime)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()
    latencies.sort()
    total = done + errors
    print(f"mix={args.mix} concurrency={args.concurrency} seconds={wall:.1f} cpus={os.cpu_count()}")
    print(f"requests: {done} ok, {errors} errors, {total / wall:.0f} req/s")
    print(f"latency: p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms")
    print(f"simulator CPU: {sim_cpu:.2f} s = {sim_cpu / max(total, 1) * 1e6:.0f} us/request, "
          f"{sim_cpu / wall * 100:.0f}% of one core")
    print(f"load generator CPU: {client_cpu:.2f} s = {client_cpu / wall * 100:.0f}% of one core")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
