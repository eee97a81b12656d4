"""JobRunner: the worker threads (or the Celery task, through `run_one`) that claim jobs,
admit decks to generation as the routes have room, run the generation stage with a
heartbeat, and sweep up jobs a stopped worker left behind; and make_runner, which builds
one from the container. The write stage it shares its state with is writes.py; the design
as a whole is told in this package's __init__."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deckgen.admission import Admission, default_ceiling
from deckgen.archive import FailureReporter
from deckgen.brief import parse_brief
from deckgen.config import JOB_HEARTBEAT_SECONDS, ScheduleSettings
from deckgen.content import DeckContent, SectionResult
from deckgen.errors import DeckgenError
from deckgen.fill import Filler, FillRequest, PptxTarget, Prepared, SlidesTarget, Target
from deckgen.jobs.progress import Outcome, section_progress
from deckgen.jobs.writes import WriteStage
from deckgen.quotas import quota_from_config
from deckgen.sections import SectionSpec
from deckgen.store import Job, Store

if TYPE_CHECKING:
    from deckgen.container import Container
    from deckgen.crm.directory import CrmDirectory

log = logging.getLogger("deckgen.jobs")
# the priority a job's sections wait with for a route's slots, by lane (lower goes first)
PRIORITY = {"interactive": 0, "batch": 1}
ADMIT_POLL = 0.05  # seconds between looks at the routes while they have no room for a deck


def render_title(pattern: str, name: str, client: str) -> str:
    """A deck title from a pattern naming {name} (the opportunity) and {client}."""
    return pattern.replace("{name}", name).replace("{client}", client)[:2000]


def brief_hash(brief: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(brief, sort_keys=True).encode()).hexdigest()[:16]


class JobRunner(WriteStage):
    def __init__(self, store: Store, filler: Filler,
                 output_dir: Path, workers: int = 2, poll_seconds: float = 0.5,
                 stale_after: float = 60.0, heartbeat_seconds: float = 5.0,
                 on_finish: Callable[[Job, DeckContent | None], None] | None = None,
                 dispatch: Callable[[str], None] | None = None,
                 archive_folder: str | None = None,
                 max_decks_in_flight: int | None = None) -> None:
        self.store, self.filler = store, filler
        self.generator = filler.generator
        self.slides = filler.slides
        self.output_dir = output_dir
        self.workers, self.poll_seconds = workers, poll_seconds
        self.stale_after, self.heartbeat_seconds = stale_after, heartbeat_seconds
        self.on_finish = on_finish
        # Celery path: queued jobs are sent to the broker instead of run by local threads
        self.dispatch = dispatch
        self.user_tokens: dict[str, str] = {}  # job id -> caller's OAuth token, memory only
        self.worker_id = f"w-{uuid.uuid4().hex[:8]}"
        # (principal, batch?) -> monotonic time its quota has a slot again: not asked before
        self._quota_waits: dict[tuple[str, bool], float] = {}
        self._waits_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # the CRMs a job naming an opportunity instead of a brief is read from
        self.crm: CrmDirectory | None = None
        self.sources = True  # each item's supporting words in the speaker notes
        # archive first (deckgen/archive.py): where a job asking for it copies its deck
        self.archive_folder = archive_folder
        self.on_stop: list[Callable[[], None]] = []  # what stops with the workers (the ticker)
        # decks in generation: elastic, by free section slots on the routes
        router = self.generator.router
        self.admission = Admission(
            router.load, max_decks_in_flight or default_ceiling(
                [router.limits_of(r).concurrency for r in router.routes_used()],
                floor=workers), len(self.generator.specs))
        self._admit_lock = threading.Lock()
        self._people_checked = 0.0  # monotonic time the store was last asked for people's jobs

    @property
    def started(self) -> bool:
        return bool(self._threads)

    def start(self) -> None:
        requeued = self.store.requeue_stale(self.stale_after)
        if requeued:
            log.warning("requeued %d job(s) left running by a stopped worker", len(requeued))
        if self.dispatch is not None:
            for job_id in self.store.queued_ids() + self.store.generated_ids():
                self.dispatch(job_id)
        for i in range(0 if self.dispatch else self.workers):
            t = threading.Thread(target=self._loop, name=f"deckgen-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        sweeper = threading.Thread(target=self._sweep, name="deckgen-sweeper", daemon=True)
        sweeper.start()
        self._threads.append(sweeper)

    def stop(self, timeout: float = 5.0) -> None:
        for stop in self.on_stop:
            stop()
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        self.admission.join(timeout)

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
            job: Job | None = None
            full = False
            try:
                # a write finishes a job a person may be waiting for: writes first
                job = self._claim_write()
                if job is None:
                    job, full = self._claim_generation()
            except Exception:  # noqa: BLE001 - the store may be briefly unreachable
                log.exception("claiming a job failed")
            if job is None:
                if full:  # look again when a section ends or a slot frees
                    self.admission.changed.clear()
                    self.admission.changed.wait(ADMIT_POLL)
                else:
                    self._stop.wait(self.poll_seconds)
                continue
            if job.stage != "write":  # generated in a thread of its own; we go on claiming
                self.admission.start(job.id, functools.partial(self.run, job))
                continue
            try:
                self.write(job)
            except Exception:  # noqa: BLE001 - a worker outlives any one job and any outage
                # e.g. the store went away while the job finished: the job stays running with
                # a stale heartbeat and the sweep hands it out again once the store is back
                log.exception("job %s could not be finished; retrying later", job.id)
                self._stop.wait(min(5.0, self.stale_after / 4))

    def _claim_generation(self) -> tuple[Job | None, bool]:
        """A job to generate if the routes have room for another deck, or a person's job
        whatever their load (deckgen/admission.py); and whether there was no room."""
        with self._admit_lock:
            if not (self.admission.room() or
                    (self.admission.room(person=True) and self._person_waiting())):
                return None, True
            job = self.store.claim_job(self.worker_id)
            if job is not None:
                self.admission.admit(job.id)
            return job, False

    def _person_waiting(self) -> bool:
        """An interactive job is queued (the store is asked once per poll interval)."""
        now = time.monotonic()
        if now - self._people_checked < self.poll_seconds:
            return False
        self._people_checked = now
        return self.store.lane_stats()["interactive"]["queued"] > 0

    def alive(self) -> bool:
        """Every worker thread this runner started is still running (for /readyz)."""
        return all(t.is_alive() for t in self._threads) and not self._stop.is_set()

    def run_one(self, job_id: str) -> str | float:
        """Run one given job's next stage if it is ours to run (the Celery path): "done"
        when nothing is left to do for it here, "locked" when another job has its deck in
        flight or "paused" when its batch is paused (try later), "gone" when it is not
        waiting to run, or the seconds until its principal's quota has a write slot (come
        back then: its generated deck waits in the store meanwhile, holding no worker)."""
        claimed = self.store.claim_job_id(job_id, self.worker_id, self.stale_after)
        if isinstance(claimed, Job):
            if self.run(claimed) != "generated":
                return "done"
        elif claimed != "generated":
            return claimed
        return self.write_one(job_id)

    @contextmanager
    def _heartbeat(self, job: Job) -> Iterator[None]:
        beating = threading.Event()

        def beat() -> None:
            while not beating.wait(self.heartbeat_seconds):
                try:
                    self.store.heartbeat(job.id, self.worker_id)
                except Exception:  # noqa: BLE001 - the store may be away: beat again later
                    log.warning("heartbeat of job %s failed; the store is away", job.id)

        threading.Thread(target=beat, daemon=True).start()
        try:
            yield
        finally:
            beating.set()

    def run(self, job: Job) -> str:
        """The generation stage of a claimed job: "generated" when its deck was handed to
        the store to wait for its write, else the state the job ended in."""
        return self._stage(job, self._execute)

    def _stage(self, job: Job, work: Callable[[Job], Outcome]) -> str:
        deck = None
        try:
            with self._heartbeat(job):
                deck, state, result, error = work(job)
        except DeckgenError as exc:
            state, result, error = "failed", None, exc.to_dict()
        except Exception as exc:  # noqa: BLE001 - a job must end, whatever went wrong
            log.exception("job %s crashed", job.id)
            state, result = "failed", None
            error = {"code": "internal_error", "message": f"internal error: {exc}"}
        if state in ("generated", "gone"):
            return state
        progress = None
        if deck is not None:
            progress = {s.section: section_progress(s) for s in deck.sections}
        ended = self.store.finish_job(job.id, self.worker_id, state, result, error, progress)
        self.user_tokens.pop(job.id, None)
        if not ended:
            # another run of it ended it first (e.g. this deck's thread outlived an outage
            # that let the sweep hand the job out again): a job ends, and is reported, once
            return "gone"
        if self.on_finish:
            self.on_finish(self.store.get_job(job.id), deck)
        return state

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
                            keep_edits=bool(request.get("keep_edits")), user_token=user_token,
                            archive=bool(request.get("archive")),
                            archive_folder=self.archive_folder)

    def _resolve(self, job: Job) -> Job:
        """A job that names a CRM opportunity gets its brief now (a batch item, a webhook,
        a schedule), kept in the store so its write stage and any retry use the same."""
        ref = job.request.get("opportunity") or {}
        if self.crm is None or not ref:
            raise DeckgenError("this job has no brief and names no CRM record to read one "
                               "from")
        found = self.crm.provider(ref["crm"], job.owner).resolve(ref["id"])
        request = {**job.request, "brief": found.brief,
                   "opportunity": {"crm": found.crm, "id": found.id, "name": found.name,
                                   "stage": found.stage, "url": found.url}}
        if request.get("title"):  # a webhook's title pattern, e.g. "{name} proposal"
            request["title"] = render_title(request["title"], found.name or found.id,
                                            found.brief["client"])
        self.store.set_request(job.id, request)
        return dataclasses.replace(job, request=request)

    def _prepare(self, job: Job) -> Prepared:
        request = job.request
        brief = self.generator.privacy.apply(parse_brief(request["brief"]), job.owner)
        return self.filler.prepare(FillRequest(brief, self._target(job),
                                               request.get("sections"),
                                               request.get("route", "auto"),
                                               sources=self.sources))

    def _execute(self, job: Job) -> Outcome:
        if job.request.get("brief") is None:
            job = self._resolve(job)
        request = job.request
        prepared = self._prepare(job)
        progress = dict(job.progress)
        for name in prepared.skipped:
            progress[name] = {"section": name, "state": "skipped",
                              "error": {"code": "no_box", "message": "the template has no box "
                                        f"marked {{{{{name}}}}}; not generated"}}
        lock = threading.Lock()
        self.admission.sized(job.id, len(prepared.specs))

        def on_progress(event: str, spec: SectionSpec, result: SectionResult | None) -> None:
            if result is not None:
                self.admission.section_done(job.id)
            with lock:
                progress[spec.name] = (section_progress(result) if result else
                                       {"section": spec.name, "state": "running"})
                self.store.update_progress(job.id, progress)

        deck = self._filler(job).generate(prepared, on_progress)
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
        target = prepared.request.target
        if isinstance(target, SlidesTarget):
            # the write waits in the store for a slot in its principal's quota
            assert self.slides is not None
            principal = self.slides.principal_of(target.user_token, job.owner)
            handed = self.store.hand_off(job.id, self.worker_id, deck.to_dict(), principal)
            return deck, "generated" if handed else "gone", None, None
        return self._written(job, prepared, deck)

    def _filler(self, job: Job) -> Filler:
        """The fill use case whose model calls wait at the routes with the job's lane's
        priority (the model layer sees a number, not a job)."""
        priority = PRIORITY[job.lane]
        if priority == self.generator.priority:
            return self.filler
        return Filler(dataclasses.replace(self.generator, priority=priority), self.slides)


def make_runner(container: Container,
                on_finish: Callable[[Job, DeckContent | None], None] | None = None,
                dispatch: Callable[[str], None] | None = None,
                schedules: ScheduleSettings | None = None) -> JobRunner:
    config = container.config
    if container.filler.slides is not None:
        # Slides writes are counted where every replica and worker sees them
        container.filler.slides.quota = quota_from_config(config, container.store)
    schedules = schedules or config.schedules
    finished = on_finish
    if schedules.report_url:  # failed scheduled jobs are reported (deckgen/archive.py)
        reporter = FailureReporter(schedules.report_url)

        def reporting(job: Job, deck: DeckContent | None) -> None:
            if on_finish is not None:
                on_finish(job, deck)
            reporter.job_finished(job)

        finished = reporting
    runner = JobRunner(container.store, container.filler, config.output_dir,
                       workers=config.workers, stale_after=config.job_stale_seconds,
                       heartbeat_seconds=JOB_HEARTBEAT_SECONDS,
                       on_finish=finished, dispatch=dispatch,
                       archive_folder=schedules.archive_folder_id,
                       max_decks_in_flight=config.max_decks_in_flight)
    runner.crm = container.crm
    runner.sources = config.sources_in_notes
    return runner
