"""Writing DeckContent into a .pptx built from a template.

A template marks where text goes with tokens (deckgen/writers/marks.py finds them):
  {{current_state}}        the section's items, one paragraph each (the box's bullets)
  {{current_state.title}}  the section's headline
  {{client}} {{industry}} {{opportunity}} {{date}}   facts from the brief, anywhere in text
in a text box, a placeholder, a table cell, a shape in a group, inline in a paragraph or in
the speaker notes. A section's text keeps the look of its token's paragraph and run (bullets,
indents, spacing, font); a hyperlink on the token's run is not carried over, and a stale
shrink-to-fit scale on the box is reset. A fact that makes its box overflow is set smaller
until it fits (never cut). The default template (deckgen/data/default.pptx) is made by
scripts/make_default_template.py."""

from __future__ import annotations

import copy
import datetime as dt
import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lxml import etree

from deckgen.boxes import Box, line_width, wrapped_lines
from deckgen.content import DeckContent, SectionResult
from deckgen.errors import TemplateError
from deckgen.writers.geometry import Geometry, q
from deckgen.writers.marks import (
    DEFAULT_TEMPLATE,
    FACTS,
    HOW_TO_MARK,
    Mark,
    did_you_mean,
    open_pptx,
    paragraph_runs,
    paragraphs_of,
    pptx_boxes,
    pptx_marks,
)

__all__ = ["DEFAULT_TEMPLATE", "FACTS", "HOW_TO_MARK", "WriteReport", "open_template",
           "template_boxes", "write_pptx"]
FACT_SCALES = (0.9, 0.8, 0.7, 0.6, 0.5)  # a fact's box is set this much smaller to fit
HYPERLINKS = ("a:hlinkClick", "a:hlinkMouseOver")


@dataclass
class WriteReport:
    path: Path
    filled: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # tokens that name nothing
    where: dict[str, str] = field(default_factory=dict)  # section -> box | cell | inline ...


def open_template(template: Path | None = None) -> Any:
    """The template as a python-pptx Presentation, or a TemplateError saying why not (the CLI
    calls this before any model time is spent)."""
    return open_pptx(template)


def template_boxes(prs: Any) -> dict[str, Box]:
    """Each section's boxes in the template: "current_state" (its body) and
    "current_state.title" (its headline); the smallest where one is marked twice."""
    return pptx_boxes(prs, pptx_marks(prs, None))


# -- editing paragraphs -------------------------------------------------------------------------

def _clean(rpr: Any) -> Any:
    """A copy of run properties without hyperlinks (the token's link is not the text's)."""
    if rpr is None:
        return None
    rpr = copy.deepcopy(rpr)
    for tag in HYPERLINKS:
        for link in rpr.findall(q(tag)):
            rpr.remove(link)
    return rpr


def _run(rpr: Any, text: str, bold: bool = False) -> Any:
    r = etree.Element(q("a:r"))
    if rpr is not None:
        r.append(_clean(rpr))
    if bold:
        props = r.find(q("a:rPr"))
        if props is None:
            props = etree.SubElement(r, q("a:rPr"))
        props.set("b", "1")
    t = etree.SubElement(r, q("a:t"))
    t.text = text
    return r


def _pieces(line: str, lead: int) -> list[tuple[str, bool]]:
    return [(line[:lead], True), (line[lead:], False)] if lead else [(line, False)]


def _isolate(p: Any, start: int, end: int) -> list[Any]:
    """Split runs so the text from `start` to `end` is whole runs; returns those runs."""
    for cut in (start, end):
        for s, e, r in paragraph_runs(p)[1]:
            if s < cut < e:
                t = r.find(q("a:t"))
                tail = copy.deepcopy(r)
                tail.find(q("a:t")).text = t.text[cut - s:]
                t.text = t.text[:cut - s]
                r.addnext(tail)
                break
    return [r for s, e, r in paragraph_runs(p)[1] if start <= s and e <= end and e > s]


def _token_span(p: Any, token: str) -> tuple[int, int] | None:
    text = paragraph_runs(p)[0]
    at = text.find(token)
    return (at, at + len(token)) if at >= 0 else None


def _new_paragraph(model: Any) -> Any:
    """An empty paragraph with `model`'s paragraph and end-of-paragraph properties."""
    p = etree.Element(q("a:p"))
    ppr = model.find(q("a:pPr"))
    if ppr is not None:
        p.append(copy.deepcopy(ppr))
    return p


