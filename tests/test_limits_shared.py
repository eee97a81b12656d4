"""Model route limits shared by every process (deckgen/limits_store.py): two real processes,
each with its own router, against one fake OpenAI server, counting in the Redis and the
PostgreSQL at 127.0.0.1. Never more requests in a minute, nor more in flight, than the
limit across both; a call that would wait past its deadline says so; a 429's Retry-After
holds every router of the route."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from deckgen.config import Config
from deckgen.limits_store import WINDOW, RedisHome, StoreHome
from deckgen.llm.router import CallStats, Router
from deckgen.store import Store

ROOT = Path(__file__).resolve().parent.parent
REDIS = "redis://127.0.0.1:6379/12"
RPM = 6

# one replica: a router built from the environment, `CALLS` calls at once on the openai
# route, from `START` (a wall-clock time, so both processes begin together); prints outcomes
REPLICA = """
import json, os, sys, threading, time
from deckgen.config import Config
from deckgen.llm.router import CallStats, Router

router = Router.from_config(Config.from_env())
router.route("openai")  # built before the start, so both begin at once
outcomes, lock = [], threading.Lock()

def call():
    try:
        router.complete("openai", [{"role": "user", "content": "hi"}], section="s",
                        schema={"type": "object", "properties": {"a": {"type": "string"}}},
                        max_tokens=20, temperature=0.0, prompt_tokens=10, stats=CallStats())
        outcome = "ok"
    except Exception as exc:
        outcome = getattr(exc, "code", type(exc).__name__)
    with lock:
        outcomes.append(outcome)

time.sleep(max(0.0, float(os.environ["START"]) - time.time()))
threads = [threading.Thread(target=call) for _ in range(int(os.environ["CALLS"]))]
for t in threads:
    t.start()
for t in threads:
    t.join()
