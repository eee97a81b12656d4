"""The CRM door over HTTP: which CRMs this server reads (`/v1/crms`), an opportunity's brief
as the service would read it, for the sidebar to show before Fill (`/v1/briefs/resolve`),
and the webhooks a CRM calls when an opportunity reaches a stage (`/v1/webhooks/hubspot`,
`/v1/webhooks/salesforce`). Jobs and batch items name an opportunity in jobs.py/batches.py.

A webhook is not called with an API key: it carries the CRM's signature (crm/webhooks.py).
Each stage change the mapping has a trigger for becomes a job, idempotent per opportunity
and stage; the job reads the record when it runs, so the CRM gets its answer at once."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, jsonify, request

from deckgen.api.bodies import json_object, read_body, validate
from deckgen.api.jobs import started
from deckgen.api.openapi import Answer, operation
from deckgen.api.schemas import CrmsView, ResolvedBrief, ResolveRequest, WebhookAnswer, dump
from deckgen.api.service import Service, service
from deckgen.auth import Caller
from deckgen.crm import CrmNotConfigured
from deckgen.crm.webhooks import (
    StageChange,
    WebhookRejected,
    hubspot_events,
    salesforce_events,
    verify_hubspot,
    verify_salesforce,
)
from deckgen.jobs import initial_progress
from deckgen.sections import pick_sections

bp = Blueprint("crm", __name__)
WEBHOOK_ERRORS = (400, 401, 413, 422, 503)


@bp.get("/v1/crms")
@operation("The CRMs this server reads opportunities from",
           {200: Answer("each CRM and whether it is connected", CrmsView)},
           errors=(401, 403, 503))
def list_crms() -> Response:
    svc = service()
    who = svc.caller()
    return jsonify(dump(CrmsView, {"crms": svc.container.crm.listing(who.owner)}))


@bp.post("/v1/briefs/resolve")
@operation("An opportunity's brief as the service reads it from the CRM",
           {200: Answer("the brief, and what the record had nothing for", ResolvedBrief)},
           body=ResolveRequest, errors=(401, 403, 404, 413, 422, 429, 503))
def resolve_brief() -> Response:
    svc = service()
    who = svc.caller()
    svc.throttle.charge(who.owner, "resolve")
    ask = validate(ResolveRequest, json_object())
    found = svc.container.crm.provider(ask.crm, who.owner).resolve(ask.opportunity_id)
    return jsonify(dump(ResolvedBrief, found.to_dict()))


@bp.post("/v1/webhooks/hubspot")
@operation("HubSpot webhook: a deal reached a stage (signed, v3)",
           {200: Answer("what the delivery started", WebhookAnswer)},
           errors=WEBHOOK_ERRORS, public=True)
def hubspot_webhook() -> Response:
    svc = service()
    secret = webhook_secret(svc.config.crm.hubspot_app_secret, "HubSpot",
                            "DECKGEN_HUBSPOT_APP_SECRET")
    body = read_body()
    uri = (svc.config.crm.webhook_url or request.host_url.rstrip("/")) + \
        request.full_path.rstrip("?")
    signature = verify_hubspot(secret, request.method, uri, body, dict(request.headers),
                               time.time())
    return deliver(svc, "hubspot", signature, *hubspot_events(body))


@bp.post("/v1/webhooks/salesforce")
@operation("Salesforce webhook: an opportunity reached a stage (signed with the shared "
           "secret)", {200: Answer("what the delivery started", WebhookAnswer)},
           errors=WEBHOOK_ERRORS, public=True)
def salesforce_webhook() -> Response:
    svc = service()
    secret = webhook_secret(svc.config.crm.salesforce_webhook_secret, "Salesforce",
                            "DECKGEN_SALESFORCE_WEBHOOK_SECRET")
    body = read_body()
    signature = verify_salesforce(secret, body, dict(request.headers), time.time())
    return deliver(svc, "salesforce", signature, *salesforce_events(body))


def webhook_secret(secret: str | None, label: str, variable: str) -> str:
    if not secret:
        raise CrmNotConfigured(f"{label} webhooks are not set up on this server ({variable})")
    return secret


def deliver(svc: Service, crm: str, signature: str, changes: list[StageChange],
            ignored: int) -> Response:
    """Start a job for each stage change a trigger names; refuse a delivery seen before."""
    if not svc.store.first_delivery(crm, signature):
        raise WebhookRejected("this delivery was received before (a replay)")
    mapping = svc.container.crm.mapping(crm)
    received = len(changes) + ignored
    jobs = []
    for change in changes:
        trigger = mapping.trigger(change.stage)
        if trigger is None:
            ignored += 1
            continue
        jobs.append(stage_job(svc, crm, change, trigger.template_id, trigger.title,
                              list(trigger.sections) if trigger.sections else None,
                              trigger.route))
    return jsonify(dump(WebhookAnswer, {"received": received, "jobs": jobs,
                                        "ignored": ignored}))


def stage_job(svc: Service, crm: str, change: StageChange, template_id: str, title: str,
              sections: list[str] | None, route: str) -> str:
    """The job a stage change starts (the same one again for a repeated change): the deck
    the opportunity has refreshed, archived first; else a new copy of the template."""
    owner = f"crm:{crm}"
    chosen = pick_sections(svc.specs, sections)
    req: dict[str, Any] = {"brief": None, "sections": sections, "route": route,
                           "keep_edits": True,
                           "opportunity": {"crm": crm, "id": change.opportunity_id}}
    deck = svc.store.deck_of(owner, crm, change.opportunity_id)
    if deck:
        req.update(target="presentation", presentation_id=deck, archive=True)
    else:
        req.update(target="template", template_id=template_id, title=title)
    job, created = svc.store.create_job(
        owner, req, initial_progress(chosen), presentation_id=deck,
        idempotency_key=f"stage:{change.opportunity_id}:{change.stage}"[:200])
    if created:
        started(svc, Caller(owner), job)
    return job.id
