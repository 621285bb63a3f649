"""The studio's main window: the pages on the left, the scan beside its engraving, issues and
the measure's tokens below; menus, shortcuts, progress and prompts.

The window wires views to the Document and turns actions into undo commands or background
jobs; it holds no music itself. Runners are injectable so tests run every job inline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from omr_engine.notation.symbols import CLEFS, KEYS, key_text

from . import commands, palette
from .document import Document, PageState, Selection
from .engine import INPUT_SUFFIXES, EditError, Engine, NoteAddress, edits
from .export import FORMATS, Exporter, musescore_executable
from .issues_panel import IssuesPanel
from .jobs import PageLoader, RecognitionQueue
from .measure_editor import MeasureEditor
from .page_strip import PageStrip
from .preferences import PreferencesDialog
from .project import SUFFIX, Autosaver, ProjectError, find_recoverable, open_project, save_project
from .scan_view import ScanView
from .score_view import ScoreView
from .settings import (
    DEVICE,
    LAST_DIRECTORY,
    MODEL_DIR,
    SHOW_LOW_CONFIDENCE,
    WINDOW_GEOMETRY,
    WINDOW_STATE,
    Settings,
)
from .workers import Runner, ThreadRunner

APP_NAME = "DeepMusic-OCR Studio"
#: MuseScore's duration keys: 1 = 64th ... 5 = quarter, 6 = half, 7 = whole, 8 = breve.
DIGIT_DURATIONS = {
    1: "64th",
    2: "32nd",
    3: "16th",
    4: "eighth",
    5: "quarter",
    6: "half",
    7: "whole",
    8: "breve",
}
COMMON_TIMES = (
    "C",
    "C|",
    "2/4",
    "3/4",
    "4/4",
    "5/4",
    "6/4",
    "2/2",
    "3/2",
    "3/8",
    "6/8",
    "9/8",
    "12/8",
)


class MainWindow(QMainWindow):
    def __init__(
        self,
        settings: Settings,
        engine: Engine | None = None,
        runner_factory: Callable[[], Runner] | None = None,
        autosave_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.settings = settings
        self.engine = engine or Engine(self._model_dir(), settings.get(DEVICE))
        make_runner = runner_factory or (lambda: ThreadRunner(1, self))
        self.recognition_runner = make_runner()
        self.engrave_runner = make_runner()
        self.io_runner = make_runner()

        self.document = Document(self.engine, self)
        self.loader = PageLoader(self.document, self.engine, self.io_runner, self)
        self.recognition = RecognitionQueue(
            self.document, self.engine, self.recognition_runner, self
        )
        self.exporter = Exporter(self.document, self.io_runner, self)
        self.autosaver = Autosaver(self.document, settings, autosave_dir, self)

        self.scan_view = ScanView(self.document, settings)
        self.score_view = ScoreView(self.document, settings, self.engrave_runner)
        self.page_strip = PageStrip(self.document, settings)
        self.issues_panel = IssuesPanel(self.document, settings)
        self.measure_editor = MeasureEditor(self.document)
        self._build_layout()
        self._build_actions()
        self._build_menus()
        self._build_status_bar()
        self._connect()
        self.setAcceptDrops(True)
        self._failure_shown = False
        self.resize(1500, 950)
        geometry = settings.get(WINDOW_GEOMETRY)
        if geometry:
            self.restoreGeometry(QByteArray(geometry))
        state = settings.get(WINDOW_STATE)
        if state:
            self.restoreState(QByteArray(state))
        self._update_title()
        self._update_actions()

    # ------------------------------------------------------------ construction

    def _model_dir(self) -> Path | None:
        text = self.settings.get(MODEL_DIR)
        return Path(text) if text else None

    def _build_layout(self) -> None:
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.scan_view)
        self.splitter.addWidget(self.score_view)
        self.splitter.setSizes([600, 700])
        self.setCentralWidget(self.splitter)

        def dock(title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
            d = QDockWidget(title, self)
            d.setObjectName(name)
            d.setWidget(widget)
            d.setFeatures(
                QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QDockWidget.DockWidgetFeature.DockWidgetClosable
                | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            )
            self.addDockWidget(area, d)
            return d

        self.pages_dock = dock(
            "Pages", "pagesDock", self.page_strip, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.issues_dock = dock(
            "Issues", "issuesDock", self.issues_panel, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.tokens_dock = dock(
            "Measure tokens",
            "tokensDock",
            self.measure_editor,
            Qt.DockWidgetArea.BottomDockWidgetArea,
        )
        self.splitDockWidget(self.issues_dock, self.tokens_dock, Qt.Orientation.Horizontal)
        self.resizeDocks(
            [self.issues_dock, self.tokens_dock], [650, 750], Qt.Orientation.Horizontal
        )
        self.resizeDocks([self.issues_dock], [210], Qt.Orientation.Vertical)

    def _action(
        self,
        text: str,
        slot: Callable[[], object],
        shortcut: str | QKeySequence.StandardKey | list | None = None,
        tip: str = "",
    ) -> QAction:
        action = QAction(text, self)
        if isinstance(shortcut, list):
            action.setShortcuts([QKeySequence(s) for s in shortcut])
        elif isinstance(shortcut, QKeySequence.StandardKey):
            action.setShortcuts(shortcut)
        elif shortcut:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)  # shortcuts work with menus hidden too
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.open_action = a(
            "&Open…",
            self.open_dialog,
            QKeySequence.StandardKey.Open,
            "Open a PDF, an image or a project",
        )
        self.save_action = a("&Save Project", self.save, QKeySequence.StandardKey.Save)
        self.save_as_action = a("Save Project &As…", self.save_as, "Ctrl+Shift+S")
        self.close_action = a("&Close", self.close_document, QKeySequence.StandardKey.Close)
        self.quit_action = a("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.preferences_action = a("&Preferences…", self.show_preferences, "Ctrl+,")
        self.export_actions = {
            fmt.suffix: a(f"{fmt.name}…", lambda f=fmt: self.export_dialog(f.suffix))
            for fmt in FORMATS
        }
        self.musescore_action = a("Open in &MuseScore", self.exporter.open_in_musescore, "Ctrl+M")
        self.musescore_action.setEnabled(musescore_executable() is not None)

        self.undo_action = self.document.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcuts(QKeySequence.StandardKey.Undo)
        self.redo_action = self.document.undo_stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.addAction(self.undo_action)
        self.addAction(self.redo_action)

        # Note input, as in MuseScore.
        self.pitch_actions = [
            a(f"Pitch {step}", lambda s=step: self.edit(commands.SetPitchCommand, s), step)
            for step in "CDEFGAB"
        ]
        self.duration_actions = [
            a(
                f"{name.capitalize()} ({digit})",
                lambda n=name: self.edit(commands.SetDurationCommand, n),
                str(digit),
            )
            for digit, name in sorted(DIGIT_DURATIONS.items())
        ]
        self.up_action = a("Up a semitone", lambda: self.edit(commands.TransposeCommand, 1), "Up")
        self.down_action = a(
            "Down a semitone", lambda: self.edit(commands.TransposeCommand, -1), "Down"
        )
        self.octave_up_action = a(
            "Up an octave", lambda: self.edit(commands.OctaveCommand, 1), "Ctrl+Up"
        )
        self.octave_down_action = a(
            "Down an octave", lambda: self.edit(commands.OctaveCommand, -1), "Ctrl+Down"
        )
        self.dot_action = a("Toggle dot", lambda: self.edit(commands.ToggleDotCommand), ".")
        self.rest_action = a(
            "Note to rest", lambda: self.edit(commands.NoteToRestCommand), "Delete"
        )
        self.delete_note_action = a(
            "Delete note or rest", lambda: self.edit(commands.DeleteEventCommand), "Ctrl+Delete"
        )
        self.insert_note_action = a(
            "Insert note after", lambda: self.edit(commands.InsertNoteCommand), "Insert"
        )
        self.insert_measure_action = a(
            "Insert measure after", lambda: self.edit(commands.InsertMeasureCommand), "Ctrl+B"
        )
        self.delete_measure_action = a(
            "Delete measure", lambda: self.edit(commands.DeleteMeasureCommand), "Ctrl+Shift+Delete"
        )
        self.edit_tokens_action = a("Edit measure tokens", self.focus_tokens, "F2")

        # Moving around.
        self.next_note_action = a("Next note", lambda: self.move_note(1), "Right")
        self.previous_note_action = a("Previous note", lambda: self.move_note(-1), "Left")
        self.next_measure_action = a("Next measure", lambda: self.move_measure(1), "Ctrl+Right")
        self.previous_measure_action = a(
            "Previous measure", lambda: self.move_measure(-1), "Ctrl+Left"
        )
        self.staff_down_action = a("Staff below", lambda: self.move_staff(1), "Alt+Down")
        self.staff_up_action = a("Staff above", lambda: self.move_staff(-1), "Alt+Up")
        self.next_issue_action = a("Next issue", lambda: self.issues_panel.step(True), "F8")
        self.previous_issue_action = a(
            "Previous issue", lambda: self.issues_panel.step(False), "Shift+F8"
        )
        self.next_page_action = a("Next page", lambda: self.go_page(1), "PgDown")
        self.previous_page_action = a("Previous page", lambda: self.go_page(-1), "PgUp")

        # Recognition.
        self.recognize_page_action = a("Recognize &Page", self.recognize_page, "Ctrl+R")
        self.recognize_all_action = a("Recognize &All Pages", self.recognize_all, "Ctrl+Shift+R")
        self.cancel_action = a("&Cancel Recognition", self.recognition.cancel, "Esc")

        # View.
        self.zoom_in_action = a(
            "Zoom &In", lambda: self.active_view().zoom_by(1.25), ["Ctrl++", "Ctrl+="]
        )
        self.zoom_out_action = a("Zoom &Out", lambda: self.active_view().zoom_by(0.8), "Ctrl+-")
        self.fit_width_action = a("Fit &Width", lambda: self.active_view().fit_width(), "Ctrl+9")
        self.fit_page_action = a("Fit &Page", lambda: self.active_view().fit_page(), "Ctrl+0")
        self.low_confidence_action = a(
            "Highlight &Low-Confidence Measures",
            lambda: self.settings.set(SHOW_LOW_CONFIDENCE, self.low_confidence_action.isChecked()),
            "Ctrl+L",
        )
        self.low_confidence_action.setCheckable(True)
        self.low_confidence_action.setChecked(self.settings.get(SHOW_LOW_CONFIDENCE))
        self.shortcuts_action = a("&Keyboard Shortcuts", self.show_shortcuts, "F1")

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        file_menu.addAction(self.save_action)
        file_menu.addAction(self.save_as_action)
        export_menu = file_menu.addMenu("&Export")
        for action in self.export_actions.values():
            export_menu.addAction(action)
        file_menu.addAction(self.musescore_action)
        file_menu.addSeparator()
        file_menu.addAction(self.close_action)
        file_menu.addAction(self.preferences_action)
        file_menu.addAction(self.quit_action)

        edit_menu = bar.addMenu("&Edit")
        edit_menu.addAction(self.undo_action)
        edit_menu.addAction(self.redo_action)
        edit_menu.addSeparator()
        pitch_menu = edit_menu.addMenu("&Pitch")
        for action in self.pitch_actions:
            pitch_menu.addAction(action)
        pitch_menu.addSeparator()
        for action in (
            self.up_action,
            self.down_action,
            self.octave_up_action,
            self.octave_down_action,
        ):
            pitch_menu.addAction(action)
        duration_menu = edit_menu.addMenu("&Duration")
        for action in self.duration_actions:
            duration_menu.addAction(action)
        duration_menu.addAction(self.dot_action)
        edit_menu.addAction(self.rest_action)
        edit_menu.addAction(self.insert_note_action)
        edit_menu.addAction(self.delete_note_action)
        edit_menu.addSeparator()
        edit_menu.addAction(self.insert_measure_action)
        edit_menu.addAction(self.delete_measure_action)
        self.clef_menu = edit_menu.addMenu("&Clef")
        for clef in CLEFS:
            self.clef_menu.addAction(clef, lambda c=clef: self.edit(commands.SetClefCommand, c))
        self.key_menu = edit_menu.addMenu("&Key Signature")
        for key in KEYS:
            label = {0: "no sharps or flats"}.get(
                key, key_text(key).replace("#", " sharps").replace("b", " flats")
            )
            self.key_menu.addAction(label, lambda k=key: self.edit(commands.SetKeyCommand, k))
        self.time_menu = edit_menu.addMenu("&Time Signature")
        for time in COMMON_TIMES:
            self.time_menu.addAction(time, lambda t=time: self.edit(commands.SetTimeCommand, t))
        edit_menu.addSeparator()
        edit_menu.addAction(self.edit_tokens_action)

        go_menu = bar.addMenu("&Go")
        for action in (
            self.next_issue_action,
            self.previous_issue_action,
            None,
            self.next_note_action,
            self.previous_note_action,
            self.next_measure_action,
            self.previous_measure_action,
            self.staff_down_action,
            self.staff_up_action,
            None,
            self.next_page_action,
            self.previous_page_action,
        ):
            if action is None:
                go_menu.addSeparator()
            else:
                go_menu.addAction(action)

        recognize_menu = bar.addMenu("&Recognize")
        recognize_menu.addAction(self.recognize_page_action)
        recognize_menu.addAction(self.recognize_all_action)
        recognize_menu.addAction(self.cancel_action)

        view_menu = bar.addMenu("&View")
        for action in (
            self.zoom_in_action,
            self.zoom_out_action,
            self.fit_width_action,
            self.fit_page_action,
        ):
            view_menu.addAction(action)
        view_menu.addSeparator()
        view_menu.addAction(self.low_confidence_action)
        view_menu.addSeparator()
        for d in (self.pages_dock, self.issues_dock, self.tokens_dock):
            view_menu.addAction(d.toggleViewAction())

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolBar")
        toolbar.setMovable(False)
        for action in (
            self.open_action,
            self.save_action,
            None,
            self.recognize_page_action,
            self.recognize_all_action,
            None,
            self.undo_action,
            self.redo_action,
            None,
            self.previous_issue_action,
            self.next_issue_action,
            None,
            self.export_actions[".musicxml"],
        ):
            if action is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(action)
        self.export_actions[".musicxml"].setIconText("Export MusicXML")

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.issue_label = QLabel()
        self.issue_label.setObjectName("issueCount")
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(220)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.clicked.connect(self.recognition.cancel)
        self.cancel_button.hide()
        status.addPermanentWidget(self.progress_bar)
        status.addPermanentWidget(self.cancel_button)
        status.addPermanentWidget(self.issue_label)
        self._update_issue_count()

    def _connect(self) -> None:
        doc = self.document
        doc.message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        doc.modified_changed.connect(lambda _m: self._update_title())
        doc.diagnostics_changed.connect(lambda _i: self._update_issue_count())
        doc.pages_reset.connect(self._update_issue_count)
        doc.selection_changed.connect(lambda _s: self._update_actions())
        doc.page_added.connect(lambda _i: self._update_actions())
        doc.page_state_changed.connect(lambda _i: self._update_actions())
        self.loader.started.connect(lambda name: self.statusBar().showMessage(f"Opening {name}…"))
        self.loader.finished.connect(self._on_loaded)
        self.loader.failed.connect(lambda msg: self.error("The file cannot be opened", msg))
        self.recognition.busy_changed.connect(self._on_recognition_busy)
        self.recognition.progress.connect(self._on_recognition_progress)
        self.recognition.failed.connect(self._on_recognition_failed)
        self.exporter.started.connect(
            lambda name: self.statusBar().showMessage(f"Exporting {name}…")
        )
        self.exporter.finished.connect(
            lambda path: self.statusBar().showMessage(f"Exported {path}", 8000)
        )
        self.exporter.failed.connect(lambda msg: self.error("Export failed", msg))
        self.autosaver.failed.connect(
            lambda msg: self.statusBar().showMessage(f"Autosave failed: {msg}", 8000)
        )
        self.settings.changed.connect(self._on_setting_changed)

    # ------------------------------------------------------------ state display

    def _update_title(self) -> None:
        doc = self.document
        name = (
            doc.project_path.name if doc.project_path else (doc.source.name if doc.source else "")
        )
        self.setWindowTitle(f"{name}[*] — {APP_NAME}" if name else APP_NAME)
        self.setWindowModified(doc.is_modified)

    def _update_issue_count(self) -> None:
        read = sum(1 for p in self.document.pages if p.score is not None)
        if not read:
            self.issue_label.setText("No page read")
            self.issue_label.setStyleSheet(f"color: {palette.MUTED.name()}")
            return
        count = self.document.invalid_measure_count()
        if count:
            self.issue_label.setText(f"{count} invalid measure{'s' if count > 1 else ''}")
            self.issue_label.setStyleSheet(f"color: {palette.INVALID.name()}; font-weight: bold")
        else:
            self.issue_label.setText("No invalid measures")
            self.issue_label.setStyleSheet(f"color: {palette.CLEAN.name()}")

    def _update_actions(self) -> None:
        doc = self.document
        has_pages = bool(doc.pages)
        has_music = any(p.score is not None for p in doc.pages)
        has_selection = doc.selection is not None
        for action in (self.save_action, self.save_as_action, self.close_action):
            action.setEnabled(has_pages)
        for action in (self.recognize_page_action, self.recognize_all_action):
            action.setEnabled(has_pages)
        for action in self.export_actions.values():
            action.setEnabled(has_music)
        self.musescore_action.setEnabled(has_music and musescore_executable() is not None)
        self.cancel_action.setEnabled(self.recognition.busy)
        for action in (
            *self.pitch_actions,
            *self.duration_actions,
            self.up_action,
            self.down_action,
            self.octave_up_action,
            self.octave_down_action,
            self.dot_action,
            self.rest_action,
            self.delete_note_action,
            self.insert_note_action,
            self.insert_measure_action,
            self.delete_measure_action,
            self.edit_tokens_action,
        ):
            action.setEnabled(has_selection)
        for menu in (self.clef_menu, self.key_menu, self.time_menu):
            menu.setEnabled(has_selection)

    def _on_recognition_busy(self, busy: bool) -> None:
        if busy:
            self._failure_shown = False
        self.progress_bar.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.cancel_action.setEnabled(busy)
        if not busy and not self._failure_shown:
            self.statusBar().showMessage("Recognition finished", 5000)

    def _on_recognition_progress(self, done: int, total: int, message: str) -> None:
        self.progress_bar.setMaximum(max(total, 1))
        self.progress_bar.setValue(done)
        self.progress_bar.setFormat(f"{done}/{total} pages")
        if message:
            self.statusBar().showMessage(message)

    def _on_recognition_failed(self, page: int, message: str) -> None:
        self.statusBar().showMessage(f"Page {page + 1} could not be read: {message}", 10000)
        if not self._failure_shown:  # once per run: the same cause usually fails every page
            self._failure_shown = True
            self.error(f"Page {page + 1} could not be read", message)

    def _on_loaded(self, count: int) -> None:
        self.statusBar().showMessage(
            f"Opened {count} page{'s' if count != 1 else ''}. Recognize with Ctrl+R (all pages: Ctrl+Shift+R).",
            10000,
        )
        self._update_actions()

    def _on_setting_changed(self, key: str) -> None:
        if key in (DEVICE.key, MODEL_DIR.key):
            self.engine.configure(self._model_dir(), self.settings.get(DEVICE))
        if key == SHOW_LOW_CONFIDENCE.key:
            self.low_confidence_action.setChecked(self.settings.get(SHOW_LOW_CONFIDENCE))

    def active_view(self):
        return self.score_view if self.score_view.hasFocus() else self.scan_view

    # ------------------------------------------------------------ prompts (tests replace these)

    def error(self, title: str, message: str) -> None:
        self.statusBar().showMessage(f"{title}: {message}", 10000)
        QMessageBox.warning(self, title, message[:1].upper() + message[1:])

    def ask_save_changes(self) -> str:
        """'save', 'discard' or 'cancel'."""
        answer = QMessageBox.question(
            self,
            "Unsaved changes",
            "Save your changes to this project before closing it?",
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )
        return {
            QMessageBox.StandardButton.Save: "save",
            QMessageBox.StandardButton.Discard: "discard",
        }.get(answer, "cancel")

    def ask_recover(self, description: str) -> bool:
        answer = QMessageBox.question(
            self,
            "Recover unsaved work",
            f"The studio did not close properly last time.\nRecover {description}?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.Yes,
        )
        return answer == QMessageBox.StandardButton.Yes

    def ask_save_path(self, title: str, suggestion: str, filters: str) -> Path | None:
        path, _ = QFileDialog.getSaveFileName(self, title, suggestion, filters)
        return Path(path) if path else None

    # ------------------------------------------------------------ files

    def open_dialog(self) -> None:
        filters = (
            f"Scores ({' '.join('*' + s for s in (*INPUT_SUFFIXES, SUFFIX))});;"
            f"Projects (*{SUFFIX});;All files (*)"
        )
        path, _ = QFileDialog.getOpenFileName(
            self, "Open", self.settings.get(LAST_DIRECTORY), filters
        )
        if path:
            self.open_path(Path(path))

    def open_path(self, path: Path) -> bool:
        path = Path(path)
        if not self.maybe_save():
            return False
        if not path.exists():
            self.error("The file cannot be opened", f"{path} does not exist")
            return False
        self.settings.set(LAST_DIRECTORY, str(path.parent))
        if path.suffix.lower() == SUFFIX:
            self.loader.cancel()
            try:
                open_project(self.document, path, as_path=path)
            except ProjectError as e:
                self.error("The project cannot be opened", str(e))
                return False
            self.statusBar().showMessage(f"Opened {path.name}", 5000)
        else:
            self.document.clear()
            self.document.source = path
            self.document.title = path.stem
            self.loader.load(path)
        self.settings.add_recent_file(path)
        self._update_title()
        self._update_actions()
        return True

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_files()
        for path in recent:
            self.recent_menu.addAction(str(path), lambda p=path: self.open_path(p))
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def save(self) -> bool:
        if self.document.project_path is None:
            return self.save_as()
        return self._save_to(self.document.project_path)

    def save_as(self) -> bool:
        doc = self.document
        base = doc.project_path or (
            doc.source.with_suffix(SUFFIX) if doc.source else Path("untitled" + SUFFIX)
        )
        path = self.ask_save_path("Save project", str(base), f"DeepMusic-OCR project (*{SUFFIX})")
        if path is None:
            return False
        if path.suffix.lower() != SUFFIX:
            path = path.with_suffix(SUFFIX)
        return self._save_to(path)

    def _save_to(self, path: Path) -> bool:
        try:
            save_project(self.document, path)
        except ProjectError as e:
            self.error("The project was not saved", str(e))
            return False
        self.settings.add_recent_file(path)
        self.statusBar().showMessage(f"Saved {path.name}", 5000)
        self._update_title()
        return True

    def maybe_save(self) -> bool:
        """Before the document goes: True if it may go (saved, discarded or unchanged)."""
        if not self.document.is_modified or not self.document.pages:
            return True
        answer = self.ask_save_changes()
        if answer == "save":
            return self.save()
        return answer == "discard"

    def close_document(self) -> None:
        if self.maybe_save():
            self.loader.cancel()
            self.document.clear()
            self.autosaver.discard()
            self._update_title()
            self._update_actions()

    def export_dialog(self, suffix: str) -> None:
        fmt = next(f for f in FORMATS if f.suffix == suffix)
        doc = self.document
        base = doc.project_path or doc.source or Path("transcription")
        path = self.ask_save_path(f"Export {fmt.name}", str(base.with_suffix(suffix)), fmt.filter)
        if path is not None:
            if not path.suffix:
                path = path.with_suffix(suffix)
            self.exporter.export(path)

    def recover_autosaves(self) -> bool:
        """Offer the work of a studio that crashed; True if some was recovered."""
        for item in find_recoverable(self.autosaver.directory):
            if item.path == self.autosaver.path:
                continue
            if self.ask_recover(item.describe()):
                try:
                    project_path = Path(item.project_path) if item.project_path else None
                    open_project(self.document, item.path, as_path=None)
                    self.document.project_path = project_path
                except ProjectError as e:
                    self.error("The work could not be recovered", str(e))
                    continue
                item.discard()
                self.autosaver.autosave()
                self._update_title()
                self._update_actions()
                self.statusBar().showMessage("Recovered unsaved work. Save it to keep it.", 10000)
                return True
            item.discard()
        return False

    # ------------------------------------------------------------ drag and drop

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            # After the drop returns: a prompt inside a drop handler confuses some desktops.
            QTimer.singleShot(0, lambda: self.open_path(paths[0]))

    # ------------------------------------------------------------ recognition

    def recognize_page(self) -> None:
        if 0 <= self.document.current_page < len(self.document.pages):
            self.recognition.recognize([self.document.current_page])
            self._update_actions()

    def recognize_all(self) -> None:
        pending = [
            p.index
            for p in self.document.pages
            if p.state in (PageState.NOT_READ, PageState.FAILED)
        ]
        self.recognition.recognize(pending or [p.index for p in self.document.pages])
        self._update_actions()

    # ------------------------------------------------------------ editing

    def edit(self, command_class: type, *args: object) -> bool:
        """Build the command (it checks that the edit applies) and push it."""
        try:
            command = command_class(self.document, *args)
        except EditError as e:
            self.statusBar().showMessage(str(e)[:1].upper() + str(e)[1:], 5000)
            return False
        self.document.undo_stack.push(command)
        return True

    def focus_tokens(self) -> None:
        self.tokens_dock.show()
        self.tokens_dock.raise_()
        self.measure_editor.focus_tokens()

    def _select_first_measure(self) -> None:
        doc = self.document
        page = doc.page(doc.current_page) if 0 <= doc.current_page < len(doc.pages) else None
        if page is not None and page.score is not None and page.score.measures:
            doc.select_measure(page.index, page.score.measures[0].id)

    def move_note(self, delta: int) -> None:
        doc = self.document
        selected = doc.selected_measure()
        if selected is None or doc.selection is None:
            self._select_first_measure()
            return
        page, i, measure = selected
        assert page.score is not None
        address = doc.selection.address
        if edits.event_count(measure, address.staff, address.voice) == 0:
            self.move_measure(delta)
            return
        target = edits.step_address(page.score.measures, i, address, delta)
        if target is not None:
            j, new_address = target
            doc.set_selection(Selection(page.index, page.score.measures[j].id, new_address))
            return
        # Past the page's end: on to the neighbouring page that has been read.
        self._cross_page(page.index, delta, address.staff, address.voice)

    def _cross_page(self, page_index: int, delta: int, staff: int, voice: int) -> None:
        doc = self.document
        j = page_index + delta
        while 0 <= j < len(doc.pages):
            score = doc.page(j).score
            if score is not None and score.measures:
                m = score.measures[0] if delta > 0 else score.measures[-1]
                index = 0 if delta > 0 else max(edits.event_count(m, staff, voice) - 1, 0)
                doc.set_selection(
                    Selection(j, m.id, edits.clamp_address(m, NoteAddress(staff, voice, index)))
                )
                return
            j += delta

    def move_measure(self, delta: int) -> None:
        doc = self.document
        selected = doc.selected_measure()
        if selected is None or doc.selection is None:
            self._select_first_measure()
            return
        page, i, _measure = selected
        assert page.score is not None
        address = doc.selection.address
        j = i + delta
        if 0 <= j < len(page.score.measures):
            m = page.score.measures[j]
            doc.set_selection(
                Selection(page.index, m.id, NoteAddress(address.staff, address.voice, 0))
            )
        else:
            self._cross_page(page.index, delta, address.staff, address.voice)

    def move_staff(self, delta: int) -> None:
        doc = self.document
        selected = doc.selected_measure()
        if selected is None or doc.selection is None:
            return
        page, _i, measure = selected
        a = doc.selection.address
        staff = min(max(a.staff + delta, 0), len(measure.staves) - 1)
        doc.set_selection(Selection(page.index, measure.id, NoteAddress(staff, 0, a.index)))

    def go_page(self, delta: int) -> None:
        doc = self.document
        self.document.set_current_page(min(max(doc.current_page + delta, 0), len(doc.pages) - 1))

    # ------------------------------------------------------------ dialogs

    def show_preferences(self) -> None:
        PreferencesDialog(self.settings, self).exec()

    def show_shortcuts(self) -> None:
        dialog = QDialog(self)
        dialog.setWindowTitle("Keyboard shortcuts")
        table = QTableWidget(0, 2)
        table.setHorizontalHeaderLabels(["Action", "Keys"])
        for action in self.actions():
            keys = ", ".join(
                s.toString(QKeySequence.SequenceFormat.NativeText) for s in action.shortcuts()
            )
            if keys:
                row = table.rowCount()
                table.insertRow(row)
                table.setItem(row, 0, QTableWidgetItem(action.text().replace("&", "")))
                table.setItem(row, 1, QTableWidgetItem(keys))
        table.resizeColumnsToContents()
        layout = QVBoxLayout(dialog)
        layout.addWidget(table)
        dialog.resize(460, 600)
        dialog.exec()

    # ------------------------------------------------------------ closing

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self.maybe_save():
            event.ignore()
            return
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Stop the workers and forget the autosave (the work is saved or discarded)."""
        self.settings.set(WINDOW_GEOMETRY, bytes(self.saveGeometry().data()))
        self.settings.set(WINDOW_STATE, bytes(self.saveState().data()))
        self.settings.sync()
        self.loader.cancel()
        self.recognition.cancel()
        for runner in (self.recognition_runner, self.engrave_runner, self.io_runner):
            cancel_all = getattr(runner, "cancel_all", None)
            if cancel_all is not None:
                cancel_all()
            runner.wait(5000)
        self.autosaver.close()
