"""Mend a measure whose note values do not add up, with the values the model nearly read.

A measure that is a sixteenth too long or a quarter short is the commonest thing the
grammar flags in what the model reads, and usually one or two note values are off by a
dot or a flag. The CTC decoder knows, for every token it read, how likely every other
token was at that place; for a note or rest the alternatives are the same pitch (or a
rest) with another value. Among the ways to change values so that the measure holds
exactly what the time signature says, the one the model finds likeliest is taken, when
it costs the model little (each change at most ``max_change`` nats, all of them at most
``max_total``); otherwise the measure is left for the reviewer.

Only single-voice measures without tuplets are mended; grace notes do not count, and a
chord's notes change value together. A measure that is short where music may legally
be short (the piece's first measure, before a double, final or repeat barline) is not
touched.

On by default in the page pipeline since the time signature is checked against the
measures (``inference/meter.py``): with run 4f on the 180 LilyPond and MuseScore test
pages it took the flagged share of measures from 43.9% to 41.7% and 42.7% to 38.6% (60
tuning pages each), 31.6% to 26.5% and 32.6% to 29.7%, and 48.3% to 42.3% and 38.9% to
33.0% (two fresh sets of 30 each), while the symbol error rate fell a little on every set
(23.1% to 22.9%, 21.2% to 20.9%; 13.7% to 13.2%, 11.4% to 11.1%; 24.0% to 23.4%, 18.4%
to 18.2%). Before, against misread signatures, it was SER-neutral and off. A changed
token keeps the model's probability for its new value as its confidence, so the studio
shows the measure as one to check. ``PagePipeline(mend_durations=False)`` turns it off.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from ..notation.symbols import time_length
from ..notation.vocabulary import Vocabulary

__all__ = ["NoteValues", "note_values", "repair_durations"]

_SKIP = {"voice", "tuplet", "tuplet_end", "mrest", "multirest"}


class NoteValues:
    """For a vocabulary: every note or rest token's length in quarters, and the tokens of
    the same kind and pitch by length (its siblings)."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.length: dict[int, Fraction] = {}
        self.siblings: dict[int, dict[Fraction, int]] = {}
        groups: dict[tuple[str, str], dict[Fraction, int]] = {}
        for i, info in enumerate(vocab.infos):
            if info.kind in ("note", "rest") and info.duration is not None:
                self.length[i] = Fraction(info.duration.quarter_length)
                group = groups.setdefault((info.kind, str(info.pitch)), {})
                group[self.length[i]] = i
                self.siblings[i] = group


@functools.lru_cache(maxsize=4)
def note_values(vocab: Vocabulary) -> NoteValues:
    """The vocabulary's :class:`NoteValues` (built once per vocabulary)."""
    return NoteValues(vocab)


def _events(kinds: list[str], start: int, stop: int) -> list[list[int]] | None:
    """Token indices of each counted event in tokens[start:stop] (a chord's notes
    together); None when the measure has what this module does not mend."""
    events: list[list[int]] = []
    for j in range(start, stop):
        kind = kinds[j]
        if kind in _SKIP:
            return None
        previous = kinds[j - 1] if j > start else ""
        if kind == "note" and previous == "chord" and events:
            events[-1].append(j)
        elif kind == "note" and previous == "grace":
            continue
        elif kind in ("note", "rest"):
            events.append([j])
    return events


def _best_fill(
    options: list[list[tuple[Fraction, float, list[int]]]], target: Fraction
) -> tuple[float, list[int]] | None:
    """Cheapest choice of one option per event whose lengths add up to ``target``."""
    states: dict[Fraction, tuple[float, list[int]]] = {Fraction(0): (0.0, [])}
    for event in options:
        nxt: dict[Fraction, tuple[float, list[int]]] = {}
        for total, (cost, picks) in states.items():
            for k, (length, c, _) in enumerate(event):
                s = total + length
                if s > target:
                    continue
                if s not in nxt or cost + c < nxt[s][0]:
                    nxt[s] = (cost + c, [*picks, k])
        states = nxt
        if not states:
            return None
    return states.get(target)


def repair_durations(
    ids: Sequence[int],
    confidences: Sequence[float],
    token_logp: Sequence[np.ndarray | None],
    vocab: Vocabulary,
    time: str | None = None,
    piece_start: bool = False,
    max_change: float = 1.5,
    max_total: float = 2.0,
) -> tuple[list[int], list[float], int]:
    """One staff's line of tokens with the values of its over- and under-full measures
    mended where the model's own second choices allow; ``token_logp[i]`` is the model's
    log-probability of every token where token ``i`` was read (None for a token it did
    not read, such as a barline the layout added), and ``time`` the time signature in
    force at the line's start. Returns the ids, the confidences (a changed token gets the
    model's probability of its new value) and the number of measures mended."""
    values = note_values(vocab)
    out, conf = list(ids), list(confidences)
    kinds = [vocab.info(i).kind for i in out]
    mended = 0
    start = 0
    measure = 0
    for end, kind in enumerate(kinds):
        if kind == "time":
            time = vocab.info(out[end]).value
        if kind != "barline":
            continue
        barline = vocab.info(out[end]).value or "single"
        events = _events(kinds, start, end)
        if time and events:
            bar = time_length(time)
            total = sum(values.length[out[e[0]]] for e in events)
            may_be_short = (piece_start and measure == 0) or barline != "single"
            if total != bar and not (total < bar and may_be_short):
                found = _mend(out, events, token_logp, values, bar, max_change, max_total)
                if found is not None:
                    for j, new in found:
                        out[j] = new
                        row = token_logp[j]
                        conf[j] = float(np.exp(row[new])) if row is not None else conf[j]
                    mended += 1
        start = end + 1
        measure += 1
    return out, conf, mended


def _mend(
    ids: list[int],
    events: list[list[int]],
    token_logp: Sequence[np.ndarray | None],
    values: NoteValues,
    bar: Fraction,
    max_change: float,
    max_total: float,
) -> list[tuple[int, int]] | None:
    """The token changes that fill the measure, or None."""
    options: list[list[tuple[Fraction, float, list[int]]]] = []
    for event in events:
        first = ids[event[0]]
        keep = (values.length[first], 0.0, [ids[j] for j in event])
        choices = [keep]
        rows = [token_logp[j] for j in event]
        if all(r is not None for r in rows):
            for length in values.siblings[first]:
                if length == keep[0] or any(length not in values.siblings[ids[j]] for j in event):
                    continue
                new_ids = [values.siblings[ids[j]][length] for j in event]
                cost = sum(
                    float(row[ids[j]] - row[new])
                    for j, row, new in zip(event, rows, new_ids, strict=True)
                )
                if cost <= max_change:
                    choices.append((length, max(cost, 0.0), new_ids))
        options.append(choices)
    best = _best_fill(options, bar)
    if best is None or best[0] > max_total:
        return None
    changes = []
    for event, event_options, pick in zip(events, options, best[1], strict=True):
        if pick:
            changes += list(zip(event, event_options[pick][2], strict=True))
    return changes or None
