import pytest

from deckgen.brief import MAX_NOTES_BYTES, parse_brief
from deckgen.budget import TiktokenCounter, fit_budget, trim_notes
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
