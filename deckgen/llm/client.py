"""One model behind an OpenAI-compatible endpoint, asked for JSON matching a schema.

How structured output is asked for differs by server, so each route says which style it
speaks: llama.cpp compiles `response_format.schema` into a grammar; vLLM and OpenAI take
`json_schema` (OpenAI's strict mode rejects string length limits, so they are left to our
validator and the repair turn there)."""

from __future__ import annotations

import copy
import email.utils
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai
from openai import OpenAI

from deckgen.errors import ModelError
from deckgen.llm.tokens import TokenCounter

Message = dict[str, str]


class RateLimited(ModelError):
    """HTTP 429 rate_limit_exceeded: retry, but not before `retry_after` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QuotaExhausted(ModelError):
    """HTTP 429 insufficient_quota: retrying cannot help; fail over at once."""

    code = "quota_exhausted"


class Transient(ModelError):
    """5xx, connection refused, read timeout: worth a few retries, then failover."""

    code = "model_unavailable"


class TimedOut(Transient):
    """The server took longer than the route's timeout (DECKGEN_SECTION_TIMEOUT): it hangs
    or is overloaded. Not retried on the same route, which would only multiply the wait;
    counted by the breaker, then the next route."""


class RouteDown(ModelError):
    """The route's server is gone (the embedded llama.cpp process died): no retry can help,
    so the route is marked down and every section fails over, or fails, at once."""

    code = "model_crashed"


class ContextOverflow(ModelError):
    """The server says the prompt is longer than the model's context."""

    code = "context_overflow"


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def retry_after(headers: Any) -> float | None:
    """Seconds the server asks us to wait: `retry-after-ms`, `retry-after` (seconds or an
    HTTP date), else the later of OpenAI's `x-ratelimit-reset-*` durations ("6m0s")."""
    if headers is None:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    if (value := headers.get("retry-after")) is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value) if value else None
            if when is not None:
                return max(0.0, when.timestamp() - time.time())
    resets = []
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        if raw := headers.get(name):
            resets.append(sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(raw)))
    return max(resets) if resets else None


def _classify(route: str, model: str, exc: openai.APIStatusError) -> ModelError:
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error", body) if isinstance(body, dict) else {}
    code = str((err or {}).get("code") or (err or {}).get("type") or "")
    where = f"the {route} model ({model})"
    text = f"{where} answered HTTP {exc.status_code}: {exc.message}"
    if exc.status_code == 429:
        if code == "insufficient_quota":
            return QuotaExhausted(f"{where} is out of quota: {exc.message}")
        return RateLimited(text, retry_after(exc.response.headers))
    if code == "context_length_exceeded" or "maximum context length" in exc.message.lower():
        return ContextOverflow(text)
    if exc.status_code >= 500 or exc.status_code == 408:
        return Transient(text)
    return ModelError(text)


def _seconds(timeout: Any) -> str:
    read = getattr(timeout, "read", timeout)
    return f"{read:g}" if isinstance(read, int | float) else str(read)


@dataclass
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    # prompt tokens the server's prefix cache served (OpenAI; vLLM with
    # --enable-prompt-tokens-details); 0 where it does not say
    cached_tokens: int = 0


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
    # For a server this process runs: None while it is alive, else why it died. Checked when
    # a call cannot connect or times out, to tell a crashed server from a slow one.
    crashed: Callable[[], str | None] | None = None

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
            raise _classify(self.name, self.model, exc) from exc
        except openai.APITimeoutError as exc:
            if self.crashed and (why := self.crashed()):
                raise RouteDown(why) from exc
            raise TimedOut(f"the {self.name} model ({self.model}) timed out after "
                           f"{_seconds(self.client.timeout)}s (it is running, but slow)") \
                from exc
        except openai.APIConnectionError as exc:
            if self.crashed and (why := self.crashed()):
                raise RouteDown(why) from exc
            raise Transient(
                f"cannot reach the {self.name} model at {self.client.base_url}: {exc}"
            ) from exc
        if not response.choices:
            raise ModelError(f"the {self.name} model ({self.model}) returned no choices")
        choice = response.choices[0]
        usage = response.usage
        details = getattr(usage, "prompt_tokens_details", None)
        return Completion(
            text=choice.message.content or "",
            model=response.model or self.model,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason,
            cached_tokens=int(getattr(details, "cached_tokens", 0) or 0),
        )
