"""`voxc` end to end: `main([...])` in-process, and once as a real subprocess.

`fmt` runs against a stand-in formatter (installed with monkeypatch) so that these tests pin
down the command's behaviour, not the formatter's layout; one test runs the real formatter
when it is there.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import vox.cli.check
from vox.cli.main import main
from vox.compiler.diagnostics.model import warning
from vox.compiler.source import Span
from vox.compiler.syntax.parser import parse_module

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.vox"))

CLEAN = "label pii\n"
UNKNOWN_NAME = "flow f() -> str {\n  return tickt\n}\n"
SYNTAX_ERROR = "agent a(x: str) -> str {\n  model = mini\n}\n"


@pytest.fixture
def write(tmp_path):
    """Write a file under tmp_path and return its path as a string."""

    def write(name: str, text: str | bytes) -> str:
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8", newline="")
        return str(path)

    return write


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """``main(argv)`` and what it printed."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, expected: str) -> None:
    assert err == f"voxc: error: {expected}\n"


# ---- check ------------------------------------------------------------------------------------


def test_clean_file_exits_0(capsys, write):
    code, out, err = run(capsys, "check", write("ok.vox", CLEAN))
    assert (code, out, err) == (0, "ok: no problems in 1 file\n", "")


def test_file_with_an_error_exits_1_and_shows_the_code(capsys, write):
    path = write("bad.vox", UNKNOWN_NAME)
    code, out, err = run(capsys, "check", path)
    assert code == 1 and err == ""
    assert out.startswith("error[V1001]: unknown name `tickt`\n")
    assert f" --> {path}:2:10\n" in out
    assert "2 |   return tickt\n  |          ^^^^^\n" in out
    assert out.endswith("\nerror: 1 error in 1 file\n")


def test_warnings_alone_exit_0(capsys, write, monkeypatch):
    real = vox.cli.check.check_source

    def with_a_warning(path, text, cache=None):
        result = real(path, text)
        extra = warning("V1041", "this value is computed and then dropped", path, Span(0, 5))
        return dataclasses.replace(result, diagnostics=result.diagnostics + (extra,))

    monkeypatch.setattr(vox.cli.check, "check_source", with_a_warning)
    code, out, _ = run(capsys, "check", write("w.vox", CLEAN))
    assert code == 0
    assert out.startswith("warning[V1041]")
    assert out.endswith("warning: 1 warning in 1 file\n")


def test_several_files_are_reported_in_order_with_one_summary(capsys, write):
    bad, ok = write("bad.vox", UNKNOWN_NAME), write("ok.vox", CLEAN)
    code, out, _ = run(capsys, "check", bad, ok, bad)
    assert code == 1
    assert out.count("error[V1001]") == 1  # a file named twice is checked once
    assert out.endswith("error: 1 error in 2 files\n")


def test_json_output_parses_and_has_the_fields(capsys, write):
    path = write("bad.vox", UNKNOWN_NAME)
    code, out, err = run(capsys, "check", "--format", "json", path)
    assert code == 1 and err == ""
    (item,) = json.loads(out)["diagnostics"]
    assert set(item) == {"code", "severity", "message", "file", "range", "labels", "notes", "help", "fix"}
    assert item["code"] == "V1001" and item["severity"] == "error" and item["file"] == path
    assert item["range"] == {"start": {"line": 1, "character": 9}, "end": {"line": 1, "character": 14}}


def test_json_includes_fixes(capsys, write):
    code, out, _ = run(capsys, "check", "--format=json", write("s.vox", SYNTAX_ERROR))
    assert code == 1
    (item,) = json.loads(out)["diagnostics"]
    assert item["code"] == "V0011"
    assert item["fix"]["edits"] == [
        {"range": {"start": {"line": 1, "character": 7}, "end": {"line": 1, "character": 9}}, "new_text": ":"}
    ]


def test_json_for_a_clean_file(capsys, write):
    code, out, _ = run(capsys, "check", "--format", "json", write("ok.vox", CLEAN))
    assert code == 0 and json.loads(out) == {"diagnostics": []}


def test_missing_file_exits_2_with_one_line(capsys, tmp_path):
    missing = str(tmp_path / "x.vox")
    code, out, err = run(capsys, "check", missing)
    assert code == 2 and out == ""
    assert_one_line_error(err, f"cannot read {missing}: No such file or directory")


def test_non_utf8_file_exits_2_with_one_line(capsys, write):
    path = write("latin1.vox", "label caf\xe9\n".encode("latin-1"))
    code, _, err = run(capsys, "check", path)
    assert code == 2
    assert_one_line_error(err, f"cannot read {path}: not valid UTF-8 (byte 0xe9 at offset 9)")


def test_a_directory_exits_2(capsys, tmp_path):
    code, _, err = run(capsys, "check", str(tmp_path))
    assert code == 2
    assert err.startswith(f"voxc: error: cannot read {tmp_path}: ") and err.count("\n") == 1


