"""The Celery path for real: a Celery worker process, Redis on 127.0.0.1:6379 as the broker,
the service in this process sending jobs to it, SQLite as the source of truth."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from deckgen.api import create_app
from deckgen.auth import new_key
from deckgen.config import Config
from deckgen.store import Store

ROOT = Path(__file__).resolve().parent.parent
BRIEF = {"client": "Harbor Logistics", "notes": "Trucks queue at the gates."}


def start_worker(env, concurrency=2):
    name = f"w{uuid.uuid4().hex[:6]}@deckgen-test"
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "deckgen.tasks", "worker", "--pool", "threads",
         "--concurrency", str(concurrency), "-Q", "deckgen", "-n", name, "--without-gossip",
         "--without-mingle", "--loglevel", "WARNING"],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_done(store, ids, worker, seconds=90):
    deadline = time.monotonic() + seconds
    states = []
    while time.monotonic() < deadline:
        states = [store.get_job(i).state for i in ids]
        if all(s in ("done", "failed") for s in states):
            break
        time.sleep(0.2)
    assert states == ["done"] * len(ids), worker.stderr.read1().decode() if states else ""


@pytest.fixture
def redis_url():
    client = redis.Redis(host="127.0.0.1", port=6379, db=13)
    client.flushdb()
    yield "redis://127.0.0.1:6379/13"
    client.flushdb()


def test_jobs_run_on_a_celery_worker_through_redis(tmp_path, redis_url, fake_openai):
    env = {"DECKGEN_QUEUE_URL": redis_url, "DECKGEN_DATABASE_URL": str(tmp_path / "db.sqlite3"),
           "DECKGEN_SELF_HOSTED_URL": fake_openai.url, "DECKGEN_SELF_HOSTED_MODEL": "m",
           "DECKGEN_OUTPUT_DIR": str(tmp_path / "decks")}
    store = Store(env["DECKGEN_DATABASE_URL"])
    app = create_app(Config.from_env(env), store=store)
    key, digest = new_key()
    store.add_key("crm", digest)
    headers = {"Authorization": f"Bearer {key}"}
    client = app.test_client()
    # queued before any worker exists: the broker holds them
    ids = [client.post("/v1/jobs", json={"brief": BRIEF, "output": "pptx"},
                       headers=headers).get_json()["id"] for _ in range(3)]
    assert redis.Redis.from_url(redis_url).llen("deckgen") == 3

    worker = start_worker(env)
    try:
        wait_done(store, ids, worker)
        local_worker = app.extensions["deckgen"]["runner"].worker_id
        assert all(store.get_job(i).worker != local_worker for i in ids)
        assert len(fake_openai.requests) == 15
        # a duplicate delivery of a finished job does nothing
        from deckgen.tasks import dispatcher

        dispatcher(redis_url)(ids[0])
        time.sleep(1.0)
        assert store.get_job(ids[0]).attempts == 1 and len(fake_openai.requests) == 15
    finally:
        worker.terminate()
        worker.wait(20)
        app.extensions["deckgen"]["runner"].stop()


def test_a_persons_job_overtakes_batch_jobs_waiting_in_the_broker(tmp_path, redis_url,
                                                                  fake_openai, specs):
    from deckgen.jobs import initial_progress
    from deckgen.tasks import dispatcher

    env = {"DECKGEN_QUEUE_URL": redis_url, "DECKGEN_DATABASE_URL": str(tmp_path / "db.sqlite3"),
           "DECKGEN_SELF_HOSTED_URL": fake_openai.url, "DECKGEN_SELF_HOSTED_MODEL": "m",
           "DECKGEN_OUTPUT_DIR": str(tmp_path / "decks")}
    store = Store(env["DECKGEN_DATABASE_URL"])
    request = {"brief": BRIEF, "sections": None, "route": "auto", "target": "pptx"}
    progress = initial_progress(list(specs.values()))
    _, batch, _ = store.create_batch_with_jobs("crm", [(request, progress, None)] * 4)
    person, _ = store.create_job("google:rep", request, progress)
    send = dispatcher(redis_url, lane_of=lambda job_id: store.get_job(job_id).lane)
    for job in [*batch, person]:  # the person's job is sent last
        send(job.id)
    broker = redis.Redis.from_url(redis_url)
    assert (broker.llen("deckgen"), broker.llen("deckgen:5")) == (1, 4)
    worker = start_worker(env, concurrency=1)
    try:
        ids = [j.id for j in batch] + [person.id]
        wait_done(store, ids, worker)
        finished = sorted(ids, key=lambda i: store.get_job(i).finished_at)
        assert finished[0] == person.id
        assert finished[1:] == [j.id for j in batch]  # the batch in its own order
    finally:
        worker.terminate()
        worker.wait(20)
