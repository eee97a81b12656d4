"""Marks in a .pptx template: opening the file (or saying in plain words what it is when
it is not a usable .pptx), walking every text body (shapes, placeholders, group members,
table cells, speaker notes) with its place on the slide, finding the tokens in them, and
measuring the box each section's text lands in. `check_pptx_template` is the check the
.pptx writer's promise rests on."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deckgen.boxes import Box, line_width, wrapped_lines
from deckgen.errors import TemplateError
from deckgen.writers.geometry import Geometry, base_placeholders, ph_of, q
from deckgen.writers.marking import Mark, TemplateCheck, marks_in, summarize

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "data" / "default.pptx"
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
MAIN_TYPES = {
    "presentationml.presentation.main+xml": None,
    "presentationml.template.main+xml": "a PowerPoint template (.potx)",
    "presentationml.slideshow.main+xml": "a PowerPoint show (.ppsx)",
    "ms-powerpoint.presentation.macroEnabled.main+xml": "a macro-enabled deck (.pptm)",
    "ms-powerpoint.template.macroEnabled.main+xml": "a macro-enabled template (.potm)",
    "ms-powerpoint.slideshow.macroEnabled.main+xml": "a macro-enabled show (.ppsm)",
    "wordprocessingml.document.main+xml": "a Word document",
    "spreadsheetml.sheet.main+xml": "an Excel workbook",
}
EXPORT = "open it and save or export it as a PowerPoint presentation (.pptx)"


@dataclass
class Container:
    """A text body in a .pptx: a shape's, a table cell's or the speaker notes'."""

    kind: str  # box | placeholder | cell | group | notes
    txBody: Any
    label: str
    rect: tuple[int, int, int, int] = (0, 0, 0, 0)  # x, y, w, h in EMU on the slide
    sp: Any = None  # the p:sp (a placeholder's chain starts here)
    layout: Any = None
    master: Any = None
    master_part: Any = None
    cell: Any = None  # the a:tc
    bold: bool = False  # a table's header row
    neighbours: list[tuple[int, int, int, int]] = field(default_factory=list)


def _sniff(source: Path) -> str | None:
    """What a file that is not a usable .pptx is, in plain words; None when it looks fine."""
    name = source.name
    try:
        with open(source, "rb") as f:
            head = f.read(8)
            rest = f.read(1 << 20) if head == OLE else b""
    except IsADirectoryError:
        return (f"{name} is a folder (a Keynote package?): open it in Keynote and use "
                "File > Export To > PowerPoint")
    except OSError as exc:
        return f"cannot read {name}: {exc.strerror}"
    if head == OLE:
        if "EncryptedPackage".encode("utf-16-le") in rest:
            return (f"{name} is password-protected: open it in PowerPoint, remove the "
                    "password (File > Info > Protect Presentation) and save it as .pptx")
        if "PowerPoint Document".encode("utf-16-le") in rest:
            return f"{name} is an old PowerPoint 97-2003 file (.ppt): {EXPORT}"
        return f"{name} is an old Office file, not a .pptx: {EXPORT}"
    if head.startswith(b"%PDF"):
        return f"{name} is a PDF, not a .pptx: use the deck it was made from"
    if not zipfile.is_zipfile(source):
        return f"{name} is not a .pptx file (it is damaged, or another format): {EXPORT}"
    try:
        with zipfile.ZipFile(source) as z:
            names = set(z.namelist())
            if "mimetype" in names:
                kind = z.read("mimetype").decode("ascii", "replace")
                if "opendocument" in kind:
                    return (f"{name} is an OpenDocument file ({kind.rsplit('.', 1)[-1]}), "
                            "not a .pptx: open it in LibreOffice Impress and use File > Save "
                            "As > PowerPoint (.pptx)")
            if any(n.startswith("Index/") or n == "Index.zip" for n in names):
                return (f"{name} is a Keynote presentation, not a .pptx: open it in Keynote "
                        "and use File > Export To > PowerPoint")
            if "[Content_Types].xml" not in names:
                return f"{name} is a zip archive but not a .pptx: {EXPORT}"
            types = z.read("[Content_Types].xml").decode("utf-8", "replace")
            z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        return f"{name} is damaged ({exc}): download or export it again"
    for suffix, what in MAIN_TYPES.items():
        if f"vnd.openxmlformats-officedocument.{suffix}" in types or \
                f"application/vnd.{suffix}" in types:
            return None if what is None else f"{name} is {what}, not a .pptx: {EXPORT}"
    return f"{name} has no presentation in it: {EXPORT}"


def open_pptx(template: Path | None = None) -> Any:
    """The template as a python-pptx Presentation, or a TemplateError saying what the file
    is and what to do."""
    from pptx import Presentation

    source = Path(template) if template else DEFAULT_TEMPLATE
    if not source.exists():
        raise TemplateError(f"the template {source} does not exist")
    why = _sniff(source)
    if why:
        raise TemplateError(f"cannot use the template {source}: {why}")
    try:
        return Presentation(str(source))
    except Exception as exc:  # noqa: BLE001 - python-pptx raises many kinds on a bad part
        raise TemplateError(f"cannot use the template {source}: {source.name} is damaged "
                            f"({type(exc).__name__}: {exc}); {EXPORT}") from None


