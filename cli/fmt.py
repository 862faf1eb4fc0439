"""`voxc fmt FILE...`: rewrite files in the canonical layout.

stdout carries only data: with ``--check`` the paths that would change, one a line; with
``--stdin`` the formatted text. Diagnostics and progress (``reformatted x.vox``) go to stderr.

* A file with syntax errors is never rewritten: its diagnostics are printed and the exit status
  is 1.
* ``--check`` writes nothing, and exits 1 when any file would change.
* ``--stdin`` formats standard input to stdout; an optional FILE only names it in diagnostics.
* Files are written atomically (a temporary file, then ``os.replace``). Line endings become
  ``\\n``; a UTF-8 byte-order mark at the start is kept as it is.

Exit status: 0 when all is well, 1 for syntax errors or files that would change under
``--check``, 2 for a file that cannot be read or written.
"""

from __future__ import annotations

import argparse

from vox.cli.common import (
    BOM,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    InputError,
    Streams,
    normalize_newlines,
    print_diagnostics,
    read_source,
    read_stdin,
    use_color,
    write_atomically,
)
from vox.compiler.source import SourceFile

NAME = "fmt"
HELP = "rewrite Vox files in the canonical layout"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add `fmt`'s arguments."""
    parser.add_argument("files", nargs="*", metavar="FILE", help="a .vox file to format in place")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; list files that would change and exit 1 if any"
    )
    parser.add_argument(
        "--stdin", action="store_true", help="format standard input to standard output (FILE, if given, names it)"
    )


def run(args: argparse.Namespace, streams: Streams) -> int:
    """Format each file (or stdin) and return the exit status."""
    # Imported here so that every other command works even while the formatter is broken.
    from vox.compiler.format import format_source

    color = use_color(args.color, streams.err)
    if args.stdin:
        if len(args.files) > 1:
            streams.fail("--stdin takes at most one FILE, used as its name")
            return EXIT_USAGE
        name = args.files[0] if args.files else "<stdin>"
        return _format_stdin(name, args.check, streams, color, format_source)
    if not args.files:
        streams.fail("fmt needs a FILE to format, or --stdin")
        return EXIT_USAGE
    status = EXIT_OK
    for path in dict.fromkeys(args.files):
        status = max(status, _format_file(path, args.check, streams, color, format_source))
    return status


def _format_file(path: str, check: bool, streams: Streams, color: bool, format_source) -> int:
    """Format one file in place (or, with ``check``, only say whether it would change)."""
    try:
        original = read_source(path, keep_bom=True)
    except InputError as e:
        streams.fail(str(e))
        return EXIT_USAGE
    formatted = _format_text(path, original, streams, color, format_source)
    if formatted is None:
        return EXIT_FAILED
    if formatted == original:
        return EXIT_OK
    if check:
        print(path, file=streams.out)
        return EXIT_FAILED
    try:
        write_atomically(path, formatted)
    except InputError as e:
        streams.fail(str(e))
        return EXIT_USAGE
    print(f"reformatted {path}", file=streams.err)
    return EXIT_OK


def _format_stdin(name: str, check: bool, streams: Streams, color: bool, format_source) -> int:
    """Format standard input to stdout (or, with ``check``, only say whether it would change)."""
    try:
        original = read_stdin(streams.inp, keep_bom=True)
    except InputError as e:
        streams.fail(str(e))
        return EXIT_USAGE
    formatted = _format_text(name, original, streams, color, format_source)
    if formatted is None:
        return EXIT_FAILED
    if check:
        if formatted == original:
            return EXIT_OK
        print(name, file=streams.out)
        return EXIT_FAILED
    streams.out.write(formatted)
    return EXIT_OK


def _format_text(path: str, original: str, streams: Streams, color: bool, format_source) -> str | None:
    """The formatted text, or None after printing the diagnostics of a file with syntax errors.

    A byte-order mark is set aside while formatting (positions count from the first character
    after it, as an editor shows them) and put back in front of the result."""
    bom = BOM if original.startswith(BOM) else ""
    text = normalize_newlines(original[len(bom):])
    result = format_source(text, path)
    if result.diagnostics:
        source = SourceFile(path, text)
        print_diagnostics(result.diagnostics, {path: source}, streams.err, color)
    return None if result.text is None else bom + result.text
