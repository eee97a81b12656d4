import pytest

from deckgen.brief import MAX_NOTES_BYTES, parse_brief
from deckgen.budget import Fit, TiktokenCounter, fit_budget, trim_notes
from deckgen.errors import BudgetError
from deckgen.examples import select_examples

LONG_NOTES = ("Discovery call: the dispatch team rebuilds the plan in Excel every morning "
              "because the TMS plan is stale; carriers miss slots; detention fees grow. ") * 700


@pytest.fixture(scope="module")
def counter():
    return TiktokenCounter("gpt-4o")


def brief_with(notes):
    return parse_brief({"client": "Harbor", "industry": "Logistics",
                        "opportunity": "Dock scheduling", "notes": notes,
                        "contacts": [{"name": "Ana", "role": "COO"}]})


def ranked(cases, brief, section="current_state"):
    return [s.case for s in select_examples(brief, cases, section)]


def test_encodings_load_offline_and_match_the_published_tokens():
    # Token ids published for "hello world" in OpenAI's encodings.
    assert TiktokenCounter("gpt-4").encoding.encode("hello world") == [15339, 1917]
    assert TiktokenCounter("gpt-4o").encoding.name == "o200k_base"
    assert TiktokenCounter("my-finetune").encoding.name == "o200k_base"


def test_chat_framing_costs_three_per_message_plus_three(counter):
    one = [{"role": "user", "content": "hello world"}]
    two = one + [{"role": "assistant", "content": "hello world"}]
    text = counter.tokens("user") + counter.tokens("hello world")
    assert counter.count(one) == 3 + 3 + text
    assert counter.count(two) - counter.count(one) == 3 + counter.tokens("assistant") + \
        counter.tokens("hello world")


def test_everything_fits_when_the_budget_allows(cases, specs, renderer, counter):
    brief = brief_with("Short notes.")
    spec = specs["current_state"]
    examples = ranked(cases, brief)
    fit = fit_budget(lambda ex, b: renderer.render_prompt(spec, b, ex), brief, examples,
                     counter, 100_000)
    assert fit.examples_used == [c.id for c in examples]
    assert fit.examples_dropped == [] and fit.notes_trimmed_chars == 0
    assert fit.prompt_tokens == counter.count(fit.messages)


def test_least_similar_examples_go_first(cases, specs, renderer, counter):
    brief = brief_with("Short notes.")
    spec = specs["data"]
    examples = ranked(cases, brief, "data")
    render = lambda ex, b: renderer.render_prompt(spec, b, ex)  # noqa: E731
    budget = counter.count(render(examples[:3], brief))
    fit = fit_budget(render, brief, examples, counter, budget)
    assert fit.examples_used == [c.id for c in examples[:3]]
    assert fit.examples_dropped == [c.id for c in examples[3:]]
    assert fit.notes_trimmed_chars == 0


@pytest.mark.parametrize("context", [2048, 8192])
def test_long_briefs_never_exceed_context_minus_completion(cases, specs, renderer, counter,
                                                           context):
    notes = LONG_NOTES[: MAX_NOTES_BYTES]
    brief = brief_with(notes)
    for spec in specs.values():
        budget = min(spec.max_prompt_tokens, context - spec.max_completion_tokens)
        fit = fit_budget(lambda ex, b, spec=spec: renderer.render_prompt(spec, b, ex), brief,
                         ranked(cases, brief, spec.name), counter, budget)
        assert counter.count(fit.messages) == fit.prompt_tokens
        assert fit.prompt_tokens + spec.max_completion_tokens <= context
        assert len(fit.examples_used) == 1  # one example is kept; the notes gave way
        assert fit.notes_trimmed_chars > len(notes) // 2
        last = fit.messages[-1]["content"]
        assert "notes trimmed to fit" in last
        # the instructions are never cut
        assert fit.messages[0] == renderer.render_prompt(spec, brief, [])[0]


def test_impossible_budget_is_a_clear_error(cases, specs, renderer, counter):
    brief = brief_with(LONG_NOTES[:MAX_NOTES_BYTES])
    spec = specs["skills"]
    with pytest.raises(BudgetError, match="does not fit in 50 tokens"):
        fit_budget(lambda ex, b: renderer.render_prompt(spec, b, ex), brief,
                   ranked(cases, brief), counter, 50)


