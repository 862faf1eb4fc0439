#!/usr/bin/env python3
"""A fuzzer for the compiler, the formatter and the planner: no input may make any of them raise.

Inputs are made from the examples (tokens, lines and whole declarations deleted, duplicated,
swapped and spliced between examples, literals traded between places) or around them (unicode
including lone surrogates, huge numbers, deep nesting, long lines, random bytes decoded with
errors), and each goes through

* ``check_source``: it must return, with well-formed diagnostics that render as text and JSON;
* the formatter, when the input parses: it must succeed (it checks itself that the program and
  its comments are kept, and raises ``FormattingBug`` otherwise) and be idempotent;
* plan lowering, when the input checks clean: the plan is made, written as JSON and read back.

tests/test_fuzz.py runs these generators under hypothesis (the `ci` profile runs over 20 000
inputs). By hand, for longer runs::

    python tests/fuzz.py --inputs 100000 --jobs 2 [--seed 1] [--save DIR] [--timeout 20]

prints how many inputs reached each stage and the crashes by stage and exception type; with
``--save DIR`` the smallest input of each kind of crash is written there (to be added to
tests/fuzz_corpus/ once fixed). An input is drawn from its seed alone: ``--only SEED`` replays one.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import re
import signal
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLE_TEXTS = tuple(p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples").glob("*.vox")))

# ---- the material inputs are made of ---------------------------------------------------------

_TOKEN = re.compile(
    r'"""(?:[^"\\]|\\.|"(?!""))*"""|"(?:[^"\\\n]|\\.)*"|//[^\n]*|\$[0-9][0-9_]*(?:\.[0-9]+)?'
    r"|[0-9][0-9_]*(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?[a-z]*|[A-Za-z_][A-Za-z0-9_]*"
    r"|->|==|!=|<=|>=|\n|[ \t]+|.",
    re.S,
)
_DECL_START = re.compile(r"^(?:label|budget|provider|model|type|enum|tool|gate|agent|flow|test)[ \t]", re.M)
_NUMBER = re.compile(r"\$?[0-9][0-9_]*(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?:ms|s|m|h|d)?(?![A-Za-z0-9_])")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _declarations(text: str) -> list[str]:
    starts = [m.start() for m in _DECL_START.finditer(text)]
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]


EXAMPLE_TOKENS = tuple(tuple(_tokens(t)) for t in EXAMPLE_TEXTS)
EXAMPLE_LINES = tuple(tuple(t.split("\n")) for t in EXAMPLE_TEXTS)
EXAMPLE_DECLS = tuple(tuple(_declarations(t)) for t in EXAMPLE_TEXTS)
ALL_TOKENS = tuple(sorted({tok for toks in EXAMPLE_TOKENS for tok in toks if tok.strip()}))
ALL_LINES = tuple(line for lines in EXAMPLE_LINES for line in lines)
ALL_DECLS = tuple(d for decls in EXAMPLE_DECLS for d in decls)

# Fragments that steer mutations to interesting parser states.
FRAGMENTS = (
    "{", "}", "(", ")", "[", "]", ",", ":", "=", "==", "->", "\n", '"', '"""', "'", "//", "$", "$0.5",
    "5s", "1__0", "@", "@pii", "?", "per", "max", "for", "in", "let", "if", "else", "par", "return",
    "agent", "flow", "tool", "model", "check", "mock", "reply", "call", "none", "x", "é", "\t", "#", "\\",
    "not", "and", "or", "-", "+", "*", "/", "%", ".", "true", "0", "1.5", '"0.10"', "depth", "fallback",
    "budget", "tenant", "fleet", "label", "type", "enum", "gate", "test", "receipt", "redact", "declassify",
)
# Characters that text handling gets wrong: lone surrogates, a byte-order mark, zero-width and
# bidirectional controls, line separators Python splits on, NUL, combining marks, astral planes,
# digits of other scripts (which int() would accept).
UNICODE = (
    "\ud800", "\udfff", "\udc80", "\ud83d", "\ufeff", "\u200b", "\u202e", "\u2028", "\u2029", "\u0085",
    "\x00", "\x0b", "\x0c", "\x1b", "\x7f", "\r", "\r\n", "\u0301", "e\u0301", "\U0001F600", "\U000E0001",
    "\uffff", "\ufffe", "\u00a0", "\u3000", "\uff11", "\u0663", "\u00b2", "\u2167", "ß", "İ", "日本", "\t",
)
HUGE_NUMBERS = (
    "9" * 20, "9" * 40, "9" * 400, "9" * 4301, "1" + "0" * 5000, "9_" * 3000 + "9", "18446744073709551616",
    "9223372036854775808", "9223372036854775807", "1" + "0" * 400 + ".0", "1.0e400", "1.0e-400", "1.5e308",
    "0." + "0" * 500 + "1", "$" + "9" * 30, "$" + "9" * 4296, "$" + "9" * 13, "$9223372036854.775808",
    "$0." + "9" * 40, "9" * 30 + "ms", "9" * 4300 + "d", "9999999999999999d", "1.5" + "0" * 400 + "s",
    "$" + "9" * 400 + ".5", "0", "00000000000000000000000000001", "1" + "0" * 19,
)
# Constructs that nest: (opening, core, closing), repeated `depth` times around the core.
NESTERS = (
    ("(", "1", ")"),
    ("[", "1", "]"),
    ("f(", "x", ")"),
    ("f(a: ", "x", ")"),
    ("not ", "true", ""),
    ("-", "1", ""),
    ("- ", "$1", ""),
    ("", "1", " + 1"),
    ("", "x", ".a"),
    ("", "x", "[0]"),
    ("", "f", "()"),
    ("{ a: ", "1", " }"),
    ("[{ a: ", "1", " }]"),
    ("for x in xs max 2 { ", "x", " }"),
    ("(", "$1", " per day)"),
    ("", "true", " and true"),
    ("", "1", " == 1"),
    ("len(", "x", ")"),
    ("redact(", "x", ")"),
)
NESTED_STATEMENTS = (
    ("if true {\n", "return 1\n", "}\n"),
    ("par {\n", "let y = 1\n", "}\n"),
    ("if x {\n} else ", "if y {\n}\n", ""),
    ("let v = for x in xs max 2 {\n", "x\n", "}\n"),
)
NESTED_TYPES = (("list[", "int", "]"), ("{ a: ", "int", " }"))
DEPTHS = (5, 20, 40, 60, 63, 64, 65, 100, 150, 200, 300, 500, 1000, 3000)


