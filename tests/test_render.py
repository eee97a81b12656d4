"""End to end: GPT-4-length sections fitted to a template's boxes, written to .pptx,
rendered by LibreOffice (headless) to PDF and by pdftoppm to PNG, and every slide's ink
checked to lie inside its section's box. The same sections written without fitting are the
control: their ink leaves the boxes, so the check can fail.

LibreOffice and poppler come from Debian's packages; `make test` installs them
(`make render-tools`)."""

import shutil
import subprocess

import pytest
from PIL import Image, ImageOps
from pptx import Presentation
from pptx.enum.text import MSO_AUTO_SIZE
from pptx.util import Inches, Pt

from deckgen.deck import generate_deck
from deckgen.writers.pptx import template_boxes, write_pptx
from tests.samples import FULL_BRIEF as BRIEF
from tests.samples import long_answer

pytestmark = pytest.mark.slow
TOOLS = ("soffice", "pdftoppm")
if not all(shutil.which(t) for t in TOOLS):
    pytest.skip("LibreOffice and pdftoppm are not installed: run `make render-tools`",
                allow_module_level=True)

# section: (font, size pt, x, y, w, h inches) - boxes of several sizes and fonts
LAYOUT = {
    "current_state": ("Arial", 18, 0.6, 1.0, 8.0, 2.2),
    "future_state": ("Calibri", 14, 0.6, 0.6, 4.0, 3.4),
    "data": ("Times New Roman", 12, 1.0, 1.5, 5.0, 1.2),
    "skills": ("Calibri", 24, 0.5, 0.5, 9.0, 4.5),
    "stakeholders": ("Arial", 20, 0.6, 1.0, 8.5, 1.6),
}
DPI = 144  # 2 px per point


def template(path):
    prs = Presentation()  # 10 x 7.5 in, white slides
    for name, (font, size, x, y, w, h) in LAYOUT.items():
        slide = prs.slides.add_slide(prs.slide_layouts[6])
        shape = slide.shapes.add_textbox(Inches(x), Inches(y), Inches(w), Inches(h))
        frame = shape.text_frame
        frame.word_wrap, frame.auto_size = True, MSO_AUTO_SIZE.NONE
        frame.text = "{{" + name + "}}"
        run = frame.paragraphs[0].runs[0]
        run.font.name, run.font.size = font, Pt(size)
    prs.save(str(path))
    return path


def render(pptx, out):
    """One PNG per slide, via PDF."""
    profile = out / "lo-profile"
    subprocess.run(["soffice", f"-env:UserInstallation=file://{profile}", "--headless",
                    "--convert-to", "pdf", "--outdir", str(out), str(pptx)],
                   check=True, capture_output=True, timeout=180)
    pdf = out / (pptx.stem + ".pdf")
    subprocess.run(["pdftoppm", "-r", str(DPI), "-png", str(pdf), str(out / pptx.stem)],
                   check=True, capture_output=True, timeout=120)
    return sorted(out.glob(pptx.stem + "-*.png"))


def ink(png):
    """The bounding box of everything drawn on a white slide, in points."""
    gray = ImageOps.invert(Image.open(png).convert("L"))
    box = gray.point(lambda v: 255 if v > 40 else 0).getbbox()
    assert box, f"{png.name} is blank"
    return tuple(v * 72 / DPI for v in box)


def outside(drawn, name, tolerance=1.5):
    """How far (points) the drawn ink reaches past the section's box on any side."""
    _, _, x, y, w, h = LAYOUT[name]
    left, top, right, bottom = x * 72, y * 72, (x + w) * 72, (y + h) * 72
    return max(left - drawn[0], top - drawn[1], drawn[2] - right, drawn[3] - bottom) \
        - tolerance


@pytest.fixture
def long_model(fake_openai, specs):
    """A GPT-4-length model that also ignores the request to shorten (the worst case)."""
    for spec in specs.values():
        fake_openai.reply(spec.name, long_answer(spec), long_answer(spec, seed=3))
    return fake_openai


def test_fitted_text_renders_inside_every_box(tmp_path, fake_generator, long_model, specs):
    path = template(tmp_path / "template.pptx")
    boxes = template_boxes(Presentation(str(path)))
    deck = generate_deck(fake_generator, BRIEF, list(specs.values()), boxes=boxes)
    assert deck.ok
    for result in deck.sections:
        assert result.fit["lines_used"] <= result.fit["lines_available"], result.section
    # the long answers did not fit these boxes: the shorten turn ran, then items were dropped
    assert any(r.fit["items_dropped"] for r in deck.sections)
    write_pptx(deck, tmp_path / "fitted.pptx", path)
    pages = render(tmp_path / "fitted.pptx", tmp_path)
    assert len(pages) == len(LAYOUT)
    for png, name in zip(pages, LAYOUT, strict=True):
        assert outside(ink(png), name) <= 0, f"{name}: text drawn outside its box"


def test_unfitted_long_text_overflows_the_same_boxes(tmp_path, fake_generator, long_model,
                                                     specs):
    """The control: without fitting, the same answers run out of the boxes, so the check
    in the test above is able to fail."""
    path = template(tmp_path / "template.pptx")
    deck = generate_deck(fake_generator, BRIEF, list(specs.values()))
    write_pptx(deck, tmp_path / "unfitted.pptx", path)
    pages = render(tmp_path / "unfitted.pptx", tmp_path)
    over = {name: outside(ink(png), name) for png, name in zip(pages, LAYOUT, strict=True)}
    assert sum(1 for v in over.values() if v > 0) >= 3, over
