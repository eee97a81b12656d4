"""The embedded model, for real: llama.cpp's server running SmolLM2-135M."""

import pytest
from openai import OpenAI

from deckgen.brief import parse_brief
from deckgen.deck import Generator, generate_section
from deckgen.examples import select_examples
from deckgen.llm.client import ModelRoute
from deckgen.llm.local import LlamaCounter
from deckgen.llm.router import Router

pytestmark = pytest.mark.slow

BRIEF = parse_brief({
    "client": "Harbor Logistics", "industry": "Logistics",
    "opportunity": "Dock appointment scheduling at three port-side distribution centres",
    "notes": "Trucks queue at the gates; appointments are kept in a shared Excel sheet.",
    "contacts": [{"name": "Ana Ruiz", "role": "COO"}, {"name": "Tom Lee", "role": "CIO"}],
    "metrics": {"Average truck wait": "2.5 hours"},
})


@pytest.fixture(scope="module")
def counter(config):
    return LlamaCounter(config.local_model_path)


@pytest.fixture(scope="module")
def local_route(config, local_url, counter):
    client = OpenAI(base_url=local_url, api_key="local", max_retries=0, timeout=300)
    return ModelRoute("local", config.local_model_path.stem, config.local_context, counter,
                      client, "llama.cpp")


def test_token_count_matches_what_the_server_counts(local_route, counter, renderer, specs,
                                                    cases):
    spec = specs["current_state"]
    examples = [s.case for s in select_examples(BRIEF, cases, spec.name)][:1]
    messages = renderer.render_prompt(spec, BRIEF, examples)
    response = local_route.client.chat.completions.create(
        model=local_route.model, messages=messages, max_tokens=4, temperature=0)
    assert response.usage.prompt_tokens == counter.count(messages)


def test_a_section_from_the_real_model_matches_its_schema(local_route, specs, cases, renderer):
    router = Router(lambda name: local_route, ["local"])
    gen = Generator(specs, cases, renderer, router, temperature=0.2)
    spec = specs["stakeholders"]
    result = generate_section(gen, spec, BRIEF)
    assert result.status == "ok", result.error
    assert result.route == "local"
    assert result.counted_prompt_tokens <= result.budget
    assert result.counted_prompt_tokens + spec.max_completion_tokens <= local_route.context
    # the first call's prompt tokens, as the server counted them, equal our exact count
    if result.attempts == 1:
        assert result.prompt_tokens == result.counted_prompt_tokens
    people = result.content["people"]
    assert spec.min_items <= len(people) <= spec.max_items
    assert all(len(p["cares_about"]) <= 100 for p in people)
    assert len(result.lines) == len(people)


def test_a_dead_self_hosted_route_fails_over_to_the_real_local_model(
        local_route, specs, cases, renderer, fake_openai):
    from deckgen.config import RetryPolicy
    from tests.samples import DOWN, route

    fake_openai.reply(None, *[DOWN] * 3)
    routes = {"self-hosted": route("self-hosted", fake_openai), "local": local_route}
    router = Router(lambda name: routes[name], ["self-hosted", "local"],
                    RetryPolicy(server_retries=1, backoff_initial=0.01, backoff_max=0.02))
    gen = Generator(specs, cases, renderer, router, temperature=0.2)
    result = generate_section(gen, specs["current_state"], BRIEF)
    assert result.route == "local" and result.status == "ok", result.error
    assert [f["route"] for f in result.failovers] == ["self-hosted"]
    assert len(fake_openai.requests) == 2
