"""How big a .pptx text box is and how its text is set, from the template's own inheritance.

PowerPoint resolves what a paragraph looks like through a chain, nearest first: the run and
paragraph properties, the shape's list style, then (for a placeholder) the layout's and the
master's placeholder of the same kind, then the master's text styles (title, body, other)
and the presentation's `defaultTextStyle`; a plain text box reads `defaultTextStyle` before
the master's `otherStyle`. The body properties (insets, wrap, autofit, anchor) inherit along
the placeholder chain only. Theme fonts (`+mn-lt`, `+mj-lt`) are the theme's faces. Table
cells have their own margins and their size from the grid. `paragraph_box` turns one
paragraph of a text container (marks.Container) into a boxes.Box."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable
from typing import Any

from lxml import etree

from deckgen.boxes import EMU_PER_PT, Box

A = "http://schemas.openxmlformats.org/drawingml/2006/main"
P = "http://schemas.openxmlformats.org/presentationml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
THEME_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/theme"
DEFAULT_INSETS = (91440, 45720, 91440, 45720)  # EMU: 0.1 in left/right, 0.05 in top/bottom
DEFAULT_SIZE = 18.0
# What LibreOffice sets a placeholder in when no style gives its size (PowerPoint: 18pt)
UNSTYLED_SIZE = {"title": 44.0, "body": 32.0}
SAMPLE = "deckgen-sample"  # marks a style read from a placeholder's sample text
TITLE_TYPES = {"title", "ctrTitle"}
OTHER_TYPES = {"dt", "ftr", "sldNum", "hdr"}
# the master placeholder a layout placeholder of each type inherits from
MASTER_TYPE = {"ctrTitle": "title", "title": "title", "dt": "dt", "ftr": "ftr",
               "sldNum": "sldNum", "hdr": "hdr"}


def q(tag: str) -> str:
    prefix, name = tag.split(":")
    return f"{{{A if prefix == 'a' else P}}}{name}"


def ph_of(sp: Any) -> Any:
    """The p:ph element of a shape, or None."""
    return sp.find(f"{q('p:nvSpPr')}/{q('p:nvPr')}/{q('p:ph')}")


def ph_type(ph: Any) -> str:
    return str(ph.get("type", "obj"))


def _spTree(part_element: Any) -> Any:
    return part_element.find(f"{q('p:cSld')}/{q('p:spTree')}")


def _placeholders(part_element: Any) -> list[Any]:
    tree = _spTree(part_element)
    if tree is None:
        return []
    return [sp for sp in tree.iter(q("p:sp")) if ph_of(sp) is not None]


def base_placeholders(sp: Any, layout: Any, master: Any) -> list[Any]:
    """The layout's and the master's placeholder a slide placeholder inherits from, nearest
    first (matched by idx, then by type; the master's by kind: body for content)."""
    ph = ph_of(sp)
    if ph is None:
        return []
    kind, idx = ph_type(ph), ph.get("idx")
    chain = []
    on_layout = _placeholders(layout)
    base = None
    if idx is not None:
        base = next((s for s in on_layout if ph_of(s).get("idx") == idx), None)
    if base is None:
        same = {"title", "ctrTitle"} if kind in TITLE_TYPES else {kind}
        base = next((s for s in on_layout if ph_type(ph_of(s)) in same), None)
    if base is not None:
        chain.append(base)
        kind = ph_type(ph_of(base))
    wanted = MASTER_TYPE.get(kind, "body")
    top = next((s for s in _placeholders(master) if ph_type(ph_of(s)) == wanted), None)
    if top is not None:
        chain.append(top)
    return chain


def style_kind(sp: Any) -> str:
    """Which of the master's text styles a shape's text uses: title, body or other."""
    ph = ph_of(sp) if sp is not None else None
    if ph is None:
        return "other"
    kind = ph_type(ph)
    return "title" if kind in TITLE_TYPES else "other" if kind in OTHER_TYPES else "body"


@functools.lru_cache(maxsize=64)
def _theme_fonts_of(blob: bytes) -> dict[str, str]:
    try:
        theme = etree.fromstring(blob)
    except etree.XMLSyntaxError:
        return {}
    fonts = {}
    for key, tag in (("+mj-lt", "majorFont"), ("+mn-lt", "minorFont")):
        latin = theme.find(f".//{{{A}}}{tag}/{{{A}}}latin")
        if latin is not None and latin.get("typeface"):
            fonts[key] = str(latin.get("typeface"))
    return fonts


def theme_fonts(master_part: Any) -> dict[str, str]:
    """The theme's major and minor Latin faces, for typefaces written +mj-lt / +mn-lt."""
    try:
        return _theme_fonts_of(master_part.part_related_by(THEME_REL).blob)
    except (KeyError, AttributeError):
        return {}


def _emu(value: Any, default: int) -> int:
    return int(value) if value not in (None, "") else default


def _level_props(sources: Iterable[Any], level: int) -> list[Any]:
    """The lvlNpPr (then defPPr) of each list-style-like element, nearest first."""
    out = []
    for source in sources:
        if source is None:
            continue
        for tag in (f"a:lvl{level + 1}pPr", "a:defPPr"):
            found = source.find(q(tag))
            if found is not None:
                out.append(found)
    return out


def _spacing(element: Any, size: float) -> tuple[float | None, float | None]:
    """An a:spcBef / a:spcAft / a:lnSpc value: (points, fraction of single spacing)."""
    if element is None:
        return None, None
    pts, pct = element.find(q("a:spcPts")), element.find(q("a:spcPct"))
    if pts is not None:
        return int(pts.get("val", "0")) / 100, None
    if pct is not None:
        return None, int(pct.get("val", "100000")) / 100000
    return None, None


def _sample_style(tx: Any) -> Any:
    """A layout's or master's placeholder styled through its sample text rather than a list
    style (LibreOffice writes its masters so, and reads them so): that paragraph's
    properties and its first run's, as a level-1 list style."""
    p = tx.find(q("a:p"))
    if p is None:
        return None
    ppr = p.find(q("a:pPr"))
    run = p.find(f"{q('a:r')}/{q('a:rPr')}")
    if run is None:
        run = p.find(q("a:endParaRPr"))
    level = copy.deepcopy(ppr) if ppr is not None else etree.Element(q("a:pPr"))
    level.tag = q("a:lvl1pPr")
    if run is not None:
        props = copy.deepcopy(run)
        props.tag = q("a:defRPr")
        level.append(props)
    style = etree.Element(q("a:lstStyle"), {SAMPLE: "1"})
    style.append(level)
    return style


def _first(chain: list[Any], get: Any) -> Any:
    for element in chain:
        value = get(element)
        if value not in (None, ""):
            return value
    return None


class Geometry:
    """One presentation's shared inputs (slide size, default styles), for paragraph_box."""

    def __init__(self, prs: Any) -> None:
        self.prs = prs
        self.width = int(prs.slide_width or 9144000)
        self.height = int(prs.slide_height or 6858000)
        self.defaults = prs._element.find(q("p:defaultTextStyle"))

    def text_sources(self, container: Any) -> tuple[list[Any], list[Any]]:
        """(list styles, body-property elements) a container's text inherits from, nearest
        first."""
        body = container.txBody
        lists = [body.find(q("a:lstStyle"))]
        bodies = [body.find(q("a:bodyPr"))]
        sp = container.sp
        master = container.master
        if container.kind == "notes":
            styles = master.find(f"{q('p:notesStyle')}") if master is not None else None
            return lists + [styles, self.defaults], bodies
        if sp is not None and ph_of(sp) is not None and container.layout is not None:
            for base in base_placeholders(sp, container.layout, master):
                tx = base.find(q("p:txBody"))
                if tx is not None:
                    lists += [tx.find(q("a:lstStyle")), _sample_style(tx)]
                    bodies.append(tx.find(q("a:bodyPr")))
        kind = style_kind(sp) if container.kind != "cell" else "other"
        styles = master.find(f"{q('p:txStyles')}/{q(f'p:{kind}Style')}") \
            if master is not None else None
        if kind == "other":
            lists += [self.defaults, styles]  # what PowerPoint does for a plain text box
        else:
            lists += [styles, self.defaults]
        return lists, bodies

    def paragraph_box(self, container: Any, p: Any, reserve: float = 0.0) -> Box:
        """The Box paragraph `p` of `container` is set in: the container's size and insets,
        the paragraph's resolved font, size, spacing and indent. `reserve` points of the
        height are taken by other text in the box (an inline mark)."""
        lists, bodies = self.text_sources(container)
        ppr = p.find(q("a:pPr"))
        level = int(ppr.get("lvl", "0")) if ppr is not None else 0
        chain = ([ppr] if ppr is not None else []) + _level_props(lists, level)
        run = p.find(q("a:r"))
        rpr = run.find(q("a:rPr")) if run is not None else None
        if rpr is None:
            rpr = p.find(q("a:endParaRPr"))
        run_props = ([rpr] if rpr is not None else []) + [
            d for d in (c.find(q("a:defRPr")) for c in chain) if d is not None]
        assumed = []
        styled = [r for r in run_props if r.getparent() is None or
                  r.getparent().getparent() is None or
                  r.getparent().getparent().get(SAMPLE) is None]
        sz = _first(styled, lambda r: r.get("sz"))
        size = int(sz) / 100 if sz else DEFAULT_SIZE
        if not sz:
            # no style sets it: renderers differ, so take the larger of the sample text's
            # size (what LibreOffice reads) and LibreOffice's own default
            sample = _first(run_props, lambda r: r.get("sz"))
            fallback = UNSTYLED_SIZE.get(style_kind(container.sp), DEFAULT_SIZE) \
                if container.kind == "placeholder" else DEFAULT_SIZE
            size = max(int(sample) / 100 if sample else 0.0, fallback)
            sz = str(int(size * 100)) if sample or fallback != DEFAULT_SIZE else None
        bold = _first(run_props, lambda r: r.get("b")) in ("1", "true") or container.bold
        latin = _first(run_props, lambda r: r.find(q("a:latin")) is not None
                       and r.find(q("a:latin")).get("typeface"))
        fonts = theme_fonts(container.master_part) if container.master_part else {}
        if not latin:
            latin = "+mj-lt" if style_kind(container.sp) == "title" and \
                container.kind != "cell" else "+mn-lt"
        if latin.startswith("+"):
            latin = fonts.get(latin[:6], "")
        if not sz:
            assumed.append(f"font size {DEFAULT_SIZE:g}pt")
        if not latin:
            assumed.append("font Calibri")
        line_pts, line_pct = _spacing(_first(chain, lambda c: c.find(q("a:lnSpc"))), size)
        before = _spacing(_first(chain, lambda c: c.find(q("a:spcBef"))), size)
        after = _spacing(_first(chain, lambda c: c.find(q("a:spcAft"))), size)
        margin = _first(chain, lambda c: c.get("marL"))

        def points(value: tuple[float | None, float | None]) -> float:
            return value[0] if value[0] is not None else (value[1] or 0.0) * size * 1.2

        insets, wrap, notes = self._body(container, bodies)
        assumed += notes
        x, y, w, h = container.rect
        x2, y2 = min(x + w, self.width), min(y + h, self.height)
        if x < 0 or y < 0 or x + w > self.width or y + h > self.height:
            assumed.append("the box runs past the slide's edge: measured to the edge (text "
                           "wrapped past it is cut off: move the box onto the slide)")
        x, y = max(x, 0), max(y, 0)
        if any("grows" in n for n in notes):
            y2 = self._grow_limit(container, x, y, x2, y2)
            if not wrap:  # it grows sideways too: the slide's edge is the limit
                x2 = self.width
        return Box(width=max(0, x2 - x) / EMU_PER_PT,
                   height=max(0.0, (y2 - y) / EMU_PER_PT - reserve),
                   font=latin or "Calibri", size=size, bold=bold,
                   insets=tuple(v / EMU_PER_PT for v in insets),  # type: ignore[arg-type]
                   line_spacing=line_pct or 1.0, line_pitch=line_pts,
                   space_before=points(before), space_after=points(after),
                   indent=max(0, int(margin or 0)) / EMU_PER_PT, wrap=wrap,
                   where=container.label, assumed=tuple(assumed))

    def _body(self, container: Any, bodies: list[Any]) -> tuple[tuple[int, ...], bool,
                                                                list[str]]:
        """Insets (EMU), whether lines wrap, and notes on autofit, from the body
        properties (a table cell: its own margins, always wrapping)."""
        notes: list[str] = []
        if container.cell is not None:
            tcpr = container.cell.find(q("a:tcPr"))
            get = (lambda k: tcpr.get(k)) if tcpr is not None else (lambda k: None)
            insets = tuple(_emu(get(k), d) for k, d in
                           zip(("marL", "marT", "marR", "marB"), DEFAULT_INSETS, strict=True))
            return insets, True, notes
        bodies = [b for b in bodies if b is not None]
        insets = tuple(_emu(_first(bodies, lambda b, k=k: b.get(k)), d) for k, d in
                       zip(("lIns", "tIns", "rIns", "bIns"), DEFAULT_INSETS, strict=True))
        wrap = _first(bodies, lambda b: b.get("wrap")) != "none"
        fit = _first(bodies, lambda b: next(
            (c.tag.split("}")[1] for c in b if c.tag in (
                q("a:noAutofit"), q("a:normAutofit"), q("a:spAutoFit"))), None))
        if fit == "normAutofit":
            notes.append("shrink-on-overflow ignored: measured at the full font size")
        if not wrap:
            notes.append("lines do not wrap: each paragraph must fit the box's width")
        if fit == "spAutoFit":
            notes.append("the box grows with its text: measured to the next shape below "
                         "or the slide's edge")
        return insets, wrap, notes

    def _grow_limit(self, container: Any, x: int, y: int, x2: int, y2: int) -> int:
        """Where an auto-growing box must stop: the top of the nearest shape below it that
        it overlaps horizontally, or the slide's bottom edge; never above its own bottom."""
        limit = self.height
        for ox, oy, ow, _ in container.neighbours:
            if oy > y and ox < x2 and ox + ow > x:
                limit = min(limit, oy)
        return max(y2, limit)
