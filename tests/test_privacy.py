"""Confidential briefs never reach the external model: the fake OpenAI server records every
request body, and no confidential value may appear in any of them."""

import json
import re
import time

import pytest
from openai import OpenAI

from deckgen.brief import parse_brief
from deckgen.budget import TiktokenCounter
from deckgen.config import Config, RetryPolicy
from deckgen.deck import Generator, generate_deck, generate_section
from deckgen.errors import BriefError
from deckgen.llm.client import ModelRoute
from deckgen.llm.router import Router
from deckgen.privacy import PrivacyPolicy, Redactor
from tests.fake_openai import FakeOpenAI

SECRET = {
    "client": "Quillfeather Maritime", "industry": "Logistics",
    "opportunity": "Carve-out of the Baltic terminal business",
    "notes": "Sale price talks at 412 million euro with Oskar Vintergaard of Nordhavn Capital; "
             "board vote on 17 March. Contact: oskar.vintergaard@nordhavn.example",
    "contacts": [{"name": "Ingrid Solberg", "role": "Chief Strategy Officer"}],
    "metrics": {"Terminal EBITDA": "38.5 million euro"},
    "confidential": True,
}
OPEN = {"client": "Harbor Logistics", "industry": "Logistics",
        "notes": "Trucks queue for hours at the gates."}
VALUES = ["Quillfeather", "Maritime", "Baltic terminal", "412", "Oskar", "Vintergaard",
          "Nordhavn", "17 March", "oskar.vintergaard", "Ingrid", "Solberg", "38.5"]
QUOTA = {"status": 429, "code": "insufficient_quota", "message": "quota"}
DOWN = {"status": 503, "code": "server_error", "message": "down"}
QUICK = RetryPolicy(deadline=3, server_retries=1, backoff_initial=0.01, backoff_max=0.02)


@pytest.fixture
def outside():
    """The external (openai) route's server: it must never see a confidential value."""
    server = FakeOpenAI().start()
    yield server
    server.stop()


def leaks(server):
    bodies = json.dumps(server.requests)
    return [v for v in VALUES if v in bodies]


def route(name, server):
    client = OpenAI(base_url=server.url, api_key="k", max_retries=0, timeout=10)
    return ModelRoute(name, f"{name}-model", 8192, TiktokenCounter("gpt-4o"), client,
                      "openai" if name == "openai" else "json_schema")


def generator(specs, cases, renderer, routes, order, privacy=None, table=None):
    router = Router(lambda n: routes[n], order, QUICK, {}, table or {})
    return Generator(specs, cases, renderer, router, temperature=0.0,
                     privacy=privacy or PrivacyPolicy())


def test_the_secret_values_are_nowhere_in_our_own_prompts_or_cases(config):
    """Otherwise a 'leak' check could be fooled by the few-shot cases themselves."""
    ours = "".join(p.read_text() for d in (config.prompts_dir, config.examples_dir)
                   for p in d.rglob("*") if p.is_file())
    assert [v for v in VALUES if v in ours] == []


def test_briefs_mark_fields_and_contacts_confidential():
    whole = parse_brief(SECRET)
    assert set(VALUES[:1]) <= {w for v in whole.confidential_values() for w in v.split()}
    notes_only = parse_brief({**OPEN, "confidential": ["notes"]})
    assert notes_only.confidential_values() == [OPEN["notes"]]
    contact = parse_brief({**OPEN, "contacts": [{"name": "A B", "role": "CFO",
                                                  "confidential": True}, {"name": "C D"}]})
    assert contact.confidential_values() == ["A B", "CFO"]
    assert not parse_brief(OPEN).is_confidential
    with pytest.raises(BriefError, match="confidential must be true, false, or a list"):
        parse_brief({**OPEN, "confidential": ["salary"]})


def test_deployment_defaults_and_callers():
    policy = PrivacyPolicy.from_env({"DECKGEN_CONFIDENTIAL_FIELDS": "metrics",
                                     "DECKGEN_CONFIDENTIAL_CALLERS": "key:bank-crm"})
    brief = parse_brief({**OPEN, "metrics": {"ARR": "9m"}})
    assert policy.apply(brief).confidential_values() == ["ARR", "9m"]
    assert "Harbor Logistics" in policy.apply(brief, "key:bank-crm").confidential_values()
    assert not PrivacyPolicy().apply(brief).is_confidential


def test_confidential_sections_stay_internal_even_when_openai_comes_first(
        specs, cases, renderer, fake_openai, outside):
    routes = {"openai": route("openai", outside), "self-hosted": route("self-hosted", fake_openai)}
    gen = generator(specs, cases, renderer, routes, ["openai", "self-hosted"])
    secret = generate_deck(gen, parse_brief(SECRET), list(specs.values()))
    assert {s.route for s in secret.sections} == {"self-hosted"}
    assert {s.policy for s in secret.sections} == {"confidential:internal-only"}
    assert outside.requests == []
    opened = generate_deck(gen, parse_brief(OPEN), list(specs.values()))
    assert {s.route for s in opened.sections} == {"openai"} and len(outside.requests) == 5
    assert {s.policy for s in opened.sections} == {"open"}


def test_no_failover_to_openai_when_the_self_hosted_model_is_down(
        specs, cases, renderer, fake_openai, outside):
    fake_openai.reply(None, *[DOWN] * 50)
    routes = {"openai": route("openai", outside), "self-hosted": route("self-hosted", fake_openai)}
    gen = generator(specs, cases, renderer, routes, ["self-hosted", "openai"])
    result = generate_section(gen, specs["data"], parse_brief(SECRET))
    assert result.status == "failed"
    assert "confidential" in result.error["message"] and "self-hosted" in result.error["message"]
    assert outside.requests == [] and len(fake_openai.requests) == 2  # retried, then stopped


