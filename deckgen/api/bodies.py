"""Reading request bodies safely: JSON decoded strictly, then checked against a schema.

What a hostile or careless caller can send is refused here with a 422 before any view logic,
store or model sees it: JSON nested deeper than a brief ever is (a 1,000-deep array used to
exhaust the recursion limit: a 500), NaN / Infinity (not JSON; they would be stored as
invalid JSON), lone surrogates such as "\\ud800" and NUL characters (no database text column
holds them; a job used to be accepted and then fail). Oversized bodies, with or without a
Content-Length, are a 413."""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from flask import current_app, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from deckgen.errors import FieldError

M = TypeVar("M", bound=BaseModel)
MAX_DEPTH = 32  # a batch's deepest brief field is 6 levels down


class InvalidRequest(FieldError):
    code = "invalid_request"


def _refuse_constant(name: str) -> Any:
    raise InvalidRequest(f"{name} is not a JSON number; send a finite number or a string")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidRequest(f"the number {text[:40]} is too large")
    return value


def loads(raw: bytes | str, what: str = "the body") -> Any:
    """Decode JSON text strictly (see the module docstring); InvalidRequest when it is not."""
    try:
        data = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite)
    except RecursionError:
        raise InvalidRequest(f"{what} is nested too deeply; the limit is {MAX_DEPTH} "
                             "levels") from None
    except UnicodeDecodeError:
        raise InvalidRequest(f"{what} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, "
                             f"column {exc.colno}") from None
    except ValueError as exc:  # e.g. an integer over Python's 4,300-digit limit
        raise InvalidRequest(f"{what} is not acceptable JSON: {str(exc)[:200]}") from None
    check_values(data, what)
    return data


def check_values(data: Any, what: str = "the body") -> None:
    """Refuse nesting past MAX_DEPTH and text no database can hold, anywhere in `data`.
    Iterative, so it cannot itself run out of stack."""
    stack: list[tuple[Any, int, str]] = [(data, 0, "")]
    while stack:
        value, depth, path = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidRequest(f"{what} is nested too deeply; the limit is {MAX_DEPTH} "
                                 "levels", field=path or None)
        if isinstance(value, str):
            _check_text(value, path, what)
        elif isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                _check_text(key, where, what)
                stack.append((item, depth + 1, where))
        elif isinstance(value, list):
            stack.extend((item, depth + 1, f"{path}[{i}]") for i, item in enumerate(value))


def _check_text(text: str, path: str, what: str) -> None:
    if "\x00" in text:
        raise InvalidRequest(f"{what} contains a NUL (\\u0000) character", field=_field(path))
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(f"{what} contains a lone surrogate (such as \\ud800), which "
                                 "is not Unicode text", field=_field(path)) from None


def _field(path: str) -> str | None:
    # a hostile key can be long or contain surrogates itself: report only a safe prefix
    return path.encode("utf-8", "replace").decode("utf-8")[:200] or None


def read_body() -> bytes:
    """The raw body, at most DECKGEN_MAX_REQUEST_BYTES (413 beyond). The app lets Werkzeug
    read one byte past the limit: a chunked body (no Content-Length) is cut at Werkzeug's
    limit without an error, so only that extra byte tells "too large" from "just fits"."""
    data = request.get_data(cache=True)
    check_size(len(data))
    return data


def check_size(size: int) -> None:
    if size > current_app.extensions["deckgen"]["config"].max_request_bytes:
        raise RequestEntityTooLarge()


def json_object() -> dict[str, Any]:
    """The request's body as a JSON object (Content-Type: application/json)."""
    if not request.is_json:
        raise InvalidRequest("the body must be a JSON object (Content-Type: "
                             "application/json)")
    data = loads(read_body())
    if not isinstance(data, dict):
        raise InvalidRequest(f"the body must be a JSON object, got {type(data).__name__}")
    return data


def validate(model: type[M], data: dict[str, Any], prefix: str = "") -> M:
    """`data` as `model`, or InvalidRequest naming the first bad field (all of them in
    details)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        first = errors[0]
        field = prefix + _path(first["loc"])
        if first["type"] == "extra_forbidden":
            allowed = ", ".join(model.model_fields) if len(first["loc"]) == 1 else ""
            message = f"unknown field {str(first['loc'][-1])[:100]!r}" + (
                f"; allowed: {allowed}" if allowed else "")
        elif first["type"] == "missing":
            message = f"{field} is required"
        else:
            message = f"{field}: {first['msg']}"
        details = {prefix + _path(e["loc"]): e["msg"] for e in errors}
        raise InvalidRequest(message, field=_field(field),
                             details=details if len(details) > 1 else None) from None


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
