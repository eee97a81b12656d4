"""Lines used / available per section in its template box, before and after the fit step.

    .venv/bin/python bench/fit_report.py [--route mock|local] [--template pptx|slides]
                                         [--pptx-template PATH]

For each brief in examples/briefs the deck is generated twice: once without boxes (what the
model writes unconstrained, measured in the box it would land in) and once fitted to the
template's boxes, reporting the first answer (written to the box's limits) and the final
text (after the shorten turn and trimming, when they were needed).

- `mock`: a GPT-4-length model on 127.0.0.1. Its first answer fills every limit of the
  section spec, ignoring the box's limits (the worst case); asked to shorten, it fills the
  limits of the schema in that request, as a compliant model does.
- `local`: the embedded SmolLM2 on llama.cpp (about a minute a deck on 2 cores).
- `pptx`: deckgen's default template (Arial 18pt, 11.9 x 4.5 in bodies), or the .pptx given
  with --pptx-template (e.g. one of tests/templates/corpus.py's, written by
  scripts/make_template_corpus.py); the "where" column says where each box was found (box,
  placeholder, cell, group, inline) and its size comes from the template's inheritance;
  `slides`: the realistic Slides template of the tests (Roboto 16pt, 4.4 x 3.5 in halves)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deckgen.boxes import Box, measure  # noqa: E402
from deckgen.brief import load_brief  # noqa: E402
from deckgen.config import Config  # noqa: E402
from deckgen.container import make_generator  # noqa: E402
from deckgen.deck import DeckContent, generate_deck  # noqa: E402
from deckgen.llm.router import Router  # noqa: E402
from deckgen.writers.marks import check_pptx_template, check_slides_template  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402
from tests.samples import long_answer  # noqa: E402
from tests.slides_fixtures import realistic_template  # noqa: E402


def gpt4_length(gen: Any) -> FakeOpenAI:
    server = FakeOpenAI().start()

    def reply(body: dict[str, Any]) -> str:
        schema = body["response_format"]["json_schema"]
        if "too long for its box" in body["messages"][-1]["content"]:
            return json.dumps(_fill(schema["schema"]))
        return long_answer(gen.specs[schema["name"]])

    for name in gen.specs:
        server.reply(name, *({"dynamic": reply} for _ in range(100)))
    return server


def _fill(schema: dict[str, Any]) -> Any:
    """Every limit of the requested schema filled: max items, each at its max length."""
    kind = schema.get("type")
    if kind == "object":
        return {k: _fill(v) for k, v in schema["properties"].items()}
    if kind == "array":
        return [_fill(schema["items"]) for _ in range(schema["maxItems"])]
    words, text = ("plan dock slot carrier wait cost margin team data " * 40).split(), ""
    for word in words:
        if len(text) + len(word) + 1 > schema["maxLength"]:
            break
        text = f"{text} {word}".strip()
    return text


def measured(deck: DeckContent, boxes: dict[str, Box]) -> dict[str, str]:
    return {s.section: str(measure(boxes[s.section], s.lines, s.leads))
            for s in deck.sections if s.content and s.section in boxes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--route", choices=("mock", "local"), default="mock")
    parser.add_argument("--template", choices=("pptx", "slides"), default="pptx")
    parser.add_argument("--pptx-template", type=Path, default=None)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    names = list(make_generator(Config.from_env({}),
                                Router.from_config(Config.from_env({}))).specs)
    check = check_pptx_template(args.pptx_template, names) if args.template == "pptx" \
        else check_slides_template(realistic_template(), names)
    boxes, where = check.boxes, check.where
    env: dict[str, str] = {}
    server = None
    if args.route == "mock":
        probe = make_generator(Config.from_env({}), Router.from_config(Config.from_env({})))
        server = gpt4_length(probe)
        # served on the self-hosted route, which sends the whole schema (length limits too)
        env = {"DECKGEN_SELF_HOSTED_URL": server.url,
               "DECKGEN_SELF_HOSTED_MODEL": "gpt4-length-mock"}
    config = Config.from_env(env)
    router = Router.from_config(config)
    route = "self-hosted" if args.route == "mock" else "local"
    gen = make_generator(config, router)
    print(f"# Fit to the box: route {args.route}, template {args.template}\n")
    for line in check.unknown:
        print(f"- unknown token {line}")
    print("| brief | section | where | box | unfitted | first answer | final | headline: first "
          "-> final | what the fit did |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    try:
        for path in sorted((ROOT / "examples" / "briefs").glob("*.json")):
            brief = load_brief(path.read_text(encoding="utf-8"), str(path))
            specs = [gen.specs[n] for n in check.sections_marked]
            loose = measured(generate_deck(gen, brief, specs, route), boxes)
            fitted = generate_deck(gen, brief, specs, route, boxes=boxes)
            for s in fitted.sections:
                box, fit = boxes.get(s.section), s.fit or {}
                if box is None or "lines_used" not in fit:
                    why = "not measured (speaker notes)" if box is None else f"failed: {s.error}"
                    print(f"| {path.stem} | {s.section} | {where.get(s.section, '-')} | | | "
                          f"{why} | | | |")
                    continue
                did = [w for w, on in (("shortened", fit["shortened"]),
                                       (f"{fit['items_dropped']} item(s) dropped",
                                        fit["items_dropped"]),
                                       ("OVERFLOWS", fit["overflows"])) if on] or ["-"]
                if fit.get("title", {}).get("overflows"):
                    did.append("headline OVERFLOWS")
                size = f"{box.font} {box.size:g}pt, {box.width / 72:.1f}x{box.height / 72:.1f} in"
                head = fit.get("title")
                head_cell = f"{head['first_answer']} -> {head['lines_used']}/" \
                    f"{head['lines_available']}" if head else "-"
                print(f"| {path.stem} | {s.section} | {where.get(s.section, '-')} | {size} | "
                      f"{loose.get(s.section, '-')} | "
                      f"{fit['first_answer']} | {fit['lines_used']}/{fit['lines_available']} | "
                      f"{head_cell} | {', '.join(did)} |", flush=True)
    finally:
        router.close()
        if server:
            server.stop()


if __name__ == "__main__":
    main()
