"""Solved cases (examples/cases/*.yaml) and choosing which of them to show the model.

Selection is Okapi BM25 over the brief's text (industry, opportunity, notes, metrics, roles).
Why BM25 and not embeddings: briefs that resemble each other share concrete vocabulary
(systems such as "SAP" or "EDI", pains such as "claims backlog", industry words), BM25
rewards exactly those rare shared terms over common ones and normalises for long notes, and
it runs offline, deterministically, in well under a millisecond for a few dozen cases. The
cases are few, so the whole index is rebuilt per call; no state to keep fresh."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deckgen.brief import Brief, parse_brief
from deckgen.errors import ConfigError, DeckgenError
from deckgen.sections import SectionSpec, parse_output

_WORD = re.compile(r"[a-z0-9][a-z0-9&+-]*")
_STOP = frozenset(
    "a an and are as at be by for from has have in is it its of on or our that the their "
    "them they this to was we were will with they're it's not no but so than then".split()
)
K1, B = 1.5, 0.75


@dataclass(frozen=True)
class Case:
    id: str
    brief: Brief
    sections: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Scored:
    case: Case
    score: float


def load_cases(examples_dir: Path, specs: dict[str, SectionSpec]) -> list[Case]:
    """Every case, validated against the brief rules and each section's schema, so a case
    that would teach the model a wrong shape fails here, loudly, not in a prompt."""
    cases = []
    for path in sorted((examples_dir / "cases").glob("*.yaml")):
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            brief = parse_brief(raw["brief"])
            sections = raw["sections"]
        except (yaml.YAMLError, KeyError, TypeError, DeckgenError) as exc:
            raise ConfigError(f"example case {path.name} is malformed: {exc}") from None
        for name, spec in specs.items():
            if name not in sections:
                continue  # a case may lack a newer section; it is then not used for it
            content, problems = parse_output(spec, json.dumps(sections[name]))
            if content is None:
                raise ConfigError(f"example case {path.name}, section {name}: {problems[0]}")
            sections[name] = content
        cases.append(Case(str(raw.get("id", path.stem)), brief, sections))
    return cases


def tokenize(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1]


def select_examples(
    brief: Brief, cases: list[Case], section: str, exclude: str | None = None
) -> list[Scored]:
    """Cases that have `section`, most similar to the brief first (ties keep file order).
    `exclude` leaves one case out, for evaluating a case against the others."""
    pool = [c for c in cases if section in c.sections and c.id != exclude]
    if not pool:
        return []
    docs = [Counter(tokenize(c.brief.search_text())) for c in pool]
    lengths = [sum(d.values()) for d in docs]
    avg_len = sum(lengths) / len(lengths) or 1.0
    df: Counter[str] = Counter()
    for d in docs:
        df.update(d.keys())
    n = len(docs)
    query = set(tokenize(brief.search_text()))
    scored = []
    for case, doc, length in zip(pool, docs, lengths, strict=True):
        score = 0.0
        for term in query:
            tf = doc.get(term)
            if not tf:
                continue
            idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
            score += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / avg_len))
        scored.append(Scored(case, score))
    return sorted(scored, key=lambda s: -s.score)
