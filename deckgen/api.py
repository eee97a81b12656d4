"""The HTTP service: jobs for the Slides sidebar and the CRM, synchronous previews, batch
regeneration, health, metrics and the OpenAPI document. `create_app()` is the factory
gunicorn runs (`gunicorn 'deckgen.api:create_app()'`).

Errors a caller can cause come back as a 4xx with `{"error": {"code", "message", "field"?}}`;
one handler maps the DeckgenError family to HTTP."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

from flask import Flask, Response, g, jsonify, request, send_file, url_for
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from deckgen.auth import Authenticator, Caller, Forbidden
from deckgen.brief import parse_brief
from deckgen.config import ROUTES, Config
from deckgen.container import Container
from deckgen.content import DeckContent
from deckgen.errors import BriefError, DeckgenError
from deckgen.jobs import initial_progress, make_runner
from deckgen.llm.router import Router
from deckgen.metrics import Metrics
from deckgen.openapi import openapi_document
from deckgen.sections import pick_sections
from deckgen.store import Job, Store

JOB_FIELDS = {"brief", "opportunity_id", "presentation_id", "template_id", "title", "output",
              "sections", "route", "keep_edits"}
PREVIEW_FIELDS = {"brief", "sections", "route"}
MAX_BATCH_ITEMS = 1000


class InvalidRequest(DeckgenError):
    code = "invalid_request"
    http_status = 422

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def to_dict(self) -> dict[str, object]:
        out = super().to_dict()
        if self.field:
            out["field"] = self.field
        return out


def create_app(config: Config | None = None, *, store: Store | None = None,
               router: Router | None = None, start_workers: bool = True) -> Flask:
    container = Container.build(config, router=router, store=store)
    config, store, router = container.config, container.store, container.router
    generator = container.generator
    specs = generator.specs
    metrics = Metrics()

    def finished(job: Job, deck: DeckContent | None) -> None:
        metrics.job_finished(job.state, deck)

    dispatch = None
    if config.queue_url:
        from deckgen.tasks import dispatcher

        dispatch = dispatcher(config.queue_url)
    runner = make_runner(container, on_finish=finished, dispatch=dispatch)
    auth = Authenticator(store, config.google_audience, config.allowed_domains,
                         config.google_certs_url)

    app = Flask("deckgen")
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes
    app.extensions["deckgen"] = {"store": store, "runner": runner, "router": router,
                                 "metrics": metrics, "config": config}
    if start_workers:
        runner.start()

    @app.errorhandler(DeckgenError)
    def deckgen_error(exc: DeckgenError) -> tuple[Response, int]:
        body = exc.to_dict()
        if isinstance(exc, BriefError) and isinstance(exc.details, dict) and exc.details:
            body["field"] = "brief." + next(iter(exc.details))
        return jsonify(error=body), exc.http_status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name
        if exc.code == 413:
            message = f"the request body is larger than {config.max_request_bytes} bytes"
        return jsonify(error={"code": code, "message": message}), exc.code or 500

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def record(response: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.request(rule, request.method, response.status_code,
                        time.perf_counter() - g.get("started", time.perf_counter()))
        return response

    def caller() -> Caller:
        return auth.authenticate(dict(request.headers))

    def body(allowed: set[str]) -> dict[str, Any]:
        if (request.content_length or 0) > config.max_request_bytes:
            raise RequestEntityTooLarge()
        data = request.get_json(silent=True)
        if data is None:
            raise InvalidRequest("the body must be a JSON object (Content-Type: "
                                 "application/json)")
        if not isinstance(data, dict):
            raise InvalidRequest(f"the body must be a JSON object, got {type(data).__name__}")
        for key in data:
            if key not in allowed:
                names = ", ".join(sorted(allowed))
                raise InvalidRequest(f"unknown field {key!r}; allowed: {names}", field=str(key))
        return data

    def options(data: dict[str, Any]) -> tuple[list[str] | None, str]:
        sections = data.get("sections")
        if sections is not None and (not isinstance(sections, list) or
                                     not all(isinstance(s, str) for s in sections)):
            raise InvalidRequest("sections must be a list of section names", field="sections")
        try:
            pick_sections(specs, sections)
        except DeckgenError as exc:
            raise InvalidRequest(exc.message, field="sections") from None
        route = data.get("route", "auto")
        if route not in ROUTES:
            raise InvalidRequest(f"route must be one of {', '.join(ROUTES)}", field="route")
        return sections, route

    def job_request(data: dict[str, Any]) -> dict[str, Any]:
        if "opportunity_id" in data:
            raise InvalidRequest("this server does not resolve CRM opportunity ids; send the "
                                 "brief itself", field="opportunity_id")
        if "brief" not in data:
            raise InvalidRequest("brief is required", field="brief")
        parse_brief(data["brief"])
        sections, route = options(data)
        targets = [k for k in ("presentation_id", "template_id", "output") if k in data]
        if len(targets) != 1:
            raise InvalidRequest("give exactly one target: presentation_id, template_id with "
                                 "title, or output: \"pptx\"", field="presentation_id")
        keep = data.get("keep_edits", False)
        if not isinstance(keep, bool):
            raise InvalidRequest("keep_edits must be true or false", field="keep_edits")
        req: dict[str, Any] = {"brief": data["brief"], "sections": sections, "route": route,
                               "keep_edits": keep}
        if "output" in data:
            if data["output"] != "pptx":
                raise InvalidRequest('output must be "pptx"', field="output")
            req["target"] = "pptx"
        elif "template_id" in data:
            for name in ("template_id", "title"):
                if not isinstance(data.get(name), str) or not data[name].strip():
                    raise InvalidRequest(f"{name} must be a non-empty string", field=name)
            req.update(target="template", template_id=data["template_id"], title=data["title"])
        else:
            if not isinstance(data["presentation_id"], str) or not data["presentation_id"]:
                raise InvalidRequest("presentation_id must be a non-empty string",
                                     field="presentation_id")
            req.update(target="presentation", presentation_id=data["presentation_id"])
        return req

    def submit(who: Caller, req: dict[str, Any], batch_id: str | None = None,
               key: str | None = None) -> tuple[Job, bool]:
        chosen = pick_sections(specs, req["sections"])
        if who.owner.startswith("google:") and not who.user_token and req["target"] != "pptx":
            raise InvalidRequest("a person's deck is edited with their own Google token: send "
                                 "it in the X-Goog-User-Token header", field="X-Goog-User-Token")
        if who.user_token and dispatch is not None and req["target"] != "pptx":
            raise InvalidRequest("this server runs jobs on Celery workers, which cannot act "
                                 "with a person's token; share the deck with the service "
                                 "account instead")
        job, created = store.create_job(who.owner, req, initial_progress(chosen),
                                        presentation_id=req.get("presentation_id"),
                                        batch_id=batch_id, idempotency_key=key)
        if created and who.user_token:
            runner.user_tokens[job.id] = who.user_token
        if created and dispatch is not None:
            dispatch(job.id)
        return job, created

    def own(job: Job, who: Caller) -> Job:
        if job.owner != who.owner:
            raise Forbidden("this job belongs to another caller")
        return job

    def job_view(job: Job) -> dict[str, Any]:
        result = job.result or {}
        order = [s for s in specs if s in job.progress]
        return {"id": job.id, "state": job.state, "batch_id": job.batch_id,
                "created_at": job.created_at, "started_at": job.started_at,
                "finished_at": job.finished_at, "attempts": job.attempts,
                "sections": [job.progress[s] for s in order],
                "presentation_id": result.get("presentation_id") or job.presentation_id,
                "url": result.get("url"),
                "download": url_for("download", job_id=job.id) if "pptx" in result else None,
                "warnings": result.get("warnings", []), "error": job.error}

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        store_ok = store.ping()
        health = router.health()
        routes_ok = not health or any(h["circuit"] != "open" and not h["out_of_quota"]
                                      and not h["down"]
                                      for h in health.values())
        ready = store_ok and routes_ok
        return jsonify(ready=ready, store=store_ok, routes=health), 200 if ready else 503

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(store.queue_depth()), mimetype=metrics.content_type)

    @app.get("/openapi.json")
    def openapi() -> Response:
        return jsonify(openapi_document(list(specs)))

    @app.get("/v1/sections")
    def sections() -> Response:
        caller()
        return jsonify(sections=[{"name": s.name, "label": s.label} for s in specs.values()])

    @app.post("/v1/jobs")
    def create_job() -> tuple[Response, int, dict[str, str]]:
        who = caller()
        req = job_request(body(JOB_FIELDS))
        key = request.headers.get("Idempotency-Key") or None
        job, created = submit(who, req, key=key)
        location = url_for("get_job", job_id=job.id)
        return jsonify(job_view(job)), 202 if created else 200, {"Location": location}

    @app.get("/v1/jobs/<job_id>")
    def get_job(job_id: str) -> Response:
        return jsonify(job_view(own(store.get_job(job_id), caller())))

    @app.post("/v1/jobs/<job_id>/cancel")
    def cancel_job(job_id: str) -> Response:
        own(store.get_job(job_id), caller())
        return jsonify(job_view(store.cancel_job(job_id)))

    @app.get("/v1/jobs/<job_id>/deck.pptx")
    def download(job_id: str) -> Response:
        job = own(store.get_job(job_id), caller())
        path = (job.result or {}).get("pptx")
        if job.state != "done" or not path:
            raise InvalidRequest(f"job {job_id} has no .pptx to download (state {job.state})")
        return send_file(path, as_attachment=True, download_name=f"{job_id}.pptx")

    @app.post("/v1/preview")
    def preview() -> Response:
        who = caller()
        data = body(PREVIEW_FIELDS)
        if "brief" not in data:
            raise InvalidRequest("brief is required", field="brief")
        brief = generator.privacy.apply(parse_brief(data["brief"]), who.owner)
        sections, route = options(data)
        deck = container.filler.preview(brief, sections, route)
        metrics.job_finished("preview", deck)
        return jsonify(deck.to_dict())

    @app.post("/v1/batches")
    def create_batch() -> tuple[Response, int, dict[str, str]]:
        who = caller()
        items, shared = batch_items()
        if not items:
            raise InvalidRequest("a batch needs at least one item", field="items")
        if len(items) > MAX_BATCH_ITEMS:
            raise InvalidRequest(f"a batch holds at most {MAX_BATCH_ITEMS} items", field="items")
        requests = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or set(item) - {"presentation_id", "brief"}:
                raise InvalidRequest("each item is {presentation_id, brief}", field=f"items[{i}]")
            try:
                requests.append(job_request({**shared, **item}))
            except DeckgenError as exc:
                raise InvalidRequest(f"items[{i}]: {exc.message}", field=f"items[{i}]") from None
        batch_id = store.create_batch(who.owner, len(requests))
        for req in requests:
            submit(who, req, batch_id=batch_id)
        location = url_for("get_batch", batch_id=batch_id)
        return jsonify(batch_view(batch_id, who)), 202, {"Location": location}

    def batch_items() -> tuple[list[Any], dict[str, Any]]:
        upload = request.files.get("file")
        if upload is not None:
            return csv_items(upload.read()), {k: v for k, v in request.form.items()
                                              if k in ("route",)}
        data = body({"items", "sections", "route", "keep_edits"})
        items = data.get("items")
        if not isinstance(items, list):
            raise InvalidRequest("items must be a list of {presentation_id, brief}",
                                 field="items")
        return items, {k: data[k] for k in ("sections", "route", "keep_edits") if k in data}

    def batch_view(batch_id: str, who: Caller) -> dict[str, Any]:
        batch, jobs = store.get_batch(batch_id)
        if batch["owner"] != who.owner:
            raise Forbidden("this batch belongs to another caller")
        counts = {state: 0 for state in ("queued", "running", "done", "failed", "cancelled")}
        for job in jobs:
            counts[job.state] += 1
        spans = [j.finished_at - j.started_at for j in jobs
                 if j.finished_at is not None and j.started_at is not None]
        eta = None
        left = counts["queued"] + counts["running"]
        if spans and left:
            per_job = sum(spans) / len(spans)
            parallel = max(1, min(config.workers, left))
            # Slides allows 60 writes a minute per principal: the floor on any ETA.
            eta = round(max(per_job * left / parallel, left * 60 / config.slides_writes_per_minute
                            if any(j.request["target"] != "pptx" for j in jobs) else 0), 1)
        return {"id": batch_id, "total": batch["total"], "counts": counts,
                "eta_seconds": eta, "items": [job_view(j) for j in jobs]}

    @app.get("/v1/batches/<batch_id>")
    def get_batch(batch_id: str) -> Response:
        return jsonify(batch_view(batch_id, caller()))

    @app.post("/v1/batches/<batch_id>/retry")
    def retry_batch(batch_id: str) -> Response:
        who = caller()
        batch_view(batch_id, who)  # ownership
        retried = store.retry_failed(batch_id)
        return jsonify({**batch_view(batch_id, who), "retried": retried})

    return app


def csv_items(raw: bytes) -> list[dict[str, Any]]:
    """CSV upload: a presentation_id column and either a `brief` column (JSON) or the brief's
    flat columns client, industry, opportunity, notes."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest("the CSV file is not UTF-8 text", field="file") from None
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "presentation_id" not in reader.fieldnames:
        raise InvalidRequest("the CSV needs a presentation_id column", field="file")
    items = []
    for line, row in enumerate(reader, start=2):
        if row.get("brief"):
            try:
                brief = json.loads(row["brief"])
            except json.JSONDecodeError as exc:
                raise InvalidRequest(f"CSV line {line}: brief is not JSON ({exc.msg})",
                                     field="file") from None
        else:
            brief = {k: row[k] for k in ("client", "industry", "opportunity", "notes")
                     if row.get(k)}
        items.append({"presentation_id": row["presentation_id"], "brief": brief})
    return items
