"""User mistakes at the command line, through the installed `voxc` console script (issue 12).

Each case is one mistake, made as a user would make it: the real console script, run from a
folder outside the repository, with a timeout. Each asserts what spec/runtime.md (`voxc run`,
`voxc test` > Mistakes, and the limits of what is read) promises:

* the documented exit status (2 for bad usage or a file that cannot be read or written, 1 where
  a command's own check fails) and never 3, which is kept for bugs in voxc;
* a message on stderr naming the problem and where (the file, the flag, the JSON path), and
  neither a traceback nor `voxc: internal error`;
* nothing already accepted lost: after a refused command every file of the folder is as it was
  (a SQLite store compared by its contents) and nothing new is there — no run journaled, no state
  folder or database created, no file rewritten.

Damaged state (a corrupted `state.sqlite`, a key file that is a folder) is not covered here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from vox.cli import common, inputs
from vox.cli import receipts as receipts_command
from vox.cli.common import InputError
from vox.cli.limits import MAX_JSON_DEPTH, MAX_JSON_INT_DIGITS, MAX_SEED, MAX_SOURCE_BYTES

ROOT = Path(__file__).resolve().parent.parent
VOXC = Path(sys.executable).parent / "voxc"
TIMEOUT = 120  # seconds: a command that hangs fails its case
AS_ROOT = os.geteuid() == 0  # root reads a chmod 000 file and writes in a read-only folder
UNREACHABLE = "postgresql://nobody@127.0.0.1:9/none"  # nothing listens on port 9: refused at once
FLEET_KEYS = {"VOX_STATE_KEY": "a" * 64, "VOX_RECEIPT_KEY": "b" * 64}
# `receipts verify` of a run without receipts: nothing was verified (its own status, where it has one).
NO_RECEIPTS = getattr(receipts_command, "EXIT_NO_RECEIPTS", 1)

HELLO = (ROOT / "examples" / "hello.vox").read_text(encoding="utf-8")

# Two flows (so `--flow` is needed) and a record with a list, for JSON paths into the input.
TYPED = """\
provider sim = sim { clearance: [public] }

model tiny = sim/"sim-small" {
  context: 8_192
  max_output: 256
  price: { input: $0.10, output: $0.40 }
}

type Order = { id: str, amounts: list[float], count: int }

agent greeter(name: str) -> str {
  model: tiny
  budget: { tokens: 1_000, cost: $0.001, steps: 1 }
  prompt: "Greet {name}."
}

flow greet(order: Order, score: float) -> str {
  budget: { cost: $0.01, wall: 30s }
  return greeter(name: order.id)
}

flow other(name: str) -> str {
  budget: { cost: $0.01, wall: 30s }
  return greeter(name: name)
}
"""

# A flow that waits for a person: its one call needs approval.
WAITS = """\
tool send(to: str) -> str {
  effect: write
  idempotent: true
  approval: human
  timeout: 5s
  bind: python("tools:send")
}

