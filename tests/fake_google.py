"""A fake Google Slides v1 + Drive v3 server on 127.0.0.1, for tests.

It speaks the REST protocol the real `googleapiclient` client speaks when built with
`client_options={"api_endpoint": fake.url}`: presentations.get (with `fields` masks),
presentations.batchUpdate (validated against the discovery document shipped with
google-api-python-client, atomic, `requiredRevisionId` honoured, Google's text model with
UTF-16 indices), Drive files.copy (`parents`: folders made with `add_folder`) and
files.delete, and an OAuth2 token endpoint for service-account JWTs.
Every slide has its notes page, as Google returns it (the speaker-notes shape named by
`notesProperties.speakerNotesObjectId`, the only thing on it whose text can be edited; a
text request naming a speaker-notes shape that does not exist yet creates it).
Errors use Google's JSON error body. Access is per principal: a bearer token is its own
principal, except tokens issued by `token_url` (and the literal "service-account"), which act
as principal "service-account". Every request is recorded in `calls`."""

from __future__ import annotations

import base64
import bisect
import copy
import importlib.resources
import itertools
import json
import re
import secrets
import threading
import time
from collections import deque
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

JSON = dict[str, Any]
SA = "service-account"
PRESENTATION_MIME = "application/vnd.google-apps.presentation"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN = "https://oauth2.googleapis.com/token"  # the aud google-auth always signs
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
          404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
          501: "NOT_IMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
MESSAGES = {500: "Internal error encountered.", 503: "The service is currently unavailable.",
            504: "The request timed out. Please try again.", 409: "The operation was aborted."}
UNAUTHENTICATED = ("Request had invalid authentication credentials. Expected OAuth 2 access "
                   "token, login cookie or other valid authentication credential. See "
                   "https://developers.google.com/identity/sign-in/web/devconsole-project.")
_AUTH = "https://www.googleapis.com/auth/"
SCOPES = {  # which OAuth scopes let an issued (service-account) token make each call
    "get": {_AUTH + s for s in ("presentations", "presentations.readonly", "drive",
                                "drive.readonly", "drive.file")},
    "batchUpdate": {_AUTH + s for s in ("presentations", "drive", "drive.file")},
    "copy": {_AUTH + s for s in ("drive", "drive.file")},
    "delete": {_AUTH + s for s in ("drive", "drive.file")},
}
GLYPHS = {"BULLET_DISC_CIRCLE_SQUARE": "●", "BULLET_DIAMONDX_ARROW3D_SQUARE": "❖",
          "BULLET_CHECKBOX": "❏", "BULLET_ARROW_DIAMOND_DISC": "➔",
          "BULLET_STAR_CIRCLE_SQUARE": "★", "BULLET_ARROW3D_CIRCLE_SQUARE": "➢",
          "BULLET_LEFTTRIANGLE_DIAMOND_DISC": "◀", "BULLET_DIAMONDX_HOLLOWDIAMOND_SQUARE": "❖",
          "BULLET_DIAMOND_CIRCLE_SQUARE": "◆"}
_CONTROL = re.compile("[\x00-\x08\x0c-\x1f\ue000-\uf8ff]")


def _discovery(name: str) -> JSON:
    path = importlib.resources.files("googleapiclient") / "discovery_cache/documents" / name
    return json.loads(path.read_text(encoding="utf-8"))


SLIDES, DRIVE = _discovery("slides.v1.json"), _discovery("drive.v3.json")


