"""Phone photos: the sheet is found and straightened, its lighting evened; scans pass as is."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from omr_engine.layout import analyze_page
from omr_engine.layout.photo import correct_photo, find_sheet
from omr_engine.pages import load_pages

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "samples" / "bwv66.6-scan.png"


def photograph(scan: np.ndarray, seed: int = 0, table: bool = True) -> np.ndarray:
    """The scan as a phone sees it: tilted sheet on a dark table, light falling off, noise."""
    rng = np.random.default_rng(seed)
    h, w = scan.shape
    grow = 1.25 if table else 1.0
    big_h, big_w = int(h * grow), int(w * grow)
    src = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    if table:
        shift = [(big_w - w) / 2, (big_h - h) / 2]
        dst = np.float32(src + shift + rng.uniform(-0.05, 0.05, (4, 2)) * [w, h])
        m = cv2.getPerspectiveTransform(src, dst)
        sheet = cv2.warpPerspective(scan, m, (big_w, big_h), borderValue=0)
        inside = cv2.warpPerspective(np.full_like(scan, 255), m, (big_w, big_h), borderValue=0)
        photo = np.where(inside > 0, sheet, 70).astype(np.float32)
    else:
        photo = scan.astype(np.float32)
    yy, xx = np.mgrid[0:big_h, 0:big_w]
    photo *= 0.55 + 0.27 * (xx / big_w) + 0.18 * (1 - yy / big_h)
    photo += rng.normal(0, 3, photo.shape)
    return cv2.GaussianBlur(np.clip(photo, 0, 255).astype(np.uint8), (0, 0), 0.8)


@pytest.fixture(scope="module")
def scan() -> np.ndarray:
    return cv2.imread(str(SAMPLE), cv2.IMREAD_GRAYSCALE)


def layout_shape(image: np.ndarray) -> list[tuple[int, int]]:
    """(staves, measures) per system."""
    return [(len(s.staves), len(s.measure_boxes)) for s in analyze_page(image).systems]


def test_a_photographed_page_reads_like_the_scan(scan, tmp_path):
    path = tmp_path / "photo.jpg"
    cv2.imwrite(str(path), photograph(scan), [cv2.IMWRITE_JPEG_QUALITY, 85])
    (page,) = load_pages(path)
    assert page.corrections == ("sheet outline straightened", "lighting evened")
    h, w = page.image.shape
    assert abs(w / h - scan.shape[1] / scan.shape[0]) < 0.1  # the sheet's proportions back
    assert layout_shape(page.image) == layout_shape(scan) == [(4, 5), (4, 5)]


def test_sheet_corners_are_found_within_a_percent(scan):
    rng = np.random.default_rng(0)
    h, w = scan.shape
    photo = photograph(scan)
    shift = [(int(w * 1.25) - w) / 2, (int(h * 1.25) - h) / 2]
    src = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    expected = src + shift + rng.uniform(-0.05, 0.05, (4, 2)) * [w, h]
    corners = find_sheet(photo)
    assert corners is not None
    assert np.abs(corners - expected).max() < 0.01 * max(h, w)


def test_uneven_light_without_a_visible_table_is_only_evened(scan):
    fix = correct_photo(photograph(scan, table=False))
    assert fix.corrections == ["lighting evened"]
    assert fix.image.shape == scan.shape
    assert layout_shape(fix.image) == [(4, 5), (4, 5)]


def test_an_evenly_lit_clean_page_is_returned_untouched():
    page = np.full((1400, 1000), 255, np.uint8)
    for top in (200, 500, 800):
        for i in range(5):
            page[top + 14 * i, 80:920] = 20
        page[top : top + 57, 80] = 20
        page[top : top + 57, 919] = 20
    fix = correct_photo(page)
    assert fix.image is page and fix.corrections == [] and fix.sheet is None


def test_a_blank_or_wrong_image_is_refused_or_passed():
    assert correct_photo(np.full((50, 60), 255, np.uint8)).corrections == []
    with pytest.raises(ValueError):
        correct_photo(np.zeros((5, 5, 3), np.uint8))
