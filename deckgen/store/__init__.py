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

import json

from deckgen.errors import DeckgenError, StoreUnavailable
from deckgen.store.batches import BatchTables, JobRequests
from deckgen.store.crm import CrmTables, Writeback
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
from deckgen.store.schedules import ScheduleTables
from deckgen.store.sealing import SealedValue, configure

__all__ = ["JSON_COLUMNS", "LANES", "MIGRATIONS", "STAGES", "STATES", "ApiKey", "InvalidValue",
           "Job", "JobNotFound", "JobRequests", "KeyNotFound", "SealedValue", "Store",
           "StoreUnavailable", "Writeback", "new_id"]


class Store(LineTables, BatchTables, KeyTables, GenerationTables, ScheduleTables, CrmTables,
            Tables):
    """Thread-safe access to the database. `pool_size` / `pool_timeout` bound PostgreSQL's
    connection pool (default: DECKGEN_DATABASE_POOL_SIZE, 10, and
    DECKGEN_DATABASE_POOL_TIMEOUT, 5 s); SQLite keeps one connection per thread."""

    def __init__(self, url: str, *, pool_size: int | None = None,
                 pool_timeout: float | None = None, key: str | None = None) -> None:
        if key is not None:
            configure(key)  # payloads at rest sealed with this key (sealing.py)
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

    def purge_job(self, job_id: str) -> int:
        """Forget what a job held of its brief: its request (all but the target), its
        generated deck, and its generations' prompts and outputs. The job's state, timings
        and per-section progress stay. How many generations were purged."""
        job = self.get_job(job_id)  # JobNotFound for an unknown id
        if job.state in ("queued", "running"):
            raise DeckgenError(f"job {job_id} is {job.state}: cancel it or let it end before "
                               "purging it")
        kept = {k: job.request[k] for k in ("target", "presentation_id", "template_id")
                if k in job.request}
        with self.tx(lock=True) as cur:
            cur.execute("UPDATE jobs SET request = ?, deck = NULL WHERE id = ?",
                        (json.dumps({**kept, "purged": True}), job_id))
            cur.execute("UPDATE generations SET prompt = NULL, output = NULL WHERE job_id = ?",
                        (job_id,))
            return int(cur.rowcount)

    def ping(self) -> bool:
        """True when the database answers now (within 2 s on PostgreSQL); never raises."""
        return self.db.ping()

    def close(self) -> None:
        """SQLite: close this thread's connection; PostgreSQL: close the pool. Either opens
        again on the next call."""
        self.db.close()
