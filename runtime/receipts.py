"""The receipt ledger: every ``write``/``external`` tool call, signed with Ed25519 and chained.

The ledger lives in the deployment's store (``.vox/state.sqlite`` by default, the fleet's
PostgreSQL database with ``--db``, so any machine can verify any run). An entry records which tool
ran at which position of which run, digests of its arguments and result, and when; it is signed
with an **Ed25519** key over the canonical JSON of those fields plus the ledger's id, the entry's
place ``n`` in the ledger and ``prev``, the signature of the ledger's previous entry (whatever its
run): the ledger is one chain over all runs. A signed **head** records how many entries the ledger
holds and the last one, and a signed head per run its length, so dropping the newest entries is
noticed as well as editing, removing or reordering any of them. The id of an entry is derived
from its signature (``rcpt_`` + base32 of its first 10 bytes), and a ``Receipt[t]`` value in a
program carries it.

**Keys.** The private half signs, and is never in the state folder: it comes from
``VOX_SIGNING_KEY`` (PEM, or the base64 of its 32 bytes), from the file ``VOX_SIGNING_KEY_FILE``
names, is derived from ``VOX_RECEIPT_KEY`` (the old scheme's variable, so that a deployment that
sets it keeps one key everywhere), or is this user's key in ``~/.config/vox/signing.key``
(``$XDG_CONFIG_HOME/vox``), made on first use (see :func:`load_keys`). The public half verifies
and nothing else: it is stored beside the ledger and exported by ``voxc receipts public-key``, so
an auditor verifies without any secret (``voxc receipts verify RUN --public-key FILE``).

**Rollback.** Each machine keeps, next to its key, a small signed **high-water mark** per ledger:
the newest head it has seen (``~/.config/vox/ledgers/<ledger id>.json``). A ledger whose head is
older than the mark, or whose entry at the mark is not the one seen, was rolled back: it is
reported by :meth:`ReceiptLedger.verify`, and the runtime refuses to sign onto it.

**The old scheme.** Ledgers written before held entries MAC'd with HMAC-SHA256 (one chain per
run; key in ``VOX_RECEIPT_KEY`` or ``.vox/receipt.key``). They are kept and still read: their
entries are checked with that key when it is at hand, and reported as signed with the old scheme
(anyone who could read the key could have made them); new entries are Ed25519.

Keys are held in objects whose ``repr`` hides them and that refuse to be pickled; they never appear
in a message. They are not out of reach of code running in the same process (a ``python(...)``
tool): spec/runtime.md, "What tool code can reach", says what is and what would be.

Triggers refuse ``UPDATE`` and ``DELETE`` on the entries: a guard against mistakes, not a defence
(anyone with the file can drop them). The defence is the signatures.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from vox.compiler.plan.serde import canonical_json
from vox.runtime.sealing import env_secret

GENESIS = "0" * 64
SIGNING_KEY_ENV = "VOX_SIGNING_KEY"
SIGNING_KEY_FILE_ENV = "VOX_SIGNING_KEY_FILE"
KEY_ENV = "VOX_RECEIPT_KEY"  # the old scheme's HMAC key; also seeds the signing key when nothing else does
KEY_FILE = "receipt.key"  # the old scheme's key file in the state folder: read to check old entries, never made
SIGNING_KEY_NAME = "signing.key"  # in the user's config folder, ~/.config/vox/
MARKS_DIR = "ledgers"  # beside it: one high-water mark per ledger
ED25519 = "ed25519"
HMAC_SHA256 = "hmac-sha256"
RECEIPT_ID = re.compile(r"\brcpt_[a-z2-7]{16}\b", re.IGNORECASE)
_KEY_CHECK = b"vox receipt ledger key check v1"
_DERIVE = b"vox receipt signing key from VOX_RECEIPT_KEY v2"
_LEDGER_ID = re.compile(r"^ldg_[0-9a-f]{16}$")

_V1 = (
    "CREATE TABLE IF NOT EXISTS {p}receipt_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {p}receipt (id TEXT PRIMARY KEY, run TEXT NOT NULL, seq BIGINT NOT NULL, "
    "pos TEXT NOT NULL, tool TEXT NOT NULL, args_sha256 TEXT NOT NULL, result_sha256 TEXT NOT NULL, "
    "at BIGINT NOT NULL, prev TEXT NOT NULL, mac TEXT NOT NULL, UNIQUE (run, seq), UNIQUE (run, pos))",
    "CREATE TABLE IF NOT EXISTS {p}receipt_run (run TEXT PRIMARY KEY, count BIGINT NOT NULL, "
    "head TEXT NOT NULL, tag TEXT NOT NULL)",
)
# Version 2: Ed25519 entries on one chain over the ledger. `mac` holds an entry's signature (an
# HMAC under the old scheme), `n` its place in the ledger (NULL for old entries).
_V2 = (
    "ALTER TABLE {p}receipt ADD COLUMN n BIGINT",
    "ALTER TABLE {p}receipt ADD COLUMN scheme TEXT NOT NULL DEFAULT 'hmac-sha256'",
    "CREATE UNIQUE INDEX IF NOT EXISTS {p}receipt_n ON {p}receipt (n)",
    "ALTER TABLE {p}receipt_run ADD COLUMN scheme TEXT NOT NULL DEFAULT 'hmac-sha256'",
)
# A guard against mistakes, not a defence: SQLite triggers refuse UPDATE and DELETE on entries.
_SQLITE_GUARDS = (
    "CREATE TRIGGER IF NOT EXISTS {p}receipt_no_update BEFORE UPDATE ON {p}receipt "
    "BEGIN SELECT RAISE(ABORT, 'the receipt ledger is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS {p}receipt_no_delete BEFORE DELETE ON {p}receipt "
    "BEGIN SELECT RAISE(ABORT, 'the receipt ledger is append-only'); END",
)
_PG_GUARDS = (
    "CREATE OR REPLACE FUNCTION {p}receipt_refuse() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'the receipt ledger is append-only'; END $$",
    "DROP TRIGGER IF EXISTS {p}receipt_append_only ON {p}receipt",
    "CREATE TRIGGER {p}receipt_append_only BEFORE UPDATE OR DELETE ON {p}receipt "
    "FOR EACH ROW EXECUTE FUNCTION {p}receipt_refuse()",
)


class ReceiptError(Exception):
    """Base of the ledger's errors. Messages never contain a secret key."""


class ReceiptConflict(ReceiptError):
    """A position of a run was appended again with different arguments, result or tool."""


