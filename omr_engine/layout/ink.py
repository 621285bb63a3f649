"""Ink mask and staff metrics: the two measurements every later layout step is scaled by.

The staff-line thickness and the staff space come from the classic run-length statistic of
optical music recognition: along every column, the most common length of a black run is
the line thickness, and the most common distance from one black run's start to the next
one's is the line-to-line distance (space plus thickness). Staff lines are by far the most
repeated structure on a page of music, so both modes are robust to notes, text and noise.

A page whose paper is not evenly white (a lamp to one side, a curled page, a photocopy) is
flattened first (:func:`flatten_background`), so that one threshold suits all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["StaffMetrics", "binarize", "estimate_staff_metrics", "flatten_background"]

_MIN_CONTRAST = 40  # grey levels between paper and ink; below this a page is blank
_NOISY = 4.0  # grey levels of noise above which the page is smoothed before thresholding
_BACKGROUND = 3.0  # staff spaces: the window in which the paper's grey is found
_EVEN = 12.0  # grey levels: paper more even than this is left alone
_MIN_SPACE, _MAX_SPACE = 4, 160  # pixels: about 60 dpi at the smallest, 1200 at the largest


@dataclass(frozen=True)
class StaffMetrics:
    """``line_thickness`` and ``space`` (line centre to line centre) in pixels."""

    line_thickness: float
    space: float


def binarize(image: np.ndarray, threshold: float | None = None) -> tuple[np.ndarray, float]:
    """Ink mask (uint8, 255 = ink) and the threshold used (given, or found here).

    The threshold lies half-way between Otsu's and the paper's grey: thin staff lines
    at 150 dpi are anti-aliased to a mid grey that Otsu's threshold would drop. A noisy
    page is smoothed first, and the threshold kept clear of the paper's noise. A page
    without contrast (blank paper) gives an empty mask.
    """
    if threshold is None:
        threshold = _threshold(image)
        if threshold is None:
            return np.zeros_like(image), 0.0
    noise = _noise(image)
    if noise > _NOISY:
        image = cv2.GaussianBlur(image, (0, 0), 0.8)
    _, mask = cv2.threshold(image, threshold, 255, cv2.THRESH_BINARY_INV)
    return mask, float(threshold)


def flatten_background(image: np.ndarray, space: float) -> np.ndarray:
    """``image`` with its paper made evenly white: each pixel divided by the paper's grey
    around it (the brightest grey within about ``_BACKGROUND`` staff spaces, which no
    symbol is as thick as, smoothed). Shading from a lamp, a page's curl or a photocopier
    leaves a page darker at one side; one global threshold then drops the staff lines
    where the paper is dark, or inks the paper. The original is returned unchanged when
    its paper is already even (within ``_EVEN`` grey levels).

    :func:`.photo.flatten_lighting` does the same for photos when a page is loaded, at a
    scale read from the image's size; this one runs on every image the layout is given
    (scanned and PDF pages, crops a few staves high) at a scale read from the staff
    space, and costs 1-3 ms on an evenly lit page."""
    h, w = image.shape
    # The paper's grey is smooth: it is estimated on the image halved while a staff space
    # stays 4 pixels or more.
    small, f = image, 1
    while space / (2 * f) >= 4 and min(small.shape) >= 32:
        small, f = cv2.pyrDown(small), 2 * f
    k = max(3, int(round(_BACKGROUND * space / f)) | 1)
    paper = cv2.dilate(small, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    paper = cv2.blur(paper, (k, k))
    lo, hi = np.percentile(paper, (2, 98))
    if hi - lo < _EVEN:
        return image
    paper = cv2.resize(np.maximum(paper, 1), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.divide(image, paper, scale=float(hi))


def _threshold(image: np.ndarray) -> float | None:
    noise = _noise(image)
    if noise > _NOISY:
        image = cv2.GaussianBlur(image, (0, 0), 0.8)
        noise = _noise(image)
    sample = np.ascontiguousarray(image[::3, ::3])
    hist = np.bincount(sample.ravel(), minlength=256)
    cdf = np.cumsum(hist) / sample.size
    darkest = int(np.searchsorted(cdf, 0.0005))  # a short piece inks little of a page
    paper = int(np.searchsorted(cdf, 0.5))
    if paper - darkest < _MIN_CONTRAST:
        return None
    otsu, _ = cv2.threshold(sample, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return float(min(otsu + 0.5 * (paper - otsu), paper - 4.0 * noise - 1))


def _noise(image: np.ndarray) -> float:
    """Robust estimate of the grey-level noise (standard deviation) of the paper, from
    differences of horizontally adjacent pixels."""
    rows = image[::8].astype(np.int16)
    diff = np.abs(rows[:, 1:] - rows[:, :-1])
    return float(np.median(diff)) * 1.4826 / np.sqrt(2.0)


def estimate_staff_metrics(ink: np.ndarray) -> StaffMetrics | None:
    """Staff-line thickness and staff space from vertical run lengths, or None when the
    page has too little ink to tell."""
    step = max(1, ink.shape[1] // 600)  # a few hundred columns are plenty for the histogram
    cols = (ink[:, ::step] > 0).T.astype(np.int8)  # (columns, rows)
    edges = np.diff(np.pad(cols, ((0, 0), (1, 1))), axis=1)
    col_s, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    if starts.size < 50:
        return None
    black = ends - starts
    same = col_s[1:] == col_s[:-1]
    pitch = (starts[1:] - starts[:-1])[same]  # black run start to next black run start
    black_hist = np.bincount(black[black <= _MAX_SPACE], minlength=_MAX_SPACE + 1)
    pitch_hist = np.bincount(pitch[pitch <= _MAX_SPACE], minlength=_MAX_SPACE + 1)
    pitch_hist[:_MIN_SPACE] = 0
    if black_hist.sum() == 0 or pitch_hist.sum() == 0:
        return None
    return StaffMetrics(_refined_mode(black_hist), _refined_mode(pitch_hist))


def _refined_mode(hist: np.ndarray) -> float:
    """The histogram's mode, refined to a fraction by the mean of it and its neighbours."""
    m = int(np.argmax(hist))
    lo, hi = max(0, m - 1), min(len(hist), m + 2)
    weights = hist[lo:hi].astype(np.float64)
    return float(np.dot(np.arange(lo, hi), weights) / weights.sum())
