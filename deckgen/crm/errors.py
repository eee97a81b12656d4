"""The errors a CRM caller can meet, each with a stable code and the HTTP status the API
answers with. Messages name the CRM, the record and the field, never a credential."""

from __future__ import annotations

from deckgen.errors import DeckgenError


class CrmError(DeckgenError):
    code = "crm_error"
    http_status = 502


class CrmNotConfigured(CrmError):
    """The CRM named has no credentials on this server (or for this tenant)."""

    code = "crm_not_configured"
    http_status = 422


class OpportunityNotFound(CrmError):
    code = "opportunity_not_found"
    http_status = 404


class CrmForbidden(CrmError):
    """The CRM user deckgen acts as may not read (or update) the record or object named."""

    code = "crm_forbidden"
    http_status = 403


class CrmFieldMissing(CrmError):
    """A brief field the mapping requires is empty on the record. `field` is the brief field
    (e.g. "client"), `crm_field` where the mapping reads it (e.g. "Opportunity.Account.Name")."""

    code = "crm_field_missing"
    http_status = 422

    def __init__(self, message: str, *, field: str, crm_field: str) -> None:
        super().__init__(message, details={"field": field, "crm_field": crm_field})
        self.field = field
        self.crm_field = crm_field

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "field": f"brief.{self.field}"}


class CrmUnavailable(CrmError):
    """The CRM is away, slow or rate-limiting us; the same call may work later."""

    code = "crm_unavailable"
    http_status = 503

    def __init__(self, message: str, *, retry_after: float = 30.0,
                 details: object | None = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class CrmMappingError(DeckgenError):
    """The operator's mapping file is not usable (found at start, not per request)."""

    code = "invalid_crm_mapping"
    http_status = 500
