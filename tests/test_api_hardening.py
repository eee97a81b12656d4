"""The service against careless and hostile callers (issue 18): every bad input is a 4xx
with the usual JSON error body, never a 500; authentication comes before any lookup; limits
per caller answer 429 with Retry-After; previews cannot take every request thread; the
embedded model starts only where the operator allows it; batches are atomic and idempotent;
a store that is away is a 503 with Retry-After."""

import http.client
import json
import threading
import time
import uuid

import psycopg
import pytest
import redis
from werkzeug.serving import make_server

from deckgen.api import create_app
from deckgen.auth import new_key
from deckgen.config import Config
from deckgen.errors import ConfigError
from deckgen.store import Store
from tests.fake_openai import instance_of
from tests.samples import REQUEST_BRIEF as BRIEF
from tests.tcp_proxy import TcpProxy

PG = "postgresql://postgres@127.0.0.1:5432/test"
DECK_ID = "1AbC-dEf_2" * 4  # a Google-shaped id (40 characters)
JOB = {"brief": BRIEF, "output": "pptx"}
BATCH = {"items": [{"presentation_id": DECK_ID, "brief": BRIEF}]}
PREVIEW = {"brief": BRIEF, "sections": ["skills"]}
DOORS = [("/v1/jobs", JOB), ("/v1/preview", PREVIEW), ("/v1/batches", BATCH)]


def error(answer, status):
    assert answer.status_code == status, answer.get_data(as_text=True)[:500]
    body = answer.get_json()["error"]
    assert body["code"] and body["message"] and "Traceback" not in body["message"]
    return body


def jobs_in(store):
    with store.tx(readonly=True) as cur:
        cur.execute("SELECT COUNT(*) AS n FROM jobs")
        return int(cur.fetchone()["n"])


def add_key(store, name):
    key, digest = new_key()
    store.add_key(name, digest)
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, tmp_path):
    """A fresh store on SQLite, then on PostgreSQL (a schema of its own)."""
    if request.param == "sqlite":
        store = Store(str(tmp_path / "any.sqlite3"))
        yield store
        store.close()
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    store = Store(f"{PG}?options=-csearch_path%3D{schema}")
    yield store
    store.close()
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def app_on(store, tmp_path, router, **env):
    config = Config.from_env({"DECKGEN_OUTPUT_DIR": str(tmp_path / "decks"), **env})
    return create_app(config, store=store, router=router, start_workers=False)


# --- bad input: a 4xx, never a 500, and nothing stored ---------------------------------------

@pytest.mark.parametrize("path, _", DOORS)
def test_json_nested_1000_deep_is_a_422(client, api_key, store, path, _):
    for text in ("[" * 1000 + "]" * 1000, '{"brief": ' + '{"a": ' * 1000 + "1" + "}" * 1001):
        body = error(client.post(path, data=text, content_type="application/json",
                                 headers=api_key), 422)
        assert "nested too deeply" in body["message"]
    assert jobs_in(store) == 0


@pytest.mark.parametrize("path, good", DOORS)
def test_a_lone_surrogate_anywhere_is_refused_before_a_job_exists(client, api_key, store,
                                                                   fake_openai, path, good):
    text = json.dumps(good)
    for hostile in (text.replace("Trucks queue.", "\\ud800"),  # in a brief's text
                    text.replace('"client"', '"cli\\udfffent"'),  # in a key
                    text[:-1] + ', "x\\ud800": 1}'):  # in an unknown field's name
        body = error(client.post(path, data=hostile, content_type="application/json",
                                 headers=api_key), 422)
        assert "surrogate" in body["message"]
    body = error(client.post(path, data=text.replace("Trucks queue.", "\\ud83d"),
                             content_type="application/json", headers=api_key), 422)
    assert body["field"].endswith("brief.notes")  # the field is named
    assert jobs_in(store) == 0 and not fake_openai.requests


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_nan_and_infinity_are_not_json(client, api_key, store, number):
    text = '{"brief": {"client": "A", "metrics": {"Uptime": NUMBER}}, "output": "pptx"}'
    text = text.replace("NUMBER", number)
    error(client.post("/v1/jobs", data=text, content_type="application/json",
                      headers=api_key), 422)
    assert jobs_in(store) == 0


