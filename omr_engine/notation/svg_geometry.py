"""Where measures and notes are on a Verovio page, read from the SVG: the studio's
hit-testing and highlighting.

The MEI of `mei_writer` gives every measure its Score id and every note and rest an
`event_id`; Verovio keeps them as element ids, and its `svgBoundingBoxes` option adds a box
to every element. Boxes are given in the pixels of the page rasterized at the size the SVG
declares (`omr_engine.synth.engrave.rasterize`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .mei_writer import parse_event_id

#: A box in pixels: left, top, right, bottom.
Box = tuple[float, float, float, float]

_EVENT_CLASSES = {"note", "chord", "rest", "mRest", "multiRest"}


@dataclass
class SvgGeometry:
    """Where things are on a rasterized Verovio page, in raster pixels."""

    width: float
    height: float
    measures: dict[str, Box] = field(default_factory=dict)
    events: dict[str, Box] = field(default_factory=dict)

    def measure_at(self, x: float, y: float) -> str | None:
        """The id of the measure whose box holds the point, or None."""
        for mid, (x0, y0, x1, y1) in self.measures.items():
            if x0 <= x <= x1 and y0 <= y <= y1:
                return mid
        return None

    def event_at(self, x: float, y: float, pad: float = 3.0) -> str | None:
        """The id of the note or rest nearest the point among those whose box (grown by
        `pad` pixels) holds it, or None."""
        best, best_d = None, float("inf")
        for eid, (x0, y0, x1, y1) in self.events.items():
            if x0 - pad <= x <= x1 + pad and y0 - pad <= y <= y1 + pad:
                d = abs((x0 + x1) / 2 - x) + abs((y0 + y1) / 2 - y)
                if d < best_d:
                    best, best_d = eid, d
        return best


_OUTER_SIZE_RE = re.compile(r'<svg[^>]*?width="([\d.]+)px" height="([\d.]+)px"')
_VIEWBOX_RE = re.compile(r'<svg class="definition-scale"[^>]*viewBox="([^"]+)"')
_MARGIN_RE = re.compile(r'class="page-margin" transform="translate\((-?[\d.]+),\s*(-?[\d.]+)\)"')
# In document order: a measure's group opening, or an element's bounding box with its rect.
_GEOMETRY_RE = re.compile(
    r'<g id="([^"]+)" class="measure"'
    r'|<g id="bbox-([^"]+)" class="(\w+) bounding-box">\s*'
    r'<rect x="(-?[\d.]+)" y="(-?[\d.]+)" height="([\d.]+)" width="([\d.]+)"'
)


def _union(a: Box | None, b: Box) -> Box:
    if a is None:
        return b
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def svg_geometry(svg: str) -> SvgGeometry:
    """Measure boxes (the measure's staves) and note/rest boxes from an SVG rendered with
    Verovio's `svgBoundingBoxes`, in the pixels of `rasterize(svg)`.

    A regular-expression scan rather than an XML parse: a line's SVG is 100-200 kB and this
    runs on every edit (5x faster than ElementTree here). Verovio writes every element as
    `<g id=... class=...>` followed at once by its `bbox-` group, in document order, so a
    staff's box belongs to the last measure opened before it."""
    size = _OUTER_SIZE_RE.search(svg)
    if size is None:
        return SvgGeometry(0.0, 0.0)
    width, height = float(size.group(1)), float(size.group(2))
    geometry = SvgGeometry(width, height)
    vb = _VIEWBOX_RE.search(svg)
    if vb is None:
        return geometry
    _, _, vw, vh = (float(v) for v in vb.group(1).split())
    sx = width / vw if vw else 1.0
    sy = height / vh if vh else 1.0
    margin = _MARGIN_RE.search(svg)
    dx, dy = (float(margin.group(1)), float(margin.group(2))) if margin else (0.0, 0.0)
    measure: str | None = None
    boxes: dict[str, Box | None] = {}
    for m in _GEOMETRY_RE.finditer(svg):
        if m.group(1) is not None:
            measure = m.group(1)
            boxes.setdefault(measure, None)
            continue
        element, kind = m.group(2), m.group(3)
        w, h = float(m.group(7)), float(m.group(6))
        if w <= 0 or h <= 0:
            continue
        x, y = float(m.group(4)), float(m.group(5))
        box = ((x + dx) * sx, (y + dy) * sy, (x + w + dx) * sx, (y + h + dy) * sy)
        if kind == "staff" and measure is not None:
            boxes[measure] = _union(boxes[measure], box)
        elif kind in _EVENT_CLASSES and parse_event_id(element):
            geometry.events[element] = box
    geometry.measures = {k: v for k, v in boxes.items() if v is not None}
    return geometry
