"""Background jobs of the studio: loading a file's pages and recognizing pages.

Both run engine generators in `app.workers` tasks and feed the Document on the GUI thread.
Recognition of a page starts from the page's current revision; the Document drops the result
if the page was edited in the meantime.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from .document import Document, PageState
from .engine import Engine
from .project import encode_png
from .workers import Runner, SimpleToken, Task


@dataclass(frozen=True)
class _EncodedScan:
    index: int
    png: bytes


class PageLoader(QObject):
    """Streams the pages of a PDF or image into the Document (the first page shows at once)."""

    started = Signal(str)  # file name
    finished = Signal(int)  # pages loaded
    failed = Signal(str)

    def __init__(
        self, document: Document, engine: Engine, runner: Runner, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.document = document
        self.engine = engine
        self.runner = runner
        self._task: Task | None = None
        self._generation = 0
        self._count = 0

    @property
    def busy(self) -> bool:
        return self._task is not None

    def load(self, path: Path) -> None:
        self.cancel()
        self._generation += 1
        generation = self._generation
        self._count = 0
        token = SimpleToken()

        def work() -> Iterator[Any]:
            for index, page in enumerate(self.engine.load_pages(Path(path))):
                yield page  # on screen first; then, still in the worker, the PNG for saving
                yield _EncodedScan(index, encode_png(page.image))

        task = Task(work, token, f"load {path}")
        task.signals.yielded.connect(lambda page, g=generation: self._on_page(g, page))
        task.signals.failed.connect(lambda msg, g=generation: self._on_failed(g, msg))
        task.signals.finished.connect(lambda g=generation: self._on_finished(g))
        self._task = task
        self.started.emit(Path(path).name)
        self.runner.start(task)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _on_page(self, generation: int, page: Any) -> None:
        if generation != self._generation:
            return  # a file the user has since closed
        if isinstance(page, _EncodedScan):
            if page.index < len(self.document.pages):
                self.document.page(page.index).png = page.png
            return
        self._count += 1
        self.document.add_page(page.image, float(page.dpi), str(page.source))

    def _on_failed(self, generation: int, message: str) -> None:
        if generation == self._generation:
            self.failed.emit(message)

    def _on_finished(self, generation: int) -> None:
        if generation == self._generation:
            self._task = None
            self.finished.emit(self._count)


@dataclass
class _Job:
    page: int
    revision: int
    task: Task


class RecognitionQueue(QObject):
    """Recognizes pages one after another in workers; cancel stops the current page and
    drops the waiting ones."""

    busy_changed = Signal(bool)
    progress = Signal(int, int, str)  # pages done, pages in this run, message
    failed = Signal(int, str)  # page, message

    def __init__(
        self, document: Document, engine: Engine, runner: Runner, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.document = document
        self.engine = engine
        self.runner = runner
        self._jobs: dict[int, _Job] = {}
        self._done = 0
        self._total = 0
        document.pages_reset.connect(self.cancel)

    @property
    def busy(self) -> bool:
        return bool(self._jobs)

    def is_queued(self, page: int) -> bool:
        return page in self._jobs

    def recognize(self, pages: list[int]) -> None:
        pages = [p for p in pages if p not in self._jobs and 0 <= p < len(self.document.pages)]
        if not pages:
            return
        was_busy = self.busy
        if not was_busy:
            self._done = self._total = 0
        self._total += len(pages)
        jobs = []
        for index in pages:
            page = self.document.page(index)
            token = self.engine.new_cancel_token()
            doc_page = self.engine.make_page(page.image, page.dpi, page.source, index)
            task = Task(
                lambda p=doc_page, t=token: self.engine.read_page(p, t), token, f"page {index}"
            )
            job = _Job(index, page.revision, task)
            task.signals.yielded.connect(lambda item, j=job: self._on_item(j, item))
            task.signals.failed.connect(lambda msg, j=job: self._on_failed(j, msg))
            task.signals.cancelled.connect(lambda j=job: self._on_cancelled(j))
            task.signals.finished.connect(lambda j=job: self._on_finished(j))
            self._jobs[index] = job
            self.document.set_page_state(index, PageState.QUEUED)
            jobs.append(job)
        if not was_busy:
            self.busy_changed.emit(True)
        self._report(f"Reading page {pages[0] + 1}")
        for job in jobs:
            if self._jobs.get(job.page) is job:
                self.runner.start(job.task)

    def cancel(self) -> None:
        """Stop now: pages go back to their state before; late reports are ignored."""
        if not self._jobs:
            return
        jobs, self._jobs = list(self._jobs.values()), {}
        # Waiting pages first, the running one last: once it stops, the pool's thread must
        # find every later page cancelled already.
        for job in reversed(jobs):
            job.task.cancel()
        for job in jobs:
            self._restore_state(job.page)
        self._finish()

    def _restore_state(self, page: int) -> None:
        if page < len(self.document.pages):
            read = self.document.page(page).score is not None
            self.document.set_page_state(page, PageState.READ if read else PageState.NOT_READ)

    def _current(self, job: _Job) -> bool:
        return self._jobs.get(job.page) is job

    def _on_item(self, job: _Job, item: Any) -> None:
        if not self._current(job):
            return
        if self.engine.is_result(item):
            self.document.apply_recognition(
                job.page,
                item.score,
                dict(getattr(item, "confidences", {}) or {}),
                job.revision,
                str(getattr(item, "skipped", "") or ""),
            )
            return
        done, total = int(getattr(item, "done", 0)), int(getattr(item, "total", 0))
        message = str(getattr(item, "message", ""))
        self.document.set_page_state(job.page, PageState.READING, (done, total, message))
        self._report(message or f"Reading page {job.page + 1}")

    def _on_failed(self, job: _Job, message: str) -> None:
        if not self._current(job):
            return
        self.document.set_page_state(job.page, PageState.FAILED, error=message)
        self.failed.emit(job.page, message)

    def _on_cancelled(self, job: _Job) -> None:
        if self._current(job):
            self._restore_state(job.page)

    def _on_finished(self, job: _Job) -> None:
        if not self._current(job):
            return
        del self._jobs[job.page]
        page = self.document.page(job.page) if job.page < len(self.document.pages) else None
        if page is not None and page.state in (PageState.QUEUED, PageState.READING):
            self._restore_state(job.page)
        self._done += 1
        if self._jobs:
            self._report(f"Read {self._done} of {self._total} pages")
        else:
            self._finish()

    def _report(self, message: str) -> None:
        self.progress.emit(self._done, self._total, message)

    def _finish(self) -> None:
        self.progress.emit(self._total, self._total, "")
        self._done = self._total = 0
        self.busy_changed.emit(False)
