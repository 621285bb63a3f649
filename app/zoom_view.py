"""A QGraphicsView that zooms and pans like an image viewer; the scan and engraving views use it.

Wheel scrolls, Ctrl+wheel zooms around the pointer, dragging pans, a click (a press and
release without moving) is reported as `clicked(scene point)`. Keyboard: the window's
View actions call `zoom_by`, `fit_width` and `fit_page`; Shift+arrows pan.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QPainter, QWheelEvent
from PySide6.QtWidgets import QFrame, QGraphicsScene, QGraphicsView, QWidget

MIN_SCALE, MAX_SCALE = 0.05, 8.0


class ZoomView(QGraphicsView):
    clicked = Signal(QPointF)
    zoom_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(
            QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform
        )
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.fit_mode: str | None = "width"  # kept on resize until the user zooms
        self._press: QPointF | None = None

    # ------------------------------------------------------------ zoom

    @property
    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, scale: float) -> None:
        scale = min(max(scale, MIN_SCALE), MAX_SCALE)
        factor = scale / self.zoom
        self.scale(factor, factor)
        self.zoom_changed.emit(scale)

    def zoom_by(self, factor: float) -> None:
        self.fit_mode = None
        self.set_zoom(self.zoom * factor)

    def content_rect(self) -> QRectF:
        return self.scene().itemsBoundingRect()

    def fit_width(self) -> None:
        self.fit_mode = "width"
        rect = self.content_rect()
        if rect.width() > 0:
            width = self.viewport().width() - 4
            self.set_zoom(width / rect.width())
            self.centerOn(rect.center().x(), self.mapToScene(self.viewport().rect().center()).y())

    def fit_page(self) -> None:
        self.fit_mode = "page"
        rect = self.content_rect()
        if rect.width() > 0 and rect.height() > 0:
            vp = self.viewport().rect()
            self.set_zoom(min((vp.width() - 4) / rect.width(), (vp.height() - 4) / rect.height()))
            self.centerOn(rect.center())

    def refit(self) -> None:
        if self.fit_mode == "width":
            self.fit_width()
        elif self.fit_mode == "page":
            self.fit_page()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self.refit()

    def reveal(self, rect: QRectF, margin: int = 40) -> None:
        """Scroll so that `rect` (scene coordinates) is in view."""
        self.ensureVisible(rect, margin, margin)

    # ------------------------------------------------------------ input

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            steps = event.angleDelta().y() / 120
            if steps:
                self.zoom_by(1.15**steps)
            event.accept()
        else:
            super().wheelEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.modifiers() == Qt.KeyboardModifier.ShiftModifier:
            bars = {
                Qt.Key.Key_Left: (self.horizontalScrollBar(), -1),
                Qt.Key.Key_Right: (self.horizontalScrollBar(), 1),
                Qt.Key.Key_Up: (self.verticalScrollBar(), -1),
                Qt.Key.Key_Down: (self.verticalScrollBar(), 1),
            }
            if event.key() in bars:
                bar, sign = bars[Qt.Key(event.key())]
                bar.setValue(bar.value() + sign * bar.singleStep() * 4)
                event.accept()
                return
        super().keyPressEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        super().mouseReleaseEvent(event)
        if event.button() == Qt.MouseButton.LeftButton and self._press is not None:
            moved = (event.position() - self._press).manhattanLength()
            self._press = None
            if moved < 5:
                self.clicked.emit(self.mapToScene(event.position().toPoint()))
