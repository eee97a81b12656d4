"""Jobs: the queue every worker claims from. A job's state lives here, not in the worker that
runs it, so a killed process loses nothing and its running jobs are picked up again once
their heartbeat goes stale. A deck is written by one running job at a time.

A running job passes through two stages with a durable hand-off between them: `generate`
(a worker holds it), `generated` (its DeckContent waits in the store for a Slides write
slot, held by no worker) and `write` (a worker holds it). Claims follow the lanes:
interactive jobs (no batch) before batch jobs, and batch work round-robin between owners.

This module holds the job record, its lifecycle and what the scheduler reports about the
line (LineTables); claiming and the hand-off between the stages are claims.py."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from deckgen.errors import DeckgenError
from deckgen.store.claims import CLAIMABLE, DECK_FREE, LANE_ORDER, ClaimTables
from deckgen.store.crm import owe_writeback
from deckgen.store.database import Cursor, new_id, unstorable
from deckgen.store.sealing import seal, unseal

__all__ = ["CLAIMABLE", "DECK_FREE", "JSON_COLUMNS", "LANE", "LANES", "LANE_ORDER", "STAGES",
           "STATES", "ClaimTables", "Job", "JobNotFound", "JobTables", "LineTables",
           "insert_job"]

STATES = ("queued", "running", "done", "failed", "cancelled")
JSON_COLUMNS = ("request", "progress", "result", "error", "deck")
SEALED_COLUMNS = ("request", "deck")  # what holds the brief (see sealing.py)
STAGES = ("generate", "generated", "write")
LANES = ("interactive", "batch")


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
    stage: str | None = None  # while running: generate | generated | write
    deck: dict[str, Any] | None = None  # the generated DeckContent awaiting its write
    principal: str | None = None  # whose Slides write quota the write counts against
    generated_at: float | None = None

    @property
    def lane(self) -> str:
        return "batch" if self.batch_id else "interactive"

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        data = dict(row)
        for col in JSON_COLUMNS:
            raw = unseal(data[col]) if col in SEALED_COLUMNS else data[col]
            data[col] = json.loads(raw) if raw else None
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
        (job_id, owner, seal(json.dumps(request)), presentation_id, batch_id,
         idempotency_key, json.dumps(progress), now, now))
    return job_id


class JobTables(ClaimTables):
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

    def set_request(self, job_id: str, request: dict[str, Any]) -> None:
        """A running job's request completed by its worker (a brief read from a CRM)."""
        with self.tx() as cur:
            cur.execute("UPDATE jobs SET request = ?, updated_at = ? WHERE id = ?",
                        (seal(json.dumps(request)), time.time(), job_id))

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
            sets = ("state = ?, result = ?, error = ?, finished_at = ?, updated_at = ?, "
                    "deck = NULL")
            args: list[Any] = [state, json.dumps(result) if result else None,
                               json.dumps(error) if error else None, now, now]
            if progress is not None:
                sets += ", progress = ?"
                args.append(json.dumps(progress))
            cur.execute(f"UPDATE jobs SET {sets} WHERE id = ? AND worker = ? "
                        "AND state = 'running'", (*args, job_id, worker))
            finished = bool(cur.rowcount)
            if finished and state in ("done", "failed"):
                cur.execute("SELECT owner, request FROM jobs WHERE id = ?", (job_id,))
                row = cur.fetchone()
                owe_writeback(cur, job_id, row["owner"], json.loads(unseal(row["request"]) or "{}"),
                              result, now)
            return finished

    def cancel_job(self, job_id: str) -> Job:
        if unstorable(job_id):
            raise JobNotFound(f"no job {job_id!r}")
        now = time.time()
        with self.tx(lock=True) as cur:
            cur.execute("UPDATE jobs SET state = 'cancelled', cancel_requested = 1, "
                        "finished_at = ?, updated_at = ? WHERE id = ? AND state = 'queued'",
                        (now, now, job_id))
            # a deck waiting for its write is held by no worker: it ends here
            cur.execute("UPDATE jobs SET state = 'cancelled', cancel_requested = 1, deck = NULL, "
                        "finished_at = ?, updated_at = ? WHERE id = ? AND state = 'running' "
                        "AND stage = 'generated'", (now, now, job_id))
            cur.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ? "
                        "AND state = 'running'", (now, job_id))
        return self.get_job(job_id)

    def requeue_stale(self, stale_after: float) -> list[str]:
        """Jobs left by a worker that stopped heart-beating: one it was generating goes back
        to the queue; one it was writing goes back to wait for its write (its deck is kept,
        and writing a deck again is idempotent). Their ids."""
        cutoff = time.time() - stale_after
        with self.tx(lock=True) as cur:
            cur.execute("SELECT id, stage FROM jobs WHERE state = 'running' AND heartbeat_at < ? "
                        "AND (stage IS NULL OR stage <> 'generated')", (cutoff,))
            rows = cur.fetchall()
            for row in rows:
                if row["stage"] == "write":
                    cur.execute("UPDATE jobs SET stage = 'generated', worker = NULL, "
                                "heartbeat_at = NULL, updated_at = ? WHERE id = ? "
                                "AND state = 'running'", (time.time(), row["id"]))
                else:
                    cur.execute("UPDATE jobs SET state = 'queued', stage = NULL, worker = NULL, "
                                "updated_at = ? WHERE id = ? AND state = 'running'",
                                (time.time(), row["id"]))
        return [r["id"] for r in rows]

    def queue_depth(self) -> int:
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT COUNT(*) AS n FROM jobs WHERE state = 'queued'")
            return int(cur.fetchone()["n"])


LANE = "CASE WHEN batch_id IS NULL THEN 'interactive' ELSE 'batch' END"


