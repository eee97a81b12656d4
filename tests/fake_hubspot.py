"""A fake HubSpot CRM v3 API on 127.0.0.1, for tests.

It speaks the HTTP protocol `hubspot-api-client` speaks when built with `host=fake.url`:
object reads (`GET /crm/v3/objects/deals/{id}?properties=...&associations=...`, associations
listed once per association type, as v3 does), batch reads of companies, contacts and notes
(207 with `errors` for ids it does not have), deal updates (400 PROPERTY_DOESNT_EXIST for a
property the portal lacks), note creation with associations, the deal search
(`filterGroups`, `sorts`, `limit`, `after`) and the account details. Properties behave as in
HubSpot: each object type has a set of defined properties; a defined property with no value
reads as null, an undefined one is left out. Errors use HubSpot's body (`status`, `message`,
`correlationId`, `category`). A private-app token carries scopes (401 for an unknown token,
403 MISSING_SCOPES for a call its scopes don't allow); `fail_next` scripts failures (429
with Retry-After, 5xx); every request is recorded in `calls`."""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

JSON = dict[str, Any]
TYPES = ("deals", "companies", "contacts", "notes")
ALL_SCOPES = frozenset({"crm.objects.deals.read", "crm.objects.deals.write",
                        "crm.objects.companies.read", "crm.objects.contacts.read"})
TOKEN = "pat-na1-test"  # the private-app token the `hubspot` fixture (conftest) accepts
NOTE_TO_DEAL = 214  # HUBSPOT_DEFINED association type id: note -> deal
DEFINED = {  # the properties each object type has in a fresh portal (a subset)
    "deals": {"dealname", "dealstage", "pipeline", "amount", "closedate", "description",
              "hs_is_closed", "hs_lastmodifieddate", "createdate", "hs_object_id"},
    "companies": {"name", "industry", "domain", "numberofemployees", "city", "createdate",
                  "hs_lastmodifieddate", "hs_object_id"},
    "contacts": {"firstname", "lastname", "jobtitle", "email", "createdate",
                 "lastmodifieddate", "hs_object_id"},
    "notes": {"hs_note_body", "hs_timestamp", "hs_lastmodifieddate", "createdate",
              "hs_object_id"},
}
ALWAYS = ("hs_object_id", "createdate", "hs_lastmodifieddate")
SEARCH_DEFAULT = ("dealname", "amount", "closedate", "pipeline", "dealstage")
MESSAGES = {429: "You have reached your ten_secondly_rolling limit.",
            500: "internal error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout"}
CATEGORIES = {400: "VALIDATION_ERROR", 401: "INVALID_AUTHENTICATION", 403: "MISSING_SCOPES",
              404: "OBJECT_NOT_FOUND", 429: "RATE_LIMITS", 500: "INTERNAL_ERROR"}


class HubSpotError(Exception):
    def __init__(self, status: int, message: str, category: str | None = None,
                 extra: JSON | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers
        self.category = category or CATEGORIES.get(status, "INTERNAL_ERROR")
        self.extra = extra or {}

    def response(self) -> Response:
        body = {"status": "error", "message": self.message,
                "correlationId": str(uuid.uuid4()), "category": self.category, **self.extra}
        return _json(body, self.status, self.headers)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: Any) -> datetime | None:
    """A HubSpot datetime value: ISO 8601 text or milliseconds since the epoch."""
    if value is None or value == "":
        return None
    text = str(value)
    if re.fullmatch(r"-?\d+", text):
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    found = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return found if found.tzinfo else found.replace(tzinfo=UTC)


