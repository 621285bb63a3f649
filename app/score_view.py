"""The transcription of the current page, engraved by Verovio one line (system) at a time.

Lines follow the scan: the measures of one system on the scan are engraved as one line here.
Each line is engraved from MEI written straight from the Score
(`omr_engine.notation.mei_writer`), and the engraving is cached by that MEI text: after an
edit only the line whose MEI changed is engraved again (in a worker), and undo finds the old
line in the cache. Element ids in Verovio's SVG give the boxes of measures and notes, for
highlighting and for clicks.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPixmap
from PySide6.QtWidgets import (
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsSimpleTextItem,
    QWidget,
)

from omr_engine.notation.score import StaffContext, apply_changes

from . import palette
from .document import Document, PageState, Selection
from .engine import EngravedSystem, NoteAddress, SvgGeometry, event_id, parse_event_id
from .engraving import group_systems
from .scan_view import gray_pixmap
from .settings import CONFIDENCE_THRESHOLD, SHOW_LOW_CONFIDENCE, Settings
from .workers import Runner, SimpleToken, Task
from .zoom_view import ZoomView

CACHE_SIZE = 400
LINE_GAP = 12.0


@dataclass
class _Line:
    measure_ids: list[str]
    mei: str
    source: tuple = ()  # (parts, context, measure objects) the MEI was written from
    shown: str | None = None  # the MEI whose engraving is on screen (may lag behind `mei`)
    item: QGraphicsPixmapItem | None = None
    geometry: SvgGeometry | None = None
    boxes: dict[str, QGraphicsRectItem] = field(default_factory=dict)


def _same_source(a: tuple, b: tuple) -> bool:
    """Same parts object, same context, and the very same measure objects (identity, not
    equality: the Document never changes a measure in place, it puts a new one)."""
    if not a or a[0] is not b[0] or a[1] != b[1] or len(a[2]) != len(b[2]):
        return False
    return all(x is y for x, y in zip(a[2], b[2], strict=True))


class ScoreView(ZoomView):
    line_engraved = Signal(str)  # a line's MEI, once its new engraving is on screen

    def __init__(
        self,
        document: Document,
        settings: Settings,
        runner: Runner,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("scoreView")
        self.setBackgroundBrush(QColor(250, 250, 247))
        self.document = document
        self.engine = document.engine
        self.settings = settings
        self.runner = runner
        self.page_index = -1
        self.lines: list[_Line] = []
        self.cache: OrderedDict[str, tuple[QPixmap, SvgGeometry]] = OrderedDict()
        self._pending: set[str] = set()
        self._note_item: QGraphicsRectItem | None = None
        self._message: QGraphicsSimpleTextItem | None = None
        self.errors: list[str] = []
        document.current_page_changed.connect(self.show_page)
        document.pages_reset.connect(self._clear)
        document.score_changed.connect(self._on_score_changed)
        document.diagnostics_changed.connect(self._on_diagnostics_changed)
        document.selection_changed.connect(self._on_selection_changed)
        document.page_state_changed.connect(self._on_page_state_changed)
        settings.changed.connect(lambda _key: self.restyle())
        self.clicked.connect(self._on_clicked)

    # ------------------------------------------------------------ building

    def _clear(self) -> None:
        self.scene().clear()
        self.lines = []
        self._note_item = None
        self._message = None
        self.page_index = -1

    def show_page(self, index: int) -> None:
        self._clear()
        self.page_index = index
        self.rebuild()

    def _show_message(self, text: str) -> None:
        if self._message is None:
            self._message = self.scene().addSimpleText(text, QFont("Sans", 14))
            self._message.setBrush(palette.MUTED)
        else:
            self._message.setText(text)
        self.scene().setSceneRect(QRectF(-20, -20, 600, 200))

    def rebuild(self) -> None:
        """Lines of the current page from its score; engrave the ones not in the cache."""
        if not 0 <= self.page_index < len(self.document.pages):
            return
        page = self.document.page(self.page_index)
        if page.score is None:
            for line in self.lines:
                if line.item is not None:
                    self.scene().removeItem(line.item)
            self.lines = []
            if page.state in (PageState.READING, PageState.QUEUED):
                done, total, _ = page.progress
                pct = f" {100 * done // total}%" if total else ""
                self._show_message(f"Reading page {page.index + 1}…{pct}")
            elif page.state == PageState.READ:
                self._show_message(f"No music was found on page {page.index + 1}.\n{page.error}")
            else:
                self._show_message(
                    f"Page {page.index + 1} has not been read yet.\n"
                    "Recognize it with Ctrl+R (all pages: Ctrl+Shift+R)."
                )
            return
        if self._message is not None:
            self.scene().removeItem(self._message)
            self._message = None
        score = page.score
        ctx = [
            StaffContext(c.clef, c.key, c.time)
            for c in self.document.contexts_before_page(self.page_index)
        ]
        while len(ctx) < score.staff_count:
            ctx.append(StaffContext())
        new_lines: list[_Line] = []
        for indices in group_systems(score.measures):
            measures = [score.measures[i] for i in indices]
            source = (score.parts, tuple((c.clef, c.key, c.time) for c in ctx), measures)
            old = self.lines[len(new_lines)] if len(new_lines) < len(self.lines) else None
            if old is not None and _same_source(old.source, source):
                mei = old.mei  # nothing in this line changed (edits replace measure objects)
            else:
                mei = self.engine.system_mei(score.parts, measures, ctx)
            for m in measures:
                for c, sm in zip(ctx, m.staves, strict=False):
                    apply_changes(c, sm)
            new_lines.append(_Line([m.id for m in measures], mei, source))
        # Keep what is on screen where a line is still there, so nothing flickers.
        for i, line in enumerate(new_lines):
            old = self.lines[i] if i < len(self.lines) else None
            if old is not None:
                line.item, line.shown, line.geometry = old.item, old.shown, old.geometry
                line.boxes, old.boxes, old.item = old.boxes, {}, None
        for old in self.lines:
            if old.item is not None:
                self.scene().removeItem(old.item)
        self.lines = new_lines
        for line in self.lines:
            if line.mei == line.shown:
                continue
            if line.mei in self.cache:
                self._place(line)
            else:
                self._request(line.mei)
        self._layout()

    def _request(self, mei: str) -> None:
        if mei in self._pending:
            return
        self._pending.add(mei)
        task = Task(lambda: [self.engine.engrave_system(mei)], SimpleToken(), "engrave")
        task.signals.yielded.connect(lambda result, key=mei: self._on_engraved(key, result))
        task.signals.failed.connect(lambda message, key=mei: self._on_failed(key, message))
        self.runner.start(task)

    def _on_engraved(self, mei: str, result: EngravedSystem) -> None:
        self._pending.discard(mei)
        self.cache[mei] = (gray_pixmap(result.image), result.geometry)
        while len(self.cache) > CACHE_SIZE:
            self.cache.popitem(last=False)
        placed = False
        for line in self.lines:
            if line.mei == mei and line.shown != mei:
                self._place(line)
                placed = True
        if placed:
            self._layout()
            self.line_engraved.emit(mei)

    def _on_failed(self, mei: str, message: str) -> None:
        self._pending.discard(mei)
        self.errors.append(message)
        self.document.message.emit(f"Could not engrave a line: {message}")

    def _place(self, line: _Line) -> None:
        pixmap, geometry = self.cache[line.mei]
        self.cache.move_to_end(line.mei)
        if line.item is None:
            line.item = self.scene().addPixmap(pixmap)
            line.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        else:
            line.item.setPixmap(pixmap)
        line.shown, line.geometry = line.mei, geometry
        for box in line.boxes.values():
            self.scene().removeItem(box)
        line.boxes = {}
        for mid in line.measure_ids:
            rect = geometry.measures.get(mid)
            if rect is None:
                continue
            x0, y0, x1, y1 = rect
            item = QGraphicsRectItem(QRectF(x0, y0 - 6, x1 - x0, y1 - y0 + 12), line.item)
            item.setData(0, mid)
            line.boxes[mid] = item

    def _layout(self) -> None:
        y = 0.0
        width = 0.0
        for line in self.lines:
            if line.item is None:
                continue
            line.item.setPos(0, y)
            rect = line.item.boundingRect()
            y += rect.height() + LINE_GAP
            width = max(width, rect.width())
        if width:
            self.scene().setSceneRect(QRectF(0, 0, width, max(y - LINE_GAP, 1)))
        self.restyle()
        self.refit()

    # ------------------------------------------------------------ highlighting

    def restyle(self) -> None:
        if not 0 <= self.page_index < len(self.document.pages):
            return
        page = self.document.page(self.page_index)
        invalid = {d.measure_id for d in page.diagnostics}
        low = set()
        if self.settings.get(SHOW_LOW_CONFIDENCE):
            threshold = self.settings.get(CONFIDENCE_THRESHOLD)
            low = {mid for mid, c in page.confidences.items() if c < threshold}
        sel = self.document.selection
        selected = sel.measure_id if sel is not None and sel.page == self.page_index else None
        for line in self.lines:
            for mid, item in line.boxes.items():
                outline, fill = palette.measure_style(mid == selected, mid in invalid, mid in low)
                if mid not in invalid and mid not in low and mid != selected:
                    outline.setColor(QColor(0, 0, 0, 0))  # plain measures: no box on the music
                item.setPen(outline)
                item.setBrush(fill)
        self._mark_note(sel)

    def _mark_note(self, sel: Selection | None) -> None:
        if self._note_item is not None:
            if self._note_item.scene() is not None:
                self.scene().removeItem(self._note_item)
            self._note_item = None
        if sel is None or sel.page != self.page_index:
            return
        a = sel.address
        eid = event_id(sel.measure_id, a.staff, a.voice, a.index)
        for line in self.lines:
            if line.geometry is None or line.item is None or sel.measure_id not in line.measure_ids:
                continue
            box = line.geometry.events.get(eid)
            if box is None:
                return
            x0, y0, x1, y1 = box
            self._note_item = QGraphicsRectItem(
                QRectF(x0 - 3, y0 - 3, x1 - x0 + 6, y1 - y0 + 6), line.item
            )
            self._note_item.setPen(palette.pen(palette.SELECTED, 2))
            self._note_item.setBrush(palette.brush(palette.SELECTED, 60))
            self._note_item.setZValue(5)
            return

    def measure_rect(self, measure_id: str) -> QRectF | None:
        """Scene rectangle of a measure's engraving (None if not on screen)."""
        for line in self.lines:
            item = line.boxes.get(measure_id)
            if item is not None:
                return item.mapRectToScene(item.rect())
        return None

    # ------------------------------------------------------------ document events

    def _on_score_changed(self, index: int) -> None:
        if index == self.page_index:
            self.rebuild()
        elif self.page_index >= 0 and index < self.page_index:
            self.rebuild()  # a clef/key/time carried over from an earlier page may differ

    def _on_page_state_changed(self, index: int) -> None:
        if index == self.page_index and self.document.page(index).score is None:
            self.rebuild()

    def _on_diagnostics_changed(self, index: int) -> None:
        if index == self.page_index:
            self.restyle()

    def _on_selection_changed(self, sel: Selection | None) -> None:
        if sel is not None and sel.page != self.page_index:
            self.show_page(sel.page)
        self.restyle()
        if sel is not None:
            rect = self.measure_rect(sel.measure_id)
            if rect is not None:
                self.reveal(rect)

    def _on_clicked(self, point: QPointF) -> None:
        for line in self.lines:
            if line.item is None or line.geometry is None:
                continue
            local = line.item.mapFromScene(point)
            if not line.item.boundingRect().contains(local):
                continue
            eid = line.geometry.event_at(local.x(), local.y())
            parsed = parse_event_id(eid) if eid else None
            if parsed is not None and parsed[0] in line.measure_ids:
                mid, staff, voice, index = parsed
                self.document.select_measure(self.page_index, mid, NoteAddress(staff, voice, index))
                return
            mid = line.geometry.measure_at(local.x(), local.y())
            if mid is None:
                # Between staves: the measure whose x-range holds the click.
                for m, (x0, _y0, x1, _y1) in line.geometry.measures.items():
                    if x0 <= local.x() <= x1:
                        mid = m
                        break
            if mid is not None and mid in line.measure_ids:
                self.document.select_measure(self.page_index, mid)
            return
