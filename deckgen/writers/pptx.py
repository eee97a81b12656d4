"""Writing DeckContent into a .pptx built from a template.

A template marks where text goes with tokens in its text boxes:
  {{current_state}}        the section's items, one paragraph each (the box's bullets)
  {{current_state.title}}  the section's headline
  {{client}} {{industry}} {{opportunity}} {{date}}   facts from the brief, anywhere in text
A section's box keeps the look of its first paragraph and first run: every new paragraph
copies that paragraph's properties (bullets, indents, spacing) and that run's font. The
default template (deckgen/data/default.pptx) is made by scripts/make_default_template.py."""

from __future__ import annotations

import copy
import datetime as dt
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pptx import Presentation
from pptx.exc import PackageNotFoundError
from pptx.text.text import TextFrame

from deckgen.boxes import EMU_PER_PT, Box
from deckgen.deck import DeckContent
from deckgen.errors import TemplateError

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "data" / "default.pptx"
TOKEN = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)(?:\.(title))?\s*\}\}")
A = "http://schemas.openxmlformats.org/drawingml/2006/main"
FACTS = ("client", "industry", "opportunity", "date")
HOW_TO_MARK = ("mark a text box by typing {{{{{first}}}}} (the section's items) or "
               "{{{{{first}.title}}}} (its headline) into it; the sections are {names}")


@dataclass
class WriteReport:
    path: Path
    filled: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _replace_frame(frame: TextFrame, lines: list[str], leads: list[int] | None = None) -> None:
    """Replace all text in the frame with `lines`, one paragraph each, in the first
    paragraph's and first run's style; the first `leads[i]` characters of line i in bold."""
    paragraphs = frame.paragraphs
    first = paragraphs[0]._p
    ppr = first.find(f"{{{A}}}pPr")
    runs = first.findall(f"{{{A}}}r")
    rpr = runs[0].find(f"{{{A}}}rPr") if runs else None
    for p in paragraphs[1:]:
        p._p.getparent().remove(p._p)
    for r in list(first):
        if r.tag.endswith("}r") or r.tag.endswith("}br") or r.tag.endswith("}fld"):
            first.remove(r)
    leads = leads or [0] * len(lines)
    for i, line in enumerate(lines or [""]):
        if i == 0:
            para = paragraphs[0]
        else:
            para = frame.add_paragraph()
            if ppr is not None:
                para._p.insert(0, copy.deepcopy(ppr))
        lead = leads[i] if i < len(leads) else 0
        pieces = [(line[:lead], True), (line[lead:], False)] if lead else [(line, False)]
        for text, bold in pieces:
            run = para.add_run()
            run.text = text
            if rpr is not None:
                run._r.replace(run._r.get_or_add_rPr(), copy.deepcopy(rpr))
            if bold:
                run.font.bold = True


def _frame_text(frame: TextFrame) -> str:
    return "\n".join(p.text for p in frame.paragraphs)


def open_template(template: Path | None = None) -> Any:
    """The template as a python-pptx Presentation, or a TemplateError saying why not (the CLI
    calls this before any model time is spent)."""
    source = template or DEFAULT_TEMPLATE
    try:
        return Presentation(str(source))
    except (PackageNotFoundError, FileNotFoundError, KeyError, ValueError) as exc:
        raise TemplateError(f"cannot open template {source}: not a .pptx file ({exc})") from None


def _lvl1(parent: Any, path: str) -> Any:
    return parent.find(path) if parent is not None else None


def _style_chain(shape: Any, slide: Any, prs: Any) -> list[Any]:
    """The paragraph-property elements a body paragraph inherits from, nearest first: the
    shape's own list style, then (for a placeholder) the layout's and the master's, then the
    master's text styles and the presentation's defaults."""
    q = f"{{{A}}}lstStyle/{{{A}}}lvl1pPr"
    chain = [_lvl1(shape._element.txBody, q)]
    kind = "other"
    if shape.is_placeholder:
        kind = "title" if "title" in str(shape.placeholder_format.type).lower() else "body"
        base = getattr(shape, "_base_placeholder", None)
        while base is not None:
            chain.append(_lvl1(base._element.txBody, q))
            base = getattr(base, "_base_placeholder", None)
    master = slide.slide_layout.slide_master._element
    p = "http://schemas.openxmlformats.org/presentationml/2006/main"
    chain.append(master.find(f"{{{p}}}txStyles/{{{p}}}{kind}Style/{{{A}}}lvl1pPr"))
    chain.append(prs._element.find(f"{{{p}}}defaultTextStyle/{{{A}}}lvl1pPr"))
    return [c for c in chain if c is not None]


