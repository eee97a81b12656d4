"""Claims: how a worker takes a job, and the two stages a running job passes through with a
durable hand-off between them: `generate` (a worker holds it), `generated` (its DeckContent
waits in the store for a Slides write slot, held by no worker) and `write` (a worker holds
it). Claims follow the lanes: interactive jobs (no batch) before batch jobs, and batch work
round-robin between owners; a deck is written by one running job at a time. The job record
itself and its other changes are jobs.py."""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from deckgen.store.database import Cursor, Tables, unstorable
from deckgen.store.sealing import seal

if TYPE_CHECKING:
    from deckgen.store.jobs import Job

# the lane order and, within batch, the owner served longest ago first (round robin)
LANE_ORDER = ("CASE WHEN j.batch_id IS NULL THEN 0 ELSE 1 END, COALESCE(f.served_at, 0), "
              "j.created_at, j.id")
CLAIMABLE = ("FROM jobs j LEFT JOIN batches b ON b.id = j.batch_id "
             "LEFT JOIN fair_share f ON f.owner = j.owner AND j.batch_id IS NOT NULL "
             "WHERE j.state = 'queued' AND COALESCE(b.paused, 0) = 0")
# a deck is written by one job at a time: a job waits while another is in flight on it
DECK_FREE = ("(j.presentation_id IS NULL OR NOT EXISTS (SELECT 1 FROM jobs r WHERE "
             "r.state = 'running' AND r.presentation_id = j.presentation_id))")


