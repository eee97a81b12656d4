"""The brief: what a sales rep knows about an opportunity, validated field by field.

Validation collects every problem before failing, so one error message lists everything the
caller has to fix. Limits keep a pasted transcript from swamping the prompt or the store."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from deckgen.errors import BriefError

MAX_NOTES_BYTES = 100 * 1024
MAX_SHORT = 200
MAX_OPPORTUNITY = 2000
MAX_CONTACTS = 50
MAX_METRICS = 100
MAX_METRIC_VALUE = 500
MAX_FACTS = 50
MAX_FACT = 500
FIELDS = ("client", "industry", "opportunity", "notes", "contacts", "metrics", "facts",
          "confidential")
MARKABLE = ("client", "industry", "opportunity", "notes", "contacts", "metrics")


@dataclass(frozen=True)
class Contact:
    name: str
    role: str = ""
    confidential: bool = False


@dataclass(frozen=True)
class Brief:
    client: str
    industry: str = ""
    opportunity: str = ""
    notes: str = ""
    contacts: tuple[Contact, ...] = ()
    metrics: dict[str, str] = field(default_factory=dict)
    # fields whose text must stay on our own hardware (see deckgen/privacy.py)
    confidential: frozenset[str] = frozenset()
    # figures and benchmarks the firm stands behind (not the client's own words): the
    # grounding guard accepts them as sources although the notes do not state them
    facts: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "client": self.client,
            "industry": self.industry,
            "opportunity": self.opportunity,
            "notes": self.notes,
            "contacts": [{"name": c.name, "role": c.role,
                          **({"confidential": True} if c.confidential else {})}
                         for c in self.contacts],
            "metrics": dict(self.metrics),
        }
        if self.facts:
            out["facts"] = list(self.facts)
        if self.confidential:
            out["confidential"] = sorted(self.confidential)
        return out

    def confidential_values(self) -> list[str]:
        """Every piece of text the confidential fields hold."""
        marked = self.confidential
        values = [getattr(self, f) for f in ("client", "industry", "opportunity", "notes")
                  if f in marked]
        for c in self.contacts:
            if "contacts" in marked or c.confidential:
                values += [c.name, c.role]
        if "metrics" in marked:
            values += [v for kv in self.metrics.items() for v in kv]
        return [v for v in values if v]

    @property
    def is_confidential(self) -> bool:
        return bool(self.confidential_values())

    def marked(self, fields: frozenset[str]) -> Brief:
        return replace(self, confidential=self.confidential | fields)

    def search_text(self) -> str:
        """The words that say what this opportunity is about, for example selection."""
        parts = [self.industry, self.opportunity, self.notes]
        parts += [f"{k} {v}" for k, v in self.metrics.items()]
        parts += [c.role for c in self.contacts]
        return "\n".join(p for p in parts if p)

    def with_notes(self, notes: str) -> Brief:
        return replace(self, notes=notes)


def _text(errors: dict[str, str], name: str, value: Any, limit: int, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        errors[name] = f"must be a string, got {type(value).__name__}"
        return ""
    value = value.strip()
    if "\x00" in value:
        errors[name] = "contains a NUL character"
    elif required and not value:
        errors[name] = "is required"
    elif len(value) > limit:
        errors[name] = f"is {len(value)} characters long; the limit is {limit}"
    return value


def parse_brief(data: Any) -> Brief:
    """Validate a decoded JSON object and build a Brief, or raise BriefError listing every
    bad field (`details` maps field paths such as `contacts[2].name` to the problem)."""
    if not isinstance(data, dict):
        raise BriefError(f"a brief must be a JSON object, got {type(data).__name__}")
    errors: dict[str, str] = {}
    for key in data:
        if key not in FIELDS:
            errors[str(key)] = f"unknown field; a brief has: {', '.join(FIELDS)}"
    client = _text(errors, "client", data.get("client"), MAX_SHORT, required=True)
    industry = _text(errors, "industry", data.get("industry"), MAX_SHORT)
    opportunity = _text(errors, "opportunity", data.get("opportunity"), MAX_OPPORTUNITY)

    notes_raw = data.get("notes")
    notes = ""
    if isinstance(notes_raw, str) and len(notes_raw.encode("utf-8")) > MAX_NOTES_BYTES:
        size_kb = len(notes_raw.encode("utf-8")) / 1024
        errors["notes"] = (
            f"is {size_kb:.0f} KB; the limit is {MAX_NOTES_BYTES // 1024} KB. "
            "Paste the key points of the discovery calls, not whole transcripts."
        )
    else:
        notes = _text(errors, "notes", notes_raw, MAX_NOTES_BYTES)

    contacts: list[Contact] = []
    raw_contacts = data.get("contacts")
    raw_contacts = [] if raw_contacts is None else raw_contacts
    if not isinstance(raw_contacts, list):
        errors["contacts"] = "must be a list of {name, role} objects"
    elif len(raw_contacts) > MAX_CONTACTS:
        errors["contacts"] = f"has {len(raw_contacts)} entries; the limit is {MAX_CONTACTS}"
    else:
        for i, item in enumerate(raw_contacts):
            where = f"contacts[{i}]"
            if isinstance(item, str):
                item = {"name": item}
            if not isinstance(item, dict):
                errors[where] = "must be an object with name and role"
                continue
            extra = set(item) - {"name", "role", "confidential"}
            if extra:
                errors[where] = f"unknown field(s) {', '.join(sorted(map(str, extra)))}"
            name = _text(errors, f"{where}.name", item.get("name"), MAX_SHORT, required=True)
            role = _text(errors, f"{where}.role", item.get("role"), MAX_SHORT)
            secret = item.get("confidential", False)
            if not isinstance(secret, bool):
                errors[f"{where}.confidential"] = "must be true or false"
            contacts.append(Contact(name, role, secret is True))

    metrics: dict[str, str] = {}
    raw_metrics = data.get("metrics")
    raw_metrics = {} if raw_metrics is None else raw_metrics
    if not isinstance(raw_metrics, dict):
        errors["metrics"] = 'must be an object of facts, e.g. {"Invoice close": "3 days"}'
    elif len(raw_metrics) > MAX_METRICS:
        errors["metrics"] = f"has {len(raw_metrics)} entries; the limit is {MAX_METRICS}"
    else:
        for key, value in raw_metrics.items():
            where = f"metrics.{key}"
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                errors[where] = "must be a string or a number"
                continue
            k = _text(errors, where, str(key), MAX_SHORT, required=True)
            metrics[k] = _text(errors, where, str(value), MAX_METRIC_VALUE)

    facts: list[str] = []
    raw_facts = data.get("facts")
    raw_facts = [] if raw_facts is None else raw_facts
    if not isinstance(raw_facts, list):
        errors["facts"] = 'must be a list of strings, e.g. ["Industry median DSO: 45 days"]'
    elif len(raw_facts) > MAX_FACTS:
        errors["facts"] = f"has {len(raw_facts)} entries; the limit is {MAX_FACTS}"
    else:
        for i, item in enumerate(raw_facts):
            facts.append(_text(errors, f"facts[{i}]", item, MAX_FACT, required=True))

    confidential: frozenset[str] = frozenset()
    marks = data.get("confidential", False)
    if marks is True:
        confidential = frozenset(MARKABLE)
    elif isinstance(marks, list) and all(m in MARKABLE for m in marks):
        confidential = frozenset(marks)
    elif marks is not False:
        errors["confidential"] = ("must be true, false, or a list of fields from "
                                  + ", ".join(MARKABLE))

    if errors:
        listing = "; ".join(f"{k} {v}" for k, v in errors.items())
        raise BriefError(f"the brief is invalid: {listing}", details=errors)
    return Brief(client, industry, opportunity, notes, tuple(contacts), metrics, confidential,
                 tuple(facts))


def load_brief(text: str | bytes, source: str = "brief") -> Brief:
    """Decode JSON text and validate it; malformed JSON says where it broke."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BriefError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except UnicodeDecodeError:
        raise BriefError(f"{source} is not UTF-8 text") from None
    return parse_brief(data)
