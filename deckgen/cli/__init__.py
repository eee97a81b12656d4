"""The command line: `deckgen generate BRIEF.json --out deck.pptx`.

A thin shell over the core, a module per family of commands: `generate` (a deck from a
brief), `evaluate` (eval, replay, dataset export), `service` (serve, keys, jobs,
schedules). Each registers its own subcommands. Errors a user can cause print one line and
exit 2. Everything heavy (openai, Flask, Google's client, the model) is imported inside the
command that needs it, so `deckgen --help` starts fast."""

from __future__ import annotations

import argparse
import sys

from deckgen.cli import evaluate, generate, service
from deckgen.errors import DeckgenError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deckgen", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    generate.add_parser(sub)
    evaluate.add_parsers(sub)
    service.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from deckgen.config import Config

        config = Config.from_env()
        return int(args.run(args, config))
    except DeckgenError as exc:
        print(f"deckgen: error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deckgen: interrupted", file=sys.stderr)
        return 130
