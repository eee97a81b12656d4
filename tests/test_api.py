"""The HTTP service through Flask's test client, on SQLite and PostgreSQL, with the model
behind a fake OpenAI-compatible server and identity tokens verified by google-auth."""

import io
import time
import uuid

import psycopg
import pytest
from pptx import Presentation

from deckgen.api import create_app
from deckgen.auth import new_key
from deckgen.config import Config
from deckgen.store import Store
from tests.google_identity import IdentityIssuer

PG = "postgresql://postgres@127.0.0.1:5432/test"
BRIEF = {"client": "Harbor Logistics", "industry": "Logistics",
         "opportunity": "Dock scheduling", "notes": "Trucks queue for hours.",
         "contacts": [{"name": "Ana Ruiz", "role": "COO"}]}


@pytest.fixture(scope="module")
def issuer():
    issuer = IdentityIssuer()
    yield issuer
    issuer.stop()


def pg_url():
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{PG}?options=-csearch_path%3D{schema}", schema


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    if request.param == "sqlite":
        yield str(tmp_path / "deckgen.sqlite3")
        return
    url, schema = pg_url()
    yield url
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def make_app(tmp_path, database, fake_router, issuer, workers=True, **env):
    config = Config.from_env({
        "DECKGEN_OUTPUT_DIR": str(tmp_path / "decks"), "DECKGEN_WORKERS": "1",
        "DECKGEN_GOOGLE_AUDIENCE": issuer.audience, "DECKGEN_GOOGLE_CERTS_URL": issuer.certs_url,
        "DECKGEN_ALLOWED_DOMAINS": "acme-consulting.com", "DECKGEN_MAX_REQUEST_BYTES": "300000",
        **env})
    store = Store(database)
    app = create_app(config, store=store, router=fake_router, start_workers=workers)
    key, digest = new_key()
    store.add_key("crm", digest)
    return app, {"Authorization": f"Bearer {key}"}


@pytest.fixture
def service(tmp_path, fake_router, issuer):
    app, headers = make_app(tmp_path, str(tmp_path / "db.sqlite3"), fake_router, issuer)
    yield app.test_client(), headers
    app.extensions["deckgen"]["runner"].stop()


def wait_for(client, headers, job_id, states=("done", "failed", "cancelled"), timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).get_json()
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['state']}")


def test_a_pptx_job_runs_to_done_on_both_stores(tmp_path, database, fake_router, issuer):
    app, headers = make_app(tmp_path, database, fake_router, issuer)
    client = app.test_client()
    try:
        answer = client.post("/v1/jobs", json={"brief": BRIEF, "output": "pptx"},
                             headers=headers)
        assert answer.status_code == 202
        job_id = answer.get_json()["id"]
        assert answer.headers["Location"] == f"/v1/jobs/{job_id}"
        job = wait_for(client, headers, job_id)
        assert job["state"] == "done", job["error"]
        assert [s["state"] for s in job["sections"]] == ["done"] * 5
        assert all(s["route"] == "self-hosted" and s["prompt_tokens"] > 0
                   for s in job["sections"])
        assert all(s["fit"]["lines_used"] <= s["fit"]["lines_available"]
                   for s in job["sections"])
        deck = client.get(job["download"], headers=headers)
        assert deck.status_code == 200
        slides = Presentation(io.BytesIO(deck.data)).slides
        assert len(slides) == 6
        generations = app.extensions["deckgen"]["store"].generations(job_id)
        assert sorted(g["section"] for g in generations) == sorted(
            s["section"] for s in job["sections"])
        assert all(g["prompt"] and g["output"] and g["route"] for g in generations)
    finally:
        app.extensions["deckgen"]["runner"].stop()


