"""Fine-tuning data: chat-format rows (system, user, assistant) built with exactly the prompt
the router sends, so training and serving match.

Rows come from the solved cases: each case's brief is prompted with the other cases as its
few-shot examples (fitted to the self-hosted model's budget, as at serving time), and its
finished section is the assistant turn. Rows are deduplicated; a case goes wholly to the
training or the held-out split (by a hash of its id, so the split is stable); client and
contact names can be masked."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deckgen.brief import Brief
from deckgen.budget import TokenCounter, fit_budget
from deckgen.deck import Generator
from deckgen.examples import Case, select_examples
from deckgen.sections import SectionSpec


def name_masker(cases: list[Case]) -> Callable[[str], str]:
    """Stable placeholders for every case's client and contact names (few-shot turns carry
    other cases' names, so masking one case at a time would not be enough)."""
    names: dict[str, str] = {}
    for case in cases:
        names.setdefault(case.brief.client, f"[CLIENT_{len(names) + 1}]")
    people = [c.name for case in cases for c in case.brief.contacts]
    for i, person in enumerate(dict.fromkeys(people), start=1):
        names.setdefault(person, f"[PERSON_{i}]")
        for part in person.split():
            if len(part) > 2 and part[0].isupper() and part.rstrip(".") not in names:
                names[part] = f"[PERSON_{i}]"
    pattern = re.compile("|".join(rf"(?<!\w){re.escape(n)}(?!\w)"
                                  for n in sorted(names, key=len, reverse=True)))
    return lambda text: pattern.sub(lambda m: names[m.group(0)], text)


def _render(gen: Generator, spec: SectionSpec, examples: list[Case],
            brief: Brief) -> list[dict[str, str]]:
    return gen.renderer.render_prompt(spec, brief, examples)


def case_rows(gen: Generator, counter: TokenCounter, context: int,
              mask_clients: bool = False) -> list[dict[str, Any]]:
    rows = []
    mask = name_masker(gen.cases) if mask_clients else None
    for case in gen.cases:
        for spec in gen.specs.values():
            if spec.name not in case.sections:
                continue
            examples = [s.case for s in select_examples(case.brief, gen.cases, spec.name,
                                                        exclude=case.id)]
            budget = min(spec.max_prompt_tokens, context - spec.max_completion_tokens)
            fit = fit_budget(functools.partial(_render, gen, spec), case.brief, examples,
                             counter, budget)
            answer = json.dumps(case.sections[spec.name], ensure_ascii=False)
            messages = [*fit.messages, {"role": "assistant", "content": answer}]
            if mask:
                messages = [{**m, "content": mask(m["content"])} for m in messages]
            rows.append({"messages": messages,
                         "meta": {"source": "examples", "case": case.id, "section": spec.name,
                                  "prompt_tokens": fit.prompt_tokens}})
    return rows


def heldout(case_id: str, fraction: float) -> bool:
    bucket = int(hashlib.sha256(case_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < fraction


def export(rows: list[dict[str, Any]], out: Path, heldout_fraction: float) -> dict[str, int]:
    """Write `out` (training) and `<out>.heldout.jsonl`; returns the counts."""
    seen: set[str] = set()
    train: list[dict[str, Any]] = []
    test: list[dict[str, Any]] = []
    for row in rows:
        key = hashlib.sha256(json.dumps(row["messages"], sort_keys=True).encode()).hexdigest()
        if key in seen:
            continue
        seen.add(key)
        (test if heldout(row["meta"]["case"], heldout_fraction) else train).append(row)
    out.parent.mkdir(parents=True, exist_ok=True)
    held = out.with_suffix(".heldout.jsonl")
    for path, part in ((out, train), (held, test)):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part))
    return {"train": len(train), "heldout": len(test), "duplicates": len(rows) - len(seen)}

