"""Jobs: fill one deck in the background (the Slides sidebar, a CRM), follow its progress per
section, cancel it, download a .pptx. A job's request is checked completely before it is
stored, so a job that is accepted can run; a caller sees only its own jobs, and another
caller's job answers exactly like a missing one (404)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request, send_file, url_for
from pydantic import TypeAdapter, ValidationError

from deckgen.api.bodies import InvalidRequest, json_object, validate
from deckgen.api.openapi import PPTX, Answer, operation
from deckgen.api.schemas import IdempotencyKey, JobRequest, JobView, dump
from deckgen.api.service import Service, service
from deckgen.auth import Caller
from deckgen.brief import parse_brief
from deckgen.jobs import initial_progress
from deckgen.scheduler import place_in_line
from deckgen.sections import SectionSpec
from deckgen.store import Job, JobNotFound, Writeback

bp = Blueprint("jobs", __name__)
IDEMPOTENCY_KEY = TypeAdapter(IdempotencyKey)
HEADERS = {"Idempotency-Key": IDEMPOTENCY_KEY.json_schema()}
FOUND = {200: Answer("the job", JobView)}


def brief_source(svc: Service, who: Caller, job: JobRequest,
                 resolve: bool = True) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The job's brief, and the CRM opportunity it comes from. A single job reads the record
    now, so a record it cannot read is a 4xx naming it; a batch item (`resolve` False) is
    read by the worker that runs it, so a thousand items do not wait on the CRM here."""
    crm_given = job.crm is not None or job.opportunity_id is not None
    if (job.brief is not None) == crm_given:
        raise InvalidRequest("give the brief, or crm with opportunity_id (one of the two)",
                             field="brief")
    if job.brief is not None:
        return job.brief, None
    if job.crm is None or job.opportunity_id is None:
        raise InvalidRequest("crm and opportunity_id go together",
                             field="crm" if job.crm is None else "opportunity_id")
    provider = svc.container.crm.provider(job.crm, who.owner)
    if not resolve:
        return None, {"crm": job.crm, "id": job.opportunity_id}
    found = provider.resolve(job.opportunity_id)
    return found.brief, {"crm": found.crm, "id": found.id, "name": found.name,
                         "stage": found.stage, "url": found.url}


def fill_request(svc: Service, who: Caller, job: JobRequest,
                 resolve: bool = True) -> tuple[dict[str, Any], list[SectionSpec]]:
    """A job's request as the store keeps it, checked; and the sections it writes."""
    brief, opportunity = brief_source(svc, who, job, resolve)
    chosen = svc.options(job.sections, job.route,
                         parse_brief(brief) if brief is not None else None, who.owner)
    targets = [t for t in ("presentation_id", "template_id", "output")
               if getattr(job, t) is not None]
    if len(targets) != 1:
        raise InvalidRequest("give exactly one target: presentation_id, template_id with "
                             "title, or output: \"pptx\"", field="presentation_id")
    req: dict[str, Any] = {"brief": brief, "sections": job.sections, "route": job.route,
                           "keep_edits": job.keep_edits}
    if opportunity:
        req["opportunity"] = opportunity
    if job.output:
        req["target"] = "pptx"
    elif job.template_id:
        if job.title is None:
            raise InvalidRequest("title must be a non-empty string", field="title")
        req.update(target="template", template_id=job.template_id, title=job.title)
    else:
        req.update(target="presentation", presentation_id=job.presentation_id)
    return req, chosen


def check_writer(svc: Service, who: Caller, req: dict[str, Any]) -> None:
    """Whether this caller's job can write its deck as the caller."""
    if req["target"] == "pptx":
        return
    if who.owner.startswith("google:") and not who.user_token:
        raise InvalidRequest("a person's deck is edited with their own Google token: send "
                             "it in the X-Goog-User-Token header", field="X-Goog-User-Token")
    if who.user_token and svc.dispatch is not None:
        raise InvalidRequest("this server runs jobs on Celery workers, which cannot act "
                             "with a person's token; share the deck with the service "
                             "account instead")


def started(svc: Service, who: Caller, job: Job) -> None:
    """Hand a newly stored job to whoever runs it."""
    if who.user_token:
        svc.runner.user_tokens[job.id] = who.user_token
    if svc.dispatch is not None:
        svc.dispatch(job.id)


