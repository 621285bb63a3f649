"""Cutting systems and staves out of a page for the recognition model.

A crop is taken from the image exactly as it was given to :func:`analyze_page`: when the
page was skewed, the rotation and the cut are one affine warp of just the crop's pixels, so
the page is never rotated as a whole. The margin above and below the staff lines is given
in staff spaces and, by default, stops half-way to the neighbouring system (or staff), as
in the synthetic training crops, so a crop shows little of its neighbours' notes.

A staff crop may also reach further (``reach_spaces``) to take in the staff's own ink that
lies past the margin: notes high on ledger lines, and the beams and slurs over them. The
training crops never cut a staff's ink (``synth.dataset.reframe_vertically`` cuts only
paper), so a crop that cuts a note off three and a half spaces above the staff shows the
model what it never saw in training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .structures import Box, PageLayout, Staff, System, rotation_matrix

__all__ = [
    "LayoutCrop",
    "crop_box",
    "crop_staff",
    "crop_system",
    "staff_crop",
    "system_crop",
]

DEFAULT_MARGIN_SPACES = 4.0
DEFAULT_SIDE_MARGIN_SPACES = 1.5
_LINE_WIDTH = 0.1  # staff spaces: a drawn-in staff line's thickness
_REACH_GAP = 1.2  # staff spaces: gaps up to this between pieces of ink (ledger lines) are bridged
_REACH_NEAR = 0.5  # staff spaces: the reach stops this far short of another staff's lines
_THROUGH = 0.75  # share of the room above or below a staff that a barline's column inks
_CROSSING = 0.5  # share of the other staff's height it inks there (a worn barline: 0.6-0.75)
_VOLTA_LENGTH = 3.0  # staff spaces: the shortest line taken for a volta bracket
_VOLTA_HOOK = 1.2  # staff spaces: how far its left hook at least runs down (a tuplet's: 0.6-0.8)
_VOLTA_HIGHEST = 7.0  # staff spaces over the staff's top line: the furthest it is looked for


@dataclass(frozen=True, eq=False)
class LayoutCrop:
    """A system or one staff of it, cut out (and optionally resized).

    ``box`` is the cut region in layout (deskewed page) pixels; ``scale`` is crop pixels per
    page pixel (1.0 unless a height was asked for). ``staff_space``, ``line_ys`` (one tuple
    of five per staff) and ``measure_boxes`` are in crop pixels.
    """

    image: np.ndarray
    box: Box
    scale: float
    staff_space: float
    line_ys: tuple[tuple[float, ...], ...]
    measure_boxes: tuple[Box, ...]
    system_index: int
    staff_indices: tuple[int, ...]

    def to_page(self, x: float, y: float) -> tuple[float, float]:
        """A crop pixel's position in the layout (deskewed page)."""
        return (self.box[0] + x / self.scale, self.box[1] + y / self.scale)

    def scale_for_height(self, height: int) -> float:
        """The factor that resizes this crop to ``height`` pixels."""
        return height / self.image.shape[0]


def crop_box(
    layout: PageLayout,
    system_index: int,
    staff_index: int | None = None,
    margin_spaces: float = DEFAULT_MARGIN_SPACES,
    side_margin_spaces: float = DEFAULT_SIDE_MARGIN_SPACES,
    clip_to_neighbours: bool = True,
) -> Box:
    """The integer region (x0, y0, x1, y1), end exclusive, of a system or one of its staves
    in layout pixels, margins included and clipped to the page."""
    system = _system(layout, system_index)
    staves = system.staves if staff_index is None else [_staff(system.staves, staff_index)]
    space = float(np.mean([s.space for s in staves]))
    top, bottom = staves[0].top, staves[-1].bottom
    y0, y1 = top - margin_spaces * space, bottom + margin_spaces * space
    if clip_to_neighbours:
        above, below = _neighbours(layout, system_index, staff_index)
        if above is not None:
            y0 = max(y0, (above + top) / 2)
        if below is not None:
            y1 = min(y1, (below + bottom) / 2)
    x0, _, x1, _ = system.box
    x0, x1 = x0 - side_margin_spaces * space, x1 + side_margin_spaces * space
    h, w = layout.image_shape
    return (
        float(max(0, math.floor(x0))),
        float(max(0, math.floor(y0))),
        float(min(w, math.ceil(x1) + 1)),
        float(min(h, math.ceil(y1) + 1)),
    )


def system_crop(
    image: np.ndarray,
    layout: PageLayout,
    system_index: int,
    margin_spaces: float = DEFAULT_MARGIN_SPACES,
    *,
    height: int | None = None,
    side_margin_spaces: float = DEFAULT_SIDE_MARGIN_SPACES,
    clip_to_neighbours: bool = True,
) -> LayoutCrop:
    """All staves of system ``system_index`` cut from ``image`` (the image that was
    analysed), resized to ``height`` pixels when given."""
    return _crop(
        image,
        layout,
        system_index,
        None,
        margin_spaces,
        height,
        side_margin_spaces,
        clip_to_neighbours,
    )