def test_a_pinned_openai_route_refuses_a_confidential_brief(specs, cases, renderer, outside):
    gen = generator(specs, cases, renderer, {"openai": route("openai", outside)}, ["openai"])
    result = generate_section(gen, specs["skills"], parse_brief(SECRET), route="openai")
    assert result.status == "failed"
    assert result.error["code"] == "confidential_no_internal_route"
    assert outside.requests == []


def test_redaction_sends_placeholders_and_restores_the_answer(specs, cases, renderer, outside):
    def answer_with_placeholders(body):
        text = body["messages"][-1]["content"]
        person = re.search(r"\[PERSON_\d+\]", text).group(0)
        org = re.search(r"\[ORG_\d+\]", text).group(0)
        return json.dumps({"title": f"{org} and its sale", "people": [
            {"name": person, "role": "Chief Strategy Officer", "cares_about": "a clean exit"},
            {"name": "[NAME_99]", "role": "Board", "cares_about": "timing"}]})

    gen = generator(specs, cases, renderer, {"openai": route("openai", outside)}, ["openai"],
                    privacy=PrivacyPolicy(redact=True))
    outside.reply("stakeholders", {"dynamic": answer_with_placeholders})
    result = generate_section(gen, specs["stakeholders"], parse_brief(SECRET))
    assert result.status == "ok", result.error
    assert result.policy == "confidential:redacted"
    assert result.content["title"] == "Quillfeather Maritime and its sale"
    assert result.content["people"][0]["name"] == "Ingrid Solberg"
    assert result.content["people"][1]["name"] == "[NAME_99]"  # unknown: left as is
    assert leaks(outside) == [] and len(outside.requests) == 1
    # the few-shot examples are other clients' cases: sent as written, not "redacted"
    sent = outside.requests[0]["messages"]
    unredacted = renderer.render_prompt(specs["stakeholders"], parse_brief(SECRET),
                                        [c for c in cases if c.id in result.examples_used])
    assert sent[:-1] == unredacted[:-1]
    assert "[ORG_" in sent[-1]["content"] and "[ORG_" not in json.dumps(sent[:-1])


def test_redactor_is_stable_and_reversible():
    brief = parse_brief(SECRET)
    redactor = Redactor(brief)
    text = redactor.redact(brief.notes)
    assert redactor.redact(brief.notes) == text
    assert not [v for v in VALUES if v in text]
    assert redactor.restore(text) == brief.notes


def test_batches_and_regeneration_through_the_service_never_leak(
        tmp_path, specs, fake_openai, outside, google, service_account_file):
    from deckgen.api import create_app
    from deckgen.auth import new_key
    from deckgen.store import Store
    from tests.slides_fixtures import realistic_template

    outside.reply(None, QUOTA)  # the external route runs out of quota on the first call
    fake_openai.reply(None, {"status": 429, "code": "rate_limit_exceeded", "message": "slow",
                             "headers": {"retry-after": "0.05"}})
    decks = [google.add_presentation(realistic_template(), owner_token="service-account")
             for _ in range(4)]
    config = Config.from_env({
        "DECKGEN_OUTPUT_DIR": str(tmp_path / "decks"), "DECKGEN_WORKERS": "2",
        "GOOGLE_APPLICATION_CREDENTIALS": service_account_file,
        "DECKGEN_GOOGLE_API_ENDPOINT": google.url, "DECKGEN_DRIVE_API_ENDPOINT": google.url,
        "DECKGEN_SLIDES_WRITES_PER_MINUTE": "600",
        "DECKGEN_ROUTE_TABLE": ";".join(f"{s}=openai,self-hosted" for s in specs)})
    routes = {"openai": route("openai", outside), "self-hosted": route("self-hosted", fake_openai)}
    router = Router(lambda n: routes[n], ["openai", "self-hosted"], QUICK, {},
                    config.route_table)
    store = Store(str(tmp_path / "db.sqlite3"))
    app = create_app(config, store=store, router=router)
    key, digest = new_key()
    store.add_key("crm", digest)
    headers = {"Authorization": f"Bearer {key}"}
    client = app.test_client()
    try:
        items = [{"presentation_id": d, "brief": SECRET if i % 2 == 0 else OPEN}
                 for i, d in enumerate(decks)]
        batch = client.post("/v1/batches", json={"items": items}, headers=headers).get_json()
        for _ in range(400):
            view = client.get(f"/v1/batches/{batch['id']}", headers=headers).get_json()
            if view["counts"]["done"] + view["counts"]["failed"] == len(decks):
                break
            time.sleep(0.05)
        assert view["counts"]["done"] == len(decks), view
        again = client.post("/v1/jobs", headers=headers, json={
            "brief": SECRET, "presentation_id": decks[0], "sections": ["data"]}).get_json()
        for _ in range(200):
            again = client.get(f"/v1/jobs/{again['id']}", headers=headers).get_json()
            if again["state"] in ("done", "failed"):
                break
            time.sleep(0.05)
        assert again["state"] == "done"
        rows = [g for item in view["items"] for g in store.generations(item["id"])]
        secret_ids = {view["items"][i]["id"] for i in (0, 2)}
        for row in rows:
            if row["job_id"] in secret_ids:
                assert (row["policy"], row["route"]) == ("confidential:internal-only",
                                                         "self-hosted")
            else:
                assert row["policy"] == "open"
        assert leaks(outside) == []
        assert google.shape_text(decks[0], "title_client").strip() == "Quillfeather Maritime"
    finally:
        app.extensions["deckgen"]["runner"].stop()
