"""Values at rest: labelled data in the state store is sealed with AES-256-GCM.

A run of a program that declares a label other than `public` has its input, its steps' values,
its waiting arguments and its result sealed before they are written (see spec/runtime.md,
"What is stored"). The key comes from ``VOX_STATE_KEY`` (64 hex digits or base64 of 32 bytes) or
from ``state.key`` in the state folder, created with mode 0600 on first use; a fleet must set
``VOX_STATE_KEY`` so every worker can read every run. The key is never written anywhere else and
never appears in a message.

A sealed value is a string ``sealed:v1:`` + base64(nonce ‖ ciphertext ‖ tag); the run id and the
field's name are the associated data, so a sealed value copied to another run or field does not
open.

The key variables (``VOX_STATE_KEY``, and the receipt ledger's ``VOX_SIGNING_KEY``,
``VOX_SIGNING_KEY_FILE`` and ``VOX_RECEIPT_KEY``) are taken out of ``os.environ`` when a runtime
starts (:func:`withdraw_key_variables`), so that tool code in the process, and the programs it
starts, do not find them there; :func:`env_secret` still reads them (see spec/runtime.md, "What
tool code can reach").

>>> s = Sealer(bytes(32))
>>> box = s.seal({"email": "ada@example.com"}, "run_1", "input")
>>> box.startswith("sealed:v1:") and "ada" not in box
True
>>> s.open(box, "run_1", "input")
{'email': 'ada@example.com'}
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any, Mapping

PREFIX = "sealed:v1:"
KEY_ENV = "VOX_STATE_KEY"
KEY_FILE = "state.key"
# Every variable that holds a key (or names a key file): withdrawn from os.environ at a run's start.
KEY_VARIABLES = (KEY_ENV, "VOX_SIGNING_KEY", "VOX_SIGNING_KEY_FILE", "VOX_RECEIPT_KEY")
_withdrawn: dict[str, str] = {}  # what withdraw_key_variables took out of os.environ


class SealError(Exception):
    """A sealed value that cannot be opened (no key, the wrong key, or damaged)."""


class Sealer:
    """Seals and opens JSON values; ``key=None`` opens nothing (a reader without the key)."""

    __slots__ = ("_aead", "source")

    def __init__(self, key: bytes | None, source: str = "given"):
        self.source = source
        self._aead = None
        if key is not None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            if len(key) != 32:
                raise SealError(f"the state key from {source} must be 32 bytes, not {len(key)}")
            self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return f"Sealer(source={self.source!r})"

    def __reduce__(self):  # keep the key out of pickles
        raise TypeError("a Sealer holds a key and cannot be pickled")

    @property
    def can_open(self) -> bool:
        return self._aead is not None

    def seal(self, value: Any, run_id: str, field: str) -> str:
        if self._aead is None:
            raise SealError("cannot seal without a state key")
        nonce = secrets.token_bytes(12)
        plain = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        box = self._aead.encrypt(nonce, plain, f"{run_id}\x00{field}".encode())
        return PREFIX + base64.b64encode(nonce + box).decode("ascii")

    def open(self, text: str, run_id: str, field: str) -> Any:
        if not is_sealed(text):
            raise SealError(f"{field} of run {run_id} is not sealed")
        if self._aead is None:
            raise SealError(f"{field} of run {run_id} is sealed; set {KEY_ENV} (or keep {KEY_FILE}) to read it")
        from cryptography.exceptions import InvalidTag

        raw = base64.b64decode(text[len(PREFIX):])
        try:
            plain = self._aead.decrypt(raw[:12], raw[12:], f"{run_id}\x00{field}".encode())
        except InvalidTag:
            raise SealError(f"{field} of run {run_id} does not open with this state key "
                            "(another key, or the value was altered)") from None
        return json.loads(plain)


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def load_sealer(state_dir: str | os.PathLike[str], environ: Mapping[str, str], create: bool = True) -> Sealer:
    """The state key from ``VOX_STATE_KEY``, else ``<state_dir>/state.key`` (made if ``create``),
    else a sealer that can open nothing."""
    text = env_secret(environ, KEY_ENV)
    if text:
        return Sealer(_decode_key(text.strip()), KEY_ENV)
    path = Path(state_dir) / KEY_FILE
    if not path.exists():
        if not create:
            return Sealer(None, "none")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
                f.flush()
                os.fsync(f.fileno())
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SealError(f"{path} is readable by others (mode {mode:o}); run: chmod 600 {path}")
    return Sealer(_decode_key(path.read_text().strip()), str(path))


def _decode_key(text: str) -> bytes:
    try:
        if len(text) == 64:
            return bytes.fromhex(text)
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise SealError(f"{KEY_ENV} must be 64 hex digits or the base64 of 32 bytes") from None


def withdraw_key_variables() -> None:
    """Take the key variables (:data:`KEY_VARIABLES`) out of ``os.environ``, once a runtime starts
    and before any tool runs: a `python(...)` tool reading ``os.environ``, and any program a tool
    starts (which inherits it), does not find them. What was taken is kept here, for
    :func:`env_secret`. ``/proc/self/environ`` still shows the environment the process started
    with: only a key that was never in it (a key file) is out of its reach."""
    for name in KEY_VARIABLES:
        value = os.environ.pop(name, None)  # os.environ.pop also unsets it in the C environment
        if value is not None:
            _withdrawn[name] = value


def env_secret(environ: Mapping[str, str], name: str) -> str | None:
    """Key variable ``name`` from ``environ``, or else as the process's environment had it before
    :func:`withdraw_key_variables` (so a copy of ``os.environ`` made after still finds the
    process's keys).

    >>> env_secret({"VOX_STATE_KEY": "00" * 32}, "VOX_STATE_KEY") == "00" * 32
    True
    """
    value = environ.get(name)
    return value if value is not None else _withdrawn.get(name)
