"""A fake Salesforce org on 127.0.0.1, over TLS, for tests.

It speaks the REST protocol `simple-salesforce` speaks: the OAuth 2.0 client-credentials
token endpoint (`/services/oauth2/token`; a wrong secret is 400 invalid_client, as Salesforce
answers), `GET /services/data/vNN.N/query?q=SOQL`, `GET/PATCH .../sobjects/{Object}/{id}` and
`POST .../sobjects/{Object}/`. The SOQL it runs is parsed and evaluated by tests/fake_soql.py
(which subset, and its errors: INVALID_FIELD, INVALID_TYPE for an object the org lacks or the
user may not read, `deny_object`, MALFORMED_QUERY); this module is the org that query reads
and the HTTP around it. Answers have Salesforce's shape (`totalSize`, `done`, `records` with
`attributes`, related records nested, datetimes as 2024-05-01T12:00:00.000+0000) and errors
its body, `[{"message", "errorCode"}]`.

Access is the running user's, as Salesforce applies it: a record outside the user's sharing
(`hide`) is left out of query results (SOQL filters by sharing; it does not fail), a sObject
GET or PATCH of it answers 404 NOT_FOUND (the REST guide: "verify that there are no sharing
issues"), and a Task pointing at it is 400 INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY; a
record the user may read but not edit (`read_only`) answers a PATCH with 403
INSUFFICIENT_ACCESS_OR_READONLY. `UserRecordAccess` answers, for records that exist, whether
the user may read and edit them. Tokens expire on demand (`expire_tokens`: the next call is
401 INVALID_SESSION_ID); `fail_next` scripts failures; every request is in `log`."""

from __future__ import annotations

import itertools
import json
import re
import secrets
import ssl
import tempfile
import threading
from collections import deque
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import trustme
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.fake_soql import JSON, SoqlError, run_query

USER_ID = "005000000000001AAA"
ORG_ID = "00D000000000001AAA"
PREFIX = {"Opportunity": "006", "Account": "001", "Contact": "003",
          "OpportunityContactRole": "00K", "Task": "00T"}
_COMMON = {"Id": "id", "CreatedDate": "datetime", "LastModifiedDate": "datetime"}
SCHEMA: dict[str, dict[str, str]] = {
    "Opportunity": {**_COMMON, "Name": "string", "StageName": "string", "Amount": "number",
                    "CloseDate": "date", "Description": "string", "NextStep": "string",
                    "IsClosed": "boolean", "IsWon": "boolean", "AccountId": "reference",
                    "Probability": "number", "Type": "string", "LeadSource": "string"},
    "Account": {**_COMMON, "Name": "string", "Industry": "string",
                "NumberOfEmployees": "number", "AnnualRevenue": "number", "Website": "string",
                "Description": "string", "BillingCountry": "string"},
    "Contact": {**_COMMON, "Name": "string", "FirstName": "string", "LastName": "string",
                "Title": "string", "Email": "string", "AccountId": "reference"},
    "OpportunityContactRole": {**_COMMON, "OpportunityId": "reference",
                               "ContactId": "reference", "Role": "string",
                               "IsPrimary": "boolean"},
    "Task": {**_COMMON, "WhatId": "reference", "WhoId": "reference", "Subject": "string",
             "Description": "string", "ActivityDate": "date", "Status": "string",
             "Priority": "string"},
    "UserRecordAccess": {"Id": "id", "UserId": "reference", "RecordId": "string",
                         "HasReadAccess": "boolean", "HasEditAccess": "boolean",
                         "MaxAccessLevel": "string"},
}
RELATIONS = {  # object -> relationship name -> (foreign key, related object)
    "Opportunity": {"Account": ("AccountId", "Account")},
    "Contact": {"Account": ("AccountId", "Account")},
    "OpportunityContactRole": {"Contact": ("ContactId", "Contact"),
                               "Opportunity": ("OpportunityId", "Opportunity")},
}
READ_ONLY_FIELDS = {"Id", "CreatedDate", "LastModifiedDate", "IsClosed", "IsWon"}


class SfError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers

    def response(self) -> Response:
        return _json([{"message": self.message, "errorCode": self.code}], self.status,
                     self.headers)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, headers, content_type="application/json")


def sf_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


