"""Score -> vector PDF: each page engraved by Verovio as SVG, converted to PDF by MuPDF.

The PDF keeps the engraving as vector paths and text (it zooms without blur and its words
can be selected); nothing is rasterized. MuPDF reads neither Verovio's nested `<svg>` nor
its `<style>` sheet, so every page is first flattened (`flatten_svg`); the synthetic data
rasterizer (`omr_engine.synth.engrave`) reads Verovio's SVG through the same function.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pymupdf

from .mei_writer import measures_to_mei
from .score import Score

#: Verovio options for PDF pages: A4 (Verovio's units are tenths of a millimetre), with the
#: staff size a printed part has.
PDF_OPTIONS: dict[str, Any] = {
    "scale": 140,
    "pageWidth": 2100,
    "pageHeight": 2970,
    "breaks": "auto",
    "header": "auto",  # the title, when the score has one
    "footer": "auto",
}

#: A4's width in PDF points.
A4_WIDTH_PT = 595.0


class PdfError(Exception):
    """An SVG page is not shaped like Verovio's output, or MuPDF could not convert it."""


_BBOX_GROUP_RE = re.compile(
    r'<g id="bbox-[^"]*" class="[^"]*bounding-box[^"]*"[^>]*?(?:/>|>\s*<rect[^>]*/>\s*</g>)'
)
_OUTER_SVG_RE = re.compile(r'<svg width="(?P<w>[\d.]+)px" height="(?P<h>[\d.]+)px"')
_INNER_SVG_RE = re.compile(
    r'<svg class="definition-scale"[^>]*viewBox="(?P<vb>[^"]+)"[^>]*>(?P<body>.*)</svg>\s*</svg>\s*$',
    re.S,
)
_DEFS_RE = re.compile(r"<defs>.*?</defs>", re.S)
_PLACEHOLDER_RE = re.compile(r'<g [^>]*class="[^"]*\bplaceholder\b[^"]*"[^>]*>.*?</g>', re.S)
# MuPDF takes font weight and style only from the <text> element itself.
_BOLD_RE = re.compile(r'(<g id="[^"]*" class="(?:ending|fing|reh|tempo)"[^>]*>\s*<text)')
_ITALIC_RE = re.compile(r'(<g id="[^"]*" class="(?:dir|dynam|mNum)"[^>]*>\s*<text)')


def strip_bounding_boxes(svg: str) -> str:
    """Verovio SVG without the groups its `svgBoundingBoxes` option adds (MuPDF fills their
    transparent rectangles black, and inside `<text>` they derail resvg's text layout)."""
    return _BBOX_GROUP_RE.sub("", svg)


def flatten_svg(svg: str, width: float | None = None) -> str:
    """A Verovio SVG page as one flat `<svg>` that MuPDF draws as Verovio means it.

    The nested `<svg>` becomes the viewBox; the style sheet's effects are written as
    attributes: everything stroked in black, placeholders hidden, tempo bold, words italic.
    The glyph `<defs>` that `<use>` elements point at are kept. The page keeps the size the
    SVG declares, or is scaled to `width` (MuPDF reads one SVG pixel as one PDF point).
    """
    outer = _OUTER_SVG_RE.search(svg)
    inner = _INNER_SVG_RE.search(svg)
    if outer is None or inner is None:
        raise PdfError("SVG is not shaped like Verovio's page output")
    defs = _DEFS_RE.search(svg)
    w, h = outer.group("w"), outer.group("h")
    if width is not None:
        w, h = f"{width:g}", f"{width * float(h) / float(w):g}"
    body = _PLACEHOLDER_RE.sub("", inner.group("body"))
    body = _BOLD_RE.sub(r'\1 font-weight="bold"', body)
    body = _ITALIC_RE.sub(r'\1 font-style="italic"', body)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
        f' width="{w}" height="{h}" viewBox="{inner.group("vb")}">'
        f"{defs.group(0) if defs else ''}"
        f'<g stroke="black" fill="black" font-family="Times">{body}</g></svg>'
    )


def svg_pages_to_pdf(svgs: Iterable[str], page_width: float = A4_WIDTH_PT) -> bytes:
    """One vector PDF of Verovio SVG pages, one PDF page each, `page_width` points wide."""
    pdf = pymupdf.open()
    try:
        for number, svg in enumerate(svgs, 1):
            flat = flatten_svg(strip_bounding_boxes(svg), width=page_width)
            try:
                with pymupdf.open(stream=flat.encode(), filetype="svg") as page_doc:
                    page_pdf = page_doc.convert_to_pdf()
                with pymupdf.open("pdf", page_pdf) as page:
                    pdf.insert_pdf(page)
            except Exception as e:  # MuPDF raises its own error types
                raise PdfError(f"MuPDF could not convert page {number}: {e}") from e
        if not pdf.page_count:
            raise PdfError("there is no page to write")
        # garbage=3: the pages share their fonts, kept once.
        return pdf.tobytes(garbage=3, deflate=True)
    finally:
        pdf.close()


def score_to_pdf(score: Score, options: dict[str, Any] | None = None) -> bytes:
    """The score engraved by Verovio (A4 pages by default) as a vector PDF."""
    # Imported here: `mei` loads music21, which the synth rasterizer importing this module
    # does not need.
    from .mei import engrave_svg

    mei = measures_to_mei(
        score.parts, score.measures, score.contexts_before(0), score.title, labels=True
    )
    return svg_pages_to_pdf(engrave_svg(mei, options or PDF_OPTIONS))


def write_pdf(score: Score, path: Path) -> None:
    """Write the score as a vector PDF (see `score_to_pdf`)."""
    Path(path).write_bytes(score_to_pdf(score))
