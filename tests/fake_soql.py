"""The SOQL that tests/fake_salesforce.py answers: parsed and evaluated, not pattern-matched.

The subset is what our Salesforce adapter sends, and enough around it that a query we get
wrong fails as Salesforce would fail it rather than quietly returning rows: a SELECT list of
fields and relationship paths (`Account.Industry`, case-insensitive, named back in their
canonical spelling), FROM one object, WHERE comparisons (`= != < <= > >=`) joined by AND with
literals typed against the field (quoted strings with SOQL's backslash escapes, true/false,
null, numbers, date and unquoted datetime literals; Ids compared on their first 15
characters), ORDER BY with ASC/DESC and NULLS FIRST/LAST, and LIMIT. No OR, NOT, IN, LIKE,
subqueries, aggregates, date functions or OFFSET: those are MALFORMED_QUERY here.

Errors carry Salesforce's codes and messages (MALFORMED_QUERY, INVALID_FIELD with its "No such
column" / "Didn't understand relationship" text, INVALID_TYPE for an object the org lacks or the
user may not read); they are all HTTP 400, which the server adds. The rows come from an `Org`
(the fake server): which records the running user sees is its business, not the language's.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Protocol

JSON = dict[str, Any]
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


class SoqlError(Exception):
    """A query Salesforce refuses (always HTTP 400): its errorCode and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Org(Protocol):
    """What a query reads from the org: its describe and, as the running user sees them,
    its records."""

    schema: dict[str, dict[str, str]]  # object -> field -> type
    relations: dict[str, dict[str, tuple[str, str]]]  # object -> name -> (key, object)
    denied: set[str]  # objects the user may not read

    def rows(self, obj: str) -> list[JSON]: ...

    def related(self, obj: str, rid: str | None) -> JSON | None: ...

    def attributes(self, obj: str, rid: str | None) -> JSON: ...


def parse_datetime(text: str) -> datetime:
    """A SOQL or stored datetime (`Z`, `+0000` or `+00:00` offsets) as an aware datetime."""
    return datetime.fromisoformat(re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2",
                                         text.replace("Z", "+00:00")))


def _malformed(message: str) -> SoqlError:
    return SoqlError("MALFORMED_QUERY", message)


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
                raise _malformed(f"unexpected token: '{m.group(kind)}'")
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
            raise _malformed("unexpected end of query")
        self.pos += 1
        return token

    def _keyword(self, *words: str) -> bool:
        token = self._peek()
        if token and token[0] == "name" and token[1].upper() == words[0]:
            for word in words:
                kind, value = self._next()
                if kind != "name" or value.upper() != word:
                    raise _malformed(f"unexpected token: '{value}'")
            return True
        return False

    def _name(self) -> str:
        kind, value = self._next()
        if kind != "name":
            raise _malformed(f"unexpected token: '{value}'")
        return value

    def _parse(self) -> None:
        if not self._keyword("SELECT"):
            raise _malformed("a query starts with SELECT")
        while True:
            self.fields.append(self._name())
            if self._peek() != ("punct", ","):
                break
            self._next()
        if not self._keyword("FROM"):
            raise _malformed(f"unexpected token: '{self._next()[1]}'")
        self.obj = self._name()
        if self._keyword("WHERE"):
            while True:
                path = self._name()
                kind, op = self._next()
                if kind != "op":
                    raise _malformed(f"unexpected token: '{op}'")
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
                raise _malformed(f"unexpected token: '{value}'")
            self.limit = int(value)
        if self._peek() is not None:
            raise _malformed(f"unexpected token: '{self._next()[1]}'")


def _unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1) not in ESCAPES:
            raise _malformed(f"Invalid string literal '{text}'. Illegal character sequence "
                             "'\\" + m.group(1) + "' in string literal.")
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
        raise SoqlError("INVALID_FIELD", f"value of filter criterion for field '{path}' "
                        f"must be of type {ftype} and should {'' if quoted else 'not '}be "
                        "enclosed in quotes")
    if ftype == "boolean":
        return text.lower() == "true"
    if ftype == "datetime":
        return parse_datetime(text)
    if ftype == "date":
        return date.fromisoformat(text)
    if ftype == "number":
        return float(text)
    return _unescape(text)


