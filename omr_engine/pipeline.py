"""Reading pages: image -> layout -> model -> tokens -> Score -> grammar, one direction.

    pipe = PagePipeline()                        # the shipped model, device "auto"
    for event in pipe.read_page(page, cancel):  # a generator: Progress reports, then a PageResult
        ...

`read_page` is a generator so a caller (the command line, a GUI worker) shows progress
and can cancel between systems: a cancelled read raises `Cancelled` at the next report.
`transcribe` chains pages into one Score, carrying the clef, key and time in force over
page breaks, and gives every measure its page, its box on the scan, a confidence and the
grammar's diagnostics.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import groupby
from pathlib import Path

import numpy as np

from .inference.accidentals import mend_accidentals
from .inference.clefs import share_clefs
from .inference.decoding import Columns, Result
from .inference.durations import repair_durations
from .inference.measures import (
    add_read_barlines,
    drop_empty_ends,
    drop_unread_barlines,
    fit_to_measures,
    join_read_systems,
    split_pickup,
)
from .inference.meter import beat_votes, choose_time, measure_lengths, share_time_signatures
from .inference.reread import reread_measures
from .inference.second_look import SecondLook, flagged_measures, vote_measures
from .inference.ties import Line, mend_ties, mend_ties_across
from .inference.tuplets import mend_tuplets
from .layout import (
    LayoutCrop,
    NoStavesError,
    PageLayout,
    System,
    analyze_page,
    staff_crop,
    system_crop,
)
from .layout.structures import Box
from .layout.systems import merge_systems
from .notation.grammar import Diagnostic, Grammar, validate_score
from .notation.score import (
    Measure,
    Part,
    Rest,
    Score,
    StaffContext,
    StaffMeasure,
    apply_changes,
    number_measures,
    opens_with_pickup,
    voice_length,
)
from .notation.symbols import time_length
from .notation.tokens import tokens_to_score
from .notation.vocabulary import Vocabulary
from .pages import Page

#: Where the shipped model lives (overridable with DEEPMUSIC_OCR_MODEL).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "resources" / "models" / "omr-small"

#: A staff's columns and the fractions of its crop each measure spans, or None: what
#: :func:`reread_measures` reads a flagged measure again from.
Reread = tuple[Columns, list[tuple[float, float]]] | None


def default_model_dir() -> Path:
    return Path(os.environ.get("DEEPMUSIC_OCR_MODEL", DEFAULT_MODEL_DIR))


class Cancelled(Exception):
    """The user cancelled a recognition."""


class CancelToken:
    """Set from any thread; a running read stops at its next progress report."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


@dataclass(frozen=True)
class Progress:
    """`done` of `total` steps of the current page are finished."""

    done: int
    total: int
    message: str


@dataclass
class PageResult:
    """What was read on one page; `score` is None for a page without music."""

    page_index: int
    score: Score | None
    layout: PageLayout | None = None
    confidences: dict[str, float] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    skipped: str = ""  # why a page was skipped (no staves)


@dataclass
class _Assembled:
    """A page's readings put together (:meth:`PagePipeline._assemble`): its systems (some
    joined), each crop's (system, staff), each system's (boxes, ids, confidences, token
    columns, re-read sources) and each system's time signature in force per staff where
    it starts (empty when nothing was mended); for a voting second look, each staff's line
    as fitted, before any mending, by (system, staff)."""

    systems: list[System]
    owners: list[tuple[int, int]]
    fitted: list[tuple]
    starts: list[list[str | None]]
    unmended: dict[tuple[int, int], Line] = field(default_factory=dict)


def split_measures(tokens: list[str], vocab: Vocabulary) -> list[list[str]]:
    """Cut a token sequence after each barline token (a trailing open measure is kept)."""
    out: list[list[str]] = [[]]
    for t in tokens:
        out[-1].append(t)
        if vocab.info(vocab.id(t)).kind == "barline":
            out.append([])
    return [m for m in out if m]


_PRE = ("repeat_start", "volta")


