"""Real templates nobody here designed (tests/templates/corpus.py), marked the way a rep
would, checked, filled with fixed GPT-4-length content fitted to their boxes (no model),
rendered by LibreOffice to PDF, and read back word by word (poppler's pdftotext
-bbox-layout): no token is visible, and no word lies outside the box it was measured in or
off the slide.

LibreOffice and poppler come from Debian's packages (`make render-tools`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pptx import Presentation

from deckgen.boxes import EMU_PER_PT, box_spec, fit_content
from deckgen.content import DeckContent, SectionResult
from deckgen.writers.geometry import Geometry, ph_of, q
from deckgen.writers.marks import check_pptx_template, paragraphs_of, pptx_containers
from deckgen.writers.pptx import write_pptx
from tests.samples import BRIEF, long_answer
from tests.templates.corpus import build_corpus

pytestmark = pytest.mark.slow
TOOLS = ("soffice", "pdftotext")
if not all(shutil.which(t) for t in TOOLS):
    pytest.skip("LibreOffice and poppler's pdftotext are not installed: run "
                "`make render-tools`", allow_module_level=True)
TOLERANCE = 2.5  # points
# pdftotext's word boxes span the font's whole ascent and descent (about 1.3 em): a word
# counts as inside when the middle half of its height is (overflow comes in whole lines)
CORE = 0.25
WORD = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">'
                  r"(.*?)</word>")
PAGE = re.compile(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', re.S)


def fitted(check, specs) -> DeckContent:
    """What a compliant GPT-4-class model returns for each marked section (every item at
    the length its box's limits allow), fitted to the box; the shorten turn gets no answer,
    so whole items are dropped where the text still does not fit."""
    results = []
    for name in check.sections_marked:
        spec = specs[name]
        box, title_box = check.boxes.get(name), check.boxes.get(f"{name}.title")
        content = json.loads(long_answer(box_spec(spec, box, title_box)))
        content, report = fit_content(spec, box, title_box, content, lambda problems: None)
        results.append(SectionResult(name, spec.label, content=content,
                                     lines=spec.lines(content), leads=spec.leads(content),
                                     fit=report))
    return DeckContent(BRIEF, results, 0.0)


def allowed(path: Path) -> dict[int, list[tuple[float, float, float, float]]]:
    """Per slide, the rectangles text may be drawn in (points): each text body's box as
    deckgen measures it (an auto-growing box as far as it may grow), and the text shapes
    the slide's layout and master draw."""
    prs = Presentation(str(path))
    geometry = Geometry(prs)
    rects: dict[int, list[tuple[float, float, float, float]]] = {}
    for c in pptx_containers(prs):
        if c.kind == "notes":
            continue
        number = int(c.label.split(",")[0].split()[1])
        box = geometry.paragraph_box(c, paragraphs_of(c.txBody)[0])
        x, y = max(0, c.rect[0]) / EMU_PER_PT, max(0, c.rect[1]) / EMU_PER_PT
        rects.setdefault(number, []).append((x, y, x + box.width, y + box.height))
    for number, slide in enumerate(prs.slides, 1):
        for part in (slide.slide_layout, slide.slide_layout.slide_master):
            for sp in part.shapes._spTree.iter(q("p:sp")):
                xfrm = sp.find(f"{q('p:spPr')}/{q('a:xfrm')}")
                if ph_of(sp) is None and xfrm is not None:
                    off, ext = xfrm.find(q("a:off")), xfrm.find(q("a:ext"))
                    x, y = int(off.get("x")) / EMU_PER_PT, int(off.get("y")) / EMU_PER_PT
                    rects.setdefault(number, []).append(
                        (x, y, x + int(ext.get("cx")) / EMU_PER_PT,
                         y + int(ext.get("cy")) / EMU_PER_PT))
    return rects


def words(pdf: Path) -> list[tuple[float, float, list[tuple[float, float, float, float, str]]]]:
    """Per page: its size and its words' boxes, from pdftotext -bbox-layout."""
    html = pdf.with_suffix(".html")
    subprocess.run(["pdftotext", "-bbox-layout", str(pdf), str(html)], check=True,
                   capture_output=True, timeout=60)
    pages = []
    for width, height, body in PAGE.findall(html.read_text(encoding="utf-8")):
        found = [(float(a), float(b), float(c), float(d), w) for a, b, c, d, w in
                 WORD.findall(body)]
        pages.append((float(width), float(height), found))
    return pages


def problems(path: Path, pdf: Path) -> list[str]:
    out = []
    rects = allowed(path)
    for number, (width, height, found) in enumerate(words(pdf), 1):
        for x1, y1, x2, y2, word in found:
            if "{{" in word or "}}" in word:
                out.append(f"{path.stem} slide {number}: token visible: {word}")
            if x1 < -TOLERANCE or y1 < -TOLERANCE or x2 > width + TOLERANCE or \
                    y2 > height + TOLERANCE:
                out.append(f"{path.stem} slide {number}: {word!r} off the slide")
            elif not any(x1 >= a - TOLERANCE and y1 + CORE * (y2 - y1) >= b - TOLERANCE and
                         x2 <= c + TOLERANCE and y2 - CORE * (y2 - y1) <= d + TOLERANCE
                         for a, b, c, d in rects.get(number, [])):
                out.append(f"{path.stem} slide {number}: {word!r} at "
                           f"({x1:.0f},{y1:.0f})-({x2:.0f},{y2:.0f}) outside every box")
    return out


@pytest.fixture(scope="module")
def filled(tmp_path_factory, specs):
    """Every corpus template checked, filled and rendered: {name: (check, report, pptx,
    pdf)}."""
    folder = tmp_path_factory.mktemp("corpus")
    corpus = build_corpus(folder / "templates")
    out = folder / "filled"
    out.mkdir()
    done = {}
    for name, template in corpus.items():
        check = check_pptx_template(template, list(specs))
        report = write_pptx(fitted(check, specs), out / f"{name}.pptx", template, list(specs))
        done[name] = (check, report, out / f"{name}.pptx", out / f"{name}.pdf")
    subprocess.run(["soffice", f"-env:UserInstallation=file://{folder / 'lo-profile'}",
                    "--headless", "--convert-to", "pdf", "--outdir", str(out),
                    *(str(v[2]) for v in done.values())],
                   check=True, capture_output=True, timeout=600)
    return done


def test_the_corpus_has_ten_templates_nobody_here_designed(filled):
    assert len(filled) >= 10, sorted(filled)


def test_every_template_is_marked_found_and_filled(filled, specs):
    for name, (check, report, _, _) in filled.items():
        assert check.unknown == [] and report.unknown == [], name
        assert report.filled == check.sections_marked, name
        if name.startswith(("lo-", "python-pptx")):
            assert check.sections_marked == list(specs), name


def test_odd_places_are_found(filled):
    check = filled["odd-16x9"][0]
    assert check.where["data"] == "cell" and check.where["data.title"] == "box"
    assert check.where["skills"] == "group" and check.where["future_state"] == "inline"
    assert check.where["current_state"] == "notes" and "current_state" not in check.boxes
    assert not check.boxes["data.title"].wrap
    stake = check.boxes["stakeholders"]
    # grows from 1.4 in down to the shape at 5.6 in, not to the slide's bottom
    assert stake.height == pytest.approx((5.6 - 1.4) * 72, abs=0.5)
    a4 = filled["inherited-letter"][0]
    assert a4.boxes["data"].font == "Trebuchet MS" and a4.boxes["data"].size == 20
    assert a4.boxes["current_state"].size == 22 and a4.boxes["current_state"].space_before == 12


def test_no_token_visible_and_no_text_outside_its_box(filled):
    found = []
    for _, _, pptx, pdf in filled.values():
        assert pdf.is_file(), f"LibreOffice did not render {pptx.name}"
        found += problems(pptx, pdf)
    assert not found, "\n".join(found[:40])
