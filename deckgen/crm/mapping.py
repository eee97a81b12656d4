"""Which CRM fields become which brief fields: an operator-editable YAML file per CRM
(defaults in deckgen/data/crm-salesforce.yaml and crm-hubspot.yaml; DECKGEN_SALESFORCE_MAPPING
/ DECKGEN_HUBSPOT_MAPPING point at your own, custom fields welcome).

A provider reads the record into plain nested data (its *record view*: for Salesforce
`{"Opportunity": {...}, "ContactRoles": [...], "Notes": [...]}`, for HubSpot `{"deal": ...,
"company": ..., "contacts": [...], "notes": [...]}`), and the mapping turns that into a brief.
A value is a template: literal text with `{Dotted.Path}` references into the record view
(`"{Opportunity.Account.Name}"`); a list field (contacts, notes, facts) may instead read
`each:` item of a list in the record, with paths relative to the item. `Mapping.paths()`
tells a provider which fields to fetch, so a custom field in the mapping is read without
code. A required field that comes out empty is a CrmFieldMissing naming both the brief
field and the CRM field; optional empty fields are listed in `missing`."""

from __future__ import annotations

import re
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from deckgen.brief import (
    MAX_CONTACTS,
    MAX_FACT,
    MAX_FACTS,
    MAX_METRIC_VALUE,
    MAX_METRICS,
    MAX_NOTES_BYTES,
    MAX_OPPORTUNITY,
    MAX_SHORT,
)
from deckgen.crm.errors import CrmFieldMissing, CrmMappingError

__all__ = ["Each", "FieldMapping", "Template", "Trigger", "load_mapping"]

REF = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\}")
TEXT_FIELDS = {"client": MAX_SHORT, "industry": MAX_SHORT, "opportunity": MAX_OPPORTUNITY}
REQUIRABLE = ("client", "industry", "opportunity", "notes", "contacts", "metrics")


def lookup(scope: Any, path: str) -> Any:
    """The value at a dotted path, or None where any step is missing."""
    for part in path.split("."):
        if not isinstance(scope, MappingType):
            return None
        scope = scope.get(part)
    return scope


