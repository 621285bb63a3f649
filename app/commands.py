"""One small, named undo command per edit (orange-canvas style).

Each command computes its result once, in its constructor, with a pure edit operation from
`omr_engine.notation.edits` (which raises `EditError` when the edit does not apply, before anything is
pushed), and records it as measure changes. `redo` and `undo` replay those changes through
the Document's own methods, and restore the selection as it was before or after.

Commands serialize to JSON (`to_json`) so a project keeps every edit, and a reopened project
can still undo them (`RecordedCommand`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QUndoCommand

from omr_engine.notation.score import Measure, Score, StaffContext

from .engine import NoteAddress, edits

if TYPE_CHECKING:
    from .document import Document, Selection


@dataclass
class Change:
    """One change to one page: `replace` a measure, `insert` or `remove` one at `position`,
    or replace the whole `page` score."""

    kind: str
    page: int
    position: int = 0
    before: Any = None  # Measure, or (Score | None, confidences) for `page`
    after: Any = None
    confidence: float | None = None  # the measure's confidence before the edit


def _selection_json(sel: Selection | None) -> Any:
    if sel is None:
        return None
    a = sel.address
    return [sel.page, sel.measure_id, a.staff, a.voice, a.index]


def _selection_from_json(data: Any) -> Selection | None:
    from .document import Selection

    if not data:
        return None
    page, mid, staff, voice, index = data
    return Selection(page, mid, NoteAddress(staff, voice, index))


class EditCommand(QUndoCommand):
    """Applies `changes` on redo and reverses them on undo."""

    def __init__(
        self,
        document: Document,
        text: str,
        changes: list[Change],
        select_after: Selection | None = None,
    ) -> None:
        super().__init__(text)
        self.document = document
        self.changes = changes
        self.select_before = document.selection
        self.select_after = select_after if select_after is not None else document.selection
        self.skip_next_redo = False  # pushed already done (a project being reopened)

    def redo(self) -> None:
        if self.skip_next_redo:
            self.skip_next_redo = False
            return
        for change in self.changes:
            self._apply(change, forward=True)
        self.document.set_selection(self.select_after)

    def undo(self) -> None:
        for change in reversed(self.changes):
            self._apply(change, forward=False)
        self.document.set_selection(self.select_before)

    def _apply(self, c: Change, forward: bool) -> None:
        doc = self.document
        if c.kind == "replace":
            measure = c.after if forward else c.before
            doc.set_confidence(c.page, measure.id, None if forward else c.confidence)
            doc.replace_measure(c.page, measure)
        elif c.kind in ("insert", "remove"):
            adding = (c.kind == "insert") == forward
            measure = c.after if c.kind == "insert" else c.before
            if adding:
                if not forward:
                    doc.set_confidence(c.page, measure.id, c.confidence)
                doc.insert_measure(c.page, c.position, measure)
            else:
                doc.remove_measure(c.page, measure.id)
        elif c.kind == "page":
            score, confidences = c.after if forward else c.before
            doc.set_page_score(c.page, copy.deepcopy(score), confidences)
        else:
            raise ValueError(f"unknown change {c.kind!r}")

    # ------------------------------------------------------------ persistence

    def to_json(self) -> dict:
        engine = self.document.engine

        def measure(m: Measure | None) -> Any:
            return engine.measure_to_json(m) if m is not None else None

        def page(value: Any) -> Any:
            score, confidences = value
            return {
                "score": engine.score_to_json(score) if score is not None else None,
                "confidences": confidences,
            }

        changes = []
        for c in self.changes:
            if c.kind == "page":
                changes.append(
                    {
                        "kind": c.kind,
                        "page": c.page,
                        "before": page(c.before),
                        "after": page(c.after),
                    }
                )
            else:
                changes.append(
                    {
                        "kind": c.kind,
                        "page": c.page,
                        "position": c.position,
                        "before": measure(c.before),
                        "after": measure(c.after),
                        "confidence": c.confidence,
                    }
                )
        return {
            "text": self.text(),
            "changes": changes,
            "select_before": _selection_json(self.select_before),
            "select_after": _selection_json(self.select_after),
        }


class RecordedCommand(EditCommand):
    """An edit read back from a project file; undoes and redoes like the original."""

    def __init__(self, document: Document, data: dict) -> None:
        engine = document.engine
        changes = []
        for c in data["changes"]:
            staff_count = _staff_count(document, c["page"])
            if c["kind"] == "page":

                def page(value: dict) -> tuple:
                    score = engine.score_from_json(value["score"]) if value["score"] else None
                    return score, dict(value["confidences"])

                changes.append(
                    Change("page", c["page"], before=page(c["before"]), after=page(c["after"]))
                )
            else:

                def measure(value: Any, staff_count: int = staff_count) -> Measure | None:
                    return engine.measure_from_json(value, staff_count) if value else None

                changes.append(
                    Change(
                        c["kind"],
                        c["page"],
                        c.get("position", 0),
                        measure(c["before"]),
                        measure(c["after"]),
                        c.get("confidence"),
                    )
                )
        super().__init__(document, data["text"], changes)
        self.select_before = _selection_from_json(data.get("select_before"))
        self.select_after = _selection_from_json(data.get("select_after"))


def _staff_count(document: Document, page: int) -> int:
    score = document.pages[page].score if page < len(document.pages) else None
    return score.staff_count if score is not None else 1


# ------------------------------------------------------------------ note edits


class _NoteEdit(EditCommand):
    """An edit of the selected note: `operation(measure, address, context)` -> measure."""

    label = ""

    def __init__(self, document: Document, *args: Any) -> None:
        selected = document.selected_measure()
        sel = document.selection
        if selected is None or sel is None:
            raise edits.EditError("select a measure first")
        page, i, measure = selected
        ctx = document.contexts_before(page.index, i)
        # A staff the score has no context for yet (more staves here than before): defaults.
        staff_ctx = ctx[sel.address.staff] if sel.address.staff < len(ctx) else StaffContext()
        new = self.operation(measure, sel.address, staff_ctx, *args)
        address = edits.clamp_address(new, self.address_after(sel.address))
        from .document import Selection

        super().__init__(
            document,
            self.describe(*args),
            [
                Change(
                    "replace",
                    page.index,
                    i,
                    copy.deepcopy(measure),
                    new,
                    page.confidences.get(measure.id),
                )
            ],
            Selection(page.index, measure.id, address),
        )

    def operation(self, measure, address, ctx, *args) -> Measure:  # pragma: no cover
        raise NotImplementedError

    def address_after(self, address: NoteAddress) -> NoteAddress:
        return address

    def describe(self, *args: Any) -> str:
        return self.label


class SetPitchCommand(_NoteEdit):
    def operation(self, measure, address, ctx, step: str) -> Measure:
        return edits.set_pitch_step(measure, address, step, ctx)

    def describe(self, step: str) -> str:
        return f"Set pitch to {step.upper()}"


class SetDurationCommand(_NoteEdit):
    def operation(self, measure, address, ctx, duration_type: str) -> Measure:
        return edits.set_duration(measure, address, duration_type, ctx)

    def describe(self, duration_type: str) -> str:
        return f"Set duration to {duration_type}"


class TransposeCommand(_NoteEdit):
    def operation(self, measure, address, ctx, semitones: int) -> Measure:
        return edits.transpose(measure, address, semitones, ctx.key if ctx else 0)

    def describe(self, semitones: int) -> str:
        return "Raise by a semitone" if semitones > 0 else "Lower by a semitone"


class OctaveCommand(_NoteEdit):
    def operation(self, measure, address, ctx, octaves: int) -> Measure:
        return edits.shift_octave(measure, address, octaves)

    def describe(self, octaves: int) -> str:
        return "Raise by an octave" if octaves > 0 else "Lower by an octave"


class ToggleDotCommand(_NoteEdit):
    label = "Toggle dot"

    def operation(self, measure, address, ctx) -> Measure:
        return edits.toggle_dot(measure, address, ctx)


class NoteToRestCommand(_NoteEdit):
    label = "Turn note into rest"

    def operation(self, measure, address, ctx) -> Measure:
        return edits.to_rest(measure, address, ctx)


class DeleteEventCommand(_NoteEdit):
    label = "Delete note"

    def operation(self, measure, address, ctx) -> Measure:
        return edits.delete_event(measure, address)


class InsertNoteCommand(_NoteEdit):
    label = "Insert note"

    def operation(self, measure, address, ctx) -> Measure:
        self._was_empty = edits.event_count(measure, address.staff, address.voice) == 0
        return edits.insert_after(measure, address, ctx)

    def address_after(self, address: NoteAddress) -> NoteAddress:
        if self._was_empty:
            return address
        return NoteAddress(address.staff, address.voice, address.index + 1)


# ------------------------------------------------------------------ measure edits


class _MeasureEdit(EditCommand):
    """An edit of the selected measure as a whole."""

    def __init__(self, document: Document, *args: Any) -> None:
        selected = document.selected_measure()
        if selected is None or document.selection is None:
            raise edits.EditError("select a measure first")
        page, i, measure = selected
        new = self.operation(measure, document.selection.address, *args)
        super().__init__(
            document,
            self.describe(*args),
            [
                Change(
                    "replace",
                    page.index,
                    i,
                    copy.deepcopy(measure),
                    new,
                    page.confidences.get(measure.id),
                )
            ],
        )

    def operation(self, measure, address, *args) -> Measure:  # pragma: no cover
        raise NotImplementedError

    def describe(self, *args: Any) -> str:  # pragma: no cover
        raise NotImplementedError


class SetClefCommand(_MeasureEdit):
    def operation(self, measure, address, clef: str) -> Measure:
        return edits.set_clef(measure, address.staff, clef)

    def describe(self, clef: str) -> str:
        return f"Set clef {clef}"


class SetKeyCommand(_MeasureEdit):
    def operation(self, measure, address, key: int) -> Measure:
        return edits.set_key(measure, key)

    def describe(self, key: int) -> str:
        from omr_engine.notation.symbols import key_text

        return f"Set key signature {key_text(key)}"


class SetTimeCommand(_MeasureEdit):
    def operation(self, measure, address, time: str) -> Measure:
        return edits.set_time(measure, time)

    def describe(self, time: str) -> str:
        return f"Set time signature {time}"


class ReplaceMeasureCommand(_MeasureEdit):
    """The measure as typed in the token editor."""

    def operation(self, measure, address, new: Measure) -> Measure:
        return copy.deepcopy(new)

    def describe(self, new: Measure) -> str:
        return "Edit measure tokens"


class InsertMeasureCommand(EditCommand):
    """An empty measure (whole-measure rests) after the selected one."""

    def __init__(self, document: Document) -> None:
        from .document import Selection

        selected = document.selected_measure()
        if selected is None:
            raise edits.EditError("select a measure first")
        page, i, measure = selected
        new = edits.empty_measure(len(measure.staves), document.new_measure_id(), "")
        new.page = page.index
        super().__init__(
            document,
            "Insert measure",
            [Change("insert", page.index, i + 1, None, new)],
            Selection(page.index, new.id),
        )


class DeleteMeasureCommand(EditCommand):
    """The selected measure goes; the selection moves to its neighbour."""

    def __init__(self, document: Document) -> None:
        from .document import Selection

        selected = document.selected_measure()
        if selected is None:
            raise edits.EditError("select a measure first")
        page, i, measure = selected
        assert page.score is not None
        if len(page.score.measures) == 1:
            raise edits.EditError("a page keeps at least one measure")
        neighbour = page.score.measures[i + 1 if i + 1 < len(page.score.measures) else i - 1]
        super().__init__(
            document,
            "Delete measure",
            [
                Change(
                    "remove",
                    page.index,
                    i,
                    copy.deepcopy(measure),
                    None,
                    page.confidences.get(measure.id),
                )
            ],
            Selection(page.index, neighbour.id),
        )


class ReplacePageCommand(EditCommand):
    """A page read again: the new reading replaces the old music as one undoable step."""

    def __init__(
        self, document: Document, index: int, score: Score, confidences: dict[str, float]
    ) -> None:
        page = document.pages[index]
        super().__init__(
            document,
            f"Read page {index + 1} again",
            [
                Change(
                    "page",
                    index,
                    before=(copy.deepcopy(page.score), dict(page.confidences)),
                    after=(copy.deepcopy(score), dict(confidences)),
                )
            ],
        )
        self.select_after = None
