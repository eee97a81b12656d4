"""Two stages, lanes and fairness: the store's claims on SQLite and on the PostgreSQL at
127.0.0.1, and the job runner against the fake Slides server and the fake model."""

import threading
import time

import pytest

from deckgen.fill import Filler, SlidesAccess
from deckgen.jobs import JobRunner, initial_progress
from deckgen.quotas import MemoryQuota, WriteLimits
from deckgen.scheduler import lane_stats, place_in_line
from deckgen.store import JobNotFound, Store
from tests.samples import REQUEST_BRIEF as BRIEF

PG = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = str(tmp_path / "deckgen.sqlite3") if request.param == "sqlite" \
        else request.getfixturevalue("pg_url")
    store = Store(url)
    yield store
    store.close()


def batch(store, owner, n):
    batch_id, jobs, _ = store.create_batch_with_jobs(owner, [({"n": i}, {}, None)
                                                             for i in range(n)])
    return batch_id, [j.id for j in jobs]


def drain(store):
    order = []
    while (job := store.claim_job("w")) is not None:
        order.append(job.id)
        store.finish_job(job.id, "w", "done")
    return order


def test_interactive_jobs_go_before_a_batch_queued_earlier(store):
    _, big = batch(store, "ops", 3)
    person, _ = store.create_job("google:rep", {"n": "mine"}, {})
    assert store.claim_job("w1").id == person.id
    assert store.claim_job("w2").id == big[0]
    assert store.get_job(person.id).lane == "interactive"
    assert store.get_job(big[0]).lane == "batch"


def test_batch_work_is_shared_round_robin_between_owners(store):
    _, a = batch(store, "tenant-a", 5)
    _, b = batch(store, "tenant-b", 2)
    assert drain(store) == [a[0], b[0], a[1], b[1], a[2], a[3], a[4]]


def test_a_paused_batch_waits_and_a_cancelled_item_never_runs(store):
    paused, p = batch(store, "tenant-a", 2)
    _, other = batch(store, "tenant-b", 1)
    assert store.pause_batch(paused) == p
    assert store.cancel_job(p[1]).state == "cancelled"
    assert place_in_line(store, p[0]).paused
    assert drain(store) == [other[0]]
    store.pause_batch(paused, paused=False)
    assert drain(store) == [p[0]]
    with pytest.raises(JobNotFound):
        store.pause_batch("batch_nope")


def test_cancel_batch_ends_waiting_items_at_once(store):
    batch_id, ids = batch(store, "tenant-a", 3)
    first = store.claim_job("w")
    assert store.hand_off(first.id, "w", {"sections": [], "seconds": 0}, "service-account")
    second = store.claim_job("w")
    assert store.cancel_batch(batch_id) == 3
    states = {j.id: (j.state, j.cancel_requested) for j in store.get_batch(batch_id)[1]}
    assert states[first.id] == ("cancelled", True)  # generated, waiting: ends now
    assert states[second.id] == ("running", True)  # its worker stops at its next step
    assert states[ids[2]] == ("cancelled", True)


def test_a_generated_deck_waits_in_the_store_held_by_no_worker(store):
    job, _ = store.create_job("crm", {"n": 1}, {}, presentation_id="deck-1")
    again, _ = store.create_job("crm", {"n": 2}, {}, presentation_id="deck-1")
    assert store.claim_job("gen").id == job.id
    assert store.hand_off(job.id, "gen", {"sections": [], "seconds": 1.0}, "service-account")
    waiting = store.get_job(job.id)
    assert (waiting.state, waiting.stage, waiting.worker) == ("running", "generated", None)
    assert waiting.deck == {"sections": [], "seconds": 1.0}
    assert store.claim_job("gen") is None  # deck-1 is still in flight: `again` waits
    assert store.requeue_stale(-1) == []  # nobody holds it, so nothing goes stale
    assert store.claim_write("w", skip_principals=["service-account"]) is None
    writing = store.claim_write("w")
    assert (writing.id, writing.stage, writing.worker) == (job.id, "write", "w")
    assert store.release_write(job.id, "w")  # the quota said "not yet"
    assert store.claim_write("w2").worker == "w2"
    # the writer is killed: its deck goes back to wait for a write, not to the queue
    assert store.requeue_stale(-1) == [job.id]
    assert store.get_job(job.id).stage == "generated"
    assert store.claim_write_id(job.id, "w3", 60).worker == "w3"
    assert store.claim_write_id(job.id, "w4", 60) is None  # held, with a live heartbeat
    assert store.finish_job(job.id, "w3", "done", result={"ok": True})
    assert store.get_job(job.id).deck is None
    assert store.claim_job("gen").id == again.id


def test_celery_claims_by_id_follow_the_stages(store):
    paused, (p,) = batch(store, "ops", 1)
    store.pause_batch(paused)
    assert store.claim_job_id(p, "w", 60) == "paused"
    job, _ = store.create_job("crm", {}, {})
    assert store.claim_job_id(job.id, "w", 60).stage == "generate"
    store.hand_off(job.id, "w", {"sections": [], "seconds": 0}, "service-account")
    assert store.claim_job_id(job.id, "w", 60) == "generated"


