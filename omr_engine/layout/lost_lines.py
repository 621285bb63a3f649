"""Staves whose lines the scan lost, found from the marks the lines left on stems.

Thin staff lines under thinned ink and a hard threshold (a pale photocopy, a binarizing
scanner set too light) can vanish while the heavier symbols stay: noteheads, stems,
beams, barlines and clefs float on white paper. Where a line crossed a stem or a barline
the two strokes' ink added up, so the stroke keeps a small bump there, one or two pixels
to either side, at every line it crossed. Those bumps are the lines' positions:

1. Vertical strokes (stems, barlines) are the ink that a vertical opening keeps. Along
   each, the rows a little wider than the stroke itself are bumps; the rows much wider
   are a notehead, beam or flag, near which bumps are not counted.
2. Bumps are spaced by whole staff spaces along one stroke, so the common distances
   between neighbouring bumps, and a quarter of the common height of strokes that carry
   nothing (barlines), are the staff spaces tried; the one whose staves account for the
   most bumps wins. The row profile of all bumps peaks once per line; a stretch of line
   that survived adds to it (it leaves no bump on the strokes it crosses).
3. A path of peaks one space apart (stepping over at most one missing line) is a staff:
   of a path longer than five lines (stems of notes on ledger lines cross those too)
   the five with the most bumps, of a shorter one the five lines that hold it and that
   the barlines start and end at. A staff needs four lines with bumps, or two barlines,
   or a barline and two lines.
4. A staff printed much paler than the page's others is the back of the sheet showing
   through, and is dropped.

The result is a list of :class:`Staff` in the deskewed page, kept clear of the staves
found from their lines (see ``analyze_page``). The search runs only where stems stand
away from those staves, so a page that lost no line costs a look at the page halved.
"""

from __future__ import annotations

import cv2
import numpy as np

from .ink import StaffMetrics
from .staves import _close_1d, _runs, line_mask
from .structures import Staff

__all__ = ["find_lost_staves"]

_LINES = 5
_MIN_BUMPS = 3  # bumps a line needs to count as a peak of the profile
_MIN_CHAIN = 3  # lines with bumps a path needs before it is completed to a staff
_CLEAR = 2.0  # staff spaces: a staff found here keeps this far from a staff found from its lines
_BRIDGE = 4.0  # staff spaces: gaps in a staff's ink this long do not end it
_MIN_LENGTH = 6.0  # staff spaces: the shortest staff
_OPENING = 10.0  # staff spaces: the shortest opening line (two staves and a gap)
_SPECK, _SPECK_SPACES = 12, 0.05  # pixels, square spaces: ink smaller than both is a speck
_FIRST_GUESS = 10.0  # pixels: the staff space the strokes are first looked for at
_MIN_SPACE, _MAX_SPACE = 6, 60  # pixels: staff spaces tried (the page is analysed reduced)
_TRIES = 4  # distances between bumps tried as the staff space
_STEM = 2.5  # staff spaces: strokes shorter than this are letters, not stems (size known)
_SURVIVOR = 6.0  # staff spaces: a surviving piece of line is this long (a beam is shorter);
# each such length counts as one bump
_BAR = (3.85, 4.25)  # staff spaces: the height of a barline through one staff
_MOST_BUMPS = 20.0  # bumps a surviving line counts for at most
_PALE = 0.5  # share of the way from the page's ink to its paper a staff's ink may be
_NEAR = 4.0  # staff spaces: a stem centred this close to a staff is one of its notes'
_MIN_STROKES = 8  # stems and barlines away from the staves found that make a search
_STEMS = 3.0  # a staff space is at least this many stem widths
_SAME_SIZE = 1.15  # a staff found so is within this factor of the size of the page's others


