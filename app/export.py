"""Export of the whole document (every page read so far, in order) and "Open in MuseScore".

The formats are the engine's; the export itself runs in a worker because music21 can take a
few seconds on a long score. The Document's music is copied on the GUI thread first, so
edits made during an export never tear it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, Signal

from omr_engine.notation.score import Score

from .document import Document
from .engine import Engine
from .workers import Runner, SimpleToken, Task


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str

    @property
    def filter(self) -> str:
        return f"{self.name} (*{self.suffix})"


FORMATS = (
    ExportFormat("MusicXML", ".musicxml"),
    ExportFormat("Compressed MusicXML", ".mxl"),
    ExportFormat("MEI", ".mei"),
    ExportFormat("MIDI", ".mid"),
    ExportFormat("PDF", ".pdf"),
)

MUSESCORE_NAMES = (
    "mscore4",
    "musescore4",
    "MuseScore4",
    "mscore3",
    "musescore3",
    "mscore",
    "musescore",
)


def musescore_executable() -> str | None:
    """MuseScore's command if it is on PATH."""
    for name in MUSESCORE_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def document_score(document: Document) -> Score:
    """One score of every page read so far (a copy: safe to hand to a worker)."""
    return Engine.join_scores([p.score for p in document.pages if p.score is not None])


class Exporter(QObject):
    """Writes exports in a worker and reports back on the GUI thread."""

    started = Signal(str)
    finished = Signal(str)  # the path written
    failed = Signal(str)

    def __init__(self, document: Document, runner: Runner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.engine = document.engine
        self.runner = runner
        self._open_after: set[str] = set()

    def export(self, path: Path, open_in_musescore: bool = False) -> None:
        """Export to `path` (format by suffix); the `EngineError` of an empty document is
        reported through `failed` like any other."""
        path = Path(path)
        try:
            score = document_score(self.document)
        except Exception as e:
            self.failed.emit(str(e))
            return

        def work() -> Iterator[str]:
            self.engine.export(score, path)
            yield str(path)

        if open_in_musescore:
            self._open_after.add(str(path))
        task = Task(work, SimpleToken(), f"export {path.name}")
        task.signals.yielded.connect(self._on_written)
        task.signals.failed.connect(self.failed)
        self.started.emit(path.name)
        self.runner.start(task)

    def _on_written(self, path: str) -> None:
        self.finished.emit(path)
        if path in self._open_after:
            self._open_after.discard(path)
            program = musescore_executable()
            if program is None or not QProcess.startDetached(program, [path]):
                self.failed.emit("MuseScore could not be started")

    def open_in_musescore(self) -> None:
        folder = Path(tempfile.mkdtemp(prefix="deepmusic-ocr-"))
        name = (self.document.title or "transcription").replace("/", "_") + ".mxl"
        self.export(folder / name, open_in_musescore=True)
