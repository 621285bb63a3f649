"""Image preprocessing shared by training and inference (numpy + OpenCV, no torch).

One crop (a staff or a system, uint8 grayscale, dark ink on white paper) becomes a float
array of fixed height for the encoder:

1. resize to ``height`` keeping the aspect ratio (area interpolation when shrinking), or
   ``stretch`` times wider than the aspect ratio says (what the model reads best, which
   the model directory's ``runtime.stretch`` says; 1 in training), and squash
   horizontally if the result would be wider than ``max_width``;
2. pad on the right with white paper to a multiple of ``width_multiple`` (patch size times
   the encoder's attention window, so windows tile the width exactly) and, in a batch,
   to the widest crop;
3. invert (ink -> 1, paper -> 0) and normalise with ``mean``/``std``.

The true (unpadded) width of every crop travels with the batch so the encoder can mask
the padding. The settings are saved with the weights (``config.json``), so training and
inference cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np

__all__ = ["PreprocessConfig", "resize_crop", "pad_batch", "preprocess_batch"]


@dataclass(frozen=True)
class PreprocessConfig:
    """How a crop is turned into encoder input. Saved with the model weights."""

    height: int = 64  # pixels; every crop is resized to this height
    max_width: int = 1536  # pixels after resizing; wider crops are squashed to fit
    patch_size: int = 8  # pixels per encoder patch (the conv stem's total stride)
    width_multiple: int = 64  # padded width is a multiple of this (patch_size * window)
    mean: float = 0.0  # after inversion (ink = 1, paper = 0)
    std: float = 1.0

    def __post_init__(self) -> None:
        if self.height % self.patch_size:
            raise ValueError(
                f"height {self.height} must be a multiple of patch_size {self.patch_size}"
            )
        if self.width_multiple % self.patch_size:
            raise ValueError(
                f"width_multiple {self.width_multiple} must be a multiple of patch_size "
                f"{self.patch_size}"
            )
        if self.max_width % self.width_multiple:
            raise ValueError(
                f"max_width {self.max_width} must be a multiple of width_multiple "
                f"{self.width_multiple}"
            )
        if self.std <= 0:
            raise ValueError("std must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _as_gray_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        code = cv2.COLOR_RGB2GRAY if image.shape[2] == 3 else cv2.COLOR_RGBA2GRAY
        image = cv2.cvtColor(np.ascontiguousarray(image), code)
    if image.ndim != 2:
        raise ValueError(f"expected a grayscale image (H, W), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image of shape {image.shape} is too small to read")
    return image


def resize_crop(image: np.ndarray, cfg: PreprocessConfig, stretch: float = 1.0) -> np.ndarray:
    """Resize one uint8 crop to ``(cfg.height, w)`` with ``w <= cfg.max_width``: ``w`` is
    ``stretch`` times the width that keeps the aspect ratio."""
    image = _as_gray_uint8(image)
    h, w = image.shape
    new_w = max(1, round(w * cfg.height / h * stretch))
    new_w = min(new_w, cfg.max_width)
    if (h, w) == (cfg.height, new_w):
        return np.ascontiguousarray(image)
    shrinking = cfg.height < h or new_w < w
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (new_w, cfg.height), interpolation=interp)


def pad_batch(
    resized: Sequence[np.ndarray], cfg: PreprocessConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Stack resized uint8 crops into a normalised float batch.

    Returns ``(pixels, widths)``: ``pixels`` float32 of shape (B, 1, height, W) with W the
    widest crop rounded up to ``cfg.width_multiple``, and ``widths`` int64 (B,) holding each
    crop's true width in pixels.
    """
    if not resized:
        raise ValueError("empty batch")
    widths = np.array([im.shape[1] for im in resized], dtype=np.int64)
    m = cfg.width_multiple
    padded_w = int(-(-widths.max() // m) * m)
    batch = np.full((len(resized), 1, cfg.height, padded_w), 255, dtype=np.uint8)
    for i, im in enumerate(resized):
        if im.shape[0] != cfg.height:
            raise ValueError(f"crop {i} has height {im.shape[0]}, expected {cfg.height}")
        batch[i, 0, :, : im.shape[1]] = im
    pixels = (255.0 - batch.astype(np.float32)) / 255.0  # ink = 1, paper = 0
    pixels = (pixels - cfg.mean) / cfg.std
    return pixels.astype(np.float32, copy=False), widths


def preprocess_batch(
    images: Sequence[np.ndarray], cfg: PreprocessConfig, stretch: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """``resize_crop`` every image (``stretch`` times wider), then ``pad_batch``."""
    return pad_batch([resize_crop(im, cfg, stretch) for im in images], cfg)
