"""Where the model routes' limits are counted when every process must see them: the openai
route's requests and tokens per minute, and each route's requests in flight (its
concurrency cap). Also the one place a Redis connection for shared limits is opened, so the
Slides write quota (deckgen/quotas.py) and the route limits connect the same way.

Two homes, one interface (`RouteHome`): Redis (the `limits` library's moving window for
requests and tokens, a sorted set of expiring leases for requests in flight), or the job
store when it is PostgreSQL (rows in `route_usage`, counted under the store's lock). The
single-process SQLite default has no home: the router paces in its own memory
(deckgen/llm/limits.py `Pacer`). Nothing here sleeps: `take` and `lease` either take what
was asked for or say so, and the caller decides how long it may wait. A home that cannot be
reached raises; the caller falls back to its own process's pacing meanwhile."""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from limits.storage import RedisStorage

    from deckgen.store.database import Database

Clock = Callable[[], float]
REDIS_TIMEOUT = 1.0  # seconds: a Redis that does not answer must not hold a worker
WINDOW = 61.0  # a minute plus one second of margin: a request's latency never crowds it


def connect_redis(url: str, prefix: str) -> tuple[Any, RedisStorage]:
    """A redis-py client and a `limits` storage on `url`, both failing within
    REDIS_TIMEOUT when Redis is away instead of hanging."""
    import redis
    from limits.storage import RedisStorage

    client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT,
                                  socket_connect_timeout=REDIS_TIMEOUT)
    return client, RedisStorage(url, key_prefix=prefix, socket_timeout=REDIS_TIMEOUT,
                                socket_connect_timeout=REDIS_TIMEOUT)


def redis_errors() -> tuple[type[BaseException], ...]:
    import redis

    return (redis.RedisError, OSError)


class RouteHome(ABC):
    """Shared counts for model routes, by scope (a route at one endpoint)."""

    @abstractmethod
    def take(self, scope: str, rpm: int | None, tpm: int | None, tokens: int) -> float:
        """Count one request of `tokens` tokens and return 0, or count nothing and return
        the seconds until the requests and tokens of the last WINDOW seconds leave room
        (or a 429's hold ends)."""

    @abstractmethod
    def lease(self, scope: str, limit: int, ttl: float, lease: str) -> str | None:
        """One of `limit` in-flight slots under the id `lease` (the caller's, so that a
        lease whose answer was lost with the connection can still be released), or None
        when all are taken. A lease not released expires after `ttl` seconds."""

    @abstractmethod
    def release(self, scope: str, lease: str) -> None:
        """Give a lease back."""

    @abstractmethod
    def hold(self, scope: str, seconds: float) -> None:
        """No request on `scope`, from any process, for `seconds` (a 429's Retry-After)."""

    def close(self) -> None:  # noqa: B027 - a home may hold nothing to release
        """Release connections, if any."""


# KEYS[1]: the lease set; ARGV: now, limit, expiry, lease id, key ttl in ms
_LEASE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""


class RedisHome(RouteHome):
    """Requests and tokens in the `limits` moving window; leases in a sorted set scored by
    their expiry; holds as keys that expire by themselves. Clocks of the replicas are
    expected to be in step (NTP), as the store's counts expect too."""

    def __init__(self, url: str, prefix: str = "deckgen-routes") -> None:
        from limits.strategies import MovingWindowRateLimiter

        self.prefix = prefix
        self.redis, self.storage = connect_redis(url, prefix)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self._lease = self.redis.register_script(_LEASE)

    def take(self, scope: str, rpm: int | None, tpm: int | None, tokens: int) -> float:
        from limits import RateLimitItemPerSecond

        held_ms = int(cast(Any, self.redis.pttl(f"{self.prefix}:hold:{scope}")))
        if held_ms > 0:
            return held_ms / 1000
        seconds = math.ceil(WINDOW)
        wanted = [(RateLimitItemPerSecond(limit, seconds, namespace=kind), cost)
                  for kind, limit, cost in (("requests", rpm, 1), ("tokens", tpm, tokens))
                  if limit]
        wanted = [(item, min(cost, item.amount)) for item, cost in wanted]
        # tested first, then taken one after the other: a race between two processes can
        # spend a request slot unused, never let one through past the limit
        for item, cost in wanted:
            if not self.limiter.test(item, scope, cost=cost):
                return self._wait(item, scope)
        for item, cost in wanted:
            if not self.limiter.hit(item, scope, cost=cost):
                return self._wait(item, scope)
        return 0.0

    def _wait(self, item: Any, scope: str) -> float:
        stats = self.limiter.get_window_stats(item, scope)
        return max(stats.reset_time - time.time(), 0.05)

    def lease(self, scope: str, limit: int, ttl: float, lease: str) -> str | None:
        now = time.time()
        taken = self._lease(keys=[f"{self.prefix}:lease:{scope}"],
                            args=[now, limit, now + ttl, lease, int(ttl * 2000)])
        return lease if int(taken) else None

    def release(self, scope: str, lease: str) -> None:
        self.redis.zrem(f"{self.prefix}:lease:{scope}", lease)

    def hold(self, scope: str, seconds: float) -> None:
        key, ms = f"{self.prefix}:hold:{scope}", max(int(seconds * 1000), 1)
        if int(cast(Any, self.redis.pttl(key))) < ms:  # keep the longer hold
            self.redis.set(key, "1", px=ms)

    def close(self) -> None:
        self.redis.close()


