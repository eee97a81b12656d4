"""Salesforce as a brief provider: an Opportunity (with its Account, contact roles and recent
Tasks) read over the REST API with `simple-salesforce`, mapped to a brief by the operator's
mapping; the finished deck's link written back as a field and/or a completed Task; and the
open opportunities changed since a time, for schedules. This module owns the OAuth 2.0
client-credentials token (fetched with `requests`, cached, fetched again once when Salesforce
says INVALID_SESSION_ID), the SOQL it sends (ids checked and quoted, never spliced), and the
translation of Salesforce's answers into the `deckgen.crm.errors` family. It never retries a
failure itself: 5xx, 429, REQUEST_LIMIT_EXCEEDED, timeouts and refused connections raise
CrmUnavailable at once, and the caller's queue decides when to try again."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from typing import Any

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession
from simple_salesforce.format import format_soql

from deckgen.crm import DeckLink, Opportunity
from deckgen.crm.directory import SalesforceCredentials
from deckgen.crm.errors import (
    CrmError,
    CrmFieldMissing,
    CrmForbidden,
    CrmMappingError,
    CrmNotConfigured,
    CrmUnavailable,
    OpportunityNotFound,
)
from deckgen.crm.mapping import Each, FieldMapping, Template

__all__ = ["CrmFieldUnknown", "SalesforceProvider"]

ID = re.compile(r"006[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?")  # 006: the Opportunity key prefix
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
ROOTS = ("Opportunity", "ContactRoles", "Notes")
BASE_FIELDS = {"Opportunity": ("Id", "Name", "StageName"),
               "ContactRoles": ("Role", "IsPrimary", "Contact.Name", "Contact.Title"),
               "Notes": ("Subject", "Description", "ActivityDate")}
NOTES_LIMIT = 20
CONTACTS_LIMIT = 50
BUSY = {"REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW"}
NO_COLUMN = re.compile(r"No such column '([^']+)' on (?:entity|sobject of type) '?([A-Za-z0-9_]+)")
NO_RELATION = re.compile(r"Didn't understand relationship '([^']+)'")


class CrmFieldUnknown(CrmFieldMissing):
    """The mapping names a CRM field the CRM does not have (or hides from deckgen's user by
    field-level security): the operator's mapping must change, so a 422 naming both fields."""

    code = "crm_field_unknown"


