"""The composition root: builds deckgen's collaborators from a Config, once.

The doors (cli.py, api.py, the Celery tasks) ask a Container for what they need instead of
wiring specs, cases, prompts, routes and writers themselves: the fill use case
(`container.filler`), the router (for health), the store. Tests build one with their own
router (a fake model server) the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deckgen.config import Config
from deckgen.deck import Generator
from deckgen.examples import Case, load_cases
from deckgen.fill import Filler, SlidesAccess
from deckgen.grounding import Grounding
from deckgen.llm.router import Router
from deckgen.prompts import PromptRenderer
from deckgen.sections import load_specs

if TYPE_CHECKING:
    from deckgen.crm.directory import CrmDirectory
    from deckgen.store import Store


def make_generator(config: Config, router: Router) -> Generator:
    specs = load_specs(config.prompts_dir)
    cases = load_cases(config.examples_dir, specs)
    return Generator(specs, cases, PromptRenderer(config.prompts_dir), router,
                     temperature=config.temperature, privacy=config.privacy,
                     **route_options(config, cases))


def route_options(config: Config, cases: list[Case]) -> dict[str, Any]:
    """The grounding guard and the per-route prompt policy, as configured (the service and
    `deckgen eval` build their generators with the same)."""
    return {"grounding": Grounding.from_cases(cases) if config.grounding else None,
            "no_ground_repair": frozenset() if config.local_ground_repair
            else frozenset({"local"}),
            "layouts": {"local": config.local_layout, "openai": config.openai_layout,
                        "self-hosted": config.self_hosted_layout},
            "shared_examples": {"local": config.local_examples,
                                "openai": config.shared_examples,
                                "self-hosted": config.shared_examples}}


def make_slides(config: Config) -> SlidesAccess:
    return SlidesAccess(config.google_credentials_file, config.google_slides_endpoint,
                        config.google_drive_endpoint, config.slides_writes_per_minute)


def open_store(config: Config) -> Store:
    from deckgen.store import Store

    return Store(config.database_url, pool_size=config.database_pool_size,
                 pool_timeout=config.database_pool_timeout, key=config.store_key or "")


@dataclass
class Container:
    config: Config
    router: Router
    generator: Generator
    filler: Filler
    _store: Store | None = field(default=None, repr=False)
    _crm: CrmDirectory | None = field(default=None, repr=False)

    @classmethod
    def build(cls, config: Config | None = None, *, router: Router | None = None,
              store: Store | None = None) -> Container:
        config = config or Config.from_env()
        router = router or Router.from_config(config)
        generator = make_generator(config, router)
        return cls(config, router, generator, Filler(generator, make_slides(config)), store)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.config)
        return self._store

    @property
    def crm(self) -> CrmDirectory:
        """The CRMs this server reads opportunities from (built on first use)."""
        if self._crm is None:
            from deckgen.crm.directory import CrmDirectory

            self._crm = CrmDirectory(self.config.crm)
        return self._crm

    def close(self) -> None:
        self.router.close()
