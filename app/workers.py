"""Running generators off the GUI thread, with progress, results and cancel.

A `Task` wraps a generator function: every item it yields is sent to the GUI thread by the
`yielded` signal, an exception by `failed` (one sentence), a cancel by `cancelled`, and then
`finished` always. Widgets are never touched from a worker: the signals object lives on the
GUI thread, so Qt queues every emission there.

Runners decide where tasks run: `ThreadRunner` on a QThreadPool, `InlineRunner` right away on
the calling thread (tests, like Picard's fake thread pool, get deterministic order).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


class CancelFlag(Protocol):
    @property
    def cancelled(self) -> bool: ...

    def cancel(self) -> None: ...


class TaskSignals(QObject):
    yielded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()


class Task(QRunnable):
    """Runs `work()` (an iterable of reports and results) and emits what it yields.

    `token` is the cancel token the work itself honours; `cancel()` sets it, and the task
    also stops at the next item it sees after a cancel."""

    def __init__(
        self, work: Callable[[], Iterable[Any]], token: CancelFlag, name: str = ""
    ) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the runner keeps the reference until `finished`
        self.work = work
        self.token = token
        self.name = name
        self.signals = TaskSignals()

    def cancel(self) -> None:
        self.token.cancel()

    @property
    def is_cancelled(self) -> bool:
        return bool(self.token.cancelled)

    def run(self) -> None:
        try:
            if self.is_cancelled:
                self._send("cancelled")
                return
            iterator = iter(self.work())
            try:
                for item in iterator:
                    if self.is_cancelled:
                        self._send("cancelled")
                        return
                    self._send("yielded", item)
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
        except Exception as e:  # reported to the user; the work says what went wrong
            if self.is_cancelled:
                self._send("cancelled")
            else:
                self._send("failed", str(e) or type(e).__name__)
        finally:
            self._send("finished")

    def _send(self, name: str, *args: Any) -> None:
        # RuntimeError: the signals object is gone (the studio is closing).
        with contextlib.suppress(RuntimeError):
            getattr(self.signals, name).emit(*args)


class Runner(Protocol):
    def start(self, task: Task) -> None: ...

    def wait(self, msecs: int = -1) -> bool: ...


class ThreadRunner(QObject):
    """Runs tasks on its own QThreadPool (`max_threads` at a time, in order of start)."""

    def __init__(self, max_threads: int = 1, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._running: set[Task] = set()
        self._lock = threading.Lock()

    def start(self, task: Task) -> None:
        with self._lock:
            self._running.add(task)
        task.signals.finished.connect(lambda t=task: self._forget(t))
        self.pool.start(task)

    def _forget(self, task: Task) -> None:
        with self._lock:
            self._running.discard(task)

    def wait(self, msecs: int = -1) -> bool:
        return self.pool.waitForDone(msecs)

    def cancel_all(self) -> None:
        with self._lock:
            tasks = list(self._running)
        for task in tasks:
            task.cancel()


class InlineRunner:
    """Runs each task at once on the calling thread (tests)."""

    def start(self, task: Task) -> None:
        task.run()

    def wait(self, msecs: int = -1) -> bool:
        return True

    def cancel_all(self) -> None:
        pass


class SimpleToken:
    """A cancel flag for work that has no engine token (loading, engraving)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        self._event.set()
