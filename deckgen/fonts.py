"""Font metrics for measuring text the way a slide lays it out.

deckgen ships metric-compatible faces (deckgen/data/fonts, with their licences): Liberation
Sans has Arial's and Helvetica's advance widths, Liberation Serif Times New Roman's, Carlito
Calibri's, and Roboto is itself. Widths come from the real glyph advances and kerning
(Pillow's FreeType binding); line heights from the font's own vertical metrics (fontTools).
A family we carry no metrics for is measured with Liberation Sans widened by
UNKNOWN_WIDTH, and marked inexact, so a box in an unknown font is judged conservatively and
the result says so."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from fontTools.ttLib import TTFont
from PIL import ImageFont

# fontTools warns that the bundled faces' 'created' timestamps look odd: they are harmless
logging.getLogger("fontTools.ttLib.tables._h_e_a_d").setLevel(logging.ERROR)
FONT_DIR = Path(__file__).resolve().parent / "data" / "fonts"
# family (lower case) -> (regular file, bold file)
FACES = {
    "liberation sans": ("LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf"),
    "arial": ("LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf"),
    "helvetica": ("LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf"),
    "helvetica neue": ("LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf"),
    "liberation serif": ("LiberationSerif-Regular.ttf", "LiberationSerif-Bold.ttf"),
    "times new roman": ("LiberationSerif-Regular.ttf", "LiberationSerif-Bold.ttf"),
    "times": ("LiberationSerif-Regular.ttf", "LiberationSerif-Bold.ttf"),
    "carlito": ("Carlito-Regular.ttf", "Carlito-Bold.ttf"),
    "calibri": ("Carlito-Regular.ttf", "Carlito-Bold.ttf"),
    "roboto": ("Roboto-Regular.ttf", "Roboto-Bold.ttf"),
}
FALLBACK = "liberation sans"
UNKNOWN_WIDTH = 1.12  # display faces (Montserrat, Open Sans) run up to ~12% wider than Arial
SCALE = 1000  # faces are loaded at 1000 px and widths scaled to the point size
# Typical business prose, for the average character width a prompt target is derived from.
SAMPLE = ("Regional operations rely on spreadsheets and manual reconciliation, so the finance "
          "team closes the month in twelve days; leadership wants daily margin visibility.")


@dataclass(frozen=True)
class Face:
    family: str  # the family asked for
    measured_with: str  # the file whose metrics stand in for it
    exact: bool  # metric-compatible with the family asked for
    width_factor: float
    line_height: float  # single line pitch per point of font size
    regular: str
    bold: str

    def width(self, text: str, size: float, bold: bool = False) -> float:
        """The advance width of `text` at `size` points, in points."""
        return _width(self.bold if bold else self.regular, text) * size * self.width_factor

    def average_char(self, size: float, bold: bool = False) -> float:
        return self.width(SAMPLE, size, bold) / len(SAMPLE)


@functools.lru_cache(maxsize=64)
def face(family: str | None) -> Face:
    key = (family or "").strip().lower()
    exact = key in FACES
    regular, bold = FACES[key if exact else FALLBACK]
    return Face(family or "(unset)", regular, exact, 1.0 if exact else UNKNOWN_WIDTH,
                _line_height(regular), regular, bold)


@functools.lru_cache(maxsize=16)
def _loaded(name: str) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / name), SCALE)


@functools.lru_cache(maxsize=65536)
def _width(name: str, text: str) -> float:
    return float(_loaded(name).getlength(text)) / SCALE


@functools.lru_cache(maxsize=16)
def _line_height(name: str) -> float:
    """Single line spacing as renderers compute it, per point: the larger of the hhea
    (ascent + descent + line gap, what LibreOffice and Slides use) and the OS/2 Windows
    metrics (what PowerPoint uses), so a box that fits here fits in all three."""
    font = TTFont(str(FONT_DIR / name), lazy=True)
    upm = font["head"].unitsPerEm
    hhea, os2 = font["hhea"], font["OS/2"]
    mac = hhea.ascent - hhea.descent + hhea.lineGap
    win = os2.usWinAscent + os2.usWinDescent
    return max(mac, win) / upm