def _finish(p: Any, model: Any) -> None:
    end = model.find(q("a:endParaRPr"))
    if end is not None:
        p.append(copy.deepcopy(end))


def _write_lines(p: Any, token: str, lines: list[str], leads: list[int]) -> None:
    """Put `lines` where `token` is in paragraph `p`: the words before it stay in front of
    the first line, the words after it follow the last; each further line is a paragraph in
    `p`'s style."""
    span = _token_span(p, token)
    if span is None:
        return
    runs = _isolate(p, *span)
    rpr = runs[0].find(q("a:rPr")) if runs else None
    anchor = runs[0]
    after = []
    node = runs[-1].getnext()
    while node is not None:
        if node.tag != q("a:endParaRPr"):
            after.append(node)
        node = node.getnext()
    for r in runs[1:]:
        p.remove(r)
    lines = lines or [""]
    leads = (leads or []) + [0] * len(lines)
    current, model = p, copy.deepcopy(p)
    for i, line in enumerate(lines):
        new = [_run(rpr, text, bold) for text, bold in _pieces(line, leads[i])]
        if i == 0:
            for r in new:
                anchor.addprevious(r)
            p.remove(anchor)
            continue
        para = _new_paragraph(model)
        for r in new:
            para.append(r)
        _finish(para, model)
        current.addnext(para)
        current = para
    if current is not p:
        end = current.find(q("a:endParaRPr"))
        for node in after:
            (end.addprevious(node) if end is not None else current.append(node))


def _replace_body(body: Any, keep: Any, token: str, lines: list[str], leads: list[int]
                  ) -> None:
    """The whole text body becomes `lines`, in the style of the token's paragraph."""
    for p in paragraphs_of(body):
        if p is not keep:
            body.remove(p)
    _write_lines(keep, token, lines, leads)


def _reset_autofit(body: Any) -> None:
    fit = body.find(f"{q('a:bodyPr')}/{q('a:normAutofit')}")
    if fit is not None:
        for attr in ("fontScale", "lnSpcReduction"):
            fit.attrib.pop(attr, None)


# -- facts ----------------------------------------------------------------------------------

def _overflows(geometry: Geometry, container: Any, scale: float = 1.0) -> bool:
    """Whether the container's text, every run at `scale` of its size, leaves its box."""
    height, room = 0.0, None
    for p in paragraphs_of(container.txBody):
        box = geometry.paragraph_box(container, p)
        room = box.text_height if room is None else room
        box = replace(box, size=box.size * scale,
                      line_pitch=box.line_pitch * scale if box.line_pitch else None)
        text = paragraph_runs(p)[0].replace("\x00", " ")
        if not box.wrap and line_width(box, text) > box.text_width:
            return True
        height += wrapped_lines(box, text) * box.pitch + box.space_before + box.space_after
    return room is not None and height > room + 0.01


def _scale_fonts(geometry: Geometry, container: Any, scale: float) -> None:
    for p in paragraphs_of(container.txBody):
        size = geometry.paragraph_box(container, p).size
        for r in p.findall(q("a:r")):
            rpr = r.find(q("a:rPr"))
            if rpr is None:
                rpr = etree.Element(q("a:rPr"))
                r.insert(0, rpr)
            own = int(rpr.get("sz")) / 100 if rpr.get("sz") else size
            rpr.set("sz", str(max(100, round(own * scale * 100))))


def _fit_fact_box(geometry: Geometry, container: Any) -> str | None:
    """Set a box whose facts made it overflow smaller until it fits; what was done."""
    if container.kind == "notes" or not container.rect[2] or not _overflows(geometry,
                                                                             container):
        return None
    for scale in FACT_SCALES:
        if not _overflows(geometry, container, scale):
            _scale_fonts(geometry, container, scale)
            return None
    _scale_fonts(geometry, container, FACT_SCALES[-1])
    return (f"the facts in {container.label} do not fit it even at half size: shorten the "
            "text around them or enlarge the box")


# -- writing --------------------------------------------------------------------------------

def _fill(m: Mark, result: SectionResult) -> None:
    body = m.container.txBody
    p = paragraphs_of(body)[m.paragraph]
    if m.part == "title":
        lines, leads = [result.title], [0]
    else:
        lines, leads = result.lines, result.leads
    if m.scope == "box":
        _replace_body(body, p, m.token, lines, leads)
    else:
        _write_lines(p, m.token, lines, leads)


