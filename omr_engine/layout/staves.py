"""Staff detection on a deskewed ink mask.

1. Keep only thin horizontal strokes: an opening with a horizontal bar three staff spaces
   long removes notes, stems and text; a second, vertical opening finds what is left that
   is thick (horizontal beams, bold rules) so it can be taken out.
2. The row profile of what remains peaks once per staff line. Five peaks evenly spaced
   about one staff space apart make a staff (one weak line without a peak of its own is
   tolerated); an even spacing that runs on beyond five lines is ruled paper, not a staff.
3. Each staff's x-extent is where at least four of its five lines are present (read from
   strokes a staff space long, gaps up to four spaces bridged: faded and worn lines),
   first on the lines' average rows, then following them where a curled page bends them.
4. Where the threshold lost the lines (grey, thin, or broken into dots shorter than a
   space), the staff goes on as far as its five rows stay darker than the rows between
   them on the grayscale page (:func:`extend_faint`).
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from .ink import StaffMetrics
from .structures import Staff

__all__ = [
    "crossing_strokes",
    "extend_faint",
    "find_staves",
    "line_mask",
    "thick_line_share",
    "upright_strokes",
]

_LINES = 5
_MIN_STAFF_LENGTH = 6.0  # staff spaces
_BRIDGE = 4.0  # staff spaces: a staff's lines may be missing this long and it goes on
_THICK = 0.6  # staff spaces: a vertical stroke this tall through a line is not the line
_STROKE = 1.0  # staff spaces: a horizontal stroke shorter than this is not part of a line
_FAINT_WINDOW = 2.0  # staff spaces: the stretch over which a faint line's grey is averaged
_FAINT_SHARE = 0.3  # of the lines' darkness along the found staff that a faint line keeps
_FAINT_LEVELS = 8.0  # grey levels a faint line is darker than the paper between, at least
_FAINT_BRIDGE = 2  # windows in a row that may fail where the staff goes on (a clef, a chord)
_RULED = 0.5  # of a staff's weakest line, as long as a line one gap beyond may be: ruled paper
_EVEN = 0.3  # how far from their median four of a staff's five line lengths are, at most
_CROSSED = 0.9  # share of a staff's height a stroke must cover to cross it (barlines, stems)


def line_mask(
    ink: np.ndarray, metrics: StaffMetrics, length: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal strokes at least ``length`` staff spaces long, and the thin ones among
    them (uint8 masks, 255 = line). Where a beam lies on a staff line only the first has
    it."""
    space, thick = metrics.space, metrics.line_thickness
    # Close pin-holes first so noise inside a line does not cut it into short runs.
    closed = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, np.ones((1, 3), np.uint8))
    k = max(3, round(length * space))
    lines = cv2.morphologyEx(closed, cv2.MORPH_OPEN, np.ones((1, k), np.uint8))
    t_max = max(round(2 * thick) + 2, round(0.35 * space))
    thick_parts = cv2.morphologyEx(lines, cv2.MORPH_OPEN, np.ones((t_max, 1), np.uint8))
    return lines, cv2.subtract(lines, thick_parts)


