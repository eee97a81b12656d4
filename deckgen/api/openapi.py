"""The OpenAPI 3.1 document served at /openapi.json, assembled from what the app really
serves: the paths and methods of its URL map, and for each view the `operation` it was
marked with (summary, the request model it validates with, the answers' models, the errors
it can give). Bodies' schemas come from the pydantic models in `schemas.py`, the same ones
the views validate with. A served route without an `operation` is an error, so the document
cannot leave a route out."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from deckgen.api.schemas import BRIEF_SCHEMA, COMPONENT, ErrorResponse

F = TypeVar("F", bound=Callable[..., Any])
REF = "#/components/schemas/{model}"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
ERRORS = {400: "bad request", 401: "no valid credentials", 403: "not allowed",
          404: "no such resource (or not the caller's)", 405: "method not allowed",
          413: "the body is too large", 415: "unsupported media type",
          422: "the request is invalid: error.field names the first bad field",
          429: "over a per-caller limit: wait Retry-After seconds",
          502: "the model answered nothing usable for any section",
          503: "a dependency is away or the server is busy: wait Retry-After seconds"}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again",
                               "schema": {"type": "integer"}}}


@dataclass(frozen=True)
class Answer:
    description: str
    model: type[BaseModel] | None = None
    media: str = "application/json"


@dataclass(frozen=True)
class Operation:
    summary: str
    answers: dict[int, Answer]
    body: type[BaseModel] | None = None
    upload: type[BaseModel] | None = None  # multipart/form-data alternative to `body`
    errors: tuple[int, ...] = ()
    public: bool = False
    headers: dict[str, dict[str, Any]] = field(default_factory=dict)


def operation(summary: str, answers: dict[int, Answer], **more: Any) -> Callable[[F], F]:
    """Mark a view with what the document says about it."""
    def mark(view: F) -> F:
        view.__dict__["openapi"] = Operation(summary, answers, **more)
        return view
    return mark


def document(app: Flask, sections: Iterable[str]) -> dict[str, Any]:
    operations: list[tuple[str, str, list[str], Operation]] = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        op = app.view_functions[rule.endpoint].__dict__.get("openapi")
        if not isinstance(op, Operation):
            raise TypeError(f"route {rule.rule} ({rule.endpoint}) has no @operation")
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operations.append((path, method.lower(), sorted(rule.arguments), op))

    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorResponse, "serialization")]
    for *_, op in operations:
        models += [(m, "validation") for m in (op.body, op.upload) if m]
        models += [(a.model, "serialization") for a in op.answers.values() if a.model]
    refs, defs = models_json_schema(list(dict.fromkeys(models)), ref_template=REF)

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return refs[(model, mode)]

    paths: dict[str, dict[str, Any]] = {}
    for path, method, params, op in operations:
        paths.setdefault(path, {})[method] = _operation(op, params, ref)
    schemas = {**defs.get("$defs", {}), "Brief": BRIEF_SCHEMA,
               "SectionName": {"type": "string", "enum": list(sections)}}
    return _components({
        "openapi": "3.1.0",
        "info": {"title": "deckgen", "version": "1",
                 "description": "Writes the sections of a sales deck from an opportunity "
                                "brief. Errors are {\"error\": {\"code\", \"message\", "
                                "\"field\"?}}."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer",
                           "description": "an API key from `deckgen keys create NAME`"},
                "googleIdToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                  "description": "a Google identity token; send the user's "
                                                 "OAuth token in X-Goog-User-Token"}},
            "schemas": schemas,
        },
    })


def _components(node: Any) -> Any:
    """The document with each schemas.COMPONENT marker made a $ref to its component."""
    if isinstance(node, list):
        return [_components(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _components(v) for k, v in node.items() if k != COMPONENT}
    if COMPONENT in node:
        out["$ref"] = REF.format(model=node[COMPONENT])
    return out


def _operation(op: Operation, params: list[str],
               ref: Callable[[type[BaseModel], Literal["validation", "serialization"]],
                             dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "summary": op.summary,
        "security": [] if op.public else [{"apiKey": []}, {"googleIdToken": []}],
        "responses": {},
    }
    parameters = [{"name": name, "in": "path", "required": True,
                   "schema": {"type": "string", "maxLength": 200}} for name in params]
    parameters += [{"name": name, "in": "header", "required": False, "schema": schema}
                   for name, schema in op.headers.items()]
    if parameters:
        out["parameters"] = parameters
    content: dict[str, Any] = {}
    if op.body:
        content["application/json"] = {"schema": ref(op.body, "validation")}
    if op.upload:
        content["multipart/form-data"] = {"schema": ref(op.upload, "validation")}
    if content:
        out["requestBody"] = {"required": True, "content": content}
    for status, answer in sorted(op.answers.items()):
        schema = {"schema": ref(answer.model, "serialization")} if answer.model else {}
        out["responses"][str(status)] = {"description": answer.description,
                                         "content": {answer.media: schema}}
    for status in op.errors:
        out["responses"][str(status)] = {
            "description": ERRORS[status],
            "content": {"application/json": {"schema": ref(ErrorResponse, "serialization")}},
            **({"headers": RETRY_AFTER} if status in (429, 503) else {})}
    return out
