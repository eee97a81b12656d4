"""HubSpot as a brief provider: a deal (with its first associated company, its contacts and its
notes) read over the CRM v3 API with `hubspot-api-client`, mapped to a brief by the operator's
mapping; the finished deck's link written back as a deal property and/or a note on the deal;
and the open deals changed since a time, for schedules. This module owns the record view the
mapping reads (`{"deal", "company", "contacts", "notes"}`), the HTML-to-text of note bodies,
the client's one retry policy (a 429 is retried a few times as its Retry-After says, since
HubSpot did nothing with the request; nothing else is retried here) and the translation of
HubSpot's answers into the `deckgen.crm.errors` family: 5xx, a 429 that outlasts the retries,
timeouts and refused connections raise CrmUnavailable, and the caller decides when to try
again. The token is a private-app token (or an OAuth access token someone else refreshes):
HubSpot has no refresh flow for a private-app token, so a 401 is a configuration error."""

from __future__ import annotations

import html
import json
import re
import threading
import time
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import hubspot.crm.companies as hs_companies
import hubspot.crm.contacts as hs_contacts
import hubspot.crm.deals as hs_deals
import hubspot.crm.objects.notes as hs_notes
from hubspot import HubSpot
from urllib3.exceptions import HTTPError as TransportError
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from deckgen.crm import DeckLink, Opportunity
from deckgen.crm.directory import HubSpotCredentials
from deckgen.crm.errors import (
    CrmError,
    CrmFieldMissing,
    CrmForbidden,
    CrmMappingError,
    CrmNotConfigured,
    CrmUnavailable,
    OpportunityNotFound,
)
from deckgen.crm.mapping import FieldMapping

__all__ = ["HubSpotProvider", "html_to_text"]

ID = re.compile(r"[0-9]{1,20}")
ROOTS = {"deal": "deals", "company": "companies", "contacts": "contacts", "notes": "notes"}
NOTE_PROPERTIES = {"body": "hs_note_body", "timestamp": "hs_timestamp"}
NOTE_TO_DEAL = 214  # HUBSPOT_DEFINED association type: note -> deal
BATCH = 100  # HubSpot's batch-read limit
MAX_CONTACTS, MAX_NOTES = 100, 500  # read per deal; the mapping keeps fewer
PAGE = 200  # the search API's largest page
API_ERRORS = (hs_deals.ApiException, hs_companies.ApiException, hs_contacts.ApiException,
              hs_notes.ApiException)
SCOPES = {"deals": "crm.objects.deals", "companies": "crm.objects.companies",
          "contacts": "crm.objects.contacts", "notes": "crm.objects.deals"}


class _RateLimitRetry(Retry):
    """urllib3's Retry, for HubSpot's 429 only: nothing was done with the request, so any
    method may go again, after the Retry-After HubSpot sends (or a short backoff). A wait
    longer than MAX_WAIT is not slept through: the 429 comes back and becomes CrmUnavailable
    with that Retry-After, so no worker sleeps on HubSpot's clock."""

    MAX_WAIT = 10.0

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        return status_code == 429

    def increment(self, method: str | None = None, url: str | None = None,
                  response: Any = None, error: Exception | None = None, _pool: Any = None,
                  _stacktrace: Any = None) -> _RateLimitRetry:
        wait = response.headers.get("Retry-After") if response is not None else None
        if wait and self.parse_retry_after(wait) > self.MAX_WAIT:
            raise MaxRetryError(_pool, url or "", ResponseError(f"Retry-After: {wait}"))
        return super().increment(method, url, response, error, _pool, _stacktrace)


class _Text(HTMLParser):
    BLOCKS = {"p", "div", "br", "li", "ul", "ol", "tr", "h1", "h2", "h3", "h4", "h5", "h6",
              "blockquote", "pre", "table", "hr"}
    SKIP = {"script", "style", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(body: str | None) -> str:
    """A note body (HubSpot stores HTML) as plain text: one line per block, entities decoded,
    runs of spaces collapsed."""
    parser = _Text()
    parser.feed(body or "")
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def note_html(link: DeckLink) -> str:
    """The note deckgen leaves on a deal: the link as a link, one paragraph per line."""
    first, *rest = link.note().split("\n")
    url = html.escape(link.url, quote=True)
    lines = [html.escape(first).replace(url, f'<a href="{url}">{url}</a>', 1),
             *(html.escape(line) for line in rest)]
    return "".join(f"<p>{line}</p>" for line in lines)


def _date(value: Any) -> str:
    """hs_timestamp (ISO text or epoch milliseconds) as YYYY-MM-DD; "" when absent."""
    text = str(value or "")
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, UTC).date().isoformat()
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        return text[:10]


