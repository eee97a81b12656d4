"""HubSpotProvider against a fake HubSpot CRM v3 API on 127.0.0.1 (tests/fake_hubspot.py),
through the real `hubspot-api-client`: deal -> brief with the default and a custom mapping,
the errors a caller meets, the 429 retry, write-back, and the open deals changed since."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest

from deckgen.brief import parse_brief
from deckgen.crm import DeckLink
from deckgen.crm.directory import HubSpotCredentials
from deckgen.crm.errors import (
    CrmFieldMissing,
    CrmForbidden,
    CrmNotConfigured,
    CrmUnavailable,
    OpportunityNotFound,
)
from deckgen.crm.hubspot import HubSpotProvider, html_to_text
from deckgen.crm.mapping import load_mapping
from tests.fake_hubspot import ALL_SCOPES, TOKEN, FakeHubSpot


def provider(fake: FakeHubSpot, mapping=None, token: str = TOKEN, **options) -> HubSpotProvider:
    return HubSpotProvider(HubSpotCredentials(token, fake.url),
                           mapping or load_mapping("hubspot"), **options)


def acme_deal(fake: FakeHubSpot) -> dict[str, str]:
    """A deal with its primary company, two contacts (one linked under two association
    types) and three notes in no particular order."""
    deal = fake.add("deals", {"dealname": "Acme - fleet telematics", "dealstage": "qualifiedtobuy",
                              "amount": "120000", "description": "Replacing 400 trackers.",
                              "closedate": "2025-09-30T00:00:00.000Z"})
    company = fake.add("companies", {"name": "Acme Logistics", "industry": "TRANSPORTATION",
                                     "numberofemployees": "2300"})
    ana = fake.add("contacts", {"firstname": "Ana", "lastname": "Ruiz", "jobtitle": "CFO"})
    bo = fake.add("contacts", {"firstname": "Bo", "lastname": "Li", "jobtitle": "Head of Fleet"})
    fake.associate("deals", deal, "companies", company)
    fake.associate("deals", deal, "contacts", ana, types=("deal_to_contact", "decision_maker"))
    fake.associate("deals", deal, "contacts", bo)
    notes = {}
    for when, body in (("2025-03-02T10:00:00.000Z", "<p>Second call: budget &amp; timing "
                                                    "<b>confirmed</b></p><p>Pilot in May</p>"),
                       ("2025-04-20T09:00:00.000Z", "<div>Third call: legal review</div>"),
                       ("2025-01-15T16:30:00.000Z", "<ul><li>Intro call</li><li>Pain: "
                                                    "fuel costs</li></ul><script>x()</script>")):
        notes[when] = fake.add("notes", {"hs_note_body": body, "hs_timestamp": when})
        fake.associate("deals", deal, "notes", notes[when])
    return {"deal": deal, "company": company, "ana": ana, "bo": bo}


def test_resolves_a_deal_with_the_default_mapping(hubspot):
    ids = acme_deal(hubspot)
    opp = provider(hubspot).resolve(ids["deal"])
    brief = parse_brief(opp.brief)
    assert brief.client == "Acme Logistics"
    assert brief.industry == "TRANSPORTATION"
    assert brief.opportunity == "Acme - fleet telematics"
    assert [(c.name, c.role) for c in brief.contacts] == [("Ana Ruiz", "CFO"),
                                                          ("Bo Li", "Head of Fleet")]
    notes = brief.notes.split("\n\n")
    assert notes[0] == "Replacing 400 trackers."
    assert notes[1] == "2025-04-20 Third call: legal review"
    assert notes[2] == "2025-03-02 Second call: budget & timing confirmed\nPilot in May"
    assert notes[3] == "2025-01-15 - Intro call\n- Pain: fuel costs"
    assert "<" not in brief.notes and "x()" not in brief.notes
    assert opp.brief["metrics"]["Deal size"] == "120000"
    assert opp.brief["metrics"]["Employees"] == "2300"
    assert (opp.name, opp.stage, opp.crm, opp.id) == (
        "Acme - fleet telematics", "qualifiedtobuy", "hubspot", ids["deal"])
    assert opp.url == f"https://app.hubspot.com/contacts/{hubspot.portal_id}/deal/{ids['deal']}"
    assert opp.missing == ()
    # the deal read asked for what the mapping reads and the three associations
    read = hubspot.requests("GET", f"/crm/v3/objects/deals/{ids['deal']}")[0]
    asked = {p for v in read["query"]["properties"] for p in v.split(",")}
    assert {"dealname", "dealstage", "description", "amount", "closedate"} <= asked
    assert {a for v in read["query"]["associations"] for a in v.split(",")} == {
        "companies", "contacts", "notes"}
    # each associated object is read once although v3 listed some twice
    contacts = hubspot.requests("POST", "/crm/v3/objects/contacts/batch/read")
    assert [i["id"] for i in contacts[0]["body"]["inputs"]] == [ids["ana"], ids["bo"]]
    companies = hubspot.requests("POST", "/crm/v3/objects/companies/batch/read")
    assert [i["id"] for i in companies[0]["body"]["inputs"]] == [ids["company"]]


def test_a_custom_mapping_reads_a_custom_property_without_code(hubspot, tmp_path):
    ids = acme_deal(hubspot)
    hubspot.set("deals", ids["deal"], deck_champion_pain="Drivers idle 2h a day")
    path = tmp_path / "hubspot.yaml"
    path.write_text(
        "brief:\n"
        "  client: \"{company.name} ({company.city})\"\n"
        "  opportunity: \"{deal.dealname}\"\n"
        "  facts:\n    - \"Champion's pain: {deal.deck_champion_pain}\"\n"
        "  metrics:\n    Stage: \"{deal.dealstage}\"\n"
        "required: [client]\n")
    hubspot.set("companies", ids["company"], city="Leeds")
    opp = provider(hubspot, load_mapping("hubspot", path)).resolve(ids["deal"])
    assert list(parse_brief(opp.brief).facts) == ["Champion's pain: Drivers idle 2h a day"]
    assert opp.brief["client"] == "Acme Logistics (Leeds)"
    assert opp.brief["metrics"] == {"Stage": "qualifiedtobuy"}
    # nothing the mapping does not read is fetched
    paths = [c["path"] for c in hubspot.calls]
    assert not any("contacts" in p or "notes" in p for p in paths)
    assert opp.missing == ("industry", "notes", "contacts")


def test_a_deal_without_a_company_names_the_missing_field(hubspot):
    deal = hubspot.add("deals", {"dealname": "Orphan deal"})
    with pytest.raises(CrmFieldMissing) as err:
        provider(hubspot).resolve(deal)
    assert err.value.field == "client"
    assert "company.name" in err.value.crm_field
    assert err.value.http_status == 422


def test_an_unknown_deal_is_not_found(hubspot):
    acme_deal(hubspot)
    with pytest.raises(OpportunityNotFound):
        provider(hubspot).resolve("999999")
    assert [c["status"] for c in hubspot.calls] == [404]


@pytest.mark.parametrize("bad", ["abc", "12/../34", "12 OR 1=1", "", "1" * 21])
def test_a_malformed_id_is_not_found_without_a_request(hubspot, bad):
    with pytest.raises(OpportunityNotFound):
        provider(hubspot).resolve(bad)
    with pytest.raises(OpportunityNotFound):
        provider(hubspot).write_back(bad, DeckLink("https://docs.google.com/x", "ok"))
    assert hubspot.calls == []


def test_a_token_without_the_deals_scope_is_forbidden(hubspot):
    ids = acme_deal(hubspot)
    hubspot.add_token("pat-contacts-only", {"crm.objects.contacts.read"})
    with pytest.raises(CrmForbidden) as err:
        provider(hubspot, token="pat-contacts-only").resolve(ids["deal"])
    assert "crm.objects.deals.read" in err.value.message
    assert err.value.http_status == 403


def test_a_token_without_the_companies_scope_names_companies(hubspot):
    ids = acme_deal(hubspot)
    hubspot.add_token("pat-no-companies", ALL_SCOPES - {"crm.objects.companies.read"})
    with pytest.raises(CrmForbidden) as err:
        provider(hubspot, token="pat-no-companies").resolve(ids["deal"])
    assert err.value.details == {"object": "companies", "scope": "crm.objects.companies.read"}


def test_a_wrong_token_says_hubspot_refused_it(hubspot):
    ids = acme_deal(hubspot)
    with pytest.raises(CrmNotConfigured) as err:
        provider(hubspot, token="pat-revoked").resolve(ids["deal"])
    assert "HubSpot" in err.value.message and "private-app" in err.value.message
    assert "pat-revoked" not in err.value.message


def test_a_rate_limit_is_waited_out(hubspot):
    ids = acme_deal(hubspot)
    hubspot.fail_next(429, times=2)
    opp = provider(hubspot).resolve(ids["deal"])
    assert opp.brief["client"] == "Acme Logistics"
    statuses = [c["status"] for c in hubspot.calls]
    assert statuses[:3] == [429, 429, 200]
    assert hubspot.calls[0]["path"] == hubspot.calls[2]["path"]


def test_a_long_rate_limit_is_not_slept_through(hubspot):
    ids = acme_deal(hubspot)
    hubspot.fail_next(429, headers={"Retry-After": "120"})
    with pytest.raises(CrmUnavailable) as err:
        provider(hubspot).resolve(ids["deal"])
    assert err.value.retry_after == 120
    assert len(hubspot.calls) == 1


def test_a_rate_limit_past_the_retries_is_unavailable(hubspot):
    ids = acme_deal(hubspot)
    hubspot.fail_next(429, times=5, headers={"Retry-After": "0"})
    with pytest.raises(CrmUnavailable):
        provider(hubspot, retries=2).resolve(ids["deal"])
    assert [c["status"] for c in hubspot.calls] == [429, 429, 429]


def test_a_persistent_503_is_unavailable_with_retry_after(hubspot):
    ids = acme_deal(hubspot)
    hubspot.fail_next(503, times=10, headers={"Retry-After": "7"})
    with pytest.raises(CrmUnavailable) as err:
        provider(hubspot).resolve(ids["deal"])
    assert err.value.retry_after == 7
    assert err.value.http_status == 503
    hubspot.fail_next(503, times=10)
    with pytest.raises(CrmUnavailable) as err:
        provider(hubspot).resolve(ids["deal"])
    assert err.value.retry_after > 0


def test_an_unreachable_hubspot_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    creds = HubSpotCredentials(TOKEN, f"http://127.0.0.1:{port}")
    with pytest.raises(CrmUnavailable):
        HubSpotProvider(creds, load_mapping("hubspot")).resolve("123")


def write_back_mapping(tmp_path, prop: str = "deck_url"):
    path = tmp_path / "hubspot.yaml"
    path.write_text("brief:\n  client: \"{company.name}\"\n"
                    f"write_back:\n  property: {prop}\n  note: true\n")
    return load_mapping("hubspot", path)


LINK = DeckLink("https://docs.google.com/presentation/d/abc/edit?a=1&b=2", "incomplete",
                "5 of 6 sections written", ("saves 30% <fuel>",))


def test_write_back_sets_the_property_and_adds_a_note_on_the_deal(hubspot, tmp_path):
    ids = acme_deal(hubspot)
    hubspot.defined["deals"].add("deck_url")
    provider(hubspot, write_back_mapping(tmp_path)).write_back(ids["deal"], LINK)
    assert hubspot.objects["deals"][ids["deal"]]["properties"]["deck_url"] == LINK.url
    new = [n for n in hubspot.associated("deals", ids["deal"], "notes")
           if "deckgen" in (hubspot.objects["notes"][n]["properties"]["hs_note_body"] or "")]
    assert len(new) == 1
    note = hubspot.objects["notes"][new[0]]["properties"]
    assert html_to_text(note["hs_note_body"]) == LINK.note()
    assert '<a href="https://docs.google.com/presentation/d/abc/edit?a=1&amp;b=2">' \
        in note["hs_note_body"]
    assert note["hs_timestamp"]
    # the deal's next resolution reads the note as its newest, as plain text
    opp = provider(hubspot).resolve(ids["deal"])
    assert opp.brief["notes"].split("\n\n")[1] == f"{note['hs_timestamp'][:10]} {LINK.note()}"


def test_write_back_to_a_property_hubspot_lacks_names_it(hubspot, tmp_path):
    ids = acme_deal(hubspot)
    with pytest.raises(CrmFieldMissing) as err:
        provider(hubspot, write_back_mapping(tmp_path, "no_such_prop")).write_back(
            ids["deal"], LINK)
    assert err.value.crm_field == "deal.no_such_prop"


def test_write_back_to_an_unknown_deal_is_not_found(hubspot):
    with pytest.raises(OpportunityNotFound):
        provider(hubspot).write_back("424242", LINK)


def test_write_back_with_hubspot_failing_twice_lands_once_on_the_third_call(hubspot, tmp_path):
    ids = acme_deal(hubspot)
    hubspot.defined["deals"].add("deck_url")
    p = provider(hubspot, write_back_mapping(tmp_path))
    hubspot.fail_next(503, times=2)
    for _ in range(2):
        with pytest.raises(CrmUnavailable):
            p.write_back(ids["deal"], LINK)
    p.write_back(ids["deal"], LINK)
    p.write_back(ids["deal"], LINK)  # a retry whose first success went unseen
    bodies = [hubspot.objects["notes"][n]["properties"]["hs_note_body"]
              for n in hubspot.associated("deals", ids["deal"], "notes")]
    assert sum("deckgen" in (b or "") for b in bodies) == 1
    assert hubspot.objects["deals"][ids["deal"]]["properties"]["deck_url"] == LINK.url
    assert len(hubspot.requests("POST", "/crm/v3/objects/notes")) - len(
        hubspot.requests("POST", "/crm/v3/objects/notes/batch")) == 1


def test_changed_since_lists_open_recently_changed_deals_across_pages(hubspot):
    old = (datetime.now(UTC) - timedelta(days=30)).isoformat().replace("+00:00", "Z")
    recent = [hubspot.add("deals", {"dealname": f"Open {i}", "dealstage": "appointmentscheduled"})
              for i in range(5)]
    stale = hubspot.add("deals", {"dealname": "Old", "dealstage": "appointmentscheduled"},
                        modified=old)
    for stage in ("closedwon", "closedlost"):
        hubspot.add("deals", {"dealname": stage, "dealstage": stage})
    p = provider(hubspot, page_size=2)
    since = datetime.now(UTC) - timedelta(days=1)
    assert sorted(p.changed_since(since)) == sorted(recent)
    searches = hubspot.requests("POST", "/crm/v3/objects/deals/search")
    assert len(searches) == 3
    assert [s["body"].get("after") for s in searches] == [None, "2", "4"]
    assert sorted(p.changed_since(None)) == sorted([*recent, stale])
    assert len(p.changed_since(since, limit=3)) == 3
    # a naive datetime is taken as UTC
    assert sorted(p.changed_since(since.replace(tzinfo=None))) == sorted(recent)


def test_html_to_text():
    assert html_to_text("<p>A &lt;b&gt; &amp;&nbsp;c</p><p>d<br>e</p>") == "A <b> & c\nd\ne"
    assert html_to_text(None) == ""
    assert html_to_text("<style>p{}</style>plain   text") == "plain text"
