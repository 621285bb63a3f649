"""Skew estimation and correction.

The page is cut into narrow vertical strips and each strip's row profile (ink per row) is
taken once. For a candidate angle the strips are shifted by ``x * tan(angle)`` and summed;
when the angle matches the staff lines', their ink piles up in a few rows and the sum of
squares of the profile peaks. A coarse search on smoothed profiles (whose peak is wide
enough for a coarse grid) is followed by a fine one on the raw profiles.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .structures import rotation_matrix

__all__ = ["MAX_SKEW_DEGREES", "estimate_skew", "estimate_skew_from_stems", "rotate"]

MAX_SKEW_DEGREES = 6.0
_COARSE_STEP = 0.2
_FINE_STEP = 0.01
_MIN_STEMS = 20  # strokes a lean is read from


def estimate_skew(ink: np.ndarray, space: float) -> float:
    """Angle in degrees by which the page's lines rise to the right (counter-clockwise as
    displayed), within +-``MAX_SKEW_DEGREES``; 0.0 when nothing line-like is found."""
    h, w = ink.shape
    strip = int(np.clip(round(1.5 * space), 8, 64))
    n = w // strip
    if n < 4 or h < 4 * space:
        return 0.0
    # Mean ink per row of each strip, (H, n); INTER_AREA averages exactly over the strip.
    profiles = cv2.resize(ink[:, : n * strip], (n, h), interpolation=cv2.INTER_AREA)
    profiles = profiles.astype(np.float32)
    offsets = (np.arange(n) + 0.5) * strip - w / 2.0
    smooth = cv2.blur(profiles, (1, max(3, int(space / 2) | 1)))

    coarse = np.arange(-MAX_SKEW_DEGREES, MAX_SKEW_DEGREES + 1e-9, _COARSE_STEP)
    scores = _scores(smooth, offsets, coarse)
    best = float(coarse[int(np.argmax(scores))])
    fine = np.arange(best - _COARSE_STEP, best + _COARSE_STEP + 1e-9, _FINE_STEP)
    fine_scores = _scores(profiles, offsets, fine)
    if fine_scores.max() <= _scores(profiles, offsets, np.array([0.0]))[0] * 1.0001:
        return 0.0
    return round(float(fine[int(np.argmax(fine_scores))]), 3)


def estimate_skew_from_stems(ink: np.ndarray, space: float) -> float | None:
    """The skew (as :func:`estimate_skew` gives it) read from stems and barlines, which
    stand at right angles to the staff lines: the median lean of the thin vertical
    strokes at least three spaces tall, each fitted by its rows' centres. For a page whose
    staff lines are lost, where :func:`estimate_skew` lines up beams and noteheads
    instead. None with fewer than ``_MIN_STEMS`` strokes, or when they lean further than
    ``MAX_SKEW_DEGREES`` (italic text leans 10-14 degrees)."""
    k = max(6, round(1.2 * space))
    vertical = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((k, 1), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(vertical, connectivity=8)
    widest = max(3, round(0.35 * space)) + 2  # a leaning stroke is a little wider
    leans = []
    reach = 2 + round(0.1 * space)
    for i in range(1, n):
        x, y, w, h, _ = stats[i]
        if h < 3 * space or w > widest + h * math.tan(math.radians(MAX_SKEW_DEGREES)):
            continue
        # The opening keeps a leaning stroke as steps of vertical runs; its own ink, a
        # little to either side, leans as the stroke does.
        x0, x1 = max(0, x - reach), min(ink.shape[1], x + w + reach)
        part = ink[y : y + h, x0:x1] > 0
        counts = part.sum(axis=1)
        plain = (counts > 0) & (counts <= np.median(counts) + 1)  # no notehead or beam
        if plain.sum() < 2 * space:
            continue
        ys = np.nonzero(plain)[0]
        centres = (part[plain] * np.arange(x1 - x0)).sum(axis=1) / counts[plain]
        leans.append(np.polyfit(ys, centres, 1)[0])
    if len(leans) < _MIN_STEMS:
        return None
    # Turned counter-clockwise by a (lines rising to the right), a vertical's foot moves
    # right of its head: dx/dy = tan(a).
    degrees = float(math.degrees(math.atan(np.median(leans))))
    if abs(degrees) > MAX_SKEW_DEGREES:
        return None  # italic letters, not a page turned further than the lines are sought
    return round(degrees, 3)


def _scores(profiles: np.ndarray, offsets: np.ndarray, angles: np.ndarray) -> np.ndarray:
    h, n = profiles.shape
    pad = int(math.ceil(np.abs(offsets).max() * math.tan(math.radians(MAX_SKEW_DEGREES + 1))))
    cols = [np.ascontiguousarray(profiles[:, j]) for j in range(n)]
    out = np.empty(len(angles), dtype=np.float64)
    acc = np.empty(h + 2 * pad, dtype=np.float32)
    for k, angle in enumerate(angles):
        # A line rising to the right sits higher (smaller y) in strips further right, so
        # strip j is moved down by offset * tan(angle) to line up with the centre.
        shifts = np.rint(offsets * math.tan(math.radians(angle))).astype(int) + pad
        acc.fill(0.0)
        for col, s in zip(cols, shifts, strict=True):
            acc[s : s + h] += col
        out[k] = float(np.dot(acc, acc))
    return out


def rotate(image: np.ndarray, degrees: float, border: int = 255) -> np.ndarray:
    """``image`` rotated about its centre by ``degrees`` (counter-clockwise as displayed),
    the size kept, uncovered corners filled with ``border``."""
    h, w = image.shape[:2]
    return cv2.warpAffine(
        image,
        rotation_matrix(image.shape, degrees),
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border,
    )