def test_idempotency_key_returns_the_same_job(service):
    client, headers = service
    h = {**headers, "Idempotency-Key": "crm-123"}
    first = client.post("/v1/jobs", json={"brief": BRIEF, "output": "pptx"}, headers=h)
    second = client.post("/v1/jobs", json={"brief": BRIEF, "output": "pptx"}, headers=h)
    assert first.status_code == 202 and second.status_code == 200
    assert first.get_json()["id"] == second.get_json()["id"]
    third = client.post("/v1/jobs", json={"brief": BRIEF, "output": "pptx"}, headers=headers)
    assert third.get_json()["id"] != first.get_json()["id"]


@pytest.mark.parametrize("kwargs, status, code, field", [
    ({"data": "{not json", "content_type": "application/json"}, 422, "invalid_request", None),
    ({"json": ["a"]}, 422, "invalid_request", None),
    ({"json": {"brief": BRIEF}}, 422, "invalid_request", "presentation_id"),
    ({"json": {"brief": {"client": ""}, "output": "pptx"}}, 422, "invalid_brief",
     "brief.client"),
    ({"json": {"brief": BRIEF, "output": "pptx", "sections": ["pricing"]}}, 422,
     "invalid_request", "sections"),
    ({"json": {"brief": BRIEF, "output": "pptx", "route": "gpt5"}}, 422, "invalid_request",
     "route"),
    ({"json": {"brief": BRIEF, "output": "pptx", "colour": 1}}, 422, "invalid_request",
     "colour"),
    ({"json": {"brief": {**BRIEF, "notes": "x" * 350_000}, "output": "pptx"}}, 413,
     "request_entity_too_large", None),
    ({"json": {"brief": BRIEF, "output": "pptx", "keep_edits": "yes"}}, 422,
     "invalid_request", "keep_edits"),
    ({"json": {"opportunity_id": "006xx", "presentation_id": "p"}}, 422, "invalid_request",
     "crm"),
    ({"json": {"brief": BRIEF, "crm": "hubspot", "opportunity_id": "1", "output": "pptx"}},
     422, "invalid_request", "brief"),
    ({"json": {"presentation_id": "p"}}, 422, "invalid_request", "brief"),
    ({"json": {"crm": "hubspot", "opportunity_id": "1", "output": "pptx"}}, 422,
     "crm_not_configured", None),
    ({"json": {"crm": "pipedrive", "opportunity_id": "1", "output": "pptx"}}, 422,
     "invalid_request", "crm"),
    ({"json": {"crm": "hubspot", "opportunity_id": "1' OR 1=1", "output": "pptx"}}, 422,
     "invalid_request", "opportunity_id"),
])
def test_bad_job_requests_get_a_clear_4xx(service, kwargs, status, code, field):
    client, headers = service
    answer = client.post("/v1/jobs", headers=headers, **kwargs)
    assert answer.status_code == status
    error = answer.get_json()["error"]
    assert error["code"] == code and error["message"]
    assert error.get("field") == field


def test_unknown_ids_are_404(service):
    client, headers = service
    for path in ("/v1/jobs/job_nope", "/v1/batches/batch_nope"):
        answer = client.get(path, headers=headers)
        assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "job_not_found"
    assert client.get("/v1/nothing", headers=headers).status_code == 404


def test_credentials_are_checked(service, issuer):
    client, headers = service
    assert client.get("/v1/sections").status_code == 401
    bad = client.get("/v1/sections", headers={"Authorization": "Bearer dk_not-a-key"})
    assert bad.status_code == 401 and "API key" in bad.get_json()["error"]["message"]

    def who(token):
        return client.get("/v1/sections", headers={"Authorization": f"Bearer {token}"})

    assert who(issuer.token()).status_code == 200
    assert who(issuer.token(expired=True)).status_code == 401
    assert "expired" in who(issuer.token(expired=True)).get_json()["error"]["message"].lower()
    assert who(issuer.token(forged=True)).status_code == 401
    assert who(issuer.token(audience="someone-else")).status_code == 401
    assert who(issuer.token(email_verified=False)).status_code == 401
    assert who(issuer.token("eve@elsewhere.com")).status_code == 403
    assert who("abc.def.ghi").status_code == 401


