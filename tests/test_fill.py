"""The fill use case: the template is checked before model time, and the outcome is honest."""

import pytest
from pptx import Presentation
from pptx.util import Inches

from deckgen.errors import TemplateError
from deckgen.fill import Filler, FillRequest, PptxTarget
from tests.samples import BRIEF


def deck_with(tmp_path, *texts):
    """A .pptx with one text box per text, as a rep would type them."""
    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[6])
    for i, text in enumerate(texts):
        box = slide.shapes.add_textbox(Inches(0.5), Inches(0.5 + 2.2 * i), Inches(9),
                                       Inches(2))
        box.text_frame.word_wrap = True
        box.text_frame.text = text
    path = tmp_path / "template.pptx"
    prs.save(path)
    return path


def test_a_template_without_marks_fails_before_any_model_call(tmp_path, fake_generator,
                                                              fake_openai):
    path = deck_with(tmp_path, "Our approach", "Next steps")
    with pytest.raises(TemplateError, match="no section marks"):
        Filler(fake_generator).prepare(FillRequest(BRIEF, PptxTarget(tmp_path / "o.pptx",
                                                                     path)))
    assert fake_openai.bodies() == []


def test_sections_without_a_box_are_not_generated_and_the_outcome_says_so(
        tmp_path, fake_generator, fake_openai):
    path = deck_with(tmp_path, "{{current_state}}", "{{data}}", "{{stakeholder}}")
    filler = Filler(fake_generator)
    prepared = filler.prepare(FillRequest(BRIEF, PptxTarget(tmp_path / "o.pptx", path)))
    assert [s.name for s in prepared.specs] == ["current_state", "data"]
    assert prepared.skipped == ["future_state", "skills", "stakeholders"]
    filled = filler.write(prepared, filler.generate(prepared))
    asked = {body["response_format"]["json_schema"]["name"] for body in fake_openai.bodies()}
    assert asked == {"current_state", "data"}  # no model time for a section with no box
    assert filled.status == "incomplete"
    assert "no box in the template (not generated): future_state, skills, stakeholders" \
        in filled.summary()
    assert any("did you mean {{stakeholders}}" in u for u in filled.unknown)
    assert "unknown tokens left visible" in filled.summary()
    text = " ".join(shape.text_frame.text for shape in
                    Presentation(tmp_path / "o.pptx").slides[0].shapes)
    assert "{{current_state}}" not in text and "{{data}}" not in text


def test_every_section_filled_and_fitting_is_ok(tmp_path, fake_generator):
    filler = Filler(fake_generator)
    filled = filler.fill(FillRequest(BRIEF, PptxTarget(tmp_path / "o.pptx")))
    assert filled.status == "ok", filled.summary()
    assert filled.summary() == ""
    assert set(filled.where) >= {"current_state", "data"}


@pytest.mark.parametrize("content, what", [
    (b"not a zip at all", "damaged"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "old Office file"),
])
def test_a_bad_file_fails_before_any_model_call_in_plain_words(tmp_path, fake_generator,
                                                               fake_openai, content, what):
    path = tmp_path / "template.pptx"
    path.write_bytes(content)
    with pytest.raises(TemplateError) as caught:
        Filler(fake_generator).prepare(FillRequest(BRIEF, PptxTarget(tmp_path / "o.pptx",
                                                                     path)))
    assert "template.pptx" in caught.value.message and what in caught.value.message
    assert "export it as a PowerPoint presentation (.pptx)" in caught.value.message
    assert fake_openai.bodies() == []
