"""One small SQL store under the fleet layer, on SQLite or PostgreSQL, chosen by URL.

Every fleet table (ledgers, rate windows, leases, events, heartbeats) lives in one database
that all workers share, so atomicity across processes is the database's:

* ``sqlite:///path/to/file`` — stdlib :mod:`sqlite3` in WAL mode. Every transaction starts
  with ``BEGIN IMMEDIATE``, which takes the database's one write lock up front, so
  transactions on one file are serialised across threads and processes (waiting up to
  ``busy_timeout_s``). One machine only: SQLite's locks do not cross a network filesystem.
* ``postgresql://...`` (also ``postgres://`` and SQLAlchemy's ``postgresql+psycopg://``) —
  psycopg 3. Transactions run at READ COMMITTED; the code under this module serialises what
  must be serialised by locking one row first (``SELECT ... FOR UPDATE``), and retries a
  transaction that loses a race on a unique key, a deadlock or a serialisation failure.

Statements are written once for both: ``?`` placeholders, ``{p}`` for the table prefix, a
trailing ``FOR UPDATE`` (dropped on SQLite, where the whole transaction holds the lock) and
``{serial}`` for an auto-numbered key column. Tables are named ``<prefix><name>`` (the prefix
starts with ``vox_``) in the connection's default schema, and are created on first use by
:meth:`Store.ensure`, which applies each component's numbered migrations once (idempotent,
and safe when several processes start together).

>>> import os, tempfile
>>> store = open_store("sqlite:///" + os.path.join(tempfile.mkdtemp(), "fleet.sqlite"))
>>> store.ensure("demo", (("CREATE TABLE {p}demo (k TEXT PRIMARY KEY, v BIGINT)",),))
>>> store.run(lambda tx: tx.execute("INSERT INTO {p}demo VALUES (?, ?)", ("a", 1)).rowcount)
1
>>> store.run(lambda tx: tx.one("SELECT v FROM {p}demo WHERE k = ? FOR UPDATE", ("a",)))
(1,)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import os
import re
import sqlite3
import threading
import time
import zlib
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")

DEFAULT_PREFIX = "vox_"
_PREFIX_RE = re.compile(r"^vox_[a-z0-9_]*$")
_RETRIES = 5


class StoreError(Exception):
    """A store URL or prefix that cannot be used."""


class StoreDamaged(StoreError):
    """The store's file (or database) cannot be used as it is: damaged (not a database, a malformed
    page) or not writable (a full disk, an I/O error, a read-only file). Raised in place of the
    driver's error by :meth:`Store.run`; ``str()`` names the file, says what is wrong and what to do.
    """

    def __init__(self, where: str, problem: str, remedy: str, damaged: bool = True, fix: str | None = None):
        super().__init__(f"{where} {problem}: {remedy}")
        self.where = where  # the file, or the database (password hidden)
        self.problem = problem
        self.remedy = remedy
        self.damaged = damaged  # False: intact, but it cannot be written (or read) now
        self.fix = fix or remedy  # what to do, alone ("see what is wrong with ...")


def damaged_remedy(path: str) -> str:
    """What to do about a damaged SQLite state file at ``path`` (the doctor names its folder).

    >>> damaged_remedy("/srv/app/.vox/state.sqlite")
    'see what is wrong with `voxc runs doctor --state-dir /srv/app/.vox`, then move the file aside, keeping what can be read, with `voxc runs doctor --state-dir /srv/app/.vox --repair`'
    """
    folder = os.path.dirname(os.path.abspath(path))
    return (f"see what is wrong with `voxc runs doctor --state-dir {folder}`, then move the file aside, keeping "
            f"what can be read, with `voxc runs doctor --state-dir {folder} --repair`")


# SQLite's primary result codes (the low byte of an extended code) that say the file is damaged,
# and those that say it cannot be written or read now.
_SQLITE_DAMAGED = {11: "is damaged (database disk image is malformed)", 26: "is not a SQLite database"}
_SQLITE_UNWRITABLE = {13: "cannot be written: the disk is full", 10: "cannot be written or read: a disk I/O error",
                      8: "cannot be written: it is read-only", 14: "cannot be opened",
                      3: "cannot be written: permission denied"}


def sqlite_damage(e: BaseException, path: str) -> StoreDamaged | None:
    """``e`` as a :class:`StoreDamaged` naming the SQLite file ``path``, if it says the file is
    damaged or cannot be written; None for any other error (a constraint, a lock, a bug)."""
    if not isinstance(e, sqlite3.DatabaseError) or isinstance(e, (sqlite3.IntegrityError, sqlite3.ProgrammingError)):
        return None
    code = getattr(e, "sqlite_errorcode", None)
    text = str(e)
    if code is None:  # before Python 3.11: the message is all there is
        code = 26 if "not a database" in text else 11 if "malformed" in text else 13 if "is full" in text else \
            10 if "I/O error" in text else 8 if "readonly" in text else None
    code = code & 0xFF if code is not None else None
    if code in _SQLITE_DAMAGED:
        return StoreDamaged(f"the state file {path}", _SQLITE_DAMAGED[code], "no run can use it until it is repaired; "
                            + damaged_remedy(path), fix=damaged_remedy(path))
    if code in _SQLITE_UNWRITABLE:
        fix = "free space, or fix the file's permissions"
        return StoreDamaged(f"the state file {path}", f"{_SQLITE_UNWRITABLE[code]} ({text})",
                            f"{fix}, then carry the run on with `voxc run --resume RUN_ID`; if the file was damaged "
                            "meanwhile, " + damaged_remedy(path), damaged=False, fix=fix)
    return None


def open_store(url: str, prefix: str = DEFAULT_PREFIX, *, busy_timeout_s: float = 30.0) -> Store:
    """The store at ``url``: ``sqlite:///path`` or ``postgresql://...``.

    ``prefix`` names the tables (``vox_`` and then lower-case letters, digits or ``_``); tests
    use a fresh prefix per run so they never see each other's rows.
    """
    if not _PREFIX_RE.match(prefix):
        raise StoreError(f"table prefix {prefix!r} must start with `vox_` and hold only a-z, 0-9 and `_`")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise StoreError(f"store URL {url!r} has no scheme; use sqlite:///path or postgresql://...")
    driver = scheme.split("+", 1)[0].lower()
    if driver == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute.db, as SQLAlchemy reads them.
        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise StoreError(f"store URL {url!r} names no file; use sqlite:///path/to/fleet.sqlite")
        return SqliteStore(url, path, prefix, busy_timeout_s)
    if driver in ("postgresql", "postgres"):
        return PostgresStore(url, "postgresql://" + rest, prefix, busy_timeout_s)
    raise StoreError(f"store URL {url!r}: unsupported scheme {scheme!r}; use sqlite:/// or postgresql://")


def as_store(url_or_store: str | Store, prefix: str = DEFAULT_PREFIX) -> Store:
    """``url_or_store`` if it is a store already, else the store at that URL."""
    if isinstance(url_or_store, Store):
        return url_or_store
    return open_store(url_or_store, prefix)


class Tx:
    """One open transaction: statements in the shared dialect (see the module docstring)."""

    __slots__ = ("_cur", "_store")

    def __init__(self, store: Store, cur: Any):
        self._store = store
        self._cur = cur

    @property
    def kind(self) -> str:
        return self._store.kind

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self._cur.execute(self._store.translate(sql), tuple(params))
        return self._cur

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return list(self.execute(sql, params).fetchall())


class Store(ABC):
    """A connection per process (re-opened after a fork), used by one thread at a time."""

    kind = ""
    _serial = ""

    def __init__(self, url: str, prefix: str, busy_timeout_s: float):
        self.url = url
        self.prefix = prefix
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        self._conn: Any = None
        self._pid = 0
        self._sql: dict[str, str] = {}
        self._ensured: set[str] = set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._redacted()!r}, prefix={self.prefix!r})"

    def _redacted(self) -> str:
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", self.url)

    # -- statements ---------------------------------------------------------------------

    def translate(self, sql: str) -> str:
        out = self._sql.get(sql)
        if out is None:
            out = sql.replace("{p}", self.prefix).replace("{serial}", self._serial)
            out = self._dialect(out)
            self._sql[sql] = out
        return out

    @abstractmethod
    def _dialect(self, sql: str) -> str:
        """Per backend."""

    # -- transactions -------------------------------------------------------------------

    def run(self, fn: Callable[[Tx], T]) -> T:
        """``fn(tx)`` in one transaction, committed when it returns, rolled back if it raises.

        A transaction that loses a race (a unique key taken meanwhile, a deadlock, a
        serialisation failure) is retried from the start, a few times; ``fn`` must therefore
        be safe to run again, which holds when it only talks to the database.
        """
        for attempt in range(_RETRIES):
            try:
                with self._lock, self._transaction() as tx:
                    return fn(tx)
            except StoreDamaged:
                raise
            except Exception as e:  # noqa: BLE001 - re-raised unless transient
                damage = self._damage(e)
                if damage is not None:  # the driver's words, turned into the file's name and what to do
                    raise damage from e
                if attempt == _RETRIES - 1 or not self._transient(e):
                    raise
                time.sleep(0.002 * (2**attempt))
        raise AssertionError("unreachable")

    def _transient(self, e: Exception) -> bool:
        return False

    def _damage(self, e: Exception) -> StoreDamaged | None:
        """``e`` as a :class:`StoreDamaged`, if it says the store is damaged or cannot be written."""
        return None

    @abstractmethod
    def _transaction(self) -> Iterator[Tx]:
        """A context manager: one transaction on this backend."""
        yield  # pragma: no cover

    def _connection(self) -> Any:
        if self._conn is None or self._pid != os.getpid() or self._closed(self._conn):
            self._conn = self._connect()
            self._pid = os.getpid()
        return self._conn

    @abstractmethod
    def _connect(self) -> Any:
        """Per backend."""

    def _closed(self, conn: Any) -> bool:
        return False

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # -- schema -------------------------------------------------------------------------

    def ensure(self, component: str, migrations: Sequence[Sequence[str]]) -> None:
        """Apply ``component``'s migrations not applied yet, in order, each once.

        ``migrations[i]`` is version ``i + 1``: a tuple of statements. Several processes may
        call this at once; one applies, the others see it applied.
        """
        if component in self._ensured:
            return

        def apply(tx: Tx) -> None:
            self._schema_lock(tx)
            tx.execute(
                "CREATE TABLE IF NOT EXISTS {p}schema (component TEXT NOT NULL, version BIGINT NOT NULL, "
                "applied_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (component, version))"
            )
            done = {v for (v,) in tx.all("SELECT version FROM {p}schema WHERE component = ?", (component,))}
            for version, statements in enumerate(migrations, start=1):
                if version in done:
                    continue
                for statement in statements:
                    tx.execute(statement)
                tx.execute("INSERT INTO {p}schema VALUES (?, ?, ?)", (component, version, time.time()))

        self.run(apply)
        self._ensured.add(component)

    def _schema_lock(self, tx: Tx) -> None:
        pass

    @abstractmethod
    def drop_all(self) -> None:
        """Drop every table with this store's prefix (for tests and teardown)."""


