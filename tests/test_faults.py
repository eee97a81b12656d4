"""Faults with work in flight: the database cut for a few seconds while the service's own
workers run jobs (every job still ends, once, soon after the database is back, and the
service never answered a 500 meanwhile; PostgreSQL is reached through a TCP proxy that the
test cuts and restores, tests/tcp_proxy.py); a model server that hangs (silent, or stalled
mid-body); and Redis, where the shared limits live, cut while jobs and callers run."""

import contextlib
import socket
import threading
import time

import pytest
import requests
from werkzeug.serving import make_server

from deckgen.api import create_app
from deckgen.auth import new_key
from deckgen.config import Config
from deckgen.llm.router import Router
from deckgen.store import Store
from tests.samples import REQUEST_BRIEF
from tests.tcp_proxy import TcpProxy

JOBS = 12
RECOVERY = 30.0  # seconds after the database is back by which every job has ended


def test_a_database_outage_mid_batch_loses_nothing_and_every_job_ends_once(
        tmp_path, fake_router, fake_openai, pg_schema):
    for _ in range(JOBS * 5):  # a model that takes a moment: jobs are in flight at the cut
        fake_openai.reply(None, {"delay": 0.3, "then": None})
    proxy = TcpProxy("127.0.0.1", 5432).start()
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test?options=-csearch_path" \
          f"%3D{pg_schema}"
    store = Store(url, pool_timeout=1)
    config = Config.from_env({"DECKGEN_OUTPUT_DIR": str(tmp_path / "decks"),
                              "DECKGEN_WORKERS": "2", "DECKGEN_JOB_STALE_SECONDS": "10",
                              "DECKGEN_RATE_LIMIT": "off"})
    app = create_app(config, store=store, router=fake_router)
    runner = app.extensions["deckgen"]["runner"]
    key, digest = new_key()
    store.add_key("crm", digest)
    headers = {"Authorization": f"Bearer {key}"}
    client = app.test_client()
    try:
        ids = [client.post("/v1/jobs", json={"brief": REQUEST_BRIEF, "output": "pptx"},
                           headers=headers).get_json()["id"] for _ in range(JOBS)]
        time.sleep(1.0)
        with store.tx(readonly=True) as cur:
            cur.execute("SELECT state FROM jobs")
            before = [r["state"] for r in cur.fetchall()]
        proxy.cut()
        assert "running" in before and before.count("done") < JOBS, before
        statuses = set()
        for _ in range(10):  # callers during the outage: 503 or 200, never a 500
            statuses.add(client.get(f"/v1/jobs/{ids[0]}", headers=headers).status_code)
            statuses.add(client.get("/readyz").status_code)
            time.sleep(0.4)
        assert 500 not in statuses and 503 in statuses
        proxy.restore()
        back = time.monotonic()
        states: dict[str, str] = {}
        while time.monotonic() - back < RECOVERY:
            answer = [client.get(f"/v1/jobs/{i}", headers=headers) for i in ids]
            states = {i: a.get_json()["state"] for i, a in zip(ids, answer, strict=True)
                      if a.status_code == 200}
            if len(states) == JOBS and all(s in ("done", "failed") for s in states.values()):
                break
            time.sleep(0.5)
        assert states and set(states.values()) == {"done"}, states
        assert runner.alive(), "a worker died in the outage"
        assert client.get("/readyz").status_code == 200
        verify = Store(url)
        for job_id in ids:
            job = verify.get_job(job_id)
            assert job.finished_at is not None and (tmp_path / "decks" /
                                                    f"{job_id}.pptx").is_file()
        verify.close()
    finally:
        runner.stop()
        store.close()
        proxy.stop()


# --- a model server that hangs ------------------------------------------------------------

class HangingServer:
    """An OpenAI-compatible base URL on 127.0.0.1 that never finishes an answer: "silent"
    accepts the connection, reads the request and says nothing; "mid-body" sends a 200's
    headers and the start of the JSON body, then stalls. Counts the requests it got."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"
        self.requests = 0
        self.stopped = threading.Event()
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.requests += 1
            if self.mode == "mid-body":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 4000\r\n\r\n{\"id\": \"chatcmpl-1\", \"cho")
            self.stopped.wait()

    def stop(self) -> None:
        self.stopped.set()
        for sock in [self.listener, *self.open]:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture(params=["silent", "mid-body"])
def hanging(request):
    server = HangingServer(request.param)
    yield server
    server.stop()


@pytest.fixture
def hang_app(tmp_path, hanging, fake_openai):
    """The service with its self-hosted route on the hanging server and its openai route on
    the fake OpenAI server, one job worker, served by a real threaded HTTP server."""
    config = Config.from_env({
        "DECKGEN_SELF_HOSTED_URL": hanging.url, "DECKGEN_SELF_HOSTED_MODEL": "m",
        "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake_openai.url,
        "DECKGEN_SECTION_TIMEOUT": "3", "DECKGEN_WORKERS": "1",
        "DECKGEN_OUTPUT_DIR": str(tmp_path / "decks"), "DECKGEN_RATE_LIMIT": "off",
        "DECKGEN_DATABASE_URL": str(tmp_path / "deckgen.sqlite3")})
    store = Store(config.database_url)
    app = create_app(config, store=store, router=Router.from_config(config))
    key, digest = new_key()
    store.add_key("crm", digest)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield (f"http://127.0.0.1:{server.server_port}", {"Authorization": f"Bearer {key}"},
           config)
    server.shutdown()
    app.extensions["deckgen"]["runner"].stop()
    app.extensions["deckgen"]["router"].close()
    store.close()


def hang_bound(config: Config) -> float:
    """How long a section may take on a hung route: one timeout (a timeout is not retried
    on the same route), plus half of one for the rest of the job's work."""
    return config.section_timeout * 1.5


