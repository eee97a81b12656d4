"""A corpus of templates nobody here designed, marked with tokens the way a rep would.

- LibreOffice's own Impress templates (`.otp`, shipped with libreoffice-impress), converted
  to .pptx by `soffice --convert-to pptx`: 16:10 pages, everything set explicitly on each
  slide, no insets, shrink-on-overflow bodies;
- python-pptx's default deck (4:3, Calibri from the theme, sizes from the master);
- decks built on purpose with odd features: a table (header row and body cells), a scaled
  group, an inline mark (`Notes: {{data}}`), speaker notes, a title that does not wrap, an
  auto-growing box above another shape, space before paragraphs, a custom page size, a
  presentation `defaultTextStyle` in Trebuchet MS and placeholders that inherit everything.

A rep marks a box by clicking into it and typing: the token's run takes the paragraph's
end-of-paragraph properties, as PowerPoint and Impress do. `build_corpus(folder)` writes
every template it can (the LibreOffice ones only where soffice is installed) and returns
{name: path}."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

from lxml import etree
from pptx import Presentation
from pptx.enum.text import MSO_AUTO_SIZE
from pptx.util import Inches, Pt

A = "http://schemas.openxmlformats.org/drawingml/2006/main"
P = "http://schemas.openxmlformats.org/presentationml/2006/main"
OTP_DIR = Path("/usr/lib/libreoffice/share/template/common/presnt")
LIBREOFFICE = ("Beehive", "Focus", "Vivid", "Piano", "Progress", "Metropolis",
               "Midnightblue", "Pencil", "Blueprint_Plans", "DNA")
SECTIONS = ("current_state", "future_state", "data", "skills", "stakeholders")


def type_token(body, token: str) -> None:
    """Type `token` into an empty (or emptied) text body, as a person does."""
    paragraphs = body.findall(f"{{{A}}}p")
    for p in paragraphs[1:]:
        body.remove(p)
    p = paragraphs[0] if paragraphs else etree.SubElement(body, f"{{{A}}}p")
    for child in list(p):
        if child.tag in (f"{{{A}}}r", f"{{{A}}}br", f"{{{A}}}fld"):
            p.remove(child)
    end = p.find(f"{{{A}}}endParaRPr")
    r = etree.Element(f"{{{A}}}r")
    if end is not None:
        rpr = copy.deepcopy(end)
        rpr.tag = f"{{{A}}}rPr"
        r.append(rpr)
    etree.SubElement(r, f"{{{A}}}t").text = token
    if end is not None:
        end.addprevious(r)
    else:
        p.append(r)


def _ph(shape) -> str:
    return str(shape.placeholder_format.type).split(".")[-1].split(" ")[0] \
        if shape.is_placeholder else ""


def _title_and_body(slide):
    title = body = None
    for shape in slide.placeholders:
        kind = _ph(shape)
        if kind.startswith(("TITLE", "CENTER_TITLE")) and title is None:
            title = shape
        elif kind.startswith(("OBJECT", "BODY")) and body is None:
            body = shape
    return title, body


def mark_slides(prs) -> None:
    """One section per content slide: its title gets {{s.title}}, its body {{s}}; slides
    are added (copies of the first content slide) until every section has one; the first
    title slide gets the facts."""
    content = [s for s in prs.slides if all(_title_and_body(s))]
    if not content:
        # only a title slide: add one on the "Title, Content" layout, whose placeholders
        # inherit their place, size and look from the layout and the master
        layout = next(lay for lay in prs.slide_layouts
                      if all(_title_and_body(lay)) and len(lay.placeholders) <= 5)
        content = [prs.slides.add_slide(layout)]
    model = content[0]
    while len(content) < len(SECTIONS):
        slide = prs.slides.add_slide(model.slide_layout)
        tree = slide.shapes._spTree
        for shape in list(slide.shapes):
            tree.remove(shape._element)
        for shape in model.shapes:
            tree.append(copy.deepcopy(shape._element))
        content.append(slide)
    for slide, name in zip(content, SECTIONS, strict=False):
        title, body = _title_and_body(slide)
        type_token(title._element.txBody, "{{" + name + ".title}}")
        type_token(body._element.txBody, "{{" + name + "}}")
    first = prs.slides[0]
    if first not in content:
        title = next((s for s in first.placeholders if s.has_text_frame), None)
        if title is not None:
            type_token(title._element.txBody, "Prepared for {{client}}: {{opportunity}}")


def libreoffice_templates(folder: Path) -> dict[str, Path]:
    """LibreOffice's Impress templates, converted to .pptx and marked; {} without soffice."""
    sources = [OTP_DIR / f"{n}.otp" for n in LIBREOFFICE if (OTP_DIR / f"{n}.otp").is_file()]
    if not shutil.which("soffice") or not sources:
        return {}
    raw = folder / "converted"
    raw.mkdir(parents=True, exist_ok=True)
    subprocess.run(["soffice", f"-env:UserInstallation=file://{folder / 'lo-profile'}",
                    "--headless", "--convert-to", "pptx", "--outdir", str(raw),
                    *map(str, sources)], check=True, capture_output=True, timeout=300)
    out = {}
    for source in sources:
        converted = raw / f"{source.stem}.pptx"
        if not converted.is_file():
            continue
        prs = Presentation(str(converted))
        mark_slides(prs)
        path = folder / f"lo-{source.stem.lower()}.pptx"
        prs.save(str(path))
        out[path.stem] = path
    return out


