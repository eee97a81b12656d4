"""A fake Salesforce org on 127.0.0.1, over TLS, for tests.

It speaks the REST protocol `simple-salesforce` speaks: the OAuth 2.0 client-credentials
token endpoint (`/services/oauth2/token`; a wrong secret is 400 invalid_client, as Salesforce
answers), `GET /services/data/vNN.N/query?q=SOQL`, `GET/PATCH .../sobjects/{Object}/{id}` and
`POST .../sobjects/{Object}/`. The SOQL it runs is parsed, not pattern-matched: a SELECT list
with relationship paths (`Account.Industry`), FROM one object, WHERE comparisons joined by
AND with typed literals (quoted strings with SOQL escapes, true/false/null, numbers, date and
unquoted datetime literals), ORDER BY with ASC/DESC and NULLS FIRST/LAST, and LIMIT. A field
the object lacks is 400 INVALID_FIELD with Salesforce's "No such column" message, an object
the org lacks (or the user may not read: `deny_object`) 400 INVALID_TYPE, and anything the
parser does not know MALFORMED_QUERY. Answers have Salesforce's shape (`totalSize`, `done`,
`records` with `attributes`, related records nested, datetimes as 2024-05-01T12:00:00.000+0000)
and errors its body, `[{"message", "errorCode"}]`.

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

JSON = dict[str, Any]
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
TOKEN = re.compile(r"""\s*(?:
    (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>!=|<=|>=|=|<|>)
  | (?P<punct>[,()])
  | (?P<bad>\S)
)""", re.VERBOSE)
ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "'": "'", '"': '"',
           "\\": "\\", "%": "\\%", "_": "\\_"}
UNKNOWN_FIELD_HINT = (" If you are attempting to use a custom field, be sure to append the "
                      "'__c' after the custom field name. Please reference your WSDL or the "
                      "describe call for the appropriate names.")


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


def _parse_datetime(text: str) -> datetime:
    return datetime.fromisoformat(re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2",
                                         text.replace("Z", "+00:00")))


class Soql:
    """One parsed SELECT: `fields` (paths as written), `obj`, `where` [(path, op, value)],
    `order` [(path, descending, nulls_last)], `limit`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            m = TOKEN.match(text, pos)
            if not m or m.end() == pos:
                break
            kind = m.lastgroup or "bad"
            if kind == "bad":
                raise SfError(400, "MALFORMED_QUERY", f"unexpected token: '{m.group(kind)}'")
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
            if not text[pos:].strip():
                break
        self.pos = 0
        self.fields: list[str] = []
        self.where: list[tuple[str, str, tuple[str, Any]]] = []
        self.order: list[tuple[str, bool, bool]] = []
        self.limit: int | None = None
        self._parse()

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _next(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise SfError(400, "MALFORMED_QUERY", "unexpected end of query")
        self.pos += 1
        return token

    def _keyword(self, *words: str) -> bool:
        token = self._peek()
        if token and token[0] == "name" and token[1].upper() == words[0]:
            for word in words:
                kind, value = self._next()
                if kind != "name" or value.upper() != word:
                    raise SfError(400, "MALFORMED_QUERY", f"unexpected token: '{value}'")
            return True
        return False

    def _name(self) -> str:
        kind, value = self._next()
        if kind != "name":
            raise SfError(400, "MALFORMED_QUERY", f"unexpected token: '{value}'")
        return value

    def _parse(self) -> None:
        if not self._keyword("SELECT"):
            raise SfError(400, "MALFORMED_QUERY", "a query starts with SELECT")
        while True:
            self.fields.append(self._name())
            if self._peek() != ("punct", ","):
                break
            self._next()
        if not self._keyword("FROM"):
            raise SfError(400, "MALFORMED_QUERY", f"unexpected token: '{self._next()[1]}'")
        self.obj = self._name()
        if self._keyword("WHERE"):
            while True:
                path = self._name()
                kind, op = self._next()
                if kind != "op":
                    raise SfError(400, "MALFORMED_QUERY", f"unexpected token: '{op}'")
                self.where.append((path, op, self._next()))
                if not self._keyword("AND"):
                    break
        if self._keyword("ORDER", "BY"):
            while True:
                path, desc, nulls_last = self._name(), False, False
                if self._keyword("DESC"):
                    desc = True
                else:
                    self._keyword("ASC")
                if self._keyword("NULLS"):
                    nulls_last = self._name().upper() == "LAST"
                self.order.append((path, desc, nulls_last))
                if self._peek() != ("punct", ","):
                    break
                self._next()
        if self._keyword("LIMIT"):
            kind, value = self._next()
            if kind != "number":
                raise SfError(400, "MALFORMED_QUERY", f"unexpected token: '{value}'")
            self.limit = int(value)
        if self._peek() is not None:
            raise SfError(400, "MALFORMED_QUERY", f"unexpected token: '{self._next()[1]}'")


def _unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1) not in ESCAPES:
            raise SfError(400, "MALFORMED_QUERY", f"Invalid string literal '{text}'. Illegal "
                          "character sequence '\\" + m.group(1) + "' in string literal.")
        return ESCAPES[m.group(1)]

    return re.sub(r"\\(.)", one, text[1:-1])


