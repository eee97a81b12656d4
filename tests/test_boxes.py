"""Measuring text in a template's boxes, and making each section fit its box."""

import json
import math
from dataclasses import replace

import pytest
from fontTools.ttLib import TTFont
from pptx import Presentation
from pptx.enum.text import MSO_AUTO_SIZE
from pptx.util import Inches, Pt

from deckgen.boxes import Box, box_spec, measure, trim_to_fit, wrapped_lines
from deckgen.deck import generate_section
from deckgen.fonts import FONT_DIR, face
from deckgen.writers.pptx import template_boxes
from deckgen.writers.slides import deck_boxes
from tests.samples import FULL_BRIEF as BRIEF
from tests.slides_fixtures import realistic_template

WORDS = ("Regional depots reconcile stock by hand every night, so planners see yesterday's "
         "inventory and reorder late, which costs margin and customer trust").split()


def bullets(count: int, chars: int) -> list[str]:
    """`count` distinct bullets of about `chars` characters, cut at a word."""
    out = []
    for i in range(count):
        words, text = iter(WORDS * 10), f"{i + 1}."
        while len(text) < chars - 12:
            text += " " + next(words)
        out.append(text)
    return out


def box(height_in: float, width_in: float = 6.0, font: str = "Arial", size: float = 18,
        **kw) -> Box:
    return Box(width=width_in * 72, height=height_in * 72, font=font, size=size, **kw)


# -- fonts ----------------------------------------------------------------------------------

def test_widths_are_the_fonts_own_advances():
    """Pillow's measure of a string equals the sum of the font's hmtx advances (no kerning
    pairs in this string), read independently with fontTools."""
    text = "Quarterly margin"
    font = TTFont(str(FONT_DIR / "LiberationSans-Regular.ttf"))
    cmap, hmtx = font.getBestCmap(), font["hmtx"]
    units = sum(hmtx[cmap[ord(c)]][0] for c in text) / font["head"].unitsPerEm
    assert face("Arial").width(text, 20) == pytest.approx(units * 20, rel=0.01)


def test_metric_compatible_faces_and_an_unknown_family():
    arial, calibri, unknown = face("Arial"), face("Calibri"), face("Some Display Font")
    assert arial.exact and calibri.exact and not unknown.exact
    assert face("arial").measured_with == face("Liberation Sans").measured_with
    text = "Stakeholders care about margin"
    assert calibri.width(text, 18) < arial.width(text, 18)  # Calibri is narrower
    assert arial.width(text, 18, bold=True) > arial.width(text, 18)
    assert unknown.width(text, 18) > arial.width(text, 18)  # judged conservatively
    assert 1.0 < arial.line_height < 1.4


def test_wrapping_breaks_at_the_last_word_that_fits():
    f = face("Arial")
    two = "margin visibility"
    exact = f.width(two, 18) + 7.2 + 7.2
    fitted = Box(width=exact, height=100, font="Arial", size=18)
    assert wrapped_lines(fitted, two) == 1
    assert wrapped_lines(fitted, two + " daily") == 2
    assert wrapped_lines(replace(fitted, width=exact - 1), two) == 2
    # a word wider than the line breaks across lines instead of being lost
    narrow = replace(fitted, width=f.width("margin", 18) / 2 + 14.4)
    assert wrapped_lines(narrow, "margin") == 2


def test_lines_count_against_the_height_with_paragraph_spacing():
    b = box(2.0)
    assert b.lines_available == math.floor((144 - 7.2) / b.pitch)
    one_line = ["short"] * b.lines_available
    assert measure(b, one_line).fits
    assert not measure(b, one_line + ["short"]).fits
    spaced = replace(b, space_before=b.pitch)  # each paragraph costs a line more
    assert measure(spaced, ["short"] * 2).lines_used == 4


def test_degenerate_boxes_are_measured_not_crashed(specs):
    spec = specs["stakeholders"]
    content = {"title": "t", "people": [{"name": "Ana Ruiz", "role": "COO",
                                          "cares_about": "waits"}] * 3}
    for odd in (box(0.0), box(2.0, size=0), box(2.0, 0.1), box(2.0, line_spacing=0),
                box(2.0, line_pitch=0.0)):
        limits = box_spec(spec, odd)
        assert 1 <= limits.min_items <= limits.max_items
        fitted, dropped = trim_to_fit(odd, spec, content)
        assert len(fitted["people"]) >= 1 and dropped <= 2


# -- limits from the box --------------------------------------------------------------------

def test_a_large_box_keeps_the_section_limits(specs):
    assert box_spec(specs["current_state"], box(6.0, 11.0)) == specs["current_state"]