# ---- generators ----------------------------------------------------------------------------------
# Each takes a random.Random and returns one input; cheap, so that CI can afford many.


def mutate_tokens(rng: random.Random) -> str:
    """An example with tokens deleted, duplicated, swapped, replaced by tokens of any example
    (a string where money is expected, a name where a type is) or by fragments."""
    toks = list(rng.choice(EXAMPLE_TOKENS))
    for _ in range(rng.randint(1, 6)):
        if not toks:
            break
        i = rng.randrange(len(toks))
        n = rng.randint(1, 4)
        op = rng.randrange(6)
        if op == 0:
            del toks[i : i + n]
        elif op == 1:
            toks[i:i] = toks[i : i + n]
        elif op == 2:
            j = rng.randrange(len(toks))
            toks[i], toks[j] = toks[j], toks[i]
        elif op == 3:
            toks[i] = rng.choice(ALL_TOKENS)
        elif op == 4:
            toks.insert(i, rng.choice(FRAGMENTS))
        else:
            toks[i] = rng.choice(FRAGMENTS)
    return "".join(toks)


def mutate_lines(rng: random.Random) -> str:
    """An example with lines deleted, duplicated, swapped, re-indented or taken from another."""
    lines = list(rng.choice(EXAMPLE_LINES))
    for _ in range(rng.randint(1, 5)):
        if not lines:
            break
        i = rng.randrange(len(lines))
        op = rng.randrange(6)
        if op == 0:
            del lines[i : i + rng.randint(1, 3)]
        elif op == 1:
            lines[i:i] = lines[i : i + rng.randint(1, 3)]
        elif op == 2:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == 3:
            lines.insert(i, rng.choice(ALL_LINES))
        elif op == 4:
            lines[i] = rng.choice(("", " ", "  ", "\t")) + lines[i].lstrip()
        else:
            lines[i] = lines[i][: rng.randint(0, len(lines[i]))]
    return "\n".join(lines)


