"""Keystone (perspective) correction from the music itself, for a page whose edges are not
in the picture.

A camera held at an angle to the page turns parallel lines into lines that meet: the
staff lines of different systems slope differently, and stems and barlines lean more on
one side of the page than on the other. A rotation cannot undo that (the layout's deskew
is a rotation), so barlines stop being vertical after it and measures are lost.

Here the page's own lines are measured: long, nearly horizontal segments (staff lines)
and short, nearly vertical ones (stems and barlines), found with OpenCV's line segment
detector (LSD) on a reduced copy. Each family should meet in one vanishing point; each
point is the least-squares intersection of its segments, weighted by length (a point at
infinity, when the lines are parallel, comes out of the same fit). A homography that
sends both points back to infinity, in the horizontal and vertical directions, makes the
staff lines parallel and the barlines upright again (affine rectification, Hartley and
Zisserman, section 2.7); it is scaled to keep the page's size at its centre.

It runs only when the fitted lines really disagree in slope across the region they cover,
by more than :data:`MIN_SPREAD_DEG` for staff lines or :data:`MIN_UPRIGHT_SPREAD_DEG` for
stems (a plain rotation is left to the deskew), when the staff lines meet their point
within a quarter of a degree and the stems within 0.4 degrees, and when enough lines were
found; otherwise the image comes back as it was.
"""

from __future__ import annotations

import cv2
import numpy as np

from .ink import binarize, estimate_staff_metrics

__all__ = ["MIN_SPREAD_DEG", "keystone_homography", "correct_keystone"]

MIN_SPREAD_DEG = 0.35  # staff-line slopes that differ this much call for a correction
MIN_UPRIGHT_SPREAD_DEG = 0.6  # stems are short, their slopes noisier: a larger margin
MAX_SPREAD_DEG = 12.0  # more than this is not a page photographed at an angle: leave it
_WORK_SIDE = 1600  # pixels: lines are found on a reduced copy
_MAX_TILT_DEG = 12.0  # segments further than this from horizontal/vertical are ignored
_FAMILY_DEG = 3.0  # a family's lines turn by less than this across a page
_MIN_SEGMENTS = 12
_MIN_STAFF_SEGMENTS = 20  # fewer staff-line pieces than this cannot show a convergence
_MAX_RESIDUAL_DEG = 0.25  # median misfit of the staff lines to their vanishing point
# Stems are short and their slopes noisier (as for MIN_UPRIGHT_SPREAD_DEG): a photographed
# degraded MuseScore page whose staff lines met their point within 0.055 degrees had stems
# at 0.355, and left uncorrected it lost two of its four staves.
_MAX_UPRIGHT_RESIDUAL_DEG = 0.4


def _segments(image: np.ndarray) -> np.ndarray:
    """Line segments (x0, y0, x1, y1) found by OpenCV's line segment detector (LSD)."""
    found = cv2.createLineSegmentDetector().detect(image)[0]
    if found is None:
        return np.zeros((0, 4), np.float64)
    return found.reshape(-1, 4).astype(np.float64)


def _lengths(segments: np.ndarray) -> np.ndarray:
    return np.hypot(segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1])


def _longer(segments: np.ndarray, length: float) -> np.ndarray:
    return segments[_lengths(segments) >= length]


def _angles(segments: np.ndarray) -> np.ndarray:
    """Each segment's direction in degrees, in [0, 180)."""
    dx = segments[:, 2] - segments[:, 0]
    dy = segments[:, 3] - segments[:, 1]
    return np.degrees(np.arctan2(dy, dx)) % 180.0


def _family(segments: np.ndarray, vertical: bool) -> np.ndarray:
    """The segments within ``_MAX_TILT_DEG`` of horizontal (or vertical), then those within
    ``_FAMILY_DEG`` of the family's length-weighted median direction (beams and slurs that
    are long but slanted are not staff lines)."""
    if not len(segments):
        return segments
    angle = _angles(segments)
    off = angle - 90.0 if vertical else np.where(angle > 90.0, angle - 180.0, angle)
    segments, off = segments[np.abs(off) <= _MAX_TILT_DEG], off[np.abs(off) <= _MAX_TILT_DEG]
    if not len(segments):
        return segments
    length = _lengths(segments)
    order = np.argsort(off)
    cumulative = np.cumsum(length[order])
    median = off[order][np.searchsorted(cumulative, cumulative[-1] / 2)]
    return segments[np.abs(off - median) <= _FAMILY_DEG]