def test_a_caller_only_sees_its_own_jobs(service, issuer):
    # another caller's job answers exactly like a missing one (404), so ids cannot be probed
    client, headers = service
    job = client.post("/v1/jobs", json={"brief": BRIEF, "output": "pptx"},
                      headers=headers).get_json()
    rep = {"Authorization": f"Bearer {issuer.token()}"}
    for method, path in (("get", f"/v1/jobs/{job['id']}"),
                         ("post", f"/v1/jobs/{job['id']}/cancel"),
                         ("get", f"/v1/jobs/{job['id']}/deck.pptx")):
        answer = getattr(client, method)(path, headers=rep)
        assert answer.status_code == 404, answer.get_json()
        assert answer.get_json()["error"] == {"code": "job_not_found",
                                              "message": f"no job {job['id']}"}
    mine = client.get(f"/v1/jobs/{job['id']}", headers=headers).get_json()
    assert mine["state"] != "cancelled"  # the stranger's cancel did nothing


def test_cancel_a_queued_job(tmp_path, fake_router, issuer):
    app, headers = make_app(tmp_path, str(tmp_path / "db.sqlite3"), fake_router, issuer,
                            workers=False)
    client = app.test_client()
    job = client.post("/v1/jobs", json={"brief": BRIEF, "output": "pptx"},
                      headers=headers).get_json()
    assert job["state"] == "queued"
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers).get_json()
    assert cancelled["state"] == "cancelled"
    assert client.get(f"/v1/jobs/{job['id']}/deck.pptx", headers=headers).status_code == 422


def test_preview_returns_sections_without_writing(service, fake_openai):
    client, headers = service
    answer = client.post("/v1/preview", json={"brief": BRIEF, "sections": ["skills", "data"]},
                         headers=headers)
    assert answer.status_code == 200
    sections = answer.get_json()["sections"]
    assert [s["section"] for s in sections] == ["skills", "data"]
    assert all(s["status"] == "ok" and s["lines"] for s in sections)
    assert len(fake_openai.requests) == 2
    # fitted to the default template's boxes: lines used / available per section
    assert all(0 < s["fit"]["lines_used"] <= s["fit"]["lines_available"] for s in sections)


def test_health_ready_and_metrics(service):
    client, headers = service
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["store"] is True
    client.post("/v1/preview", json={"brief": BRIEF, "sections": ["skills"]}, headers=headers)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'deckgen_http_requests_total{endpoint="/v1/preview",method="POST",status="200"} 1.0' \
        in text
    assert 'deckgen_section_seconds_count{route="self-hosted",section="skills"} 1.0' in text
    assert "deckgen_queue_depth 0.0" in text


def test_openapi_names_exactly_the_served_routes(service):
    client, _ = service
    doc = client.get("/openapi.json").get_json()
    app = client.application
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method.lower()))
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented


def test_csv_batch_upload_needs_presentation_ids(service):
    client, headers = service
    data = {"file": (io.BytesIO(b"client,notes\nAcme,hi\n"), "decks.csv")}
    answer = client.post("/v1/batches", data=data, headers=headers,
                         content_type="multipart/form-data")
    assert answer.status_code == 422 and answer.get_json()["error"]["field"] == "file"


