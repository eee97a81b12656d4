"""Template presentations in the shape Google Slides' `presentations.get` returns, for tests
of the Slides writer against `tests/fake_google.py` (16:9 pages, placeholders, real styles,
text elements with UTF-16 indices).

`realistic_template()` ("Pitch template", presentationId "pitch-template") holds, per slide,
these elements (text: one string per paragraph):

- `slide_title` (layout_TITLE):
  `title_client` "{{client}}" (CENTERED_TITLE placeholder, Montserrat 40pt bold);
  `title_rule` a LINE (no text);
  `title_prepared` "Prepared for {{client}} by Acme Consulting" (TEXT_BOX, centred) in three
  runs: "Prepared for " and " by Acme Consulting" Roboto 18pt grey, "{{client}}" bold blue.
- `slide_cs`: `cs_title` "{{current_state.title}}" (TITLE placeholder, Montserrat 28pt bold);
  `cs_body` "{{current_state}}" (TEXT_BOX, Roboto 16pt grey, spaceAbove 6pt).
- `slide_fs`: `fs_title` "{{future_state.title}}"; `fs_body` "{{future_state}}" (same styles).
- `slide_data`: `data_title` "{{data.title}}"; `data_body` "{{data}}"; `data_logo` an IMAGE.
- `slide_team` (two sections side by side): left `skills_title` "{{skills.title}}",
  `skills_body` "{{skills}}"; right `stake_title` "{{stakeholders.title}}", `stake_body` a
  bulleted BODY placeholder (list "kix.stake") with two paragraphs: "{{stakeholders}}"
  (Roboto 16pt, indentStart 18pt) and "Name, role: what they care about" (12pt italic light
  grey, indentStart 36pt).

`alt_text_template()` marks the same bodies by alt-text description ("deckgen:current_state",
...) instead of tokens, with sample prose inside. `unmarked_template()` has text but neither
tokens nor `deckgen:` descriptions."""

from __future__ import annotations

import copy
from typing import Any

JSON = dict[str, Any]
EMU_PER_PT = 12700
WIDTH, HEIGHT = 9144000, 5143500  # Google Slides' default 16:9 page
LEFT_HALF, RIGHT_HALF = (0.5, 1.2, 4.4, 3.5), (5.1, 1.2, 4.4, 3.5)  # x, y, w, h in inches


def _emu(value: float) -> JSON:
    return {"magnitude": value, "unit": "EMU"}


def _pt(value: float) -> JSON:
    return {"magnitude": value, "unit": "PT"}


def _rgb(red: float, green: float, blue: float) -> JSON:
    return {"opaqueColor": {"rgbColor": {"red": red, "green": green, "blue": blue}}}


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def text_style(font: str = "Arial", size: float = 18, bold: bool = False,
               italic: bool = False, color: tuple[float, float, float] = (0.2, 0.2, 0.2)) -> JSON:
    """A run style as Google returns it for explicitly formatted text."""
    return {"foregroundColor": _rgb(*color), "bold": bold, "italic": italic,
            "fontFamily": font, "fontSize": _pt(size),
            "weightedFontFamily": {"fontFamily": font, "weight": 700 if bold else 400}}


def paragraph_style(space_above: float = 0, indent_start: float = 0,
                    indent_first: float = 0, alignment: str = "START") -> JSON:
    return {"lineSpacing": 115, "alignment": alignment, "direction": "LEFT_TO_RIGHT",
            "spacingMode": "COLLAPSE_LISTS", "spaceAbove": _pt(space_above),
            "spaceBelow": _pt(0), "indentStart": _pt(indent_start),
            "indentFirstLine": _pt(indent_first)}


def text_elements(paragraphs: list[list[tuple[str, JSON]]], para_styles: list[JSON],
                  bullet: JSON | None = None) -> list[JSON]:
    """textElements for paragraphs given as runs [(content, style)]; each paragraph's last
    run gets the closing newline. Indices count UTF-16 code units; startIndex 0 is omitted."""
    out: list[JSON] = []
    start = 0
    for runs, pstyle in zip(paragraphs, para_styles, strict=True):
        runs = [*runs[:-1], (runs[-1][0] + "\n", runs[-1][1])]
        end = start + sum(_units(content) for content, _ in runs)
        marker: JSON = {"style": copy.deepcopy(pstyle)}
        if bullet:
            marker["bullet"] = copy.deepcopy(bullet)
        out.append({**_span(start, end), "paragraphMarker": marker})
        pos = start
        for content, style in runs:
            out.append({**_span(pos, pos + _units(content)),
                        "textRun": {"content": content, "style": copy.deepcopy(style)}})
            pos += _units(content)
        start = end
    return out


def _span(start: int, end: int) -> JSON:
    return {"startIndex": start, "endIndex": end} if start else {"endIndex": end}


