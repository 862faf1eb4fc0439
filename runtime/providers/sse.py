"""Server-sent events, parsed from an httpx response's lines (both providers stream SSE).

Follows the WHATWG event-stream rules the providers rely on: ``event:`` and ``data:`` fields,
multi-line data joined by ``\\n``, ``:`` comments ignored, an event dispatched at a blank line.
A final event without its blank line is incomplete and is *not* dispatched: the stream was cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator


@dataclass(frozen=True, slots=True)
class ServerEvent:
    event: str  # "message" when the stream does not name it (OpenAI)
    data: str


async def iter_events(lines: AsyncIterator[str]) -> AsyncIterator[ServerEvent]:
    """The events of an SSE body given as lines (without their line endings)."""
    event = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data or event:
                yield ServerEvent(event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        # id / retry fields: no provider uses them for chat completions


def parse_lines(text: str) -> list[ServerEvent]:
    """Events of a whole SSE body (for tests and the simulator's self-checks).

    >>> parse_lines('event: ping\\ndata: {}\\n\\n: comment\\ndata: a\\ndata: b\\n\\ndata: cut')
    [ServerEvent(event='ping', data='{}'), ServerEvent(event='message', data='a\\nb')]
    """
    import asyncio

    async def lines() -> AsyncIterator[str]:
        for line in text.splitlines():
            yield line

    async def collect() -> list[ServerEvent]:
        return [e async for e in iter_events(lines())]

    return asyncio.run(collect())
