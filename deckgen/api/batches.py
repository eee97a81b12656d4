"""Batches: regenerate many decks from one request (JSON items or a CSV upload), follow them
with counts and an ETA, and queue the failed ones again. A batch and all its jobs are
stored in one transaction, and an Idempotency-Key makes a client's retry find the batch its
first request made instead of making a second."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from deckgen.api.bodies import InvalidRequest, check_size, json_object, loads, validate
from deckgen.api.jobs import HEADERS, check_writer, fill_request, idempotency_key, job_view
from deckgen.api.jobs import started as job_started
from deckgen.api.openapi import Answer, operation
from deckgen.api.schemas import BatchRequest, BatchUpload, BatchView, JobRequest, dump
from deckgen.api.service import Service, service
from deckgen.auth import Caller
from deckgen.errors import BriefError
from deckgen.jobs import initial_progress
from deckgen.store import JobNotFound, JobRequests

bp = Blueprint("batches", __name__)
FOUND = {200: Answer("the batch", BatchView)}
CSV_BRIEF_COLUMNS = ("client", "industry", "opportunity", "notes")


@bp.post("/v1/batches")
@operation("Regenerate many decks", {202: Answer("queued", BatchView),
                                     200: Answer("the batch this Idempotency-Key made",
                                                 BatchView)},
           body=BatchRequest, upload=BatchUpload, headers=HEADERS,
           errors=(401, 403, 413, 422, 429, 503))
def create_batch() -> tuple[Response, int, dict[str, str]]:
    svc = service()
    who = svc.caller()
    svc.throttle.charge(who.owner, "batch")
    batch = batch_request()
    requests: JobRequests = []
    for i, item in enumerate(batch.items):
        one = JobRequest(brief=item.brief, crm=item.crm, opportunity_id=item.opportunity_id,
                         presentation_id=item.presentation_id, sections=batch.sections,
                         route=batch.route, keep_edits=batch.keep_edits)
        try:
            req, chosen = fill_request(svc, who, one, resolve=False)
        except InvalidRequest as exc:
            if exc.field not in ("brief", "crm", "opportunity_id"):
                raise  # the batch's own options (route, sections)
            raise InvalidRequest(f"items[{i}]: {exc.message}",
                                 field=f"items[{i}].{exc.field}") from None
        except BriefError as exc:
            first = next(iter(exc.details), "") if isinstance(exc.details, dict) else ""
            raise InvalidRequest(f"items[{i}]: {exc.message}", field=f"items[{i}].brief"
                                 + (f".{first}" if first else "")) from None
        check_writer(svc, who, req)
        requests.append((req, initial_progress(chosen), item.presentation_id))
    batch_id, jobs, created = svc.store.create_batch_with_jobs(who.owner, requests,
                                                               idempotency_key())
    if created:
        for job in jobs:
            job_started(svc, who, job)
    location = url_for("batches.get_batch", batch_id=batch_id)
    return jsonify(batch_view(svc, who, batch_id)), 202 if created else 200, \
        {"Location": location}


@bp.get("/v1/batches/<batch_id>")
@operation("Counts by state, per-item results and an ETA", FOUND,
           errors=(401, 403, 404, 503))
def get_batch(batch_id: str) -> Response:
    svc = service()
    return jsonify(batch_view(svc, svc.caller(), batch_id))


@bp.post("/v1/batches/<batch_id>/retry")
@operation("Queue the batch's failed items again", FOUND, errors=(401, 403, 404, 503))
def retry_batch(batch_id: str) -> Response:
    svc = service()
    who = svc.caller()
    batch_view(svc, who, batch_id)  # 404 unless it is the caller's
    retried = svc.store.retry_failed(batch_id)
    return jsonify({**batch_view(svc, who, batch_id), "retried": retried})


@bp.post("/v1/batches/<batch_id>/pause")
@operation("Pause a batch: its queued items wait; running ones finish", FOUND,
           errors=(401, 403, 404, 503))
def pause_batch(batch_id: str) -> Response:
    return jsonify(batch_action(batch_id, "pause"))


@bp.post("/v1/batches/<batch_id>/resume")
@operation("Resume a paused batch", FOUND, errors=(401, 403, 404, 503))
def resume_batch(batch_id: str) -> Response:
    return jsonify(batch_action(batch_id, "resume"))


@bp.post("/v1/batches/<batch_id>/cancel")
@operation("Cancel every item of a batch that has not ended", FOUND,
           errors=(401, 403, 404, 503))
def cancel_batch(batch_id: str) -> Response:
    return jsonify(batch_action(batch_id, "cancel"))


def batch_action(batch_id: str, action: str) -> dict[str, Any]:
    svc = service()
    who = svc.caller()
    batch_view(svc, who, batch_id)  # 404 unless it is the caller's
    if action == "cancel":
        svc.store.cancel_batch(batch_id)
    else:
        queued = svc.store.pause_batch(batch_id, paused=action == "pause")
        if action == "resume" and svc.dispatch is not None:
            for job_id in queued:
                svc.dispatch(job_id)
    return batch_view(svc, who, batch_id)


def batch_request() -> BatchRequest:
    upload = request.files.get("file")
    if upload is None:
        return validate(BatchRequest, json_object())
    check_size(request.stream.tell())  # a chunked upload is cut at the limit: see read_body
    items = csv_items(upload.read())
    route = request.form.get("route") or "auto"
    try:
        return validate(BatchRequest, {"items": items, "route": route})
    except InvalidRequest as exc:
        field = exc.field or ""
        if field.startswith("items["):  # items[3].presentation_id: CSV line 5
            index = int(field[6:field.index("]")])
            raise InvalidRequest(f"CSV line {index + 2}: {exc.message}", field="file") \
                from None
        raise


def csv_items(raw: bytes) -> list[dict[str, Any]]:
    """CSV upload: a presentation_id column and either a `brief` column (JSON) or the brief's
    flat columns client, industry, opportunity, notes."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest("the CSV file is not UTF-8 text", field="file") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    items = []
    try:
        if not reader.fieldnames or "presentation_id" not in reader.fieldnames:
            raise InvalidRequest("the CSV needs a presentation_id column", field="file")
        for row in reader:
            line = reader.line_num
            if row.get("brief"):
                try:
                    brief = loads(row["brief"], f"CSV line {line}: the brief")
                except InvalidRequest as exc:
                    raise InvalidRequest(exc.message, field="file") from None
            else:
                brief = {k: row[k] for k in CSV_BRIEF_COLUMNS if row.get(k)}
            items.append({"presentation_id": row["presentation_id"], "brief": brief})
    except csv.Error as exc:  # e.g. a cell over csv.field_size_limit() (131,072 characters)
        raise InvalidRequest(f"the CSV file cannot be read at line {reader.line_num}: {exc}",
                             field="file") from None
    return items


