"""Schedules: an operator's cron text that regenerates a set of decks through the batch lane,
and the record of each run. A run is fired exactly once across every replica: its claim is
a compare-and-set on the schedule's `next_run_at` and a unique (schedule, due time) row,
made in the same transaction as the batch and its jobs, so a run is either wholly fired by
one replica or not at all.

A schedule's source may hold briefs (sealed at rest like a job's request, see sealing.py)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from deckgen.errors import DeckgenError
from deckgen.store.batches import JOB_SPACING, JobRequests
from deckgen.store.database import Tables, new_id, unstorable
from deckgen.store.jobs import insert_job
from deckgen.store.sealing import seal, unseal

RECENT_RUNS = 20  # runs a schedule's view lists, newest first


class ScheduleNotFound(DeckgenError):
    code = "schedule_not_found"
    http_status = 404


class DuplicateSchedule(DeckgenError):
    """An owner already has a schedule of that name."""

    code = "invalid_schedule"
    http_status = 422


@dataclass(frozen=True)
class Schedule:
    id: str
    owner: str
    name: str
    cron: str
    timezone: str
    source: dict[str, Any]  # {"items": [...]} or {"crm_query": {...}}
    options: dict[str, Any]  # route, sections, keep_edits, archive
    paused: bool
    next_run_at: float | None
    last_run_at: float | None
    created_at: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Schedule:
        return cls(row["id"], row["owner"], row["name"], row["cron"], row["timezone"],
                   json.loads(unseal(row["source"]) or "{}"), json.loads(row["options"]),
                   bool(row["paused"]), row["next_run_at"], row["last_run_at"],
                   float(row["created_at"]))


@dataclass(frozen=True)
class ScheduleRun:
    schedule_id: str
    due_at: float
    fired_at: float
    batch_id: str | None  # None when the run could not fire (see error)
    error: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ScheduleRun:
        return cls(row["schedule_id"], float(row["due_at"]), float(row["fired_at"]),
                   row["batch_id"], json.loads(row["error"]) if row["error"] else None)


class ScheduleTables(Tables):
    def add_schedule(self, owner: str, name: str, cron: str, timezone: str,
                     source: dict[str, Any], options: dict[str, Any],
                     next_run_at: float) -> Schedule:
        """A new schedule (names are unique per owner: DeckgenError if taken)."""
        schedule_id = new_id("sched")
        with self.tx(lock=True) as cur:
            cur.execute("SELECT 1 FROM schedules WHERE owner = ? AND name = ?", (owner, name))
            if cur.fetchone():
                raise DuplicateSchedule(f"a schedule named {name!r} exists already")
            cur.execute("INSERT INTO schedules (id, owner, name, cron, timezone, source, "
                        "options, paused, next_run_at, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                        (schedule_id, owner, name, cron, timezone, seal(json.dumps(source)),
                         json.dumps(options), next_run_at, time.time()))
            cur.execute("SELECT * FROM schedules WHERE id = ?", (schedule_id,))
            return Schedule.from_row(cur.fetchone())

    def get_schedule(self, schedule_id: str) -> Schedule:
        if unstorable(schedule_id):
            raise ScheduleNotFound(f"no schedule {schedule_id!r}")
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT * FROM schedules WHERE id = ?", (schedule_id,))
            row = cur.fetchone()
        if row is None:
            raise ScheduleNotFound(f"no schedule {schedule_id}")
        return Schedule.from_row(row)

    def list_schedules(self, owner: str | None = None) -> list[Schedule]:
        """An owner's schedules (every owner's with None), oldest first."""
        with self.tx(readonly=True) as cur:
            if owner is None:
                cur.execute("SELECT * FROM schedules ORDER BY created_at, id")
            else:
                cur.execute("SELECT * FROM schedules WHERE owner = ? ORDER BY created_at, id",
                            (owner,))
            return [Schedule.from_row(r) for r in cur.fetchall()]

    def schedule_runs(self, schedule_id: str, limit: int = RECENT_RUNS) -> list[ScheduleRun]:
        """A schedule's most recent runs, newest first."""
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT * FROM schedule_runs WHERE schedule_id = ? "
                        "ORDER BY due_at DESC LIMIT ?", (schedule_id, limit))
            return [ScheduleRun.from_row(r) for r in cur.fetchall()]

    def pause_schedule(self, schedule_id: str, paused: bool,
                       next_run_at: float | None = None) -> Schedule:
        """Pause a schedule, or resume it from `next_run_at` (slots missed while it was
        paused are not fired)."""
        if unstorable(schedule_id):
            raise ScheduleNotFound(f"no schedule {schedule_id!r}")
        with self.tx() as cur:
            if paused:
                cur.execute("UPDATE schedules SET paused = 1 WHERE id = ?", (schedule_id,))
            else:
                cur.execute("UPDATE schedules SET paused = 0, next_run_at = ? WHERE id = ?",
                            (next_run_at, schedule_id))
            if not cur.rowcount:
                raise ScheduleNotFound(f"no schedule {schedule_id}")
            cur.execute("SELECT * FROM schedules WHERE id = ?", (schedule_id,))
            return Schedule.from_row(cur.fetchone())

    def delete_schedule(self, schedule_id: str) -> None:
        """Forget a schedule and its runs (the batches it made stay)."""
        if unstorable(schedule_id):
            raise ScheduleNotFound(f"no schedule {schedule_id!r}")
        with self.tx() as cur:
            cur.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,))
            if not cur.rowcount:
                raise ScheduleNotFound(f"no schedule {schedule_id}")
            cur.execute("DELETE FROM schedule_runs WHERE schedule_id = ?", (schedule_id,))

    def due_schedules(self, now: float) -> list[Schedule]:
        """Schedules not paused whose next run is due at `now`."""
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT * FROM schedules WHERE paused = 0 AND next_run_at IS NOT NULL "
                        "AND next_run_at <= ? ORDER BY next_run_at, id", (now,))
            return [Schedule.from_row(r) for r in cur.fetchall()]

    def fire_schedule(self, schedule: Schedule, next_run_at: float | None,
                      requests: JobRequests, error: dict[str, Any] | None = None,
                      now: float | None = None) -> tuple[ScheduleRun, list[str]] | None:
        """Claim the run due at `schedule.next_run_at` and, in the same transaction, make its
        batch and jobs (none when `error` says why the run cannot fire; the run is recorded
        with it). The schedule's next run moves to `next_run_at`. (run, job ids), or None when
        another replica fired this run first, or the schedule was paused or removed since it
        was read. `now` (the ticker's clock) becomes the schedule's last_run_at."""
        due = schedule.next_run_at
        assert due is not None
        created = time.time()
        now = created if now is None else now
        with self.tx() as cur:
            # the compare-and-set: only one transaction moves next_run_at off `due`
            cur.execute("UPDATE schedules SET next_run_at = ?, last_run_at = ? "
                        "WHERE id = ? AND next_run_at = ? AND paused = 0",
                        (next_run_at, now, schedule.id, due))
            if not cur.rowcount:
                return None
            cur.execute("SELECT 1 FROM schedule_runs WHERE schedule_id = ? AND due_at = ?",
                        (schedule.id, due))
            if cur.fetchone():  # fired already (a clock set back): never twice
                return None
            batch_id = None
            job_ids: list[str] = []
            if error is None and requests:
                batch_id = new_id("batch")
                cur.execute("INSERT INTO batches (id, owner, total, created_at) "
                            "VALUES (?, ?, ?, ?)",
                            (batch_id, schedule.owner, len(requests), created))
                job_ids = [insert_job(cur, schedule.owner, request, progress, presentation_id,
                                      batch_id, None, created + i * JOB_SPACING)
                           for i, (request, progress, presentation_id) in enumerate(requests)]
            # the unique (schedule_id, due_at) index is the last word between replicas
            cur.execute("INSERT INTO schedule_runs (id, schedule_id, due_at, batch_id, "
                        "fired_at, error) VALUES (?, ?, ?, ?, ?, ?)",
                        (new_id("run"), schedule.id, due, batch_id, now,
                         json.dumps(error) if error else None))
        return ScheduleRun(schedule.id, due, now, batch_id, error), job_ids