def _key(value: Any, ftype: str) -> Any:
    if ftype == "datetime":
        return parse_datetime(value)
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


def _resolve(org: Org, obj: str, path: str, where: str) -> tuple[str, list[str]]:
    """(the field's type, the canonical path), or INVALID_FIELD as Salesforce says it."""
    parts, canonical, current = path.split("."), [], obj
    for rel in parts[:-1]:
        found = next((r for r in org.relations.get(current, {}) if r.lower() == rel.lower()),
                     None)
        if found is None:
            raise SoqlError("INVALID_FIELD", f"{where}\nDidn't understand relationship "
                            f"'{rel}' in field path. If you are attempting to use a custom "
                            "relationship, be sure to append the '__r' after the custom "
                            "relationship name. Please reference your WSDL or the describe "
                            "call for the appropriate names.")
        canonical.append(found)
        current = org.relations[current][found][1]
    name = next((f for f in org.schema[current] if f.lower() == parts[-1].lower()), None)
    if name is None:
        raise SoqlError("INVALID_FIELD", f"{where}\nNo such column '{parts[-1]}' on "
                        f"entity '{current}'.{UNKNOWN_FIELD_HINT}")
    return org.schema[current][name], [*canonical, name]


def _value(org: Org, obj: str, record: JSON | None, path: list[str]) -> Any:
    """The value at a canonical path, None where a related record is missing or unseen."""
    for rel in path[:-1]:
        if record is None:
            return None
        key, obj = org.relations[obj][rel]
        record = org.related(obj, record.get(key))
    return None if record is None else record.get(path[-1])


def _shape(org: Org, obj: str, record: JSON, selected: list[list[str]]) -> JSON:
    """One record as Salesforce returns it: `attributes`, related records nested."""
    out: JSON = {"attributes": org.attributes(obj, record.get("Id"))}
    for path in selected:
        scope, current = out, obj
        row: JSON | None = record
        for rel in path[:-1]:
            key, current = org.relations[current][rel]
            row = org.related(current, row.get(key) if row else None)
            if row is None:
                scope[rel] = None
                break
            if not isinstance(scope.get(rel), dict):
                scope[rel] = {"attributes": org.attributes(current, row["Id"])}
            scope = scope[rel]
        else:
            scope[path[-1]] = row.get(path[-1]) if row else None
    return out


def run_query(org: Org, text: str) -> JSON:
    """The query endpoint's answer (`totalSize`, `done`, `records`), or a SoqlError."""
    soql = Soql(text)
    obj = next((o for o in org.schema if o.lower() == soql.obj.lower()), None)
    if obj is None or obj in org.denied:
        raise SoqlError("INVALID_TYPE", f"\n{text}\nsObject type '{soql.obj}' is not "
                        "supported. If you are attempting to use a custom object, be sure "
                        "to append the '__c' after the entity name. Please reference your "
                        "WSDL or the describe call for the appropriate names.")
    selected = [_resolve(org, obj, f, text)[1] for f in soql.fields]
    seen = [".".join(p).lower() for p in selected]
    if len(set(seen)) != len(seen):
        raise _malformed("duplicate field selected")
    rows = org.rows(obj)
    for path, op, token in soql.where:
        ftype, canonical = _resolve(org, obj, path, text)
        wanted = _literal(token, ftype, path)
        rows = [r for r in rows if _compare(_value(org, obj, r, canonical), op, wanted, ftype)]
    for path, desc, nulls_last in reversed(soql.order):
        ftype, canonical = _resolve(org, obj, path, text)
        present = [r for r in rows if _value(org, obj, r, canonical) is not None]
        absent = [r for r in rows if _value(org, obj, r, canonical) is None]
        present.sort(key=lambda r: _key(_value(org, obj, r, canonical), ftype),
                     reverse=desc)
        rows = present + absent if nulls_last else absent + present
    rows = rows[: soql.limit] if soql.limit is not None else rows
    return {"totalSize": len(rows), "done": True,
            "records": [_shape(org, obj, r, selected) for r in rows]}
