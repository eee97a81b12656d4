"""Per-caller limits on the doors that cost model time, and the cap that keeps health
checks answering while one caller floods previews.

- A rate per caller (DECKGEN_RATE_LIMIT, "60/minute") on each of preview, job creation and
  batch creation, counted with the `limits` library in Redis when one is configured (so it
  holds across replicas) or in this process's memory: over it, 429 with Retry-After.
- At most DECKGEN_PREVIEW_PER_CALLER previews in flight per caller (Redis or memory): 429.
- At most DECKGEN_PREVIEW_CONCURRENCY previews in flight per process. A preview is a
  synchronous model call in a request thread; capping them below the server's thread count
  means a thread is always free for /healthz, /readyz and job polling. A full process answers
  503 with Retry-After at once instead of queueing the request.

Limits fail open: with Redis away, requests are served (and a warning logged) rather than
refused; the per-process cap does not depend on Redis."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from deckgen.config import Config
from deckgen.errors import DeckgenError

log = logging.getLogger("deckgen.api")
REDIS_TIMEOUT = 1.0  # seconds: a slow Redis must not hold request threads
BUSY_RETRY_AFTER = 2


class TooManyRequests(DeckgenError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Busy(DeckgenError):
    code = "busy"
    http_status = 503

    def __init__(self, message: str, retry_after: int = BUSY_RETRY_AFTER) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "unix://"))


def _storage(url: str) -> Storage:
    options = {"socket_timeout": REDIS_TIMEOUT, "socket_connect_timeout": REDIS_TIMEOUT} \
        if _is_redis(url) else {}
    if url.startswith("unix://"):  # redis-py's spelling; `limits` names it redis+unix://
        url = "redis+" + url
    storage = storage_from_string(url, **options)
    assert isinstance(storage, Storage)  # the synchronous kind, for memory:// and redis://
    return storage


class InFlight:
    """How many requests of a kind each caller has running, across replicas with Redis.
    A Redis count expires after `ttl` seconds, so a killed process cannot lock a caller out."""

    def __init__(self, url: str, limit: int, ttl: float) -> None:
        self.limit, self.ttl = limit, max(1, math.ceil(ttl))
        self.redis: Any = None
        if _is_redis(url):
            import redis

            self.redis = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT,
                                              socket_connect_timeout=REDIS_TIMEOUT)
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    @contextmanager
    def hold(self, kind: str, owner: str) -> Iterator[None]:
        key = f"deckgen:inflight:{kind}:{owner}"
        counted = self._enter(key)
        if counted is None:
            raise TooManyRequests(f"at most {self.limit} {kind}s at once per caller; wait for "
                                  "one to finish", retry_after=BUSY_RETRY_AFTER)
        try:
            yield
        finally:
            if counted:
                self._leave(key)

    def _enter(self, key: str) -> bool | None:
        """True: counted; False: not counted (Redis away, let through); None: refused."""
        if self.redis is None:
            with self.lock:
                if self.counts[key] >= self.limit:
                    return None
                self.counts[key] += 1
                return True
        try:
            pipe = self.redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, self.ttl)
            count = int(pipe.execute()[0])
            if count > self.limit:
                self.redis.decr(key)
                return None
            return True
        except Exception as exc:  # noqa: BLE001 - fail open: Redis is not worth a 500
            log.warning("in-flight limit not applied (Redis: %s)", exc)
            return False

    def _leave(self, key: str) -> None:
        if self.redis is None:
            with self.lock:
                self.counts[key] -= 1
                if self.counts[key] <= 0:
                    del self.counts[key]
            return
        try:
            self.redis.decr(key)
        except Exception as exc:  # noqa: BLE001 - the count expires by itself
            log.warning("in-flight count not released (Redis: %s)", exc)


class Throttle:
    def __init__(self, rate: str | None, storage_url: str, preview_slots: int,
                 preview_per_caller: int, preview_seconds: float) -> None:
        self.rates: list[RateLimitItem] = parse_many(rate) if rate else []
        self.storage = _storage(storage_url)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.slots = threading.BoundedSemaphore(preview_slots)
        self.preview_slots = preview_slots
        self.in_flight = InFlight(storage_url, preview_per_caller, preview_seconds)

    @classmethod
    def from_config(cls, config: Config) -> Throttle:
        return cls(config.rate_limit, config.rate_limit_url, config.preview_concurrency,
                   config.preview_per_caller, config.section_timeout * 2)

    def charge(self, owner: str, door: str) -> None:
        """Count one request by `owner` at `door`; TooManyRequests when over the rate."""
        for item in self.rates:
            try:
                if self.limiter.hit(item, "deckgen", door, owner):
                    continue
                reset = self.limiter.get_window_stats(item, "deckgen", door, owner).reset_time
            except self.storage.base_exceptions as exc:
                log.warning("rate limit not applied (storage: %s)", exc)
                return
            raise TooManyRequests(
                f"too many {door} requests: at most {item.amount} per {item.multiples} "
                f"{item.GRANULARITY.name}(s) per caller",
                retry_after=max(1, math.ceil(reset - time.time())))

    @contextmanager
    def preview(self, owner: str) -> Iterator[None]:
        """Hold a preview slot for the caller and in this process while the body runs."""
        with self.in_flight.hold("preview", owner):
            if not self.slots.acquire(blocking=False):
                raise Busy(f"this server is already running {self.preview_slots} previews; "
                           "try again in a moment")
            try:
                yield
            finally:
                self.slots.release()