def merge_staves(
    staves: list[list[str]], vocab: Vocabulary, confidences: list[list[float]] | None = None
) -> tuple[list[str], list[float]]:
    """Interleave per-staff token sequences of one system into the system's order.

    Measure k becomes staff 1's measure k, `<staff>`, staff 2's measure k, ..., closed by
    staff 1's barline; repeat/volta marks come from the top staff. A staff with fewer
    measures than the others gets nothing for the missing ones (the grammar reports it).
    Returns the tokens and, per measure, the lowest confidence among its staves.
    """
    per_staff = [split_measures(s, vocab) for s in staves]
    conf_staff = []
    for s, measures in enumerate(per_staff):
        flat = confidences[s] if confidences else [1.0] * sum(map(len, measures))
        out, i = [], 0
        for m in measures:
            out.append(min(flat[i : i + len(m)], default=1.0))
            i += len(m)
        conf_staff.append(out)
    count = max(len(m) for m in per_staff) if per_staff else 0
    tokens: list[str] = []
    measure_conf: list[float] = []
    for k in range(count):
        barline = "<barline>"
        conf = 1.0
        for s, measures in enumerate(per_staff):
            if k >= len(measures):
                conf = 0.0
                continue
            body = measures[k]
            kinds = [vocab.info(vocab.id(t)).kind for t in body]
            if kinds and kinds[-1] == "barline":
                if s == 0:
                    barline = body[-1]
                body, kinds = body[:-1], kinds[:-1]
            pre = [t for t, kd in zip(body, kinds, strict=True) if kd in _PRE]
            body = [t for t, kd in zip(body, kinds, strict=True) if kd not in _PRE]
            if s == 0:
                tokens += pre
            else:
                tokens.append("<staff>")
            tokens += body
            conf = min(conf, conf_staff[s][k])
        tokens.append(barline)
        measure_conf.append(conf)
    return tokens, measure_conf


def _parts_for(first_tokens: list[str], staff_count: int) -> list[Part]:
    """One part per staff, except a two-staff system in treble and bass clef: a piano."""
    if staff_count == 2:
        clefs = [t for t in first_tokens if t.startswith("<clef:")][:2]
        if clefs == ["<clef:G2>", "<clef:F4>"]:
            return [Part(name="Piano", staves=2)]
    return [Part(staves=1) for _ in range(staff_count)]


def _source_box(layout: PageLayout, box: tuple[float, float, float, float]) -> tuple:
    """A layout (deskewed) box as the axis-aligned box around it on the scan."""
    corners = layout.box_to_source(box)
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return (min(xs), min(ys), max(xs), max(ys))


def _page_xs(crop: LayoutCrop, result: Result) -> list[float]:
    """Where along the page (x in page pixels) each of a crop's tokens was read."""
    width = crop.image.shape[1]
    return [crop.to_page(x * width, 0.0)[0] for x in result.positions]


def _even_boxes(box: tuple[float, float, float, float], count: int) -> list[tuple]:
    x0, y0, x1, y1 = box
    step = (x1 - x0) / max(count, 1)
    return [(x0 + i * step, y0, x0 + (i + 1) * step, y1) for i in range(count)]