def test_write_claims_put_people_first_and_honour_the_quota_skips(store):
    _, ids = batch(store, "ops", 2)
    person, _ = store.create_job("crm", {}, {})
    for job_id in [*ids, person.id]:
        assert store.claim_job("g").id == job_id or True
    for job_id in (ids[0], ids[1], person.id):
        store.hand_off(job_id, "g", {"sections": [], "seconds": 0}, "svc")
    assert store.claim_write("w", skip_batch_principals=["svc"]).id == person.id
    assert store.claim_write("w", skip_batch_principals=["svc"]) is None
    assert store.claim_write("w").id == ids[0]
    # a person's deck is written only where their token is, or once it is long orphaned
    mine, _ = store.create_job("google:rep", {}, {})
    store.claim_job("g")
    store.hand_off(mine.id, "g", {"sections": [], "seconds": 0}, "google:rep")
    assert store.claim_write("w", skip_principals=["svc"], writable=[]) is None
    assert store.claim_write("w", skip_principals=["svc"], writable=[mine.id]).id == mine.id


def test_place_in_line_and_lane_stats(store):
    _, a = batch(store, "tenant-a", 4)
    _, b = batch(store, "tenant-b", 1)
    first, _ = store.create_job("crm", {}, {})
    second, _ = store.create_job("crm", {}, {})
    assert place_in_line(store, first.id).ahead == 0
    assert place_in_line(store, second.id).ahead == 1
    # tenant-a's third job waits for both people, its own two, and tenant-b's one
    assert place_in_line(store, a[2]).ahead == 2 + 2 + 1
    assert place_in_line(store, b[0]).ahead == 2 + 1  # after one turn of tenant-a
    assert place_in_line(store, a[0]).eta_seconds is None  # nothing measured yet
    stats = lane_stats(store)
    assert stats["interactive"]["queued"] == 2 and stats["batch"]["queued"] == 5
    assert stats["batch"]["oldest_wait"] >= 0
    for _ in range(3):
        job = store.claim_job("w")
        time.sleep(0.05)
        store.finish_job(job.id, "w", "done")
    place = place_in_line(store, a[2])
    assert place.ahead == 2 and place.eta_seconds is not None and place.eta_seconds > 0


def test_concurrent_claims_from_two_replicas_never_share_a_job(store, tmp_path):
    other = Store(store.url)
    batch(store, "tenant-a", 10)
    batch(store, "tenant-b", 10)
    for i in range(5):
        store.create_job("crm", {"n": i}, {})
    claimed, lock = [], threading.Lock()

    def worker(s, name):
        while (job := s.claim_job(name)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(s, f"w{i}"))
               for i, s in enumerate([store, other, store, other])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert len(claimed) == len(set(claimed)) == 25


# --- the runner: two stages against the fake Slides server and the fake model -----------

@pytest.fixture
def sqlite_store(tmp_path):
    store = Store(str(tmp_path / "runner.sqlite3"))
    yield store
    store.close()


def wait_for(predicate, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_deck_waiting_for_its_quota_holds_no_worker(sqlite_store, google, fake_openai,
                                                      fake_generator, service_account_file,
                                                      specs, tmp_path):
    from tests.slides_fixtures import realistic_template

    store = sqlite_store
    now = [1000.0]
    quota = MemoryQuota(WriteLimits(per_principal=1, per_project=600), clock=lambda: now[0])
    slides = SlidesAccess(service_account_file, google.url, google.url, quota=quota)
    # one deck generating at a time, so the first deck waits for its write while the second
    # is generated by the same (only) worker
    runner = JobRunner(store, Filler(fake_generator, slides), tmp_path / "decks", workers=1,
                       poll_seconds=0.05, max_decks_in_flight=1)
    decks = [google.add_presentation(realistic_template(), owner_token="service-account")
             for _ in range(2)]
    sections = ["data", "skills"]
    progress = initial_progress([specs[s] for s in sections])
    ids = [store.create_job("crm", {"brief": BRIEF, "sections": sections, "route": "auto",
                                    "target": "presentation", "presentation_id": d},
                            progress, presentation_id=d)[0].id for d in decks]
    runner.start()
    try:
        assert wait_for(lambda: store.get_job(ids[0]).state == "done")
        assert wait_for(lambda: store.get_job(ids[1]).stage == "generated")
        # the one worker is free: a .pptx job queued now runs while the deck waits
        pptx, _ = store.create_job("crm", {"brief": BRIEF, "sections": sections,
                                           "route": "auto", "target": "pptx"}, progress)
        assert wait_for(lambda: store.get_job(pptx.id).state == "done")
        assert store.get_job(ids[1]).stage == "generated"
        assert place_in_line(store, ids[1]).ahead == 0
        now[0] += 62.0  # the quota's window moves on
        assert wait_for(lambda: store.get_job(ids[1]).state == "done")
    finally:
        runner.stop()
    done = store.get_job(ids[1])
    # the ceiling held for these (a person's) jobs: the second deck was taken only once the
    # first had been generated
    assert done.started_at >= store.get_job(ids[0]).generated_at
    assert done.attempts == 1 and done.result["presentation_id"] == decks[1]
    assert done.progress["data"]["state"] == "done"
    writes = [c for c in google.calls if c["path"].endswith(":batchUpdate")
              and c["status"] == 200]
    assert len(writes) == 2
    assert "{{data}}" not in google.shape_text(decks[1], "data_body")