def finish(url: str, headers: dict[str, str], job_id: str, within: float) -> dict:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        job = requests.get(f"{url}/v1/jobs/{job_id}", headers=headers, timeout=5).json()
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['state']} after {within:.1f}s")


def test_a_job_on_a_hung_route_fails_within_its_timeout_and_frees_the_worker(
        hang_app, hanging, fake_openai):
    url, headers, config = hang_app
    started = time.monotonic()
    job = requests.post(f"{url}/v1/jobs", headers=headers, json={
        "brief": REQUEST_BRIEF, "output": "pptx", "route": "self-hosted",
        "sections": ["skills", "data"]}).json()
    health = []
    while time.monotonic() - started < config.section_timeout:  # the worker is stuck now
        health.append(requests.get(f"{url}/healthz", timeout=config.section_timeout)
                      .status_code)
        time.sleep(0.2)
    ended = finish(url, headers, job["id"], hang_bound(config))
    took = time.monotonic() - started
    print(f"job on a hung route ({hanging.mode}) ended in {took:.2f}s "
          f"(timeout {config.section_timeout:g}s)")
    assert took <= hang_bound(config)
    assert hanging.requests >= 1 and set(health) == {200}
    assert ended["state"] == "failed"
    sections = {s["section"]: s for s in ended["sections"]}
    for name in ("skills", "data"):
        assert sections[name]["state"] == "failed"
        assert "timed out" in sections[name]["error"]["message"], sections[name]
    # the worker is free again: the next job (on the openai route) runs to the end
    second = requests.post(f"{url}/v1/jobs", headers=headers, json={
        "brief": REQUEST_BRIEF, "output": "pptx", "route": "openai",
        "sections": ["skills"]}).json()
    assert finish(url, headers, second["id"], 30)["state"] == "done"
    assert fake_openai.requests


def test_a_hung_route_fails_over_to_the_next_within_its_timeout(hang_app, hanging,
                                                                  fake_openai):
    url, headers, config = hang_app
    started = time.monotonic()
    job = requests.post(f"{url}/v1/jobs", headers=headers, json={
        "brief": REQUEST_BRIEF, "output": "pptx", "sections": ["skills", "data"]}).json()
    ended = finish(url, headers, job["id"], hang_bound(config) + 30)
    took = time.monotonic() - started
    assert took <= hang_bound(config), took
    assert ended["state"] == "done", ended
    assert [s["route"] for s in ended["sections"]] == ["openai", "openai"]
    assert all(s["failovers"] == 1 for s in ended["sections"])
    assert hanging.requests >= 1


def test_a_preview_on_a_hung_route_ends_within_its_timeout_and_health_answers(
        hang_app, hanging):
    url, headers, config = hang_app
    answer: dict[str, requests.Response] = {}

    def preview() -> None:
        answer["preview"] = requests.post(f"{url}/v1/preview", headers=headers, json={
            "brief": REQUEST_BRIEF, "route": "self-hosted", "sections": ["skills", "data"]},
            timeout=config.section_timeout * 4)

    started = time.monotonic()
    thread = threading.Thread(target=preview)
    thread.start()
    health = []
    while thread.is_alive():  # health checks answer while the preview hangs
        health.append(requests.get(f"{url}/healthz", timeout=config.section_timeout)
                      .status_code)
        time.sleep(0.2)
    took = time.monotonic() - started
    thread.join()
    print(f"preview on a hung route ({hanging.mode}) answered in {took:.2f}s")
    assert took <= hang_bound(config)
    assert len(health) >= 2 and set(health) == {200}
    got = answer["preview"]
    assert got.status_code == 503 and int(got.headers["Retry-After"]) >= 1, got.text
    sections = got.json()["error"]["details"]["sections"]
    assert {s["section"] for s in sections} == {"skills", "data"}
    assert all("timed out" in s["error"]["message"] for s in sections), sections


# --- Redis, where the shared limits live, cut while jobs and callers run ------------------

REDIS_DB = "redis://127.0.0.1:6379/12"
WRITES_PER_MINUTE = 5  # batch writes may use 4 of them; a person's job finds the fifth