def _theme_fonts(slide: Any) -> dict[str, str]:
    """The theme's major and minor Latin faces, for typefaces written +mj-lt / +mn-lt."""
    from lxml import etree
    from pptx.opc.constants import RELATIONSHIP_TYPE as RT

    try:
        theme = etree.fromstring(slide.slide_layout.slide_master.part.part_related_by(
            RT.THEME).blob)
    except (KeyError, etree.XMLSyntaxError):
        return {}
    fonts = {}
    for key, tag in (("+mj-lt", "majorFont"), ("+mn-lt", "minorFont")):
        latin = theme.find(f".//{{{A}}}{tag}/{{{A}}}latin")
        if latin is not None:
            fonts[key] = latin.get("typeface", "")
    return fonts


def _points(spacing: Any, size: float) -> float | None:
    """An a:spcBef / a:spcAft / a:lnSpc value in points (percentages of the font size)."""
    if spacing is None:
        return None
    pts, pct = spacing.find(f"{{{A}}}spcPts"), spacing.find(f"{{{A}}}spcPct")
    if pts is not None:
        return int(pts.get("val", "0")) / 100
    if pct is not None:
        return int(pct.get("val", "0")) / 100000 * size
    return None


def shape_box(shape: Any, slide: Any, prs: Any) -> Box:
    """The Box a shape's first paragraph sets: size, insets, font, spacing and indent, with
    the inheritance PowerPoint applies (run, paragraph, list styles, master, defaults)."""
    frame = shape.text_frame
    first = frame.paragraphs[0]._p
    ppr = first.find(f"{{{A}}}pPr")
    runs = first.findall(f"{{{A}}}r")
    rpr = runs[0].find(f"{{{A}}}rPr") if runs else None
    chain = ([ppr] if ppr is not None else []) + _style_chain(shape, slide, prs)
    defs = [d for d in (c.find(f"{{{A}}}defRPr") for c in chain) if d is not None]
    run_props = ([rpr] if rpr is not None else []) + defs
    assumed = []

    def run_attr(get: Any) -> Any:
        return next((v for v in (get(r) for r in run_props) if v), None)

    sz = run_attr(lambda r: r.get("sz"))
    bold = run_attr(lambda r: r.get("b")) in ("1", "true")
    size = int(sz) / 100 if sz else 18.0
    typeface = run_attr(lambda r: r.find(f"{{{A}}}latin") is not None and
                        r.find(f"{{{A}}}latin").get("typeface"))
    if typeface and typeface.startswith("+"):
        typeface = _theme_fonts(slide).get(typeface[:6], typeface)
    if not sz:
        assumed.append("font size 18pt")
    if not typeface:
        assumed.append("font Calibri")
    para = {tag: next((c.find(f"{{{A}}}{tag}") for c in chain
                       if c.find(f"{{{A}}}{tag}") is not None), None)
            for tag in ("lnSpc", "spcBef", "spcAft")}
    margin = next((int(c.get("marL")) for c in chain if c.get("marL")), 0)
    line, pct = para["lnSpc"], None
    if line is not None and line.find(f"{{{A}}}spcPct") is not None:
        pct = int(line.find(f"{{{A}}}spcPct").get("val", "100000")) / 100000
    exact = _points(line, size) if line is not None and pct is None else None
    insets = tuple(float(v) / EMU_PER_PT for v in (
        frame.margin_left, frame.margin_top, frame.margin_right, frame.margin_bottom))
    height = shape.height
    body = frame._txBody.find(f"{{{A}}}bodyPr")
    if body is not None and body.find(f"{{{A}}}spAutoFit") is not None:
        # the shape grows with its text: what limits it is the slide's bottom edge
        height = max(height, prs.slide_height - shape.top)
        assumed.append("the box grows with its text: measured to the slide's bottom edge")
    if body is not None and body.find(f"{{{A}}}normAutofit") is not None:
        assumed.append("shrink-on-overflow ignored: measured at the full font size")
    return Box(width=shape.width / EMU_PER_PT, height=height / EMU_PER_PT,
               font=typeface or "Calibri", size=size, bold=bold,
               insets=insets,  # type: ignore[arg-type]
               line_spacing=pct or 1.0, line_pitch=exact,
               space_before=_points(para["spcBef"], size) or 0.0,
               space_after=_points(para["spcAft"], size) or 0.0,
               indent=max(0, margin) / EMU_PER_PT,
               where=f"slide {prs.slides.index(slide) + 1}, shape {shape.name!r}",
               assumed=tuple(assumed))