class FabricatedReceipt(ReceiptError):
    """A model's output names a receipt that the run's ledger does not hold."""


class KeyFileError(ReceiptError):
    """A key cannot be used (unreadable, malformed, readable by others, or in the state folder)."""


class LedgerKeyMismatch(ReceiptError):
    """The ledger is signed with another key than the one this process signs with."""


class LedgerRolledBack(ReceiptError):
    """The ledger is older than a head this machine has seen: a copy was restored, or its newest
    entries were removed. Nothing is signed onto it."""


# ---- keys -----------------------------------------------------------------------------------------


class PublicKey:
    """The public half of an Ed25519 signing key: verifies signatures, and nothing else."""

    __slots__ = ("raw", "_key")

    def __init__(self, raw: bytes):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        if len(raw) != 32:
            raise KeyFileError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
        self.raw = bytes(raw)
        self._key = Ed25519PublicKey.from_public_bytes(self.raw)

    @classmethod
    def from_text(cls, text: str, where: str = "the public key") -> PublicKey:
        """A public key written as PEM, as ``ed25519:`` + base64 (how the ledger stores it), or as
        bare base64 of its 32 bytes."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        text = text.strip()
        if text.startswith("-----BEGIN"):
            try:
                key = serialization.load_pem_public_key(text.encode("ascii"))
            except (ValueError, TypeError, UnicodeEncodeError):
                raise KeyFileError(f"{where} is not a PEM public key") from None
            if not isinstance(key, Ed25519PublicKey):
                raise KeyFileError(f"{where} is not an Ed25519 public key")
            return cls(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
        raw = _decode_bytes(text.removeprefix(f"{ED25519}:"))
        if raw is None or len(raw) != 32:
            raise KeyFileError(f"{where} is not an Ed25519 public key (PEM, or `ed25519:` and the base64 of 32 bytes)")
        return cls(raw)

    @property
    def text(self) -> str:
        return f"{ED25519}:" + base64.b64encode(self.raw).decode("ascii")

    @property
    def pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        return self._key.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")

    @property
    def fingerprint(self) -> str:
        """Names the key in messages: the first 16 hex digits of the SHA-256 of its 32 bytes."""
        return hashlib.sha256(self.raw).hexdigest()[:16]

    def verify(self, signature: bytes, message: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and hmac.compare_digest(self.raw, other.raw)

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"PublicKey({self.fingerprint})"


class SigningKey:
    """The private half of the ledger's Ed25519 key. ``repr``/``str`` show the public key's
    fingerprint and where the key came from, never the key; it cannot be pickled, and offers no
    way to read its bytes back (only to sign)."""

    __slots__ = ("_private", "public", "source", "created")

    def __init__(self, private: Any, source: str = "given", created: bool = False):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if not isinstance(private, Ed25519PrivateKey):
            raise KeyFileError(f"the signing key from {source} is not an Ed25519 key")
        self._private = private
        self.public = PublicKey(private.public_key().public_bytes(serialization.Encoding.Raw,
                                                                  serialization.PublicFormat.Raw))
        self.source = source
        self.created = created  # made just now, in the config folder (the runtime says so)

    @classmethod
    def from_seed(cls, seed: bytes, source: str = "given") -> SigningKey:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if len(seed) != 32:
            raise KeyFileError(f"an Ed25519 private key is 32 bytes, not {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(bytes(seed)), source)

    @classmethod
    def generate(cls, source: str = "generated") -> SigningKey:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(Ed25519PrivateKey.generate(), source)

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(<hidden>, public={self.public.fingerprint}, source={self.source})"

    __str__ = __repr__

    def __reduce__(self):  # keep it out of pickles (and so out of journals by accident)
        raise TypeError("a SigningKey cannot be pickled")


class HmacKey:
    """The old scheme's HMAC key, kept to check entries signed before Ed25519. ``repr``/``str``
    show a short fingerprint, never the key."""

    __slots__ = ("_key", "source")

    def __init__(self, key: bytes, source: str = "given"):
        if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
            raise ValueError("an HMAC receipt key must be at least 16 bytes")
        self._key = bytes(key)
        self.source = source

    def reveal(self) -> bytes:
        return self._key

    @property
    def fingerprint(self) -> str:
        """Identifies the key in messages without revealing it (a MAC of a fixed text)."""
        return hmac.new(self._key, _KEY_CHECK, hashlib.sha256).hexdigest()[:12]

    def mac(self, fields: dict[str, Any]) -> str:
        return hmac.new(self._key, canonical_json(fields).encode("utf-8"), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"HmacKey(<hidden>, fingerprint={self.fingerprint}, source={self.source})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("an HmacKey cannot be pickled")


@dataclass(frozen=True, slots=True)
class ReceiptKeys:
    """What a ledger is opened with. ``signing``: the private key (None: the ledger only verifies);
    ``trusted``: the public key verification trusts (the signing key's own, or one given), and
    ``trust`` says where it came from; ``hmac``: the old scheme's key, for old entries;
    ``config_dir``: where this machine's high-water marks are kept (None: none are)."""

    signing: SigningKey | None = None
    trusted: PublicKey | None = None
    trust: str = ""
    hmac: HmacKey | None = None
    config_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.signing is not None and self.trusted is None:
            object.__setattr__(self, "trusted", self.signing.public)
            object.__setattr__(self, "trust", f"this machine's signing key, from {self.signing.source}")

    def verifying(self, trusted: PublicKey | None = None, trust: str = "") -> ReceiptKeys:
        """The same keys without the private one: to verify (and never write) a ledger."""
        if trusted is None:
            trusted, trust = self.trusted, self.trust
        return ReceiptKeys(None, trusted, trust, self.hmac, self.config_dir)


def config_dir(environ: Mapping[str, str]) -> Path:
    """The user's Vox configuration folder: ``$XDG_CONFIG_HOME/vox``, else ``~/.config/vox``.

    >>> str(config_dir({"HOME": "/home/ada"}))
    '/home/ada/.config/vox'
    >>> str(config_dir({"XDG_CONFIG_HOME": "/etc/xdg-ada", "HOME": "/home/ada"}))
    '/etc/xdg-ada/vox'
    """
    base = environ.get("XDG_CONFIG_HOME")
    if not base or not os.path.isabs(base):
        base = os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".config")
    return Path(base) / "vox"


