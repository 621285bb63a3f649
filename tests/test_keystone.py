"""Perspective on a page whose edges are not in the picture is undone from the music's own
lines; a straight or merely rotated page is left alone."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from omr_engine.layout import analyze_page
from omr_engine.layout.keystone import correct_keystone, keystone_homography
from omr_engine.layout.photo import correct_photo

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "samples" / "bwv66.6-scan.png"


@pytest.fixture(scope="module")
def scan() -> np.ndarray:
    return cv2.imread(str(SAMPLE), cv2.IMREAD_GRAYSCALE)


def layout_shape(image: np.ndarray) -> list[tuple[int, int]]:
    """(staves, measures) per system."""
    return [(len(s.staves), len(s.measure_boxes)) for s in analyze_page(image).systems]


def keystoned(scan: np.ndarray, inset: float) -> np.ndarray:
    """The page as a camera tilted towards its foot sees it, edges outside the frame."""
    h, w = scan.shape
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[inset * w, 0.02 * h], [w - inset * w, 0], [w, h], [0, h]])
    m = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(scan, m, (w, h), borderValue=255)


@pytest.mark.parametrize("inset", [0.03, 0.05, 0.08])
def test_a_keystoned_page_gets_its_measures_back(scan, inset):
    page = keystoned(scan, inset)
    assert layout_shape(page) != [(4, 5), (4, 5)]  # the deskew's rotation is not enough
    fix = correct_photo(page)
    assert "perspective straightened" in fix.corrections
    assert layout_shape(fix.image) == [(4, 5), (4, 5)]


def test_straightened_staff_lines_are_parallel(scan):
    page = keystoned(scan, 0.06)
    m = keystone_homography(page)
    assert m is not None
    h, w = scan.shape
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[0.06 * w, 0.02 * h], [w - 0.06 * w, 0], [w, h], [0, h]])
    truth = cv2.getPerspectiveTransform(src, dst)

    # Horizontal lines of the page, through the keystone and back, are parallel again.
    def angle(ends: np.ndarray) -> float:
        return float(np.degrees(np.arctan2(*(ends[1] - ends[0])[::-1])))

    seen_angles, back_angles = [], []
    for y in np.linspace(0.1 * h, 0.9 * h, 5):
        seen = cv2.perspectiveTransform(np.float32([[[0.1 * w, y], [0.9 * w, y]]]), truth)
        seen_angles.append(angle(seen[0]))
        back_angles.append(angle(cv2.perspectiveTransform(seen, m)[0]))
    before = max(seen_angles) - min(seen_angles)
    after = max(back_angles) - min(back_angles)
    assert before > 0.7
    assert after < 0.25 * before  # 0.78 degrees down to 0.16 when written


def test_a_straight_or_rotated_page_is_left_alone(scan):
    assert keystone_homography(scan) is None
    h, w = scan.shape
    rotation = cv2.getRotationMatrix2D((w / 2, h / 2), 2.0, 1.0)
    assert correct_keystone(cv2.warpAffine(scan, rotation, (w, h), borderValue=255)) is None


def test_a_page_without_music_is_left_alone():
    page = np.full((1200, 900), 255, np.uint8)
    cv2.putText(page, "Preface", (100, 300), cv2.FONT_HERSHEY_SIMPLEX, 3, 0, 6)
    assert keystone_homography(page) is None