def mutate_declarations(rng: random.Random) -> str:
    """A program of whole declarations: an example's, deleted, duplicated, swapped and spliced
    with declarations of other examples."""
    decls = list(rng.choice(EXAMPLE_DECLS))
    for _ in range(rng.randint(1, 5)):
        op = rng.randrange(4)
        if op == 0 and decls:
            del decls[rng.randrange(len(decls))]
        elif op == 1 and decls:
            decls.insert(rng.randrange(len(decls) + 1), rng.choice(decls))
        elif op == 2 and len(decls) > 1:
            i, j = rng.randrange(len(decls)), rng.randrange(len(decls))
            decls[i], decls[j] = decls[j], decls[i]
        else:
            decls.insert(rng.randrange(len(decls) + 1), rng.choice(ALL_DECLS))
    return "".join(d if d.endswith("\n") else d + "\n" for d in decls)


def splice_examples(rng: random.Random) -> str:
    """The start of one example and the end of another, cut anywhere."""
    a, b = rng.choice(EXAMPLE_TEXTS), rng.choice(EXAMPLE_TEXTS)
    return a[: rng.randint(0, len(a))] + b[rng.randint(0, len(b)) :]


def insert_unicode(rng: random.Random) -> str:
    """An example with awkward characters put anywhere: in strings, comments, names and between tokens."""
    text = _base(rng)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randint(0, len(text))
        text = text[:pos] + rng.choice(UNICODE) * rng.choice((1, 1, 2, 50)) + text[pos:]
    return text


def huge_numbers(rng: random.Random) -> str:
    """An example whose number literals are replaced by enormous, tiny or overflowing ones."""
    text = _base(rng)
    found = list(_NUMBER.finditer(text))
    if not found:
        return text + "\n" + rng.choice(HUGE_NUMBERS)
    for m in sorted(rng.sample(found, min(len(found), rng.randint(1, 3))), key=lambda m: -m.start()):
        replacement = rng.choice(HUGE_NUMBERS)
        if m.group().startswith("$") and not replacement.startswith("$") and rng.random() < 0.7:
            replacement = "$" + replacement
        text = text[: m.start()] + replacement + text[m.end() :]
    return text


def nest(opening: str, core: str, closing: str, depth: int) -> str:
    return opening * depth + core + closing * depth


def deep_nesting(rng: random.Random) -> str:
    """An example with a deeply nested expression, statement or type in it."""
    depth = rng.choice(DEPTHS)
    kind = rng.randrange(4)
    if kind == 0:
        # replace a value in the example (so the nesting lands in members, arguments, conditions)
        text = _base(rng)
        found = [m for m in re.finditer(r"(?<=[:=(,] )[A-Za-z0-9_$.\"]+", text)]
        expr = nest(*rng.choice(NESTERS), depth)
        if found:
            m = rng.choice(found)
            return text[: m.start()] + expr + text[m.end() :]
        return text + expr
    if kind == 1:
        expr = nest(*rng.choice(NESTERS), depth)
        return _base(rng) + f"\nflow deep(x: int, xs: list[int]) -> int {{\n  let v = {expr}\n  return v\n}}\n"
    if kind == 2:
        body = nest(*rng.choice(NESTED_STATEMENTS), depth)
        return _base(rng) + f"\nflow deep(x: bool, y: bool, xs: list[int]) -> int {{\n{body}return 1\n}}\n"
    ty = nest(*rng.choice(NESTED_TYPES), depth)
    return _base(rng) + f"\ntype Deep = {ty}\ntool t(x: {ty}) -> {ty} {{ effect: read }}\n"


