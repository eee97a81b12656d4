"""Webhooks in: a signed HubSpot or Salesforce delivery saying an opportunity reached a stage
the mapping has a trigger for becomes one job (the same job for the same opportunity and
stage); a forged, stale, replayed or unsigned delivery is refused and starts nothing."""

from __future__ import annotations

import json
import time

import pytest

from deckgen.crm.webhooks import (
    WebhookRejected,
    hubspot_events,
    salesforce_events,
    verify_hubspot,
    verify_salesforce,
)
from tests.webhook_signing import (
    HUBSPOT_SECRET,
    PUBLIC,
    SALESFORCE_SECRET,
    hubspot_signed,
    salesforce_signed,
    stage_event,
)


@pytest.fixture
def app_env(tmp_path) -> dict[str, str]:
    hubspot = tmp_path / "hubspot.yaml"
    hubspot.write_text("brief:\n  client: '{company.name}'\ntriggers:\n"
                       "  - stage: presentationscheduled\n    template_id: tmpl-hs\n"
                       "    title: '{name} proposal'\n    sections: [data]\n")
    salesforce = tmp_path / "salesforce.yaml"
    salesforce.write_text("brief:\n  client: '{Opportunity.Account.Name}'\ntriggers:\n"
                          "  - stage: Proposal/Price Quote\n    template_id: tmpl-sf\n")
    return {"DECKGEN_PUBLIC_URL": PUBLIC, "DECKGEN_HUBSPOT_APP_SECRET": HUBSPOT_SECRET,
            "DECKGEN_HUBSPOT_MAPPING": str(hubspot),
            "DECKGEN_SALESFORCE_WEBHOOK_SECRET": SALESFORCE_SECRET,
            "DECKGEN_SALESFORCE_MAPPING": str(salesforce)}


def jobs_of(store, owner):
    with store.tx(readonly=True) as cur:
        cur.execute("SELECT id FROM jobs WHERE owner = ?", (owner,))
        ids = [r["id"] for r in cur.fetchall()]
    return [store.get_job(i) for i in ids]


def test_a_signed_hubspot_stage_change_starts_one_job(client, store):
    body = json.dumps([stage_event(123, "presentationscheduled"),
                       stage_event(124, "closedwon", 2),
                       {"subscriptionType": "contact.creation", "objectId": 5}]).encode()
    answer = client.post("/v1/webhooks/hubspot", data=body, headers=hubspot_signed(body))
    assert answer.status_code == 200, answer.get_json()
    view = answer.get_json()
    assert view["received"] == 3 and view["ignored"] == 2 and len(view["jobs"]) == 1
    [job] = jobs_of(store, "crm:hubspot")
    assert job.id == view["jobs"][0] and job.state == "queued"
    assert job.request["brief"] is None  # read from HubSpot by the worker that runs it
    assert job.request["opportunity"] == {"crm": "hubspot", "id": "123"}
    assert (job.request["target"], job.request["template_id"], job.request["title"]) == \
        ("template", "tmpl-hs", "{name} proposal")
    assert list(job.progress) == ["data"]

    # HubSpot delivers the same change again (a retry, new timestamp): the same job
    again = json.dumps([stage_event(123, "presentationscheduled", 7)]).encode()
    answer = client.post("/v1/webhooks/hubspot", data=again, headers=hubspot_signed(again))
    assert answer.status_code == 200 and answer.get_json()["jobs"] == [job.id]
    assert len(jobs_of(store, "crm:hubspot")) == 1


def test_a_replayed_delivery_is_refused(client, store):
    body = json.dumps([stage_event(123, "presentationscheduled")]).encode()
    headers = hubspot_signed(body)
    assert client.post("/v1/webhooks/hubspot", data=body, headers=headers).status_code == 200
    replay = client.post("/v1/webhooks/hubspot", data=body, headers=headers)
    assert replay.status_code == 401
    assert replay.get_json()["error"]["code"] == "webhook_rejected"
    assert "replay" in replay.get_json()["error"]["message"]


