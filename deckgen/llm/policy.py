"""The route policy's settings: which routes exist, how each is paced, and how calls are
retried, broken off and cooled down. Read from the environment by deckgen.config; used by
deckgen.llm.router, which applies them."""

from __future__ import annotations

from dataclasses import dataclass

from deckgen.errors import DeckgenError

ROUTES = ("local", "self-hosted", "openai", "auto")
MODEL_ROUTES = ("self-hosted", "openai", "local")
# Routes whose servers are not ours: a confidential brief reaches them only redacted.
EXTERNAL_ROUTES = frozenset({"openai"})
# What a brief's confidentiality allows, recorded with every section.
OPEN, INTERNAL_ONLY, REDACTED = "open", "confidential:internal-only", "confidential:redacted"


@dataclass(frozen=True)
class RouteLimits:
    """Client-side pacing for one route; None means no limit."""

    rpm: int | None
    tpm: int | None
    concurrency: int


@dataclass(frozen=True)
class RetryPolicy:
    deadline: float = 120.0  # seconds a section may spend retrying on one route
    server_retries: int = 2  # retries of 5xx / timeouts / refused connections
    backoff_initial: float = 0.5
    backoff_max: float = 20.0
    breaker_failures: int = 3  # consecutive failures that open a route's circuit
    breaker_cooldown: float = 30.0
    quota_cooldown: float = 300.0  # how long an out-of-quota route is skipped
    quota_probe: float = 30.0  # during that cool-down, one probe call this often


DEFAULT_LIMITS = {
    # OpenAI's published tier-1 limits for GPT-4o; raise them to your organisation's tier.
    "openai": RouteLimits(rpm=500, tpm=30000, concurrency=8),
    "self-hosted": RouteLimits(rpm=None, tpm=None, concurrency=16),
    # llama.cpp's server runs one request at a time; two keeps the next one queued.
    "local": RouteLimits(rpm=None, tpm=None, concurrency=2),
}


class ConfidentialRouteError(DeckgenError):
    """A confidential brief's section has no route it may use."""

    code = "confidential_no_internal_route"
    http_status = 422