def template_boxes(prs: Any) -> dict[str, Box]:
    """Each section's boxes in the template: "current_state" (its body) and
    "current_state.title" (its headline); the smallest where one is marked twice."""
    boxes: dict[str, Box] = {}
    for slide in prs.slides:
        for shape in slide.shapes:
            if not shape.has_text_frame:
                continue
            whole = TOKEN.fullmatch(_frame_text(shape.text_frame).strip())
            if not whole or whole.group(1) in FACTS:
                continue
            key = whole.group(1) + (".title" if whole.group(2) else "")
            try:
                box = shape_box(shape, slide, prs)
            except (ValueError, TypeError) as exc:
                raise TemplateError(f"the template's box {shape.name!r} on slide "
                                    f"{prs.slides.index(slide) + 1} has a malformed size or "
                                    f"spacing value ({exc})") from None
            old = boxes.get(key)
            if old is None or box.lines_available < old.lines_available:
                boxes[key] = box
    return boxes


def write_pptx(deck: DeckContent, out: Path, template: Path | None = None) -> WriteReport:
    """Fill the template and save it at `out` atomically (a crash never leaves half a file)."""
    source = template or DEFAULT_TEMPLATE
    prs = open_template(template)
    facts = {
        "client": deck.brief.client,
        "industry": deck.brief.industry,
        "opportunity": deck.brief.opportunity,
        "date": dt.date.today().strftime("%d %B %Y"),
    }
    results = {s.section: s for s in deck.sections}
    report = WriteReport(out)
    marked: set[str] = set()

    for slide in prs.slides:
        for shape in slide.shapes:
            if not shape.has_text_frame:
                continue
            frame = shape.text_frame
            text = _frame_text(frame).strip()
            whole = TOKEN.fullmatch(text)
            if whole and whole.group(1) not in facts:
                name, part = whole.group(1), whole.group(2)
                marked.add(name)
                result = results.get(name)
                if result is None or result.content is None:
                    continue  # not asked for, or failed: the token stays visible
                if part:
                    _replace_frame(frame, [result.title])
                else:
                    _replace_frame(frame, result.lines, result.leads)
                if not part:
                    report.filled.append(name)
                continue
            for para in frame.paragraphs:
                line = "".join(r.text for r in para.runs)
                if not TOKEN.search(line):
                    continue
                new = TOKEN.sub(lambda m: facts.get(m.group(1), m.group(0)), line)
                marked.update(m.group(1) for m in TOKEN.finditer(line) if m.group(1) in facts)
                para.runs[0].text = new
                for r in para.runs[1:]:
                    r.text = ""

    sections_marked = marked - set(facts)
    if not sections_marked:
        names = [s.section for s in deck.sections]
        how = HOW_TO_MARK.format(first=names[0], names=", ".join(names))
        raise TemplateError(f"the template {source.name} has no section marks: {how}")
    for result in deck.sections:
        if result.section not in sections_marked:
            report.warnings.append(
                f"the template has no box marked {{{{{result.section}}}}}; section skipped")
        elif result.content is None:
            report.warnings.append(f"{result.section} failed; its box keeps its token")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".deckgen-", suffix=".pptx", dir=out.parent)
    os.close(fd)
    try:
        prs.save(tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return report
