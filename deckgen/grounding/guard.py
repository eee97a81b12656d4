"""The grounding guard: which claims of a generated section the brief does not support.

A claim is a figure, a date, a proper name (person, organisation, product) or text lifted from
an injected instruction. Each is checked against what the brief says (client, industry,
opportunity, notes, contacts, metrics, facts) and the section's own instructions, with
figures normalised (see `numbers`). Independently of the extractor, every name that another
client's solved case holds and this brief does not is caught: those are the leaks a few-shot
prompt invites. Pure: no I/O, no model; `Grounding` is built once from the cases.
Repairing or flagging a section once its claims are known is repair.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from deckgen.brief import Brief
from deckgen.examples import Case
from deckgen.grounding.injection import free_texts, injection_passages, payload
from deckgen.grounding.names import (
    CONNECTORS,
    GENERIC_ACRONYMS,
    HONORIFICS,
    ORG_SUFFIXES,
    capitalised,
    date_key,
    dates,
    key,
    keys,
    lower_words,
    names,
    product_shaped,
    tokens,
)
from deckgen.grounding.numbers import Quantity, quantities, same
from deckgen.grounding.repair import drop_items, mark, mark_claims
from deckgen.sections import SectionSpec

__all__ = ["INJECTED", "NGRAM", "NOT_IN_BRIEF", "Claim", "Grounding", "drop_items",
           "foreign_reason", "mark", "mark_claims"]

NOT_IN_BRIEF = "not in the brief"
INJECTED = "lifted from an instruction-like passage of the brief"
NGRAM = 4
_VIEWS_KEPT = 64


@dataclass(frozen=True)
class Claim:
    """A claim the brief does not support. `item` is the item's index, -1 for the title;
    `text` is the claim exactly as the section writes it."""

    text: str
    kind: str  # person | org | number | date | product | injection
    item: int
    reason: str  # NOT_IN_BRIEF | "from another client's case (<id>)" | INJECTED


def foreign_reason(case_ids: list[str]) -> str:
    return f"from another client's case ({', '.join(sorted(case_ids)[:3])})"


@dataclass
class _Found:
    text: str
    kind: str
    start: int
    end: int
    reason: str
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class _View:
    """What one brief (with one section's instructions) offers as sources."""

    words: frozenset[str]
    vocabulary: frozenset[str]
    quantities: tuple[Quantity, ...]
    dates: frozenset[str]
    payload: frozenset[str]
    payload_numbers: tuple[Quantity, ...]
    ngrams: frozenset[tuple[str, ...]]


def _person_words(name: str) -> list[str]:
    """The words of a contact's name that identify them ("Dr. Erik Lindqvist" -> erik,
    lindqvist; "Angela Brooks, RN" -> angela, brooks)."""
    head = name.split(",")[0]
    return [t.key for t in tokens(head) if t.key not in HONORIFICS and t.key not in CONNECTORS]


def _texts(content: dict[str, Any]) -> Iterator[tuple[int, str, str]]:
    """(item index, field name, text) of every string in a section's content."""
    title = content.get("title")
    if isinstance(title, str):
        yield -1, "title", title
    items = next((v for k, v in content.items() if k != "title" and isinstance(v, list)), [])
    for i, item in enumerate(items):
        if isinstance(item, str):
            yield i, "", item
        elif isinstance(item, dict):
            for name, value in item.items():
                if isinstance(value, str):
                    yield i, str(name), value


def _known(word: str, words: frozenset[str]) -> bool:
    """Whether the sources hold `word`, singular or plural ("KAM" and "KAMs")."""
    return word in words or f"{word}s" in words or (word.endswith("s") and word[:-1] in words)


def _ngrams(words: list[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + NGRAM]) for i in range(len(words) - NGRAM + 1)}


