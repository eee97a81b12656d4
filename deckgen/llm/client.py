"""One model behind an OpenAI-compatible endpoint, asked for JSON matching a schema.

How structured output is asked for differs by server, so each route says which style it
speaks: llama.cpp compiles `response_format.schema` into a grammar; vLLM and OpenAI take
`json_schema` (OpenAI's strict mode rejects string length limits, so they are left to our
validator and the repair turn there)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import openai
from openai import OpenAI

from deckgen.budget import TokenCounter
from deckgen.errors import ModelError

Message = dict[str, str]


@dataclass
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None


def _without_lengths(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_lengths(v) for k, v in schema.items()
                if k not in ("minLength", "maxLength")}
    if isinstance(schema, list):
        return [_without_lengths(v) for v in schema]
    return schema


@dataclass
class ModelRoute:
    name: str  # local | self-hosted | openai
    model: str
    context: int
    counter: TokenCounter
    client: OpenAI
    structured: str  # "llama.cpp" | "json_schema" | "openai"

    def response_format(self, section: str, schema: dict[str, Any]) -> dict[str, Any]:
        if self.structured == "llama.cpp":
            return {"type": "json_object", "schema": schema}
        if self.structured == "openai":
            schema = _without_lengths(copy.deepcopy(schema))
        return {
            "type": "json_schema",
            "json_schema": {"name": section, "schema": schema, "strict": True},
        }

    def complete(self, messages: list[Message], *, section: str, schema: dict[str, Any],
                 max_tokens: int, temperature: float) -> Completion:
        try:
            response = self.client.chat.completions.create(  # type: ignore[call-overload]
                model=self.model,
                messages=messages,
                max_tokens=max_tokens,
                temperature=temperature,
                response_format=self.response_format(section, schema),
            )
        except openai.APIStatusError as exc:
            raise ModelError(
                f"the {self.name} model ({self.model}) answered HTTP {exc.status_code}: "
                f"{exc.message}"
            ) from exc
        except openai.APITimeoutError as exc:
            raise ModelError(f"the {self.name} model ({self.model}) timed out") from exc
        except openai.APIConnectionError as exc:
            raise ModelError(
                f"cannot reach the {self.name} model at {self.client.base_url}: {exc}"
            ) from exc
        if not response.choices:
            raise ModelError(f"the {self.name} model ({self.model}) returned no choices")
        choice = response.choices[0]
        usage = response.usage
        return Completion(
            text=choice.message.content or "",
            model=response.model or self.model,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason,
        )
