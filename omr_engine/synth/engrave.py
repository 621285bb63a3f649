"""Engraves MusicXML with Verovio in varied styles and cuts the pages into system and staff
crops, each carrying the boxes of its measures.

All geometry is read from Verovio's own SVG, never guessed from pixels:

- a measure's x-extent is the extent of its staff-line segments (Verovio draws the five
  lines of every staff once per measure, from the previous barline to the right edge of
  this measure's barline), so consecutive measures touch and never overlap;
- a measure's y-extent is the top line of its first staff to the bottom line of its last;
- what belongs to a staff (notes, ledger lines, stems, lyrics, dynamics...) comes from the
  ``<rect>`` boxes that the ``svgBoundingBoxes`` option adds to every element. Verovio 6.4
  leaves the box of a ``measure`` empty and makes a staff's box just its lines, which is
  why the measure and staff extents are taken from the line paths instead. It also gives
  every segment of a volta bracket that runs over several systems the box of its last
  segment, so a bracket's extent is taken from its drawn lines (``_bracket_boxes``).

The SVG is rasterized onto white paper by MuPDF (default, fast) or resvg; see
``rasterize``. Text set in a SMuFL font (a metronome mark's note) is not drawn: neither
rasterizer has the font. Notes, rests, dynamics and the like are paths and unaffected.

Coordinates are raster pixels, continuous: pixel (i, j) covers [j, j+1) x [i, i+1).
"""

from __future__ import annotations

import math
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import cv2
import numpy as np
import resvg_py
import verovio
from pymupdf import mupdf

from ..notation.pdf import PdfError, flatten_svg, strip_bounding_boxes

FONTS: tuple[str, ...] = ("Leipzig", "Bravura", "Gootville", "Leland", "Petaluma")
"""Music fonts shipped with Verovio 6.4 (its ``data/`` folder); all five render."""

TEXT_SERIF_FAMILY = "DejaVu Serif"
"""Verovio sets text in "Times, serif"; resvg finds neither where only DejaVu is installed
and would then drop part names, lyrics and tempo words, so serif is mapped to this."""

_SVG_NS = "{http://www.w3.org/2000/svg}"
_G = _SVG_NS + "g"
_PATH = _SVG_NS + "path"
_RECT = _SVG_NS + "rect"
_LINE_PATH_RE = re.compile(r"M\s*(-?[\d.]+)[ ,](-?[\d.]+)\s*L\s*(-?[\d.]+)[ ,](-?[\d.]+)\s*$")
_TRANSLATE_RE = re.compile(r"translate\(\s*(-?[\d.]+)[ ,]+(-?[\d.]+)\s*\)")
_SMUFL_TSPAN_RE = re.compile(r'<tspan (font-family="(?:' + "|".join(FONTS) + r')")')


class EngraveError(Exception):
    """Verovio could not load the music or its SVG lacks the geometry we rely on."""


