"""Preview: write the sections now, fitted to the default template's boxes, and store
nothing. The one synchronous model call of the API, so it is limited per caller and per
process (throttle.py). A preview in which no section could be written is an error, not a
200: 503 with Retry-After when every failure was a model route being away, else 502; the
per-section errors ride along in `details`."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from deckgen.api.bodies import json_object, validate
from deckgen.api.openapi import Answer, operation
from deckgen.api.schemas import PreviewRequest, PreviewView, dump
from deckgen.api.service import service
from deckgen.brief import parse_brief
from deckgen.content import DeckContent
from deckgen.errors import DeckgenError

bp = Blueprint("preview", __name__)
# failures that say a route is away right now, not that this request was wrong
ROUTE_AWAY = {"route_unavailable", "model_unavailable", "rate_limited", "quota_exhausted",
              "model_crashed", "route_saturated"}


class PreviewFailed(DeckgenError):
    code = "preview_failed"
    http_status = 502


class RoutesAway(PreviewFailed):
    code = "model_unavailable"
    http_status = 503

    def __init__(self, message: str, *, retry_after: int, details: object) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


@bp.post("/v1/preview")
@operation("Generate sections now, fitted to the default template's boxes; write nothing",
           {200: Answer("the sections", PreviewView)}, body=PreviewRequest,
           errors=(401, 403, 413, 422, 429, 502, 503))
def preview() -> Response:
    svc = service()
    who = svc.caller()
    svc.throttle.charge(who.owner, "preview")
    req = validate(PreviewRequest, json_object())
    brief = svc.generator.privacy.apply(parse_brief(req.brief), who.owner)
    svc.options(req.sections, req.route, brief, who.owner)
    with svc.throttle.preview(who.owner):
        deck = svc.filler.preview(brief, req.sections, req.route)
    svc.metrics.job_finished("preview", deck)
    if deck.sections and all(s.status == "failed" for s in deck.sections):
        raise failure(deck, retry_after=round(svc.config.retry.breaker_cooldown))
    return jsonify(dump(PreviewView, deck.to_dict()))


def failure(deck: DeckContent, retry_after: int) -> PreviewFailed:
    details: dict[str, Any] = {"sections": [
        {"section": s.section, "error": s.error, "failovers": s.failovers}
        for s in deck.sections]}
    if all(away(s.error, s.failovers) for s in deck.sections):
        return RoutesAway("no section could be written: every model route is away right "
                          "now", retry_after=max(1, retry_after), details=details)
    return PreviewFailed("no section could be written; details.sections says why, section "
                         "by section", details=details)


def away(error: dict[str, object] | None, failovers: list[dict[str, str]]) -> bool:
    code = (error or {}).get("code")
    if code in ROUTE_AWAY:
        return True
    # every route failed over (a model_error naming them): away when each one was
    return code == "model_error" and bool(failovers) and all(
        f.get("code") in ROUTE_AWAY for f in failovers)