def find_lost_staves(
    ink: np.ndarray,
    space: float,
    known: list[Staff],
    gray: np.ndarray | None = None,
    sized: list[Staff] | None = None,
) -> list[Staff]:
    """Staves (top to bottom) whose lines are missing from the deskewed ink mask ``ink``
    (uint8, 255 = ink), found from the bumps the lines left on stems and barlines.
    ``space`` is a first guess of the staff space, used only where the bumps do not tell
    it; the staves found keep ``_CLEAR`` spaces from those in ``known``. With the page's
    grey image ``gray`` (the ink mask's source), a staff printed much paler than the
    page's darkest staves is dropped: it is the back of the page showing through. The
    staves found are within ``_SAME_SIZE`` of the size of ``sized`` (by default
    ``known``): staves found in part from their lines or dashes tell the size well.

    The page's run-length estimate of the space is unreliable without lines, so the
    strokes are first looked for at a small scale, which finds stems of any size, and
    the staff spaces the bumps and barlines suggest are each tried: the one whose staves
    account for the most bumps wins (half the true space finds staves of two or three
    lines, which fail)."""
    if known and not _strokes_away(ink, known):
        return []
    guess = min(space, _FIRST_GUESS)
    strokes = _strokes(ink, guess)
    if not strokes:
        return []
    _, gaps = _bumps(ink, strokes, guess)
    # A staff space is several stems wide; a page's staves share one size.
    lo = max(_MIN_SPACE, _STEMS * float(np.median([s[2] for s in strokes])))
    hi = _MAX_SPACE
    sized = known if sized is None else sized
    if sized:
        size = float(np.median([s.space for s in sized]))
        lo, hi = max(lo, size / _SAME_SIZE), min(hi, size * _SAME_SIZE)
    candidates = _spaces(gaps, [b - t for t, b in _free_strokes(ink, strokes, guess)])
    if sized:
        candidates.append(size)
    best: tuple[float, list[Staff]] = (0.0, [])
    for candidate in candidates:
        if not lo <= candidate <= hi:
            continue
        staves, explained = _staves_at(ink, candidate, known)
        if explained > best[0]:
            best = (explained, staves)
    staves = best[1]
    if gray is not None and staves:
        staves = _drop_pale(gray, ink, staves, known)
    return staves


def _drop_pale(
    gray: np.ndarray, ink: np.ndarray, staves: list[Staff], known: list[Staff]
) -> list[Staff]:
    """``staves`` without those whose ink is paler than half-way from the page's ink
    (that of the staves in ``known``, else the darkest of ``staves``) to its paper."""

    def tone(staff: Staff) -> float:
        lo = max(0, int(staff.top - staff.space))
        hi = int(staff.bottom + staff.space) + 1
        x0, x1 = max(0, int(staff.x0)), int(staff.x1) + 1
        mask = ink[lo:hi, x0:x1] > 0
        return float(np.median(gray[lo:hi, x0:x1][mask])) if mask.any() else 255.0

    reference = min(tone(s) for s in (known or staves))
    paper = float(np.median(gray))
    return [s for s in staves if tone(s) <= reference + _PALE * (paper - reference)]


