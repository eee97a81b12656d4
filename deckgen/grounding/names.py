"""Proper names and dates in prose: people, companies, products and systems, months and
quarters.

A heuristic, not a statistical model (spaCy's English models are not on PyPI, and a tagger
trained on news knows nothing of "Netcracker" or "Temenos T24" anyway). A capitalised word
is evidence of a name only where capitals carry meaning: not at the start of a sentence, not
in a Title Case headline, and not when the word is ordinary vocabulary (it is seen in lower
case in the solved cases or the brief). Words shaped like products (ALLCAPS, CamelCase,
letters with digits) always count. Known names from other clients' cases are found by
`deckgen.grounding.guard` independently of this, whatever this module says."""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

TOKEN = re.compile(r"[^\W\d_][\w]*(?:[’'&.][\w]+)*|(?<![\d.,])\d+[A-Za-z]+\w*")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;(\[\"“‘•*–—\n]|\s-)\s*$")
_JOIN = re.compile(r"[ \t]+(?:&[ \t]+)?")
CONNECTORS = frozenset({"de", "van", "der", "von", "la", "le", "du", "del", "da", "of", "&"})
HONORIFICS = frozenset({"dr", "mr", "mrs", "ms", "prof", "sir", "rn", "md", "phd", "jr", "sr",
                        "councilmember", "councillor", "cllr", "st"})
ORG_SUFFIXES = frozenset(
    "inc ltd llc plc gmbh ag sa nv bv corp corporation company co group holdings partners "
    "bank mutual insurance telecom airlines airways air foods power light energy utilities "
    "university college hospital clinic therapeutics pharma pharmaceuticals logistics freight "
    "components home motors systems technologies labs council city county".split())
# acronyms any business deck uses without the brief spelling them out
GENERIC_ACRONYMS = frozenset(
    "ai ml it hr ceo cfo coo cio cto cmo cno cco cro cdo cpo ciso vp svp evp kpi kpis roi api "
    "apis sla slas faq ux ui qa mvp poc b2b b2c smb sme smes pmo erp crm bi etl okr okrs gdpr "
    "eu us uk usa q&a rfp rfq tco fte ftes id ids pdf pdfs csv sql saas ok nps csat dso dpo "
    "sop sops eta etas am pm i nlp llm llms genai rpa iot ocr gis ehr emr gmp gxp api "
    "ops devops mlops".split())
MONTHS = {m[:3]: m for m in (
    "january february march april may june july august september october november "
    "december").split()}
_MONTH = re.compile(
    r"\b(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May(?=\s+\d)|June?|July?|"
    r"Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\b\.?")
_PERIOD = re.compile(r"\b(?:Q[1-4]|H[12]|FY\s?'?\d{2,4})\b|\b\d{1,2}:\d{2}\b|"
                     r"\b(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day\b")


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int
    key: str  # see `key`


def key(word: str) -> str:
    """How a word is compared: lower case, no possessive, no trailing dot."""
    w = word.lower().rstrip(".")
    if w.endswith(("'s", "’s")):
        return w[:-2]
    return w


def tokens(text: str) -> list[Token]:
    """Words, hyphenated ones split ("Salesforce-based" is "Salesforce" and "based")."""
    return [Token(m.group(0), m.start(), m.end(), key(m.group(0))) for m in TOKEN.finditer(text)]


def keys(text: str) -> set[str]:
    return {t.key for t in tokens(text)}


def lower_words(texts: Iterable[str]) -> set[str]:
    """Words seen written in lower case: ordinary vocabulary, not names."""
    return {t.key for text in texts for t in tokens(text) if t.text.islower()}


def product_shaped(word: str) -> bool:
    """ALLCAPS ("EVS"), CamelCase ("NetSuite", "eBay"), letters with digits ("T24")."""
    if word.islower() and word.isalpha():
        return False
    w = word.rstrip(".")
    if key(w) in GENERIC_ACRONYMS or key(w).rstrip("s") in GENERIC_ACRONYMS:
        return False
    letters = [c for c in w if c.isalpha()]
    if len(letters) >= 2 and all(c.isupper() for c in letters):
        return True
    if any(c.isdigit() for c in w) and letters:
        return True
    return any(a.islower() and b.isupper() for a, b in zip(w, w[1:], strict=False))


def capitalised(word: str) -> bool:
    return word[:1].isupper()


def title_case(text: str) -> bool:
    """A headline in Title Case, where capitals say nothing about names."""
    words = [w for w in re.findall(r"[A-Za-z]+", text) if len(w) >= 4]
    return len(words) >= 3 and sum(w[0].isupper() for w in words) >= 0.7 * len(words)


def at_sentence_start(text: str, start: int) -> bool:
    return bool(_SENTENCE_START.search(text[max(0, start - 4):start]))


@dataclass(frozen=True)
class Name:
    """A run of capitalised words holding at least one name-like word."""

    text: str
    start: int
    end: int
    words: tuple[str, ...]  # the keys of its name-like words, the ones that must be sourced
    kind: str  # person | org | product


def names(text: str, *vocabularies: AbstractSet[str]) -> list[Name]:
    """The proper names in `text`. `vocabularies` hold the ordinary (lower-case) words."""
    vocabulary = _Union(vocabularies)
    toks = tokens(text)
    headline = title_case(text)
    out: list[Name] = []
    run: list[Token] = []

    def name_like(t: Token) -> bool:
        if product_shaped(t.text):
            return True
        if not capitalised(t.text) or len(t.key) < 2 or t.key in GENERIC_ACRONYMS or \
                t.key in HONORIFICS:
            return False
        if headline or at_sentence_start(text, t.start):
            return False
        return t.key not in vocabulary and t.key.capitalize() not in _MONTH_NAMES

    def close() -> None:
        while run and run[-1].key in CONNECTORS:
            run.pop()
        flagged = tuple(t.key for t in run if name_like(t))
        if flagged:
            span = text[run[0].start:run[-1].end]
            out.append(Name(span, run[0].start, run[-1].end, flagged, _kind(run, flagged)))
        run.clear()

    for t in toks:
        gap = text[run[-1].end:t.start] if run else ""
        joined = bool(run) and (_JOIN.fullmatch(gap) is not None or (
            run[-1].key in HONORIFICS and re.fullmatch(r"\.[ \t]+", gap) is not None))
        # "Bank of Ireland", "Head of Sales", but "Ana Ruiz of Acme" is two names
        if run and t.key == "of" and run[-1].key not in vocabulary and \
                run[-1].key not in ORG_SUFFIXES:
            joined = False
        if run and not joined:
            close()
        if capitalised(t.text) or (run and t.key in CONNECTORS) or product_shaped(t.text):
            if not run and t.key in CONNECTORS:
                continue
            run.append(t)
        elif run:
            close()
    close()
    return out


class _Union:
    """Membership in any of several sets, without building their union."""

    def __init__(self, sets: tuple[AbstractSet[str], ...]) -> None:
        self.sets = sets

    def __contains__(self, word: object) -> bool:
        return any(word in s for s in self.sets)


_MONTH_NAMES = frozenset(m.capitalize() for m in MONTHS.values()) | frozenset(
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split())


def _kind(run: list[Token], flagged: tuple[str, ...]) -> str:
    if run[-1].key in ORG_SUFFIXES and len(run) > 1:
        return "org"
    if any(product_shaped(t.text) for t in run):
        return "product"
    words = [t for t in run if t.key not in CONNECTORS and t.key not in HONORIFICS]
    if len(words) in (2, 3) and len(flagged) >= 1 and all(t.text[:1].isupper() for t in words):
        return "person"
    return "product"


def dates(text: str) -> list[tuple[str, int, int]]:
    """Months, weekdays, quarters, halves, fiscal years and clock times (years are numbers,
    see `numbers`)."""
    out = [(m.group(0), m.start(), m.end()) for m in _MONTH.finditer(text)]
    out += [(m.group(0), m.start(), m.end()) for m in _PERIOD.finditer(text)]
    return sorted(out, key=lambda d: d[1])


def date_key(text: str) -> str:
    w = re.sub(r"[\s'.]", "", text.lower())
    return MONTHS.get(w[:3], w) if w[:3] in MONTHS and w.isalpha() else w