def idempotency_key() -> str | None:
    raw = request.headers.get("Idempotency-Key")
    if raw is None or raw == "":
        return None
    try:
        return IDEMPOTENCY_KEY.validate_python(raw)
    except ValidationError:
        raise InvalidRequest("Idempotency-Key must be 1 to 200 visible ASCII characters",
                             field="Idempotency-Key") from None


def queue_place(svc: Service, job: Job) -> dict[str, Any] | None:
    """Where a waiting job stands (lane, jobs ahead, ETA), for the sidebar's "queued behind
    N decks, about M s"."""
    if job.state not in ("queued", "running"):
        return None
    try:
        return place_in_line(svc.store, job.id, svc.config.slides_writes_per_minute).to_dict()
    except JobNotFound:  # it ended in between
        return None


def owned(svc: Service, who: Caller, job_id: str) -> Job:
    job = svc.store.get_job(job_id)
    if job.owner != who.owner:
        raise JobNotFound(f"no job {job_id}")  # the same answer as for a missing job
    return job


def job_view(job: Job, specs: dict[str, SectionSpec], queue: dict[str, Any] | None = None,
             writeback: Writeback | None = None) -> dict[str, Any]:
    result = job.result or {}
    return dump(JobView, {
        "status": result.get("status"), "summary": result.get("summary") or None,
        "queue": queue,
        "id": job.id, "state": job.state, "batch_id": job.batch_id,
        "created_at": job.created_at, "started_at": job.started_at,
        "finished_at": job.finished_at, "attempts": job.attempts,
        "sections": [job.progress[s] for s in specs if s in job.progress],
        "presentation_id": result.get("presentation_id") or job.presentation_id,
        "url": result.get("url"),
        "download": url_for("jobs.download", job_id=job.id) if "pptx" in result else None,
        "warnings": result.get("warnings", []), "error": job.error,
        "opportunity": job.request.get("opportunity"), "archive_id": result.get("archive_id"),
        "writeback": writeback.view() if writeback else None})


@bp.post("/v1/jobs")
@operation("Start filling a deck", {202: Answer("queued", JobView),
                                    200: Answer("the job this Idempotency-Key made", JobView)},
           body=JobRequest, headers=HEADERS, errors=(401, 403, 413, 422, 429, 503))
def create_job() -> tuple[Response, int, dict[str, str]]:
    svc = service()
    who = svc.caller()
    svc.throttle.charge(who.owner, "job")
    data = json_object()
    req, chosen = fill_request(svc, who, validate(JobRequest, data))
    check_writer(svc, who, req)
    job, created = svc.store.create_job(who.owner, req, initial_progress(chosen),
                                        presentation_id=req.get("presentation_id"),
                                        idempotency_key=idempotency_key())
    if created:
        started(svc, who, job)
    location = url_for("jobs.get_job", job_id=job.id)
    return jsonify(job_view(job, svc.specs, queue_place(svc, job))), \
        202 if created else 200, {"Location": location}


@bp.get("/v1/jobs/<job_id>")
@operation("A job's state and per-section progress", FOUND, errors=(401, 403, 404, 503))
def get_job(job_id: str) -> Response:
    svc = service()
    job = owned(svc, svc.caller(), job_id)
    writeback = svc.store.writeback(job.id) if job.request.get("opportunity") else None
    return jsonify(job_view(job, svc.specs, queue_place(svc, job), writeback))


@bp.post("/v1/jobs/<job_id>/cancel")
@operation("Cancel a job", FOUND, errors=(401, 403, 404, 503))
def cancel_job(job_id: str) -> Response:
    svc = service()
    owned(svc, svc.caller(), job_id)
    return jsonify(job_view(svc.store.cancel_job(job_id), svc.specs))


@bp.get("/v1/jobs/<job_id>/deck.pptx")
@operation("Download a .pptx job's deck", {200: Answer("the deck", media=PPTX)},
           errors=(401, 403, 404, 422, 503))
def download(job_id: str) -> Response:
    svc = service()
    job = owned(svc, svc.caller(), job_id)
    path = (job.result or {}).get("pptx")
    if job.state != "done" or not path:
        raise InvalidRequest(f"job {job_id} has no .pptx to download (state {job.state})")
    if not Path(path).is_file():
        raise JobNotFound(f"job {job_id}'s .pptx is no longer on this server")
    return send_file(path, as_attachment=True, download_name=f"{job_id}.pptx")