def test_a_csv_cell_over_the_field_limit_is_a_422(client, api_key, store):
    import io

    csv = b"presentation_id,notes\n" + DECK_ID.encode() + b"," + b"x" * 131_073 + b"\n"
    body = error(client.post("/v1/batches", headers=api_key, content_type="multipart/form-data",
                             data={"file": (io.BytesIO(csv), "decks.csv")}), 422)
    assert body["field"] == "file" and "field limit" in body["message"]
    bad_brief = b'presentation_id,brief\nabc,"{""client"": ""\\ud800""}"\n'
    body = error(client.post("/v1/batches", headers=api_key, content_type="multipart/form-data",
                             data={"file": (io.BytesIO(bad_brief), "decks.csv")}), 422)
    assert body["field"] == "file" and "CSV line 2" in body["message"]
    assert jobs_in(store) == 0


@pytest.mark.parametrize("deck", ["t1?fields=*", "a/b", "deck id", "x" * 129, "d\x00"])
def test_presentation_ids_must_be_google_ids(client, api_key, store, deck):
    body = error(client.post("/v1/jobs", json={"brief": BRIEF, "presentation_id": deck},
                             headers=api_key), 422)
    assert body["field"] == "presentation_id"
    body = error(client.post("/v1/jobs", json={"brief": BRIEF, "template_id": deck,
                                               "title": "T"}, headers=api_key), 422)
    assert body["field"] == "template_id"
    body = error(client.post("/v1/batches", headers=api_key, json={
        "items": [{"presentation_id": DECK_ID, "brief": BRIEF},
                  {"presentation_id": deck, "brief": BRIEF}]}), 422)
    assert body["field"] == "items[1].presentation_id"
    assert jobs_in(store) == 0


def test_nul_bytes_in_ids_are_404_or_422_on_both_stores(any_store, tmp_path, fake_router):
    client = app_on(any_store, tmp_path, fake_router).test_client()
    headers = add_key(any_store, "crm")
    for path in ("/v1/jobs/job_%00x", "/v1/jobs/%00/deck.pptx", "/v1/batches/batch_%00"):
        assert error(client.get(path, headers=headers), 404)["code"] == "job_not_found"
    for path in ("/v1/jobs/job_%00x/cancel", "/v1/batches/b%00/retry"):
        error(client.post(path, headers=headers), 404)
    error(client.post("/v1/jobs", json={"brief": BRIEF, "presentation_id": "d\x00"},
                      headers=headers), 422)
    error(client.post("/v1/jobs", json={"brief": BRIEF, "template_id": "t", "title": "a\x00"},
                      headers=headers), 422)
    error(client.post("/v1/jobs", json=JOB, headers={**headers, "Idempotency-Key": "k\x00"}),
          422)
    assert jobs_in(any_store) == 0


