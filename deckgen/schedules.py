"""Scheduled regeneration: an operator's cron text that regenerates a set of decks through
the batch lane, fired exactly once per due time across every replica.

Cron text is standard five-field cron (0 and 7 are Sunday) read in an IANA time zone, with
croniter (pallets-eco); a bad one is a 422 `invalid_schedule` naming the field that is
wrong. Why croniter and not APScheduler: APScheduler 3's `CronTrigger.from_crontab` counts
days of the week from Monday = 0, so "0 6 * * 1" fires on Tuesdays; and only a trigger is
needed, since an in-process scheduler would fire on every replica. The store is the
scheduler (deckgen/store/schedules.py claims each run with a compare-and-set in the
transaction that makes its batch). Every replica runs a
`ScheduleTicker` thread that looks for due schedules every DECKGEN_SCHEDULE_TICK seconds; a
run missed while the service was down fires once when it is back (the next run is counted
from now, not from the missed slot).

A schedule's source is `{"items": [{"presentation_id", "brief"}, ...]}`, handled here, or
CRM entries (items with `crm` and `opportunity_id` instead of a brief, or
`{"crm_query": {"crm", "changed_since_last_run"}}`) that a resolver registered under "crm"
turns into such items; with none registered the run records a clear error instead of
firing. Scheduled jobs carry `schedule_id` and, unless the schedule turns it off,
`archive: true` (deckgen/archive.py: the deck is copied before it is written, and left
as it was if any section failed)."""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from deckgen.archive import FailureReporter
from deckgen.brief import parse_brief
from deckgen.config import ScheduleSettings
from deckgen.errors import BriefError, DeckgenError, FieldError
from deckgen.jobs import initial_progress
from deckgen.sections import SectionSpec, pick_sections
from deckgen.store import JobRequests, Store
from deckgen.store.schedules import Schedule

__all__ = ["CRMS", "FiredRun", "InvalidSchedule", "Resolver", "ScheduleTicker",
           "add_schedule", "check_source", "make_ticker", "next_run", "parse_cron"]

log = logging.getLogger("deckgen.schedules")

CRMS = ("salesforce", "hubspot")
MAX_ITEMS = 1000  # as a batch
MAX_NAME = 200
GOOGLE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
CRON_FIELDS = (("minute", "0-59"), ("hour", "0-23"), ("day-of-month", "1-31"),
               ("month", "1-12 or jan-dec"), ("day-of-week", "0-7 or sun-sat (0 and 7 are Sunday)"))
CRON_HELP = ("five fields: minute hour day-of-month month day-of-week, e.g. \"0 6 * * 1\" "
             "(Mondays at 06:00)")
# (schedule, when it last ran or None) -> batch items {"presentation_id", "brief"}
Resolver = Callable[[Schedule, float | None], list[dict[str, Any]]]


class InvalidSchedule(FieldError):
    """A schedule a caller got wrong: bad cron text, time zone, name, source or options."""

    code = "invalid_schedule"


class RunError(DeckgenError):
    """A due run that cannot fire (its CRM entries cannot be resolved, a resolved item is
    not valid): recorded on the run and reported, and the schedule moves on."""

    code = "schedule_run_failed"


class NoResolver(RunError):
    code = "crm_not_configured"


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule(f"unknown time zone {timezone!r}: use an IANA name such as "
                              "UTC or Europe/Paris", field="timezone") from None


def parse_cron(cron: str, timezone: str = "UTC") -> ZoneInfo:
    """Check cron text and its time zone (InvalidSchedule naming what is wrong); the zone."""
    zone = _zone(timezone)
    parts = cron.split() if isinstance(cron, str) else []
    if len(parts) != len(CRON_FIELDS):
        raise InvalidSchedule(f"the cron text {cron!r} has {len(parts)} fields; it needs "
                              f"{CRON_HELP}", field="cron")
    for i, (name, allowed) in enumerate(CRON_FIELDS):
        probe = ["*"] * len(CRON_FIELDS)
        probe[i] = parts[i]
        if not croniter.is_valid(" ".join(probe)):
            raise InvalidSchedule(f"the {name} field {parts[i]!r} of the cron text {cron!r} "
                                  f"is not valid: it takes {allowed}, lists (1,15), ranges "
                                  "(1-5) and steps (*/15)", field="cron")
    if not croniter.is_valid(cron):
        raise InvalidSchedule(f"the cron text {cron!r} is not valid: it needs {CRON_HELP}",
                              field="cron")
    return zone


def next_run(cron: str, timezone: str, after: float) -> float | None:
    """The first time strictly after `after` the cron text names (a Unix time), or None
    when it names none (30 February)."""
    zone = parse_cron(cron, timezone)
    try:
        when = croniter(cron, dt.datetime.fromtimestamp(after, zone)).get_next(dt.datetime)
    except CroniterBadDateError:
        return None
    return float(when.timestamp())