def batch_view(svc: Service, who: Caller, batch_id: str) -> dict[str, Any]:
    batch, jobs = svc.store.get_batch(batch_id)
    if batch["owner"] != who.owner:
        raise JobNotFound(f"no batch {batch_id}")  # the same answer as for a missing batch
    counts = {state: 0 for state in ("queued", "running", "done", "failed", "cancelled")}
    for job in jobs:
        counts[job.state] += 1
    return dump(BatchView, {"id": batch_id, "total": batch["total"], "counts": counts,
                            "paused": bool(batch.get("paused")),
                            "eta_seconds": eta(svc, jobs, counts),
                            "items": [job_view(j, svc.specs) for j in jobs]})


def eta(svc: Service, jobs: list[Any], counts: dict[str, int]) -> float | None:
    spans = [j.finished_at - j.started_at for j in jobs
             if j.finished_at is not None and j.started_at is not None]
    left = counts["queued"] + counts["running"]
    if not spans or not left:
        return None
    per_job = sum(spans) / len(spans)
    parallel = max(1, min(svc.config.workers, left))
    # Slides allows 60 writes a minute per principal: the floor on any ETA.
    slides = left * 60 / svc.config.slides_writes_per_minute \
        if any(j.request["target"] != "pptx" for j in jobs) else 0
    return round(max(per_job * left / parallel, slides), 1)
