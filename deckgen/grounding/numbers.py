"""Figures in prose, normalised so that one figure matches however it is written:
"2.5 hours" = "two and a half hours" = "150 minutes", "$1.2M" = "1,200,000",
"37%" = "37 percent", "three" = 3, "8-10%" = 8% and 10%.

Hand-written rather than a library: `word2number` and `number-parser` read spelled numbers but
not units, currencies, ranges or "k/M/bn" suffixes, and a deck's figures are a small, regular
language (a count, a share, an amount, a duration)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_SMALL = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * (i + 2) for i, w in enumerate(
    "twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_NUMBER_WORDS = {*_SMALL, *_TENS, *_SCALES, "hundred", "dozen", "half", "twice"}
_SUFFIX = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "mm": 1e6, "million": 1e6,
           "b": 1e9, "bn": 1e9, "billion": 1e9, "tn": 1e12, "trillion": 1e12}
_CURRENCY = {"€": "EUR", "$": "USD", "us$": "USD", "£": "GBP", "eur": "EUR", "usd": "USD",
             "gbp": "GBP", "euro": "EUR", "euros": "EUR", "dollar": "USD", "dollars": "USD",
             "pound": "GBP", "pounds": "GBP"}
# durations compare in hours, so "48 hours" = "2 days" and "12 months" = "1 year"
_HOURS = {"minute": 1 / 60, "min": 1 / 60, "hour": 1.0, "hr": 1.0, "h": 1.0, "day": 24.0,
          "week": 168.0, "wk": 168.0, "month": 730.0, "mo": 730.0, "year": 8760.0,
          "yr": 8760.0}

_DIGITS = re.compile(
    r"(?<![\w.,/])(?P<cur>US\$|[€$£]|(?:EUR|USD|GBP)\s?)?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?![\w/]*\d)(?!/)"
    r"(?P<suffix>\s?(?:k|K|m|M|mn|MM|bn|b|B|tn)\b|\s(?:thousand|million|billion|trillion)\b)?")
_WORD = re.compile(r"[A-Za-z]+")
_UNIT = re.compile(
    r"\s?(?:-\s?)?(?:(?:business|working|calendar|school|full|extra|more|fewer|additional|"
    r"person|man|fte)[\s-])?"
    r"(?P<unit>%|percent\b|per\s?cent\b|pct\b|x\b|times\b|-?fold\b|"
    r"minutes?\b|mins?\b|hours?\b|hrs?\b|h\b|days?\b|weeks?\b|wks?\b|months?\b|mos?\b|"
    r"years?\b|yrs?\b|euros?\b|dollars?\b|pounds?\b|EUR\b|USD\b|GBP\b)", re.IGNORECASE)
_RANGE = re.compile(r"^\s?(?:[-–]|to)\s?$")
_SAFE = re.compile(r"\b24/7\b|\b360(?=[-\s]?(?:degree|°))")
# "Phase 1", "Wave 2": a name for a step, not a figure
_LABEL = re.compile(r"\b(?:phase|step|stage|wave|sprint|tier|level|option|horizon|release|"
                    r"pillar|workstream|track|priority|gate|milestone)\s+$", re.IGNORECASE)


@dataclass(frozen=True)
class Quantity:
    """One figure in a text: its value (a duration in hours), its unit ("%", "x", "EUR",
    "USD", "GBP", "hour", or None for a bare count) and where it stands in the text."""

    value: float
    unit: str | None
    text: str
    start: int
    end: int
    spelled: bool = False
    number: float | None = None  # the number as written: 15 in "15 days" (value 360 hours)

    @property
    def written(self) -> float:
        return self.value if self.number is None else self.number

    @property
    def is_year(self) -> bool:
        return (self.unit is None and self.text.isdigit() and len(self.text) == 4
                and 1900 <= self.value <= 2100)

    @property
    def generic(self) -> bool:
        """A spelled-out count under ten with no unit ("three systems", "one team"): too
        common to be a claim of its own."""
        return self.spelled and self.unit is None and self.value < 10


def _unit(word: str) -> tuple[str, float]:
    """A unit as written -> (normalised unit, factor to multiply the value by)."""
    w = re.sub(r"[\s-]", "", word.lower())
    if w in ("%", "pct") or w.startswith("per"):
        return "%", 1.0
    if w in ("x", "times") or w.endswith("fold"):
        return "x", 1.0
    if w in _CURRENCY:
        return _CURRENCY[w], 1.0
    base = w[:-1] if w.endswith("s") and w[:-1] in _HOURS else w
    return "hour", _HOURS[base]


def _spelled_value(words: list[str]) -> float:
    total, current = 0.0, 0.0
    for word in words:
        if word == "half":
            current = current + 0.5 if current else 0.5
        elif word == "dozen":
            current = (current or 1) * 12
        elif word == "twice":
            current += 2
        elif word == "hundred":
            current = (current or 1) * 100
        elif word in _SCALES:
            total += (current or 1) * _SCALES[word]
            current = 0.0
        elif word in _SMALL:
            current += _SMALL[word]
        elif word in _TENS:
            current += _TENS[word]
    return total + current


def _spelled(text: str) -> list[tuple[int, int, float, bool]]:
    """Runs of number words: "two and a half", "forty-two", "a dozen", "three hundred".
    Returns (start, end, value, is_multiple) per run; "twice" is a multiple."""
    words = [(m.start(), m.end(), m.group(0).lower()) for m in _WORD.finditer(text)]
    runs: list[tuple[int, int, float, bool]] = []
    i = 0
    while i < len(words):
        start, _, word = words[i]
        if word == "a" and i + 1 < len(words) and words[i + 1][2] == "dozen":
            i += 1
            word = "dozen"
        if word not in _NUMBER_WORDS or word == "half":
            i += 1
            continue
        run, end, j = [word], words[i][1], i + 1
        pos = end  # end of the last word read, a connector ("and", "a") included
        while j < len(words) and re.fullmatch(r"[\s-]+", text[pos:words[j][0]] or "x"):
            w = words[j][2]
            after = [x[2] for x in words[j + 1:j + 3]]
            if w in _NUMBER_WORDS and w != "twice":
                run.append(w)
                end = words[j][1]
            elif not ((w == "and" and (after == ["a", "half"] or run[-1] in ("hundred", *_SCALES)))
                      or (w == "a" and after[:1] == ["half"])):
                break
            pos, j = words[j][1], j + 1
        runs.append((start, end, _spelled_value(run), run == ["twice"]))
        i = j
    return runs


def quantities(text: str) -> list[Quantity]:
    """Every figure in `text`, in order. A range's first figure takes the second's unit
    ("8-10%" gives 8% and 10%; "3 to 5 days" gives 3 and 5 days)."""
    raw: list[tuple[int, int, float, str | None, bool]] = []
    safe = [m.span() for m in _SAFE.finditer(text)]
    for m in _DIGITS.finditer(text):
        if any(a <= m.start() < b for a, b in safe):
            continue
        value = float(m.group("num").replace(",", ""))
        before = text[max(0, m.start() - 20):m.start()]
        if value < 20 and not m.group("cur") and _LABEL.search(before):
            continue
        unit = _CURRENCY[m.group("cur").strip().lower()] if m.group("cur") else None
        end = m.end()
        suffix = (m.group("suffix") or "").strip()
        # a lone "15m" is as likely minutes or metres as millions: only money takes it
        if suffix and (suffix not in ("m", "b") or unit):
            value *= _SUFFIX[suffix.lower()]
        elif suffix:
            end = m.end("num")
        raw.append((m.start(), end, value, unit, False))
    for start, end, value, multiple in _spelled(text):
        raw.append((start, end, value, "x" if multiple else None, True))
    raw.sort()
    out: list[Quantity] = []
    factors: list[float] = []
    for start, end, value, unit, spelled in raw:
        factor = 1.0
        u = None if unit else _UNIT.match(text, end)
        if u:
            unit, factor = _unit(u.group("unit"))
            end = u.end()
        out.append(Quantity(value * factor, unit, text[start:end], start, end, spelled, value))
        factors.append(factor)
    for i in range(len(out) - 1):
        a, b = out[i], out[i + 1]
        if a.unit is None and b.unit and _RANGE.match(text[a.end:b.start]):
            out[i] = Quantity(a.value * factors[i + 1], b.unit, a.text, a.start, a.end,
                              a.spelled, a.value)
    return out


def same(a: Quantity, b: Quantity) -> bool:
    """Whether two figures say the same thing. A share or a multiple only matches its own
    kind; an amount or a duration also matches the bare number ("$1.2M" = "1,200,000")."""
    if a.unit == b.unit:
        return _close(a.value, b.value)
    if a.unit in ("%", "x") or b.unit in ("%", "x") or (a.unit and b.unit):
        return False
    return _close(a.written, b.written)


def _close(x: float, y: float) -> bool:
    return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)
