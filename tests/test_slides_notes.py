"""Sources in a Google Slides deck's speaker notes: the fill use case, on a model behind the
fake OpenAI server, writes into the fake Slides server (tests/fake_google.py, which gives
every slide its notes page as Google does and validates every request against the Slides
discovery document). Each filled slide's notes list each item with the brief's words."""

import json
import re

import pytest

from deckgen.brief import parse_brief
from deckgen.deck import Generator
from deckgen.fill import Filler, FillRequest, SlidesAccess, SlidesTarget
from deckgen.grounding import Grounding, brief_texts
from tests.fake_google import CHECKER, notes_page
from tests.slides_fixtures import realistic_template

BRIEF = parse_brief({
    "client": "Harbor Logistics", "industry": "Logistics",
    "opportunity": "Dock appointment scheduling across three distribution centres",
    "notes": "Trucks queue at the gates for hours. Appointments are kept in a shared Excel "
             "sheet that the gate staff update by phone.",
    "contacts": [{"name": "Ana Ruiz", "role": "COO"}],
    "metrics": {"Average truck wait": "2.5 hours"},
})
GROUNDED = ["Trucks queue at the gates for hours", "Appointments live in a shared Excel sheet",
            "Gate staff update the sheet by phone", "Ana Ruiz, COO, owns dock scheduling",
            "Average truck wait is 2.5 hours", "Three distribution centres share the gates"]
SLIDE_OF = {"current_state": "slide_cs", "future_state": "slide_fs", "data": "slide_data",
            "skills": "slide_team", "stakeholders": "slide_team"}
HEADER = re.compile(r"^Sources for .* \[deckgen:([a-z_]+) #[0-9a-f]{12}\]$", re.MULTILINE)


class Model:
    """The fake server's model: it answers each request's schema in words the brief
    supports, starting at sentence `shift` (so two fills can write different items)."""

    def __init__(self, server):
        self.shift = 0
        for _ in range(200):
            server.reply(None, {"dynamic": self.reply})

    def reply(self, body):
        schema = body["response_format"]["json_schema"]["schema"]
        key = next(k for k, v in schema["properties"].items() if v.get("type") == "array")
        items = schema["properties"][key]
        texts = iter((GROUNDED[self.shift:] + GROUNDED) * 3)
        content = []
        for _ in range(items.get("minItems", 1)):
            if items["items"].get("type") == "object":
                content.append({f: next(texts)[: v.get("maxLength", 200)]
                                for f, v in items["items"]["properties"].items()})
            else:
                content.append(next(texts)[: items["items"].get("maxLength", 200)])
        title = schema["properties"]["title"].get("maxLength", 60)
        return json.dumps({"title": "Where the gates stand today"[:title], key: content})


@pytest.fixture
def model(fake_openai):
    return Model(fake_openai)


@pytest.fixture
def filler(specs, cases, renderer, fake_router, google):
    generator = Generator(specs, cases, renderer, fake_router, temperature=0.0,
                          grounding=Grounding.from_cases(cases))
    return Filler(generator, SlidesAccess(None, google.url, google.url, sleep=lambda s: None))


def fill(filler, model, pid, shift=0, sources=True, **options):
    model.shift = shift
    target = SlidesTarget(presentation_id=pid, user_token="user-token", **options)
    return filler.fill(FillRequest(BRIEF, target, sources=sources))


def blocks(text):
    """deckgen's blocks in a notes text: {section: [item lines]}, a section twice fails."""
    found = {}
    for head in HEADER.finditer(text):
        section = head.group(1)
        assert section not in found, f"two blocks for {section}: {text!r}"
        rest = text[head.end() + 1:]
        end = rest.index(f"[end of deckgen:{section}]")
        found[section] = rest[:end].rstrip("\n").split("\n")
    return found


def sources_requests(google, notes_ids):
    """The batchUpdate requests deckgen sent that touch a speaker-notes shape."""
    sent = [c["body"]["requests"] for c in google.calls if c["path"].endswith(":batchUpdate")]
    return [r for batch in sent for r in batch
            if any(v.get("objectId") in notes_ids for v in r.values())]


def test_each_filled_slide_lists_a_verbatim_brief_snippet_per_item(filler, model, google):
    pid = google.add_presentation(realistic_template())
    filled = fill(filler, model, pid)
    assert filled.deck.ok and all(s.sources for s in filled.deck.sections)
    writes = [c for c in google.calls if c["path"].endswith(":batchUpdate")]
    assert len(writes) == 1  # the notes go in the same atomic write as the boxes
    brief = "\n".join(brief_texts(BRIEF))
    for s in filled.deck.sections:
        lines = blocks(google.notes_text(pid, SLIDE_OF[s.section]))[s.section]
        assert len(lines) == len(s.lines)
        for line, item in zip(lines, s.lines, strict=True):
            assert line.startswith(f"- {item[:20]}")
            quoted = re.findall("\u201c(.+?)\u201d", line)
            assert quoted and all(q in brief for q in quoted), line
    assert sorted(blocks(google.notes_text(pid, "slide_team"))) == ["skills", "stakeholders"]
    assert google.notes_text(pid, "slide_title") == ""  # nothing filled there
    CHECKER.check(google.presentations[pid], {"$ref": "Presentation"})