class LineTables(JobTables):
    """What the scheduler reports: lanes' depths and a job's place in line."""

    def lane_stats(self, now: float | None = None) -> dict[str, dict[str, float]]:
        """Per lane: `queued` (waiting to generate, paused batches included), `paused`,
        `generating`, `generated` (waiting for a write slot), `writing`, and `oldest_wait`
        (seconds the oldest queued job has waited)."""
        now = time.time() if now is None else now
        stats = {lane: dict.fromkeys(("queued", "paused", "generating", "generated", "writing",
                                      "oldest_wait"), 0.0) for lane in LANES}
        with self.tx(readonly=True) as cur:
            cur.execute(f"SELECT {LANE.replace('batch_id', 'j.batch_id')} AS lane, j.state, "
                        "j.stage, COALESCE(b.paused, 0) AS paused, COUNT(*) AS n, "
                        "MIN(j.created_at) AS oldest FROM jobs j "
                        "LEFT JOIN batches b ON b.id = j.batch_id "
                        "WHERE j.state IN ('queued', 'running') "
                        "GROUP BY 1, j.state, j.stage, COALESCE(b.paused, 0)")
            for row in cur.fetchall():
                lane = stats[row["lane"]]
                if row["state"] == "queued":
                    lane["queued"] += row["n"]
                    if row["paused"]:
                        lane["paused"] += row["n"]
                    else:
                        lane["oldest_wait"] = max(lane["oldest_wait"], now - row["oldest"])
                else:
                    key = {"generated": "generated", "write": "writing"}.get(row["stage"] or "",
                                                                             "generating")
                    lane[key] += row["n"]
        return stats

    def line_position(self, job_id: str) -> dict[str, Any]:
        """Where a job stands: its lane, state and stage, and `ahead`: how many jobs go
        before it in its stage (to generate: the claim order, round robin between batch
        owners; to write: decks of the same principal generated before it); None when it
        waits on a paused batch or is not waiting."""
        job = self.get_job(job_id)
        view: dict[str, Any] = {"lane": job.lane, "state": job.state, "stage": job.stage,
                                "principal": job.principal, "ahead": None, "paused": False}
        with self.tx(readonly=True) as cur:
            if job.state == "queued":
                # every queued interactive job goes before a batch job; before an
                # interactive one, those queued earlier
                cur.execute("SELECT COUNT(*) AS n FROM jobs WHERE state = 'queued' AND "
                            "batch_id IS NULL AND (? = 'batch' OR created_at < ? OR "
                            "(created_at = ? AND id < ?))",
                            (job.lane, job.created_at, job.created_at, job.id))
                interactive = int(cur.fetchone()["n"])
                if job.batch_id is None:
                    view["ahead"] = interactive
                    return view
                cur.execute("SELECT paused FROM batches WHERE id = ?", (job.batch_id,))
                row = cur.fetchone()
                if row and row["paused"]:
                    view["paused"] = True
                    return view
                view["ahead"] = interactive + _batch_ahead(cur, job)
            elif job.state == "running" and job.stage == "generated":
                view["ahead"] = _write_ahead(cur, job)
            elif job.state == "running":
                view["ahead"] = 0
        return view

    def recent_finished(self, since: float) -> list[dict[str, Any]]:
        """Jobs finished since `since` (done or failed): lane, created, started, generated,
        finished times, for measuring rates."""
        with self.tx(readonly=True) as cur:
            cur.execute(f"SELECT {LANE} AS lane, created_at, started_at, generated_at, "
                        "finished_at, state FROM jobs WHERE finished_at >= ? "
                        "AND state IN ('done', 'failed') ORDER BY finished_at", (since,))
            return cur.fetchall()


def _batch_ahead(cur: Cursor, job: Job) -> int:
    """Queued batch jobs claimed before `job` under round robin: its owner's older ones,
    and from each other owner as many (one more when that owner's turn comes first)."""
    cur.execute("SELECT j.owner, COUNT(*) AS n, COALESCE(MAX(f.served_at), 0) AS served, "
                "MIN(j.created_at) AS head, "
                "SUM(CASE WHEN j.created_at < ? OR (j.created_at = ? AND j.id < ?) "
                "THEN 1 ELSE 0 END) AS older "
                "FROM jobs j LEFT JOIN batches b ON b.id = j.batch_id "
                "LEFT JOIN fair_share f ON f.owner = j.owner "
                "WHERE j.state = 'queued' AND j.batch_id IS NOT NULL "
                "AND COALESCE(b.paused, 0) = 0 GROUP BY j.owner",
                (job.created_at, job.created_at, job.id))
    rows = cur.fetchall()
    mine = next((r for r in rows if r["owner"] == job.owner), None)
    if mine is None:
        return 0
    turns = int(mine["older"])
    ahead = turns
    for row in rows:
        if row["owner"] != job.owner:
            # the owner served longest ago goes first; on a tie, the older head job
            first = 1 if (row["served"], row["head"]) < (mine["served"], mine["head"]) else 0
            ahead += min(int(row["n"]), turns + first)
    return ahead


def _write_ahead(cur: Cursor, job: Job) -> int:
    cur.execute("SELECT COUNT(*) AS n FROM jobs WHERE state = 'running' AND stage = 'generated' "
                "AND principal = ? AND id <> ? AND ("
                "(batch_id IS NULL AND ? = 'batch') OR "
                f"({LANE} = ? AND (generated_at < ? OR (generated_at = ? AND id < ?))))",
                (job.principal, job.id, job.lane, job.lane, job.generated_at,
                 job.generated_at, job.id))
    return int(cur.fetchone()["n"])
