"""Client-side pacing and health per route: a requests- and tokens-per-minute limiter, a
concurrency cap, a circuit breaker and a quota cool-down.

Pacing keeps a batch from provoking 429s in the first place; the breaker keeps a dead
self-hosted server from costing every section its full retry budget. `Pacer` counts in this
process (the single-process default); `SharedPacer` counts where every replica and worker
sees it (Redis or the PostgreSQL store, deckgen/limits_store.py) and paces with a `Pacer` of
its own while that home is away. Either waits only until a deadline it is given, then says
so (`Saturated`), and a 429's Retry-After holds the route for every caller. Calls waiting
for an in-flight slot are let in by priority (a plain number, lower first: the caller's
lane), then in arrival order, and each pacer counts the calls of this process in flight and
waiting (`load`), so a scheduler can tell how much work stands ready for the route. All of
it takes the clock and sleep as arguments so its timing is exact in tests."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from deckgen.errors import ModelError

if TYPE_CHECKING:
    from deckgen.limits_store import RouteHome

log = logging.getLogger("deckgen.router")
POLL = 0.1  # seconds between asks for a shared in-flight slot (leases free at no set time)
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


@dataclass(frozen=True)
class RouteLoad:
    """A route's calls from this process right now: holding an in-flight slot, and waiting
    for one (or for room in the rate windows), by priority; and the route's cap."""

    in_flight: int
    concurrency: int
    waiting_by_priority: dict[int, int] = field(default_factory=dict)

    @property
    def waiting(self) -> int:
        return sum(self.waiting_by_priority.values())