class PagePipeline:
    """Loads the model once and reads pages with it."""

    BATCH = 8  # crops recognised at once
    # Default beam for a model read with its CTC head: best path. Since the grammar edits
    # a free reading (inference/structure.py), a prefix beam of 4 read the 240 engraver
    # pages within 0.2 points of SER of best path (flagged: 0.8 to 2.8 points more) and
    # took the sample page 0.76 s against 0.67 s.
    CTC_BEAM = 1
    # A staff crop reaches past its margin, up to this many staff spaces (and half a space
    # short of the next staff), for the ink that hangs together with the staff: notes on
    # ledger lines, which the training crops never cut (layout/crop.py). Run 5j, SER on
    # 500 degraded / 500 clean generated systems: 0.311 / 0.291 -> 0.279 / 0.258; 300
    # corpus systems 0.065 -> 0.061; the 240 engraver pages: 804 -> 738 tokens wrong.
    # Session 38 (run 6w, 500 clean generated systems), once stems down to far beams were
    # followed: 0.114 at 6 spaces, 0.131 at 10 (a longer reach chains on into the other
    # staff's tuplet brackets and beams).
    CROP_REACH = 6.0

    def __init__(
        self,
        model_dir: Path | None = None,
        device: str = "auto",
        beam: int | None = None,
        constrained: bool = True,
        recognizer=None,
        fit_measures: bool = True,
        mend_durations: bool = True,
        fit_meter: bool = True,
        reread: bool = True,
        second_look: bool = True,
    ) -> None:
        if recognizer is None:
            from .inference.session import Recognizer

            recognizer = Recognizer(model_dir or default_model_dir(), device=device)
        self.recognizer = recognizer
        self.vocab = Vocabulary.load(recognizer.vocab_path())
        self.grammar = Grammar(self.vocab)
        if beam is None:
            runtime = getattr(recognizer, "runtime", None)
            kind = getattr(runtime, "decoder_kind", "attention")
            beam = getattr(runtime, "beam", None) or (self.CTC_BEAM if kind == "ctc" else 1)
        self.beam = beam
        self.constrained = constrained
        self.fit_measures = fit_measures
        self.mend_durations = mend_durations
        self.fit_meter = fit_meter
        self.reread = reread
        # a staff left in doubt is read again wider (inference/second_look.py), as the
        # model's runtime settings say
        look = SecondLook.from_runtime(getattr(recognizer, "runtime", None))
        self.second_look = look if second_look else None
        meta = getattr(recognizer, "config", {}) or {}
        self.unit = meta.get("data", {}).get("unit", "staff")
        self.crop_margin = float(meta.get("data", {}).get("margin_spaces", 4.0))

    def _recognize(self, crops: list[LayoutCrop], stretch: float | None = None) -> list[Result]:
        factory = self.grammar.start if self.constrained else None
        wider = {} if stretch is None else {"stretch": stretch}
        return self.recognizer.recognize(
            [c.image for c in crops],
            grammar_factory=factory,
            beam=self.beam,
            token_logp=self.mend_durations,
            **wider,
        )

    def _fit_system(
        self, system: System, crops: list[LayoutCrop], results: list[Result]
    ) -> tuple[
        list[Box], list[list[int]], list[list[float]], list[list[np.ndarray | None]], list[Reread]
    ]:
        """The system's measure boxes and each staff's ids, confidences and token
        log-probabilities (``Result.meta["token_logp"]``, None where absent) cut into them,
        and per staff its columns and measure spans, to read a flagged measure again from
        (None when the reading kept no columns or was not cut).

        The layout's barlines, with an opening one ending a pickup that the staves read
        before it (:func:`split_pickup`), less those no staff read that cut a measure short
        (:func:`drop_unread_barlines`), with those the model read on most staves where the
        layout found none (:func:`add_read_barlines`) and less an opening or closing measure
        in which no staff read a note or rest (:func:`drop_empty_ends`), give the measures;
        each staff's tokens are then cut into them by where they were read
        (:func:`fit_to_measures`). Without token positions (the attention decoder) the
        tokens are left as read.
        """
        ids = [list(r.ids) for r in results]
        confs = [list(r.token_confidences) for r in results]
        rows = [list(r.meta.get("token_logp") or [None] * len(r.ids)) for r in results]
        boxes = list(system.measure_boxes)
        rereads: list[Reread] = [None] * len(results)
        if not (self.fit_measures and boxes and all(r.positions for r in results)):
            return boxes, ids, confs, rows, rereads
        barline = self.grammar.kinds("barline")
        event = self.grammar.kinds("note", "rest", "mrest", "multirest")
        read, events = [], []
        for crop, r in zip(crops, results, strict=True):
            at = _page_xs(crop, r)
            marks = zip(r.ids, at, r.token_confidences, strict=True)
            read.append([(x, c) for t, x, c in marks if barline[t]])
            events.append([x for t, x in zip(r.ids, at, strict=True) if event[t]])
        _, top, _, bottom = system.box
        start = boxes[0][0]
        edges = split_pickup(
            [b[2] for b in boxes], system.barlines_x, events, system.staff_space, start
        )
        edges = drop_unread_barlines(edges, read, system.staff_space, start=start)
        edges = add_read_barlines(edges, read, system.staff_space, start=start, staff_events=events)
        edges = drop_empty_ends(edges, events, system.staff_space, start)
        boxes = [
            (a, top, b, bottom) for a, b in zip([boxes[0][0], *edges[:-1]], edges, strict=True)
        ]
        for k, (crop, r) in enumerate(zip(crops, results, strict=True)):
            spans = [
                (
                    (a - crop.box[0]) * crop.scale / crop.image.shape[1],
                    (b - crop.box[0]) * crop.scale / crop.image.shape[1],
                )
                for a, _, b, _ in boxes
            ]
            ids[k], confs[k], origin = fit_to_measures(
                ids[k], confs[k], r.positions, spans, self.vocab
            )
            rows[k] = [rows[k][o] if o >= 0 else None for o in origin]
            if "columns" in r.meta:
                rereads[k] = (r.meta["columns"], spans)
        return boxes, ids, confs, rows, rereads

    def _join_read_systems(
        self,
        systems: list[System],
        crops: list[LayoutCrop],
        owners: list[tuple[int, int]],
        results: list[Result],
    ) -> tuple[list[System], list[tuple[int, int]]]:
        """Systems that the layout found apart but whose staves read the same barlines
        (:func:`join_read_systems`) merged into one, and each crop's (system, staff)."""
        barline = self.grammar.kinds("barline")
        read: list[list[list[float]]] = [[[] for _ in s.staves] for s in systems]
        for crop, r, (i, s) in zip(crops, results, owners, strict=True):
            marks = zip(r.ids, _page_xs(crop, r), strict=True)
            read[i][s] = [x for t, x in marks if barline[t]]
        staves = [[(st.x0, st.top, st.x1, st.bottom) for st in s.staves] for s in systems]
        space = float(np.median([s.staff_space for s in systems]))
        groups = join_read_systems(staves, read, space)
        if len(groups) == len(systems):
            return systems, owners
        where = {}
        for g, members in enumerate(groups):
            offset = 0
            for i in members:
                where[i] = (g, offset)
                offset += len(systems[i].staves)
        merged = [
            merge_systems([systems[i] for i in m]) if len(m) > 1 else systems[m[0]] for m in groups
        ]
        return merged, [(where[i][0], where[i][1] + s) for i, s in owners]

    def _fit_meter(
        self, systems: list[tuple[list[list[int]], list[list[float]]]], piece_start: bool = False
    ) -> None:
        """Replace, in place, each time signature that the page's measures contradict
        (:func:`~omr_engine.inference.meter.choose_time`). Each signature read, at a
        line's start or inside a line (a change of meter), is judged by the measures it
        governs: on every staff, from the measure where it stands to the next signature
        read. The staves that read a signature at the same measure are judged and mended
        together. A replaced signature gets confidence 0.5 at most, so the studio marks it
        for a look. With ``piece_start`` the first system opens the piece, and its first
        measure, which may be a pickup, says nothing about the meter."""
        time_kind, barline = self.grammar.kinds("time"), self.grammar.kinds("barline")
        # (system, measure) -> [(staff, token index)] of the first signature read there
        marks: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for i, (ids, _) in enumerate(systems):
            for s, staff in enumerate(ids):
                measure, seen = 0, False
                for k, t in enumerate(staff):
                    if barline[t]:
                        measure, seen = measure + 1, False
                    elif time_kind[t] and not seen:
                        marks.setdefault((i, measure), []).append((s, k))
                        seen = True
        if not marks:
            return
        scores = [[tokens_to_score(self.vocab.decode(st)) for st in ids] for ids, _ in systems]
        times = [self.vocab.info(t).value for t in np.nonzero(time_kind)[0]]
        events = sorted(marks)
        for n, (first, at) in enumerate(events):
            lengths, compound, simple = [], 0, 0
            for i in range(first, len(systems)):
                if i > first and (i, 0) in marks:
                    break  # a new signature at this line's start
                start = at if i == first else 0
                # a pickup's length is not the meter's
                begin = 1 if piece_start and i == 0 and start == 0 else start
                for score in scores[i]:
                    lengths += measure_lengths(score, begin)
                    c, p = beat_votes(score, begin)
                    compound, simple = compound + c, simple + p
                if any(e[0] == i and e[1] > start for e in events[n + 1 :]):
                    break  # a change of meter inside this line ends what it governs
            ids, confs = systems[first]
            read = [(self.vocab.info(ids[s][k]).value, confs[s][k]) for s, k in marks[first, at]]
            new = choose_time(read, lengths, times, (compound, simple))
            if new is None:
                continue
            token = self.vocab.id(f"<time:{new}>")
            for s, k in marks[first, at]:
                if ids[s][k] != token:
                    ids[s][k] = token
                    confs[s][k] = min(confs[s][k], 0.5)

    def _mend_system(
        self,
        ids: list[list[int]],
        confs: list[list[float]],
        rows: list[list[np.ndarray | None]],
        times: list[str | None],
        piece_start: bool,
        rereads: list[Reread],
    ) -> None:
        """Mend each staff's note values (:func:`repair_durations`) in place, against the
        time signature in force per staff, which ``times`` carries from system to system,
        read a measure still flagged again from its columns (:func:`reread_measures`) and
        mend its ties between different pitches (:func:`mend_ties`). Then a measure that
        one staff reads short where another fills it (:func:`short_measures`: at a line's
        end or a piece's start a short measure passes on one staff alone) is read again
        on that staff as a full one."""
        time_kind = self.grammar.kinds("time")
        times += [None] * (len(ids) - len(times))
        starts = list(times)  # in force where this system starts
        for s, staff_ids in enumerate(ids):
            ids[s], confs[s], rows[s] = mend_staff(
                staff_ids,
                confs[s],
                rows[s],
                self.vocab,
                times[s],
                piece_start,
                reread=rereads[s] if self.reread else None,
            )
            for t in ids[s]:
                if time_kind[t]:
                    times[s] = self.vocab.info(t).value
        if not self.reread or len(ids) < 2:
            return
        shorts = short_measures([self.vocab.decode(x) for x in ids], starts)
        for s, short in enumerate(shorts):
            if short and rereads[s] is not None:
                columns, spans = rereads[s]
                ids[s], confs[s], rows[s], _ = reread_measures(
                    ids[s],
                    confs[s],
                    rows[s],
                    self.vocab,
                    columns,
                    spans,
                    starts[s],
                    piece_start,
                    short=short,
                )
                ids[s], confs[s], rows[s], _ = mend_ties(ids[s], confs[s], rows[s], self.vocab)

    def _along_staves(
        self, fitted: list[tuple], mend: Callable[[list[Line], Vocabulary], tuple[list[Line], int]]
    ) -> None:
        """Apply ``mend`` in place to each staff's lines, system after system, along each
        run of systems with as many staves: ties from one system into the next
        (:func:`mend_ties_across`), the clefs that open them (:func:`share_clefs`).
        ``fitted`` holds each system's (boxes, ids, confs, rows, rereads)."""
        for _, run in groupby(fitted, key=lambda system: len(system[1])):
            systems = list(run)
            for s in range(len(systems[0][1])):
                lines = [(ids[s], confs[s], rows[s]) for _, ids, confs, rows, _ in systems]
                mended, _ = mend(lines, self.vocab)
                for (_, ids, confs, rows, _), line in zip(systems, mended, strict=True):
                    ids[s], confs[s], rows[s] = line

    def _assemble(
        self,
        systems: list[System],
        crops: list[LayoutCrop],
        owners: list[tuple[int, int]],
        results: list[Result],
        contexts: list[StaffContext] | None,
        first_measure: int,
    ) -> _Assembled:
        """The page's readings (one per crop, ``owners`` saying whose system and staff)
        put together: systems the staves read as one joined, each staff's tokens cut into
        its system's measures, time signatures shared and fitted to the measures, note
        values, tuplets, ties and accidentals mended, flagged measures read again from the
        columns, clefs shared along the staves and ties carried across systems."""
        unit = "system" if self.unit == "system" else "staff"
        if unit == "staff" and self.fit_measures and all(r.positions for r in results):
            systems, owners = self._join_read_systems(systems, crops, owners, results)
        times = [c.time for c in contexts or []]  # the time signature in force per staff
        fitted = []
        for i, system in enumerate(systems):
            mine = [k for k, (owner, _) in enumerate(owners) if owner == i]
            if unit == "staff":
                fitted.append(
                    self._fit_system(system, [crops[k] for k in mine], [results[k] for k in mine])
                )
            else:
                ids = [list(results[k].ids) for k in mine]
                confs = [list(results[k].token_confidences) for k in mine]
                fitted.append(
                    (list(system.measure_boxes), ids, confs, [[] for _ in ids], [None] * len(ids))
                )
        if self.fit_meter:
            for _, ids, confs, rows, _ in fitted:
                share_time_signatures(ids, confs, rows, self.grammar)
            self._fit_meter(
                [(ids, confs) for _, ids, confs, _, _ in fitted], piece_start=first_measure == 0
            )
        mend = unit == "staff" and self.mend_durations
        starts: list[list[str | None]] = []
        # a voting second look weighs the lines as they were before the re-reading too
        voting = self.second_look is not None and self.second_look.vote and self.reread
        unmended: dict[tuple[int, int], Line] = {}
        if mend:
            for i, (_, ids, confs, rows, rereads) in enumerate(fitted):
                starts.append((times + [None] * len(ids))[: len(ids)])
                if voting:
                    unmended.update(
                        ((i, s), (list(ids[s]), list(confs[s]), list(rows[s])))
                        for s in range(len(ids))
                    )
                self._mend_system(ids, confs, rows, times, first_measure == 0 and i == 0, rereads)
        # clefs after the re-reads (which decode the columns again under the clef read) and
        # before the ties across systems (which compare pitches under the clef shared)
        self._along_staves(fitted, share_clefs)
        if mend:
            self._along_staves(fitted, mend_ties_across)
        return _Assembled(systems, owners, fitted, starts, unmended)

    def _staff_flags(self, read: _Assembled, first_measure: int) -> dict[int, int]:
        """Per crop (its index), the measures the grammar flags in its staff's line as
        put together, against the time signature in force where the line starts."""
        out: dict[int, int] = {}
        for k, (i, s) in enumerate(read.owners):
            ids = read.fitted[i][1]
            if s < len(ids):
                piece_start = first_measure == 0 and i == 0
                out[k] = len(flagged_measures(self.grammar, ids[s], read.starts[i][s], piece_start))
        return out

    def _in_doubt(self, flags: dict[int, int], results: list[Result]) -> list[int]:
        """The crops (their indices, in order) the second look reads again: their staff's
        line flagged (``flags``, from :meth:`_staff_flags`), or read with a low score."""
        look = self.second_look
        assert look is not None
        return [k for k, f in flags.items() if look.wanted(f, results[k].score)]

    def _read_wider(
        self,
        page: Page,
        cancel: CancelToken,
        crops: list[LayoutCrop],
        weak: list[int],
        stretch: float,
        done: int,
        total: int,
    ) -> Generator[Progress, None, dict[int, Result]]:
        """The crops ``weak`` (their indices) read ``stretch`` times wider, batch by batch,
        with progress counted from ``done`` of ``total``; returns their readings by index."""
        out: dict[int, Result] = {}
        for start in range(0, len(weak), self.BATCH):
            yield Progress(
                done + start,
                total,
                f"page {page.index + 1}: reading {len(weak)} staves again, {stretch:g} times wider",
            )
            cancel.check()
            part = weak[start : start + self.BATCH]
            out.update(zip(part, self._recognize([crops[k] for k in part], stretch), strict=True))
        return out

    def _look_again(
        self,
        page: Page,
        cancel: CancelToken,
        crops: list[LayoutCrop],
        systems: list[System],
        owners: list[tuple[int, int]],
        results: list[Result],
        contexts: list[StaffContext] | None,
        first_measure: int,
        read: _Assembled,
    ) -> Generator[Progress, None, _Assembled]:
        """The second look (inference/second_look.py): the staves ``read`` leaves flagged
        or unsure read again at each of the look's widths in turn, each time keeping the
        better reading per staff (or, when the look votes, :meth:`_vote_again`); yields
        Progress and returns the page put together again (``read`` itself when nothing
        changed)."""
        look = self.second_look
        assert look is not None

        def assemble(trial: list[Result]) -> _Assembled:
            return self._assemble(systems, crops, owners, trial, contexts, first_measure)

        if look.vote:
            return (
                yield from self._vote_again(
                    page, cancel, crops, results, first_measure, read, assemble
                )
            )
        total = len(crops)
        current = list(results)
        for stretch in look.stretches:
            flags = self._staff_flags(read, first_measure)
            weak = self._in_doubt(flags, current)
            if not weak:
                break
            trial = list(current)
            again = yield from self._read_wider(
                page, cancel, crops, weak, stretch, total, total + len(weak)
            )
            for k, r in again.items():
                trial[k] = r
            second = assemble(trial)
            flags2 = self._staff_flags(second, first_measure)
            chosen = list(current)
            for k in weak:
                if k in flags2 and look.prefer(
                    (flags[k], current[k].score), (flags2[k], trial[k].score)
                ):
                    chosen[k] = trial[k]
            if all(c is t for c, t in zip(chosen, trial, strict=True)):
                read = second
            elif any(c is not r for c, r in zip(chosen, current, strict=True)):
                read = assemble(chosen)
            current = chosen
        return read

    def _vote_again(
        self,
        page: Page,
        cancel: CancelToken,
        crops: list[LayoutCrop],
        results: list[Result],
        first_measure: int,
        read: _Assembled,
        assemble: Callable[[list[Result]], _Assembled],
    ) -> Generator[Progress, None, _Assembled]:
        """The second look by vote: the staves ``read`` leaves flagged or unsure read at
        every one of the look's widths, the page put together with each, and each such
        staff's line voted measure by measure from its lines in all of them, its lines as
        mended before the re-reading witnessing (:func:`vote_measures`). ``assemble`` puts
        the page together from one reading per crop. Yields Progress and returns ``read``
        with those lines replaced."""
        look = self.second_look
        assert look is not None
        total = len(crops)
        weak = self._in_doubt(self._staff_flags(read, first_measure), results)
        if not weak:
            return read
        others: list[_Assembled] = []
        for n, stretch in enumerate(look.stretches):
            again = yield from self._read_wider(
                page,
                cancel,
                crops,
                weak,
                stretch,
                total + n * len(weak),
                total + len(look.stretches) * len(weak),
            )
            trial = [again.get(k, r) for k, r in enumerate(results)]
            other = assemble(trial)
            if other.owners == read.owners:  # the same systems, so the same lines
                others.append(other)
        barline = self.grammar.kinds("barline")
        for k in weak:
            i, s = read.owners[k]
            piece_start = first_measure == 0 and i == 0
            lines: list[Line] = []
            flagged: list[set[int]] = []
            witnesses: list[list[int]] = []
            for a in (read, *others):
                _, ids, confs, rows, _ = a.fitted[i]
                lines.append((ids[s], confs[s], rows[s]))
                flagged.append(flagged_measures(self.grammar, ids[s], a.starts[i][s], piece_start))
                if (i, s) in a.unmended:  # mended as the page was, but not read again
                    line = mend_staff(*a.unmended[i, s], self.vocab, a.starts[i][s], piece_start)
                    witnesses.append(line[0])
            _, ids, confs, rows, _ = read.fitted[i]
            ids[s], confs[s], rows[s] = vote_measures(lines, flagged, barline, witnesses)
        return read

    def read_page(
        self,
        page: Page,
        cancel: CancelToken | None = None,
        first_measure: int = 0,
        contexts: list[StaffContext] | None = None,
    ) -> Iterator[Progress | PageResult]:
        """Read one page, yielding Progress per system and finally its PageResult.

        Measure ids are `p{page}m{n}` (page and measure counted from 1 on the page), so
        they stay unique across a document. ``contexts`` are the clef, key and time in
        force on each staff where the page starts (what earlier pages set); the time
        signature is what note values are mended against.
        """
        cancel = cancel or CancelToken()
        fixed = f" (photo: {', '.join(page.corrections)})" if page.corrections else ""
        yield Progress(0, 1, f"page {page.index + 1}: finding staves{fixed}")
        cancel.check()
        try:
            layout = analyze_page(page.image)
        except NoStavesError as exc:
            yield PageResult(page.index, None, skipped=str(exc))
            return
        systems = layout.systems
        # The page's crops are read together, in batches of BATCH whatever system they
        # belong to (a batch is what the runtime pads and runs at once); progress and
        # cancelling go batch by batch.
        if self.unit == "system":
            crops = [
                system_crop(page.image, layout, i, self.crop_margin) for i in range(len(systems))
            ]
            owners = [(i, 0) for i in range(len(systems))]
        else:
            crops, owners = [], []
            for i, system in enumerate(systems):
                for s in range(len(system.staves)):
                    crops.append(
                        staff_crop(
                            page.image,
                            layout,
                            i,
                            s,
                            self.crop_margin,
                            reach_spaces=self.CROP_REACH,
                        )
                    )
                    owners.append((i, s))
        results: list[Result] = []
        total = len(crops)
        unit = "system" if self.unit == "system" else "staff"
        for start in range(0, total, self.BATCH):
            yield Progress(
                start, total, f"page {page.index + 1}: reading {unit} {start + 1} of {total}"
            )
            cancel.check()
            results += self._recognize(crops[start : start + self.BATCH])
        cancel.check()
        read = self._assemble(systems, crops, owners, results, contexts, first_measure)
        if self.second_look is not None and read.starts:  # staves read, mended
            read = yield from self._look_again(
                page, cancel, crops, systems, owners, results, contexts, first_measure, read
            )
        systems, fitted = read.systems, read.fitted
        staff_count = max(len(s.staves) for s in systems)
        measures: list[Measure] = []
        confidences: dict[str, float] = {}
        first_tokens: list[str] = []
        for i, (system, (boxes, ids, confs, _, _)) in enumerate(zip(systems, fitted, strict=True)):
            tokens, conf = merge_staves([self.vocab.decode(x) for x in ids], self.vocab, confs)
            if i == 0:
                first_tokens = tokens
            part_score = tokens_to_score(tokens)
            if len(boxes) != len(part_score.measures):
                boxes = _even_boxes(system.box, len(part_score.measures))
            for measure, box, c in zip(part_score.measures, boxes, conf, strict=False):
                measure.id = f"p{page.index + 1}m{len(measures) + 1}"
                measure.page = page.index
                measure.box = _source_box(layout, box)
                while len(measure.staves) < staff_count:
                    measure.staves.append(StaffMeasure(voices=[[Rest(None)]]))
                confidences[measure.id] = float(c)
                measures.append(measure)
        score = Score(parts=_parts_for(first_tokens, staff_count), measures=measures)
        number_measures(measures, first_measure, first_measure == 0 and opens_with_pickup(score))
        yield Progress(total, total, f"page {page.index + 1}: done")
        yield PageResult(page.index, score, layout, confidences)


