"""The colours the studio marks measures with, the same on the scan and the engraving."""

from __future__ import annotations

from PySide6.QtGui import QBrush, QColor, QPen

SELECTED = QColor(30, 110, 230)
INVALID = QColor(220, 40, 40)
LOW_CONFIDENCE = QColor(235, 140, 0)
MEASURE = QColor(60, 120, 200)
CLEAN = QColor(30, 140, 60)
MUTED = QColor(120, 120, 120)


def pen(color: QColor, width: float, alpha: int = 255) -> QPen:
    c = QColor(color)
    c.setAlpha(alpha)
    p = QPen(c, width)
    p.setCosmetic(True)  # the same on-screen width at any zoom
    return p


def brush(color: QColor, alpha: int) -> QBrush:
    c = QColor(color)
    c.setAlpha(alpha)
    return QBrush(c)


def measure_style(selected: bool, invalid: bool, low_confidence: bool) -> tuple[QPen, QBrush]:
    """Outline and fill of a measure box."""
    if invalid:
        fill = brush(INVALID, 55)
        outline = pen(SELECTED if selected else INVALID, 3 if selected else 2)
    elif low_confidence:
        fill = brush(LOW_CONFIDENCE, 50)
        outline = pen(SELECTED if selected else LOW_CONFIDENCE, 3 if selected else 1.5)
    elif selected:
        fill = brush(SELECTED, 35)
        outline = pen(SELECTED, 3)
    else:
        fill = QBrush()
        outline = pen(MEASURE, 1, alpha=90)
    return outline, fill
