"""Jobs: the queue every worker claims from. A job's state lives here, not in the worker that
runs it, so a killed process loses nothing and its running jobs are picked up again once
their heartbeat goes stale. A deck is written by one running job at a time."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from deckgen.errors import DeckgenError
from deckgen.store.database import Cursor, Tables, new_id, unstorable

STATES = ("queued", "running", "done", "failed", "cancelled")
JSON_COLUMNS = ("request", "progress", "result", "error")


class JobNotFound(DeckgenError):
    code = "job_not_found"
    http_status = 404


@dataclass
class Job:
    id: str
    owner: str
    state: str
    request: dict[str, Any]
    presentation_id: str | None
    batch_id: str | None
    idempotency_key: str | None
    progress: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    cancel_requested: bool
    worker: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat_at: float | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        data = dict(row)
        for col in JSON_COLUMNS:
            data[col] = json.loads(data[col]) if data[col] else None
        data["cancel_requested"] = bool(data["cancel_requested"])
        return cls(**data)


def insert_job(cur: Cursor, owner: str, request: dict[str, Any], progress: dict[str, Any],
               presentation_id: str | None, batch_id: str | None,
               idempotency_key: str | None, now: float) -> str:
    """Add a queued job inside the caller's transaction; its id."""
    job_id = new_id("job")
    cur.execute(
        "INSERT INTO jobs (id, owner, state, request, presentation_id, batch_id, "
        "idempotency_key, progress, created_at, updated_at) "
        "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
        (job_id, owner, json.dumps(request), presentation_id, batch_id,
         idempotency_key, json.dumps(progress), now, now))
    return job_id