def test_the_reps_own_notes_survive_a_rerun_and_the_block_is_not_repeated(
        filler, model, google):
    pid = google.add_presentation(realistic_template())
    notes = google.speaker_notes_id(pid, "slide_cs")
    google.type_text(pid, notes, "Ask about the Q3 budget — café owner’s view")
    first = fill(filler, model, pid)
    google.type_text(pid, notes, "\nFollow up on Friday")
    before = blocks(google.notes_text(pid, "slide_cs"))["current_state"]
    second = fill(filler, model, pid, shift=3)
    text = google.notes_text(pid, "slide_cs")
    after = blocks(text)["current_state"]
    assert first.deck.section("current_state").lines != second.deck.section(
        "current_state").lines
    assert after != before and after[0].startswith(
        f"- {second.deck.section('current_state').lines[0][:20]}")
    assert text.startswith("Ask about the Q3 budget — café owner’s view\nSources for")
    assert text.endswith("]\nFollow up on Friday\n")
    assert len(HEADER.findall(text)) == 1
    for slide in ("slide_fs", "slide_team"):
        assert len(HEADER.findall(google.notes_text(pid, slide))) == len(
            {s for s, where in SLIDE_OF.items() if where == slide})


def test_keep_edits_leaves_notes_the_rep_edited(filler, model, google):
    pid = google.add_presentation(realistic_template())
    notes = google.speaker_notes_id(pid, "slide_fs")
    fill(filler, model, pid)
    text = google.notes_text(pid, "slide_fs")
    first_item = blocks(text)["future_state"][0]
    edited = text.replace(first_item, "- Checked with Ana: true").rstrip("\n")
    google.edit_text(pid, notes, edited)
    kept = fill(filler, model, pid, shift=2, keep_edits=True)
    assert google.notes_text(pid, "slide_fs") == edited + "\n"
    assert any("sources for future_state" in w and "edited" in w for w in kept.warnings)
    assert blocks(google.notes_text(pid, "slide_cs"))["current_state"][0].startswith(
        f"- {kept.deck.section('current_state').lines[0][:20]}")  # unedited: rewritten
    fill(filler, model, pid, shift=2)  # without keep-edits deckgen's block is redone
    assert "Checked with Ana" not in google.notes_text(pid, "slide_fs")
    assert len(HEADER.findall(google.notes_text(pid, "slide_fs"))) == 1


def test_the_off_switch_leaves_the_notes_alone(filler, model, google):
    pid = google.add_presentation(realistic_template())
    ids = {google.speaker_notes_id(pid, s) for s in set(SLIDE_OF.values())}
    google.type_text(pid, google.speaker_notes_id(pid, "slide_cs"), "My own notes")
    filled = fill(filler, model, pid, sources=False)
    assert filled.deck.ok and "{{" not in google.shape_text(pid, "cs_body")
    assert google.notes_text(pid, "slide_cs") == "My own notes\n"
    assert all(google.notes_text(pid, s) == "" for s in ("slide_fs", "slide_team"))
    assert sources_requests(google, ids) == []
    fill(filler, model, pid)  # on again: now they are written
    assert sources_requests(google, ids) and "current_state" in blocks(
        google.notes_text(pid, "slide_cs"))


def test_a_slide_whose_notes_shape_does_not_exist_yet(filler, model, google):
    doc = realistic_template()
    page = notes_page("slide_cs")  # the notes page names a shape that is not on it
    named = page["notesProperties"]["speakerNotesObjectId"]
    page["pageElements"] = [e for e in page["pageElements"] if e["objectId"] != named]
    doc["slides"][1]["slideProperties"]["notesPage"] = page
    pid = google.add_presentation(doc)
    assert google.notes_text(pid, "slide_cs") == ""
    fill(filler, model, pid)
    created = google.speaker_notes_id(pid, "slide_cs")
    assert created != named  # Google made the shape, under an id of its own
    assert "current_state" in blocks(google.notes_text(pid, "slide_cs"))
    fill(filler, model, pid, shift=1)
    assert google.speaker_notes_id(pid, "slide_cs") == created
    assert len(HEADER.findall(google.notes_text(pid, "slide_cs"))) == 1
    CHECKER.check(google.presentations[pid], {"$ref": "Presentation"})


def test_the_fake_lets_only_the_speaker_notes_text_be_edited(google):
    from googleapiclient.errors import HttpError

    from deckgen.writers.slides import SlidesWriter, user_credentials

    pid = google.add_presentation(realistic_template())
    page = google.presentations[pid]["slides"][1]["slideProperties"]["notesPage"]
    picture = page["pageElements"][0]["objectId"]
    slides = SlidesWriter(user_credentials("user-token"), slides_endpoint=google.url,
                          drive_endpoint=google.url).slides
    for request in ({"insertText": {"objectId": picture, "text": "x"}},
                    {"updatePageElementAltText": {
                        "objectId": google.speaker_notes_id(pid, "slide_cs"),
                        "description": "deckgen:current_state"}}):
        with pytest.raises(HttpError) as info:
            slides.presentations().batchUpdate(presentationId=pid,
                                               body={"requests": [request]}).execute()
        assert info.value.resp.status == 400 and b"notes page" in info.value.content