def _frame(object_id: str, x: float, y: float, w: float, h: float) -> JSON:
    """objectId, size and transform of a page element placed at (x, y) inches, w x h inches."""
    inch = 914400
    return {"objectId": object_id,
            "size": {"width": _emu(w * inch), "height": _emu(h * inch)},
            "transform": {"scaleX": 1, "scaleY": 1, "translateX": x * inch,
                          "translateY": y * inch, "unit": "EMU"}}


def text_shape(object_id: str, paragraphs: list[str], *, font: str = "Arial",
               size: float = 18, bold: bool = False, bullets: bool = False,
               description: str | None = None, placeholder: str | None = None,
               frame: tuple[float, float, float, float] = (0.5, 1.2, 9.0, 3.5),
               color: tuple[float, float, float] = (0.2, 0.2, 0.2),
               space_above: float = 0) -> JSON:
    """A page element: a TEXT_BOX (or a `placeholder` of that type: "BODY", "TITLE", ...)
    holding one paragraph per string, every run in the same style."""
    style = text_style(font, size, bold, color=color)
    pstyle = paragraph_style(space_above, 18 if bullets else 0, 0)
    list_id = f"kix.{object_id}"
    bullet = {"listId": list_id, "glyph": "●", "bulletStyle": {"fontSize": _pt(size)}} \
        if bullets else None
    text: JSON = {"textElements": text_elements(
        [[(p, style)] for p in paragraphs], [pstyle] * len(paragraphs), bullet)}
    if bullets:
        text["lists"] = {list_id: {"listId": list_id, "nestingLevel": {
            "0": {"bulletStyle": {"fontSize": _pt(size)}}}}}
    shape: JSON = {"shapeType": "TEXT_BOX", "text": text,
                   "shapeProperties": {"shapeBackgroundFill": {"propertyState": "NOT_RENDERED"},
                                       "contentAlignment": "TOP", "autofit": {
                                           "autofitType": "NONE", "fontScale": 1}}}
    if placeholder:
        shape["placeholder"] = {"type": placeholder, "parentObjectId": f"layout_{placeholder}"}
    element = {**_frame(object_id, *frame), "shape": shape}
    if description is not None:
        element["description"] = description
    return element


def _title(object_id: str, text: str, frame: tuple[float, float, float, float] = (
        0.5, 0.3, 9.0, 0.8)) -> JSON:
    return text_shape(object_id, [text], font="Montserrat", size=28, bold=True,
                      placeholder="TITLE", frame=frame, color=(0.05, 0.2, 0.4))


def _body(object_id: str, text: str, frame: tuple[float, float, float, float] = (
        0.5, 1.2, 9.0, 3.5), **kw: Any) -> JSON:
    return text_shape(object_id, [text], font="Roboto", size=16, frame=frame,
                      color=(0.26, 0.26, 0.26), space_above=6, **kw)


def _slide(object_id: str, elements: list[JSON], layout: str = "layout_TITLE_AND_BODY") -> JSON:
    return {"objectId": object_id, "pageType": "SLIDE", "pageElements": elements,
            "slideProperties": {"layoutObjectId": layout, "masterObjectId": "master_1"},
            "pageProperties": {"pageBackgroundFill": {"propertyState": "INHERIT"}}}


def _presentation(presentation_id: str, title: str, slides: list[JSON]) -> JSON:
    layout = {"objectId": "layout_TITLE_AND_BODY", "pageType": "LAYOUT", "pageElements": [],
              "layoutProperties": {"masterObjectId": "master_1", "name": "TITLE_AND_BODY",
                                   "displayName": "Title and body"}}
    master = {"objectId": "master_1", "pageType": "MASTER", "pageElements": [],
              "masterProperties": {"displayName": "Simple Light"}}
    return {"presentationId": presentation_id, "title": title, "locale": "en",
            "pageSize": {"width": _emu(WIDTH), "height": _emu(HEIGHT)},
            "slides": slides, "layouts": [layout], "masters": [master]}


def _prepared_for() -> JSON:
    element = text_shape("title_prepared", ["x"], font="Roboto", size=18,
                         frame=(1.0, 3.2, 8.0, 0.6), color=(0.4, 0.4, 0.4))
    plain = text_style("Roboto", 18, color=(0.4, 0.4, 0.4))
    bold = text_style("Roboto", 18, bold=True, color=(0.05, 0.2, 0.4))
    element["shape"]["text"]["textElements"] = text_elements(
        [[("Prepared for ", plain), ("{{client}}", bold), (" by Acme Consulting", plain)]],
        [paragraph_style(alignment="CENTER")])
    return element


