"""Batches: many jobs made by one request (a CRM export, a CSV), tracked and retried
together. A batch and its jobs are written in one transaction, so a batch is never left
half made; a client's idempotency key makes a retried request find the batch it made."""

from __future__ import annotations

import time
from typing import Any

from deckgen.store.database import Tables, new_id, unstorable
from deckgen.store.jobs import Job, JobNotFound, insert_job

# a batch's jobs, each (request, progress, presentation_id)
JobRequests = list[tuple[dict[str, Any], dict[str, Any], str | None]]
# jobs made together would share one timestamp and sort by their random ids: a microsecond
# apart keeps them queued and listed in the order they were given
JOB_SPACING = 1e-6


class BatchTables(Tables):
    def create_batch(self, owner: str, total: int) -> str:
        batch_id = new_id("batch")
        with self.tx() as cur:
            cur.execute("INSERT INTO batches (id, owner, total, created_at) VALUES (?, ?, ?, ?)",
                        (batch_id, owner, total, time.time()))
        return batch_id

    def create_batch_with_jobs(self, owner: str, requests: JobRequests,
                               idempotency_key: str | None = None
                               ) -> tuple[str, list[Job], bool]:
        """A batch and its queued jobs, in one transaction: (batch id, jobs in the order
        given, True). With an idempotency key this owner used before, nothing is written
        and the earlier batch comes back: (its id, its jobs, False)."""
        now = time.time()
        with self.tx(lock=True) as cur:
            if idempotency_key:
                cur.execute("SELECT id FROM batches WHERE owner = ? AND idempotency_key = ?",
                            (owner, idempotency_key))
                row = cur.fetchone()
                if row:
                    cur.execute("SELECT * FROM jobs WHERE batch_id = ? ORDER BY created_at, id",
                                (row["id"],))
                    return row["id"], [Job.from_row(r) for r in cur.fetchall()], False
            batch_id = new_id("batch")
            cur.execute("INSERT INTO batches (id, owner, total, created_at, idempotency_key) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (batch_id, owner, len(requests), now, idempotency_key or None))
            for i, (request, progress, presentation_id) in enumerate(requests):
                insert_job(cur, owner, request, progress, presentation_id, batch_id, None,
                           now + i * JOB_SPACING)
            cur.execute("SELECT * FROM jobs WHERE batch_id = ? ORDER BY created_at, id",
                        (batch_id,))
            return batch_id, [Job.from_row(r) for r in cur.fetchall()], True

    def get_batch(self, batch_id: str) -> tuple[dict[str, Any], list[Job]]:
        if unstorable(batch_id):
            raise JobNotFound(f"no batch {batch_id!r}")
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT * FROM batches WHERE id = ?", (batch_id,))
            row = cur.fetchone()
            if row is None:
                raise JobNotFound(f"no batch {batch_id}")
            cur.execute("SELECT * FROM jobs WHERE batch_id = ? ORDER BY created_at, id",
                        (batch_id,))
            jobs = [Job.from_row(r) for r in cur.fetchall()]
        return dict(row), jobs

    def retry_failed(self, batch_id: str) -> int:
        """Put a batch's failed jobs back in the queue; how many."""
        if unstorable(batch_id):
            return 0
        with self.tx(lock=True) as cur:
            cur.execute("UPDATE jobs SET state = 'queued', stage = NULL, error = NULL, "
                        "worker = NULL, finished_at = NULL, updated_at = ? WHERE batch_id = ? "
                        "AND state = 'failed'", (time.time(), batch_id))
            return int(cur.rowcount)

    def pause_batch(self, batch_id: str, paused: bool = True) -> list[str]:
        """Pause a batch (its queued jobs wait; jobs already generating or writing finish)
        or resume it. The ids of its queued jobs (a Celery service dispatches them again on
        resume). Raises JobNotFound for an unknown batch."""
        if unstorable(batch_id):
            raise JobNotFound(f"no batch {batch_id!r}")
        with self.tx(lock=True) as cur:
            cur.execute("UPDATE batches SET paused = ? WHERE id = ?", (int(paused), batch_id))
            if not cur.rowcount:
                raise JobNotFound(f"no batch {batch_id}")
            cur.execute("SELECT id FROM jobs WHERE batch_id = ? AND state = 'queued' "
                        "ORDER BY created_at, id", (batch_id,))
            return [r["id"] for r in cur.fetchall()]

    def cancel_batch(self, batch_id: str) -> int:
        """Cancel every job of a batch that has not ended: queued ones and decks waiting for
        their write end now, running ones at their next step; how many were asked."""
        if unstorable(batch_id):
            raise JobNotFound(f"no batch {batch_id!r}")
        now = time.time()
        with self.tx(lock=True) as cur:
            cur.execute("SELECT 1 FROM batches WHERE id = ?", (batch_id,))
            if cur.fetchone() is None:
                raise JobNotFound(f"no batch {batch_id}")
            cur.execute("UPDATE jobs SET state = 'cancelled', cancel_requested = 1, deck = NULL, "
                        "finished_at = ?, updated_at = ? WHERE batch_id = ? AND (state = 'queued' "
                        "OR (state = 'running' AND stage = 'generated'))", (now, now, batch_id))
            ended = int(cur.rowcount)
            cur.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE batch_id = ? "
                        "AND state = 'running'", (now, batch_id))
            return ended + int(cur.rowcount)
