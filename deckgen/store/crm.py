"""The CRM door's records: the deck links owed to opportunity records (`writebacks`, an
outbox: a row is added in the transaction that finishes its job, so a crash loses none,
and each attempt is leased with a compare-and-set so one replica makes it), the deck each
opportunity has (`crm_decks`), and the webhook deliveries already taken (`webhook_events`,
so a replayed delivery is refused)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from deckgen.store.database import Cursor, Tables, unstorable

__all__ = ["CrmTables", "Writeback", "owe_writeback"]

WRITEBACK_STATES = ("pending", "done", "failed")


@dataclass(frozen=True)
class Writeback:
    job_id: str
    owner: str
    crm: str
    opportunity_id: str
    state: str
    attempts: int
    next_at: float
    error: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Writeback:
        return cls(row["job_id"], row["owner"], row["crm"], row["opportunity_id"],
                   row["state"], int(row["attempts"]), float(row["next_at"]),
                   json.loads(row["error"]) if row["error"] else None)

    def view(self) -> dict[str, Any]:
        out = {"state": self.state, "attempts": self.attempts}
        if self.error:
            out["error"] = self.error
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def owe_writeback(cur: Cursor, job_id: str, owner: str, request: dict[str, Any],
                  result: dict[str, Any] | None, now: float) -> None:
    """Inside the transaction that finishes a job: when the job came from an opportunity,
    its record is owed the deck's link (once: a job finishes once), and the opportunity's
    deck is remembered for the next stage or schedule."""
    opportunity = request.get("opportunity")
    if not isinstance(opportunity, dict):
        return
    deck = (result or {}).get("presentation_id")
    if deck:
        cur.execute("INSERT INTO crm_decks (owner, crm, opportunity_id, presentation_id, "
                    "updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (owner, crm, "
                    "opportunity_id) DO UPDATE SET presentation_id = excluded.presentation_id, "
                    "updated_at = excluded.updated_at",
                    (owner, opportunity["crm"], opportunity["id"], deck, now))
    cur.execute("INSERT INTO writebacks (job_id, owner, crm, opportunity_id, state, attempts, "
                "next_at, created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?) "
                "ON CONFLICT (job_id) DO NOTHING",
                (job_id, owner, opportunity["crm"], opportunity["id"], now, now, now))


class CrmTables(Tables):
    def writeback(self, job_id: str) -> Writeback | None:
        if unstorable(job_id):
            return None
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT * FROM writebacks WHERE job_id = ?", (job_id,))
            row = cur.fetchone()
        return Writeback.from_row(row) if row else None

    def due_writebacks(self, now: float | None = None, limit: int = 20) -> list[Writeback]:
        now = time.time() if now is None else now
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT * FROM writebacks WHERE state = 'pending' AND next_at <= ? "
                        "ORDER BY next_at LIMIT ?", (now, limit))
            return [Writeback.from_row(r) for r in cur.fetchall()]

    def lease_writeback(self, wb: Writeback, lease: float, now: float | None = None) -> bool:
        """Take one attempt at a due write-back: True for exactly one caller, whichever
        replica it runs on (the row's next_at moves past the lease, so a crashed attempt is
        tried again after it)."""
        now = time.time() if now is None else now
        with self.tx() as cur:
            cur.execute("UPDATE writebacks SET next_at = ?, attempts = attempts + 1, "
                        "updated_at = ? WHERE job_id = ? AND state = 'pending' "
                        "AND next_at = ?", (now + lease, now, wb.job_id, wb.next_at))
            return bool(cur.rowcount)

    def settle_writeback(self, job_id: str, state: str, error: dict[str, Any] | None = None,
                         retry_at: float | None = None) -> None:
        """done; failed for good; or pending again at `retry_at` after a passing failure."""
        assert state in WRITEBACK_STATES
        now = time.time()
        with self.tx() as cur:
            cur.execute("UPDATE writebacks SET state = ?, error = ?, next_at = ?, "
                        "updated_at = ? WHERE job_id = ?",
                        (state, json.dumps(error) if error else None,
                         retry_at if retry_at is not None else now, now, job_id))

    def deck_of(self, owner: str, crm: str, opportunity_id: str) -> str | None:
        """The deck an opportunity got last, if any."""
        if unstorable(owner, crm, opportunity_id):
            return None
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT presentation_id FROM crm_decks WHERE owner = ? AND crm = ? "
                        "AND opportunity_id = ?", (owner, crm, opportunity_id))
            row = cur.fetchone()
        return row["presentation_id"] if row else None

    def first_delivery(self, crm: str, event_key: str, keep: float = 7 * 86400) -> bool:
        """True the first time a webhook delivery is seen; False for a replay. Entries older
        than `keep` are forgotten (a delivery that old fails its timestamp check anyway)."""
        now = time.time()
        with self.tx() as cur:
            cur.execute("DELETE FROM webhook_events WHERE received_at < ?", (now - keep,))
            cur.execute("INSERT INTO webhook_events (crm, event_key, received_at) "
                        "VALUES (?, ?, ?) ON CONFLICT (crm, event_key) DO NOTHING",
                        (crm, event_key, now))
            return bool(cur.rowcount)
