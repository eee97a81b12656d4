"""Counting a chat prompt's tokens exactly, as the model that serves it will.

tiktoken with the model's own encoding (plus the chat format's per-message overhead) for
OpenAI models; the GGUF's own tokenizer and chat template for llama.cpp (llm/local.py).
tiktoken's encoding files are normally downloaded on first use; deckgen ships the two it
needs (cl100k_base, o200k_base, verified by tiktoken against their published SHA-256) so
counting works offline."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Protocol

import tiktoken

Message = dict[str, str]
BUNDLED_TIKTOKEN = Path(__file__).resolve().parent.parent / "data" / "tiktoken"


class TokenCounter(Protocol):
    name: str

    def count(self, messages: list[Message]) -> int: ...


@functools.lru_cache(maxsize=16384)
def _token_count(encoding: tiktoken.Encoding, text: str) -> int:
    # Fitting counts the same instructions and few-shot cases many times over (every step
    # of the search, every section, every deck); only the brief's turn is new each time.
    return len(encoding.encode(text, disallowed_special=()))


class TiktokenCounter:
    """OpenAI chat prompts: every message costs 3 tokens of framing plus its role and
    content, and every reply is primed with 3 more (OpenAI's published counting recipe for
    gpt-3.5-turbo, gpt-4 and gpt-4o)."""

    TOKENS_PER_MESSAGE = 3
    REPLY_PRIMING = 3

    def __init__(self, model: str) -> None:
        # tiktoken looks for its files in TIKTOKEN_CACHE_DIR; an operator's own setting wins.
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(BUNDLED_TIKTOKEN))
        try:
            self.encoding = tiktoken.encoding_for_model(model)
        except KeyError:
            # Unknown names (fine-tuned or self-hosted models) get the newest encoding.
            self.encoding = tiktoken.get_encoding("o200k_base")
        self.name = f"tiktoken:{self.encoding.name}"

    def tokens(self, text: str) -> int:
        return _token_count(self.encoding, text)

    def count(self, messages: list[Message]) -> int:
        total = self.REPLY_PRIMING
        for message in messages:
            total += self.TOKENS_PER_MESSAGE
            for key, value in message.items():
                total += self.tokens(value)
                if key == "name":
                    total += 1
        return total
