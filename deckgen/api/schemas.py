"""The shapes of the HTTP API: every request body a view accepts and every JSON body it
answers with, as pydantic v2 models. The views validate requests with them and serialise
answers through them, and `deckgen.api.openapi` builds /openapi.json from their JSON
Schemas, so the document cannot drift from what the code accepts and returns.

Why pydantic rather than apispec or spectree: pydantic was already installed and is the
validator (one set of classes both checks a body and describes it; apispec only describes,
so we would keep a second, hand-written validation that could drift again). Its JSON Schema
output (2020-12) is what OpenAPI 3.1 uses, so `models_json_schema` gives the components with
no translation. spectree would bring the same pydantic models plus its own decorators,
Flask plugin and error format; a short assembler over `app.url_map` (openapi.py) keeps our
one error body and checks that every served route is documented.

The brief keeps its own validator, `deckgen.brief.parse_brief` (per-field messages that the
Slides sidebar shows); here it is a JSON object with a hand-written schema for the document."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from deckgen.brief import (
    MARKABLE,
    MAX_CONTACTS,
    MAX_FACT,
    MAX_FACTS,
    MAX_METRIC_VALUE,
    MAX_METRICS,
    MAX_NOTES_BYTES,
    MAX_OPPORTUNITY,
    MAX_SHORT,
)
from deckgen.config import ROUTES

MAX_BATCH_ITEMS = 1000
# Google Drive / Slides file ids: letters, digits, "-" and "_" (44 characters today). Anything
# else (`t1?fields=*`, a "/", a NUL) would end up in a Google URL or in the per-deck lock.
GOOGLE_ID = r"^[A-Za-z0-9_-]+$"
MAX_GOOGLE_ID = 128

Route = Literal["local", "self-hosted", "openai", "auto"]
assert set(get_args(Route)) == set(ROUTES), "schemas.Route must list config.ROUTES"

GoogleId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_GOOGLE_ID,
                                            pattern=GOOGLE_ID)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=MAX_OPPORTUNITY,
                                         pattern=r"\S")]
Crm = Literal["salesforce", "hubspot"]
# Salesforce ids are 15 or 18 letters and digits, HubSpot's are digits; both providers check
# their own shape again before any call
OpportunityId = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                                 pattern=r"^[A-Za-z0-9]+$")]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=200,
                                                  pattern=r"^[\x21-\x7e]+$")]
# Two schemas the document defines itself (openapi.py turns this marker into a $ref): the
# sections a deck has come from prompts/sections.yaml, so their enum is filled in when the
# document is built, and the brief's is BRIEF_SCHEMA below.
COMPONENT = "x-deckgen-component"
SectionName = Annotated[str, WithJsonSchema({COMPONENT: "SectionName"})]
BriefBody = Annotated[dict[str, Any], WithJsonSchema({COMPONENT: "Brief"})]

_TEXT = {"type": "string", "maxLength": MAX_SHORT}
BRIEF_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["client"],
    "description": "What the rep knows about the opportunity; validated field by field "
                   "(an invalid_brief error names every bad field).",
    "properties": {
        "client": {"type": "string", "minLength": 1, "maxLength": MAX_SHORT},
        "industry": _TEXT,
        "opportunity": {"type": "string", "maxLength": MAX_OPPORTUNITY},
        "notes": {"type": "string", "maxLength": MAX_NOTES_BYTES},
        "contacts": {"type": "array", "maxItems": MAX_CONTACTS, "items": {
            "type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": {"type": "string", "minLength": 1, "maxLength": MAX_SHORT},
                           "role": _TEXT, "confidential": {"type": "boolean"}}}},
        "metrics": {"type": "object", "maxProperties": MAX_METRICS,
                    "additionalProperties": {"oneOf": [
                        {"type": "string", "maxLength": MAX_METRIC_VALUE},
                        {"type": "number"}]}},
        "facts": {"type": "array", "maxItems": MAX_FACTS,
                  "items": {"type": "string", "minLength": 1, "maxLength": MAX_FACT},
                  "description": "figures the firm stands behind, accepted as sources"},
        "confidential": {"oneOf": [
            {"type": "boolean"},
            {"type": "array", "items": {"type": "string", "enum": list(MARKABLE)}}],
            "description": "true, or the fields whose text must stay on our own hardware"},
    },
}

STRICT = ConfigDict(extra="forbid", strict=True)


# --- requests -----------------------------------------------------------------------------

class FillOptions(BaseModel):
    model_config = STRICT

    sections: list[SectionName] | None = Field(
        default=None, description="the sections to write; all of them when left out")
    route: Route = Field(default="auto", description="auto picks the configured model; local "
                         "(the embedded model) only where DECKGEN_ALLOW_LOCAL_ROUTE is on")


class JobRequest(FillOptions):
    """Fill one deck, from a brief or from a CRM opportunity (exactly one of the two).
    Exactly one target: presentation_id, template_id with title, or output "pptx"."""

    brief: BriefBody | None = None
    crm: Crm | None = Field(default=None, description="with opportunity_id: the CRM the "
                            "service reads the opportunity from")
    opportunity_id: OpportunityId | None = Field(
        default=None, description="the service reads the brief from this record and, once "
        "the deck is done, writes its link back onto it")
    presentation_id: GoogleId | None = None
    template_id: GoogleId | None = None
    title: Title | None = None
    output: Literal["pptx"] | None = None
    keep_edits: bool = False


class PreviewRequest(FillOptions):
    brief: BriefBody


class BatchItem(BaseModel):
    """A deck and its brief, or the CRM opportunity the service reads the brief from."""

    model_config = STRICT

    presentation_id: GoogleId
    brief: BriefBody | None = None
    crm: Crm | None = None
    opportunity_id: OpportunityId | None = None


class ResolveRequest(BaseModel):
    model_config = STRICT

    crm: Crm
    opportunity_id: OpportunityId


class BatchRequest(FillOptions):
    items: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)
    keep_edits: bool = False


class BatchUpload(BaseModel):
    """multipart/form-data: a CSV with a presentation_id column and either a `brief` column
    (JSON) or the brief's flat columns client, industry, opportunity, notes."""

    file: bytes
    route: Route = "auto"


