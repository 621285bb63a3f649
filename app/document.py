"""The open document: its pages, their scores and diagnostics, the selection and the undo stack.

The Document owns all state; views observe its signals and change it only through undo
commands (`app.commands`) or the few non-edit setters here (selection, recognition state).
Every change to a page's music bumps that page's `revision`; a recognition result carries
the revision it started from and is dropped if the page has been edited since, so a late
result never overwrites a correction.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from omr_engine.notation.grammar import Diagnostic
from omr_engine.notation.score import (
    ClefChange,
    Measure,
    Score,
    StaffContext,
    apply_changes,
    number_measures,
    opens_with_pickup,
)

from .engine import Engine, NoteAddress, contexts_after, edits


class PageState(enum.Enum):
    NOT_READ = "not read"
    QUEUED = "waiting"
    READING = "reading"
    READ = "read"
    FAILED = "failed"


@dataclass
class DocPage:
    """One page: its scan, and once read, its score, confidences and diagnostics."""

    index: int
    image: np.ndarray  # (H, W) uint8, 255 = paper
    dpi: float
    source: str
    score: Score | None = None
    confidences: dict[str, float] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    state: PageState = PageState.NOT_READ
    progress: tuple[int, int, str] = (0, 0, "")
    error: str = ""
    revision: int = 0
    recognized: Score | None = None  # the music as the reader first read it
    png: bytes | None = None  # the scan, encoded once for project files

    @property
    def issue_count(self) -> int:
        return len({(d.measure_id, d.staff) for d in self.diagnostics})

    def measure_index(self, measure_id: str) -> int:
        if self.score is not None:
            for i, m in enumerate(self.score.measures):
                if m.id == measure_id:
                    return i
        raise KeyError(measure_id)


@dataclass(frozen=True)
class Selection:
    """The selected measure and, inside it, the selected note or rest."""

    page: int
    measure_id: str
    address: NoteAddress = NoteAddress()


@dataclass(frozen=True)
class Issue:
    """A measure that needs a look: invalid (a diagnostic) or read with low confidence."""

    page: int
    measure_index: int
    measure_id: str
    measure_number: str
    staff: int | None
    message: str
    kind: str  # "invalid" or "low confidence"


class Document(QObject):
    pages_reset = Signal()
    page_added = Signal(int)
    page_state_changed = Signal(int)  # state, progress or issue count
    score_changed = Signal(int)  # the page's music changed (engrave again what differs)
    diagnostics_changed = Signal(int)
    selection_changed = Signal(object)  # Selection | None
    current_page_changed = Signal(int)
    message = Signal(str)  # something the user should read in the status bar
    modified_changed = Signal(bool)

    def __init__(self, engine: Engine, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.pages: list[DocPage] = []
        self.source: Path | None = None  # the PDF or image the pages came from
        self.project_path: Path | None = None
        self.title = ""
        self.selection: Selection | None = None
        self.current_page = -1
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._on_clean_changed)
        self._extra_modified = False  # changes outside the undo stack (a first reading)
        self._id_counter = 0
        self._end_cache: dict[int, list[tuple]] = {}

    # ------------------------------------------------------------ pages

    def clear(self) -> None:
        self.pages = []
        self.source = None
        self.project_path = None
        self.title = ""
        self.selection = None
        self.current_page = -1
        self.undo_stack.clear()
        self._extra_modified = False
        self._end_cache = {}
        self.pages_reset.emit()
        self.selection_changed.emit(None)
        self.modified_changed.emit(False)

    def add_page(self, image: np.ndarray, dpi: float, source: str) -> int:
        index = len(self.pages)
        self.pages.append(DocPage(index, image, dpi, source))
        self.page_added.emit(index)
        if self.current_page < 0:
            self.set_current_page(index)
        return index

    def page(self, index: int) -> DocPage:
        return self.pages[index]

    def set_current_page(self, index: int) -> None:
        if index == self.current_page or not 0 <= index < len(self.pages):
            return
        self.current_page = index
        self.current_page_changed.emit(index)
        if self.selection is not None and self.selection.page != index:
            self.set_selection(None)

    def _on_clean_changed(self, clean: bool) -> None:
        self.modified_changed.emit(not clean or self._extra_modified)

    @property
    def is_modified(self) -> bool:
        return self._extra_modified or not self.undo_stack.isClean()

    def mark_saved(self) -> None:
        self._extra_modified = False
        self.undo_stack.setClean()
        self.modified_changed.emit(False)

    def _mark_modified(self) -> None:
        if not self._extra_modified:
            self._extra_modified = True
            self.modified_changed.emit(True)

    # ------------------------------------------------------------ recognition state

    def set_page_state(
        self, index: int, state: PageState, progress: tuple[int, int, str] = (0, 0, ""), error=""
    ) -> None:
        page = self.pages[index]
        page.state, page.progress, page.error = state, progress, error
        self.page_state_changed.emit(index)

    def apply_recognition(
        self,
        index: int,
        score: Score | None,
        confidences: dict[str, float],
        revision: int,
        note: str = "",
    ) -> bool:
        """Take a recognition result that started at `revision`. Returns False (and drops
        it) if the page was edited since; a page that already had music is replaced through
        the undo stack, so the re-reading can be undone. `score` None: no music on the page
        (`note` says why)."""
        page = self.pages[index]
        if page.revision != revision:
            self.set_page_state(index, PageState.READ if page.score else PageState.NOT_READ)
            self.message.emit(
                f"Page {index + 1}: the new reading was dropped because you edited the page "
                "while it was being read.",
            )
            return False
        if score is None:
            self.set_page_state(index, PageState.READ, error=note or "no music found")
            return True
        for m in score.measures:
            m.page = index
        page.recognized = copy.deepcopy(score)
        if page.score is None:
            self.set_page_score(index, score, confidences)
            self._mark_modified()
        else:
            from .commands import ReplacePageCommand

            self.undo_stack.push(ReplacePageCommand(self, index, score, confidences))
        self.set_page_state(index, PageState.READ)
        return True

    # ------------------------------------------------------------ music (called by commands)

    def set_page_score(
        self, index: int, score: Score | None, confidences: dict[str, float]
    ) -> None:
        page = self.pages[index]
        page.score = score
        page.confidences = dict(confidences)
        page.revision += 1
        if self.selection is not None and self.selection.page == index:
            self.set_selection(None)
        self._music_changed(index)

    def replace_measure(self, index: int, measure: Measure) -> Measure:
        """Put `measure` in place of the page's measure with the same id; returns the old."""
        page = self.pages[index]
        assert page.score is not None
        i = page.measure_index(measure.id)
        old = page.score.measures[i]
        page.score.measures[i] = copy.deepcopy(measure)
        page.revision += 1
        if _attributes(old) == _attributes(measure):
            # Nothing that lasts past the measure changed: check it and its neighbour only
            # (and renumber: the opening measure may have become, or stopped being, an upbeat).
            renumbered = self._renumber()
            self._revalidate_around(index, i)
            self.score_changed.emit(index)
            self._refresh(renumbered, index)
        else:
            self._music_changed(index)
        return old

    def insert_measure(self, index: int, position: int, measure: Measure) -> None:
        page = self.pages[index]
        assert page.score is not None
        page.score.measures.insert(position, copy.deepcopy(measure))
        page.revision += 1
        self._music_changed(index)

    def remove_measure(self, index: int, measure_id: str) -> tuple[int, Measure]:
        page = self.pages[index]
        assert page.score is not None
        i = page.measure_index(measure_id)
        old = page.score.measures.pop(i)
        page.revision += 1
        if self.selection is not None and self.selection.measure_id == measure_id:
            self.set_selection(None)
        self._music_changed(index)
        return i, old

    def set_confidence(self, index: int, measure_id: str, value: float | None) -> float | None:
        """Set (None: forget) a measure's confidence; returns the old value."""
        confidences = self.pages[index].confidences
        old = confidences.pop(measure_id, None)
        if value is not None:
            confidences[measure_id] = value
        return old

    def new_measure_id(self) -> str:
        taken = {m.id for p in self.pages if p.score for m in p.score.measures}
        while True:
            self._id_counter += 1
            candidate = f"e{self._id_counter}"
            if candidate not in taken:
                return candidate

    def _music_changed(self, index: int) -> None:
        renumbered = self._renumber()
        before = self._end_cache.get(index)
        self._end_cache[index] = after = self._end_contexts(index)
        self.revalidate(index)
        self.score_changed.emit(index)
        # A clef, key or time change that lasts to the page's end changes the next pages.
        later = range(index + 1, len(self.pages)) if after != before else range(0)
        self._refresh(renumbered, index, [i for i in later if self.pages[i].score is not None])

    def _renumber(self) -> list[int]:
        """Number the measures through the document, pages in order, from 0 when the first
        page with music opens with an upbeat (as the printed numbers go); returns the pages
        whose numbers changed. Inserting, deleting or re-reading a measure moves the
        numbers of every measure after it."""
        scores = [(i, p.score) for i, p in enumerate(self.pages) if p.score is not None]
        if not scores:
            return []
        pickup = opens_with_pickup(scores[0][1])
        changed, before = [], 0
        for i, score in scores:
            old = [m.number for m in score.measures]
            number_measures(score.measures, before, pickup)
            if [m.number for m in score.measures] != old:
                changed.append(i)
            before += len(score.measures)
        return changed

    def _refresh(self, renumbered: list[int], done: int, also: Sequence[int] = ()) -> None:
        """Check again, once each, the pages whose measure numbers changed and those in
        `also`, and redraw the renumbered ones (the issue list and the engraving show the
        numbers); `done` is already handled."""
        for i in sorted(set(renumbered).union(also) - {done}):
            self.revalidate(i)
            if i in renumbered:
                self.score_changed.emit(i)

    def _end_contexts(self, index: int) -> list[tuple]:
        score = self.pages[index].score
        if score is None:
            return []
        ctx = [StaffContext() for _ in range(score.staff_count)]
        for m in score.measures:
            for c, sm in zip(ctx, m.staves, strict=False):
                apply_changes(c, sm)
        return [(c.clef, c.key, c.time) for c in ctx]

    # ------------------------------------------------------------ grammar

    def contexts_before_page(self, index: int) -> list[StaffContext]:
        scores = [p.score for p in self.pages[: index + 1]]
        staff_count = max((s.staff_count for s in scores if s), default=1)
        return contexts_after(scores, staff_count)[index]

    def contexts_before(self, index: int, measure_index: int) -> list[StaffContext]:
        """Clef, key and time in force on each staff before a measure of a page."""
        ctx = self.contexts_before_page(index)
        score = self.pages[index].score
        if score is not None:
            for m in score.measures[:measure_index]:
                while len(ctx) < len(m.staves):
                    ctx.append(StaffContext())
                for c, sm in zip(ctx, m.staves, strict=False):
                    apply_changes(c, sm)
        return ctx

    def following_measure(self, index: int) -> Measure | None:
        for page in self.pages[index + 1 :]:
            if page.score is not None and page.score.measures:
                return page.score.measures[0]
            if page.score is None:
                return None
        return None

    def first_read_page(self) -> int | None:
        return next((p.index for p in self.pages if p.score is not None), None)

    def revalidate(self, index: int) -> None:
        page = self.pages[index]
        if page.score is None:
            page.diagnostics = []
        else:
            page.diagnostics = self.engine.validate(
                page.score.measures,
                self.contexts_before_page(index),
                piece_start=index == self.first_read_page(),
                following=self.following_measure(index),
            )
        self.diagnostics_changed.emit(index)
        self.page_state_changed.emit(index)

    def diagnose(
        self, index: int, first: int, last: int, replace: dict[int, Measure] | None = None
    ) -> list[Diagnostic]:
        """Diagnostics of measures `first`..`last` of a page (with `replace` put in place of
        some measures), read from one measure earlier and up to one measure later, so ties
        into them and short measures are judged as in the whole page."""
        score = self.pages[index].score
        assert score is not None
        measures = list(score.measures)
        for k, m in (replace or {}).items():
            measures[k] = m
        start = max(first - 1, 0)
        stop = min(last + 1, len(measures))
        following = measures[stop] if stop < len(measures) else self.following_measure(index)
        diagnostics = self.engine.validate(
            measures[start:stop],
            self.contexts_before(index, start),
            piece_start=index == self.first_read_page() and start == 0,
            following=following,
        )
        out = []
        for d in diagnostics:
            d.measure += start
            if first <= d.measure <= last:
                out.append(d)
        return out

    def _revalidate_around(self, index: int, i: int) -> None:
        page = self.pages[index]
        assert page.score is not None
        last = min(i + 1, len(page.score.measures) - 1)
        kept = [d for d in page.diagnostics if not i <= d.measure <= last]
        page.diagnostics = sorted(
            kept + self.diagnose(index, i, last),
            key=lambda d: (d.measure, -1 if d.staff is None else d.staff),
        )
        self.diagnostics_changed.emit(index)
        self.page_state_changed.emit(index)

    def issues(self, threshold: float | None = None) -> list[Issue]:
        """Every diagnostic, and (with a threshold) every low-confidence measure, in order."""
        out = []
        for page in self.pages:
            if page.score is None:
                continue
            index_of = {m.id: i for i, m in enumerate(page.score.measures)}
            flagged = set()
            for d in page.diagnostics:
                i = index_of.get(d.measure_id, d.measure)
                flagged.add(d.measure_id)
                out.append(
                    Issue(
                        page.index, i, d.measure_id, d.measure_number, d.staff, d.message, "invalid"
                    )
                )
            if threshold is not None:
                for mid, conf in page.confidences.items():
                    if conf < threshold and mid in index_of and mid not in flagged:
                        i = index_of[mid]
                        out.append(
                            Issue(
                                page.index,
                                i,
                                mid,
                                page.score.measures[i].number,
                                None,
                                f"read with low confidence ({conf:.0%})",
                                "low confidence",
                            )
                        )
        out.sort(key=lambda x: (x.page, x.measure_index, x.kind != "invalid"))
        return out

    def issue_count(self) -> int:
        return sum(p.issue_count for p in self.pages)

    def invalid_measure_count(self) -> int:
        """Measures the grammar flags, each once however many problems it has."""
        return sum(len({d.measure_id or d.measure for d in p.diagnostics}) for p in self.pages)

    # ------------------------------------------------------------ selection

    def set_selection(self, selection: Selection | None) -> None:
        if selection is not None:
            page = self.pages[selection.page]
            try:
                i = page.measure_index(selection.measure_id)
            except KeyError:
                selection = None
            else:
                assert page.score is not None
                address = edits.clamp_address(page.score.measures[i], selection.address)
                selection = Selection(selection.page, selection.measure_id, address)
        if selection == self.selection:
            return
        self.selection = selection
        if selection is not None:
            self.set_current_page(selection.page)
        self.selection_changed.emit(selection)

    def select_measure(
        self, page: int, measure_id: str, address: NoteAddress | None = None
    ) -> None:
        self.set_selection(Selection(page, measure_id, address or NoteAddress()))

    def selected_measure(self) -> tuple[DocPage, int, Measure] | None:
        sel = self.selection
        if sel is None:
            return None
        page = self.pages[sel.page]
        try:
            i = page.measure_index(sel.measure_id)
        except KeyError:
            return None
        assert page.score is not None
        return page, i, page.score.measures[i]

    def all_measures(self) -> list[tuple[int, Measure]]:
        """(page, measure) for every measure of the document, in order."""
        return [(p.index, m) for p in self.pages if p.score for m in p.score.measures]


def _attributes(measure: Measure) -> list[tuple]:
    """What a measure passes on to the next ones: clef, key and time of each staff."""
    return [
        (
            sm.clef,
            sm.key,
            sm.time,
            tuple(e.clef for e in sm.voices[0] if isinstance(e, ClefChange)) if sm.voices else (),
        )
        for sm in measure.staves
    ]