router.close()
print(json.dumps(outcomes))
"""


@pytest.fixture(params=["redis", "postgresql"])
def shared_env(request) -> dict[str, str]:
    """Where the two replicas count: Redis, or the PostgreSQL store (a fresh schema)."""
    if request.param == "redis":
        return {"DECKGEN_REDIS_URL": REDIS, "DECKGEN_DATABASE_URL": ""}
    url = request.getfixturevalue("pg_url")
    Store(url).close()  # the schema, migrated
    return {"DECKGEN_DATABASE_URL": url, "DECKGEN_REDIS_URL": "", "DECKGEN_QUEUE_URL": ""}


def run_replicas(fake_openai, shared: dict[str, str], extra: dict[str, str], calls: int,
                 replicas: int = 2) -> list[list[str]]:
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake_openai.url,
           "DECKGEN_ROUTE": "openai", "CALLS": str(calls),
           "START": str(time.time() + 4), **shared, **extra}
    procs = [subprocess.Popen([sys.executable, "-c", REPLICA], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(replicas)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return outs


def most_in_a_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t < s + window) for i, s in enumerate(times)),
               default=0)


def test_two_processes_never_send_more_than_the_rpm_between_them(fake_openai, shared_env):
    deadline = 3.0
    outs = run_replicas(fake_openai, shared_env, {
        "DECKGEN_OPENAI_RPM": str(RPM), "DECKGEN_OPENAI_TPM": "0",
        "DECKGEN_RETRY_DEADLINE": str(deadline)}, calls=RPM)
    outcomes = [o for out in outs for o in out]
    served = len(fake_openai.times)
    print(f"{len(outcomes)} calls from 2 processes, RPM {RPM}: {served} reached the server, "
          f"{outcomes.count('route_saturated')} told the route was saturated")
    assert most_in_a_window(fake_openai.times, 60.0) <= RPM
    assert served == outcomes.count("ok") >= 1  # the limit is used, not starved
    # the rest waited until their deadline, then said why (the section fails over)
    assert set(outcomes) <= {"ok", "route_saturated"}
    assert outcomes.count("route_saturated") == len(outcomes) - served > 0


def test_two_processes_share_the_route_concurrency_cap(fake_openai, shared_env):
    fake_openai.reply(None, *[{"delay": 0.4}] * 12)
    outs = run_replicas(fake_openai, shared_env, {
        "DECKGEN_OPENAI_RPM": "0", "DECKGEN_OPENAI_TPM": "0",
        "DECKGEN_OPENAI_CONCURRENCY": "2", "DECKGEN_RETRY_DEADLINE": "60"}, calls=5)
    outcomes = [o for out in outs for o in out]
    print(f"in flight at most {fake_openai.max_in_flight} with a cap of 2 over 2 processes")
    assert outcomes == ["ok"] * 10
    assert fake_openai.max_in_flight == 2  # the cap, reached and never passed


@pytest.fixture(params=["redis", "postgresql"])
def two_homes(request):
    """Two homes with their own connections: what two replicas hold."""
    if request.param == "redis":
        homes = [RedisHome(REDIS), RedisHome(REDIS)]
    else:
        from deckgen.store.database import PostgresDatabase

        url = request.getfixturevalue("pg_url")
        Store(url).close()
        homes = [StoreHome(PostgresDatabase(url, 2, 2.0)) for _ in range(2)]
    yield homes
    for home in homes:
        home.close()


def test_a_429_holds_the_route_for_every_process(fake_openai, two_homes):
    config = Config.from_env({"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake_openai.url,
                              "DECKGEN_RETRY_DEADLINE": "20"})
    hold = 2.0
    fake_openai.reply(None, {"status": 429, "code": "rate_limit_exceeded",
                             "headers": {"retry-after": str(hold)}})
    routers = [Router(Router.from_config(config).build, ["openai"], config.retry,
                      config.limits, home=home) for home in two_homes]
    stats = [CallStats(), CallStats()]

    def call(i: int) -> None:
        routers[i].complete("openai", [{"role": "user", "content": "hi"}], section="s",
                            schema={"type": "object"}, max_tokens=20, temperature=0.0,
                            prompt_tokens=10, stats=stats[i])

    first = threading.Thread(target=call, args=(0,))
    first.start()
    while not fake_openai.times:
        time.sleep(0.01)
    time.sleep(0.3)  # the other replica asks while the 429's hold runs
    call(1)
    first.join()
    limited, *after = fake_openai.times
    assert len(after) == 2
    assert min(after) >= limited + hold - 0.1  # neither replica sent during the hold
    assert stats[1].wait_seconds > 0 and stats[0].retries == 1


def test_a_shared_window_counts_tokens_too(two_homes):
    a, b = two_homes
    scope = f"test-{time.time_ns()}"
    assert a.take(scope, None, 100, 60) == 0
    wait = b.take(scope, None, 100, 60)  # 120 tokens in the window would pass 100
    assert 0 < wait <= WINDOW
    assert b.take(scope, None, 100, 40) == 0  # exactly 100
    assert a.lease(scope, 1, 30, "one") == "one" and b.lease(scope, 1, 30, "two") is None


def test_a_lease_released_while_redis_is_away_is_released_once_it_is_back():
    """A call that ended during an outage must not hold a slot of the shared cap until its
    lease expires: with a cap of 1, the next call after the outage gets the slot at once."""
    from deckgen.llm.limits import Pacer, Saturated, SharedPacer
    from tests.tcp_proxy import TcpProxy

    proxy = TcpProxy("127.0.0.1", 6379).start()
    home = RedisHome(f"redis://127.0.0.1:{proxy.port}/13", prefix=f"orphans-{time.time()}")
    local = Pacer(None, None, 1, time.monotonic, time.sleep)
    pacer = SharedPacer(home, "route", None, None, 1, 600.0, local, time.monotonic,
                        time.sleep)
    try:
        pacer.acquire(10, until=time.monotonic() + 5)  # the one shared slot, leased
        proxy.cut()
        pacer.release()  # Redis is away: the lease cannot be given back now
        proxy.restore()
        # the lease (600 s) would still fill the cap; it is released on the next call
        pacer.acquire(10, until=time.monotonic() + 5)
        assert not pacer.away
        pacer.release()
        pacer.acquire(10, until=time.monotonic() + 5)
        other = SharedPacer(home, "route", None, None, 1, 600.0,
                            Pacer(None, None, 1, time.monotonic, time.sleep), time.monotonic,
                            time.sleep)
        with pytest.raises(Saturated):  # the cap is really shared: one slot, now held
            other.acquire(10, until=time.monotonic() + 1)
        pacer.release()
    finally:
        proxy.stop()
        home.close()


def test_a_lease_whose_answer_was_lost_is_released_once_redis_answers_again():
    """Redis stored the lease but the connection died before its answer arrived: the lease
    id is the caller's, so it is released on the next call instead of filling the cap."""
    from deckgen.llm.limits import Pacer, SharedPacer
    from tests.tcp_proxy import TcpProxy

    proxy = TcpProxy("127.0.0.1", 6379).start()
    home = RedisHome(f"redis://127.0.0.1:{proxy.port}/13", prefix=f"lost-{time.time()}")

    def pacer():
        return SharedPacer(home, "route", None, None, 1, 600.0,
                           Pacer(None, None, 1, time.monotonic, time.sleep), time.monotonic,
                           time.sleep)

    first, second = pacer(), pacer()
    try:
        first.acquire(10, until=time.monotonic() + 5)  # the lease script is loaded
        first.release()
        proxy.mute()
        first.acquire(10, until=time.monotonic() + 10)  # Redis leases; the answer is lost
        assert first.away  # so it paced alone
        first.release()
        proxy.cut()
        proxy.restore()
        first.acquire(10, until=time.monotonic() + 5)  # gives the lost lease back first
        first.release()
        # the one slot is free: another process gets it at once, not in 600 s
        assert second.acquire(10, until=time.monotonic() + 2) < 1.0
        second.release()
    finally:
        proxy.stop()
        home.close()