def _literal(token: tuple[str, str], ftype: str, path: str) -> Any:
    """The value a WHERE literal stands for, typed as Salesforce types it against the field."""
    kind, text = token
    if kind == "name" and text.lower() == "null":
        return None
    quoted = ftype not in ("boolean", "datetime", "date", "number")
    wanted = {"boolean": "name", "datetime": "datetime", "date": "date",
              "number": "number"}.get(ftype, "string")
    if kind != wanted or (ftype == "boolean" and text.lower() not in ("true", "false")):
        raise SfError(400, "INVALID_FIELD", f"value of filter criterion for field '{path}' "
                      f"must be of type {ftype} and should {'' if quoted else 'not '}be "
                      "enclosed in quotes")
    if ftype == "boolean":
        return text.lower() == "true"
    if ftype == "datetime":
        return _parse_datetime(text)
    if ftype == "date":
        return date.fromisoformat(text)
    if ftype == "number":
        return float(text)
    return _unescape(text)


class FakeSalesforce:
    def __init__(self, client_id: str = "deckgen-app", client_secret: str = "s3cret",
                 api_version: str = "61.0") -> None:
        self.client_id, self.client_secret, self.api_version = client_id, client_secret, \
            api_version
        self.schema = {obj: dict(fields) for obj, fields in SCHEMA.items()}
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
            return _json({"attributes": self._attributes(obj, rid),
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

    def _attributes(self, obj: str, rid: str | None) -> JSON:
        attrs: JSON = {"type": obj}
        if rid:
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

    # --- SOQL ----------------------------------------------------------------------------
    def _resolve(self, obj: str, path: str, where: str) -> tuple[str, list[str]]:
        """(the field's type, the canonical path), or INVALID_FIELD as Salesforce says it."""
        parts, canonical, current = path.split("."), [], obj
        for rel in parts[:-1]:
            found = next((r for r in RELATIONS.get(current, {}) if r.lower() == rel.lower()),
                         None)
            if found is None:
                raise SfError(400, "INVALID_FIELD", f"{where}\nDidn't understand relationship "
                              f"'{rel}' in field path. If you are attempting to use a custom "
                              "relationship, be sure to append the '__r' after the custom "
                              "relationship name. Please reference your WSDL or the describe "
                              "call for the appropriate names.")
            canonical.append(found)
            current = RELATIONS[current][found][1]
        name = next((f for f in self.schema[current] if f.lower() == parts[-1].lower()), None)
        if name is None:
            raise SfError(400, "INVALID_FIELD", f"{where}\nNo such column '{parts[-1]}' on "
                          f"entity '{current}'.{UNKNOWN_FIELD_HINT}")
        return self.schema[current][name], [*canonical, name]

    def _value(self, obj: str, record: JSON | None, path: list[str]) -> Any:
        for rel in path[:-1]:
            if record is None:
                return None
            key, obj = RELATIONS[obj][rel]
            rid = record.get(key)
            found = self.records[obj].get(rid) if rid and self.visible(obj, rid) else None
            record = found
        return None if record is None else record.get(path[-1])

    def _rows(self, obj: str) -> list[JSON]:
        if obj != "UserRecordAccess":
            return [r for rid, r in self.records[obj].items() if self.visible(obj, rid)]
        return [{"Id": rid, "UserId": USER_ID, "RecordId": rid,
                 "HasReadAccess": self.visible(kind, rid),
                 "HasEditAccess": self.visible(kind, rid) and rid not in self.read_only_ids,
                 "MaxAccessLevel": "None" if not self.visible(kind, rid) else "Read"}
                for kind, rows in self.records.items() for rid in rows]

    def query(self, text: str) -> JSON:
        soql = Soql(text)
        obj = next((o for o in self.schema if o.lower() == soql.obj.lower()), None)
        if obj is None or obj in self.denied:
            raise SfError(400, "INVALID_TYPE", f"\n{text}\nsObject type '{soql.obj}' is not "
                          "supported. If you are attempting to use a custom object, be sure "
                          "to append the '__c' after the entity name. Please reference your "
                          "WSDL or the describe call for the appropriate names.")
        selected = [self._resolve(obj, f, text)[1] for f in soql.fields]
        seen = [".".join(p).lower() for p in selected]
        if len(set(seen)) != len(seen):
            raise SfError(400, "MALFORMED_QUERY", "duplicate field selected")
        rows = self._rows(obj)
        for path, op, token in soql.where:
            ftype, canonical = self._resolve(obj, path, text)
            wanted = _literal(token, ftype, path)
            rows = [r for r in rows if _compare(self._value(obj, r, canonical), op, wanted,
                                                ftype)]
        for path, desc, nulls_last in reversed(soql.order):
            ftype, canonical = self._resolve(obj, path, text)
            present = [r for r in rows if self._value(obj, r, canonical) is not None]
            absent = [r for r in rows if self._value(obj, r, canonical) is None]
            present.sort(key=lambda r: _key(self._value(obj, r, canonical), ftype),
                         reverse=desc)
            rows = present + absent if nulls_last else absent + present
        rows = rows[: soql.limit] if soql.limit is not None else rows
        return {"totalSize": len(rows), "done": True,
                "records": [self._shape(obj, r, selected) for r in rows]}

    def _shape(self, obj: str, record: JSON, selected: list[list[str]]) -> JSON:
        out: JSON = {"attributes": self._attributes(obj, record.get("Id")
                                                    if obj != "UserRecordAccess" else None)}
        for path in selected:
            scope, current = out, obj
            row: JSON | None = record
            for rel in path[:-1]:
                key, current = RELATIONS[current][rel]
                rid = row.get(key) if row else None
                row = self.records[current].get(rid) if rid and self.visible(current, rid) \
                    else None
                if row is None:
                    scope[rel] = None
                    break
                if not isinstance(scope.get(rel), dict):
                    scope[rel] = {"attributes": self._attributes(current, row["Id"])}
                scope = scope[rel]
            else:
                scope[path[-1]] = row.get(path[-1]) if row else None
        return out


def _key(value: Any, ftype: str) -> Any:
    if ftype == "datetime":
        return _parse_datetime(value)
    if ftype == "boolean":
        return bool(value)
    if ftype == "number":
        return float(value)
    return str(value)


def _compare(value: Any, op: str, wanted: Any, ftype: str) -> bool:
    if wanted is None or value is None:
        return (value is None) == (wanted is None) if op == "=" else \
            (value is None) != (wanted is None) if op == "!=" else False
    if ftype in ("id", "reference"):
        value, wanted = str(value)[:15], str(wanted)[:15]
    elif ftype == "date":
        value = date.fromisoformat(value)
    else:
        value = _key(value, ftype)
    return {"=": value == wanted, "!=": value != wanted, "<": value < wanted,
            ">": value > wanted, "<=": value <= wanted, ">=": value >= wanted}[op]
