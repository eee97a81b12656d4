"""The OpenAPI 3 document served at /openapi.json. tests/test_api.py checks that it names
exactly the routes the app serves, and that answers match the schemas it declares."""

from __future__ import annotations

from typing import Any

from deckgen.brief import MAX_CONTACTS, MAX_METRICS, MAX_NOTES_BYTES, MAX_OPPORTUNITY, MAX_SHORT
from deckgen.config import ROUTES

STATES = ["queued", "running", "done", "failed", "cancelled"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"$ref": "#/components/responses/Error"} for c in codes}


def openapi_document(sections: list[str]) -> dict[str, Any]:
    text = {"type": "string", "maxLength": MAX_SHORT}
    brief = {
        "type": "object", "additionalProperties": False, "required": ["client"],
        "properties": {
            "client": {"type": "string", "minLength": 1, "maxLength": MAX_SHORT},
            "industry": text, "opportunity": {"type": "string", "maxLength": MAX_OPPORTUNITY},
            "notes": {"type": "string", "maxLength": MAX_NOTES_BYTES},
            "contacts": {"type": "array", "maxItems": MAX_CONTACTS, "items": {
                "type": "object", "required": ["name"], "additionalProperties": False,
                "properties": {"name": {"type": "string", "minLength": 1, "maxLength": MAX_SHORT},
                               "role": text}}},
            "metrics": {"type": "object", "maxProperties": MAX_METRICS,
                        "additionalProperties": {"type": ["string", "number"]}},
        },
    }
    options = {
        "sections": {"type": "array", "items": {"type": "string", "enum": sections}},
        "route": {"type": "string", "enum": list(ROUTES)},
    }
    section_state = {"type": "object", "required": ["section", "state"], "properties": {
        "section": {"type": "string"},
        "state": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
        "route": {"type": "string"}, "model": {"type": "string"},
        "prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"},
        "seconds": {"type": "number"}, "retries": {"type": "integer"},
        "failovers": {"type": "integer"},
        "fit": {"oneOf": [{"type": "null"}, {
            "type": "object", "description": "how the text fits its box in the template",
            "properties": {
                "lines_used": {"type": "integer"}, "lines_available": {"type": "integer"},
                "first_answer": {"type": "string", "description": "used/available, first "
                                 "answer"},
                "shortened": {"type": "boolean"}, "items_dropped": {"type": "integer"},
                "overflows": {"type": "boolean"}, "warning": {"type": "string"},
                "limits": {"type": "object"}, "box": {"type": "object"}}}]},
        "error": {"oneOf": [{"type": "null"}, _ref("ErrorBody")]}}}
    job = {"type": "object", "required": ["id", "state", "sections"], "properties": {
        "id": {"type": "string"}, "state": {"type": "string", "enum": STATES},
        "batch_id": {"type": ["string", "null"]},
        "created_at": {"type": "number"}, "started_at": {"type": ["number", "null"]},
        "finished_at": {"type": ["number", "null"]}, "attempts": {"type": "integer"},
        "sections": {"type": "array", "items": _ref("SectionState")},
        "presentation_id": {"type": ["string", "null"]}, "url": {"type": ["string", "null"]},
        "download": {"type": ["string", "null"]},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "error": {"oneOf": [{"type": "null"}, _ref("ErrorBody")]}}}
    job_request = {"type": "object", "additionalProperties": False, "required": ["brief"],
                   "properties": {"brief": _ref("Brief"),
                                  "presentation_id": {"type": "string", "minLength": 1},
                                  "template_id": {"type": "string", "minLength": 1},
                                  "title": {"type": "string", "minLength": 1},
                                  "output": {"type": "string", "enum": ["pptx"]},
                                  "keep_edits": {"type": "boolean"}, **options}}
    batch = {"type": "object", "required": ["id", "total", "counts", "items"], "properties": {
        "id": {"type": "string"}, "total": {"type": "integer"},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "eta_seconds": {"type": ["number", "null"]}, "retried": {"type": "integer"},
        "items": {"type": "array", "items": _ref("Job")}}}
    batch_request = {"type": "object", "additionalProperties": False, "required": ["items"],
                     "properties": {"items": {"type": "array", "minItems": 1, "items": {
                         "type": "object", "required": ["presentation_id", "brief"],
                         "additionalProperties": False,
                         "properties": {"presentation_id": {"type": "string", "minLength": 1},
                                        "brief": _ref("Brief")}}},
                         "keep_edits": {"type": "boolean"}, **options}}
    secured: list[dict[str, list[str]]] = [{"apiKey": []}, {"googleIdToken": []}]
    job_id = [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    batch_id = [{"name": "batch_id", "in": "path", "required": True,
                 "schema": {"type": "string"}}]
    return {
        "openapi": "3.0.3",
        "info": {"title": "deckgen", "version": "1",
                 "description": "Writes the sections of a sales deck from an opportunity brief."},
        "paths": {
            "/healthz": {"get": {"summary": "The process is up", "security": [],
                                 "responses": {"200": _json({"type": "object"}, "up")}}},
            "/readyz": {"get": {"summary": "The store and a model route are usable",
                                "security": [],
                                "responses": {"200": _json({"type": "object"}, "ready"),
                                              "503": _json({"type": "object"}, "not ready")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                                 "responses": {"200": {"description": "text exposition",
                                                       "content": {"text/plain": {}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "security": [],
                                      "responses": {"200": _json({"type": "object"}, "it")}}},
            "/v1/sections": {"get": {"summary": "The deck's sections", "security": secured,
                                     "responses": {"200": _json({"type": "object"}, "sections"),
                                                   **_errors(401, 403)}}},
            "/v1/jobs": {"post": {
                "summary": "Start filling a deck", "security": secured,
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": {"type": "string", "maxLength": 200}}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("JobRequest")}}},
                "responses": {"202": _json(_ref("Job"), "queued"),
                              "200": _json(_ref("Job"), "the job this Idempotency-Key made"),
                              **_errors(401, 403, 413, 422)}}},
            "/v1/jobs/{job_id}": {"get": {
                "summary": "A job's state and per-section progress", "security": secured,
                "parameters": job_id, "responses": {"200": _json(_ref("Job"), "the job"),
                                                    **_errors(401, 403, 404)}}},
            "/v1/jobs/{job_id}/cancel": {"post": {
                "summary": "Cancel a job", "security": secured, "parameters": job_id,
                "responses": {"200": _json(_ref("Job"), "the job"), **_errors(401, 403, 404)}}},
            "/v1/jobs/{job_id}/deck.pptx": {"get": {
                "summary": "Download a .pptx job's deck", "security": secured,
                "parameters": job_id,
                "responses": {"200": {"description": "the deck", "content": {
                    "application/vnd.openxmlformats-officedocument.presentationml.presentation":
                        {}}}, **_errors(401, 403, 404, 422)}}},
            "/v1/preview": {"post": {
                "summary": "Generate sections now, fitted to the default template's boxes; "
                           "write nothing", "security": secured,
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": False, "required": ["brief"],
                    "properties": {"brief": _ref("Brief"), **options}}}}},
                "responses": {"200": _json({"type": "object"}, "the sections"),
                              **_errors(401, 403, 413, 422)}}},
            "/v1/batches": {"post": {
                "summary": "Regenerate many decks", "security": secured,
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("BatchRequest")},
                    "multipart/form-data": {"schema": {
                        "type": "object", "properties": {
                            "file": {"type": "string", "format": "binary"}}}}}},
                "responses": {"202": _json(_ref("Batch"), "queued"),
                              **_errors(401, 403, 413, 422)}}},
            "/v1/batches/{batch_id}": {"get": {
                "summary": "Counts by state, per-item results and an ETA", "security": secured,
                "parameters": batch_id,
                "responses": {"200": _json(_ref("Batch"), "the batch"),
                              **_errors(401, 403, 404)}}},
            "/v1/batches/{batch_id}/retry": {"post": {
                "summary": "Queue the batch's failed items again", "security": secured,
                "parameters": batch_id,
                "responses": {"200": _json(_ref("Batch"), "the batch"),
                              **_errors(401, 403, 404)}}},
        },
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer",
                           "description": "an API key from `deckgen keys create NAME`"},
                "googleIdToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                  "description": "a Google identity token; send the user's "
                                                 "OAuth token in X-Goog-User-Token"}},
            "responses": {"Error": _json({"type": "object", "required": ["error"],
                                          "properties": {"error": _ref("ErrorBody")}},
                                         "an error")},
            "schemas": {
                "Brief": brief, "JobRequest": job_request, "Job": job, "Batch": batch,
                "BatchRequest": batch_request, "SectionState": section_state,
                "ErrorBody": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"},
                    "field": {"type": "string"}, "details": {}}},
            },
        },
    }
