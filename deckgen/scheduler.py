"""What the scheduler tells a caller about its place: a job's lane, how many jobs go before
it, and an estimate of when it will be done from the rates measured in the store.

The order itself is kept by the store's claims (deckgen/store/jobs.py: interactive before
batch, batch round-robin between owners, a deck's write only when its principal's shared
quota has a slot); this module reads it back and turns it into numbers a person can trust:
an estimate is given only from measured rates, never from a guess, and is None until there
are some."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from deckgen.store import Store

RATE_WINDOW = 600.0  # seconds of finished jobs the rates are measured over


@dataclass(frozen=True)
class Rates:
    """Measured over the last RATE_WINDOW seconds: jobs finished per second (all lanes:
    workers are shared) and the median seconds a job of each lane spent being generated."""

    per_second: float | None
    generate_seconds: dict[str, float]


@dataclass(frozen=True)
class Place:
    lane: str  # interactive | batch
    state: str
    stage: str | None  # while running: generate | generated (waits for a write) | write
    ahead: int | None  # jobs that go before it in its stage; None when not waiting
    paused: bool  # its batch is paused
    eta_seconds: float | None  # until done, from measured rates; None when unknown

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measured_rates(store: Store, now: float | None = None,
                   window: float = RATE_WINDOW) -> Rates:
    now = time.time() if now is None else now
    rows = store.recent_finished(now - window)
    per_second = None
    if len(rows) >= 2:
        span = rows[-1]["finished_at"] - rows[0]["finished_at"]
        if span > 0:
            per_second = (len(rows) - 1) / span
    spent: dict[str, list[float]] = {}
    for row in rows:
        if row["started_at"] is not None:
            end = row["generated_at"] or row["finished_at"]
            spent.setdefault(row["lane"], []).append(max(end - row["started_at"], 0.0))
    return Rates(per_second, {lane: statistics.median(v) for lane, v in spent.items()})


def place_in_line(store: Store, job_id: str, writes_per_minute: int = 60,
                  now: float | None = None) -> Place:
    """A job's lane, place in line and estimate (raises JobNotFound)."""
    now = time.time() if now is None else now
    line = store.line_position(job_id)
    job = store.get_job(job_id)
    ahead, eta = line["ahead"], None
    if job.state in ("queued", "running") and not line["paused"]:
        rates = measured_rates(store, now)
        generate = rates.generate_seconds.get(job.lane) or next(
            iter(rates.generate_seconds.values()), None)
        if job.state == "queued" and generate is not None and rates.per_second:
            eta = ahead / rates.per_second + generate
        elif job.stage == "generate" and generate is not None and job.started_at:
            eta = max(generate - (now - job.started_at), 0.0)
        elif job.stage == "generated":
            # the decks of its principal ahead of it are written at the quota's pace
            eta = (ahead or 0) * 60.0 / writes_per_minute
        elif job.stage == "write":
            eta = 0.0
    return Place(job.lane, job.state, job.stage, ahead, bool(line["paused"]),
                 None if eta is None else round(eta, 1))


def lane_stats(store: Store) -> dict[str, dict[str, float]]:
    """Per lane: queued, paused, generating, generated (waiting for a write slot),
    writing, oldest_wait seconds (for the metrics' gauges)."""
    return store.lane_stats()
