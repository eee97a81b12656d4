"""Writing DeckContent into a Google Slides deck: one read, one atomic batchUpdate.

A section's box is found by its alt-text tag (`deckgen:current_state`, in the shape's
description) or, on first fill, by a `{{current_state}}` token (deckgen/writers/marks.py: in
a shape, a placeholder, a group, a table cell, inline in a paragraph or in the speaker
notes); a token that owns its shape gets the tag, so every regeneration finds the same box
even after its text was replaced. The tag also carries a fingerprint of the text deckgen wrote
(`deckgen:current_state #1a2b3c4d5e6f`): when a request asks to keep edits, a box whose text
no longer matches its fingerprint was edited by a person and is left alone.

The deck is read once (`presentations.get` with a fields mask), the edits are planned, and
sent as one `presentations.batchUpdate` with `writeControl.requiredRevisionId` from the read,
so a deck is never half-written and a concurrent human edit is never overwritten blindly: on
a revision conflict the deck is read and the edits re-planned (bounded). The same batch puts
each filled section's sources into its slide's speaker notes (slides_notes.py).

This module holds the SlidesWriter and its HTTP (retries, Google's errors in plain words,
credentials); finding the boxes and building the requests is slides_plan.py."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from google.auth.exceptions import RefreshError
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from deckgen.content import DeckContent
from deckgen.errors import DeckgenError
from deckgen.writers.slides_plan import (
    BULLET_PRESET,
    HOW_TO_MARK,
    SLIDES_INSET,
    TAG,
    SlidesReport,
    Target,
    deck_boxes,
    deck_url,
    element_box,
    find_targets,
    fingerprint,
    plan_edits,
)

__all__ = ["BULLET_PRESET", "CONFLICT_RETRIES", "FIELDS", "HOW_TO_MARK", "SCOPES",
           "SLIDES_INSET", "TAG", "DeckAccessDenied", "DeckNotFound", "GoogleAuthError",
           "SlidesError", "SlidesReport", "SlidesWriter", "Target", "deck_boxes", "deck_url",
           "element_box", "find_targets", "fingerprint", "plan_edits",
           "service_account_credentials", "user_credentials"]

SCOPES = ["https://www.googleapis.com/auth/presentations",
          "https://www.googleapis.com/auth/drive"]
FIELDS = ("presentationId,revisionId,title,slides(objectId,pageElements(objectId,title,"
          "description,size,transform,shape(shapeType,placeholder,text),table,elementGroup),"
          "slideProperties(notesPage(notesProperties,pageElements(objectId,"
          "shape(shapeType,placeholder,text)))))")
CONFLICT_RETRIES = 3


class SlidesError(DeckgenError):
    code = "google_error"
    http_status = 502


class DeckNotFound(SlidesError):
    code = "deck_not_found"
    http_status = 404


class DeckAccessDenied(SlidesError):
    code = "deck_access_denied"
    http_status = 403


class GoogleAuthError(SlidesError):
    code = "google_auth_failed"
    http_status = 401


def _google_error(exc: HttpError, what: str) -> DeckgenError:
    status = int(exc.resp.status)
    try:
        message = json.loads(exc.content)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = exc.reason or str(status)
    if status == 401:
        return GoogleAuthError(f"Google refused the credentials for {what} (expired or revoked "
                               f"token): sign in again or renew the token. ({message})")
    if status == 403:
        return DeckAccessDenied(f"no edit access to {what}: share it with the signed-in user "
                                f"or the service account as an editor. ({message})")
    if status == 404:
        return DeckNotFound(f"{what} does not exist, or is not visible to these credentials. "
                            f"({message})")
    return SlidesError(f"Google answered HTTP {status} for {what}: {message}")


def _is_conflict(exc: HttpError) -> bool:
    return int(exc.resp.status) == 400 and b"revision" in (exc.content or b"").lower()


class SlidesWriter:
    """Fills decks through the Slides and Drive APIs with one set of credentials."""

    def __init__(self, credentials: Any, *, slides_endpoint: str | None = None,
                 drive_endpoint: str | None = None, retries: int = 4,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        def service(name: str, version: str, endpoint: str | None) -> Any:
            options = {"api_endpoint": endpoint} if endpoint else None
            return build(name, version, credentials=credentials, client_options=options,
                         static_discovery=True, cache_discovery=False)

        self.slides = service("slides", "v1", slides_endpoint)
        self.drive = service("drive", "v3", drive_endpoint)
        self.retries = retries
        self.sleep = sleep
        self.calls = 0

    def _execute(self, request: Any, what: str) -> Any:
        """Run one API call, retrying 429 and 5xx with exponential backoff."""
        for attempt in range(self.retries + 1):
            self.calls += 1
            try:
                return request.execute(num_retries=0)
            except RefreshError as exc:
                # google-auth answers a 401 by trying to refresh a token it cannot refresh
                raise GoogleAuthError(f"Google refused the credentials for {what} (expired or "
                                      f"revoked token): sign in again. ({exc})") from None
            except HttpError as exc:
                status = int(exc.resp.status)
                if (status == 429 or status >= 500) and attempt < self.retries:
                    after = exc.resp.get("retry-after")
                    self.sleep(max(float(after) if after else 0.0, 0.5 * 2 ** attempt))
                    continue
                if _is_conflict(exc):
                    raise
                raise _google_error(exc, what) from None
        raise AssertionError("unreachable")

    def copy_template(self, template_id: str, title: str) -> str:
        """A new deck copied from a template (Drive files.copy); returns its id."""
        copied = self._execute(
            self.drive.files().copy(fileId=template_id, body={"name": title},
                                    supportsAllDrives=True, fields="id,name"),
            f"the template {template_id}")
        return str(copied["id"])

    def read(self, presentation_id: str) -> dict[str, Any]:
        return dict(self._execute(
            self.slides.presentations().get(presentationId=presentation_id, fields=FIELDS),
            f"the deck {presentation_id}"))

    def write(self, presentation_id: str, deck: DeckContent, keep_edits: bool = False,
              sources: bool = True) -> SlidesReport:
        """Fill the deck in one atomic batchUpdate; `sources`: each filled slide's speaker
        notes list the brief's words behind each item (the rep's own notes stay)."""
        start_calls = self.calls
        conflicts = 0
        while True:
            presentation = self.read(presentation_id)
            requests, report = plan_edits(presentation, deck, keep_edits, sources)
            if not requests:
                report.api_calls = self.calls - start_calls
                return report
            body = {"requests": requests,
                    "writeControl": {"requiredRevisionId": presentation["revisionId"]}}
            try:
                reply = self._execute(self.slides.presentations().batchUpdate(
                    presentationId=presentation_id, body=body), f"the deck {presentation_id}")
            except HttpError as exc:  # only revision conflicts reach here
                conflicts += 1
                if conflicts > CONFLICT_RETRIES:
                    raise SlidesError(
                        f"the deck {presentation_id} kept changing while deckgen wrote to it "
                        f"({conflicts} revision conflicts); try again when it is quiet") from exc
                continue
            report.revision_id = reply.get("writeControl", {}).get("requiredRevisionId", "")
            report.conflicts = conflicts
            report.api_calls = self.calls - start_calls
            return report


def user_credentials(access_token: str) -> Any:
    """Act as the user, with the OAuth access token their Apps Script session passed."""
    from google.oauth2.credentials import Credentials

    return Credentials(token=access_token)


def service_account_credentials(path: str) -> Any:
    from google.oauth2 import service_account

    try:
        return service_account.Credentials.from_service_account_file(path, scopes=SCOPES)
    except (OSError, ValueError) as exc:
        raise GoogleAuthError(f"cannot load the service account key {path}: {exc}") from None