def long_lines(rng: random.Random) -> str:
    """An example with one very long line: a string, a name, a comment, a list or a sum."""
    n = rng.choice((1_000, 5_000, 20_000, 100_000))
    line = rng.choice((
        f'  let s = "{"a" * n}"',
        f"  let {'a' * n} = 1",
        f"  // {'c' * n}",
        "  let l = [" + ", ".join(["1"] * (n // 3)) + "]",
        "  let l = f(" + ", ".join(["x"] * (n // 3)) + ")",
        "  let s = " + " + ".join(["1"] * (n // 4)),
        "  " + "x" * n,
        " " * n + "let y = 1",
    ))
    body = f"flow long(x: int) -> int {{\n{line}\n  return 1\n}}\n"
    return _base(rng) + "\n" + body if rng.random() < 0.5 else body


def random_bytes(rng: random.Random) -> str:
    """Random bytes decoded as latin-1 or as UTF-8 with errors replaced, ignored or kept as lone
    surrogates; alone, or put into an example."""
    data = rng.randbytes(rng.choice((8, 64, 400, 2000)))
    codec, errors = rng.choice((("latin-1", "strict"), ("utf-8", "replace"), ("utf-8", "surrogateescape"),
                                ("utf-8", "ignore"), ("utf-16-le", "surrogatepass")))
    if codec == "utf-16-le" and len(data) % 2:
        data = data[:-1]
    try:
        noise = data.decode(codec, errors)
    except UnicodeDecodeError:
        noise = data.decode("latin-1")
    if rng.random() < 0.5:
        return noise
    text = _base(rng)
    pos = rng.randint(0, len(text))
    return text[:pos] + noise + text[pos:]


def _base(rng: random.Random) -> str:
    """An example, or now and then a mutant of one, for the generators that add something to it."""
    if rng.random() < 0.2:
        return rng.choice((mutate_tokens, mutate_lines, mutate_declarations))(rng)
    return rng.choice(EXAMPLE_TEXTS)


GENERATORS = (
    (mutate_tokens, 20),
    (mutate_lines, 14),
    (mutate_declarations, 14),
    (splice_examples, 6),
    (insert_unicode, 8),
    (huge_numbers, 12),
    (deep_nesting, 14),
    (long_lines, 3),
    (random_bytes, 6),
)
_GENERATOR_FUNCTIONS = tuple(g for g, _ in GENERATORS)
_GENERATOR_WEIGHTS = tuple(w for _, w in GENERATORS)


def generate(seed: int) -> tuple[str, str]:
    """The input of ``seed``, and the name of the generator that made it."""
    rng = random.Random(seed)
    gen = rng.choices(_GENERATOR_FUNCTIONS, _GENERATOR_WEIGHTS)[0]
    return gen.__name__, gen(rng)


# ---- running one input ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Crash:
    stage: str  # check format plan
    kind: str  # the exception's type (or what went wrong, when nothing raised)
    message: str
    where: str  # the innermost frames of the traceback

    @property
    def key(self) -> tuple[str, str]:
        return self.stage, self.kind


@dataclass
class Outcome:
    stages: list[str] = field(default_factory=list)  # the stages the input went through
    crash: Crash | None = None
    seconds: dict[str, float] = field(default_factory=dict)


class Malformed(AssertionError):
    """A diagnostic out of range, without a message, or that does not render."""


class NotIdempotent(AssertionError):
    """Formatting formatted text changed it again."""


class SlowInput(Exception):
    """A stage ran past the time limit (raised by the alarm of ``--timeout``)."""


def check_diagnostics(result, text: str) -> None:
    """Raise :class:`Malformed` unless every diagnostic is well-formed and renders as text and JSON
    that can be written as UTF-8."""
    from vox.compiler.diagnostics.codes import CODES
    from vox.compiler.diagnostics.render import render_json, render_text

    source = result.source
    for d in result.diagnostics:
        if d.code not in CODES:
            raise Malformed(f"unknown code {d.code}")
        if not (0 <= d.span.start <= d.span.end <= len(text)):
            raise Malformed(f"{d.code} span {d.span} outside the text ({len(text)})")
        if not d.message:
            raise Malformed(f"{d.code} without a message")
        for label in d.labels:
            if label.path is None and not (0 <= label.span.start <= label.span.end <= len(text)):
                raise Malformed(f"{d.code} label span {label.span} outside the text")
        if d.fix is not None:
            for edit in d.fix.edits:
                if not (0 <= edit.span.start <= edit.span.end <= len(text)):
                    raise Malformed(f"{d.code} fix span {edit.span} outside the text")
    for d in result.diagnostics[:3]:
        render_text(d, source).encode("utf-8")
    json.dumps(render_json(result.diagnostics[:3], {source.path: source}), ensure_ascii=False).encode("utf-8")


def run_input(text: str, cache=None) -> Outcome:
    """Check, format and plan ``text`` as far as it gets; the first exception is the crash."""
    from vox.compiler.api import check_source
    from vox.compiler.format import format_source
    from vox.compiler.plan import load_plan, lower_plan, plan_to_json

    out = Outcome()
    stage = "check"
    try:
        out.stages.append(stage)
        started = time.perf_counter()
        result = check_source("fuzz.vox", text, cache)
        check_diagnostics(result, text)
        out.seconds[stage] = time.perf_counter() - started
        if not any(d.is_error for d in result.parse.diagnostics):
            stage = "format"
            out.stages.append(stage)
            started = time.perf_counter()
            formatted = format_source(text, "fuzz.vox", cache=cache).text
            if formatted is None:
                raise NotIdempotent("the formatter refused text that parses")
            again = format_source(formatted, "fuzz.vox", cache=cache).text
            if again != formatted:
                raise NotIdempotent("formatting the formatted text changed it")
            out.seconds[stage] = time.perf_counter() - started
        if result.ok:
            stage = "plan"
            out.stages.append(stage)
            started = time.perf_counter()
            load_plan(plan_to_json(lower_plan(result)))
            out.seconds[stage] = time.perf_counter() - started
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - every exception is the finding
        out.crash = Crash(stage, crash_kind(e), _short(str(e)), _where(e))
    return out


def crash_kind(e: BaseException) -> str:
    """The exception's type, with what lark wrapped (``VisitError(RecursionError)``) and the
    integer-string limit told apart from other ValueErrors."""
    name = type(e).__name__
    inner = getattr(e, "orig_exc", None)
    if inner is not None:
        return f"{name}({crash_kind(inner)})"
    if isinstance(e, ValueError) and "integer string conversion" in str(e):
        return "ValueError(int digits)"
    return name


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[:limit] + "..."


def _where(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    inner = [f for f in frames if "/compiler/" in f.filename or "/lark/" in f.filename] or frames
    return " <- ".join(f"{pathlib.Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(inner[-4:]))


# ---- the command line ----------------------------------------------------------------------------


@dataclass
class Tally:
    inputs: int = 0
    reached: Counter = field(default_factory=Counter)  # stage -> inputs that reached it
    by_generator: Counter = field(default_factory=Counter)
    crashes: Counter = field(default_factory=Counter)  # (stage, kind) -> count
    crash_generators: Counter = field(default_factory=Counter)  # (stage, kind, generator) -> count
    examples: dict = field(default_factory=dict)  # (stage, kind) -> (len, seed, generator, crash)
    slowest: list = field(default_factory=list)  # (seconds, seed, stage)

    def add(self, seed: int, generator: str, text_length: int, outcome: Outcome) -> None:
        self.inputs += 1
        self.by_generator[generator] += 1
        self.reached.update(outcome.stages)
        for stage, seconds in outcome.seconds.items():
            self.slowest.append((seconds, seed, stage))
        self.slowest = sorted(self.slowest, reverse=True)[:5]
        crash = outcome.crash
        if crash is not None:
            self.crashes[crash.key] += 1
            self.crash_generators[(*crash.key, generator)] += 1
            best = self.examples.get(crash.key)
            if best is None or text_length < best[0]:
                self.examples[crash.key] = (text_length, seed, generator, crash)

    def merge(self, other: "Tally") -> None:
        self.inputs += other.inputs
        self.reached += other.reached
        self.by_generator += other.by_generator
        self.crashes += other.crashes
        self.crash_generators += other.crash_generators
        for key, example in other.examples.items():
            if key not in self.examples or example[0] < self.examples[key][0]:
                self.examples[key] = example
        self.slowest = sorted(self.slowest + other.slowest, reverse=True)[:5]


def fuzz_seeds(seeds: range, timeout: float | None) -> Tally:
    """Run the inputs of ``seeds`` in this process (one parse cache for all of them)."""
    from vox.compiler.syntax.parser import DeclCache

    cache = DeclCache()
    tally = Tally()
    if timeout:
        signal.signal(signal.SIGALRM, _on_alarm)
    for seed in seeds:
        generator, text = generate(seed)
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            outcome = run_input(text, cache)
        except SlowInput:
            outcome = Outcome(["check"], Crash("?", "SlowInput", f"over {timeout}s", ""))
        finally:
            if timeout:
                signal.setitimer(signal.ITIMER_REAL, 0)
        if outcome.crash is not None and outcome.crash.kind == "SlowInput":
            outcome.crash = Crash(outcome.crash.stage, "SlowInput", f"over {timeout}s", "")
        tally.add(seed, generator, len(text), outcome)
    return tally


def _on_alarm(signum, frame):
    raise SlowInput()


def _fuzz_chunk(args: tuple[int, int, float | None]) -> Tally:
    start, stop, timeout = args
    return fuzz_seeds(range(start, stop), timeout)


def report(tally: Tally, seconds: float) -> str:
    lines = [f"inputs: {tally.inputs} in {seconds:.0f} s"]
    lines.append("reached: " + ", ".join(f"{s} {tally.reached[s]}" for s in ("check", "format", "plan")))
    lines.append("generators: " + ", ".join(f"{g} {n}" for g, n in sorted(tally.by_generator.items())))
    total = sum(tally.crashes.values())
    lines.append(f"crashes: {total}")
    for (stage, kind), n in sorted(tally.crashes.items(), key=lambda kv: -kv[1]):
        gens = ", ".join(f"{g} {c}" for (s, k, g), c in sorted(tally.crash_generators.items()) if (s, k) == (stage, kind))
        length, seed, generator, crash = tally.examples[(stage, kind)]
        lines.append(f"  {stage:6} {kind:32} {n:6}   ({gens})")
        lines.append(f"         smallest: seed {seed} ({generator}, {length} chars): {crash.message[:120]!r}")
        lines.append(f"         at {crash.where}")
    lines.append("slowest: " + ", ".join(f"{sec:.2f}s seed {seed} {stage}" for sec, seed, stage in tally.slowest))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=10_000, help="how many inputs (default 10 000)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--jobs", type=int, default=1, help="processes to run them in (default 1)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds one input may take (default 20)")
    parser.add_argument("--save", metavar="DIR", help="write the smallest input of each crash to DIR")
    parser.add_argument("--only", type=int, metavar="SEED", help="run the input of SEED alone and show it")
    args = parser.parse_args(argv)
    if args.only is not None:
        generator, text = generate(args.only)
        outcome = run_input(text)
        print(f"seed {args.only} ({generator}, {len(text)} chars): stages {outcome.stages}")
        print(repr(text[:2000]))
        if outcome.crash:
            print(outcome.crash)
        return 1 if outcome.crash else 0
    started = time.perf_counter()
    stop = args.seed + args.inputs
    step = 500
    chunks = [(s, min(s + step, stop), args.timeout) for s in range(args.seed, stop, step)]
    tally = Tally()
    if args.jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            for part in pool.imap_unordered(_fuzz_chunk, chunks):
                tally.merge(part)
                print(f"\r{tally.inputs} inputs, {sum(tally.crashes.values())} crashes", end="", file=sys.stderr)
    else:
        for chunk in chunks:
            tally.merge(_fuzz_chunk(chunk))
            print(f"\r{tally.inputs} inputs, {sum(tally.crashes.values())} crashes", end="", file=sys.stderr)
    print(file=sys.stderr)
    print(report(tally, time.perf_counter() - started))
    if args.save:
        folder = pathlib.Path(args.save)
        folder.mkdir(parents=True, exist_ok=True)
        for (stage, kind), (_, seed, generator, _crash) in sorted(tally.examples.items()):
            name = re.sub(r"[^A-Za-z0-9]+", "-", f"{stage}-{kind}").strip("-")
            text = generate(seed)[1]
            (folder / f"{name}-{seed}.vox").write_text(text, encoding="utf-8", errors="surrogatepass")
    return 1 if tally.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