def check_source(source: Any) -> dict[str, Any]:
    """A schedule's source, checked: `{"items": [...]}` or `{"crm_query": {...}}`."""
    shape = 'source must be {"items": [...]} or {"crm_query": {"crm": ...}}'
    if not isinstance(source, dict) or len(source) != 1 or \
            next(iter(source)) not in ("items", "crm_query"):
        raise InvalidSchedule(shape, field="source")
    if "crm_query" in source:
        query = source["crm_query"]
        if not isinstance(query, dict) or query.get("crm") not in CRMS:
            raise InvalidSchedule(f"crm_query.crm must be one of {', '.join(CRMS)}",
                                  field="source.crm_query.crm")
        if not isinstance(query.get("changed_since_last_run", False), bool):
            raise InvalidSchedule("crm_query.changed_since_last_run must be true or false",
                                  field="source.crm_query.changed_since_last_run")
        return source
    items = source["items"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise InvalidSchedule(f"items must be a list of 1 to {MAX_ITEMS} decks",
                              field="source.items")
    for i, item in enumerate(items):
        check_item(item, f"source.items[{i}]", crm_allowed=True)
    return source


def check_item(item: Any, where: str, crm_allowed: bool) -> None:
    """One deck: `{"presentation_id", "brief"}` (or, in a schedule's source, `{
    "presentation_id", "crm", "opportunity_id"}`)."""
    if not isinstance(item, dict):
        raise InvalidSchedule(f"{where} must be an object", field=where)
    pid = item.get("presentation_id")
    if not isinstance(pid, str) or not GOOGLE_ID.fullmatch(pid):
        raise InvalidSchedule(f"{where}.presentation_id must be a Google file id (letters, "
                              "digits, - and _; at most 128)", field=f"{where}.presentation_id")
    if "brief" in item:
        extra = set(item) - {"presentation_id", "brief"}
        try:
            if not isinstance(item["brief"], dict):
                raise BriefError("the brief must be a JSON object")
            parse_brief(item["brief"])
        except BriefError as exc:
            first = next(iter(exc.details), "") if isinstance(exc.details, dict) else ""
            raise InvalidSchedule(f"{where}: {exc.message}", details=exc.details,
                                  field=f"{where}.brief" + (f".{first}" if first else "")) \
                from None
    elif crm_allowed and "crm" in item:
        extra = set(item) - {"presentation_id", "crm", "opportunity_id"}
        if item["crm"] not in CRMS:
            raise InvalidSchedule(f"{where}.crm must be one of {', '.join(CRMS)}",
                                  field=f"{where}.crm")
        opportunity = item.get("opportunity_id")
        if not isinstance(opportunity, str) or not 0 < len(opportunity.strip()) <= 200:
            raise InvalidSchedule(f"{where}.opportunity_id must be the CRM record's id",
                                  field=f"{where}.opportunity_id")
    else:
        raise InvalidSchedule(f"{where} needs a brief" + (" (or crm and opportunity_id)"
                                                          if crm_allowed else ""),
                              field=f"{where}.brief")
    if extra:
        raise InvalidSchedule(f"{where} has unknown fields: {', '.join(sorted(extra))}",
                              field=f"{where}.{sorted(extra)[0]}")


def add_schedule(store: Store, owner: str, name: str, cron: str, source: Any, *,
                 timezone: str = "UTC", route: str = "auto",
                 sections: list[str] | None = None, keep_edits: bool = False,
                 archive: bool = True, specs: Mapping[str, SectionSpec] | None = None,
                 now: float | None = None) -> Schedule:
    """Check and store a new schedule (every door calls this); its first run is the first
    time its cron text names after now."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise InvalidSchedule(f"name must be 1 to {MAX_NAME} characters", field="name")
    first = next_run(cron, timezone, time.time() if now is None else now)
    if first is None:
        raise InvalidSchedule(f"the cron text {cron!r} never fires", field="cron")
    if specs is not None:
        try:
            pick_sections(dict(specs), sections)
        except DeckgenError as exc:
            raise InvalidSchedule(exc.message, field="sections") from None
    options = {"route": route, "sections": sections, "keep_edits": keep_edits,
               "archive": archive}
    return store.add_schedule(owner, name.strip(), cron.strip(), timezone,
                              check_source(source), options, first)


@dataclass(frozen=True)
class FiredRun:
    """A due run this replica claimed: its batch and jobs, or the error that kept it from
    firing (then no batch)."""

    schedule_id: str
    due_at: float
    batch_id: str | None
    job_ids: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None


class ScheduleTicker:
    """Fires due schedules. `tick(now)` is one look; `start(every)` ticks on a thread until
    `stop()`. Every replica may run one: each run is claimed by exactly one of them."""

    def __init__(self, store: Store, resolvers: Mapping[str, Resolver] | None = None,
                 clock: Callable[[], float] = time.time, *,
                 specs: Mapping[str, SectionSpec] | None = None,
                 dispatch: Callable[[str], None] | None = None,
                 report: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.store, self.clock = store, clock
        # keyed "crm": answers a source's crm_query (deckgen/crm/query.py)
        self.resolvers: dict[str, Resolver] = dict(resolvers or {})
        self.specs = specs
        self.dispatch = dispatch  # Celery: send each new job to the broker
        self.report = report  # a run that could not fire is reported like a failed job
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, now: float | None = None) -> list[FiredRun]:
        now = self.clock() if now is None else now
        fired = []
        for schedule in self.store.due_schedules(now):
            try:
                run = self.fire(schedule, now)
            except Exception:  # noqa: BLE001 - one schedule must not stop the others
                log.exception("schedule %s could not be fired", schedule.id)
                continue
            if run is not None:
                fired.append(run)
        return fired

    def fire(self, schedule: Schedule, now: float) -> FiredRun | None:
        """Fire one due schedule, if no other replica has: its run, or None."""
        # counted from now, not from the slot that was due: missed slots fire once
        following = next_run(schedule.cron, schedule.timezone, now)
        requests: JobRequests = []
        error = None
        try:
            requests = self.requests(schedule)
        except DeckgenError as exc:
            error = {"code": exc.code, "message": exc.message}
        claimed = self.store.fire_schedule(schedule, following, requests, error, now=now)
        if claimed is None:
            return None
        run, job_ids = claimed
        if error is not None:
            log.warning("schedule %s (%s) did not fire: %s", schedule.id, schedule.name,
                        error["message"])
            if self.report is not None:
                self.report({"schedule_id": schedule.id, "job_id": None,
                             "presentation_id": None, "reason": error["message"],
                             "code": error["code"]})
        if self.dispatch is not None:
            for job_id in job_ids:
                self.dispatch(job_id)
        return FiredRun(schedule.id, run.due_at, run.batch_id, job_ids, error)

    def requests(self, schedule: Schedule) -> JobRequests:
        """The batch's jobs for a run: the source's briefs, then what the CRM resolver
        makes of its CRM entries."""
        source = schedule.source
        items = list(source.get("items", []))  # briefs, or records read when each job runs
        if "crm_query" in source:
            items += self._resolve(schedule)
        options = schedule.options
        sections = options.get("sections")
        progress = initial_progress(pick_sections(dict(self.specs), sections)) \
            if self.specs is not None else {}
        out: JobRequests = []
        for i, item in enumerate(items):
            try:
                check_item(item, f"items[{i}]", crm_allowed=True)
            except InvalidSchedule as exc:
                raise RunError(f"a deck of this run is not valid: {exc.message}") from None
            request = {"brief": item.get("brief"), "sections": sections,
                       "route": options.get("route", "auto"),
                       "keep_edits": bool(options.get("keep_edits")),
                       "target": "presentation", "presentation_id": item["presentation_id"],
                       "archive": bool(options.get("archive", True)),
                       "schedule_id": schedule.id}
            if "crm" in item:
                request["opportunity"] = {"crm": item["crm"], "id": item["opportunity_id"]}
            out.append((request, dict(progress), item["presentation_id"]))
        return out

    def _resolve(self, schedule: Schedule) -> list[dict[str, Any]]:
        resolver = self.resolvers.get("crm")
        if resolver is None:
            raise NoResolver("this schedule asks a CRM which decks to refresh (crm_query), "
                           "and no CRM resolver is configured on this server: nothing was "
                           "regenerated")
        try:
            return list(resolver(schedule, schedule.last_run_at))
        except DeckgenError as exc:
            raise RunError(f"the CRM records could not be read: {exc.message}") from None
        except Exception as exc:  # noqa: BLE001 - a resolver's failure fails its run only
            log.exception("the CRM resolver failed for schedule %s", schedule.id)
            raise RunError(f"the CRM records could not be read: {exc}") from None

    def start(self, every: float) -> None:
        """Tick now (a run missed while the service was down fires at once), then every
        `every` seconds, on a daemon thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(every,), daemon=True,
                                        name="deckgen-schedules")
        self._thread.start()

    def _loop(self, every: float) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except DeckgenError as exc:  # the store is away: tick again later
                log.warning("looking for due schedules failed: %s", exc.message)
            except Exception:  # noqa: BLE001 - the ticker outlives any one failure
                log.exception("looking for due schedules failed")
            self._stop.wait(every)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def make_ticker(store: Store, settings: ScheduleSettings, *,
                specs: Mapping[str, SectionSpec] | None = None,
                dispatch: Callable[[str], None] | None = None,
                crm: Resolver | None = None) -> ScheduleTicker:
    """The service's ticker: a `crm_query` answered by `crm` (deckgen/crm/query.py), runs
    that cannot fire reported to DECKGEN_SCHEDULE_REPORT_URL when it is set."""
    report = FailureReporter(settings.report_url).send if settings.report_url else None
    return ScheduleTicker(store, {"crm": crm} if crm else {}, specs=specs, dispatch=dispatch,
                          report=report)