def python_pptx_default(folder: Path) -> Path:
    """python-pptx's own default deck (4:3), every section on a Title and Content slide."""
    prs = Presentation()
    cover = prs.slides.add_slide(prs.slide_layouts[0])
    cover.shapes.title.text = "{{client}}"
    cover.placeholders[1].text = "{{opportunity}} · {{date}}"
    for name in SECTIONS:
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = "{{" + name + ".title}}"
        slide.placeholders[1].text = "{{" + name + "}}"
    path = folder / "python-pptx-default.pptx"
    prs.save(str(path))
    return path


def _textbox(slide, x, y, w, h, text, size=18, font=None, wrap=True, grow=False):
    shape = slide.shapes.add_textbox(x, y, w, h)
    frame = shape.text_frame
    frame.word_wrap = wrap
    frame.auto_size = MSO_AUTO_SIZE.SHAPE_TO_FIT_TEXT if grow else MSO_AUTO_SIZE.NONE
    frame.text = text
    run = frame.paragraphs[0].runs[0]
    run.font.size = Pt(size)
    if font:
        run.font.name = font
    return shape


def odd_features(folder: Path) -> Path:
    """16:9 with a table, a scaled group, inline marks, notes, a no-wrap title, an
    auto-growing box above a picture-like shape, and space before paragraphs."""
    prs = Presentation()
    prs.slide_width, prs.slide_height = Inches(13.333), Inches(7.5)
    blank = prs.slide_layouts[6]
    # a no-wrap title and a table: header cell for the headline, body cell for the items
    s = prs.slides.add_slide(blank)
    _textbox(s, Inches(0.5), Inches(0.3), Inches(9), Inches(0.8), "{{data.title}}", 32,
             "Arial", wrap=False)
    table = s.shapes.add_table(3, 2, Inches(0.5), Inches(1.4), Inches(12), Inches(5)).table
    table.columns[0].width, table.columns[1].width = Inches(7), Inches(5)
    table.cell(0, 0).text = "What we need"
    table.cell(0, 1).text = "Prepared for {{client}}"
    table.cell(1, 0).text = "{{data}}"
    table.cell(1, 0).margin_left = Inches(0.3)
    table.cell(1, 1).text = "{{opportunity}}"
    for r in range(3):
        table.rows[r].height = Inches(0.6) if r != 1 else Inches(3.6)
        for c in range(2):
            for p in table.cell(r, c).text_frame.paragraphs:
                for run in p.runs:
                    run.font.size = Pt(14)
    # a group scaled to half its children's size, holding a headline and a body
    s = prs.slides.add_slide(blank)
    group = s.shapes.add_group_shape()
    _textbox(group, Inches(0.5), Inches(0.5), Inches(11), Inches(1.2),
             "{{skills.title}}", 28, "Calibri")
    _textbox(group, Inches(0.5), Inches(2.0), Inches(11), Inches(4.8), "{{skills}}", 18,
             "Calibri")
    xfrm = group._element.grpSpPr.find(f"{{{A}}}xfrm")
    ext = xfrm.find(f"{{{A}}}ext")
    ext.set("cx", str(int(int(ext.get("cx")) * 1.1)))  # stretched wider than drawn
    # inline marks and speaker notes; an auto-growing box stops at the shape below it
    s = prs.slides.add_slide(blank)
    _textbox(s, Inches(0.5), Inches(0.4), Inches(12), Inches(0.8),
             "Stakeholders: {{stakeholders.title}}", 28, "Arial")
    grow = _textbox(s, Inches(0.5), Inches(1.4), Inches(7), Inches(1), "{{stakeholders}}",
                    16, "Arial", grow=True)
    ppr = grow.text_frame.paragraphs[0]._p.get_or_add_pPr()
    before = etree.SubElement(ppr, f"{{{A}}}spcBef")
    etree.SubElement(before, f"{{{A}}}spcPts").set("val", "900")
    s.shapes.add_shape(1, Inches(0.5), Inches(5.6), Inches(12), Inches(1.2))
    notes = s.notes_slide.notes_text_frame
    notes.text = "Open with: {{current_state.title}}. Then walk through {{current_state}}"
    _textbox(s, Inches(8), Inches(1.4), Inches(4.8), Inches(4), "Notes: {{future_state}}", 14,
             "Times New Roman")
    path = folder / "odd-16x9.pptx"
    prs.save(str(path))
    return path