def test_a_chunked_body_over_the_limit_is_a_413(app, api_key, store):
    """A real server: Werkzeug cuts a body without Content-Length at the limit, which used to
    turn a 3 MB body into truncated JSON and a 422."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def chunked(path, head, body, tail, content_type):
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
        conn.putrequest("POST", path)
        for name, value in {**api_key, "Content-Type": content_type,
                            "Transfer-Encoding": "chunked"}.items():
            conn.putheader(name, value)
        conn.endheaders()
        for part in (head, body, tail):
            for i in range(0, len(part), 64 * 1024):
                piece = part[i:i + 64 * 1024]
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())

    try:
        big = b"a" * 3 * 1024 * 1024
        status, body = chunked("/v1/jobs", b'{"brief": {"client": "A", "notes": "', big,
                               b'"}, "output": "pptx"}', "application/json")
        assert status == 413 and body["error"]["code"] == "request_entity_too_large"
        status, body = chunked(
            "/v1/batches", b'--XyZ\r\nContent-Disposition: form-data; name="file"; '
            b'filename="d.csv"\r\nContent-Type: text/csv\r\n\r\npresentation_id,notes\r\nd,',
            big, b"\r\n--XyZ--\r\n", "multipart/form-data; boundary=XyZ")
        assert status == 413
        status, body = chunked("/v1/jobs", b'{"brief": {"client": "A", "notes": "', b"ok",
                               b'"}, "output": "pptx"}', "application/json")
        assert status == 202, body  # a small chunked body is read whole
        assert jobs_in(store) == 1
    finally:
        server.shutdown()


def test_a_bad_idempotency_key_is_a_422(client, api_key, store):
    body = error(client.post("/v1/jobs", json=JOB, headers={**api_key,
                                                            "Idempotency-Key": "x" * 201}), 422)
    assert body["field"] == "Idempotency-Key"
    assert jobs_in(store) == 0


# --- who may see what --------------------------------------------------------------------------

def test_credentials_come_before_any_lookup(client, api_key, store):
    """No existence oracle: without valid credentials every id answers the same 401; with
    them, another caller's job or batch answers exactly like a missing one."""
    job = client.post("/v1/jobs", json=JOB, headers=api_key).get_json()["id"]
    batch = client.post("/v1/batches", json=BATCH, headers=api_key).get_json()["id"]
    stranger = add_key(store, "stranger")
    paths = [("get", "/v1/jobs/{}", job, "job_nope"),
             ("post", "/v1/jobs/{}/cancel", job, "job_nope"),
             ("get", "/v1/jobs/{}/deck.pptx", job, "job_nope"),
             ("get", "/v1/batches/{}", batch, "batch_nope"),
             ("post", "/v1/batches/{}/retry", batch, "batch_nope")]
    for method, pattern, real, missing in paths:
        call = getattr(client, method)
        for bad in ({}, {"Authorization": "Bearer dk_not-a-key"},
                    {"Authorization": "Basic abc"}):
            answers = {json.dumps(call(pattern.format(i), headers=bad).get_json())
                       for i in (real, missing)}
            assert len(answers) == 1 and "unauthenticated" in answers.pop()
        theirs = error(call(pattern.format(real), headers=stranger), 404)
        nothing = error(call(pattern.format(missing), headers=stranger), 404)
        assert theirs["code"] == nothing["code"] == "job_not_found"
        assert theirs["message"].replace(real, "ID") == nothing["message"].replace(missing, "ID")
    assert client.get(f"/v1/jobs/{job}", headers=api_key).get_json()["state"] == "queued"


# --- the embedded model ------------------------------------------------------------------------

@pytest.mark.parametrize("path, good", DOORS)
def test_route_local_needs_the_operator(client, api_key, store, fake_openai, path, good):
    body = error(client.post(path, json={**good, "route": "local"}, headers=api_key), 422)
    assert body["field"] == "route" and "DECKGEN_ALLOW_LOCAL_ROUTE" in body["message"]
    assert jobs_in(store) == 0 and not fake_openai.requests
    # auto stays allowed: it reaches the embedded model only where nothing else is configured
    assert client.post(path, json={**good, "route": "auto"}, headers=api_key).status_code < 300


@pytest.mark.parametrize("app_env", [{"DECKGEN_ALLOW_LOCAL_ROUTE": "1"}])
def test_an_operator_can_allow_route_local(client, api_key):
    # the test router serves any route name from the fake model server
    answer = client.post("/v1/preview", json={**PREVIEW, "route": "local"}, headers=api_key)
    assert answer.status_code == 200
    assert client.post("/v1/jobs", json={**JOB, "route": "local"},
                       headers=api_key).status_code == 202


# --- per-caller limits and the health of the process -------------------------------------------

@pytest.mark.parametrize("app_env", [{"DECKGEN_RATE_LIMIT": "3/minute"}])
def test_a_caller_over_its_rate_gets_429_with_retry_after(client, api_key, store):
    for path, good in DOORS:
        for _ in range(3):
            assert client.post(path, json=good, headers=api_key).status_code < 300
        answer = client.post(path, json=good, headers=api_key)
        assert error(answer, 429)["code"] == "rate_limited"
        assert 1 <= int(answer.headers["Retry-After"]) <= 60
    other = add_key(store, "other")
    assert client.post("/v1/jobs", json=JOB, headers=other).status_code == 202
    assert client.get("/healthz").status_code == 200