def test_failed_batch_items_can_be_retried_alone(tmp_path, fake_router, issuer, google,
                                                 service_account_file):
    from tests.slides_fixtures import realistic_template

    ok = google.add_presentation(realistic_template(), owner_token="service-account")
    locked = google.add_presentation(realistic_template(), owner_token="someone-else")
    app, headers = make_app(tmp_path, str(tmp_path / "db.sqlite3"), fake_router, issuer,
                            GOOGLE_APPLICATION_CREDENTIALS=service_account_file,
                            DECKGEN_GOOGLE_API_ENDPOINT=google.url,
                            DECKGEN_DRIVE_API_ENDPOINT=google.url)
    client = app.test_client()

    def settle(batch_id):
        for _ in range(300):
            view = client.get(f"/v1/batches/{batch_id}", headers=headers).get_json()
            if view["counts"]["queued"] == view["counts"]["running"] == 0:
                return view
            time.sleep(0.05)
        raise AssertionError(view)

    try:
        answer = client.post("/v1/batches", headers=headers, json={
            "items": [{"presentation_id": ok, "brief": BRIEF},
                      {"presentation_id": locked, "brief": BRIEF}], "sections": ["data"]})
        assert answer.status_code == 202
        view = settle(answer.get_json()["id"])
        assert (view["counts"]["done"], view["counts"]["failed"]) == (1, 1)
        failed = next(i for i in view["items"] if i["state"] == "failed")
        assert failed["error"]["code"] == "deck_access_denied"
        assert locked in failed["error"]["message"]

        google.grant(locked, "service-account")
        retried = client.post(f"/v1/batches/{view['id']}/retry", headers=headers).get_json()
        assert retried["retried"] == 1
        view = settle(view["id"])
        assert view["counts"]["done"] == 2
        assert "{{data}}" not in google.shape_text(locked, "data_body")
        assert google.shape_text(locked, "cs_body") == "{{current_state}}\n"
    finally:
        app.extensions["deckgen"]["runner"].stop()


def test_a_template_job_copies_once_and_fills_the_copy(tmp_path, fake_router, issuer, google,
                                                       service_account_file):
    from tests.slides_fixtures import realistic_template

    template = google.add_presentation(realistic_template(), owner_token="service-account")
    app, headers = make_app(tmp_path, str(tmp_path / "db.sqlite3"), fake_router, issuer,
                            GOOGLE_APPLICATION_CREDENTIALS=service_account_file,
                            DECKGEN_GOOGLE_API_ENDPOINT=google.url,
                            DECKGEN_DRIVE_API_ENDPOINT=google.url)
    client = app.test_client()
    try:
        job = client.post("/v1/jobs", headers=headers, json={
            "brief": BRIEF, "template_id": template, "title": "Harbor pitch"}).get_json()
        job = wait_for(client, headers, job["id"])
        assert job["state"] == "done", job["error"]
        copies = [p for p in google.presentations if p != template]
        assert len(copies) == 1 and job["presentation_id"] == copies[0]
        assert job["url"].endswith(f"/d/{copies[0]}/edit")
        store = app.extensions["deckgen"]["store"]
        assert store.get_job(job["id"]).presentation_id == copies[0]
        assert "{{" not in google.shape_text(copies[0], "cs_body")
        assert google.shape_text(template, "cs_body") == "{{current_state}}\n"
        # a rep edits one section; the next fill records what was kept and what edited
        google.edit_text(copies[0], "cs_body", "Rewritten by the rep")
        again = client.post("/v1/jobs", headers=headers, json={
            "brief": BRIEF, "presentation_id": copies[0], "keep_edits": True}).get_json()
        again = wait_for(client, headers, again["id"])
        assert again["state"] == "done", again["error"]
        states = {(f["section"], f["part"]): f["state"] for f in store.feedback(copies[0])}
        assert states[("current_state", "body")] == "edited"
        assert states[("data", "body")] == "kept"
        assert google.shape_text(copies[0], "cs_body") == "Rewritten by the rep\n"
    finally:
        app.extensions["deckgen"]["runner"].stop()


def test_a_person_must_send_their_google_token_to_fill_a_deck(service, issuer):
    client, _ = service
    rep = {"Authorization": f"Bearer {issuer.token()}"}
    answer = client.post("/v1/jobs", headers=rep, json={"brief": BRIEF, "presentation_id": "d"})
    assert answer.status_code == 422
    assert answer.get_json()["error"]["field"] == "X-Goog-User-Token"
