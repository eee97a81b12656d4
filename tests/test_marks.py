"""The marking model: where tokens are found (.pptx and Slides JSON), the check before any
model call (bad files, no marks, unknown tokens), and what the writers do in odd places."""

from __future__ import annotations

import zipfile
from dataclasses import replace

import pytest
from lxml import etree
from pptx import Presentation
from pptx.enum.text import MSO_AUTO_SIZE
from pptx.util import Inches, Pt

from deckgen.errors import TemplateError
from deckgen.writers.marks import check_pptx_template, check_slides_template
from deckgen.writers.pptx import write_pptx
from deckgen.writers.slides import plan_edits
from tests.samples import sample_deck
from tests.slides_fixtures import realistic_template

A = "http://schemas.openxmlformats.org/drawingml/2006/main"


def deck(path, build):
    prs = Presentation()
    build(prs)
    prs.save(str(path))
    return path


def textbox(slide, text, y=1.0, h=1.0, size=18, w=8.0):
    shape = slide.shapes.add_textbox(Inches(0.5), Inches(y), Inches(w), Inches(h))
    shape.text_frame.word_wrap, shape.text_frame.auto_size = True, MSO_AUTO_SIZE.NONE
    shape.text_frame.text = text
    shape.text_frame.paragraphs[0].runs[0].font.size = Pt(size)
    return shape


def everywhere(prs):
    """A token in each kind of place."""
    s = prs.slides.add_slide(prs.slide_layouts[1])
    s.shapes.title.text = "{{current_state.title}}"
    s.placeholders[1].text = "{{current_state}}"
    s = prs.slides.add_slide(prs.slide_layouts[6])
    table = s.shapes.add_table(2, 2, Inches(0.5), Inches(0.5), Inches(9), Inches(3)).table
    table.cell(0, 0).text = "{{data.title}}"
    table.cell(1, 0).text = "{{data}}"
    group = s.shapes.add_group_shape()
    textbox(group, "{{skills}}", y=4.0, h=2.0)
    textbox(s, "Notes: {{future_state}} (draft)", y=6.2, h=1.0)
    s.notes_slide.notes_text_frame.text = "Say: {{stakeholders}}"


def test_tokens_are_found_in_every_kind_of_place(tmp_path, specs):
    check = check_pptx_template(deck(tmp_path / "t.pptx", everywhere), list(specs))
    assert check.where == {"current_state.title": "placeholder", "current_state": "placeholder",
                           "data.title": "cell", "data": "cell", "skills": "group",
                           "future_state": "inline", "stakeholders": "notes"}
    assert check.sections_marked == list(specs) and check.unknown == []
    assert "stakeholders" not in check.boxes  # notes are not measured
    cell = check.boxes["data"]
    assert cell.width == pytest.approx(4.5 * 72) and cell.insets == (7.2, 3.6, 7.2, 3.6)


def test_the_writer_fills_every_place_and_keeps_the_words_around_a_token(tmp_path, specs):
    template = deck(tmp_path / "t.pptx", everywhere)
    sample = sample_deck(specs)
    report = write_pptx(sample, tmp_path / "out.pptx", template)
    assert report.filled == list(specs) and report.warnings == []
    prs = Presentation(str(tmp_path / "out.pptx"))
    slide = prs.slides[1]
    table = next(s for s in slide.shapes if s.has_table).table
    assert table.cell(0, 0).text == "Data we need v1"
    assert table.cell(1, 0).text.split("\n") == sample.section("data").lines
    texts = [s.text_frame.text for s in slide.shapes if s.has_text_frame]
    lines = sample.section("future_state").lines
    assert f"Notes: {lines[0]}" in texts[0] and texts[0].endswith(f"{lines[-1]} (draft)")
    group = next(s for s in slide.shapes if s.shape_type == 6)
    assert group.shapes[0].text_frame.text.split("\n") == sample.section("skills").lines
    notes = slide.notes_slide.notes_text_frame.text
    assert notes.startswith("Say: name 0 v1") and "{{" not in notes


