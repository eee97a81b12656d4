"""The grounding guard (deckgen/grounding) measured on the solved cases.

    .venv/bin/python bench/grounding.py [--repeat N]

(a) False alarms: each case's own reference sections checked against its own brief. They are
    grounded by construction, so every flagged section is a false alarm (target < 2%). Once as
    written, once reworded (the same facts spelled differently, as a model may write them);
    and out of sample, with the index built from the other cases only.
(b) Recall on planted leaks: into each case's sections, plant another case's contact name,
    its company, one of its figures and an invented figure, in four placements (mid-sentence,
    start of an item, the title, lower case), and count how many are caught (target 100%),
    how many are named as another client's, and what else got flagged in the planted sections.
(c) Cost: milliseconds per section for `check()`, with the brief's sources already indexed
    (the generation path checks five sections per brief) and cold (a new brief each time);
    `sources()` per section too.
Also: instruction-like passages found in the cases' briefs (must be none)."""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deckgen.examples import Case, load_cases  # noqa: E402
from deckgen.grounding import (  # noqa: E402
    Claim,
    Grounding,
    Quantity,
    injection_passages,
    quantities,
    same,
    sources,
)
from deckgen.sections import SectionSpec, load_specs  # noqa: E402

INVENTED = ["37%", "€2.4m", "19 days", "4.5 hours", "1,250 orders", "63%", "$870k"]
PLACEMENTS = ("mid", "start", "title", "lower")


def _supported(figure: str, brief_quantities: list[Quantity]) -> bool:
    return any(same(q, b) for q in quantities(figure) for b in brief_quantities)


def _brief_quantities(case: Case) -> list[Quantity]:
    b = case.brief
    texts = [b.opportunity, b.notes, *b.metrics, *b.metrics.values(), *b.facts]
    return [q for t in texts for q in quantities(t)]


def _foreign_figure(other: Case, own: list[Quantity]) -> str | None:
    """A figure with a unit from the other case's metrics that this brief lacks."""
    for value in other.brief.metrics.values():
        for q in quantities(value):
            if q.unit and not any(same(q, b) for b in own):
                return q.text
    return None


_SMALL_WORDS = "zero one two three four five six seven eight nine".split()


def _reword(text: str, headline: bool) -> str:
    """The same facts written differently: "31%" as "31 percent", "€1m" as "€1,000,000",
    small counts in words, a headline in Title Case."""
    text = re.sub(r"(\d)%", r"\1 percent", text)
    text = re.sub(r"([€$£])(\d+(?:\.\d+)?)m\b",
                  lambda m: f"{m.group(1)}{float(m.group(2)) * 1e6:,.0f}", text)
    text = re.sub(r"(?<![\w.,/-])([2-9]) (?=[a-z])", lambda m: f"{_SMALL_WORDS[int(m.group(1))]} ",
                  text)
    if headline:
        text = " ".join(w[:1].upper() + w[1:] if len(w) > 3 else w for w in text.split(" "))
    return text


