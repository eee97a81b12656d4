"""Token budgets: counting chat prompts exactly and fitting a prompt under its budget.

Counting is exact for the model at hand: tiktoken with the model's own encoding (plus the
chat format's per-message overhead) for OpenAI models, and the model's own tokenizer and chat
template for llama.cpp (see llm/local.py). tiktoken's encoding files are normally downloaded
on first use; deckgen ships the two it needs (cl100k_base, o200k_base, verified by tiktoken
against their published SHA-256) so counting works offline.

Fit order: drop the least similar examples first (down to one), then trim the brief's notes
with a visible marker, then drop the last example and trim again. Instructions are never cut.
One example is kept as long as it can be, because a prompt with no example is far worse than
one whose notes are cut short.

Counting a whole prompt is the expensive step (a 100 KB brief is ~25,000 tokens), so the
search for the cut counts the notes' text once, piece by piece and only as far as the budget
reaches, and bisects over those counts; only the few candidates it lands on are rendered and
counted whole. The answer is always a real count of the final messages, and it is the same
answer a search counting every step would give: the longest head of the notes that fits,
where one more word would not."""

from __future__ import annotations

import re
import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from deckgen.brief import Brief
from deckgen.errors import BudgetError
from deckgen.examples import Case
from deckgen.llm.tokens import BUNDLED_TIKTOKEN, TiktokenCounter, TokenCounter

__all__ = ["BUNDLED_TIKTOKEN", "Fit", "TiktokenCounter", "TokenCounter", "fit_budget"]

Message = dict[str, str]
TRIM_MARKER = "\n[... notes trimmed to fit: {left} of {total} characters left out ...]"
PIECE_CHARS = 256  # the notes are counted in pieces of about this size, cut at word ends
ROUNDS = 8  # estimate-guided rounds before a plain bisection with whole counts takes over


@dataclass
class Fit:
    messages: list[Message]
    prompt_tokens: int
    budget: int
    examples_used: list[str]
    examples_dropped: list[str] = field(default_factory=list)
    notes_trimmed_chars: int = 0


Render = Callable[[list[Case], Brief], list[Message]]


def trim_notes(notes: str, keep: int) -> tuple[str, int]:
    """The first `keep` characters of the notes, cut at a word boundary, with a marker;
    and how many characters were left out."""
    if keep >= len(notes):
        return notes, 0
    cut = notes[:keep]
    if keep < len(notes) and not notes[keep].isspace():
        space = max(cut.rfind(" "), cut.rfind("\n"))
        cut = cut[:space] if space > 0 else ""  # never end on half a word
    cut = cut.rstrip()
    left = len(notes) - len(cut)
    return cut + TRIM_MARKER.format(left=left, total=len(notes)), left


def _kept(notes: str, keep: int) -> int:
    """How many characters trim_notes(notes, keep) keeps, without building the text."""
    if keep >= len(notes):
        return len(notes)
    end = keep
    if not notes[keep].isspace():
        space = max(notes.rfind(" ", 0, keep), notes.rfind("\n", 0, keep))
        end = space if space > 0 else 0
    while end > 0 and notes[end - 1].isspace():
        end -= 1
    return end


def fit_budget(
    render: Render, brief: Brief, examples: list[Case], counter: TokenCounter, budget: int
) -> Fit:
    """The richest prompt that fits `budget` tokens. `examples` come most similar first."""
    if budget <= 0:
        raise BudgetError("the model's context is smaller than the tokens reserved for the answer")
    # More examples never make a prompt shorter, so the most that fit is found by binary
    # search: a handful of renders instead of one per example. Notes far longer than the
    # whole budget settle it without counting them whole: not even one example fits.
    lo, hi, best = 0, len(examples), None  # invariant: lo examples fit (or lo == 0)
    if examples and brief.notes and _notes_alone_overflow(render, brief, examples, counter,
                                                           budget):
        hi = 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        messages = render(examples[:mid], brief)
        tokens = counter.count(messages)
        if tokens <= budget:
            lo, best = mid, (messages, tokens)
        else:
            hi = mid - 1
    if best is not None:
        return _fit(best[0], best[1], budget, examples, lo, 0)
    for n in ([1, 0] if examples else [0]):
        fit = _trim_to_fit(render, brief, examples, n, counter, budget)
        if fit is not None:
            return fit
    raise BudgetError(
        f"the prompt does not fit in {budget} tokens even with no examples and no notes; "
        "shorten the brief's other fields or use a model with a larger context"
    )


def _fit(messages: list[Message], tokens: int, budget: int, examples: list[Case], n: int,
         trimmed: int) -> Fit:
    return Fit(messages, tokens, budget, [c.id for c in examples[:n]],
               [c.id for c in examples[n:]], trimmed)


def _notes_alone_overflow(render: Render, brief: Brief, examples: list[Case],
                          counter: TokenCounter, budget: int) -> bool:
    """Whether the whole notes clearly cannot fit beside even one example, in a prompt that
    holds them verbatim: the prompt with the notes cut to nothing (counted whole; the trim
    that follows counts it again from the counters' caches) plus the notes' own tokens. The
    margin covers the few tokens that merge across the notes' edges."""
    notes = brief.notes
    if not any(notes in m["content"] for m in render(examples[:1], brief)):
        return False  # a template that reshapes the notes: count whole prompts instead
    marker, _ = trim_notes(notes, 0)
    heads = _heads(counter, notes)
    room = (budget + 16 + budget // 32 + heads.marker_tokens(len(notes))
            - counter.count(render(examples[:1], brief.with_notes(marker))))
    return heads.tokens_of_head(len(notes), room) > room


