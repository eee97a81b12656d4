"""The durable store on a real SQLite file and on the PostgreSQL server at 127.0.0.1."""

import threading

import pytest

from deckgen.store import MIGRATIONS, InvalidValue, JobNotFound, KeyNotFound, Store


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = str(tmp_path / "deckgen.sqlite3") if request.param == "sqlite" \
        else request.getfixturevalue("pg_url")
    store = Store(url)
    yield store
    store.close()


def test_migrations_are_idempotent(store):
    assert store.migrate() == store.migrate() == len(MIGRATIONS)
    with store.tx(readonly=True) as cur:
        cur.execute("SELECT version FROM schema_version")
        assert [r["version"] for r in cur.fetchall()] == [len(MIGRATIONS)]


def test_sqlite_runs_in_wal_mode(tmp_path):
    store = Store(str(tmp_path / "x.sqlite3"))
    with store.tx(readonly=True) as cur:
        cur.execute("PRAGMA journal_mode")
        assert cur.fetchone()["journal_mode"] == "wal"


def test_jobs_are_claimed_oldest_first_and_one_deck_at_a_time(store):
    a, _ = store.create_job("me", {"n": 1}, {}, presentation_id="deck-1")
    b, _ = store.create_job("me", {"n": 2}, {}, presentation_id="deck-1")
    c, _ = store.create_job("me", {"n": 3}, {}, presentation_id="deck-2")
    assert store.claim_job("w1").id == a.id
    assert store.claim_job("w2").id == c.id  # b waits: deck-1 is being written
    assert store.claim_job("w3") is None
    assert store.finish_job(a.id, "w1", "done", result={"ok": True})
    assert store.claim_job("w3").id == b.id
    assert store.get_job(a.id).result == {"ok": True}


def test_concurrent_claims_never_share_a_job(store):
    ids = {store.create_job("me", {"n": i}, {})[0].id for i in range(20)}
    claimed, lock = [], threading.Lock()

    def worker(name):
        while (job := store.claim_job(name)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)


def test_idempotency_keys_are_per_owner(store):
    first, created = store.create_job("crm", {}, {}, idempotency_key="k1")
    again, created_again = store.create_job("crm", {}, {}, idempotency_key="k1")
    other, created_other = store.create_job("other", {}, {}, idempotency_key="k1")
    assert created and not created_again and created_other
    assert again.id == first.id != other.id


def test_stale_running_jobs_go_back_to_the_queue(store):
    job, _ = store.create_job("me", {}, {})
    store.claim_job("dead-worker")
    assert store.requeue_stale(3600) == []
    assert store.requeue_stale(-1) == [job.id]
    again = store.claim_job("new-worker")
    assert again.id == job.id and again.attempts == 2
    # the dead worker can no longer finish it
    assert not store.finish_job(job.id, "dead-worker", "done")


def test_cancel_and_retry(store):
    queued, _ = store.create_job("me", {}, {})
    assert store.cancel_job(queued.id).state == "cancelled"
    batch = store.create_batch("me", 1)
    job, _ = store.create_job("me", {}, {}, batch_id=batch)
    store.claim_job("w")
    store.finish_job(job.id, "w", "failed", error={"code": "x", "message": "y"})
    assert store.retry_failed(batch) == 1
    assert store.get_job(job.id).state == "queued" and store.get_job(job.id).error is None
    with pytest.raises(JobNotFound):
        store.get_job("job_missing")


def test_generations_are_recorded(store):
    store.record_generations("job_1", "abc", [{
        "section": "data", "status": "ok", "route": "local", "model": "m",
        "prompt": [{"role": "user", "content": "hi"}], "output": {"title": "t"},
        "prompt_tokens": 10, "completion_tokens": 5, "seconds": 1.5}])
    (row,) = store.generations("job_1")
    assert row["route"] == "local" and row["brief_hash"] == "abc"


def test_feedback_is_recorded_per_deck(store):
    store.record_feedback("deck-1", "job_1", [
        {"section": "data", "part": "body", "state": "edited", "text": "ours"},
        {"section": "skills", "part": "body", "state": "kept", "text": "theirs"}])
    rows = store.feedback("deck-1")
    assert [(r["section"], r["state"]) for r in rows] == [("data", "edited"), ("skills", "kept")]
    assert store.feedback("deck-2") == []


def test_keys_are_listed_without_hashes_and_revoked_by_name_or_id(store):
    first = store.add_key("crm", "hash-1")
    store.add_key("ops", "hash-2")
    keys = store.list_keys()
    assert [(k.name, k.revoked) for k in keys] == [("crm", False), ("ops", False)]
    assert keys[0].id == first
    assert set(keys[0].to_dict()) == {"id", "name", "created_at", "revoked"}
    assert store.key_owner("hash-1") == "key:crm"

    replica = Store(store.url)  # another process on the same database
    assert replica.key_owner("hash-1") == "key:crm"
    assert store.revoke_key("crm").revoked
    assert store.key_owner("hash-1") is None  # the next request with it is refused
    assert replica.key_owner("hash-1") is None  # on every replica
    replica.close()
    assert store.revoke_key(first).name == "crm"  # by id, and twice is harmless
    assert store.key_owner("hash-2") == "key:ops"
    assert [(k.name, k.revoked) for k in store.list_keys()] == [("crm", True), ("ops", False)]
    with pytest.raises(KeyNotFound):
        store.revoke_key("nobody")


def test_a_batch_and_its_jobs_are_made_in_one_transaction(store):
    requests = [({"n": i}, {"sections": {}}, f"deck-{i}") for i in range(5)]
    batch_id, jobs, created = store.create_batch_with_jobs("crm", requests, None)
    assert created and [j.request["n"] for j in jobs] == list(range(5))
    assert all(j.batch_id == batch_id and j.state == "queued" for j in jobs)
    batch, listed = store.get_batch(batch_id)
    assert batch["total"] == 5 and [j.id for j in listed] == [j.id for j in jobs]
    assert store.claim_job("w").id == jobs[0].id  # queued in the order given

    # one job that cannot be stored: nothing of the batch is written
    depth = store.queue_depth()
    bad = [({"n": 1}, {}, "deck-ok"), ({"n": 2}, {}, "deck-\x00")]
    with pytest.raises(InvalidValue):
        store.create_batch_with_jobs("crm", bad, "k-bad")
    assert store.queue_depth() == depth
    _, again, created = store.create_batch_with_jobs("crm", bad[:1], "k-bad")
    assert created and len(again) == 1


def test_batch_idempotency_keys_are_per_owner_and_race_free(store):
    requests = [({"n": i}, {}, None) for i in range(3)]
    results, lock = [], threading.Lock()

    def create():
        result = store.create_batch_with_jobs("crm", requests, "k1")
        with lock:
            results.append(result)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(created for _, _, created in results) == [False, False, False, True]
    assert len({batch_id for batch_id, _, _ in results}) == 1
    assert {tuple(j.id for j in jobs) for _, jobs, _ in results} == {
        tuple(j.id for j in store.get_batch(results[0][0])[1])}
    assert store.queue_depth() == 3
    other, _, created = store.create_batch_with_jobs("other", requests, "k1")
    assert created and other != results[0][0]


def test_unknown_batches_are_not_found(store):
    with pytest.raises(JobNotFound):
        store.get_batch("batch_missing")