class Box(NamedTuple):
    """An axis-aligned box in pixels: left, top, right, bottom (right/bottom exclusive)."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def shifted(self, dx: float, dy: float) -> Box:
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)

    def union(self, other: Box) -> Box:
        return Box(
            min(self.x0, other.x0),
            min(self.y0, other.y0),
            max(self.x1, other.x1),
            max(self.y1, other.y1),
        )


def _union_all(boxes: Sequence[Box]) -> Box:
    return Box(
        min(b.x0 for b in boxes),
        min(b.y0 for b in boxes),
        max(b.x1 for b in boxes),
        max(b.y1 for b in boxes),
    )


@dataclass(frozen=True)
class EngraveStyle:
    """One engraving style; every field but ``round_breves`` maps onto a Verovio toolkit option.

    Sizes: ``unit`` is Verovio's half staff space in its own units, so it sets how large the
    staves are relative to ``page_width`` (how much music fits in a system); ``scale`` then
    sets the raster resolution, a staff space being ``2 * unit * scale / 100`` pixels.
    """

    font: str = "Leipzig"
    scale: int = 70
    unit: float = 9.0
    page_width: int = 2100
    page_height: int = 2970
    spacing_linear: float = 0.25
    spacing_non_linear: float = 0.6
    spacing_staff: int = 12
    spacing_system: int = 4
    staff_line_width: float = 0.15
    stem_width: float = 0.2
    bar_line_width: float = 0.3
    thick_barline_thickness: float = 1.0
    ledger_line_thickness: float = 0.25
    beam_max_slope: int = 10
    beam_french_style: bool = False
    grace_factor: float = 0.75
    use_brace_glyph: bool = False
    even_note_spacing: bool = False
    lyric_size: float = 4.5
    round_breves: bool = False
    """Breves as a whole-note head between vertical strokes (SMuFL noteheadDoubleWhole, as
    LilyPond, MuseScore and most modern editions print them) rather than Verovio's square
    breve (noteheadDoubleWholeSquare)."""

    def __post_init__(self) -> None:
        if self.font not in FONTS:
            raise ValueError(f"font {self.font!r} is not one of {', '.join(FONTS)}")
        if not 1 <= self.scale <= 1000:
            raise ValueError(f"scale {self.scale} is outside 1..1000")
        if not 4.5 <= self.unit <= 12.0:
            raise ValueError(f"unit {self.unit} is outside Verovio's 4.5..12")
        if not 100 <= self.page_width <= 100000 or not 100 <= self.page_height <= 60000:
            raise ValueError(f"page size {self.page_width}x{self.page_height} is out of range")

    @property
    def staff_space_px(self) -> float:
        """Distance between two staff lines in raster pixels."""
        return 2.0 * self.unit * self.scale / 100.0

    def verovio_options(self) -> dict[str, object]:
        return {
            "font": self.font,
            "scale": self.scale,
            "unit": self.unit,
            "pageWidth": self.page_width,
            "pageHeight": self.page_height,
            "breaks": "auto",
            "adjustPageHeight": True,
            "header": "none",
            "footer": "none",
            # Keep every staff in every system, so staff crops = systems x staves.
            "condense": "none",
            "svgBoundingBoxes": True,
            "svgAdditionalAttribute": ["measure@n", "staff@n"],
            "smuflTextFont": "none",
            "xmlIdSeed": 1,
            "spacingLinear": self.spacing_linear,
            "spacingNonLinear": self.spacing_non_linear,
            "spacingStaff": self.spacing_staff,
            "spacingSystem": self.spacing_system,
            "staffLineWidth": self.staff_line_width,
            "stemWidth": self.stem_width,
            "barLineWidth": self.bar_line_width,
            "thickBarlineThickness": self.thick_barline_thickness,
            "ledgerLineThickness": self.ledger_line_thickness,
            "beamMaxSlope": self.beam_max_slope,
            "beamFrenchStyle": self.beam_french_style,
            "graceFactor": self.grace_factor,
            "useBraceGlyph": self.use_brace_glyph,
            "evenNoteSpacing": self.even_note_spacing,
            "lyricSize": self.lyric_size,
        }


def sample_style(
    rng: np.random.Generator, staff_space_px: tuple[float, float] = (11.0, 17.0)
) -> EngraveStyle:
    """A random plausible style. The raster staff space is drawn from ``staff_space_px``
    (11-17 px is a 1.7 mm staff space scanned at about 165-255 dpi); degradation can lower
    the resolution further."""
    unit = float(rng.uniform(6.5, 10.5))
    # Page width in staff spaces decides how many measures fit a system: 85-150 spaces
    # (an A4 page at Verovio's defaults is about 117).
    page_width = int(round(2.0 * unit * rng.uniform(85.0, 150.0)))
    target_space = float(rng.uniform(*staff_space_px))
    return EngraveStyle(
        font=str(rng.choice(FONTS)),
        scale=max(1, int(round(target_space * 100.0 / (2.0 * unit)))),
        unit=round(unit, 2),
        page_width=page_width,
        page_height=int(round(page_width * rng.uniform(1.25, 1.45))),
        spacing_linear=round(float(rng.uniform(0.15, 0.35)), 3),
        spacing_non_linear=round(float(rng.uniform(0.5, 0.7)), 3),
        spacing_staff=int(rng.integers(8, 19)),
        spacing_system=int(rng.integers(4, 17)),
        staff_line_width=round(float(rng.uniform(0.1, 0.22)), 3),
        stem_width=round(float(rng.uniform(0.15, 0.3)), 3),
        bar_line_width=round(float(rng.uniform(0.2, 0.45)), 3),
        thick_barline_thickness=round(float(rng.uniform(0.7, 1.3)), 3),
        ledger_line_thickness=round(float(rng.uniform(0.18, 0.32)), 3),
        beam_max_slope=int(rng.integers(4, 15)),
        beam_french_style=bool(rng.random() < 0.05),
        grace_factor=round(float(rng.uniform(0.6, 0.8)), 3),
        use_brace_glyph=bool(rng.random() < 0.5),
        even_note_spacing=bool(rng.random() < 0.03),
        lyric_size=round(float(rng.uniform(3.5, 5.5)), 2),
        round_breves=bool(rng.random() < 0.5),  # drawn last: earlier fields keep their draws
    )


@dataclass(frozen=True)
class MeasureBox:
    """One measure of one system.

    ``index`` counts measures in document order across the whole piece, from 0 (a pickup
    is measure 0); ``number`` is the MusicXML measure number that Verovio keeps as MEI @n.
    ``box`` spans the measure's staff lines in x (its closing barline included; the first
    measure of a system also holds the clef, key and time signature) and runs from the
    top line of the first staff to the bottom line of the last staff.
    """

    index: int
    number: str
    box: Box


@dataclass(frozen=True)
class EngravedSystem:
    """``box``: the staff lines of all staves. ``staff_boxes``: each staff's lines, the full
    system width. ``staff_content_boxes``: everything drawn that belongs to each staff (its
    lines, notes, ledger lines, lyrics, dynamics, part name). ``content_box``: everything
    drawn for the system, brace and spanning barlines included."""

    box: Box
    staff_boxes: tuple[Box, ...]
    staff_content_boxes: tuple[Box, ...]
    content_box: Box
    staff_numbers: tuple[int, ...]
    """Each staff's MEI @n (1-based across the score), top to bottom."""
    measures: tuple[MeasureBox, ...]
    staff_space: float
    """Distance between neighbouring staff lines, in pixels."""