def mend_staff(
    ids: list[int],
    confs: list[float],
    rows: list[np.ndarray | None],
    vocab: Vocabulary,
    time: str | None,
    piece_start: bool,
    reread: Reread = None,
) -> tuple[list[int], list[float], list[np.ndarray | None]]:
    """The pipeline's last steps on one staff's line of tokens: tuplet ends moved so that
    the tuplets fill their brackets (:func:`mend_tuplets`) and note values mended
    (:func:`repair_durations`), both against ``time``, the signature in force where the
    line starts; with ``reread`` (the crop's columns and the line's measure spans) each
    measure the grammar still flags read again under the whole grammar
    (:func:`reread_measures`); then ties between different pitches (:func:`mend_ties`),
    and accidentals carried over a barline (:func:`mend_accidentals`). ``rows`` are the
    model's columns where each token was read (None for one it did not read); returns the
    ids, confidences and columns."""
    ids, confs, rows, _ = mend_tuplets(ids, confs, rows, vocab, time)
    ids, confs, _ = repair_durations(ids, confs, rows, vocab, time=time, piece_start=piece_start)
    if reread is not None:
        columns, spans = reread
        ids, confs, rows, _ = reread_measures(
            ids, confs, rows, vocab, columns, spans, time, piece_start
        )
    ids, confs, rows, _ = mend_ties(ids, confs, rows, vocab)
    ids, confs, _ = mend_accidentals(ids, confs, rows, vocab)
    return ids, confs, rows


