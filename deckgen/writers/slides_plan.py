"""Planning a Slides write: finding each section's box in a deck read with
presentations.get (by its alt-text tag, `deckgen:current_state #<fingerprint>`, else by its
`{{current_state}}` token, see slides_marks.py), measuring the box its text must fit
(`deck_boxes`), and turning DeckContent into the batchUpdate requests that put it there
(`plan_edits`), with a SlidesReport of what they do. Pure: no HTTP; the SlidesWriter in
slides.py reads the deck, calls `plan_edits` and sends the requests."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field, replace
from typing import Any

from deckgen.boxes import EMU_PER_PT, Box, wrapped_lines
from deckgen.content import DeckContent, SectionResult
from deckgen.errors import TemplateError
from deckgen.writers.marking import FACTS, did_you_mean
from deckgen.writers.slides_marks import (
    _elements,
    slides_containers,
    slides_marks,
    slides_paragraphs,
    slides_text,
)
from deckgen.writers.slides_notes import plan_sources

TAG = re.compile(r"^deckgen:([a-z_][a-z0-9_]*)(\.title)?(?:\s+#([0-9a-f]{12}))?\s*$")
BULLET_PRESET = "BULLET_DISC_CIRCLE_SQUARE"
HOW_TO_MARK = ("type {{{{{first}}}}} into the box for a section's text (or "
               "{{{{{first}.title}}}} for its headline), or select the box and use Deck "
               "generator > Mark selected box as section; the sections are {names}")


@dataclass
class Target:
    section: str
    part: str  # "body" | "title"
    object_id: str
    text: str
    elements: list[dict[str, Any]]  # the token's paragraph (its style is the text's)
    tagged: bool
    fingerprint: str | None
    scope: str = "box"  # box: the whole text | paragraph | inline: only the token
    token: str = ""
    cell: tuple[int, int] | None = None  # a table cell's row and column
    where: str = "box"  # box | placeholder | cell | group | inline | notes
    all_elements: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SlidesReport:
    presentation_id: str
    url: str
    filled: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # sections a person edited, left alone
    warnings: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    api_calls: int = 0
    revision_id: str = ""
    conflicts: int = 0
    sources: list[str] = field(default_factory=list)  # sections whose notes list sources
    # what people did with deckgen's last fill, read from the tags' fingerprints:
    # {"section", "part", "state": "kept" | "edited", "text"}
    feedback: list[dict[str, str]] = field(default_factory=list)


def fingerprint(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:12]


def deck_url(presentation_id: str) -> str:
    return f"https://docs.google.com/presentation/d/{presentation_id}/edit"




def _paragraphs(elements: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Text elements grouped by paragraph (a paragraphMarker opens one)."""
    return slides_paragraphs(elements)


def find_targets(presentation: dict[str, Any]) -> tuple[list[Target], set[str]]:
    """Every marked box (by its alt-text tag, else by its tokens: marks.slides_marks), and
    the facts tokens ({{client}} ...) used anywhere."""
    targets: list[Target] = []
    facts: set[str] = set()
    tagged: set[str] = set()
    for c in slides_containers(presentation):
        tag = TAG.match(c.element.get("description") or "") if c.cell is None else None
        if tag and c.object_id not in tagged:
            tagged.add(c.object_id)
            text = "".join(slides_text(p) for p in slides_paragraphs(c.elements))
            targets.append(Target(tag.group(1), "title" if tag.group(2) else "body",
                                  c.object_id, text, c.elements, True, tag.group(3),
                                  all_elements=c.elements))
    for m in slides_marks(presentation, None):
        if m.part == "fact":
            facts.add(m.name)
        if m.part not in ("body", "title") or m.container.object_id in tagged:
            continue
        c = m.container
        paragraph = slides_paragraphs(c.elements)[m.paragraph]
        text = "".join(slides_text(p) for p in slides_paragraphs(c.elements))
        targets.append(Target(m.name, m.part, c.object_id, text, paragraph, False, None,
                              m.scope, m.token, c.cell, m.where, c.elements))
    return targets, facts


