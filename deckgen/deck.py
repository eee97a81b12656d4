"""The core: a brief becomes DeckContent, every section generated concurrently.

Pure orchestration. Its collaborators (specs, cases, prompt renderer, the route for each
section, a clock) come in as arguments; it does no file or network I/O of its own, so the
CLI, the service and the job runner all call it the same way. One section failing never
sinks the others: its SectionResult carries the error instead of content."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from deckgen.boxes import Box, box_spec, fit_content
from deckgen.brief import Brief
from deckgen.budget import Fit, TokenCounter, fit_budget
from deckgen.content import DeckContent, SectionResult
from deckgen.errors import DeckgenError, OutputError
from deckgen.examples import Case, select_examples
from deckgen.grounding import Grounding, sources
from deckgen.guard import claim_view, guard
from deckgen.llm.client import Completion, ContextOverflow
from deckgen.llm.router import FAILOVER, CallStats, Router
from deckgen.privacy import EXTERNAL_ROUTES, REDACTED, PrivacyPolicy, Redactor
from deckgen.prompts import PromptRenderer
from deckgen.sections import SectionSpec, parse_output


@dataclass(frozen=True)
class Generator:
    """What generating a deck needs, built once and shared by every deck."""

    specs: dict[str, SectionSpec]
    cases: list[Case]
    renderer: PromptRenderer
    router: Router
    temperature: float = 0.3
    privacy: PrivacyPolicy = field(default_factory=PrivacyPolicy)
    clock: Callable[[], float] = time.monotonic
    # the grounding guard (deckgen/guard.py); None turns it off (tests of other steps)
    grounding: Grounding | None = None
    # routes whose model gets no grounding repair turn (it drops or flags at once)
    no_ground_repair: frozenset[str] = frozenset()
    # prompt layout per route: "turns" (few-shot turns, the default) or "shared"
    # (prompts/_shared.j2: one prefix for every section of a deck, for prefix caching)
    layouts: dict[str, str] = field(default_factory=dict)
    # whole solved cases shown in the shared layout, per route (1 where not said)
    shared_examples: dict[str, int] = field(default_factory=dict)
    # the priority this generator's model calls wait with for a route's in-flight slots:
    # lower goes first (the job runner gives batch decks a generator with a higher number)
    priority: int = 0


Progress = Callable[[str, SectionSpec, SectionResult | None], None]
OVERFLOW_SHRINK = 0.75  # budget factor for the one re-fit after a context overflow


def generate_section(gen: Generator, spec: SectionSpec, brief: Brief, route: str = "auto",
                     exclude_case: str | None = None, box: Box | None = None,
                     title_box: Box | None = None) -> SectionResult:
    """One section, trying the plan's routes in order until one serves it. With the boxes
    its body and headline land in, the section is written to their limits and made to fit
    them (boxes.fit_content)."""
    start = gen.clock()
    result = SectionResult(spec.name, spec.label)
    if box is not None or title_box is not None:
        result.fit = {"limits": _limits(box_spec(spec, box, title_box))}
        if box is not None:
            result.fit.update(box=box.describe(), lines_available=box.lines_available)
        if title_box is not None:
            result.fit["title_box"] = title_box.describe()
    stats = CallStats()
    try:
        result.policy = gen.privacy.level(brief)
        gen.router.serve(spec.name, route, lambda name: _run_on_route(
            gen, spec, brief, name, exclude_case, result, stats, box, title_box),
            result.policy, failovers=result.failovers)
    except DeckgenError as exc:
        result.status, result.error = "failed", exc.to_dict()
        result.content, result.lines = None, []
    result.attempts, result.retries = stats.attempts, stats.retries
    result.wait_seconds = round(stats.wait_seconds, 3)
    result.seconds = round(gen.clock() - start, 3)
    return result


class _TimedCounter:
    """Counts tokens like the route's counter, adding the time it takes to `timings`."""

    def __init__(self, counter: TokenCounter, timings: dict[str, float],
                 clock: Callable[[], float]) -> None:
        self.counter, self.timings, self.clock = counter, timings, clock
        self.name = counter.name

    def count(self, messages: list[dict[str, str]]) -> int:
        start = self.clock()
        try:
            return self.counter.count(messages)
        finally:
            self.timings["count"] += self.clock() - start

    def __getattr__(self, name: str) -> Any:
        # `tokens(text)`, when the route's counter has it: budget.py then counts the notes
        # once instead of whole prompts (timed like count)
        if name != "tokens" or not hasattr(self.counter, "tokens"):
            raise AttributeError(name)

        def tokens(text: str) -> int:
            start = self.clock()
            try:
                return int(self.counter.tokens(text))  # type: ignore[attr-defined]
            finally:
                self.timings["count"] += self.clock() - start

        return tokens


