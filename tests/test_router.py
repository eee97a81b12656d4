"""Routing, retries, pacing and failover against real HTTP servers on 127.0.0.1."""


import pytest

from deckgen.brief import parse_brief
from deckgen.budget import TiktokenCounter
from deckgen.config import Config, RetryPolicy, RouteLimits, parse_route_table
from deckgen.deck import Generator, generate_deck, generate_section
from deckgen.errors import ConfigError
from deckgen.llm.breaker import Breaker
from deckgen.llm.client import retry_after
from deckgen.llm.limits import Pacer
from deckgen.llm.router import Router
from tests.fake_openai import FakeOpenAI
from tests.samples import DOWN, route

BRIEF = parse_brief({"client": "Harbor Logistics", "industry": "Logistics",
                     "notes": "Trucks queue at the gates for hours.",
                     "contacts": [{"name": "Ana Ruiz", "role": "COO"}]})
QUICK = RetryPolicy(deadline=5, server_retries=2, backoff_initial=0.01, backoff_max=0.05,
                    breaker_failures=3, breaker_cooldown=0.5, quota_cooldown=60)


def rate_limited(retry_after=None, **headers):
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    return {"status": 429, "code": "rate_limit_exceeded", "message": "Rate limit reached",
            "headers": headers}


QUOTA = {"status": 429, "code": "insufficient_quota", "message": "You exceeded your quota"}


@pytest.fixture
def other_openai():
    server = FakeOpenAI().start()
    yield server
    server.stop()


def generator(specs, cases, renderer, routes, order, policy=QUICK, limits=None):
    router = Router(lambda name: routes[name], order, policy, limits or {})
    return Generator(specs, cases, renderer, router, temperature=0.0)


def test_rate_limits_wait_at_least_retry_after(specs, cases, renderer, fake_openai):
    fake_openai.reply("data", rate_limited(0.3), rate_limited(**{"retry-after-ms": "250"}))
    gen = generator(specs, cases, renderer, {"openai": route("openai", fake_openai)}, ["openai"])
    result = generate_section(gen, specs["data"], BRIEF)
    assert result.status == "ok" and result.route == "openai"
    assert (result.attempts, result.retries) == (3, 2)
    assert result.wait_seconds >= 0.55
    gaps = [b - a for a, b in zip(fake_openai.times, fake_openai.times[1:], strict=False)]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.25


def test_retry_after_headers_are_read():
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"x-ratelimit-reset-requests": "1s",
                        "x-ratelimit-reset-tokens": "6m0s"}) == 360.0
    assert retry_after({"x-ratelimit-reset-tokens": "20ms"}) == pytest.approx(0.02)
    assert retry_after({}) is None


def test_rate_limits_give_up_at_the_deadline(specs, cases, renderer, fake_openai):
    fake_openai.reply("skills", *[rate_limited(0.2)] * 50)
    policy = RetryPolicy(deadline=1.0, backoff_initial=0.01, backoff_max=0.05)
    gen = generator(specs, cases, renderer, {"openai": route("openai", fake_openai)},
                    ["openai"], policy)
    result = generate_section(gen, specs["skills"], BRIEF)
    assert result.status == "failed"
    assert "no route could serve skills" in result.error["message"]
    assert 2 <= result.attempts <= 6  # each wait >= 0.2 s, all within the 1 s deadline
    assert result.wait_seconds <= 1.0
    assert result.failovers[0]["code"] == "rate_limited"


def test_quota_fails_over_at_once_and_cools_down(specs, cases, renderer, fake_openai,
                                                 other_openai):
    fake_openai.reply(None, QUOTA)
    routes = {"openai": route("openai", fake_openai),
              "self-hosted": route("self-hosted", other_openai)}
    gen = generator(specs, cases, renderer, routes, ["openai", "self-hosted"])
    first = generate_section(gen, specs["current_state"], BRIEF)
    assert first.status == "ok" and first.route == "self-hosted"
    assert len(fake_openai.requests) == 1  # quota is never retried
    assert first.failovers == [{"route": "openai", "code": "quota_exhausted",
                                "message": first.failovers[0]["message"]}]
    assert gen.router.health()["openai"]["out_of_quota"] is True
    second = generate_section(gen, specs["data"], BRIEF)
    assert second.route == "self-hosted" and second.failovers[0]["code"] == "route_unavailable"
    assert len(fake_openai.requests) == 1  # skipped during the cool-down


