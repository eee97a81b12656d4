"""The CRM field mapping and settings: a record view becomes a brief the brief validator
accepts, custom fields need no code, a required field that is empty names both sides, and a
broken mapping or credentials file is refused at start with a message saying what is wrong."""

from __future__ import annotations

import pytest

from deckgen.brief import MAX_NOTES_BYTES, parse_brief
from deckgen.crm.directory import CrmDirectory, CrmSettings
from deckgen.crm.errors import CrmFieldMissing, CrmMappingError, CrmNotConfigured
from deckgen.crm.mapping import load_mapping, parse_mapping
from deckgen.errors import ConfigError

RECORD = {
    "Opportunity": {
        "Name": "Fleet telematics rollout", "StageName": "Proposal/Price Quote",
        "Amount": 1250000.0, "CloseDate": "2027-03-31", "Description": "Replace paper logs.",
        "NextStep": None,
        "Account": {"Name": "Harbor Logistics", "Industry": "Transportation",
                    "NumberOfEmployees": 4200, "Sector__c": "Ports"},
    },
    "ContactRoles": [
        {"Role": "Economic Buyer", "Contact": {"Name": "Dana Whitfield"}},
        {"Role": None, "Contact": {"Name": "Lee Park"}},
        {"Role": "Economic Buyer", "Contact": {"Name": "Dana Whitfield"}},
    ],
    "Notes": [
        {"ActivityDate": "2026-11-20", "Subject": "Call", "Description": "Wants a pilot."},
        {"ActivityDate": "2026-11-02", "Subject": "Email", "Description": None},
    ],
}


def test_the_default_salesforce_mapping_makes_a_valid_brief():
    brief, missing = load_mapping("salesforce").brief(RECORD)
    parse_brief(brief)
    assert brief["client"] == "Harbor Logistics"
    assert brief["industry"] == "Transportation"
    assert brief["opportunity"] == "Fleet telematics rollout"
    # a contact listed twice with the same role is one contact; a missing role is left out
    assert brief["contacts"] == [{"name": "Dana Whitfield", "role": "Economic Buyer"},
                                 {"name": "Lee Park"}]
    # "Next step: {NextStep}" with no next step is left out, not written as a bare label
    assert "Next step" not in brief["notes"]
    assert brief["notes"].split("\n\n") == ["Replace paper logs.",
                                            "2026-11-20 Call: Wants a pilot.",
                                            "2026-11-02 Email:"]
    assert brief["metrics"] == {"Deal size": "1250000", "Close date": "2027-03-31",
                                "Employees": "4200"}
    assert missing == ()