def test_rate_limits_hold_across_replicas_through_redis(store, tmp_path, fake_router):
    url = "redis://127.0.0.1:6379/14"
    redis.Redis.from_url(url).flushdb()
    try:
        replicas = [app_on(store, tmp_path, fake_router, DECKGEN_RATE_LIMIT="3/minute",
                           DECKGEN_RATE_LIMIT_URL=url).test_client() for _ in range(2)]
        headers = add_key(store, "crm")
        codes = [replicas[i % 2].post("/v1/jobs", json=JOB, headers=headers).status_code
                 for i in range(5)]
        assert codes == [202, 202, 202, 429, 429]
    finally:
        redis.Redis.from_url(url).flushdb()


def held_previews(client, fake_openai, headers):
    """One preview per headers, each held inside its model call until `release` is set;
    returns (release, threads, answers) once every one of them is in the model."""
    release = threading.Event()

    def gate(body):
        release.wait(30)
        return json.dumps(instance_of(body["response_format"]["json_schema"]["schema"]))

    fake_openai.reply(None, *[{"dynamic": gate}] * len(headers))
    answers = []
    threads = [threading.Thread(target=lambda h=h: answers.append(
        client.post("/v1/preview", json=PREVIEW, headers=h))) for h in headers]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while fake_openai.in_flight < len(headers):
        assert time.monotonic() < deadline, "the previews never reached the model"
        time.sleep(0.01)
    return release, threads, answers


@pytest.mark.parametrize("app_env", [{"DECKGEN_PREVIEW_CONCURRENCY": "2",
                                      "DECKGEN_PREVIEW_PER_CALLER": "5"}])
def test_previews_cannot_take_every_thread(client, store, fake_openai):
    callers = [add_key(store, f"c{i}") for i in range(3)]
    release, threads, answers = held_previews(client, fake_openai, callers[:2])
    try:
        full = client.post("/v1/preview", json=PREVIEW, headers=callers[2])
        assert error(full, 503)["code"] == "busy" and int(full.headers["Retry-After"]) >= 1
        # answered at once while both preview slots are held in model calls
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.post("/v1/jobs", json=JOB, headers=callers[2]).status_code == 202
        assert fake_openai.in_flight == 2
    finally:
        release.set()
        for t in threads:
            t.join()
    assert [a.status_code for a in answers] == [200, 200]
    assert client.post("/v1/preview", json=PREVIEW, headers=callers[2]).status_code == 200


@pytest.mark.parametrize("app_env", [{"DECKGEN_PREVIEW_PER_CALLER": "1"}])
def test_one_caller_has_one_preview_in_flight(client, store, api_key, fake_openai):
    release, threads, answers = held_previews(client, fake_openai, [api_key])
    try:
        second = client.post("/v1/preview", json=PREVIEW, headers=api_key)
        assert error(second, 429)["code"] == "rate_limited" and "Retry-After" in second.headers
        assert client.post("/v1/preview", json=PREVIEW,
                           headers=add_key(store, "other")).status_code == 200
    finally:
        release.set()
        threads[0].join()
    assert answers[0].status_code == 200
    assert client.post("/v1/preview", json=PREVIEW, headers=api_key).status_code == 200


# --- failures that are not the caller's ----------------------------------------------------------

def test_a_preview_where_every_section_failed_is_not_a_200(client, api_key, fake_openai):
    fake_openai.reply(None, *["this is not JSON"] * 20)
    answer = client.post("/v1/preview", json={"brief": BRIEF, "sections": ["skills", "data"]},
                         headers=api_key)
    body = error(answer, 502)
    assert body["code"] == "preview_failed"
    assert [s["section"] for s in body["details"]["sections"]] == ["skills", "data"]
    assert all(s["error"]["code"] for s in body["details"]["sections"])