def load_keys(state_dir: str | os.PathLike[str], environ: Mapping[str, str] | None = None, *,
              create: bool = True) -> ReceiptKeys:
    """The installation's receipt keys.

    The signing key is the first of: ``VOX_SIGNING_KEY`` (an unencrypted PEM private key, or the
    base64 or hex of its 32 bytes); the key file ``VOX_SIGNING_KEY_FILE`` names; a key derived
    from ``VOX_RECEIPT_KEY`` (deprecated: the old scheme's variable); ``signing.key`` in the
    user's config folder (:func:`config_dir`), which is made there, with its public half
    ``signing.pub``, when ``create`` (``SigningKey.created`` then says so); otherwise none. A key
    file must be readable by its owner only, and outside ``state_dir``. The old scheme's HMAC key,
    for old entries, is ``VOX_RECEIPT_KEY`` or ``<state_dir>/receipt.key`` if it exists.

    High-water marks are kept in the config folder when ``environ`` names a home (``HOME`` or
    ``XDG_CONFIG_HOME``) or the key is there; an environment that names none and gives the key in
    a variable (``voxc test``, in a temporary state folder) keeps none, rather than leave marks of
    throw-away ledgers in the user's home.
    """
    env = os.environ if environ is None else environ
    folder = config_dir(env)
    legacy = _load_hmac_key(state_dir, env)
    text = env_secret(env, SIGNING_KEY_ENV)
    if text is not None:
        signing = SigningKey(_private_from_text(text, SIGNING_KEY_ENV), f"env {SIGNING_KEY_ENV}")
    elif (named := env_secret(env, SIGNING_KEY_FILE_ENV)) is not None:
        signing = _load_key_file(Path(named), state_dir, f"{SIGNING_KEY_FILE_ENV}={named}")
    elif legacy is not None and legacy.source.startswith("env"):
        seed = hmac.new(legacy.reveal(), _DERIVE, hashlib.sha256).digest()
        signing = SigningKey.from_seed(seed, f"a key derived from env {KEY_ENV}")
    else:
        path = folder / SIGNING_KEY_NAME
        if path.exists():
            signing = _load_key_file(path, state_dir, str(path))
        elif create:
            try:
                signing = create_key_pair(path, state_dir)
            except OSError as e:
                raise KeyFileError(f"cannot make a receipt signing key in {path.parent}: {e.strerror}; set "
                                   f"{SIGNING_KEY_ENV} or {SIGNING_KEY_FILE_ENV} (see `voxc receipts keygen`)") from None
        else:
            signing = None
    from_folder = signing is not None and signing.source == str(folder / SIGNING_KEY_NAME)
    keeps_marks = bool(env.get("HOME") or env.get("XDG_CONFIG_HOME")) or from_folder
    return ReceiptKeys(signing=signing, hmac=legacy, config_dir=folder if keeps_marks else None)


load_key = load_keys  # the name runtime/durable.py opens a process's keys with


def create_key_pair(path: Path, state_dir: str | os.PathLike[str] | None = None) -> SigningKey:
    """Make a new Ed25519 key pair: the private half at ``path`` (PEM, mode 0600, its folder 0700),
    the public half beside it (``.pub`` for ``.key``). A key already at ``path`` (made by another
    process just now) is loaded instead; ``SigningKey.created`` says whether it was made here."""
    from cryptography.hazmat.primitives import serialization

    _refuse_in_state_folder(path, state_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = SigningKey.generate(str(path))
    pem = key._private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    if not _create_file(path, pem, 0o600):
        return _load_key_file(path, state_dir, str(path))
    _replace_file(public_key_path(path), key.public.pem.encode("ascii"), 0o644)
    key.created = True
    return key


def public_key_path(path: Path) -> Path:
    """Where the public half of the key file ``path`` is kept."""
    return path.with_suffix(".pub") if path.suffix == ".key" else path.with_name(path.name + ".pub")


def _private_from_text(text: str, where: str) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    text = text.strip()
    if not text:
        raise KeyFileError(f"{where} is empty")
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        except (ValueError, TypeError, UnicodeEncodeError):
            raise KeyFileError(f"{where} is not an unencrypted PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{where} is not an Ed25519 private key")
        return key
    raw = _decode_bytes(text)
    if raw is None or len(raw) not in (32, 64):
        raise KeyFileError(f"{where} is not an Ed25519 private key: give a PEM key (`voxc receipts keygen` makes "
                           "one), or the base64 of its 32 bytes")
    key = Ed25519PrivateKey.from_private_bytes(raw[:32])
    if len(raw) == 64 and SigningKey(key).public.raw != raw[32:]:  # seed and public key, as libsodium keeps them
        raise KeyFileError(f"{where}: its second half is not the public key of its first")
    return key


def _decode_bytes(text: str) -> bytes | None:
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _load_key_file(path: Path, state_dir: str | os.PathLike[str] | None, where: str) -> SigningKey:
    _refuse_in_state_folder(path, state_dir)
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise KeyFileError(f"cannot read the signing key {where}: {e.strerror}") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path} may be read by other users (mode {stat.S_IMODE(mode):o}); run `chmod 600 {path}`")
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        raise KeyFileError(f"{where} does not hold a signing key") from None
    return SigningKey(_private_from_text(text, str(path)), str(path))


def _refuse_in_state_folder(path: Path, state_dir: str | os.PathLike[str] | None) -> None:
    """A signing key beside the ledger protects nothing: whoever reads one reads the other."""
    if state_dir is None:
        return
    key, state = Path(os.path.abspath(path)), Path(os.path.abspath(state_dir))
    if key == state or state in key.parents:
        raise KeyFileError(f"the signing key {path} is inside the state folder {state_dir}: anyone who can read the "
                           "ledger could sign with it; keep it elsewhere (`voxc receipts keygen` puts it in "
                           "~/.config/vox/)")


def _load_hmac_key(state_dir: str | os.PathLike[str], env: Mapping[str, str]) -> HmacKey | None:
    """The old scheme's key: ``VOX_RECEIPT_KEY`` (64 hex digits are the 32 key bytes, any other
    text is hashed to 32 bytes), else ``<state_dir>/receipt.key`` if there is one."""
    text = env_secret(env, KEY_ENV)
    if text is not None:
        if not text.strip():
            raise KeyFileError(f"{KEY_ENV} is set but empty")
        text = text.strip()
        if re.fullmatch(r"[0-9a-fA-F]{64}", text):
            return HmacKey(bytes.fromhex(text), source=f"env {KEY_ENV}")
        return HmacKey(hashlib.sha256(text.encode("utf-8")).digest(), source=f"env {KEY_ENV}")
    path = Path(state_dir) / KEY_FILE
    if not path.exists():
        return None
    if os.name == "posix":
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(f"{path} may be read by other users (mode {stat.S_IMODE(mode):o}); run `chmod 600 {path}`")
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, UnicodeDecodeError, ValueError):
        raise KeyFileError(f"{path} does not hold a hex key (64 hex digits)") from None
    if len(key) < 16:
        raise KeyFileError(f"{path} holds a key shorter than 16 bytes")
    return HmacKey(key, source=str(path))


