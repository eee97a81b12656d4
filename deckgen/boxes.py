"""How much text a section's box holds, and whether a section's text fits it.

A Box is what the template says about the shape a section lands in: its size and insets,
the font family and size of its body text, line spacing, paragraph spacing and indent (the
writers read it: `writers/pptx.template_boxes`, `writers/slides.deck_boxes`). `measure`
wraps each paragraph word by word with the font's real advance widths (deckgen/fonts.py)
and counts lines against the box's height. `box_spec` turns a box into the section's output
limits (fewer or shorter items for a small box), which go into the prompt and the schema
sent with the request; `trim_to_fit` is the last resort after a shorten turn: it drops
whole items from the end, never clipping a word."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from deckgen.fonts import face
from deckgen.sections import SectionSpec

EMU_PER_PT = 12700
WRAP_SLACK = 1.1  # word wrapping wastes ~10% of a line on average: targets leave room for it
MIN_ITEM_CHARS = 30  # below this an item says nothing; a box that small gets fewer items
MIN_FIELD_CHARS = 12
MIN_TITLE_CHARS = 20
EPS = 1e-6


@dataclass(frozen=True)
class Box:
    width: float  # points, the shape's outer size
    height: float
    font: str
    size: float  # points
    bold: bool = False  # the box's text is bold (headlines usually are)
    insets: tuple[float, float, float, float] = (7.2, 3.6, 7.2, 3.6)  # left top right bottom
    line_spacing: float = 1.0  # a multiple of single spacing ...
    line_pitch: float | None = None  # ... or an exact line pitch in points
    space_before: float = 0.0  # points, per paragraph
    space_after: float = 0.0
    indent: float = 0.0  # where text lines start, from the left inset (bullets hang in it)
    wrap: bool = True  # False: each paragraph is one line, which must fit the box's width
    where: str = ""  # which shape, for messages
    assumed: tuple[str, ...] = ()  # properties the template leaves unset, taken as defaults

    def __post_init__(self) -> None:
        # A template can say 0pt or 0% (nonsense, but it must not crash a job): clamp.
        object.__setattr__(self, "size", max(1.0, self.size))
        object.__setattr__(self, "line_spacing", max(0.1, self.line_spacing))

    @property
    def text_width(self) -> float:
        return max(1.0, self.width - self.insets[0] - self.insets[2] - self.indent)

    @property
    def text_height(self) -> float:
        return max(0.0, self.height - self.insets[1] - self.insets[3])

    @property
    def pitch(self) -> float:
        if self.line_pitch and self.line_pitch > 0:
            return self.line_pitch
        return self.size * face(self.font).line_height * self.line_spacing

    @property
    def lines_available(self) -> int:
        return math.floor(self.text_height / self.pitch + EPS)

    def describe(self) -> dict[str, Any]:
        f = face(self.font)
        return {"where": self.where, "width_pt": round(self.width, 1),
                "height_pt": round(self.height, 1), "font": self.font,
                "size_pt": self.size, "bold": self.bold, "measured_with": f.measured_with,
                "exact_metrics": f.exact,
                "line_pitch_pt": round(self.pitch, 2), "wraps": self.wrap,
                "lines_available": self.lines_available, "assumed": list(self.assumed)}


@dataclass
class Measure:
    lines_used: int  # text lines, paragraph spacing counted in line pitches
    lines_available: int
    paragraph_lines: list[int] = field(default_factory=list)
    too_wide: int = 0  # paragraphs wider than a box whose lines do not wrap

    @property
    def fits(self) -> bool:
        return self.lines_used <= self.lines_available and not self.too_wide

    def __str__(self) -> str:
        return f"{self.lines_used}/{self.lines_available}"


def wrapped_lines(box: Box, text: str, lead: int = 0) -> int:
    """How many lines `text` takes in the box when wrapped at spaces, its first `lead`
    characters in bold (a word wider than a line breaks across lines, as renderers do)."""
    f, width, size = face(box.font), box.text_width, box.size
    if not box.wrap:
        return 1
    space = f.width(" ", size, bold=box.bold)
    lines, x, pos = 1, 0.0, 0
    for word in text.split(" "):
        w = f.width(word, size, bold=box.bold or pos < lead)
        pos += len(word) + 1
        if not word:
            x += space
            continue
        if x > 0 and x + space + w <= width + EPS:
            x += space + w
            continue
        if x > 0:
            lines += 1
        if w > width:
            lines += math.ceil(w / width - EPS) - 1
            x = w - (math.ceil(w / width - EPS) - 1) * width
        else:
            x = w
    return lines


def line_width(box: Box, text: str, lead: int = 0) -> float:
    """The width of `text` set on one line, its first `lead` characters in bold."""
    f = face(box.font)
    return f.width(text[:lead], box.size, bold=True) + \
        f.width(text[lead:], box.size, bold=box.bold)


def measure(box: Box, lines: list[str], leads: list[int] | None = None) -> Measure:
    """How many lines `lines` (one paragraph each) take in the box. Paragraph spacing is
    counted in points (space after the last paragraph takes no room), and the text fits when
    its height does; lines used are rounded so that they agree with that."""
    leads = leads or [0] * len(lines)
    leads = leads + [0] * (len(lines) - len(leads))
    per = [wrapped_lines(box, line, lead) for line, lead in zip(lines, leads, strict=False)]
    wide = 0 if box.wrap else sum(
        1 for line, lead in zip(lines, leads, strict=False)
        if line_width(box, line, lead) > box.text_width + EPS)
    spacing = box.space_before * len(lines) + box.space_after * max(0, len(lines) - 1)
    height = sum(per) * box.pitch + spacing
    used = math.ceil(height / box.pitch - EPS) if lines else 0
    available = box.lines_available
    fits = height <= box.text_height + EPS
    used = min(used, available) if fits else max(used, available + 1)
    return Measure(used, available, per, wide)


def _item_chars(spec: SectionSpec) -> int:
    """The longest line one item can make under the spec."""
    if not spec.item_fields:
        return int(spec.item_chars or 0)
    separators = len(spec.line.format(**dict.fromkeys(spec.item_fields, "")))
    return sum(spec.item_fields.values()) + separators


def _per_line(box: Box) -> float:
    """Characters of typical prose a line of the box holds."""
    return box.text_width / face(box.font).average_char(box.size, box.bold)


def box_spec(spec: SectionSpec, box: Box | None, title_box: Box | None = None) -> SectionSpec:
    """The spec with its limits cut to what the boxes hold. The body: fewer items first,
    then shorter ones (never below MIN_ITEM_CHARS), then fewer than the spec's minimum as a
    last resort. The headline: fewer characters. Unchanged where the boxes hold the spec's
    maximum."""
    if title_box is not None:
        chars = math.floor(title_box.lines_available * _per_line(title_box) / WRAP_SLACK)
        spec = replace(spec, title_chars=max(MIN_TITLE_CHARS, min(spec.title_chars, chars)))
    if box is None:
        return spec
    per_line = _per_line(box)
    gap = (box.space_before + box.space_after) / box.pitch
    available = box.lines_available
    full = _item_chars(spec)

    def lines_for(chars: int) -> float:
        return math.ceil(chars * WRAP_SLACK / per_line - EPS) + gap

    if spec.max_items * lines_for(full) <= available + EPS:
        return spec
    count = math.floor(available / lines_for(full) + EPS)
    if count >= spec.min_items:
        return replace(spec, max_items=count)
    count = spec.min_items
    item_lines = math.floor(available / count - gap + EPS)
    chars = min(full, math.floor(item_lines * per_line / WRAP_SLACK))
    if chars < MIN_ITEM_CHARS:
        chars = min(full, max(MIN_ITEM_CHARS, math.floor(per_line / WRAP_SLACK)))
        count = max(1, math.floor(available / lines_for(chars) + EPS))
    return _shorter(replace(spec, min_items=min(count, spec.min_items), max_items=count),
                    chars / full)


def _shorter(spec: SectionSpec, factor: float) -> SectionSpec:
    if factor >= 1:
        return spec
    if not spec.item_fields:
        return replace(spec, item_chars=max(1, math.floor(int(spec.item_chars or 0) * factor)))
    fields = {k: max(min(v, MIN_FIELD_CHARS), math.floor(v * factor))
              for k, v in spec.item_fields.items()}
    return replace(spec, item_fields=fields)


def trim_to_fit(box: Box, spec: SectionSpec, content: dict[str, Any]) -> tuple[
        dict[str, Any], int]:
    """Drops whole items from the end until the text fits (at least one item stays; the
    caller flags a single item that still overflows). Returns the content and how many
    items were dropped."""
    items = list(content.get(spec.list_key, []))
    dropped = 0
    while len(items) > 1:
        trial = {**content, spec.list_key: items}
        if measure(box, spec.lines(trial), spec.leads(trial)).fits:
            break
        items.pop()
        dropped += 1
    return {**content, spec.list_key: items}, dropped


Shorten = Callable[[list[str]], "dict[str, Any] | None"]


def _problem(what: str, where: str, m: Measure) -> str:
    if m.too_wide:
        return (f"{what} has {m.too_wide} line(s) wider than {where}, whose lines do not "
                "wrap")
    return f"{what} needs {m.lines_used} lines and {where} holds {m.lines_available}"


def fit_content(spec: SectionSpec, box: Box | None, title_box: Box | None,
                content: dict[str, Any], shorten: Shorten) -> tuple[dict[str, Any],
                                                                    dict[str, Any]]:
    """Make a valid answer fit its boxes. Measure it; if the body or the headline overflows,
    `shorten(problems)` asks the same model once for a shorter answer (kept when it is no
    longer); then whole items are dropped from the end. Nothing is clipped mid-word and
    nothing silently: the report says what happened, with a warning when text still does
    not fit. Returns the content and the report."""
    def check(c: dict[str, Any]) -> tuple[Measure | None, Measure | None]:
        return (measure(box, spec.lines(c), spec.leads(c)) if box else None,
                measure(title_box, [str(c.get("title", ""))]) if title_box else None)

    report: dict[str, Any] = {"shortened": False, "items_dropped": 0, "overflows": False}
    body, title = check(content)
    if body:
        report["first_answer"] = str(body)
    if title:
        report["title"] = {"first_answer": str(title), "overflows": False}
    problems = []
    if body and not body.fits:
        problems.append(_problem("the text", "the box", body))
    if title and not title.fits:
        problems.append(_problem("the headline", "its box", title))
    if problems:
        report["shortened"] = True
        shorter = shorten(problems)
        if shorter is None:
            report["after_shorten"] = "no usable answer; kept the first"
        else:
            body2, title2 = check(shorter)
            report["after_shorten"] = " ".join(str(m) for m in (body2, title2) if m)
            if all(new.lines_used <= old.lines_used and new.too_wide <= old.too_wide
                   for new, old in ((body2, body), (title2, title)) if new and old):
                content, body, title = shorter, body2, title2
    if box and body and not body.fits:
        content, report["items_dropped"] = trim_to_fit(box, spec, content)
        body = measure(box, spec.lines(content), spec.leads(content))
    warnings = []
    if report["items_dropped"]:
        warnings.append(f"{report['items_dropped']} item(s) dropped from the end to fit the "
                        f"box ({box.where if box else ''})")
    if box and body:
        report["lines_used"], report["lines_available"] = body.lines_used, body.lines_available
        if not body.fits:
            report["overflows"] = True
            warnings.append(f"{_problem('the text left', f'the box ({box.where})', body)}: "
                            "shorten it by hand or enlarge the box")
    if title_box and title:
        report["title"].update(lines_used=title.lines_used,
                               lines_available=title.lines_available)
        if not title.fits:
            report["title"]["overflows"] = True
            warnings.append(f"{_problem('the headline', f'its box ({title_box.where})', title)}"
                            ": shorten it by hand or enlarge the box")
    if warnings:
        report["warning"] = "; ".join(warnings)
    return content, report