def _limits(spec: SectionSpec) -> dict[str, Any]:
    return {"min_items": spec.min_items, "max_items": spec.max_items,
            "item_chars": spec.item_chars or dict(spec.item_fields or {}),
            "title_chars": spec.title_chars}


def _run_on_route(gen: Generator, spec: SectionSpec, brief: Brief, name: str,
                  exclude_case: str | None, result: SectionResult, stats: CallStats,
                  box: Box | None = None, title_box: Box | None = None) -> None:
    clock, timings = gen.clock, result.timings
    # A box's limits go into the prompt and the schema sent with the request; an answer is
    # accepted under the section's own limits (with the box's minimum) and then made to fit.
    accept = spec
    if box is not None or title_box is not None:
        spec = box_spec(spec, box, title_box)
        accept = replace(accept, min_items=spec.min_items)
    route = gen.router.route(name)
    result.route, result.model = route.name, route.model
    # Confidential text leaves our hardware only redacted (see deckgen/privacy.py).
    redactor = Redactor(brief) if result.policy == REDACTED and name in EXTERNAL_ROUTES \
        else None
    start = clock()
    shared = gen.layouts.get(name) == "shared"
    # the shared layout shows the same whole cases to every section (a byte-identical prefix)
    pool = [c for c in gen.cases if all(n in c.sections for n in gen.specs)] if shared \
        else gen.cases
    examples = [s.case for s in select_examples(brief, pool, spec.name, exclude=exclude_case)]
    if shared:
        examples = examples[:gen.shared_examples.get(name, 1)]
    timings["select"] += clock() - start
    budget = min(spec.max_prompt_tokens, route.context - spec.max_completion_tokens)
    schema = spec.json_schema()
    counter = _TimedCounter(route.counter, timings, clock)

    def render(ex: list[Case], b: Brief) -> list[dict[str, str]]:
        if shared:
            return gen.renderer.render_shared(spec, b, ex, list(gen.specs.values()))
        return gen.renderer.render_prompt(spec, b, ex)

    def fitted(render_fn: Callable[[list[Case], Brief], list[dict[str, str]]]) -> Fit:
        start, counted = clock(), timings["count"]
        fit = fit_budget(render_fn, brief, examples, counter, budget)
        timings["render"] += clock() - start - (timings["count"] - counted)
        result.budget, result.counted_prompt_tokens = budget, fit.prompt_tokens
        result.examples_used, result.examples_dropped = fit.examples_used, fit.examples_dropped
        result.notes_trimmed_chars = fit.notes_trimmed_chars
        result.prompt_messages = fit.messages
        return fit

    def call(fit: Fit) -> Completion:
        start = clock()
        try:
            return gen.router.complete(
                # from the brief's turn on: the examples before it are other clients'
                name, redactor.messages(fit.messages, result.prompt_base_turns - 1)
                if redactor else fit.messages,
                section=spec.name, schema=schema, max_tokens=spec.max_completion_tokens,
                temperature=gen.temperature, prompt_tokens=fit.prompt_tokens, stats=stats,
                priority=gen.priority)
        finally:
            timings["model"] += clock() - start

    def ask(render_fn: Callable[[list[Case], Brief], list[dict[str, str]]],
            follow_up: bool = False) -> str:
        nonlocal budget

        def prompt() -> Fit:
            fit = fitted(render_fn)
            result.prompt_base_turns = len(fit.messages) - (2 if follow_up else 0)
            return fit

        try:
            answer = call(prompt())
        except ContextOverflow:
            # Never expected (counts are exact), so re-fit once with a smaller budget; a
            # second overflow propagates and fails the section.
            budget = int(budget * OVERFLOW_SHRINK)
            result.overflow_refits += 1
            answer = call(prompt())
        result.model = answer.model
        result.prompt_tokens += answer.prompt_tokens
        result.cached_tokens += answer.cached_tokens
        result.completion_tokens += answer.completion_tokens
        return answer.text

    def parse(text: str) -> tuple[dict[str, Any] | None, list[str]]:
        start = clock()
        try:
            return parse_output(accept, text)
        finally:
            timings["parse"] += clock() - start

    text = ask(render)
    content, problems = parse(text)
    if content is None:
        # One repair turn. It must fit the same budget, so it is fitted like the first
        # prompt: the examples give way before the answer being repaired does.
        repair = gen.renderer.render_repair(spec, text, problems)
        result.repaired = True
        text = ask(lambda ex, b: render(ex, b) + repair, follow_up=True)
        content, problems = parse(text)
        if content is None:
            raise OutputError(
                f"the {spec.name} section's answer did not match its format after one "
                f"repair: {problems[0]}",
                details={"problems": problems, "answer": text[:2000]},
            )
    if redactor:
        content = redactor.restore(content)
    if gen.grounding is not None:
        def ask_again(claims: list[Any]) -> dict[str, Any] | None:
            if name in gen.no_ground_repair:
                return None  # this route's model does not profit from it (measured)
            turns = gen.renderer.render_ground(spec, text, [claim_view(c) for c in claims])
            try:
                again, _ = parse(ask(lambda ex, b: render(ex, b) + turns, follow_up=True))
            except (*FAILOVER, ContextOverflow):
                return None  # the answer in hand is valid: dropping or flagging still works
            return redactor.restore(again) if redactor and again else again

        start = clock()
        instructions = result.prompt_messages[0]["content"] if result.prompt_messages else ""
        content, result.grounding, flagged = guard(
            gen.grounding, accept, brief, content, ask_again, exclude_case=exclude_case,
            instructions=instructions)
        if flagged:
            result.status = "ungrounded"
        timings["ground"] = clock() - start
    if box is not None or title_box is not None:
        def shorten(problems: list[str]) -> dict[str, Any] | None:
            turns = gen.renderer.render_shorten(spec, text, problems)
            try:
                shorter, _ = parse(ask(lambda ex, b: render(ex, b) + turns, follow_up=True))
            except (*FAILOVER, ContextOverflow):
                return None  # the answer in hand is valid: trimming it beats losing it
            return redactor.restore(shorter) if redactor and shorter else shorter

        content, report = fit_content(spec, box, title_box, content, shorten)
        assert result.fit is not None
        result.fit.update(report)
    result.content = content
    result.lines = spec.lines(content)
    result.leads = spec.leads(content)
    if gen.grounding is not None:
        result.sources = sources(content, brief)


