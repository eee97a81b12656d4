"""Schedules: regenerate a set of decks on cron text, through the batch lane, with the deck
archived before each update (deckgen/schedules.py, deckgen/archive.py). A caller sees only
its own schedules; another caller's answers exactly like a missing one (404).

Scheduled jobs run with no person present, as the service account, so schedules are made
with an API key, not a Google sign-in (whose token would be gone by the time they run)."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, jsonify, url_for

from deckgen.api.bodies import InvalidRequest, json_object, validate
from deckgen.api.openapi import Answer, operation
from deckgen.api.schemas import ScheduleList, ScheduleRequest, ScheduleView, dump
from deckgen.api.service import Service, service
from deckgen.auth import Caller
from deckgen.brief import parse_brief
from deckgen.schedules import add_schedule, check_source, next_run
from deckgen.store.schedules import Schedule, ScheduleNotFound

bp = Blueprint("schedules", __name__)
FOUND = {200: Answer("the schedule", ScheduleView)}
# the brief a schedule with no brief of its own (CRM entries only) is checked against
PLACEHOLDER_BRIEF = {"client": "a CRM record"}


@bp.post("/v1/schedules")
@operation("Regenerate a set of decks on a schedule",
           {201: Answer("created", ScheduleView)}, body=ScheduleRequest,
           errors=(401, 403, 413, 422, 429, 503))
def create_schedule() -> tuple[Response, int, dict[str, str]]:
    svc = service()
    who = svc.caller()
    svc.throttle.charge(who.owner, "batch")
    if who.owner.startswith("google:"):
        raise InvalidRequest("scheduled decks are written with no person present, as the "
                             "service account: create schedules with an API key")
    data = json_object()
    body = validate(ScheduleRequest, data)
    source = check_source(data["source"])
    briefs = [item["brief"] for item in source.get("items", []) if "brief" in item]
    for brief in briefs or [PLACEHOLDER_BRIEF]:  # route and sections, as a job checks them
        svc.options(body.sections, body.route, parse_brief(brief), who.owner)
    schedule = add_schedule(svc.store, who.owner, body.name, body.cron, source,
                            timezone=body.timezone, route=body.route, sections=body.sections,
                            keep_edits=body.keep_edits, archive=body.archive, specs=svc.specs)
    return jsonify(schedule_view(svc, schedule)), 201, \
        {"Location": url_for("schedules.get_schedule", schedule_id=schedule.id)}


@bp.get("/v1/schedules")
@operation("The caller's schedules", {200: Answer("the schedules", ScheduleList)},
           errors=(401, 403, 503))
def list_schedules() -> Response:
    svc = service()
    who = svc.caller()
    return jsonify(dump(ScheduleList, {"schedules": [
        schedule_view(svc, s, runs=False) for s in svc.store.list_schedules(who.owner)]}))


@bp.get("/v1/schedules/<schedule_id>")
@operation("A schedule and its recent runs", FOUND, errors=(401, 403, 404, 503))
def get_schedule(schedule_id: str) -> Response:
    svc = service()
    return jsonify(schedule_view(svc, owned(svc, svc.caller(), schedule_id)))


@bp.post("/v1/schedules/<schedule_id>/pause")
@operation("Pause a schedule: no run fires until it is resumed", FOUND,
           errors=(401, 403, 404, 503))
def pause_schedule(schedule_id: str) -> Response:
    svc = service()
    owned(svc, svc.caller(), schedule_id)
    return jsonify(schedule_view(svc, svc.store.pause_schedule(schedule_id, True)))


@bp.post("/v1/schedules/<schedule_id>/resume")
@operation("Resume a schedule from its next slot (slots missed while paused do not fire)",
           FOUND, errors=(401, 403, 404, 503))
def resume_schedule(schedule_id: str) -> Response:
    svc = service()
    schedule = owned(svc, svc.caller(), schedule_id)
    following = next_run(schedule.cron, schedule.timezone, time.time())
    return jsonify(schedule_view(svc, svc.store.pause_schedule(schedule_id, False,
                                                               following)))


@bp.delete("/v1/schedules/<schedule_id>")
@operation("Remove a schedule (the batches it made stay)",
           {200: Answer("the schedule as it was", ScheduleView)}, errors=(401, 403, 404, 503))
def delete_schedule(schedule_id: str) -> Response:
    svc = service()
    schedule = owned(svc, svc.caller(), schedule_id)
    svc.store.delete_schedule(schedule_id)
    return jsonify(schedule_view(svc, schedule, runs=False))


def owned(svc: Service, who: Caller, schedule_id: str) -> Schedule:
    schedule = svc.store.get_schedule(schedule_id)
    if schedule.owner != who.owner:
        raise ScheduleNotFound(f"no schedule {schedule_id}")  # as for a missing one
    return schedule


def schedule_view(svc: Service, schedule: Schedule, runs: bool = True) -> dict[str, Any]:
    options = schedule.options
    view: dict[str, Any] = {
        "id": schedule.id, "name": schedule.name, "cron": schedule.cron,
        "timezone": schedule.timezone, "paused": schedule.paused,
        "next_run_at": schedule.next_run_at, "last_run_at": schedule.last_run_at,
        "created_at": schedule.created_at, "source": schedule.source,
        "route": options.get("route", "auto"), "sections": options.get("sections"),
        "keep_edits": bool(options.get("keep_edits")),
        "archive": bool(options.get("archive", True))}
    if runs:
        view["runs"] = [{"due_at": r.due_at, "fired_at": r.fired_at, "batch_id": r.batch_id,
                         "error": r.error} for r in svc.store.schedule_runs(schedule.id)]
    return dump(ScheduleView, view)
