"""Prompt tokens, cached tokens and cost per deck, per route and prompt layout (issue 20).

Every solved case's brief (examples/cases/, leave-one-out) becomes a deck through deckgen's
real generator, on the OpenAI route, against the fake OpenAI server (tests/fake_openai.py).
(The self-hosted route renders the same prompts and, for a model tiktoken does not know,
counts them with the same o200k encoding: its figures are these, its cache the vLLM one.)
The prompts deckgen sent are then tokenised exactly (the route's own
tiktoken counter) and run through two prefix caches, in the order a batch sends them:

- OpenAI's, as documented: a prompt of 1,024 tokens or more is served from cache for the
  longest prefix it shares with a prompt answered earlier, in steps of 128 tokens;
- vLLM's automatic prefix caching: whole 16-token blocks of any earlier prompt.

A deck's five sections go out together, so a section finds in the cache only what earlier
decks left there ("concurrent"); "first alone" sends one section first and the other four
once it is answered, so they find its prefix too (a deck then takes two section times).
Cost uses gpt-4o's list prices, US$ 2.50 / 1.25 (cached) / 10.00 per million prompt /
cached / completion tokens; completion tokens are the solved cases' own answers, counted.

    .venv/bin/python bench/prompt_cost.py [--decks 14]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deckgen.config import Config  # noqa: E402
from deckgen.container import make_generator  # noqa: E402
from deckgen.deck import generate_deck  # noqa: E402
from deckgen.llm.router import Router  # noqa: E402
from deckgen.prices import cost_usd  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

GPT4O = (2.50, 10.00, 1.25)


def tokens(route, messages: list[dict[str, str]]) -> list[int]:
    """The prompt as one token sequence: what a prefix cache compares."""
    enc = route.counter.encoding
    out: list[int] = []
    for m in messages:
        out += enc.encode(f"<|{m['role']}|>") + enc.encode(m["content"])
    return out


BLOCK = 16


def blocks(prompt: list[int]) -> list[int]:
    """A hash per whole 16-token block, chained (vLLM's scheme): equal hashes at block i
    mean equal prefixes up to the end of block i."""
    chain, out = 0, []
    for i in range(0, len(prompt) - BLOCK + 1, BLOCK):
        chain = hash((chain, tuple(prompt[i:i + BLOCK])))
        out.append(chain)
    return out


def shared_prefix(prompt: list[int], seen: set[int]) -> int:
    """Tokens of `prompt`'s longest prefix, in whole blocks, some earlier prompt had."""
    n = 0
    for h in blocks(prompt):
        if h not in seen:
            break
        n += BLOCK
    return n


def openai_cached(prompt: list[int], shared: int) -> int:
    return 0 if len(prompt) < 1024 or shared < 1024 else 1024 + (shared - 1024) // 128 * 128


def vllm_cached(prompt: list[int], shared: int) -> int:
    return min(shared, len(prompt) - 1) // BLOCK * BLOCK  # the last token is always computed


def simulate(decks: list[list[list[int]]], cache, first_alone: bool) -> list[int]:
    """Cached tokens per deck when the decks go out in order."""
    seen: set[int] = set()
    cached = []
    for prompts in decks:
        waves = [prompts[:1], prompts[1:]] if first_alone else [prompts]
        total = 0
        for wave in waves:
            total += sum(cache(p, shared_prefix(p, seen)) for p in wave)
            for p in wave:
                seen.update(blocks(p))
        cached.append(total)
    return cached


def completion_tokens(route, cases, specs) -> float:
    enc = route.counter.encoding
    return statistics.mean(
        sum(len(enc.encode(json.dumps(c.sections[s], ensure_ascii=False))) for s in specs)
        for c in cases)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decks", type=int, default=14)
    args = parser.parse_args()
    fake = FakeOpenAI().start()
    env = {"OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": fake.url,
           "DECKGEN_SELF_HOSTED_URL": fake.url, "DECKGEN_SELF_HOSTED_MODEL": "deckgen-7b",
           "DECKGEN_GROUNDING": "0", "DECKGEN_OPENAI_TPM": "off", "DECKGEN_OPENAI_RPM": "off"}
    config = Config.from_env(env)
    router = Router.from_config(config)
    base = make_generator(config, router)
    cases = base.cases[: args.decks]
    print(f"{len(cases)} decks (the solved cases' briefs, leave-one-out), "
          f"{len(base.specs)} sections each\n")
    print("| route | layout | prompt tokens / deck | cached, concurrent (OpenAI / vLLM) | "
          "cached, first alone (OpenAI / vLLM) | uncached / deck, OpenAI (concurrent / first "
          "alone) | cost / deck, gpt-4o US$ (concurrent / first alone) |")
    print("| --- | --- | ---: | --- | --- | --- | --- |")
    try:
        for route_name in ("openai",):
            route = router.route(route_name)
            done = completion_tokens(route, cases, base.specs)
            for layout, examples in (("turns", 0), ("shared", 1), ("shared", 2)):
                gen = replace(base, layouts={route_name: layout},
                              shared_examples={route_name: examples})
                decks = []
                for case in cases:
                    deck = generate_deck(gen, case.brief, list(gen.specs.values()), route_name,
                                         exclude_case=case.id)
                    decks.append([tokens(route, s.prompt_messages) for s in deck.sections])
                sent = statistics.mean(sum(map(len, d)) for d in decks)
                runs = {(name, alone): statistics.mean(simulate(decks, cache, alone))
                        for name, cache in (("openai", openai_cached), ("vllm", vllm_cached))
                        for alone in (False, True)}
                cost = [cost_usd(GPT4O, round(sent), round(done), round(runs["openai", a]))
                        for a in (False, True)]
                label = layout if layout == "turns" else f"shared, {examples} example(s)"
                print(f"| {route_name} | {label} | {sent:,.0f} | "
                      f"{runs['openai', False]:,.0f} / {runs['vllm', False]:,.0f} | "
                      f"{runs['openai', True]:,.0f} / {runs['vllm', True]:,.0f} | "
                      f"{sent - runs['openai', False]:,.0f} / {sent - runs['openai', True]:,.0f} | "
                      f"{cost[0]:.4f} / {cost[1]:.4f} |")
    finally:
        fake.stop()
        router.close()
    print(f"\ncompletion tokens per deck (the solved cases' answers): {done:,.0f}")


if __name__ == "__main__":
    main()