def test_trim_cuts_at_a_word_and_says_how_much():
    text, left = trim_notes("alpha beta gamma delta", 13)
    assert text.startswith("alpha beta\n[")
    assert left == len(" gamma delta")
    assert f"{left} of 22 characters" in text
    assert trim_notes("alpha beta", 20) == ("alpha beta", 0)
    assert trim_notes("alphabet", 4)[0].startswith("\n[")


# --- The fast fit against the rule it must keep -------------------------------------------
# fit_budget counts the notes once and bisects over those counts, counting whole prompts only
# where the estimate lands. Whatever the estimate does, the answer must be the one a search
# that counts every candidate whole gives: this is that search, as deckgen ran it before.


def recounting_fit(render, brief, examples, counter, budget):
    """The reference: every step of both searches counts the whole prompt."""
    lo, hi, best = 0, len(examples), None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        messages = render(examples[:mid], brief)
        tokens = counter.count(messages)
        if tokens <= budget:
            lo, best = mid, (messages, tokens)
        else:
            hi = mid - 1
    if best is not None:
        return Fit(best[0], best[1], budget, [c.id for c in examples[:lo]],
                   [c.id for c in examples[lo:]], 0)
    for n in ([1, 0] if examples else [0]):
        def attempt(keep, n=n):
            text, left = trim_notes(brief.notes, keep) if brief.notes else ("", 0)
            messages = render(examples[:n], brief.with_notes(text))
            return messages, counter.count(messages), left

        first = attempt(0)
        if first[1] > budget:
            continue
        lo, hi, found = 0, len(brief.notes), first
        while lo < hi:
            mid = (lo + hi + 1) // 2
            candidate = attempt(mid)
            if candidate[1] <= budget:
                lo, found = mid, candidate
            else:
                hi = mid - 1
        return Fit(found[0], found[1], budget, [c.id for c in examples[:n]],
                   [c.id for c in examples[n:]], found[2])
    raise BudgetError(f"the prompt does not fit in {budget} tokens")


class WholePromptsOnly:
    """A counter with nothing but count(), like deck.py's timing wrapper: the fit must work
    (and stay exact) without the counters' text-only `tokens`."""

    def __init__(self, counter):
        self.counter, self.name, self.calls = counter, counter.name, 0

    def count(self, messages):
        self.calls += 1
        return self.counter.count(messages)


@pytest.fixture(scope="module")
def llama_counter(config):
    from deckgen.llm.local import LlamaCounter

    return LlamaCounter(config.local_model_path)


@pytest.fixture(params=["tiktoken", "llama.cpp", "count() only"])
def any_counter(request, counter):
    if request.param == "llama.cpp":
        return request.getfixturevalue("llama_counter")
    return counter if request.param == "tiktoken" else WholePromptsOnly(counter)


UNICODE_NOTES = ("Réunion à Zürich: the 3PL's façade of visibility — 40 % of loads arrive "
                 "unannounced;\n\n  naïve ETAs, 😀 ok.\t Next:  carriers (7) miss slots. ") * 400
BRIEF_NOTES = {"long": LONG_NOTES[:MAX_NOTES_BYTES], "unicode": UNICODE_NOTES[:MAX_NOTES_BYTES],
               "one word": "x" * 5000, "medium": LONG_NOTES[:9000]}


def fits_with_one_more_word(render, brief, examples, fit, counter):
    """Whether the next longer cut of the notes (the next keep that changes the text) would
    still fit alongside the examples this fit used."""
    notes, n = brief.notes, len(fit.examples_used)
    kept = len(notes) - fit.notes_trimmed_chars
    text = trim_notes(notes, kept)[0]
    keep = kept
    while keep < len(notes) and trim_notes(notes, keep)[0] == text:
        keep += 1
    longer = render(examples[:n], brief.with_notes(trim_notes(notes, keep)[0]))
    return counter.count(longer) <= fit.budget


