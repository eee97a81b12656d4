"""A fake OpenAI-compatible chat completions server on 127.0.0.1, for tests.

It speaks the HTTP protocol the `openai` client speaks (POST /v1/chat/completions, GET
/v1/models, OpenAI's error body shape), records every request body, and answers from a
script: per section (the `json_schema.name` of the request's response_format) a queue of
replies. A reply is a string (the message content), a dict {"status": 429, "code": ...,
"headers": {...}} for an error, {"delay": seconds, ...} to answer slowly, or
{"dynamic": function(body) -> content} to answer from the request. With nothing
scripted it answers with a minimal valid instance of the requested JSON schema.

Its usage counts a token per four characters and reports `prompt_tokens_details.
cached_tokens` the way OpenAI documents its prompt cache: a prompt of 1,024 tokens or more
is served from cache for the longest prefix it shares with a prompt answered before it, in
steps of 128 tokens from 1,024 on; a request that arrives while the other is still being
answered finds nothing."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")


def instance_of(schema: dict[str, Any], label: str = "x") -> Any:
    """The smallest value that satisfies the (deckgen-shaped) schema."""
    kind = schema.get("type")
    if kind == "object":
        return {k: instance_of(v, k) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        # ordinal words, not digits: a figure the brief does not hold is a grounding claim
        return [instance_of(schema["items"], f"{label} {_ORDINALS[i % len(_ORDINALS)]}")
                for i in range(schema.get("minItems", 1))]
    text = f"{label} text"
    return text[: schema.get("maxLength", len(text))]


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.times: list[float] = []  # time.monotonic() of each request's arrival
        self.script: dict[str | None, deque[Any]] = defaultdict(deque)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.answered: list[str] = []  # the prompts answered so far, as the cache sees them
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def reply(self, section: str | None, *replies: Any) -> None:
        """Queue replies for requests about `section` (None: any section)."""
        with self.lock:
            self.script[section].extend(replies)

    def bodies(self, section: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.requests if section is None or _section(r) == section]

    def _next(self, section: str | None) -> Any:
        with self.lock:
            for key in (section, None):
                if self.script[key]:
                    return self.script[key].popleft()
        return None

    @Request.application
    def app(self, request: Request) -> Response:
        if request.path.rstrip("/") == "/v1/models":
            return _json({"object": "list", "data": [{"id": "fake", "object": "model"}]})
        if request.path != "/v1/chat/completions" or request.method != "POST":
            return _error(404, "not_found", f"no route {request.method} {request.path}")
        try:
            body = json.loads(request.get_data())
        except json.JSONDecodeError:
            return _error(400, "invalid_json", "body is not JSON")
        problems = _check(body)
        if problems:
            return _error(400, "invalid_request_error", problems)
        prompt = "".join(f"<{m['role']}>{m['content']}" for m in body["messages"])
        with self.lock:
            self.requests.append(body)
            self.times.append(time.monotonic())
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            cached = self._cached(prompt)
        try:
            response = self._answer(body, cached)
            if response.status_code == 200:  # only a prompt that was read can be cached
                with self.lock:
                    self.answered.append(prompt)
            return response
        finally:
            with self.lock:
                self.in_flight -= 1

    def _answer(self, body: dict[str, Any], cached: int) -> Response:
        section = _section(body)
        step = self._next(section)
        if isinstance(step, dict) and "delay" in step:
            time.sleep(step["delay"])
            step = step.get("then")
        if isinstance(step, dict) and "dynamic" in step:
            step = step["dynamic"](body)  # an answer computed from the request
        if isinstance(step, dict) and "status" in step:
            return _error(step["status"], step.get("code", "error"),
                          step.get("message", "scripted error"), step.get("headers"))
        if step is None:
            schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema")
            step = json.dumps(instance_of(schema)) if schema else "{}"
        prompt = sum(len(m.get("content", "")) for m in body["messages"]) // 4
        return _json({
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": step}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": len(step) // 4,
                      "total_tokens": prompt + len(step) // 4,
                      "prompt_tokens_details": {"cached_tokens": cached}},
        })

    def _cached(self, text: str) -> int:
        """Prompt tokens the cache holds for `text`, at its arrival (lock held)."""
        shared = max((_common_prefix(text, seen) for seen in self.answered), default=0)
        tokens = shared // 4
        return 0 if tokens < 1024 else 1024 + (tokens - 1024) // 128 * 128


def _common_prefix(a: str, b: str) -> int:
    low, high = 0, min(len(a), len(b))  # a[:low] == b[:low]; binary search, compared in C
    while low < high:
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def _section(body: dict[str, Any]) -> str | None:
    return (body.get("response_format") or {}).get("json_schema", {}).get("name")


def _check(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "model is required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    for m in messages:
        if m.get("role") not in ("system", "user", "assistant") or not isinstance(
                m.get("content"), str):
            return f"bad message {m!r}"
    return ""


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status=status, headers=headers,
                    content_type="application/json")


def _error(status: int, code: str, message: str,
           headers: dict[str, str] | None = None) -> Response:
    kind = "insufficient_quota" if code == "insufficient_quota" else "invalid_request_error"
    return _json({"error": {"message": message, "type": kind, "param": None, "code": code}},
                 status, headers)
