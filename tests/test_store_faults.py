"""The store under faults and hostile input: PostgreSQL cut and restored through a TCP proxy
(typed StoreUnavailable while it is away, the same Store working again after, nothing
lost), values the database cannot hold, and a SQLite file readable by its owner only."""

from __future__ import annotations

import stat
import threading
import time

import pytest

from deckgen.errors import StoreUnavailable
from deckgen.store import InvalidValue, JobNotFound, KeyNotFound, Store
from tests.tcp_proxy import TcpProxy

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
POOL_TIMEOUT = 2.0  # how long a call waits for a connection before StoreUnavailable
RECOVERY_LIMIT = 15.0  # seconds from restore to the first successful call, at most




@pytest.fixture
def proxy():
    with TcpProxy(PG_HOST, PG_PORT) as running:
        yield running


@pytest.fixture
def proxied(pg_schema, proxy):
    """A Store on PostgreSQL reached through the proxy, and the proxy."""
    store = Store(f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
                  f"?options=-csearch_path%3D{pg_schema}", pool_size=4,
                  pool_timeout=POOL_TIMEOUT)
    yield store, proxy
    store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        store = Store(str(tmp_path / "deckgen.sqlite3"))
    else:
        schema = request.getfixturevalue("pg_schema")
        store = Store(f"{PG}?options=-csearch_path%3D{schema}")
    yield store
    store.close()


def wait_until_back(store: Store, job_id: str) -> float:
    """Seconds until a call on the store succeeds again; only StoreUnavailable meanwhile."""
    start = time.monotonic()
    while True:
        try:
            store.get_job(job_id)
            return time.monotonic() - start
        except StoreUnavailable:
            assert time.monotonic() - start < RECOVERY_LIMIT, "the store did not come back"
            time.sleep(0.2)


def test_a_cut_database_gives_store_unavailable_and_the_same_store_recovers(proxied):
    store, proxy = proxied
    before = [store.create_job("crm", {"n": i}, {"sections": {}}, presentation_id=f"d{i}")[0]
              for i in range(5)]
    store.add_key("crm", "hash-1")
    assert store.ping()

    connections_before = proxy.accepted
    proxy.cut()
    cut_at = time.monotonic()
    calls = [lambda: store.get_job(before[0].id), lambda: store.create_job("crm", {}, {}),
             lambda: store.claim_job("w1"), store.queue_depth, store.list_keys,
             lambda: store.key_owner("hash-1"), lambda: store.get_batch("batch_x"),
             lambda: store.create_batch_with_jobs("crm", [({}, {}, None)], "k1")]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as raised:
            call()
        assert time.monotonic() - started < POOL_TIMEOUT + 3
        assert raised.value.http_status == 503 and raised.value.retry_after > 0
        assert raised.value.code == "store_unavailable"
    started = time.monotonic()
    assert store.ping() is False
    assert time.monotonic() - started < 3  # a readiness probe answers inside a health check
    time.sleep(max(0.0, 4 - (time.monotonic() - cut_at)))  # down for about four seconds

    proxy.restore()
    took = wait_until_back(store, before[0].id)
    print(f"first success {took:.2f} s after the database came back")
    assert store.ping()
    assert proxy.accepted > connections_before  # broken connections replaced, not reused
    assert [store.get_job(j.id) for j in before] == before  # nothing lost or changed
    assert store.create_job("crm", {}, {})[1]
    assert store.claim_job("w1").id == before[0].id
    assert store.key_owner("hash-1") == "key:crm"


def test_threads_see_only_store_unavailable_across_a_cut(proxied):
    store, proxy = proxied
    job, _ = store.create_job("crm", {}, {})
    errors: list[BaseException] = []
    outcomes = {"ok": 0, "unavailable": 0}
    lock, stop = threading.Lock(), threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                store.get_job(job.id)
                store.heartbeat(job.id, "w")
                outcome = "ok"
            except StoreUnavailable:
                outcome = "unavailable"
            except BaseException as exc:  # noqa: BLE001 - any other error fails the test
                errors.append(exc)
                return
            with lock:
                outcomes[outcome] += 1

    threads = [threading.Thread(target=hammer) for _ in range(6)]  # more than the pool holds
    for t in threads:
        t.start()
    time.sleep(0.5)
    proxy.cut()
    time.sleep(3)
    proxy.restore()
    wait_until_back(store, job.id)
    with lock:
        ok_after_restore = outcomes["ok"]
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert outcomes["unavailable"] > 0
    assert outcomes["ok"] > ok_after_restore  # every thread's calls work again
    assert store.get_job(job.id).state == "queued"


def test_a_database_away_at_start_is_unavailable_not_a_crash(pg_schema, proxy):
    proxy.cut()
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test?options=-csearch_path%3D{pg_schema}"
    with pytest.raises(StoreUnavailable):
        Store(url, pool_timeout=1)
    proxy.restore()
    store = Store(url, pool_timeout=POOL_TIMEOUT)
    assert store.ping()
    store.close()


def test_the_sqlite_file_is_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "data" / "deckgen.sqlite3"
    store = Store(str(path))
    store.create_job("me", {}, {})  # writes the WAL file too
    for made in (path, path.with_name(path.name + "-wal")):
        assert stat.S_IMODE(made.stat().st_mode) == 0o600, made
    store.close()


BAD_IDS = ["job_\x00", "\x00", "batch_\x00x", "job_\ud800"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_ids_the_database_cannot_hold_are_not_found(store, bad):
    job, _ = store.create_job("me", {}, {}, presentation_id="deck-1")
    with pytest.raises(JobNotFound):
        store.get_job(bad)
    with pytest.raises(JobNotFound):
        store.cancel_job(bad)
    with pytest.raises(JobNotFound):
        store.get_batch(bad)
    with pytest.raises(KeyNotFound):
        store.revoke_key(bad)
    assert store.claim_job_id(bad, "w", 60) == "gone"
    assert store.heartbeat(bad, "w") is False
    assert store.finish_job(bad, "w", "done") is False
    assert store.retry_failed(bad) == 0
    assert store.generations(bad) == [] and store.feedback(bad) == []
    assert store.key_owner(bad) is None
    store.update_progress(bad, {})
    store.set_presentation(bad, "deck-2")
    assert store.get_job(job.id).presentation_id == "deck-1"


def test_text_the_database_cannot_hold_is_refused_and_nothing_written(store):
    for bad in ("deck-\x00", "deck-\udfff"):
        with pytest.raises(InvalidValue) as raised:
            store.create_job("me", {}, {}, presentation_id=bad)
        assert raised.value.http_status == 422
    with pytest.raises(InvalidValue):
        store.create_job("me", {}, {}, idempotency_key="k\x00")
    assert store.queue_depth() == 0
    # inside JSON the same characters are escaped, so they are stored faithfully
    job, _ = store.create_job("me", {"brief": "a\x00b\ud800"}, {})
    assert store.get_job(job.id).request == {"brief": "a\x00b\ud800"}