class FakeSalesforce:
    def __init__(self, client_id: str = "deckgen-app", client_secret: str = "s3cret",
                 api_version: str = "61.0") -> None:
        self.client_id, self.client_secret, self.api_version = client_id, client_secret, \
            api_version
        self.schema = {obj: dict(fields) for obj, fields in SCHEMA.items()}
        self.relations = RELATIONS
        self.records: dict[str, dict[str, JSON]] = {obj: {} for obj in PREFIX}
        self.hidden: set[str] = set()
        self.read_only_ids: set[str] = set()
        self.denied: set[str] = set()
        self.tokens: dict[str, bool] = {}  # issued token -> still valid
        self.log: list[JSON] = []
        self.failures: deque[tuple[int, str, dict[str, str] | None, str | None]] = deque()
        self.serial = itertools.count(1)
        self.lock = threading.RLock()
        self.ca = trustme.CA()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._dir = tempfile.TemporaryDirectory(prefix="fake-salesforce-")
        self.ca_bundle = str(Path(self._dir.name) / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_bundle)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True, ssl_context=context)
        self.url = f"https://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    def start(self) -> FakeSalesforce:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._dir.cleanup()

    # --- test-side controls ------------------------------------------------------------
    def add(self, obj: str, **fields: Any) -> str:
        """A record (its Id made up with the object's key prefix); returns the Id."""
        with self.lock:
            now = sf_datetime(datetime.now(UTC))
            rid = f"{PREFIX[obj]}{next(self.serial):012d}AAA"
            record: JSON = {"Id": rid, "CreatedDate": now, "LastModifiedDate": now}
            if obj == "Opportunity":
                record.update(IsClosed=False, IsWon=False)
            for name, value in fields.items():
                if name not in self.schema[obj]:
                    raise KeyError(f"{obj} has no field {name}; add_field it first")
                record[name] = sf_datetime(value) if isinstance(value, datetime) else (
                    value.isoformat() if isinstance(value, date) else value)
            self.records[obj][rid] = record
            return rid

    def add_field(self, obj: str, name: str, ftype: str = "string") -> None:
        """A custom field (`Sector__c`) on an object."""
        self.schema[obj][name] = ftype

    def hide(self, record_id: str) -> None:
        """The running user no longer sees the record (not shared with it)."""
        self.hidden.add(record_id)

    def read_only(self, record_id: str) -> None:
        self.read_only_ids.add(record_id)

    def deny_object(self, obj: str) -> None:
        """The running user's profile has no read access to the object."""
        self.denied.add(obj)

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, False)

    def fail_next(self, status: int, times: int = 1, code: str | None = None,
                  headers: dict[str, str] | None = None, match: str | None = None) -> None:
        """The next `times` API calls (those whose "METHOD path" contains `match`, when
        given) answer `status` with `code` (e.g. REQUEST_LIMIT_EXCEEDED)."""
        code = code or {503: "SERVER_UNAVAILABLE", 500: "UNKNOWN_EXCEPTION"}.get(status,
                                                                                  "ERROR")
        with self.lock:
            self.failures.extend([(status, code, headers, match)] * times)

    def queries(self) -> list[str]:
        return [e["soql"] for e in self.log if e.get("soql")]

    def calls(self, method: str, part: str = "") -> list[JSON]:
        return [e for e in self.log if e["method"] == method and part in e["path"]]

    # --- the HTTP side -----------------------------------------------------------------
    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        """The WSGI application."""
        return self._answer(Request(environ))(environ, start_response)

    def _answer(self, request: Request) -> Response:
        entry: JSON = {"method": request.method, "path": request.path,
                       "soql": request.args.get("q") if request.path.endswith("/query/")
                       else None}
        with self.lock:
            self.log.append(entry)
        try:
            response = self._route(request)
        except SfError as exc:
            response = exc.response()
        entry["status"] = response.status_code
        return response

    def _route(self, request: Request) -> Response:
        if request.path == "/services/oauth2/token" and request.method == "POST":
            return self._token(request)
        m = re.fullmatch(r"/services/data/v(\d+\.\d)/(.*)", request.path)
        if not m or m.group(1) != self.api_version:
            raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
        auth = request.headers.get("Authorization", "")
        if not self.tokens.get(auth.removeprefix("Bearer ")):
            raise SfError(401, "INVALID_SESSION_ID", "Session expired or invalid")
        self._scripted(f"{request.method} {request.path}")
        rest = m.group(2)
        if rest in ("query/", "query") and request.method == "GET":
            return _json(self.query(request.args.get("q", "")))
        m = re.fullmatch(r"sobjects/([A-Za-z_]+)/?([A-Za-z0-9]*)", rest)
        if not m or m.group(1) not in self.records:
            raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
        obj, rid = m.groups()
        if request.method == "POST" and not rid:
            return self._create(obj, request.get_json(force=True))
        record = self._record(obj, rid)
        if request.method == "GET":
            names = request.args.get("fields")
            keep = [f.strip() for f in names.split(",")] if names else list(self.schema[obj])
            return _json({"attributes": self.attributes(obj, rid),
                          **{f: record.get(f) for f in keep if f in self.schema[obj]}})
        if request.method == "PATCH":
            return self._update(obj, rid, record, request.get_json(force=True))
        raise SfError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed")

    def _token(self, request: Request) -> Response:
        form = request.form
        if form.get("grant_type") != "client_credentials":
            return _json({"error": "unsupported_grant_type",
                          "error_description": "grant type not supported"}, 400)
        if form.get("client_id") != self.client_id:
            return _json({"error": "invalid_client_id",
                          "error_description": "client identifier invalid"}, 400)
        if form.get("client_secret") != self.client_secret:
            return _json({"error": "invalid_client",
                          "error_description": "invalid client credentials"}, 400)
        token = f"{ORG_ID}!{secrets.token_urlsafe(24)}"
        with self.lock:
            self.tokens[token] = True
        return _json({"access_token": token, "instance_url": self.url,
                      "id": f"{self.url}/id/{ORG_ID}/{USER_ID}", "token_type": "Bearer",
                      "issued_at": str(int(datetime.now(UTC).timestamp() * 1000)),
                      "signature": secrets.token_urlsafe(32)})

    def _scripted(self, call: str) -> None:
        with self.lock:
            for i, (status, code, headers, match) in enumerate(self.failures):
                if match is None or match in call:
                    del self.failures[i]
                    raise SfError(status, code, f"scripted failure {status} {code}", headers)

    def attributes(self, obj: str, rid: str | None) -> JSON:
        """A record's `attributes`; a `UserRecordAccess` row has no url (it is no sObject)."""
        attrs: JSON = {"type": obj}
        if rid and obj != "UserRecordAccess":
            attrs["url"] = f"/services/data/v{self.api_version}/sobjects/{obj}/{rid}"
        return attrs

    def visible(self, obj: str, rid: str | None) -> bool:
        """Whether the running user sees the record: not hidden, and (for a contact role or
        a task) its opportunity or related record visible too."""
        if not rid or rid in self.hidden or rid not in self.records.get(obj, {}):
            return False
        record = self.records[obj][rid]
        parent = record.get("OpportunityId") or record.get("WhatId")
        parent_obj = self._object_of(parent) if parent else None
        return parent_obj is None or self.visible(parent_obj, parent)

    def _object_of(self, rid: str) -> str | None:
        return next((obj for obj, rows in self.records.items() if rid in rows), None)

    def _record(self, obj: str, rid: str) -> JSON:
        if obj in self.denied or not self.visible(obj, rid):
            raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
        return self.records[obj][rid]

    def _check_fields(self, obj: str, body: Any) -> JSON:
        if not isinstance(body, dict):
            raise SfError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of "
                          f"{obj} from non-object value")
        for name in body:
            if name not in self.schema[obj]:
                raise SfError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of "
                              f"type {obj}")
            if name in READ_ONLY_FIELDS:
                raise SfError(400, "INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create/update "
                              f"fields: {name}. Please check the security settings of this "
                              "field and verify that it is read/write for your profile or "
                              "permission set.")
        return body

    def _update(self, obj: str, rid: str, record: JSON, body: Any) -> Response:
        body = self._check_fields(obj, body)
        if rid in self.read_only_ids:
            raise SfError(403, "INSUFFICIENT_ACCESS_OR_READONLY",
                          "insufficient access rights on object id")
        with self.lock:
            record.update(body, LastModifiedDate=sf_datetime(datetime.now(UTC)))
        return Response(status=204)

    def _create(self, obj: str, body: Any) -> Response:
        body = self._check_fields(obj, body)
        for key in ("WhatId", "OpportunityId", "AccountId", "ContactId"):
            target = body.get(key)
            if target and not self.visible(self._object_of(target) or "", target):
                raise SfError(400, "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
                              "insufficient access rights on cross-reference id")
        if obj == "Task":
            body = {"Status": "Not Started", "Priority": "Normal", **body}
        rid = self.add(obj, **body)
        return _json({"id": rid, "success": True, "errors": []}, 201)

    # --- what a SOQL query reads (tests/fake_soql.py's Org) ---------------------------
    def query(self, text: str) -> JSON:
        """The query endpoint's answer, or the SfError Salesforce gives the query."""
        try:
            return run_query(self, text)
        except SoqlError as exc:
            raise SfError(400, exc.code, exc.message) from exc

    def rows(self, obj: str) -> list[JSON]:
        """The object's records the running user sees; `UserRecordAccess` made up, a row per
        record in the org, saying whether the user may read and edit it."""
        if obj != "UserRecordAccess":
            return [r for rid, r in self.records[obj].items() if self.visible(obj, rid)]
        return [{"Id": rid, "UserId": USER_ID, "RecordId": rid,
                 "HasReadAccess": self.visible(kind, rid),
                 "HasEditAccess": self.visible(kind, rid) and rid not in self.read_only_ids,
                 "MaxAccessLevel": "None" if not self.visible(kind, rid) else "Read"}
                for kind, rows in self.records.items() for rid in rows]

    def related(self, obj: str, rid: str | None) -> JSON | None:
        """The record a relationship points at, or None when unset or unseen."""
        return self.records[obj][rid] if rid and self.visible(obj, rid) else None
