"""Marks in a Google Slides deck, read as presentations.get JSON: its text containers
(shapes, placeholders, group members, table cells, speaker notes), their paragraphs and
text, and the tokens in them. `check_slides_template` is the same check as the .pptx one,
counting boxes tagged in their alt text (deckgen:current_state) as marked too."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from deckgen.writers.marking import Mark, TemplateCheck, marks_in, summarize


@dataclass
class SlidesContainer:
    kind: str  # box | placeholder | cell | group | notes
    object_id: str
    element: dict[str, Any]  # the page element
    elements: list[dict[str, Any]]  # its text elements
    label: str
    cell: tuple[int, int] | None = None  # row, column


def slides_paragraphs(elements: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Text elements grouped by paragraph (a paragraphMarker opens one)."""
    paragraphs: list[list[dict[str, Any]]] = []
    for element in elements:
        if "paragraphMarker" in element or not paragraphs:
            paragraphs.append([])
        paragraphs[-1].append(element)
    return paragraphs


def slides_text(paragraph: list[dict[str, Any]]) -> str:
    return "".join(e["textRun"].get("content", "") for e in paragraph if "textRun" in e)


def _slides_walk(page_elements: list[dict[str, Any]], label: str, grouped: bool = False
                 ) -> Iterator[SlidesContainer]:
    for element in page_elements:
        oid = str(element.get("objectId", ""))
        name = f"{label}, shape {oid}"
        if "elementGroup" in element:
            yield from _slides_walk(element["elementGroup"].get("children", []), label, True)
        elif "shape" in element:
            shape = element["shape"]
            kind = "group" if grouped else "placeholder" if shape.get("placeholder") else "box"
            elements = (shape.get("text") or {}).get("textElements", [])
            yield SlidesContainer(kind, oid, element, elements, name)
        elif "table" in element:
            for r, row in enumerate(element["table"].get("tableRows", [])):
                for c, cell in enumerate(row.get("tableCells", [])):
                    elements = (cell.get("text") or {}).get("textElements", [])
                    yield SlidesContainer("cell", oid, element, elements,
                                          f"{label}, table {oid} row {r + 1} column {c + 1}",
                                          (r, c))


def slides_containers(presentation: dict[str, Any]) -> Iterator[SlidesContainer]:
    for number, slide in enumerate(presentation.get("slides", []), 1):
        yield from _slides_walk(slide.get("pageElements", []), f"slide {number}")
        notes = (slide.get("slideProperties") or {}).get("notesPage") or {}
        speaker = (notes.get("notesProperties") or {}).get("speakerNotesObjectId")
        for element in notes.get("pageElements", []):
            if speaker and element.get("objectId") == speaker and "shape" in element:
                elements = (element["shape"].get("text") or {}).get("textElements", [])
                yield SlidesContainer("notes", speaker, element, elements,
                                      f"slide {number}, speaker notes")


def slides_marks(presentation: dict[str, Any], section_names: list[str] | None
                 ) -> list[Mark]:
    marks: list[Mark] = []
    for c in slides_containers(presentation):
        texts = [slides_text(p).rstrip("\n") for p in slides_paragraphs(c.elements)]
        if any("{{" in t for t in texts):
            marks += marks_in(texts, c, c.kind, c.label, section_names)
    return marks


def check_slides_template(presentation: dict[str, Any], section_names: list[str]
                          ) -> TemplateCheck:
    """The same check as check_pptx_template, for a deck read with presentations.get."""
    from deckgen.writers.slides_plan import TAG, deck_boxes

    marks = slides_marks(presentation, section_names)
    boxes = deck_boxes(presentation)
    tagged = []
    for slide in presentation.get("slides", []):
        for element in _elements(slide.get("pageElements", [])):
            tag = TAG.match(element.get("description") or "")
            if tag and tag.group(1) in section_names:
                tagged.append(Mark(tag.group(1), "title" if tag.group(2) else "body", "box",
                                   "box", f"shape {element.get('objectId')}", "", None))
    title = presentation.get("title") or presentation.get("presentationId", "")
    return summarize(tagged + marks, boxes, section_names, f"the deck {title}")


def _elements(page_elements: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for element in page_elements:
        yield element
        group = element.get("elementGroup")
        if group:
            yield from _elements(group.get("children", []))
