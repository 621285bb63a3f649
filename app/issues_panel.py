"""The list of measures that need a look: every grammar diagnostic (and, when switched on,
every low-confidence measure) with its page, measure, staff and reason. Choosing a row
selects the measure; F8 / Shift+F8 step through the list from the current selection.
"""

from __future__ import annotations

import contextlib

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from . import palette
from .document import Document, Issue, Selection
from .engine import NoteAddress
from .settings import CONFIDENCE_THRESHOLD, SHOW_LOW_CONFIDENCE, Settings


class IssuesPanel(QWidget):
    def __init__(
        self, document: Document, settings: Settings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("issuesPanel")
        self.document = document
        self.settings = settings
        self.issues: list[Issue] = []
        self.summary = QLabel()
        self.tree = QTreeWidget()
        self.tree.setObjectName("issuesList")
        self.tree.setHeaderLabels(["Page", "Measure", "Staff", "Problem"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.tree.header()
        for col in range(3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.tree)
        self.tree.itemActivated.connect(self._on_activated)
        self.tree.itemClicked.connect(self._on_activated)
        # Many pages may report at once (recognize all): refresh once per event-loop turn.
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(0)
        self._refresh_timer.timeout.connect(self.refresh)
        document.diagnostics_changed.connect(lambda _i: self._refresh_timer.start())
        document.pages_reset.connect(self.refresh)
        document.selection_changed.connect(self._on_selection_changed)
        settings.changed.connect(lambda _key: self._refresh_timer.start())
        self.refresh()

    def threshold(self) -> float | None:
        if self.settings.get(SHOW_LOW_CONFIDENCE):
            return self.settings.get(CONFIDENCE_THRESHOLD)
        return None

    def refresh(self) -> None:
        self.issues = self.document.issues(self.threshold())
        self.tree.clear()
        for issue in self.issues:
            staff = "" if issue.staff is None else str(issue.staff + 1)
            number = issue.measure_number or str(issue.measure_index + 1)
            item = QTreeWidgetItem([str(issue.page + 1), number, staff, issue.message])
            color = palette.INVALID if issue.kind == "invalid" else palette.LOW_CONFIDENCE
            item.setForeground(3, color)
            item.setData(0, Qt.ItemDataRole.UserRole, issue)
            item.setToolTip(3, issue.message)
            self.tree.addTopLevelItem(item)
        invalid = sum(1 for i in self.issues if i.kind == "invalid")
        low = len(self.issues) - invalid
        measures = len({(i.page, i.measure_id) for i in self.issues if i.kind == "invalid"})
        text = f"{measures} invalid measure{'s' if measures > 1 else ''}"
        if invalid > measures:
            text += f" ({invalid} problems)"
        if not invalid:
            text = "No invalid measures"
        if self.threshold() is not None:
            text += f", {low} low-confidence"
        self.summary.setText(text)
        self._on_selection_changed(self.document.selection)

    def _on_activated(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        issue: Issue = item.data(0, Qt.ItemDataRole.UserRole)
        self.document.select_measure(issue.page, issue.measure_id, self._address(issue))

    @staticmethod
    def _address(issue: Issue) -> NoteAddress:
        return NoteAddress(staff=issue.staff or 0)

    def _on_selection_changed(self, sel: Selection | None) -> None:
        self.tree.blockSignals(True)
        try:
            self.tree.clearSelection()
            if sel is None:
                return
            for row in range(self.tree.topLevelItemCount()):
                item = self.tree.topLevelItem(row)
                issue: Issue = item.data(0, Qt.ItemDataRole.UserRole)
                if issue.page == sel.page and issue.measure_id == sel.measure_id:
                    item.setSelected(True)
                    self.tree.scrollToItem(item)
                    break
        finally:
            self.tree.blockSignals(False)

    # ------------------------------------------------------------ F8 / Shift+F8

    def step(self, forward: bool = True) -> Issue | None:
        """Select the next (previous) issue after the selection, wrapping around."""
        issues = self.document.issues(self.threshold())
        if not issues:
            return None
        sel = self.document.selection
        here = (-1, -1)
        if sel is not None:
            page = self.document.page(sel.page)
            with contextlib.suppress(KeyError):
                here = (sel.page, page.measure_index(sel.measure_id))
        # One stop per measure, even if it has several problems.
        stops: list[Issue] = []
        for issue in issues:
            if not stops or (stops[-1].page, stops[-1].measure_id) != (
                issue.page,
                issue.measure_id,
            ):
                stops.append(issue)
        if forward:
            target = next((i for i in stops if (i.page, i.measure_index) > here), stops[0])
        else:
            target = next(
                (i for i in reversed(stops) if (i.page, i.measure_index) < here), stops[-1]
            )
        self.document.select_measure(target.page, target.measure_id, self._address(target))
        return target
