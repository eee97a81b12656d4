"""Running jobs: a pool of worker threads in the service process that takes queued jobs
from the store, generates the deck, writes it, and records every generation.

The store is the source of truth. A worker claims a job (atomically, never a deck another
running job is writing), heart-beats while it runs, and finishes it; a process killed in
the middle leaves its jobs `running` with a stale heartbeat, and the next start puts them
back in the queue, so every job ends exactly once. Writing a deck is idempotent (it
replaces tagged boxes), so running a job again is safe."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deckgen.brief import parse_brief
from deckgen.content import DeckContent, SectionResult
from deckgen.errors import DeckgenError
from deckgen.fill import (
    Filler,
    FillRequest,
    PptxTarget,
    SlidesAccess,
    SlidesTarget,
    Target,
    outcome_view,
)
from deckgen.sections import SectionSpec
from deckgen.store import Job, Store

if TYPE_CHECKING:
    from deckgen.container import Container

__all__ = ["JobRunner", "SlidesAccess", "initial_progress", "make_runner", "section_progress"]

log = logging.getLogger("deckgen.jobs")


def initial_progress(specs: list[SectionSpec]) -> dict[str, Any]:
    return {s.name: {"section": s.name, "state": "queued"} for s in specs}


def section_progress(result: SectionResult) -> dict[str, Any]:
    return {"section": result.section,
            "state": "failed" if result.status == "failed" else "done",
            "route": result.route, "model": result.model, "policy": result.policy,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "seconds": result.seconds, "retries": result.retries,
            "failovers": len(result.failovers), "fit": result.fit, "error": result.error,
            "grounding": result.grounding, "flagged": result.status == "ungrounded"}


def brief_hash(brief: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(brief, sort_keys=True).encode()).hexdigest()[:16]


class JobRunner:
    def __init__(self, store: Store, filler: Filler,
                 output_dir: Path, workers: int = 2, poll_seconds: float = 0.5,
                 stale_after: float = 60.0, heartbeat_seconds: float = 5.0,
                 on_finish: Callable[[Job, DeckContent | None], None] | None = None,
                 dispatch: Callable[[str], None] | None = None) -> None:
        self.store, self.filler = store, filler
        self.generator = filler.generator
        self.output_dir = output_dir
        self.workers, self.poll_seconds = workers, poll_seconds
        self.stale_after, self.heartbeat_seconds = stale_after, heartbeat_seconds
        self.on_finish = on_finish
        # Celery path: queued jobs are sent to the broker instead of run by local threads
        self.dispatch = dispatch
        self.user_tokens: dict[str, str] = {}  # job id -> caller's OAuth token, memory only
        self.worker_id = f"w-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        requeued = self.store.requeue_stale(self.stale_after)
        if requeued:
            log.warning("requeued %d job(s) left running by a stopped worker", len(requeued))
        if self.dispatch is not None:
            for job_id in self.store.queued_ids():
                self.dispatch(job_id)
        for i in range(0 if self.dispatch else self.workers):
            t = threading.Thread(target=self._loop, name=f"deckgen-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        sweeper = threading.Thread(target=self._sweep, name="deckgen-sweeper", daemon=True)
        sweeper.start()
        self._threads.append(sweeper)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)

    def _sweep(self) -> None:
        while not self._stop.wait(max(self.stale_after / 2, 0.5)):
            try:
                for job_id in self.store.requeue_stale(self.stale_after):
                    if self.dispatch is not None:
                        self.dispatch(job_id)
            except Exception:  # noqa: BLE001 - a sweep failure must not kill the sweeper
                log.exception("requeue sweep failed")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.store.claim_job(self.worker_id)
            except Exception:  # noqa: BLE001 - the store may be briefly unreachable
                log.exception("claiming a job failed")
                job = None
            if job is None:
                self._stop.wait(self.poll_seconds)
                continue
            self.run(job)

    def run_one(self, job_id: str) -> str:
        """Run one given job if it is ours to run (the Celery path): "done", or "locked"
        when its deck is being written by another job, or "gone" when nothing is to do."""
        job = self.store.claim_job_id(job_id, self.worker_id, self.stale_after)
        if isinstance(job, str):
            return job
        self.run(job)
        return "done"

    def run(self, job: Job) -> None:
        beating = threading.Event()

        def beat() -> None:
            while not beating.wait(self.heartbeat_seconds):
                self.store.heartbeat(job.id, self.worker_id)

        threading.Thread(target=beat, daemon=True).start()
        deck = None
        try:
            deck, state, result, error = self._execute(job)
        except DeckgenError as exc:
            state, result, error = "failed", None, exc.to_dict()
        except Exception as exc:  # noqa: BLE001 - a job must end, whatever went wrong
            log.exception("job %s crashed", job.id)
            state, result = "failed", None
            error = {"code": "internal_error", "message": f"internal error: {exc}"}
        finally:
            beating.set()
        progress = None
        if deck is not None:
            progress = {s.section: section_progress(s) for s in deck.sections}
        self.store.finish_job(job.id, self.worker_id, state, result, error, progress)
        self.user_tokens.pop(job.id, None)
        if self.on_finish:
            self.on_finish(self.store.get_job(job.id), deck)

    def _target(self, job: Job) -> Target:
        request = job.request
        if request["target"] == "pptx":
            return PptxTarget(self.output_dir / f"{job.id}.pptx")
        user_token = self.user_tokens.get(job.id)
        if user_token is None and job.owner.startswith("google:"):
            raise DeckgenError("the user's Google token is gone (the service restarted while "
                               "the job waited); start the fill again from the deck")
        # a template job whose copy was made by an earlier attempt fills that copy
        return SlidesTarget(presentation_id=job.presentation_id,
                            template_id=request.get("template_id"), title=request.get("title"),
                            keep_edits=bool(request.get("keep_edits")), user_token=user_token)

    def _execute(self, job: Job) -> tuple[DeckContent | None, str, dict[str, Any] | None,
                                          dict[str, Any] | None]:
        request = job.request
        brief = self.generator.privacy.apply(parse_brief(request["brief"]), job.owner)
        prepared = self.filler.prepare(FillRequest(brief, self._target(job),
                                                   request.get("sections"),
                                                   request.get("route", "auto")))
        progress = dict(job.progress)
        for name in prepared.skipped:
            progress[name] = {"section": name, "state": "skipped",
                              "error": {"code": "no_box", "message": "the template has no box "
                                        f"marked {{{{{name}}}}}; not generated"}}
        lock = threading.Lock()

        def on_progress(event: str, spec: SectionSpec, result: SectionResult | None) -> None:
            with lock:
                progress[spec.name] = (section_progress(result) if result else
                                       {"section": spec.name, "state": "running"})
                self.store.update_progress(job.id, progress)

        deck = self.filler.generate(prepared, on_progress)
        self.store.record_generations(job.id, brief_hash(request["brief"]), [
            {"section": s.section, "status": s.status, "route": s.route, "model": s.model,
             "policy": s.policy,
             "prompt": s.prompt_messages, "prompt_base_turns": s.prompt_base_turns,
             "output": s.content, "prompt_tokens": s.prompt_tokens,
             "completion_tokens": s.completion_tokens, "seconds": s.seconds}
            for s in deck.sections])
        if self.store.get_job(job.id).cancel_requested:
            return deck, "cancelled", None, None
        if not any(s.content for s in deck.sections):
            return deck, "failed", None, {"code": "generation_failed",
                                          "message": "no section could be generated"}
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
        return deck, "done" if deck.ok else "failed", result, None if deck.ok else {
            "code": "sections_failed",
            "message": "some sections failed: " + ", ".join(
                s.section for s in deck.sections if s.status == "failed")}


def make_runner(container: Container,
                on_finish: Callable[[Job, DeckContent | None], None] | None = None,
                dispatch: Callable[[str], None] | None = None) -> JobRunner:
    config = container.config
    return JobRunner(container.store, container.filler, config.output_dir,
                     workers=config.workers, stale_after=config.job_stale_seconds,
                     on_finish=on_finish, dispatch=dispatch)