def test_server_errors_retry_a_bounded_number_of_times_then_fail_over(
        specs, cases, renderer, fake_openai, other_openai):
    fake_openai.reply(None, *[DOWN] * 10)
    routes = {"self-hosted": route("self-hosted", fake_openai),
              "openai": route("openai", other_openai)}
    policy = RetryPolicy(deadline=5, server_retries=2, backoff_initial=0.01,
                         backoff_max=0.05, breaker_failures=10)
    gen = generator(specs, cases, renderer, routes, ["self-hosted", "openai"], policy)
    result = generate_section(gen, specs["future_state"], BRIEF)
    assert result.status == "ok" and result.route == "openai"
    assert len(fake_openai.requests) == 3  # 1 try + 2 retries
    assert result.attempts == 4 and result.retries == 2
    assert result.failovers[0]["code"] == "model_unavailable"


def test_a_hung_server_times_out_and_fails_over(specs, cases, renderer, fake_openai,
                                                other_openai):
    fake_openai.reply(None, *[{"delay": 1.5}] * 3)
    routes = {"self-hosted": route("self-hosted", fake_openai, timeout=0.3),
              "openai": route("openai", other_openai)}
    policy = RetryPolicy(deadline=5, server_retries=0, backoff_initial=0.01)
    gen = generator(specs, cases, renderer, routes, ["self-hosted", "openai"], policy)
    result = generate_section(gen, specs["skills"], BRIEF)
    assert result.route == "openai" and result.status == "ok"
    assert "timed out" in result.failovers[0]["message"]


def test_circuit_breaker_skips_a_dead_route_then_probes_it(specs, cases, renderer,
                                                           fake_openai, other_openai):
    import time

    fake_openai.reply(None, *[DOWN] * 3)
    routes = {"self-hosted": route("self-hosted", fake_openai),
              "openai": route("openai", other_openai)}
    gen = generator(specs, cases, renderer, routes, ["self-hosted", "openai"])
    assert generate_section(gen, specs["data"], BRIEF).route == "openai"
    assert gen.router.health()["self-hosted"]["circuit"] == "open"
    skipped = generate_section(gen, specs["skills"], BRIEF)
    assert skipped.route == "openai" and skipped.failovers[0]["code"] == "route_unavailable"
    assert len(fake_openai.requests) == 3  # not called while open
    time.sleep(QUICK.breaker_cooldown)
    probed = generate_section(gen, specs["stakeholders"], BRIEF)
    assert probed.route == "self-hosted" and probed.failovers == []
    assert gen.router.health()["self-hosted"]["circuit"] == "closed"


def test_breaker_half_open_lets_one_probe_through():
    now = [0.0]
    breaker = Breaker(threshold=2, cooldown=10, clock=lambda: now[0])
    breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert not breaker.allow()
    now[0] = 10.0
    assert breaker.allow() and not breaker.allow()  # one probe only
    breaker.failure()  # the probe failed: open again for a full cool-down
    now[0] = 15.0
    assert not breaker.allow()


def test_pacing_spaces_requests_and_tokens_per_minute():
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(rpm=60, tpm=1000, concurrency=4, clock=lambda: now[0], sleep=sleep)
    assert pacer.acquire(600) == 0
    pacer.release()
    waited = pacer.acquire(600)  # 200 tokens short, refilled at 1000/60 per second
    pacer.release()
    assert waited == pytest.approx(12.0)
    pacer = Pacer(rpm=2, tpm=None, concurrency=4, clock=lambda: now[0], sleep=sleep)
    pacer.acquire(1), pacer.acquire(1), pacer.release(), pacer.release()
    assert pacer.acquire(1) == pytest.approx(30.0)  # the third request in a minute waits


def test_concurrency_per_route_is_capped(specs, cases, renderer, fake_openai):
    for name in specs:
        fake_openai.reply(name, {"delay": 0.3})
    gen = generator(specs, cases, renderer, {"openai": route("openai", fake_openai)},
                    ["openai"], limits={"openai": RouteLimits(None, None, 2)})
    deck = generate_deck(gen, BRIEF, list(specs.values()))
    assert deck.ok and fake_openai.max_in_flight == 2


