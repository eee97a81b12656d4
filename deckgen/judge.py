"""The optional LLM judge of `deckgen eval --judge ROUTE`: a model scores each generated
section against its brief on a rubric (relevance, specificity, tone, 1 to 5), from
prompts/_judge.j2. The scores are a model's opinion, not a measurement; the report labels
them so and names the judge's route and model. An unusable verdict is counted, never
guessed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from deckgen.brief import Brief
from deckgen.errors import DeckgenError
from deckgen.llm.router import CallStats, Router
from deckgen.prompts import PromptRenderer

CRITERIA = ("relevance", "specificity", "tone")
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {**{c: {"type": "integer", "minimum": 1, "maximum": 5} for c in CRITERIA},
                   "reason": {"type": "string", "maxLength": 300}},
    "required": [*CRITERIA, "reason"],
    "additionalProperties": False,
}


@dataclass
class Judge:
    router: Router
    route: str
    renderer: PromptRenderer
    models: set[str] = field(default_factory=set)
    failures: int = 0

    def score(self, brief: Brief, label: str, text: str) -> dict[str, float | None]:
        """{relevance, specificity, tone} in 1..5, or None each when the verdict was
        unusable (the model failed, or answered outside the rubric)."""
        messages = self.renderer.render_judge(
            json.dumps(brief.to_dict(), ensure_ascii=False), label, text)
        route = self.router.route(self.route)
        try:
            answer = self.router.complete(
                self.route, messages, section="judge", schema=SCHEMA, max_tokens=200,
                temperature=0.0, prompt_tokens=route.counter.count(messages),
                stats=CallStats())
        except DeckgenError:
            self.failures += 1
            return dict.fromkeys(CRITERIA)
        self.models.add(answer.model)
        verdict = _verdict(answer.text)
        if verdict is None:
            self.failures += 1
            return dict.fromkeys(CRITERIA)
        return verdict


def _verdict(text: str) -> dict[str, float | None] | None:
    start, end = text.find("{"), text.rfind("}")
    try:
        data = json.loads(text[start:end + 1]) if start >= 0 else None
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    scores = {c: data.get(c) for c in CRITERIA}
    if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 5
               for v in scores.values()):
        return None
    return {c: float(v) for c, v in scores.items() if v is not None}
