"""`voxc`, the command line: one module per command, wired here.

Each command module has ``NAME``, ``HELP``, ``configure(parser)`` and
``run(args, streams) -> int``; adding a command (``plan``, ``run``, ``test``, ``lsp``,
``worker``) is one module and one entry in :data:`COMMANDS`.

Exit status, for every command: 0 success, 1 the input has errors (or the command's check
failed), 2 bad usage or a file that cannot be read or written, 3 a bug in voxc. Bad input never
prints a traceback; a bug prints ``voxc: internal error: ...`` (and the traceback only when
``VOXC_BACKTRACE=1``).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from importlib.metadata import PackageNotFoundError, version

from vox.cli import approve, check, fmt, lsp, plan, receipts, run, runs, sim, test, worker
from vox.cli.common import EXIT_INTERNAL, EXIT_USAGE, GuardedOutput, OutputLost, Streams

COMMANDS = (check, fmt, plan, run, test, approve, runs, receipts, sim, worker, lsp)


def main(argv: list[str] | None = None) -> int:
    """Run `voxc` with ``argv`` (default: the process's arguments) and return its exit status."""
    # A descriptor the shell closed (`voxc check x.vox >&-`) is None here: write nowhere instead.
    out, err, inp = (stream if stream is not None else open(os.devnull, "r+", encoding="utf-8")
                     for stream in (sys.stdout, sys.stderr, sys.stdin))
    streams = Streams(out=GuardedOutput(out, "standard output"), err=err, inp=inp)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse has printed the usage error, or --help / --version
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(streams.err)
        return EXIT_USAGE
    try:
        status = args.run(args, streams)
        streams.out.flush()  # here, not at exit, so that a failure to write is reported
        return status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away, as with `voxc check ... | head`
        _silence_stdout()
        return 141  # what a shell reports for a process ended by SIGPIPE
    except OutputLost as e:  # a full disk or a closed descriptor: the environment's, not a bug
        _silence_stdout()
        streams.fail(str(e))
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        report_internal_error(exc, streams.err)
        return EXIT_INTERNAL


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one subcommand per entry in COMMANDS."""
    parser = argparse.ArgumentParser(
        prog="voxc",
        description="Vox: check, format, plan, run and test Vox programs.",
        epilog="exit status: 0 ok, 1 errors found, 2 usage or file errors, 3 internal error",
    )
    parser.add_argument("--version", action="version", version=f"voxc {package_version()}")
    parser.set_defaults(command=None)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--color", choices=("auto", "always", "never"), default="auto", help="colour diagnostics (default: auto)"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in COMMANDS:
        sub = commands.add_parser(
            command.NAME, help=command.HELP, description=command.__doc__, parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.configure(sub)
        sub.set_defaults(command=command.NAME, run=command.run)
    return parser


def package_version() -> str:
    """The installed version of voxc."""
    try:
        return version("voxc")
    except PackageNotFoundError:
        return "unknown"


def report_internal_error(exc: BaseException, stream) -> None:
    """Tell the user voxc itself failed, and how to report it."""
    print(f"voxc: internal error: {type(exc).__name__}: {exc}", file=stream)
    print(
        "voxc: this is a bug in voxc, not in your program; please report it with the command and "
        "input that caused it (set VOXC_BACKTRACE=1 to see the traceback)",
        file=stream,
    )
    if os.environ.get("VOXC_BACKTRACE") == "1":
        traceback.print_exception(exc, file=stream)


def _silence_stdout() -> None:
    """After the reader of stdout went away, point stdout at /dev/null so exit does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