def staff_crop(
    image: np.ndarray,
    layout: PageLayout,
    system_index: int,
    staff_index: int,
    margin_spaces: float = DEFAULT_MARGIN_SPACES,
    *,
    height: int | None = None,
    side_margin_spaces: float = DEFAULT_SIDE_MARGIN_SPACES,
    clip_to_neighbours: bool = True,
    reach_spaces: float | None = None,
) -> LayoutCrop:
    """Staff ``staff_index`` (0 = top) of system ``system_index``; the margin stops
    half-way to the staves above and below unless ``clip_to_neighbours`` is False. With
    ``reach_spaces`` the crop grows past the margin, up to that many staff spaces (and
    half a space short of the next staff's lines: :func:`_reach_box`), to take in the
    ink that hangs together with the staff (:func:`_ink_reach`)."""
    return _crop(
        image,
        layout,
        system_index,
        staff_index,
        margin_spaces,
        height,
        side_margin_spaces,
        clip_to_neighbours,
        reach_spaces,
    )


def crop_system(
    image: np.ndarray,
    layout: PageLayout,
    system_index: int,
    margin_spaces: float = DEFAULT_MARGIN_SPACES,
) -> np.ndarray:
    """The pixels of :func:`system_crop`."""
    return system_crop(image, layout, system_index, margin_spaces).image


def crop_staff(
    image: np.ndarray,
    layout: PageLayout,
    system_index: int,
    staff_index: int,
    margin_spaces: float = DEFAULT_MARGIN_SPACES,
) -> np.ndarray:
    """The pixels of :func:`staff_crop`."""
    return staff_crop(image, layout, system_index, staff_index, margin_spaces).image