def _vanishing_point(segments: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """Homogeneous least-squares meeting point of the segments' lines (coordinates divided
    by ``scale`` for conditioning), weighted by length and refitted without the strays; and
    the median misfit of the kept lines in degrees (the angle between a segment and the
    direction from its middle to the point, finite for a point at infinity too)."""
    p = np.column_stack([segments[:, :2] / scale, np.ones(len(segments))])
    q = np.column_stack([segments[:, 2:] / scale, np.ones(len(segments))])
    lines = np.cross(p, q)
    lines /= np.linalg.norm(lines[:, :2], axis=1, keepdims=True)
    weight = _lengths(segments)
    mid = (p[:, :2] + q[:, :2]) / 2
    d = (q - p)[:, :2]
    keep = np.ones(len(lines), bool)
    point, misfit = np.zeros(3), 90.0
    for _ in range(4):
        a = lines[keep] * np.sqrt(weight[keep])[:, None]
        point = np.linalg.svd(a)[2][-1]
        to = _directions(point, mid)
        norms = np.linalg.norm(d, axis=1) * np.linalg.norm(to, axis=1)
        cos = np.abs((d * to).sum(1)) / np.maximum(norms, 1e-12)
        residual = np.degrees(np.arccos(np.clip(cos, 0.0, 1.0)))
        misfit = float(np.median(residual[keep]))
        new = residual <= max(3.0 * misfit, 0.3)
        if new.sum() < _MIN_SEGMENTS or (new == keep).all():
            break
        keep = new
    return point, misfit


def _directions(point: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(N, 2) directions from the points ``xy`` towards a homogeneous point (the same
    direction everywhere for a point at infinity); not normalised."""
    if abs(point[2]) > 1e-12:
        return point[:2] / point[2] - xy
    return np.broadcast_to(point[:2], xy.shape)


def _spread(point: np.ndarray, segments: np.ndarray, scale: float, vertical: bool) -> float:
    """How many degrees the direction towards ``point`` turns across the region the
    segments cover (not the whole page: extrapolating a fit is not measuring)."""
    xs = np.concatenate([segments[:, 0], segments[:, 2]]) / scale
    ys = np.concatenate([segments[:, 1], segments[:, 3]]) / scale
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    d = _directions(point, np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]]))
    angles = np.degrees(np.arctan2(d[:, 1], d[:, 0])) % 180.0
    angles = angles - 90.0 if vertical else np.where(angles > 90.0, angles - 180.0, angles)
    return float(angles.max() - angles.min())


def keystone_homography(image: np.ndarray) -> np.ndarray | None:
    """The 3x3 homography (input pixels to output pixels) that undoes the keystone, or None
    when the page's lines show none (or too few lines were found to tell)."""
    h, w = image.shape
    f = min(1.0, _WORK_SIDE / max(h, w))
    small = image if f == 1.0 else cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    ink, _ = binarize(small)
    metrics = estimate_staff_metrics(ink)
    if metrics is None:
        return None
    space = metrics.space
    segments = _segments(small)
    flat = _family(_longer(segments, 8 * space), vertical=False)
    upright = _family(_longer(segments, 2 * space), vertical=True)
    if len(flat) < _MIN_STAFF_SEGMENTS or len(upright) < _MIN_SEGMENTS:
        return None
    sh, sw = small.shape
    scale = float(max(sh, sw))
    v_h, misfit_h = _vanishing_point(flat, scale)
    v_v, misfit_v = _vanishing_point(upright, scale)
    if misfit_h > _MAX_RESIDUAL_DEG or misfit_v > _MAX_UPRIGHT_RESIDUAL_DEG:
        return None  # the lines do not meet in one point: not a plain perspective
    spread_h = _spread(v_h, flat, scale, False)
    spread_v = _spread(v_v, upright, scale, True)
    if max(spread_h, spread_v) > MAX_SPREAD_DEG:
        return None
    if spread_h < MIN_SPREAD_DEG and spread_v < MIN_UPRIGHT_SPREAD_DEG:
        return None
    # In normalised reduced coordinates: send the line through both points to infinity...
    horizon = np.cross(v_h, v_v)
    if abs(horizon[2]) < 1e-12:
        return None
    horizon = horizon / horizon[2]
    projective = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], horizon])
    # ...then turn the two directions (now points at infinity) onto the axes.
    d_h = projective @ v_h
    d_v = projective @ v_v
    d_h, d_v = d_h[:2], d_v[:2]
    if d_h[0] < 0:
        d_h = -d_h
    if d_v[1] < 0:
        d_v = -d_v
    basis = np.column_stack([d_h / np.linalg.norm(d_h), d_v / np.linalg.norm(d_v)])
    if abs(np.linalg.det(basis)) < 0.5:
        return None
    affine = np.eye(3)
    affine[:2, :2] = np.linalg.inv(basis)
    norm = np.diag([f / scale, f / scale, 1.0])  # input pixels -> normalised
    m = affine @ projective @ norm
    # Keep the size at the page's centre: the Jacobian there becomes a pure scale of 1.
    cx, cy = w / 2.0, h / 2.0
    jac = _jacobian(m, cx, cy)
    sx = 1.0 / np.linalg.norm(jac[:, 0])
    sy = 1.0 / np.linalg.norm(jac[:, 1])
    m = np.diag([sx, sy, 1.0]) @ m
    # Place the page's corners inside the output, from (0, 0).
    lo = _apply(m, _corners(w, h)).min(0)
    m = np.array([[1.0, 0.0, -lo[0]], [0.0, 1.0, -lo[1]], [0.0, 0.0, 1.0]]) @ m
    return m / m[2, 2]


def _corners(w: int, h: int) -> np.ndarray:
    return np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64)


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(pts[None], m)[0]


def _jacobian(m: np.ndarray, x: float, y: float) -> np.ndarray:
    eps = 1.0
    p = _apply(m, np.array([[x, y], [x + eps, y], [x, y + eps]], np.float64))
    return np.column_stack([(p[1] - p[0]) / eps, (p[2] - p[0]) / eps])


def correct_keystone(image: np.ndarray) -> np.ndarray | None:
    """The page with its keystone undone, or None when it shows none."""
    m = keystone_homography(image)
    if m is None:
        return None
    h, w = image.shape
    out_w, out_h = np.ceil(_apply(m, _corners(w, h)).max(0)).astype(int)
    if out_w > 2 * w or out_h > 2 * h:  # a wild fit: do nothing rather than harm
        return None
    return cv2.warpPerspective(
        image, m, (int(out_w), int(out_h)), flags=cv2.INTER_LINEAR, borderValue=255
    )
