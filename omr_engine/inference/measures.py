"""Cut a staff's recognised tokens into the measures the page layout found.

The layout finds barlines as long vertical strokes through a whole system; that count is
right on every clean engraved page we test (see ``benchmarks/bench_engravers.py``), while
the model, reading one staff at a time, now and then adds a measure (a barline read twice,
an empty measure after the last barline) or misses one. With the CTC decoder every token
has a position along the crop, so the two can be combined: the layout says *where* the
measures are, the model says *what* is in them and *which kind* of barline closes them.

A model barline near a layout barline is kept (with its kind: repeat, double, final);
a layout barline the model did not read is inserted where the token positions cross it;
a model barline where the layout saw none is dropped, and tokens past the end of the
staff's last measure are dropped. Measures where model and layout disagreed get the
confidence :data:`DISAGREEMENT_CONFIDENCE` at most, so a reviewer sees them.

Before that, the system's barlines are settled by both: a barline most staves read where
the layout found none is added (:func:`add_read_barlines`, worn barlines), and a layout
barline no staff read that cuts a measure short is dropped (:func:`drop_unread_barlines`,
a stem taken for a barline). The rules were tuned on the 120 LilyPond and MuseScore pages
of ``benchmarks/bench_engravers.py``. Last, an opening or closing measure in which no staff
read a note or rest is no measure (:func:`drop_empty_ends`: a repeat sign after the header,
the sliver between a final barline's strokes, a courtesy key after the line's end), tuned
on the generated systems of ``benchmarks/eval_systems.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..notation.vocabulary import Vocabulary

__all__ = [
    "DISAGREEMENT_CONFIDENCE",
    "add_read_barlines",
    "drop_empty_ends",
    "drop_unread_barlines",
    "fit_to_measures",
]

DISAGREEMENT_CONFIDENCE = 0.5
BARLINE = "<barline>"
_READ_TOLERANCE = 2.0  # staff spaces between barline positions read as the same
_LONE_GAP = 7.0  # staff spaces between one-staff systems that may be one system
_CLOSING = 3.0  # staff spaces before a system's end where a barline read is its closing one


def _read_on_most(staff_xs: Sequence[Sequence[float]], space: float) -> list[float]:
    """The barlines read on more than half of the staves: positions (one list per staff)
    chained within ``_READ_TOLERANCE`` staff spaces make one barline, at their mean."""
    reads = sorted((x, s) for s, xs in enumerate(staff_xs) for x in xs)
    groups: list[list[tuple[float, int]]] = []
    for read in reads:
        if groups and read[0] - groups[-1][-1][0] <= _READ_TOLERANCE * space:
            groups[-1].append(read)
        else:
            groups.append([read])
    need = len(staff_xs) // 2 + 1
    return [float(np.mean([x for x, _ in g])) for g in groups if len({s for _, s in g}) >= need]


def _match(
    bar_positions: list[tuple[int, float]],
    edges: list[float],
    windows: list[float],
) -> dict[int, int]:
    """Layout edge index -> token index of the model barline read there (monotonic)."""
    matched: dict[int, int] = {}
    start = 0
    for k, (edge, window) in enumerate(zip(edges, windows, strict=True)):
        best = None
        for n in range(start, len(bar_positions)):
            j, x = bar_positions[n]
            if x > edge + window:
                break
            if abs(x - edge) <= window and (best is None or abs(x - edge) < best[2]):
                best = (n, j, abs(x - edge))
        if best is not None:
            matched[k] = best[1]
            start = best[0] + 1
    return matched


def fit_to_measures(
    ids: Sequence[int],
    confidences: Sequence[float],
    positions: Sequence[float],
    measures: Sequence[tuple[float, float]],
    vocab: Vocabulary,
    tolerance: float = 0.4,
) -> tuple[list[int], list[float], list[int]]:
    """Re-barline one staff's tokens so that they fill exactly ``measures``.

    ``positions`` are the tokens' places along the crop and ``measures`` the layout's
    measure spans ``(x0, x1)``, both as fractions of the crop's width, left to right. A
    model barline counts as the layout's when it lies within ``tolerance`` times the
    narrower neighbouring measure's width of it. Returns the new ids and confidences,
    and for each new token the index of the token it was read as (-1 for a barline only
    the layout saw); the input is returned unchanged when there are no positions or no
    measures.
    """
    if not measures or len(positions) != len(ids) or not ids:
        return list(ids), list(confidences), list(range(len(ids)))
    kinds = [vocab.info(i).kind for i in ids]
    edges = [x1 for _, x1 in measures]
    widths = [max(x1 - x0, 1e-6) for x0, x1 in measures]
    windows = [
        tolerance * min(widths[k], widths[k + 1] if k + 1 < len(widths) else widths[k])
        for k in range(len(edges))
    ]
    bars = [(j, positions[j]) for j, kind in enumerate(kinds) if kind == "barline"]
    matched = _match(bars, edges, windows)
    matched_tokens = {j: k for k, j in matched.items()}
    barline_id = vocab.id(BARLINE)

    out_ids: list[int] = []
    out_conf: list[float] = []
    origin: list[int] = []
    measure_start = 0  # index in out_* where the current measure begins
    disagreed = False
    k = 0  # the layout measure being filled

    def close(token: int, confidence: float, source: int = -1) -> None:
        nonlocal measure_start, disagreed, k
        if disagreed:
            for i in range(measure_start, len(out_conf)):
                out_conf[i] = min(out_conf[i], DISAGREEMENT_CONFIDENCE)
            confidence = min(confidence, DISAGREEMENT_CONFIDENCE)
        out_ids.append(token)
        out_conf.append(confidence)
        origin.append(source)
        measure_start = len(out_ids)
        disagreed = False
        k += 1

    def insert() -> None:
        """A barline only the layout saw: the measure it closes is marked unsure."""
        nonlocal disagreed
        disagreed = True
        close(barline_id, DISAGREEMENT_CONFIDENCE)

    for j, (token, conf, x, kind) in enumerate(
        zip(ids, confidences, positions, kinds, strict=True)
    ):
        if j in matched_tokens:
            while k < matched_tokens[j]:  # layout barlines the model skipped
                insert()
            close(token, conf, j)
            continue
        # a chord mark, the chord's note after it and a tie belong to the note before
        attached = kind in ("chord", "tie") or (
            kind == "note" and j > 0 and kinds[j - 1] == "chord"
        )
        while k < len(edges) and k not in matched and x > edges[k] and not attached:
            insert()
        if k >= len(edges):
            break  # past the staff's last measure
        if kind == "barline":
            disagreed = True  # a barline the layout did not see
            continue
        out_ids.append(token)
        out_conf.append(conf)
        origin.append(j)
    while k < len(edges):
        insert()
    return out_ids, out_conf, origin


def split_pickup(
    edges: Sequence[float],
    barlines: Sequence[float],
    staff_events: Sequence[Sequence[float]],
    space: float,
    start: float,
) -> list[float]:
    """The layout's measure ends, with an opening double or repeat barline made a measure
    end again where the staves read notes before it: a pickup before a section start.

    The layout lets a double or repeat barline right after the clef, key and time open
    the first measure (as Verovio engraves a section start), and it judges "right after"
    by the tall strokes before it; a pickup's stems may stay inside the staff and escape
    that test. ``barlines`` are all the barlines the layout found, ``edges`` the measure
    ends it kept (the last is the system's end), ``start`` the system's left edge and
    ``staff_events`` the x of each note or rest each staff read, all in page pixels. The
    first barline before the first measure end is made an edge when more than half of the
    staves read a note or rest half a space or more before it.
    """
    if not edges or not staff_events:
        return list(edges)
    opening = [x for x in barlines if start + 2.5 * space < x < edges[0] - 2.0 * space]
    if not opening:
        return list(edges)
    x = opening[0]
    readers = sum(any(e < x - 0.5 * space for e in events) for events in staff_events)
    if readers < len(staff_events) // 2 + 1:
        return list(edges)
    return sorted([x, *edges])


def join_read_systems(
    staves: Sequence[Sequence[tuple[float, float, float, float]]],
    staff_barlines: Sequence[Sequence[Sequence[float]]],
    space: float,
) -> list[list[int]]:
    """Which neighbouring systems are one, by the barlines their staves read: groups of
    system indices, top to bottom.

    A system's bracket and barlines may wear away (a binarized scan breaks thin strokes),
    so that the layout finds its staves as two systems. ``staves`` holds each system's
    staves as ``(x0, top, x1, bottom)`` and ``staff_barlines`` the x of each barline each
    of its staves read, all in page pixels. A system's barlines are those read within a
    ``_READ_TOLERANCE`` staff spaces of each other on more than half of its staves (a CTC
    frame is about a staff space wide, so a position read is no finer). Two neighbours
    are joined when the gap between them is at most 1.15 times the widest gap between the
    staves of a system of several staves on the page (of the gaps at most twice their
    median), and, where both have staff, at least two of their barlines agree as closely
    and at most one of either finds no partner (the model
    misses a barline now and then; systems that merely share a layout have several alone).
    Two systems of as many staves as each other, two or more, stay apart: an ensemble
    score's systems, whose measures may well line up; unless another system on the page
    has as many staves as the two together (a chorale's system of four staves that the
    layout found as two of two). On a page where no system has
    several staves (a piano piece whose every brace wore away) the gap allowed is
    ``_LONE_GAP`` staff spaces: a grand staff's two staves stand 5 (LilyPond) to 6.5
    (MuseScore) spaces apart, the lines of a one-staff part 8 or more.
    """
    inner = [b[1] - a[3] for sys in staves for a, b in zip(sys, sys[1:], strict=False)]
    groups = [[i] for i in range(len(staves))]
    if len(staves) < 2:
        return groups
    if inner:
        # the widest ordinary gap: one far beyond the rest (a staff set apart from its
        # system, as a LilyPond madrigal's first system has, 6.6 times the others) is not
        typical = float(np.median(inner))
        widest = 1.15 * max(g for g in inner if g <= 2.0 * typical)
    else:
        widest = _LONE_GAP * space

    out = [groups[0]]
    for i in range(1, len(staves)):
        above = out[-1][-1]
        gap = staves[i][0][1] - staves[above][-1][3]
        lo = max(min(s[0] for s in staves[above]), min(s[0] for s in staves[i])) + space
        hi = min(max(s[2] for s in staves[above]), max(s[2] for s in staves[i])) - space
        a = [x for x in _read_on_most(staff_barlines[above], space) if lo <= x <= hi]
        b = [x for x in _read_on_most(staff_barlines[i], space) if lo <= x <= hi]
        matches = sum(any(abs(x - y) <= _READ_TOLERANCE * space for y in b) for x in a)
        group = sum(len(staves[k]) for k in out[-1])
        # two whole systems of one ensemble score, unless another system on the page has
        # the staves of both (a system that split in half)
        others = {len(s) for k, s in enumerate(staves) if k != i and k not in out[-1]}
        alike = group == len(staves[i]) >= 2 and group + len(staves[i]) not in others
        if gap <= widest and matches >= 2 and max(len(a), len(b)) - matches <= 1 and not alike:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def add_read_barlines(
    edges: Sequence[float],
    staff_barlines: Sequence[Sequence[tuple[float, float]]],
    space: float,
    start: float,
    min_confidence: float = 0.8,
    staff_events: Sequence[Sequence[float]] | None = None,
) -> list[float]:
    """The layout's measure ends, plus barlines the model read where the layout found none.

    ``edges`` are where the system's measures end, left to right (the last is the system's
    right end) and ``start`` its left edge; ``staff_barlines`` holds, per staff, the
    ``(x, confidence)`` of each barline token the model read; all in page pixels. A worn
    barline that the layout's stroke test misses is still read by the model on most
    staves: a barline read at the same place (within ``_READ_TOLERANCE`` spaces) on more
    than half of the system's staves (on a lone staff, read with ``min_confidence``), and
    at least two spaces from every measure end already known and from the system's start,
    and three from its end (a closing repeat sign is read at its dots, two spaces before
    its thick line), is added. Given ``staff_events`` (the x of each note or rest each
    staff read), a barline with no note or rest read after it on any staff is the line's
    closing barline, before a courtesy signature that the layout counted into the last
    measure, and is not added: it would open an empty measure.
    """
    if not edges or not staff_barlines:
        return list(edges)
    lone = len(staff_barlines) == 1
    staff_xs = [[x for x, c in bars if not lone or c >= min_confidence] for bars in staff_barlines]
    out = list(edges)
    known = [start, *edges]
    for x in _read_on_most(staff_xs, space):
        if x <= start + 2.5 * space or x >= edges[-1] - _CLOSING * space:
            continue  # the header, or the closing barline read at its dots (a repeat sign)
        if min(abs(x - k) for k in known) < 2.0 * space:
            continue
        if staff_events is not None and not any(
            e > x + 0.5 * space for events in staff_events for e in events
        ):
            continue  # the closing barline, a courtesy signature after it
        out.append(x)
        known.append(x)
    return sorted(out)


def drop_unread_barlines(
    edges: Sequence[float],
    staff_barlines: Sequence[Sequence[tuple[float, float]]],
    space: float,
    start: float,
) -> list[float]:
    """The layout's measure ends without the barlines no staff read, where the staves read
    every other one: a stem, or a slur's end, that the stroke test took for a barline.

    ``edges`` end the system's measures (the last is the system's end, always kept);
    ``start`` is the system's left edge; ``staff_barlines`` are the barlines each staff
    read, ``(x, confidence)``, in page pixels. An inner edge goes when no staff read a
    barline within a staff space of it, one of the two measures it ends or starts is less
    than half the system's median measure width, and at least two other inner edges (and
    at least half of the others) were read on more than half of the staves.
    """
    inner = list(edges[:-1])
    if len(inner) < 3 or not staff_barlines:
        return list(edges)
    need = len(staff_barlines) // 2 + 1

    def readers(x: float) -> int:
        return sum(any(abs(b - x) <= space for b, _ in bars) for bars in staff_barlines)

    counts = [readers(x) for x in inner]
    ends = [start, *edges]
    widths = [b - a for a, b in zip(ends, ends[1:], strict=False)]
    typical = float(np.median(widths))
    # Unread, and cutting a measure in two where the halves would be short: a stroke
    # inside a measure, not a barline the model missed between two ordinary ones.
    unread = [
        i for i, c in enumerate(counts) if c == 0 and min(widths[i], widths[i + 1]) < 0.5 * typical
    ]
    read = [i for i, c in enumerate(counts) if c >= need]
    if not unread or len(read) < 2 or 2 * len(read) < len(inner) - len(unread):
        return list(edges)
    return [x for i, x in enumerate(inner) if i not in unread] + [edges[-1]]


def drop_empty_ends(
    edges: Sequence[float],
    staff_events: Sequence[Sequence[float]],
    space: float,
    start: float,
) -> list[float]:
    """The system's measure ends without an opening or closing measure in which no staff
    read a note or rest: the layout cut one off a line's header or tail, not a measure.

    ``edges`` end the system's measures (the last is the system's right end), ``start`` is
    its left edge and ``staff_events`` the x of each note or rest (whole-measure and
    multi-measure rests included) each staff read, all in page pixels. An opening measure
    with no event read more than half a space before its end is joined to the next (a
    repeat sign after the clef, key and time, taken for a barline); a closing measure with
    no event read more than half a space after its start is dropped, with what was read
    in it (the sliver between a final barline's thin and thick strokes, or a courtesy key
    signature after the line's last barline, which the next line prints again). A system
    of one measure is left as it is.
    """
    out = list(edges)
    if len(out) < 2:
        return out
    events = [e for staff in staff_events for e in staff]
    if not any(e < out[0] - 0.5 * space for e in events if e > start):
        out = out[1:]
    if len(out) >= 2 and not any(e > out[-2] + 0.5 * space for e in events):
        out = out[:-1]
    return out
