"""What generating a deck produces: a typed result per section and the deck's content.

These are the one shape every door reports from (the CLI table, the API's JSON, the job
store, the writers). `to_dict` is the one serialiser; nothing else turns them into dicts by
hand. The module imports no model, HTTP or Google code, so a writer can import it cheaply."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from deckgen.brief import Brief


@dataclass
class SectionResult:
    section: str
    label: str
    status: str = "ok"  # ok | ungrounded (written, claims marked) | failed
    content: dict[str, Any] | None = None
    lines: list[str] = field(default_factory=list)
    leads: list[int] = field(default_factory=list)  # bold label length per line
    route: str = ""
    model: str = ""
    prompt_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, those the server's prefix cache served
    completion_tokens: int = 0
    counted_prompt_tokens: int = 0
    budget: int = 0
    seconds: float = 0.0
    attempts: int = 0
    retries: int = 0
    wait_seconds: float = 0.0
    failovers: list[dict[str, str]] = field(default_factory=list)
    overflow_refits: int = 0
    policy: str = "open"  # the privacy policy applied: open | confidential:...
    # seconds spent in each step: select (examples), render, count (tokens), model, parse
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("select", "render", "count", "model", "parse"), 0.0))
    repaired: bool = False
    examples_used: list[str] = field(default_factory=list)
    examples_dropped: list[str] = field(default_factory=list)
    notes_trimmed_chars: int = 0
    error: dict[str, object] | None = None
    # how the text fits its box, when the template's box is known: lines used / available
    # for the first answer and the final text, and what was done to make it fit
    fit: dict[str, Any] | None = None
    # what the grounding guard did: {"action": clean|repaired|dropped|flagged, "claims": [...]}
    grounding: dict[str, Any] | None = None
    # per item, verbatim snippets of the brief that support it (for the speaker notes)
    sources: list[list[str]] = field(default_factory=list)
    # the last prompt sent, so any slide can be traced back to what made it
    prompt_messages: list[dict[str, str]] = field(default_factory=list, repr=False)
    # how many of those messages are the section's own prompt; the rest is a follow-up turn
    # (repair or shorten). Fine-tuning data pairs that prompt with the final answer.
    prompt_base_turns: int = 0

    @property
    def title(self) -> str:
        return str(self.content["title"]) if self.content else ""


@dataclass
class DeckContent:
    brief: Brief
    sections: list[SectionResult]
    seconds: float

    @property
    def ok(self) -> bool:
        """No section failed (an `ungrounded` one was written, with its claims marked)."""
        return all(s.status != "failed" for s in self.sections)

    @property
    def flagged(self) -> list[SectionResult]:
        return [s for s in self.sections if s.status == "ungrounded"]

    def fit_warnings(self) -> list[str]:
        return [f"{s.section}: {s.fit['warning']}" for s in self.sections
                if s.fit and s.fit.get("warning")]

    def section(self, name: str) -> SectionResult | None:
        return next((s for s in self.sections if s.section == name), None)

    @classmethod
    def from_dict(cls, brief: Brief, data: dict[str, Any]) -> DeckContent:
        """The deck `to_dict` wrote, with the brief it was generated from (the job store
        keeps a generated deck until its write; the prompts are not kept)."""
        names = {f.name for f in fields(SectionResult)}
        return cls(brief, [SectionResult(**{k: v for k, v in s.items() if k in names})
                           for s in data["sections"]], float(data["seconds"]))

    def to_dict(self) -> dict[str, Any]:
        sections = []
        for s in self.sections:
            data = asdict(s)
            data.pop("prompt_messages")
            data.pop("prompt_base_turns")
            sections.append(data)
        return {"brief": self.brief.to_dict(), "seconds": self.seconds, "sections": sections}