def _crop(
    image: np.ndarray,
    layout: PageLayout,
    system_index: int,
    staff_index: int | None,
    margin_spaces: float,
    height: int | None,
    side_margin_spaces: float,
    clip_to_neighbours: bool,
    reach_spaces: float | None = None,
) -> LayoutCrop:
    image = np.asarray(image)
    if image.shape[:2] != tuple(layout.image_shape):
        raise ValueError(
            f"image of shape {image.shape[:2]} is not the {tuple(layout.image_shape)} image "
            "that was analysed"
        )
    box = crop_box(
        layout, system_index, staff_index, margin_spaces, side_margin_spaces, clip_to_neighbours
    )
    if staff_index is not None and reach_spaces is not None and reach_spaces > margin_spaces:
        outer = _reach_box(
            layout, system_index, staff_index, reach_spaces, side_margin_spaces, clip_to_neighbours
        )
        pixels = _cut(image, layout, outer)
        staves = _system(layout, system_index).staves
        staff = _staff(staves, staff_index)
        line_ys = [y - outer[1] for y in staff.line_ys]
        above = staves[staff_index - 1] if staff_index > 0 else None
        below = staves[staff_index + 1] if staff_index + 1 < len(staves) else None
        joined = tuple(
            None if s is None else _crossing(image, layout, (outer[0], s.top, outer[2], s.bottom))
            for s in (above, below)
        )
        top, bottom = _ink_reach(
            pixels, line_ys, staff.space, (box[1] - outer[1], box[3] - outer[1]), joined
        )
        if staff_index == 0:  # engravers draw a volta bracket over a system's top staff
            bracket = _volta_bracket(pixels[: int(min(line_ys))], staff.space)
            top = min(top, bracket) if bracket is not None else top
        pixels = pixels[top:bottom]
        box = (outer[0], outer[1] + top, outer[2], outer[1] + bottom)
    else:
        pixels = _cut(image, layout, box)
    x0, y0 = int(box[0]), int(box[1])
    scale = 1.0
    if height is not None:
        if height < 1:
            raise ValueError(f"height must be positive, got {height}")
        scale = height / pixels.shape[0]
        width = max(1, round(pixels.shape[1] * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        pixels = cv2.resize(pixels, (width, height), interpolation=interp)
    system = layout.systems[system_index]
    if any(s.lines_lost for s in system.staves):
        pixels = _draw_lost_lines(pixels, system.staves, x0, y0, scale)
    staves = system.staves if staff_index is None else [system.staves[staff_index]]
    staff_indices = tuple(range(len(system.staves))) if staff_index is None else (staff_index,)
    ys = tuple(tuple((y - y0) * scale for y in s.line_ys) for s in staves)
    top, bottom = (staves[0].top - y0) * scale, (staves[-1].bottom - y0) * scale
    measures = tuple(
        ((a - x0) * scale, top, (b - x0) * scale, bottom) for a, _, b, _ in system.measure_boxes
    )
    return LayoutCrop(
        image=pixels,
        box=box,
        scale=scale,
        staff_space=float(np.mean([s.space for s in staves])) * scale,
        line_ys=ys,
        measure_boxes=measures,
        system_index=system_index,
        staff_indices=staff_indices,
    )


def _reach_box(
    layout: PageLayout,
    system_index: int,
    staff_index: int,
    reach_spaces: float,
    side_margin_spaces: float,
    clip_to_neighbours: bool,
) -> Box:
    """The room a staff crop may reach into: ``reach_spaces`` above and below the staff,
    and, with ``clip_to_neighbours``, up to ``_REACH_NEAR`` spaces short of the next
    staff's lines rather than half-way to them (a note on ledger lines between the staves
    of a grand staff may stand nearer the other staff)."""
    x0, y0, x1, y1 = crop_box(
        layout, system_index, staff_index, reach_spaces, side_margin_spaces, False
    )
    if clip_to_neighbours:
        near = _REACH_NEAR * _staff(_system(layout, system_index).staves, staff_index).space
        above, below = _neighbours(layout, system_index, staff_index)
        if above is not None:
            y0 = max(y0, float(math.floor(above + near)))
        if below is not None:
            y1 = min(y1, float(math.ceil(below - near) + 1))
    return (x0, y0, x1, y1)


def _neighbours(
    layout: PageLayout, system_index: int, staff_index: int | None
) -> tuple[float | None, float | None]:
    """The bottom of the nearest neighbour above a system (or one of its staves) and the
    top of the nearest below, None where there is none: other systems for a system, any
    other staff for a staff."""
    system = _system(layout, system_index)
    if staff_index is None:
        staves = system.staves
        others = [(s.box[1], s.box[3]) for i, s in enumerate(layout.systems) if i != system_index]
    else:
        staves = [_staff(system.staves, staff_index)]
        others = [(s.top, s.bottom) for s in _all_staves(layout) if s not in staves]
    above = [b for _, b in others if b < staves[0].top]
    below = [t for t, _ in others if t > staves[-1].bottom]
    return (max(above) if above else None, min(below) if below else None)


def _cut(image: np.ndarray, layout: PageLayout, box: Box) -> np.ndarray:
    """The pixels of layout region ``box`` (integer, end exclusive) from the analysed image."""
    x0, y0, x1, y1 = (int(v) for v in box)
    if layout.skew_degrees == 0.0:
        return image[y0:y1, x0:x1].copy()
    # Crop pixel (u, v) is layout point (x0 + u, y0 + v), which the skew rotation takes to
    # the source image; warp only those pixels.
    to_source = np.vstack((rotation_matrix(layout.image_shape, layout.skew_degrees), [0, 0, 1]))
    shift = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    m = (to_source @ shift)[:2]
    return cv2.warpAffine(
        image,
        m,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=255,
    )


def _ink_mask(pixels: np.ndarray) -> np.ndarray:
    """Ink as 255 and paper as 0, split at Otsu's threshold of ``pixels``."""
    gray = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    return cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)[1]


def _ink_reach(
    pixels: np.ndarray,
    line_ys: list[float],
    space: float,
    rows: tuple[float, float],
    joined: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
) -> tuple[int, int]:
    """The rows [top, bottom) of ``pixels`` (a staff cut with room to spare) that hold the
    margin ``rows`` and all the ink that hangs together with the staff's lines
    (``line_ys``, in these pixels). Where the system has a staff above or below,
    ``joined`` marks for that side the columns of ``pixels`` whose ink crosses that staff
    (:func:`_crossing`): strokes there that run through the room on that side (inking
    ``_THROUGH`` of it, as a barline worn into dashes still does) are barlines on their
    way to that staff, and are left out. A stem up or down to its beams in the room
    stops short of the other staff, and beyond the system's outer staves no barline
    runs at all (64th notes under ledger lines hang their beams far out);
    the rest is joined across gaps of up to ``_REACH_GAP`` spaces (the space between one
    ledger line and the next, or a slur and the notes under it), and the pieces joined
    to the staff lines give the reach."""
    h = pixels.shape[0]
    top, bottom = max(0, int(rows[0])), min(h, int(math.ceil(rows[1])))
    ink = _ink_mask(pixels)
    first, last = int(round(min(line_ys))), int(round(max(line_ys)))
    for (lo, hi), crossing in zip(((0, first), (last + 1, h)), joined, strict=True):
        if crossing is not None and hi - lo > 2:
            # a column inked down most of the room, the columns beside it included (a
            # barline worn into dashes still inks most of it; a stem to a high note not),
            # that goes on through the other staff
            share = (ink[lo:hi] > 0).mean(axis=0)
            through = (share >= _THROUGH) & crossing
            through[1:] |= through[:-1].copy()
            through[:-1] |= through[1:].copy()
            ink[lo:hi, through] = 0
    gap = max(3, round(_REACH_GAP * space)) | 1
    # paper around it: OpenCV's erosion takes what lies past the edge for ink, so ink
    # within half a gap of the edge would otherwise be joined to it
    pad = gap // 2 + 1
    ink = cv2.copyMakeBorder(ink, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=0)
    ink = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, np.ones((gap, 1), np.uint8))[pad:-pad]
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    on_lines = np.zeros(count, bool)
    for y in line_ys:
        r = int(round(y))
        if 0 <= r < h:
            on_lines[np.unique(labels[r])] = True
    on_lines[0] = False  # the paper
    staff = np.nonzero(on_lines)[0]
    if staff.size == 0:
        return top, bottom
    ink_top = int(stats[staff, cv2.CC_STAT_TOP].min())
    ink_bottom = int((stats[staff, cv2.CC_STAT_TOP] + stats[staff, cv2.CC_STAT_HEIGHT]).max())
    return min(top, ink_top), max(bottom, ink_bottom)


