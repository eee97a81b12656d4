"""Limits shared by every process: Google Slides writes per principal (60 a minute) and per
project (600 a minute), counted where every replica and worker sees them.

Three homes, one interface: Redis when one is configured (the `limits` library's moving
window, so replicas and Celery workers count together), else the job store's own tables
(PostgreSQL, or a SQLite file every process on the machine opens; counted in a locked
transaction), else this process's memory (a door with no store, such as `deckgen generate`).

The interface never sleeps: `try_acquire(principal)` takes a write slot and returns 0, or
takes nothing and returns the seconds until one frees up, so a caller can do other work
meanwhile. `hold(principal, seconds)` teaches the limiter a 429's Retry-After: nobody writes
as that principal until it passes. A window is a little longer than Google's minute (one
second of margin) so request latency can never squeeze 61 writes into Google's minute.

With Redis away the Redis home fails closed: it grants no write and says "ask again in
AWAY_WAIT seconds", and learns no hold. A generated deck waits in the store for its write,
holding no worker, and writes resume by themselves when Redis answers, the window's earlier
writes still counted there. Counting elsewhere meanwhile (the store, this process) could not
know what Redis counted, so two homes would each grant a full minute's writes: the 429
storm the shared limit exists to prevent."""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from deckgen.config import Config
    from deckgen.store.database import Tables

log = logging.getLogger("deckgen.quotas")
Clock = Callable[[], float]
AWAY_WAIT = 2.0  # seconds a write waits before asking an unreachable Redis again
PROJECT = "project"  # the scope every principal's writes also count against
MARGIN = 1.0  # seconds added to each window: a write's latency never crowds Google's minute


@dataclass(frozen=True)
class WriteLimits:
    """At most `per_principal` writes by one principal and `per_project` writes in all in
    any `window` seconds. Batch writes may fill only `batch_share` of each, so a person's
    interactive write always finds a slot at once, however busy a batch keeps the window."""

    per_principal: int = 60
    per_project: int = 600
    window: float = 60.0 + MARGIN
    batch_share: float = 0.9

    def limit(self, scope: str, batch: bool) -> int:
        full = self.per_project if scope == PROJECT else self.per_principal
        return max(1, int(full * self.batch_share)) if batch else full


class WriteQuota(ABC):
    """Slides write slots, shared as widely as the home allows."""

    limits: WriteLimits

    @abstractmethod
    def try_acquire(self, principal: str, batch: bool = False) -> float:
        """Take a write slot for `principal` now and return 0, or take nothing and return
        the seconds until one is free (never 0 when nothing was taken). A `batch` write
        leaves the interactive headroom free."""

    @abstractmethod
    def hold(self, principal: str, seconds: float) -> None:
        """Let nobody write as `principal` for `seconds` (Google said 429, Retry-After)."""

    def close(self) -> None:  # noqa: B027 - most homes hold nothing to release
        """Release connections, if any."""


class MemoryQuota(WriteQuota):
    """One process's count: right only when a single process writes (the CLI, or the
    single-process default when no store is shared)."""

    def __init__(self, limits: WriteLimits = WriteLimits(), clock: Clock = time.time) -> None:
        self.limits, self.clock = limits, clock
        self._stamps: dict[str, deque[float]] = {}
        self._holds: dict[str, float] = {}
        self._lock = threading.Lock()

    def try_acquire(self, principal: str, batch: bool = False) -> float:
        now = self.clock()
        window = self.limits.window
        with self._lock:
            wait = self._holds.get(principal, 0.0) - now
            for scope in (principal, PROJECT):
                limit = self.limits.limit(scope, batch)
                stamps = self._stamps.setdefault(scope, deque())
                while stamps and stamps[0] <= now - window:
                    stamps.popleft()
                if len(stamps) >= limit:
                    wait = max(wait, stamps[len(stamps) - limit] + window - now)
            if wait > 0:
                return wait
            self._stamps[principal].append(now)
            self._stamps[PROJECT].append(now)
            return 0.0

    def hold(self, principal: str, seconds: float) -> None:
        with self._lock:
            until = self.clock() + seconds
            self._holds[principal] = max(self._holds.get(principal, 0.0), until)


class StoreQuota(WriteQuota):
    """Counted in the job store (`quota_events`, `quota_holds`), in one transaction under
    the store's lock, so every process on the store sees the same count. The clock is the
    caller's: replicas are expected to keep their clocks in step (NTP)."""

    def __init__(self, tables: Tables, limits: WriteLimits = WriteLimits(),
                 clock: Clock = time.time) -> None:
        self.tables, self.limits, self.clock = tables, limits, clock

    def try_acquire(self, principal: str, batch: bool = False) -> float:
        window = self.limits.window
        with self.tables.tx(lock=True) as cur:
            # read under the lock, so writes are stamped in the order they were counted
            now = self.clock()
            cur.execute("DELETE FROM quota_events WHERE at <= ?", (now - window,))
            cur.execute("SELECT until FROM quota_holds WHERE scope = ?", (principal,))
            row = cur.fetchone()
            wait = (row["until"] - now) if row else 0.0
            for scope in (principal, PROJECT):
                limit = self.limits.limit(scope, batch)
                # the limit-th newest write in the window: once it leaves, a slot is free
                cur.execute("SELECT at FROM quota_events WHERE scope = ? ORDER BY at DESC "
                            "LIMIT 1 OFFSET ?", (scope, limit - 1))
                row = cur.fetchone()
                if row is not None:
                    wait = max(wait, row["at"] + window - now)
            if wait > 0:
                return wait
            cur.execute("INSERT INTO quota_events (scope, at) VALUES (?, ?)", (principal, now))
            cur.execute("INSERT INTO quota_events (scope, at) VALUES (?, ?)", (PROJECT, now))
            return 0.0

    def hold(self, principal: str, seconds: float) -> None:
        until = self.clock() + seconds
        with self.tables.tx(lock=True) as cur:
            cur.execute("DELETE FROM quota_holds WHERE scope = ? AND until < ?",
                        (principal, until))
            cur.execute("SELECT 1 FROM quota_holds WHERE scope = ?", (principal,))
            if cur.fetchone() is None:
                cur.execute("INSERT INTO quota_holds (scope, until) VALUES (?, ?)",
                            (principal, until))


