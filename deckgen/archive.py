"""Archive first, for decks regenerated on a schedule: never a half-updated deck.

Before a job whose request says `archive: true` writes a Google Slides deck, the deck as it
is now is copied with Drive `files.copy` ("<title> (archived <UTC time>)", into
DECKGEN_ARCHIVE_FOLDER_ID when set). If any section of the new version failed, nothing is
copied or written: the job fails with `left_unchanged`. If the write fails (the Slides
batchUpdate is atomic, so the deck is as it was), the copy is deleted (`files.delete`) and
the job fails. Only a written deck keeps its archive, and the job's result names it.

A scheduled job that fails is reported: its schedule, job, deck, reason and code are POSTed
as JSON to DECKGEN_SCHEDULE_REPORT_URL, retried a few times with tenacity on a thread of its
own, so a receiver that is down never holds or breaks a worker.

The settings of scheduled regeneration (these two and DECKGEN_SCHEDULE_TICK, the ticker's
period) are read here once, into `ScheduleSettings`."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from google.auth.exceptions import RefreshError
from googleapiclient.errors import HttpError
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from deckgen.content import DeckContent
from deckgen.errors import DeckgenError
from deckgen.writers.slides import SlidesWriter

log = logging.getLogger("deckgen.archive")

REPORT_ATTEMPTS = 4  # a report is sent at most this many times
REPORT_TIMEOUT = 10.0  # seconds one report request may take
DRIVE_RETRIES = 3  # googleapiclient's own retries of 429 / 5xx on the archive's Drive calls


class LeftUnchanged(DeckgenError):
    """A section of the new version failed, so the deck was not touched."""

    code = "left_unchanged"
    http_status = 502


class ArchiveError(DeckgenError):
    """The deck could not be archived, so it was not written."""

    code = "archive_failed"
    http_status = 502


def _drive(request: Any, what: str) -> Any:
    try:
        return request.execute(num_retries=DRIVE_RETRIES)
    except RefreshError as exc:
        raise ArchiveError(f"Google refused the credentials for {what}: {exc}") from None
    except HttpError as exc:
        try:
            message = json.loads(exc.content)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason or ""
        raise ArchiveError(f"Google Drive answered HTTP {exc.resp.status} for {what}: "
                           f"{message}") from None


def archive_name(title: str, now: float) -> str:
    when = dt.datetime.fromtimestamp(now, dt.UTC).replace(microsecond=0)
    return f"{title} (archived {when.isoformat().replace('+00:00', 'Z')})"


def copy_deck(writer: SlidesWriter, presentation_id: str, folder_id: str | None,
              now: float) -> str:
    """Copy the deck as it is now; the copy's id."""
    title = writer.read(presentation_id).get("title") or presentation_id
    body: dict[str, Any] = {"name": archive_name(title, now)}
    if folder_id:
        body["parents"] = [folder_id]
    copied = _drive(writer.drive.files().copy(fileId=presentation_id, body=body,
                                              supportsAllDrives=True, fields="id"),
                    f"archiving the deck {presentation_id}")
    return str(copied["id"])


def discard(writer: SlidesWriter, archive_id: str) -> bool:
    """Delete an archive copy; False (logged) when it could not be."""
    try:
        _drive(writer.drive.files().delete(fileId=archive_id, supportsAllDrives=True),
               f"the archive copy {archive_id}")
        return True
    except ArchiveError as exc:
        log.warning("the archive copy %s is left behind: %s", archive_id, exc.message)
        return False


@contextmanager
def archive_first(writer: SlidesWriter, presentation_id: str, deck: DeckContent,
                  folder_id: str | None, enabled: bool = True,
                  clock: Callable[[], float] = time.time) -> Iterator[str | None]:
    """Around a deck's write: refuse it when a section failed (LeftUnchanged), else copy the
    deck first and yield the copy's id; a write that raises deletes the copy. Yields None
    and does nothing when not `enabled`."""
    if not enabled:
        yield None
        return
    failed = [s.section for s in deck.sections if s.status == "failed"]
    if failed:
        raise LeftUnchanged(f"the deck {presentation_id} was left unchanged: sections failed: "
                            f"{', '.join(failed)}", details={"sections": failed})
    archive_id = copy_deck(writer, presentation_id, folder_id, clock())
    try:
        yield archive_id
    except BaseException:
        discard(writer, archive_id)
        raise


class ReportRejected(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, ReportRejected):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, OSError)  # refused, reset, timed out (URLError is an OSError)


class FailureReporter:
    """POSTs `{schedule_id, job_id, presentation_id, reason, code}` for each failed scheduled
    job (and each run that could not fire) to one URL, in the background."""

    def __init__(self, url: str, attempts: int = REPORT_ATTEMPTS,
                 backoff: float = 0.5) -> None:
        self.url, self.attempts, self.backoff = url, attempts, backoff

    def job_finished(self, job: Any) -> None:
        """A JobRunner `on_finish` hook: report the job if it is scheduled and failed."""
        schedule_id = (job.request or {}).get("schedule_id")
        if job.state != "failed" or not schedule_id:
            return
        error = job.error or {}
        self.send({"schedule_id": schedule_id, "job_id": job.id,
                   "presentation_id": job.presentation_id,
                   "reason": error.get("message", "the job failed"),
                   "code": error.get("code", "failed")})

    def send(self, report: dict[str, Any]) -> threading.Thread:
        thread = threading.Thread(target=self.deliver, args=(report,), daemon=True,
                                  name="deckgen-report")
        thread.start()
        return thread

    def deliver(self, report: dict[str, Any]) -> bool:
        """Send one report now, retrying; True once the receiver took it. Never raises."""
        try:
            for attempt in Retrying(
                    stop=stop_after_attempt(self.attempts), reraise=False,
                    wait=wait_exponential(multiplier=self.backoff, max=30),
                    retry=retry_if_exception(_retryable)):
                with attempt:
                    self._post(report)
            return True
        except RetryError as exc:
            log.warning("the failure report for %s did not reach %s: %s",
                        report.get("job_id") or report.get("schedule_id"), self.url,
                        exc.last_attempt.exception())
        except Exception as exc:  # noqa: BLE001 - a report never breaks a worker
            log.warning("the failure report for %s was refused by %s: %s",
                        report.get("job_id") or report.get("schedule_id"), self.url, exc)
        return False

    def _post(self, report: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self.url, data=json.dumps(report).encode(), method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "deckgen"})
        try:
            with urllib.request.urlopen(request, timeout=REPORT_TIMEOUT) as answer:
                answer.read()
        except urllib.error.HTTPError as exc:
            raise ReportRejected(exc.code) from None