class ApiError(Exception):
    """An error answered in Google's JSON error shape (Drive's adds an `errors` list)."""

    def __init__(self, code: int, message: str, status: str | None = None,
                 details: list[JSON] | None = None, headers: dict[str, str] | None = None,
                 drive_reason: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.headers = code, message, headers
        self.status = status or STATUS.get(code, "UNKNOWN")
        self.details, self.drive_reason = details, drive_reason

    def response(self) -> Response:
        error: JSON = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        if self.drive_reason:
            error["errors"] = [{"message": self.message, "domain": "global",
                                "reason": self.drive_reason}]
        return _json({"error": error}, self.code, self.headers)


def _invalid(message: str, field: str | None = None) -> ApiError:
    details = None
    if field is not None:
        details = [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": field, "description": message}]}]
    return ApiError(400, message, details=details)


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _camel(name: str) -> str:
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)


class SchemaChecker:
    """Checks a JSON value against a discovery-document schema the way Google's JSON parser
    does: `$ref`s resolved, unknown names and wrong types rejected with the path in the
    message (snake_case, like Google's), snake_case names accepted, nulls dropped. Returns the
    value normalised to lowerCamel names."""

    INT_RANGES = {"int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1)}

    def __init__(self, doc: JSON) -> None:
        self.schemas = doc["schemas"]

    def check(self, value: Any, schema: JSON, path: str = "") -> Any:
        name = schema.get("$ref")
        if name:
            schema = self.schemas[name]
        if value is None:
            return None
        kind, fmt = schema.get("type"), schema.get("format")
        if kind == "object":
            if not isinstance(value, dict):
                raise self._bad(path, f"type.googleapis.com/google.apps.slides.v1.{name}", value)
            if "additionalProperties" in schema:
                return {k: self.check(v, schema["additionalProperties"], f"{path}[{k}]")
                        for k, v in value.items()}
            props, out = schema.get("properties", {}), {}
            for key, item in value.items():
                prop = key if key in props else _camel(key)
                if prop not in props or prop in out:
                    where = f" at '{path}'" if path else ""
                    reason = "Cannot find field." if prop not in props else "Duplicate field."
                    raise _invalid(f'Invalid JSON payload received. Unknown name "{key}"{where}: '
                                   f"{reason}", path)
                checked = self.check(item, props[prop], f"{path}.{_snake(prop)}".lstrip("."))
                if checked is not None:
                    out[prop] = checked
            return out
        if kind == "array":
            if not isinstance(value, list):
                raise self._bad(path, "repeated", value)
            return [self.check(v, schema["items"], f"{path}[{i}]") for i, v in enumerate(value)]
        if kind == "string":
            if not isinstance(value, str) or (
                    "enum" in schema and value not in schema["enum"]):
                label = f"enum {path.rsplit('.', 1)[-1]}" if "enum" in schema else "TYPE_STRING"
                raise self._bad(path, label, value)
            return value
        if kind == "boolean":
            if not isinstance(value, bool):
                raise self._bad(path, "TYPE_BOOL", value)
            return value
        if kind == "integer":
            number = value
            if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
                number = int(value)
            elif isinstance(value, float) and value.is_integer():
                number = int(value)
            low, high = self.INT_RANGES.get(fmt or "int32", (-2**63, 2**63 - 1))
            if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
                raise self._bad(path, f"TYPE_{(fmt or 'int64').upper()}", value)
            return number
        if kind == "number":
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self._bad(path, f"TYPE_{(fmt or 'double').upper()}", value)
            return value
        return value

    @staticmethod
    def _bad(path: str, label: str, value: Any) -> ApiError:
        return _invalid(f"Invalid value at '{path}' ({label}), {json.dumps(value)}", path)

    def check_mask(self, tree: JSON | None, schema: JSON, path: str = "") -> None:
        """Rejects a `fields` selection naming a field the schema lacks."""
        while True:
            schema = self.schemas.get(schema.get("$ref", ""), schema)
            if schema.get("type") != "array":
                break
            schema = schema["items"]
        if tree is None or "additionalProperties" in schema or "*" in tree:
            return
        props = schema.get("properties", {})
        for key, sub in tree.items():
            if key not in props:
                raise _invalid(f"Invalid field selection {path}{key}", "fields")
            self.check_mask(sub, props[key], f"{path}{key}.")


CHECKER = SchemaChecker(SLIDES)
DRIVE_CHECKER = SchemaChecker(DRIVE)


def parse_mask(spec: str) -> JSON:
    """A `fields` mask ("a,b(c,d/e),f/g") as a tree {name: subtree or None for all of it}."""
    pos = 0
    name = re.compile(r"[^,()/\s]+")

    def items(stop: str | None) -> JSON:
        nonlocal pos
        tree: JSON = {}
        while pos < len(spec) and spec[pos] != stop:
            if spec[pos] in ", ":
                pos += 1
                continue
            path = []
            while True:
                m = name.match(spec, pos)
                if not m:
                    raise _invalid(f"Invalid field selection {spec!r}", "fields")
                path.append(m.group())
                pos = m.end()
                if pos < len(spec) and spec[pos] == "/":
                    pos += 1
                    continue
                break
            sub = None
            if pos < len(spec) and spec[pos] == "(":
                pos += 1
                sub = items(")")
                if pos >= len(spec):
                    raise _invalid(f"Invalid field selection {spec!r}", "fields")
                pos += 1
            for key in reversed(path[1:]):
                sub = {key: sub}
            _merge(tree, path[0], sub)
        return tree

    return items(None)


def _merge(tree: JSON, key: str, sub: JSON | None) -> None:
    if key not in tree:
        tree[key] = sub
    elif tree[key] is None or sub is None:
        tree[key] = None
    else:
        for k, v in sub.items():
            _merge(tree[key], k, v)


def select(value: Any, tree: JSON | None) -> Any:
    if tree is None or (isinstance(tree, dict) and "*" in tree):
        return value
    if isinstance(value, list):
        return [select(v, tree) for v in value]
    if isinstance(value, dict):
        return {k: select(value[k], sub) for k, sub in tree.items() if k in value}
    return value


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class Text:
    """A shape's (or table cell's) text as characters with their run styles, plus one
    paragraph marker per newline. Changes happen here; `store` writes Google's textElements
    back with fresh UTF-16 indices. There is always a final newline that cannot be deleted."""

    def __init__(self, holder: JSON) -> None:
        text = holder.get("text") or {}
        self.lists: JSON = copy.deepcopy(text.get("lists", {}))
        self.chars: list[tuple[str, JSON]] = []
        self.paras: list[JSON] = []
        marker: JSON = {"style": {}}
        for element in text.get("textElements", []):
            if "paragraphMarker" in element:
                marker = {"style": {}, **element["paragraphMarker"]}
            run = element.get("textRun") or element.get("autoText") or {}
            for ch in run.get("content", ""):
                self.chars.append((ch, run.get("style", {})))
                if ch == "\n":
                    self.paras.append(copy.deepcopy(marker))
        if not self.chars or self.chars[-1][0] != "\n":
            self.chars.append(("\n", self.chars[-1][1] if self.chars else {}))
            self.paras.append(copy.deepcopy(marker))

    @property
    def plain(self) -> str:
        return "".join(ch for ch, _ in self.chars)

    def offsets(self) -> list[int]:
        return [0, *itertools.accumulate(_units(ch) for ch, _ in self.chars)]

    def para_of(self, k: int) -> int:
        return sum(1 for ch, _ in self.chars[:k] if ch == "\n")

    def paras_in(self, a: int, b: int) -> range:
        a, b = min(a, len(self.chars) - 1), min(b, len(self.chars))
        return range(self.para_of(a), self.para_of(max(a, b - 1)) + 1)

    def span(self, rng: JSON, where: str, deleting: bool = False) -> tuple[int, int]:
        """A Range as character positions [a, b)."""
        off = self.offsets()
        limit = off[-1] - 1 if deleting else off[-1]
        kind, start, end = rng.get("type"), rng.get("startIndex"), rng.get("endIndex")
        if kind == "ALL" and start is None and end is None:
            start, end = 0, limit
        elif kind == "FROM_START_INDEX" and start is not None and end is None:
            end = limit
        elif kind != "FIXED_RANGE" or start is None or end is None:
            raise _invalid(f"{where}: The text range type {kind} does not match its indices "
                           f"(startIndex={start}, endIndex={end}).")
        if not 0 <= start <= end:
            raise _invalid(f"{where}: The start index ({start}) must not be greater than the "
                           f"end index ({end}) and must be at least 0.")
        if end > limit:
            raise _invalid(f"{where}: The end index ({end}) should not be greater than the "
                           f"existing text length ({limit}).")
        return bisect.bisect_right(off, start) - 1, bisect.bisect_left(off, end)

    def delete(self, a: int, b: int) -> None:
        if a >= b:
            return
        first_style = self.chars[a][1]
        p, q = self.para_of(a), self.para_of(b)
        del self.chars[a:b]
        self.paras[p:q + 1] = [self.paras[p]]  # a merged paragraph keeps the first one's style
        if self.chars[a][0] == "\n" and (a == 0 or self.chars[a - 1][0] == "\n"):
            self.chars[a] = ("\n", first_style)  # an emptied paragraph remembers its style

    def insert(self, k: int, text: str, style: JSON | None = None) -> None:
        text = _CONTROL.sub("", text)
        if not text:
            return
        if style is None:
            ch, style = self.chars[k]
            if ch == "\n" and k > 0 and self.chars[k - 1][0] != "\n":
                style = self.chars[k - 1][1]
        p = self.para_of(k)
        self.paras[p:p] = [copy.deepcopy(self.paras[p]) for _ in range(text.count("\n"))]
        self.chars[k:k] = [(ch, style) for ch in text]

    def restyle(self, a: int, b: int, style: JSON, fields: list[str]) -> None:
        for k in range(a, b):
            self.chars[k] = (self.chars[k][0], _apply(self.chars[k][1], style, fields))

    def store(self, holder: JSON) -> None:
        elements: list[JSON] = []
        start, k = 0, 0
        for marker in self.paras:
            end_k = next(j for j in range(k, len(self.chars)) if self.chars[j][0] == "\n")
            plen = _units("".join(ch for ch, _ in self.chars[k:end_k + 1]))
            elements.append({**_indices(start, start + plen),
                             "paragraphMarker": copy.deepcopy(marker)})
            pos = start
            for style, group in itertools.groupby(self.chars[k:end_k + 1], key=lambda c: c[1]):
                content = "".join(ch for ch, _ in group)
                elements.append({**_indices(pos, pos + _units(content)),
                                 "textRun": {"content": content, "style": copy.deepcopy(style)}})
                pos += _units(content)
            start, k = start + plen, end_k + 1
        used = {m["bullet"]["listId"] for m in self.paras if "bullet" in m}
        text: JSON = {"textElements": elements}
        if used:
            text["lists"] = {key: v for key, v in self.lists.items() if key in used}
        holder["text"] = text


def _indices(start: int, end: int) -> JSON:
    return {"startIndex": start, "endIndex": end} if start else {"endIndex": end}


def _apply(style: JSON, new: JSON, fields: list[str]) -> JSON:
    out = copy.deepcopy(style)
    for field in fields:
        top = field.split(".")[0]
        if top in new:
            out[top] = copy.deepcopy(new[top])
        else:
            out.pop(top, None)
    if "fontFamily" in new and "fontFamily" in fields and "weightedFontFamily" not in fields \
            and "weightedFontFamily" in out:
        out["weightedFontFamily"]["fontFamily"] = new["fontFamily"]
    return out


def _fields(req: JSON, schema: str, where: str) -> list[str]:
    props = SLIDES["schemas"][schema]["properties"]
    spec = req.get("fields", "").strip()
    if spec == "*":
        return list(props)
    fields = [f.strip() for f in spec.split(",") if f.strip()]
    if not fields:
        raise _invalid(f"{where}: At least one field must be specified.")
    for field in fields:
        if field.split(".")[0] not in props:
            raise _invalid(f"{where}: Invalid field: {field}")
    return fields


def notes_page(slide_id: str) -> JSON:
    """A slide's notes page as presentations.get returns it: the slide's picture and the
    speaker-notes shape (the first BODY placeholder, named by notesProperties), which holds
    no `text` until someone types notes."""
    def placeholder(n: int, kind: str, parent: str, y: float, h: float) -> JSON:
        shape: JSON = {"shapeType": "TEXT_BOX" if kind == "BODY" else "RECTANGLE",
                       "shapeProperties": {"outline": {"propertyState": "INHERIT"}},
                       "placeholder": {"type": kind, "index": n - 1, "parentObjectId": parent}}
        return {"objectId": f"{slide_id}:notes:{n}",
                "size": {"width": {"magnitude": 5143500, "unit": "EMU"},
                         "height": {"magnitude": h, "unit": "EMU"}},
                "transform": {"scaleX": 1, "scaleY": 1, "translateX": 1143000,
                              "translateY": y, "unit": "EMU"}, "shape": shape}

    return {"objectId": f"{slide_id}:notes", "pageType": "NOTES",
            "pageElements": [placeholder(1, "SLIDE_IMAGE", "n:slide", 685800, 3429000),
                             placeholder(2, "BODY", "n:text", 4400550, 4114800)],
            "pageProperties": {"pageBackgroundFill": {"propertyState": "INHERIT"}},
            "notesProperties": {"speakerNotesObjectId": f"{slide_id}:notes:2"}}


NOTES_MASTER = {"objectId": "n", "pageType": "NOTES_MASTER", "pageElements": [],
                "pageProperties": {"pageBackgroundFill": {"propertyState": "INHERIT"}}}


def notes_pages(doc: JSON) -> list[JSON]:
    return [s["slideProperties"]["notesPage"] for s in doc.get("slides", [])
            if "notesPage" in s.get("slideProperties", {})]


def pages(doc: JSON) -> list[JSON]:
    found = [*doc.get("slides", []), *doc.get("layouts", []), *doc.get("masters", [])]
    found += [s["slideProperties"]["notesPage"] for s in doc.get("slides", [])
              if "notesPage" in s.get("slideProperties", {})]
    return found + ([doc["notesMaster"]] if "notesMaster" in doc else [])


def elements(page: JSON) -> list[JSON]:
    """A page's elements, those inside groups included."""
    out, stack = [], list(reversed(page.get("pageElements", [])))
    while stack:
        element = stack.pop()
        out.append(element)
        stack.extend(reversed(element.get("elementGroup", {}).get("children", [])))
    return out


def text_holders(element: JSON) -> list[JSON]:
    if "shape" in element:
        return [element["shape"]]
    return [cell for row in element.get("table", {}).get("tableRows", [])
            for cell in row.get("tableCells", [])]


def find_element(doc: JSON, object_id: str | None, where: str) -> JSON:
    for page in pages(doc):
        for element in elements(page):
            if element.get("objectId") == object_id:
                return element
    raise _invalid(f"{where}: The object ({object_id or ''}) could not be found.")


def _check_not_notes_page(doc: JSON, element: JSON, where: str, text_too: bool = False
                          ) -> None:
    """Google: on a notes page only the speaker-notes shape's text can be edited."""
    for page in notes_pages(doc):
        if any(e is element for e in elements(page)):
            speaker = page.get("notesProperties", {}).get("speakerNotesObjectId")
            if text_too or element.get("objectId") != speaker:
                raise _invalid(f"{where}: The object ({element.get('objectId')}) is on a "
                               "notes page, where only the speaker notes' text can be edited.")


class Editor:
    """Applies batchUpdate requests (already schema-checked) to a presentation, in place."""

    def __init__(self, doc: JSON) -> None:
        self.doc = doc
        self.created_notes: dict[str, JSON] = {}  # speaker-notes id named -> shape created

    def apply(self, kind: str, req: JSON, where: str) -> JSON:
        method = getattr(self, kind, None)
        if method is None:
            raise _invalid(f"{where}: request kind {kind} not supported by the fake")
        return method(req, where) or {}

    def _speaker_notes(self, object_id: str | None) -> JSON | None:
        """Google: "In the rare case where the speaker notes shape does not exist, the
        Slides API creates it automatically when it sees a valid text operation using a
        speakerNotesObjectId" (the shape may get another id; notesProperties then names
        it). Later requests in the batch naming the old id reach the new shape."""
        if object_id in self.created_notes:
            return self.created_notes[object_id]
        for page in notes_pages(self.doc):
            props = page.setdefault("notesProperties", {})
            if object_id and props.get("speakerNotesObjectId") == object_id and not any(
                    e.get("objectId") == object_id for e in elements(page)):
                element = copy.deepcopy(notes_page("x")["pageElements"][1])
                element["objectId"] = props["speakerNotesObjectId"] = f"{object_id}_created"
                page.setdefault("pageElements", []).append(element)
                self.created_notes[object_id] = element
                return element
        return None

    def _holder(self, req: JSON, where: str) -> JSON:
        created = self._speaker_notes(req.get("objectId"))
        element = created or find_element(self.doc, req.get("objectId"), where)
        if created is None:
            _check_not_notes_page(self.doc, element, where)
        cell = req.get("cellLocation")
        if cell is not None and "table" in element:
            try:
                row = element["table"]["tableRows"][cell.get("rowIndex", 0)]
                return row["tableCells"][cell.get("columnIndex", 0)]
            except IndexError:
                raise _invalid(f"{where}: The cell location is out of bounds.") from None
        if cell is not None or "shape" not in element:
            raise _invalid(f"{where}: The object ({req.get('objectId')}) cannot hold text here.")
        return element["shape"]

    def insertText(self, req: JSON, where: str) -> None:
        holder = self._holder(req, where)
        text, index = Text(holder), req.get("insertionIndex", 0)
        off = text.offsets()
        if not 0 <= index <= off[-1] - 1:
            raise _invalid(f"{where}: The insertion index ({index}) must be inside the bounds "
                           f"of an existing text (0 to {off[-1] - 1}).")
        text.insert(bisect.bisect_left(off, index), req.get("text", ""))
        text.store(holder)

    def deleteText(self, req: JSON, where: str) -> None:
        holder = self._holder(req, where)
        text = Text(holder)
        text.delete(*text.span(req.get("textRange", {}), where, deleting=True))
        text.store(holder)

    def updateTextStyle(self, req: JSON, where: str) -> None:
        holder = self._holder(req, where)
        text, fields = Text(holder), _fields(req, "TextStyle", where)
        a, b = text.span(req.get("textRange", {}), where)
        text.restyle(a, b, req.get("style", {}), fields)
        text.store(holder)

    def updateParagraphStyle(self, req: JSON, where: str) -> None:
        holder = self._holder(req, where)
        text, fields = Text(holder), _fields(req, "ParagraphStyle", where)
        for p in text.paras_in(*text.span(req.get("textRange", {}), where)):
            text.paras[p]["style"] = _apply(text.paras[p].get("style", {}),
                                            req.get("style", {}), fields)
        text.store(holder)

    def createParagraphBullets(self, req: JSON, where: str) -> None:
        holder = self._holder(req, where)
        text = Text(holder)
        preset = req.get("bulletPreset", "BULLET_DISC_CIRCLE_SQUARE")
        list_id = f"kix.{secrets.token_hex(6)}"
        text.lists[list_id] = {"listId": list_id, "nestingLevel": {"0": {"bulletStyle": {}}}}
        for n, p in enumerate(text.paras_in(*text.span(req.get("textRange", {}), where)), 1):
            glyph = GLYPHS.get(preset) or (f"{n})" if preset.endswith("PARENS") else f"{n}.")
            text.paras[p]["bullet"] = {"listId": list_id, "glyph": glyph}
        text.store(holder)

    def deleteParagraphBullets(self, req: JSON, where: str) -> None:
        holder = self._holder(req, where)
        text = Text(holder)
        for p in text.paras_in(*text.span(req.get("textRange", {}), where)):
            text.paras[p].pop("bullet", None)
        text.store(holder)

    def updatePageElementAltText(self, req: JSON, where: str) -> None:
        element = find_element(self.doc, req.get("objectId"), where)
        _check_not_notes_page(self.doc, element, where, text_too=True)
        for key in ("title", "description"):
            if key in req:
                element[key] = req[key]
                if not req[key]:
                    element.pop(key)

    def replaceAllText(self, req: JSON, where: str) -> JSON:
        criteria = req.get("containsText", {})
        if not criteria.get("text"):
            raise _invalid(f"{where}: containsText.text must not be empty.")
        pattern = criteria["text"] if criteria.get("searchByRegex") else re.escape(
            criteria["text"])
        regex = re.compile(pattern, 0 if criteria.get("matchCase") else re.IGNORECASE)
        slides = self.doc.get("slides", [])
        wanted = req.get("pageObjectIds") or [s.get("objectId") for s in slides]
        known = {s.get("objectId") for s in slides}
        for page_id in wanted:
            if page_id not in known:
                raise _invalid(f"{where}: The page ({page_id}) could not be found.")
        count = 0
        for slide in slides:
            if slide.get("objectId") not in wanted:
                continue
            for holder in (h for e in elements(slide) for h in text_holders(e)):
                if "text" not in holder:
                    continue
                text = Text(holder)
                matches = [m for m in regex.finditer(text.plain) if m.end() > m.start()]
                for m in reversed(matches):
                    style = text.chars[m.start()][1]
                    text.delete(m.start(), min(m.end(), len(text.chars) - 1))
                    text.insert(m.start(), req.get("replaceText", ""), style)
                if matches:
                    text.store(holder)
                    count += len(matches)
        return {"replaceAllText": {"occurrencesChanged": count} if count else {}}


class FakeGoogle:
    def __init__(self) -> None:
        self.presentations: dict[str, JSON] = {}
        self.access: dict[str, set[str]] = {}
        self.calls: list[JSON] = []
        self.tokens: dict[str, str] = {}  # bearer token -> principal
        self.token_scopes: dict[str, set[str]] = {}  # issued tokens only
        self.failures: deque[tuple[int, str, dict[str, str] | None]] = deque()
        self.issued = itertools.count(1)
        self.lock = threading.RLock()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.token_url = f"{self.url}token"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        # called with the presentation id after each presentations.get has been answered:
        # lets a test play a person editing the deck between deckgen's read and its write
        self.after_get: Any = None
        # Slides' "write requests per minute per user" quota: None is unlimited; a number
        # makes the fake answer 429 past it in any 60-second window, as Google does
        self.writes_per_minute: int | None = None
        self.writes: dict[str, deque[float]] = {}
        # Drive: folders (id -> name) and every file's parents; what was copied from what
        self.folders: dict[str, str] = {}
        self.parents: dict[str, list[str]] = {}
        self.copied_from: dict[str, str] = {}

    def start(self) -> FakeGoogle:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- test-side controls ------------------------------------------------------------
    def add_presentation(self, doc: JSON, owner_token: str = "user-token") -> str:
        """Stores a copy (its text re-indexed); keeps its presentationId unless taken."""
        doc = copy.deepcopy(doc)
        with self.lock:
            pid = doc.get("presentationId")
            if not pid or pid in self.presentations:
                pid = secrets.token_urlsafe(33)
            doc["presentationId"], doc["revisionId"] = pid, _revision()
            for slide in doc.get("slides", []):  # every slide has one, as in Google
                props = slide.setdefault("slideProperties", {})
                props.setdefault("notesPage", notes_page(str(slide.get("objectId"))))
            if doc.get("slides"):
                doc.setdefault("notesMaster", copy.deepcopy(NOTES_MASTER))
            for page in pages(doc):
                for holder in (h for e in elements(page) for h in text_holders(e)):
                    if "text" in holder:
                        Text(holder).store(holder)
            self.presentations[pid] = doc
            self.access[pid] = set()
            self.grant(pid, owner_token)
        return pid

    def grant(self, presentation_id: str, token: str) -> None:
        with self.lock:
            self.tokens[token] = SA if token == SA else token
            self.access[presentation_id].add(self.tokens[token])

    def edit_text(self, presentation_id: str, object_id: str, text: str) -> None:
        """A person retypes a shape's text in the editor: the first run's style stays."""
        with self.lock:
            doc = self.presentations[presentation_id]
            shape = find_element(doc, object_id, "edit_text")["shape"]
            model = Text(shape)
            style = model.chars[0][1]
            model.delete(0, len(model.chars) - 1)
            model.insert(0, text, style)
            model.store(shape)
            doc["revisionId"] = _revision()

    def fail_next(self, status: int, reason: str = "", times: int = 1,
                  headers: dict[str, str] | None = None) -> None:
        """The next `times` Slides/Drive calls fail. `reason` is the message, or, when it is
        an UPPER_CASE word, the ErrorInfo reason (e.g. RATE_LIMIT_EXCEEDED)."""
        with self.lock:
            self.failures.extend([(status, reason, headers)] * times)

    def add_folder(self, name: str, owner_token: str = SA) -> str:
        """A Drive folder `owner_token`'s principal may put files in; its id."""
        folder_id = "folder-" + secrets.token_urlsafe(12)
        with self.lock:
            self.tokens.setdefault(owner_token, SA if owner_token == SA else owner_token)
            self.folders[folder_id] = name
            self.access[folder_id] = {self.tokens[owner_token]}
        return folder_id

    def copies(self, of: str | None = None) -> list[JSON]:
        """The Drive copies that exist now (deleted ones are gone), oldest first, each
        {id, name, parents, copied_from}; only the copies of `of` when given."""
        with self.lock:
            return [{"id": pid, "name": self.presentations[pid].get("title"),
                     "parents": list(self.parents.get(pid, ["root"])), "copied_from": source}
                    for pid, source in self.copied_from.items()
                    if pid in self.presentations and (of is None or source == of)]

    def service_account_info(self) -> JSON:
        """A real service-account key (fresh RSA key) whose token_uri is this server."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        return {"type": "service_account", "project_id": "deckgen-test",
                "private_key_id": "k1", "private_key": pem,
                "client_email": "deckgen@deckgen-test.iam.gserviceaccount.com",
                "client_id": "1", "token_uri": self.token_url}

    def type_text(self, presentation_id: str, object_id: str, text: str) -> None:
        """A person types `text` at the end of a shape's text (the speaker notes too)."""
        with self.lock:
            doc = self.presentations[presentation_id]
            shape = find_element(doc, object_id, "type_text")["shape"]
            model = Text(shape)
            model.insert(len(model.chars) - 1, text)
            model.store(shape)
            doc["revisionId"] = _revision()

    def speaker_notes_id(self, presentation_id: str, slide_id: str) -> str:
        for slide in self.presentations[presentation_id].get("slides", []):
            if slide.get("objectId") == slide_id:
                page = slide["slideProperties"]["notesPage"]
                return str(page["notesProperties"]["speakerNotesObjectId"])
        raise KeyError(slide_id)

    def notes_text(self, presentation_id: str, slide_id: str) -> str:
        """A slide's speaker notes ("" while its notes shape does not exist)."""
        try:
            return self.shape_text(presentation_id, self.speaker_notes_id(presentation_id,
                                                                            slide_id))
        except ApiError:
            return ""

    def shape_text(self, presentation_id: str, object_id: str) -> str:
        shape = find_element(self.presentations[presentation_id], object_id, "shape_text")
        return "".join(e.get("textRun", {}).get("content", "")
                       for e in shape["shape"].get("text", {}).get("textElements", []))

    # --- HTTP ----------------------------------------------------------------------------
    @Request.application
    def app(self, request: Request) -> Response:
        header = request.headers.get("Authorization", "")
        call = {"method": request.method, "path": request.path,
                "query": request.args.to_dict(), "body": _body(request),
                "token": header[7:] if header.startswith("Bearer ") else None}
        with self.lock:
            self.calls.append(call)
        try:
            response = self._route(request, call)
        except ApiError as exc:
            response = exc.response()
        call["status"] = response.status_code
        return response

    def _route(self, request: Request, call: JSON) -> Response:
        path, method = request.path, request.method
        if path == "/token" and method == "POST":
            return self._token(request)
        m = re.fullmatch(r"/v1/presentations/([^/:]+)(:batchUpdate)?", path)
        d = re.fullmatch(r"/(?:drive/v3/)?files/([^/]+)/copy", path)
        f = re.fullmatch(r"/(?:drive/v3/)?files/([^/]+)", path)
        if m and method == ("POST" if m.group(2) else "GET"):
            action, info, ident = ("batchUpdate" if m.group(2) else "get"), SLIDES, m.group(1)
        elif d and method == "POST":
            action, info, ident = "copy", DRIVE, d.group(1)
        elif f and method == "DELETE":
            action, info, ident = "delete", DRIVE, f.group(1)
        else:
            raise ApiError(404, f"Method not found: {method} {path}")
        self._fail_if_scripted(method, info)
        principal = self._principal(call["token"], action, drive=info is DRIVE)
        _check_query(request, info, "files" if info is DRIVE else "presentations", action)
        fields = request.args.get("fields")
        if action in ("batchUpdate", "copy") and self.writes_per_minute is not None:
            self._count_write(principal)
        if action == "get":
            response = self._get(ident, principal, fields)
            if self.after_get is not None:
                self.after_get(ident)
            return response
        if action == "batchUpdate":
            return self._batch_update(ident, principal, call["body"])
        if action == "delete":
            return self._delete(ident, principal)
        return self._copy(ident, principal, call["body"], fields)

    def _fail_if_scripted(self, method: str, info: JSON) -> None:
        with self.lock:
            if not self.failures:
                return
            status, reason, headers = self.failures.popleft()
        message, details = MESSAGES.get(status, "Scripted failure."), None
        if status == 429:
            kind = "Write" if method == "POST" else "Read"
            service = info["rootUrl"].split("//")[1].rstrip("/")
            message = (f"Quota exceeded for quota metric '{kind} requests' and limit '{kind} "
                       f"requests per minute per user' of service '{service}' for consumer "
                       "'project_number:000000000000'.")
            details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "domain":
                        "googleapis.com", "reason": "RATE_LIMIT_EXCEEDED"}]
        if re.fullmatch(r"[A-Z_]+", reason):
            details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "domain": "googleapis.com", "reason": reason}]
        elif reason:
            message = reason
        raise ApiError(status, message, details=details, headers=headers)

    def _count_write(self, principal: str) -> None:
        now = time.monotonic()
        with self.lock:
            window = self.writes.setdefault(principal, deque())
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= (self.writes_per_minute or 0):
                raise ApiError(429, "Quota exceeded for quota metric 'Write requests' and limit "
                               "'Write requests per minute per user' of service "
                               "'slides.googleapis.com'.", headers={"Retry-After": "1"})
            window.append(now)

    def _principal(self, token: str | None, action: str, drive: bool) -> str:
        with self.lock:
            principal = self.tokens.get(token or "")
            scopes = self.token_scopes.get(token or "")
        if principal is None or token == "expired-token":
            raise ApiError(401, UNAUTHENTICATED, drive_reason="authError" if drive else None,
                           headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        if scopes is not None and not scopes & SCOPES[action]:
            raise ApiError(403, "Request had insufficient authentication scopes.", details=[
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "domain": "googleapis.com",
                 "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT"}])
        return principal

    def _doc(self, pid: str, principal: str) -> JSON:
        if pid not in self.presentations:
            raise ApiError(404, "Requested entity was not found.")
        if principal not in self.access[pid]:
            raise ApiError(403, "The caller does not have permission")
        return self.presentations[pid]

    def _get(self, pid: str, principal: str, fields: str | None) -> Response:
        with self.lock:
            doc = copy.deepcopy(self._doc(pid, principal))
        if not fields:
            return _json(doc)
        tree = parse_mask(fields)
        CHECKER.check_mask(tree, {"$ref": "Presentation"})
        return _json(select(doc, tree))

    def _batch_update(self, pid: str, principal: str, body: Any) -> Response:
        if not isinstance(body, dict):
            raise _invalid("Invalid JSON payload received. Expected a JSON object body.")
        body = CHECKER.check(body, {"$ref": "BatchUpdatePresentationRequest"})
        requests = body.get("requests", [])
        for i, req in enumerate(requests):
            if not req:
                raise _invalid(f"Invalid requests[{i}]: No request set.", f"requests[{i}]")
            if len(req) > 1:
                raise _invalid(f"Invalid JSON payload received. Oneof field 'kind' at "
                               f"'requests[{i}]' is already set. Cannot set '{list(req)[1]}'",
                               f"requests[{i}]")
        with self.lock:
            doc = self._doc(pid, principal)
            required = body.get("writeControl", {}).get("requiredRevisionId")
            if required is not None and required != doc["revisionId"]:
                raise ApiError(400, f"The required revision ID ({required}) does not match "
                                    "the latest revision.", "FAILED_PRECONDITION")
            work = copy.deepcopy(doc)
            editor = Editor(work)
            replies = [editor.apply(kind, req[kind], f"Invalid requests[{i}].{kind}")
                       for i, req in enumerate(requests) for kind in req]
            if work != doc:
                work["revisionId"] = _revision()
                self.presentations[pid] = work
            return _json({"presentationId": pid, "replies": replies,
                          "writeControl": {"requiredRevisionId": work["revisionId"]}})

    def _copy(self, file_id: str, principal: str, body: Any, fields: str | None) -> Response:
        body = DRIVE_CHECKER.check(body, {"$ref": "File"}) if isinstance(body, dict) else {}
        with self.lock:
            if principal not in self.access.get(file_id, ()) \
                    or file_id not in self.presentations:  # Drive hides what you can't see
                raise ApiError(404, f"File not found: {file_id}.", drive_reason="notFound")
            # no parents: the copy goes where its source is (Drive's "discoverable parent")
            parents = body.get("parents") or self.parents.get(file_id, ["root"])
            if len(parents) > 1:
                raise ApiError(403, "Increasing the number of parents is not allowed.",
                               drive_reason="cannotAddParent")
            if parents != ["root"] and principal not in self.access.get(parents[0], ()):
                raise ApiError(404, f"File not found: {parents[0]}.", drive_reason="notFound")
            new = copy.deepcopy(self.presentations[file_id])
            new_id = secrets.token_urlsafe(33)
            new["presentationId"], new["revisionId"] = new_id, _revision()
            new["title"] = body.get("name") or f"Copy of {new.get('title', '')}"
            self.presentations[new_id], self.access[new_id] = new, {principal}
            self.parents[new_id], self.copied_from[new_id] = list(parents), file_id
        file = {"kind": "drive#file", "id": new_id, "name": new["title"],
                "mimeType": PRESENTATION_MIME}
        if not fields:
            return _json(file)
        full = {**file, "parents": list(parents),
                "webViewLink": f"https://docs.google.com/presentation/d/{new_id}/edit"}
        return _json(select(full, parse_mask(fields)))

    def _delete(self, file_id: str, principal: str) -> Response:
        """files.delete: gone for good (not to the trash); 204 with no body."""
        with self.lock:
            if principal not in self.access.get(file_id, ()) \
                    or file_id not in self.presentations:
                raise ApiError(404, f"File not found: {file_id}.", drive_reason="notFound")
            del self.presentations[file_id]
            self.access.pop(file_id, None)
            self.parents.pop(file_id, None)
        return Response(status=204)

    def _token(self, request: Request) -> Response:
        form = request.form
        if form.get("grant_type") != JWT_GRANT:
            return _json({"error": "unsupported_grant_type",
                          "error_description": f"Invalid grant_type: {form.get('grant_type')}"},
                         400)
        try:
            parts = form.get("assertion", "").split(".")
            assert len(parts) == 3
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
            assert all(k in claims for k in ("iss", "scope", "aud", "exp"))
        except (AssertionError, ValueError):
            return _json({"error": "invalid_grant", "error_description": "Invalid JWT."}, 400)
        if claims["exp"] < time.time() or claims["aud"] not in (self.token_url, GOOGLE_TOKEN):
            return _json({"error": "invalid_grant", "error_description":
                          "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                          "reasonable timeframe. Check your iat and exp values and the aud."},
                         400)
        token = f"sa-token-{next(self.issued)}"
        with self.lock:
            self.tokens[token] = SA
            self.token_scopes[token] = set(str(claims["scope"]).split())
        return _json({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})


def _check_query(request: Request, info: JSON, resource: str, action: str) -> None:
    allowed = set(info["parameters"]) | set(
        info["resources"][resource]["methods"][action]["parameters"])
    for name in request.args:
        if name not in allowed:
            raise _invalid(f'Invalid JSON payload received. Unknown name "{name}": Cannot bind '
                           f"query parameter. Field '{name}' could not be found in request "
                           "message.", name)


def _body(request: Request) -> Any:
    if request.mimetype == "application/x-www-form-urlencoded":
        return request.form.to_dict()
    data = request.get_data(as_text=True)
    if not data:
        return None
    try:
        return json.loads(data)
    except json.JSONDecodeError:
        return data


def _revision() -> str:
    return secrets.token_urlsafe(16)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status=status, headers=headers,
                    content_type="application/json; charset=UTF-8")