class SqliteStore(Store):
    kind = "sqlite"
    _serial = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def __init__(self, url: str, path: str, prefix: str, busy_timeout_s: float):
        super().__init__(url, prefix, busy_timeout_s)
        self.path = path

    def _dialect(self, sql: str) -> str:
        return re.sub(r"\s+FOR UPDATE\s*$", "", sql)

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        # Money is in here: every commit reaches the disk, not only the WAL's page cache.
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    def _transient(self, e: Exception) -> bool:
        # BEGIN IMMEDIATE serialises writers, so only a lock wait past busy_timeout lands here.
        return isinstance(e, sqlite3.OperationalError) and "locked" in str(e)

    def _damage(self, e: Exception) -> StoreDamaged | None:
        return sqlite_damage(e, os.path.abspath(self.path))

    @contextmanager
    def _transaction(self) -> Iterator[Tx]:
        conn = self._connection()
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield Tx(self, cur)
        except BaseException:
            if conn.in_transaction:
                cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    def drop_all(self) -> None:
        def drop(tx: Tx) -> None:
            names = [n for (n,) in tx.all("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for name in names:
                if name.startswith(self.prefix):
                    tx.execute(f'DROP TABLE IF EXISTS "{name}"')

        self.run(drop)
        self._ensured.clear()


class PostgresStore(Store):
    kind = "postgresql"
    _serial = "BIGSERIAL PRIMARY KEY"

    def __init__(self, url: str, dsn: str, prefix: str, busy_timeout_s: float):
        super().__init__(url, prefix, busy_timeout_s)
        self.dsn = dsn

    def _dialect(self, sql: str) -> str:
        # Our statements hold no literal `?` or `%`; psycopg wants `%s` placeholders.
        return sql.replace("%", "%%").replace("?", "%s")

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(
            self.dsn,
            autocommit=True,
            connect_timeout=max(1, int(self.busy_timeout_s)),
            application_name="vox-fleet",
        )

    def _closed(self, conn: Any) -> bool:
        return bool(conn.closed or conn.broken)

    def _transient(self, e: Exception) -> bool:
        import psycopg.errors as pe

        return isinstance(e, (pe.UniqueViolation, pe.DeadlockDetected, pe.SerializationFailure))

    def _damage(self, e: Exception) -> StoreDamaged | None:
        import psycopg.errors as pe

        where = f"the database {self._redacted()}"
        if isinstance(e, (pe.DataCorrupted, pe.IndexCorrupted)):
            return StoreDamaged(where, f"reports damaged data ({str(e).splitlines()[0]})",
                                "no run can use it until it is repaired: REINDEX a damaged index, or restore the "
                                "damaged table from a backup; `voxc runs doctor --db URL` lists what it can read")
        if isinstance(e, pe.DiskFull):
            return StoreDamaged(where, "cannot be written: its disk is full",
                                "free space on the database server, then carry the run on with `voxc run --resume "
                                "RUN_ID --db URL`", damaged=False)
        return None

    @contextmanager
    def _transaction(self) -> Iterator[Tx]:
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(f"SET LOCAL lock_timeout = '{int(self.busy_timeout_s * 1000)}ms'")
            yield Tx(self, cur)

    def _schema_lock(self, tx: Tx) -> None:
        # CREATE TABLE IF NOT EXISTS races on PostgreSQL's catalog; one migrator at a time.
        tx.execute("SELECT pg_advisory_xact_lock(?)", (zlib.crc32(self.prefix.encode()) - 2**31,))

    def drop_all(self) -> None:
        def drop(tx: Tx) -> None:
            rows = tx.all(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE ?",
                (self.prefix.replace("_", r"\_") + "%",),
            )
            for (name,) in rows:
                tx.execute(f'DROP TABLE IF EXISTS "{name}" CASCADE')

        self.run(drop)
        self._ensured.clear()
