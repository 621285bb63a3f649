"""Read a measure the grammar still flags again, from the model's own columns, under the
whole grammar: note values included.

The CTC decoder reads a crop freely; the grammar edit (:mod:`.structure`) and the value
mending (:mod:`.durations`) then change a few tokens. What they leave flagged is mostly a
measure the model read a note too many or too few in, or a value off by more than the
mending allows. Here such a measure's columns (the model's log-probabilities, which the
decoder keeps as :class:`Columns`) are searched again with a CTC prefix beam search whose
grammar forbids a note or rest that would overfill its voice, and the likeliest reading
that then passes the grammar (every voice fills the measure, ties join equal pitches,
tuplets fill their brackets) replaces the measure, as long as the line as a whole then
has no more flagged measures than before: a first measure read again may bring a
different time signature that fits it and overfills every measure after it, and that is
refused, whereas a new last note whose tie no longer joins the next measure's first
passes, and the next measure is read again in turn. When no reading in the beam passes,
the measure is left as it was, flagged for the reviewer.

A replaced token's confidence is the model's highest probability of it over the columns
it spans, as for any CTC reading, so a value the grammar forced on an unsure model shows
as unsure in the studio.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Sequence

import numpy as np

from ..notation.grammar import Grammar, GrammarState
from ..notation.reading_order import onset_order_sources
from ..notation.score import StaffContext
from ..notation.vocabulary import Vocabulary
from .decoding import TOP, Columns, Reading, prefix_search
from .second_look import flagged_measures, measure_spans

__all__ = ["grammars", "reread_measures"]

RETRY = 4  # a measure no reading in the beam passes is searched again this many times wider


@functools.lru_cache(maxsize=4)
def grammars(vocab: Vocabulary) -> tuple[Grammar, Grammar]:
    """The vocabulary's grammar, which says what is flagged, and the same grammar with
    ``enforce_durations``, which a measure is read again under (built once per
    vocabulary)."""
    return Grammar(vocab), Grammar(vocab, enforce_durations=True)


def reread_measures(
    ids: Sequence[int],
    confs: Sequence[float],
    rows: Sequence[np.ndarray | None],
    vocab: Vocabulary,
    columns: Columns,
    spans: Sequence[tuple[float, float]],
    time: str | None,
    piece_start: bool = False,
    beam: int = 32,
    prune: float = 6.0,
    short: Collection[int] = (),
) -> tuple[list[int], list[float], list[np.ndarray | None], int]:
    """One staff's line with each measure the grammar flags read again from ``columns``
    (see the module's text). Measure ``k`` of the line (as :func:`.fit_to_measures` cut
    it) lies over ``spans[k]``, a fraction of the crop's width like a token's position; a
    line with more measures than spans is left as it is. ``time`` is the signature in
    force where the line starts. ``short`` are measures to read again as well although
    the line's grammar lets them pass, because the other staves of the system fill them:
    a line's last measure, or a piece's first, may be short on its own, but not beside
    a full one; they are read again as full measures. Returns the ids, confidences, rows
    (a re-read token's column where the model was surest of it) and the number of
    measures replaced."""
    plain, grammar = grammars(vocab)
    barline = grammar.kinds("barline")
    closing = grammar.kinds("barline", "staff")  # the measure's own barline closes it
    closing[vocab.eos_id] = True
    contexts = [StaffContext(time=time)]
    out_ids, out_confs, out_rows = list(ids), list(confs), list(rows)
    flagged = flagged_measures(plain, out_ids, time, piece_start)
    measures = measure_spans(out_ids, barline)
    if not (flagged or short) or len(measures) > len(spans) or not len(columns):
        return out_ids, out_confs, out_rows, 0
    size = len(vocab) + 1
    length = len(columns)
    replaced = 0
    # a short first measure is no pickup when the other staves fill it
    state = grammar.start(contexts, piece_start=piece_start and 0 not in short)
    shift = 0  # how much earlier replacements moved the line's indices
    for k, (first, end) in enumerate(measures):
        first, end = first + shift, end + shift
        if k in flagged or k in short:
            # the line's first measure holds its clef, key and time from column 0; a
            # measure's last column is where its barline was read
            a = 0 if k == 0 else max(0, math.floor(spans[k][0] * length))
            b = min(length, math.ceil(spans[k][1] * length) - 1)
            found = None
            for width in (beam, beam * RETRY) if b > a else ():
                found = _passing(columns, a, b, state, out_ids[end], width, prune, closing)
                if found is not None:
                    break
            if found is not None:
                prefix, p = found
                tokens = [*vocab.decode(list(prefix)), vocab.decode([out_ids[end]])[0]]
                order = onset_order_sources(tokens)
                new_ids = vocab.encode([tok for tok, _ in order])
                trial = [*out_ids[:first], *new_ids, *out_ids[end + 1 :]]
                now = flagged_measures(plain, trial, time, piece_start)
                if len(now) <= len(flagged) and trial != out_ids:
                    peaks = [
                        columns.peak(tok, lo, hi)
                        for tok, (lo, hi) in zip(prefix, p.spans, strict=True)
                    ]
                    read_confs = [*p.confs, out_confs[end]]
                    read_rows = [*(columns.row(t, size) for t in peaks), out_rows[end]]
                    flagged = now
                    out_ids = trial
                    out_confs[first : end + 1] = [read_confs[s] for _, s in order]
                    out_rows[first : end + 1] = [read_rows[s] for _, s in order]
                    shift += len(new_ids) - (end + 1 - first)
                    end = first + len(new_ids) - 1
                    replaced += 1
        for tok in out_ids[first : end + 1]:
            state.advance(tok)
    return out_ids, out_confs, out_rows, replaced


def _passing(
    columns: Columns,
    a: int,
    b: int,
    state: GrammarState,
    barline: int,
    beam: int,
    prune: float,
    closing: np.ndarray,
) -> Reading | None:
    """The likeliest reading of columns [a, b) from ``state`` that the measure's
    ``barline`` then closes without a finding, or None."""
    readings = prefix_search(columns, a, b, state, beam, prune, per_column=TOP, exclude=closing)
    for prefix, p in readings:
        trial = p.state().copy() if prefix else state.copy()
        before = len(trial.diagnostics)
        trial.advance(barline)
        if len(trial.diagnostics) == before and trial.pending_short is None:
            return prefix, p
    return None