class FakeHubSpot:
    def __init__(self, portal_id: int = 4242) -> None:
        self.portal_id = portal_id
        self.objects: dict[str, dict[str, JSON]] = {t: {} for t in TYPES}
        self.defined: dict[str, set[str]] = copy.deepcopy(DEFINED)
        # (from type, from id) -> list of (to type, to id, [association type names])
        self.links: dict[tuple[str, str], list[tuple[str, str, list[str]]]] = {}
        self.tokens: dict[str, frozenset[str]] = {}
        self.calls: list[JSON] = []
        self.failures: deque[tuple[int, dict[str, str] | None]] = deque()
        self.ids = itertools.count(1001)
        self.lock = threading.RLock()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    def start(self) -> FakeHubSpot:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- test-side controls ------------------------------------------------------------
    def add_token(self, token: str, scopes: set[str] | frozenset[str] = ALL_SCOPES) -> str:
        with self.lock:
            self.tokens[token] = frozenset(scopes)
        return token

    def add(self, kind: str, properties: JSON, modified: str | None = None) -> str:
        """Stores an object (new properties become defined ones) and returns its id."""
        with self.lock:
            oid = str(next(self.ids))
            stamp = modified or now_iso()
            props = {k: None if v is None else str(v) for k, v in properties.items()}
            self.defined[kind] |= set(props)
            props.update(hs_object_id=oid, createdate=stamp, hs_lastmodifieddate=stamp)
            self.objects[kind][oid] = {"id": oid, "properties": props, "createdAt": stamp,
                                       "updatedAt": stamp, "archived": False}
            self._derive(kind, oid)
        return oid

    def associate(self, kind: str, oid: str, to_kind: str, to_id: str,
                  types: tuple[str, ...] | None = None) -> None:
        """Links two objects both ways. `types` are the association type names a v3 read
        lists, one entry each (a deal's primary company is `deal_to_company` and
        `deal_to_company_unlabeled`, as in HubSpot)."""
        single = {"companies": "company", "contacts": "contact", "deals": "deal",
                  "notes": "note"}
        a, b = single[kind], single[to_kind]
        if types is None:
            types = (f"{a}_to_{b}",) + ((f"{a}_to_{b}_unlabeled",) if b == "company" else ())
        back = tuple(t.replace(f"{a}_to_{b}", f"{b}_to_{a}") for t in types)
        with self.lock:
            self.links.setdefault((kind, oid), []).append((to_kind, to_id, list(types)))
            self.links.setdefault((to_kind, to_id), []).append((kind, oid, list(back)))

    def set(self, kind: str, oid: str, modified: str | None = None, **properties: Any) -> None:
        with self.lock:
            obj = self.objects[kind][oid]
            obj["properties"].update({k: None if v is None else str(v)
                                      for k, v in properties.items()})
            self.defined[kind] |= set(properties)
            self._touch(kind, oid, modified)

    def associated(self, kind: str, oid: str, to_kind: str) -> list[str]:
        with self.lock:
            return list(dict.fromkeys(i for t, i, _ in self.links.get((kind, oid), [])
                                      if t == to_kind))

    def fail_next(self, status: int, times: int = 1,
                  headers: dict[str, str] | None = None) -> None:
        """The next `times` API calls fail with `status` (429 says Retry-After: 1 unless
        `headers` say otherwise)."""
        if status == 429 and headers is None:
            headers = {"Retry-After": "1"}
        with self.lock:
            self.failures.extend([(status, headers)] * times)

    def requests(self, method: str | None = None, path: str = "") -> list[JSON]:
        with self.lock:
            return [c for c in self.calls if (method is None or c["method"] == method)
                    and c["path"].startswith(path)]

    def _touch(self, kind: str, oid: str, modified: str | None = None) -> None:
        obj = self.objects[kind][oid]
        stamp = modified or now_iso()
        obj["updatedAt"] = obj["properties"]["hs_lastmodifieddate"] = stamp
        self._derive(kind, oid)

    def _derive(self, kind: str, oid: str) -> None:
        if kind == "deals":  # a calculated property, as in HubSpot
            props = self.objects[kind][oid]["properties"]
            props["hs_is_closed"] = str(props.get("dealstage") in ("closedwon", "closedlost")
                                        ).lower()

    # --- HTTP ----------------------------------------------------------------------------
    def app(self, environ: JSON, start_response: Any) -> Any:
        request = Request(environ)
        header = request.headers.get("Authorization", "")
        body = request.get_data(as_text=True)
        call = {"method": request.method, "path": request.path,
                "query": request.args.to_dict(flat=False),
                "body": json.loads(body) if body else None,
                "token": header[7:] if header.startswith("Bearer ") else None}
        with self.lock:
            self.calls.append(call)
        try:
            response = self._route(request, call)
        except HubSpotError as exc:
            response = exc.response()
        call["status"] = response.status_code
        return response(environ, start_response)

    def _route(self, request: Request, call: JSON) -> Response:
        self._fail_if_scripted()
        scopes = self._scopes(call["token"])
        path, method, body = request.path, request.method, call["body"]
        if path == "/account-info/v3/details" and method == "GET":
            return _json({"portalId": self.portal_id, "accountType": "STANDARD",
                          "timeZone": "US/Eastern", "companyCurrency": "USD",
                          "additionalCurrencies": [], "utcOffset": "-05:00",
                          "utcOffsetMilliseconds": -18000000, "uiDomain": "app.hubspot.com",
                          "dataHostingLocation": "na1"})
        m = re.fullmatch(r"/crm/v3/objects/(\w+)(?:/(\w+))?(?:/(\w+))?", path)
        if not m or m.group(1) not in TYPES:
            raise HubSpotError(404, f"Unable to route {method} request: {path}",
                               "OBJECT_NOT_FOUND")
        kind, part, sub = m.groups()
        if (part, sub, method) == ("batch", "read", "POST"):
            self._need(scopes, kind, "read")
            return self._batch_read(kind, body)
        if kind == "deals" and (part, sub, method) == ("search", None, "POST"):
            self._need(scopes, kind, "read")
            return self._search(body)
        if kind == "notes" and part is None and method == "POST":
            self._need(scopes, "deals", "read")
            return self._create_note(body)
        if kind == "deals" and part and sub is None and method == "GET":
            self._need(scopes, kind, "read")
            return self._read(kind, part, request.args.getlist("properties"),
                              request.args.getlist("associations"))
        if kind == "deals" and part and sub is None and method == "PATCH":
            self._need(scopes, kind, "write")
            return self._update(kind, part, body)
        raise HubSpotError(404, f"Unable to route {method} request: {path}", "OBJECT_NOT_FOUND")

    def _fail_if_scripted(self) -> None:
        with self.lock:
            if not self.failures:
                return
            status, headers = self.failures.popleft()
        extra = {"errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"} \
            if status == 429 else None
        raise HubSpotError(status, MESSAGES.get(status, "Scripted failure."), extra=extra,
                           headers=headers)

    def _scopes(self, token: str | None) -> frozenset[str]:
        with self.lock:
            scopes = self.tokens.get(token or "")
        if scopes is None:
            raise HubSpotError(401, "Authentication credentials not found. This API supports "
                               "OAuth 2.0 authentication and you can find more details at "
                               "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                               "INVALID_AUTHENTICATION")
        return scopes

    @staticmethod
    def _need(scopes: frozenset[str], kind: str, access: str) -> None:
        # notes ride on the scopes of the records they hang on (here: deals)
        scope = f"crm.objects.{'deals' if kind == 'notes' else kind}.{access}"
        if scope not in scopes:
            raise HubSpotError(
                403, "This app hasn't been granted all required scopes to make this call. "
                "Read more about required scopes here: https://developers.hubspot.com/scopes.",
                "MISSING_SCOPES", extra={"errors": [{
                    "message": "One or more of the following scopes are required.",
                    "context": {"requiredGranularScopes": [scope]}}]})

    def _view(self, kind: str, obj: JSON, wanted: list[str] | tuple[str, ...]) -> JSON:
        names = [n for n in dict.fromkeys([*ALWAYS, *wanted]) if n in self.defined[kind]]
        props = {n: obj["properties"].get(n) for n in names}
        return {"id": obj["id"], "properties": props, "createdAt": obj["createdAt"],
                "updatedAt": obj["updatedAt"], "archived": False}

    def _read(self, kind: str, oid: str, properties: list[str],
              associations: list[str]) -> Response:
        wanted = [p for v in properties for p in v.split(",") if p]
        assoc = [a for v in associations for a in v.split(",") if a]
        with self.lock:
            obj = self.objects[kind].get(oid)
            if obj is None:
                raise HubSpotError(404, "resource not found", "OBJECT_NOT_FOUND")
            out = self._view(kind, obj, wanted or SEARCH_DEFAULT)
            found: JSON = {}
            for to_kind in assoc:
                rows = [{"id": i, "type": t} for k, i, types in self.links.get((kind, oid), [])
                        if k == to_kind for t in types]
                if rows:
                    found[to_kind] = {"results": rows}
        if found:
            out["associations"] = found
        return _json(out)

    def _batch_read(self, kind: str, body: Any) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise HubSpotError(400, "Invalid input JSON on line 1, column 2: inputs is required")
        if len(body["inputs"]) > 100:
            raise HubSpotError(400, "Batch input limit of 100 exceeded")
        started = now_iso()
        results, missing = [], []
        with self.lock:
            for item in body["inputs"]:
                obj = self.objects[kind].get(str(item.get("id")))
                if obj is None:
                    missing.append(str(item.get("id")))
                else:
                    results.append(self._view(kind, obj, body.get("properties") or ()))
        out: JSON = {"status": "COMPLETE", "results": results, "startedAt": started,
                     "completedAt": now_iso()}
        if missing:
            out["numErrors"] = 1
            out["errors"] = [{"status": "error", "category": "OBJECT_NOT_FOUND",
                              "message": "Could not get some objects, they may be deleted or "
                                         "not exist. Check that ids are valid.",
                              "context": {"ids": missing}}]
            return _json(out, 207)
        return _json(out)

    def _update(self, kind: str, oid: str, body: Any) -> Response:
        props = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(props, dict):
            raise HubSpotError(400, "Invalid input JSON: properties is required")
        with self.lock:
            if oid not in self.objects[kind]:
                raise HubSpotError(404, "resource not found", "OBJECT_NOT_FOUND")
            unknown = [p for p in props if p not in self.defined[kind]]
            if unknown:
                details = [{"isValid": False, "message": f'Property "{p}" does not exist',
                            "error": "PROPERTY_DOESNT_EXIST", "name": p} for p in unknown]
                raise HubSpotError(400, f"Property values were not valid: "
                                        f"{json.dumps(details)}", "VALIDATION_ERROR")
            self.objects[kind][oid]["properties"].update(
                {k: None if v is None else str(v) for k, v in props.items()})
            self._touch(kind, oid)
            return _json(self._view(kind, self.objects[kind][oid], list(props)))

    def _create_note(self, body: Any) -> Response:
        props = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(props, dict) or not props.get("hs_timestamp"):
            raise HubSpotError(400, "Property values were not valid: hs_timestamp is required")
        targets = []
        for link in body.get("associations") or []:
            spec = (link.get("types") or [{}])[0]
            if (spec.get("associationCategory"), spec.get("associationTypeId")) != (
                    "HUBSPOT_DEFINED", NOTE_TO_DEAL):
                raise HubSpotError(400, f"invalid association type {spec} from note to deal")
            deal = str((link.get("to") or {}).get("id"))
            with self.lock:
                if deal not in self.objects["deals"]:
                    raise HubSpotError(400, f"No deal with id {deal} to associate the note to")
            targets.append(deal)
        oid = self.add("notes", props)
        for deal in targets:
            self.associate("notes", oid, "deals", deal)
        with self.lock:
            return _json(self._view("notes", self.objects["notes"][oid], list(props)), 201)

    def _search(self, body: Any) -> Response:
        body = body if isinstance(body, dict) else {}
        limit = int(body.get("limit") or 10)
        if limit > 200:
            raise HubSpotError(400, "limit must be at most 200")
        groups = body.get("filterGroups") or []
        with self.lock:
            found = [o for o in self.objects["deals"].values()
                     if not groups or any(all(_match(o["properties"], f)
                                              for f in g.get("filters", [])) for g in groups)]
            for sort in reversed(body.get("sorts") or []):
                name, desc = (sort, False) if isinstance(sort, str) else (
                    sort["propertyName"], sort.get("direction") == "DESCENDING")
                found.sort(key=lambda o: _key(o["properties"].get(name)), reverse=desc)
            start = int(body.get("after") or 0)
            page = [self._view("deals", o, body.get("properties") or SEARCH_DEFAULT)
                    for o in found[start:start + limit]]
        out: JSON = {"total": len(found), "results": page}
        if start + limit < len(found):
            after = str(start + limit)
            out["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
        return _json(out)


def _key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    try:
        return (1, _number(value))
    except ValueError:
        return (1, str(value))


def _match(props: JSON, f: JSON) -> bool:
    op, value, have = f.get("operator"), f.get("value"), props.get(f.get("propertyName", ""))
    if op == "HAS_PROPERTY":
        return have not in (None, "")
    if op == "NOT_HAS_PROPERTY":
        return have in (None, "")
    if op in ("EQ", "NEQ"):
        same = have is not None and str(have).lower() == str(value).lower()
        return same if op == "EQ" else not same
    if op in ("GT", "GTE", "LT", "LTE"):
        if have in (None, ""):
            return False
        try:
            a, b = _number(have), _number(value)
        except (TypeError, ValueError):
            raise HubSpotError(400, f"cannot compare {f.get('propertyName')}") from None
        return {"GT": a > b, "GTE": a >= b, "LT": a < b, "LTE": a <= b}[op]
    raise HubSpotError(400, f"operator {op} is not supported by this fake")


def _number(value: Any) -> float:
    """A number, or a datetime (ISO text or epoch ms) as epoch milliseconds."""
    text = str(value)
    if "-" in text.lstrip("-") or "T" in text:
        moment = parse_time(text)
        assert moment is not None
        return moment.timestamp() * 1000
    return float(text)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status=status, headers=headers,
                    content_type="application/json;charset=utf-8")