@dataclass(frozen=True, eq=False)
class EngravedPage:
    """One rendered page: grayscale ``image`` (H, W) uint8, 255 = paper, and its systems
    from top to bottom."""

    image: np.ndarray
    systems: tuple[EngravedSystem, ...]
    page_index: int
    style: EngraveStyle


@dataclass(frozen=True, eq=False)
class Crop:
    """A system or single-staff cut of a page.

    ``measure_boxes`` are in crop pixels; their y-extent is the staff lines of the staves in
    the crop. ``staff_range`` is [first, stop) of the system's staves (0-based).
    ``origin`` is the crop's top-left corner in page pixels."""

    image: np.ndarray
    measure_indices: tuple[int, ...]
    measure_boxes: tuple[Box, ...]
    staff_range: tuple[int, int]
    page_index: int
    system_index: int
    origin: tuple[int, int]
    staff_space: float


Rasterizer = Literal["mupdf", "resvg"]


def engrave(
    musicxml: str, style: EngraveStyle, rasterizer: Rasterizer = "mupdf"
) -> list[EngravedPage]:
    """Engraves ``musicxml`` in ``style``; one EngravedPage per page, measures indexed in
    document order across all pages. See ``rasterize`` for the choice of rasterizer."""
    toolkit = _toolkit()
    toolkit.setOptions(style.verovio_options())
    if not toolkit.loadData(musicxml):
        raise EngraveError("Verovio could not read the MusicXML")
    if style.round_breves and "breve" in musicxml:
        _round_breves(toolkit)
    pages: list[EngravedPage] = []
    next_index = 0
    for page_number in range(1, toolkit.getPageCount() + 1):
        svg = toolkit.renderToSVG(page_number)
        image = rasterize(svg, rasterizer)
        systems = _parse_systems(svg, image.shape, next_index)
        next_index += sum(len(s.measures) for s in systems)
        pages.append(EngravedPage(image, systems, page_number - 1, style))
    return pages


