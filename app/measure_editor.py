"""The selected measure as tokens, editable as text and checked as you type.

One line per staff, the barline last. While typing, unknown tokens are underlined and the
grammar's verdict for the measure, in its place in the score, is shown below. Ctrl+Return
applies the text as one undoable edit; Escape puts the measure's text back.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QKeySequence, QShortcut, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from omr_engine.notation.score import Measure

from . import palette
from .commands import ReplaceMeasureCommand
from .document import Document, Selection
from .engine import EditError


def event_token_spans(text: str) -> dict[tuple[int, int, int], tuple[int, int]]:
    """(staff, voice, event index) -> (start, end) character span of that event's tokens."""
    spans: dict[tuple[int, int, int], tuple[int, int]] = {}
    staff = voice = index = 0
    pos = 0
    pending_start: int | None = None  # a <grace> or <tuplet> waiting for its note
    last_key: tuple[int, int, int] | None = None
    for token in text.split():
        start = text.index(token, pos)
        end = start + len(token)
        pos = end
        if token == "<staff>":
            staff, voice, index, last_key = staff + 1, 0, 0, None
        elif token == "<voice>":
            voice, index, last_key = voice + 1, 0, None
        elif token == "<grace>":
            pending_start = start
        elif token in ("<chord>", "<tie>") and last_key is not None:
            spans[last_key] = (spans[last_key][0], end)
        elif token.startswith(("<note:", "<rest:")) or token == "<mrest>":
            if (
                token.startswith("<note:")
                and text[:start].rstrip().endswith("<chord>")
                and last_key
            ):
                spans[last_key] = (spans[last_key][0], end)
                continue
            key = (staff, voice, index)
            spans[key] = (pending_start if pending_start is not None else start, end)
            pending_start = None
            last_key = key
            index += 1
    return spans