def _create_file(path: Path, data: bytes, mode: int) -> bool:
    """Write ``path`` whole, or not at all; False if it exists already (another process won)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # atomic, and refuses to replace a key another process just made
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def _replace_file(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


# ---- the high-water marks -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeadMark:
    """The newest head of a ledger that this machine has seen: ``n`` entries, the last one's
    signature, and the public key the ledger was signed with; signed by the signing key when the
    machine has one."""

    ledger: str
    n: int
    last: str
    public_key: str
    seen_at: int  # milliseconds since the Unix epoch
    signature: str = ""

    def signed_fields(self) -> dict[str, Any]:
        return {"ledger": self.ledger, "n": self.n, "last": self.last, "public_key": self.public_key,
                "seen_at": self.seen_at}


class HeadMarks:
    """This machine's high-water marks, one small JSON file per ledger in ``folder``. They only
    ever go up: a mark is replaced by a newer head, never by an older one, so processes sharing
    the folder can only make it weaker, never raise a false alarm."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, ledger: str) -> Path:
        return self.folder / f"{ledger}.json"

    def read(self, ledger: str) -> HeadMark | None:
        path = self.path(ledger)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            mark = HeadMark(ledger=data["ledger"], n=int(data["n"]), last=str(data["last"]),
                            public_key=str(data.get("public_key", "")), seen_at=int(data.get("seen_at", 0)),
                            signature=str(data.get("signature", "")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            raise ReceiptError(f"the high-water mark {path} cannot be read; if this ledger was not rolled back, "
                               "remove it (a new one is kept from the next run)") from None
        if mark.ledger != ledger:
            raise ReceiptError(f"the high-water mark {path} is about ledger {mark.ledger}, not {ledger}")
        return mark

    def raise_to(self, mark: HeadMark) -> bool:
        """Record ``mark`` unless a newer one is there; False if the folder cannot be written (the
        ledger still works; rollback detection then has only what was recorded before)."""
        try:
            found = self.read(mark.ledger)
        except ReceiptError:
            return False  # left for verify to report
        if found is not None and found.n >= mark.n:
            return True
        data = {**mark.signed_fields(), "signature": mark.signature}
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            _replace_file(self.path(mark.ledger), (json.dumps(data, indent=1) + "\n").encode("utf-8"), 0o600)
        except OSError:
            return False
        return True


# ---- entries --------------------------------------------------------------------------------------


def digest(value: Any) -> str:
    """sha256 of the UTF-8 of the canonical JSON of ``value`` (what a receipt records of a call).

    The bytes hashed and signed are part of every receipt ever signed: sorted keys, no spaces,
    non-ASCII as UTF-8 (tests/test_receipts.py pins a signature, so a change is noticed).

    >>> digest({"b": 1, "a": [True, None, "é"]}) == hashlib.sha256(b'{"a":[true,null,"\\xc3\\xa9"],"b":1}').hexdigest()
    True
    """
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def signed_message(kind: str, fields: dict[str, Any]) -> bytes:
    """The bytes an Ed25519 signature of the ledger covers: a label of what is signed (an
    ``entry``, a ``run-head``, the ledger's ``head``, a ``mark``), so that no signature can be
    passed off as another kind, then the canonical JSON of the fields.

    >>> signed_message("entry", {"n": 0, "run": "r"})
    b'vox receipts v2 entry\\n{"n":0,"run":"r"}'
    """
    return f"vox receipts v2 {kind}\n".encode("ascii") + canonical_json(fields).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Receipt:
    """One signed entry: the proof that ``tool`` ran at ``pos`` of ``run``."""

    id: str
    run: str
    seq: int  # its place in the run
    pos: str
    tool: str
    args_sha256: str
    result_sha256: str
    at: int  # milliseconds since the Unix epoch
    prev: str  # the signature of the ledger's previous entry (old scheme: of the run's previous entry)
    signature: str  # hex; an HMAC-SHA256 under the old scheme
    n: int | None = None  # its place in the ledger (None under the old scheme)
    scheme: str = HMAC_SHA256

    def signed_fields(self, ledger: str | None = None) -> dict[str, Any]:
        fields = {
            "run": self.run,
            "seq": self.seq,
            "pos": self.pos,
            "tool": self.tool,
            "args_sha256": self.args_sha256,
            "result_sha256": self.result_sha256,
            "at": self.at,
            "prev": self.prev,
        }
        if self.scheme == ED25519:
            fields["n"] = self.n
            if ledger is not None:
                fields["ledger"] = ledger
        return fields


@dataclass(slots=True)
class SignedCall:
    """What a receipt of a run says was done: its tool, and the call's arguments and result as
    they were signed (wire JSON: money as dollar strings). A run keeps one per receipt it made, and
    rebuilds them when it replays its journal; ``checked`` once they were compared with the
    digests the ledger signs (:meth:`ReceiptLedger.require_call`)."""

    tool: str
    args: dict[str, Any]
    result: Any
    checked: bool = False


@dataclass(slots=True)
class VerifyReport:
    """What :meth:`ReceiptLedger.verify` found. ``ok`` with ``count == 0`` means nothing was
    signed, not that anything was verified; ``old_scheme`` entries were checked with the HMAC key,
    which anyone who could read it could have used."""

    ok: bool
    count: int
    problems: list[str] = field(default_factory=list)
    old_scheme: int = 0
    key: str = ""  # the fingerprint of the public key the entries were checked with
    trust: str = ""  # where that key came from
    pinned: bool = False  # whether it came from outside the ledger (given, this machine's, or a mark)
    seen: str = ""  # what the ledger's head was compared with, for rollback
    other_key: bool = False  # the ledger is signed with another key than the trusted one


def receipt_id(signature_hex: str) -> str:
    return "rcpt_" + base64.b32encode(bytes.fromhex(signature_hex)[:10]).decode("ascii").lower()


def find_receipt_ids(text: str) -> list[str]:
    """Receipt ids mentioned in free text (a model's answer), in order, lower-cased, unique."""
    seen: dict[str, None] = {}
    for m in RECEIPT_ID.finditer(text):
        seen.setdefault(m.group(0).lower(), None)
    return list(seen)


_COLUMNS = "id, run, seq, pos, tool, args_sha256, result_sha256, at, prev, mac, n, scheme"
_EMPTY_HEAD = {"n": 0, "last": GENESIS, "signature": ""}


def _signature_at(tx: Any, n: int) -> str | None:
    """The signature of the ledger's entry ``n``, if it holds one."""
    row = tx.one("SELECT mac FROM {p}receipt WHERE n = ?", (n,))
    return row[0] if row else None


def _ledger_of(meta: Mapping[str, str]) -> str | None:
    """The ledger's id from its metadata; it names a file, so one that is not an id is refused."""
    found = meta.get("ledger_id")
    if found is not None and not _LEDGER_ID.match(found):
        raise ReceiptError("the receipt ledger's id was edited (it is not of the form ldg_ and 16 hex digits)")
    return found


def _head_of(meta: Mapping[str, str]) -> dict[str, Any]:
    try:
        head = json.loads(meta["head"]) if "head" in meta else dict(_EMPTY_HEAD)
        int(head["n"]), str(head["last"])
    except (ValueError, KeyError, TypeError):
        raise ReceiptError("the receipt ledger's head record was edited (it is not a head)") from None
    return head


def _as_keys(keys: Any) -> ReceiptKeys:
    if keys is None:
        return ReceiptKeys()
    if isinstance(keys, ReceiptKeys):
        return keys
    if isinstance(keys, SigningKey):
        return ReceiptKeys(signing=keys)
    if isinstance(keys, PublicKey):
        return ReceiptKeys(trusted=keys, trust="the public key given")
    if isinstance(keys, HmacKey):
        return ReceiptKeys(hmac=keys)
    raise TypeError(f"a receipt ledger is opened with ReceiptKeys, a SigningKey or a PublicKey, not {type(keys).__name__}")


class ReceiptLedger:
    """The append-only, chained receipt ledger in the deployment's store.

    ``where`` is a :class:`~vox.runtime.fleet.store.Store`, a store URL (``sqlite:///...``,
    ``postgresql://...``) or a file path (a SQLite file). ``keys`` (:class:`ReceiptKeys`, or just a
    :class:`SigningKey` or :class:`PublicKey`) say how it signs and what it trusts; without a
    signing key it only verifies, and writes nothing. Safe to share between threads and between
    processes: an append is one transaction that locks the ledger's head first.
    """

    def __init__(self, where: Any, keys: Any = None, *, clock: Callable[[], float] = time.time):
        from vox.runtime.fleet.store import Store, open_store

        if isinstance(where, Store):
            self.store = where
        else:
            text = str(where)
            self.store = open_store(text if "://" in text else "sqlite:///" + text)
        self.keys = _as_keys(keys)
        self._clock = clock
        self.marks = HeadMarks(self.keys.config_dir / MARKS_DIR) if self.keys.config_dir is not None else None
        self._lock = threading.Lock()
        self._mark: HeadMark | None = None  # the newest mark this ledger knows of (read once, then kept)
        self._mark_read = False
        self._confirmed = -1  # the mark's entry was found in the ledger, for marks up to this n
        self._ledger_id: str | None = None
        guards = _SQLITE_GUARDS if self.store.kind == "sqlite" else _PG_GUARDS
        self.store.ensure("receipts", (_V1 + guards, _V2))
        if self.keys.signing is not None:
            self.store.run(self._initialise)

    def __repr__(self) -> str:
        return f"ReceiptLedger({self.store!r})"

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> ReceiptLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        """The ledger's store, for messages (a file, or a URL without its password)."""
        if self.store.kind == "sqlite":
            return getattr(self.store, "path", self.store.url)
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", self.store.url)

    # -- the ledger's identity and head --------------------------------------------------------

    def _initialise(self, tx: Any) -> None:
        tx.execute("INSERT INTO {p}receipt_meta (name, value) VALUES ('ledger_id', ?) ON CONFLICT (name) DO NOTHING",
                   ("ldg_" + secrets.token_hex(8),))
        # the row every append locks first, so that appends are serialised from the first one
        tx.execute("INSERT INTO {p}receipt_meta (name, value) VALUES ('head', ?) ON CONFLICT (name) DO NOTHING",
                   (json.dumps(_EMPTY_HEAD),))

    @property
    def ledger_id(self) -> str | None:
        """The ledger's random id (``ldg_`` + 16 hex digits), made when a signing process first
        opens it; signed into every entry, and the name of its high-water marks."""
        if self._ledger_id is None:
            row = self.store.run(lambda tx: tx.one("SELECT value FROM {p}receipt_meta WHERE name = 'ledger_id'"))
            if row is not None and _LEDGER_ID.match(row[0]):
                self._ledger_id = row[0]
        return self._ledger_id

    def _meta(self, tx: Any) -> dict[str, str]:
        return dict(tx.all("SELECT name, value FROM {p}receipt_meta"))

    def _stored_key(self, meta: Mapping[str, str]) -> PublicKey | None:
        text = meta.get("public_key")
        return PublicKey.from_text(text, "the public key stored in the ledger") if text else None

    def _read_mark(self, ledger: str) -> HeadMark | None:
        """This machine's mark for the ledger, read from its file once (then kept up to date)."""
        if self.marks is None:
            return None
        with self._lock:
            if not self._mark_read:
                self._mark = self.marks.read(ledger)
                self._mark_read = True
            return self._mark

    def _raise_mark(self, ledger: str, n: int, last: str, public_key: PublicKey | None) -> None:
        if self.marks is None or n <= 0:
            return
        with self._lock:
            if self._mark is not None and self._mark.n >= n:
                return
            mark = HeadMark(ledger, n, last, public_key.text if public_key else "", int(self._clock() * 1000))
            signing = self.keys.signing
            if signing is not None:
                mark = HeadMark(**{**mark.signed_fields(),
                                   "signature": signing.sign(signed_message("mark", mark.signed_fields())).hex()})
            self.marks.raise_to(mark)
            # raised only from a head found to go on from the mark: it needs no checking again
            self._mark, self._mark_read, self._confirmed = mark, True, max(self._confirmed, n)

    def _rollback(self, ledger: str, head: Mapping[str, Any], entry_at: Callable[[int], str | None]) -> str | None:
        """Why the ledger's head is not a continuation of what this machine saw; None if it is."""
        mark = self._read_mark(ledger)
        if mark is None or mark.n <= self._confirmed:
            return None
        where = self.marks.path(ledger)
        seen = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(mark.seen_at / 1000))
        undo = (f"if an older copy was restored on purpose, remove {where} (rollback detection then starts again "
                "from the ledger's head)")
        if int(head["n"]) < mark.n:
            return (f"the receipt ledger in {self.where} was rolled back: this machine saw it hold {mark.n} signed "
                    f"entries ({seen}, recorded in {where}), it now holds {head['n']}: an older copy was restored or "
                    f"its newest entries were removed; {undo}")
        found = entry_at(mark.n - 1)
        if found is None or not hmac.compare_digest(found, mark.last):
            return (f"the receipt ledger in {self.where} was rolled back and written again: its entry {mark.n - 1} is "
                    f"not the one this machine saw ({seen}, recorded in {where}); {undo}")
        with self._lock:
            self._confirmed = max(self._confirmed, mark.n)
        return None

    def check_ready(self) -> None:
        """Before a run that may sign: refuse a ledger signed with another key, or rolled back
        (:class:`LedgerKeyMismatch`, :class:`LedgerRolledBack`), before any tool acts."""
        signing = self.keys.signing
        if signing is None:
            raise ReceiptError(f"the receipt ledger in {self.where} was opened without a signing key")

        def check(tx: Any) -> None:
            meta = self._meta(tx)
            self._check_key(self._stored_key(meta), signing)
            ledger = _ledger_of(meta)
            why = self._rollback(ledger, _head_of(meta), lambda n: _signature_at(tx, n)) if ledger else None
            if why:
                raise LedgerRolledBack(why)

        self.store.run(check)

    def _check_key(self, stored: PublicKey | None, signing: SigningKey) -> None:
        if stored is not None and stored != signing.public:
            raise LedgerKeyMismatch(
                f"the receipt ledger in {self.where} is signed with key {stored.fingerprint}, but this process signs "
                f"with key {signing.public.fingerprint} ({signing.source}): give it the ledger's key "
                f"({SIGNING_KEY_ENV} or {SIGNING_KEY_FILE_ENV}), or use another state folder for a new ledger")

    def note_head(self) -> None:
        """Record the ledger's committed head in this machine's high-water mark, if it goes on from
        what the mark holds (a rolled-back ledger never lowers, or overwrites, a mark). Best effort,
        and never raises: the runtime calls it as it closes."""
        if self.marks is None or self.keys.signing is None:
            return

        def look(tx: Any) -> tuple[dict[str, str], str | None]:
            meta = self._meta(tx)
            ledger = _ledger_of(meta)
            if not ledger:
                return meta, None
            return meta, self._rollback(ledger, _head_of(meta), lambda n: _signature_at(tx, n))

        try:
            meta, why = self.store.run(look)
        except Exception:  # noqa: BLE001 - best effort: a mark not raised only weakens detection
            return
        ledger = meta.get("ledger_id")
        if ledger and why is None:
            head = _head_of(meta)
            self._raise_mark(ledger, int(head["n"]), head["last"], self._stored_key(meta))

    # -- writing -------------------------------------------------------------------------

    def append(self, run_id: str, pos: str | int, tool: str, args: Any, result: Any, tx: Any = None) -> Receipt:
        """Sign a tool call into the ledger and return its receipt.

        Idempotent on ``(run_id, pos)``: appending the same call at the same position again (a
        resumed run) returns the existing receipt; a different tool, arguments or result there
        raises :class:`ReceiptConflict`. With ``tx``, the append is part of that transaction (the
        journal records the step and signs its receipt in one commit). Refused on a ledger signed
        with another key, or rolled back (:meth:`check_ready`).
        """
        if tx is None:
            receipt = self.store.run(lambda t: self.append(run_id, pos, tool, args, result, t))
            self.note_head()
            return receipt
        signing = self.keys.signing
        if signing is None:
            raise ReceiptError(f"the receipt ledger in {self.where} was opened to verify only: it cannot sign")
        pos = str(pos)
        args_sha, result_sha = digest(args), digest(result)
        # The ledger's head first: every append locks it, so the chain has one order.
        head_row = tx.one("SELECT value FROM {p}receipt_meta WHERE name = 'head' FOR UPDATE")
        head = _head_of({"head": head_row[0]} if head_row else {})
        run_head = tx.one("SELECT count FROM {p}receipt_run WHERE run = ? FOR UPDATE", (run_id,))
        row = tx.one(f"SELECT {_COLUMNS} FROM {{p}}receipt WHERE run = ? AND pos = ?", (run_id, pos))
        if row is not None:
            existing = Receipt(*row)
            if (existing.tool, existing.args_sha256, existing.result_sha256) != (tool, args_sha, result_sha):
                changed = [name for name, a, b in (("tool", existing.tool, tool),
                                                   ("arguments", existing.args_sha256, args_sha),
                                                   ("result", existing.result_sha256, result_sha)) if a != b]
                raise ReceiptConflict(
                    f"run {run_id} already has receipt {existing.id} at position {pos} "
                    f"(tool {existing.tool}); this call differs in its {', '.join(changed)}"
                )
            return existing
        meta = self._meta(tx)
        ledger = _ledger_of(meta)
        if not ledger:  # a store the ledger was opened on before it was initialised
            self._initialise(tx)
            meta = self._meta(tx)
            ledger = meta["ledger_id"]
        stored = self._stored_key(meta)
        self._check_key(stored, signing)
        if stored is None:
            tx.execute("INSERT INTO {p}receipt_meta (name, value) VALUES ('public_key', ?)", (signing.public.text,))
        why = self._rollback(ledger, head, lambda n: _signature_at(tx, n))
        if why:
            raise LedgerRolledBack(why)
        self._raise_mark(ledger, int(head["n"]), head["last"], signing.public)  # committed before this one
        n, prev, seq = int(head["n"]), head["last"], (run_head[0] if run_head else 0)
        fields = {
            "ledger": ledger,
            "n": n,
            "run": run_id,
            "seq": seq,
            "pos": pos,
            "tool": tool,
            "args_sha256": args_sha,
            "result_sha256": result_sha,
            "at": int(self._clock() * 1000),
            "prev": prev,
        }
        signature = signing.sign(signed_message("entry", fields)).hex()
        receipt = Receipt(id=receipt_id(signature), run=run_id, seq=seq, pos=pos, tool=tool, args_sha256=args_sha,
                          result_sha256=result_sha, at=fields["at"], prev=prev, signature=signature, n=n, scheme=ED25519)
        tx.execute(f"INSERT INTO {{p}}receipt ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (receipt.id, run_id, seq, pos, tool, args_sha, result_sha, receipt.at, prev, signature, n, ED25519))
        run_tag = signing.sign(signed_message("run-head", {"ledger": ledger, "run": run_id, "count": seq + 1,
                                                           "last": signature})).hex()
        tx.execute("INSERT INTO {p}receipt_run (run, count, head, tag, scheme) VALUES (?, ?, ?, ?, ?) "
                   "ON CONFLICT (run) DO UPDATE SET count = excluded.count, head = excluded.head, tag = excluded.tag, "
                   "scheme = excluded.scheme", (run_id, seq + 1, signature, run_tag, ED25519))
        new_head = {"n": n + 1, "last": signature}
        new_head["signature"] = signing.sign(signed_message("head", {"ledger": ledger, **new_head})).hex()
        tx.execute("INSERT INTO {p}receipt_meta (name, value) VALUES ('head', ?) "
                   "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (json.dumps(new_head),))
        return receipt

    # -- reading -------------------------------------------------------------------------

    def get(self, receipt_id: str) -> Receipt | None:
        row = self.store.run(lambda tx: tx.one(f"SELECT {_COLUMNS} FROM {{p}}receipt WHERE id = ?",
                                               (receipt_id.lower(),)))
        return Receipt(*row) if row else None

    def _verifying_key(self) -> PublicKey | None:
        """The key entries are checked with by :meth:`has` and :meth:`require`: the trusted one,
        else the one this machine's mark pins, else the one stored beside the ledger."""
        if self.keys.trusted is not None:
            return self.keys.trusted
        ledger = self.ledger_id
        mark = self._read_mark(ledger) if ledger else None
        if mark is not None and mark.public_key:
            return PublicKey.from_text(mark.public_key)
        meta = self.store.run(self._meta)
        return self._stored_key(meta)

    def _authentic(self, r: Receipt, key: PublicKey | None = None, ledger: str | None = None) -> bool:
        try:
            if r.scheme == ED25519:
                key = key or self._verifying_key()
                ledger = ledger or self.ledger_id
                return (key is not None and ledger is not None and r.id == receipt_id(r.signature)
                        and key.verify(bytes.fromhex(r.signature), signed_message("entry", r.signed_fields(ledger))))
            legacy = self.keys.hmac
            return (legacy is not None and hmac.compare_digest(legacy.mac(r.signed_fields()), r.signature)
                    and r.id == receipt_id(r.signature))
        except ValueError:  # a signature that is not hex
            return False

    def has(self, run_id: str, receipt_id: str, tool: str | None = None) -> bool:
        """Whether ``receipt_id`` is an authentic entry of ``run_id`` (made by ``tool``, if given)."""
        r = self.get(receipt_id)
        return r is not None and r.run == run_id and (tool is None or r.tool == tool) and self._authentic(r)

    def require(self, run_id: str, receipt_id: str, tool: str | None = None) -> Receipt:
        """The receipt, or :class:`FabricatedReceipt` (the run must fail) when it is not real."""
        r = self.get(receipt_id)
        if r is None or r.run != run_id or not self._authentic(r):
            raise FabricatedReceipt(f"fabricated receipt: {receipt_id} is not in the receipt ledger of run {run_id}")
        if tool is not None and r.tool != tool:
            raise FabricatedReceipt(
                f"fabricated receipt: {receipt_id} was made by tool {r.tool}, not {tool} (run {run_id})"
            )
        return r

    def require_call(self, run_id: str, receipt_id: str, tool: str, args: Any, result: Any) -> Receipt:
        """The receipt, checked to sign exactly this call of ``tool``: ``args`` and ``result`` are the
        ones whose digests its entry signs. :class:`FabricatedReceipt` otherwise, naming what differs
        (a journal edited since, or a replay that computed other arguments)."""
        r = self.require(run_id, receipt_id, tool)
        changed = [what for what, value, signed in (("arguments", args, r.args_sha256),
                                                    ("result", result, r.result_sha256))
                   if not hmac.compare_digest(digest(value), signed)]
        if changed:
            raise FabricatedReceipt(
                f"receipt {r.id} of run {run_id} does not sign the call it is read for: its "
                f"{' and '.join(changed)} differ from those signed in the ledger")
        return r

    def entries(self, run_id: str) -> list[Receipt]:
        rows = self.store.run(lambda tx: tx.all(f"SELECT {_COLUMNS} FROM {{p}}receipt WHERE run = ? ORDER BY seq",
                                                (run_id,)))
        return [Receipt(*row) for row in rows]

    def runs(self) -> list[str]:
        return [r[0] for r in self.store.run(lambda tx: tx.all("SELECT run FROM {p}receipt_run ORDER BY run"))]

    def public_key(self) -> PublicKey | None:
        """The public key stored beside the ledger (as trustworthy as the ledger itself: compare
        its fingerprint with the signer's before relying on it)."""
        return self._stored_key(self.store.run(self._meta))

    # -- verifying -----------------------------------------------------------------------

    def verify(self, run_id: str) -> VerifyReport:
        """Check the run's entries (every signature, the order, the signed length of the run) and
        the ledger's signed head against this machine's high-water mark (a rollback). A verify
        that finds nothing wrong raises the mark to the head it saw."""

        def read(tx: Any):
            meta = self._meta(tx)
            rows = [Receipt(*r) for r in tx.all(f"SELECT {_COLUMNS} FROM {{p}}receipt WHERE run = ? ORDER BY seq",
                                                (run_id,))]
            wanted = sorted({r.n - 1 for r in rows if r.scheme == ED25519 and r.n} |
                            {int(_head_of(meta)["n"]) - 1})
            before = {n: sig for n, sig in tx.all(
                "SELECT n, mac FROM {p}receipt WHERE n IN (" + ", ".join("?" * len(wanted)) + ")", wanted)} \
                if wanted else {}
            top = tx.one("SELECT MAX(n) FROM {p}receipt")
            run_head = tx.one("SELECT count, head, tag, scheme FROM {p}receipt_run WHERE run = ?", (run_id,))
            return meta, rows, before, (top[0] if top else None), run_head

        meta, rows, signature_at, top, run_head = self.store.run(read)
        report = VerifyReport(ok=True, count=len(rows))
        problems = report.problems
        ledger = _ledger_of(meta)
        stored = None
        try:
            stored = self._stored_key(meta)
        except KeyFileError as e:
            problems.append(str(e))
        mark = None
        if ledger and self.marks is not None:
            try:
                mark = self.marks.read(ledger)
            except ReceiptError as e:
                problems.append(str(e))
        key, report.trust, report.pinned = self._trusted_key(stored, mark)
        report.key = key.fingerprint if key else ""
        if key is not None and stored is not None and key != stored:
            report.other_key = True
            problems.append(f"the ledger says its entries are signed with key {stored.fingerprint}, not with key "
                            f"{key.fingerprint} ({report.trust}): they were signed by someone else, or the ledger's "
                            "key was replaced")
        elif mark is not None and mark.public_key and stored is not None and PublicKey.from_text(mark.public_key) != stored:
            problems.append(f"the ledger's public key is now {stored.fingerprint}, but this machine saw it signed with "
                            f"key {PublicKey.from_text(mark.public_key).fingerprint} (recorded in "
                            f"{self.marks.path(ledger)}): the key was replaced")
        if mark is not None and mark.signature and key is not None and not key.verify(
                bytes.fromhex(mark.signature), signed_message("mark", mark.signed_fields())):
            problems.append(f"the high-water mark {self.marks.path(ledger)} was not signed with the ledger's key")
        head = _head_of(meta)
        problems += self._head_problems(ledger, head, key, signature_at, top)
        problems += self._run_problems(run_id, rows, run_head, ledger, key, signature_at, report)
        if ledger and self.marks is not None:
            with self._lock:
                self._mark, self._mark_read, self._confirmed = mark, True, -1
            why = self._rollback(ledger, head, lambda n: signature_at[n] if n in signature_at else
                                 self.store.run(lambda tx: _signature_at(tx, n)))
            if why:
                problems.append(why)
            if mark is None:
                report.seen = ("not checked: this machine had not seen this ledger before "
                               f"(from now on, {self.marks.path(ledger)} keeps the newest head seen)")
            else:
                report.seen = f"checked against the {mark.n} entries this machine saw ({self.marks.path(ledger)})"
            if not problems:
                self._raise_mark(ledger, int(head["n"]), head["last"], key)
        elif ledger:
            report.seen = "not checked: no folder for high-water marks"
        report.ok = not problems
        return report

    def _trusted_key(self, stored: PublicKey | None, mark: HeadMark | None) -> tuple[PublicKey | None, str, bool]:
        if self.keys.trusted is not None:
            return self.keys.trusted, self.keys.trust or "the public key given", True
        if mark is not None and mark.public_key:
            return (PublicKey.from_text(mark.public_key), "the key this machine saw the ledger signed with, trusted "
                    f"on first use and recorded in {self.marks.path(mark.ledger)}", True)
        if stored is not None:
            return stored, "the key stored beside the ledger, not pinned", False
        return None, "", False

    def _head_problems(self, ledger: str | None, head: Mapping[str, Any], key: PublicKey | None,
                       signature_at: Mapping[int, str], top: int | None) -> list[str]:
        """The ledger's signed head: signed, and naming the ledger's last entry."""
        n = int(head.get("n", 0))
        if n == 0:
            return [f"the ledger holds entries numbered up to {top} but its head records none"] if top is not None else []
        problems = []
        if key is not None and ledger is not None:
            body = {"ledger": ledger, "n": n, "last": head.get("last")}
            try:
                good = key.verify(bytes.fromhex(head.get("signature", "")), signed_message("head", body))
            except ValueError:
                good = False
            if not good:
                problems.append("the ledger's signed head was edited (or signed with another key)")
        last = signature_at.get(n - 1)
        if last is None:
            problems.append(f"the ledger's head records {n} entries, but entry {n - 1} is missing: its newest entries "
                            "were removed")
        elif last != head.get("last"):
            problems.append(f"the ledger's entry {n - 1} is not the last entry its head records")
        if top is not None and top >= n:
            problems.append(f"the ledger holds entries beyond the {n} its signed head records")
        return problems

    def _run_problems(self, run_id: str, rows: list[Receipt], run_head: tuple | None, ledger: str | None,
                      key: PublicKey | None, signature_at: Mapping[int, str], report: VerifyReport) -> list[str]:
        problems: list[str] = []
        legacy = self.keys.hmac
        prev_legacy = GENESIS
        for expected_seq, r in enumerate(rows):
            where = f"entry {r.id} (seq {r.seq}, tool {r.tool})"
            if r.seq != expected_seq:
                problems.append(f"{where}: expected seq {expected_seq}; an entry before it was removed or reordered")
            if r.scheme == ED25519:
                expected_prev = GENESIS if r.n == 0 else signature_at.get((r.n or 0) - 1)
                if r.prev != expected_prev:
                    problems.append(f"{where}: does not link to the ledger's entry before it (chain broken)")
                if key is None or ledger is None:
                    problems.append(f"{where}: no public key to check its signature with")
                elif not self._authentic(r, key, ledger):
                    problems.append(f"{where}: signature does not match its fields (edited, or signed with another key)")
                continue
            report.old_scheme += 1
            if r.prev != prev_legacy:
                problems.append(f"{where}: does not link to the entry before it (chain broken)")
            prev_legacy = r.signature
            if legacy is not None:
                if not hmac.compare_digest(legacy.mac(r.signed_fields()), r.signature):
                    problems.append(f"{where}: its HMAC does not match its fields (edited, or made with another key)")
                elif r.id != receipt_id(r.signature):
                    problems.append(f"{where}: id does not match its signature")
        if report.old_scheme and legacy is None:
            problems.append(f"{report.old_scheme} entries of run {run_id} were signed with the old HMAC scheme and "
                            f"cannot be checked without its key: set {KEY_ENV}, or keep {KEY_FILE} in the state folder")
        if run_head is None:
            if rows:
                problems.append(f"run {run_id} has {len(rows)} entries but no signed head")
            return problems
        count, last, tag, scheme = run_head
        if scheme == ED25519:
            body = {"ledger": ledger, "run": run_id, "count": count, "last": last}
            try:
                good = key is not None and key.verify(bytes.fromhex(tag), signed_message("run-head", body))
            except ValueError:
                good = False
        else:
            good = legacy is None or hmac.compare_digest(
                tag, legacy.mac({"run": run_id, "count": count, "head": last, "kind": "head"}))
        if not good:
            problems.append(f"run {run_id}: the signed head was edited")
        if count != len(rows):
            problems.append(f"run {run_id}: the head records {count} entries, the ledger holds {len(rows)}")
        elif rows and last != rows[-1].signature:
            problems.append(f"run {run_id}: the last entry is not the one the head records")
        return problems
