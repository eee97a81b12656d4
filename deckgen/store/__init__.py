"""The durable store: jobs, batches, API keys and every generation, in SQLite (a file, WAL
mode, the default) or PostgreSQL (`DECKGEN_DATABASE_URL=postgresql://...`, through a
bounded connection pool).

The store is the source of truth: a job's state lives here, not in the worker that runs
it. One `Store` object serves every thread of a process. Its parts, one per aggregate:
`database` (connections, the two dialects, transactions, outage handling), `migrations`
(the schema), `jobs`, `batches`, `keys`, `generations` (with feedback). While the database
is away every method raises `StoreUnavailable` (a 503 with Retry-After), and the same
object works again by itself once it is back."""

from __future__ import annotations

from deckgen.errors import StoreUnavailable
from deckgen.store.batches import BatchTables, JobRequests
from deckgen.store.database import InvalidValue, Tables, new_id, open_database
from deckgen.store.generations import GenerationTables
from deckgen.store.jobs import (
    JSON_COLUMNS,
    LANES,
    STAGES,
    STATES,
    Job,
    JobNotFound,
    LineTables,
)
from deckgen.store.keys import ApiKey, KeyNotFound, KeyTables
from deckgen.store.migrations import MIGRATIONS, migrate

__all__ = ["JSON_COLUMNS", "LANES", "MIGRATIONS", "STAGES", "STATES", "ApiKey", "InvalidValue",
           "Job", "JobNotFound", "JobRequests", "KeyNotFound", "Store", "StoreUnavailable",
           "new_id"]


class Store(LineTables, BatchTables, KeyTables, GenerationTables, Tables):
    """Thread-safe access to the database. `pool_size` / `pool_timeout` bound PostgreSQL's
    connection pool (default: DECKGEN_DATABASE_POOL_SIZE, 10, and
    DECKGEN_DATABASE_POOL_TIMEOUT, 5 s); SQLite keeps one connection per thread."""

    def __init__(self, url: str, *, pool_size: int | None = None,
                 pool_timeout: float | None = None) -> None:
        self.url = url
        self.db = open_database(url, pool_size, pool_timeout)
        self.is_pg = self.db.dialect == "postgresql"
        self.path = getattr(self.db, "path", None)
        try:
            self.migrate()
        except BaseException:
            self.db.close()
            raise

    def migrate(self) -> int:
        """Bring the schema up to date; the number of migrations there are."""
        return migrate(self.db)

    def ping(self) -> bool:
        """True when the database answers now (within 2 s on PostgreSQL); never raises."""
        return self.db.ping()

    def close(self) -> None:
        """SQLite: close this thread's connection; PostgreSQL: close the pool. Either opens
        again on the next call."""
        self.db.close()
