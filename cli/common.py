"""What every `voxc` command shares: exit codes, streams, reading and writing files, colour.

Commands never let a bad input become a traceback: a file that cannot be read or written is an
:class:`InputError` with a one-line message, which the command prints and turns into exit 2.
"""

from __future__ import annotations

import argparse
import math
import os
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TextIO

from vox.compiler.diagnostics.model import Diagnostic
from vox.compiler.diagnostics.render import render_text
from vox.cli.limits import MAX_SOURCE_BYTES
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


class OutputLost(Exception):
    """Standard output cannot be written (a full disk, a closed descriptor): the environment's
    doing, not a bug in voxc. ``str()`` is the one-line reason."""


class GuardedOutput:
    """A text stream whose failures to write, other than a reader gone away (``BrokenPipeError``,
    answered as SIGPIPE would be), are :class:`OutputLost`."""

    def __init__(self, stream: TextIO, name: str):
        self._stream = stream
        self._name = name

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputLost(f"cannot write to {self._name}: {e.strerror or e}") from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputLost(f"cannot write to {self._name}: {e.strerror or e}") from None

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


BOM = "\ufeff"  # a UTF-8 byte-order mark, as some Windows editors begin a file with


def read_source(path: str, keep_bom: bool = False, limit: int = MAX_SOURCE_BYTES, what: str = "a program") -> str:
    """The text of ``path``, decoded as UTF-8 with its newlines as they are.

    A byte-order mark at the start is dropped (``keep_bom`` keeps it, for `fmt` to write back),
    so that positions count from the first character the user sees. The file is read at most
    ``limit`` bytes far (``what`` names it in the message): `/dev/zero` is refused, not read
    until memory runs out.
    """
    text = decode_source(read_bytes(path, limit, what), path)
    return text if keep_bom else text.removeprefix(BOM)


def read_bytes(path: str, limit: int, what: str) -> bytes:
    """At most ``limit`` bytes of ``path``; an InputError for a folder, a larger file, or a named
    pipe that nothing writes to (opening one would otherwise wait for a writer forever)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise InputError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputError(f"cannot read {path}: it is a folder, not a file")
        if stat.S_ISREG(info.st_mode) and info.st_size > limit:
            raise InputError(_too_large(path, limit, what))
        chunks = []
        if stat.S_ISFIFO(info.st_mode):
            try:
                first = os.read(fd, 65536)
            except BlockingIOError:  # a writer is there and has not written yet: wait for it
                first = None
            if first == b"":
                raise InputError(f"cannot read {path}: it is a pipe with nothing written to it and no writer")
            chunks.append(first or b"")
        os.set_blocking(fd, True)
        size = len(chunks[0]) if chunks else 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise InputError(_too_large(path, limit, what))
        return b"".join(chunks)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    finally:
        os.close(fd)


def _too_large(path: str, limit: int, what: str) -> str:
    return f"cannot read {path}: it is larger than {limit // 2**20} MiB, the most voxc reads as {what}"


def read_stdin(stream: TextIO, keep_bom: bool = False) -> str:
    """All of standard input, decoded as UTF-8 (a leading byte-order mark dropped, unless
    ``keep_bom``)."""
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        text = stream.read()
    else:
        data = buffer.read(MAX_SOURCE_BYTES + 1)
        if len(data) > MAX_SOURCE_BYTES:
            raise InputError(_too_large("<stdin>", MAX_SOURCE_BYTES, "a program"))
        text = decode_source(data, "<stdin>")
    return text if keep_bom else text.removeprefix(BOM)


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


# ---- flag values that argparse's `type=int` would let through -------------------------------


def whole_number(low: int, high: int | None = None):
    """An argparse ``type``: a whole number from ``low`` (to ``high``), refused with the range.

    >>> whole_number(0, 9)("7")
    7
    >>> whole_number(0, 9)("-1")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: expected a whole number from 0 to 9, found -1
    """

    def parse(text: str) -> int:
        span = f"from {low} to {high}" if high is not None else f"of at least {low}"
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number {span}, found {_shown(text)}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected a whole number {span}, found {_abbreviated(text.strip())}")
        return value

    return parse


def duration_value(unit: str, positive: bool):
    """An argparse ``type``: a finite number of ``unit`` (greater than 0 when ``positive``, else
    0 or more); ``nan`` and ``inf`` are refused."""

    def parse(text: str) -> float:
        bound = "greater than 0" if positive else "0 or more"
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(f"expected a number of {unit}, {bound}, found {_shown(text)}")
        return value

    return parse


def _shown(text: str) -> str:
    return repr(_abbreviated(text))


def _abbreviated(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "..."


# ---- where runs are kept ---------------------------------------------------------------------


def usable_state_dir(path: str) -> None:
    """Make sure the state folder ``path`` is a folder voxc can write in (making it if need be),
    or an InputError saying why not, before a run starts or changes.

    A file, a path under a file, a read-only or virtual folder (`/proc`) is refused here, before
    anything in it is opened, so a mistyped ``--state-dir`` never leaves half a store behind.
    """
    if not path:
        raise InputError("--state-dir is empty: name the folder where runs are kept (default: .vox)")
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"cannot keep runs in {path}: it is a file, not a folder; name a folder with --state-dir")
    above = _file_above(path)
    if above is not None:
        raise InputError(f"cannot keep runs in {path}: {above} is a file, not a folder; name a folder with "
                         "--state-dir")
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".voxc-probe-", dir=path)
    except OSError as e:
        raise InputError(f"cannot keep runs in {path}: {e.strerror or e}; name a folder voxc can write in with "
                         "--state-dir") from None
    os.close(fd)
    _remove_quietly(probe)


def _file_above(path: str) -> str | None:
    """The nearest existing ancestor of ``path`` if it is not a folder."""
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if parent and os.path.exists(parent) and not os.path.isdir(parent):
        return parent
    return None


def usable_database(url: str, must_exist: bool) -> None:
    """Make sure the store at ``url`` (``--db``) opens, or an InputError saying why not.

    ``must_exist``: a SQLite file that is not there is refused instead of created (commands that
    only read runs, or add to existing ones).
    """
    import sqlite3

    from vox.runtime.fleet.store import StoreError, open_store
    from vox.runtime.state import hide_password

    try:
        store = open_store(url)
    except StoreError as e:
        raise InputError(f"--db: {e}") from None
    if store.kind == "sqlite" and must_exist and not os.path.isfile(store.path):
        raise InputError(f"--db {hide_password(url)}: there is no database file {store.path}")
    failures: tuple[type[BaseException], ...] = (OSError, sqlite3.Error)
    try:
        import psycopg

        failures += (psycopg.Error,)
    except ImportError:  # pragma: no cover - PostgreSQL support not installed
        pass
    try:
        store.run(lambda tx: tx.one("SELECT 1"))
    except StoreError as e:  # the store's own word on what is wrong with it, and what to do
        raise InputError(f"--db {hide_password(url)}: {e}") from None
    except failures as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InputError(f"cannot open the database {hide_password(url)} (--db): {reason}") from None
    finally:
        store.close()


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