def _crossing(image: np.ndarray, layout: PageLayout, band: Box) -> np.ndarray:
    """For each column of the layout region ``band`` (a staff's lines, top to bottom),
    whether ink covers ``_CROSSING`` of it, the columns beside it included: a barline
    crossing that staff, worn into dashes or not. No stem of another staff gets so far."""
    pixels = _cut(image, layout, (band[0], math.floor(band[1]), band[2], math.ceil(band[3]) + 1))
    ink = cv2.dilate(_ink_mask(pixels), np.ones((1, 3), np.uint8))
    return (ink > 0).mean(axis=0) >= _CROSSING


def _volta_bracket(room: np.ndarray, space: float) -> int | None:
    """The row just above a volta bracket in ``room`` (the paper over a system's top
    staff), or None where there is none.

    A volta bracket is a thin line at least ``_VOLTA_LENGTH`` spaces long, held two to
    seven spaces over the staff, with a hook down from its left end and the ending's
    number under it. It is ink of its own, never joined to the staff, so
    :func:`_ink_reach` leaves it out, and without it the model cannot read the ending
    (on 500 generated systems, 59 of 78 volta tokens were missed, against 2 of 28 on the
    training-style crops that keep all the ink over the staff)."""
    if room.shape[0] < 3 or room.shape[1] < 3:
        return None
    ink = _ink_mask(room)
    if not ink.any():
        return None
    length = max(5, round(_VOLTA_LENGTH * space))
    lines = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, length), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(lines, connectivity=8)
    hook = max(2, round(_VOLTA_HOOK * space))
    found = None
    for x, y, _, h, _ in stats[1:count]:
        if h > max(2, 0.4 * space) or room.shape[0] - (y + h) > _VOLTA_HIGHEST * space:
            continue  # a thick beam or a slab, or too high to be this staff's
        below = ink[y + h : y + h + hook, max(0, x - 1) : x + max(2, round(0.4 * space))]
        if below.shape[0] < hook or (below.max(axis=1) > 0).mean() < 0.9:
            continue  # no hook down from its left end
        found = y if found is None else min(found, y)
    return None if found is None else max(0, int(found) - 1)


def _draw_lost_lines(
    pixels: np.ndarray, staves: list[Staff], x0: int, y0: int, scale: float
) -> np.ndarray:
    """The crop with the lines of the staves whose lines the scan lost drawn back in, as
    thin as a printed staff line (a tenth of a space) and as dark as the crop's ink, under
    the ink that is there: the model reads notes by the lines they sit on."""
    out = pixels.copy()
    ink = float(np.percentile(out, 1))
    for staff in staves:
        if not staff.lines_lost:
            continue
        thick = max(1, round(_LINE_WIDTH * staff.space * scale))
        a = max(0, round((staff.x0 - x0) * scale))
        b = min(out.shape[1], round((staff.x1 - x0) * scale) + 1)
        for y in staff.line_ys:
            centre = (y - y0) * scale
            lo = max(0, round(centre - (thick - 1) / 2))
            rows = out[lo : min(out.shape[0], lo + thick), a:b]
            np.minimum(rows, ink, out=rows, casting="unsafe")
    return out


def _system(layout: PageLayout, index: int) -> System:
    if not 0 <= index < len(layout.systems):
        raise IndexError(f"system {index} does not exist (the page has {len(layout.systems)})")
    return layout.systems[index]


def _staff(staves: list[Staff], index: int) -> Staff:
    if not 0 <= index < len(staves):
        raise IndexError(f"staff {index} does not exist (the system has {len(staves)})")
    return staves[index]


def _all_staves(layout: PageLayout) -> list[Staff]:
    return [s for system in layout.systems for s in system.staves]
