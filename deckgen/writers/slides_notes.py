"""The sources deckgen keeps in a Google Slides slide's speaker notes: for each section
filled on the slide, a block listing each item with the brief's words that support it, so a
rep checks a claim at a glance (the .pptx writer writes the same lines).

A slide's speaker notes are the text of the shape its notes page names in
`notesProperties.speakerNotesObjectId` (Google: "in rare cases" that shape does not exist
yet, and the first text request naming the id creates it). The notes may hold the rep's own
text, so deckgen's block is marked, one per section, between a header line that carries the
section and a fingerprint of the block's lines and an end line:

    Sources for Current state (from the brief) [deckgen:current_state #1a2b3c4d5e6f]
    - Trucks queue at the gates for hours: “Trucks queue at the gates for hours”
    [end of deckgen:current_state]

A re-run replaces only that block (the rep's text before and after it stays), so blocks never
pile up; with keep-edits, a block whose lines no longer match its fingerprint was edited by a
person and is left as it is. `plan_sources` returns the requests, which slides_plan.py puts
in the same atomic batchUpdate as the rest of the fill. Pure: no HTTP."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from deckgen.content import SectionResult
from deckgen.writers.slides_marks import _elements, slides_paragraphs, slides_text

START = re.compile(r"^Sources for .* \(from the brief\) \[deckgen:([a-z_][a-z0-9_]*) "
                   r"#([0-9a-f]{12})\]$")
END = "[end of deckgen:{section}]"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ue000-\uf8ff]")  # none of these belong in a one-line note


@dataclass
class Block:
    """deckgen's block for one section in a notes shape: its range in UTF-16 units, the end
    line's newline included."""

    section: str
    fingerprint: str
    start: int
    end: int
    lines: str  # the item lines between the header and the end line, as they are now


@dataclass
class Notes:
    """A slide's speaker-notes shape as read: its id, its text and deckgen's blocks in it."""

    slide: int  # 1-based, for messages
    object_id: str
    text: str
    length: int  # in UTF-16 units, the final newline included (0: no shape or no text yet)
    blocks: list[Block] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)  # a header without its end line


@dataclass
class SourcesPlan:
    requests: list[dict[str, Any]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)  # sections whose block was (re)written
    warnings: list[str] = field(default_factory=list)


def _digest(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:12]


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", _CONTROL.sub(" ", text)).strip()


def item_lines(result: SectionResult) -> list[str]:
    """One line per item: its start and the brief's words that support it, quoted."""
    out = []
    for line, snippets in zip(result.lines, result.sources, strict=False):
        line = _one_line(line)
        quoted = " · ".join(f"\u201c{_one_line(s)}\u201d" for s in snippets) or "(none found)"
        out.append(f"- {line[:60]}{'…' if len(line) > 60 else ''}: {quoted}")
    return out


def block_text(result: SectionResult) -> str:
    """The block for one section, without a final newline."""
    lines = "\n".join(item_lines(result))
    header = (f"Sources for {_one_line(result.label)} (from the brief) "
              f"[deckgen:{result.section} #{_digest(lines)}]")
    return f"{header}\n{lines}\n{END.format(section=result.section)}"


def read_notes(presentation: dict[str, Any]) -> dict[str, Notes]:
    """Each slide's speaker notes, by the slide's objectId (slides whose notes page names
    no speaker-notes shape are left out)."""
    out: dict[str, Notes] = {}
    for number, slide in enumerate(presentation.get("slides", []), 1):
        page = (slide.get("slideProperties") or {}).get("notesPage") or {}
        speaker = (page.get("notesProperties") or {}).get("speakerNotesObjectId")
        if not speaker:
            continue
        shape = next((e.get("shape") or {} for e in page.get("pageElements", [])
                      if e.get("objectId") == speaker), {})
        elements = (shape.get("text") or {}).get("textElements", [])
        out[str(slide.get("objectId"))] = _parse(number, speaker, elements)
    return out


def _parse(number: int, speaker: str, elements: list[dict[str, Any]]) -> Notes:
    paragraphs = slides_paragraphs(elements)
    texts = [slides_text(p) for p in paragraphs]
    starts = []
    for p in paragraphs:
        marker = next((e for e in p if "paragraphMarker" in e), p[0] if p else {})
        starts.append(int(marker.get("startIndex", 0)))
    length = max((int(e.get("endIndex", 0)) for e in elements), default=0)
    notes = Notes(number, speaker, "".join(texts), length)
    i = 0
    while i < len(texts):
        head = START.match(texts[i].rstrip("\n"))
        if not head:
            i += 1
            continue
        section, end_line = head.group(1), END.format(section=head.group(1))
        j = next((k for k in range(i + 1, len(texts)) if texts[k].rstrip("\n") == end_line),
                 None)
        if j is None:
            notes.broken.add(section)
            i += 1
            continue
        end = starts[j + 1] if j + 1 < len(starts) else length
        notes.blocks.append(Block(section, head.group(2), starts[i], end,
                                  "".join(texts[i + 1:j])))
        i = j + 1
    return notes