@pytest.fixture
def redis_proxy():
    import redis

    clean = redis.Redis.from_url(REDIS_DB)

    def wipe() -> None:
        for key in clean.scan_iter("deckgen*"):
            clean.delete(key)

    wipe()
    with TcpProxy("127.0.0.1", 6379) as proxy:
        yield proxy
    wipe()


def test_a_redis_cut_grants_no_write_and_writes_resume_by_themselves(
        tmp_path, fake_router, google, service_account_file, redis_proxy):
    from tests.slides_fixtures import realistic_template

    google.writes_per_minute = WRITES_PER_MINUTE  # Google's own limit: 429 past it
    decks = [google.add_presentation(realistic_template(), owner_token="service-account")
             for _ in range(8)]
    person_deck, second_deck = (google.add_presentation(realistic_template(),
                                                        owner_token="service-account")
                                for _ in range(2))
    store = Store(str(tmp_path / "deckgen.sqlite3"))
    config = Config.from_env({
        "DECKGEN_OUTPUT_DIR": str(tmp_path / "decks"), "DECKGEN_WORKERS": "2",
        "DECKGEN_JOB_STALE_SECONDS": "10",
        "DECKGEN_REDIS_URL": f"redis://127.0.0.1:{redis_proxy.port}/12",
        "DECKGEN_SLIDES_WRITES_PER_MINUTE": str(WRITES_PER_MINUTE),
        "GOOGLE_APPLICATION_CREDENTIALS": service_account_file,
        "DECKGEN_GOOGLE_API_ENDPOINT": google.url, "DECKGEN_DRIVE_API_ENDPOINT": google.url})
    app = create_app(config, store=store, router=fake_router)
    runner = app.extensions["deckgen"]["runner"]
    key, digest = new_key()
    store.add_key("crm", digest)
    headers = {"Authorization": f"Bearer {key}"}
    client = app.test_client()

    def writes(status: int = 200) -> int:
        return sum(1 for c in list(google.calls)
                   if c["path"].endswith(":batchUpdate") and c.get("status") == status)

    def waiting_in(stage: str) -> int:
        with store.tx(readonly=True) as cur:
            cur.execute("SELECT COUNT(*) AS n FROM jobs WHERE state = 'running' AND stage = ?",
                        (stage,))
            return cur.fetchone()["n"]

    try:
        batch = client.post("/v1/batches", headers=headers, json={
            "items": [{"presentation_id": d, "brief": REQUEST_BRIEF} for d in decks]})
        assert batch.status_code == 202, batch.get_json()
        batch_id = batch.get_json()["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (writes() < 4 or waiting_in("generated") < 4):
            time.sleep(0.1)
        assert writes() == 4 and waiting_in("generated") == 4  # the batch share is spent

        redis_proxy.cut()
        statuses = []
        person = client.post("/v1/jobs", headers=headers, json={
            "brief": REQUEST_BRIEF, "presentation_id": person_deck})
        statuses.append(person.status_code)
        for i in range(16):  # callers while Redis is away: answered, never a 500
            if i == 10:  # the batch's quota skip (MAX_QUOTA_SKIP) is over: its decks are
                # claimed for writing again, and fail to reserve; generation goes on anyway
                second = client.post("/v1/jobs", headers=headers, json={
                    "brief": REQUEST_BRIEF, "presentation_id": second_deck})
                statuses.append(second.status_code)
            for answer in (client.get(f"/v1/batches/{batch_id}", headers=headers),
                           client.get(f"/v1/jobs/{person.get_json()['id']}", headers=headers),
                           client.get("/readyz"), client.get("/healthz")):
                statuses.append(answer.status_code)
            time.sleep(0.25)
        during, stranded = writes(), waiting_in("write")
        generated = waiting_in("generated")
        redis_proxy.restore()
        assert 500 not in statuses and person.status_code == 202, statuses
        assert generated == 6  # both people's decks were generated while Redis was away
        assert during == 4  # no write was granted without the shared count
        assert stranded == 0  # a deck that may not be written waits in the store, not a worker

        back = time.monotonic()
        job = {}
        # well before the stale-job sweep, which rescues what a crash left behind
        while time.monotonic() - back < config.job_stale_seconds / 2:
            job = client.get(f"/v1/jobs/{person.get_json()['id']}", headers=headers).get_json()
            if job["state"] in ("done", "failed"):
                break
            time.sleep(0.2)
        print(f"a person's job written {time.monotonic() - back:.1f}s after Redis came back")
        assert job["state"] == "done", job  # writes resume by themselves
        time.sleep(1.0)
        # the window's earlier writes are still counted: nothing past the limit, no 429
        assert writes() == WRITES_PER_MINUTE and writes(429) == 0
        assert waiting_in("write") == 0  # no deck stranded in a worker's hands
        # the second person's deck waits for the next slot in the window, as do the batch's
        assert waiting_in("generated") == 5 and runner.alive()
    finally:
        runner.stop()
        store.close()