def test_smaller_boxes_get_fewer_then_shorter_items(specs):
    spec = specs["current_state"]
    limits = [box_spec(spec, box(h)) for h in (5.0, 3.0, 2.0, 1.2, 0.6)]
    counts = [s.max_items for s in limits]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]
    assert all(s.min_items <= s.max_items for s in limits)
    tiny = limits[-1]
    assert tiny.max_items < spec.min_items or tiny.item_chars < spec.item_chars
    # whatever the limits promise fits: max items of max length, measured for real
    for b, s in zip((box(h) for h in (5.0, 3.0, 2.0, 1.2)), limits, strict=False):
        worst = bullets(s.max_items, s.item_chars)
        assert measure(b, worst).fits, (s.max_items, s.item_chars)


def test_object_items_shrink_every_field(specs):
    spec = specs["stakeholders"]
    small = box_spec(spec, box(1.0, 5.0, size=14))
    assert small.item_fields and spec.item_fields
    assert all(small.item_fields[k] <= v for k, v in spec.item_fields.items())
    assert small.json_schema()["properties"]["people"]["maxItems"] == small.max_items


def test_trimming_drops_whole_items_from_the_end(specs):
    spec = specs["current_state"]
    b = box(1.5)
    items = bullets(5, 110)
    content, dropped = trim_to_fit(b, spec, {"title": "t", "bullets": items})
    assert dropped > 0
    assert content["bullets"] == items[: len(items) - dropped]  # whole, unclipped, in order
    assert measure(b, content["bullets"]).fits
    assert not measure(b, items[: len(items) - dropped + 1]).fits


# -- boxes read from templates --------------------------------------------------------------

def test_slides_boxes_come_from_size_transform_and_styles():
    deck = realistic_template()
    boxes = deck_boxes(deck)
    sections = {"current_state", "future_state", "data", "skills", "stakeholders"}
    assert set(boxes) == sections | {f"{s}.title" for s in sections}
    title = boxes["current_state.title"]  # Montserrat 28pt bold: no metrics, judged wider
    assert (title.font, title.size, title.bold) == ("Montserrat", 28, True)
    assert not title.describe()["exact_metrics"]
    cs = boxes["current_state"]
    element = next(e for s in deck["slides"] for e in s["pageElements"]
                   if e["objectId"] == "cs_body")
    assert cs.width == pytest.approx(element["size"]["width"]["magnitude"] / 12700)
    assert (cs.font, cs.size, cs.line_spacing, cs.space_before) == ("Roboto", 16, 1.15, 6)
    stake = boxes["stakeholders"]
    assert stake.indent == 18  # the bulleted placeholder's hanging indent
    assert stake.text_width < cs.text_width


def test_pptx_boxes_resolve_sizes_fonts_and_inheritance(tmp_path):
    """Boxes of several sizes and fonts: explicit runs, and a placeholder whose font comes
    from the theme and whose size comes from the layout."""
    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[1])  # title and content
    body = slide.placeholders[1]
    body.text_frame.text = "{{current_state}}"  # no run properties: all inherited
    small = slide.shapes.add_textbox(Inches(1), Inches(5), Inches(3), Inches(1))
    small.text_frame.text = "{{skills}}"
    small.text_frame.auto_size = MSO_AUTO_SIZE.NONE  # a fixed box
    run = small.text_frame.paragraphs[0].runs[0]
    run.font.name, run.font.size = "Calibri", Pt(12)
    wide = prs.slides.add_slide(prs.slide_layouts[6]).shapes.add_textbox(
        Inches(0.5), Inches(0.5), Inches(9), Inches(6))
    wide.text_frame.text = "{{data}}"
    wide.text_frame.paragraphs[0].runs[0].font.name = "Times New Roman"
    wide.text_frame.paragraphs[0].runs[0].font.size = Pt(24)
    path = tmp_path / "t.pptx"
    prs.save(str(path))
    boxes = template_boxes(Presentation(str(path)))
    cs, skills, data = boxes["current_state"], boxes["skills"], boxes["data"]
    assert cs.font == "Calibri" and cs.size == 32  # theme minor font; master body level 1
    assert cs.width == pytest.approx(body.width / 12700)
    assert (skills.font, skills.size, skills.height) == ("Calibri", 12, 72)
    assert (data.font, data.size) == ("Times New Roman", 24)
    # python-pptx's text boxes grow with their text: room down to the slide's bottom edge
    assert data.height == (7.5 - 0.5) * 72 and "grows" in " ".join(data.assumed)
    assert skills.insets == (7.2, 3.6, 7.2, 3.6)  # PowerPoint's default insets
    assert skills.lines_available < data.lines_available


# -- fitting in the core --------------------------------------------------------------------

def answer(count: int, chars: int) -> str:
    return json.dumps({"title": "Trucks wait 2.5 hours", "bullets": bullets(count, chars)})


def test_a_small_box_asks_for_fewer_items(fake_generator, fake_openai, specs):
    small = box(1.6)
    limits = box_spec(specs["current_state"], small)
    result = generate_section(fake_generator, specs["current_state"], BRIEF, box=small)
    schema = fake_openai.requests[0]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["bullets"]["maxItems"] == limits.max_items \
        < specs["current_state"].max_items
    assert f"to {limits.max_items} items" in fake_openai.requests[0]["messages"][0]["content"]
    assert result.fit["limits"]["max_items"] == limits.max_items
    assert result.fit["lines_used"] <= result.fit["lines_available"]