class _Session(requests.Session):
    """A session whose CA bundle wins over REQUESTS_CA_BUNDLE (requests lets the environment
    override `session.verify` unless it is passed per request), with a default timeout, and
    which remembers the last Retry-After header per thread (simple-salesforce's errors keep
    only the body)."""

    def __init__(self, ca_bundle: str | None, timeout: float) -> None:
        super().__init__()
        if ca_bundle:
            self.verify = ca_bundle
        self.timeout = timeout
        self.seen = threading.local()

    def request(self, method: str, url: str,  # type: ignore[override]
                *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("verify", self.verify)
        self.seen.retry_after = None
        response = super().request(method, url, *args, **kwargs)
        self.seen.retry_after = response.headers.get("Retry-After")
        return response


def _unreachable(exc: requests.RequestException, url: str, what: str) -> CrmUnavailable:
    hint = (" (its TLS certificate is not trusted: a private CA goes in DECKGEN_CRM_CA_BUNDLE)"
            if isinstance(exc, requests.exceptions.SSLError) else "")
    return CrmUnavailable(f"cannot reach Salesforce at {url} ({what}): "
                          f"{type(exc).__name__}{hint}")


def _errors(exc: SalesforceError) -> list[dict[str, Any]]:
    content = exc.content
    if isinstance(content, dict):
        content = [content]
    return [e for e in content if isinstance(e, dict)] if isinstance(content, list) else []


class SalesforceProvider:
    """One Salesforce org, as the integration user of a connected app's client-credentials
    flow. `timeout` bounds each HTTP call (seconds)."""

    name = "salesforce"

    def __init__(self, creds: SalesforceCredentials, mapping: FieldMapping, *,
                 timeout: float = 20.0) -> None:
        self.creds = creds
        self.mapping = mapping
        self.session = _Session(creds.ca_bundle, timeout)
        self._lock = threading.Lock()
        self._client: Salesforce | None = None
        self._user_id: str | None = None
        self.fields = self._fields(mapping)
        self.limits = {"Notes": self._limit(mapping, "Notes", NOTES_LIMIT),
                       "ContactRoles": self._limit(mapping, "ContactRoles", CONTACTS_LIMIT)}

    # --- what the mapping needs ---------------------------------------------------------
    @staticmethod
    def _fields(mapping: FieldMapping) -> dict[str, list[str]]:
        """SOQL field lists per part of the record view, from every path the mapping reads."""
        fields = {root: list(base) for root, base in BASE_FIELDS.items()}
        used = set()
        for path in mapping.paths():
            root, _, rest = path.partition(".")
            if root not in ROOTS or not rest:
                raise CrmMappingError(
                    f"the Salesforce mapping reads {{{path}}}; paths start with "
                    f"{', '.join(r + '.' for r in ROOTS)} (see deckgen/data/crm-salesforce.yaml)")
            used.add(root)
            if rest.lower() not in {f.lower() for f in fields[root]}:
                fields[root].append(rest)
        return {root: f for root, f in fields.items() if root == "Opportunity" or root in used}

    @staticmethod
    def _limit(mapping: FieldMapping, source: str, default: int) -> int:
        parts: list[Template | Each | None] = [*mapping.notes, *mapping.facts, mapping.contacts]
        limits = [p.limit or default for p in parts if isinstance(p, Each) and p.source == source]
        return max(limits, default=default)

    # --- the token and the client -------------------------------------------------------
    def _token(self) -> Salesforce:
        url = f"{self.creds.url}/services/oauth2/token"
        try:
            response = self.session.post(url, data={
                "grant_type": "client_credentials", "client_id": self.creds.client_id,
                "client_secret": self.creds.client_secret})
        except requests.RequestException as exc:
            raise _unreachable(exc, self.creds.url, "asking for a token") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise CrmUnavailable(f"Salesforce's token endpoint answered "
                                 f"{response.status_code}", retry_after=self._retry_after(30))
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not body.get("access_token"):
            reason = body.get("error") or f"HTTP {response.status_code}"
            said = body.get("error_description")
            raise CrmNotConfigured(
                f"Salesforce refused deckgen's connected-app credentials ({reason}"
                f"{': ' + said if said else ''}); check DECKGEN_SALESFORCE_CLIENT_ID and "
                f"_CLIENT_SECRET, and that the app's client-credentials flow has a run-as user")
        identity = str(body.get("id") or "").rstrip("/").rsplit("/", 1)[-1]
        self._user_id = identity if re.fullmatch(r"005[A-Za-z0-9]{12,15}", identity) else None
        return Salesforce(instance_url=body.get("instance_url") or self.creds.url,
                          session_id=body["access_token"], version=self.creds.api_version,
                          session=self.session)

    def _sf(self, stale: Salesforce | None = None) -> Salesforce:
        """The cached client; a new token when there is none, or when `stale` (a client whose
        token Salesforce just refused) is still the cached one."""
        with self._lock:
            if self._client is None or self._client is stale:
                self._client = self._token()
            return self._client

    def _call(self, obj: str, what: str, action: Any) -> Any:
        """`action(client)`, with one fresh token when the cached one expired, and every
        Salesforce failure translated. `obj` is the object called, `what` says which."""
        client = self._sf()
        try:
            try:
                return action(client)
            except SalesforceExpiredSession:
                client = self._sf(stale=client)
                try:
                    return action(client)
                except SalesforceExpiredSession:
                    raise CrmError("Salesforce refused a token it had just issued; check the "
                                   "connected app's run-as user and its API access") from None
        except SalesforceError as exc:
            raise self._translate(exc, obj, what) from None
        except requests.Timeout:
            raise CrmUnavailable(f"Salesforce did not answer in time ({what})",
                                 retry_after=self._retry_after(30)) from None
        except requests.RequestException as exc:
            raise _unreachable(exc, self.creds.url, what) from None

    def _retry_after(self, default: float) -> float:
        value = getattr(self.session.seen, "retry_after", None)
        try:
            return max(1.0, float(value)) if value else default
        except ValueError:
            return default

    def _translate(self, exc: SalesforceError, obj: str, what: str) -> CrmError:
        errors = _errors(exc)
        code = str(errors[0].get("errorCode", "")) if errors else ""
        message = str(errors[0].get("message", "")) if errors else ""
        if exc.status >= 500 or exc.status == 429 or code in BUSY:
            default = 300.0 if code == "REQUEST_LIMIT_EXCEEDED" else 30.0
            return CrmUnavailable(f"Salesforce is unavailable ({exc.status} {code or 'error'}"
                                  f"; {what})", retry_after=self._retry_after(default))
        unknown = NO_COLUMN.search(message) or NO_RELATION.search(message)
        if code in ("INVALID_FIELD", "INVALID_FIELD_FOR_INSERT_UPDATE") or unknown:
            return self._unknown_field(unknown.group(1) if unknown else "?", obj)
        if exc.status == 404 or code in ("NOT_FOUND", "ENTITY_IS_DELETED", "INVALID_ID_FIELD",
                                         "MALFORMED_ID"):
            return OpportunityNotFound(f"no Salesforce {what} ({code or 'NOT_FOUND'})")
        if exc.status == 403 or code.startswith("INSUFFICIENT_ACCESS") or code == "INVALID_TYPE":
            return CrmForbidden(f"Salesforce refused {what} ({code or exc.status}): the user "
                                f"deckgen acts as needs access to the {obj} object and this "
                                "record", details={"object": obj, "errorCode": code})
        return CrmError(f"Salesforce refused the request ({what}): {exc.status} {code}: "
                        f"{message[:200]}")

    def _unknown_field(self, name: str, obj: str) -> CrmFieldUnknown:
        """The error for a field (or relationship) `name` Salesforce does not know, naming the
        mapping path that reads it and the brief field it feeds."""
        owners = _owners(self.mapping)
        wb = self.mapping.write_back.get("field")
        if isinstance(wb, str):
            owners[f"Opportunity.{wb}"] = "write_back.field"
        crm_field, brief_field = f"{obj}.{name}", "?"
        for path, owner in owners.items():
            if name.lower() in (part.lower() for part in path.split(".")[1:]):
                crm_field, brief_field = path, owner
                break
        return CrmFieldUnknown(
            f"the Salesforce mapping reads {crm_field} (for {brief_field}), but Salesforce has "
            f"no field {name} there, or hides it from deckgen's user (field-level security); "
            "fix the mapping or the field's visibility", field=brief_field, crm_field=crm_field)

    # --- the protocol --------------------------------------------------------------------
    def _check(self, opportunity_id: str) -> str:
        if not isinstance(opportunity_id, str) or not ID.fullmatch(opportunity_id):
            shown = opportunity_id[:40] if isinstance(opportunity_id, str) else opportunity_id
            raise OpportunityNotFound(f"{shown!r} is not a Salesforce opportunity id (15 or 18 "
                                      "letters and digits, starting 006)")
        return opportunity_id

    def _query(self, what: str, soql: str) -> list[dict[str, Any]]:
        obj = what.split()[0]
        result = self._call(obj, f"reading {what}", lambda sf: sf.query_all(soql))
        return [_clean(r) for r in result.get("records", [])]

    def resolve(self, opportunity_id: str) -> Opportunity:
        oid = self._check(opportunity_id)
        rows = self._query(f"Opportunity {oid}", format_soql(
            "SELECT {:literal} FROM Opportunity WHERE Id = {}",
            ", ".join(self.fields["Opportunity"]), oid))
        if not rows:
            self._missing(oid)
        view: dict[str, Any] = {"Opportunity": rows[0]}
        if "ContactRoles" in self.fields:
            view["ContactRoles"] = self._query("OpportunityContactRole", format_soql(
                "SELECT {:literal} FROM OpportunityContactRole WHERE OpportunityId = {} "
                "ORDER BY IsPrimary DESC, CreatedDate ASC LIMIT {:literal}",
                ", ".join(self.fields["ContactRoles"]), oid, str(self.limits["ContactRoles"])))
        if "Notes" in self.fields:
            view["Notes"] = self._query("Task", format_soql(
                "SELECT {:literal} FROM Task WHERE WhatId = {} "
                "ORDER BY ActivityDate DESC NULLS LAST, CreatedDate DESC LIMIT {:literal}",
                ", ".join(self.fields["Notes"]), oid, str(self.limits["Notes"])))
        brief, missing = self.mapping.brief(view)
        name = self.mapping.name.render(view) if self.mapping.name else rows[0].get("Name")
        stage = (self.mapping.stage.render(view) if self.mapping.stage
                 else rows[0].get("StageName"))
        rid = str(rows[0].get("Id") or oid)  # the 18-character id, also for a 15 asked
        return Opportunity("salesforce", rid, brief, name=name or None, stage=stage or None,
                           url=f"{self.creds.url}/lightning/r/Opportunity/{rid}/view",
                           missing=missing)

    def _missing(self, oid: str) -> None:
        """No row: SOQL leaves out records outside the user's sharing, so ask Salesforce's
        UserRecordAccess whether the record is there but not shared with deckgen's user."""
        if self._user_id:
            rows = self._query(f"Opportunity {oid}", format_soql(
                "SELECT RecordId, HasReadAccess FROM UserRecordAccess WHERE UserId = {} "
                "AND RecordId = {}", self._user_id, oid))
            if rows and not rows[0].get("HasReadAccess"):
                raise CrmForbidden(
                    f"Salesforce opportunity {oid} is not shared with the Salesforce user "
                    "deckgen acts as; share it (or its account) with that user",
                    details={"object": "Opportunity", "id": oid})
        raise OpportunityNotFound(f"no Salesforce opportunity {oid}")

    def write_back(self, opportunity_id: str, link: DeckLink) -> None:
        """The link into the mapping's `write_back.field` (a PATCH: the same on a retry),
        then a completed Task, unless an identical one is already on the record (so a retry
        after a lost answer does not add a second)."""
        oid = self._check(opportunity_id)
        field = self.mapping.write_back.get("field")
        note = bool(self.mapping.write_back.get("note", not field))
        if field:
            if not isinstance(field, str) or not NAME.fullmatch(field) or "." in field:
                raise CrmMappingError(f"write_back.field {field!r} is not a Salesforce field "
                                      "name such as Deck_URL__c")
            self._call("Opportunity", f"updating Opportunity {oid}",
                       lambda sf: sf.Opportunity.update(oid, {field: link.url}))
        if not note:
            return
        subject = "Deck ready" if link.status == "ok" else "Deck needs a look"
        text = link.note()
        existing = self._query(f"Task on Opportunity {oid}", format_soql(
            "SELECT Id, Description FROM Task WHERE WhatId = {} AND Subject = {} "
            "ORDER BY CreatedDate DESC LIMIT 50", oid, subject))
        if any((t.get("Description") or "").replace("\r\n", "\n") == text for t in existing):
            return
        self._call("Task", f"adding a Task to Opportunity {oid}", lambda sf: sf.Task.create({
            "WhatId": oid, "Subject": subject, "Description": text, "Status": "Completed",
            "ActivityDate": datetime.now(UTC).date().isoformat()}))

    def changed_since(self, since: datetime | None, limit: int = 500) -> list[str]:
        where = "IsClosed = false"
        if since is not None:
            moment = since if since.tzinfo else since.replace(tzinfo=UTC)
            where += " AND LastModifiedDate > " + moment.astimezone(UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ")
        limit = max(1, min(int(limit), 50_000))
        rows = self._query("Opportunity", f"SELECT Id FROM Opportunity WHERE {where} "
                                          f"ORDER BY LastModifiedDate ASC, Id ASC LIMIT {limit}")
        return [str(r["Id"]) for r in rows]


def _owners(mapping: FieldMapping) -> dict[str, str]:
    """Each path the mapping reads (list items as `Source.field`) -> the brief field it feeds."""
    parts: dict[str, list[Template | Each | None]] = {
        "client": [mapping.client], "industry": [mapping.industry],
        "opportunity": [mapping.opportunity], "notes": list(mapping.notes),
        "contacts": [mapping.contacts], "metrics": list(mapping.metrics.values()),
        "facts": list(mapping.facts), "record.name": [mapping.name],
        "record.stage": [mapping.stage]}
    owners: dict[str, str] = {}
    for brief_field, found in parts.items():
        for part in found:
            if isinstance(part, Template):
                paths = list(part.paths)
            elif isinstance(part, Each):
                paths = [f"{part.source}.{p}" for t in part.fields.values() for p in t.paths]
            else:
                paths = []
            for path in paths:
                owners.setdefault(path, brief_field)
    return owners


def _clean(value: Any) -> Any:
    """A query record as plain data: Salesforce's `attributes` dropped, relations nested."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k != "attributes"}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
