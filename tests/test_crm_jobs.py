"""The CRM door end to end, against fake HubSpot and Salesforce servers on 127.0.0.1 speaking
their HTTP protocols through the real clients: the CRMs listed, an opportunity's brief
resolved (and the errors a caller meets), a job and batch items started from an opportunity,
and the deck's link written back onto the record through a CRM that fails twice."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from deckgen.crm.outbox import Outbox
from tests.fake_hubspot import TOKEN, FakeHubSpot
from tests.slides_fixtures import realistic_template
from tests.webhook_signing import hubspot_signed, stage_event

PUBLIC = "https://deckgen.example.com"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def template(google) -> str:
    return google.add_presentation(realistic_template(), owner_token="service-account")


@pytest.fixture
def app_env(hubspot, sf, google, service_account_file, template, tmp_path) -> dict[str, str]:
    mapping = tmp_path / "hubspot.yaml"
    default = (ROOT / "deckgen" / "data" / "crm-hubspot.yaml").read_text()
    mapping.write_text(default.replace("triggers: []", (
        "triggers:\n  - stage: presentationscheduled\n"
        f"    template_id: {template}\n    title: '{{name}} for {{client}}'\n"
        "    sections: [data]\n  - stage: contractsent\n"
        f"    template_id: {template}\n    sections: [data]\n")))
    return {"DECKGEN_HUBSPOT_MAPPING": str(mapping), "DECKGEN_HUBSPOT_APP_SECRET": "app-secret",
            "DECKGEN_HUBSPOT_URL": hubspot.url, "DECKGEN_HUBSPOT_TOKEN": TOKEN,
            "DECKGEN_SALESFORCE_URL": sf.url, "DECKGEN_SALESFORCE_CLIENT_ID": sf.client_id,
            "DECKGEN_SALESFORCE_CLIENT_SECRET": sf.client_secret,
            "DECKGEN_CRM_CA_BUNDLE": sf.ca_bundle, "DECKGEN_PUBLIC_URL": PUBLIC,
            "GOOGLE_APPLICATION_CREDENTIALS": service_account_file,
            "DECKGEN_GOOGLE_API_ENDPOINT": google.url, "DECKGEN_DRIVE_API_ENDPOINT": google.url}


def acme(hubspot: FakeHubSpot, with_company: bool = True) -> str:
    deal = hubspot.add("deals", {"dealname": "Fleet telematics", "dealstage": "qualifiedtobuy",
                                 "amount": "120000",
                                 "description": "Drivers lose 2.5 hours a day to paper logs."})
    if with_company:
        company = hubspot.add("companies", {"name": "Acme Logistics",
                                            "industry": "TRANSPORTATION"})
        hubspot.associate("deals", deal, "companies", company)
    ana = hubspot.add("contacts", {"firstname": "Ana", "lastname": "Ruiz", "jobtitle": "CFO"})
    hubspot.associate("deals", deal, "contacts", ana)
    return deal


def notes_on(hubspot: FakeHubSpot, deal: str) -> list[str]:
    return [hubspot.objects["notes"][n]["properties"]["hs_note_body"]
            for n in hubspot.associated("deals", deal, "notes")]


def wait_for(client, api_key, job_id, states=("done", "failed"), timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = client.get(f"/v1/jobs/{job_id}", headers=api_key).get_json()
        if view["state"] in states:
            return view
        time.sleep(0.05)
    raise AssertionError(view)


def settled(store, job_id, timeout=30.0):
    """The job once it has ended (a job no caller's key can see: the webhook's)."""
    deadline = time.monotonic() + timeout
    while (job := store.get_job(job_id)).state not in ("done", "failed", "cancelled"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


def test_the_crms_this_server_reads(client, api_key):
    answer = client.get("/v1/crms", headers=api_key)
    assert answer.status_code == 200
    assert answer.get_json()["crms"] == [
        {"name": "salesforce", "label": "Salesforce", "configured": True},
        {"name": "hubspot", "label": "HubSpot", "configured": True}]
    assert client.get("/v1/crms").status_code == 401


def test_an_opportunity_resolves_to_a_brief_from_either_crm(client, api_key, hubspot, sf):
    deal = acme(hubspot)
    answer = client.post("/v1/briefs/resolve", headers=api_key,
                         json={"crm": "hubspot", "opportunity_id": deal})
    assert answer.status_code == 200, answer.get_json()
    view = answer.get_json()
    assert view["brief"]["client"] == "Acme Logistics"
    assert view["brief"]["contacts"] == [{"name": "Ana Ruiz", "role": "CFO"}]
    assert (view["name"], view["stage"]) == ("Fleet telematics", "qualifiedtobuy")

    account = sf.add("Account", Name="Harbor Logistics", Industry="Logistics")
    opp = sf.add("Opportunity", Name="Dock scheduling", StageName="Proposal",
                 AccountId=account)
    answer = client.post("/v1/briefs/resolve", headers=api_key,
                         json={"crm": "salesforce", "opportunity_id": opp})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["brief"]["client"] == "Harbor Logistics"
    assert answer.get_json()["url"].endswith(f"/lightning/r/Opportunity/{opp}/view")


def test_what_a_caller_meets_when_the_record_cannot_be_read(client, api_key, hubspot):
    def resolve(deal):
        return client.post("/v1/briefs/resolve", headers=api_key,
                           json={"crm": "hubspot", "opportunity_id": deal})

    missing = resolve("987654")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "opportunity_not_found"

    orphan = resolve(acme(hubspot, with_company=False))
    assert orphan.status_code == 422
    error = orphan.get_json()["error"]
    assert (error["code"], error["field"]) == ("crm_field_missing", "brief.client")
    assert "company.name" in error["message"]

    hubspot.fail_next(503, times=1)
    away = resolve(acme(hubspot))
    assert away.status_code == 503 and int(away.headers["Retry-After"]) >= 1
    assert away.get_json()["error"]["code"] == "crm_unavailable"

    bad = client.post("/v1/briefs/resolve", headers=api_key,
                      json={"crm": "hubspot", "opportunity_id": "1 OR 1=1"})
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "opportunity_id"


def test_a_job_from_an_opportunity_links_its_deck_back_through_failures(app, client, api_key,
                                                                       hubspot, store):
    deal = acme(hubspot)
    answer = client.post("/v1/jobs", headers=api_key, json={
        "crm": "hubspot", "opportunity_id": deal, "output": "pptx", "sections": ["data"]})
    assert answer.status_code == 202, answer.get_json()
    view = answer.get_json()
    assert view["opportunity"]["id"] == deal and view["opportunity"]["crm"] == "hubspot"
    assert store.get_job(view["id"]).request["brief"]["client"] == "Acme Logistics"

    app.extensions["deckgen"]["runner"].start()
    done = wait_for(client, api_key, view["id"])
    assert done["state"] == "done", done
    assert done["writeback"] == {"state": "pending", "attempts": 0}

    # the CRM is away for two attempts; the outbox backs off and gets through on the third
    now = [time.time()]
    outbox = Outbox(store, app.extensions["deckgen"]["service"].container.crm, PUBLIC,
                    clock=lambda: now[0])
    hubspot.fail_next(503, times=2)
    assert outbox.run_due() == 1
    assert outbox.run_due() == 0  # not due again until its back-off is over
    view = client.get(f"/v1/jobs/{done['id']}", headers=api_key).get_json()
    assert view["writeback"]["state"] == "pending"
    assert view["writeback"]["error"]["code"] == "crm_unavailable"
    for _ in range(2):
        now[0] += 3600
        assert outbox.run_due() == 1
    view = client.get(f"/v1/jobs/{done['id']}", headers=api_key).get_json()
    assert view["writeback"] == {"state": "done", "attempts": 3}
    [note] = notes_on(hubspot, deal)
    assert f"{PUBLIC}/v1/jobs/{done['id']}/deck.pptx" in note
    now[0] += 3600
    assert outbox.run_due() == 0  # done is done: the record gets one note


def test_batch_items_read_their_opportunity_when_they_run(app, client, api_key, hubspot,
                                                         google, store):
    deal = acme(hubspot)
    decks = [google.add_presentation(realistic_template(), owner_token="service-account")
             for _ in range(2)]
    answer = client.post("/v1/batches", headers=api_key, json={"sections": ["data"], "items": [
        {"presentation_id": decks[0], "crm": "hubspot", "opportunity_id": deal},
        {"presentation_id": decks[1], "crm": "hubspot", "opportunity_id": "424242"}]})
    assert answer.status_code == 202, answer.get_json()
    jobs = answer.get_json()["items"]
    assert all(store.get_job(j["id"]).request["brief"] is None for j in jobs)

    app.extensions["deckgen"]["runner"].start()
    good, missing = (wait_for(client, api_key, j["id"]) for j in jobs)
    assert good["state"] == "done", good
    assert "{{data}}" not in google.shape_text(decks[0], "data_body")
    assert store.get_job(good["id"]).request["brief"]["client"] == "Acme Logistics"
    assert missing["state"] == "failed"
    assert missing["error"]["code"] == "opportunity_not_found"
    assert google.shape_text(decks[1], "data_body").strip() == "{{data}}"
    # the written deck's link is owed to its deal; the failed one has nothing to link
    assert store.writeback(good["id"]).state == "pending"
    assert store.deck_of("key:crm", "hubspot", deal) == decks[0]


def test_a_batch_item_names_a_brief_or_a_record_not_both(client, api_key, hubspot):
    answer = client.post("/v1/batches", headers=api_key, json={"items": [
        {"presentation_id": "d1", "brief": {"client": "A"}, "crm": "hubspot",
         "opportunity_id": "1"}]})
    assert answer.status_code == 422
    assert answer.get_json()["error"]["field"] == "items[0].brief"


def test_a_schedule_refreshes_the_decks_of_open_deals_archived_first(app, client, api_key,
                                                                      hubspot, google, store):
    from deckgen.schedules import add_schedule

    deal, other = acme(hubspot), acme(hubspot)
    deck = google.add_presentation(realistic_template(), owner_token="service-account")
    runner = app.extensions["deckgen"]["runner"]
    runner.start()
    first = client.post("/v1/jobs", headers=api_key, json={
        "crm": "hubspot", "opportunity_id": deal, "presentation_id": deck,
        "sections": ["data"]}).get_json()
    assert wait_for(client, api_key, first["id"])["state"] == "done"
    written = google.shape_text(deck, "data_body")

    schedule = add_schedule(store, "key:crm", "open deals", "0 6 * * 1",
                            {"crm_query": {"crm": "hubspot", "changed_since_last_run": True}},
                            sections=["data"], now=time.time())
    ticker = app.extensions["deckgen"]["schedules"]
    [run] = ticker.tick(schedule.next_run_at)
    assert run.error is None, run.error
    [job] = store.get_batch(run.batch_id)[1]  # `other` has no deck yet: nothing to refresh
    assert job.presentation_id == deck
    assert job.request["opportunity"] == {"crm": "hubspot", "id": deal}
    assert job.request["archive"] is True and job.request["brief"] is None

    done = wait_for(client, api_key, job.id)
    assert done["state"] == "done", done
    [copy] = google.copies(of=deck)
    assert "{{data}}" not in google.shape_text(copy["id"], "data_body")
    assert google.shape_text(copy["id"], "data_body") == written  # the version it replaced
    assert store.writeback(job.id).state == "pending"
    assert other not in [j.request["opportunity"]["id"]
                         for j in store.get_batch(run.batch_id)[1]]


def test_a_deal_reaching_a_stage_gets_a_deck_and_later_stages_refresh_it(app, client, api_key,
                                                                         hubspot, google,
                                                                         store, template):
    deal = acme(hubspot)
    app.extensions["deckgen"]["runner"].start()

    def deliver(stage, event_id):
        body = json.dumps([stage_event(int(deal), stage, event_id)]).encode()
        answer = client.post("/v1/webhooks/hubspot", data=body,
                             headers=hubspot_signed(body, secret="app-secret"))
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()["jobs"]

    [first] = deliver("presentationscheduled", 1)
    job = settled(store, first)
    assert job.state == "done", job.error
    [copy] = google.copies(of=template)
    assert copy["name"] == "Fleet telematics for Acme Logistics"
    assert job.result["presentation_id"] == copy["id"]
    assert "{{data}}" not in google.shape_text(copy["id"], "data_body")
    assert google.shape_text(template, "data_body").strip() == "{{data}}"  # untouched
    assert store.deck_of("crm:hubspot", "hubspot", deal) == copy["id"]

    assert deliver("presentationscheduled", 2) == [first]  # HubSpot retrying: same job
    assert deliver("closedwon", 3) == []  # no trigger for this stage
    # a later stage refreshes the deck the deal has (archived first), no second copy
    [second] = deliver("contractsent", 4)
    assert second != first
    refreshed = store.get_job(second)
    assert refreshed.request["target"] == "presentation"
    assert refreshed.presentation_id == copy["id"] and refreshed.request["archive"] is True
    refreshed = settled(store, second)
    assert refreshed.state == "done", refreshed.error
    assert [c["id"] for c in google.copies(of=template)] == [copy["id"]]
    assert len(google.copies(of=copy["id"])) == 1  # the archive of the first version
