"""Where in the brief each item of a section comes from: a few words copied exactly from the
brief, for the slide's speaker notes, so a rep checks a claim at a glance.

Each brief sentence (a notes sentence, the opportunity, a metric as "key: value", a contact
as "name, role", a fact) is scored against the item by BM25-weighted word and figure
overlap; the best one is cut to the window of at most `WINDOW` words holding its matches."""

from __future__ import annotations

import math
import re
from typing import Any

from deckgen.brief import Brief
from deckgen.grounding.injection import injection_passages
from deckgen.grounding.names import key

WINDOW = 12
MIN_WORDS = 4
_WORD = re.compile(r"\S+")
_TERM = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+(?:[’'][^\W_]+)?")
_CLAUSE = re.compile(r"[^\n.;!?]+(?:[.;!?](?=\s|$))?|[^\n]+", re.MULTILINE)
_STOP = frozenset(
    "a an and are as at be by for from has have in is it its of on or our that the their them "
    "they this to was we were will with not no but so than then into over per each all any "
    "can more most less only also very across up out via".split())


def brief_texts(brief: Brief) -> list[str]:
    """The brief as the prompt shows it, one text per field entry: what snippets are cut
    from."""
    return [t for t in (brief.client, brief.industry, brief.opportunity, brief.notes,
                        *(f"{c.name}, {c.role}" if c.role else c.name for c in brief.contacts),
                        *(f"{k}: {v}" for k, v in brief.metrics.items()), *brief.facts) if t]


def _stem(word: str) -> str:
    w = key(word)
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


def _terms(text: str) -> list[str]:
    """Stemmed words and numbers as written ("23", "1.2", "31")."""
    words = [_stem(m.group(0)) for m in _TERM.finditer(text)]
    return [w for w in words if w not in _STOP]


def _windows(brief: Brief) -> list[tuple[str, int, int]]:
    """(text, start, end) of each clause of the brief, injected instructions left out."""
    injected = injection_passages(brief)
    out = []
    for text in brief_texts(brief):
        for m in _CLAUSE.finditer(text):
            clause = m.group(0)
            stripped = clause.strip(" -\t")
            if len(_WORD.findall(stripped)) == 0 or any(stripped in p for p in injected):
                continue
            start = m.start() + clause.index(stripped)
            out.append((text, start, start + len(stripped)))
    return out


def _item_text(item: Any) -> str:
    if isinstance(item, dict):
        return " ".join(str(v) for v in item.values() if isinstance(v, str))
    return str(item)


def _cut(text: str, start: int, end: int, wanted: set[str]) -> str:
    """The shortest run of words in text[start:end] holding as many wanted terms as the
    best window of WINDOW words does, widened to at least MIN_WORDS words."""
    words = [(m.start() + start, m.end() + start) for m in _WORD.finditer(text[start:end])]
    hits = [bool(set(_terms(text[a:b])) & wanted) for a, b in words]
    best, best_span = -1, (0, min(len(words), WINDOW) - 1)
    for i in range(len(words)):
        for j in range(i, min(len(words), i + WINDOW)):
            if not hits[i] or not hits[j]:
                continue
            score = sum(hits[i:j + 1]) * 100 - (j - i)
            if score > best:
                best, best_span = score, (i, j)
    i, j = best_span
    while j - i + 1 < MIN_WORDS and (i > 0 or j < len(words) - 1):
        if j < len(words) - 1:
            j += 1
        else:
            i -= 1
    a, b = words[i][0], words[j][1]
    snippet = text[a:b]
    return snippet.rstrip(",;:.") or snippet


def sources(content: dict[str, Any], brief: Brief, list_key: str | None = None
            ) -> list[list[str]]:
    """For each item of the section, one or two snippets copied exactly from the brief
    (see `brief_texts`) that support it, best first. Every item gets at least one."""
    items = content.get(list_key) if list_key else next(
        (v for k, v in content.items() if k != "title" and isinstance(v, list)), [])
    windows = _windows(brief)
    if not windows:
        return [[] for _ in items or []]
    docs = [set(_terms(text[a:b])) for text, a, b in windows]
    df: dict[str, int] = {}
    for d in docs:
        for t in d:
            df[t] = df.get(t, 0) + 1
    n = len(docs)
    out: list[list[str]] = []
    for item in items or []:
        wanted = set(_terms(_item_text(item)))
        scored = []
        for idx, d in enumerate(docs):
            common = wanted & d
            score = sum(math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in common)
            # a short clause that is all match beats a long one that mentions it in passing
            score /= 1 + 0.02 * len(d)
            scored.append((score, -idx, common))
        scored.sort(reverse=True)
        top = scored[0][0]
        snippets: list[str] = []
        covered: set[str] = set()
        for score, neg_idx, common in scored[:5]:
            if snippets and (score < 0.5 * top or not common - covered or score <= 0):
                continue
            text, a, b = windows[-neg_idx]
            snippet = _cut(text, a, b, common)
            if snippet not in snippets:
                snippets.append(snippet)
                covered |= common
            if len(snippets) == 2:
                break
        out.append(snippets)
    return out