def bad_files(tmp_path):
    good = deck(tmp_path / "good.pptx", everywhere)
    corrupt = tmp_path / "corrupt.pptx"
    corrupt.write_bytes(good.read_bytes()[:4000])
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504
    encrypted = tmp_path / "locked.pptx"
    encrypted.write_bytes(ole + "EncryptedPackage".encode("utf-16-le") + b"\0" * 100)
    old = tmp_path / "old.pptx"
    old.write_bytes(ole + "PowerPoint Document".encode("utf-16-le") + b"\0" * 100)
    odp = tmp_path / "impress.pptx"
    with zipfile.ZipFile(odp, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.presentation")
        z.writestr("content.xml", "<office:document-content/>")
    key = tmp_path / "keynote.pptx"
    with zipfile.ZipFile(key, "w") as z:
        z.writestr("Index/Document.iwa", b"\0")
    potx = tmp_path / "template.pptx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(potx, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "[Content_Types].xml":
                data = data.replace(b"presentationml.presentation.main",
                                    b"presentationml.template.main")
            dst.writestr(item, data)
    return {corrupt: "damaged", encrypted: "password-protected", old: "97-2003",
            odp: "OpenDocument", key: "Keynote", potx: r"template \(.potx\)"}


def test_bad_files_are_named_in_plain_words(tmp_path, specs):
    for path, what in bad_files(tmp_path).items():
        with pytest.raises(TemplateError, match=what) as caught:
            check_pptx_template(path, list(specs))
        assert path.name in caught.value.message
        if what not in ("damaged",):
            assert ".pptx" in caught.value.message  # says what to do


def test_no_marks_fails_and_names_near_misses(tmp_path, specs):
    template = deck(tmp_path / "t.pptx", lambda prs: textbox(
        prs.slides.add_slide(prs.slide_layouts[6]), "{{stakeholder}} and {{Data}}"))
    with pytest.raises(TemplateError, match="no section marks") as caught:
        check_pptx_template(template, list(specs))
    message = caught.value.message
    assert "{{stakeholder}} — did you mean {{stakeholders}}?" in message
    assert "{{Data}} — did you mean {{data}}?" in message
    assert "typing {{current_state}}" in message


def test_unknown_tokens_are_listed_and_warned(tmp_path, specs):
    def build(prs):
        slide = prs.slides.add_slide(prs.slide_layouts[6])
        textbox(slide, "{{data}}")
        textbox(slide, "{{stakeholder}}", y=3.0)

    template = deck(tmp_path / "t.pptx", build)
    check = check_pptx_template(template, list(specs))
    assert check.unknown[0].startswith("{{stakeholder}} — did you mean {{stakeholders}}?")
    report = write_pptx(sample_deck(specs), tmp_path / "o.pptx", template, list(specs))
    assert any("{{stakeholder}} — did you mean" in w for w in report.warnings)


def test_a_link_on_the_token_and_a_stale_shrink_are_not_kept(tmp_path, specs):
    def build(prs):
        shape = textbox(prs.slides.add_slide(prs.slide_layouts[6]), "{{data}}")
        shape.text_frame.paragraphs[0].runs[0].hyperlink.address = "https://example.com"
        body = shape.text_frame._txBody.find(f"{{{A}}}bodyPr")
        for child in list(body):
            body.remove(child)
        etree.SubElement(body, f"{{{A}}}normAutofit").set("fontScale", "40000")

    write_pptx(sample_deck(specs), tmp_path / "o.pptx", deck(tmp_path / "t.pptx", build))
    shape = Presentation(str(tmp_path / "o.pptx")).slides[0].shapes[0]
    xml = etree.tostring(shape._element).decode()
    assert "hlinkClick" not in xml and "fontScale" not in xml
    assert shape.text_frame.paragraphs[0].runs[0].font.size == Pt(18)


def test_a_fact_that_overflows_its_box_is_set_smaller(tmp_path, specs):
    def build(prs):
        slide = prs.slides.add_slide(prs.slide_layouts[6])
        textbox(slide, "{{data}}", y=3.0)
        textbox(slide, "{{client}}", y=0.5, h=1.4, size=40, w=4.0)

    sample = sample_deck(specs)
    sample.brief = replace(sample.brief, client="Harbor Logistics International Holdings")
    report = write_pptx(sample, tmp_path / "o.pptx", deck(tmp_path / "t.pptx", build))
    assert not any("facts" in w for w in report.warnings)
    run = Presentation(str(tmp_path / "o.pptx")).slides[0].shapes[1].text_frame \
        .paragraphs[0].runs[0]
    assert run.text == "Harbor Logistics International Holdings"  # whole, never cut
    assert Pt(20) <= run.font.size < Pt(40)


def slides_deck():
    """A Slides deck with a group, a table cell, an inline token and speaker notes."""
    def text(*paragraphs):
        elements, at = [], 0
        for p in paragraphs:
            content = p + "\n"
            elements.append({"startIndex": at, "endIndex": at + len(content),
                             "paragraphMarker": {"style": {}}})
            elements.append({"startIndex": at, "endIndex": at + len(content),
                             "textRun": {"content": content, "style": {"fontSize": {
                                 "magnitude": 14, "unit": "PT"}}}})
            at += len(content)
        return {"textElements": elements}

    size = {"width": {"magnitude": 3000000, "unit": "EMU"},
            "height": {"magnitude": 2000000, "unit": "EMU"}}
    return {"presentationId": "p1", "revisionId": "r1", "title": "Odd", "slides": [{
        "objectId": "s1",
        "pageElements": [
            {"objectId": "g1", "elementGroup": {"children": [
                {"objectId": "in_group", "size": size, "shape": {"shapeType": "TEXT_BOX",
                                                                 "text": text("{{skills}}")}}]}},
            {"objectId": "t1", "size": size, "table": {
                "rows": 1, "columns": 2,
                "tableColumns": [{"columnWidth": {"magnitude": 1500000, "unit": "EMU"}}] * 2,
                "tableRows": [{"rowHeight": {"magnitude": 900000, "unit": "EMU"},
                               "tableCells": [{"text": text("{{data}}")},
                                              {"text": text("x")}]}]}},
            {"objectId": "inline", "size": size, "shape": {
                "shapeType": "TEXT_BOX", "text": text("Intro", "Notes: {{future_state}}")}}],
        "slideProperties": {"notesPage": {
            "notesProperties": {"speakerNotesObjectId": "notes1"},
            "pageElements": [{"objectId": "notes1", "shape": {
                "shapeType": "TEXT_BOX", "text": text("Say {{stakeholder}}")}}]}}}]}


def test_slides_marks_use_the_same_model(specs):
    check = check_slides_template(slides_deck(), list(specs))
    assert check.where == {"skills": "group", "data": "cell", "future_state": "inline"}
    assert check.unknown[0].startswith("{{stakeholder}} — did you mean {{stakeholders}}?")
    assert check.boxes["data"].width == pytest.approx(1500000 / 12700)
    assert check_slides_template(realistic_template(), list(specs)).sections_marked == \
        list(specs)
    with pytest.raises(TemplateError, match="no section marks"):
        check_slides_template({"presentationId": "x", "slides": []}, list(specs))


def test_slides_edits_reach_cells_and_keep_inline_words(specs):
    requests, report = plan_edits(slides_deck(), sample_deck(specs))
    cell = [r for r in requests if r.get("insertText", {}).get("cellLocation")]
    assert cell and cell[0]["insertText"]["objectId"] == "t1"
    inline = [r["deleteText"] for r in requests if "deleteText" in r
              and r["deleteText"]["objectId"] == "inline"]
    start = len("Intro\nNotes: ")
    assert inline[0]["textRange"] == {"type": "FIXED_RANGE", "startIndex": start,
                                      "endIndex": start + len("{{future_state}}")}
    assert set(report.filled) == {"skills", "data", "future_state"}
    assert not any("updatePageElementAltText" in r and r["updatePageElementAltText"][
        "objectId"] == "t1" for r in requests)
