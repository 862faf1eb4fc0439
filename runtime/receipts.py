"""The receipt ledger: every ``write``/``external`` tool call, signed and hash-chained.

Each run has its own chain in the deployment's store (``.vox/state.sqlite`` by default, the
fleet's PostgreSQL database with ``--db``, so any machine can verify any run). An entry records
which tool ran at which position of the run, digests of its arguments and result, and when; it is
signed with HMAC-SHA256 over the canonical JSON of those fields plus ``prev``, the MAC of the
run's previous entry (a fixed genesis for the first). A ``runs`` row holds each chain's length
and last MAC, signed too, so that dropping the newest entries is noticed as well as editing,
removing or reordering any of them. The id of an entry is derived from its MAC
(``rcpt_`` + base32 of its first 10 bytes), so an id cannot be made up without the key, and a
``Receipt[t]`` value in a program carries it.

The key comes from ``VOX_RECEIPT_KEY`` or a per-installation key file (see :func:`load_key`). It is
held in a :class:`ReceiptKey`, whose ``repr`` hides it, and never appears in a message.

Triggers refuse ``UPDATE`` and ``DELETE`` on the entries; they are a guard against
mistakes, not a defence (anyone with the file can drop them). The defence is the MAC chain:
:meth:`ReceiptLedger.verify` finds any change made without the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from vox.compiler.plan.serde import canonical_json

GENESIS = "0" * 64
KEY_ENV = "VOX_RECEIPT_KEY"
KEY_FILE = "receipt.key"
RECEIPT_ID = re.compile(r"\brcpt_[a-z2-7]{16}\b", re.IGNORECASE)
_KEY_CHECK = b"vox receipt ledger key check v1"

_MIGRATIONS = (
    (
        "CREATE TABLE IF NOT EXISTS {p}receipt_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS {p}receipt (id TEXT PRIMARY KEY, run TEXT NOT NULL, seq BIGINT NOT NULL, "
        "pos TEXT NOT NULL, tool TEXT NOT NULL, args_sha256 TEXT NOT NULL, result_sha256 TEXT NOT NULL, "
        "at BIGINT NOT NULL, prev TEXT NOT NULL, mac TEXT NOT NULL, UNIQUE (run, seq), UNIQUE (run, pos))",
        "CREATE TABLE IF NOT EXISTS {p}receipt_run (run TEXT PRIMARY KEY, count BIGINT NOT NULL, "
        "head TEXT NOT NULL, tag TEXT NOT NULL)",
    ),
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
    """Base of the ledger's errors. Messages never contain the key."""


class ReceiptConflict(ReceiptError):
    """A position of a run was appended again with different arguments, result or tool."""


class FabricatedReceipt(ReceiptError):
    """A model's output names a receipt that the run's ledger does not hold."""


class KeyFileError(ReceiptError):
    """The key file cannot be used (unreadable, malformed, or readable by others)."""


class ReceiptKey:
    """The ledger's HMAC key. ``repr``/``str`` show a short fingerprint, never the key."""

    __slots__ = ("_key", "source")

    def __init__(self, key: bytes, source: str = "given"):
        if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
            raise ValueError("a receipt key must be at least 16 bytes")
        self._key = bytes(key)
        self.source = source

    def reveal(self) -> bytes:
        return self._key

    @property
    def fingerprint(self) -> str:
        """Identifies the key in messages without revealing it (a MAC of a fixed text)."""
        return hmac.new(self._key, _KEY_CHECK, hashlib.sha256).hexdigest()[:12]

    def __repr__(self) -> str:
        return f"ReceiptKey(<hidden>, fingerprint={self.fingerprint}, source={self.source})"

    __str__ = __repr__

    def __reduce__(self):  # keep it out of pickles (and so out of journals by accident)
        raise TypeError("a ReceiptKey cannot be pickled")