def short_measures(staves: list[list[str]], times: list[str | None]) -> list[set[int]]:
    """Per staff of a system (each a line of tokens, ``times`` the signature in force
    where it starts), the measures it reads shorter than another staff that fills them:
    the longest voice against the time signature, a whole-measure rest filling it."""
    lines = [tokens_to_score(tokens).measures for tokens in staves]
    out: list[set[int]] = [set() for _ in staves]
    current = list(times)
    for k in range(max((len(m) for m in lines), default=0)):
        lengths: dict[int, Fraction] = {}
        full: Fraction | None = None
        for s, measures in enumerate(lines):
            if k >= len(measures):
                continue
            staff = measures[k].staves[0]
            current[s] = staff.time or current[s]
            voices = [v for v in staff.voices if v]
            if current[s] is None or not voices:
                continue
            bar = time_length(current[s])
            lengths[s] = max(voice_length(v, current[s]) for v in voices)
            if lengths[s] == bar:
                full = bar
        if full is not None:
            for s, length in lengths.items():
                if length < full:
                    out[s].add(k)
    return out


@dataclass
class Transcription:
    """A whole document read: one Score, per-page results, and every measure's diagnostics."""

    score: Score
    pages: list[PageResult]
    diagnostics: list[Diagnostic]
    confidences: dict[str, float]


