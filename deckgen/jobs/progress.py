"""What a job's record says of it: each section's progress (what the API and the
dashboard show while a deck is made) and the outcome a stage ends with. Kept apart from the
runner because the doors (deckgen/api/, schedules, batches) build a job's first progress
without running anything."""

from __future__ import annotations

from typing import Any

from deckgen.content import DeckContent, SectionResult
from deckgen.sections import SectionSpec

# what a stage's work returns: the deck (if any), the state, the result and the error
Outcome = tuple[DeckContent | None, str, dict[str, Any] | None, dict[str, Any] | None]


def initial_progress(specs: list[SectionSpec]) -> dict[str, Any]:
    return {s.name: {"section": s.name, "state": "queued"} for s in specs}


def section_progress(result: SectionResult) -> dict[str, Any]:
    return {"section": result.section,
            "state": "failed" if result.status == "failed" else "done",
            "route": result.route, "model": result.model, "policy": result.policy,
            "prompt_tokens": result.prompt_tokens, "cached_tokens": result.cached_tokens,
            "completion_tokens": result.completion_tokens,
            "seconds": result.seconds, "retries": result.retries,
            "failovers": len(result.failovers), "fit": result.fit, "error": result.error,
            "grounding": result.grounding, "flagged": result.status == "ungrounded"}
