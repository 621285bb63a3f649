"""Phone photos of sheet music: find the sheet, straighten it, even out the light.

A flatbed scan passes through untouched (the same array comes back): the corrections run
only when a photo's signs are there.

- **Sheet outline.** A photo often shows the table around the paper. When the image holds a
  bright convex quadrilateral (the sheet) on a clearly darker surround, the sheet is warped
  to an upright rectangle (a perspective transform), which also removes the keystone of a
  camera held at an angle. Small rotation that remains is left to the layout's deskew.
- **Perspective without the sheet's edges.** When no outline is found, the staff lines
  and stems themselves give the perspective (:mod:`.keystone`), which is undone when the
  lines' slopes differ across the page.
- **Lighting.** The paper's brightness is estimated at a coarse scale (a grey closing that
  removes ink, then a median), and the image is divided by it, so a shadow or a lamp's
  falloff no longer pulls faint staff lines below the ink threshold.

All in OpenCV; nothing here is trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .keystone import correct_keystone

__all__ = ["PhotoCorrection", "correct_photo", "find_sheet", "flatten_lighting"]

_WORK_SIDE = 1000  # pixels: the outline and the lighting are found on a reduced copy
_MIN_SHEET_AREA = 0.2  # share of the image a sheet outline must cover
_MAX_SHEET_AREA = 0.97  # above this the sheet fills the frame: nothing to cut
_MIN_SURROUND_CONTRAST = 35.0  # grey levels between the paper and what is around it
_UNEVEN_LIGHT = 18.0  # grey levels of spread in the paper's brightness that count as uneven
_MIN_SIDE = 200  # pixels: smaller images are not photos of a page


@dataclass
class PhotoCorrection:
    """The corrected image and what was done to it (empty for a clean scan)."""

    image: np.ndarray
    corrections: list[str] = field(default_factory=list)
    sheet: np.ndarray | None = None  # the sheet's corners in the input, (4, 2) float


def _reduced(image: np.ndarray) -> tuple[np.ndarray, float]:
    h, w = image.shape
    f = min(1.0, _WORK_SIDE / max(h, w))
    if f == 1.0:
        return image, 1.0
    small = cv2.resize(image, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    return small, f


def _order_corners(pts: np.ndarray) -> np.ndarray:
    """Top-left, top-right, bottom-right, bottom-left."""
    pts = pts.reshape(4, 2).astype(np.float64)
    s, d = pts.sum(1), np.diff(pts, axis=1)[:, 0]
    return np.array([pts[s.argmin()], pts[d.argmin()], pts[s.argmax()], pts[d.argmax()]])


def find_sheet(image: np.ndarray) -> np.ndarray | None:
    """Corners (4, 2) of a sheet of paper lying on a darker surface, or None."""
    small, f = _reduced(image)
    blur = cv2.GaussianBlur(small, (0, 0), 3)
    # ink must not cut the sheet into pieces: close it over with the paper's grey
    k = max(5, round(min(small.shape) / 40) | 1)
    paper = cv2.morphologyEx(
        blur, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    )
    level, mask = cv2.threshold(paper, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    outline = max(contours, key=cv2.contourArea)
    area = cv2.contourArea(outline) / mask.size
    if not _MIN_SHEET_AREA <= area <= _MAX_SHEET_AREA:
        return None
    quad = cv2.approxPolyDP(outline, 0.02 * cv2.arcLength(outline, True), True)
    if len(quad) != 4 or not cv2.isContourConvex(quad):
        return None
    inside = np.zeros_like(mask)
    cv2.fillConvexPoly(inside, quad.reshape(4, 2), 255)
    inner, outer = paper[inside > 0], paper[inside == 0]
    if (
        outer.size == 0
        or float(np.median(inner)) - float(np.median(outer)) < _MIN_SURROUND_CONTRAST
    ):
        return None
    return _order_corners(quad) / f


def _unwarp(image: np.ndarray, corners: np.ndarray) -> np.ndarray:
    tl, tr, br, bl = corners
    width = round(max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl)))
    height = round(max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr)))
    target = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]])
    m = cv2.getPerspectiveTransform(corners.astype(np.float32), target.astype(np.float32))
    return cv2.warpPerspective(image, m, (width, height), flags=cv2.INTER_LINEAR, borderValue=255)


def _background(image: np.ndarray) -> np.ndarray:
    """The paper's brightness at a coarse scale, same size as ``image`` (float32)."""
    small, _ = _reduced(image)
    k = max(7, round(max(small.shape) / 50) | 1)
    closed = cv2.morphologyEx(
        small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    )
    smooth = cv2.medianBlur(closed, min(255, 2 * k + 1))
    h, w = image.shape
    return cv2.resize(smooth, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def flatten_lighting(image: np.ndarray) -> np.ndarray:
    """Divides the image by its paper brightness: white paper, ink kept in proportion."""
    bg = np.maximum(_background(image), 1.0)
    out = image.astype(np.float32) * (255.0 / bg)
    return np.clip(out, 0, 255).astype(np.uint8)


def _lighting_is_uneven(image: np.ndarray) -> bool:
    bg = _background(_reduced(image)[0])
    lo, hi = np.percentile(bg, [2, 98])
    return bool(hi - lo > _UNEVEN_LIGHT)


def correct_photo(image: np.ndarray) -> PhotoCorrection:
    """Straightens a photographed sheet and evens its light; an evenly lit page (a clean
    scan, an image smaller than a page) comes back as is."""
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 image, got {image.dtype} {image.shape}")
    out = PhotoCorrection(image)
    if min(image.shape) < _MIN_SIDE:
        return out
    corners = find_sheet(image)
    if corners is not None:
        out.image = _unwarp(image, corners)
        out.sheet = corners
        out.corrections.append("sheet outline straightened")
    if _lighting_is_uneven(out.image):
        out.image = flatten_lighting(out.image)
        out.corrections.append("lighting evened")
    if corners is None:  # no outline to straighten by: the music's own lines tell
        straight = correct_keystone(out.image)
        if straight is not None:
            out.image = straight
            out.corrections.append("perspective straightened")
    return out
