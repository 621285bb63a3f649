"""``analyze_page``: a grayscale page in, its staves, systems and measures out."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from .ink import StaffMetrics, binarize, estimate_staff_metrics, flatten_background
from .lost_lines import find_lost_staves
from .skew import estimate_skew, estimate_skew_from_stems, rotate
from .staves import crossing_strokes, extend_faint, find_staves, line_mask, thick_line_share
from .structures import Box, NoStavesError, PageLayout, Staff, System, rotation_matrix
from .systems import build_system, group_staves, join_split_systems

__all__ = ["analyze_page", "page_has_staves"]

_MIN_SKEW = 0.02  # degrees; below this a line drifts under a pixel across an A4 page
_WHOLE = 0.6  # share of the print's width below which a staff may be a part of one
_SIZED = 0.15  # share of the print's width a staff found in part needs to tell the size
_LONGER = 1.5  # how much longer a less trusted staff must run to replace one it overlaps
_STEM_SKEW = 0.25  # degrees: a skew read from stems this far from the profile's is tried
_WORK_SPACE = 18.0  # pixels: pages with a larger staff space are analysed reduced
_FAINT = 2.0  # staff spaces a row is averaged over to find faint staff lines
_FAINT_TALL = 0.33  # staff spaces: a faint line averaged along its row is no taller
_FAINT_TEXT = 0.45  # ... where more than this share of each staff's lines is, it is text
_TEXT = 0.57  # a page is text when the lines of each staff found are more than this share letters
_CROSSINGS = 2  # strokes through a staff (barlines, stems) that show it is no rows of text
_STRAY_SIZE = 0.12  # how far from the whole staves' space a short staff's may be
_STRAY_SHORT = 0.5  # of the whole staves' length, below which a staff may be a stray


def analyze_page(image: np.ndarray) -> PageLayout:
    """Finds the page's skew, staves, systems, barlines and measure boxes.

    ``image`` is grayscale uint8 (H, W), dark ink on light paper, at any resolution where
    a staff space is 4 pixels or more (about 60 dpi and up). Coordinates in the result are
    in the deskewed page (see :class:`PageLayout`).

    Raises NoStavesError when the page holds no staff, ValueError for an image that is not
    2-D uint8.
    """
    image = _check_image(image)
    ink, threshold = binarize(image)
    metrics = estimate_staff_metrics(ink)
    if metrics is None:
        raise NoStavesError("the page is blank")
    flat = flatten_background(image, metrics.space)
    if flat is not image:
        image = flat
        ink, threshold = binarize(image)
        metrics = estimate_staff_metrics(ink) or metrics
    # Fine scans are analysed at a reduced size (a staff space of 14-27 pixels is plenty);
    # the result is scaled back, and crops are always cut from the full image.
    factor = max(1, round(metrics.space / _WORK_SPACE))
    found = _find_staves(image, ink, threshold, metrics, factor)
    if found is None and factor > 1:
        # No staff line was found: the space came from something else (the run lengths of
        # a page whose lines the scan lost), so the page is searched at its own size.
        factor = 1
        found = _find_staves(image, ink, threshold, metrics, factor)
    if found is None:
        found = _find_faint_staves(image, threshold, metrics)
    if found is None:
        raise NoStavesError("no staff lines found on the page")
    ink, metrics, skew, masks, staves = found
    systems = [
        build_system(ink, group, metrics, masks[1]) for group in group_staves(ink, staves, metrics)
    ]
    systems = join_split_systems(ink, systems, metrics, masks[1])
    if factor > 1:
        systems = [_scaled_system(s, factor) for s in systems]
    all_staves = [staff for system in systems for staff in system.staves]
    return PageLayout(
        systems=systems,
        skew_degrees=skew,
        staff_space=float(np.median([s.space for s in all_staves])),
        line_thickness=metrics.line_thickness * factor,
        image_shape=(int(image.shape[0]), int(image.shape[1])),
        staves=all_staves,
    )


def _find_staves(
    image: np.ndarray,
    ink: np.ndarray,
    threshold: float,
    metrics: StaffMetrics,
    factor: int,
    skew: float | None = None,
) -> tuple[np.ndarray, StaffMetrics, float, tuple[np.ndarray, np.ndarray], list[Staff]] | None:
    """The page (``image``, its ink mask ``ink``) reduced ``factor`` times and deskewed
    (by ``skew`` degrees when given, else as measured): its ink, metrics, skew, line
    masks and staves (those whose lines are lost included), or None when it has none."""
    work = image
    if factor > 1:
        h, w = image.shape
        work = cv2.resize(
            image[: h - h % factor, : w - w % factor],
            (w // factor, h // factor),
            interpolation=cv2.INTER_AREA,
        )
        ink, _ = binarize(work, threshold)
        metrics = estimate_staff_metrics(ink) or metrics
    page_ink, page_metrics = ink, metrics
    measured = skew is None
    if skew is None:
        skew = estimate_skew(ink, metrics.space)
    if abs(skew) >= _MIN_SKEW:
        work = rotate(work, -skew)
        ink, _ = binarize(work, threshold)
        metrics = estimate_staff_metrics(ink) or metrics
    else:
        skew = 0.0
    masks = line_mask(ink, metrics)
    staves = find_staves(ink, metrics, masks)
    lined = bool(staves)
    # A staff whose lines survived only in part is found only that long; the dashes and
    # the search for lost lines may find all of it.
    width = _ink_width(ink)
    whole = [s for s in staves if s.x1 - s.x0 >= _WHOLE * width]
    dashed: list[Staff] = []
    if not whole:
        # Thin grey staff lines that the threshold broke into dashes: with each pixel
        # taking the darkest grey within 0.3 staff spaces along its row, the gaps close
        # and the dashes are a line again (text and noise stay short or thick).
        k = max(3, round(0.6 * metrics.space))
        line_ink, _ = binarize(cv2.erode(work, np.ones((1, k), np.uint8)), threshold)
        dash_masks = line_mask(line_ink, metrics)
        dashed = find_staves(line_ink, metrics, dash_masks)
        if not staves:
            masks = dash_masks
    if not staves and not dashed and factor > 1:
        return None  # the space that chose the factor was not a staff's: see analyze_page
    size = float(np.median([s.space for s in staves])) if staves else metrics.space
    # Staves found in part tell the staff size, unless so short they may be a beam's edges.
    sized = [s for s in [*staves, *dashed] if s.x1 - s.x0 >= _SIZED * width]
    lost = find_lost_staves(ink, size, whole, work, sized=sized)
    if not staves and lost:
        # The run lengths measured something else; the bumps measured the staff space.
        metrics = StaffMetrics(metrics.line_thickness, float(np.median([s.space for s in lost])))
    staves = _drop_strays(_unite(staves, [*dashed, *lost]), width)
    if _rows_of_text(image, threshold, skew, factor, ink, metrics, staves):
        staves = []
    if not lined and measured and factor == 1:
        # No staff line to measure the skew by, so the profile search may have lined up
        # beams and noteheads; stems and barlines stand square to the lost lines. The page
        # is searched again at their skew, and that is kept if it finds more staves.
        stems = estimate_skew_from_stems(page_ink, page_metrics.space)
        if stems is not None and abs(stems - skew) > _STEM_SKEW:
            again = _find_staves(image, page_ink, threshold, page_metrics, factor, stems)
            if again is not None and len(again[4]) > len(staves):
                return again
    if not staves:
        return None
    return ink, metrics, skew, masks, extend_faint(work, staves, metrics)


def _find_faint_staves(
    image: np.ndarray, threshold: float, metrics: StaffMetrics
) -> tuple[np.ndarray, StaffMetrics, float, tuple[np.ndarray, np.ndarray], list[Staff]] | None:
    """Staves whose lines are too faint or too noisy for the threshold to keep them whole
    (a pale, blurred copy): on the page with each row averaged over ``_FAINT`` staff
    spaces, the noise is evened out and a line keeps its grey, so the lines are found
    there. The barlines and measures are then read from the page itself (the averaging
    smears them), deskewed as the lines were found. None when there are none either."""
    k = max(9, round(_FAINT * metrics.space)) | 1
    smooth = cv2.blur(image, (k, 1))
    smooth_ink, smooth_threshold = binarize(smooth)
    smooth_metrics = estimate_staff_metrics(smooth_ink)
    if smooth_metrics is None:
        return None
    found = _find_staves(smooth, smooth_ink, smooth_threshold, smooth_metrics, 1)
    if found is None:
        return None
    smooth_ink, smooth_metrics, skew, _, staves = found
    # Averaged along the rows, each row of text is a band as tall as its small letters,
    # about 0.4 of the leading that the staff search took for a staff space; a staff line
    # stays as thin as it was (a third of a space at most, but where notes stand).
    # A blurred page thickens its lines as much: strokes through a staff tell it is music.
    ink, _ = binarize(rotate(image, -skew) if skew else image, threshold)
    thickness = smooth_metrics.line_thickness
    if all(
        thick_line_share(smooth_ink, s, thickness, _FAINT_TALL) > _FAINT_TEXT
        and crossing_strokes(ink, s) < _CROSSINGS
        for s in staves
    ):
        return None
    metrics = StaffMetrics(metrics.line_thickness, float(np.median([s.space for s in staves])))
    return ink, metrics, skew, line_mask(ink, metrics), staves


def _rows_of_text(
    image: np.ndarray,
    threshold: float,
    skew: float,
    factor: int,
    ink: np.ndarray,
    metrics: StaffMetrics,
    staves: list[Staff],
) -> bool:
    """Whether every staff found is rows of text, not staff lines: five lines of text
    set at an even leading line up the letters' horizontal strokes (or, on a page reduced
    ``factor`` times, blur into bands), and their "lines" are mostly letters' strokes
    (``thick_line_share``). A staff found from what its lost lines left is never text.
    ``ink`` and ``staves`` are on the reduced, deskewed page; the test is made on the
    full-size page (``image``), where letters are letters, each staff's band deskewed
    alone (the first staff whose lines are lines ends the test)."""
    if not staves or any(s.lines_lost for s in staves):
        return False
    if factor == 1:
        return all(thick_line_share(ink, s, metrics.line_thickness) > _TEXT for s in staves)
    thickness = metrics.line_thickness * factor
    for staff in staves:
        band, moved = _deskewed_band(image, threshold, skew, _scaled_staff(staff, factor))
        if thick_line_share(band, moved, thickness) <= _TEXT:
            return False
    return True


def _deskewed_band(
    image: np.ndarray, threshold: float, skew: float, staff: Staff
) -> tuple[np.ndarray, Staff]:
    """The ink of ``image`` deskewed by ``skew`` degrees, only around ``staff`` (a staff
    space beyond its lines), and the staff moved into that band: a page of 600 dpi
    deskewed and thresholded whole took a quarter of its layout time."""
    h, w = image.shape
    x0, y0 = max(0, int(staff.x0 - staff.space)), max(0, int(staff.top - staff.space))
    x1, y1 = min(w, int(staff.x1 + staff.space) + 1), min(h, int(staff.bottom + staff.space) + 1)
    matrix = rotation_matrix(image.shape, -skew)
    matrix[:, 2] -= (x0, y0)
    band = cv2.warpAffine(
        image,
        matrix,
        (max(1, x1 - x0), max(1, y1 - y0)),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=255,
    )
    ink, _ = binarize(band, threshold)
    moved = dataclasses.replace(
        staff,
        top=staff.top - y0,
        bottom=staff.bottom - y0,
        line_ys=tuple(y - y0 for y in staff.line_ys),
        x0=staff.x0 - x0,
        x1=staff.x1 - x0,
    )
    return ink, moved


def _ink_width(ink: np.ndarray) -> float:
    """How wide the page's print is: between the columns that leave 1% of its ink to
    either side (specks of noise at the paper's edges do not count)."""
    columns = cv2.reduce(ink, 0, cv2.REDUCE_SUM, dtype=cv2.CV_64F).ravel()
    total = columns.sum()
    if total <= 0:
        return 0.0
    cumulative = np.cumsum(columns) / total
    return float(np.searchsorted(cumulative, 0.99) - np.searchsorted(cumulative, 0.01))


def _unite(lined: list[Staff], others: list[Staff]) -> list[Staff]:
    """Staves found from their lines (``lined``) and from their dashes or lost lines
    (``others``). Of the others the longest go first, and one that overlaps a staff
    found so is kept only if it runs on further than that one, and ``_LONGER`` times as
    far as a staff found from its lines: lines that survived in part give part of a
    staff, while the dashes and the lost-line search may take beams or ledger lines for a
    staff, or a part's name for the staff's start."""

    def length(staff: Staff) -> float:
        return staff.x1 - staff.x0

    out = list(lined)
    for staff in sorted(others, key=lambda s: -length(s)):
        clash = [
            s
            for s in out
            if s.top - staff.space < staff.bottom and staff.top - staff.space < s.bottom
        ]
        if all(length(staff) >= (_LONGER if s in lined else 1.0) * length(s) for s in clash):
            out = [s for s in out if s not in clash] + [staff]
    return sorted(out, key=lambda s: s.top)


def _drop_strays(staves: list[Staff], width: float) -> list[Staff]:
    """The staves without those that are beams or ledger lines stacked evenly (64th-note
    beams, a run of notes three ledger lines high): a staff shorter than ``_STRAY_SHORT``
    of the staves that run the print's width, and spaced more than ``_STRAY_SIZE``
    unlike them. (A cue-sized ossia goes with them: the model reads no ossia.)"""
    whole = [s for s in staves if s.x1 - s.x0 >= _WHOLE * width]
    if not whole:
        return staves
    space = float(np.median([s.space for s in whole]))
    length = float(np.median([s.x1 - s.x0 for s in whole]))
    return [
        s
        for s in staves
        if s.x1 - s.x0 >= _STRAY_SHORT * length or abs(s.space / space - 1.0) <= _STRAY_SIZE
    ]


def _scaled_system(system: System, f: int) -> System:
    """``system`` found on an image reduced ``f`` times, in full-size pixels (a reduced
    pixel i covers full pixels i*f .. i*f + f - 1)."""

    def x(v: float) -> float:
        return (v + 0.5) * f - 0.5

    def box(b: Box) -> Box:
        return (x(b[0]), x(b[1]), x(b[2]), x(b[3]))

    return System(
        staves=[_scaled_staff(s, f) for s in system.staves],
        box=box(system.box),
        barlines_x=[x(v) for v in system.barlines_x],
        measure_boxes=[box(b) for b in system.measure_boxes],
    )


def _scaled_staff(staff: Staff, f: int) -> Staff:
    """``staff`` found on an image reduced ``f`` times, in full-size pixels."""

    def x(v: float) -> float:
        return (v + 0.5) * f - 0.5

    return dataclasses.replace(
        staff,
        top=x(staff.top),
        bottom=x(staff.bottom),
        line_ys=tuple(x(y) for y in staff.line_ys),
        x0=x(staff.x0),
        x1=x(staff.x1),
        space=staff.space * f,
    )


def page_has_staves(image: np.ndarray) -> bool:
    """Whether ``image`` holds at least one staff (a quick test to skip title pages)."""
    try:
        analyze_page(image)
    except NoStavesError:
        return False
    return True


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a grayscale image (H, W), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if min(image.shape) < 16:
        raise NoStavesError(f"an image of {image.shape[1]}x{image.shape[0]} pixels is too small")
    return np.ascontiguousarray(image)
