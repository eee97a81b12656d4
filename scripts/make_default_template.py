"""Builds deckgen/data/default.pptx, the template used when the user gives none: a title
slide and one slide per section (in prompts/sections.yaml order), marked with tokens.

Run it again after adding a section: `.venv/bin/python scripts/make_default_template.py`."""

from __future__ import annotations

import sys
from pathlib import Path

from lxml import etree
from pptx import Presentation
from pptx.dml.color import RGBColor
from pptx.enum.shapes import MSO_SHAPE
from pptx.enum.text import MSO_ANCHOR, MSO_AUTO_SIZE
from pptx.util import Emu, Inches, Pt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from deckgen.sections import load_specs  # noqa: E402

NAVY, TEAL, INK, GREY = (RGBColor(0x1F, 0x2A, 0x44), RGBColor(0x13, 0x8D, 0x90),
                         RGBColor(0x33, 0x3B, 0x48), RGBColor(0x8A, 0x93, 0xA0))
FONT = "Arial"
A = "http://schemas.openxmlformats.org/drawingml/2006/main"


def rect(slide, x, y, w, h, color):
    shape = slide.shapes.add_shape(MSO_SHAPE.RECTANGLE, x, y, w, h)
    shape.fill.solid()
    shape.fill.fore_color.rgb = color
    shape.line.fill.background()
    return shape


def text(slide, x, y, w, h, value, size, color, bold=False, anchor=MSO_ANCHOR.TOP):
    box = slide.shapes.add_textbox(x, y, w, h)
    frame = box.text_frame
    frame.word_wrap = True
    # A fixed box: deckgen fits the text to it (a box that grows would run off the slide).
    frame.auto_size = MSO_AUTO_SIZE.NONE
    frame.vertical_anchor = anchor
    run = frame.paragraphs[0].add_run()
    run.text = value
    run.font.name, run.font.size, run.font.bold = FONT, Pt(size), bold
    run.font.color.rgb = color
    return box


def bulleted(box):
    """Give the box's first paragraph a round bullet with a hanging indent."""
    p = box.text_frame.paragraphs[0]._p
    ppr = p.get_or_add_pPr()
    ppr.set("marL", str(Emu(Inches(0.3))))
    ppr.set("indent", str(-Emu(Inches(0.3))))
    spc = etree.SubElement(ppr, f"{{{A}}}spcBef")
    etree.SubElement(spc, f"{{{A}}}spcPts").set("val", "900")
    etree.SubElement(ppr, f"{{{A}}}buClr").append(
        etree.fromstring(f'<a:srgbClr xmlns:a="{A}" val="138D90"/>'))
    etree.SubElement(ppr, f"{{{A}}}buFont").set("typeface", FONT)
    etree.SubElement(ppr, f"{{{A}}}buChar").set("char", "\u2022")


def main() -> None:
    specs = load_specs(ROOT / "prompts")
    prs = Presentation()
    prs.slide_width, prs.slide_height = Inches(13.333), Inches(7.5)
    blank = prs.slide_layouts[6]
    W, H = prs.slide_width, prs.slide_height

    cover = prs.slides.add_slide(blank)
    rect(cover, 0, 0, W, H, NAVY)
    rect(cover, Inches(0.8), Inches(2.4), Inches(1.2), Inches(0.08), TEAL)
    text(cover, Inches(0.8), Inches(2.6), Inches(11.5), Inches(1.2), "{{client}}", 40,
         RGBColor(0xFF, 0xFF, 0xFF), bold=True)
    text(cover, Inches(0.8), Inches(3.8), Inches(11.5), Inches(1.4), "{{opportunity}}", 20,
         RGBColor(0xD5, 0xDB, 0xE3))
    text(cover, Inches(0.8), Inches(6.4), Inches(11.5), Inches(0.5), "{{date}}", 12, GREY)

    for spec in specs.values():
        slide = prs.slides.add_slide(blank)
        rect(slide, 0, 0, Inches(0.18), H, NAVY)
        text(slide, Inches(0.7), Inches(0.45), Inches(11.9), Inches(0.4), spec.label.upper(),
             12, TEAL, bold=True)
        text(slide, Inches(0.7), Inches(0.85), Inches(11.9), Inches(1.0),
             f"{{{{{spec.name}.title}}}}", 28, NAVY, bold=True, anchor=MSO_ANCHOR.MIDDLE)
        rect(slide, Inches(0.7), Inches(1.95), Inches(11.9), Emu(12700), RGBColor(0xD5, 0xDB, 0xE3))
        body = text(slide, Inches(0.7), Inches(2.2), Inches(11.9), Inches(4.5),
                    f"{{{{{spec.name}}}}}", 18, INK)
        bulleted(body)
        text(slide, Inches(0.7), Inches(6.9), Inches(8), Inches(0.35), "{{client}}", 10, GREY)

    out = ROOT / "deckgen" / "data" / "default.pptx"
    prs.save(str(out))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