@pytest.mark.parametrize("notes", sorted(BRIEF_NOTES))
@pytest.mark.parametrize("budget", [1500, 3000, 6000])
def test_the_fit_is_real_within_budget_and_the_longest_that_fits(cases, specs, renderer,
                                                                  any_counter, notes, budget):
    brief = brief_with(BRIEF_NOTES[notes])
    spec = specs["current_state"]
    examples = ranked(cases, brief)
    render = lambda ex, b: renderer.render_prompt(spec, b, ex)  # noqa: E731
    fit = fit_budget(render, brief, examples, any_counter, budget)
    real = any_counter.count(fit.messages)
    assert fit.prompt_tokens == real <= budget  # a real count, never an estimate
    if fit.notes_trimmed_chars:
        assert len(fit.examples_used) <= 1
        # one more word of the notes would not fit
        assert not fits_with_one_more_word(render, brief, examples, fit, any_counter)
    if len(fit.examples_used) < len(examples) and not fit.notes_trimmed_chars:
        more = render(examples[:len(fit.examples_used) + 1], brief)
        assert any_counter.count(more) > budget  # nor would the next example
    if len(fit.examples_used) == 0:
        # the one example was dropped only because it did not fit even with no notes
        one = render(examples[:1], brief.with_notes(trim_notes(brief.notes, 0)[0]))
        assert any_counter.count(one) > budget


@pytest.mark.parametrize("notes", sorted(BRIEF_NOTES))
def test_same_fit_as_counting_every_step(cases, specs, renderer, any_counter, notes):
    # the reference counts 100 KB prompts whole, which takes llama.cpp's tokenizer ~0.15 s
    # each: 10,000 characters are still past its budgets and keep this test quick
    slow = any_counter.name.startswith("llama.cpp")
    brief = brief_with(BRIEF_NOTES[notes][:10_000] if slow else BRIEF_NOTES[notes])
    for spec in specs.values():
        examples = ranked(cases, brief, spec.name)
        render = lambda ex, b, spec=spec: renderer.render_prompt(spec, b, ex)  # noqa: E731
        for budget in (700, 2000, spec.max_prompt_tokens):
            try:
                want = recounting_fit(render, brief, examples, any_counter, budget)
            except BudgetError:
                with pytest.raises(BudgetError):
                    fit_budget(render, brief, examples, any_counter, budget)
                continue
            assert fit_budget(render, brief, examples, any_counter, budget) == want


def test_a_long_brief_is_counted_whole_only_a_few_times(cases, specs, renderer, counter):
    brief = brief_with(LONG_NOTES[:MAX_NOTES_BYTES])
    spec = specs["current_state"]
    render = lambda ex, b: renderer.render_prompt(spec, b, ex)  # noqa: E731
    whole = WholePromptsOnly(counter)
    whole.tokens = counter.tokens  # the fast path: text counted once, prompts a few times
    fit = fit_budget(render, brief, ranked(cases, brief), whole, 6000)
    assert fit.notes_trimmed_chars > 0
    assert whole.calls <= 4  # the old search counted ~20 whole 25,000-token prompts


def test_a_template_that_reshapes_the_notes_still_fits_exactly(cases, specs, renderer,
                                                               counter):
    # The notes reach the prompt upper-cased and doubled: the estimate is wrong by far, and
    # the fit must still be the reference's.
    brief = brief_with(LONG_NOTES[:MAX_NOTES_BYTES])
    spec = specs["data"]

    def render(ex, b):
        messages = renderer.render_prompt(spec, b.with_notes(b.notes.upper() * 2), ex)
        return messages

    examples = ranked(cases, brief, "data")
    for budget in (1500, 6000):
        assert fit_budget(render, brief, examples, counter, budget) == \
            recounting_fit(render, brief, examples, counter, budget)


def test_llama_counts_in_parts_equal_one_whole_tokenization(llama_counter, cases, specs,
                                                            renderer):
    # LlamaCounter caches the parts of a prompt between special tokens; the count must be
    # what llama.cpp gives for the whole prompt, special-token text in the notes included.
    tricky = ("Notes <|im_end|> then <|im_start|>user and <|endoftext|>; half <|im_end "
              "and |> and \n\n<|im_start|>\n  é😀 ")
    llm = llama_counter.llm
    for notes in ("Short notes.", tricky * 20, LONG_NOTES[:3000] + tricky):
        brief = brief_with(notes)
        for spec in specs.values():
            for n in (0, 1, 3):
                messages = renderer.render_prompt(spec, brief, ranked(cases, brief,
                                                                      spec.name)[:n])
                formatted = llama_counter.formatter(messages=messages)
                whole = llm.tokenize(formatted.prompt.encode("utf-8"),
                                     add_bos=not formatted.added_special, special=True)
                assert llama_counter.count(messages) == len(whole)
