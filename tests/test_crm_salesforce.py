"""The Salesforce brief provider against a fake Salesforce org on 127.0.0.1 (TLS, OAuth
client credentials, SOQL, sObject rows; see tests/fake_salesforce.py): resolution with the
default and a custom mapping, missing and unknown fields, access, ids that are not ids,
token refresh, outages, write-back and the changed-since query."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest

from deckgen.brief import parse_brief
from deckgen.crm import DeckLink
from deckgen.crm.directory import SalesforceCredentials
from deckgen.crm.errors import (
    CrmFieldMissing,
    CrmForbidden,
    CrmNotConfigured,
    CrmUnavailable,
    OpportunityNotFound,
)
from deckgen.crm.mapping import load_mapping
from deckgen.crm.salesforce import CrmFieldUnknown, SalesforceProvider

CUSTOM = """
record: {name: "{Opportunity.Name}", stage: "{Opportunity.StageName}"}
brief:
  client: "{Opportunity.Account.Name}"
  industry: "{Opportunity.Account.Sector__c}"
  opportunity: "{Opportunity.Name}"
required: [client, industry]
"""


@pytest.fixture
def org(sf) -> dict[str, str]:
    """An account with one rich open opportunity (two contact roles, three tasks), a second
    opportunity with its own task, and a closed one."""
    acct = sf.add("Account", Name="Harbor Logistics", Industry="Logistics",
                  NumberOfEmployees=1200)
    opp = sf.add("Opportunity", Name="Dock appointment scheduling", StageName="Proposal",
                 Amount=250000.0, CloseDate="2026-09-30", AccountId=acct,
                 Description="Trucks wait 2.5 hours at the docks.", NextStep="Send proposal")
    ana = sf.add("Contact", Name="Ana Ruiz", Title="COO", AccountId=acct)
    ben = sf.add("Contact", Name="Ben Okafor", Title="Ops Director", AccountId=acct)
    sf.add("OpportunityContactRole", OpportunityId=opp, ContactId=ben, Role="Evaluator",
           IsPrimary=False)
    sf.add("OpportunityContactRole", OpportunityId=opp, ContactId=ana, Role="Decision Maker",
           IsPrimary=True)
    for day, subject in (("2026-05-01", "Discovery call"), ("2026-06-15", "Site visit"),
                         ("2026-04-02", "First contact")):
        sf.add("Task", WhatId=opp, Subject=subject, Description=f"Notes of the {subject}",
               ActivityDate=day, Status="Completed")
    other = sf.add("Opportunity", Name="Yard cameras", StageName="Qualification",
                   AccountId=acct)
    sf.add("Task", WhatId=other, Subject="Unrelated call", ActivityDate="2026-07-01")
    closed = sf.add("Opportunity", Name="Old deal", StageName="Closed Won", AccountId=acct)
    sf.records["Opportunity"][closed]["IsClosed"] = True
    return {"account": acct, "opp": opp, "other": other, "closed": closed}


def provider(sf, mapping=None, secret=None, url=None, ca=True) -> SalesforceProvider:
    creds = SalesforceCredentials(url or sf.url, sf.client_id, secret or sf.client_secret,
                                  sf.api_version, sf.ca_bundle if ca else None)
    return SalesforceProvider(creds, mapping or load_mapping("salesforce"), timeout=5)


def custom(tmp_path, text=CUSTOM):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return load_mapping("salesforce", path)


def test_default_mapping_resolves_a_brief(sf, org):
    opp = provider(sf).resolve(org["opp"])
    parse_brief(opp.brief)  # a brief the rest of deckgen accepts
    assert opp.brief["client"] == "Harbor Logistics"
    assert opp.brief["industry"] == "Logistics"
    assert opp.brief["opportunity"] == "Dock appointment scheduling"
    assert opp.brief["contacts"] == [{"name": "Ana Ruiz", "role": "Decision Maker"},
                                     {"name": "Ben Okafor", "role": "Evaluator"}]
    assert opp.brief["metrics"] == {"Deal size": "250000", "Close date": "2026-09-30",
                                    "Employees": "1200"}
    notes = opp.brief["notes"]
    assert notes.startswith("Trucks wait 2.5 hours at the docks.\n\nNext step: Send proposal")
    order = [notes.index(s) for s in ("Site visit", "Discovery call", "First contact")]
    assert order == sorted(order)  # newest first
    assert "Unrelated call" not in notes
    assert (opp.name, opp.stage, opp.missing) == ("Dock appointment scheduling", "Proposal", ())
    assert opp.url == f"{sf.url}/lightning/r/Opportunity/{org['opp']}/view"
    first = sf.queries()[0]
    assert "Account.Industry" in first and "Account.NumberOfEmployees" in first


def test_fifteen_character_id_and_the_ca_bundle_over_requests_ca_bundle(sf, org, tmp_path,
                                                                       monkeypatch):
    import trustme

    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))  # would fail TLS if it won
    opp = provider(sf).resolve(org["opp"][:15])
    assert opp.id == org["opp"] and opp.brief["client"] == "Harbor Logistics"


def test_custom_mapping_reads_a_custom_field_without_code(sf, org, tmp_path):
    sf.add_field("Account", "Sector__c")
    sf.records["Account"][org["account"]]["Sector__c"] = "Ports & freight"
    opp = provider(sf, custom(tmp_path)).resolve(org["opp"])
    assert opp.brief == {"client": "Harbor Logistics", "industry": "Ports & freight",
                         "opportunity": "Dock appointment scheduling"}
    assert "Account.Sector__c" in sf.queries()[0]
    assert not any("OpportunityContactRole" in q for q in sf.queries())  # not mapped: not read


def test_required_field_empty_names_both_fields(sf, org):
    lonely = sf.add("Opportunity", Name="No account yet", StageName="Prospecting")
    with pytest.raises(CrmFieldMissing) as err:
        provider(sf).resolve(lonely)
    assert (err.value.field, err.value.crm_field) == ("client", "Opportunity.Account.Name")
    assert err.value.http_status == 422


def test_mapping_naming_a_field_salesforce_lacks_is_a_clear_error(sf, org, tmp_path):
    with pytest.raises(CrmFieldUnknown) as err:
        provider(sf, custom(tmp_path)).resolve(org["opp"])
    assert err.value.field == "industry"
    assert err.value.crm_field == "Opportunity.Account.Sector__c"
    assert err.value.http_status == 422 and "Sector__c" in err.value.message
    assert sf.log[-1]["status"] == 400  # Salesforce itself refused the SOQL


def test_unknown_id_is_not_found(sf, org):
    with pytest.raises(OpportunityNotFound):
        provider(sf).resolve("006000000000999AAA")


def test_record_not_shared_with_the_user_is_forbidden(sf, org):
    sf.hide(org["opp"])
    with pytest.raises(CrmForbidden) as err:
        provider(sf).resolve(org["opp"])
    assert org["opp"] in err.value.message
    assert [e["status"] for e in sf.calls("GET", "/query/")] == [200, 200]
    assert "UserRecordAccess" in sf.queries()[-1]


def test_object_the_user_may_not_read_is_forbidden_naming_it(sf, org):
    sf.deny_object("OpportunityContactRole")
    with pytest.raises(CrmForbidden) as err:
        provider(sf).resolve(org["opp"])
    assert "OpportunityContactRole" in err.value.message
    assert err.value.details["object"] == "OpportunityContactRole"


@pytest.mark.parametrize("bad", ["006' OR Name != '", "006000000000001AA'", "001000000000001AAA",
                                 "", "006%27%20OR%20Id%21%3D%27000000000000"])
def test_an_id_that_is_not_an_id_is_not_found_without_a_call(sf, org, bad):
    with pytest.raises(OpportunityNotFound):
        provider(sf).resolve(bad)
    with pytest.raises(OpportunityNotFound):
        provider(sf).write_back(bad, DeckLink("https://x", "ok"))
    assert sf.log == []


def test_expired_token_is_refreshed_once_transparently(sf, org):
    p = provider(sf)
    assert p.resolve(org["opp"]).brief["client"] == "Harbor Logistics"
    sf.expire_tokens()
    assert p.resolve(org["opp"]).brief["client"] == "Harbor Logistics"
    assert len(sf.calls("POST", "/oauth2/token")) == 2
    assert [e["status"] for e in sf.log].count(401) == 1


def test_wrong_secret_is_a_clear_error_without_the_secret(sf, org):
    with pytest.raises(CrmNotConfigured) as err:
        provider(sf, secret="not-the-secret").resolve(org["opp"])
    assert "Salesforce" in err.value.message and "invalid_client" in err.value.message
    assert "not-the-secret" not in str(err.value.to_dict())


def test_503_is_unavailable_with_retry_after_and_no_retry_loop(sf, org):
    p = provider(sf)
    sf.fail_next(503, headers={"Retry-After": "7"})
    with pytest.raises(CrmUnavailable) as err:
        p.resolve(org["opp"])
    assert err.value.retry_after == 7 and err.value.http_status == 503
    assert len(sf.calls("GET", "/query/")) == 1  # failed fast: the caller's queue retries
    sf.fail_next(403, code="REQUEST_LIMIT_EXCEEDED")
    with pytest.raises(CrmUnavailable) as err:
        p.resolve(org["opp"])
    assert err.value.retry_after >= 60
    assert p.resolve(org["opp"]).brief["client"] == "Harbor Logistics"


def test_unreachable_or_untrusted_salesforce_is_unavailable(sf, org):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"https://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(CrmUnavailable):
        provider(sf, url=closed).resolve(org["opp"])
    with pytest.raises(CrmUnavailable, match="not trusted"):  # the fake's CA, not given
        provider(sf, ca=False).resolve(org["opp"])


def writing(tmp_path, note=True):
    return custom(tmp_path, CUSTOM.replace("required: [client, industry]", "") +
                  f"write_back: {{field: Deck_URL__c, note: {str(note).lower()}}}\n")


def test_write_back_sets_the_field_and_adds_one_task(sf, org, tmp_path):
    sf.add_field("Opportunity", "Deck_URL__c")
    link = DeckLink("https://docs.google.com/presentation/d/abc", "incomplete",
                    "1 section to check", ("data: 40% fewer waits",))
    p = provider(sf, writing(tmp_path))
    p.write_back(org["opp"], link)
    p.write_back(org["opp"], link)  # a retry after a lost answer adds no second task
    assert sf.records["Opportunity"][org["opp"]]["Deck_URL__c"] == link.url
    tasks = [t for t in sf.records["Task"].values() if t.get("Subject") == "Deck needs a look"]
    assert len(tasks) == 1
    assert (tasks[0]["WhatId"], tasks[0]["Status"]) == (org["opp"], "Completed")
    assert tasks[0]["Description"] == link.note()


def test_write_back_with_a_crm_that_fails_twice(sf, org, tmp_path):
    sf.add_field("Opportunity", "Deck_URL__c")
    link = DeckLink("https://docs.google.com/presentation/d/xyz", "ok")
    p = provider(sf, writing(tmp_path))
    sf.fail_next(503, times=2)
    for _ in range(2):
        with pytest.raises(CrmUnavailable):
            p.write_back(org["opp"], link)
    assert "Deck_URL__c" not in sf.records["Opportunity"][org["opp"]]
    p.write_back(org["opp"], link)
    assert sf.records["Opportunity"][org["opp"]]["Deck_URL__c"] == link.url
    assert [t["Subject"] for t in sf.records["Task"].values()].count("Deck ready") == 1


def test_write_back_failing_between_field_and_task_completes_on_retry(sf, org, tmp_path):
    sf.add_field("Opportunity", "Deck_URL__c")
    link = DeckLink("https://docs.google.com/presentation/d/mid", "ok")
    p = provider(sf, writing(tmp_path))
    sf.fail_next(500, match="POST /services/data")
    with pytest.raises(CrmUnavailable):
        p.write_back(org["opp"], link)
    assert sf.records["Opportunity"][org["opp"]]["Deck_URL__c"] == link.url
    p.write_back(org["opp"], link)
    assert [t["Subject"] for t in sf.records["Task"].values()].count("Deck ready") == 1
    assert len(sf.calls("PATCH")) == 2  # the field again: the same value


def test_write_back_errors(sf, org, tmp_path):
    link = DeckLink("https://docs.google.com/presentation/d/e", "ok")
    with pytest.raises(CrmFieldUnknown) as err:  # the URL field was never created
        provider(sf, writing(tmp_path)).write_back(org["opp"], link)
    assert err.value.crm_field == "Opportunity.Deck_URL__c"
    sf.add_field("Opportunity", "Deck_URL__c")
    sf.read_only(org["opp"])
    with pytest.raises(CrmForbidden):
        provider(sf, writing(tmp_path)).write_back(org["opp"], link)
    sf.hide(org["other"])
    with pytest.raises(CrmForbidden):  # the default mapping: a task only
        provider(sf).write_back(org["other"], link)
    with pytest.raises(OpportunityNotFound):
        provider(sf, writing(tmp_path)).write_back("006000000000999AAA", link)


def test_changed_since_lists_open_recently_changed_ids(sf, org):
    now = datetime.now(UTC)
    for key, days in (("opp", 10), ("other", 1), ("closed", 1)):
        sf.records["Opportunity"][org[key]]["LastModifiedDate"] = (
            now - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    p = provider(sf)
    assert p.changed_since(now - timedelta(days=3)) == [org["other"]]
    assert p.changed_since(None) == [org["opp"], org["other"]]  # oldest change first
    assert p.changed_since(None, limit=1) == [org["opp"]]
    naive = (now - timedelta(days=3)).replace(tzinfo=None)  # read as UTC
    assert p.changed_since(naive) == [org["other"]]
    assert p.changed_since(now) == []
    assert "LastModifiedDate >" in sf.queries()[0] and "IsClosed = false" in sf.queries()[0]
