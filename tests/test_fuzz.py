"""Schema-driven fuzzing with schemathesis: requests generated from /openapi.json (bodies,
parameters and headers the schema allows, and ones it does not) never get a 5xx."""

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from deckgen.api import create_app
from deckgen.auth import new_key
from deckgen.config import Config
from deckgen.store import Store

EXAMPLES = 15  # per operation and mode; CI-sized


def test_no_generated_request_gets_a_server_error(tmp_path, fake_router):
    config = Config.from_env({"DECKGEN_OUTPUT_DIR": str(tmp_path / "decks"),
                              "DECKGEN_MAX_REQUEST_BYTES": "200000"})
    store = Store(str(tmp_path / "db.sqlite3"))
    app = create_app(config, store=store, router=fake_router, start_workers=False)
    key, digest = new_key()
    store.add_key("fuzz", digest)
    headers = {"Authorization": f"Bearer {key}"}
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
            try:
                check()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to break, e.g. GET /healthz
    assert len(seen) > 100 and any(s < 300 for s in seen) and any(400 <= s < 500 for s in seen)
