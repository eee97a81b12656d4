"""The core against a real OpenAI-compatible HTTP server (tests/fake_openai.py)."""

import json

from deckgen.deck import generate_deck, generate_section
from tests.samples import FULL_BRIEF as BRIEF

GOOD = json.dumps({"title": "Trucks wait 2.5 hours", "bullets": ["a", "b", "c"]})


def test_every_section_lands_with_route_model_and_tokens(fake_generator, fake_openai, specs):
    deck = generate_deck(fake_generator, BRIEF, list(specs.values()))
    assert deck.ok
    assert [s.section for s in deck.sections] == list(specs)
    for result in deck.sections:
        assert result.route == "self-hosted" and result.model == "deckgen-test"
        assert result.prompt_tokens > 0 and result.attempts == 1
        assert len(result.lines) == specs[result.section].min_items
        assert result.counted_prompt_tokens <= result.budget
    assert len(fake_openai.requests) == 5


def test_sections_are_requested_concurrently(fake_generator, fake_openai, specs):
    for name in specs:
        fake_openai.reply(name, {"delay": 0.5})
    generate_deck(fake_generator, BRIEF, list(specs.values()))
    assert fake_openai.max_in_flight == len(specs)


def test_the_request_carries_schema_examples_and_the_fenced_brief(fake_generator, fake_openai,
                                                                  specs):
    generate_section(fake_generator, specs["stakeholders"], BRIEF)
    body = fake_openai.requests[0]
    assert body["response_format"]["json_schema"]["schema"] == \
        specs["stakeholders"].json_schema()
    assert body["max_tokens"] == specs["stakeholders"].max_completion_tokens
    roles = [m["role"] for m in body["messages"]]
    assert roles[0] == "system" and roles[-1] == "user"
    assert roles.count("assistant") == roles.count("user") - 1 >= 1
    assert "<<<\nTrucks queue for hours" in body["messages"][-1]["content"]


def test_an_invalid_answer_is_repaired_once(fake_generator, fake_openai, specs):
    fake_openai.reply("current_state", '{"title": "T", "bullets": ["only one"]}', GOOD)
    result = generate_section(fake_generator, specs["current_state"], BRIEF)
    assert result.status == "ok" and result.repaired and result.attempts == 2
    assert result.lines == ["a", "b", "c"]
    repair = fake_openai.requests[1]["messages"]
    assert repair[-2] == {"role": "assistant",
                          "content": '{"title": "T", "bullets": ["only one"]}'}
    assert "bullets" in repair[-1]["content"] and "too short" in repair[-1]["content"]


def test_a_section_that_stays_invalid_fails_alone(fake_generator, fake_openai, specs):
    fake_openai.reply("data", "not json", "still not json")
    deck = generate_deck(fake_generator, BRIEF, list(specs.values()))
    failed = [s for s in deck.sections if s.status == "failed"]
    assert [s.section for s in failed] == ["data"]
    assert failed[0].error["code"] == "invalid_model_output"
    assert "after one repair" in failed[0].error["message"]
    assert failed[0].attempts == 2
    assert sum(s.status == "ok" for s in deck.sections) == 4


def test_a_server_error_fails_the_section_with_a_clear_message(fake_generator, fake_openai,
                                                               specs):
    fake_openai.reply("skills", *[{"status": 500, "code": "server_error", "message": "boom"}] * 3)
    result = generate_section(fake_generator, specs["skills"], BRIEF)
    assert result.status == "failed"
    assert result.error["code"] == "model_error"
    assert "no route could serve skills" in result.error["message"]
    assert "HTTP 500" in result.error["message"] and "boom" in result.error["message"]


def test_cached_prompt_tokens_the_server_reports_are_counted_and_priced(fake_generator,
                                                                        fake_openai, specs):
    from deckgen.prices import cost_usd

    first = generate_deck(fake_generator, BRIEF, list(specs.values()))
    again = generate_deck(fake_generator, BRIEF, list(specs.values()))
    # the fake caches like OpenAI: nothing the first time, the shared prefix the second
    assert all(s.cached_tokens == 0 for s in first.sections)
    for s in again.sections:
        assert 1024 <= s.cached_tokens <= s.prompt_tokens, s.section
        assert (s.cached_tokens - 1024) % 128 == 0
    price = (2.50, 10.00, 1.25)
    cost = [sum(cost_usd(price, s.prompt_tokens, s.completion_tokens, s.cached_tokens)
                for s in d.sections) for d in (first, again)]
    assert cost[1] < cost[0]
    assert cost_usd((2.50, 10.00), 2000, 0, 1024) == cost_usd((2.50, 10.00), 2000, 0)


def test_in_the_shared_layout_one_section_warms_the_cache_for_the_others(fake_generator,
                                                                         fake_openai, specs):
    from dataclasses import replace

    gen = replace(fake_generator, layouts={"self-hosted": "shared"},
                  shared_examples={"self-hosted": 2})
    for name in specs:
        fake_openai.reply(name, {"delay": 0.3})
    deck = generate_deck(gen, BRIEF, list(specs.values()), "self-hosted")
    assert deck.ok
    first, *others = deck.sections
    # the first went alone; the other four together, after it was answered
    assert fake_openai.max_in_flight == len(specs) - 1
    assert fake_openai.times[1] - fake_openai.times[0] >= 0.3
    assert first.cached_tokens == 0
    for s in others:  # they found its prefix: the rules, the examples, the brief
        assert s.cached_tokens >= 1024 and s.prompt_tokens - s.cached_tokens < 400, s.section
    # every prompt starts the same way, byte for byte, up to the section's own task
    prompts = [b["messages"] for b in fake_openai.requests]
    assert all(p[:-1] == prompts[0][:-1] for p in prompts)
