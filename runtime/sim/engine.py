"""What the simulated model answers, independent of wire format.

A wire module (:mod:`.openai_wire`, :mod:`.anthropic_wire`) turns a request into an
:class:`Exchange`; :meth:`SimState.answer` decides the :class:`Answer` of each choice — from the
run's script, else generated from a hash of (seed, run, agent, step, call index) — and the prompt
cache's verdict; the wire module renders them.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from vox.runtime.sim.generate import generate_value, sentence
from vox.runtime.sim.scripts import Turn, receipt_finder, substitute_receipts

CREATED = 1_735_689_600  # 2025-01-01: `created` is fixed so responses are byte-identical
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_MAX_CACHED_PREFIXES = 200_000  # per run; the oldest are forgotten beyond this


def digest(*parts: object) -> bytes:
    """A 16-byte hash of ``parts`` (their ``str``), the root of every deterministic choice."""
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).digest()


def ident(prefix: str, key: bytes, length: int = 21) -> str:
    """An id like ``call_3fZ...`` derived from ``key``.

    >>> ident("call_", digest("x"), 8) == ident("call_", digest("x"), 8)
    True
    """
    n = int.from_bytes(key, "big")
    chars = []
    for _ in range(length):
        n, r = divmod(n, 62)
        chars.append(_ALPHABET[r])
    return prefix + "".join(chars)


@dataclass(slots=True)
class Exchange:
    """A request, as the engine sees it."""

    protocol: str  # openai | anthropic
    run: str
    agent: str
    step: str
    tools: tuple[str, ...]  # names of the tools offered
    tool_results: list[tuple[str, str]]  # (tool name, content text), in conversation order
    output_schema: dict | None  # JSON Schema the answer must satisfy, if any
    json_mode: bool = False  # OpenAI json_object: any JSON object
    n: int = 1
    temperature: float | None = None
    # Prompt-cache units: (key, tokens) in prefix order; a prefix is identified by its keys.
    units: list[tuple[str, int]] = field(default_factory=list)
    breakpoints: tuple[int, ...] | None = None  # Anthropic: indices of units with cache_control


@dataclass(slots=True)
class Answer:
    kind: str  # text | structured | call
    text: str = ""  # text, or the JSON of a structured value
    value: Any = None  # structured value
    calls: tuple[tuple[str, str, Any], ...] = ()  # (id key, tool, args)
    confidence: float | None = None
    draw: float = 0.0  # in [0, 1): seeds the logprobs
    key: bytes = b""  # the answer's hash: ids derive from it


@dataclass(slots=True)
class CacheResult:
    total: int  # all prompt tokens
    read: int  # tokens read from the cache
    written: int  # tokens written to it (Anthropic breakpoints)


class PromptCache:
    """Prefixes of prompts seen before in a run.

    OpenAI style (no breakpoints): every prefix of units is remembered, and a request reads the
    longest one seen before. Anthropic style: prefixes are written only at ``cache_control``
    breakpoints; a request reads the longest written prefix and writes its last breakpoint's.
    """

    def __init__(self) -> None:
        self.seen: OrderedDict[bytes, None] = OrderedDict()

    def lookup(self, units: list[tuple[str, int]], breakpoints: tuple[int, ...] | None, commit: bool) -> CacheResult:
        h = hashlib.blake2b(digest_size=16)
        prefixes: list[tuple[bytes, int]] = []
        total = 0
        for key, tokens in units:
            h.update(key.encode())
            h.update(b"\x1e")
            total += tokens
            prefixes.append((h.copy().digest(), total))
        read = 0
        for prefix, tokens in prefixes:
            if prefix in self.seen:
                read = tokens
        written = 0
        if breakpoints is None:
            store = [p for p, _ in prefixes]
        else:
            store = [prefixes[i][0] for i in breakpoints if i < len(prefixes)]
            if breakpoints:
                written = max(0, prefixes[max(breakpoints)][1] - read)
        if commit:
            for prefix in store:
                self.seen[prefix] = None
            while len(self.seen) > _MAX_CACHED_PREFIXES:
                self.seen.popitem(last=False)
        return CacheResult(total, read, written)


@dataclass(slots=True)
class RunState:
    seed: int
    scripts: dict[str, list[Turn]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)  # requests answered per agent
    cache: PromptCache = field(default_factory=PromptCache)

    def describe(self) -> dict[str, Any]:
        agents = sorted(set(self.scripts) | set(self.calls))
        return {
            "seed": self.seed,
            "agents": {
                a: {
                    "calls": self.calls.get(a, 0),
                    "scripted": len(self.scripts.get(a, ())),
                    "remaining": max(0, len(self.scripts.get(a, ())) - self.calls.get(a, 0)),
                }
                for a in agents
            },
        }


class SimState:
    """Runs (scripts, call counters, prompt caches) and statistics, shared by both wire formats."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.runs: dict[str, RunState] = {}
        self.stats: dict[str, Any] = {
            "requests": {}, "agents": {}, "errors": {}, "scripted": 0, "generated": 0,
            "tokens": {"prompt": 0, "cached": 0, "completion": 0},
        }

    def run(self, run: str) -> RunState:
        state = self.runs.get(run)
        if state is None:
            state = self.runs[run] = RunState(seed=self.seed)
        return state

    def install(self, run: str, scripts: dict[str, list[Turn]], seed: int | None) -> RunState:
        """Give ``run`` these scripts (replacing its state)."""
        state = self.runs[run] = RunState(seed=self.seed if seed is None else seed, scripts=scripts)
        return state

    def answer(self, ex: Exchange, commit: bool) -> tuple[list[Answer], CacheResult]:
        """The answers of ``ex``'s choices and its prompt-cache result.

        With ``commit`` false (a fault will spoil the response) nothing changes: the retry gets
        the same answer.
        """
        state = self.run(ex.run)
        index = state.calls.get(ex.agent, 0)
        script = state.scripts.get(ex.agent)
        turn = script[index] if script is not None and index < len(script) else None
        key = digest(state.seed, ex.run, ex.agent, ex.step, index)
        receipts = receipt_finder(ex.tool_results)
        answers = []
        for choice in range(max(1, ex.n)):
            # At temperature 0 every choice is the same answer.
            choice_key = key if choice == 0 or ex.temperature == 0 else digest(key, choice)
            if turn is not None:
                answers.append(self._scripted(turn, ex, choice_key, receipts))
            else:
                answers.append(self._generated(ex, choice_key, receipts))
        cache = state.cache.lookup(ex.units, ex.breakpoints, commit)
        if commit:
            state.calls[ex.agent] = index + 1
            self.stats["scripted" if turn is not None else "generated"] += 1
            agents = self.stats["agents"]
            agents[ex.agent] = agents.get(ex.agent, 0) + 1
        return answers, cache

    def _scripted(self, turn: Turn, ex: Exchange, key: bytes, receipts) -> Answer:
        draw = int.from_bytes(key[:4], "big") / 2**32
        if turn.kind == "text":
            return Answer("text", text=turn.value, confidence=turn.confidence, draw=draw, key=key)
        if turn.kind == "call":
            calls = tuple(
                (f"{i}", tool, substitute_receipts(args, receipts)) for i, (tool, args) in enumerate(turn.calls)
            )
            return Answer("call", calls=calls, confidence=turn.confidence, draw=draw, key=key)
        value = substitute_receipts(turn.value, receipts)
        schema = ex.output_schema
        if schema is not None and _is_wrapper(schema) and not (isinstance(value, dict) and set(value) == {"value"}):
            value = {"value": value}  # a non-record result is asked for as {"value": ...}
        if schema is None and not ex.json_mode and isinstance(value, str):
            return Answer("text", text=value, confidence=turn.confidence, draw=draw, key=key)
        return Answer("structured", text=dump(value), value=value, confidence=turn.confidence, draw=draw, key=key)

    def _generated(self, ex: Exchange, key: bytes, receipts) -> Answer:
        rng = random.Random(key)
        draw = rng.random()
        if ex.output_schema is not None:
            value = generate_value(ex.output_schema, rng, receipts)
            return Answer("structured", text=dump(value), value=value, draw=draw, key=key)
        if ex.json_mode:
            value = {"answer": sentence(rng)}
            return Answer("structured", text=dump(value), value=value, draw=draw, key=key)
        return Answer("text", text=sentence(rng), draw=draw, key=key)


def _is_wrapper(schema: dict) -> bool:
    props = schema.get("properties")
    return schema.get("type") == "object" and isinstance(props, dict) and list(props) == ["value"]


def dump(value: Any) -> str:
    """JSON text as a model writes it in structured mode (compact, UTF-8)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