def test_a_long_section_is_shortened_on_the_same_route(fake_generator, fake_openai, specs):
    b = box(2.4)
    fake_openai.reply("current_state", answer(5, 118), answer(3, 60))
    result = generate_section(fake_generator, specs["current_state"], BRIEF, box=b)
    assert result.status == "ok" and len(fake_openai.requests) == 2
    ask = fake_openai.requests[1]["messages"]
    first = measure(b, bullets(5, 118))
    assert ask[-2]["role"] == "assistant" and "too long for its box" in ask[-1]["content"]
    assert f"the text needs {first.lines_used} lines and the box holds " \
        f"{first.lines_available}" in ask[-1]["content"]
    fit = result.fit
    assert fit["first_answer"] == str(first) and not first.fits
    assert fit["shortened"] and fit["items_dropped"] == 0 and not fit["overflows"]
    assert result.lines == bullets(3, 60)
    assert fit["lines_used"] <= fit["lines_available"]


def test_still_too_long_is_trimmed_at_an_item_and_flagged(fake_generator, fake_openai, specs):
    b = box(2.4)
    fake_openai.reply("current_state", answer(5, 118), answer(5, 110))
    result = generate_section(fake_generator, specs["current_state"], BRIEF, box=b)
    fit = result.fit
    assert fit["shortened"] and fit["items_dropped"] >= 1 and "dropped" in fit["warning"]
    assert result.lines == bullets(5, 110)[: 5 - fit["items_dropped"]]
    assert measure(b, result.lines).fits


def test_one_item_too_big_for_the_box_is_flagged_not_clipped(fake_generator, fake_openai,
                                                             specs):
    b = box(0.5, 2.0)
    fake_openai.reply("current_state", answer(3, 118), answer(3, 118))
    result = generate_section(fake_generator, specs["current_state"], BRIEF, box=b)
    assert result.status == "ok" and result.fit["overflows"]
    assert "shorten it by hand" in result.fit["warning"]
    assert result.lines == bullets(3, 118)[:1]


def test_without_a_box_nothing_is_measured(fake_generator, fake_openai, specs):
    fake_openai.reply("current_state", answer(5, 118))
    result = generate_section(fake_generator, specs["current_state"], BRIEF)
    assert result.fit is None and len(fake_openai.requests) == 1


def titled(title: str) -> str:
    return json.dumps({"title": title, "bullets": bullets(3, 40)})


def test_a_headline_is_written_to_its_box_and_shortened_when_long(fake_generator, fake_openai,
                                                                  specs):
    headline = box(0.6, 6.0, size=28, bold=True)
    limits = box_spec(specs["current_state"], None, headline)
    assert 20 <= limits.title_chars < specs["current_state"].title_chars
    long_title = "Harbor Logistics trucks wait two and a half hours at every gate"
    fake_openai.reply("current_state", titled(long_title), titled("Trucks wait 2.5 hours"))
    result = generate_section(fake_generator, specs["current_state"], BRIEF, box=box(4.0),
                              title_box=headline)
    schema = fake_openai.requests[0]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["title"]["maxLength"] == limits.title_chars
    first = measure(headline, [long_title])
    assert "the headline needs" in fake_openai.requests[1]["messages"][-1]["content"]
    assert result.title == "Trucks wait 2.5 hours"
    assert result.fit["title"]["first_answer"] == str(first) and not first.fits
    assert result.fit["title"]["lines_used"] <= result.fit["title"]["lines_available"]
    assert not result.fit["title"]["overflows"] and "warning" not in result.fit


def test_a_headline_that_stays_long_is_flagged_not_cut(fake_generator, fake_openai, specs):
    headline = box(0.6, 6.0, size=28, bold=True)
    long_title = "Harbor Logistics trucks wait two and a half hours at every gate"
    fake_openai.reply("current_state", titled(long_title), titled(long_title))
    result = generate_section(fake_generator, specs["current_state"], BRIEF, box=box(4.0),
                              title_box=headline)
    assert result.status == "ok" and result.title == long_title  # whole, never clipped
    assert result.fit["title"]["overflows"] and "headline" in result.fit["warning"]


def test_a_malformed_template_value_is_a_clear_error(tmp_path):
    from deckgen.errors import TemplateError

    prs = Presentation()
    shape = prs.slides.add_slide(prs.slide_layouts[6]).shapes.add_textbox(
        Inches(1), Inches(1), Inches(4), Inches(2))
    shape.text_frame.text = "{{data}}"
    shape.text_frame.paragraphs[0].runs[0]._r.get_or_add_rPr().set("sz", "big")
    with pytest.raises(TemplateError, match="malformed size or spacing value"):
        template_boxes(prs)