def test_readable_files_are_still_checked_next_to_a_missing_one(capsys, write, tmp_path):
    code, out, err = run(capsys, "check", str(tmp_path / "nope.vox"), write("bad.vox", UNKNOWN_NAME))
    assert code == 2
    assert "error[V1001]" in out
    assert err.count("\n") == 1


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_check_clean(capsys, example):
    code, out, _ = run(capsys, "check", str(example))
    assert code == 0, out


def test_reference_example_checks_clean(capsys):
    code, out, _ = run(capsys, "check", str(ROOT / "examples" / "reference.vox"))
    assert (code, out) == (0, "ok: no problems in 1 file\n")


def test_color_is_off_unless_asked(capsys, write):
    path = write("bad.vox", UNKNOWN_NAME)
    assert "\x1b" not in run(capsys, "check", path)[1]  # captured stdout is not a terminal
    assert "\x1b" not in run(capsys, "check", "--color", "never", path)[1]
    assert "\x1b[" in run(capsys, "check", "--color", "always", path)[1]


# ---- usage and failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["check"],
        ["check", "--format", "xml", "x.vox"],
        ["check", "--color", "sometimes", "x.vox"],
        ["frobnicate"],
        [],
    ],
)
def test_usage_errors_exit_2_without_a_traceback(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert "usage: voxc" in err and "Traceback" not in err


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("voxc ") and out.count("\n") == 1


def test_help_exits_0(capsys):
    code, out, _ = run(capsys, "check", "--help")
    assert code == 0 and "--format" in out


def test_an_internal_error_exits_3_and_asks_for_a_report(capsys, write, monkeypatch):
    def broken(path, text, cache=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(vox.cli.check, "check_source", broken)
    monkeypatch.delenv("VOXC_BACKTRACE", raising=False)
    code, _, err = run(capsys, "check", write("ok.vox", CLEAN))
    assert code == 3
    assert err.startswith("voxc: internal error: RuntimeError: boom\n")
    assert "report" in err and "Traceback" not in err


def test_subprocess_runs_the_module(tmp_path):
    bad = tmp_path / "bad.vox"
    bad.write_text(UNKNOWN_NAME, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    command = [sys.executable, "-m", "vox.cli.main"]
    done = subprocess.run([*command, "check", str(bad)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "error[V1001]" in done.stdout and "\x1b" not in done.stdout
    missing = subprocess.run([*command, "check", str(tmp_path / "x.vox")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2
    assert missing.stderr == f"voxc: error: cannot read {tmp_path / 'x.vox'}: No such file or directory\n"


# ---- fmt --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StandInResult:
    text: str | None
    diagnostics: tuple


def stand_in_format(text: str, path: str) -> StandInResult:
    """A formatter for these tests: refuses syntax errors, else strips trailing blanks."""
    parsed = parse_module(path, text)
    if any(d.is_error for d in parsed.diagnostics):
        return StandInResult(None, tuple(parsed.diagnostics))
    return StandInResult("".join(line.rstrip() + "\n" for line in text.splitlines()), ())


@pytest.fixture
def formatter(monkeypatch):
    monkeypatch.setattr("vox.compiler.format.format_source", stand_in_format, raising=False)


def test_fmt_rewrites_a_file_atomically_and_keeps_its_mode(capsys, write, formatter, tmp_path):
    path = write("a.vox", "label pii   \n")
    os.chmod(path, 0o640)
    code, out, err = run(capsys, "fmt", path)
    assert (code, out, err) == (0, "", f"reformatted {path}\n")
    assert Path(path).read_text(encoding="utf-8") == "label pii\n"
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.vox"]  # no temporary file left


def test_fmt_leaves_a_formatted_file_alone(capsys, write, formatter):
    path = write("a.vox", CLEAN)
    before = os.stat(path).st_mtime_ns
    assert run(capsys, "fmt", path) == (0, "", "")
    assert os.stat(path).st_mtime_ns == before


def test_fmt_turns_crlf_into_lf(capsys, write, formatter):
    path = write("a.vox", "label pii\r\n")
    assert run(capsys, "fmt", path)[0] == 0
    assert Path(path).read_bytes() == b"label pii\n"


def test_fmt_check_lists_files_that_would_change_and_writes_nothing(capsys, write, formatter):
    messy, tidy = write("messy.vox", "label pii   \n"), write("tidy.vox", CLEAN)
    code, out, err = run(capsys, "fmt", "--check", messy, tidy)
    assert (code, out, err) == (1, f"{messy}\n", "")
    assert Path(messy).read_text(encoding="utf-8") == "label pii   \n"
    assert run(capsys, "fmt", "--check", tidy) == (0, "", "")


def test_fmt_never_rewrites_a_file_with_syntax_errors(capsys, write, formatter):
    path = write("s.vox", SYNTAX_ERROR + "   \n")
    code, out, err = run(capsys, "fmt", path)
    assert code == 1 and out == ""
    assert "error[V0011]" in err
    assert Path(path).read_text(encoding="utf-8") == SYNTAX_ERROR + "   \n"


def test_fmt_stdin_writes_the_formatted_text_to_stdout(capsys, formatter, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"label pii   \n"), encoding="utf-8"))
    assert run(capsys, "fmt", "--stdin") == (0, "label pii\n", "")


def test_fmt_stdin_check(capsys, formatter, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"label pii   \n"), encoding="utf-8"))
    assert run(capsys, "fmt", "--stdin", "--check", "named.vox") == (1, "named.vox\n", "")


def test_fmt_stdin_with_syntax_errors_prints_nothing_on_stdout(capsys, formatter, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(SYNTAX_ERROR.encode()), encoding="utf-8"))
    code, out, err = run(capsys, "fmt", "--stdin")
    assert code == 1 and out == "" and "<stdin>:2:9" in err


def test_fmt_missing_file_and_missing_arguments_exit_2(capsys, formatter, tmp_path):
    missing = str(tmp_path / "x.vox")
    code, _, err = run(capsys, "fmt", missing)
    assert code == 2
    assert_one_line_error(err, f"cannot read {missing}: No such file or directory")
    code, _, err = run(capsys, "fmt")
    assert code == 2
    assert_one_line_error(err, "fmt needs a FILE to format, or --stdin")


def test_fmt_with_the_real_formatter_is_stable_on_the_examples(capsys, tmp_path):
    for example in EXAMPLES:
        copy = tmp_path / example.name
        copy.write_text(example.read_text(encoding="utf-8"), encoding="utf-8")
        code, _, err = run(capsys, "fmt", str(copy))
        assert code == 0, err
        assert run(capsys, "fmt", "--check", str(copy)) == (0, "", ""), example.name


# ---- run: the flow's input, through the installed console script -------------------------------

VOXC = Path(sys.executable).parent / "voxc"


def voxc(cwd: Path, *argv: str | bytes) -> subprocess.CompletedProcess:
    """The installed `voxc` console script, run in ``cwd`` (outside the repository) as a user would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOX")}
    return subprocess.run([str(VOXC), *argv], cwd=cwd, env=env, capture_output=True, timeout=120)


@pytest.fixture
def hello(tmp_path) -> Path:
    (tmp_path / "hello.vox").write_text((ROOT / "examples" / "hello.vox").read_text(encoding="utf-8"))
    return tmp_path


def assert_usage_error_before_any_run(done: subprocess.CompletedProcess, cwd: Path, expected: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stdout == b""
    assert done.stderr.decode() == f"voxc: error: {expected}\n"
    assert not (cwd / ".vox").exists()  # no run was started, so nothing was journaled


def test_run_without_input_for_a_flow_with_parameters_is_a_usage_error(hello):
    done = voxc(hello, "run", "hello.vox", "--sim")
    assert_usage_error_before_any_run(
        done, hello, "flow `hello` needs its arguments (`name`): pass them as a JSON object, as in "
                     "--input '{\"name\": ...}' (or --input @FILE.json)")


def test_run_input_with_a_lone_surrogate_escape_is_an_input_error(hello):
    done = voxc(hello, "run", "hello.vox", "--sim", "--input", '{"name": "\\ud800"}')
    assert_usage_error_before_any_run(
        done, hello, "--input is not valid Unicode text: it holds a lone surrogate (U+D800); write text as UTF-8, "
                     "and a \\ud800-\\udbff escape only followed by a \\udc00-\\udfff one")


def test_run_input_file_with_surrogate_bytes_is_an_input_error(hello):
    (hello / "args.json").write_bytes(b'{"name": "\xed\xa0\x80"}')  # U+D800 encoded as if it were text
    done = voxc(hello, "run", "hello.vox", "--sim", "--input", "@args.json")
    assert_usage_error_before_any_run(done, hello, "cannot read args.json: not valid UTF-8 (byte 0xed at offset 10)")


def test_run_input_argument_that_is_not_utf8_is_an_input_error(hello):
    done = voxc(hello, "run", "hello.vox", "--sim", "--input", b'{"name": "\xff"}')
    assert done.returncode == 2 and b"lone surrogate (U+DCFF)" in done.stderr, done.stderr


@pytest.mark.parametrize("command", [("worker",), ("run", "hello.vox", "--input", '{"name": "Ada"}', "--submit")])
def test_a_fleet_member_without_the_shared_keys_is_refused(hello, command):
    """A key file in one machine's state folder would make its runs unreadable and its receipts
    unverifiable on the others: a fleet takes its keys from the environment, or does not start."""
    done = voxc(hello, *command, "--db", "postgresql://nobody@127.0.0.1:9/none")
    assert done.returncode == 2, done.stderr
    assert b"VOX_STATE_KEY" in done.stderr and b"VOX_SIGNING_KEY" in done.stderr
    assert not (hello / ".vox").exists()
