"""The Google Slides writer against a fake Slides + Drive server on 127.0.0.1 that validates
every request body against the Slides v1 discovery document."""

import json

import pytest

from deckgen.errors import TemplateError
from deckgen.writers.slides import (
    DeckAccessDenied,
    DeckNotFound,
    GoogleAuthError,
    SlidesWriter,
    fingerprint,
    service_account_credentials,
    user_credentials,
)
from tests.samples import sample_deck
from tests.slides_fixtures import realistic_template, unmarked_template

BODIES = {"current_state": "cs_body", "future_state": "fs_body", "data": "data_body",
          "skills": "skills_body", "stakeholders": "stake_body"}


def writer(google, token="user-token"):
    return SlidesWriter(user_credentials(token), slides_endpoint=google.url,
                        drive_endpoint=google.url, sleep=lambda s: None)


def element(google, pid, object_id):
    for slide in google.presentations[pid]["slides"]:
        for el in slide["pageElements"]:
            if el["objectId"] == object_id:
                return el
    raise KeyError(object_id)


def runs(google, pid, object_id):
    return [e["textRun"] for e in element(google, pid, object_id)["shape"]["text"]
            ["textElements"] if "textRun" in e]


def test_first_fill_is_one_read_and_one_atomic_write(google, specs):
    pid = google.add_presentation(realistic_template())
    before = google.presentations[pid]["revisionId"]
    deck = sample_deck(specs)
    report = writer(google).write(pid, deck)
    assert report.filled == list(specs) and report.warnings == []
    assert report.api_calls == 2
    assert [c["method"] for c in google.calls] == ["GET", "POST"]
    sent = google.calls[1]["body"]
    assert sent["writeControl"]["requiredRevisionId"] == before
    assert report.revision_id == google.presentations[pid]["revisionId"] != before
    for section, box in BODIES.items():
        text = google.shape_text(pid, box)
        assert text.rstrip("\n").split("\n") == deck.section(section).lines
        tag = element(google, pid, box)["description"]
        assert tag == f"deckgen:{section} #{fingerprint(text)}"
    assert google.shape_text(pid, "cs_title").strip() == "Current state v1"
    assert "{{" not in json.dumps(google.presentations[pid])
    assert google.shape_text(pid, "title_prepared") == \
        "Prepared for Harbor Logistics by Acme Consulting\n"


def test_the_template_look_is_kept(google, specs):
    pid = google.add_presentation(realistic_template())
    writer(google).write(pid, sample_deck(specs))
    body = runs(google, pid, "cs_body")
    assert {r["style"]["fontFamily"] for r in body} == {"Roboto"}
    assert {r["style"]["fontSize"]["magnitude"] for r in body} == {16}
    stake = element(google, pid, "stake_body")["shape"]["text"]["textElements"]
    markers = [e["paragraphMarker"] for e in stake if "paragraphMarker" in e]
    assert len(markers) == specs["stakeholders"].min_items and all("bullet" in m for m in markers)
    first = runs(google, pid, "stake_body")[:2]
    assert first[0]["content"] == "name 0 v1, role 0 v1:" and first[0]["style"]["bold"]
    assert not first[1]["style"].get("bold")
    assert first[1]["style"]["fontSize"]["magnitude"] == 16  # the token line's size, not 12
    bold = runs(google, pid, "title_prepared")[1]
    assert bold["content"] == "Harbor Logistics" and bold["style"]["bold"]


def test_regenerating_one_section_finds_its_box_by_tag(google, specs):
    pid = google.add_presentation(realistic_template())
    w = writer(google)
    w.write(pid, sample_deck(specs))
    untouched = google.shape_text(pid, "cs_body")
    report = w.write(pid, sample_deck(specs, only={"data"}, tag="v2"))
    assert report.filled == ["data"]
    assert google.shape_text(pid, "data_body").rstrip().split("\n") == \
        sample_deck(specs, only={"data"}, tag="v2").section("data").lines
    assert google.shape_text(pid, "cs_body") == untouched
    assert not any(r["style"].get("bold") for r in runs(google, pid, "cs_body"))