@pytest.mark.parametrize("forge", ["secret", "body", "stale", "unsigned", "uri"])
def test_a_forged_or_stale_hubspot_delivery_starts_nothing(client, store, forge):
    body = json.dumps([stage_event(123, "presentationscheduled")]).encode()
    headers = {
        "secret": lambda: hubspot_signed(body, secret="not-the-secret"),
        "body": lambda: hubspot_signed(body.replace(b"123", b"999")),
        "stale": lambda: hubspot_signed(body, at=time.time() - 400),
        "unsigned": lambda: {"Content-Type": "application/json"},
        "uri": lambda: hubspot_signed(body, uri="http://localhost/v1/webhooks/hubspot"),
    }[forge]()
    answer = client.post("/v1/webhooks/hubspot", data=body, headers=headers)
    assert answer.status_code == 401, answer.get_json()
    assert answer.get_json()["error"]["code"] == "webhook_rejected"
    assert jobs_of(store, "crm:hubspot") == []


def test_a_signed_salesforce_stage_change_starts_a_job(client, store):
    body = json.dumps({"opportunity_id": "006000000000001AAA",
                       "stage": "Proposal/Price Quote"}).encode()
    answer = client.post("/v1/webhooks/salesforce", data=body, headers=salesforce_signed(body))
    assert answer.status_code == 200, answer.get_json()
    [job] = jobs_of(store, "crm:salesforce")
    assert job.request["opportunity"] == {"crm": "salesforce", "id": "006000000000001AAA"}
    assert job.request["title"] == "{client}: {name}"  # the trigger's default
    forged = client.post("/v1/webhooks/salesforce", data=body,
                         headers=salesforce_signed(body, secret="guess"))
    assert forged.status_code == 401
    stale = client.post("/v1/webhooks/salesforce", data=body,
                        headers=salesforce_signed(body, at=time.time() - 600))
    assert stale.status_code == 401
    assert len(jobs_of(store, "crm:salesforce")) == 1


def test_a_signed_delivery_that_is_not_json_is_a_400(client):
    body = b"{not json"
    answer = client.post("/v1/webhooks/salesforce", data=body, headers=salesforce_signed(body))
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"] == "invalid_webhook"


@pytest.mark.parametrize("app_env", [{}])
def test_webhooks_are_refused_where_no_secret_is_set(client):
    body = b"[]"
    answer = client.post("/v1/webhooks/hubspot", data=body, headers=hubspot_signed(body))
    assert answer.status_code == 422
    assert answer.get_json()["error"]["code"] == "crm_not_configured"


def test_signature_checks_without_a_server():
    body = b'[{"objectId": 1}]'
    now = time.time()
    # HubSpot signs the URI with some characters decoded
    headers = hubspot_signed(body, uri="https://h.example/hook?a=1&b=:", at=now)
    assert verify_hubspot(HUBSPOT_SECRET, "post", "https://h.example/hook?a=1&b=%3A", body,
                          headers, now) == headers["X-HubSpot-Signature-v3"]
    with pytest.raises(WebhookRejected, match="old"):
        verify_hubspot(HUBSPOT_SECRET, "POST", "https://h.example/hook?a=1&b=:", body,
                       headers, now + 301)
    sf = salesforce_signed(body, at=now)
    lower = {k.lower(): v for k, v in sf.items()}
    assert verify_salesforce(SALESFORCE_SECRET, body, lower, now) == sf["X-Deckgen-Signature"]


def test_events_are_read_from_both_shapes():
    changes, ignored = hubspot_events(json.dumps([
        {"subscriptionType": "object.propertyChange", "objectTypeId": "0-3", "objectId": 9,
         "propertyName": "dealstage", "propertyValue": "s1"},
        {"subscriptionType": "object.propertyChange", "objectTypeId": "0-1", "objectId": 9,
         "propertyName": "dealstage", "propertyValue": "s1"},
        {"subscriptionType": "deal.propertyChange", "objectId": "9; DROP",
         "propertyName": "dealstage", "propertyValue": "s1"}]).encode())
    assert [(c.opportunity_id, c.stage) for c in changes] == [("9", "s1")] and ignored == 2
    changes, ignored = salesforce_events(json.dumps([
        {"opportunity_id": "006A", "stage": "Won"}, {"opportunity_id": "006A"}, 3]).encode())
    assert [(c.opportunity_id, c.stage) for c in changes] == [("006A", "Won")] and ignored == 2