class MeasureEditor(QWidget):
    applied = Signal()

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("measureEditor")
        self.document = document
        self.engine = document.engine
        self.measure: Measure | None = None
        self._page = -1
        self._shown_text = ""
        self.title = QLabel("No measure selected")
        self.edit = QPlainTextEdit()
        self.edit.setObjectName("measureTokens")
        font = QFont("Monospace")
        font.setStyleHint(QFont.StyleHint.TypeWriter)
        self.edit.setFont(font)
        self.edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.edit.setPlaceholderText("Select a measure to see and edit its tokens.")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.apply_button = QPushButton("Apply (Ctrl+Return)")
        self.revert_button = QPushButton("Revert (Esc)")
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.apply_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.edit, 1)
        layout.addLayout(buttons)
        self._check_timer = QTimer(self)
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(150)
        self._check_timer.timeout.connect(self.check)
        self.edit.textChanged.connect(self._on_text_changed)
        self.apply_button.clicked.connect(self.apply)
        self.revert_button.clicked.connect(self.revert)
        for keys, slot in (
            ("Ctrl+Return", self.apply),
            ("Ctrl+Enter", self.apply),
            ("Escape", self.revert),
        ):
            shortcut = QShortcut(QKeySequence(keys), self.edit)
            shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(slot)
        document.selection_changed.connect(self._on_selection_changed)
        document.score_changed.connect(self._on_score_changed)
        self._set_enabled(False)

    # ------------------------------------------------------------ showing

    def _set_enabled(self, enabled: bool) -> None:
        self.edit.setReadOnly(not enabled)
        self.apply_button.setEnabled(False)
        self.revert_button.setEnabled(False)

    @property
    def dirty(self) -> bool:
        return self.edit.toPlainText() != self._shown_text

    def _on_selection_changed(self, sel: Selection | None) -> None:
        selected = self.document.selected_measure()
        if selected is None:
            self.measure = None
            self._page = -1
            self._show_text("")
            self.title.setText("No measure selected")
            self._set_enabled(False)
            return
        page, i, measure = selected
        if self.measure is not None and measure.id == self.measure.id and self._page == page.index:
            if not self.dirty and measure != self.measure:
                self._show_measure(page.index, i, measure)
            self._mark_event()
            return
        self._show_measure(page.index, i, measure)

    def _on_score_changed(self, index: int) -> None:
        selected = self.document.selected_measure()
        if selected is not None and selected[0].index == index:
            page, i, measure = selected
            if measure != self.measure:
                self._show_measure(page.index, i, measure)

    def _show_measure(self, page: int, index: int, measure: Measure) -> None:
        self.measure = measure
        self._page = page
        number = measure.number or str(index + 1)
        self.title.setText(f"Page {page + 1}, measure {number}")
        self._set_enabled(True)
        self._show_text(self.engine.measure_text(measure))
        self.check()

    def _show_text(self, text: str) -> None:
        self._shown_text = text
        self.edit.blockSignals(True)
        self.edit.setPlainText(text)
        self.edit.blockSignals(False)
        self.apply_button.setEnabled(False)
        self.revert_button.setEnabled(False)
        self._mark_event()
        if not text:
            self.status.setText("")

    def _mark_event(self, extra: list | None = None) -> None:
        """Shade the tokens of the selected note; keep other marks (`extra`)."""
        selections = list(extra or [])
        sel = self.document.selection
        if sel is not None and not self.dirty:
            a = sel.address
            span = event_token_spans(self.edit.toPlainText()).get((a.staff, a.voice, a.index))
            if span is not None:
                mark = QTextEdit.ExtraSelection()
                cursor = QTextCursor(self.edit.document())
                cursor.setPosition(span[0])
                cursor.setPosition(span[1], QTextCursor.MoveMode.KeepAnchor)
                mark.cursor = cursor
                mark.format.setBackground(palette.brush(palette.SELECTED, 50))
                selections.append(mark)
        self.edit.setExtraSelections(selections)

    # ------------------------------------------------------------ checking

    def _on_text_changed(self) -> None:
        dirty = self.dirty
        self.apply_button.setEnabled(dirty)
        self.revert_button.setEnabled(dirty)
        self._check_timer.start()

    def check(self) -> tuple[Measure | None, list[str]]:
        """Read the text; show what is wrong. Returns the measure (None if unreadable) and
        the problems found."""
        if self.measure is None:
            return None, []
        text = self.edit.toPlainText()
        marks = self._unknown_marks(text)
        measure, errors = self.engine.parse_measure_text(text, self.measure)
        problems = list(errors)
        if measure is not None:
            problems += [self._describe(d) for d in self._diagnostics(measure)]
        if problems:
            self.status.setText(
                "<br>".join(f"<span style='color:#c22'>⚠ {p}</span>" for p in problems)
            )
        else:
            self.status.setText("<span style='color:#1a7f3c'>✓ valid measure</span>")
        self._mark_event(marks)
        return measure, problems

    @staticmethod
    def _describe(d) -> str:
        return f"staff {d.staff + 1}: {d.message}" if d.staff is not None else d.message

    def _diagnostics(self, measure: Measure) -> list:
        """What the grammar says of `measure` in its place (the Document's verdict when the
        text is the measure as it stands)."""
        selected = self.document.selected_measure()
        if selected is None:
            return []
        page, i, current = selected
        if measure == current:
            return [d for d in page.diagnostics if d.measure_id == current.id]
        return self.document.diagnose(page.index, i, i, replace={i: measure})

    def _unknown_marks(self, text: str) -> list:
        marks = []
        pos = 0
        fmt = QTextCharFormat()
        fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
        fmt.setUnderlineColor(QColor(palette.INVALID))
        for token in text.split():
            start = text.index(token, pos)
            pos = start + len(token)
            if self.engine.is_token(token):
                continue
            mark = QTextEdit.ExtraSelection()
            cursor = QTextCursor(self.edit.document())
            cursor.setPosition(start)
            cursor.setPosition(pos, QTextCursor.MoveMode.KeepAnchor)
            mark.cursor = cursor
            mark.format = fmt
            marks.append(mark)
        return marks

    # ------------------------------------------------------------ applying

    def apply(self) -> bool:
        if self.measure is None or not self.dirty:
            return False
        measure, errors = self.check()
        if measure is None:
            self.document.message.emit("The measure text cannot be read: " + errors[0])
            return False
        try:
            command = ReplaceMeasureCommand(self.document, measure)
        except EditError as e:
            self.document.message.emit(str(e))
            return False
        self._shown_text = self.edit.toPlainText()
        self.document.undo_stack.push(command)
        self.applied.emit()
        return True

    def revert(self) -> None:
        if self.measure is not None:
            self._show_text(self.engine.measure_text(self.measure))
            self.check()

    def focus_tokens(self) -> None:
        self.edit.setFocus()
        sel = self.document.selection
        if sel is not None:
            span = event_token_spans(self.edit.toPlainText()).get(
                (sel.address.staff, sel.address.voice, sel.address.index)
            )
            if span is not None:
                cursor = self.edit.textCursor()
                cursor.setPosition(span[0])
                self.edit.setTextCursor(cursor)
