"""Write-back: a finished job's deck link (status, what to check, flagged claims) lands on
its opportunity record, retried until the CRM takes it.

The store's `writebacks` table is the outbox: the job's finishing transaction adds the row,
so nothing is owed only in memory. `Outbox.run_due()` leases each due row (one replica
wins), calls the tenant's provider, and settles it: done; pending again after a back-off
when the CRM is away (honouring its retry-after); failed for good when the record is gone
or the CRM user may not update it, or after a day of trying. A thread
in each service process runs it every few seconds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deckgen.crm import DeckLink
from deckgen.crm.errors import CrmError, CrmUnavailable
from deckgen.errors import DeckgenError
from deckgen.store import Job, JobNotFound, Store, Writeback

if TYPE_CHECKING:
    from deckgen.crm.directory import CrmDirectory

__all__ = ["Outbox", "deck_link"]

log = logging.getLogger("deckgen.crm")
LEASE = 120.0  # seconds one attempt holds its row; a crashed attempt is retried after it
FIRST_RETRY = 5.0
MAX_RETRY = 600.0


def flagged_claims(job: Job) -> tuple[str, ...]:
    claims: list[str] = []
    for progress in job.progress.values():
        grounding = progress.get("grounding") or {}
        if grounding.get("action") != "flagged":
            continue
        for claim in grounding.get("claims") or []:
            text = claim.get("text") if isinstance(claim, dict) else claim
            if text:
                claims.append(f"{progress['section']}: {text}")
    return tuple(claims)


def deck_link(job: Job, public_url: str | None) -> DeckLink | None:
    """What the record gets for a finished job; None when there is no deck to link (a
    .pptx job on a server with no DECKGEN_PUBLIC_URL, or a job that wrote nothing)."""
    result = job.result or {}
    url = result.get("url")
    if not url and result.get("download") and public_url:
        url = public_url + result["download"]
    if not url:
        return None
    status = result.get("status") or ("ok" if job.state == "done" else "failed")
    return DeckLink(url, status, result.get("summary") or None, flagged_claims(job))


class Outbox:
    def __init__(self, store: Store, directory: CrmDirectory, public_url: str | None = None,
                 max_age: float = 24 * 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.directory = store, directory
        self.public_url, self.max_age, self.clock = public_url, max_age, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self) -> int:
        """Attempt every due write-back this process wins the lease of; how many."""
        done = 0
        for wb in self.store.due_writebacks(self.clock()):
            if self.store.lease_writeback(wb, LEASE, self.clock()):
                self.attempt(wb)
                done += 1
        return done

    def attempt(self, wb: Writeback) -> None:
        try:
            job = self.store.get_job(wb.job_id)
        except JobNotFound:  # purged meanwhile: nothing left to link
            self.store.settle_writeback(wb.job_id, "failed", _error("job_gone", "the job "
                                                                    "was purged"))
            return
        link = deck_link(job, self.public_url)
        if link is None:
            self.store.settle_writeback(wb.job_id, "failed", _error(
                "no_link", "the job has no deck to link (a .pptx needs DECKGEN_PUBLIC_URL)"))
            return
        try:
            self.directory.provider(wb.crm, wb.owner).write_back(wb.opportunity_id, link)
        except CrmUnavailable as exc:
            self._retry(wb, job, exc.to_dict(), exc.retry_after)
        except CrmError as exc:  # not found, forbidden, not configured: trying again won't help
            log.warning("write-back of %s to %s %s failed for good: %s", wb.job_id, wb.crm,
                        wb.opportunity_id, exc.message)
            self.store.settle_writeback(wb.job_id, "failed", exc.to_dict())
        except DeckgenError as exc:
            self._retry(wb, job, exc.to_dict(), None)
        except Exception as exc:  # noqa: BLE001 - a client bug must not stop the outbox
            log.exception("write-back of %s crashed", wb.job_id)
            self._retry(wb, job, _error("internal_error", str(exc)), None)
        else:
            self.store.settle_writeback(wb.job_id, "done")

    def _retry(self, wb: Writeback, job: Job, error: dict[str, Any],
               retry_after: float | None) -> None:
        now = self.clock()
        if now - (job.finished_at or now) > self.max_age:
            self.store.settle_writeback(wb.job_id, "failed", error)
            return
        wait = min(MAX_RETRY, FIRST_RETRY * 2 ** max(0, wb.attempts))
        self.store.settle_writeback(wb.job_id, "pending", error,
                                    retry_at=now + max(wait, retry_after or 0.0))

    def start(self, every: float = 2.0) -> None:
        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    self.run_due()
                except Exception:  # noqa: BLE001 - e.g. the store away: next round
                    log.exception("write-back round failed")

        self._thread = threading.Thread(target=loop, name="deckgen-writeback", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}
