"""Page layout: from a grayscale page image to staves, systems, barlines and crops.

    layout = analyze_page(page.image)          # deskew, staves, systems, measures
    for i, system in enumerate(layout.systems):
        crop = system_crop(page.image, layout, i)   # crop.image, crop.scale, ...

Coordinates in a :class:`PageLayout` are pixels of the deskewed page; crops are taken from
the image as given (the rotation is applied to the crop only). A page without staves
raises :class:`NoStavesError`. Everything here is numpy/OpenCV; no Qt.
"""

from .analyze import analyze_page, page_has_staves
from .crop import (
    LayoutCrop,
    crop_box,
    crop_staff,
    crop_system,
    staff_crop,
    system_crop,
)
from .ink import StaffMetrics, binarize, estimate_staff_metrics, flatten_background
from .skew import estimate_skew, rotate
from .structures import Box, NoStavesError, PageLayout, Staff, System, rotation_matrix

__all__ = [
    "Box",
    "LayoutCrop",
    "NoStavesError",
    "PageLayout",
    "Staff",
    "StaffMetrics",
    "System",
    "analyze_page",
    "binarize",
    "crop_box",
    "crop_staff",
    "crop_system",
    "estimate_skew",
    "estimate_staff_metrics",
    "flatten_background",
    "page_has_staves",
    "rotate",
    "rotation_matrix",
    "staff_crop",
    "system_crop",
]
