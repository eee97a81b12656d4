"""A route's health between calls: the circuit breaker (failures in a row open it; one probe
after the cool-down) and the quota cool-down (an out-of-quota route rests, probed now and
then). Pacing, how fast calls may go, is deckgen/llm/limits.py."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from deckgen.llm.limits import Clock


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
