"""Shared Slides write limits: in memory, in the store (SQLite and the PostgreSQL at
127.0.0.1) and in the Redis at 127.0.0.1. Two limiter objects with their own connections
stand for two replicas; no window ever holds more writes than the limit."""

import threading
import time
import uuid

import pytest
import redis

from deckgen.quotas import MemoryQuota, RedisQuota, StoreQuota, WriteLimits, open_quota
from deckgen.store import Store

PG = "postgresql://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/14"


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def most_in_any_window(stamps, window):
    stamps = sorted(stamps)
    return max((sum(1 for t in stamps[i:] if t < s + window) for i, s in enumerate(stamps)),
               default=0)


def surely_in_one_window(grants, window):
    """The most grants whose whole call [before, after] fell inside one window: a lower
    bound of what the limiter let through, so it can never blame a correct limiter."""
    return max((sum(1 for b, a in grants if b >= start and a < start + window)
                for start, _ in grants), default=0)


@pytest.fixture(params=["sqlite", "postgresql"])
def two_stores(request, tmp_path):
    """Two Store objects on one database, each with its own connections (two replicas)."""
    url = str(tmp_path / "deckgen.sqlite3") if request.param == "sqlite" \
        else request.getfixturevalue("pg_url")
    stores = [Store(url), Store(url)]
    yield stores
    for s in stores:
        s.close()


@pytest.fixture
def redis_prefix():
    prefix = f"deckgen-test-{uuid.uuid4().hex[:8]}"
    yield prefix
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


def hammer(quotas, principal, seconds, threads_each=2):
    """Every thread asks its quota for slots as fast as it can; the grants, timed."""
    grants, lock = [], threading.Lock()
    stop = time.monotonic() + seconds

    def ask(quota):
        while time.monotonic() < stop:
            before = time.time()
            wait = quota.try_acquire(principal)
            after = time.time()
            if wait == 0:
                with lock:
                    grants.append((before, after))
            else:
                assert wait > 0
                time.sleep(min(wait, 0.02))

    threads = [threading.Thread(target=ask, args=(q,)) for q in quotas
               for _ in range(threads_each)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return grants


def test_memory_never_exceeds_the_limit_and_says_how_long_to_wait():
    clock = FakeClock()
    quota = MemoryQuota(WriteLimits(60, 600), clock)
    stamps = []
    for _ in range(500):
        wait = quota.try_acquire("svc")
        if wait == 0:
            stamps.append(clock.now)
            clock.now += 0.1
        else:
            clock.now += wait
    assert most_in_any_window(stamps, 61.0) == 60
    assert len(stamps) >= 60 * 3


def test_the_project_limit_binds_across_principals_and_batch_leaves_headroom():
    clock = FakeClock()
    quota = MemoryQuota(WriteLimits(per_principal=10, per_project=15, batch_share=0.8), clock)
    assert [quota.try_acquire("a", batch=True) for _ in range(9)].count(0) == 8
    assert quota.try_acquire("a") == 0  # a person's write still finds a slot
    assert quota.try_acquire("a") == 0
    assert quota.try_acquire("a") > 0  # the principal's 10 are used
    assert [quota.try_acquire("b", batch=True) for _ in range(5)].count(0) == 2  # 12 of 15
    assert [quota.try_acquire("b") for _ in range(5)].count(0) == 3  # project: 15
    clock.now += 61.0
    assert quota.try_acquire("b") == 0


def test_a_429_holds_the_principal_for_its_retry_after():
    clock = FakeClock()
    quota = MemoryQuota(WriteLimits(), clock)
    quota.hold("svc", 7.0)
    assert quota.try_acquire("svc") == pytest.approx(7.0)
    assert quota.try_acquire("other") == 0
    clock.now += 7.0
    assert quota.try_acquire("svc") == 0


def test_two_replicas_on_one_store_share_the_count_on_a_fake_clock(two_stores):
    clock = FakeClock()
    quotas = [StoreQuota(s, WriteLimits(60, 600), clock) for s in two_stores]
    stamps = []
    for i in range(400):
        wait = quotas[i % 2].try_acquire("svc")
        if wait == 0:
            stamps.append(clock.now)
            clock.now += 0.05
        else:
            clock.now += min(wait, 3.0)
    assert most_in_any_window(stamps, 61.0) == 60
    assert len(stamps) >= 120


def test_two_replicas_on_one_store_never_exceed_the_limit_under_contention(two_stores):
    limits = WriteLimits(per_principal=5, per_project=50, window=1.0)
    grants = hammer([StoreQuota(s, limits) for s in two_stores], "svc", 2.5)
    assert surely_in_one_window(grants, 1.0) <= 5
    assert len(grants) >= 10  # and the slots are used, not starved


def test_store_hold_is_seen_by_the_other_replica(two_stores):
    clock = FakeClock()
    a, b = (StoreQuota(s, WriteLimits(), clock) for s in two_stores)
    a.hold("svc", 30.0)
    a.hold("svc", 5.0)  # a shorter hold never shortens a longer one
    assert b.try_acquire("svc") == pytest.approx(30.0)
    clock.now += 30.0
    assert b.try_acquire("svc") == 0


def test_two_replicas_on_redis_never_exceed_the_limit(redis_prefix):
    limits = WriteLimits(per_principal=5, per_project=50, window=1.0)
    quotas = [RedisQuota(REDIS, limits, prefix=redis_prefix) for _ in range(2)]
    assert quotas[0].redis is not quotas[1].redis
    grants = hammer(quotas, "svc", 2.5)
    assert surely_in_one_window(grants, 1.0) <= 5
    assert len(grants) >= 10
    for q in quotas:
        q.close()


def test_redis_batch_headroom_and_holds(redis_prefix):
    limits = WriteLimits(per_principal=10, per_project=100, window=5.0, batch_share=0.8)
    a, b = (RedisQuota(REDIS, limits, prefix=redis_prefix) for _ in range(2))
    assert [a.try_acquire("p", batch=True) for _ in range(10)].count(0) == 8
    wait = b.try_acquire("p", batch=True)
    assert 0 < wait <= 5.0
    assert b.try_acquire("p") == 0 and a.try_acquire("p") == 0  # the interactive headroom
    assert a.try_acquire("p") > 0
    b.hold("q", 2.0)
    assert 1.5 < a.try_acquire("q") <= 2.0
    assert a.try_acquire("r") == 0


def test_open_quota_picks_redis_then_the_store_then_memory(tmp_path, redis_prefix):
    store = Store(str(tmp_path / "x.sqlite3"))
    assert isinstance(open_quota(REDIS, store), RedisQuota)
    assert isinstance(open_quota(None, store), StoreQuota)
    assert isinstance(open_quota(None, None), MemoryQuota)
    store.close()