class ClaimTables(Tables):
    """The claim and hand-off half of the jobs table; JobTables (jobs.py) builds on it."""

    def get_job(self, job_id: str) -> Job:
        """The job as it stands (JobTables reads it)."""
        raise NotImplementedError

    def claim_job(self, worker: str) -> Job | None:
        """Take the next job to generate, in lane order: interactive jobs first (oldest
        first), then batch jobs of unpaused batches, round-robin between owners; never a
        job whose deck another job has in flight (per-deck lock)."""
        now = time.time()
        with self.tx(lock=True) as cur:
            cur.execute(f"SELECT j.id, j.owner, j.batch_id {CLAIMABLE} AND {DECK_FREE} "
                        f"ORDER BY {LANE_ORDER} LIMIT 1")
            row = cur.fetchone()
            if row is None:
                return None
            _start(cur, row["id"], worker, now)
            if row["batch_id"]:
                _served(cur, row["owner"], now)
        return self.get_job(row["id"])

    def claim_job_id(self, job_id: str, worker: str, stale_after: float) -> Job | str:
        """Take one given job to generate (the Celery path): the Job, or why not: "locked"
        when another job has its deck in flight (try later), "paused" when its batch is
        paused (try later), "generated" when its deck waits for its write (see
        `claim_write_id`), "gone" when it is not waiting to run (finished, cancelled, or
        held by a worker with a live heartbeat)."""
        if unstorable(job_id):
            return "gone"
        now = time.time()
        with self.tx(lock=True) as cur:
            cur.execute("SELECT j.*, COALESCE(b.paused, 0) AS paused FROM jobs j "
                        "LEFT JOIN batches b ON b.id = j.batch_id WHERE j.id = ?", (job_id,))
            row = cur.fetchone()
            if row is None:
                return "gone"
            if row["state"] == "running" and row["stage"] in ("generated", "write"):
                return "generated"
            stale = row["state"] == "running" and (row["heartbeat_at"] or 0) < now - stale_after
            if row["state"] != "queued" and not stale:
                return "gone"
            if row["paused"] and row["state"] == "queued":
                return "paused"
            if row["presentation_id"]:
                cur.execute("SELECT 1 FROM jobs WHERE state = 'running' AND presentation_id = ? "
                            "AND id <> ?", (row["presentation_id"], job_id))
                if cur.fetchone():
                    return "locked"
            _start(cur, job_id, worker, now)
            if row["batch_id"]:
                _served(cur, row["owner"], now)
        return self.get_job(job_id)

    def hand_off(self, job_id: str, worker: str, deck: dict[str, Any],
                 principal: str) -> bool:
        """The generation stage is over: the deck waits in the store for its write, held by
        no worker. False if the job is no longer this worker's."""
        now = time.time()
        with self.tx() as cur:
            cur.execute("UPDATE jobs SET stage = 'generated', deck = ?, principal = ?, "
                        "generated_at = ?, worker = NULL, heartbeat_at = NULL, updated_at = ? "
                        "WHERE id = ? AND worker = ? AND state = 'running' "
                        "AND stage = 'generate'",
                        (seal(json.dumps(deck)), principal, now, now, job_id, worker))
            return bool(cur.rowcount)

    def claim_write(self, worker: str, skip_principals: Collection[str] = (),
                    skip_batch_principals: Collection[str] = (),
                    writable: Collection[str] | None = None,
                    orphaned_before: float | None = None) -> Job | None:
        """Take the next generated deck to write: interactive before batch, then in the
        order they were generated; never one of `skip_principals`, nor a batch deck of
        `skip_batch_principals` (their quota said "wait"). `writable`, when given, limits
        the claim to decks written as the service account and these job ids (the ones this
        process holds a person's token for), plus any generated before `orphaned_before`
        (whose token holder is gone: the write then fails with a clear message)."""
        now = time.time()
        where, args = "j.state = 'running' AND j.stage = 'generated'", list[Any]()
        if skip_principals:
            where += f" AND j.principal NOT IN ({', '.join('?' * len(skip_principals))})"
            args += list(skip_principals)
        if skip_batch_principals:
            where += (" AND NOT (j.batch_id IS NOT NULL AND j.principal IN "
                      f"({', '.join('?' * len(skip_batch_principals))}))")
            args += list(skip_batch_principals)
        if writable is not None:
            ids = list(writable)
            where += " AND (j.owner NOT LIKE ? OR j.generated_at < ?"
            args += ["google:%", orphaned_before if orphaned_before is not None else 0.0]
            where += f" OR j.id IN ({', '.join('?' * len(ids))}))" if ids else ")"
            args += ids
        with self.tx(lock=True) as cur:
            cur.execute(f"SELECT j.id FROM jobs j WHERE {where} ORDER BY "
                        "CASE WHEN j.batch_id IS NULL THEN 0 ELSE 1 END, j.generated_at, j.id "
                        "LIMIT 1", tuple(args))
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute("UPDATE jobs SET stage = 'write', worker = ?, heartbeat_at = ?, "
                        "updated_at = ? WHERE id = ? AND stage = 'generated'",
                        (worker, now, now, row["id"]))
        return self.get_job(row["id"])

    def claim_write_id(self, job_id: str, worker: str, stale_after: float) -> Job | None:
        """Take one given generated deck to write (the Celery path), or None when it is not
        waiting for its write (written, cancelled, or being written with a live heartbeat)."""
        if unstorable(job_id):
            return None
        now = time.time()
        with self.tx(lock=True) as cur:
            cur.execute("UPDATE jobs SET stage = 'write', worker = ?, heartbeat_at = ?, "
                        "updated_at = ? WHERE id = ? AND state = 'running' AND "
                        "(stage = 'generated' OR (stage = 'write' AND heartbeat_at < ?))",
                        (worker, now, now, job_id, now - stale_after))
            claimed = bool(cur.rowcount)
        return self.get_job(job_id) if claimed else None

    def release_write(self, job_id: str, worker: str) -> bool:
        """Put a claimed deck back to wait for its write (its quota said "not yet")."""
        with self.tx() as cur:
            cur.execute("UPDATE jobs SET stage = 'generated', worker = NULL, heartbeat_at = NULL, "
                        "updated_at = ? WHERE id = ? AND worker = ? AND state = 'running' "
                        "AND stage = 'write'", (time.time(), job_id, worker))
            return bool(cur.rowcount)

    def generated_ids(self) -> list[str]:
        """Decks waiting for their write, oldest first (a Celery service dispatches them
        again at start)."""
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT id FROM jobs WHERE state = 'running' AND stage = 'generated' "
                        "ORDER BY generated_at")
            return [r["id"] for r in cur.fetchall()]


def _start(cur: Cursor, job_id: str, worker: str, now: float) -> None:
    cur.execute("UPDATE jobs SET state = 'running', stage = 'generate', worker = ?, "
                "attempts = attempts + 1, started_at = ?, heartbeat_at = ?, updated_at = ? "
                "WHERE id = ?", (worker, now, now, now, job_id))


def _served(cur: Cursor, owner: str, now: float) -> None:
    """Record an owner's turn in the batch lane (round robin)."""
    cur.execute("INSERT INTO fair_share (owner, served_at) VALUES (?, ?) ON CONFLICT (owner) "
                "DO UPDATE SET served_at = excluded.served_at", (owner, now))