def inherited_styles(folder: Path) -> Path:
    """A custom page (US Letter, landscape) whose placeholders carry no properties of their own:
    sizes and spacing come from the master's text styles, plain text boxes from the
    presentation's defaultTextStyle (20pt Trebuchet MS), the headline font from the theme."""
    prs = Presentation()
    prs.slide_width, prs.slide_height = Inches(11), Inches(8.5)
    default = prs._element.find(f"{{{P}}}defaultTextStyle")
    if default is not None:
        for level in default:
            level.set("marL", "0")
            rpr = level.find(f"{{{A}}}defRPr")
            if rpr is not None:
                rpr.set("sz", "2000")
                for latin in rpr.findall(f"{{{A}}}latin"):
                    latin.set("typeface", "Trebuchet MS")
    master = prs.slide_master._element
    body = master.find(f"{{{P}}}txStyles/{{{P}}}bodyStyle/{{{A}}}lvl1pPr")
    for old in body.findall(f"{{{A}}}spcBef"):
        body.remove(old)
    before = etree.Element(f"{{{A}}}spcBef")
    etree.SubElement(before, f"{{{A}}}spcPts").set("val", "1200")
    body.insert(0, before)
    body.find(f"{{{A}}}defRPr").set("sz", "2200")
    for name in ("current_state", "future_state"):
        s = prs.slides.add_slide(prs.slide_layouts[1])
        s.shapes.title.text = "{{" + name + ".title}}"
        s.placeholders[1].text = "{{" + name + "}}"
    s = prs.slides.add_slide(prs.slide_layouts[5])  # title only
    s.shapes.title.text = "{{data.title}}"
    box = s.shapes.add_textbox(Inches(0.6), Inches(2.2), Inches(7), Inches(5))
    box.text_frame.word_wrap, box.text_frame.auto_size = True, MSO_AUTO_SIZE.NONE
    box.text_frame.text = "{{data}}"
    path = folder / "inherited-letter.pptx"
    prs.save(str(path))
    return path


def build_corpus(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = libreoffice_templates(folder)
    for make in (python_pptx_default, odd_features, inherited_styles):
        path = make(folder)
        out[path.stem] = path
    return out
