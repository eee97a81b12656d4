"""An OpenAI-compatible model server with controlled speed, for benchmarks.

    .venv/bin/python bench/model_server.py --profile vllm-like --port 8001

Each answer is a schema-valid JSON section of realistic length; it is sent after
`ttft + completion_tokens / tps` seconds. At most `concurrency` requests are served at once
(a GPU server's batch); the rest wait in a queue, as they would on vLLM. The server keeps
the time it spent with all its slots busy, so a benchmark can say how well it was fed."""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import tiktoken
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from deckgen.budget import BUNDLED_TIKTOKEN  # noqa: F401 - sets where tiktoken's files are


@dataclass(frozen=True)
class Profile:
    ttft: float  # seconds to first token
    tps: float  # tokens per second per stream
    concurrency: int  # streams served at once


PROFILES = {
    "gpt4-like": Profile(0.8, 40.0, 64),
    "vllm-like": Profile(0.1, 80.0, 16),
    "zero": Profile(0.0, 1e9, 256),
}
WORDS = ("dispatch plan carrier slot dock yard wait fee route invoice status data team "
         "report weekly target margin cost delay gate truck").split()


def answer_for(schema: dict[str, Any]) -> Any:
    """A schema-valid value about 60% as long as the limits allow."""
    kind = schema.get("type")
    if kind == "object":
        return {k: answer_for(v) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        n = min(schema.get("maxItems", 4), schema.get("minItems", 1) + 1)
        return [answer_for(schema["items"]) for _ in range(n)]
    limit = int(schema.get("maxLength", 80) * 0.6)
    words, text = iter(WORDS * 10), ""
    while len(text) < limit - 8:
        text = f"{text} {next(words)}".strip()
    return text.capitalize()


class ModelServer:
    def __init__(self, profile: Profile, port: int = 0) -> None:
        import os

        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(BUNDLED_TIKTOKEN))
        self.profile = profile
        self.encoding = tiktoken.get_encoding("o200k_base")
        self.slots = threading.BoundedSemaphore(profile.concurrency)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.full_since: float | None = None
        self.full_seconds = 0.0
        self.requests = 0
        self.server = make_server("127.0.0.1", port, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def start(self) -> ModelServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def _busy(self, delta: int) -> None:
        with self.lock:
            now = time.monotonic()
            if self.full_since is not None:
                self.full_seconds += now - self.full_since
                self.full_since = None
            self.in_flight += delta
            if self.in_flight >= self.profile.concurrency:
                self.full_since = now

    def saturated_seconds(self) -> float:
        with self.lock:
            extra = time.monotonic() - self.full_since if self.full_since else 0.0
            return self.full_seconds + extra

    @Request.application
    def app(self, request: Request) -> Response:
        if request.path.rstrip("/").endswith("/models"):
            return Response(json.dumps({"data": [{"id": "bench"}]}),
                            content_type="application/json")
        body = json.loads(request.get_data())
        fmt = body.get("response_format") or {}
        schema = fmt.get("json_schema", {}).get("schema") or fmt.get("schema") or {}
        content = json.dumps(answer_for(schema)) if schema else "{}"
        completion = len(self.encoding.encode(content))
        with self.slots:
            self._busy(+1)
            try:
                time.sleep(self.profile.ttft + completion / self.profile.tps)
            finally:
                self._busy(-1)
        with self.lock:
            self.requests += 1
        prompt = sum(len(m.get("content", "")) for m in body["messages"]) // 4
        return Response(json.dumps({
            "id": "bench", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}}), content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", choices=sorted(PROFILES), default="vllm-like")
    parser.add_argument("--ttft", type=float)
    parser.add_argument("--tps", type=float)
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    base = PROFILES[args.profile]
    profile = Profile(args.ttft if args.ttft is not None else base.ttft,
                      args.tps or base.tps, args.concurrency or base.concurrency)
    server = ModelServer(profile, args.port)
    print(f"serving {profile} at {server.url}", flush=True)
    server.server.serve_forever()


if __name__ == "__main__":
    main()
