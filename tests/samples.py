"""Data and helpers that several test modules share: the briefs they fill decks from, a
DeckContent with made-up but well-formed sections for writer tests (every section at its
spec's minimum item count, each text tagged so a test can tell two fills apart), a
GPT-4-length answer, the test PostgreSQL server and a route to a fake model server."""

from openai import OpenAI

from deckgen.brief import parse_brief
from deckgen.budget import TiktokenCounter
from deckgen.content import DeckContent, SectionResult
from deckgen.llm.client import ModelRoute

BRIEF = parse_brief({"client": "Harbor Logistics", "opportunity": "Dock scheduling"})
# a brief with every kind of field, for the core and the fitting tests
FULL_BRIEF = parse_brief({
    "client": "Harbor Logistics", "industry": "Logistics",
    "opportunity": "Dock appointment scheduling",
    "notes": "Trucks queue for hours at the gates; appointments live in a shared Excel.",
    "contacts": [{"name": "Ana Ruiz", "role": "COO"}, {"name": "Tom Lee", "role": "CIO"}],
    "metrics": {"Average truck wait": "2.5 hours"},
})
# a brief as a request body carries it, for the service and scheduler tests
REQUEST_BRIEF = {"client": "Harbor Logistics", "industry": "Logistics", "notes": "Trucks queue."}
PG = "postgresql://postgres@127.0.0.1:5432/test"
# what an overloaded model server answers
DOWN = {"status": 503, "code": "server_error", "message": "overloaded"}


def route(name, server, timeout=10.0, context=8192):
    """A route to a fake OpenAI-compatible server, without the client's own retries."""
    client = OpenAI(base_url=server.url, api_key="k", max_retries=0, timeout=timeout)
    return ModelRoute(name, f"{name}-model", context, TiktokenCounter("gpt-4o"), client,
                      "json_schema")


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


PROSE = ("Regional depots reconcile stock by hand every night so planners see yesterday's "
         "inventory reorder late and lose margin while customers wait for confirmed dates "
         "across every lane the network serves").split()


def _filled(limit, seed):
    """Text of nearly `limit` characters, cut at a word, different for each seed."""
    words = PROSE[seed % len(PROSE):] + PROSE * 4
    text = ""
    for word in words:
        if len(text) + len(word) + 1 > limit:
            break
        text = f"{text} {word}".strip()
    return text


def long_answer(spec, seed=0):
    """The answer a GPT-4-class model tends to give: every item allowed, each at its full
    length (what a box must be fitted against), as the JSON content a model returns."""
    import json

    if spec.item_fields:
        items = [{f: _filled(n, seed + i + j) for j, (f, n) in enumerate(spec.item_fields.items())}
                 for i in range(spec.max_items)]
    else:
        items = [_filled(spec.item_chars, seed + i) for i in range(spec.max_items)]
    return json.dumps({"title": _filled(spec.title_chars, seed), spec.list_key: items})