def _reworded(content: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in content.items():
        if k == "title":
            out[k] = _reword(v, headline=True)
        elif isinstance(v, list):
            out[k] = [_reword(i, False) if isinstance(i, str) else
                      {f: _reword(x, False) for f, x in i.items()} for i in v]
        else:
            out[k] = v
    return out


def _plant(content: dict[str, Any], spec: SectionSpec, placement: str,
           planted: dict[str, str]) -> tuple[dict[str, Any], int]:
    """The content with the planted facts written into one item (or the title); returns
    (content, index of the planted item, -1 for the title)."""
    person, company = planted["person"], planted["company"]
    figures = " and ".join(planted[k] for k in ("figure", "foreign_figure") if k in planted)
    if placement == "lower":
        person, company = person.lower(), company.lower()
    if placement == "start":
        phrase = f"{person} of {company} reported {figures} in the pilot"
    else:
        phrase = f"as {person} of {company} reported, {figures} in the pilot"
    out = {k: (list(v) if isinstance(v, list) else v) for k, v in content.items()}
    if placement == "title":
        out["title"] = f"{out['title']}, {phrase}"
        return out, -1
    items = out[spec.list_key]
    target = 1 if len(items) > 1 else 0
    item = items[target]

    def put(text: str) -> str:
        return f"{phrase}. {text}" if placement == "start" else f"{text.rstrip('.')}, {phrase}"

    if isinstance(item, str):
        items[target] = put(item)
    else:
        item = dict(item)
        field = "name" if "name" in item and placement == "start" else list(item)[-1]
        item[field] = phrase if field == "name" else put(item[field])
        items[target] = item
    return out, target


def _caught(text: str, kind: str, claims: list[Claim], item: int) -> Claim | None:
    """The claim that names the planted text: for a figure, the figure; for a name, a claim
    sharing one of its words ("Osei" for "Dr. Miriam Osei")."""
    low = text.lower()
    words = {w for w in re.findall(r"\w+", low) if len(w) > 2 and w != "dr"}
    for c in claims:
        if c.item != item:
            continue
        claimed = c.text.lower()
        if "figure" in kind and c.kind in ("number", "date") and re.search(
                rf"(?<![\w.,]){re.escape(claimed)}(?![\w])", low):
            return c
        if "figure" not in kind and words & set(re.findall(r"\w+", claimed)):
            return c
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="timing repetitions")
    args = parser.parse_args()
    specs = load_specs(ROOT / "prompts")
    cases = load_cases(ROOT / "examples", specs)
    start = time.perf_counter()
    guard = Grounding.from_cases(cases)
    build_ms = (time.perf_counter() - start) * 1000

    # (a) false alarms
    sections = flagged = flagged_all = flagged_reworded = 0
    alarms: list[str] = []
    for case in cases:
        for name, content in case.sections.items():
            sections += 1
            claims = guard.check(content, case.brief, specs[name], exclude_case=case.id)
            flagged += bool(claims)
            flagged_all += bool(guard.check(content, case.brief, specs[name]))
            alarms += [f"{case.id}/{name}: {c}" for c in claims]
            claims = guard.check(_reworded(content), case.brief, specs[name],
                                 exclude_case=case.id)
            flagged_reworded += bool(claims)
            alarms += [f"{case.id}/{name} (reworded): {c}" for c in claims]

    # (a) again, out of sample: the case is not in the index (its words are not vocabulary)
    flagged_out = 0
    for case in cases:
        held_out = Grounding.from_cases([c for c in cases if c.id != case.id])
        for name, content in case.sections.items():
            for variant in (content, _reworded(content)):
                claims = held_out.check(variant, case.brief, specs[name])
                flagged_out += bool(claims)
                alarms += [f"{case.id}/{name} (held out): {c}" for c in claims]

    # (b) recall on planted leaks
    kinds = ("person", "company", "figure", "foreign_figure")
    planted_n = dict.fromkeys(kinds, 0)
    caught_n = dict.fromkeys(kinds, 0)
    named_n = dict.fromkeys(kinds, 0)
    missed: list[str] = []
    extra = planted_sections = 0
    for i, case in enumerate(cases):
        own = _brief_quantities(case)
        for j, (name, content) in enumerate(case.sections.items()):
            other = cases[(i + 1 + j) % len(cases)]
            if other.id == case.id:
                other = cases[(i + 2 + j) % len(cases)]
            contact = other.brief.contacts[j % len(other.brief.contacts)]
            planted = {"person": contact.name.split(",")[0],
                       "company": other.brief.client,
                       "figure": next(f for f in INVENTED[j:] + INVENTED
                                      if not _supported(f, own))}
            foreign = _foreign_figure(other, own)
            if foreign:
                planted["foreign_figure"] = foreign
            for placement in PLACEMENTS:
                spec = specs[name]
                dirty, item = _plant(content, spec, placement, planted)
                claims = guard.check(dirty, case.brief, spec, exclude_case=case.id)
                planted_sections += 1
                hits = []
                for kind, text in planted.items():
                    planted_n[kind] += 1
                    claim = _caught(text, kind, claims, item)
                    if claim is None:
                        missed.append(f"{case.id}/{name}/{placement}: {kind} {text!r}")
                        continue
                    hits.append(claim)
                    caught_n[kind] += 1
                    named_n[kind] += other.id in claim.reason
                extra += len([c for c in claims if c not in hits])

    # sanity: another client's reference sections against this brief should mostly be flagged
    swapped = swapped_flagged = 0
    for i, case in enumerate(cases):
        other = cases[(i + 1) % len(cases)]
        for name, content in other.sections.items():
            swapped += 1
            swapped_flagged += bool(guard.check(content, case.brief, specs[name]))

    # (c) cost
    pairs = [(case, specs[name], content) for case in cases
             for name, content in case.sections.items()]
    warm: list[float] = []
    cold: list[float] = []
    src: list[float] = []
    for _ in range(args.repeat):
        for case, spec, content in pairs:
            t0 = time.perf_counter()
            guard.check(content, case.brief, spec, exclude_case=case.id)
            warm.append((time.perf_counter() - t0) * 1000)
    for _ in range(max(1, args.repeat // 4)):
        for case, spec, content in pairs:
            fresh = replace(case.brief)  # a new object: nothing indexed for it yet
            t0 = time.perf_counter()
            guard.check(content, fresh, spec, exclude_case=case.id)
            cold.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            sources(content, case.brief)
            src.append((time.perf_counter() - t0) * 1000)

    passages = {c.id: injection_passages(c.brief) for c in cases}

    def pct(n: int, d: int) -> str:
        return f"{n}/{d} ({100 * n / d:.1f}%)" if d else "-"

    print(f"# grounding guard on {len(cases)} solved cases "
          f"(index built in {build_ms:.0f} ms: {len(guard.foreign_words)} foreign names, "
          f"{len(guard.foreign_numbers)} foreign figures)\n")
    print("| measure | result | target |")
    print("| --- | --- | --- |")
    print(f"| (a) reference sections flagged, own case excluded | {pct(flagged, sections)} "
          "| < 2% |")
    print(f"| (a) reference sections flagged, no case excluded | {pct(flagged_all, sections)} "
          "| < 2% |")
    print(f"| (a) reference sections reworded (Title Case headline, '31 percent', "
          f"'€1,000,000', counts in words) flagged | {pct(flagged_reworded, sections)} | < 2% |")
    print(f"| (a) as written and reworded, the case left out of the index | "
          f"{pct(flagged_out, 2 * sections)} | < 2% |")
    for kind in kinds:
        print(f"| (b) planted {kind.replace('_', ' ')} caught | "
              f"{pct(caught_n[kind], planted_n[kind])} | 100% |")
    for kind in ("person", "company", "foreign_figure"):
        print(f"| (b) planted {kind.replace('_', ' ')} named as the other client's | "
              f"{pct(named_n[kind], planted_n[kind])} | - |")
    print(f"| (b) other claims in planted sections (per section) | "
          f"{extra / planted_sections:.2f} | - |")
    print(f"| sanity: the next case's reference sections against this brief, flagged | "
          f"{pct(swapped_flagged, swapped)} | ~100% |")
    print(f"| (c) check() ms/section, brief indexed (median / p95) | "
          f"{statistics.median(warm):.2f} / {sorted(warm)[int(0.95 * len(warm))]:.2f} | - |")
    print(f"| (c) check() ms/section, new brief (median / p95) | "
          f"{statistics.median(cold):.2f} / {sorted(cold)[int(0.95 * len(cold))]:.2f} | - |")
    print(f"| (c) sources() ms/section (median) | {statistics.median(src):.2f} | - |")
    print(f"| instruction-like passages found in the cases' briefs | "
          f"{sum(map(len, passages.values()))} | 0 |")
    if alarms:
        print("\nFalse alarms:\n" + "\n".join(f"- {a}" for a in alarms))
    if missed:
        print("\nMissed:\n" + "\n".join(f"- {m}" for m in missed))


if __name__ == "__main__":
    main()