SLIDES_INSET = 7.2  # Slides' default text padding, 0.1 in a side (the API does not expose it)


def _magnitude(dimension: dict[str, Any] | None) -> float | None:
    """A Dimension in points."""
    if not dimension or "magnitude" not in dimension:
        return None
    value = float(dimension["magnitude"])
    return value / EMU_PER_PT if dimension.get("unit", "EMU") == "EMU" else value


def element_box(element: dict[str, Any], paragraph: list[dict[str, Any]],
                cell: tuple[int, int] | None = None, where: str = "") -> Box | None:
    """The Box a page element (or its table `cell`) sets for text in the style of
    `paragraph`, or None when it has no size (Slides then sizes it from its layout, which
    we do not read)."""
    size, transform = element.get("size") or {}, element.get("transform") or {}
    width, height = _magnitude(size.get("width")), _magnitude(size.get("height"))
    if cell is not None:
        table = element.get("table") or {}
        columns, rows = table.get("tableColumns", []), table.get("tableRows", [])
        r, c = cell
        width = _magnitude(columns[c].get("columnWidth")) if c < len(columns) else None
        height = _magnitude(rows[r].get("rowHeight")) if r < len(rows) else None
    if width is None or height is None:
        return None
    runs = [e["textRun"] for e in paragraph if "textRun" in e]
    style = (runs[-1].get("style") or {}) if runs else {}
    para = _first(paragraph, "paragraphMarker").get("style") or {}
    assumed = ["insets 0.1 in (Slides' default)"]
    font = style.get("fontFamily") or (style.get("weightedFontFamily") or {}).get("fontFamily")
    points = _magnitude(style.get("fontSize"))
    if not font:
        assumed.append("font Arial")
    if points is None:
        assumed.append("font size 18pt")
    indent = max(_magnitude(para.get("indentStart")) or 0.0,
                 _magnitude(para.get("indentFirstLine")) or 0.0)
    return Box(width=width * abs(float(transform.get("scaleX", 1) or 1)),
               height=height * abs(float(transform.get("scaleY", 1) or 1)),
               font=font or "Arial", size=points or 18.0, bold=bool(style.get("bold")),
               insets=(SLIDES_INSET,) * 4,
               line_spacing=float(para.get("lineSpacing", 100)) / 100,
               space_before=_magnitude(para.get("spaceAbove")) or 0.0,
               space_after=_magnitude(para.get("spaceBelow")) or 0.0,
               indent=indent, where=where or f"shape {element.get('objectId')}",
               assumed=tuple(assumed))


def deck_boxes(presentation: dict[str, Any]) -> dict[str, Box]:
    """Each section's boxes in the deck: "current_state" (its body) and
    "current_state.title" (its headline); the smallest where one is marked twice."""
    elements = {e["objectId"]: e for slide in presentation.get("slides", [])
                for e in _elements(slide.get("pageElements", []))}
    boxes: dict[str, Box] = {}
    for target in find_targets(presentation)[0]:
        if target.where == "notes":
            continue  # speaker notes are not on the slide: nothing to fit
        key = target.section + (".title" if target.part == "title" else "")
        paragraph = _paragraphs(target.elements)[0] if target.elements else []
        box = element_box(elements[target.object_id], paragraph, target.cell)
        if box and target.scope != "box":
            # the text that stays around the mark takes its room first
            reserve = 0.0
            for p in _paragraphs(target.all_elements):
                text = slides_text(p).rstrip("\n")
                if target.token and target.token in text:
                    text = text.replace(target.token, "").strip()
                if text:
                    reserve += wrapped_lines(box, text) * box.pitch + box.space_before
            box = replace(box, height=max(0.0, box.height - reserve))
        old = boxes.get(key)
        if box and (old is None or box.lines_available < old.lines_available):
            boxes[key] = box
    return boxes