def find_staves(
    ink: np.ndarray,
    metrics: StaffMetrics,
    masks: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[Staff]:
    """Five-line staves, top to bottom. ``masks`` is ``line_mask(ink, metrics)`` when the
    caller has it already."""
    space = metrics.space
    lines, thin = masks if masks is not None else line_mask(ink, metrics)
    raw = cv2.reduce(thin, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32F).ravel() / 255.0
    # Peaks are found on a profile smoothed over the line thickness (a thin line may
    # straddle two rows) and placed at the centroid of the raw profile; lines are compared
    # by length, the longest row within a line's thickness.
    win = max(1, round(metrics.line_thickness)) | 1
    smooth = np.convolve(raw, np.ones(win, np.float32) / win, mode="same")
    length = cv2.dilate(raw.reshape(-1, 1), np.ones((win, 1), np.uint8)).ravel()
    rows = _peaks(smooth, radius=max(1, int(0.3 * space)), floor=4.0 * space / win)
    centre = np.array([_centroid(raw, int(y), win // 2 + 1) for y in rows])
    # A staff's extent is read from strokes a staff space long: a faded or worn line is
    # broken into pieces that the line mask's three spaces drop.
    # Pin-holes are closed first, as for the line mask: noise must not cut a faint line
    # into pieces shorter than a space.
    closed = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, np.ones((1, 3), np.uint8))
    pieces = cv2.morphologyEx(closed, cv2.MORPH_OPEN, np.ones((1, max(3, round(space))), np.uint8))
    staves: list[Staff] = []
    for ys in _match_staves(centre, length[rows], length, space):
        staff = _make_staff(pieces, ys, metrics)
        if staff is not None:
            staves.append(staff)
    return staves


def extend_faint(gray: np.ndarray, staves: list[Staff], metrics: StaffMetrics) -> list[Staff]:
    """The staves with their ends carried on through faint lines (:func:`_faint_ends`) on
    the grayscale page ``gray`` they were found on; a staff found from what its lost lines
    left has no lines to follow."""
    r = max(1, round(metrics.line_thickness / 2))
    darkest = cv2.erode(gray, np.ones((2 * r + 1, 1), np.uint8))  # each row's line, if any
    out = []
    for staff in staves:
        if staff.lines_lost:
            out.append(staff)
            continue
        x0, x1 = _faint_ends(darkest, staff)
        out.append(replace(staff, x0=x0, x1=x1))
    return out


def _faint_ends(darkest: np.ndarray, staff: Staff) -> tuple[float, float]:
    """The staff's ends, carried on past its found extent (``x0``, ``x1``) where the
    threshold lost its lines (grey, thin, or broken into dots shorter than a space).
    ``darkest`` is the page with each pixel the darkest within a line's thickness up
    and down. Window by window of ``_FAINT_WINDOW`` spaces, the staff goes on while at
    least four of its five rows are darker than the rows halfway to their neighbours by
    ``_FAINT_SHARE`` of what they are along the staff's found extent (and by
    ``_FAINT_LEVELS`` grey levels at least). Text, a brace or notes beyond a staff's end
    do not line up so with its rows; the paper past its end keeps it where it was. Up to
    ``_FAINT_BRIDGE`` windows that fail are bridged when the next passes (a clef, a key
    signature or a chord darkens the rows between the lines). The staff ends in the middle
    of its last window when the lines fill only its inner half."""
    h, w = darkest.shape
    step = max(2, round(_FAINT_WINDOW * staff.space))
    ys = [min(h - 1, max(0, round(y))) for y in staff.line_ys]
    mids = [
        min(h - 1, max(0, round((a + b) / 2)))
        for a, b in zip(staff.line_ys, staff.line_ys[1:], strict=False)
    ]
    line_rows = darkest[ys].astype(np.float32)  # (5, w)
    mid_rows = darkest[mids].astype(np.float32)  # (4, w)

    def contrast(lo: int, hi: int) -> np.ndarray:
        lines = line_rows[:, lo:hi].mean(axis=1)
        between = mid_rows[:, lo:hi].mean(axis=1)
        beside = np.array([between[max(0, k - 1) : k + 1].mean() for k in range(_LINES)])
        return beside - lines

    found = contrast(max(0, int(staff.x0)), min(w, int(staff.x1) + 1))
    need = np.maximum(_FAINT_LEVELS, _FAINT_SHARE * found)

    def lined(window: tuple[int, int]) -> bool:
        return int((contrast(*window) >= need).sum()) >= _LINES - 1

    def window(edge: int, direction: int) -> tuple[int, int] | None:
        lo, hi = (edge, edge + step) if direction > 0 else (edge - step, edge)
        return (lo, hi) if lo >= 0 and hi <= w else None

    def walk(end: int, direction: int) -> int:
        last = None
        while True:
            edge, passed = end, None
            for _ in range(_FAINT_BRIDGE + 1):  # windows that fail are bridged
                near = window(edge, direction)
                if near is None:
                    break
                if lined(near):
                    passed = near
                    break
                edge = near[1] if direction > 0 else near[0]
            if passed is None:
                break
            last, end = passed, passed[1] if direction > 0 else passed[0]
        if last is not None:
            # a window the lines fill only in part may pass as a whole: its inner half only
            mid = (last[0] + last[1]) // 2
            if not lined((mid, last[1]) if direction > 0 else (last[0], mid)):
                end = mid
        return end

    x0 = walk(int(staff.x0), -1)
    x1 = walk(int(staff.x1) + 1, 1) - 1
    return float(min(x0, staff.x0)), float(max(x1, staff.x1))


def _peaks(profile: np.ndarray, radius: int, floor: float) -> np.ndarray:
    """Rows that are the maximum of the profile within +-radius and at least ``floor``."""
    size = 2 * radius + 1
    local_max = cv2.dilate(profile.reshape(-1, 1), np.ones((size, 1), np.uint8)).ravel()
    candidates = np.nonzero((profile >= local_max) & (profile >= floor))[0]
    # A flat top gives several equal rows: keep the first of each run.
    if candidates.size:
        keep = np.concatenate(([True], np.diff(candidates) > radius))
        candidates = candidates[keep]
    return candidates


def _match_staves(
    ys: np.ndarray, strength: np.ndarray, length: np.ndarray, space: float
) -> list[list[float]]:
    """Sets of five line positions (from the sorted peak positions ``ys`` of the given
    ``strength``) spaced evenly about one staff space (0.55-1.45 of the page's).

    Every pair of peaks one gap apart proposes a staff starting there; the remaining three
    lines must be found at multiples of the gap (one of them may be a weak line without a
    peak, read from the row-length profile ``length``). Proposals are accepted strongest
    first, never overlapping, and rejected when the even spacing continues beyond the five
    lines with comparable strength (ruled paper; ledger lines are much shorter).
    """
    if ys.size < _LINES - 1:
        return []
    proposals: list[tuple[list[float], list[float]]] = []
    for i, top in enumerate(ys.tolist()):
        lo = np.searchsorted(ys, top + 0.55 * space)
        hi = np.searchsorted(ys, top + 1.45 * space, side="right")
        for j in range(lo, hi):
            found = _follow(ys, strength, length, i, j)
            if found is not None:
                proposals.append(found)
    proposals.sort(key=lambda p: -min(p[0]))
    longest = max((float(np.median(p[0])) for p in proposals), default=0.0)
    accepted: list[list[float]] = []
    for strengths, lines in proposals:
        if any(
            lines[0] <= a[-1] + 0.5 * space and lines[-1] >= a[0] - 0.5 * space for a in accepted
        ):
            continue
        if _ruled(ys, strength, strengths, lines, longest):
            continue
        accepted.append(lines)
    return sorted(accepted)


def _follow(
    ys: np.ndarray, strength: np.ndarray, length: np.ndarray, i: int, j: int
) -> tuple[list[float], list[float]] | None:
    """Extends the peaks ``i`` and ``j`` to five evenly spaced lines: their strengths and
    positions, or None."""
    lines = [float(ys[i]), float(ys[j])]
    strengths = [float(strength[i]), float(strength[j])]
    gap = lines[1] - lines[0]
    tol = _tolerance(gap)
    missing = 0
    for k in range(2, _LINES):
        expected = lines[0] + k * gap
        n = int(np.searchsorted(ys, expected))
        near = [m for m in (n - 1, n) if 0 <= m < ys.size and abs(ys[m] - expected) <= tol]
        if near:
            best = min(near, key=lambda m: abs(ys[m] - expected))
            lines.append(float(ys[best]))
            strengths.append(float(strength[best]))
        else:
            # One line may lack a peak of its own (worn, or drowned in a beam).
            weak = _strength_at(length, expected, gap)
            if missing or weak < 0.3 * min(strengths):
                return None
            missing += 1
            lines.append(expected)
            strengths.append(weak)
        gap = (lines[-1] - lines[0]) / k  # refined, so errors do not add up along the staff
    return strengths, lines


def _ruled(
    ys: np.ndarray,
    strength: np.ndarray,
    strengths: list[float],
    lines: list[float],
    longest: float,
) -> bool:
    """Whether the five ``lines`` (of the given ``strengths``) are part of a ruling: the
    peaks ``ys`` (of ``strength``) go on one gap beyond them with a line ``_RULED`` as long
    as their weakest. Not when the five are long (their median half the ``longest`` of any
    five on the page at least) and even (four as long as their median, within ``_EVEN``:
    a beam may hide part of the fifth), and what lies beyond is short (under half that
    median: a tuplet bracket, a volta) or a lone line (on one side only and nothing a gap
    further: a tie, a bracket). Ruled paper's lines are all as long, and go on; a row of
    triplet brackets stacked on each other is short beside the page's staves."""
    gap = (lines[-1] - lines[0]) / (_LINES - 1)
    tol = _tolerance(gap)

    def at(y: float) -> float:
        near = np.abs(ys - y) <= tol
        return float(strength[near].max()) if near.any() else 0.0

    floor = _RULED * min(strengths)
    above, below = at(lines[0] - gap), at(lines[-1] + gap)
    if max(above, below) < floor:
        return False
    median = float(np.median(strengths))
    if median < 0.5 * longest:
        return True
    if sum(abs(v - median) <= _EVEN * median for v in strengths) < _LINES - 1:
        return True
    if max(above, below) < 0.5 * median:
        return False
    if above >= floor and below >= floor:
        return True
    further = at(lines[0] - 2 * gap) if above >= floor else at(lines[-1] + 2 * gap)
    return further >= floor


def _tolerance(gap: float) -> float:
    return max(2.0, 0.12 * gap)


def _strength_at(length: np.ndarray, y: float, gap: float) -> float:
    """The longest row near ``y`` (0 outside the page)."""
    tol = _tolerance(gap)
    lo, hi = max(0, int(round(y - tol))), min(length.size, int(round(y + tol)) + 1)
    return float(length[lo:hi].max()) if hi > lo else 0.0


def _make_staff(lines: np.ndarray, ys: list[float], metrics: StaffMetrics) -> Staff | None:
    space = metrics.space
    r = max(1, round(metrics.line_thickness))
    level = np.zeros(lines.shape[1])
    run = _longest_run(lines, ys, level, r, space)
    if run is None or run[1] - run[0] < _MIN_STAFF_LENGTH * space:
        return None
    # A curled page bends the lines away from their average rows towards the ends of the
    # staff; followed along the page, they go on to the staff's real ends. (Only a staff
    # found level is followed: a comb that may bend fits beams and brackets too.)
    bent = _longest_run(lines, ys, _line_shifts(lines, ys, r, space), r, space, within=run)
    x0, x1 = (min(run[0], bent[0]), max(run[1], bent[1])) if bent is not None else run
    return Staff(
        top=ys[0],
        bottom=ys[-1],
        line_ys=tuple(ys),
        x0=float(x0),
        x1=float(x1 - 1),
        space=(ys[-1] - ys[0]) / (_LINES - 1),
    )


def _longest_run(
    lines: np.ndarray,
    ys: list[float],
    shifts: np.ndarray,
    r: int,
    space: float,
    within: tuple[int, int] | None = None,
) -> tuple[int, int] | None:
    """The longest stretch [x0, x1) of columns where at least four of the five lines
    (``ys`` moved down by ``shifts`` rows, column by column) are present, or with
    ``within`` the longest that overlaps that stretch."""
    h, w = lines.shape
    columns = np.arange(w)
    present = np.zeros(w, np.int32)
    for y in ys:
        rows = np.round(y + shifts).astype(np.int64)
        hit = np.zeros(w, bool)
        for dy in range(-r - 1, r + 2):
            hit |= lines[np.clip(rows + dy, 0, h - 1), columns] > 0
        present += hit
    covered = present >= _LINES - 1
    # Bridge interruptions (a notehead drawn as a hole, a gap in a worn or faded line:
    # the line mask drops what is left of a line between gaps under three spaces apart).
    covered = _close_1d(covered, max(3, round(_BRIDGE * space)))
    runs = _runs(covered)
    if within is not None:
        runs = [(a, b) for a, b in runs if a < within[1] and b > within[0]]
    return max(runs, key=lambda r_: r_[1] - r_[0]) if runs else None


def _line_shifts(lines: np.ndarray, ys: list[float], r: int, space: float) -> np.ndarray:
    """How far (rows, per column) the staff's lines lie below ``ys`` across the page.

    ``ys`` are where the lines are on average; a curled or warped page bends them, by a
    quarter of a space or more at the ends of a long staff. The five lines are matched as
    one comb in blocks two staff spaces wide, from the block where they are plainest
    outwards, each block's shift within a row of its neighbour's: a slope of at most a
    twentieth, which a curl keeps to and a beam or a bracket does not (and a block
    without lines keeps the shift of the last one that had them)."""
    h, w = lines.shape
    block = max(8, round(2 * space))
    reach = max(2, round(0.5 * space))
    step = 1  # how many rows the lines may drift from block to block
    top = round(ys[0]) - reach - r - 1
    rows = np.arange(top, round(ys[-1]) + reach + r + 2)
    inside = (rows >= 0) & (rows < h)
    n = -(-w // block)
    band = np.zeros((rows.size, n * block), np.float32)
    band[inside, :w] = lines[rows[inside]] > 0
    profile = band.reshape(rows.size, n, block).sum(axis=2)  # (rows, blocks)
    # each line's ink within its thickness, for every shift
    thick = cv2.dilate(profile, np.ones((2 * r + 1, 1), np.uint8))
    offsets = np.arange(-reach, reach + 1)
    score = np.zeros((offsets.size, n), np.float32)
    for y in ys:
        at = round(y) - top + offsets
        score += thick[at]
    best = int(np.argmax(score.max(axis=0)))
    chosen = np.zeros(n, np.int64)
    chosen[best] = int(np.argmax(score[:, best]))
    for order in (range(best + 1, n), range(best - 1, -1, -1)):
        prev = chosen[best]
        for b in order:
            lo, hi = max(0, prev - step), min(offsets.size, prev + step + 1)
            window = score[lo:hi, b]
            # a block without lines, or no better elsewhere: the neighbour's shift stands
            if window.max() > window[prev - lo]:
                prev = lo + int(np.argmax(window))
            chosen[b] = prev
    return np.repeat(offsets[chosen], block)[:w].astype(np.float64)


def _centroid(profile: np.ndarray, y: int, r: int) -> float:
    """Centre of mass of the profile within +-r of row ``y``, above a quarter of its peak
    (so a neighbouring row of text does not pull the line)."""
    lo, hi = max(0, y - r), min(len(profile), y + r + 1)
    weights = profile[lo:hi].astype(np.float64)
    weights = np.clip(weights - 0.25 * weights.max(), 0, None)
    if weights.sum() <= 0:
        return float(y)
    return float(np.dot(np.arange(lo, hi), weights) / weights.sum())


def _close_1d(mask: np.ndarray, size: int) -> np.ndarray:
    m = mask.astype(np.uint8).reshape(1, -1) * 255
    closed = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((1, size), np.uint8))
    return closed.ravel() > 0


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.nonzero(edges == 1)[0]
    stops = np.nonzero(edges == -1)[0]
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def thick_line_share(
    ink: np.ndarray, staff: Staff, line_thickness: float, tall: float = _THICK
) -> float:
    """The share of the columns where ``staff``'s lines have ink in which that ink is part
    of a vertical stroke over ``tall`` staff spaces tall, or a stroke shorter than
    ``_STROKE`` spaces along the line. A staff line is thin and long: only stems, barlines
    and noteheads cross it, so the share is small (median 0.03 on degraded system crops).
    Five evenly spaced rows of text are not: their letters' strokes make the "lines"
    (0.5-0.9 on pages of text)."""
    h, w = ink.shape
    space = staff.space
    x0, x1 = max(0, int(staff.x0)), min(w, int(staff.x1) + 1)
    r = max(1, round(line_thickness / 2)) + 1
    y0, y1 = max(0, int(staff.top) - r - 1), min(h, int(staff.bottom) + r + 2)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 1.0
    band = ink[y0:y1, x0:x1]
    upright = cv2.morphologyEx(
        band, cv2.MORPH_OPEN, np.ones((max(3, round(tall * space)), 1), np.uint8)
    )
    closed = cv2.morphologyEx(band, cv2.MORPH_CLOSE, np.ones((1, 3), np.uint8))
    long = cv2.morphologyEx(
        closed, cv2.MORPH_OPEN, np.ones((1, max(3, round(_STROKE * space))), np.uint8)
    )
    thin = (band > 0) & (upright == 0) & (long > 0)
    inked = np.zeros(x1 - x0, np.int32)
    good = np.zeros(x1 - x0, np.int32)
    for y in staff.line_ys:
        lo, hi = max(0, round(y) - r - y0), min(y1 - y0, round(y) + r + 1 - y0)
        inked += (band[lo:hi] > 0).any(axis=0)
        good += thin[lo:hi].any(axis=0)
    if inked.sum() == 0:
        return 1.0
    return float(1.0 - good.sum() / inked.sum())


def crossing_strokes(ink: np.ndarray, staff: Staff) -> int:
    """How many vertical strokes (barlines, long stems) run through ``staff`` from its top
    line to its bottom one, or within ``_CROSSED`` of that: separate groups of columns of
    ``ink`` inked so far. Music has them in every measure; five rows of text, whose
    letters are a leading tall, have none, however blurred their strokes are."""
    return upright_strokes(ink, (staff.x0, staff.top, staff.x1, staff.bottom), _CROSSED)


def upright_strokes(ink: np.ndarray, box: tuple[float, float, float, float], reach: float) -> int:
    """How many separate groups of columns of ``ink`` within ``box`` (x0, y0, x1, y1)
    hold an unbroken vertical run of ink ``reach`` of the box's height long, a pixel's
    lean allowed (each column taken with its neighbours)."""
    h, w = ink.shape
    x0, x1 = max(0, int(box[0])), min(w, int(box[2]) + 1)
    y0, y1 = max(0, round(box[1])), min(h, round(box[3]) + 1)
    if x1 - x0 < 1 or y1 - y0 < 2:
        return 0
    band = (ink[y0:y1, x0:x1] > 0).astype(np.uint8)
    band = cv2.dilate(band, np.ones((1, 3), np.uint8))
    # the longest vertical run of ink in each column, from the run lengths down the band
    run = np.zeros(x1 - x0, np.int32)
    longest = np.zeros(x1 - x0, np.int32)
    for row in band:
        run = (run + 1) * row
        np.maximum(longest, run, out=longest)
    return len(_runs(longest >= reach * (y1 - y0)))
