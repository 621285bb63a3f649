"""How many pages of plain text the layout takes for music.

    python benchmarks/bench_text_pages.py [--fonts /usr/share/fonts] [--verbose]

A songbook's PDF has text pages too: a preface, a contents page, lyrics. Each TrueType
face under ``--fonts`` sets an A4 page of text at 12 and 40 pt, rasterised at 150 and
300 dpi (Pillow), and so do OpenCV's four Hershey faces, upright and italic, at four
sizes. A page counts as taken for music when ``analyze_page`` finds any staff on it
(rather than raising ``NoStavesError``). Prints the count per kind and, with
``--verbose``, every page taken.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omr_engine.layout import NoStavesError, analyze_page  # noqa: E402

WORDS = "The quick brown fox jumps over the lazy dog Lorem ipsum dolor sit amet".split()


def truetype_page(font: Path, points: float, dpi: int) -> np.ndarray:
    """An A4 page of text in ``font`` at ``points``, 1.25 leading, at ``dpi``."""
    page = Image.new("L", (round(8.27 * dpi), round(11.69 * dpi)), 255)
    draw = ImageDraw.Draw(page)
    face = ImageFont.truetype(str(font), round(points * dpi / 72))
    y, i = round(0.6 * dpi), 0
    while y < page.height - 0.6 * dpi:
        draw.text((round(0.5 * dpi), y), " ".join(WORDS[i : i + 6]), fill=0, font=face)
        y, i = y + round(1.25 * points * dpi / 72), (i + 5) % (len(WORDS) - 6)
    return np.asarray(page)


def hershey_page(font: int, scale: float, thickness: int) -> np.ndarray:
    """An A4 page at 300 dpi of text in one of OpenCV's Hershey faces."""
    page = np.full((3508, 2480), 255, np.uint8)
    (_, height), base = cv2.getTextSize("Mg", font, scale, thickness)
    y, i = 150 + height, 0
    while y < 3508 - 150:
        line = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(8))
        cv2.putText(page, line, (100, y), font, scale, 0, thickness, cv2.LINE_AA)
        y, i = y + int(1.6 * (height + base)), i + 3
    return page


def taken_for_music(image: np.ndarray) -> int:
    """Staves the layout finds on ``image`` (0 when it says there are none)."""
    try:
        return len(analyze_page(image).staves)
    except NoStavesError:
        return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fonts", type=Path, default=Path("/usr/share/fonts"))
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    pages: dict[str, list[tuple[str, int]]] = {"truetype": [], "hershey": []}
    for font in sorted(args.fonts.rglob("*.ttf")):
        for points in (12, 40):
            for dpi in (150, 300):
                staves = taken_for_music(truetype_page(font, points, dpi))
                pages["truetype"].append((f"{font.name} {points} pt {dpi} dpi", staves))
    faces = {"simplex": 0, "duplex": 2, "complex": 3, "triplex": 4}
    for name, face in faces.items():
        for italic in (False, True):
            for scale, thickness in ((1.0, 2), (2.0, 3), (3.0, 6), (4.0, 8)):
                font = face | (cv2.FONT_ITALIC if italic else 0)
                staves = taken_for_music(hershey_page(font, scale, thickness))
                label = f"{name}{' italic' if italic else ''} x{scale}"
                pages["hershey"].append((label, staves))
    for kind, rows in pages.items():
        taken = [(label, n) for label, n in rows if n]
        print(f"{kind}: {len(taken)} of {len(rows)} pages of text taken for music")
        if args.verbose:
            for label, n in taken:
                print(f"  {label}: {n} staves")


if __name__ == "__main__":
    main()
