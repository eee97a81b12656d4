"""Fitting a 100 KB brief in the prompt layout the embedded route sends (the shared layout,
one whole example, llama.cpp's own vocabulary, a 4,096-token context): five sections, cold
(a fresh counter) and warm (another 100 KB brief fitted first), median of 7. bench/run.py's
section 5 measures the few-shot `turns` layout of the other routes.

    .venv/bin/python bench/fit_shared.py
"""

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from run import MAX_NOTES_BYTES, generator_on  # noqa: E402

from deckgen import budget  # noqa: E402
from deckgen.brief import parse_brief  # noqa: E402
from deckgen.config import Config  # noqa: E402
from deckgen.examples import select_examples  # noqa: E402
from deckgen.llm.local import LlamaCounter  # noqa: E402

LINES = ("Discovery call: dispatch rebuilds the plan in Excel each morning because the TMS "
         "plan is stale; carriers miss slots, detention fees grow at the DCs. ",
         "Site visit: the yard has 40 doors, gate check-in takes 12 minutes, and drivers "
         "wait for paper bills of lading before unloading. ")


def main() -> None:
    config = Config.from_env({})
    gen = generator_on("http://127.0.0.1:9/v1")
    specs = list(gen.specs.values())
    pool = [c for c in gen.cases if all(n in c.sections for n in gen.specs)]

    def brief_of(line: str):
        notes = (line * (MAX_NOTES_BYTES // len(line) + 1))[:MAX_NOTES_BYTES]
        brief = parse_brief({"client": "Harbor Logistics", "industry": "Logistics",
                             "notes": notes})
        return brief, {s.name: [c.case for c in select_examples(brief, pool, s.name)][:1]
                       for s in specs}

    measured, other = brief_of(LINES[0]), brief_of(LINES[1])

    def fit_deck(counter: LlamaCounter, brief_examples) -> list[int]:
        brief, examples = brief_examples
        return [budget.fit_budget(
            lambda ex, b, spec=spec: gen.renderer.render_shared(spec, b, ex, specs), brief,
            examples[spec.name], counter,
            min(spec.max_prompt_tokens, 4096 - spec.max_completion_tokens)).prompt_tokens
            for spec in specs]

    cold: list[float] = []
    warm: list[float] = []
    tokens: list[int] = []
    for _ in range(7):
        counter = LlamaCounter(config.local_model_path)
        start = time.perf_counter()
        tokens = fit_deck(counter, measured)
        cold.append(time.perf_counter() - start)
        counter = LlamaCounter(config.local_model_path)
        fit_deck(counter, other)
        start = time.perf_counter()
        fit_deck(counter, measured)
        warm.append(time.perf_counter() - start)
    print(f"shared layout, local vocabulary, context 4096: cold median "
          f"{1000 * statistics.median(cold):.1f} ms, warm median "
          f"{1000 * statistics.median(warm):.1f} ms; prompt tokens {min(tokens)}-{max(tokens)}")


if __name__ == "__main__":
    main()
