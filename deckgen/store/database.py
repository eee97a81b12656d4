"""Connections, transactions and the differences between SQLite and PostgreSQL, in one place.

Queries elsewhere in the store are written once with `?` placeholders; a `Cursor` translates
them for psycopg and hands rows back as dicts on both. A `Database` turns "the database is
away" into `StoreUnavailable` (never a raw driver error), and recovers by itself: SQLite
needs nothing, PostgreSQL goes through a bounded `psycopg_pool.ConnectionPool` that checks
each connection before lending it, so one broken by a server restart is discarded and
replaced, not reused."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deckgen.errors import ConfigError, DeckgenError, StoreUnavailable

log = logging.getLogger(__name__)

POOL_SIZE = 10  # DECKGEN_DATABASE_POOL_SIZE: most PostgreSQL connections one process holds
POOL_TIMEOUT = 5.0  # DECKGEN_DATABASE_POOL_TIMEOUT: seconds a call waits for a connection
PING_TIMEOUT = 2.0  # a readiness probe must answer well inside a 5-s health check
# While the database is known to be away a call waits at most this long, so request threads
# are not all held for the full pool timeout (a health check needs one free); the pool
# keeps reconnecting in the background, so this does not slow the recovery.
DOWN_TIMEOUT = 1.0
# A failing reconnection backs off 1, 2, 4 s ... until this many seconds, then the pool
# gives up and the next call starts afresh: so recovery never waits on a long backoff.
RECONNECT_TIMEOUT = 10.0
RETRY_AFTER = 5  # seconds a caller is told to wait when the database is away
# SQLite errors that mean "try again later", not "this query is wrong"
SQLITE_UNAVAILABLE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR",
                      "SQLITE_FULL", "SQLITE_READONLY", "SQLITE_PROTOCOL")


class InvalidValue(DeckgenError):
    """A text value the database cannot hold (PostgreSQL text refuses NUL bytes; neither
    takes a lone surrogate); refused on SQLite too, so both behave alike."""

    code = "invalid_value"
    http_status = 422


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def unstorable(*values: object) -> bool:
    """True when a text value can never be stored (a NUL byte, which PostgreSQL text
    refuses, or a lone surrogate, which is not UTF-8), so can never match a stored row: a
    lookup by it is simply "not found"."""
    return any(isinstance(v, str) and _unstorable_text(v) for v in values)


def _unstorable_text(text: str) -> bool:
    if "\x00" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class Cursor:
    """Translates `?` placeholders for PostgreSQL; rows come back as dicts on both."""

    def __init__(self, cur: Any, placeholder: str) -> None:
        self.cur, self.placeholder = cur, placeholder

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        if unstorable(*args):
            raise InvalidValue("text must not contain NUL (\\x00) characters or unpaired "
                               "surrogates")
        if self.placeholder != "?":
            sql = sql.replace("?", self.placeholder)
        self.cur.execute(sql, args)

    def fetchone(self) -> Any:
        row = self.cur.fetchone()
        return dict(row) if row is not None else None

    def fetchall(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.cur.fetchall()]

    @property
    def rowcount(self) -> int:
        return int(self.cur.rowcount)


class Database(ABC):
    """One interface over both databases: transactions, a readiness probe, closing."""

    dialect: str
    url: str

    @abstractmethod
    def tx(self, lock: bool = False,
           readonly: bool = False) -> contextlib.AbstractContextManager[Cursor]:
        """A transaction; `lock` serialises it against other locking transactions."""

    @abstractmethod
    def ping(self) -> bool:
        """True when a query gets through now; never raises."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the database opens them again on the next call."""


def unavailable() -> StoreUnavailable:
    return StoreUnavailable("the job store is unavailable; try again shortly",
                            retry_after=RETRY_AFTER)