class StoreHome(RouteHome):
    """Counted in the PostgreSQL store, in one transaction under its lock. Requests and
    tokens are rows (scope:requests / scope:tokens, when, how many); a lease is a row whose
    `at` is its expiry; holds share `quota_holds` with the Slides quota."""

    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self.db, self.clock = db, clock
        self._made = False

    def _tx(self) -> Any:
        if not self._made:  # route_usage and quota_holds are the store's own tables
            from deckgen.store.migrations import migrate

            migrate(self.db)
            self._made = True
        return self.db.tx(lock=True)

    def take(self, scope: str, rpm: int | None, tpm: int | None, tokens: int) -> float:
        with self._tx() as cur:
            now = self.clock()
            cur.execute("DELETE FROM route_usage WHERE lease IS NULL AND at <= ?",
                        (now - WINDOW,))
            cur.execute("SELECT until FROM quota_holds WHERE scope = ?", (f"route:{scope}",))
            row = cur.fetchone()
            wait = (row["until"] - now) if row else 0.0
            wanted = [(f"{scope}:{kind}", limit, min(cost, limit))
                      for kind, limit, cost in (("requests", rpm, 1), ("tokens", tpm, tokens))
                      if limit]
            for key, limit, cost in wanted:
                cur.execute("SELECT at, amount FROM route_usage WHERE scope = ? AND "
                            "lease IS NULL ORDER BY at", (key,))
                rows = cur.fetchall()
                over = sum(r["amount"] for r in rows) + cost - limit
                for r in rows:  # the oldest leave first: when enough have left, room
                    if over <= 0:
                        break
                    over -= r["amount"]
                    wait = max(wait, r["at"] + WINDOW - now)
            if wait > 0:
                return max(wait, 0.05)
            for key, _, cost in wanted:
                cur.execute("INSERT INTO route_usage (scope, at, amount) VALUES (?, ?, ?)",
                            (key, now, cost))
            return 0.0

    def lease(self, scope: str, limit: int, ttl: float, lease: str) -> str | None:
        key = f"{scope}:lease"
        with self._tx() as cur:
            now = self.clock()
            cur.execute("DELETE FROM route_usage WHERE scope = ? AND at <= ?", (key, now))
            cur.execute("SELECT COUNT(*) AS n FROM route_usage WHERE scope = ?", (key,))
            if cur.fetchone()["n"] >= limit:
                return None
            cur.execute("INSERT INTO route_usage (scope, at, amount, lease) VALUES "
                        "(?, ?, 1, ?)", (key, now + ttl, lease))
        return lease

    def release(self, scope: str, lease: str) -> None:
        with self.db.tx() as cur:
            cur.execute("DELETE FROM route_usage WHERE scope = ? AND lease = ?",
                        (f"{scope}:lease", lease))

    def hold(self, scope: str, seconds: float) -> None:
        until = self.clock() + seconds
        with self._tx() as cur:
            key = f"route:{scope}"
            cur.execute("DELETE FROM quota_holds WHERE scope = ? AND until < ?", (key, until))
            cur.execute("SELECT 1 FROM quota_holds WHERE scope = ?", (key,))
            if cur.fetchone() is None:
                cur.execute("INSERT INTO quota_holds (scope, until) VALUES (?, ?)",
                            (key, until))

    def close(self) -> None:
        self.db.close()


def open_route_home(redis_url: str | None, database_url: str,
                    pool_timeout: float = 1.0) -> RouteHome | None:
    """Redis when configured, else the store when it is PostgreSQL, else None (the
    single-process SQLite default paces in memory)."""
    if redis_url:
        return RedisHome(redis_url)
    if database_url.startswith(("postgresql://", "postgres://")):
        from deckgen.store.database import PostgresDatabase

        # its own two connections: pacing must never wait behind the jobs' pool
        return StoreHome(PostgresDatabase(database_url, pool_size=2, timeout=pool_timeout))
    return None