def _strokes_away(ink: np.ndarray, known: list[Staff]) -> bool:
    """Whether at least ``_MIN_STROKES`` stems or barlines stand away from the staves
    found from their lines (on a page that lost none, every stem stands on those). Looked
    for on the page halved, which is plenty to see a stem and four times as quick."""
    size = float(np.median([s.space for s in known]))
    half = cv2.resize(ink, (ink.shape[1] // 2, ink.shape[0] // 2), interpolation=cv2.INTER_AREA)
    half = (half >= 64).astype(np.uint8)
    strokes = _strokes(half, size / 2)
    away = [(y + h / 2) * 2 for _, y, _, h in strokes if h >= _STEM * size / 2]
    away = [
        y
        for y in away
        if not any(k.top - _NEAR * size <= y <= k.bottom + _NEAR * size for k in known)
    ]
    return len(away) >= _MIN_STROKES


def _staves_at(ink: np.ndarray, space: float, known: list[Staff]) -> tuple[list[Staff], float]:
    """The staves found with the staff space ``space``, and how many bumps lie on their
    lines."""
    strokes = _strokes(ink, space)
    bumps, _ = _bumps(ink, strokes, space)
    profile = np.bincount(np.round(bumps).astype(int), minlength=ink.shape[0]).astype(np.float32)
    # A line that survived in places leaves no bump where it crosses a stroke (the
    # stroke is wider all along it), but it is a long thin run of ink: it counts as the
    # bumps of the strokes it would cross, one per ``_SURVIVOR`` spaces of its length.
    thin = line_mask(ink, StaffMetrics(max(1.0, 0.1 * space), space), _SURVIVOR)[1]
    run = cv2.reduce(thin, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32F).ravel() / 255.0
    profile += np.minimum(run / (_SURVIVOR * space), _MOST_BUMPS)
    profile = np.convolve(profile, np.array([0.25, 0.5, 0.25], np.float32), mode="same")
    bars = _free_strokes(ink, strokes, space)
    candidates = [
        w for chain in _chains(_peaks(profile, space), profile, space) for w in _windows(chain)
    ]
    candidates += [
        [t + i * (b - t) / (_LINES - 1) for i in range(_LINES)]
        for t, b in bars
        if _BAR[0] * space <= b - t <= _BAR[1] * space
    ]
    tol = 0.25 * space
    scored = []
    for ys in candidates:
        lines = sum(_strength(profile, y, space) >= 0.5 * _MIN_BUMPS for y in ys)
        n_bars = sum(1 for t, b in bars if abs(t - ys[0]) <= tol and abs(b - ys[-1]) <= tol)
        if lines >= 4 or n_bars >= 2 or (n_bars and lines >= 2):
            scored.append((lines + 2 * min(n_bars, 3), _support(profile, ys, space), ys))
    scored.sort(key=lambda c: (-c[0], -c[1]))
    staves: list[Staff] = []
    explained = 0.0
    for _, support, ys in scored:
        top, bottom = ys[0], ys[-1]
        if any(
            top - _CLEAR * space < s.bottom and bottom + _CLEAR * space > s.top
            for s in [*known, *staves]
        ):
            continue
        extent = _extent(ink, top, bottom, space, strokes)
        if extent is None:
            continue
        explained += support
        staves.append(
            Staff(
                top=top,
                bottom=bottom,
                line_ys=tuple(ys),
                x0=extent[0],
                x1=extent[1],
                space=(bottom - top) / (_LINES - 1),
                lines_lost=True,
            )
        )
    return sorted(staves, key=lambda s: s.top), explained


def _spaces(gaps: list[float], bar_heights: list[float]) -> list[float]:
    """Staff spaces to try: the commonest distances between neighbouring bumps on one
    stroke (local maxima of their histogram), and a quarter of the commonest barline
    height."""
    out: list[float] = []
    g = np.asarray(gaps)
    g = g[(g >= _MIN_SPACE) & (g <= _MAX_SPACE)]
    if g.size >= 10:
        hist = np.convolve(np.bincount(np.round(g).astype(int)), np.ones(3), mode="same")
        maxima = [
            i
            for i in range(1, hist.size - 1)
            if hist[i] >= hist[i - 1] and hist[i] > hist[i + 1] and hist[i] >= 5
        ]
        for i in sorted(maxima, key=lambda i: -hist[i])[:_TRIES]:
            near = g[np.abs(g - i) <= 1.5]
            out.append(float(near.mean()))
    if len(bar_heights) >= 2:
        h = np.asarray(bar_heights)
        hist = np.convolve(np.bincount(np.round(h).astype(int)), np.ones(3), mode="same")
        mode = int(np.argmax(hist))
        if hist[mode] >= 2:
            out.append(float(h[np.abs(h - mode) <= 1.5].mean()) / (_LINES - 1))
    return out


def _support(profile: np.ndarray, ys: list[float], space: float) -> float:
    return sum(_strength(profile, y, space) for y in ys)


def _windows(chain: list[float]) -> list[list[float]]:
    """Every five evenly spaced rows that hold the chain's rows or lie within it."""
    step = (chain[-1] - chain[0]) / (len(chain) - 1)
    if len(chain) >= _LINES:
        return [chain[i : i + _LINES] for i in range(len(chain) - _LINES + 1)]
    out = []
    for before in range(_LINES - len(chain) + 1):
        top = chain[0] - before * step
        out.append([top + i * step for i in range(_LINES)])
    return out


def _strokes(ink: np.ndarray, space: float) -> list[tuple[int, int, int, int]]:
    """Thin vertical strokes at least two spaces tall: (x, y, width, height)."""
    k = max(6, round(1.2 * space))
    vertical = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((k, 1), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(vertical, connectivity=8)
    widest = max(3, round(0.35 * space))
    return [
        (int(x), int(y), int(w), int(h))
        for x, y, w, h, _ in stats[1:n]
        if w <= widest and h >= 2 * space
    ]


def _widths(ink: np.ndarray, stroke: tuple[int, int, int, int], space: float) -> np.ndarray:
    """Ink per row across the stroke and a little to either side of it."""
    x, y, w, h = stroke
    reach = max(2, round(0.25 * space))
    region = ink[y : y + h, max(0, x - reach) : x + w + reach]
    return np.count_nonzero(region, axis=1)


def _bumps(
    ink: np.ndarray, strokes: list[tuple[int, int, int, int]], space: float
) -> tuple[list[float], list[float]]:
    """Rows of the bumps on all strokes, and the distances between neighbouring bumps on
    one stroke."""
    small = max(3, round(0.2 * space))  # a bump: a line's remnant either side
    near = max(1, round(0.3 * space))  # rows near a notehead or beam are not read
    bumps: list[float] = []
    gaps: list[float] = []
    for stroke in strokes:
        width = _widths(ink, stroke, space)
        base = float(np.median(width))
        extra = width - base
        blob = extra > small
        if blob.any():
            blob = cv2.dilate(blob.astype(np.uint8).reshape(-1, 1), np.ones((2 * near + 1, 1)))
            blob = blob.ravel() > 0
        bump = (extra >= 1) & (extra <= small) & ~blob
        rows = [
            stroke[1] + (a + b - 1) / 2.0
            for a, b in _runs(bump)
            if b - a <= max(3, round(0.25 * space))
        ]
        bumps.extend(rows)
        gaps.extend(np.diff(rows).tolist())
    return bumps, gaps


def _peaks(profile: np.ndarray, space: float) -> np.ndarray:
    radius = max(1, int(0.3 * space))
    local = cv2.dilate(profile.reshape(-1, 1), np.ones((2 * radius + 1, 1))).ravel()
    rows = np.nonzero((profile >= local) & (profile >= 0.5 * _MIN_BUMPS))[0]
    if rows.size:
        rows = rows[np.concatenate(([True], np.diff(rows) > radius))]
    return rows


def _centroid(profile: np.ndarray, row: int, space: float) -> float:
    r = max(1, int(0.25 * space))
    lo, hi = max(0, row - r), min(profile.size, row + r + 1)
    w = profile[lo:hi]
    return float((np.arange(lo, hi) * w).sum() / w.sum()) if w.sum() > 0 else float(row)


def _chains(peaks: np.ndarray, profile: np.ndarray, space: float) -> list[list[float]]:
    """Paths of peaks one staff space apart (within a fifth of a space), weaker peaks in
    between skipped (a beam's edge or a ledger line's bump). A path may step over one
    line without bumps (a line that survived, so that nothing stands out on the strokes
    it crosses); its row is filled in."""
    ys = [_centroid(profile, int(row), space) for row in peaks.tolist()]

    def step(i: int, gap: float) -> int | None:
        near = [j for j in range(i + 1, len(ys)) if abs(ys[j] - ys[i] - gap) <= 0.2 * space]
        return min(near, key=lambda j: abs(ys[j] - ys[i] - gap)) if near else None

    following: dict[int, tuple[int, bool]] = {}
    for i in range(len(ys)):
        j = step(i, space)
        if j is not None:
            following[i] = (j, False)
        elif (j := step(i, 2 * space)) is not None:
            following[i] = (j, True)
    starts = sorted(set(range(len(ys))) - {j for j, _ in following.values()})
    chains = []
    for i in starts:
        chain, holes = [ys[i]], 0
        while i in following:
            j, hole = following[i]
            if hole:
                if holes:
                    break
                holes += 1
                chain.append((ys[i] + ys[j]) / 2)
            i = j
            chain.append(ys[i])
        if len(chain) - holes >= _MIN_CHAIN:
            chains.append(chain)
    return chains


def _strength(profile: np.ndarray, y: float, space: float) -> float:
    r = max(1, int(0.25 * space))
    lo, hi = max(0, int(round(y)) - r), min(profile.size, int(round(y)) + r + 1)
    return float(profile[lo:hi].sum()) if hi > lo else 0.0


def _free_strokes(
    ink: np.ndarray, strokes: list[tuple[int, int, int, int]], space: float
) -> list[tuple[float, float]]:
    """(top, bottom) of the strokes that carry nothing along them: barlines, as far as
    the strokes' widths tell (a stem has its notehead, beam or flag at one end)."""
    small = max(3, round(0.2 * space))
    out = []
    for stroke in strokes:
        width = _widths(ink, stroke, space)
        if not (width - np.median(width) > small).any():
            out.append((float(stroke[1]), float(stroke[1] + stroke[3] - 1)))
    return out


def _extent(
    ink: np.ndarray,
    top: float,
    bottom: float,
    space: float,
    strokes: list[tuple[int, int, int, int]],
) -> tuple[float, float] | None:
    """Where the staff starts and ends: from its first to its last stretch of ink between
    its outer lines (specks of noise left out, and stretches shorter than a space; gaps
    up to ``_BRIDGE`` spaces bridged), started at the system's opening line when one
    stands there with ink before it (a part's name)."""
    lo, hi = max(0, int(round(top))), min(ink.shape[0], int(round(bottom)) + 1)
    band = ink[lo:hi]
    # Specks of noise, which a scan's paper is strewn with, are not the staff's ink.
    n, labels, stats, _ = cv2.connectedComponentsWithStats(band, connectivity=8)
    big = np.zeros(n, bool)
    big[1:] = stats[1:, cv2.CC_STAT_AREA] >= max(_SPECK, _SPECK_SPACES * space * space)
    inked = _close_1d(big[labels].any(axis=0), max(3, round(_BRIDGE * space)))
    runs = [(a, b) for a, b in _runs(inked) if b - a >= space]
    if not runs:
        return None
    x0, x1 = float(runs[0][0]), float(runs[-1][1] - 1)
    if x1 - x0 < _MIN_LENGTH * space:
        return None
    # The opening line joins the system's staves, so it runs on through another staff (a
    # barline stops at this one's outer lines, a stem is a few spaces long).
    reach = 0.3 * space
    openings = [
        x + (w - 1) / 2.0
        for x, y, w, h in strokes
        if y <= top + reach
        and y + h - 1 >= bottom - reach
        and h >= _OPENING * space
        and x0 + space < x < x0 + 0.3 * (x1 - x0)
    ]
    if openings:
        x0 = min(openings)
    return x0, x1