@dataclass
class Grounding:
    """Built once from all solved cases (`from_cases`); `check` is then called per section."""

    vocabulary: frozenset[str] = field(repr=False)
    # distinctive word -> (kind, ids of the cases that hold it)
    foreign_words: dict[str, tuple[str, frozenset[str]]] = field(repr=False)
    foreign_numbers: list[tuple[Quantity, str]] = field(repr=False)
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)
    # indexes of the briefs and instructions seen last (five sections share one brief)
    _views: dict[Any, tuple[Brief, _View]] = field(default_factory=dict, repr=False)
    _instructions: dict[Any, _View] = field(default_factory=dict, repr=False)

    @classmethod
    def from_cases(cls, cases: list[Case]) -> Grounding:
        """Index every case's brief and reference sections: words seen in lower case are
        ordinary vocabulary; contacts' names, clients, product and system names (words never
        seen in lower case, or shaped like products) and figures are that case's facts,
        foreign to every other client."""
        texts = [t for c in cases for t in _case_texts(c)]
        vocabulary = frozenset(lower_words(texts))
        words: dict[str, tuple[str, set[str]]] = {}

        def add(word: str, kind: str, case_id: str) -> None:
            if len(word) < 2 or word in vocabulary or word in GENERIC_ACRONYMS or \
                    word in HONORIFICS or word in CONNECTORS or word in ORG_SUFFIXES:
                return
            old_kind, ids = words.setdefault(word, (kind, set()))
            ids.add(case_id)
            if old_kind == "product" and kind != "product":
                words[word] = (kind, ids)

        numbers: list[tuple[Quantity, str]] = []
        for case in cases:
            for contact in case.brief.contacts:
                for w in _person_words(contact.name):
                    add(w, "person", case.id)
            for t in tokens(case.brief.client):
                add(t.key, "org", case.id)
            for text in _case_texts(case):
                for n in names(text, vocabulary):
                    for w in n.words:
                        add(w, "org" if n.kind == "org" else "product", case.id)
                for t in tokens(text):  # sentence-initial and headline names too
                    if product_shaped(t.text):
                        add(t.key, "product", case.id)
                numbers += [(q, case.id) for q in quantities(text)
                            if not q.generic and (q.unit or q.value >= 10)]
        foreign = {w: (k, frozenset(ids)) for w, (k, ids) in words.items()}
        pattern = None
        if foreign:
            alternatives = "|".join(re.escape(w) for w in sorted(foreign, key=len, reverse=True))
            pattern = re.compile(rf"(?<![\w])(?:{alternatives})(?:['’]s)?(?![\w])",
                                 re.IGNORECASE)
        return cls(vocabulary, foreign, numbers, pattern)

    def _brief_view(self, brief: Brief) -> _View:
        cached = self._views.get(id(brief))
        if cached is not None and cached[0] is brief:
            return cached[1]
        passages = injection_passages(brief)
        clean = []
        for text in [brief.client, *(c.name for c in brief.contacts), *free_texts(brief)]:
            for passage in passages:
                text = text.replace(passage, " ")
            clean.append(text)
        view = _source(clean)
        words = set(view.words).union(*(_person_words(c.name) for c in brief.contacts))
        view = replace(
            view, words=frozenset(words),
            payload=frozenset(payload(passages, words)),
            payload_numbers=tuple(q for p in passages for q in quantities(p)
                                  if not any(same(q, f) for f in view.quantities)),
            ngrams=frozenset(set().union(*(_ngrams([t.key for t in tokens(p)])
                                           for p in passages)) - view.ngrams))
        _remember(self._views, id(brief), (brief, view))
        return view

    def _instructions_view(self, instructions: str) -> _View:
        view = self._instructions.get(instructions)
        if view is None:
            view = _source([instructions])
            _remember(self._instructions, instructions, view)
        return view

    def _view(self, brief: Brief, instructions: str) -> _View:
        """What the brief and the instructions support; the payload of injected passages
        less what the instructions themselves say."""
        b, i = self._brief_view(brief), self._instructions_view(instructions)
        return _View(words=b.words | i.words, vocabulary=b.vocabulary | i.vocabulary,
                     quantities=b.quantities + i.quantities, dates=b.dates | i.dates,
                     payload=b.payload - i.words,
                     payload_numbers=tuple(q for q in b.payload_numbers
                                           if not any(same(q, f) for f in i.quantities)),
                     ngrams=b.ngrams - i.ngrams)

    def check(self, content: dict[str, Any], brief: Brief, spec: SectionSpec,
              exclude_case: str | None = None, instructions: str = "") -> list[Claim]:
        """The claims in `content` that neither the brief nor the section's instructions
        (`instructions`: the system prompt, where the caller has it; the spec's label is
        always allowed) support, in the order they appear. Facts of the case
        `exclude_case` are not counted as another client's."""
        view = self._view(brief, f"{instructions}\n{spec.label}")
        claims: list[Claim] = []
        for item, field_name, text in _texts(content):
            found = self._numbers(text, view, exclude_case)
            found += [_Found(d, "date", s, e, NOT_IN_BRIEF) for d, s, e in dates(text)
                      if date_key(d) not in view.dates]
            if field_name == "name":
                missing = [w for w in _person_words(text) if not _known(w, view.words)]
                if missing:
                    found.append(_Found(text.strip(), "person", 0, len(text), NOT_IN_BRIEF,
                                        tuple(missing)))
            else:
                found += [_Found(n.text, n.kind, n.start, n.end, NOT_IN_BRIEF,
                                 tuple(w for w in n.words if not _known(w, view.words)))
                          for n in names(text, self.vocabulary, view.vocabulary)
                          if any(not _known(w, view.words) for w in n.words)]
            found = self._foreign_names(text, view, found, exclude_case)
            found += _lifted(text, view, found)
            seen: set[str] = set()
            for f in sorted(found, key=lambda f: f.start):
                if f.text not in seen:
                    seen.add(f.text)
                    claims.append(Claim(f.text, f.kind, item, f.reason))
        return claims

    def _numbers(self, text: str, view: _View, exclude: str | None) -> list[_Found]:
        out = []
        for q in quantities(text):
            if q.generic or any(same(q, s) for s in view.quantities):
                continue
            kind = "date" if q.is_year else "number"
            if any(same(q, p) for p in view.payload_numbers):
                out.append(_Found(q.text, "injection", q.start, q.end, INJECTED))
                continue
            ids = sorted({cid for f, cid in self.foreign_numbers
                          if cid != exclude and same(q, f) and (q.unit or q.value >= 10)})
            reason = foreign_reason(ids) if ids else NOT_IN_BRIEF
            out.append(_Found(q.text, kind, q.start, q.end, reason))
        return out

    def _foreign_names(self, text: str, view: _View, found: list[_Found],
                       exclude: str | None) -> list[_Found]:
        """Attribute found names to other clients' cases, and add every known foreign name
        the extractor missed (adjacent ones merged: "Claire Vandamme" is one claim)."""
        if self._pattern is None:
            return found
        hits: list[_Found] = []
        for m in self._pattern.finditer(text):
            word = key(m.group(0))
            kind, ids = self.foreign_words[word]
            ids = ids - {exclude} if exclude else ids
            if _known(word, view.words) or not ids:
                continue
            if not capitalised(m.group(0)) and (kind == "product" or word in view.vocabulary):
                continue  # "epic effort" is not Epic the EHR
            owner = next((f for f in found if f.start <= m.start() < f.end), None)
            if owner is not None:
                if owner.reason == NOT_IN_BRIEF:
                    owner.reason = foreign_reason(list(ids))
                    owner.kind = kind if owner.kind != "person" else owner.kind
                continue
            last = hits[-1] if hits else None
            if last and last.kind == kind and re.fullmatch(
                    r"[\s&]*(?:(?:de|van|der|von|of)\s+)?", text[last.end:m.start()]):
                last.text, last.end = text[last.start:m.end()], m.end()
                continue
            hits.append(_Found(m.group(0), kind, m.start(), m.end(), foreign_reason(list(ids))))
        return found + hits


