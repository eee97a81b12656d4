"""Client-side pacing and health per route: a requests- and tokens-per-minute limiter, a
concurrency cap, a circuit breaker and a quota cool-down.

Pacing keeps a batch from provoking 429s in the first place; the breaker keeps a dead
self-hosted server from costing every section its full retry budget. All of it takes the
clock and sleep as arguments so its timing is exact in tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class TokenBucket:
    """`per_minute` units a minute, refilled continuously, with a burst of `burst` (default a
    whole minute's worth, as OpenAI's limits behave)."""

    def __init__(self, per_minute: float, clock: Clock, burst: float | None = None) -> None:
        self.capacity = float(burst or per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.clock = clock
        self.stamp = clock()

    def delay(self, amount: float) -> float:
        """Seconds to wait before `amount` units are available; takes them (going into debt
        if needed, so concurrent callers queue in order)."""
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        amount = min(amount, self.capacity)  # one request larger than a minute's worth waits
        self.level -= amount                 # for a full bucket, not forever
        return 0.0 if self.level >= 0 else -self.level / self.rate


class Pacer:
    """Requests per minute, tokens per minute and in-flight requests for one route."""

    def __init__(self, rpm: int | None, tpm: int | None, concurrency: int, clock: Clock,
                 sleep: Sleep, burst: int | None = None) -> None:
        self.requests = TokenBucket(rpm, clock, burst) if rpm else None
        self.tokens = TokenBucket(tpm, clock) if tpm else None
        self.slots = threading.BoundedSemaphore(concurrency)
        self.lock = threading.Lock()
        self.sleep = sleep
        self.clock = clock

    def acquire(self, tokens: int) -> float:
        """Block until this request may go; returns the seconds spent waiting."""
        start = self.clock()
        with self.lock:
            wait = max(self.requests.delay(1) if self.requests else 0.0,
                       self.tokens.delay(tokens) if self.tokens else 0.0)
        if wait > 0:
            self.sleep(wait)
        self.slots.acquire()
        return self.clock() - start

    def release(self) -> None:
        self.slots.release()


@dataclass
class Breaker:
    """Opens after `threshold` consecutive failures; after `cooldown` seconds one probe is
    let through (half-open): its success closes the breaker, its failure reopens it."""

    threshold: int
    cooldown: float
    clock: Clock
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False

    def __post_init__(self) -> None:
        self.lock = threading.Lock()

    def allow(self) -> bool:
        with self.lock:
            if self.opened_at is None:
                return True
            if self.clock() - self.opened_at >= self.cooldown and not self.probing:
                self.probing = True
                return True
            return False

    def success(self) -> None:
        with self.lock:
            self.failures, self.opened_at, self.probing = 0, None, False

    def failure(self) -> None:
        with self.lock:
            self.failures += 1
            if self.probing or self.failures >= self.threshold:
                self.opened_at, self.probing = self.clock(), False

    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.cooldown else "open"


@dataclass
class Cooldown:
    """A route marked unusable until a moment (openai out of quota). While it lasts, one
    call every `probe_every` seconds may go through as a probe: a provider whose quota came
    back (a raised limit, a paid invoice) is used again within that time, not at the end of
    a long cool-down."""

    clock: Clock
    until: float = 0.0
    probe_every: float = 30.0
    probed_at: float = 0.0

    def mark(self, seconds: float) -> None:
        self.until = max(self.until, self.clock() + seconds)
        self.probed_at = self.clock()

    def active(self) -> bool:
        return self.clock() < self.until

    def probe(self) -> bool:
        """True for the one caller that may try the route now, during the cool-down."""
        now = self.clock()
        if now - self.probed_at < self.probe_every:
            return False
        self.probed_at = now
        return True

    def clear(self) -> None:
        self.until = 0.0