def test_context_overflow_refits_once_with_a_smaller_budget(specs, cases, renderer,
                                                            fake_openai):
    overflow = {"status": 400, "code": "context_length_exceeded",
                "message": "This model's maximum context length is 8192 tokens"}
    fake_openai.reply("data", overflow)
    gen = generator(specs, cases, renderer, {"openai": route("openai", fake_openai)},
                    ["openai"])
    result = generate_section(gen, specs["data"], BRIEF)
    assert result.status == "ok" and result.overflow_refits == 1
    counter = TiktokenCounter("gpt-4o")
    first, second = (counter.count(r["messages"]) for r in fake_openai.requests)
    assert second < first and second <= result.budget

    fake_openai.reply("skills", overflow, overflow)
    failed = generate_section(gen, specs["skills"], BRIEF)
    assert failed.status == "failed" and failed.error["code"] == "context_overflow"


def test_half_the_requests_rate_limited_every_deck_completes(specs, cases, renderer,
                                                             fake_openai):
    decks = 4
    fake_openai.reply(None, *[rate_limited(0.2), {"delay": 0}] * (decks * 5))
    gen = generator(specs, cases, renderer, {"openai": route("openai", fake_openai)},
                    ["openai"])
    results = [generate_deck(gen, BRIEF, list(specs.values())) for _ in range(decks)]
    assert all(d.ok for d in results)
    limited = sum(s.retries for d in results for s in d.sections)
    assert limited >= decks * 5 // 2
    assert sum(s.wait_seconds for d in results for s in d.sections) >= 0.2 * limited


def test_auto_prefers_self_hosted_then_openai_and_local_only_alone():
    def router(env):
        return Router.from_config(Config.from_env(env))
    assert router({}).plan("data", "auto") == ["local"]
    both = router({"DECKGEN_SELF_HOSTED_URL": "http://x/v1", "OPENAI_API_KEY": "k"})
    assert both.plan("data", "auto") == ["self-hosted", "openai"]
    assert both.plan("data", "openai") == ["openai"]  # named: pinned, no failover
    table = router({"OPENAI_API_KEY": "k", "DECKGEN_ROUTE_TABLE": "data=local,openai"})
    assert table.plan("data", "auto") == ["local", "openai"]
    assert table.plan("skills", "auto") == ["openai"]


def test_route_table_errors_are_clear():
    assert parse_route_table("data=self-hosted,openai; skills=local") == {
        "data": ("self-hosted", "openai"), "skills": ("local",)}
    with pytest.raises(ConfigError, match="section=route"):
        parse_route_table("data=gpt5")


def test_client_retries_are_off_so_tenacity_is_the_only_policy():
    env = {"OPENAI_API_KEY": "k", "DECKGEN_SELF_HOSTED_URL": "http://127.0.0.1:9/v1",
           "DECKGEN_SELF_HOSTED_MODEL": "m"}
    router = Router.from_config(Config.from_env(env))
    assert router.route("openai").client.max_retries == 0
    assert router.route("self-hosted").client.max_retries == 0


def test_an_out_of_quota_route_is_probed_and_used_again_before_its_cool_down_ends(
        specs, cases, renderer, fake_openai, other_openai):
    now = [1000.0]
    fake_openai.reply(None, QUOTA)  # then answers normally: the quota came back
    routes = {"openai": route("openai", fake_openai),
              "self-hosted": route("self-hosted", other_openai)}
    policy = RetryPolicy(deadline=5, quota_cooldown=300, quota_probe=30)
    router = Router(routes.__getitem__, ["openai", "self-hosted"], policy, clock=lambda: now[0])
    gen = Generator(specs, cases, renderer, router, temperature=0.0)
    assert generate_section(gen, specs["data"], BRIEF).route == "self-hosted"
    now[0] += 10  # inside the probe interval: skipped, nothing sent
    assert generate_section(gen, specs["data"], BRIEF).route == "self-hosted"
    assert len(fake_openai.requests) == 1
    now[0] += 25  # 35 s after the 429, 265 s before the cool-down would end: one probe
    probed = generate_section(gen, specs["data"], BRIEF)
    assert probed.route == "openai" and len(fake_openai.requests) == 2
    assert router.health()["openai"]["out_of_quota"] is False