def _source(texts: list[str]) -> _View:
    """The index of some source texts; `ngrams` holds all their word 4-grams."""
    return _View(
        words=frozenset(set().union(*(keys(t) for t in texts))),
        vocabulary=frozenset(lower_words(texts)),
        quantities=tuple(q for t in texts for q in quantities(t)),
        dates=frozenset(date_key(d) for t in texts for d, _, _ in dates(t)),
        payload=frozenset(), payload_numbers=(),
        ngrams=frozenset(set().union(*(_ngrams([t.key for t in tokens(t)]) for t in texts))))


def _remember(cache: dict[Any, Any], key_: Any, value: Any) -> None:
    """Keep the latest `_VIEWS_KEPT` entries. Sections are checked from several threads: a
    lost race only costs an index rebuilt."""
    if len(cache) >= _VIEWS_KEPT:
        try:
            cache.pop(next(iter(cache)), None)
        except (StopIteration, RuntimeError):
            pass
    cache[key_] = value


def _lifted(text: str, view: _View, found: list[_Found]) -> list[_Found]:
    """Words and phrases of the content that only an injected instruction holds."""
    if not view.payload and not view.ngrams:
        return []
    out = []
    toks = tokens(text)
    for t in toks:
        if t.key not in view.payload:
            continue
        owner = next((f for f in found if f.start <= t.start < f.end), None)
        if owner is None:
            out.append(_Found(t.text, "injection", t.start, t.end, INJECTED))
        else:  # the extractor saw a name; it is the injected word
            owner.kind, owner.reason = "injection", INJECTED
    low = text.lower()
    for phrase in view.payload:
        if " " in phrase and phrase in low:
            i = low.index(phrase)
            out.append(_Found(text[i:i + len(phrase)], "injection", i, i + len(phrase), INJECTED))
    for i in range(len(toks) - NGRAM + 1):
        gram = tuple(t.key for t in toks[i:i + NGRAM])
        if gram in view.ngrams:
            start, end = toks[i].start, toks[i + NGRAM - 1].end
            out.append(_Found(text[start:end], "injection", start, end, INJECTED))
    return out


def _case_texts(case: Case) -> list[str]:
    texts = [case.brief.client, *(c.name for c in case.brief.contacts), *free_texts(case.brief)]
    for content in case.sections.values():
        texts += [t for _, _, t in _texts(content)]
    return [t for t in texts if t]
