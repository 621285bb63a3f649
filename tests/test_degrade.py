"""Scan and photo degradations: reproducible from parameters and seed, clean at strength 0,
and geometry that moves boxes together with the ink."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omr_engine.synth.degrade import Degradation, apply, sample_degradation


def _staff_like(h: int = 120, w: int = 700) -> np.ndarray:
    """Five lines, a barline and some note-head blobs on white: enough ink for the tests."""
    image = np.full((h, w), 255, np.uint8)
    for k in range(5):
        cv2.line(image, (20, 40 + 10 * k), (w - 20, 40 + 10 * k), 0, 1)
    cv2.line(image, (w // 2, 40), (w // 2, 80), 0, 2)
    for x in range(60, w - 40, 45):
        cv2.ellipse(image, (x, 45 + (x % 35)), (6, 4), -20, 0, 360, 0, -1)
    return image


def test_strength_zero_gives_the_clean_copy():
    image = _staff_like()
    d = sample_degradation(np.random.default_rng(3), 0.0)
    assert d == Degradation()
    out, warp = apply(image, d, rng_seed=5)
    assert np.array_equal(out, image) and out is not image
    assert np.allclose(warp.map_boxes(np.array([[10.0, 20.0, 30.0, 40.0]])), [[10, 20, 30, 40]])


def test_neutral_parameters_keep_the_image_without_the_shortcut():
    # paper_tone 255.0 still goes through the full pipeline, with no visible change.
    image = _staff_like()
    out, _ = apply(image, dataclasses.replace(Degradation(), ink_tone=1e-9), rng_seed=0)
    assert np.abs(out.astype(int) - image).max() <= 1


@pytest.mark.parametrize("strength", [0.3, 1.0])
def test_same_parameters_and_seed_give_the_same_image(strength):
    image = _staff_like()
    d = sample_degradation(np.random.default_rng(11), strength)
    assert d == sample_degradation(np.random.default_rng(11), strength)
    a, _ = apply(image, d, rng_seed=42)
    b, _ = apply(image, d, rng_seed=42)
    assert np.array_equal(a, b)


def test_the_seed_drives_the_noise():
    image = _staff_like()
    d = Degradation(noise_sigma=8.0, paper_texture=0.05)
    a, _ = apply(image, d, rng_seed=1)
    b, _ = apply(image, d, rng_seed=2)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("seed", range(12))
def test_output_is_a_grayscale_uint8_image(seed):
    image = _staff_like()
    rng = np.random.default_rng(seed)
    out, _ = apply(image, sample_degradation(rng, rng.uniform(0.2, 1.0)), rng_seed=seed)
    assert out.dtype == np.uint8 and out.ndim == 2
    assert 0.4 * image.shape[0] <= out.shape[0] <= 1.2 * image.shape[0] + 40
    assert 0.4 * image.shape[1] <= out.shape[1] <= 1.2 * image.shape[1] + 40


def test_resolution_change_scales_the_image_and_its_boxes():
    image = _staff_like()
    out, warp = apply(image, Degradation(resample=0.5), rng_seed=0)
    assert out.shape == (60, 350)
    assert np.allclose(warp.map_boxes(np.array([[100.0, 40.0, 300.0, 80.0]])), [[50, 20, 150, 40]])
    restored, warp = apply(image, Degradation(resample=0.5, resample_restore=True), rng_seed=0)
    assert restored.shape == image.shape
    assert np.allclose(warp.map_boxes(np.array([[100.0, 40.0, 300.0, 80.0]])), [[100, 40, 300, 80]])


def _ink_box(image: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(image < 128)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)


@pytest.mark.parametrize(
    "geometry",
    [
        {"rotation_deg": 2.0},
        {"rotation_deg": -1.5, "perspective": (0.01, -0.01, -0.01, 0.0, 0.01, 0.01, 0.0, -0.01)},
        {"curl": 0.006, "curl_center": 0.2},
        {"rotation_deg": 1.0, "curl": -0.005, "curl_center": 0.7, "resample": 0.7},
    ],
)
def test_warp_moves_boxes_with_the_ink(geometry):
    image = np.full((150, 600), 255, np.uint8)
    box = np.array([[120.0, 50.0, 480.0, 100.0]])
    cv2.rectangle(image, (120, 50), (479, 99), 0, -1)
    out, warp = apply(image, Degradation(**geometry), rng_seed=0)
    assert np.abs(warp.map_boxes(box)[0] - _ink_box(out)).max() < 2.0
    # Nothing falls off the canvas.
    assert (out < 128).sum() == pytest.approx((image < 128).sum() * np.prod(warp.scale), rel=0.05)


def test_binarization_leaves_two_levels_and_keeps_faint_staff_lines():
    image = _staff_like()
    faint = Degradation(paper_tone=235, ink_tone=60, blur_sigma=0.8, resample=0.7, noise_sigma=6)
    for mode, offset in (("otsu", 0), ("threshold", 30), ("threshold", -15)):
        d = dataclasses.replace(faint, binarize=mode, threshold_offset=offset)
        out, _ = apply(image, d, 0)
        assert set(np.unique(out)) <= {0, 255}
        # The five staff lines (rows 28-56 after the 0.7 resample) stay mostly black.
        line_rows = (out[25:60, 20:-20] == 0).mean(axis=1) > 0.6
        assert line_rows.sum() >= 5


def test_jpeg_and_blur_keep_the_music_readable():
    image = _staff_like()
    d = Degradation(blur_sigma=1.0, jpeg_quality=20, noise_sigma=5, ink_tone=40)
    out, _ = apply(image, d, rng_seed=0)
    assert np.abs(out.astype(int) - image).mean() < 25


def test_invalid_parameters_are_refused():
    with pytest.raises(ValueError):
        Degradation(binarize="sauvola")
    with pytest.raises(ValueError):
        Degradation(perspective=(0.0,))
    with pytest.raises(ValueError):
        apply(np.zeros((4, 4, 3), np.uint8), Degradation(), 0)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), strength=st.floats(0.0, 1.0))
def test_sampled_parameters_stay_in_their_documented_ranges(seed, strength):
    d = sample_degradation(np.random.default_rng(seed), strength)
    assert -2.0 <= d.rotation_deg <= 2.0
    assert all(abs(v) <= 0.015 for v in d.perspective)
    assert abs(d.curl) <= 0.006
    assert d.jpeg_quality == 0 or 20 <= d.jpeg_quality <= 90
    assert 0.5 <= d.resample <= 1.0
    assert 0.0 <= d.show_through <= 0.25
    assert 150.0 <= d.paper_tone <= 255.0
    assert d.binarize in ("none", "otsu", "threshold")
    assert -10 <= d.threshold_offset <= 40
