"""The one use case: fill this template from this brief, with these sections, on this route.

Every door (the CLI, the preview view, the job worker, the Celery task) builds a
FillRequest and calls `Filler`; none of them opens a template, measures a box, generates or
writes on its own. The work has three steps so a door can act between them (the job runner
records generations and honours a cancel before writing):

1. `prepare`: open and check the template before any model time (a missing deck, no access,
   a bad file or a template with no marks fails here), measure its boxes, and leave out the
   sections that have no box (said once, in the outcome);
2. `generate`: the sections, concurrently, each fitted to its box;
3. `write`: one atomic Slides batchUpdate, or a .pptx saved atomically.

`Filled.status` is the honest summary the doors report: "ok" only when every requested
section was written and fits its box."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deckgen.archive import archive_first
from deckgen.boxes import Box
from deckgen.brief import Brief
from deckgen.content import DeckContent
from deckgen.deck import Generator, Progress, generate_deck
from deckgen.errors import ConfigError, TemplateError
from deckgen.guard import describe
from deckgen.quotas import MemoryQuota, WriteLimits, WriteQuota
from deckgen.sections import SectionSpec, pick_sections
from deckgen.writers.marks import TemplateCheck, check_pptx_template, check_slides_template
from deckgen.writers.pptx import write_pptx
from deckgen.writers.slides import (
    SlidesWriter,
    deck_url,
    service_account_credentials,
    user_credentials,
)


@dataclass(frozen=True)
class PptxTarget:
    """Write a .pptx at `out`, from `template` (default: the built-in one)."""

    out: Path
    template: Path | None = None


@dataclass(frozen=True)
class SlidesTarget:
    """Fill the Google Slides deck `presentation_id`, or a copy of `template_id` titled
    `title`, acting as the person whose OAuth token is `user_token` (else the service
    account)."""

    presentation_id: str | None = None
    template_id: str | None = None
    title: str | None = None
    keep_edits: bool = False
    user_token: str | None = None
    # archive first (deckgen/archive.py): copy the deck before writing it, into this Drive
    # folder (else beside it); a section that failed leaves the deck untouched
    archive: bool = False
    archive_folder: str | None = None


@dataclass(frozen=True)
class PreviewTarget:
    """Write nothing: generate against the boxes of `template` (default: the built-in one)."""

    template: Path | None = None


Target = PptxTarget | SlidesTarget | PreviewTarget


@dataclass
class FillRequest:
    brief: Brief
    target: Target
    sections: list[str] | None = None  # None: every section of sections.yaml
    route: str = "auto"
    fit: bool = True  # fit each section to its box; False measures nothing
    exclude_case: str | None = None  # eval: leave this solved case out of the examples
    sources: bool = True  # each item's supporting words from the brief in the speaker notes


@dataclass
class Prepared:
    """A request whose template was opened and checked, ready for model time."""

    request: FillRequest
    specs: list[SectionSpec]  # the sections to generate: requested, and marked
    boxes: dict[str, Box]
    skipped: list[str]  # requested, but the template has no box for them
    writer: SlidesWriter | None = None
    check: TemplateCheck | None = None  # what the template holds: marks, where, unknowns


@dataclass
class Filled:
    deck: DeckContent
    path: str = ""  # the .pptx path or the deck's URL; "" for a preview
    presentation_id: str | None = None
    skipped: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # tokens that name nothing: visible
    where: dict[str, str] = field(default_factory=dict)  # box key -> box|cell|group|inline...
    warnings: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    api_calls: int = 0
    feedback: list[dict[str, str]] = field(default_factory=list)
    archive_id: str | None = None  # the copy of the deck as it was before this write

    @property
    def overflowing(self) -> list[str]:
        return [s.section for s in self.deck.sections
                if s.status != "failed" and s.fit and (s.fit.get("overflows") or
                                                   (s.fit.get("title") or {}).get("overflows"))]

    @property
    def status(self) -> str:
        """"failed": a section could not be generated; "incomplete": everything generated was
        written, but a section still overflows its box, had no box, or holds claims the brief
        does not support (marked); "ok": all of it."""
        if not self.deck.ok:
            return "failed"
        return "incomplete" if (self.skipped or self.overflowing or self.unknown
                                or self.deck.flagged) else "ok"

    def summary(self) -> str:
        """One line naming what is not right, or "" when the status is ok."""
        parts = []
        failed = [s.section for s in self.deck.sections if s.status == "failed"]
        if failed:
            parts.append("failed: " + ", ".join(failed))
        for s in self.deck.flagged:
            parts.append(f"{s.section} {describe(s.grounding)}")
        if self.overflowing:
            parts.append("still overflows its box: " + ", ".join(self.overflowing))
        if self.skipped:
            parts.append("no box in the template (not generated): " + ", ".join(self.skipped))
        if self.unknown:
            parts.append("unknown tokens left visible: " + "; ".join(self.unknown))
        return "; ".join(parts)


class SlidesAccess:
    """Who writes to Google Slides: the caller's own OAuth token, else the service account;
    and the shared write quota (deckgen/quotas.py: 60 writes a minute per principal, 600
    per project) every write takes a slot from.

    The job runner's write stage calls `reserve` (never waits) and writes only once it has
    a slot; `pace`, called by `Filler.write`, then spends that slot. A door that writes
    one deck in its own thread (the CLI) has no slot reserved, so `pace` waits for one.
    When Google answers 429 (or 5xx) the writer's back-off holds the principal in the
    shared quota for as long, so no other process writes as it meanwhile."""

    SERVICE_ACCOUNT = "service-account"

    def __init__(self, credentials_file: str | None, slides_endpoint: str | None,
                 drive_endpoint: str | None, writes_per_minute: int = 60,
                 quota: WriteQuota | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.credentials_file = credentials_file
        self.slides_endpoint, self.drive_endpoint = slides_endpoint, drive_endpoint
        self.writes_per_minute = writes_per_minute
        self.quota = quota or MemoryQuota(WriteLimits(per_principal=writes_per_minute))
        self.sleep = sleep
        self._local = threading.local()  # this thread's reserved slot and principal

    @classmethod
    def principal_of(cls, user_token: str | None, owner: str | None = None) -> str:
        """Whose quota a write counts against: the person (their owner id, which outlives
        an hour-long token), else the service account."""
        if not user_token:
            return cls.SERVICE_ACCOUNT
        if owner:
            return owner
        return "token:" + hashlib.sha256(user_token.encode()).hexdigest()[:16]

    def writer(self, user_token: str | None) -> SlidesWriter:
        if user_token:
            credentials = user_credentials(user_token)
        elif self.credentials_file:
            credentials = service_account_credentials(self.credentials_file)
        else:
            raise ConfigError("to write into Google Slides set DECKGEN_GOOGLE_TOKEN (a user's "
                              "OAuth access token) or GOOGLE_APPLICATION_CREDENTIALS (a service "
                              "account key file)")
        fallback = self.principal_of(user_token)

        def back_off(seconds: float) -> None:
            principal = getattr(self._local, "principal", None) or fallback
            self.quota.hold(principal, seconds)
            self.sleep(seconds)

        return SlidesWriter(credentials, slides_endpoint=self.slides_endpoint,
                            drive_endpoint=self.drive_endpoint, sleep=back_off)

    def reserve(self, principal: str, batch: bool = False) -> float:
        """Take a write slot for this thread's next write as `principal` and return 0, or
        take nothing and return the seconds until one frees up. Never waits. A batch write
        leaves the headroom kept for people's interactive writes."""
        wait = self.quota.try_acquire(principal, batch)
        self._local.principal = principal
        self._local.slot = wait <= 0
        return wait

    def forget(self) -> None:
        """This thread's write is over: an unspent slot is dropped (the count stays on the
        safe side) and later back-offs are no longer charged to its principal."""
        self._local.principal, self._local.slot = None, False

    def pace(self, user_token: str | None) -> float:
        """Before a write: spend this thread's reserved slot, or wait for one (a door with
        no scheduler: the CLI). The seconds waited."""
        if getattr(self._local, "slot", False):
            self._local.slot = False
            return 0.0
        principal = self.principal_of(user_token)
        waited = 0.0
        while (wait := self.quota.try_acquire(principal)) > 0:
            self.sleep(wait)
            waited += wait
        return waited