def load_key(state_dir: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> ReceiptKey:
    """The installation's receipt key.

    ``VOX_RECEIPT_KEY`` wins: 64 hex digits are the 32 key bytes, any other text is hashed
    (SHA-256) to 32 bytes. Otherwise ``<state_dir>/receipt.key`` holds the key as hex; it is
    created with 32 random bytes and mode 0600 the first time, and refused when group or others
    may read it (as ssh refuses a private key).
    """
    env = os.environ if environ is None else environ
    text = env.get(KEY_ENV)
    if text is not None:
        if not text.strip():
            raise KeyFileError(f"{KEY_ENV} is set but empty")
        text = text.strip()
        if re.fullmatch(r"[0-9a-fA-F]{64}", text):
            return ReceiptKey(bytes.fromhex(text), source=f"env {KEY_ENV}")
        return ReceiptKey(hashlib.sha256(text.encode("utf-8")).digest(), source=f"env {KEY_ENV}")
    path = Path(state_dir) / KEY_FILE
    if not path.exists():
        _create_key_file(path)
    if os.name == "posix":
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(f"{path} may be read by other users (mode {stat.S_IMODE(mode):o}); run `chmod 600 {path}`")
    try:
        raw = path.read_text(encoding="ascii").strip()
        key = bytes.fromhex(raw)
    except (OSError, UnicodeDecodeError, ValueError):
        raise KeyFileError(f"{path} does not hold a hex key (64 hex digits)") from None
    if len(key) < 16:
        raise KeyFileError(f"{path} holds a key shorter than 16 bytes")
    return ReceiptKey(key, source=str(path))


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (secrets.token_bytes(32).hex() + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # atomic, and refuses to replace a key another process just made
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def digest(value: Any) -> str:
    """sha256 of the UTF-8 of the canonical JSON of ``value`` (what a receipt records of a call).

    The bytes hashed and signed are part of every receipt ever signed: sorted keys, no spaces,
    non-ASCII as UTF-8 (tests/test_receipts.py pins a signature, so a change is noticed).

    >>> digest({"b": 1, "a": [True, None, "é"]}) == hashlib.sha256(b'{"a":[true,null,"\\xc3\\xa9"],"b":1}').hexdigest()
    True
    """
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Receipt:
    """One signed entry: the proof that ``tool`` ran at ``pos`` of ``run``."""

    id: str
    run: str
    seq: int
    pos: str
    tool: str
    args_sha256: str
    result_sha256: str
    at: int  # milliseconds since the Unix epoch
    prev: str
    mac: str

    def signed_fields(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "seq": self.seq,
            "pos": self.pos,
            "tool": self.tool,
            "args_sha256": self.args_sha256,
            "result_sha256": self.result_sha256,
            "at": self.at,
            "prev": self.prev,
        }


@dataclass(slots=True)
class VerifyReport:
    ok: bool
    count: int
    problems: list[str] = field(default_factory=list)


def receipt_id(mac_hex: str) -> str:
    return "rcpt_" + base64.b32encode(bytes.fromhex(mac_hex)[:10]).decode("ascii").lower()


def find_receipt_ids(text: str) -> list[str]:
    """Receipt ids mentioned in free text (a model's answer), in order, lower-cased, unique."""
    seen: dict[str, None] = {}
    for m in RECEIPT_ID.finditer(text):
        seen.setdefault(m.group(0).lower(), None)
    return list(seen)


_COLUMNS = "id, run, seq, pos, tool, args_sha256, result_sha256, at, prev, mac"


class ReceiptLedger:
    """The append-only, hash-chained receipt ledger in the deployment's store.

    ``where`` is a :class:`~vox.runtime.fleet.store.Store`, a store URL (``sqlite:///...``,
    ``postgresql://...``) or a file path (a SQLite file). Safe to share between threads and between
    processes: an append is one transaction that locks the run's chain head first.
    """

    def __init__(self, where: Any, key: ReceiptKey | bytes, *, clock: Callable[[], float] = time.time):
        from vox.runtime.fleet.store import Store, open_store

        if isinstance(where, Store):
            self.store = where
        else:
            text = str(where)
            self.store = open_store(text if "://" in text else "sqlite:///" + text)
        self._key = key if isinstance(key, ReceiptKey) else ReceiptKey(key)
        self._clock = clock
        guards = _SQLITE_GUARDS if self.store.kind == "sqlite" else _PG_GUARDS
        self.store.ensure("receipts", (_MIGRATIONS[0] + guards,))
        self.store.run(lambda tx: tx.execute(
            "INSERT INTO {p}receipt_meta (name, value) VALUES ('key_check', ?) ON CONFLICT (name) DO NOTHING",
            (self._key.fingerprint,)))

    def __repr__(self) -> str:
        return f"ReceiptLedger({self.store!r})"

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> ReceiptLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- signing -------------------------------------------------------------------------

    def _mac(self, fields: dict[str, Any]) -> str:
        return hmac.new(self._key.reveal(), canonical_json(fields).encode("utf-8"), hashlib.sha256).hexdigest()

    def _head_tag(self, run: str, count: int, head: str) -> str:
        return self._mac({"run": run, "count": count, "head": head, "kind": "head"})

    # -- writing -------------------------------------------------------------------------

    def append(self, run_id: str, pos: str | int, tool: str, args: Any, result: Any, tx: Any = None) -> Receipt:
        """Sign a tool call into the run's chain and return its receipt.

        Idempotent on ``(run_id, pos)``: appending the same call at the same position again (a
        resumed run) returns the existing receipt; a different tool, arguments or result there
        raises :class:`ReceiptConflict`. With ``tx``, the append is part of that transaction (the
        journal records the step and signs its receipt in one commit).
        """
        if tx is None:
            return self.store.run(lambda t: self.append(run_id, pos, tool, args, result, t))
        pos = str(pos)
        args_sha, result_sha = digest(args), digest(result)
        # Lock the run's chain head first (its row, or nothing yet on a first append, where the
        # unique (run, seq) key settles a race and the store retries the loser).
        head = tx.one("SELECT count, head FROM {p}receipt_run WHERE run = ? FOR UPDATE", (run_id,))
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
        seq, prev = (head[0], head[1]) if head else (0, GENESIS)
        fields = {
            "run": run_id,
            "seq": seq,
            "pos": pos,
            "tool": tool,
            "args_sha256": args_sha,
            "result_sha256": result_sha,
            "at": int(self._clock() * 1000),
            "prev": prev,
        }
        mac = self._mac(fields)
        receipt = Receipt(id=receipt_id(mac), mac=mac, **fields)
        tx.execute(f"INSERT INTO {{p}}receipt ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (receipt.id, run_id, seq, pos, tool, args_sha, result_sha, fields["at"], prev, mac))
        tx.execute("INSERT INTO {p}receipt_run (run, count, head, tag) VALUES (?, ?, ?, ?) "
                   "ON CONFLICT (run) DO UPDATE SET count = excluded.count, head = excluded.head, tag = excluded.tag",
                   (run_id, seq + 1, mac, self._head_tag(run_id, seq + 1, mac)))
        return receipt

    # -- reading -------------------------------------------------------------------------

    def get(self, receipt_id: str) -> Receipt | None:
        row = self.store.run(lambda tx: tx.one(f"SELECT {_COLUMNS} FROM {{p}}receipt WHERE id = ?",
                                               (receipt_id.lower(),)))
        return Receipt(*row) if row else None

    def _authentic(self, r: Receipt) -> bool:
        mac = self._mac(r.signed_fields())
        return hmac.compare_digest(mac, r.mac) and r.id == receipt_id(mac)

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

    def entries(self, run_id: str) -> list[Receipt]:
        rows = self.store.run(lambda tx: tx.all(f"SELECT {_COLUMNS} FROM {{p}}receipt WHERE run = ? ORDER BY seq",
                                                (run_id,)))
        return [Receipt(*row) for row in rows]

    def runs(self) -> list[str]:
        return [r[0] for r in self.store.run(lambda tx: tx.all("SELECT run FROM {p}receipt_run ORDER BY run"))]

    # -- verifying -----------------------------------------------------------------------

    def verify(self, run_id: str) -> VerifyReport:
        """Check the run's chain: every MAC, every link, the order, and the signed length."""
        problems: list[str] = []
        check, head = self.store.run(lambda tx: (
            tx.one("SELECT value FROM {p}receipt_meta WHERE name = 'key_check'"),
            tx.one("SELECT count, head, tag FROM {p}receipt_run WHERE run = ?", (run_id,))))
        if check is not None and not hmac.compare_digest(check[0], self._key.fingerprint):
            problems.append(
                "the ledger was signed with a different key than the one loaded "
                f"(key fingerprint {self._key.fingerprint}, ledger expects {check[0]}); "
                f"set {KEY_ENV} or restore {KEY_FILE}"
            )
        rows = self.entries(run_id)
        prev = GENESIS
        for expected_seq, r in enumerate(rows):
            where = f"entry {r.id} (seq {r.seq}, tool {r.tool})"
            if r.seq != expected_seq:
                problems.append(f"{where}: expected seq {expected_seq}; an entry before it was removed or reordered")
            if r.prev != prev:
                problems.append(f"{where}: does not link to the entry before it (chain broken)")
            mac = self._mac(r.signed_fields())
            if not hmac.compare_digest(mac, r.mac):
                problems.append(f"{where}: signature does not match its fields (edited, or signed with another key)")
            elif r.id != receipt_id(mac):
                problems.append(f"{where}: id does not match its signature")
            prev = r.mac
        if head is None:
            if rows:
                problems.append(f"run {run_id} has {len(rows)} entries but no signed head")
        else:
            count, head_mac, tag = head
            if not hmac.compare_digest(tag, self._head_tag(run_id, count, head_mac)):
                problems.append(f"run {run_id}: the signed head was edited")
            if count != len(rows):
                problems.append(f"run {run_id}: the head records {count} entries, the ledger holds {len(rows)}")
            elif rows and head_mac != rows[-1].mac:
                problems.append(f"run {run_id}: the last entry is not the one the head records")
        return VerifyReport(ok=not problems, count=len(rows), problems=problems)