def generate_deck(gen: Generator, brief: Brief, specs: list[SectionSpec], route: str = "auto",
                  on_progress: Progress | None = None, exclude_case: str | None = None,
                  boxes: dict[str, Box] | None = None) -> DeckContent:
    """Every section at once: a deck takes about as long as its slowest section. `boxes`
    (from the template the deck will be written into) makes each section fit its box."""
    boxes = boxes or {}
    start = gen.clock()

    def one(spec: SectionSpec) -> SectionResult:
        if on_progress:
            on_progress("started", spec, None)
        result = generate_section(gen, spec, brief, route, exclude_case,
                                  boxes.get(spec.name), boxes.get(f"{spec.name}.title"))
        if on_progress:
            on_progress("finished", spec, result)
        return result

    # In the shared layout every section starts with the same prefix: one section goes first,
    # alone, so the server's prefix cache holds it when the others arrive (sent together,
    # none of them would find it: bench/prompt_cost.py). It costs a deck one section's time.
    first = specs[:1] if len(specs) > 1 and _shared_layout(gen, route) else []
    with ThreadPoolExecutor(max_workers=max(1, len(specs)),
                            thread_name_prefix="section") as pool:
        results = list(pool.map(one, first)) + list(pool.map(one, specs[len(first):]))
    return DeckContent(brief, results, round(gen.clock() - start, 3))


def _shared_layout(gen: Generator, route: str) -> bool:
    try:
        return gen.layouts.get(gen.router.resolve(route)) == "shared"
    except DeckgenError:
        return False  # an unknown route: each section fails with the reason