class Filler:
    def __init__(self, generator: Generator, slides: SlidesAccess | None = None) -> None:
        self.generator = generator
        self.slides = slides
        self._default_check: TemplateCheck | None = None

    def prepare(self, request: FillRequest) -> Prepared:
        """Open and check the template, before any model time."""
        chosen = pick_sections(self.generator.specs, request.sections)
        names = list(self.generator.specs)  # every known section: a valid mark is not unknown
        target = request.target
        writer = None
        if isinstance(target, SlidesTarget):
            if self.slides is None:
                raise ConfigError("this deckgen has no Google Slides access configured")
            if target.template_id and not target.title:
                raise ConfigError("copying a template needs a title for the new deck")
            writer = self.slides.writer(target.user_token)
            # the deck (or the template it will be copied from) is read first: no access
            # fails early, and its boxes set how much each section may say
            source = target.presentation_id or target.template_id
            if not source:
                raise ConfigError("give the deck to fill or the template to copy")
            check = check_slides_template(writer.read(source), names)
            name = f"the deck {source}"
        else:
            check = self._pptx_check(target.template, names)
            name = f"the template {target.template.name if target.template else 'default.pptx'}"
        marked = set(check.sections_marked)
        specs = [s for s in chosen if s.name in marked]
        skipped = [s.name for s in chosen if s.name not in marked]
        if not specs:
            raise TemplateError(f"{name} has no box for the sections asked for "
                                f"({', '.join(skipped)}); it marks {', '.join(sorted(marked))}")
        return Prepared(request, specs, check.boxes if request.fit else {}, skipped, writer,
                        check)

    def _pptx_check(self, template: Path | None, names: list[str]) -> TemplateCheck:
        if template is not None:
            return check_pptx_template(template, names)
        if self._default_check is None:  # the built-in template: read once (previews)
            self._default_check = check_pptx_template(None, names)
        return self._default_check

    def generate(self, prepared: Prepared, on_progress: Progress | None = None) -> DeckContent:
        request = prepared.request
        return generate_deck(self.generator, request.brief, prepared.specs, request.route,
                             on_progress=on_progress, exclude_case=request.exclude_case,
                             boxes=prepared.boxes)

    def write(self, prepared: Prepared, deck: DeckContent,
              on_copied: Callable[[str], None] | None = None) -> Filled:
        """Write the deck. A section that failed keeps its token in the deck and is named
        in the warnings; `on_copied` hears the id of a deck copied from a template."""
        target = prepared.request.target
        check = prepared.check
        filled = Filled(deck, skipped=list(prepared.skipped),
                        unknown=list(check.unknown) if check else [],
                        where=dict(check.where) if check else {},
                        warnings=[f"{name}: the template has no box marked {{{{{name}}}}}; "
                                  "not generated" for name in prepared.skipped]
                        + deck.fit_warnings())
        filled.warnings += [f"unknown token {u}" for u in filled.unknown]
        if isinstance(target, PreviewTarget):
            return filled
        if isinstance(target, PptxTarget):
            report = write_pptx(deck, target.out, target.template,
                                section_names=list(self.generator.specs),
                                sources=prepared.request.sources)
            filled.path = str(target.out)
            filled.warnings += [w for w in report.warnings
                                if "no box marked" not in w and not w.startswith("unknown")]
            return filled
        writer = prepared.writer
        assert writer is not None and self.slides is not None
        presentation_id = target.presentation_id
        if not presentation_id:
            assert target.template_id and target.title
            presentation_id = writer.copy_template(target.template_id, target.title)
            if on_copied:
                on_copied(presentation_id)
        with archive_first(writer, presentation_id, deck, target.archive_folder,
                           enabled=target.archive and bool(target.presentation_id)) as archived:
            self.slides.pace(target.user_token)
            slides = writer.write(presentation_id, deck, keep_edits=target.keep_edits,
                                  sources=prepared.request.sources)
        filled.archive_id = archived
        filled.path, filled.presentation_id = deck_url(slides.presentation_id), \
            slides.presentation_id
        filled.warnings += [w for w in slides.warnings if "no box marked" not in w]
        filled.kept, filled.api_calls = slides.kept, slides.api_calls
        filled.feedback = slides.feedback
        return filled

    def fill(self, request: FillRequest, on_progress: Progress | None = None) -> Filled:
        prepared = self.prepare(request)
        return self.write(prepared, self.generate(prepared, on_progress))

    def preview(self, brief: Brief, sections: list[str] | None, route: str) -> DeckContent:
        prepared = self.prepare(FillRequest(brief, PreviewTarget(), sections, route))
        return self.generate(prepared)


def outcome_view(filled: Filled) -> dict[str, Any]:
    """The outcome as the API and the job store report it, beside each section's progress."""
    return {"status": filled.status, "summary": filled.summary(), "skipped": filled.skipped,
            "overflowing": filled.overflowing, "unknown_tokens": filled.unknown,
            "boxes": filled.where, "warnings": filled.warnings}
