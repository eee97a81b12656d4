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

from deckgen.deck import DeckContent
from deckgen.errors import TemplateError

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "data" / "default.pptx"
TOKEN = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)(?:\.(title))?\s*\}\}")
A = "http://schemas.openxmlformats.org/drawingml/2006/main"
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
