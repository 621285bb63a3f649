"""The scan of the current page, with a box on every measure the reader found.

Invalid measures are filled red, low-confidence ones orange (when that is switched on), the
selected one outlined blue; clicking a box selects its measure.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsRectItem, QWidget

from . import palette
from .document import Document, Selection
from .settings import CONFIDENCE_THRESHOLD, SHOW_LOW_CONFIDENCE, Settings
from .zoom_view import ZoomView


def gray_pixmap(image: np.ndarray) -> QPixmap:
    """A QPixmap of a (H, W) uint8 image."""
    image = np.ascontiguousarray(image)
    h, w = image.shape
    qimage = QImage(image.data, w, h, image.strides[0], QImage.Format.Format_Grayscale8)
    return QPixmap.fromImage(qimage.copy())


class ScanView(ZoomView):
    def __init__(
        self, document: Document, settings: Settings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("scanView")
        self.document = document
        self.settings = settings
        self.page_index = -1
        self._pixmap_item: QGraphicsPixmapItem | None = None
        self.boxes: dict[str, QGraphicsRectItem] = {}
        document.current_page_changed.connect(self.show_page)
        document.pages_reset.connect(self._clear)
        document.score_changed.connect(self._on_score_changed)
        document.diagnostics_changed.connect(self._on_diagnostics_changed)
        document.selection_changed.connect(self._on_selection_changed)
        settings.changed.connect(lambda _key: self.restyle())
        self.clicked.connect(self._on_clicked)

    def _clear(self) -> None:
        self.scene().clear()
        self._pixmap_item = None
        self.boxes = {}
        self.page_index = -1

    def show_page(self, index: int) -> None:
        self._clear()
        if not 0 <= index < len(self.document.pages):
            return
        self.page_index = index
        page = self.document.page(index)
        self._pixmap_item = self.scene().addPixmap(gray_pixmap(page.image))
        self._pixmap_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().setSceneRect(QRectF(0, 0, page.image.shape[1], page.image.shape[0]))
        self._build_boxes()
        self.refit() if self.fit_mode else self.fit_width()

    def _build_boxes(self) -> None:
        for item in self.boxes.values():
            self.scene().removeItem(item)
        self.boxes = {}
        page = self.document.page(self.page_index)
        if page.score is None:
            return
        for m in page.score.measures:
            if m.box is None:
                continue
            x0, y0, x1, y1 = m.box
            item = self.scene().addRect(QRectF(x0, y0, x1 - x0, y1 - y0))
            item.setData(0, m.id)
            item.setZValue(1)
            self.boxes[m.id] = item
        self.restyle()

    def restyle(self) -> None:
        if self.page_index < 0 or self.page_index >= len(self.document.pages):
            return
        page = self.document.page(self.page_index)
        invalid = {d.measure_id for d in page.diagnostics}
        low = set()
        if self.settings.get(SHOW_LOW_CONFIDENCE):
            threshold = self.settings.get(CONFIDENCE_THRESHOLD)
            low = {mid for mid, c in page.confidences.items() if c < threshold}
        sel = self.document.selection
        selected = sel.measure_id if sel is not None and sel.page == self.page_index else None
        for mid, item in self.boxes.items():
            outline, fill = palette.measure_style(mid == selected, mid in invalid, mid in low)
            item.setPen(outline)
            item.setBrush(fill)
            item.setZValue(3 if mid == selected else 2 if mid in invalid else 1)

    def _on_score_changed(self, index: int) -> None:
        if index == self.page_index:
            self._build_boxes()

    def _on_diagnostics_changed(self, index: int) -> None:
        if index == self.page_index:
            self.restyle()

    def _on_selection_changed(self, sel: Selection | None) -> None:
        if sel is not None and sel.page != self.page_index:
            self.show_page(sel.page)
        self.restyle()
        if sel is not None and sel.measure_id in self.boxes:
            self.reveal(self.boxes[sel.measure_id].rect())

    def _on_clicked(self, point: QPointF) -> None:
        if self.page_index < 0:
            return
        hits = [
            item
            for item in self.scene().items(point)
            if isinstance(item, QGraphicsRectItem) and item.data(0)
        ]
        if hits:
            # The smallest box under the pointer (boxes of neighbouring measures may touch).
            item = min(hits, key=lambda it: it.rect().width() * it.rect().height())
            self.document.select_measure(self.page_index, item.data(0))

    def measure_rect(self, measure_id: str) -> QRectF | None:
        item = self.boxes.get(measure_id)
        return item.rect() if item is not None else None
