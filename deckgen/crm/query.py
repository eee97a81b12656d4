"""A schedule's `crm_query`: the decks to refresh are those of the open opportunities the CRM
says changed since the schedule last ran (all open ones the first time, or with
`changed_since_last_run: false`). Only opportunities that have a deck are refreshed (one made
by a job or a webhook from that record); each becomes a batch item that reads its record when
it runs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deckgen.crm.directory import CrmDirectory
    from deckgen.store import Store
    from deckgen.store.schedules import Schedule

__all__ = ["CrmQuery"]

log = logging.getLogger("deckgen.crm")


class CrmQuery:
    """The schedules' "crm" resolver (deckgen/schedules.py)."""

    def __init__(self, directory: CrmDirectory, store: Store, limit: int = 1000) -> None:
        self.directory, self.store, self.limit = directory, store, limit

    def __call__(self, schedule: Schedule, since: float | None) -> list[dict[str, Any]]:
        query = schedule.source["crm_query"]
        crm = query["crm"]
        after = None
        if since is not None and query.get("changed_since_last_run", True):
            after = datetime.fromtimestamp(since, UTC)
        ids = self.directory.provider(crm, schedule.owner).changed_since(after, self.limit)
        items, deckless = [], 0
        for opportunity_id in ids:
            deck = (self.store.deck_of(schedule.owner, crm, opportunity_id)
                    or self.store.deck_of(f"crm:{crm}", crm, opportunity_id))
            if deck is None:
                deckless += 1
                continue
            items.append({"presentation_id": deck, "crm": crm,
                          "opportunity_id": opportunity_id})
        if deckless:
            log.info("schedule %s: %d changed opportunities have no deck yet; skipped",
                     schedule.id, deckless)
        return items
