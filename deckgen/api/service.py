"""What every view of one app shares: the collaborators built once by the factory (store,
fill use case, job runner, authenticator, metrics, limits), who is calling, and the checks
on fill options that jobs, batches and previews have in common."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app, request

from deckgen.api.bodies import InvalidRequest
from deckgen.api.throttle import Throttle
from deckgen.auth import Authenticator, Caller
from deckgen.brief import Brief
from deckgen.config import Config
from deckgen.container import Container
from deckgen.deck import Generator
from deckgen.errors import DeckgenError
from deckgen.fill import Filler
from deckgen.jobs import JobRunner
from deckgen.llm.router import Router
from deckgen.metrics import Metrics
from deckgen.sections import SectionSpec, pick_sections
from deckgen.store import Store


@dataclass
class Service:
    container: Container
    runner: JobRunner
    auth: Authenticator
    metrics: Metrics
    throttle: Throttle
    dispatch: Callable[[str], None] | None = None
    document: dict[str, Any] | None = None  # /openapi.json, built on first request

    @property
    def config(self) -> Config:
        return self.container.config

    @property
    def store(self) -> Store:
        return self.container.store

    @property
    def router(self) -> Router:
        return self.container.router

    @property
    def generator(self) -> Generator:
        return self.container.generator

    @property
    def filler(self) -> Filler:
        return self.container.filler

    @property
    def specs(self) -> dict[str, SectionSpec]:
        return self.generator.specs

    def caller(self) -> Caller:
        """Who is calling (401 / 403 otherwise). Every /v1 view calls this first, before it
        looks anything up, so a stranger learns nothing about which ids exist."""
        return self.auth.authenticate(dict(request.headers))

    def options(self, sections: list[str] | None, route: str, brief: Brief | None,
                owner: str) -> list[SectionSpec]:
        """The sections to write, checked against the deck's specs, and the route checked
        against what this server lets an HTTP caller start and what the brief may use (a
        confidential brief on an external route alone could never be written: a 422 now
        rather than a job or preview that fails).

        Naming route `local` starts the embedded llama.cpp model inside the service (about
        a gigabyte of memory and most of the CPU): only an operator may allow that. `auto`
        stays allowed even when it resolves to local, because it does so only where the
        operator configured no other model: then the embedded model is the service's model
        by the operator's choice, not the caller's.

        A brief read from a CRM by the worker (`brief` None here) is checked there: a
        confidential one on a route that offers no internal model fails its sections."""
        if route == "local" and not self.config.allow_local_route:
            raise InvalidRequest("route local (the embedded model) is not enabled for HTTP "
                                 "callers on this server; use auto, or ask the operator to "
                                 "set DECKGEN_ALLOW_LOCAL_ROUTE=1", field="route")
        try:
            chosen = pick_sections(self.specs, sections)
        except DeckgenError as exc:
            raise InvalidRequest(exc.message, field="sections") from None
        if brief is None:
            return chosen
        level = self.generator.privacy.level(self.generator.privacy.apply(brief, owner))
        stuck = [s.name for s in chosen if not self.router.plan(s.name, route, level)]
        if stuck:
            raise InvalidRequest(f"the brief is confidential, so only the self-hosted or local "
                                 f"model may write it, and route {route} offers neither for "
                                 f"{', '.join(stuck)}", field="route")
        return chosen


def service() -> Service:
    """The Service of the app handling this request."""
    found: Service = current_app.extensions["deckgen"]["service"]
    return found
