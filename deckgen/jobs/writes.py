"""The write stage of a job: claiming a generated deck whose principal's shared Slides quota
has a slot now, reserving that slot, writing the deck and finishing the job. A runner never
sleeps on a quota while holding work: a deck whose quota says "wait" goes back to the store
and its principal is left alone for a while (MAX_QUOTA_SKIP). Kept apart from the worker
loop (runner.py) so each reads on its own; JobRunner takes these methods as a mixin, so they
share its store, locks and state."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from deckgen.content import DeckContent
from deckgen.errors import DeckgenError
from deckgen.fill import Filler, PptxTarget, Prepared, SlidesAccess, outcome_view
from deckgen.jobs.progress import Outcome
from deckgen.store import Job, Store

MAX_QUOTA_SKIP = 2.0  # seconds at most a runner leaves a waiting principal's decks alone


class WriteStage:
    """JobRunner's write stage (a mixin: each method's `self` is the runner)."""

    # the runner's state and stage machinery these methods share (JobRunner sets them)
    store: Store
    filler: Filler
    slides: SlidesAccess | None
    worker_id: str
    stale_after: float
    user_tokens: dict[str, str]
    _quota_waits: dict[tuple[str, bool], float]
    _waits_lock: threading.Lock
    _stage: Callable[[Job, Callable[[Job], Outcome]], str]
    _prepare: Callable[[Job], Prepared]

    def write_one(self, job_id: str) -> str | float:
        """Write one given generated deck if its quota allows now: "done", "gone", or the
        seconds until it may (the deck stays in the store)."""
        job = self.store.claim_write_id(job_id, self.worker_id, self.stale_after)
        if job is None:
            return "gone"
        wait = self._reserve(job)
        if wait > 0:
            self.store.release_write(job.id, self.worker_id)
            return wait
        self.write(job)
        return "done"

    def _claim_write(self) -> Job | None:
        """A generated deck whose principal's quota has a slot now (taken), or None. A
        principal whose quota said "wait" is not asked again until then."""
        if self.slides is None:
            return None
        for _ in range(4):
            now = time.monotonic()
            with self._waits_lock:
                waiting = [(p, batch) for (p, batch), until in self._quota_waits.items()
                           if until > now]
            job = self.store.claim_write(
                self.worker_id, skip_principals=[p for p, batch in waiting if not batch],
                skip_batch_principals=[p for p, batch in waiting if batch],
                writable=list(self.user_tokens),
                orphaned_before=time.time() - 2 * self.stale_after)
            if job is None:
                return None
            wait = self._reserve(job)
            if wait <= 0:
                return job
            self.store.release_write(job.id, self.worker_id)
            with self._waits_lock:
                # asked again after the wait, or sooner: another process's hold may end
                self._quota_waits[(job.principal or "", job.batch_id is not None)] = \
                    now + min(wait, MAX_QUOTA_SKIP)
        return None

    def _reserve(self, job: Job) -> float:
        """Take a write slot for a claimed deck now (0) or say how long until one frees. If
        the quota's home is away the deck goes back to wait, held by no worker (if the store
        is away too, the stale sweep returns it later), and the error goes on."""
        assert self.slides is not None and job.principal
        try:
            return self.slides.reserve(job.principal, batch=job.batch_id is not None)
        except Exception:
            with contextlib.suppress(DeckgenError):
                self.store.release_write(job.id, self.worker_id)
            raise

    def write(self, job: Job) -> str:
        """The write stage of a claimed generated deck, whose write slot is reserved in this
        thread; the state the job ended in."""
        try:
            return self._stage(job, self._write)
        finally:
            if self.slides is not None:
                self.slides.forget()

    def _write(self, job: Job) -> Outcome:
        assert job.deck is not None
        prepared = self._prepare(job)
        deck = DeckContent.from_dict(prepared.request.brief, job.deck)
        if self.store.get_job(job.id).cancel_requested:
            return deck, "cancelled", None, None
        return self._written(job, prepared, deck)

    def _written(self, job: Job, prepared: Prepared, deck: DeckContent) -> Outcome:
        filled = self.filler.write(prepared, deck, on_copied=lambda presentation_id:
                                   self.store.set_presentation(job.id, presentation_id))
        result: dict[str, Any] = outcome_view(filled)
        if isinstance(prepared.request.target, PptxTarget):
            result.update(pptx=filled.path, download=f"/v1/jobs/{job.id}/deck.pptx")
        else:
            assert filled.presentation_id is not None
            if filled.feedback:
                self.store.record_feedback(filled.presentation_id, job.id, filled.feedback)
            result.update(presentation_id=filled.presentation_id, url=filled.path,
                          kept=filled.kept, api_calls=filled.api_calls)
            if filled.archive_id:
                result["archive_id"] = filled.archive_id
        return deck, "done" if deck.ok else "failed", result, None if deck.ok else {
            "code": "sections_failed",
            "message": "some sections failed: " + ", ".join(
                s.section for s in deck.sections if s.status == "failed")}
