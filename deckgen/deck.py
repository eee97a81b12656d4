"""The core: a brief becomes DeckContent, every section generated concurrently.

Pure orchestration. Its collaborators (specs, cases, prompt renderer, the route for each
section, a clock) come in as arguments; it does no file or network I/O of its own, so the
CLI, the service and the job runner all call it the same way. One section failing never
sinks the others: its SectionResult carries the error instead of content."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from deckgen.brief import Brief
from deckgen.budget import fit_budget
from deckgen.errors import DeckgenError, OutputError
from deckgen.examples import Case, select_examples
from deckgen.llm.client import ModelRoute
from deckgen.prompts import PromptRenderer
from deckgen.sections import SectionSpec, parse_output


@dataclass
class SectionResult:
    section: str
    label: str
    status: str = "ok"  # ok | failed
    content: dict[str, Any] | None = None
    lines: list[str] = field(default_factory=list)
    route: str = ""
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    counted_prompt_tokens: int = 0
    budget: int = 0
    seconds: float = 0.0
    attempts: int = 0
    repaired: bool = False
    examples_used: list[str] = field(default_factory=list)
    examples_dropped: list[str] = field(default_factory=list)
    notes_trimmed_chars: int = 0
    error: dict[str, object] | None = None

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
        return all(s.status == "ok" for s in self.sections)

    def section(self, name: str) -> SectionResult | None:
        return next((s for s in self.sections if s.section == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"brief": self.brief.to_dict(), "seconds": self.seconds,
                "sections": [asdict(s) for s in self.sections]}


@dataclass(frozen=True)
class Generator:
    """What generating a deck needs, built once and shared by every deck."""

    specs: dict[str, SectionSpec]
    cases: list[Case]
    renderer: PromptRenderer
    route_for: Callable[[SectionSpec], ModelRoute]
    temperature: float = 0.3
    clock: Callable[[], float] = time.monotonic


Progress = Callable[[str, SectionSpec, SectionResult | None], None]


def generate_section(gen: Generator, spec: SectionSpec, brief: Brief,
                     exclude_case: str | None = None) -> SectionResult:
    start = gen.clock()
    result = SectionResult(spec.name, spec.label)
    try:
        route = gen.route_for(spec)
        result.route, result.model = route.name, route.model
        scored = select_examples(brief, gen.cases, spec.name, exclude=exclude_case)
        examples = [s.case for s in scored]
        budget = min(spec.max_prompt_tokens, route.context - spec.max_completion_tokens)

        def render(ex: list[Case], b: Brief) -> list[dict[str, str]]:
            return gen.renderer.render_prompt(spec, b, ex)

        fit = fit_budget(render, brief, examples, route.counter, budget)
        result.budget, result.counted_prompt_tokens = budget, fit.prompt_tokens
        result.examples_used, result.examples_dropped = fit.examples_used, fit.examples_dropped
        result.notes_trimmed_chars = fit.notes_trimmed_chars
        schema = spec.json_schema()

        def ask(messages: list[dict[str, str]]) -> str:
            answer = route.complete(messages, section=spec.name, schema=schema,
                                    max_tokens=spec.max_completion_tokens,
                                    temperature=gen.temperature)
            result.attempts += 1
            result.model = answer.model
            result.prompt_tokens += answer.prompt_tokens
            result.completion_tokens += answer.completion_tokens
            return answer.text

        text = ask(fit.messages)
        content, problems = parse_output(spec, text)
        if content is None:
            # One repair turn. It must fit the same budget, so it is fitted like the first
            # prompt: the examples give way before the answer being repaired does.
            repair = gen.renderer.render_repair(spec, text, problems)

            def render_repair(ex: list[Case], b: Brief) -> list[dict[str, str]]:
                return render(ex, b) + repair

            refit = fit_budget(render_repair, brief, examples, route.counter, budget)
            result.repaired = True
            text = ask(refit.messages)
            content, problems = parse_output(spec, text)
            if content is None:
                raise OutputError(
                    f"the {spec.name} section's answer did not match its format after one "
                    f"repair: {problems[0]}",
                    details={"problems": problems, "answer": text[:2000]},
                )
        result.content = content
        result.lines = spec.lines(content)
    except DeckgenError as exc:
        result.status, result.error = "failed", exc.to_dict()
    result.seconds = round(gen.clock() - start, 3)
    return result


def generate_deck(gen: Generator, brief: Brief, specs: list[SectionSpec],
                  on_progress: Progress | None = None,
                  exclude_case: str | None = None) -> DeckContent:
    """Every section at once: a deck takes about as long as its slowest section."""
    start = gen.clock()

    def one(spec: SectionSpec) -> SectionResult:
        if on_progress:
            on_progress("started", spec, None)
        result = generate_section(gen, spec, brief, exclude_case)
        if on_progress:
            on_progress("finished", spec, result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, len(specs)),
                            thread_name_prefix="section") as pool:
        results = list(pool.map(one, specs))
    return DeckContent(brief, results, round(gen.clock() - start, 3))
