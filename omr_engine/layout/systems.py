"""Grouping staves into systems, and finding barlines and measure boxes.

Two neighbouring staves belong to one system when ink connects them across the gap: the
system's opening barline, a brace or bracket at the left end, a barline drawn through, or
anything else that crosses (a cross-staff beam). Separate systems never touch.

A barline is a vertical stroke at least as tall as most of a staff that spans whole
staves (falling short of their outer lines by a fifth of a space at most) and ends at
their outer lines or in a gap beyond, never inside another staff. A stem that long is told
apart by what it carries: a notehead or beam beside it (a barline stands free), where a
tie or slur crossing a barline touches it on both sides. On a blurred scan a barline's
own grey edges and the dashes of its worn staff lines are not counted as ink beside it,
and a barline broken by faded ink is joined across the break when nothing stands beside
the break (where a stem meets another voice's stem, their noteheads do).
Strokes through several whole staves are barlines however crowded. The clef area at the
system's start is skipped (a C clef is two bars exactly as tall as the staff).

Measure boxes run from barline to barline. Two Verovio conventions are followed so that
boxes match the training data: a double or repeat barline right after the clef and key
opens the first measure rather than ending an empty one, and a courtesy key or time
signature after the last barline belongs to the last measure.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from .ink import StaffMetrics
from .staves import line_mask, upright_strokes
from .structures import Box, Staff, System

__all__ = ["build_system", "group_staves", "join_split_systems", "merge_systems"]

_BRACE_REACH = 4.0  # staff spaces left of the staves where a brace or bracket may stand
_CLEF_AREA = 2.5  # staff spaces after the system's left edge where no barline can be
_SHORT = 0.2  # staff spaces a barline may fall short of its staff's outer lines (blur)
_OVERSHOOT = 1.0  # staff spaces it may run on beyond them (a tie or slur touching it)
_MERGE = 1.2  # staff spaces: barlines closer than this are one (double, final, repeat)
_LAST = 2.5  # staff spaces: a barline closer than this to the staff's end is its closing one
_COURTESY = 6.0  # staff spaces: a barline-less end of staff this short is a courtesy sign
_CROWDED = 0.12  # share of ink beside a stroke (within 0.3 spaces) that makes it a stem
_TOUCH = 0.35  # staff spaces of contact along a stroke that make it a stem (a notehead)
_HEAVY = 0.35  # staff spaces: a barline stroke this wide is a heavy (final or repeat) line
_SHEAR = 0.035  # x per y: how far a barline may lean (2 degrees)
_OPENING_LINE = 0.75  # share of the gap between staves a broken opening line still inks
_EDGE = 0.15  # staff spaces: the most a stroke's blurred edge adds on each side
_OWN_EDGE = 0.5  # share of a stroke's ink a column beside it has when it is its edge
_THIN = 0.4  # staff spaces: a slur crossing a barline is no thicker than this
_GAP = 0.4  # staff spaces: a stroke broken by faded ink for this long is one stroke
_QUIET = 0.05  # share of ink beside a break in a stroke that bridging it allows
_DASH = 0.5  # staff spaces: a thin piece this long on a staff line's rows is part of the line
_JOINING = 2  # barlines that join two staves into a system however unlike their starts


def group_staves(ink: np.ndarray, staves: list[Staff], metrics: StaffMetrics) -> list[list[Staff]]:
    """Staves (top to bottom) grouped into systems."""
    groups: list[list[Staff]] = []
    for staff in staves:
        if groups and _connected(ink, groups[-1][-1], staff, metrics):
            groups[-1].append(staff)
        else:
            groups.append([staff])
    return groups


def _connected(ink: np.ndarray, upper: Staff, lower: Staff, metrics: StaffMetrics) -> bool:
    space = metrics.space
    # Staves of one system start together; a wide offset means two systems side by side
    # or one below an indented other (the first system of a piece is indented as a whole).
    # Unless barlines join them: a staff found only in part (its clef and first notes
    # drowned its faint lines) starts late.
    if abs(upper.x0 - lower.x0) > 3 * space:
        return _barlines_join(ink, upper, lower, metrics.line_thickness)
    h, w = ink.shape
    x_lo = max(0, int(min(upper.x0, lower.x0) - _BRACE_REACH * space))
    x_hi = min(w, int(min(upper.x1, lower.x1)) + 1)
    y_lo = max(0, int(round(upper.bottom)) - 1)
    y_hi = min(h, int(round(lower.top)) + 2)
    if x_hi - x_lo < 2 or y_hi - y_lo < 3:
        return False
    region = ink[y_lo:y_hi, x_lo:x_hi]
    # Bridge single-pixel breaks that noise makes in a thin barline.
    region = cv2.morphologyEx(region, cv2.MORPH_CLOSE, np.ones((3, 1), np.uint8))
    n, labels = cv2.connectedComponents(region, connectivity=8)
    if n >= 2:
        top_labels = np.unique(labels[0])
        bottom_labels = np.unique(labels[-1])
        common = np.intersect1d(top_labels[top_labels > 0], bottom_labels[bottom_labels > 0])
        if common.size > 0:
            return True
    # A faded or broken opening line: a column at the staves' left end inked along most
    # of the gap (what stands in the gap between systems is text and notes, not a line).
    left = int(round(min(upper.x0, lower.x0)))
    c_lo, c_hi = max(0, left - int(space)), min(w, left + int(0.5 * space) + 1)
    column = ink[y_lo:y_hi, c_lo:c_hi] > 0
    if column.shape[1] < 3:
        return False
    wobble = column[:, :-2] | column[:, 1:-1] | column[:, 2:]  # a line a pixel off plumb
    return bool(wobble.mean(axis=0).max() >= _OPENING_LINE)


def _barlines_join(ink: np.ndarray, upper: Staff, lower: Staff, thickness: float) -> bool:
    """Whether ``_JOINING`` strokes of ink or more run unbroken across the gap from
    ``upper``'s bottom line to ``lower``'s top one where both staves are found: barlines
    through a system. Stems and ledger lines do not bridge the gap between systems so."""
    r = thickness / 2 + 1
    box = (max(upper.x0, lower.x0), upper.bottom + r, min(upper.x1, lower.x1), lower.top - r)
    return box[3] - box[1] >= 2 and upright_strokes(ink, box, 1.0) >= _JOINING


def join_split_systems(
    ink: np.ndarray,
    systems: list[System],
    metrics: StaffMetrics,
    lines: np.ndarray | None = None,
) -> list[System]:
    """Join neighbouring systems that are one system whose brace or bracket the page lost.

    Worn print breaks the lines that join a system's staves, and the system falls apart
    into pieces that each read the same measures. Two neighbours are joined when their
    barlines stand at the same places (at least two within half a space of each other,
    none of either alone where the other's staff runs) and the gap between them is at
    most 1.15 times the widest gap between staves of a system that held together on the
    same page (so a page needs one such system: two systems of a tune, one staff each,
    are never joined).
    """
    space = metrics.space
    inner = [
        b.top - a.bottom
        for sys in systems
        for a, b in zip(sys.staves, sys.staves[1:], strict=False)
    ]
    if not inner:
        return systems
    widest = 1.15 * max(inner)
    out = [systems[0]]
    for system in systems[1:]:
        above = out[-1]
        gap = system.staves[0].top - above.staves[-1].bottom
        if gap <= widest and _same_barlines(above, system, space):
            out[-1] = build_system(ink, above.staves + system.staves, metrics, lines)
        else:
            out.append(system)
    return out


def merge_systems(parts: list[System]) -> System:
    """One system of ``parts`` (neighbours, top to bottom) found apart: their staves, the
    box around them, and the barlines and measure ends of all (those within a staff space
    of each other counted once). For systems whose joining ink wore away, found so by
    what the staves read (``inference.measures.join_read_systems``)."""
    space = float(np.mean([p.staff_space for p in parts]))
    x0 = min(p.box[0] for p in parts)
    x1 = max(p.box[2] for p in parts)
    top, bottom = parts[0].box[1], parts[-1].box[3]

    def union(xs: list[float]) -> list[float]:
        out: list[float] = []
        for x in sorted(xs):
            if not out or x - out[-1] > space:
                out.append(x)
        return out

    barlines = union([x for p in parts for x in p.barlines_x])
    ends = [x for x in union([b[2] for p in parts for b in p.measure_boxes[:-1]]) if x < x1 - space]
    edges = [x0, *ends, x1]
    boxes: list[Box] = [(a, top, b, bottom) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    staves = [staff for p in parts for staff in p.staves]
    return System(
        staves=staves, box=(x0, top, x1, bottom), barlines_x=barlines, measure_boxes=boxes
    )


def _same_barlines(a: System, b: System, space: float) -> bool:
    """At least two barlines of ``a`` and ``b`` stand together, and none of either stands
    alone where the other's staff runs (a staff broken by wear may start late or lose
    its closing barline, so only the overlap is compared)."""

    def partnered(x: float, others: list[float]) -> bool:
        return any(abs(x - o) <= 0.5 * space for o in others)

    def lonely(xs: list[float], others: list[float], box: Box) -> int:
        inside = [x for x in xs if box[0] + _CLEF_AREA * space < x < box[2] - 0.5 * space]
        return sum(not partnered(x, others) for x in inside)

    matches = sum(partnered(x, b.barlines_x) for x in a.barlines_x)
    alone = lonely(a.barlines_x, b.barlines_x, b.box) + lonely(b.barlines_x, a.barlines_x, a.box)
    # Worn print loses a barline on one part more often than two systems line up three.
    return matches >= 2 and (alone == 0 or (matches >= 3 and alone <= matches // 2))


def _extent(staves: list[Staff]) -> tuple[float, float]:
    """Where the system's staves start and end. A staff's lines fade at its ends on a worn
    page, so the found extents fall short, while they never run on too far: the system
    spans the widest extent that two of its staves reach (all of one or two staves)."""
    starts = sorted(s.x0 for s in staves)
    ends = sorted((s.x1 for s in staves), reverse=True)
    k = 1 if len(staves) >= 3 else 0
    return float(starts[k]), float(ends[k])


def build_system(
    ink: np.ndarray, staves: list[Staff], metrics: StaffMetrics, lines: np.ndarray | None = None
) -> System:
    """The system of ``staves`` with its barlines and measure boxes. ``lines`` is the mask
    of thin staff-line pixels (the second mask of ``staves.line_mask``), when known."""
    space = metrics.space
    x0, x1 = _extent(staves)
    top, bottom = staves[0].top, staves[-1].bottom
    found, stems = _barlines(ink, staves, metrics, x0, x1, lines)
    barlines = [x for x, _ in found]
    edges = [x0]
    for i, (x, strokes) in enumerate(found):
        # A barline this close to the staff's end closes it: no measure is that short
        # (LilyPond leaves a stub of staff after a repeat sign that ends a line).
        if x - edges[-1] < _MERGE * space or x1 - x < _LAST * space:
            continue
        # A double or repeat barline with nothing but clef, key and time before it opens
        # the system's first measure (a section start), as in Verovio; it ends none.
        if i == 0 and strokes > 1 and not any(x0 < s < x - 0.5 * space for s in stems):
            continue
        edges.append(x)
    # A staff that runs on past its last barline without one of its own ends with a
    # courtesy key or time signature, which belongs to the last measure (as in Verovio).
    if (
        len(edges) > 1
        and x1 - edges[-1] < _COURTESY * space
        and (not barlines or x1 - barlines[-1] >= _MERGE * space)
    ):
        edges.pop()
    edges.append(x1)
    boxes: list[Box] = [(a, top, b, bottom) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return System(
        staves=list(staves), box=(x0, top, x1, bottom), barlines_x=barlines, measure_boxes=boxes
    )


def _barlines(
    ink: np.ndarray,
    staves: list[Staff],
    metrics: StaffMetrics,
    x0: float,
    x1: float,
    lines: np.ndarray | None,
) -> tuple[list[tuple[float, int]], list[float]]:
    """The system's barlines, left to right, as (x-centre, number of strokes: 2 for a
    double or repeat barline); and the x-centres of all tall strokes (stems included)."""
    space, thick = metrics.space, metrics.line_thickness
    h, w = ink.shape
    pad = int(space) + 2
    y_lo = max(0, int(staves[0].top) - pad)
    y_hi = min(h, int(staves[-1].bottom) + pad + 1)
    x_lo = max(0, int(x0 + _CLEF_AREA * space))
    x_hi = min(w, int(x1 + space) + 1)
    if x_hi - x_lo < 2:
        return [], []
    band = ink[y_lo:y_hi, x_lo:x_hi]
    line_band = lines[y_lo:y_hi, x_lo:x_hi] if lines is not None else None
    staff_height = min(s.bottom - s.top for s in staves)
    short = max(2.0, _SHORT * space) + thick / 2
    over = _OVERSHOOT * space + thick / 2
    tops = np.array([s.top for s in staves]) - y_lo
    bottoms = np.array([s.bottom for s in staves]) - y_lo
    strokes: list[_Stroke] = []
    staff_rows = [
        (max(0, int(round(t))), int(round(b)) + 1) for t, b in zip(tops, bottoms, strict=True)
    ]
    line_rows = np.zeros(band.shape[0], bool)
    for staff in staves:
        for line_y in staff.line_ys:
            r = thick / 2 + 1
            line_rows[max(0, int(line_y - y_lo - r)) : max(0, int(line_y - y_lo + r) + 1)] = True
    line_band = _with_dashes(band, line_band, line_rows, metrics)
    tall = _tall_strokes(band, 0.8 * staff_height, staff_rows, round(_GAP * space), line_band)
    for x, x_to, y, end in tall:
        if x_to - x > 1.2 * space:  # a thick and a thin line may merge at low resolution
            continue
        covered = np.nonzero((y <= tops + short) & (end >= bottoms - short))[0]
        if covered.size == 0:
            continue
        first, last = covered[0], covered[-1]
        # Each end stops at the outer line of the staves it spans or in the gap beyond,
        # short of the next staff (Verovio breaks a barline around a dynamic in a gap).
        lowest_top = bottoms[first - 1] + short if first > 0 else tops[first] - over
        highest_end = tops[last + 1] - short if last + 1 < len(staves) else bottoms[last] + over
        if y < lowest_top or end > highest_end:
            continue
        # A stroke through several whole staves is a barline even where notes crowd it.
        # On one staff, look half a space past its ends too, where a stem that overshoots
        # the staff has its notehead or beam; but not into a gap between staves that the
        # stroke runs into (a barline broken around a dynamic there).
        if covered.size == 1:
            ext = int(0.5 * space)
            r0 = y - ext if y >= tops[first] - over else int(tops[first])
            r1 = end + ext if end <= bottoms[first] + over else int(bottoms[first])
            rows = np.arange(max(0, r0), min(band.shape[0], r1 + 1))
            if _crowded(band, line_band, line_rows, tall, rows, x, x_to, space):
                continue
        centre = (x + x_to - 1) / 2.0 + x_lo
        strokes.append(_Stroke(centre, range(first, last + 1), (y + end) / 2.0, float(x_to - x)))
    need = len(staves) if len(staves) <= 2 else len(staves) - 1
    stems = [(a + b - 1) / 2.0 + x_lo for a, b, _, _ in tall]
    return _merge_strokes(strokes, space, need), stems


def _with_dashes(
    band: np.ndarray, lines: np.ndarray | None, line_rows: np.ndarray, metrics: StaffMetrics
) -> np.ndarray:
    """The staff-line mask of the band with the pieces of faded staff lines added: thin
    horizontal strokes ``_DASH`` spaces long or more on the staves' line rows (the line
    mask keeps strokes three spaces long, so a line worn into dashes is missing from it,
    and its dashes would count as ink beside every barline they touch)."""
    dashes = line_mask(band, metrics, _DASH)[1]
    dashes[~line_rows] = 0
    return dashes if lines is None else cv2.max(lines, dashes)


def _tall_strokes(
    band: np.ndarray,
    min_height: float,
    staff_rows: list[tuple[int, int]],
    gap: int = 0,
    lines: np.ndarray | None = None,
) -> list[tuple[int, int, int, int]]:
    """Vertical strokes at least ``min_height`` tall in the columns that are nearly all ink
    down one of the ``staff_rows`` ranges: (x_from, x_to, top, bottom), x_to exclusive,
    bottom inclusive. Pinholes of a pixel are bridged first, and breaks up to ``gap`` rows
    where nothing but staff lines (``lines``) stands beside them (:func:`_quiet_gaps`)."""
    height = max(3, int(min_height))
    candidate = np.zeros(band.shape[1], bool)
    for lo, hi in staff_rows:
        counts = cv2.reduce(band[lo:hi], 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel() // 255
        candidate |= counts >= 0.85 * (hi - lo)
    cols = np.nonzero(candidate)[0]
    if cols.size == 0:
        return []
    # Vertical morphology treats columns independently, so the candidates are enough.
    sub = np.ascontiguousarray(band[:, cols])
    sub = cv2.morphologyEx(sub, cv2.MORPH_CLOSE, np.ones((3, 1), np.uint8))
    breaks = np.nonzero(np.diff(cols) != 1)[0] + 1
    if gap > 3:
        bridged = cv2.morphologyEx(sub, cv2.MORPH_CLOSE, np.ones((gap, 1), np.uint8))
        loose = band if lines is None else cv2.subtract(band, lines)  # ink off staff lines
        for group in np.split(np.arange(cols.size), breaks):
            _quiet_gaps(loose, sub, bridged, cols, group, gap)
    sub = cv2.morphologyEx(sub, cv2.MORPH_OPEN, np.ones((height, 1), np.uint8))
    keep = sub.any(axis=0)
    sub, cols = sub[:, keep], cols[keep]
    breaks = np.nonzero(np.diff(cols) != 1)[0] + 1
    out: list[tuple[int, int, int, int]] = []
    for group in np.split(np.arange(cols.size), breaks):
        rows = sub[:, group].any(axis=1)
        if not rows.any():
            continue
        # Columns of the group that take part, so a stroke's width is its own.
        for top, stop in _runs_of(rows):
            if stop - top < height:
                continue
            used = group[sub[top:stop, group].any(axis=0)]
            out.append((int(cols[used[0]]), int(cols[used[-1]]) + 1, top, stop - 1))
    return out


def _quiet_gaps(
    loose: np.ndarray,
    sub: np.ndarray,
    bridged: np.ndarray,
    cols: np.ndarray,
    group: np.ndarray,
    gap: int,
) -> None:
    """Fills in ``sub`` (the band's columns ``cols``) the breaks that ``bridged`` closes in
    the column group ``group`` where nothing stands beside the break (``loose``: the
    band's ink off the staff lines). Faded or worn print breaks a barline; where a stem of
    one voice meets the stem of another, or the two digits of a time signature meet,
    noteheads or the digits' bars stand beside the break."""
    rows = bridged[:, group].any(axis=1) & ~sub[:, group].any(axis=1)
    if not rows.any():
        return
    x0, x1 = int(cols[group[0]]), int(cols[group[-1]]) + 1
    reach = 2 * gap
    h = loose.shape[0]
    for a, b in _runs_of(rows):
        r0, r1 = max(0, a - gap), min(h, b + gap)
        left = loose[r0:r1, max(0, x0 - reach) : max(0, x0 - 1)]
        right = loose[r0:r1, x1 + 1 : x1 + reach]
        ink = np.count_nonzero(left) + np.count_nonzero(right)
        if ink <= _QUIET * (left.size + right.size):
            sub[a:b, group] = bridged[a:b, group]


def _runs_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(
        zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist(), strict=True)
    )


def _crowded(
    band: np.ndarray,
    lines: np.ndarray | None,
    line_rows: np.ndarray,
    tall: list[tuple[int, int, int, int]],
    rows: np.ndarray,
    x_from: int,
    x_to: int,
    space: float,
) -> bool:
    """Whether something other than staff lines and ``tall`` strokes lies beside the
    stroke spanning columns [x_from, x_to) on the band rows ``rows`` (``line_rows`` marks
    the band's staff-line rows): a stem has its notehead or beam there, a time signature
    its digits; a barline stands free (the other line of a double barline does not count).

    Two tests: the share of ink (staff lines left out) within 0.3 spaces on either side,
    and runs of rows where something touches the stroke on one side (staff lines bridging
    a run) with much less touching the other side: a hollow notehead is little ink beside
    a long stem, but it touches the stem over a good part of a space, while a tie or slur
    that crosses a barline touches it on both sides."""
    reach = max(2, round(0.3 * space))
    width = band.shape[1]
    # Tall strokes side by side are one glyph (a time signature's digits, a C clef) or a
    # double barline, and the column between them is no blurred edge.
    alone = not any(
        a < x_to + 2 * reach and b > x_from - 2 * reach and (a, b) != (x_from, x_to)
        for a, b, top, bottom in tall
        if top <= rows[-1] and bottom >= rows[0]
    )
    if alone:
        x_from, x_to = _blurred_extent(band, line_rows, rows, x_from, x_to, space)
    # The stroke's own noisy edge (one pixel) is not "beside" it.
    lo, hi = max(0, x_from - 1 - reach), min(width, x_to + 1 + reach)
    window = band[rows, lo:hi] > 0
    for a, b, top, bottom in tall:
        if a - 1 < hi and b + 1 > lo:
            inside = (rows >= top) & (rows <= bottom)
            window[np.ix_(inside, np.arange(max(a - 1, lo), min(b + 1, hi)) - lo)] = False
    on_line = lines[rows, lo:hi] > 0 if lines is not None else np.zeros_like(window)
    split_l, split_r = max(0, x_from - 1 - lo), min(window.shape[1], x_to + 1 - lo)
    # Rows inked right across both sides are something thin and horizontal crossing the
    # stroke (a slur lying on a staff line): not what sits beside a stem. A blurred
    # notehead at a stem's end can fill both sides too, but over more rows than a slur.
    through = window[:, :split_l].all(axis=1) & window[:, split_r:].all(axis=1)
    for a, b in _runs_of(through):
        if b - a > _THIN * space:
            through[a:b] = False
    for side in (slice(0, split_l), slice(split_r, None)):
        ink = window[~through, side] & ~on_line[~through, side]
        if ink.size and np.count_nonzero(ink) > _CROWDED * window[:, side].size:
            return True
    n = len(rows)
    # Staff-line rows touch every stroke on both sides: they neither make nor break a run.
    neutral = line_rows[rows]
    left = window[:, max(0, split_l - 2) : split_l].any(axis=1) if split_l else np.zeros(n, bool)
    right = window[:, split_r : split_r + 2].any(axis=1)
    left &= ~neutral
    right &= ~neutral
    contiguous = np.diff(rows, prepend=rows[0] - 1) == 1 if n else np.zeros(0, bool)
    near = max(1, round(0.3 * space))
    limit = _TOUCH * space
    # Rows touched on both sides are something crossing: like staff lines, they bridge.
    both = left & right
    for side, other in ((left & ~right, right & ~left), (right & ~left, left & ~right)):
        for a, b in _runs_of((side | both | neutral) & contiguous):
            touching = int(np.count_nonzero(side[a:b]))
            if touching < 0.6 * limit or b - a < limit:
                continue
            # A slanted tie touches the other side a little higher or lower; a notehead
            # or beam leaves it free.
            opposite = int(np.count_nonzero(other[max(0, a - near) : b + near]))
            if opposite < 0.5 * touching:
                return True
    return False


def _blurred_extent(
    band: np.ndarray, line_rows: np.ndarray, rows: np.ndarray, x_from: int, x_to: int, space: float
) -> tuple[int, int]:
    """The stroke's columns [x_from, x_to) widened by its blurred edges: neighbouring
    columns inked along half its length or more (staff-line rows left out), up to ``_EDGE``
    spaces on each side. A stroke's width is read where nearly every row is ink, so a
    blurred stroke has a band of grey-turned-ink on either side that is its own, while a
    notehead or flag beside a stem inks only a few rows of the column next to it, and a
    cluster of noteheads one side only."""
    free = rows[~line_rows[rows]]
    if free.size == 0 or x_to - x_from > _HEAVY * space + 2:
        return x_from, x_to  # wider than blur makes a barline: a cluster of noteheads
    limit = max(1, round(_EDGE * space))
    width = band.shape[1]
    core = np.count_nonzero(band[free, x_from:x_to]) / (x_to - x_from)

    def own(x: int) -> bool:
        return 0 <= x < width and np.count_nonzero(band[free, x]) >= _OWN_EDGE * core

    left = next((k for k in range(limit) if not own(x_from - 1 - k)), limit)
    right = next((k for k in range(limit) if not own(x_to + k)), limit)
    # Blur widens a stroke on both sides alike; a cluster of noteheads or a beam is ink
    # down one side of a stem only.
    both = min(left, right)
    return x_from - both, x_to + both


class _Stroke(NamedTuple):
    """A barline's stroke on one or more staves: its x-centre, the staves it spans, its
    y-centre (in the band) and its width."""

    x: float
    staves: range
    y: float
    width: float


def _merge_strokes(strokes: list[_Stroke], space: float, need: int) -> list[tuple[float, int]]:
    """Barlines from strokes: strokes in line (:func:`_stroke_lines`) add up the staves
    they span, and a line counts when it spans at least ``need`` staves; lines closer than
    ``_MERGE`` spaces (double, final and repeat barlines) then become one barline, given as
    its x-centre and its number of lines. A heavy line (``_HEAVY`` spaces wide) is only
    ever part of a final or repeat barline, so it counts as two even where its thin
    partner was lost (repeat dots beside it make the thin line look like a stem)."""
    kept: list[tuple[float, bool]] = []
    for line in _stroke_lines(strokes, space, need):
        width = float(np.median([strokes[b].width for b in line]))
        kept.append((float(np.mean([strokes[b].x for b in line])), width >= _HEAVY * space))
    out: list[list[tuple[float, bool]]] = []
    for x, heavy in sorted(kept):
        if out and x - out[-1][-1][0] < _MERGE * space:
            out[-1].append((x, heavy))
        else:
            out.append([(x, heavy)])
    return [
        (
            float(np.mean([x for x, _ in group])),
            max(len(group), 2 if any(h for _, h in group) else 1),
        )
        for group in out
    ]


def _stroke_lines(strokes: list[_Stroke], space: float, need: int) -> list[list[int]]:
    """The strokes (their indices) that stand in line, one list per line spanning at least
    ``need`` staves; each stroke in one line at most.

    A page photographed or scanned a little askew keeps its staff lines level once
    deskewed, but its barlines lean, and under perspective each by its own angle (a
    degree and a half moves a barline 11 pixels down a system of four staves). So each
    stroke proposes the line through it, upright or leaning up to ``_SHEAR``, that takes
    in strokes (within a quarter space of it) on the most staves, upright where leaning
    does no better; lines are taken best first."""
    if not strokes:
        return []
    xs = np.array([v.x for v in strokes])
    ys = np.array([v.y for v in strokes])
    spans = [set(v.staves) for v in strokes]
    tol = max(2.0, 0.25 * space)
    shears = np.array(sorted(np.linspace(-_SHEAR, _SHEAR, 15), key=abs))[:, None]
    proposals: list[tuple[int, int, list[int]]] = []
    for a in range(len(strokes)):
        near = np.abs(xs[None, :] - (xs[a] + shears * (ys[None, :] - ys[a]))) <= tol
        counts = [len(set().union(*(spans[b] for b in np.nonzero(row)[0]))) for row in near]
        k = int(np.argmax(counts))  # the first best: the least lean
        proposals.append((counts[k], -a, np.nonzero(near[k])[0].tolist()))
    used = np.zeros(len(strokes), bool)
    lines: list[list[int]] = []
    for _, _, members in sorted(proposals, reverse=True):
        free = [b for b in members if not used[b]]
        if not free or len(set().union(*(spans[b] for b in free))) < need:
            continue
        used[free] = True
        lines.append(free)
    return lines
