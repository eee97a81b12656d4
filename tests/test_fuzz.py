"""Schema-driven fuzzing with schemathesis: requests generated from /openapi.json (bodies,
parameters and headers the schema allows, and ones it does not) never get a 5xx, and every
answer has a documented status and matches its documented schema. Then the hostile bodies of
issue 18 (deep nesting, lone surrogates, NaN, NUL, oversized numbers) are sent to every
operation that takes a body: each is a 4xx with the usual error body."""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from deckgen.api import create_app
from deckgen.auth import new_key
from deckgen.config import Config
from deckgen.store import Store

EXAMPLES = int(os.environ.get("DECKGEN_FUZZ_EXAMPLES", "15"))  # per operation and mode
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
BRIEF = '{"client": "Acme", "notes": %s}'
HOSTILE = {
    "nested 1,000 deep": "[" * 1000 + "]" * 1000,
    "nested objects 1,000 deep": '{"brief": ' + '{"a": ' * 1000 + "1" + "}" * 1001,
    "a lone surrogate": '{"brief": %s, "items": []}' % (BRIEF % '"\\ud800"'),
    "a lone surrogate in a key": '{"\\udc00": 1}',
    "NaN": '{"brief": {"client": "A", "metrics": {"x": NaN}}}',
    "Infinity": '{"brief": {"client": "A", "metrics": {"x": -Infinity}}}',
    "a float too large": '{"brief": {"client": "A", "metrics": {"x": 1e999}}}',
    "an integer of 5,000 digits": '{"brief": {"client": "A", "metrics": {"x": %s}}}' % (
        "9" * 5000),
    "a NUL byte": '{"brief": %s, "presentation_id": "d\\u0000"}' % (BRIEF % '"a"'),
    "a query in presentation_id": '{"brief": %s, "presentation_id": "t1?fields=*"}' % (
        BRIEF % '"a"'),
    "not UTF-8": b'{"brief": {"client": "\xff\xfe"}}',
}


@pytest.fixture
def fuzzed(tmp_path, fake_router):
    config = Config.from_env({"DECKGEN_OUTPUT_DIR": str(tmp_path / "decks"),
                              "DECKGEN_MAX_REQUEST_BYTES": "200000",
                              "DECKGEN_RATE_LIMIT": "100000/minute",
                              "DECKGEN_PREVIEW_PER_CALLER": "100"})
    store = Store(str(tmp_path / "db.sqlite3"))
    app = create_app(config, store=store, router=fake_router, start_workers=False)
    key, digest = new_key()
    store.add_key("fuzz", digest)
    yield app, {"Authorization": f"Bearer {key}"}, store
    store.close()


def test_no_generated_request_gets_a_server_error(fuzzed):
    app, headers, _ = fuzzed
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    seen = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case):
                response = case.call(headers=headers)
                seen.append(response.status_code)
                assert response.status_code < 500, (
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:300]}")
                case.validate_response(response, checks=CHECKS, headers=headers)
            try:
                check()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to break, e.g. GET /healthz
    assert len(seen) > 100 and any(s < 300 for s in seen) and any(400 <= s < 500 for s in seen)


def test_hostile_bodies_get_a_4xx_on_every_operation(fuzzed):
    app, headers, store = fuzzed
    client = app.test_client()
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    posts = [r.ok() for r in schema.get_all_operations()]
    posts = [op for op in posts if op.method.upper() == "POST" and op.body]
    assert {op.path for op in posts} == {"/v1/jobs", "/v1/preview", "/v1/batches",
                                         "/v1/briefs/resolve", "/v1/schedules"}
    for op in posts:
        for what, body in HOSTILE.items():
            answer = client.post(op.path, data=body, content_type="application/json",
                                 headers=headers)
            assert 400 <= answer.status_code < 500, (op.path, what, answer.status_code)
            error = answer.get_json()["error"]
            assert error["code"] and error["message"], (op.path, what)
    assert store.queue_depth() == 0