class RedisQuota(WriteQuota):
    """The `limits` library's moving window in Redis, shared by every replica and worker.
    A slot is taken from the principal first, then from the project; when the project is
    full the principal's slot is spent unused (the count errs on the safe side, never
    over). Holds are Redis keys that expire by themselves. Windows are whole seconds.
    Unreachable, it grants nothing (see the module's docstring)."""

    def __init__(self, url: str, limits: WriteLimits = WriteLimits(),
                 prefix: str = "deckgen-quota") -> None:
        from limits import RateLimitItemPerSecond
        from limits.strategies import MovingWindowRateLimiter

        from deckgen.limits_store import connect_redis, redis_errors

        self.limits, self.prefix = limits, prefix
        self.errors = redis_errors()
        self.away = False
        seconds = math.ceil(limits.window)
        self.redis, self.storage = connect_redis(url, prefix)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.principal_item = RateLimitItemPerSecond(limits.per_principal, seconds,
                                                     namespace="slides-writes")
        self.project_item = RateLimitItemPerSecond(limits.per_project, seconds,
                                                   namespace="slides-writes")

    def _hold_key(self, principal: str) -> str:
        return f"{self.prefix}:hold:{principal}"

    def try_acquire(self, principal: str, batch: bool = False) -> float:
        try:
            wait = self._try_acquire(principal, batch)
        except self.errors as exc:
            self._gone("no Slides write is granted", exc)
            return AWAY_WAIT
        if self.away:
            self.away = False
            log.warning("Redis answers again: Slides writes are counted there again")
        return wait

    def _gone(self, what: str, exc: BaseException) -> None:
        if not self.away:
            self.away = True
            log.warning("Redis is away (%s: %s): %s until it is back", type(exc).__name__,
                        exc, what)

    def _try_acquire(self, principal: str, batch: bool) -> float:
        held_ms = int(cast(Any, self.redis.pttl(self._hold_key(principal))))
        if held_ms > 0:
            return held_ms / 1000
        # a batch write must leave the interactive headroom free: tested first, then the
        # slot taken atomically (a race between the two can eat into the headroom, never
        # past the limit)
        reserve = {scope: 1 + (item.amount - self.limits.limit(scope, batch))
                   for scope, item in ((principal, self.principal_item),
                                       (PROJECT, self.project_item))}
        if not self.limiter.test(self.project_item, PROJECT, cost=reserve[PROJECT]):
            return self._wait(self.project_item, PROJECT)
        if reserve[principal] > 1 and not self.limiter.test(
                self.principal_item, principal, cost=reserve[principal]):
            return self._wait(self.principal_item, principal)
        if not self.limiter.hit(self.principal_item, principal):
            return self._wait(self.principal_item, principal)
        if not self.limiter.hit(self.project_item, PROJECT):
            return self._wait(self.project_item, PROJECT)
        return 0.0

    def _wait(self, item: object, scope: str) -> float:
        stats = self.limiter.get_window_stats(item, scope)  # type: ignore[arg-type]
        # a slot frees when the oldest write in the window leaves it; never report 0 when
        # nothing was taken (the window may have moved since)
        return max(stats.reset_time - time.time(), 0.01)

    def hold(self, principal: str, seconds: float) -> None:
        key, ms = self._hold_key(principal), max(int(seconds * 1000), 1)
        try:
            # keep the longer of an existing hold and this one
            if int(cast(Any, self.redis.pttl(key))) < ms:
                self.redis.set(key, "1", px=ms)
        except self.errors as exc:  # no write is granted while it is away anyway
            self._gone("a 429's hold is not recorded", exc)

    def close(self) -> None:
        self.redis.close()


def open_quota(redis_url: str | None, tables: Tables | None,
               limits: WriteLimits = WriteLimits()) -> WriteQuota:
    """Redis when a URL is given, else the store when there is one, else this process."""
    if redis_url:
        return RedisQuota(redis_url, limits)
    if tables is not None:
        return StoreQuota(tables, limits)
    return MemoryQuota(limits)


def quota_from_config(config: Config, tables: Tables | None) -> WriteQuota:
    """The Slides write quota the configuration asks for (DECKGEN_SLIDES_WRITES_PER_MINUTE,
    DECKGEN_SLIDES_PROJECT_WRITES_PER_MINUTE; DECKGEN_REDIS_URL or DECKGEN_QUEUE_URL)."""
    return open_quota(config.redis_url, tables, WriteLimits(
        config.slides_writes_per_minute, config.slides_project_writes_per_minute))