def _write_sources(prs: Any, marks: list[Any], results: dict[str, SectionResult]) -> None:
    """Each filled section's items and the brief's words that support them, appended to
    the speaker notes of the slide its body is on, so a rep checks a claim at a glance."""
    done: set[tuple[int, str]] = set()
    for m in marks:
        found = re.match(r"slide (\d+)", m.label)
        result = results.get(m.name)
        if m.part != "body" or not found or result is None or not result.sources \
                or m.container.kind == "notes":
            continue
        index = int(found.group(1)) - 1
        if (index, m.name) in done or not 0 <= index < len(prs.slides):
            continue
        done.add((index, m.name))
        frame = prs.slides[index].notes_slide.notes_text_frame
        lines = [f"Sources for {result.label} (from the brief):"]
        for line, snippets in zip(result.lines, result.sources, strict=False):
            quoted = " · ".join(f"\u201c{s}\u201d" for s in snippets) or "(none found)"
            lines.append(f"- {line[:60]}{'…' if len(line) > 60 else ''}: {quoted}")
        start = 0 if not frame.text.strip() else len(frame.paragraphs)
        for i, text in enumerate(lines):
            para = frame.paragraphs[0] if i == 0 and start == 0 else frame.add_paragraph()
            para.text = text


def write_pptx(deck: DeckContent, out: Path, template: Path | None = None,
               section_names: list[str] | None = None, sources: bool = True) -> WriteReport:
    """Fill the template and save it at `out` atomically (a crash never leaves half a file).
    `section_names`: every section deckgen knows (default: the deck's), so that a token for
    a section not generated this time is not reported as unknown. `sources`: list each
    item's supporting words from the brief in the speaker notes of its slide."""
    source = Path(template) if template else DEFAULT_TEMPLATE
    prs = open_template(template)
    names = list(dict.fromkeys([*(section_names or []), *(s.section for s in deck.sections)]))
    facts = {
        "client": deck.brief.client,
        "industry": deck.brief.industry,
        "opportunity": deck.brief.opportunity,
        "date": dt.date.today().strftime("%d %B %Y"),
    }
    results = {s.section: s for s in deck.sections}
    report = WriteReport(out)
    marks = pptx_marks(prs, names)
    sections_marked = {m.name for m in marks if m.part in ("body", "title")}
    if not sections_marked:
        wanted = [s.section for s in deck.sections] or names
        how = HOW_TO_MARK.format(first=wanted[0], names=", ".join(wanted))
        raise TemplateError(f"the template {source.name} has no section marks: {how}")
    for m in marks:
        if m.part in ("body", "title"):
            report.where.setdefault(m.key, m.where)
    # Later marks first: filling one never moves another's paragraph index.
    for m in sorted(marks, key=lambda m: m.paragraph, reverse=True):
        if m.part == "fact":
            p = paragraphs_of(m.container.txBody)[m.paragraph]
            _write_lines(p, m.token, [str(facts[m.name] or "")], [0])
        elif m.part == "unknown":
            line = f"{did_you_mean(m.name, names)} ({m.label})"
            if line not in report.unknown:
                report.unknown.append(line)
        else:
            result = results.get(m.name)
            if result is None or result.content is None:
                continue  # not asked for, or failed: the token stays visible
            _fill(m, result)
            if m.part == "body" and m.name not in report.filled:
                report.filled.append(m.name)
        if m.part != "unknown" and m.container.kind != "notes":
            _reset_autofit(m.container.txBody)
    order = [s.section for s in deck.sections]
    report.filled.sort(key=order.index)
    if sources:
        _write_sources(prs, marks, results)
    geometry = Geometry(prs)
    seen: set[int] = set()
    for m in marks:
        if m.part == "fact" and id(m.container.txBody) not in seen:
            seen.add(id(m.container.txBody))
            problem = _fit_fact_box(geometry, m.container)
            if problem:
                report.warnings.append(problem)
    for result in deck.sections:
        if result.section not in sections_marked:
            report.warnings.append(
                f"the template has no box marked {{{{{result.section}}}}}; section skipped")
        elif result.content is None:
            report.warnings.append(f"{result.section} failed; its box keeps its token")
    report.warnings += [f"unknown token {line}" for line in report.unknown]
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