class JobTables(Tables):
    def create_job(self, owner: str, request: dict[str, Any], progress: dict[str, Any],
                   presentation_id: str | None = None, batch_id: str | None = None,
                   idempotency_key: str | None = None) -> tuple[Job, bool]:
        """A new queued job, or the existing one with the same idempotency key (and False)."""
        with self.tx(lock=True) as cur:
            if idempotency_key:
                cur.execute("SELECT * FROM jobs WHERE owner = ? AND idempotency_key = ?",
                            (owner, idempotency_key))
                row = cur.fetchone()
                if row:
                    return Job.from_row(row), False
            job_id = insert_job(cur, owner, request, progress, presentation_id, batch_id,
                                idempotency_key, time.time())
            cur.execute("SELECT * FROM jobs WHERE id = ?", (job_id,))
            return Job.from_row(cur.fetchone()), True

    def get_job(self, job_id: str) -> Job:
        if unstorable(job_id):
            raise JobNotFound(f"no job {job_id!r}")
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT * FROM jobs WHERE id = ?", (job_id,))
            row = cur.fetchone()
        if row is None:
            raise JobNotFound(f"no job {job_id}")
        return Job.from_row(row)

    def claim_job(self, worker: str) -> Job | None:
        """Take the oldest queued job whose deck no running job is writing (per-deck lock)."""
        now = time.time()
        with self.tx(lock=True) as cur:
            cur.execute(
                "SELECT j.id FROM jobs j WHERE j.state = 'queued' AND (j.presentation_id IS NULL "
                "OR NOT EXISTS (SELECT 1 FROM jobs r WHERE r.state = 'running' AND "
                "r.presentation_id = j.presentation_id)) ORDER BY j.created_at, j.id LIMIT 1")
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute(
                "UPDATE jobs SET state = 'running', worker = ?, attempts = attempts + 1, "
                "started_at = ?, heartbeat_at = ?, updated_at = ? WHERE id = ? "
                "AND state = 'queued'", (worker, now, now, now, row["id"]))
        return self.get_job(row["id"])

    def claim_job_id(self, job_id: str, worker: str, stale_after: float) -> Job | str:
        """Take one given job (the Celery path): the Job, or why not: "locked" when another
        running job is writing its deck (try later), "gone" when it is not waiting to run
        (finished, cancelled, or running with a live heartbeat)."""
        if unstorable(job_id):
            return "gone"
        now = time.time()
        with self.tx(lock=True) as cur:
            cur.execute("SELECT * FROM jobs WHERE id = ?", (job_id,))
            row = cur.fetchone()
            if row is None:
                return "gone"
            stale = row["state"] == "running" and (row["heartbeat_at"] or 0) < now - stale_after
            if row["state"] != "queued" and not stale:
                return "gone"
            if row["presentation_id"]:
                cur.execute("SELECT 1 FROM jobs WHERE state = 'running' AND presentation_id = ? "
                            "AND id <> ?", (row["presentation_id"], job_id))
                if cur.fetchone():
                    return "locked"
            cur.execute(
                "UPDATE jobs SET state = 'running', worker = ?, attempts = attempts + 1, "
                "started_at = ?, heartbeat_at = ?, updated_at = ? WHERE id = ?",
                (worker, now, now, now, job_id))
        return self.get_job(job_id)

    def queued_ids(self) -> list[str]:
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY created_at")
            return [r["id"] for r in cur.fetchall()]

    def heartbeat(self, job_id: str, worker: str) -> bool:
        """Keep a running job ours; False if it was cancelled or taken away."""
        if unstorable(job_id, worker):
            return False
        with self.tx() as cur:
            cur.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ? AND worker = ? "
                        "AND state = 'running'", (time.time(), job_id, worker))
            return bool(cur.rowcount)

    def set_presentation(self, job_id: str, presentation_id: str) -> None:
        """Remember the deck a template job copied, so a re-run fills it, not a new copy."""
        if unstorable(job_id):
            return
        with self.tx() as cur:
            cur.execute("UPDATE jobs SET presentation_id = ?, updated_at = ? WHERE id = ?",
                        (presentation_id, time.time(), job_id))

    def update_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        if unstorable(job_id):
            return
        with self.tx() as cur:
            cur.execute("UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?",
                        (json.dumps(progress), time.time(), job_id))

    def finish_job(self, job_id: str, worker: str, state: str,
                   result: dict[str, Any] | None = None,
                   error: dict[str, Any] | None = None,
                   progress: dict[str, Any] | None = None) -> bool:
        if unstorable(job_id, worker):
            return False
        now = time.time()
        with self.tx() as cur:
            sets = "state = ?, result = ?, error = ?, finished_at = ?, updated_at = ?"
            args: list[Any] = [state, json.dumps(result) if result else None,
                               json.dumps(error) if error else None, now, now]
            if progress is not None:
                sets += ", progress = ?"
                args.append(json.dumps(progress))
            cur.execute(f"UPDATE jobs SET {sets} WHERE id = ? AND worker = ? "
                        "AND state = 'running'", (*args, job_id, worker))
            return bool(cur.rowcount)

    def cancel_job(self, job_id: str) -> Job:
        if unstorable(job_id):
            raise JobNotFound(f"no job {job_id!r}")
        now = time.time()
        with self.tx(lock=True) as cur:
            cur.execute("UPDATE jobs SET state = 'cancelled', cancel_requested = 1, "
                        "finished_at = ?, updated_at = ? WHERE id = ? AND state = 'queued'",
                        (now, now, job_id))
            cur.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ? "
                        "AND state = 'running'", (now, job_id))
        return self.get_job(job_id)

    def requeue_stale(self, stale_after: float) -> list[str]:
        """Jobs left `running` by a worker that stopped heart-beating go back to the queue."""
        cutoff = time.time() - stale_after
        with self.tx(lock=True) as cur:
            cur.execute("SELECT id FROM jobs WHERE state = 'running' AND heartbeat_at < ?",
                        (cutoff,))
            ids = [r["id"] for r in cur.fetchall()]
            for job_id in ids:
                cur.execute("UPDATE jobs SET state = 'queued', worker = NULL, updated_at = ? "
                            "WHERE id = ? AND state = 'running'", (time.time(), job_id))
        return ids

    def queue_depth(self) -> int:
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT COUNT(*) AS n FROM jobs WHERE state = 'queued'")
            return int(cur.fetchone()["n"])