def _first(elements: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next((e[kind] for e in elements if kind in e), {})


def _fields(style: dict[str, Any]) -> str:
    return ",".join(sorted(style))


def plan_edits(presentation: dict[str, Any], deck: DeckContent, keep_edits: bool = False,
               sources: bool = True) -> tuple[list[dict[str, Any]], SlidesReport]:
    """The batchUpdate requests that put `deck` into `presentation`, and what they do.
    `sources`: each filled slide's speaker notes list the brief's words behind each item
    (slides_notes.py); off, the notes are left alone."""
    pid = presentation["presentationId"]
    report = SlidesReport(pid, deck_url(pid), revision_id=presentation.get("revisionId", ""))
    targets, facts = find_targets(presentation)
    results = {s.section: s for s in deck.sections}
    if not targets:
        names = [s.section for s in deck.sections]
        raise TemplateError(
            f"the deck {presentation.get('title') or pid} has no section marks: "
            + HOW_TO_MARK.format(first=names[0], names=", ".join(names)))
    requests: list[dict[str, Any]] = []
    marked = {t.section for t in targets}
    # Tokens replaced in place go last to first within a shape, so earlier ones keep their
    # indices; whole boxes come first.
    targets = [t for t in targets if t.scope == "box"] + sorted(
        (t for t in targets if t.scope != "box"),
        key=lambda t: (t.object_id, t.cell or (0, 0), -(_token_start(t) or 0)))
    names = [s.section for s in deck.sections]
    for section in sorted(marked - set(names)):
        guess = did_you_mean(section, names)
        if "did you mean" in guess:
            report.warnings.append(f"unknown token {guess}")
    filled_boxes: list[tuple[str, str]] = []  # (section, body box) written this time
    touched: set[str] = set()  # every shape (speaker notes too) this batch rewrites
    for target in targets:
        if target.tagged and target.fingerprint:
            edited = fingerprint(target.text) != target.fingerprint
            report.feedback.append({"section": target.section, "part": target.part,
                                    "state": "edited" if edited else "kept",
                                    "text": target.text.strip()})
        result = results.get(target.section)
        if result is None or result.content is None:
            continue
        if keep_edits and target.tagged and target.fingerprint and \
                fingerprint(target.text) != target.fingerprint:
            report.kept.append(target.section)
            report.warnings.append(f"{target.section} was edited in the deck since the last "
                                   "fill; kept as the person left it")
            continue
        requests += _replace(target, result) if target.scope == "box" else \
            _replace_token(target, result)
        touched.add(target.object_id)
        if target.part == "body" and target.where != "notes":
            filled_boxes.append((target.section, target.object_id))
        if target.part == "body" and target.section not in report.filled:
            report.filled.append(target.section)
    if sources:
        notes = plan_sources(presentation, filled_boxes, results, touched, keep_edits)
        requests += notes.requests
        report.sources, report.warnings = notes.written, report.warnings + notes.warnings
    facts_values = {"client": deck.brief.client, "industry": deck.brief.industry,
                    "opportunity": deck.brief.opportunity,
                    "date": dt.date.today().strftime("%d %B %Y")}
    for name in sorted(facts & set(FACTS)):
        requests.append({"replaceAllText": {
            "containsText": {"text": "{{" + name + "}}", "matchCase": True},
            "replaceText": facts_values[name]}})
    for result in deck.sections:
        if result.section not in marked:
            report.warnings.append(f"the deck has no box marked for {result.section}; skipped")
        elif result.content is None:
            report.warnings.append(f"{result.section} failed; its box was left as it was")
    report.requests = requests
    return requests, report


def _units(text: str) -> int:
    """Length in UTF-16 code units, as the Slides API counts indices."""
    return len(text.encode("utf-16-le")) // 2


def _token_start(target: Target) -> int | None:
    paragraph = target.elements
    text = slides_text(paragraph)
    at = text.find(target.token) if target.token else -1
    if at < 0:
        return None
    return int(paragraph[0].get("startIndex", 0) if paragraph else 0) + _units(text[:at])


def _replace_token(target: Target, result: SectionResult) -> list[dict[str, Any]]:
    """Requests that put the section where its token is, keeping the words around it (an
    inline mark, a paragraph among others, a table cell's or the speaker notes' text)."""
    begin = _token_start(target)
    if begin is None:
        return []
    lines = [result.title] if target.part == "title" else result.lines
    leads = [0] if target.part == "title" else (result.leads or [0] * len(lines))
    text = "\n".join(lines)
    where: dict[str, Any] = {"objectId": target.object_id}
    if target.cell is not None:
        where["cellLocation"] = {"rowIndex": target.cell[0], "columnIndex": target.cell[1]}
    out: list[dict[str, Any]] = [
        {"deleteText": {**where, "textRange": {"type": "FIXED_RANGE", "startIndex": begin,
                                               "endIndex": begin + _units(target.token)}}},
        {"insertText": {**where, "insertionIndex": begin, "text": text}},
        # the token's hyperlink is not the text's
        {"updateTextStyle": {**where, "style": {}, "fields": "link", "textRange": {
            "type": "FIXED_RANGE", "startIndex": begin, "endIndex": begin + _units(text)}}}]
    start = 0
    for line, lead in zip(lines, leads, strict=False):
        if lead:
            first = begin + _units(text[:start])
            out.append({"updateTextStyle": {**where, "style": {"bold": True}, "fields": "bold",
                                            "textRange": {"type": "FIXED_RANGE",
                                                          "startIndex": first,
                                                          "endIndex": first + _units(
                                                              line[:lead])}}})
        start += len(line) + 1
    return out


def _replace(target: Target, result: SectionResult) -> list[dict[str, Any]]:
    oid = target.object_id
    lines = [result.title] if target.part == "title" else result.lines
    leads = [0] if target.part == "title" else (result.leads or [0] * len(lines))
    text = "\n".join(lines)
    # The body's look is the last run of the first paragraph: on a box deckgen filled
    # before, the first run is the bold label of the first item, not the body text.
    first_paragraph = _paragraphs(target.elements)[0] if target.elements else []
    runs = [e["textRun"] for e in first_paragraph if "textRun" in e]
    run_style = dict(runs[-1].get("style") or {}) if runs else {}
    linked = run_style.pop("link", None) is not None  # the token's link is not the text's
    if any(leads):
        run_style["bold"] = bool(run_style.get("bold", False))  # labels are bolded below
    marker = _first(target.elements, "paragraphMarker")
    para_style = marker.get("style") or {}
    everything = {"type": "ALL"}
    at: dict[str, Any] = {"objectId": oid}
    if target.cell is not None:
        at["cellLocation"] = {"rowIndex": target.cell[0], "columnIndex": target.cell[1]}
    out: list[dict[str, Any]] = []
    if target.text:
        out.append({"deleteText": {**at, "textRange": everything}})
    out.append({"insertText": {**at, "insertionIndex": 0, "text": text}})
    if run_style or linked:
        fields = _fields(run_style) + (",link" if linked and run_style else
                                       "link" if linked else "")
        out.append({"updateTextStyle": {**at, "textRange": everything,
                                        "style": run_style, "fields": fields}})
    if para_style:
        out.append({"updateParagraphStyle": {**at, "textRange": everything,
                                             "style": para_style,
                                             "fields": _fields(para_style)}})
    if marker.get("bullet"):
        out.append({"createParagraphBullets": {**at, "textRange": everything,
                                               "bulletPreset": BULLET_PRESET}})
    start = 0
    for line, lead in zip(lines, leads, strict=True):
        if lead:
            # Indices count UTF-16 code units, as the Slides API does.
            begin = len(text[:start].encode("utf-16-le")) // 2
            end = begin + len(line[:lead].encode("utf-16-le")) // 2
            out.append({"updateTextStyle": {
                **at, "style": {"bold": True}, "fields": "bold",
                "textRange": {"type": "FIXED_RANGE", "startIndex": begin, "endIndex": end}}})
        start += len(line) + 1
    if target.cell is not None or target.where == "notes":
        return out  # a cell's tag would mark the whole table; notes need none
    part = ".title" if target.part == "title" else ""
    out.append({"updatePageElementAltText": {
        "objectId": oid, "description": f"deckgen:{target.section}{part} #{fingerprint(text)}"}})
    return out
