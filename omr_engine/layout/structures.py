"""The result of page-layout analysis: staves, systems, measures, and the page's skew.

All coordinates are float pixels in the *deskewed* page: the input image rotated about its
centre by ``-skew_degrees`` with its size kept (see :meth:`PageLayout.to_source` to map a
point back onto the scan as given). ``y`` grows downwards, as in the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Box", "NoStavesError", "PageLayout", "Staff", "System"]

Box = tuple[float, float, float, float]
"""(x0, y0, x1, y1) in page pixels, x0 < x1 and y0 < y1."""


class NoStavesError(Exception):
    """The page holds no staff: a title page, a page of text, a blank page."""


@dataclass(frozen=True)
class Staff:
    """One five-line staff.

    ``line_ys`` are the centres of the five lines, top to bottom; ``top`` and ``bottom`` are
    the first and last of them. ``x0``/``x1`` are where the lines start and end. ``space``
    is the distance between adjacent line centres (one staff space). ``lines_lost`` marks
    a staff whose lines the scan lost, found from what they left on the stems
    (``lost_lines.py``); crops draw its lines back in.
    """

    top: float
    bottom: float
    line_ys: tuple[float, ...]
    x0: float
    x1: float
    space: float
    lines_lost: bool = False

    @property
    def box(self) -> Box:
        """The staff lines' extent."""
        return (self.x0, self.top, self.x1, self.bottom)


@dataclass(frozen=True)
class System:
    """Staves read together (joined by a brace, bracket or barline), top to bottom.

    ``box`` spans the staff lines of all staves. ``barlines_x`` are the x-centres of the
    barlines found right of the clef area, the closing one included (a double, final or
    repeat barline counts once). ``measure_boxes`` tile ``box`` in x: the first starts at
    the system's left edge (clef, key and time signature included), each ends at a barline,
    the last ends at the right edge; their y-extent is that of ``box``.
    """

    staves: list[Staff]
    box: Box
    barlines_x: list[float]
    measure_boxes: list[Box]

    @property
    def staff_space(self) -> float:
        """Mean staff space of the system's staves."""
        return float(np.mean([s.space for s in self.staves]))


@dataclass(frozen=True)
class PageLayout:
    """Systems top to bottom, the skew that was removed, and the page's typical staff space.

    ``image_shape`` is the (height, width) of the analysed image; coordinates refer to
    that image after rotation by ``-skew_degrees`` about its centre. ``skew_degrees`` is
    positive when the scan's staff lines rise to the right (counter-clockwise as displayed).
    ``staff_space`` (the median over staves) and ``line_thickness`` are in pixels;
    ``staves`` lists every staff of every system, top to bottom.
    """

    systems: list[System]
    skew_degrees: float
    staff_space: float
    line_thickness: float = 0.0
    image_shape: tuple[int, int] = (0, 0)
    staves: list[Staff] = field(default_factory=list)

    @property
    def has_music(self) -> bool:
        """Whether any staff was found (analyze_page raises NoStavesError otherwise)."""
        return bool(self.systems)

    def deskew_matrix(self) -> np.ndarray:
        """2x3 affine matrix taking source (scan) coordinates to layout coordinates."""
        return rotation_matrix(self.image_shape, -self.skew_degrees)

    def to_source(self, x: float, y: float) -> tuple[float, float]:
        """Maps a point of the layout (deskewed page) onto the image as given."""
        m = rotation_matrix(self.image_shape, self.skew_degrees)
        return (
            float(m[0, 0] * x + m[0, 1] * y + m[0, 2]),
            float(m[1, 0] * x + m[1, 1] * y + m[1, 2]),
        )

    def box_to_source(self, box: Box) -> list[tuple[float, float]]:
        """The four corners of a layout box on the image as given (clockwise from top left);
        a rotated rectangle when the page was skewed."""
        x0, y0, x1, y1 = box
        return [self.to_source(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]


def rotation_matrix(shape: tuple[int, ...], degrees: float) -> np.ndarray:
    """2x3 affine matrix rotating an image of ``shape`` about its centre by ``degrees``,
    counter-clockwise as displayed (OpenCV's convention), the size kept."""
    h, w = shape[:2]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    # Same as cv2.getRotationMatrix2D((cx, cy), degrees, 1.0), without the float32 detour.
    return np.array(
        [[c, s, (1 - c) * cx - s * cy], [-s, c, s * cx + (1 - c) * cy]], dtype=np.float64
    )
