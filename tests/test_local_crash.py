"""The embedded server dying is reported as what it is, once, and nobody waits for it.

A real llama.cpp server is started and killed with a real signal: SIGILL (what a runtime
built for another CPU dies of) and SIGKILL (out of memory, or an operator)."""

import os
import signal
import time

import pytest
from openai import OpenAI

from deckgen.deck import Generator, generate_deck
from deckgen.llm.client import ModelRoute, Transient
from deckgen.llm.local import LlamaCounter, LocalServer, exit_reason
from deckgen.llm.router import Router
from tests.samples import BRIEF

pytestmark = pytest.mark.slow


@pytest.fixture
def doomed(config):
    """A llama.cpp server of its own, for this test to kill."""
    server = LocalServer(config.local_model_path, config.local_context, 1)
    url = server.start()
    client = OpenAI(base_url=url, api_key="local", max_retries=0, timeout=60)
    route = ModelRoute("local", config.local_model_path.stem, config.local_context,
                       LlamaCounter(config.local_model_path), client, "llama.cpp",
                       crashed=server.crash)
    yield server, route
    server.stop()


@pytest.mark.parametrize("sig", [signal.SIGILL, signal.SIGKILL])
def test_a_killed_local_server_fails_every_section_at_once_naming_the_signal(
        doomed, sig, specs, cases, renderer):
    server, route = doomed
    assert server.state() == "running" and server.crash() is None
    os.kill(server.proc.pid, sig)
    server.proc.wait(timeout=10)
    assert server.state() == "crashed"

    router = Router(lambda name: route, ["local"])
    gen = Generator(specs, cases, renderer, router)
    started = time.monotonic()
    deck = generate_deck(gen, BRIEF, list(specs.values()), "local")
    elapsed = time.monotonic() - started

    assert [s.status for s in deck.sections] == ["failed"] * len(specs)
    messages = [s.error["message"] for s in deck.sections]
    assert all(sig.name in m for m in messages), messages
    # the whole story (signal and the log's tail) once; the other sections one short line
    assert sum("last log lines" in m for m in messages) == 1, messages
    assert all(s.error["code"] == "model_error" for s in deck.sections)
    assert all(s.attempts <= 1 for s in deck.sections)  # nobody retried a dead server
    assert elapsed < 10, f"sections waited {elapsed:.1f}s for a dead server"
    assert router.health()["local"]["down"].startswith("the local llama.cpp server died")


def test_a_dead_local_server_fails_over_where_the_policy_allows(doomed, fake_route, specs,
                                                               cases, renderer, fake_openai):
    server, route = doomed
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)
    routes = {"local": route, "self-hosted": fake_route}
    router = Router(routes.__getitem__, ["local", "self-hosted"])
    gen = Generator(specs, cases, renderer, router)
    deck = generate_deck(gen, BRIEF, list(specs.values()), "auto")
    assert all(s.status == "ok" and s.route == "self-hosted" for s in deck.sections)
    assert all(s.failovers and s.failovers[0]["code"] == "model_crashed"
               and "SIGKILL" in s.failovers[0]["message"] for s in deck.sections)


def test_a_slow_server_is_not_called_crashed(doomed, specs):
    server, route = doomed
    impatient = OpenAI(base_url=str(route.client.base_url), api_key="local", max_retries=0,
                       timeout=0.05)
    slow = ModelRoute(route.name, route.model, route.context, route.counter, impatient,
                      route.structured, crashed=server.crash)
    with pytest.raises(Transient, match="running, but slow"):
        slow.complete([{"role": "user", "content": "Write a long story."}], section="data",
                      schema=specs["data"].json_schema(), max_tokens=200, temperature=0)
    assert server.state() == "running"


def test_exit_reasons_read_as_words():
    assert exit_reason(-signal.SIGILL).startswith("died from SIGILL (illegal instruction")
    assert exit_reason(128 + signal.SIGKILL).startswith("died from SIGKILL")
    assert exit_reason(1) == "exited with status 1"