def _slide_of(presentation: dict[str, Any]) -> dict[str, str]:
    """Page element objectId (group members included) -> its slide's objectId."""
    return {str(e.get("objectId")): str(slide.get("objectId"))
            for slide in presentation.get("slides", [])
            for e in _elements(slide.get("pageElements", []))}


def plan_sources(presentation: dict[str, Any], filled: list[tuple[str, str]],
                 results: dict[str, SectionResult], touched: set[str],
                 keep_edits: bool = False) -> SourcesPlan:
    """The requests that put each filled section's sources into the speaker notes of the
    slide its body box is on. `filled`: (section, body box objectId) written this time;
    `touched`: shapes the same batch rewrites (notes holding a section's mark are left
    alone: the indices read would no longer hold)."""
    plan = SourcesPlan()
    notes = read_notes(presentation)
    slide_of = _slide_of(presentation)
    wanted: dict[str, list[str]] = {}  # slide objectId -> sections, in fill order
    for section, object_id in filled:
        slide = slide_of.get(object_id)
        if slide is not None and section not in wanted.setdefault(slide, []):
            wanted[slide].append(section)
    for slide, sections in wanted.items():
        shape = notes.get(slide)
        if shape is None:
            continue
        if shape.object_id in touched:
            plan.warnings.append(f"slide {shape.slide}: the speaker notes hold a section's "
                                 "mark; the sources for " + ", ".join(sections)
                                 + " were not written there")
            continue
        plan.requests += _plan_shape(shape, sections, results, keep_edits, plan)
    return plan


def _plan_shape(notes: Notes, sections: list[str], results: dict[str, SectionResult],
                keep_edits: bool, plan: SourcesPlan) -> list[dict[str, Any]]:
    """One notes shape's requests, from its end to its start so that every index read
    stays true while the requests run."""
    at = {"objectId": notes.object_id}
    edits: list[tuple[int, list[dict[str, Any]]]] = []  # (where, requests) on existing text
    appended: list[str] = []
    for section in sections:
        result = results[section]
        new = block_text(result) if result.sources else None
        if section in notes.broken:
            plan.warnings.append(f"slide {notes.slide}: the speaker notes hold deckgen's "
                                 f"sources for {section} without their end line; left as "
                                 "they are (delete that block to get fresh sources)")
            continue
        mine = [b for b in notes.blocks if b.section == section]
        if not mine:
            if new is not None:
                appended.append(new)
                plan.written.append(section)
            continue
        first, *extra = mine
        if keep_edits and _digest(first.lines) != first.fingerprint:
            plan.warnings.append(f"slide {notes.slide}: the sources for {section} in the "
                                 "speaker notes were edited since the last fill; kept as "
                                 "the person left them")
            continue
        for block in extra:  # a copy of the block: one is enough
            edits.append((block.start, [_delete(at, *_whole(block, notes.length))]))
        if new is None:  # no sources this time: the old ones would describe other items
            edits.append((first.start, [_delete(at, *_whole(first, notes.length))]))
            continue
        edits.append((first.start, [_delete(at, first.start, first.end - 1),
                                    {"insertText": {**at, "insertionIndex": first.start,
                                                    "text": new}}]))
        plan.written.append(section)
    out: list[dict[str, Any]] = []
    if appended:
        empty = not notes.text.strip()
        text = "\n".join(appended)
        out.append({"insertText": {**at, "insertionIndex": 0 if empty else notes.length - 1,
                                   "text": text if empty else "\n" + text}})
    for _, requests in sorted(edits, key=lambda e: -e[0]):
        out += requests
    return out


def _whole(block: Block, length: int) -> tuple[int, int]:
    """The range that removes a block and one line break with it (the shape's final
    newline cannot be deleted: a block at the end takes the break before it instead)."""
    if block.end < length:
        return block.start, block.end
    return max(0, block.start - 1), block.end - 1


def _delete(at: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    return {"deleteText": {**at, "textRange": {"type": "FIXED_RANGE", "startIndex": start,
                                                "endIndex": end}}}
