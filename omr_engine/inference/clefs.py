"""One staff's clef kept from system to system where the page prints no change.

A part keeps its clef from one system to the next unless a change is printed, and a
change shows in the line before it: a clef inside the line, or a small courtesy clef at
its end. The model reads each system's clef on its own, and on a blotted scan the small
8 under a tenor's treble clef comes and goes. One system of a tenor part read as ``G2``
puts every note of that system an octave too high; one system of an alto read as
``G2-8vb`` puts them an octave too low.

So the systems between two printed changes are made to agree on the clef that most of
them read: a system in the minority takes it, and its notes up to the next clef move by
the octave. Systems are counted rather than the model's probabilities summed, because on
degraded scans the model reads the octave mark wrongly with confidence: on the held-out
engraver pages it gave 0.995 and 0.966 to an ``8`` that is not printed. Where the
readings tie, nothing is changed, and each disagreeing clef's confidence drops to 0.5 at
most, so the studio marks them for a look.

Only clefs that differ by an octave are made to agree (``G2``, ``G2-8vb`` and ``G2-8va``;
``F4`` and ``F4-8vb``): their lines name the same steps, so nothing else about the notes
changes. Clefs of different signs or lines (a ``G2`` beside an ``F4``) are left as read:
such a difference is more often a staff that the layout gave to the wrong part than a
misread clef.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from functools import cache

import numpy as np

from ..notation.symbols import Pitch
from ..notation.vocabulary import KINDS, Vocabulary, note_token
from .ties import Line

__all__ = ["OCTAVE_CLEFS", "share_clefs"]

#: Clef -> (the clef it transposes, octaves up).
OCTAVE_CLEFS: dict[str, tuple[str, int]] = {
    "G2": ("G2", 0),
    "G2-8vb": ("G2", -1),
    "G2-8va": ("G2", 1),
    "F4": ("F4", 0),
    "F4-8vb": ("F4", -1),
}


def share_clefs(lines: Sequence[Line], vocab: Vocabulary) -> tuple[list[Line], int]:
    """One staff's lines, system after system, with the clefs that open them made to
    agree between printed changes, as most of them read (module docstring). Each line
    is ``(ids, confidences, token_logp)``, ``token_logp[i]`` the model's column of
    log-probabilities where token ``i`` was read (blank last) or None. Returns the lines
    and how many systems changed clef. A changed clef's confidence is the model's
    probability for it, so the studio marks it for a look."""
    out = [(list(a), list(b), list(c)) for a, b, c in lines]
    changed = 0
    for group in _unchanged_runs(out, vocab):
        names = [vocab.info(out[i][0][k]).value for i, k in group]
        if len(set(names)) < 2 or any(n not in OCTAVE_CLEFS for n in names):
            continue
        families = {OCTAVE_CLEFS[n][0] for n in names}  # type: ignore[index]
        if len(families) > 1:
            continue
        counts = Counter(names)
        (best, most), (_, second) = counts.most_common(2)
        if most == second:
            for i, k in group:
                out[i][1][k] = min(out[i][1][k], 0.5)
            continue
        for (i, k), name in zip(group, names, strict=True):
            if name == best:
                continue
            shift = OCTAVE_CLEFS[best][1] - OCTAVE_CLEFS[name][1]  # type: ignore[index]
            moved = _transpose(out[i], k, shift, vocab)
            if moved is None:
                continue  # a note would leave the vocabulary: the system is left as read
            ids, confs, rows = moved
            ids[k] = vocab.id(f"<clef:{best}>")
            confs[k] = min(confs[k], math.exp(_clef_logp(out[i], k, best, vocab)))
            out[i] = (ids, confs, rows)
            changed += 1
    return out, changed


def _unchanged_runs(lines: Sequence[Line], vocab: Vocabulary) -> list[list[tuple[int, int]]]:
    """(line, token index) of each line's opening clef, grouped into runs between printed
    changes: a clef read after a line's first note or rest ends the run after that line."""
    runs: list[list[tuple[int, int]]] = [[]]
    for i, (ids, _, _) in enumerate(lines):
        opening, music, later = None, False, False
        for k, t in enumerate(ids):
            kind = vocab.info(t).kind
            if kind in ("note", "rest", "mrest", "multirest"):
                music = True
            elif kind == "clef":
                if music:
                    later = True
                elif opening is None:
                    opening = k
        if opening is not None:
            runs[-1].append((i, opening))
        if later:
            runs.append([])
    return [r for r in runs if len(r) > 1]


def _clef_logp(line: Line, k: int, clef: str, vocab: Vocabulary) -> float:
    """How likely ``clef`` was where the line's token ``k`` (a clef) was read: from the
    model's column, else from the read clef's confidence (the rest of the mass given to
    each other clef)."""
    ids, confs, rows = line
    row = rows[k] if k < len(rows) else None
    if row is not None:
        return float(row[vocab.id(f"<clef:{clef}>")])
    read = vocab.info(ids[k]).value
    p = confs[k] if read == clef else 1.0 - confs[k]
    return math.log(min(max(p, 1e-9), 1.0))


def _transpose(line: Line, k: int, shift: int, vocab: Vocabulary) -> Line | None:
    """The line with its notes after token ``k`` moved ``shift`` octaves up to the next
    clef; each moved note's column moved with it. None if a note has no such token."""
    ids, confs, rows = list(line[0]), list(line[1]), list(line[2])
    table = _octave_table(vocab, shift)
    for j in range(k + 1, len(ids)):
        info = vocab.info(ids[j])
        if info.kind == "clef":
            break
        if info.kind != "note":
            continue
        moved = int(table[ids[j]])
        if moved < 0:
            return None
        ids[j] = moved
        if j < len(rows) and rows[j] is not None:
            rows[j] = _moved_column(rows[j], vocab, shift)  # type: ignore[arg-type]
    return ids, confs, rows


@cache
def _octave_table(vocab: Vocabulary, shift: int) -> np.ndarray:
    """Each token id -> the id of the same note ``shift`` octaves up (-1: none, or not a
    note)."""
    table = np.full(len(vocab), -1, dtype=np.int64)
    for t in range(len(vocab)):
        info = vocab.info(t)
        if info.kind != "note" or info.pitch is None or info.duration is None:
            continue
        p = info.pitch
        text = note_token(Pitch(p.step, p.alter, p.octave + shift), info.duration)
        if text in vocab:
            table[t] = vocab.id(text)
    return table


def _moved_column(row: np.ndarray, vocab: Vocabulary, shift: int) -> np.ndarray:
    """A column of log-probabilities read under the old clef, as the new clef reads it:
    each note's value is the one the note ``shift`` octaves down had (the same place on
    the staff), the least in the column where that note is not in the vocabulary."""
    down = _octave_table(vocab, -shift)
    notes = vocab.kind_ids == KINDS.index("note")
    out = row.copy()
    size = len(vocab)
    out[:size][notes] = np.where(down[notes] >= 0, row[np.maximum(down[notes], 0)], row.min())
    return out
