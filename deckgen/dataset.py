"""Fine-tuning data: chat-format rows (system, user, assistant) built with exactly the prompt
the router sends, so training and serving match.

Rows come from the solved cases: each case's brief is prompted with the other cases as its
few-shot examples (fitted to the self-hosted model's budget, as at serving time), and its
finished section is the assistant turn. They also come from generations people reviewed
(`reviewed_rows`): the prompt that was sent, and as the answer either what deckgen wrote
(kept) or what the person made of it (edited, parsed back into the section's format; an
edit that no longer fits the format is counted and left out). Rows are deduplicated; a
case (or a brief) goes wholly to the training or the held-out split (by a hash of its id, so
the split is stable); client and contact names can be masked."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deckgen.brief import Brief
from deckgen.budget import TokenCounter, fit_budget
from deckgen.deck import Generator
from deckgen.examples import Case, select_examples
from deckgen.sections import SectionSpec, parse_output


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
    return replacer(names)


def replacer(names: dict[str, str]) -> Callable[[str], str]:
    """Replaces each whole-word name with its placeholder, longest names first."""
    if not names:
        return lambda text: text
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


def parse_edited(spec: SectionSpec, text: str) -> list[Any] | None:
    """A section body as a person left it, back into items: one paragraph per item; object
    items are read with the section's line format ("{name}, {role}: {cares_about}")."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not spec.item_fields:
        return lines
    pattern = ""
    for literal, name, _, _ in string.Formatter().parse(spec.line):
        pattern += re.escape(literal)
        if name:
            pattern += f"(?P<{name}>.+?)"
    items = []
    for line in lines:
        match = re.fullmatch(pattern, line)
        if not match:
            return None
        items.append({k: v.strip() for k, v in match.groupdict().items()})
    return items


def _prompt_names(messages: list[dict[str, str]]) -> list[str]:
    """The client and contact names in the brief turn of a stored prompt, for masking."""
    brief = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    names = re.findall(r"^Client: (.+)$", brief, re.MULTILINE)
    names += re.findall(r"^- ([^,\n]+)(?:,|$)", brief.split("Facts:")[0], re.MULTILINE)
    return names


def reviewed_rows(reviewed: list[dict[str, Any]], specs: dict[str, SectionSpec],
                  mask_clients: bool = False) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Training rows from reviewed generations (Store.reviewed_generations): kept text
    as written, edited text as the person left it. Returns the rows and what was skipped."""
    by_generation: dict[str, dict[str, dict[str, Any]]] = {}
    for row in reviewed:
        by_generation.setdefault(row["id"], {})[row["part"]] = row
    rows, skipped = [], {"edited_off_format": 0, "unknown_section": 0}
    for parts in by_generation.values():
        body, title = parts.get("body"), parts.get("title")
        g = body or title
        assert g is not None
        spec = specs.get(g["section"])
        if spec is None or body is None:
            skipped["unknown_section"] += spec is None
            continue
        messages = json.loads(g["prompt"])
        messages = messages[: g["prompt_base_turns"] or len(messages)]
        answer = dict(json.loads(g["output"]))
        edited = any(p["state"] == "edited" for p in parts.values())
        if title is not None and title["state"] == "edited":
            answer["title"] = " ".join(str(title["text"]).split())
        if body["state"] == "edited":
            items = parse_edited(spec, str(body["text"] or ""))
            answer[spec.list_key] = items
            if items is None or parse_output(spec, json.dumps(answer))[0] is None:
                skipped["edited_off_format"] += 1
                continue
        messages = [*messages, {"role": "assistant",
                                "content": json.dumps(answer, ensure_ascii=False)}]
        if mask_clients:
            mask = replacer({n: f"[NAME_{i}]" for i, n in
                             enumerate(dict.fromkeys(_prompt_names(messages)), 1)})
            messages = [{**m, "content": mask(m["content"])} for m in messages]
        rows.append({"messages": messages, "meta": {
            "source": "edited" if edited else "kept", "case": g["brief_hash"],
            "section": spec.name, "generation": g["id"], "reviewed_at": g["reviewed_at"]}})
    return rows, skipped


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