def _text(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


@dataclass(frozen=True)
class Template:
    text: str

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(REF.findall(self.text))

    def render(self, scope: Any) -> str:
        """The text with each reference filled in; "" when every reference is empty (so
        "Close date: {CloseDate}" on a record with no close date is missing, not a label)."""
        values = {p: _text(lookup(scope, p)) for p in self.paths}
        if self.paths and not any(values.values()):
            return ""
        return REF.sub(lambda m: values[m.group(1)], self.text).strip()


@dataclass(frozen=True)
class Each:
    """One entry per item of the list at `source`, its fields rendered against the item."""

    source: str
    fields: dict[str, Template]
    limit: int | None = None

    def items(self, record: Any) -> list[dict[str, str]]:
        found = lookup(record, self.source)
        if not isinstance(found, list):
            return []
        out = []
        for item in found[: self.limit]:
            row = {k: t.render(item) for k, t in self.fields.items()}
            if any(row.values()):
                out.append(row)
        return out


@dataclass(frozen=True)
class Trigger:
    """A stage that starts a deck when a webhook says an opportunity reached it: a new copy
    of `template_id` titled from `title` ({name}: the opportunity, {client}), or, when the
    opportunity has a deck already, that deck refreshed (archived first)."""

    stage: str
    template_id: str
    title: str = "{client}: {name}"
    sections: tuple[str, ...] | None = None
    route: str = "auto"


@dataclass(frozen=True)
class FieldMapping:
    crm: str
    client: Template
    industry: Template | None = None
    opportunity: Template | None = None
    name: Template | None = None
    stage: Template | None = None
    notes: tuple[Template | Each, ...] = ()
    contacts: Each | None = None
    metrics: dict[str, Template] = field(default_factory=dict)
    facts: tuple[Template | Each, ...] = ()
    required: tuple[str, ...] = ("client",)
    write_back: dict[str, Any] = field(default_factory=dict)
    triggers: tuple[Trigger, ...] = ()

    def trigger(self, stage: str) -> Trigger | None:
        return next((t for t in self.triggers if t.stage == stage), None)

    def paths(self) -> list[str]:
        """Every path the mapping reads, list items as `source.field`, in a stable order."""
        found: list[str] = []

        def add(part: Template | Each | None) -> None:
            if isinstance(part, Template):
                found.extend(part.paths)
            elif isinstance(part, Each):
                for t in part.fields.values():
                    found.extend(f"{part.source}.{p}" for p in t.paths)

        for part in (self.client, self.industry, self.opportunity, self.name, self.stage,
                     self.contacts, *self.notes, *self.facts, *self.metrics.values()):
            add(part)
        return list(dict.fromkeys(found))

    def where(self, brief_field: str) -> str:
        """The CRM field(s) a brief field is read from, for messages."""
        part = getattr(self, brief_field, None)
        parts = part if isinstance(part, tuple) else (part,)
        if brief_field == "metrics":
            parts = tuple(self.metrics.values())
        paths: list[str] = []
        for p in parts:
            if isinstance(p, Template):
                paths.extend(p.paths)
            elif isinstance(p, Each):
                paths.extend(f"{p.source}[].{x}" for t in p.fields.values() for x in t.paths)
        return ", ".join(paths) or "(nothing mapped)"

    def brief(self, record: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The brief from a record view, and the optional fields that came out empty."""
        brief: dict[str, Any] = {}
        for name, limit in TEXT_FIELDS.items():
            t = self.client if name == "client" else getattr(self, name)
            value = t.render(record) if t else ""
            if value:
                brief[name] = value[:limit]
        notes = _paragraphs(self.notes, record, "text")
        if notes:
            brief["notes"] = _cap_notes(notes)
        if self.contacts:
            contacts = [{"name": c["name"][:MAX_SHORT], **({"role": c["role"][:MAX_SHORT]}
                                                          if c.get("role") else {})}
                        for c in self.contacts.items(record) if c.get("name")]
            unique = {(c["name"], c.get("role")): c for c in contacts}
            if unique:
                brief["contacts"] = list(unique.values())[:MAX_CONTACTS]
        metrics = {k[:MAX_SHORT]: v[:MAX_METRIC_VALUE]
                   for k, t in self.metrics.items() if (v := t.render(record))}
        if metrics:
            brief["metrics"] = dict(list(metrics.items())[:MAX_METRICS])
        facts = [f[:MAX_FACT] for f in _paragraphs(self.facts, record, "text")]
        if facts:
            brief["facts"] = facts[:MAX_FACTS]
        for name in self.required:
            if name not in brief:
                raise CrmFieldMissing(
                    f"the {self.crm} record has no value for {name} (read from "
                    f"{self.where(name)}); fill it in the CRM or change the mapping",
                    field=name, crm_field=self.where(name))
        missing = tuple(n for n in ("industry", "opportunity", "notes", "contacts", "metrics")
                        if n not in brief and n not in self.required)
        return brief, missing


def _paragraphs(parts: tuple[Template | Each, ...], record: Any, key: str) -> list[str]:
    out: list[str] = []
    for part in parts:
        if isinstance(part, Template):
            value = part.render(record)
            if value:
                out.append(value)
        else:
            out.extend(row[key] for row in part.items(record) if row.get(key))
    return out


def _cap_notes(paragraphs: list[str]) -> str:
    """Notes joined by blank lines, whole paragraphs kept in order (newest activities come
    first from the providers) while they fit the brief's limit."""
    kept: list[str] = []
    size = 0
    for p in paragraphs:
        cost = len(p.encode()) + 2
        if size + cost > MAX_NOTES_BYTES:
            if not kept:
                kept.append(p.encode()[: MAX_NOTES_BYTES - 2].decode(errors="ignore"))
            break
        kept.append(p)
        size += cost
    return "\n\n".join(kept)


def _template(value: Any, where: str) -> Template:
    if not isinstance(value, str):
        raise CrmMappingError(f"{where} must be a text template such as \"{{Name}}\"")
    return Template(value)


def _part(value: Any, where: str, keys: tuple[str, ...]) -> Template | Each:
    if isinstance(value, str):
        return Template(value)
    if isinstance(value, dict) and isinstance(value.get("each"), str):
        unknown = set(value) - {"each", "limit", *keys}
        if unknown:
            raise CrmMappingError(f"{where}: unknown keys {sorted(unknown)}; an each: entry "
                                  f"takes {', '.join(keys)} and limit")
        limit = value.get("limit")
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise CrmMappingError(f"{where}.limit must be a positive whole number")
        return Each(value["each"], {k: _template(value[k], f"{where}.{k}")
                                    for k in keys if k in value}, limit)
    raise CrmMappingError(f"{where} must be a template or {{each: List, {keys[0]}: ...}}")


def _parts(value: Any, where: str) -> tuple[Template | Each, ...]:
    values = value if isinstance(value, list) else [value]
    return tuple(_part(v, f"{where}[{i}]", ("text",)) for i, v in enumerate(values))


def parse_mapping(crm: str, data: Any, source: str) -> FieldMapping:
    if not isinstance(data, dict) or not isinstance(data.get("brief"), dict):
        raise CrmMappingError(f"{source}: a mapping has a top-level brief: section")
    b = data["brief"]
    known = {"client", "industry", "opportunity", "notes", "contacts", "metrics", "facts"}
    unknown = set(b) - known
    if unknown:
        raise CrmMappingError(f"{source}: unknown brief fields {sorted(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
    if "client" not in b:
        raise CrmMappingError(f"{source}: brief.client must be mapped")
    contacts = None
    if "contacts" in b:
        part = _part(b["contacts"], "brief.contacts", ("name", "role"))
        if not isinstance(part, Each) or "name" not in part.fields:
            raise CrmMappingError(f"{source}: brief.contacts is {{each: List, name: ..., "
                                  f"role: ...}}")
        contacts = part
    metrics = b.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise CrmMappingError(f"{source}: brief.metrics maps a label to a template")
    required = tuple(data.get("required") or ("client",))
    bad = [r for r in required if r not in REQUIRABLE]
    if bad:
        raise CrmMappingError(f"{source}: required lists unknown fields {bad}")
    record = data.get("record") or {}
    write_back = data.get("write_back") or {}
    if not isinstance(write_back, dict):
        raise CrmMappingError(f"{source}: write_back is a mapping (field:, note:)")
    return FieldMapping(
        triggers=_triggers(data.get("triggers") or [], source),
        crm=crm,
        client=_template(b["client"], "brief.client"),
        industry=_template(b["industry"], "brief.industry") if "industry" in b else None,
        opportunity=(_template(b["opportunity"], "brief.opportunity")
                     if "opportunity" in b else None),
        name=_template(record["name"], "record.name") if "name" in record else None,
        stage=_template(record["stage"], "record.stage") if "stage" in record else None,
        notes=_parts(b["notes"], "brief.notes") if "notes" in b else (),
        contacts=contacts,
        metrics={str(k): _template(v, f"brief.metrics.{k}") for k, v in metrics.items()},
        facts=_parts(b["facts"], "brief.facts") if "facts" in b else (),
        required=required,
        write_back=write_back,
    )


GOOGLE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def _triggers(data: Any, source: str) -> tuple[Trigger, ...]:
    if not isinstance(data, list):
        raise CrmMappingError(f"{source}: triggers is a list of {{stage, template_id}}")
    out = []
    for i, t in enumerate(data):
        where = f"{source}: triggers[{i}]"
        if not isinstance(t, dict) or not isinstance(t.get("stage"), str) \
                or not GOOGLE_ID.match(str(t.get("template_id", ""))):
            raise CrmMappingError(f"{where} needs a stage and a Google Slides template_id")
        unknown = set(t) - {"stage", "template_id", "title", "sections", "route"}
        if unknown:
            raise CrmMappingError(f"{where}: unknown keys {sorted(unknown)}")
        sections = t.get("sections")
        if sections is not None and (not isinstance(sections, list) or
                                     not all(isinstance(x, str) for x in sections)):
            raise CrmMappingError(f"{where}.sections is a list of section names")
        out.append(Trigger(t["stage"], str(t["template_id"]),
                           str(t.get("title") or "{client}: {name}"),
                           tuple(sections) if sections else None, str(t.get("route") or "auto")))
    return tuple(out)


def load_mapping(crm: str, path: Path | None = None) -> FieldMapping:
    """The operator's mapping file when given, else the default for the CRM."""
    if path is None:
        text = (resources.files("deckgen") / "data" / f"crm-{crm}.yaml").read_text()
        source = f"default {crm} mapping"
    else:
        try:
            text = path.read_text()
        except OSError as exc:
            raise CrmMappingError(f"cannot read the {crm} mapping {path}: {exc.strerror}") \
                from None
        source = str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CrmMappingError(f"{source} is not valid YAML: {exc}") from None
    return parse_mapping(crm, data, source)
