"""A DeckContent with made-up but well-formed sections, for writer tests: every section at
its spec's minimum item count, each text tagged so a test can tell two fills apart."""

from deckgen.brief import parse_brief
from deckgen.deck import DeckContent, SectionResult

BRIEF = parse_brief({"client": "Harbor Logistics", "opportunity": "Dock scheduling"})


def sample_deck(specs, *, tag="v1", only=None, failed=()):
    results = []
    for spec in specs.values():
        if only and spec.name not in only:
            continue
        if spec.name in failed:
            results.append(SectionResult(spec.name, spec.label, status="failed",
                                         error={"code": "x", "message": "x"}))
            continue
        content = {"title": f"{spec.label} {tag}", spec.list_key: [
            {f: f"{f} {i} {tag}" for f in spec.item_fields} if spec.item_fields
            else f"{spec.name} point {i} {tag}" for i in range(spec.min_items)]}
        results.append(SectionResult(spec.name, spec.label, content=content,
                                     lines=spec.lines(content), leads=spec.leads(content)))
    return DeckContent(BRIEF, results, 0.0)