def test_keep_edits_leaves_a_person_edited_box_alone(google, specs):
    pid = google.add_presentation(realistic_template())
    w = writer(google)
    w.write(pid, sample_deck(specs))
    google.edit_text(pid, "fs_body", "Our own words, typed by the rep")
    report = w.write(pid, sample_deck(specs, tag="v2"), keep_edits=True)
    assert report.kept == ["future_state"]
    assert google.shape_text(pid, "fs_body") == "Our own words, typed by the rep\n"
    assert "v2" in google.shape_text(pid, "cs_body")
    w.write(pid, sample_deck(specs, tag="v3"))  # without keep_edits the section is rewritten
    assert "v3" in google.shape_text(pid, "fs_body")


def test_a_revision_conflict_rereads_and_replans(google, specs):
    pid = google.add_presentation(realistic_template())
    edits = iter(["first edit"])

    def person_types(presentation_id):
        text = next(edits, None)
        if text:
            google.edit_text(presentation_id, "data_logo_caption" if False else "cs_title", text)

    google.after_get = person_types
    report = writer(google).write(pid, sample_deck(specs))
    assert report.conflicts == 1 and report.api_calls == 4
    statuses = [c["status"] for c in google.calls]
    assert statuses == [200, 400, 200, 200]
    assert "v1" in google.shape_text(pid, "cs_body")


def test_copy_from_a_template_then_fill(google, specs):
    template = google.add_presentation(realistic_template())
    w = writer(google)
    new = w.copy_template(template, "Harbor Logistics - pitch")
    assert new != template
    w.write(new, sample_deck(specs))
    assert "v1" in google.shape_text(new, "cs_body")
    assert google.shape_text(template, "cs_body") == "{{current_state}}\n"
    assert google.presentations[new]["title"] == "Harbor Logistics - pitch"


def test_a_deck_without_marks_says_how_to_mark_one(google, specs):
    pid = google.add_presentation(unmarked_template())
    with pytest.raises(TemplateError, match=r"Mark selected box as section"):
        writer(google).write(pid, sample_deck(specs))
    assert [c["method"] for c in google.calls] == ["GET"]


def test_a_section_without_a_box_is_skipped_with_a_warning(google, specs):
    doc = realistic_template()
    doc["slides"] = [s for s in doc["slides"] if s["objectId"] != "slide_data"]
    pid = google.add_presentation(doc)
    report = writer(google).write(pid, sample_deck(specs))
    assert "data" not in report.filled
    assert report.warnings == ["the deck has no box marked for data; skipped"]


def test_access_errors_name_the_deck(google, specs):
    pid = google.add_presentation(realistic_template())
    google.grant(pid, "user-token")
    google.tokens["stranger"] = "stranger"
    with pytest.raises(DeckAccessDenied, match=f"no edit access to the deck {pid}"):
        writer(google, "stranger").write(pid, sample_deck(specs))
    with pytest.raises(DeckNotFound, match="the deck nope does not exist"):
        writer(google).write("nope", sample_deck(specs))
    with pytest.raises(GoogleAuthError, match="expired or revoked"):
        writer(google, "expired-token").write(pid, sample_deck(specs))


def test_rate_limits_and_server_errors_are_retried(google, specs):
    pid = google.add_presentation(realistic_template())
    google.fail_next(429, times=2)
    google.fail_next(503)
    report = writer(google).write(pid, sample_deck(specs))
    assert report.filled == list(specs)
    assert [c["status"] for c in google.calls] == [429, 429, 503, 200, 200]


def test_a_service_account_writes_to_a_shared_deck(google, specs, service_account_file):
    pid = google.add_presentation(realistic_template(), owner_token="service-account")
    sa = SlidesWriter(service_account_credentials(service_account_file),
                      slides_endpoint=google.url, drive_endpoint=google.url)
    assert sa.write(pid, sample_deck(specs)).filled == list(specs)
    assert google.calls[0]["path"] == "/token"


def test_the_next_write_reads_back_what_people_kept_and_edited(google, specs):
    pid = google.add_presentation(realistic_template())
    w = writer(google)
    first = w.write(pid, sample_deck(specs))
    assert first.feedback == []  # nothing of ours was there yet
    google.edit_text(pid, "skills_body", "Our data engineers, not theirs")
    report = w.write(pid, sample_deck(specs, tag="v2"))
    states = {(f["section"], f["part"]): f["state"] for f in report.feedback}
    assert states[("skills", "body")] == "edited"
    assert states[("data", "body")] == "kept" and states[("data", "title")] == "kept"
    edited = next(f for f in report.feedback if f["state"] == "edited")
    assert edited["text"] == "Our data engineers, not theirs"
