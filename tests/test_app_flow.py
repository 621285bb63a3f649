"""The whole studio flow, offscreen with every job inline: open a PDF, recognize it, see the
invalid measure on both sides and in the issues list, fix it from the keyboard, undo, redo,
save the project, reopen it, export MusicXML and find the fix in it."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from test_app_support import BROKEN_MEASURE, BROKEN_MESSAGE, FakeRecognizer, fake_engine, make_pdf

from app import commands, palette
from app.document import PageState
from app.main_window import MainWindow
from app.settings import SHOW_LOW_CONFIDENCE, Settings
from app.workers import InlineRunner

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(tmp_path):
    settings = Settings(tmp_path / "settings.ini")
    settings.set(SHOW_LOW_CONFIDENCE, False)  # these flows count the grammar's issues only
    return settings


def make_window(qtbot, settings, tmp_path, recognizer=None) -> MainWindow:
    window = MainWindow(
        settings,
        engine=fake_engine(recognizer or FakeRecognizer()),
        runner_factory=InlineRunner,
        autosave_dir=tmp_path / "autosave",
    )
    window.ask_save_changes = lambda: "discard"
    window.error = lambda title, message: pytest.fail(f"{title}: {message}")
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()  # shortcuts need an active window
    qtbot.waitUntil(window.isActiveWindow)
    return window


def fill_color(item) -> tuple[int, int, int]:
    c = item.brush().color()
    return c.red(), c.green(), c.blue()


def test_open_recognize_fix_undo_save_reopen_export(qtbot, settings, tmp_path):
    pdf = make_pdf(tmp_path / "chorale.pdf", pages=2)
    window = make_window(qtbot, settings, tmp_path)
    doc = window.document

    # Open: both pages are there, the first is shown, nothing read yet.
    assert window.open_path(pdf)
    assert len(doc.pages) == 2
    assert doc.current_page == 0
    assert window.scan_view.page_index == 0
    assert window.page_strip.item(0).text() == "Page 1\nnot read"
    assert window.issue_label.text() == "No page read"

    # Recognize all pages (the fake reads one measure wrong on each page).
    window.recognize_all_action.trigger()
    assert [p.state for p in doc.pages] == [PageState.READ, PageState.READ]
    assert window.page_strip.item(0).text() == "Page 1\n1 issue"
    assert window.issue_label.text() == "2 invalid measures"

    # The invalid measure is listed with page, measure, staff and reason...
    tree = window.issues_panel.tree
    qtbot.waitUntil(lambda: tree.topLevelItemCount() == 2)
    row = [tree.topLevelItem(0).text(c) for c in range(4)]
    # the sample opens with an upbeat, numbered 0 as printed: measure i is number i
    assert row == ["1", str(BROKEN_MEASURE), "", BROKEN_MESSAGE]
    assert [tree.topLevelItem(1).text(c) for c in range(3)] == ["2", "11", ""]
    # ... and highlighted on the scan and on the engraving.
    broken_id = doc.page(0).score.measures[BROKEN_MEASURE].id
    assert fill_color(window.scan_view.boxes[broken_id]) == palette.INVALID.getRgb()[:3]
    score_box = next(
        line.boxes[broken_id] for line in window.score_view.lines if broken_id in line.boxes
    )
    assert fill_color(score_box) == palette.INVALID.getRgb()[:3]
    assert window.score_view.errors == []

    # F8 goes to it; both views select it.
    window.scan_view.setFocus()
    QTest.keyClick(window, Qt.Key.Key_F8)
    assert doc.selection.page == 0 and doc.selection.measure_id == broken_id
    assert window.scan_view.boxes[broken_id].pen().width() == 3
    assert window.score_view._note_item is not None
    assert "page 1, measure 2" in window.measure_editor.title.text().lower()

    # Fix from the keyboard: the selected first note becomes a quarter (MuseScore's 5).
    QTest.keyClick(window.scan_view, Qt.Key.Key_5)
    assert doc.page(0).diagnostics == []
    assert window.issue_label.text() == "1 invalid measure"
    assert window.scan_view.boxes[broken_id].brush().color().alpha() > 0  # selected fill
    assert window.page_strip.item(0).text() == "Page 1\nclean"
    assert "<note:" in window.measure_editor.edit.toPlainText()
    assert window.isWindowModified()

    # Undo brings the problem back; redo fixes it again.
    QTest.keyClick(window.scan_view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(doc.page(0).diagnostics) == 1
    QTest.keyClick(
        window.scan_view,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert doc.page(0).diagnostics == []

    # A pitch edit too, so the project has two edits: the first note becomes an E.
    QTest.keyClick(window.scan_view, Qt.Key.Key_E)
    first = doc.page(0).score.measures[BROKEN_MEASURE].staves[0].voices[0][0]
    assert first.pitches[0].step == "E"
    QTest.keyClick(window.scan_view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc.undo_stack.index() == 1 and doc.undo_stack.count() == 2

    # Save the project; reopen it in a fresh window.
    project = tmp_path / "chorale.dmocr"
    window.ask_save_path = lambda *args: project
    assert window.save()
    assert not window.isWindowModified()

    window2 = make_window(qtbot, Settings(tmp_path / "settings2.ini"), tmp_path)
    assert window2.open_path(project)
    doc2 = window2.document
    assert len(doc2.pages) == 2
    assert doc2.page(0).diagnostics == []
    assert len(doc2.page(1).diagnostics) == 1
    assert doc2.undo_stack.count() == 2 and doc2.undo_stack.index() == 1
    assert not window2.isWindowModified()
    # The history came along: redo the pitch edit, undo it and the fix.
    doc2.undo_stack.redo()
    assert doc2.page(0).score.measures[BROKEN_MEASURE].staves[0].voices[0][0].pitches[0].step == "E"
    doc2.undo_stack.undo()
    doc2.undo_stack.undo()
    assert len(doc2.page(0).diagnostics) == 1
    doc2.undo_stack.redo()
    assert doc2.page(0).diagnostics == []

    # Export MusicXML: the fix is in it.
    out = tmp_path / "chorale.musicxml"
    window2.ask_save_path = lambda *args: out
    window2.export_actions[".musicxml"].trigger()
    assert out.exists()
    from omr_engine.notation.music21_io import read_score

    exported, _ = read_score(out)
    assert len(exported.measures) == 19
    soprano = exported.measures[BROKEN_MEASURE].staves[0].voices[0]
    assert soprano[0].duration.quarter_length == Fraction(1)
    # The second page was not fixed: its copy of the measure is still short.
    soprano2 = exported.measures[10 + BROKEN_MEASURE - 1].staves[0].voices[0]
    assert soprano2[0].duration.quarter_length == Fraction(1, 2)


def test_low_confidence_highlighting_is_on_by_default_and_optional(qtbot, settings, tmp_path):
    assert Settings(tmp_path / "fresh.ini").get(SHOW_LOW_CONFIDENCE)
    window = make_window(qtbot, settings, tmp_path)
    assert window.open_path(make_pdf(tmp_path / "one.pdf", pages=1))
    window.recognize_page_action.trigger()
    doc = window.document
    low_id = doc.page(0).score.measures[5].id
    assert window.scan_view.boxes[low_id].brush().style() == Qt.BrushStyle.NoBrush
    qtbot.waitUntil(lambda: window.issues_panel.tree.topLevelItemCount() == 1)
    window.low_confidence_action.trigger()
    assert settings.get(SHOW_LOW_CONFIDENCE)
    assert fill_color(window.scan_view.boxes[low_id]) == palette.LOW_CONFIDENCE.getRgb()[:3]
    qtbot.waitUntil(lambda: window.issues_panel.tree.topLevelItemCount() == 2)
    assert "low confidence" in window.issues_panel.tree.topLevelItem(1).text(3)
    # With the invalid measure fixed, the page has a measure to check, not a clean bill.
    window.scan_view.setFocus()
    QTest.keyClick(window, Qt.Key.Key_F8)
    QTest.keyClick(window.scan_view, Qt.Key.Key_5)
    assert doc.page(0).diagnostics == []
    assert window.page_strip.item(0).text() == "Page 1\n1 to check"
    window.low_confidence_action.trigger()
    assert window.page_strip.item(0).text() == "Page 1\nclean"


def test_selecting_on_one_side_selects_on_the_other(qtbot, settings, tmp_path):
    window = make_window(qtbot, settings, tmp_path)
    assert window.open_path(make_pdf(tmp_path / "one.pdf", pages=1))
    window.recognize_page_action.trigger()
    doc = window.document
    target = doc.page(0).score.measures[7].id
    # A click on the scan box...
    rect = window.scan_view.boxes[target].rect()
    window.scan_view.centerOn(rect.center())
    point = window.scan_view.mapFromScene(rect.center())
    QTest.mouseClick(window.scan_view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert doc.selection.measure_id == target
    # ... selects it on the engraving.
    scene_rect = window.score_view.measure_rect(target)
    assert scene_rect is not None
    line_box = next(line.boxes[target] for line in window.score_view.lines if target in line.boxes)
    assert line_box.pen().width() == 3
    # A click on a note of the engraving selects that note's measure and the note.
    other = doc.page(0).score.measures[1].id
    line = next(line for line in window.score_view.lines if other in line.measure_ids)
    eid = next(e for e in line.geometry.events if e.startswith(other + "_s1v0e1"))
    x0, y0, x1, y1 = line.geometry.events[eid]
    scene_point = line.item.mapToScene((x0 + x1) / 2, (y0 + y1) / 2)
    window.score_view.centerOn(scene_point)
    QTest.mouseClick(
        window.score_view.viewport(),
        Qt.MouseButton.LeftButton,
        pos=window.score_view.mapFromScene(scene_point),
    )
    assert doc.selection.measure_id == other
    assert (doc.selection.address.staff, doc.selection.address.index) == (1, 1)
    assert window.scan_view.boxes[other].pen().width() == 3


def test_measure_numbers_follow_inserted_and_deleted_measures_through_the_pages(
    qtbot, settings, tmp_path
):
    window = make_window(qtbot, settings, tmp_path)
    assert window.open_path(make_pdf(tmp_path / "two.pdf", pages=2))
    window.recognize_all_action.trigger()
    doc = window.document

    def numbers(page: int) -> list[str]:
        return [m.number for m in doc.page(page).score.measures]

    # the sample opens with an upbeat: measure 0, and page 2 goes on from page 1's last
    n2 = len(numbers(1))
    assert numbers(0) == [str(i) for i in range(10)]
    assert numbers(1) == [str(i) for i in range(10, 10 + n2)]
    page2_issue = [d.measure_number for d in doc.page(1).diagnostics]
    assert page2_issue  # the test double reads one measure of each page wrong
    doc.select_measure(0, doc.page(0).score.measures[3].id)
    assert window.edit(commands.DeleteMeasureCommand)
    assert numbers(0) == [str(i) for i in range(9)]
    assert numbers(1) == [str(i) for i in range(9, 9 + n2)]
    assert [d.measure_number for d in doc.page(1).diagnostics] == [
        str(int(n) - 1) for n in page2_issue
    ]
    doc.select_measure(0, doc.page(0).score.measures[0].id)
    assert window.edit(commands.InsertMeasureCommand)  # a full measure after the upbeat
    assert numbers(0) == [str(i) for i in range(10)]
    assert numbers(1) == [str(i) for i in range(10, 10 + n2)]
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert numbers(0) == [str(i) for i in range(10)]
    assert numbers(1) == [str(i) for i in range(10, 10 + n2)]
    assert [d.measure_number for d in doc.page(1).diagnostics] == page2_issue


def test_keyboard_editing_covers_the_musescore_keys(qtbot, settings, tmp_path):
    window = make_window(qtbot, settings, tmp_path)
    assert window.open_path(make_pdf(tmp_path / "one.pdf", pages=1))
    window.recognize_page_action.trigger()
    doc = window.document
    view = window.scan_view
    view.setFocus()
    measure_id = doc.page(0).score.measures[1].id
    doc.select_measure(0, measure_id)

    def note():
        return doc.selected_measure()[2].staves[0].voices[0][doc.selection.address.index]

    start = note().pitches[0]
    QTest.keyClick(view, Qt.Key.Key_Up)
    assert note().pitches[0].midi == start.midi + 1
    QTest.keyClick(view, Qt.Key.Key_Down)
    QTest.keyClick(view, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert note().pitches[0].midi == start.midi + 12
    QTest.keyClick(view, Qt.Key.Key_Period)
    assert note().duration.dots == 1
    QTest.keyClick(view, Qt.Key.Key_Right)
    assert doc.selection.address.index == 1
    QTest.keyClick(view, Qt.Key.Key_Delete)
    assert type(note()).__name__ == "Rest"
    QTest.keyClick(view, Qt.Key.Key_Insert)
    assert doc.selection.address.index == 2
    count = len(doc.page(0).score.measures)
    QTest.keyClick(view, Qt.Key.Key_B, Qt.KeyboardModifier.ControlModifier)
    assert len(doc.page(0).score.measures) == count + 1
    assert window.edit(commands.SetTimeCommand, "3/4")
    assert doc.selected_measure()[2].staves[0].time == "3/4"
    # Up, Down, Ctrl+Up, ., Delete, Insert, Ctrl+B, time: one undo step each.
    assert doc.undo_stack.count() == 8
    while doc.undo_stack.canUndo():
        doc.undo_stack.undo()
    assert len(doc.page(0).score.measures) == count
    assert len(doc.page(0).diagnostics) == 1


def test_token_editor_validates_as_you_type_and_applies(qtbot, settings, tmp_path):
    window = make_window(qtbot, settings, tmp_path)
    assert window.open_path(make_pdf(tmp_path / "one.pdf", pages=1))
    window.recognize_page_action.trigger()
    doc = window.document
    broken = doc.page(0).score.measures[BROKEN_MEASURE]
    doc.select_measure(0, broken.id)
    editor = window.measure_editor
    assert "3 1/2 beats and 4 beats" in editor.status.text()
    text = editor.edit.toPlainText()
    first_line = text.splitlines()[0]
    eighth = next(t for t in first_line.split() if t.endswith("-eighth>"))
    editor.edit.setFocus()
    # Letters typed here are text, not note-input shortcuts.
    QTest.keyClicks(editor.edit, "x")
    assert editor.edit.toPlainText().startswith("x<note:")
    assert doc.undo_stack.count() == 0
    editor.edit.setPlainText(text.replace("<nope>", "").replace(eighth, "<bogus>", 1))
    editor.check()
    assert (
        "unknown token &lt;bogus&gt;" in editor.status.text()
        or "unknown token <bogus>" in editor.status.text()
    )
    editor.edit.setPlainText(text.replace(eighth, eighth.replace("-eighth>", "-quarter>"), 1))
    editor.check()
    assert "valid measure" in editor.status.text()
    QTest.keyClick(editor.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert doc.page(0).diagnostics == []
    assert doc.undo_stack.undoText() == "Edit measure tokens"


def test_close_with_unsaved_changes_asks(qtbot, settings, tmp_path):
    window = make_window(qtbot, settings, tmp_path)
    assert window.open_path(make_pdf(tmp_path / "one.pdf", pages=1))
    window.recognize_page_action.trigger()
    asked = []
    window.ask_save_changes = lambda: asked.append(1) or "cancel"
    assert not window.close()
    assert asked and window.isVisible()
    window.ask_save_changes = lambda: "discard"
    assert window.close()


def test_bad_file_gives_one_sentence(qtbot, settings, tmp_path):
    window = make_window(qtbot, settings, tmp_path)
    errors = []
    window.error = lambda title, message: errors.append(message)
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"not a pdf at all")
    window.open_path(bad)
    assert len(errors) == 1 and "\n" not in errors[0]
    assert window.open_path(Path(tmp_path / "missing.pdf")) is False


def test_drop_a_file_on_the_window_opens_it(qtbot, settings, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    window = make_window(qtbot, settings, tmp_path)
    pdf = make_pdf(tmp_path / "dropped.pdf", pages=1)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(pdf))])
    event = QDropEvent(
        QPointF(100, 100),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)
    qtbot.waitUntil(lambda: len(window.document.pages) == 1)
    assert window.document.source == pdf
    assert settings.recent_files()[0] == pdf.resolve()


def test_command_line():
    from app.main import parse_args

    assert parse_args(["score.pdf"]).file == Path("score.pdf")
    assert parse_args([]).file is None
