"""The CRM door: an opportunity in Salesforce or HubSpot becomes a brief, and a finished deck's
link goes back onto the record. This package owns what every CRM shares: the `Opportunity`
a provider resolves, the `DeckLink` it writes back, the `CrmProvider` protocol each CRM
implements (`salesforce.py`, `hubspot.py`, each over the CRM's maintained client), the
operator-editable field mapping (`mapping.py`), the settings read from the environment and
the directory that hands a caller the provider for its tenant (`directory.py`), and the
errors a caller can meet (`errors.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from deckgen.crm.errors import (
    CrmError,
    CrmFieldMissing,
    CrmForbidden,
    CrmNotConfigured,
    CrmUnavailable,
    OpportunityNotFound,
)

__all__ = ["CRMS", "LABELS", "CrmError", "CrmFieldMissing", "CrmForbidden", "CrmNotConfigured",
           "CrmProvider", "CrmUnavailable", "DeckLink", "Opportunity", "OpportunityNotFound"]

CRMS = ("salesforce", "hubspot")
LABELS = {"salesforce": "Salesforce", "hubspot": "HubSpot"}


@dataclass(frozen=True)
class Opportunity:
    """An opportunity record, read and mapped: `brief` passes `deckgen.brief.parse_brief`;
    `missing` names the optional brief fields the record had nothing for."""

    crm: str
    id: str
    brief: dict[str, Any]
    name: str | None = None
    stage: str | None = None
    url: str | None = None  # the record in the CRM's own UI
    missing: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"crm": self.crm, "opportunity_id": self.id, "name": self.name,
                "stage": self.stage, "url": self.url, "brief": self.brief,
                "missing": list(self.missing)}


@dataclass(frozen=True)
class DeckLink:
    """What lands on the opportunity record once its deck is done."""

    url: str
    status: str  # ok, incomplete (written, something to check) or failed
    summary: str | None = None
    flagged: tuple[str, ...] = field(default_factory=tuple)  # claims the guard flagged

    def note(self) -> str:
        """The text of a note on the record: the link, the status, what to check."""
        lines = [f"deckgen: deck {self.status}: {self.url}"]
        if self.summary:
            lines.append(self.summary)
        if self.flagged:
            lines.append("Check these claims: " + "; ".join(self.flagged))
        return "\n".join(lines)


class CrmProvider(Protocol):
    """One CRM for one tenant. Transient failures (5xx, 429, timeouts, connection errors)
    raise CrmUnavailable; a record that does not exist OpportunityNotFound; a record the
    principal may not read CrmForbidden; a required mapped field with no value
    CrmFieldMissing."""

    name: str

    def resolve(self, opportunity_id: str) -> Opportunity: ...

    def write_back(self, opportunity_id: str, link: DeckLink) -> None: ...

    def changed_since(self, since: datetime | None, limit: int = 500) -> list[str]:
        """Ids of open opportunities modified after `since` (all open ones when None)."""
        ...
