"""Prometheus metrics for the service: HTTP requests and latency, per-section model time by
route, tokens, retries, failovers, jobs by outcome, queue depth, and per lane the jobs
waiting in each stage and the oldest wait, and Slides writes per principal. Each app has its own
registry, so several apps (tests) never collide."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from deckgen.content import DeckContent

SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("deckgen_http_requests_total", "HTTP requests",
                                ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram("deckgen_http_request_seconds", "HTTP request latency",
                                 ["endpoint"], registry=r)
        self.section_seconds = Histogram("deckgen_section_seconds", "Time to write a section",
                                         ["section", "route"], buckets=SECONDS, registry=r)
        self.tokens = Counter("deckgen_tokens_total", "Model tokens", ["route", "kind"],
                              registry=r)
        self.retries = Counter("deckgen_retries_total", "Model call retries", ["route"],
                               registry=r)
        self.failovers = Counter("deckgen_failovers_total", "Sections moved to another route",
                                 ["section"], registry=r)
        self.jobs = Counter("deckgen_jobs_total", "Finished jobs and previews", ["state"],
                            registry=r)
        self.queue = Gauge("deckgen_queue_depth", "Queued jobs", registry=r)
        self.lane_jobs = Gauge("deckgen_lane_jobs", "Jobs waiting or in flight, per lane and "
                               "stage (queued, paused, generating, generated, writing)",
                               ["lane", "stage"], registry=r)
        self.lane_wait = Gauge("deckgen_lane_wait_seconds", "How long the oldest queued job "
                               "of a lane has waited", ["lane"], registry=r)
        self.slides_writes = Counter("deckgen_slides_writes_total", "Decks written to Google "
                                     "Slides, per principal", ["principal"], registry=r)

    def request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def job_finished(self, state: str, deck: DeckContent | None) -> None:
        self.jobs.labels(state).inc()
        for s in deck.sections if deck else []:
            route = s.route or "none"
            self.section_seconds.labels(s.section, route).observe(s.seconds)
            self.tokens.labels(route, "prompt").inc(s.prompt_tokens)
            self.tokens.labels(route, "completion").inc(s.completion_tokens)
            if s.retries:
                self.retries.labels(route).inc(s.retries)
            if s.failovers:
                self.failovers.labels(s.section).inc(len(s.failovers))

    def slides_written(self, principal: str) -> None:
        self.slides_writes.labels(principal).inc()

    def observe_lanes(self, lanes: dict[str, dict[str, float]]) -> None:
        """The store's lane stats (deckgen.scheduler.lane_stats) as gauges."""
        for lane, stats in lanes.items():
            for stage, value in stats.items():
                if stage == "oldest_wait":
                    self.lane_wait.labels(lane).set(value)
                else:
                    self.lane_jobs.labels(lane, stage).set(value)

    def render(self, queue_depth: int,
               lanes: dict[str, dict[str, float]] | None = None) -> bytes:
        self.queue.set(queue_depth)
        if lanes is not None:
            self.observe_lanes(lanes)
        return generate_latest(self.registry)
