"""A grammar checked only when it has to be: the embedded model's server, faster.

The local route asks llama.cpp for JSON through `response_format`, which llama-cpp-python
compiles into a grammar and puts in the sampler chain before top-k: the grammar is applied
to all 49,152 tokens of SmolLM2's vocabulary for every token written, 14.5 ms a token
against 1.1 ms without it (bench/RESULTS.md 6c), a third of a deck's time.

llama.cpp's own server does what this module does (`common_sampler_sample`): sample with
the chain alone, ask the grammar about that one token, and only when the grammar refuses
it apply the grammar to the whole vocabulary and sample again. The answer obeys the same
grammar; most tokens cost one check instead of 49,152. Putting top-k before the grammar
instead is not the same thing: when none of the top k is allowed, the grammar accepts a
token it forbids and llama.cpp aborts ("Unexpected empty grammar stack").

`python -m deckgen.llm.lazy_grammar ARGS` runs llama-cpp-python's OpenAI-compatible server
(`python -m llama_cpp.server ARGS`) with `Llama` replaced by `LazyGrammarLlama`; the
server's `create_fn` looks the class up on the module when it loads the model."""

from __future__ import annotations

import ctypes
import math
import sys
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import _internals

_TOKEN = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)


class LazyGrammarSampler:
    """The chain without its grammar, and the grammar beside it, used the way llama.cpp's
    server uses them. Counts how often the grammar had to be applied to the vocabulary."""

    def __init__(self, chain: _internals.LlamaSampler, grammar: _internals.LlamaSampler,
                 n_vocab: int) -> None:
        self.chain = chain
        self.grammar = grammar
        self.n_vocab = n_vocab
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._buffer = np.zeros(n_vocab, dtype=_TOKEN)
        self.sampled = 0
        self.resampled = 0

    def _candidates(self, ctx: _internals.LlamaContext,
                    idx: int) -> llama_cpp.llama_token_data_array:
        logits = llama_cpp.llama_get_logits_ith(ctx.ctx, idx)
        self._buffer["id"] = self._ids
        self._buffer["logit"] = np.ctypeslib.as_array(logits, shape=(self.n_vocab,))
        self._buffer["p"] = 0.0
        data = self._buffer.ctypes.data_as(llama_cpp.llama_token_data_p)
        return llama_cpp.llama_token_data_array(data=data, size=self.n_vocab,
                                                selected=-1, sorted=False)

    def _allowed(self, token: int) -> bool:
        one = llama_cpp.llama_token_data(id=token, logit=1.0, p=0.0)
        single = llama_cpp.llama_token_data_array(
            data=ctypes.pointer(one), size=1, selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(self.grammar.sampler, ctypes.byref(single))
        return not math.isinf(one.logit)

    def sample(self, ctx: _internals.LlamaContext, idx: int = -1) -> int:
        self.sampled += 1
        cur = self._candidates(ctx, idx)
        llama_cpp.llama_sampler_apply(self.chain.sampler, ctypes.byref(cur))
        token = int(cur.data[cur.selected].id)
        if not self._allowed(token):
            self.resampled += 1
            cur = self._candidates(ctx, idx)
            llama_cpp.llama_sampler_apply(self.grammar.sampler, ctypes.byref(cur))
            llama_cpp.llama_sampler_apply(self.chain.sampler, ctypes.byref(cur))
            token = int(cur.data[cur.selected].id)
        self.grammar.accept(token)
        self.chain.accept(token)
        return token


class LazyGrammarLlama(llama_cpp.Llama):
    """`Llama` whose grammar-constrained sampling checks the grammar lazily."""

    # the library passes keywords only; only `grammar` matters here
    def _init_sampler(self, **kwargs: Any) -> Any:  # type: ignore[override]
        grammar = kwargs.pop("grammar", None)
        chain = super()._init_sampler(**kwargs)
        if grammar is None:
            return chain
        checker = _internals.LlamaSampler()
        checker.add_grammar(self._model, grammar)
        return LazyGrammarSampler(chain, checker, self._n_vocab)


def main() -> None:
    llama_cpp.Llama = LazyGrammarLlama  # type: ignore[misc]
    from llama_cpp.server.__main__ import main as serve

    sys.argv[0] = "llama_cpp.server"
    serve()


if __name__ == "__main__":
    main()
