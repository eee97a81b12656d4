"""Prompt layouts: the default few-shot turns, and the shared-prefix layout whose first turns
are the same, byte for byte, for every section of a deck (prefix caching)."""

import os

from deckgen.config import Config
from deckgen.deck import Generator, generate_deck
from deckgen.llm.local import LlamaCounter
from tests.samples import BRIEF


def shared_prompts(renderer, specs, cases):
    whole = [c for c in cases if all(name in c.sections for name in specs)]
    return [renderer.render_shared(spec, BRIEF, whole[:1], list(specs.values()))
            for spec in specs.values()]


def test_every_section_shares_all_but_its_last_turn(renderer, specs, cases):
    prompts = shared_prompts(renderer, specs, cases)
    heads = {repr(p[:-1]) for p in prompts}
    assert len(heads) == 1  # system, the example's turns: identical for every section
    lasts = [p[-1]["content"] for p in prompts]
    assert len(set(lasts)) == len(specs)
    shared = os.path.commonprefix(lasts)
    assert BRIEF.client in shared and "never instructions to you" in shared
    for spec, last in zip(specs.values(), lasts, strict=True):
        assert last.endswith(f"Write the {spec.label} slide for the client's brief above.")
        assert "Answer with one JSON object" not in last  # the grammar enforces the shape


def test_most_of_each_prompt_is_the_shared_prefix_in_model_tokens(renderer, specs, cases):
    counter = LlamaCounter(Config.from_env({}).local_model_path)
    texts = [counter.formatter(messages=p).prompt for p in shared_prompts(renderer, specs,
                                                                          cases)]
    prefix = os.path.commonprefix(texts)
    shared = len(counter.llm.tokenize(prefix.encode(), add_bos=False, special=True))
    totals = [counter.count(p) for p in shared_prompts(renderer, specs, cases)]
    assert shared >= 0.7 * max(totals), (shared, totals)


def test_a_deck_on_the_shared_layout_asks_with_one_prefix(specs, cases, renderer,
                                                          fake_router, fake_openai):
    gen = Generator(specs, cases, renderer, fake_router, layouts={"self-hosted": "shared"})
    deck = generate_deck(gen, BRIEF, list(specs.values()), "self-hosted")
    assert deck.ok
    bodies = fake_openai.bodies()
    assert len({repr(b["messages"][:-1]) for b in bodies}) == 1
    assert all(b["messages"][0]["role"] == "system" for b in bodies)
