"""Mend a tie between different pitches with what the model nearly read.

A tie joins two notes of one pitch. When the model reads a tie and then, as the next
note of the same voice, a note of another pitch, one of the two is wrong: the tie was a
slur's end or a stray mark, or the tied note's pitch was misread by a line or a space.
The CTC decoder knows how likely every token was where each was read, so the cheaper of
the two mends is taken: the tie dropped (what the model gives up is how much likelier
the tie was than nothing there), or the next note given the tied pitch at its own value
(how much likelier the read pitch was). Either way the line no longer breaks the grammar
there, and the changed token keeps the model's probability as its confidence, so the
studio shows it as one to check.

Only a single note after the tie is mended (a chord's notes are matched to the tied
pitches by the grammar, and a chord is left alone), and only where the model read the
tie and the note itself (``token_logp`` has their columns).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..notation.vocabulary import Vocabulary
from .durations import NoteValues, note_values

__all__ = ["mend_ties", "mend_ties_across"]


def mend_ties(
    ids: Sequence[int],
    confidences: Sequence[float],
    token_logp: Sequence[np.ndarray | None],
    vocab: Vocabulary,
) -> tuple[list[int], list[float], list[np.ndarray | None], int]:
    """One staff's line of tokens with each tie to a different pitch mended (module
    docstring); ``token_logp[i]`` is the model's column of log-probabilities (blank last)
    where token ``i`` was read, or None. Returns the ids, the confidences, the columns
    (all three without the ties dropped) and the number of ties mended."""
    out, conf, rows, drop, mended = _mend_ties(ids, confidences, token_logp, vocab)
    if drop:
        keep = [k for k in range(len(out)) if k not in drop]
        out, conf, rows = [out[k] for k in keep], [conf[k] for k in keep], [rows[k] for k in keep]
    return out, conf, rows, mended


Line = tuple[list[int], list[float], list[np.ndarray | None]]


def mend_ties_across(lines: Sequence[Line], vocab: Vocabulary) -> tuple[list[Line], int]:
    """One staff's lines, system after system, with each tie from the last note of a line
    to the first of the next mended as :func:`mend_ties` mends one inside a line (a line
    is mended on its own first, and cannot see where its last tie goes). Each line is
    ``(ids, confidences, token_logp)``; returns the lines and the number of ties mended."""
    if len(lines) < 2:
        return [(list(a), list(b), list(c)) for a, b, c in lines], 0
    ids = [t for line in lines for t in line[0]]
    confs = [c for line in lines for c in line[1]]
    rows = [r for line in lines for r in line[2]]
    out, conf, kept, drop, mended = _mend_ties(ids, confs, rows, vocab)
    result: list[Line] = []
    start = 0
    for line in lines:
        end = start + len(line[0])
        keep = [k for k in range(start, end) if k not in drop]
        result.append(([out[k] for k in keep], [conf[k] for k in keep], [kept[k] for k in keep]))
        start = end
    return result, mended


def _mend_ties(
    ids: Sequence[int],
    confidences: Sequence[float],
    token_logp: Sequence[np.ndarray | None],
    vocab: Vocabulary,
) -> tuple[list[int], list[float], list[np.ndarray | None], set[int], int]:
    """:func:`mend_ties` before the dropped ties are taken out: the ids, confidences,
    columns, the indices of the ties to drop, and the number mended."""
    values = note_values(vocab)
    infos = [vocab.info(i) for i in ids]
    kinds = [info.kind for info in infos]
    out, conf, rows = list(ids), list(confidences), list(token_logp)
    drop: set[int] = set()
    mended = 0
    tied: dict[int, tuple[int, int]] = {}  # voice -> (tie token index, tied note token index)
    voice = 0
    for j, kind in enumerate(kinds):
        if kind == "barline":
            voice = 0
        elif kind == "voice":
            voice += 1
        elif kind == "tie" and j > 0 and kinds[j - 1] == "note":
            tied[voice] = (j, j - 1)
        elif kind == "rest" or (
            kind == "note" and (j == 0 or kinds[j - 1] not in ("chord", "grace"))
        ):
            pending = tied.pop(voice, None)
            chord = j + 1 < len(kinds) and kinds[j + 1] == "chord"
            if pending is None or kind == "rest" or chord:
                continue
            tie, source = pending
            if infos[source].pitch.midi == infos[j].pitch.midi:  # type: ignore[union-attr]
                continue
            change = _mend(out, j, tie, source, token_logp, values)
            if change is None:
                continue
            mended += 1
            if change == tie:
                drop.add(tie)
            else:
                out[j] = change
                conf[j] = float(np.exp(token_logp[j][change]))  # type: ignore[index]
    return out, conf, rows, drop, mended


def _mend(
    ids: list[int],
    note: int,
    tie: int,
    source: int,
    token_logp: Sequence[np.ndarray | None],
    values: NoteValues,
) -> int | None:
    """The cheaper mend: ``tie`` (drop the tie) or the id the note becomes; None when
    the model's columns for them are unknown."""
    tie_row, note_row = token_logp[tie], token_logp[note]
    if tie_row is None or note_row is None:
        return None
    drop_cost = max(float(tie_row[ids[tie]] - tie_row[-1]), 0.0)
    # the tied note's pitch at the read note's value
    same = values.siblings[ids[source]].get(values.length[ids[note]])
    if same is None:
        return tie
    pitch_cost = max(float(note_row[ids[note]] - note_row[same]), 0.0)
    return same if pitch_cost < drop_cost else tie
