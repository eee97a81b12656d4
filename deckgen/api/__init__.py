"""The HTTP service: jobs for the Slides sidebar and the CRM, synchronous previews, batch
regeneration, health, metrics and the OpenAPI document. `create_app()` is the application
factory gunicorn runs (`gunicorn 'deckgen.api:create_app()'`); one blueprint per resource
(jobs, batches, preview, health), request and answer shapes in `schemas.py`, the document
assembled from them in `openapi.py`.

Every error is `{"error": {"code", "message", "field"?}}`: a 4xx for what a caller can get
wrong, 429 / 503 with Retry-After for limits and dependencies that are away, and a 500 with
no traceback (logged here) for anything unexpected. One handler maps the DeckgenError family
to HTTP."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from deckgen.api import batches, crm, health, jobs, preview, schedules
from deckgen.api.bodies import InvalidRequest
from deckgen.api.service import Service
from deckgen.api.throttle import Throttle
from deckgen.auth import Authenticator
from deckgen.config import Config, ScheduleSettings
from deckgen.container import Container
from deckgen.content import DeckContent
from deckgen.crm.outbox import Outbox
from deckgen.crm.query import CrmQuery
from deckgen.errors import BriefError, DeckgenError
from deckgen.jobs import make_runner
from deckgen.llm.router import Router
from deckgen.metrics import Metrics
from deckgen.schedules import make_ticker
from deckgen.store import Job, Store

__all__ = ["InvalidRequest", "create_app"]

log = logging.getLogger("deckgen.api")


def create_app(config: Config | None = None, *, store: Store | None = None,
               router: Router | None = None, start_workers: bool = True,
               schedule_settings: ScheduleSettings | None = None) -> Flask:
    container = Container.build(config, router=router, store=store)
    config = container.config
    metrics = Metrics()

    def finished(job: Job, deck: DeckContent | None) -> None:
        metrics.job_finished(job.state, deck)
        if (job.result or {}).get("presentation_id") and job.principal:
            metrics.slides_written(job.principal)

    dispatch = None
    if config.queue_url:
        from deckgen.tasks import dispatcher

        dispatch = dispatcher(config.queue_url,
                              lane_of=lambda job_id: container.store.get_job(job_id).lane)
    settings = schedule_settings or config.schedules
    runner = make_runner(container, on_finish=finished, dispatch=dispatch, schedules=settings)
    # scheduled regeneration: every replica ticks, each run fires once (deckgen/schedules.py)
    ticker = make_ticker(container.store, settings, specs=container.generator.specs,
                         dispatch=dispatch, crm=CrmQuery(container.crm, container.store))
    runner.on_stop.append(ticker.stop)
    # deck links owed to CRM records, retried until the CRM takes them (deckgen/crm/outbox.py)
    outbox = Outbox(container.store, container.crm, config.crm.webhook_url)
    runner.on_stop.append(outbox.stop)
    auth = Authenticator(container.store, config.google_audience, config.allowed_domains,
                         config.google_certs_url)
    svc = Service(container, runner, auth, metrics, Throttle.from_config(config), dispatch)

    app = Flask("deckgen")
    # Werkzeug stops reading a body here (a 413 when a Content-Length says more); one byte
    # over our limit so that bodies.read_body can tell a chunked body that is too large
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes + 1
    app.extensions["deckgen"] = {"service": svc, "store": container.store, "runner": runner,
                                 "router": container.router, "metrics": metrics,
                                 "config": config, "schedules": ticker,
                                 "outbox": outbox}
    for blueprint in (health.bp, jobs.bp, batches.bp, preview.bp, schedules.bp, crm.bp):
        app.register_blueprint(blueprint)
    register_errors(app, config)
    register_hooks(app, metrics)
    if start_workers:
        runner.start()
        ticker.start(settings.tick_seconds)
        if config.crm.connected:
            outbox.start()
    return app


def register_errors(app: Flask, config: Config) -> None:
    @app.errorhandler(DeckgenError)
    def deckgen_error(exc: DeckgenError) -> tuple[Response, int, dict[str, str]]:
        body = exc.to_dict()
        if isinstance(exc, BriefError) and isinstance(exc.details, dict) and exc.details:
            body["field"] = "brief." + str(next(iter(exc.details)))
        headers = {}
        retry_after = getattr(exc, "retry_after", None)
        if exc.http_status in (429, 503) and retry_after is not None:
            headers["Retry-After"] = str(max(1, round(retry_after)))
        if exc.http_status >= 500:
            log.warning("%s %s: %s %s", request.method, request.path, exc.code, exc.message)
        return jsonify(error=body), exc.http_status, headers

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name
        if exc.code == 413:
            code = "request_entity_too_large"
            message = f"the request body is larger than {config.max_request_bytes} bytes"
        return jsonify(error={"code": code, "message": message}), exc.code or 500

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return jsonify(error={"code": "internal_error", "message": "an unexpected error "
                              "occurred on the server; it has been logged"}), 500


def register_hooks(app: Flask, metrics: Metrics) -> None:
    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def record(response: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.request(rule, request.method, response.status_code,
                        time.perf_counter() - g.get("started", time.perf_counter()))
        return response
