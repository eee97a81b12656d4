"""Health, readiness, metrics, this API's document and the deck's section list.

None of these calls a model or waits behind one: previews are capped per process below the
server's thread count (see throttle.py), so a probe always finds a free thread."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from deckgen.api.openapi import Answer, document, operation
from deckgen.api.schemas import Health, Readiness, SectionsView, dump
from deckgen.api.service import service
from deckgen.scheduler import lane_stats

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@operation("The process is up", {200: Answer("up", Health)}, public=True)
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
@operation("The store and a model route are usable",
           {200: Answer("ready", Readiness), 503: Answer("not ready", Readiness)}, public=True)
def readyz() -> tuple[Response, int]:
    svc = service()
    store_ok = svc.store.ping()
    health = svc.router.health()
    routes_ok = not health or any(h["circuit"] != "open" and not h["out_of_quota"]
                                  and not h["down"] for h in health.values())
    workers_ok = svc.runner.alive() or not svc.runner.started
    ready = store_ok and routes_ok and workers_ok
    body = dump(Readiness, {"ready": ready, "store": store_ok, "workers": workers_ok,
                            "routes": health})
    return jsonify(body), 200 if ready else 503


@bp.get("/metrics")
@operation("Prometheus metrics", {200: Answer("text exposition", media="text/plain")},
           public=True, errors=(503,))
def metrics() -> Response:
    svc = service()
    return Response(svc.metrics.render(svc.store.queue_depth(), lane_stats(svc.store)),
                    mimetype=svc.metrics.content_type)


@bp.get("/openapi.json")
@operation("This document", {200: Answer("the OpenAPI 3.1 document")}, public=True)
def openapi() -> Response:
    svc = service()
    if svc.document is None:  # the routes and schemas are fixed once the app is built
        svc.document = document(current_app, svc.specs)
    return jsonify(svc.document)


@bp.get("/v1/sections")
@operation("The deck's sections", {200: Answer("sections", SectionsView)},
           errors=(401, 403, 503))
def sections() -> Response:
    svc = service()
    svc.caller()
    return jsonify(dump(SectionsView, {"sections": [{"name": s.name, "label": s.label}
                                                    for s in svc.specs.values()]}))
