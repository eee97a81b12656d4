"""Token budgets: counting chat prompts exactly and fitting a prompt under its budget.

Counting is exact for the model at hand: tiktoken with the model's own encoding (plus the
chat format's per-message overhead) for OpenAI models, and the model's own tokenizer and chat
template for llama.cpp (see llm/local.py). tiktoken's encoding files are normally downloaded
on first use; deckgen ships the two it needs (cl100k_base, o200k_base, verified by tiktoken
against their published SHA-256) so counting works offline.

Fit order: drop the least similar examples first (down to one), then trim the brief's notes
with a visible marker, then drop the last example and trim again. Instructions are never cut.
One example is kept as long as it can be, because a prompt with no example is far worse than
one whose notes are cut short."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from deckgen.brief import Brief
from deckgen.errors import BudgetError
from deckgen.examples import Case
from deckgen.llm.tokens import BUNDLED_TIKTOKEN, TiktokenCounter, TokenCounter

__all__ = ["BUNDLED_TIKTOKEN", "Fit", "TiktokenCounter", "TokenCounter", "fit_budget"]

Message = dict[str, str]
TRIM_MARKER = "\n[... notes trimmed to fit: {left} of {total} characters left out ...]"


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


def fit_budget(
    render: Render, brief: Brief, examples: list[Case], counter: TokenCounter, budget: int
) -> Fit:
    """The richest prompt that fits `budget` tokens. `examples` come most similar first."""
    if budget <= 0:
        raise BudgetError("the model's context is smaller than the tokens reserved for the answer")
    # More examples never make a prompt shorter, so the most that fit is found by binary
    # search: a handful of renders instead of one per example.
    lo, hi, best = 0, len(examples), None  # invariant: lo examples fit (or lo == 0)
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


def _trim_to_fit(render: Render, brief: Brief, examples: list[Case], n: int,
                 counter: TokenCounter, budget: int) -> Fit | None:
    """Binary search for the longest head of the notes that fits alongside n examples."""
    notes = brief.notes

    def attempt(keep: int) -> tuple[list[Message], int, int]:
        text, left = trim_notes(notes, keep) if notes else ("", 0)
        messages = render(examples[:n], brief.with_notes(text))
        return messages, counter.count(messages), left

    best = attempt(0)
    if best[1] > budget:
        return None
    lo, hi = 0, len(notes)  # invariant: keeping lo characters fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        candidate = attempt(mid)
        if candidate[1] <= budget:
            lo, best = mid, candidate
        else:
            hi = mid - 1
    return _fit(best[0], best[1], budget, examples, n, best[2])
