"""Projects: one file with scans, music and every edit; autosave; recovery after a crash;
settings declared once; the engine never imports Qt and is reached through one facade."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from test_app_support import BROKEN_MEASURE, FakeRecognizer, fake_engine, make_pdf

from app import commands
from app.document import Document
from app.main_window import MainWindow
from app.project import (
    Autosaver,
    ProjectError,
    find_recoverable,
    open_project,
    save_project,
)
from app.settings import (
    AUTOSAVE_SECONDS,
    CONFIDENCE_THRESHOLD,
    DEVICE,
    OPTIONS,
    RECENT_FILES,
    Settings,
)
from app.workers import InlineRunner

ROOT = Path(__file__).resolve().parent.parent


def recognized_window(qtbot, tmp_path, name="w") -> MainWindow:
    window = MainWindow(
        Settings(tmp_path / f"{name}.ini"),
        engine=fake_engine(FakeRecognizer()),
        runner_factory=InlineRunner,
        autosave_dir=tmp_path / "autosave",
    )
    window.ask_save_changes = lambda: "discard"
    window.error = lambda title, message: None  # no modal dialogs; tests read the signals
    qtbot.addWidget(window)
    assert window.open_path(make_pdf(tmp_path / f"{name}.pdf", pages=1))
    window.recognize_page_action.trigger()
    return window


def fix_broken_measure(doc: Document) -> None:
    doc.select_measure(0, doc.page(0).score.measures[BROKEN_MEASURE].id)
    doc.undo_stack.push(commands.SetDurationCommand(doc, "quarter"))


def test_project_file_holds_scans_scores_and_edits(qtbot, tmp_path):
    window = recognized_window(qtbot, tmp_path)
    doc = window.document
    fix_broken_measure(doc)
    path = tmp_path / "p.dmocr"
    save_project(doc, path)
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
    assert {"project.json", "edits.json", "pages/page-0001.png", "scores/page-0001.json"} <= names
    assert "recognized/page-0001.json" in names

    other = Document(doc.engine)
    open_project(other, path, as_path=path)
    assert other.page(0).score.measures == doc.page(0).score.measures
    assert other.page(0).recognized.measures == doc.page(0).recognized.measures
    assert (other.page(0).image == doc.page(0).image).all()
    assert other.page(0).confidences == doc.page(0).confidences
    assert other.undo_stack.count() == 1 and not other.is_modified
    other.undo_stack.undo()
    assert len(other.page(0).diagnostics) == 1


def test_saving_is_atomic_and_bad_projects_say_why(qtbot, tmp_path):
    window = recognized_window(qtbot, tmp_path)
    path = tmp_path / "p.dmocr"
    save_project(window.document, path)
    assert [p.name for p in tmp_path.glob("p.dmocr*")] == ["p.dmocr"]  # no temporary left
    broken = tmp_path / "broken.dmocr"
    broken.write_bytes(b"PK not really")
    with pytest.raises(ProjectError, match="broken.dmocr cannot be opened"):
        open_project(Document(window.engine), broken)


def test_autosave_and_recovery_after_a_crash(qtbot, tmp_path):
    window = recognized_window(qtbot, tmp_path)
    doc = window.document
    fix_broken_measure(doc)
    assert window.autosaver.autosave()
    autosave = window.autosaver.path
    assert autosave.exists()
    # The studio "crashes": its lock is released without the clean-exit cleanup.
    window.autosaver.lock.unlock()
    window.autosaver.path = tmp_path / "elsewhere.dmocr"  # so the crash leaves the file

    found = find_recoverable(tmp_path / "autosave")
    assert [f.path for f in found] == [autosave]
    assert "1 page(s)" in found[0].describe()
    found[0].lock.unlock()

    fresh = MainWindow(
        Settings(tmp_path / "fresh.ini"),
        engine=fake_engine(FakeRecognizer()),
        runner_factory=InlineRunner,
        autosave_dir=tmp_path / "autosave",
    )
    qtbot.addWidget(fresh)
    fresh.ask_recover = lambda description: True
    fresh.ask_save_changes = lambda: "discard"
    assert fresh.recover_autosaves()
    recovered = fresh.document
    assert recovered.page(0).diagnostics == []  # the fix survived the crash
    assert recovered.is_modified  # and is still unsaved work
    assert recovered.undo_stack.count() == 1
    assert not autosave.exists()  # recovered once, not offered again
    assert find_recoverable(tmp_path / "autosave") == []


def test_a_running_studios_autosave_is_not_offered(qtbot, tmp_path):
    window = recognized_window(qtbot, tmp_path)
    assert window.autosaver.autosave()
    assert find_recoverable(tmp_path / "autosave") == []


def test_autosave_goes_away_when_the_work_is_saved(qtbot, tmp_path):
    window = recognized_window(qtbot, tmp_path)
    assert window.autosaver.autosave()
    window.ask_save_path = lambda *args: tmp_path / "saved.dmocr"
    assert window.save()
    assert not window.autosaver.path.exists()


def test_autosaver_follows_its_setting(qtbot, tmp_path):
    settings = Settings(tmp_path / "s.ini")
    doc = Document(fake_engine(FakeRecognizer()))
    saver = Autosaver(doc, settings, tmp_path / "autosave")
    assert saver.timer.isActive() and saver.timer.interval() == 60_000
    settings.set(AUTOSAVE_SECONDS, 0)
    assert not saver.timer.isActive()
    assert not saver.autosave()  # nothing to save
    saver.close()


def test_settings_are_declared_once_with_types(tmp_path):
    settings = Settings(tmp_path / "s.ini")
    assert settings.get(DEVICE) == "auto"
    settings.set(DEVICE, "cuda")
    assert Settings(tmp_path / "s.ini").get(DEVICE) == "cuda"
    settings.set(DEVICE, "tpu")  # not a choice: the default wins
    assert settings.get(DEVICE) == "auto"
    settings.set(CONFIDENCE_THRESHOLD, 0.25)
    assert Settings(tmp_path / "s.ini").get(CONFIDENCE_THRESHOLD) == 0.25
    for i in range(12):
        settings.add_recent_file(tmp_path / f"f{i}.pdf")
    recent = settings.get(RECENT_FILES)
    assert len(recent) == 10 and recent[0].endswith("f11.pdf")
    keys = [o.key for o in OPTIONS]
    assert len(keys) == len(set(keys))
    # No module but settings.py touches QSettings.
    for path in (ROOT / "app").glob("*.py"):
        if path.name != "settings.py":
            assert "QSettings" not in path.read_text(encoding="utf-8"), path.name


def test_engine_never_imports_qt():
    code = (
        "import importlib, pkgutil, sys, omr_engine\n"
        "for m in pkgutil.walk_packages(omr_engine.__path__, 'omr_engine.'):\n"
        "    try:\n"
        "        importlib.import_module(m.name)\n"
        "    except ImportError as e:\n"
        "        if 'PySide' in str(e) or 'Qt' in str(e): raise\n"
        "bad = sorted(k for k in sys.modules if k.startswith(('PySide', 'shiboken', 'PyQt')))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=300)


#: What the studio may take from the engine directly: its data types. Everything that does
#: work (loading, recognition, grammar, engraving, export) goes through app/engine.py.
ENGINE_DATA_MODULES = {
    "omr_engine.notation.score",
    "omr_engine.notation.symbols",
    "omr_engine.notation.grammar",  # the Diagnostic type
}


def test_the_studio_reaches_the_engine_through_one_facade():
    for path in sorted((ROOT / "app").glob("*.py")):
        if path.name == "engine.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("omr_engine")
            ):
                assert node.module in ENGINE_DATA_MODULES, f"{path.name} imports {node.module}"
                if node.module == "omr_engine.notation.grammar":
                    assert [a.name for a in node.names] == ["Diagnostic"], path.name
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("omr_engine") for a in node.names), path.name


@pytest.mark.slow
def test_export_formats(qtbot, tmp_path):
    import pymupdf

    window = recognized_window(qtbot, tmp_path)
    fix_broken_measure(window.document)
    errors: list[str] = []
    window.exporter.failed.connect(errors.append)
    for suffix in (".mxl", ".mei", ".mid", ".pdf"):
        out = tmp_path / f"out{suffix}"
        window.exporter.export(out)
        assert out.exists() and out.stat().st_size > 200, suffix
    assert errors == []
    with pymupdf.open(str(tmp_path / "out.pdf")) as pdf:
        assert pdf.page_count == 1
        # The engraved page, as vector paths: no image.
        assert pdf[0].get_images() == [] and pdf[0].get_drawings()
    assert 'xml:id="p1m3"' in (tmp_path / "out.mei").read_text(encoding="utf-8")
    window.exporter.export(tmp_path / "out.txt")
    assert errors == ["cannot export to .txt"]


def test_nothing_to_export_says_so(qtbot, tmp_path):
    window = MainWindow(
        Settings(tmp_path / "s.ini"),
        engine=fake_engine(FakeRecognizer()),
        runner_factory=InlineRunner,
        autosave_dir=tmp_path / "autosave",
    )
    window.error = lambda title, message: None
    qtbot.addWidget(window)
    errors: list[str] = []
    window.exporter.failed.connect(errors.append)
    window.exporter.export(tmp_path / "x.musicxml")
    assert errors == ["no page has been read yet: there is nothing to export"]


def test_a_measure_with_several_problems_counts_once_as_invalid(qtbot):
    import numpy as np

    from app.document import DocPage
    from omr_engine.notation.grammar import Diagnostic

    doc = Document(fake_engine(FakeRecognizer()))
    page = DocPage(0, np.full((10, 10), 255, np.uint8), 150.0, "page.png")
    page.diagnostics = [
        Diagnostic(7, "tie between different pitches", 1, "m8"),
        Diagnostic(7, "the staves of this measure differ in length", None, "m8"),
        Diagnostic(2, "a quarter too long", 0, "m3"),
    ]
    doc.pages = [page]
    assert doc.invalid_measure_count() == 2
    assert doc.issue_count() == 3  # the page strip's issues: one per measure and staff
