"""Decks under rate limiting: half of all model requests answered 429 with retry-after.

    .venv/bin/python bench/rate_limits.py [--decks 10] [--retry-after 0.5]

Runs DECKS five-section decks against a fake OpenAI-compatible server on 127.0.0.1 that
answers every other request with HTTP 429 rate_limit_exceeded and a retry-after header,
and prints per-deck completion, retries and the time spent waiting."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openai import OpenAI  # noqa: E402

from deckgen.brief import load_brief  # noqa: E402
from deckgen.budget import TiktokenCounter  # noqa: E402
from deckgen.config import Config  # noqa: E402
from deckgen.deck import Generator, generate_deck  # noqa: E402
from deckgen.examples import load_cases  # noqa: E402
from deckgen.llm.client import ModelRoute  # noqa: E402
from deckgen.llm.router import Router  # noqa: E402
from deckgen.prompts import PromptRenderer  # noqa: E402
from deckgen.sections import load_specs  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decks", type=int, default=10)
    parser.add_argument("--retry-after", type=float, default=0.5)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    config = Config.from_env({})
    specs = load_specs(config.prompts_dir)
    server = FakeOpenAI().start()
    limited = {"status": 429, "code": "rate_limit_exceeded", "message": "Rate limit reached",
               "headers": {"retry-after": str(args.retry_after)}}
    server.reply(None, *[limited, {"delay": 0}] * (args.decks * 5 * 2))
    client = OpenAI(base_url=server.url, api_key="bench", max_retries=0)
    route = ModelRoute("openai", "gpt-4o", 128000, TiktokenCounter("gpt-4o"), client, "openai")
    router = Router(lambda name: route, ["openai"], config.retry)
    gen = Generator(specs, load_cases(config.examples_dir, specs),
                    PromptRenderer(config.prompts_dir), router)
    brief = load_brief((ROOT / "examples/briefs/harbor-logistics.json").read_text())

    print("| deck | complete | requests | 429s retried | waited (s) | wall (s) |")
    print("| ---: | :---: | ---: | ---: | ---: | ---: |")
    totals = [0, 0, 0.0, 0.0]
    start_all = time.monotonic()
    for i in range(args.decks):
        before = len(server.requests)
        start = time.monotonic()
        deck = generate_deck(gen, brief, list(specs.values()))
        wall = time.monotonic() - start
        retries = sum(s.retries for s in deck.sections)
        waited = sum(s.wait_seconds for s in deck.sections)
        requests = len(server.requests) - before
        totals = [totals[0] + requests, totals[1] + retries, totals[2] + waited,
                  totals[3] + wall]
        print(f"| {i + 1} | {'yes' if deck.ok else 'NO'} | {requests} | {retries} | "
              f"{waited:.2f} | {wall:.2f} |")
    print(f"| all | | {totals[0]} | {totals[1]} ({totals[1] / totals[0]:.0%} of requests) | "
          f"{totals[2]:.2f} | {time.monotonic() - start_all:.2f} |")
    server.stop()


if __name__ == "__main__":
    main()