_local = threading.local()

_BREVE_NOTE = re.compile(r'(<note\b[^>]*\bdur="breve")')


def _round_breves(toolkit: verovio.toolkit) -> None:
    """Reloads the toolkit's score with every breve note drawn round (MEI
    ``@head.mod="fences"``); Verovio's MusicXML import has no way to ask for it."""
    mei = _BREVE_NOTE.sub(r'\1 head.mod="fences"', toolkit.getMEI())
    if not toolkit.loadData(mei):
        raise EngraveError("Verovio could not read its own MEI back")


def _toolkit() -> verovio.toolkit:
    """One Verovio toolkit per thread, reused: making one costs 6 ms, and every engraving
    sets all of its options (the id seed too), so a reused one draws the same SVG."""
    toolkit = getattr(_local, "toolkit", None)
    if toolkit is None:
        # Verovio warns on stderr about every beam it had to flip; bulk generation needs
        # none of that. The log level is process-wide in Verovio.
        verovio.enableLog(verovio.LOG_ERROR)
        toolkit = _local.toolkit = verovio.toolkit()
    return toolkit


def rasterize(svg: str, rasterizer: Rasterizer = "mupdf") -> np.ndarray:
    """A Verovio SVG page as a grayscale uint8 image on white paper, the size the SVG
    declares.

    "mupdf" (PyMuPDF, already an engine dependency for reading PDFs) is about six times
    faster than "resvg" on the same page and draws the same music; it sets text in its
    built-in Times, resvg in ``TEXT_SERIF_FAMILY``. Both are kept: resvg is what the studio
    uses, and a test holds the two to the same pixels.
    """
    svg = strip_bounding_boxes(svg)
    if rasterizer == "mupdf":
        return _rasterize_mupdf(svg)
    if rasterizer != "resvg":
        raise ValueError(f"unknown rasterizer {rasterizer!r}")
    # SMuFL text is made transparent rather than removed: resvg then keeps the text's
    # position (an emptied first <tspan> makes it draw the text at the page's corner).
    svg = _SMUFL_TSPAN_RE.sub(r'<tspan fill-opacity="0" \1', svg)
    png = resvg_py.svg_to_bytes(
        svg_string=svg, background="#ffffff", serif_family=TEXT_SERIF_FAMILY
    )
    image = cv2.imdecode(np.frombuffer(bytes(png), np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise EngraveError("resvg returned no decodable image")
    return image


def _rasterize_mupdf(svg: str) -> np.ndarray:
    # MuPDF reads neither Verovio's nested <svg> nor its <style>: the page is flattened first.
    try:
        flat = flatten_svg(svg)
    except PdfError as e:
        raise EngraveError(str(e)) from e
    # MuPDF's own API: pymupdf.open() would also convert every SVG to a PDF first (its
    # check for broken files), a third of the time.
    data = flat.encode()
    try:
        stream = mupdf.fz_open_memory(mupdf.python_buffer_data(data), len(data))
        doc = mupdf.fz_open_document_with_stream("svg", stream)
        page = mupdf.fz_load_page(doc, 0)
        identity = mupdf.FzMatrix(1, 0, 0, 1, 0, 0)
        pix = mupdf.fz_new_pixmap_from_page(page, identity, mupdf.fz_device_gray(), 0)
    except Exception as e:  # MuPDF raises its own error types
        raise EngraveError(f"MuPDF could not render the page: {e}") from e
    samples = np.frombuffer(mupdf.fz_pixmap_samples_memoryview(pix), np.uint8)
    return samples.reshape(pix.h(), pix.stride())[:, : pix.w()].copy()


def _classes(el: ET.Element) -> list[str]:
    return el.get("class", "").split()


def _px(value: str) -> float:
    return float(value.removesuffix("px"))


def _find_systems(
    el: ET.Element, tx: float, ty: float
) -> Iterator[tuple[ET.Element, float, float]]:
    """Yields each ``g.system`` with the translation its ancestors apply."""
    for child in el:
        if child.tag != _G:
            continue
        cx, cy = tx, ty
        transform = child.get("transform")
        if transform:
            m = _TRANSLATE_RE.fullmatch(transform.strip())
            if m is None:
                raise EngraveError(f"unexpected transform {transform!r} above a system")
            cx, cy = tx + float(m.group(1)), ty + float(m.group(2))
        if "system" in _classes(child):
            yield child, cx, cy
        else:
            yield from _find_systems(child, cx, cy)


def _rects(el: ET.Element) -> Iterator[Box]:
    """Non-empty bounding-box rectangles in ``el``'s subtree, in SVG units."""
    for g in el.iter(_G):
        # Verovio names every bounding-box group "bbox-<element id>".
        if not g.get("id", "").startswith("bbox-"):
            continue
        r = g.find(_RECT)
        if r is None:
            continue
        w, h = float(r.get("width", 0)), float(r.get("height", 0))
        if w > 0 and h > 0:
            x, y = float(r.get("x", 0)), float(r.get("y", 0))
            yield Box(x, y, x + w, y + h)


def _bracket_boxes(ending: ET.Element) -> Iterator[Box]:
    """The lines of a volta bracket segment (``ending`` group), each as a box in SVG units,
    and the baseline of its number, which hangs inside the hook."""
    for p in ending.iter(_PATH):
        m = _LINE_PATH_RE.match(p.get("d", ""))
        if m is None:
            continue
        x0, y0, x1, y1 = (float(v) for v in m.groups())
        half = float(p.get("stroke-width", 0)) / 2
        yield Box(min(x0, x1) - half, min(y0, y1) - half, max(x0, x1) + half, max(y0, y1) + half)
    for t in ending.iter(_SVG_NS + "text"):
        x, y = float(t.get("x", 0)), float(t.get("y", 0))
        yield Box(x, y - 1, x + 1, y)


def _staff_lines(staff: ET.Element) -> tuple[float, float, float, float, float, int] | None:
    """(x0, x1, top y, bottom y, stroke width, line count) of a staff's lines in one
    measure."""
    xs: list[float] = []
    ys: list[float] = []
    stroke = 0.0
    for p in staff:
        if p.tag != _PATH:
            continue
        m = _LINE_PATH_RE.match(p.get("d", ""))
        if m is None:
            continue
        x0, y0, x1, y1 = (float(v) for v in m.groups())
        if y0 != y1:
            continue
        xs += (x0, x1)
        ys.append(y0)
        stroke = max(stroke, float(p.get("stroke-width", 0)))
    if not ys:
        return None
    return min(xs), max(xs), min(ys), max(ys), stroke, len(ys)


@dataclass
class _RawSystem:
    """A system as parsed, in raster pixels, before loose elements find their staff."""

    line_boxes: dict[int, Box] = field(default_factory=dict)  # staff @n -> its lines
    content: dict[int, list[Box]] = field(default_factory=dict)  # staff @n -> drawn boxes
    loose: list[Box] = field(default_factory=list)  # drawn outside any staff group
    spanning: list[Box] = field(default_factory=list)  # over several staves
    brackets: list[Box] = field(default_factory=list)  # volta brackets, over a staff
    measures: list[tuple[str, float, float]] = field(default_factory=list)  # @n, x0, x1
    spaces: list[float] = field(default_factory=list)  # line distances seen, in pixels


def _parse_systems(
    svg: str, image_shape: tuple[int, ...], first_index: int
) -> tuple[EngravedSystem, ...]:
    root = ET.fromstring(svg)
    inner = next((c for c in root if "definition-scale" in _classes(c)), None)
    if inner is None:
        raise EngraveError("SVG has no definition-scale viewport")
    vb = [float(v) for v in inner.get("viewBox", "").split()]
    width, height = _px(root.get("width", "0")), _px(root.get("height", "0"))
    if len(vb) != 4 or width <= 0 or height <= 0:
        raise EngraveError("SVG has no usable size or viewBox")
    if abs(image_shape[1] - width) > 1 or abs(image_shape[0] - height) > 1:
        raise EngraveError(f"raster {image_shape} does not match SVG size {width}x{height}")
    # resvg fits the viewBox into the viewport uniformly and centred (xMidYMid meet).
    s = min(width / vb[2], height / vb[3])
    ox = (width - vb[2] * s) / 2.0 - vb[0] * s
    oy = (height - vb[3] * s) / 2.0 - vb[1] * s

    raws = []
    for system_el, tx, ty in _find_systems(inner, 0.0, 0.0):

        def to_px(b: Box, tx: float = tx, ty: float = ty) -> Box:
            return Box(
                (b.x0 + tx) * s + ox,
                (b.y0 + ty) * s + oy,
                (b.x1 + tx) * s + ox,
                (b.y1 + ty) * s + oy,
            )

        raw = _parse_system(system_el, to_px)
        if raw.measures:
            raws.append(raw)

    # An element drawn outside a staff group (part name, tie, slur, dynamic, tempo) belongs
    # to the staff it sits nearest to on the page: a tie that crosses a line break is kept
    # in the first system's group but half of it is drawn beside the next system. Elements
    # over several staves of their system (barlines, brace) only join that system.
    staves = [(raw, n, b) for raw in raws for n, b in raw.line_boxes.items()]
    for raw in raws:
        for r in raw.loose:
            covered = sum(r.y0 < b.y1 and r.y1 > b.y0 for b in raw.line_boxes.values())
            if covered > 1:
                raw.spanning.append(r)
                continue
            centre = (r.y0 + r.y1) / 2
            owner, n, _ = min(staves, key=lambda t: abs((t[2].y0 + t[2].y1) / 2 - centre))
            owner.content[n].append(r)
        # A volta bracket is drawn over the top staff of its system, which may be the next
        # system's when the bracket runs on past a line break; between systems set close
        # together it can sit nearer the staff above, so it goes to the first staff below.
        for r in raw.brackets:
            below = [t for t in staves if (t[2].y0 + t[2].y1) / 2 > r.y1]
            owner, n, _ = min(below or staves, key=lambda t: abs(t[2].y0 + t[2].y1 - 2 * r.y1))
            owner.content[n].append(r)

    systems = []
    index = first_index
    for raw in raws:
        numbers = sorted(raw.line_boxes, key=lambda n: raw.line_boxes[n].y0)
        staff_boxes = tuple(raw.line_boxes[n] for n in numbers)
        content_boxes = tuple(_union_all([raw.line_boxes[n], *raw.content[n]]) for n in numbers)
        system_box = _union_all(staff_boxes)
        measures = tuple(
            MeasureBox(index + k, number, Box(x0, system_box.y0, x1, system_box.y1))
            for k, (number, x0, x1) in enumerate(raw.measures)
        )
        index += len(measures)
        systems.append(
            EngravedSystem(
                box=system_box,
                staff_boxes=staff_boxes,
                staff_content_boxes=content_boxes,
                content_box=_union_all([*content_boxes, *raw.spanning]),
                staff_numbers=tuple(numbers),
                measures=measures,
                staff_space=float(np.median(raw.spaces)) if raw.spaces else 0.0,
            )
        )
    return tuple(systems)


def _parse_system(system_el: ET.Element, to_px: Callable[[Box], Box]) -> _RawSystem:
    raw = _RawSystem()
    for child in system_el:
        if child.tag != _G or "bounding-box" in _classes(child):
            continue
        if "ending" in _classes(child):
            raw.brackets.extend(to_px(r) for r in _bracket_boxes(child))
            continue
        if "measure" not in _classes(child):
            raw.loose.extend(to_px(r) for r in _rects(child))
            continue
        mx0, mx1 = math.inf, -math.inf
        for part in child:
            if part.tag != _G or "bounding-box" in _classes(part):
                continue
            if "staff" not in _classes(part):
                raw.loose.extend(to_px(r) for r in _rects(part))
                continue
            lines = _staff_lines(part)
            if lines is None:
                continue
            n = int(part.get("data-n", len(raw.line_boxes) + 1))
            x0, x1, top, bottom, stroke, count = lines
            mx0, mx1 = min(mx0, x0), max(mx1, x1)
            if count > 1:
                raw.spaces.append(to_px(Box(0.0, top, 0.0, bottom)).height / (count - 1))
            line_box = to_px(Box(x0, top - stroke / 2, x1, bottom + stroke / 2))
            old = raw.line_boxes.get(n)
            raw.line_boxes[n] = line_box if old is None else old.union(line_box)
            raw.content.setdefault(n, []).extend(to_px(r) for r in _rects(part))
        if mx0 > mx1:
            raise EngraveError(f"measure {child.get('id')} has no staff lines")
        span = to_px(Box(mx0, 0.0, mx1, 0.0))
        raw.measures.append((child.get("data-n", ""), span.x0, span.x1))
    return raw


def system_crops(page: EngravedPage, margin_spaces: float = 1.5) -> list[Crop]:
    """One crop per system: all its staves, with ``margin_spaces`` staff spaces of paper
    around the staff lines, widened to hold everything the system draws (high notes, lyrics,
    part names) but cut half-way to a neighbouring system where its own content allows."""
    return [
        _band_crop(page, i, 0, len(system.staff_boxes), margin_spaces)
        for i, system in enumerate(page.systems)
    ]


def staff_crops(page: EngravedPage, margin_spaces: float = 1.5) -> list[Crop]:
    """One crop per staff of every system, in reading order (system by system, top staff
    first). The margin stops half-way to the neighbouring staff unless this staff's own
    notes reach further; a neighbour's notes appear only where they reach into that band,
    and a neighbour's staff lines never do."""
    return [
        _band_crop(page, i, k, k + 1, margin_spaces)
        for i, system in enumerate(page.systems)
        for k in range(len(system.staff_boxes))
    ]


def _band_crop(
    page: EngravedPage, system_index: int, first: int, stop: int, margin_spaces: float
) -> Crop:
    system = page.systems[system_index]
    ss = system.staff_space
    margin = margin_spaces * ss
    pad = 0.5 * ss
    lines = _union_all(system.staff_boxes[first:stop])
    if stop - first == len(system.staff_boxes):
        content = system.content_box
    else:
        content = _union_all(system.staff_content_boxes[first:stop])

    all_staves = [b for s in page.systems for b in s.staff_boxes]
    above = [b.y1 for b in all_staves if b.y1 <= lines.y0]
    below = [b.y0 for b in all_staves if b.y0 >= lines.y1]
    top = lines.y0 - margin
    if above:
        top = max(top, (max(above) + lines.y0) / 2)
    bottom = lines.y1 + margin
    if below:
        bottom = min(bottom, (min(below) + lines.y1) / 2)
    top = min(top, content.y0 - pad)
    bottom = max(bottom, content.y1 + pad)
    left = min(lines.x0, content.x0) - margin
    right = max(lines.x1, content.x1) + margin

    h, w = page.image.shape
    cx0, cy0 = max(0, math.floor(left)), max(0, math.floor(top))
    cx1, cy1 = min(w, math.ceil(right)), min(h, math.ceil(bottom))
    boxes = tuple(
        Box(m.box.x0 - cx0, lines.y0 - cy0, m.box.x1 - cx0, lines.y1 - cy0) for m in system.measures
    )
    return Crop(
        image=page.image[cy0:cy1, cx0:cx1].copy(),
        measure_indices=tuple(m.index for m in system.measures),
        measure_boxes=boxes,
        staff_range=(first, stop),
        page_index=page.page_index,
        system_index=system_index,
        origin=(cx0, cy0),
        staff_space=ss,
    )