class SqliteDatabase(Database):
    """A file (WAL mode) with one connection per thread, which SQLite handles well. The file
    is created readable by its owner only: it holds briefs and prompts."""

    dialect = "sqlite"

    def __init__(self, url: str) -> None:
        self.url = url
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:") else url
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        self.path = path
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @contextmanager
    def tx(self, lock: bool = False, readonly: bool = False) -> Iterator[Cursor]:
        """Every writing transaction takes the write lock up front (BEGIN IMMEDIATE): a
        deferred one that reads first and writes later can fail at once with "database is
        locked" instead of waiting. One writer at a time is also what `lock` asks for."""
        try:
            conn = self._conn()
            conn.execute("BEGIN" if readonly else "BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._translate(exc) from exc
        try:
            yield Cursor(conn.cursor(), "?")
            conn.execute("COMMIT")
        except BaseException as exc:
            # SQLite may have rolled back already (a full disk, an I/O error)
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise self._translate(exc) from exc
            raise

    @staticmethod
    def _translate(exc: sqlite3.OperationalError) -> Exception:
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name.startswith(SQLITE_UNAVAILABLE):
            log.warning("the database is unavailable: %s: %s", name, exc)
            return unavailable()
        return exc

    def ping(self) -> bool:
        try:
            with self.tx(readonly=True) as cur:
                cur.execute("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - readiness reports any failure as not ready
            return False

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class PostgresDatabase(Database):
    """A bounded pool shared by every thread of the process. Each connection is checked as
    it is lent, so after a restart of the server a call either gets a fresh connection or,
    while the server is still away, `StoreUnavailable` within `timeout` seconds."""

    dialect = "postgresql"
    ADVISORY_LOCK = 4242

    def __init__(self, url: str, pool_size: int = POOL_SIZE,
                 timeout: float = POOL_TIMEOUT) -> None:
        import psycopg

        self.url, self.pool_size, self.timeout = url, pool_size, timeout
        try:
            given = psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ConfigError(f"DECKGEN_DATABASE_URL is not a valid PostgreSQL URL: {exc}") \
                from None
        # Defaults the URL may override: fail a connection attempt fast, and notice a peer
        # that vanished without closing (a cut network) within about half a minute.
        self._connect_args = {k: v for k, v in {
            "connect_timeout": 5, "keepalives": 1, "keepalives_idle": 10,
            "keepalives_interval": 5, "keepalives_count": 3}.items() if k not in given}
        self._lock = threading.Lock()
        self._pool: Any = None
        self._down = False  # the last call could not reach the database

    def _get_pool(self) -> Any:
        with self._lock:
            if self._pool is None:
                from psycopg.rows import dict_row
                from psycopg_pool import ConnectionPool

                self._pool = ConnectionPool(
                    self.url, name="deckgen", min_size=1, max_size=self.pool_size,
                    # autocommit: every statement runs inside an explicit transaction()
                    kwargs={"autocommit": True, "row_factory": dict_row, **self._connect_args},
                    check=ConnectionPool.check_connection, timeout=self.timeout,
                    reconnect_timeout=RECONNECT_TIMEOUT, open=True)
            return self._pool

    @contextmanager
    def tx(self, lock: bool = False, readonly: bool = False,
           timeout: float | None = None) -> Iterator[Cursor]:
        """`lock` takes a transaction-level advisory lock."""
        import psycopg

        timeout = self.timeout if timeout is None else timeout
        if self._down:
            timeout = min(timeout, DOWN_TIMEOUT)
        try:
            with self._get_pool().connection(timeout=timeout) as conn, conn.transaction():
                if self._down:
                    log.warning("the database is reachable again")
                    self._down = False
                cur = conn.cursor()
                if lock:
                    cur.execute(f"SELECT pg_advisory_xact_lock({self.ADVISORY_LOCK})")
                yield Cursor(cur, "%s")
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            # OperationalError covers a refused or dropped connection, a server shutting
            # down, a pool with no connection to lend in time, and transient conflicts.
            if not self._down:  # log the outage once, not once per call
                self._down = True
                log.warning("the database is unavailable: %s: %s", type(exc).__name__, exc)
            raise unavailable() from exc

    def ping(self) -> bool:
        try:
            with self.tx(readonly=True, timeout=min(PING_TIMEOUT, self.timeout)) as cur:
                cur.execute("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - readiness reports any failure as not ready
            return False

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


def pool_settings(environ: Mapping[str, str] | None = None) -> tuple[int, float]:
    """DECKGEN_DATABASE_POOL_SIZE and DECKGEN_DATABASE_POOL_TIMEOUT, checked."""
    env = os.environ if environ is None else environ
    try:
        size = int(env.get("DECKGEN_DATABASE_POOL_SIZE", POOL_SIZE))
        timeout = float(env.get("DECKGEN_DATABASE_POOL_TIMEOUT", POOL_TIMEOUT))
    except ValueError as exc:
        raise ConfigError(f"DECKGEN_DATABASE_POOL_SIZE / _TIMEOUT must be numbers: {exc}") \
            from None
    if size < 1 or not timeout > 0:
        raise ConfigError("DECKGEN_DATABASE_POOL_SIZE must be at least 1 and "
                          "DECKGEN_DATABASE_POOL_TIMEOUT above 0")
    return size, timeout


def open_database(url: str, pool_size: int | None = None,
                  pool_timeout: float | None = None) -> Database:
    """The database a URL names: `postgresql://...` or a SQLite path / `sqlite:///path`."""
    if url.startswith(("postgresql://", "postgres://")):
        size, timeout = pool_settings()
        return PostgresDatabase(url, pool_size or size, pool_timeout or timeout)
    return SqliteDatabase(url)


class Tables:
    """The base of each part of the store (jobs, batches, keys, generations): a part reaches
    its tables only through `tx`."""

    db: Database

    def tx(self, lock: bool = False,
           readonly: bool = False) -> contextlib.AbstractContextManager[Cursor]:
        """A transaction; `lock` serialises it against other locking transactions
        (PostgreSQL: an advisory lock; SQLite: every writer holds the write lock)."""
        return self.db.tx(lock=lock, readonly=readonly)