flow notify(to: str) -> str {
  budget: { cost: $0.01 }
  return send(to: to)
}
"""
TOOLS = 'def send(to):\n    return "sent to " + to\n'

SYNTAX_ERROR = "agent a(x: str) -> str {\n  model = mini\n}\n"
PROGRAMS = {"hello.vox": HELLO, "typed.vox": TYPED, "waits.vox": WAITS, "tools.py": TOOLS,
            "broken.vox": SYNTAX_ERROR}

ORDER = {"id": "o1", "amounts": [1.5, 2], "count": 1}


def order_input(**changes) -> str:
    """`--input` text for typed.vox's `greet`, with some of the order's fields replaced (as text)."""
    fields = {k: json.dumps(v) for k, v in ORDER.items()} | changes
    order = ", ".join(f'"{k}": {v}' for k, v in fields.items())
    return f'{{"order": {{{order}}}, "score": 0.5}}'


# ---- running voxc ---------------------------------------------------------------------------------


def voxc(cwd: Path, *argv: str, env: dict[str, str] | None = None, stdin: bytes | None = b"",
         stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    """The installed console script, run in ``cwd`` without the caller's VOX_* settings."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VOX")} | (env or {})
    return subprocess.run([str(VOXC), *argv], cwd=cwd, env=environ, input=stdin, stdout=stdout,
                          stderr=subprocess.PIPE, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def store_template(tmp_path_factory) -> Path:
    """A folder with the programs and a state folder holding two runs: `done1`, finished, and
    `wait1`, waiting for approval of `send`."""
    folder = tmp_path_factory.mktemp("store")
    for name, text in PROGRAMS.items():
        (folder / name).write_text(text, encoding="utf-8")
    done = voxc(folder, "run", "hello.vox", "--sim", "--input", '{"name": "Ada"}', "--run-id", "done1")
    assert done.returncode == 0, done.stderr.decode()
    waiting = voxc(folder, "run", "waits.vox", "--input", '{"to": "ada@example.com"}', "--run-id", "wait1")
    assert waiting.returncode == 4, waiting.stderr.decode()
    shutil.rmtree(folder / "__pycache__", ignore_errors=True)
    return folder


def snapshot(folder: Path) -> dict[str, object]:
    """Every path under ``folder`` with what it holds: a SQLite file by its contents (its bytes
    move with checkpoints), a file by its bytes (or, unreadable, its size and mode)."""
    seen: dict[str, object] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if "__pycache__" in rel or path.name.endswith(("-wal", "-shm", "-journal")):
            continue
        info = path.lstat()
        if stat.S_ISDIR(info.st_mode) or stat.S_ISFIFO(info.st_mode):
            seen[rel] = stat.S_IFMT(info.st_mode)
        elif path.suffix == ".sqlite":
            conn = sqlite3.connect(path)
            try:
                seen[rel] = tuple(conn.iterdump())
            finally:
                conn.close()
        else:
            try:
                seen[rel] = path.read_bytes()
            except OSError:
                seen[rel] = (info.st_size, stat.S_IMODE(info.st_mode))
    return seen


# ---- the matrix -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Mistake:
    id: str
    argv: tuple[str, ...]
    code: int  # the documented exit status
    says: tuple[str, ...]  # what the message must name (on stderr, or on stdout for a report)
    setup: Callable[[Path], None] | None = None
    store: bool = False  # start from a copy of `store_template` (its state folder included)
    env: tuple[tuple[str, str], ...] = ()
    hides: tuple[str, ...] = ()  # what stderr must not show (a password)
    unchanged: bool | None = None  # whether the folder must be left as it was (default: when refused)
    skip: str | None = None
    report: bool = False  # the command answers with a report on stdout (`receipts verify`)


def fifo(name: str) -> Callable[[Path], None]:
    return lambda folder: os.mkfifo(folder / name)


def write(name: str, data: bytes | str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        (folder / name).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)

    return setup


def unreadable(folder: Path) -> None:
    (folder / "secret.vox").write_text("label pii\n", encoding="utf-8")
    os.chmod(folder / "secret.vox", 0)


def read_only_folder(folder: Path) -> None:
    (folder / "ro").mkdir()
    os.chmod(folder / "ro", 0o555)


RUN_OK = ("--sim", "--input", '{"name": "Ada"}')
COMMANDS = {  # the commands that read a program FILE, with what they need besides it
    "check": ("check",), "fmt": ("fmt",), "plan": ("plan",), "test": ("test",), "run": ("run",),
}


def program_file_mistakes() -> list[Mistake]:
    cases = []
    for name, command in COMMANDS.items():
        extra = RUN_OK if name == "run" else ()
        cases += [
            Mistake(f"{name}-missing-file", (*command, "nope.vox", *extra), 2,
                    ("cannot read nope.vox: No such file or directory",)),
            Mistake(f"{name}-a-folder", (*command, "sub", *extra), 2, ("cannot read sub: it is a folder",),
                    setup=lambda f: (f / "sub").mkdir()),
            Mistake(f"{name}-under-a-file", (*command, "hello.vox/x.vox", *extra), 2,
                    ("cannot read hello.vox/x.vox: Not a directory",)),
            Mistake(f"{name}-not-utf8", (*command, "latin1.vox", *extra), 2,
                    ("cannot read latin1.vox: not valid UTF-8 (byte 0xe9 at offset 12)",),
                    setup=write("latin1.vox", b"// caf\xc3\xa9 caf\xe9\nlabel pii\n")),
            Mistake(f"{name}-a-pipe-nobody-writes", (*command, "pipe.vox", *extra), 2,
                    ("cannot read pipe.vox: it is a pipe with nothing written to it and no writer",),
                    setup=fifo("pipe.vox")),
            Mistake(f"{name}-endless-device", (*command, "/dev/zero", *extra), 2,
                    ("cannot read /dev/zero: it is larger than 8 MiB, the most voxc reads as a program",)),
            Mistake(f"{name}-unreadable", (*command, "secret.vox", *extra), 2,
                    ("cannot read secret.vox: Permission denied",), setup=unreadable,
                    skip="root reads a chmod 000 file (the pipe and /proc cases stand in)" if AS_ROOT else None),
            Mistake(f"{name}-proc-file", (*command, "/proc/self/mem", *extra), 2,
                    ("cannot read /proc/self/mem: Input/output error",)),
        ]
    cases += [
        Mistake("fmt-check-not-utf8", ("fmt", "--check", "latin1.vox"), 2, ("cannot read latin1.vox: not valid UTF-8",),
                setup=write("latin1.vox", b"label caf\xe9\n")),
        Mistake("plan-json-missing-file", ("plan", "--json", "nope.vox"), 2, ("cannot read nope.vox",)),
        Mistake("fmt-stdin-not-utf8", ("fmt", "--stdin"), 2, ("cannot read <stdin>: not valid UTF-8",)),
        # An empty program is a program: nothing to check, format or test; nothing to run.
        Mistake("check-empty-file", ("check", "empty.vox"), 0, (), setup=write("empty.vox", "")),
        Mistake("fmt-empty-file", ("fmt", "empty.vox"), 0, (), setup=write("empty.vox", ""), unchanged=True),
        Mistake("plan-empty-file", ("plan", "empty.vox"), 0, (), setup=write("empty.vox", "")),
        Mistake("test-empty-file", ("test", "empty.vox"), 0, (), setup=write("empty.vox", "")),
        Mistake("run-empty-file", ("run", "empty.vox", "--sim"), 2, ("empty.vox has no flow to run",),
                setup=write("empty.vox", "")),
        # A file with errors: reported, and never rewritten, run or planned.
        Mistake("fmt-syntax-error", ("fmt", "broken.vox"), 1, ("error[V0",)),
        Mistake("fmt-syntax-error-crlf", ("fmt", "crlf.vox"), 1, ("error[V0",),
                setup=write("crlf.vox", SYNTAX_ERROR.replace("\n", "\r\n"))),
        Mistake("plan-output-is-the-program", ("plan", "hello.vox", "-o", "hello.vox"), 2,
                ("--output hello.vox is the program itself",)),
        Mistake("plan-output-under-a-file", ("plan", "hello.vox", "-o", "hello.vox/plan.txt"), 2,
                ("cannot write hello.vox/plan.txt: Not a directory",)),
    ]
    return cases


def input_mistakes() -> list[Mistake]:
    greet = ("run", "typed.vox", "--flow", "greet", "--sim", "--input")
    hello = ("run", "hello.vox", "--sim", "--input")
    return [
        Mistake("input-not-an-object", (*hello, "[1, 2]"), 2, ("--input is a JSON object of the flow's arguments",)),
        Mistake("input-not-json", (*hello, "{name: 1}"), 2,
                ("--input is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2",)),
        Mistake("input-unknown-parameter", (*hello, '{"nam": "Ada"}'), 2,
                ("--input $.nam: flow `hello` has no parameter `nam`; it takes `name`",)),
        Mistake("input-missing-parameter", (*hello, "{}"), 2, ("--input has no `name`: flow `hello` takes `name`",)),
        Mistake("input-wrong-type", (*hello, '{"name": 5}'), 2,
                ("--input $.name: expected a string, found the number 5",)),
        Mistake("input-wrong-type-nested", (*greet, order_input(count='"three"')), 2,
                ("--input $.order.count: expected a whole number, found the string 'three'",)),
        Mistake("input-unknown-field", (*greet, order_input(extra="1")), 2,
                ("--input $.order: unknown field `extra` for Order",)),
        Mistake("input-missing-file", (*hello, "@nope.json"), 2, ("cannot read nope.json: No such file or directory",)),
        Mistake("input-file-is-a-folder", (*hello, "@sub"), 2, ("cannot read sub: it is a folder",),
                setup=lambda f: (f / "sub").mkdir()),
        Mistake("input-binary-file", (*hello, "@input.bin"), 2, ("cannot read input.bin: not valid UTF-8 (byte 0x89",),
                setup=write("input.bin", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")),
        Mistake("input-file-not-json", (*hello, "@input.json"), 2, ("--input is not valid JSON: Expecting value",),
                setup=write("input.json", "name = 'Ada'\n")),
        Mistake("input-a-pipe-nobody-writes", (*hello, "@pipe.json"), 2, ("cannot read pipe.json: it is a pipe",),
                setup=fifo("pipe.json")),
        Mistake("input-endless-device", (*hello, "@/dev/zero"), 2,
                ("cannot read /dev/zero: it is larger than 64 MiB",)),
        Mistake("input-nested-30000-deep-array", (*hello, "@deep.json"), 2,
                ("--input $[0][0][0][0]<92 more>[0][0][0][0] (line 1, column 101): nested deeper than 100 arrays "
                 "and objects",),
                setup=write("deep.json", "[" * 30_000 + "]" * 30_000)),
        Mistake("input-nested-30000-deep-object", (*hello, "@deep.json"), 2,
                ("--input $.name.a.a.a<92 more>.a.a.a.a (line 1, column ", "nested deeper than 100"),
                setup=write("deep.json", '{"name": ' + '{"a": ' * 30_000 + "1" + "}" * 30_001)),
        Mistake("input-5000-digit-integer", (*greet, order_input(count="7" * 5000)), 2,
                ("--input $.order.count: an integer of 5000 digits; voxc reads integers of at most 300 digits",)),
        Mistake("input-1e400-for-an-int", (*greet, order_input(count="1e400")), 2,
                ("--input $.order.count: 1e400 is beyond the range of a 64-bit float",)),
        Mistake("input-infinity-for-a-float", (*greet, '{"order": ' + json.dumps(ORDER) + ', "score": Infinity}'), 2,
                ("--input $.score: Infinity is not a JSON number; write a finite number",)),
        Mistake("input-minus-infinity-for-a-float",
                (*greet, '{"order": ' + json.dumps(ORDER) + ', "score": -Infinity}'), 2,
                ("--input $.score: -Infinity is not a JSON number",)),
        Mistake("input-nan-in-a-list", (*greet, order_input(amounts="[1.5, 2, NaN]")), 2,
                ("--input $.order.amounts[2]: NaN is not a JSON number",)),
        Mistake("input-unknown-flow", ("run", "hello.vox", "--flow", "nope", *RUN_OK[1:]), 2,
                ("the program has no flow `nope` (flows: hello)",)),
        Mistake("input-no-flow-chosen", ("run", "typed.vox", "--sim", "--input", "{}"), 2,
                ("choose a flow with --flow NAME (flows: greet, other)",)),
        Mistake("input-not-given", ("run", "hello.vox", "--sim"), 2, ("flow `hello` needs its arguments (`name`)",)),
        Mistake("approve-unknown-tool", ("run", "hello.vox", *RUN_OK, "--approve", "sned"), 2,
                ("--approve sned: the program has no tool `sned`",)),
    ]


def flag_mistakes() -> list[Mistake]:
    seed_range = f"expected a whole number from 0 to {MAX_SEED}"
    return [
        Mistake("run-negative-seed", ("run", "hello.vox", *RUN_OK, "--seed", "-1"), 2,
                (f"argument --seed: {seed_range}, found -1",)),
        Mistake("run-seed-not-a-number", ("run", "hello.vox", *RUN_OK, "--seed", "abc"), 2,
                (f"argument --seed: {seed_range}, found 'abc'",)),
        Mistake("run-seed-too-large", ("run", "hello.vox", *RUN_OK, "--seed", str(2**64)), 2,
                (f"argument --seed: {seed_range}, found {2**64}",)),
        Mistake("test-negative-seed", ("test", "hello.vox", "--seed", "-5"), 2, ("argument --seed",)),
        Mistake("sim-negative-seed", ("sim", "--seed", "-5"), 2, ("argument --seed",)),
        Mistake("sim-port-out-of-range", ("sim", "--port", "70000"), 2,
                ("argument --port: expected a whole number from 0 to 65535, found 70000",)),
        Mistake("runs-limit-zero", ("runs", "--limit", "0"), 2,
                ("argument --limit: expected a whole number of at least 1",)),
        Mistake("runs-limit-negative", ("runs", "--limit", "-1"), 2, ("argument --limit",), store=True),
        Mistake("worker-no-concurrency", ("worker", "--db", UNREACHABLE, "--concurrency", "0"), 2,
                ("argument --concurrency: expected a whole number of at least 1",)),
        Mistake("worker-heartbeat-nan", ("worker", "--db", UNREACHABLE, "--heartbeat", "nan"), 2,
                ("argument --heartbeat: expected a number of seconds, greater than 0, found 'nan'",)),
        Mistake("lsp-negative-debounce", ("lsp", "--debounce-ms", "-5"), 2, ("argument --debounce-ms",)),
        Mistake("lsp-log-file-in-a-folder-not-there", ("lsp", "--log-file", "/proc/voxc/lsp.log"), 2,
                ("cannot write the log to /proc/voxc/lsp.log",)),
        Mistake("check-unknown-format", ("check", "hello.vox", "--format", "xml"), 2,
                ("argument --format: invalid choice",)),
        Mistake("unknown-command", ("init",), 2, ("invalid choice: 'init'",)),
        Mistake("no-command", (), 2, ("usage: voxc",)),
        # Flags that contradict each other.
        Mistake("run-sim-and-live", ("run", "hello.vox", *RUN_OK, "--live"), 2,
                ("argument --live: not allowed with argument --sim",)),
        Mistake("run-without-file", ("run", "--sim"), 2, ("say which program to run",)),
        Mistake("run-submit-without-db", ("run", "hello.vox", *RUN_OK, "--submit"), 2,
                ("--submit needs the fleet's database",)),
        Mistake("run-submit-not-durable",
                ("run", "hello.vox", *RUN_OK, "--submit", "--no-durable", "--db", UNREACHABLE), 2,
                ("--submit and --no-durable cannot go together",)),
        Mistake("resume-with-seed", ("run", "--resume", "done1", "--seed", "3"), 2,
                ("--seed cannot be given with --resume",), store=True),
        Mistake("resume-not-durable", ("run", "--resume", "wait1", "--no-durable"), 2,
                ("--no-durable cannot be given with --resume",), store=True),
        Mistake("resume-with-input", ("run", "--resume", "wait1", "--input", "{}"), 2,
                ("--input cannot be given with --resume",), store=True),
        Mistake("approve-deny-and-already-done", ("approve", "wait1", "--deny", "--already-done"), 2,
                ("argument --already-done: not allowed with argument --deny",), store=True),
        Mistake("approve-result-alone", ("approve", "wait1", "--result", '"sent"'), 2,
                ("--result goes with --already-done",), store=True),
        Mistake("approve-already-done-without-result", ("approve", "wait1", "--already-done"), 2,
                ("--already-done --result JSON",), store=True),
        Mistake("approve-result-not-json", ("approve", "wait1", "--already-done", "--result", "sent"), 2,
                ("--result is not valid JSON",), store=True),
        Mistake("approve-result-nan", ("approve", "wait1", "--already-done", "--result", '{"ok": NaN}'), 2,
                ("--result $.ok: NaN is not a JSON number",), store=True),
        Mistake("approve-already-done-for-a-call-not-begun", ("approve", "wait1", "--already-done", "--result", '"x"'),
                2, ("--already-done answers a call interrupted by a crash",), store=True),
        Mistake("approve-unknown-step", ("approve", "wait1", "--step", "notify.s9"), 2,
                ("run `wait1` does not wait at `notify.s9`; it waits at: notify.s0.send",), store=True),
        Mistake("fmt-stdin-two-files", ("fmt", "--stdin", "a.vox", "b.vox"), 2, ("--stdin takes at most one FILE",)),
        Mistake("fmt-nothing-to-format", ("fmt",), 2, ("fmt needs a FILE to format, or --stdin",)),
        Mistake("runs-show-without-id", ("runs", "show"), 2, ("say which run: voxc runs show RUN_ID",), store=True),
        Mistake("plan-unknown-flow", ("plan", "hello.vox", "--flow", "nope"), 2, ("no flow named `nope`",)),
    ]


def run_id_mistakes() -> list[Mistake]:
    return [
        Mistake("runs-show-unknown-id", ("runs", "show", "nosuch"), 2, ("there is no run `nosuch`",), store=True),
        Mistake("approve-unknown-id", ("approve", "nosuch"), 2, ("there is no run `nosuch`",), store=True),
        Mistake("resume-unknown-id", ("run", "--resume", "nosuch"), 2, ("there is no run `nosuch`",), store=True),
        Mistake("receipts-verify-unknown-id", ("receipts", "verify", "nosuch"), NO_RECEIPTS,
                ("the ledger in .vox/ holds no receipts of run `nosuch`",), store=True, report=True),
        Mistake("receipts-list-unknown-id", ("receipts", "list", "nosuch"), 0,
                ("the ledger in .vox/ holds no receipts of run `nosuch`",), store=True, unchanged=True),
        Mistake("approve-a-run-not-waiting", ("approve", "done1"), 1,
                ("run `done1` is not waiting for a person (it is ok)",), store=True),
        Mistake("runs-without-a-store", ("runs",), 2, ("no runs in .vox/",)),
        Mistake("approve-without-a-store", ("approve", "wait1"), 2, ("no runs in .vox/",)),
        Mistake("resume-without-a-store", ("run", "--resume", "wait1"), 2, ("no runs in .vox/",)),
        Mistake("receipts-without-a-store", ("receipts", "verify", "wait1"), 2, ("no receipt ledger in .vox/",)),
        Mistake("run-id-taken-by-another-input", ("run", "hello.vox", "--sim", "--input", '{"name": "Bo"}', "--run-id",
                                                  "done1"), 2,
                ("run id `done1` is already used by a run of another input",), store=True),
    ]


def state_mistakes() -> list[Mistake]:
    """Where runs are kept. Each starts next to an existing state folder, which must come out as
    it went in, as must the file or folder wrongly named."""
    run = ("run", "hello.vox", *RUN_OK)
    return [
        Mistake("state-dir-is-a-file", (*run, "--state-dir", "hello.vox"), 2,
                ("cannot keep runs in hello.vox: it is a file, not a folder",), store=True),
        Mistake("state-dir-under-a-file", (*run, "--state-dir", "hello.vox/state"), 2,
                ("cannot keep runs in hello.vox/state: ", "hello.vox is a file, not a folder"), store=True),
        Mistake("state-dir-empty", (*run, "--state-dir", ""), 2, ("--state-dir is empty",), store=True),
        Mistake("state-dir-in-proc", (*run, "--state-dir", "/proc/voxc-state"), 2,
                ("cannot keep runs in /proc/voxc-state: ",), store=True),
        Mistake("state-dir-proc-folder", (*run, "--state-dir", "/proc/self"), 2,
                ("cannot keep runs in /proc/self: ",), store=True),
        Mistake("state-dir-read-only", (*run, "--state-dir", "ro/state"), 2,
                ("cannot keep runs in ro/state: Permission denied",), setup=read_only_folder, store=True,
                skip="root writes in a read-only folder (the /proc cases stand in)" if AS_ROOT else None),
        Mistake("state-dir-env-is-a-file", run, 2, ("cannot keep runs in hello.vox: it is a file",),
                env=(("VOX_STATE_DIR", "hello.vox"),), store=True),
        Mistake("state-dir-is-a-file-not-durable", (*run, "--no-durable", "--state-dir", "hello.vox"), 2,
                ("cannot keep runs in hello.vox: it is a file",), store=True),
        Mistake("runs-state-dir-is-a-file", ("runs", "--state-dir", "hello.vox"), 2,
                ("--state-dir hello.vox is a file, not a folder of runs",), store=True),
        Mistake("approve-state-dir-is-a-file", ("approve", "wait1", "--state-dir", "hello.vox"), 2,
                ("--state-dir hello.vox is a file, not a folder of runs",), store=True),
        Mistake("approve-state-dir-proc", ("approve", "wait1", "--state-dir", "/proc/self"), 2,
                ("no runs in /proc/self/",), store=True),
        Mistake("receipts-state-dir-is-a-file", ("receipts", "verify", "wait1", "--state-dir", "hello.vox"), 2,
                ("no receipt ledger in hello.vox/",), store=True),
        # --db: a URL that is no store, or a store that does not open; never created by a reader.
        Mistake("run-db-without-scheme", (*run, "--db", "runs.db"), 2, ("--db: store URL 'runs.db' has no scheme",),
                store=True),
        Mistake("run-db-unknown-scheme", (*run, "--db", "mysql://localhost/runs"), 2,
                ("unsupported scheme 'mysql'",), store=True),
        Mistake("run-db-unreachable", (*run, "--db", UNREACHABLE), 2,
                (f"cannot open the database {UNREACHABLE} (--db): connection failed",), store=True),
        Mistake("run-db-password-hidden", (*run, "--db", "postgresql://ada:hunter2@127.0.0.1:9/none"), 2,
                ("cannot open the database postgresql://ada:***@127.0.0.1:9/none",), hides=("hunter2",), store=True),
        Mistake("run-db-sqlite-folder", (*run, "--db", "sqlite:///."), 2,
                ("sqlite:///.", "unable to open database file"), store=True),
        Mistake("submit-db-unreachable", (*run, "--submit", "--db", UNREACHABLE), 2,
                ("cannot open the database",), env=tuple(FLEET_KEYS.items()), store=True),
        Mistake("runs-db-without-scheme", ("runs", "--db", "runs.db"), 2, ("has no scheme",), store=True),
        Mistake("runs-db-sqlite-missing", ("runs", "--db", "sqlite:///runs.sqlite"), 2,
                ("there is no database file runs.sqlite",), store=True),
        Mistake("approve-db-unreachable", ("approve", "wait1", "--db", UNREACHABLE), 2,
                ("cannot open the database",), store=True),
        Mistake("receipts-db-without-scheme", ("receipts", "verify", "wait1", "--db", "ledger.db"), 2,
                ("--db: store URL 'ledger.db' has no scheme",), store=True),
        Mistake("receipts-db-sqlite-missing", ("receipts", "list", "wait1", "--db", "sqlite:///ledger.sqlite"), 2,
                ("there is no database file ledger.sqlite",), store=True),
        Mistake("receipts-db-unreachable", ("receipts", "verify", "wait1", "--db", UNREACHABLE), 2,
                ("cannot open the database",), store=True),
        Mistake("worker-db-without-scheme", ("worker", "--db", "fleet.db"), 2, ("has no scheme",),
                env=tuple(FLEET_KEYS.items())),
        Mistake("worker-db-unreachable", ("worker", "--db", UNREACHABLE), 2, ("cannot open the database",),
                env=tuple(FLEET_KEYS.items())),
    ]


MISTAKES = [*program_file_mistakes(), *input_mistakes(), *flag_mistakes(), *run_id_mistakes(), *state_mistakes()]


def test_every_case_has_its_own_name():
    names = [m.id for m in MISTAKES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.id for m in MISTAKES])
def test_a_mistake_is_answered_with_its_exit_status_a_message_and_no_loss(mistake: Mistake, tmp_path,
                                                                         request):
    if mistake.skip:
        pytest.skip(mistake.skip)
    folder = tmp_path / "work"
    assert ROOT not in folder.parents and folder.resolve() != ROOT  # as a user runs it: outside the repository
    if mistake.store:
        shutil.copytree(request.getfixturevalue("store_template"), folder, symlinks=True)
    else:
        folder.mkdir()
        for name, text in PROGRAMS.items():
            (folder / name).write_text(text, encoding="utf-8")
    if mistake.setup is not None:
        mistake.setup(folder)
    try:
        before = snapshot(folder)
        done = voxc(folder, *mistake.argv, env=dict(mistake.env), stdin=b"caf\xe9")
        err = done.stderr.decode("utf-8", "replace")
        assert done.returncode == mistake.code, err
        assert "Traceback" not in err and "voxc: internal error" not in err, err
        said = err + done.stdout.decode("utf-8", "replace") if mistake.report else err
        for text in mistake.says:
            assert text in said, said
        for text in mistake.hides:
            assert text not in err and text not in done.stdout.decode("utf-8", "replace")
        if mistake.unchanged if mistake.unchanged is not None else mistake.code not in (0, 4):
            assert snapshot(folder) == before, "a refused command changed the folder"
    finally:
        for path in (folder / "secret.vox", folder / "ro"):  # let the folder be cleaned up
            if path.exists():
                os.chmod(path, 0o755)


# ---- output that cannot be written -------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_full_disk_on_stdout_is_exit_2_not_a_bug(tmp_path):
    (tmp_path / "hello.vox").write_text(HELLO, encoding="utf-8")
    with open("/dev/full", "wb") as full:
        done = voxc(tmp_path, "plan", "hello.vox", "--json", stdout=full)
    assert done.returncode == 2
    assert done.stderr.decode() == "voxc: error: cannot write to standard output: No space left on device\n"


def test_a_closed_stdout_is_not_a_bug(tmp_path):
    (tmp_path / "hello.vox").write_text(HELLO, encoding="utf-8")
    done = subprocess.run(f"exec '{VOXC}' check hello.vox >&-", shell=True, cwd=tmp_path, capture_output=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0 and done.stderr == b""


# ---- a byte-order mark ---------------------------------------------------------------------------

BOM = b"\xef\xbb\xbf"


def test_a_bom_before_a_leading_comment_is_ignored(tmp_path):
    (tmp_path / "bom.vox").write_bytes(BOM + b"// a program saved by a Windows editor\n" + HELLO.encode())
    for command in (("check",), ("plan",), ("test",)):
        done = voxc(tmp_path, *command, "bom.vox")
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
        assert b"V0015" not in done.stdout + done.stderr


def test_positions_after_a_bom_are_those_the_user_sees(tmp_path):
    text = b"// c\nflow f() -> str {\n  return tickt\n}\n"
    (tmp_path / "plain.vox").write_bytes(text)
    (tmp_path / "bom.vox").write_bytes(BOM + text)
    plain = voxc(tmp_path, "check", "plain.vox").stdout.decode()
    bom = voxc(tmp_path, "check", "bom.vox").stdout.decode()
    assert " --> plain.vox:3:10\n" in plain
    assert bom == plain.replace("plain.vox", "bom.vox")


def test_fmt_keeps_a_bom_and_formats_what_follows(tmp_path):
    path = tmp_path / "bom.vox"
    path.write_bytes(BOM + b"// c\nlabel   pii\n")
    done = voxc(tmp_path, "fmt", "bom.vox")
    assert done.returncode == 0, done.stderr
    assert path.read_bytes() == BOM + b"// c\nlabel pii\n"
    assert voxc(tmp_path, "fmt", "--check", "bom.vox").returncode == 0
    piped = voxc(tmp_path, "fmt", "--stdin", stdin=BOM + b"label   pii\n")
    assert piped.returncode == 0 and piped.stdout == BOM + b"label pii\n"


def test_fmt_leaves_a_file_with_errors_and_a_bom_byte_identical(tmp_path):
    path = tmp_path / "bom.vox"
    path.write_bytes(BOM + SYNTAX_ERROR.encode())
    done = voxc(tmp_path, "fmt", "bom.vox")
    assert done.returncode == 1 and b"error[V0" in done.stderr
    assert path.read_bytes() == BOM + SYNTAX_ERROR.encode()


# ---- the limits: exact, in one place, documented ---------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_json_nesting_is_read_up_to_the_limit_and_refused_past_it():
    assert inputs.read_json_text(nested(MAX_JSON_DEPTH), "--input") is not None
    with pytest.raises(InputError, match=rf"nested deeper than {MAX_JSON_DEPTH} arrays"):
        inputs.read_json_text(nested(MAX_JSON_DEPTH + 1), "--input")


def test_json_nesting_counts_only_real_brackets():
    """Brackets inside strings, escaped quotes included, are text, not nesting."""
    text = json.dumps({"note": "[" * 500 + '\\"{' * 500, "xs": [[1], [2]]})
    assert inputs.read_json_text(text, "--input")["xs"] == [[1], [2]]


def test_json_nesting_path_names_keys_that_are_not_plain_names():
    text = '{"a b": ' + '{"x": ' * MAX_JSON_DEPTH + "1" + "}" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(InputError, match=r'^--input \$\["a b"\]\.x\.x\.x<92 more>\.x'):
        inputs.read_json_text(text, "--input")


def test_integers_are_read_up_to_the_limit_of_digits():
    largest = int("9" * MAX_JSON_INT_DIGITS)
    assert inputs.read_json_text(f'{{"n": {largest}}}', "--input") == {"n": largest}
    assert float(largest)  # the reason for the limit: every integer read also converts to a float
    with pytest.raises(InputError, match=rf"^--input \$\.n: an integer of {MAX_JSON_INT_DIGITS + 1} digits"):
        inputs.read_json_text(f'{{"n": -{largest}0}}', "--input")


def test_a_program_is_read_up_to_the_limit(tmp_path):
    path = tmp_path / "big.vox"
    path.write_bytes(b" " * MAX_SOURCE_BYTES)
    assert len(common.read_source(str(path))) == MAX_SOURCE_BYTES
    path.write_bytes(b" " * (MAX_SOURCE_BYTES + 1))
    with pytest.raises(InputError, match="larger than 8 MiB"):
        common.read_source(str(path))


def test_a_pipe_with_a_writer_is_read():
    """`voxc check <(generate)`: a pipe that something writes to is a file like any other."""
    read, write_end = os.pipe()
    try:
        os.write(write_end, b"label pii\n")
        os.close(write_end)
        write_end = None
        assert common.read_source(f"/dev/fd/{read}") == "label pii\n"
    finally:
        os.close(read)
        if write_end is not None:
            os.close(write_end)


def test_the_limits_are_documented_in_the_runtime_spec():
    from vox.cli import limits

    spec = (ROOT / "spec" / "runtime.md").read_text(encoding="utf-8")
    assert "cli/limits.py" in spec
    assert f"| {limits.MAX_SOURCE_BYTES // 2**20} MiB |" in spec
    assert f"| {limits.MAX_JSON_BYTES // 2**20} MiB |" in spec
    assert f"| {limits.MAX_JSON_DEPTH} |" in spec
    assert f"| {limits.MAX_JSON_INT_DIGITS} |" in spec
    assert limits.MAX_SEED == 2**63 - 1 and "0 to 2^63 − 1" in spec


def test_the_doctests_of_the_readers_pass():
    import doctest

    for module in (common, inputs):
        assert doctest.testmod(module).failed == 0, module.__name__