def _stakeholders_body() -> JSON:
    element = text_shape("stake_body", ["x"], placeholder="BODY", frame=RIGHT_HALF)
    main = text_style("Roboto", 16, color=(0.26, 0.26, 0.26))
    hint = text_style("Roboto", 12, italic=True, color=(0.6, 0.6, 0.6))
    bullet = {"listId": "kix.stake", "glyph": "●"}
    element["shape"]["text"] = {
        "textElements": text_elements(
            [[("{{stakeholders}}", main)], [("Name, role: what they care about", hint)]],
            [paragraph_style(6, 18, 0), paragraph_style(2, 36, 0)], bullet),
        "lists": {"kix.stake": {"listId": "kix.stake", "nestingLevel": {
            "0": {"bulletStyle": {"fontSize": _pt(16)}}}}}}
    return element


def _line(object_id: str) -> JSON:
    return {**_frame(object_id, 2.0, 3.0, 6.0, 0.0), "line": {
        "lineType": "STRAIGHT_CONNECTOR_1", "lineCategory": "STRAIGHT", "lineProperties": {
            "lineFill": {"solidFill": {"color": {"rgbColor": {"red": 0.05, "green": 0.2,
                                                               "blue": 0.4}}, "alpha": 1}},
            "weight": _pt(1.5), "dashStyle": "SOLID"}}}


def _image(object_id: str) -> JSON:
    url = "https://lh3.googleusercontent.com/fake-logo"
    return {**_frame(object_id, 8.3, 4.6, 1.2, 0.4), "title": "Acme logo",
            "image": {"contentUrl": url, "sourceUrl": url, "imageProperties": {}}}


def realistic_template() -> JSON:
    slides = [
        _slide("slide_title", [
            text_shape("title_client", ["{{client}}"], font="Montserrat", size=40, bold=True,
                       placeholder="CENTERED_TITLE", frame=(1.0, 1.6, 8.0, 1.2),
                       color=(0.05, 0.2, 0.4)),
            _line("title_rule"), _prepared_for()], layout="layout_TITLE"),
        _slide("slide_cs", [_title("cs_title", "{{current_state.title}}"),
                            _body("cs_body", "{{current_state}}")]),
        _slide("slide_fs", [_title("fs_title", "{{future_state.title}}"),
                            _body("fs_body", "{{future_state}}")]),
        _slide("slide_data", [_title("data_title", "{{data.title}}"),
                              _body("data_body", "{{data}}"), _image("data_logo")]),
        _slide("slide_team", [
            _title("skills_title", "{{skills.title}}", (0.5, 0.3, 4.4, 0.8)),
            _body("skills_body", "{{skills}}", LEFT_HALF),
            _title("stake_title", "{{stakeholders.title}}", (5.1, 0.3, 4.4, 0.8)),
            _stakeholders_body()]),
    ]
    return _presentation("pitch-template", "Pitch template", slides)


def alt_text_template() -> JSON:
    """The same deck, its bodies found by alt text "deckgen:<section>" and holding last
    quarter's prose instead of tokens (titles keep their tokens)."""
    doc = realistic_template()
    doc["presentationId"], doc["title"] = "pitch-alt-text", "Pitch template (alt text)"
    sections = {"cs_body": "current_state", "fs_body": "future_state", "data_body": "data",
                "skills_body": "skills", "stake_body": "stakeholders"}
    for slide in doc["slides"]:
        for element in slide["pageElements"]:
            section = sections.get(element["objectId"])
            if section:
                element["description"] = f"deckgen:{section}"
                first = element["shape"]["text"]["textElements"][1]["textRun"]
                first["content"] = first["content"].replace(f"{{{{{section}}}}}",
                                                            "Last quarter's text")
                element["shape"]["text"]["textElements"] = _reindex(
                    element["shape"]["text"]["textElements"])
    return doc


def _reindex(elements: list[JSON]) -> list[JSON]:
    """Recomputes indices after run contents changed (one paragraph marker per paragraph)."""
    out, pos = [], 0
    for e in elements:
        e = {k: v for k, v in e.items() if k not in ("startIndex", "endIndex")}
        if "paragraphMarker" in e:
            marker, marker_start = e, pos
            out.append(e)
            continue
        end = pos + _units(e["textRun"]["content"])
        out.append({**_span(pos, end), **e})
        pos = end
        if e["textRun"]["content"].endswith("\n"):
            i = out.index(marker)
            out[i] = {**_span(marker_start, end), **marker}
    return out


def unmarked_template() -> JSON:
    """A deck with text but no {{...}} tokens and no deckgen: descriptions."""
    slides = [
        _slide("slide_cover", [
            text_shape("cover_title", ["Quarterly business review"], font="Montserrat",
                       size=36, bold=True, placeholder="CENTERED_TITLE"),
            text_shape("cover_sub", ["Acme Consulting", "March"],
                       frame=(1.0, 3.2, 8.0, 0.8), description="Subtitle")]),
        _slide("slide_agenda", [
            _title("agenda_title", "Agenda"),
            text_shape("agenda_body", ["Where we are", "Where we are going", "Next steps"],
                       bullets=True, placeholder="BODY"), _image("agenda_logo")]),
    ]
    return _presentation("unmarked-deck", "QBR", slides)