def transcribe(
    pages: Iterable[Page],
    pipeline: PagePipeline,
    cancel: CancelToken | None = None,
    on_progress=None,
) -> Transcription:
    """Read pages in order into one Score; clef, key and time carry over page breaks. The
    score is titled after the first page's file (a scan's name is all we know of it)."""
    results: list[PageResult] = []
    title = ""
    measures: list[Measure] = []
    parts: list[Part] | None = None
    diagnostics: list[Diagnostic] = []
    confidences: dict[str, float] = {}
    contexts: list[StaffContext] | None = None
    pickup = False  # the first page opens with an upbeat: measures are numbered from 0
    for page in pages:
        if not results and page.source is not None:
            title = Path(page.source).stem
        for event in pipeline.read_page(page, cancel, len(measures), contexts):
            if isinstance(event, Progress):
                if on_progress:
                    on_progress(page, event)
                continue
            results.append(event)
            if event.score is None:
                continue
            page_score = event.score
            if not measures:
                pickup = opens_with_pickup(page_score)
            number_measures(page_score.measures, len(measures), pickup)
            if parts is None or sum(p.staves for p in parts) < page_score.staff_count:
                parts = page_score.parts
            event.diagnostics = validate_score(
                page_score, pipeline.grammar, contexts, piece_start=not measures
            )
            diagnostics += event.diagnostics
            confidences.update(event.confidences)
            contexts = contexts or [StaffContext() for _ in range(page_score.staff_count)]
            while len(contexts) < page_score.staff_count:
                contexts.append(StaffContext())
            for m in page_score.measures:
                for ctx, sm in zip(contexts, m.staves, strict=False):
                    apply_changes(ctx, sm)
            measures += page_score.measures
    staff_count = sum(p.staves for p in parts) if parts else 1
    for m in measures:
        while len(m.staves) < staff_count:
            m.staves.append(StaffMeasure(voices=[[Rest(None)]]))
        del m.staves[staff_count:]
    score = Score(parts=parts or [Part()], measures=measures, title=title)
    return Transcription(score, results, diagnostics, confidences)
