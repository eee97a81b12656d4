"""Confidential briefs stay on our hardware: which routes a section may use, and redaction
for the one external route.

A brief's fields (or single contacts) can be marked confidential by the caller; a deployment
adds default fields (DECKGEN_CONFIDENTIAL_FIELDS) and callers whose briefs are confidential
as a whole (DECKGEN_CONFIDENTIAL_CALLERS). Every section's prompt carries the whole brief, so
a brief with any confidential text makes all its sections confidential: they are served only
by the self-hosted or local route, whatever the route table, retries or failover say, and
fail with a clear error when neither can serve them. With DECKGEN_REDACT_FOR_OPENAI=1 the
openai route may serve them instead, but only after every person's and organisation's name,
number and email in the confidential fields is replaced by a stable placeholder; the
placeholders are put back in the answer. The policy applied is recorded with each section."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deckgen.brief import MARKABLE, Brief
from deckgen.errors import ConfigError
from deckgen.llm.policy import (
    EXTERNAL_ROUTES,
    INTERNAL_ONLY,
    OPEN,
    REDACTED,
    ConfidentialRouteError,
)

__all__ = ["EXTERNAL_ROUTES", "INTERNAL_ONLY", "OPEN", "REDACTED",
           "ConfidentialRouteError", "PrivacyPolicy", "Redactor"]


_NUMBER = re.compile(r"(?<![\w\[])[$€£]?\d[\d,.]*(?:\s?(?:%|[kKmMbB]n?|bn))?(?![\w\]])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Two or more capitalised words in a row: "Priya Raman", "Northbridge Freight", "SAP TM".
_PROPER = re.compile(r"\b[A-Z][\w&'-]*(?:\s+(?:of\s+|&\s+)?[A-Z][\w&'-]*)+")
# One capitalised word inside a sentence ("the Baltic terminal"): a name more often than not.
_CAPITALISED = re.compile(r"(?<=[a-z0-9,;:)] )[A-Z][\w'-]{2,}")


@dataclass(frozen=True)
class PrivacyPolicy:
    default_fields: frozenset[str] = frozenset()
    confidential_callers: frozenset[str] = frozenset()
    redact: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PrivacyPolicy:
        fields = frozenset(f.strip() for f in env.get("DECKGEN_CONFIDENTIAL_FIELDS", "")
                           .split(",") if f.strip())
        bad = fields - set(MARKABLE)
        if bad:
            raise ConfigError(f"DECKGEN_CONFIDENTIAL_FIELDS names unknown fields "
                              f"{', '.join(sorted(bad))}; fields are {', '.join(MARKABLE)}")
        callers = frozenset(c.strip() for c in env.get("DECKGEN_CONFIDENTIAL_CALLERS", "")
                            .split(",") if c.strip())
        redact = env.get("DECKGEN_REDACT_FOR_OPENAI", "").lower() in ("1", "true", "yes")
        return cls(fields, callers, redact)

    def apply(self, brief: Brief, owner: str | None = None) -> Brief:
        """The brief with the deployment's defaults and the caller's policy marked."""
        if owner is not None and owner in self.confidential_callers:
            return brief.marked(frozenset(MARKABLE))
        return brief.marked(self.default_fields) if self.default_fields else brief

    def level(self, brief: Brief) -> str:
        """What this brief's confidentiality allows (the router applies it to its routes)."""
        if not brief.is_confidential:
            return OPEN
        return REDACTED if self.redact else INTERNAL_ONLY


class Redactor:
    """Stable placeholders for the confidential values of one brief."""

    def __init__(self, brief: Brief) -> None:
        self.forward: dict[str, str] = {}
        counts: dict[str, int] = {}

        def add(value: str, kind: str) -> None:
            value = value.strip()
            if len(value) < 2 or value in self.forward:
                return
            counts[kind] = counts.get(kind, 0) + 1
            self.forward[value] = f"[{kind}_{counts[kind]}]"

        marked = brief.confidential
        if "client" in marked:
            add(brief.client, "ORG")
        for c in brief.contacts:
            if "contacts" in marked or c.confidential:
                add(c.name, "PERSON")
                for part in c.name.split():
                    if len(part) > 2:
                        add(part, "PERSON")
        for text in brief.confidential_values():
            for m in _EMAIL.findall(text):
                add(m, "EMAIL")
            for m in _PROPER.findall(text) + _CAPITALISED.findall(text):
                add(m, "NAME")
            for m in _NUMBER.findall(text):
                add(m, "NUM")
        # longest first, so "Priya Raman" goes before "Priya"
        self._order = sorted(self.forward, key=len, reverse=True)
        self.backward = {v: k for k, v in self.forward.items()}

    def redact(self, text: str) -> str:
        for value in self._order:
            if value in text:
                text = re.sub(rf"(?<![\w\[]){re.escape(value)}(?![\w\]])",
                              self.forward[value], text)
        return text

    def restore(self, value: Any) -> Any:
        if isinstance(value, str):
            return re.sub(r"\[(?:ORG|PERSON|EMAIL|NAME|NUM)_\d+\]",
                          lambda m: self.backward.get(m.group(0), m.group(0)), value)
        if isinstance(value, list):
            return [self.restore(v) for v in value]
        if isinstance(value, dict):
            return {k: self.restore(v) for k, v in value.items()}
        return value

    def messages(self, messages: list[dict[str, str]], start: int = 0
                 ) -> list[dict[str, str]]:
        """The messages with this brief's confidential values replaced, from message `start`
        on: the instructions and the few-shot examples before it (other clients' solved
        cases) hold none of them and are sent as they are."""
        return messages[:start] + [{**m, "content": self.redact(m["content"])}
                                   for m in messages[start:]]