def test_a_preview_when_the_model_is_away_is_a_503_with_retry_after(client, api_key,
                                                                     fake_openai):
    fake_openai.reply(None, *[{"status": 503, "code": "overloaded"}] * 50)
    answer = client.post("/v1/preview", json=PREVIEW, headers=api_key)
    body = error(answer, 503)
    assert body["code"] == "model_unavailable" and int(answer.headers["Retry-After"]) >= 1
    assert body["details"]["sections"][0]["section"] == "skills"


def test_a_store_that_is_away_is_a_503_with_retry_after(tmp_path, fake_router):
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    proxy = TcpProxy("127.0.0.1", 5432).start()
    store = Store(f"postgresql://postgres@127.0.0.1:{proxy.port}/test?options=-csearch_path"
                  f"%3D{schema}", pool_timeout=1)
    try:
        client = app_on(store, tmp_path, fake_router).test_client()
        headers = add_key(store, "crm")
        assert client.post("/v1/jobs", json=JOB, headers=headers).status_code == 202
        proxy.cut()
        for answer in (client.get("/v1/sections", headers=headers),
                       client.post("/v1/jobs", json=JOB, headers=headers)):
            assert error(answer, 503)["code"] == "store_unavailable"
            assert int(answer.headers["Retry-After"]) >= 1
        assert client.get("/healthz").status_code == 200
        proxy.restore()
        deadline = time.monotonic() + 20
        while client.get("/v1/sections", headers=headers).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        store.close()
        proxy.stop()
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_an_unexpected_error_is_a_json_500_without_a_traceback(app, caplog):
    def broken():
        raise RuntimeError("secret internals")

    app.add_url_rule("/broken", view_func=broken)
    answer = app.test_client().get("/broken")
    body = error(answer, 500)
    assert body == {"code": "internal_error", "message": body["message"]}
    assert "secret" not in answer.get_data(as_text=True)
    assert "secret internals" in caplog.text  # logged, with its traceback


# --- batches -------------------------------------------------------------------------------------

def test_batches_are_atomic_and_idempotent_on_both_stores(any_store, tmp_path, fake_router):
    client = app_on(any_store, tmp_path, fake_router).test_client()
    headers = add_key(any_store, "crm")
    items = [{"presentation_id": f"deck{i}", "brief": BRIEF} for i in range(3)]
    # one bad item: nothing at all is stored
    bad = [*items, {"presentation_id": "deck9", "brief": {"client": ""}}]
    body = error(client.post("/v1/batches", json={"items": bad}, headers=headers), 422)
    assert body["field"] == "items[3].brief.client"
    assert jobs_in(any_store) == 0
    keyed = {**headers, "Idempotency-Key": "crm-export-7"}
    first = client.post("/v1/batches", json={"items": items}, headers=keyed)
    again = client.post("/v1/batches", json={"items": items}, headers=keyed)
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.get_json()["id"] == again.get_json()["id"]
    assert [j["id"] for j in first.get_json()["items"]] == \
        [j["id"] for j in again.get_json()["items"]]
    assert first.headers["Location"] == f"/v1/batches/{first.get_json()['id']}"
    assert jobs_in(any_store) == 3
    other = client.post("/v1/batches", json={"items": items}, headers=headers)
    assert other.status_code == 202 and other.get_json()["id"] != first.get_json()["id"]
    assert jobs_in(any_store) == 6


# --- configuration at start ----------------------------------------------------------------------

@pytest.mark.parametrize("env, words", [
    ({"DECKGEN_JOB_STALE_SECONDS": "4"}, "heartbeat"),
    ({"DECKGEN_RATE_LIMIT": "lots"}, "DECKGEN_RATE_LIMIT"),
    ({"DECKGEN_ALLOW_LOCAL_ROUTE": "maybe"}, "DECKGEN_ALLOW_LOCAL_ROUTE"),
    ({"DECKGEN_PREVIEW_CONCURRENCY": "0"}, "DECKGEN_PREVIEW_CONCURRENCY"),
    ({"DECKGEN_RATE_LIMIT_URL": "mysql://x"}, "DECKGEN_RATE_LIMIT_URL"),
])
def test_bad_settings_stop_the_service_at_start(env, words):
    with pytest.raises(ConfigError, match=words):
        Config.from_env(env)
