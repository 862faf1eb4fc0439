"""What every `voxc` command shares: exit codes, streams, reading and writing files, colour.

Commands never let a bad input become a traceback: a file that cannot be read or written is an
:class:`InputError` with a one-line message, which the command prints and turns into exit 2.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TextIO

from vox.compiler.diagnostics.model import Diagnostic
from vox.compiler.diagnostics.render import render_text
from vox.compiler.source import SourceFile

EXIT_OK = 0  # nothing wrong (warnings allowed)
EXIT_FAILED = 1  # errors in the input, or `fmt --check` found files to change
EXIT_USAGE = 2  # bad flags, or a file that cannot be read or written
EXIT_INTERNAL = 3  # a bug in voxc itself


@dataclass(frozen=True)
class Streams:
    """Where a command reads and writes; passed in so tests and embedders can redirect them."""

    out: TextIO
    err: TextIO
    inp: TextIO

    def fail(self, message: str) -> None:
        """Print ``voxc: error: message`` on stderr."""
        print(f"voxc: error: {message}", file=self.err)


class InputError(Exception):
    """A file named by the user cannot be used. ``str()`` is the one-line reason."""


def read_source(path: str) -> str:
    """The text of ``path``, decoded as UTF-8 with its newlines as they are."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    return decode_source(data, path)


def read_stdin(stream: TextIO) -> str:
    """All of standard input, decoded as UTF-8."""
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        return stream.read()
    return decode_source(buffer.read(), "<stdin>")


def decode_source(data: bytes, name: str) -> str:
    """``data`` as UTF-8, or an InputError saying where it stops being UTF-8.

    >>> decode_source(b"ok", "a.vox")
    'ok'
    >>> try:
    ...     decode_source(b"a\\xffb", "a.vox")
    ... except InputError as e:
    ...     print(e)
    cannot read a.vox: not valid UTF-8 (byte 0xff at offset 1)
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        reason = f"not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start})"
        raise InputError(f"cannot read {name}: {reason}") from None


def normalize_newlines(text: str) -> str:
    r"""``\r\n`` and lone ``\r`` as ``\n``, as Python's text mode reads them.

    >>> normalize_newlines("a\r\nb\rc\n")
    'a\nb\nc\n'
    """
    return text.replace("\r\n", "\n").replace("\r", "\n")


def write_atomically(path: str, text: str) -> None:
    """Replace the file at ``path`` (following symlinks) with ``text`` in UTF-8, all or nothing.

    The text goes to a temporary file in the same folder, which then replaces the original, so a
    crash never leaves a half-written file. The original's permission bits are kept (a new file
    gets 0644).
    """
    target = os.path.realpath(path)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode) if os.path.exists(target) else 0o644
        folder, name = os.path.split(target)
        fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except OSError as e:
        _remove_quietly(temp)
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        _remove_quietly(temp)
        raise


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def use_color(choice: str, stream: TextIO, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether to colour output for ``--color auto|always|never``.

    ``auto`` colours only a terminal, and never when ``NO_COLOR`` is set or ``TERM`` is ``dumb``.

    >>> import io
    >>> use_color("auto", io.StringIO(), {}), use_color("always", io.StringIO(), {"NO_COLOR": "1"})
    (False, True)
    """
    if choice != "auto":
        return choice == "always"
    if environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def print_diagnostics(
    diagnostics: Iterable[Diagnostic], sources: Mapping[str, SourceFile], stream: TextIO, color: bool
) -> None:
    """Each diagnostic in text form followed by a blank line, as rustc prints them."""
    for d in diagnostics:
        print(render_text(d, sources[d.path], color=color, sources=sources), file=stream)
        print(file=stream)


def compile_plan(path: str, streams: Streams, color_choice: str, errors_to: TextIO | None = None,
                 warnings_to: TextIO | None = None):
    """Check ``path`` and lower it to a plan: ``(plan, None)``, or ``(None, exit status)`` after
    saying why not. Diagnostics (errors, and warnings of a program that still compiles) are
    printed as `voxc check` prints them: to ``errors_to`` when there are errors, else to
    ``warnings_to`` (both default to stderr)."""
    from vox.compiler.api import check_source
    from vox.compiler.diagnostics.render import summary_line
    from vox.compiler.plan import lower_plan

    try:
        text = read_source(path)
    except InputError as e:
        streams.fail(str(e))
        return None, EXIT_USAGE
    result = check_source(path, text)
    if result.diagnostics:
        to = (errors_to if not result.ok else warnings_to) or streams.err
        tint = use_color(color_choice, to)
        print_diagnostics(result.diagnostics, {result.source.path: result.source}, to, tint)
        print(summary_line(result.diagnostics, 1, color=tint), file=to)
        if not result.ok:
            return None, EXIT_FAILED
    return lower_plan(result), None
