"""The marking rules both formats share: what a token (`{{current_state}}`,
`{{current_state.title}}`, `{{client}}`) names, the Mark it makes where it stands, and the
TemplateCheck that sums up a template's marks (a TemplateError when it has none, a
did-you-mean for each token that names nothing). The .pptx side (pptx_marks.py) and the
Slides side (slides_marks.py) find the tokens; this module says what they mean."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from deckgen.boxes import Box
from deckgen.errors import TemplateError

TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
NAME = re.compile(r"^([a-z_][a-z0-9_]*)(?:\.(title))?$")
FACTS = ("client", "industry", "opportunity", "date")
HOW_TO_MARK = ("mark a text box by typing {{{{{first}}}}} (the section's items) or "
               "{{{{{first}.title}}}} (its headline) into it; the sections are {names}")


@dataclass
class Mark:
    name: str  # the section or fact; for an unknown token, what was typed
    part: str  # body | title | fact | unknown
    where: str  # box | placeholder | cell | group | inline | notes
    scope: str  # box (owns the whole text) | paragraph | inline (just the token)
    label: str  # where it is, for messages: "slide 2, shape 'Text 3'"
    token: str  # the token as typed
    container: Any = None  # a pptx Container or a SlidesContainer
    paragraph: int = 0  # index of the token's paragraph in its container

    @property
    def key(self) -> str:
        return self.name + (".title" if self.part == "title" else "")


@dataclass
class TemplateCheck:
    boxes: dict[str, Box]  # "section" and "section.title": the box each lands in
    where: dict[str, str]  # the same keys: box | placeholder | cell | group | inline | notes
    unknown: list[str]  # "{{stakeholder}} — did you mean {{stakeholders}}? (slide 3, ...)"
    sections_marked: list[str]  # in the order of section_names
    marks: list[Mark] = field(default_factory=list, repr=False)


def classify(inner: str, section_names: list[str] | None) -> tuple[str, str]:
    """(name, part) for the text inside a token; part "unknown" when it names nothing
    (section_names None: any well-formed name that is not a fact is a section)."""
    found = NAME.match(inner)
    if found and found.group(1) in FACTS and not found.group(2):
        return found.group(1), "fact"
    if found and (section_names is None or found.group(1) in section_names):
        return found.group(1), "title" if found.group(2) else "body"
    return inner, "unknown"


def did_you_mean(inner: str, section_names: list[str]) -> str:
    known = [*section_names, *(f"{s}.title" for s in section_names), *FACTS]
    guess = difflib.get_close_matches(re.sub(r"\s+", "", inner.lower()), known, n=1,
                                      cutoff=0.6)
    if guess:
        return f"{{{{{inner}}}}} — did you mean {{{{{guess[0]}}}}}?"
    return (f"{{{{{inner}}}}} is not a section or a fact (sections: "
            f"{', '.join(section_names)}; facts: {', '.join(FACTS)})")


def marks_in(paragraphs: list[str], container: Any, where: str, label: str,
              section_names: list[str] | None) -> Iterator[Mark]:
    """The marks in one text container, given its paragraphs' text."""
    tokens = [list(TOKEN.finditer(t)) for t in paragraphs]
    with_sections = [i for i, found in enumerate(tokens)
                     if any(classify(m.group(1), section_names)[1] in ("body", "title")
                            for m in found)]
    before = ""
    for i, (text, found) in enumerate(zip(paragraphs, tokens, strict=True)):
        for m in found:
            name, part = classify(m.group(1), section_names)
            alone = text.strip() == m.group(0)
            if part in ("body", "title") and alone and where != "notes":
                scope = "box" if not before.strip() and with_sections == [i] else "paragraph"
                yield Mark(name, part, where, scope, label, m.group(0), container, i)
            else:
                scope = "paragraph" if part in ("body", "title") and alone else "inline"
                kind = where if where == "notes" or alone else "inline"
                yield Mark(name, part, kind, scope, label, m.group(0), container, i)
        before += text


def summarize(marks: list[Mark], boxes: dict[str, Box], section_names: list[str],
              what: str) -> TemplateCheck:
    """The TemplateCheck for a template's marks; a TemplateError when it has none."""
    unknown: dict[str, str] = {}
    for m in marks:
        if m.part == "unknown" and m.name not in unknown:
            unknown[m.name] = f"{did_you_mean(m.name, section_names)} ({m.label})"
    where: dict[str, str] = {}
    for m in marks:
        if m.part in ("body", "title"):
            box = boxes.get(m.key)
            if m.key not in where or (box is not None and box.where == m.label):
                where[m.key] = m.where
    marked = {m.name for m in marks if m.part in ("body", "title")}
    sections = [s for s in section_names if s in marked]
    if not sections:
        names = section_names or ["current_state"]
        hint = f" (it has {'; '.join(unknown.values())})" if unknown else ""
        raise TemplateError(f"{what} has no section marks{hint}: " + HOW_TO_MARK.format(
            first=names[0], names=", ".join(names)))
    return TemplateCheck(boxes, where, list(unknown.values()), sections, marks)