class SlotGate:
    """A concurrency cap whose waiting callers go in by priority (lower first), then in the
    order they came. Like a bounded semaphore, but no caller overtakes a better one, and a
    freed slot is handed straight to the next in line (only that thread wakes)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_flight = 0
        self._lock = threading.Lock()
        # heap of (priority, arrival, the waiter's event); a slot handed over sets the event
        self._line: list[tuple[int, int, threading.Event]] = []
        self._arrivals = itertools.count()

    def acquire(self, priority: int = 0, timeout: float | None = None) -> bool:
        """Take a slot; False if none came within `timeout` seconds (real time)."""
        with self._lock:
            if self.in_flight < self.capacity and not self._line:
                self.in_flight += 1
                return True
            entry = (priority, next(self._arrivals), threading.Event())
            heapq.heappush(self._line, entry)
        if entry[2].wait(timeout):
            return True
        with self._lock:
            if entry[2].is_set():  # handed a slot just as it gave up: it is ours
                return True
            self._line.remove(entry)
            heapq.heapify(self._line)
            return False

    def release(self) -> None:
        with self._lock:
            if self.in_flight <= 0:
                raise ValueError("released more slots than were taken")
            if self._line:  # the slot goes to the best waiting call, still taken
                heapq.heappop(self._line)[2].set()
            else:
                self.in_flight -= 1


class _Counts:
    """Calls of this process waiting (by priority) and in flight on one route."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting: Counter[int] = Counter()
        self.in_flight = 0

    def wait(self, priority: int) -> None:
        with self.lock:
            self.waiting[priority] += 1

    def done_waiting(self, priority: int, granted: bool) -> None:
        with self.lock:
            self.waiting[priority] -= 1
            if not self.waiting[priority]:
                del self.waiting[priority]
            self.in_flight += granted

    def released(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def better_waiting(self, priority: int) -> bool:
        with self.lock:
            return any(p < priority for p, n in self.waiting.items() if n)

    def load(self, concurrency: int) -> RouteLoad:
        with self.lock:
            return RouteLoad(self.in_flight, concurrency, dict(self.waiting))


class Saturated(ModelError):
    """The route's pacing would keep this call waiting past its deadline: the next route
    is tried (or the section fails saying so) instead of a thread sleeping on and on."""

    code = "route_saturated"


class _Counted:
    """What both pacers share: the count of calls waiting and in flight per priority
    (`load`, for the scheduler), kept around each pacer's own `_acquire`."""

    counts: _Counts
    concurrency: int

    def load(self) -> RouteLoad:
        return self.counts.load(self.concurrency)

    def acquire(self, tokens: int, until: float | None = None, priority: int = 0) -> float:
        """Block until this request may go; returns the seconds spent waiting. With `until`
        (a time on the clock), raise Saturated instead of waiting past it. A waiting call
        of a lower `priority` number gets the next free slot first."""
        self.counts.wait(priority)
        granted = False
        try:
            waited = self._acquire(tokens, until, priority)
            granted = True
            return waited
        finally:
            self.counts.done_waiting(priority, granted)

    def _acquire(self, tokens: int, until: float | None, priority: int) -> float:
        raise NotImplementedError


class Pacer(_Counted):
    """Requests per minute, tokens per minute and in-flight requests for one route."""

    def __init__(self, rpm: int | None, tpm: int | None, concurrency: int, clock: Clock,
                 sleep: Sleep, burst: int | None = None) -> None:
        self.requests = TokenBucket(rpm, clock, burst) if rpm else None
        self.tokens = TokenBucket(tpm, clock) if tpm else None
        self.concurrency = concurrency
        self.slots = SlotGate(concurrency)
        self.counts = _Counts()
        self.lock = threading.Lock()
        self.sleep = sleep
        self.clock = clock
        self.held_until = 0.0

    def _acquire(self, tokens: int, until: float | None, priority: int) -> float:
        start = self.clock()
        with self.lock:
            wait = max(self.requests.delay(1) if self.requests else 0.0,
                       self.tokens.delay(tokens) if self.tokens else 0.0,
                       self.held_until - start)
            if until is not None and start + wait > until:
                self._refund(tokens)
                raise Saturated(f"the route's pacing would hold this call {wait:.0f}s, past "
                                "its deadline")
        if wait > 0:
            self.sleep(wait)
        if until is None:
            self.slots.acquire(priority)
        elif not self.slots.acquire(priority, timeout=max(until - self.clock(), 0.0)):
            raise Saturated("every in-flight slot of the route stayed taken until the "
                            "call's deadline")
        return self.clock() - start

    def _refund(self, tokens: int) -> None:
        if self.requests:
            self.requests.level += 1
        if self.tokens:
            self.tokens.level += min(tokens, self.tokens.capacity)

    def release(self) -> None:
        self.slots.release()
        self.counts.released()

    def hold(self, seconds: float) -> None:
        """No request before `seconds` from now (a 429's Retry-After)."""
        with self.lock:
            self.held_until = max(self.held_until, self.clock() + seconds)


class SharedPacer(_Counted):
    """A route's pacing counted in a shared home (Redis or the PostgreSQL store): requests
    and tokens per minute over a moving window, and a concurrency cap as leases. While the
    home cannot be reached, this process paces alone with `local` (logged once), so an
    outage of the limiter's home slows nothing down to a stop; a 429 from the model server
    still backs the call off. Priority holds between this process's own calls (a call asks
    the home only while no better one of this process waits); between processes the leases
    go to whoever asks first. A shared slot is not held while the window is full, so it
    never blocks a call that could go."""

    def __init__(self, home: RouteHome, scope: str, rpm: int | None, tpm: int | None,
                 concurrency: int, lease_seconds: float, local: Pacer, clock: Clock,
                 sleep: Sleep) -> None:
        self.home, self.scope = home, scope
        self.rpm, self.tpm, self.concurrency = rpm, tpm, concurrency
        self.lease_seconds = lease_seconds
        self.local, self.clock, self.sleep = local, clock, sleep
        self.away = False
        self._mine = threading.local()  # this thread's lease, or "local"
        self.counts = _Counts()
        # leases whose release failed while the home was away: released once it is back,
        # so an outage does not leave the shared cap full of calls that ended long ago
        self._orphans: list[str] = []
        self._orphans_lock = threading.Lock()

    def _orphan(self, lease: str) -> None:
        with self._orphans_lock:
            self._orphans.append(lease)

    def _release_orphans(self) -> None:
        """Release what could not be released while the home was away (raises if it still
        is; what is left stays for the next try)."""
        with self._orphans_lock:
            orphans, self._orphans = self._orphans, []
        for i, lease in enumerate(orphans):
            try:
                self.home.release(self.scope, lease)
            except Exception:
                with self._orphans_lock:
                    self._orphans.extend(orphans[i:])
                raise

    def _acquire(self, tokens: int, until: float | None, priority: int) -> float:
        start = self.clock()
        while True:
            lease = None
            if self.counts.better_waiting(priority):
                # a better call of this process waits: it asks the home first
                if until is not None and self.clock() + POLL > until:
                    raise Saturated(
                        f"the route's shared limits ({self._limits()}) would hold this call "
                        f"past its deadline; waited {self.clock() - start:.1f}s")
                self.sleep(POLL)
                continue
            asked = uuid.uuid4().hex  # ours: released even if the home's answer is lost
            try:
                if self._orphans:
                    self._release_orphans()
                lease = self.home.lease(self.scope, self.concurrency, self.lease_seconds, asked)
                wait = POLL
                if lease is not None:
                    wait = self.home.take(self.scope, self.rpm, self.tpm, tokens)
                    if wait <= 0:
                        self._back()
                        self._mine.lease = lease
                        return self.clock() - start
                    self.home.release(self.scope, lease)
                    lease = None
            except Exception as exc:  # noqa: BLE001 - any failure of the home: pace alone
                # the lease in hand, or the one asked for (the home may have stored it)
                self._orphan(lease or asked)
                self._gone(exc)
                waited = self.local.acquire(tokens, until, priority)
                self._mine.lease = "local"
                return self.clock() - start + waited
            if until is not None and self.clock() + wait > until:
                raise Saturated(
                    f"the route's shared limits ({self._limits()}) would hold this call "
                    f"past its deadline; waited {self.clock() - start:.1f}s")
            self.sleep(wait)

    def release(self) -> None:
        lease, self._mine.lease = getattr(self._mine, "lease", None), None
        if lease:
            self.counts.released()
        if lease == "local":
            self.local.release()
        elif lease:
            try:
                self.home.release(self.scope, lease)
            except Exception as exc:  # noqa: BLE001 - released once the home is back
                self._orphan(lease)
                self._gone(exc)

    def hold(self, seconds: float) -> None:
        """Every process waits `seconds` before its next call on the route (a 429)."""
        self.local.hold(seconds)
        try:
            self.home.hold(self.scope, seconds)
        except Exception as exc:  # noqa: BLE001 - this process still holds
            self._gone(exc)

    def _limits(self) -> str:
        parts = [f"{self.rpm} requests/min" if self.rpm else "",
                 f"{self.tpm} tokens/min" if self.tpm else "",
                 f"{self.concurrency} in flight"]
        return ", ".join(p for p in parts if p)

    def _gone(self, exc: Exception) -> None:
        if not self.away:
            self.away = True
            log.warning("route limits for %s cannot be shared (%s: %s); pacing in this "
                        "process until they can", self.scope, type(exc).__name__, exc)

    def _back(self) -> None:
        if self.away:
            self.away = False
            log.warning("route limits for %s are shared again", self.scope)
