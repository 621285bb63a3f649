"""Project files, autosave and crash recovery: nothing a person did is lost.

A project (`.dmocr`) is one zip file:

    project.json            format, version, title, source file, per page: dpi, source,
                            state, confidences; the undo position and the saved position
    pages/page-0001.png     the scans, lossless
    scores/page-0001.json   each page's music as it is now (see `Engine.score_to_json`)
    recognized/page-0001.json  each page's music as the reader first read it
    edits.json              every edit on the undo stack, in order, each with its measures
                            before and after (undone edits too, so redo survives)

Files are written to a temporary name and renamed, so a crash during a save leaves the old
file whole. Autosave writes the same format to the studio's data folder every few minutes
while there are unsaved changes; each running studio holds a lock file next to its autosave,
and at start-up an autosave whose lock is stale (its studio died) is offered for recovery.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QLockFile, QObject, QStandardPaths, QTimer, Signal

from .commands import EditCommand, RecordedCommand
from .document import Document, PageState
from .settings import AUTOSAVE_SECONDS, Settings

FORMAT = "deepmusic-ocr-project"
VERSION = 1
SUFFIX = ".dmocr"


class ProjectError(Exception):
    """A project file that cannot be read or written; the message is one sentence."""


def _page_name(i: int) -> str:
    return f"page-{i + 1:04d}"


def encode_png(image: np.ndarray) -> bytes:
    """A scan as PNG bytes (lossless; the page loader does this in its worker)."""
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ProjectError("a page scan could not be encoded")
    return data.tobytes()


def _png(page) -> bytes:
    if page.png is None:
        page.png = encode_png(page.image)
    return page.png


def save_project(document: Document, path: Path, mark_saved: bool = True) -> None:
    """Write the whole document to `path` (atomically)."""
    path = Path(path)
    engine = document.engine
    stack = document.undo_stack
    edits = []
    for i in range(stack.count()):
        command = stack.command(i)
        if isinstance(command, EditCommand):
            edits.append(command.to_json())
    pages = []
    for page in document.pages:
        name = _page_name(page.index)
        pages.append(
            {
                "image": f"pages/{name}.png",
                "dpi": page.dpi,
                "source": page.source,
                "state": PageState.READ.value
                if page.score is not None
                else PageState.NOT_READ.value,
                "score": f"scores/{name}.json" if page.score is not None else None,
                "recognized": f"recognized/{name}.json" if page.recognized is not None else None,
                "confidences": page.confidences,
            }
        )
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "title": document.title,
        "source": str(document.source) if document.source else None,
        "project_path": str(document.project_path) if document.project_path else None,
        "saved_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "pages": pages,
        "undo_index": stack.index(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("project.json", json.dumps(meta, indent=1))
            z.writestr("edits.json", json.dumps(edits))
            for page, entry in zip(document.pages, pages, strict=True):
                z.writestr(entry["image"], _png(page), compress_type=zipfile.ZIP_STORED)
                if page.score is not None:
                    z.writestr(entry["score"], json.dumps(engine.score_to_json(page.score)))
                if page.recognized is not None:
                    z.writestr(
                        entry["recognized"], json.dumps(engine.score_to_json(page.recognized))
                    )
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ProjectError(f"could not write {path.name}: {e.strerror or e}") from e
    if mark_saved:
        document.project_path = path
        document.mark_saved()


def open_project(document: Document, path: Path, as_path: Path | None = None) -> None:
    """Replace the document with the project at `path`. `as_path` is the project's own
    path (None for a recovered autosave: the work is then unsaved)."""
    path = Path(path)
    engine = document.engine
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read("project.json"))
            if meta.get("format") != FORMAT:
                raise ProjectError(f"{path.name} is not a DeepMusic-OCR project")
            if int(meta.get("version", 0)) > VERSION:
                raise ProjectError(f"{path.name} was saved by a newer version of the studio")
            edits = json.loads(z.read("edits.json")) if "edits.json" in z.namelist() else []
            pages = []
            for entry in meta["pages"]:
                png = z.read(entry["image"])
                image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
                if image is None:
                    raise ProjectError(f"a page image in {path.name} is damaged")
                score = (
                    engine.score_from_json(json.loads(z.read(entry["score"])))
                    if entry.get("score")
                    else None
                )
                recognized = (
                    engine.score_from_json(json.loads(z.read(entry["recognized"])))
                    if entry.get("recognized")
                    else None
                )
                pages.append((entry, image, png, score, recognized))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as e:
        raise ProjectError(f"{path.name} cannot be opened: {e}") from e

    document.clear()
    document.title = meta.get("title", "")
    document.source = Path(meta["source"]) if meta.get("source") else None
    for entry, image, png, score, recognized in pages:
        index = document.add_page(image, float(entry["dpi"]), entry["source"])
        page = document.page(index)
        page.png = png
        page.recognized = recognized
        if score is not None:
            document.set_page_score(index, score, dict(entry.get("confidences", {})))
            document.set_page_state(index, PageState.READ)
    # Every edit back on the undo stack. The saved music is the state after the first
    # `undo_index` edits: those are pushed as already done; the undone ones after them are
    # replayed and undone again, so redo works as before.
    stack = document.undo_stack
    undo_index = int(meta.get("undo_index", len(edits)))
    for i, data in enumerate(edits):
        command = RecordedCommand(document, data)
        if i < undo_index:
            command.skip_next_redo = True
        stack.push(command)
    stack.setIndex(undo_index)
    document.project_path = as_path
    if as_path is not None:
        document.mark_saved()
    else:
        document._mark_modified()
    document.set_selection(None)


# ---------------------------------------------------------------- autosave and recovery


def autosave_dir() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or tempfile.gettempdir()) / "autosave"


@dataclass
class Recoverable:
    """An autosave left by a studio that did not close properly."""

    path: Path
    lock: QLockFile
    saved_at: str
    title: str
    pages: int
    project_path: str | None

    def describe(self) -> str:
        name = (
            Path(self.project_path).name
            if self.project_path
            else (self.title or "an unsaved project")
        )
        return f"{name}, {self.pages} page(s), autosaved {self.saved_at}"

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        self.lock.unlock()
        with contextlib.suppress(OSError):
            Path(self.lock.fileName()).unlink()


def find_recoverable(directory: Path | None = None) -> list[Recoverable]:
    """Autosaves whose studio is no longer running (their lock is stale or gone)."""
    directory = directory or autosave_dir()
    found = []
    for path in sorted(directory.glob(f"session-*{SUFFIX}")):
        lock = QLockFile(str(path.with_suffix(".lock")))
        lock.setStaleLockTime(0)
        if not lock.tryLock(0):
            continue  # another studio is running with this autosave
        try:
            with zipfile.ZipFile(path) as z:
                meta = json.loads(z.read("project.json"))
        except (OSError, zipfile.BadZipFile, KeyError, ValueError):
            lock.unlock()
            continue
        found.append(
            Recoverable(
                path,
                lock,
                meta.get("saved_at", ""),
                meta.get("title", ""),
                len(meta.get("pages", [])),
                meta.get("project_path"),
            )
        )
    return found


class Autosaver(QObject):
    """Saves the document to this session's autosave file while it has unsaved changes."""

    saved = Signal(str)
    failed = Signal(str)

    def __init__(
        self,
        document: Document,
        settings: Settings,
        directory: Path | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.document = document
        self.settings = settings
        self.directory = directory or autosave_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        session = f"session-{uuid.uuid4().hex[:12]}"
        self.path = self.directory / f"{session}{SUFFIX}"
        self.lock = QLockFile(str(self.directory / f"{session}.lock"))
        self.lock.setStaleLockTime(0)
        self.lock.tryLock(0)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.autosave)
        settings.changed.connect(lambda _key: self._configure())
        document.modified_changed.connect(self._on_modified)
        self._configure()

    def _configure(self) -> None:
        seconds = self.settings.get(AUTOSAVE_SECONDS)
        if seconds > 0:
            self.timer.start(seconds * 1000)
        else:
            self.timer.stop()

    def _on_modified(self, modified: bool) -> None:
        if not modified:
            self.discard()

    def autosave(self) -> bool:
        if not self.document.is_modified or not self.document.pages:
            return False
        try:
            save_project(self.document, self.path, mark_saved=False)
        except ProjectError as e:
            self.failed.emit(str(e))
            return False
        self.saved.emit(str(self.path))
        return True

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()

    def close(self) -> None:
        """A clean exit: the autosave is not needed any more."""
        self.timer.stop()
        self.discard()
        self.lock.unlock()