def _trim_to_fit(render: Render, brief: Brief, examples: list[Case], n: int,
                 counter: TokenCounter, budget: int) -> Fit | None:
    """The longest head of the notes that fits alongside n examples.

    The search runs over `keep` (characters offered to trim_notes). Whole prompts are
    counted only where the estimate lands; the estimate for a head is a counted prompt's
    tokens plus the difference in the notes' own tokens, so it is exact wherever tokens do
    not merge across the cut. Each whole count narrows [lo, hi] for good: lo is a keep whose
    prompt fits, and every keep above hi was counted not to fit."""
    notes = brief.notes
    counted: dict[int, tuple[list[Message], int, int]] = {}  # by kept chars; -1: untrimmed

    def key(keep: int) -> int:
        return -1 if keep >= len(notes) else _kept(notes, keep)

    def attempt(keep: int) -> tuple[list[Message], int, int]:
        k = key(keep)
        if k not in counted:
            text, left = trim_notes(notes, keep) if notes else ("", 0)
            messages = render(examples[:n], brief.with_notes(text))
            counted[k] = (messages, counter.count(messages), left)
        return counted[k]

    if attempt(0)[1] > budget:
        return None
    if not notes:
        messages, tokens, _ = attempt(0)
        return _fit(messages, tokens, budget, examples, n, 0)
    heads = _heads(counter, notes)

    def marker(k: int) -> int:
        return 0 if k == -1 else heads.marker_tokens(len(notes) - k)

    def notes_end(k: int) -> int:
        return len(notes) if k == -1 else k

    def estimate_fits(keep: int) -> bool:
        k = key(keep)
        if k in counted:
            return counted[k][1] <= budget
        # the counted prompt nearest in length anchors the estimate
        anchor = min(counted, key=lambda a: abs(notes_end(a) - notes_end(k)))
        room = (budget - counted[anchor][1] + heads.tokens_of_head(notes_end(anchor))
                + marker(anchor) - marker(k))
        return heads.tokens_of_head(notes_end(k), room) <= room

    def fits(keep: int) -> bool:
        return attempt(keep)[1] <= budget

    lo, hi = 0, len(notes)
    for _ in range(ROUNDS):
        if lo == hi:
            break
        k = _last_true(estimate_fits, lo, hi)
        if k == lo:  # the estimate says lo is the answer: one more word must not fit
            k = lo + 1
        if fits(k):
            lo = k
        else:
            hi = k - 1
    lo = _last_true(fits, lo, hi)  # only if the estimate misled us ROUNDS times
    messages, tokens, left = attempt(lo)
    return _fit(messages, tokens, budget, examples, n, left)


def _last_true(test: Callable[[int], bool], lo: int, hi: int) -> int:
    """The largest x in [lo, hi] with test(x), given test(lo), by bisection."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if test(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


_WORD_END = re.compile(r"\S(?=\s)")


class _Heads:
    """Token counts of the heads of one text, as a counter counts text on its own: counted
    once, in pieces that end at word ends, and only as far as a search has needed. Shared by
    the sections of a deck (their threads take turns)."""

    def __init__(self, text: str, count: Callable[[str], int]) -> None:
        self.text, self.count = text, count
        self.ends, self.sums = [0], [0]  # piece ends, and the tokens of the head up to each
        self.inside: dict[int, int] = {}
        self.markers: dict[int, int] = {}
        self.lock = threading.Lock()

    def _grow(self) -> None:
        start = self.ends[-1]
        found = _WORD_END.search(self.text, start + PIECE_CHARS)
        end = found.end() if found else len(self.text)
        self.ends.append(end)
        self.sums.append(self.sums[-1] + self.count(self.text[start:end]))

    def marker_tokens(self, left: int) -> int:
        """The trim marker's tokens; taken to depend only on how many digits `left` has."""
        digits = len(str(left))
        with self.lock:
            if digits not in self.markers:
                self.markers[digits] = self.count(
                    TRIM_MARKER.format(left=left, total=len(self.text)))
            return self.markers[digits]

    def tokens_of_head(self, end: int, limit: int | None = None) -> int:
        """Tokens in text[:end]; past `limit` (when given) any number above it will do."""
        with self.lock:
            while self.ends[-1] < end and (limit is None or self.sums[-1] <= limit):
                self._grow()
            if self.ends[-1] < end:
                return self.sums[-1]  # already past the limit
            i = bisect_right(self.ends, end) - 1
            if self.ends[i] == end:
                return self.sums[i]
            if limit is not None and self.sums[i] > limit:
                return self.sums[i]
            if limit is not None and self.sums[i + 1] <= limit:
                return self.sums[i + 1]  # not exact, but within the limit either way
            if end not in self.inside:
                self.inside[end] = self.count(self.text[self.ends[i]:end])
            return self.sums[i] + self.inside[end]


_HEADS: OrderedDict[tuple[str, bool, str], _Heads] = OrderedDict()
_HEADS_LOCK = threading.Lock()


def _heads(counter: TokenCounter, text: str) -> _Heads:
    """The head counts of `text` for this counter, shared by the five sections of a deck."""
    tokens = getattr(counter, "tokens", None)
    cache_key = (counter.name, tokens is not None, text)
    with _HEADS_LOCK:
        if cache_key in _HEADS:
            _HEADS.move_to_end(cache_key)
            return _HEADS[cache_key]
    if tokens is None:  # a counter of whole prompts only: text costs a prompt's difference
        empty = counter.count([{"role": "user", "content": "."}])

        def tokens(piece: str) -> int:
            return counter.count([{"role": "user", "content": "." + piece}]) - empty

    heads = _Heads(text, tokens)
    with _HEADS_LOCK:
        heads = _HEADS.setdefault(cache_key, heads)
        while len(_HEADS) > 8:
            _HEADS.popitem(last=False)
    return heads
