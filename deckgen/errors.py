"""The one error family: every error a user can cause carries a stable code and a message
written for that user. The CLI prints the message on one line; the API maps the code to HTTP."""

from __future__ import annotations


class DeckgenError(Exception):
    code = "deckgen_error"
    http_status = 500

    def __init__(self, message: str, *, details: object | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "message": self.message}
        if self.details is not None:
            out["details"] = self.details
        return out


class FieldError(DeckgenError):
    """Something a caller sent is wrong, and `field` says where (`route`,
    `items[3].presentation_id`); the API puts it beside the message."""

    http_status = 422

    def __init__(self, message: str, field: str | None = None, *,
                 details: object | None = None) -> None:
        super().__init__(message, details=details)
        self.field = field

    def to_dict(self) -> dict[str, object]:
        out = super().to_dict()
        if self.field:
            out["field"] = self.field
        return out


class BriefError(DeckgenError):
    """The brief is malformed: `details` maps each bad field to what is wrong with it."""

    code = "invalid_brief"
    http_status = 422


class ConfigError(DeckgenError):
    code = "invalid_config"
    http_status = 500


class UnknownSectionError(DeckgenError):
    code = "unknown_section"
    http_status = 422


class BudgetError(DeckgenError):
    """The prompt cannot fit the model's context even with every cut allowed."""

    code = "over_budget"
    http_status = 422


class ModelError(DeckgenError):
    """A model route failed (unreachable, refused, or timed out)."""

    code = "model_error"
    http_status = 502


class OutputError(DeckgenError):
    """The model's answer did not match the section schema, even after a repair attempt."""

    code = "invalid_model_output"
    http_status = 502


class TemplateError(DeckgenError):
    code = "invalid_template"
    http_status = 422


class StoreUnavailable(DeckgenError):
    """The database cannot be reached right now (restarting, cut off, or every pooled
    connection busy). Nothing was written; the same call works again once it is back, so
    the API answers 503 with `Retry-After: retry_after`."""

    code = "store_unavailable"
    http_status = 503

    def __init__(self, message: str = "the job store is unavailable; try again shortly", *,
                 retry_after: int = 5, details: object | None = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after
