import pytest
from pptx import Presentation
from pptx.util import Pt

from deckgen.errors import TemplateError
from deckgen.writers.pptx import DEFAULT_TEMPLATE, write_pptx
from tests.samples import sample_deck


def all_text(path):
    return [[shape.text_frame.text for shape in slide.shapes if shape.has_text_frame]
            for slide in Presentation(str(path)).slides]


def test_default_template_gets_every_section(tmp_path, specs):
    out = tmp_path / "deck.pptx"
    report = write_pptx(sample_deck(specs), out)
    assert report.filled == list(specs) and report.warnings == []
    slides = all_text(out)
    assert "Harbor Logistics" in slides[0] and "Dock scheduling" in slides[0]
    for slide, spec in zip(slides[1:], specs.values(), strict=True):
        assert f"{spec.label} v1" in slide
        lines = sample_deck(specs).section(spec.name).lines
        assert "\n".join(lines) in slide
    assert not any("{{" in t for slide in slides for t in slide)


def test_each_item_keeps_the_template_bullet_and_font(tmp_path, specs):
    out = tmp_path / "deck.pptx"
    write_pptx(sample_deck(specs), out)
    slide = Presentation(str(out)).slides[1]
    body = max((s for s in slide.shapes if s.has_text_frame),
               key=lambda s: len(s.text_frame.paragraphs))
    paragraphs = body.text_frame.paragraphs
    assert len(paragraphs) == 3
    for p in paragraphs:
        assert p._p.pPr.find("{http://schemas.openxmlformats.org/drawingml/2006/main}buChar") \
            is not None
        assert p.runs[0].font.size == Pt(18) and p.runs[0].font.name == "Arial"


def test_object_items_get_their_label_in_bold(tmp_path, specs):
    out = tmp_path / "deck.pptx"
    write_pptx(sample_deck(specs), out)
    slide = Presentation(str(out)).slides[len(specs)]  # stakeholders
    body = max((s for s in slide.shapes if s.has_text_frame),
               key=lambda s: len(s.text_frame.paragraphs))
    first = body.text_frame.paragraphs[0]
    assert first.runs[0].font.bold is True and not first.runs[1].font.bold
    assert first.runs[0].text == "name 0 v1, role 0 v1:"


def own_template(path, marks):
    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[6])
    for i, mark in enumerate(marks):
        box = slide.shapes.add_textbox(Pt(20), Pt(20 + 120 * i), Pt(500), Pt(100))
        run = box.text_frame.paragraphs[0].add_run()
        run.text = mark
        run.font.name, run.font.size, run.font.italic = "Georgia", Pt(13), True
    prs.save(str(path))
    return path


def test_a_users_template_keeps_its_fonts_and_unmarked_sections_warn(tmp_path, specs):
    template = own_template(tmp_path / "mine.pptx",
                            ["Prepared for {{client}} by us", "{{skills}}"])
    report = write_pptx(sample_deck(specs), tmp_path / "out.pptx", template)
    assert report.filled == ["skills"]
    assert len(report.warnings) == 4 and "{{data}}" in " ".join(report.warnings)
    shapes = Presentation(str(tmp_path / "out.pptx")).slides[0].shapes
    assert shapes[0].text_frame.text == "Prepared for Harbor Logistics by us"
    paragraphs = shapes[1].text_frame.paragraphs
    assert [p.text for p in paragraphs] == sample_deck(specs).section("skills").lines
    runs = [r for p in paragraphs for r in p.runs]
    assert all(r.font.name == "Georgia" and r.font.italic and r.font.size == Pt(13)
               for r in runs)


def test_a_template_without_marks_says_how_to_mark_one(tmp_path, specs):
    template = own_template(tmp_path / "plain.pptx", ["Just a title"])
    with pytest.raises(TemplateError, match=r"typing \{\{current_state\}\}.*stakeholders"):
        write_pptx(sample_deck(specs), tmp_path / "out.pptx", template)
    assert not (tmp_path / "out.pptx").exists()


def test_a_failed_section_keeps_its_token_and_is_reported(tmp_path, specs):
    report = write_pptx(sample_deck(specs, failed={"data"}), tmp_path / "d.pptx")
    assert "data" not in report.filled
    assert any("data failed" in w for w in report.warnings)
    assert any("{{data}}" in t for slide in all_text(tmp_path / "d.pptx") for t in slide)


def test_not_a_pptx_is_a_clear_error(tmp_path, specs):
    bad = tmp_path / "bad.pptx"
    bad.write_text("hello")
    with pytest.raises(TemplateError, match="not a .pptx"):
        write_pptx(sample_deck(specs), tmp_path / "out.pptx", bad)


def test_default_template_ships_with_the_package():
    assert DEFAULT_TEMPLATE.is_file()