def _xfrm(element: Any, tag: str = "p:spPr") -> tuple[int, int, int, int] | None:
    xfrm = element.find(f"{q(tag)}/{q('a:xfrm')}") if tag else element.find(q("p:xfrm"))
    if xfrm is None:
        return None
    off, ext = xfrm.find(q("a:off")), xfrm.find(q("a:ext"))
    if off is None or ext is None:
        return None
    return (int(off.get("x", 0)), int(off.get("y", 0)), int(ext.get("cx", 0)),
            int(ext.get("cy", 0)))


Transform = tuple[float, float, float, float, float, float]  # ox, oy, sx, sy, cx, cy
IDENTITY: Transform = (0, 0, 1, 1, 0, 0)


def _apply(t: Transform, rect: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    ox, oy, sx, sy, cx, cy = t
    x, y, w, h = rect
    return (round(ox + (x - cx) * sx), round(oy + (y - cy) * sy), round(w * sx),
            round(h * sy))


def _group_transform(grp: Any, outer: Transform) -> Transform:
    xfrm = grp.find(f"{q('p:grpSpPr')}/{q('a:xfrm')}")
    if xfrm is None:
        return outer
    def pair(tag: str, a: str, b: str) -> tuple[int, int]:
        e = xfrm.find(q(tag))
        return (int(e.get(a, 0)), int(e.get(b, 0))) if e is not None else (0, 0)
    (ox, oy), (ex, ey) = pair("a:off", "x", "y"), pair("a:ext", "cx", "cy")
    (cx, cy), (cex, cey) = pair("a:chOff", "x", "y"), pair("a:chExt", "cx", "cy")
    sx, sy = (ex / cex if cex else 1.0), (ey / cey if cey else 1.0)
    # this group's mapping, then the outer one
    x0, y0, _, _ = _apply(outer, (ox, oy, 0, 0))
    return (x0, y0, sx * outer[2], sy * outer[3], cx, cy)


def _shape_rect(sp: Any, layout: Any, master: Any) -> tuple[int, int, int, int]:
    for element in [sp, *base_placeholders(sp, layout, master)]:
        rect = _xfrm(element)
        if rect:
            return rect
    return (0, 0, 0, 0)


def _name(element: Any) -> str:
    for path in ("p:nvSpPr", "p:nvGraphicFramePr", "p:nvGrpSpPr", "p:nvPicPr", "p:nvCxnSpPr"):
        c = element.find(f"{q(path)}/{q('p:cNvPr')}")
        if c is not None:
            return str(c.get("name", ""))
    return ""


def _table_cells(frame: Any, rect: tuple[int, int, int, int], label: str
                 ) -> Iterator[tuple[Any, tuple[int, int, int, int], str, bool]]:
    tbl = frame.find(f".//{q('a:tbl')}")
    if tbl is None:
        return
    cols = [int(c.get("w", 0)) for c in tbl.findall(f"{q('a:tblGrid')}/{q('a:gridCol')}")]
    rows = tbl.findall(q("a:tr"))
    heights = [int(r.get("h", 0)) for r in rows]
    pr = tbl.find(q("a:tblPr"))
    header = pr is not None and pr.get("firstRow") in ("1", "true")
    for r, row in enumerate(rows):
        for c, tc in enumerate(row.findall(q("a:tc"))):
            if tc.get("hMerge") in ("1", "true") or tc.get("vMerge") in ("1", "true"):
                continue
            span, rspan = int(tc.get("gridSpan", 1)), int(tc.get("rowSpan", 1))
            x = rect[0] + sum(cols[:c])
            y = rect[1] + sum(heights[:r])
            cell = (x, y, sum(cols[c:c + span]), sum(heights[r:r + rspan]))
            yield tc, cell, f"{label} row {r + 1} column {c + 1}", header and r == 0


def _walk(tree: Any, t: Transform, grouped: bool, label: str, ctx: dict[str, Any]
          ) -> Iterator[Container]:
    for child in tree:
        tag = child.tag
        name = f"{label}, shape {_name(child)!r}"
        if tag == q("p:sp"):
            body = child.find(q("p:txBody"))
            if body is None:
                continue
            rect = _apply(t, _shape_rect(child, ctx["layout"], ctx["master"]))
            kind = "group" if grouped else "placeholder" if ph_of(child) is not None \
                else "box"
            yield Container(kind, body, name, rect, sp=child, **ctx)
        elif tag == q("p:grpSp"):
            yield from _walk(child, _group_transform(child, t), True, label, ctx)
        elif tag == q("p:graphicFrame"):
            frame = _apply(t, _xfrm(child, "") or (0, 0, 0, 0))
            for tc, rect, where, bold in _table_cells(child, frame, f"{label}, table "
                                                      f"{_name(child)!r}"):
                body = tc.find(q("a:txBody"))
                if body is not None:
                    yield Container("cell", body, where, rect, cell=tc, bold=bold, **ctx)


def _outline(tree: Any) -> list[tuple[int, int, int, int]]:
    """The slide-level rectangles of a slide's shapes (a group as one)."""
    out = []
    for child in tree:
        if child.tag == q("p:grpSp"):
            rect = _xfrm(child, "p:grpSpPr")
        elif child.tag == q("p:graphicFrame"):
            rect = _xfrm(child, "")
        else:
            rect = _xfrm(child)
        if rect:
            out.append(rect)
    return out


def pptx_containers(prs: Any) -> Iterator[Container]:
    """Every text body of every slide, in order: shapes, group members, table cells, then
    the slide's speaker notes."""
    for number, slide in enumerate(prs.slides, 1):
        layout = slide.slide_layout
        master = layout.slide_master
        ctx = {"layout": layout._element, "master": master._element,
               "master_part": master.part}
        tree = slide.shapes._spTree
        outline = _outline(tree)
        for c in _walk(tree, IDENTITY, False, f"slide {number}", ctx):
            c.neighbours = [r for r in outline if r != c.rect]
            yield c
        if slide.has_notes_slide:
            notes = slide.notes_slide
            frame = notes.notes_text_frame
            if frame is not None:
                nm = prs.notes_master
                yield Container("notes", frame._txBody, f"slide {number}, speaker notes",
                                master=nm._element, master_part=nm.part)


def paragraph_runs(p: Any) -> tuple[str, list[tuple[int, int, Any]]]:
    """A paragraph's text and where each run's text sits in it; a line break or a field
    ends a stretch (a token never spans one)."""
    text, spans = "", []
    for child in p:
        if child.tag == q("a:r"):
            t = child.find(q("a:t"))
            value = (t.text or "") if t is not None else ""
            spans.append((len(text), len(text) + len(value), child))
            text += value
        elif child.tag in (q("a:br"), q("a:fld")):
            text += "\x00"
    return text, spans


def paragraphs_of(body: Any) -> list[Any]:
    return body.findall(q("a:p"))


def pptx_marks(prs: Any, section_names: list[str] | None) -> list[Mark]:
    marks: list[Mark] = []
    for c in pptx_containers(prs):
        texts = [paragraph_runs(p)[0] for p in paragraphs_of(c.txBody)]
        if any("{{" in t for t in texts):
            marks += marks_in(texts, c, c.kind, c.label, section_names)
    return marks


def mark_box(geometry: Geometry, m: Mark) -> Box:
    """The box a section mark's text is measured in: the container's, less the height of
    the text around the mark that stays (other paragraphs; words beside an inline token)."""
    c = m.container
    paragraphs = paragraphs_of(c.txBody)
    own = paragraphs[m.paragraph]
    if m.scope == "box":
        return geometry.paragraph_box(c, own)
    reserve, beside = 0.0, 0.0
    for i, p in enumerate(paragraphs):
        text = paragraph_runs(p)[0].replace("\x00", " ")
        box = geometry.paragraph_box(c, p)
        if i == m.paragraph:
            # the words beside an inline token share its line: they take that much width
            # (as if every line were indented by it); longer ones take their own lines
            text = text.replace(m.token, "").strip()
            width = line_width(box, text + "  ") if text else 0.0
            if width < box.text_width / 2:
                beside = width
            elif text:
                reserve += wrapped_lines(box, text) * box.pitch
            continue
        reserve += wrapped_lines(box, text) * box.pitch + box.space_before + box.space_after
    box = geometry.paragraph_box(c, own, reserve=reserve)
    return replace(box, indent=box.indent + beside) if beside else box


def pptx_boxes(prs: Any, marks: list[Mark]) -> dict[str, Box]:
    """Each marked section's boxes, "current_state" and "current_state.title"; the
    smallest where one is marked twice (speaker notes are not measured)."""
    geometry = Geometry(prs)
    boxes: dict[str, Box] = {}
    for m in marks:
        if m.part not in ("body", "title") or m.where == "notes":
            continue
        try:
            box = mark_box(geometry, m)
        except (ValueError, TypeError) as exc:
            raise TemplateError(f"the template's box on {m.label} has a malformed size or "
                                f"spacing value ({exc})") from None
        old = boxes.get(m.key)
        if old is None or box.lines_available < old.lines_available:
            boxes[m.key] = box
    return boxes


def check_pptx_template(path: Path | None, section_names: list[str]) -> TemplateCheck:
    """Open and validate a .pptx template (None: deckgen's own) before any model call:
    where each section is marked, the box it lands in, and tokens that name nothing."""
    prs = open_pptx(path)
    marks = pptx_marks(prs, section_names)
    source = Path(path) if path else DEFAULT_TEMPLATE
    return summarize(marks, pptx_boxes(prs, marks), section_names,
                     f"the template {source.name}")