# --- answers ------------------------------------------------------------------------------

class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class SectionState(BaseModel):
    """A section's progress in a job; finished sections carry route, tokens, fit, error."""

    model_config = ConfigDict(extra="allow")

    section: str
    state: str = Field(description="queued, running, done, failed or skipped")
    route: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    cached_tokens: int | None = Field(None, description="of prompt_tokens, those the model "
                                      "server's prefix cache served (0 where it does not say)")
    completion_tokens: int | None = None
    seconds: float | None = None
    retries: int | None = None
    failovers: int | None = None
    fit: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class QueuePlace(BaseModel):
    lane: Literal["interactive", "batch"]
    state: str
    stage: str | None = Field(description="while running: generate, generated (waits for "
                              "its write) or write")
    ahead: int | None = Field(description="jobs that go before it")
    paused: bool
    eta_seconds: float | None = Field(description="until done, from measured rates")


class JobView(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    batch_id: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    sections: list[SectionState]
    presentation_id: str | None
    url: str | None
    download: str | None
    warnings: list[Any]
    error: dict[str, Any] | None
    status: str | None = Field(default=None, description="when done: ok, or incomplete "
                               "(written, but a section overflows, had no box, or holds "
                               "claims the brief does not support); see summary")
    summary: str | None = Field(default=None, description="what is not right, in one line")
    queue: QueuePlace | None = Field(default=None, description="while queued or running: "
                                     "its lane, place in line and an estimate")
    opportunity: OpportunityRef | None = Field(default=None, description="the CRM record "
                                               "the brief came from")
    writeback: WritebackView | None = Field(default=None, description="the deck's link "
                                            "being written onto the CRM record")
    archive_id: str | None = Field(default=None, description="archive first: the Drive copy "
                                   "of the deck as it was before this job wrote it")


class OpportunityRef(BaseModel):
    crm: str
    id: str
    name: str | None = None
    stage: str | None = None
    url: str | None = None


class WritebackView(BaseModel):
    state: Literal["pending", "done", "failed"]
    attempts: int
    error: dict[str, Any] | None = None


class ResolvedBrief(BaseModel):
    crm: str
    opportunity_id: str
    name: str | None
    stage: str | None
    url: str | None
    brief: dict[str, Any]
    missing: list[str] = Field(description="optional brief fields the record had nothing for")


class CrmInfo(BaseModel):
    name: str
    label: str
    configured: bool


class CrmsView(BaseModel):
    crms: list[CrmInfo]


class WebhookAnswer(BaseModel):
    received: int = Field(description="events in the delivery")
    jobs: list[str] = Field(description="jobs started (or found again: idempotent per "
                            "opportunity and stage)")
    ignored: int = Field(description="events that are not a stage change deckgen acts on")


class BatchView(BaseModel):
    id: str
    total: int
    paused: bool = False
    counts: dict[str, int]
    eta_seconds: float | None
    items: list[JobView]
    retried: int | None = Field(default=None, description="only in a retry's answer")


class SectionPreview(BaseModel):
    """One generated section; the full record (timings, failovers, examples) rides along."""

    model_config = ConfigDict(extra="allow")

    section: str
    label: str
    status: str = Field(description="ok, ungrounded (written, claims marked) or failed")
    content: dict[str, Any] | None
    lines: list[str]
    route: str
    model: str
    prompt_tokens: int
    cached_tokens: int = Field(0, description="of prompt_tokens, those the model server's "
                               "prefix cache served")
    completion_tokens: int
    fit: dict[str, Any] | None
    error: dict[str, Any] | None


class PreviewView(BaseModel):
    brief: dict[str, Any]
    seconds: float
    sections: list[SectionPreview]


class SectionInfo(BaseModel):
    name: str
    label: str


class SectionsView(BaseModel):
    sections: list[SectionInfo]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    store: bool
    workers: bool = Field(description="the job workers of this process are running")
    routes: dict[str, dict[str, Any]]


def dump(model: type[BaseModel], data: Any) -> dict[str, Any]:
    """`data` checked against an answer's model, as JSON-ready data. Keys the data does not
    have stay absent (a queued section is just {section, state})."""
    return model.model_validate(data).model_dump(mode="json", exclude_unset=True)


# --- schedules (deckgen/api/schedules.py, deckgen/schedules.py) ----------------------------

class ScheduleItem(BaseModel):
    """A deck to regenerate: its brief, or the CRM opportunity the brief is read from."""

    model_config = STRICT

    presentation_id: GoogleId
    brief: BriefBody | None = None
    crm: Crm | None = None
    opportunity_id: OpportunityId | None = None


class ScheduleCrmQuery(BaseModel):
    """The decks of a CRM query, e.g. open opportunities changed since the last run."""

    model_config = ConfigDict(extra="allow", strict=True)

    crm: Crm
    changed_since_last_run: bool = False


class ScheduleSource(BaseModel):
    """Exactly one of `items` and `crm_query`."""

    model_config = STRICT

    items: list[ScheduleItem] | None = Field(default=None, min_length=1,
                                             max_length=MAX_BATCH_ITEMS)
    crm_query: ScheduleCrmQuery | None = None


class ScheduleRequest(FillOptions):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"\S")]
    cron: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description='five-field cron text: minute hour day-of-month month day-of-week, '
                    'e.g. "0 6 * * 1" (Mondays at 06:00)')
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        default="UTC", description="the IANA time zone the cron text is read in")
    source: ScheduleSource
    keep_edits: bool = False
    archive: bool = Field(default=True, description="copy each deck (Drive files.copy) before "
                          "updating it; a deck any section of which failed is left unchanged")


class ScheduleRunView(BaseModel):
    due_at: float
    fired_at: float
    batch_id: str | None = Field(description="the batch the run made; null when it could "
                                 "not fire (see error)")
    error: dict[str, Any] | None


class ScheduleView(BaseModel):
    id: str
    name: str
    cron: str
    timezone: str
    paused: bool
    next_run_at: float | None
    last_run_at: float | None
    created_at: float
    source: dict[str, Any]
    route: str
    sections: list[str] | None
    keep_edits: bool
    archive: bool
    runs: list[ScheduleRunView] | None = Field(default=None, description="the most recent "
                                               "runs, newest first (a single schedule's view)")


class ScheduleList(BaseModel):
    schedules: list[ScheduleView]