class HubSpotProvider:
    name = "hubspot"

    def __init__(self, creds: HubSpotCredentials, mapping: FieldMapping, *,
                 timeout: float = 20.0, retries: int = 3, portal_id: str | None = None,
                 page_size: int = PAGE) -> None:
        self.mapping = mapping
        self.page_size = max(1, min(page_size, PAGE))
        self.timeout = (min(timeout, 10.0), timeout)
        self.wanted = self._wanted(mapping)
        retry = _RateLimitRetry(total=retries, connect=2, read=0, redirect=0, other=0,
                                status=retries, backoff_factor=0.5, allowed_methods=None,
                                raise_on_status=False, respect_retry_after_header=True)
        options: dict[str, Any] = {"host": creds.url}
        if creds.ca_bundle:
            options["ssl_ca_cert"] = creds.ca_bundle
        client = HubSpot(access_token=creds.token, retry=retry, **options)
        self.deals = client.crm.deals.basic_api
        self.deal_search = client.crm.deals.search_api
        self.batches = {"companies": (hs_companies, client.crm.companies.batch_api),
                        "contacts": (hs_contacts, client.crm.contacts.batch_api),
                        "notes": (hs_notes, client.crm.objects.notes.batch_api)}
        self.notes = client.crm.objects.notes.basic_api
        self.write = mapping.write_back.get("property") or mapping.write_back.get("field")
        self.note = bool(mapping.write_back.get("note", True))
        self._portal: tuple[str, str] | None = (
            (str(portal_id), "app.hubspot.com") if portal_id else None)
        self._portal_checked = 0.0
        self._lock = threading.Lock()

    @staticmethod
    def _wanted(mapping: FieldMapping) -> dict[str, list[str]]:
        """The properties to read per object type, from the paths the mapping reads."""
        wanted: dict[str, list[str]] = {kind: [] for kind in ROOTS.values()}
        for path in mapping.paths():
            root, _, rest = path.partition(".")
            if root not in ROOTS or not rest:
                raise CrmMappingError(
                    f"the HubSpot mapping reads {{{path}}}; paths start with "
                    f"{', '.join(r + '.' for r in ROOTS)}")
            prop = rest.split(".")[0]
            if root == "notes":
                if prop not in NOTE_PROPERTIES:
                    raise CrmMappingError(f"the HubSpot mapping reads {{{path}}}; a note has "
                                          f"{', '.join(NOTE_PROPERTIES)}")
                prop = NOTE_PROPERTIES[prop]
            wanted[ROOTS[root]].append(prop)
        if wanted["notes"]:
            wanted["notes"] = list(dict.fromkeys([*wanted["notes"], "hs_timestamp"]))
        return {kind: list(dict.fromkeys(props)) for kind, props in wanted.items()}

    # --- the CrmProvider protocol -------------------------------------------------------
    def resolve(self, opportunity_id: str) -> Opportunity:
        deal_id = self._id(opportunity_id)
        kinds = [k for k in ("companies", "contacts", "notes") if self.wanted[k]]
        deal = self._call("deals", lambda: self.deals.get_by_id(
            deal_id, properties=self.wanted["deals"] or ["dealname"],
            associations=kinds or None, _request_timeout=self.timeout), deal_id)
        linked = self._associations(deal, kinds)
        record: dict[str, Any] = {"deal": dict(deal.properties or {}), "company": {},
                                  "contacts": [], "notes": []}
        if linked.get("companies"):
            found = self._batch("companies", linked["companies"][:1])
            record["company"] = found[0] if found else {}
        if linked.get("contacts"):
            record["contacts"] = self._batch("contacts", linked["contacts"][:MAX_CONTACTS])
        if linked.get("notes"):
            notes = self._batch("notes", linked["notes"][:MAX_NOTES])
            notes.sort(key=lambda n: str(n.get("hs_timestamp") or ""), reverse=True)
            record["notes"] = [{"body": html_to_text(n.get("hs_note_body")),
                                "timestamp": _date(n.get("hs_timestamp"))} for n in notes]
        brief, missing = self.mapping.brief(record)
        name = self.mapping.name.render(record) if self.mapping.name else None
        stage = self.mapping.stage.render(record) if self.mapping.stage else None
        return Opportunity("hubspot", deal_id, brief, name or None, stage or None,
                           self._url(deal_id), missing)

    def write_back(self, opportunity_id: str, link: DeckLink) -> None:
        """Sets the mapped deal property to the deck's URL, then adds the note unless the deal
        already has one with the same text: a retry after a failure midway (or after a
        created note whose answer was lost) sets the property again and adds no second note."""
        deal_id = self._id(opportunity_id)
        if self.write:
            body = hs_deals.SimplePublicObjectInput(properties={self.write: link.url})
            self._call("deals", lambda: self.deals.update(
                deal_id, simple_public_object_input=body, _request_timeout=self.timeout),
                deal_id, writing=True)
        if not self.note:
            return
        deal = self._call("deals", lambda: self.deals.get_by_id(
            deal_id, properties=["hs_object_id"], associations=["notes"],
            _request_timeout=self.timeout), deal_id)
        text = html_to_text(note_html(link))
        existing = self._associations(deal, ["notes"]).get("notes", [])[:MAX_NOTES]
        if existing and any(html_to_text(n.get("hs_note_body")) == text
                            for n in self._batch("notes", existing, ["hs_note_body"])):
            return
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        note = hs_notes.SimplePublicObjectInputForCreate(
            properties={"hs_note_body": note_html(link), "hs_timestamp": stamp},
            associations=[hs_notes.PublicAssociationsForObject(
                to=hs_notes.PublicObjectId(id=deal_id),
                types=[hs_notes.AssociationSpec(association_category="HUBSPOT_DEFINED",
                                                association_type_id=NOTE_TO_DEAL)])])
        self._call("notes", lambda: self.notes.create(
            simple_public_object_input_for_create=note, _request_timeout=self.timeout),
            deal_id, writing=True)

    def changed_since(self, since: datetime | None, limit: int = 500) -> list[str]:
        filters = [hs_deals.Filter(property_name="hs_is_closed", operator="EQ", value="false")]
        if since is not None:
            moment = since if since.tzinfo else since.replace(tzinfo=UTC)
            filters.append(hs_deals.Filter(property_name="hs_lastmodifieddate", operator="GT",
                                           value=str(int(moment.timestamp() * 1000))))
        ids: list[str] = []
        after: str | None = None
        while len(ids) < limit:
            request = hs_deals.PublicObjectSearchRequest(
                filter_groups=[hs_deals.FilterGroup(filters=filters)],
                sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                properties=["hs_lastmodifieddate"], limit=min(self.page_size, limit - len(ids)),
                after=after)
            page = self._call("deals", lambda r=request: self.deal_search.do_search(
                public_object_search_request=r, _request_timeout=self.timeout), None)
            ids.extend(str(d.id) for d in page.results or [])
            after = page.paging.next.after if page.paging and page.paging.next else None
            if not after or not page.results:
                break
        return list(dict.fromkeys(ids))[:limit]

    # --- reading ---------------------------------------------------------------------------
    @staticmethod
    def _id(opportunity_id: str) -> str:
        text = str(opportunity_id).strip()
        if not ID.fullmatch(text):
            raise OpportunityNotFound(f"no HubSpot deal {opportunity_id!r}: a deal id is a "
                                      "number (the one in the deal's address)")
        return text

    @staticmethod
    def _associations(record: Any, kinds: list[str]) -> dict[str, list[str]]:
        """The ids associated per object type, each once: a v3 read lists an association
        once per association type (a primary company is `deal_to_company` and
        `deal_to_company_unlabeled`); a primary one goes first."""
        found: dict[str, list[str]] = {}
        for kind in kinds:
            rows = getattr((record.associations or {}).get(kind), "results", None) or []
            primary = [r.id for r in rows if not str(r.type).endswith("_unlabeled")
                       and kind == "companies"]
            found[kind] = list(dict.fromkeys([*primary, *(r.id for r in rows)]))
        return found

    def _batch(self, kind: str, ids: list[str],
               properties: list[str] | None = None) -> list[dict[str, Any]]:
        """The properties of the objects with these ids, in the order of `ids`; an id
        HubSpot no longer has (deleted since the association was read) is left out."""
        package, api = self.batches[kind]
        props = properties or self.wanted[kind]
        by_id: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), BATCH):
            body = package.BatchReadInputSimplePublicObjectId(
                properties=props, properties_with_history=[],
                inputs=[package.SimplePublicObjectId(id=i) for i in ids[start:start + BATCH]])
            answer = self._call(kind, lambda b=body, a=api: a.read(
                batch_read_input_simple_public_object_id=b, _request_timeout=self.timeout),
                None)
            by_id.update({str(r.id): dict(r.properties or {}) for r in answer.results or []})
        return [by_id[i] for i in ids if i in by_id]

    def _url(self, deal_id: str) -> str | None:
        """The deal in HubSpot's UI: the portal id and UI domain come from the account
        details, read once (and again after ten minutes when that read failed)."""
        with self._lock:
            portal, checked = self._portal, self._portal_checked
        if portal is None and (checked == 0.0 or time.monotonic() - checked > 600):
            try:
                found = self._call("account", lambda: self.deals.api_client.call_api(
                    "/account-info/v3/details", "GET", auth_settings=["oauth2"],
                    response_types_map={200: "object"}, _return_http_data_only=True,
                    _request_timeout=self.timeout), None)
                if isinstance(found, dict) and found.get("portalId"):
                    portal = (str(found["portalId"]), str(found.get("uiDomain")
                                                          or "app.hubspot.com"))
            except CrmError:
                portal = None
            with self._lock:
                self._portal, self._portal_checked = portal, time.monotonic()
        return f"https://{portal[1]}/contacts/{portal[0]}/deal/{deal_id}" if portal else None

    # --- errors ----------------------------------------------------------------------------
    def _call(self, kind: str, call: Any, deal_id: str | None, writing: bool = False) -> Any:
        try:
            return call()
        except API_ERRORS as exc:
            raise self._error(exc, kind, deal_id, writing) from None
        except TransportError as exc:
            raise CrmUnavailable(f"HubSpot cannot be reached ({type(exc).__name__}); "
                                 "try again shortly", retry_after=10.0) from None
        except ValueError as exc:  # the client could not read HubSpot's answer
            raise CrmError(f"HubSpot answered in a shape deckgen does not understand: "
                           f"{exc}") from None

    def _error(self, exc: Any, kind: str, deal_id: str | None, writing: bool) -> CrmError:
        status = int(exc.status or 0)
        raw = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else exc.body
        try:
            body = json.loads(raw or "{}")
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        message, category = str(body.get("message") or exc.reason or ""), body.get("category")
        headers = exc.headers or {}
        what = f"deal {deal_id}" if deal_id else f"HubSpot {kind}"
        if status == 404 and kind == "deals":
            return OpportunityNotFound(f"no HubSpot deal {deal_id} (deleted, or in another "
                                       "HubSpot account than deckgen's token)")
        if status == 401:
            return CrmNotConfigured(
                "HubSpot refused deckgen's access token (" + (category or "401") + "): it is "
                "invalid, revoked or expired. A private-app token cannot be refreshed by "
                "deckgen: the operator sets a valid one in DECKGEN_HUBSPOT_TOKEN")
        if status == 403:
            needed = [s for e in body.get("errors") or [] if isinstance(e, dict)
                      for s in (e.get("context") or {}).get("requiredGranularScopes") or []]
            scope = ", ".join(needed) or (SCOPES.get(kind, "crm.objects." + kind) +
                                          (".write" if writing else ".read"))
            verb = "update" if writing else "read"
            return CrmForbidden(f"deckgen's HubSpot app may not {verb} {kind} ({what}); "
                                f"grant the private app the scope {scope}",
                                details={"object": kind, "scope": scope})
        if status == 429 or status >= 500:
            wait = headers.get("Retry-After")
            try:
                retry_after = max(1.0, float(wait)) if wait else (10.0 if status == 429 else 30.0)
            except ValueError:
                retry_after = 30.0
            state = "rate-limiting deckgen" if status == 429 else "unavailable"
            return CrmUnavailable(f"HubSpot is {state} ({status}) while deckgen "
                                  f"{'updates' if writing else 'reads'} {what}; try again "
                                  "shortly", retry_after=retry_after)
        if status == 400 and "PROPERTY_DOESNT_EXIST" in message and self.write:
            return CrmFieldMissing(f"the HubSpot deal property {self.write} (write_back.property "
                                   "in the mapping) does not exist; create it in HubSpot or "
                                   "change the mapping", field="write_back.property",
                                   crm_field=f"deal.{self.write}")
        return CrmError(f"HubSpot refused the request for {what} ({status} {category or ''}): "
                        f"{message[:300]}")
