"""The strip of page thumbnails, each saying where its page stands: not read, waiting,
reading (with its progress), failed, n issues, n to check (measures read with low
confidence, when those are shown), or clean. Choosing one shows that page."""

from __future__ import annotations

import cv2
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QAbstractItemView, QListView, QListWidget, QListWidgetItem, QWidget

from . import palette
from .document import Document, PageState
from .scan_view import gray_pixmap
from .settings import CONFIDENCE_THRESHOLD, SHOW_LOW_CONFIDENCE, Settings

THUMB_WIDTH = 110


def page_status(
    document: Document, index: int, threshold: float | None = None
) -> tuple[str, object]:
    """What the strip says about a page, and in which colour. With a ``threshold``, a
    page whose measures are all valid but some read with a confidence below it has
    measures to check, not a clean bill."""
    page = document.page(index)
    if page.state == PageState.READING:
        done, total, _ = page.progress
        return (f"reading {100 * done // total}%" if total else "reading…"), palette.SELECTED
    if page.state == PageState.QUEUED:
        return "waiting", palette.SELECTED
    if page.state == PageState.FAILED:
        return "failed", palette.INVALID
    if page.score is None:
        if page.state == PageState.READ:
            return "no music", palette.MUTED
        return "not read", palette.MUTED
    issues = page.issue_count
    if issues:
        return (f"{issues} issue" + ("s" if issues > 1 else "")), palette.INVALID
    if threshold is not None:
        ids = {m.id for m in page.score.measures}
        low = sum(1 for mid, c in page.confidences.items() if mid in ids and c < threshold)
        if low:
            return f"{low} to check", palette.LOW_CONFIDENCE
    return "clean", palette.CLEAN


class PageStrip(QListWidget):
    def __init__(
        self, document: Document, settings: Settings | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("pageStrip")
        self.document = document
        self.settings = settings
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.TopToBottom)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setIconSize(QSize(THUMB_WIDTH, int(THUMB_WIDTH * 1.42)))
        self.setSpacing(4)
        self.setUniformItemSizes(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(THUMB_WIDTH + 40)
        self.setMaximumWidth(THUMB_WIDTH + 60)
        document.pages_reset.connect(self.clear)
        document.page_added.connect(self._on_page_added)
        document.page_state_changed.connect(self.update_page)
        document.current_page_changed.connect(self._on_current_page)
        self.currentRowChanged.connect(self._on_row_changed)
        if settings is not None:
            settings.changed.connect(self._on_setting_changed)

    def _on_setting_changed(self, key: str) -> None:
        if key in (SHOW_LOW_CONFIDENCE.key, CONFIDENCE_THRESHOLD.key):
            for index in range(self.count()):
                self.update_page(index)

    def threshold(self) -> float | None:
        """The confidence under which a measure is to check, when those are shown."""
        if self.settings is not None and self.settings.get(SHOW_LOW_CONFIDENCE):
            return self.settings.get(CONFIDENCE_THRESHOLD)
        return None

    def _on_page_added(self, index: int) -> None:
        page = self.document.page(index)
        h, w = page.image.shape
        thumb = cv2.resize(
            page.image,
            (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))),
            interpolation=cv2.INTER_AREA,
        )
        item = QListWidgetItem(QIcon(gray_pixmap(thumb)), "")
        item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.addItem(item)
        self.update_page(index)

    def update_page(self, index: int) -> None:
        item = self.item(index)
        if item is None:
            return
        text, color = page_status(self.document, index, self.threshold())
        item.setText(f"Page {index + 1}\n{text}")
        item.setForeground(color)
        item.setToolTip(self.document.page(index).error or f"Page {index + 1}: {text}")

    def _on_current_page(self, index: int) -> None:
        if self.currentRow() != index:
            self.blockSignals(True)
            self.setCurrentRow(index)
            self.blockSignals(False)

    def _on_row_changed(self, row: int) -> None:
        if row >= 0:
            self.document.set_current_page(row)