def test_a_custom_field_is_read_without_code(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text('brief:\n  client: "{Opportunity.Account.Name}"\n'
                    '  industry: "{Opportunity.Account.Sector__c}"\n')
    mapping = load_mapping("salesforce", path)
    assert "Opportunity.Account.Sector__c" in mapping.paths()
    brief, missing = mapping.brief(RECORD)
    assert brief == {"client": "Harbor Logistics", "industry": "Ports"}
    assert set(missing) == {"opportunity", "notes", "contacts", "metrics"}


def test_a_required_field_that_is_empty_names_the_brief_and_the_crm_field():
    record = {**RECORD, "Opportunity": {**RECORD["Opportunity"], "Account": None}}
    with pytest.raises(CrmFieldMissing) as caught:
        load_mapping("salesforce").brief(record)
    assert caught.value.field == "client"
    assert caught.value.crm_field == "Opportunity.Account.Name"
    assert caught.value.to_dict()["field"] == "brief.client"
    assert caught.value.http_status == 422


def test_notes_keep_whole_paragraphs_within_the_brief_limit():
    mapping = parse_mapping("salesforce", {"brief": {
        "client": "{Opportunity.Account.Name}",
        "notes": {"each": "Notes", "text": "{Description}"}}}, "test")
    big = "x" * (MAX_NOTES_BYTES // 3)
    record = {**RECORD, "Notes": [{"Description": f"{i}{big}"} for i in range(5)]}
    brief, _ = mapping.brief(record)
    kept = brief["notes"].split("\n\n")
    assert len(brief["notes"].encode()) <= MAX_NOTES_BYTES
    assert [p[0] for p in kept] == ["0", "1"]  # newest first, whole paragraphs only
    parse_brief(brief)


def test_triggers_are_read_and_checked():
    mapping = parse_mapping("hubspot", {
        "brief": {"client": "{company.name}"},
        "triggers": [{"stage": "presentationscheduled", "template_id": "tmpl_1-A",
                      "title": "{name} proposal", "sections": ["data"]}]}, "test")
    trigger = mapping.trigger("presentationscheduled")
    assert trigger is not None and trigger.template_id == "tmpl_1-A"
    assert trigger.sections == ("data",) and trigger.title == "{name} proposal"
    assert mapping.trigger("closedwon") is None
    with pytest.raises(CrmMappingError, match="template_id"):
        parse_mapping("hubspot", {"brief": {"client": "x"},
                                  "triggers": [{"stage": "s", "template_id": "a/b"}]}, "t")


@pytest.mark.parametrize(("text", "message"), [
    ("brief: [", "not valid YAML"),
    ("brief:\n  industry: '{x}'\n", "brief.client must be mapped"),
    ("brief:\n  client: '{x}'\n  clinet: '{y}'\n", "unknown brief fields"),
    ("brief:\n  client: '{x}'\n  contacts: '{y}'\n", "brief.contacts"),
    ("brief:\n  client: '{x}'\nrequired: [budget]\n", "required lists unknown"),
])
def test_a_broken_mapping_file_is_refused_at_start(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CrmMappingError, match=message):
        load_mapping("hubspot", path)
    with pytest.raises(ConfigError, match=message):
        CrmSettings.from_env({"DECKGEN_HUBSPOT_MAPPING": str(path)})


def test_settings_from_the_environment_and_per_tenant(tmp_path):
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text("key:acme:\n  hubspot: {token: pat-acme}\n")
    settings = CrmSettings.from_env({
        "DECKGEN_SALESFORCE_URL": "https://example.my.salesforce.com/",
        "DECKGEN_SALESFORCE_CLIENT_ID": "cid", "DECKGEN_SALESFORCE_CLIENT_SECRET": "s3cret",
        "DECKGEN_CRM_TENANTS": str(tenants)})
    assert settings.salesforce is not None
    assert settings.salesforce.url == "https://example.my.salesforce.com"
    assert "s3cret" not in repr(settings)
    directory = CrmDirectory(settings)
    assert directory.configured() == {"salesforce": True, "hubspot": False}
    assert directory.configured("key:acme") == {"salesforce": True, "hubspot": True}
    with pytest.raises(CrmNotConfigured, match="HubSpot is not connected"):
        directory.provider("hubspot", "key:other")
    with pytest.raises(CrmNotConfigured, match="unknown CRM"):
        directory.provider("pipedrive", None)


@pytest.mark.parametrize(("env", "message"), [
    ({"DECKGEN_SALESFORCE_URL": "https://x.my.salesforce.com"}, "together"),
    ({"DECKGEN_SALESFORCE_URL": "http://x", "DECKGEN_SALESFORCE_CLIENT_ID": "a",
      "DECKGEN_SALESFORCE_CLIENT_SECRET": "b"}, "https://"),
    ({"DECKGEN_HUBSPOT_URL": "https://api.hubapi.com"}, "needs a token"),
    ({"DECKGEN_CRM_TENANTS": "/nonexistent/tenants.yaml"}, "cannot read"),
])
def test_incomplete_credentials_are_refused_at_start(env, message):
    with pytest.raises(ConfigError, match=message):
        CrmSettings.from_env(env)
