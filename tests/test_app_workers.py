"""Recognition runs in worker threads: the GUI keeps running, cancel works, and a late result
never overwrites an edit. Plus the Task/runner machinery on its own."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from test_app_support import BROKEN_MEASURE, FakeRecognizer, fake_engine, make_pdf

from app import commands
from app.document import PageState
from app.main_window import MainWindow
from app.settings import Settings
from app.workers import InlineRunner, SimpleToken, Task, ThreadRunner


def threaded_window(qtbot, tmp_path, recognizer) -> MainWindow:
    window = MainWindow(
        Settings(tmp_path / "settings.ini"),
        engine=fake_engine(recognizer),
        autosave_dir=tmp_path / "autosave",
    )
    window.ask_save_changes = lambda: "discard"
    window.error = lambda title, message: pytest.fail(f"{title}: {message}")
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    return window


def open_pdf(qtbot, window, tmp_path, pages=1) -> None:
    assert window.open_path(make_pdf(tmp_path / "score.pdf", pages=pages))
    qtbot.waitUntil(
        lambda: len(window.document.pages) == pages and not window.loader.busy, timeout=20000
    )


class ThreadRecorder(FakeRecognizer):
    def read_page(self, page, cancel):
        self.thread = threading.get_ident()
        yield from super().read_page(page, cancel)


def test_event_loop_keeps_running_while_a_page_is_read(qtbot, tmp_path):
    recognizer = ThreadRecorder(delay=0.3, systems=3)
    window = threaded_window(qtbot, tmp_path, recognizer)
    open_pdf(qtbot, window, tmp_path)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()
    started = time.monotonic()
    window.recognize_page_action.trigger()
    assert window.progress_bar.isVisible() and window.cancel_button.isVisible()
    qtbot.waitUntil(lambda: window.document.page(0).state == PageState.READ, timeout=20000)
    elapsed = time.monotonic() - started
    timer.stop()
    assert recognizer.thread != threading.get_ident()  # read in a worker
    assert elapsed >= 0.9
    # The timer kept ticking all along: no gap anywhere near the recognition's length.
    assert len(ticks) >= 10
    gaps = [b - a for a, b in zip([started, *ticks], ticks, strict=False)]
    assert max(gaps) < 0.5
    # The result arrived and was engraved (in the engraving worker).
    qtbot.waitUntil(
        lambda: window.score_view.lines and all(line.item for line in window.score_view.lines),
        timeout=20000,
    )
    assert not window.progress_bar.isVisible()


def test_cancel_stops_the_reading(qtbot, tmp_path):
    recognizer = FakeRecognizer(delay=2.0, systems=3)
    window = threaded_window(qtbot, tmp_path, recognizer)
    open_pdf(qtbot, window, tmp_path, pages=2)
    window.recognize_all_action.trigger()
    doc = window.document
    qtbot.waitUntil(lambda: doc.page(0).state == PageState.READING, timeout=10000)
    assert doc.page(1).state == PageState.QUEUED
    started = time.monotonic()
    QTest.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    assert [p.state for p in doc.pages] == [PageState.NOT_READ, PageState.NOT_READ]
    assert not window.recognition.busy
    assert window.recognition_runner.wait(10000)
    assert time.monotonic() - started < 1.5  # the worker stopped at its next check
    qtbot.wait(50)
    assert [p.score for p in doc.pages] == [None, None]
    assert [p.state for p in doc.pages] == [PageState.NOT_READ, PageState.NOT_READ]
    assert recognizer.calls == [0]  # the waiting page never started


def test_a_late_result_is_dropped_after_an_edit(qtbot, tmp_path):
    recognizer = FakeRecognizer(delay=0.0)
    window = threaded_window(qtbot, tmp_path, recognizer)
    open_pdf(qtbot, window, tmp_path)
    doc = window.document
    window.recognize_page_action.trigger()
    qtbot.waitUntil(lambda: doc.page(0).state == PageState.READ, timeout=10000)
    # the job ends just after its result: until then a second read of the page is ignored
    qtbot.waitUntil(lambda: not window.recognition.busy, timeout=10000)
    messages: list[str] = []
    doc.message.connect(messages.append)

    # Read the page again, slowly; fix the broken measure meanwhile.
    recognizer.delay = 0.4
    window.recognize_page_action.trigger()
    qtbot.waitUntil(lambda: doc.page(0).state == PageState.READING, timeout=10000)
    doc.select_measure(0, doc.page(0).score.measures[BROKEN_MEASURE].id)
    window.scan_view.setFocus()
    QTest.keyClick(window.scan_view, Qt.Key.Key_5)
    assert doc.page(0).diagnostics == []
    qtbot.waitUntil(lambda: not window.recognition.busy, timeout=20000)

    assert doc.page(0).diagnostics == []  # the correction stands
    assert doc.undo_stack.count() == 1
    assert doc.undo_stack.undoText() == "Set duration to quarter"
    assert doc.page(0).state == PageState.READ
    assert any("dropped" in m for m in messages)


def test_reading_a_page_again_is_one_undo_step(qtbot, tmp_path):
    window = threaded_window(qtbot, tmp_path, FakeRecognizer())
    open_pdf(qtbot, window, tmp_path)
    doc = window.document
    window.recognize_page_action.trigger()
    qtbot.waitUntil(lambda: doc.page(0).state == PageState.READ, timeout=10000)
    qtbot.waitUntil(lambda: not window.recognition.busy, timeout=10000)
    doc.select_measure(0, doc.page(0).score.measures[BROKEN_MEASURE].id)
    assert window.edit(commands.SetDurationCommand, "quarter")
    window.recognize_page_action.trigger()
    qtbot.waitUntil(lambda: doc.undo_stack.count() == 2, timeout=10000)
    assert len(doc.page(0).diagnostics) == 1  # the new reading replaced the music
    doc.undo_stack.undo()
    assert doc.page(0).diagnostics == []


def test_pages_stream_in_while_a_file_opens(qtbot, tmp_path):
    window = threaded_window(qtbot, tmp_path, FakeRecognizer())
    added: list[int] = []
    window.document.page_added.connect(added.append)
    assert window.open_path(make_pdf(tmp_path / "three.pdf", pages=3))
    qtbot.waitUntil(lambda: window.scan_view.page_index == 0, timeout=20000)
    qtbot.waitUntil(lambda: len(added) == 3 and not window.loader.busy, timeout=20000)
    assert window.page_strip.count() == 3


# ---------------------------------------------------------------- tasks and runners


def test_task_reports_items_then_finishes():
    events: list[object] = []
    task = Task(lambda: iter([1, 2, 3]), SimpleToken())
    task.signals.yielded.connect(events.append)
    task.signals.finished.connect(lambda: events.append("finished"))
    InlineRunner().start(task)
    assert events == [1, 2, 3, "finished"]


def test_task_turns_an_exception_into_a_message():
    def work():
        yield 1
        raise ValueError("the model file is damaged")

    failures: list[str] = []
    task = Task(work, SimpleToken())
    task.signals.failed.connect(failures.append)
    InlineRunner().start(task)
    assert failures == ["the model file is damaged"]


def test_cancel_between_items_stops_the_generator():
    token = SimpleToken()
    seen: list[int] = []
    closed: list[bool] = []

    def work():
        try:
            yield from range(100)
        finally:
            closed.append(True)

    task = Task(work, token)
    cancelled: list[bool] = []
    task.signals.yielded.connect(lambda i: (seen.append(i), i == 2 and task.cancel()))
    task.signals.cancelled.connect(lambda: cancelled.append(True))
    InlineRunner().start(task)
    assert seen == [0, 1, 2] and cancelled == [True] and closed == [True]


def test_thread_runner_delivers_on_the_gui_thread(qtbot):
    runner = ThreadRunner(1)
    main = threading.get_ident()
    work_threads: list[int] = []
    slot_threads: list[int] = []

    def work():
        work_threads.append(threading.get_ident())
        yield "done"

    task = Task(work, SimpleToken())
    task.signals.yielded.connect(lambda _item: slot_threads.append(threading.get_ident()))
    with qtbot.waitSignal(task.signals.finished, timeout=5000):
        runner.start(task)
    qtbot.waitUntil(lambda: bool(slot_threads))
    assert work_threads[0] != main
    assert slot_threads == [main]
    assert runner.wait(1000)
