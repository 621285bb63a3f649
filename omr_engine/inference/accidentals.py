"""Mend an accidental the reading carried where the measure's memory says otherwise.

The tokens spell each note as it sounds (``<note:F#4-eighth>``), so the model has to
keep the engraver's bookkeeping: a printed accidental holds for later notes of that
line or space until the barline, and no further. On the 240 LilyPond and MuseScore pages
(session 29) half of the wrong accidentals were this bookkeeping, not the eye: of 130
notes that carry an accidental printed earlier in their measure, 27 were read with the
key's alteration instead, and 23 notes that the key alone alters were read with an
accidental printed in the measure before.

So each such note is a candidate: one read otherwise than a note of the same step and
octave before it in its measure (``carry``: it may have its own accidental printed, or
the reading forgot the earlier one), and one read with an alteration the key does not give,
first of its step and octave in the measure, as a note of the measure before was read
(``expire``: it may have the accidental printed again, or the reading carried it over the
barline; not where a tie brings the note over the barline, which keeps its alteration). The CTC head's column where the note was read decides: the other spelling is
taken when the head gives it at least ``exp(-margin)`` times the read one's probability.

Measured on those pages with run 5j (`/work/runs/s29/acc_diag.py`: 473 candidates, each
labelled against the reference): within 2 nats, ``expire`` candidates would mend 9 notes
and break 1, ``carry`` candidates mend 12 and break 21 (at 0.5 nats, 3 and 6). A printed
natural is as common as a forgotten accidental, and the column does not tell them apart,
so only ``expire`` candidates are mended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..notation.symbols import Pitch, key_alter
from ..notation.vocabulary import Vocabulary, note_token

__all__ = ["Candidate", "accidental_candidates", "mend_accidentals"]

#: How much less likely (in nats, on the CTC head's column) the other spelling may be.
DEFAULT_MARGIN = 2.0


@dataclass(frozen=True)
class Candidate:
    """A note whose spelling the measure's memory questions: its index in the line, the
    id the reading gave it, the id of the other spelling, which rule found it, and the
    CTC head's log-probability of the other spelling less that of the read one (None
    where the note has no column)."""

    index: int
    read: int
    other: int
    rule: str
    gap: float | None


def accidental_candidates(
    ids: Sequence[int], token_logp: Sequence[np.ndarray | None], vocab: Vocabulary
) -> list[Candidate]:
    """The notes of one staff's line whose alteration the measure's memory questions
    (module docstring), in order."""
    key = 0
    memory: dict[tuple[str, int], int] = {}  # this measure: (step, octave) -> alteration
    before: dict[tuple[str, int], int] = {}  # the measure before
    tied: set[tuple[str, int]] = set()  # this measure's notes with a tie after them
    tied_before: set[tuple[str, int]] = set()
    out: list[Candidate] = []
    for i, token in enumerate(ids):
        info = vocab.info(token)
        if info.kind == "key":
            key = info.key
        elif info.kind == "barline":
            before, memory = memory, {}
            tied_before, tied = tied, set()
        elif info.kind == "tie" and i > 0:
            last = vocab.info(ids[i - 1]).pitch
            if last is not None:
                tied.add((last.step, last.octave))
        elif info.kind == "note" and info.pitch is not None and info.duration is not None:
            pitch = info.pitch
            where = (pitch.step, pitch.octave)
            keyed = key_alter(key, pitch.step)
            other = None
            rule = ""
            if where in memory:
                if memory[where] != pitch.alter:
                    other, rule = memory[where], "carry"
            elif (
                pitch.alter != keyed
                and before.get(where) == pitch.alter
                and where not in tied_before
            ):
                other, rule = keyed, "expire"
            memory[where] = pitch.alter
            if other is None:
                continue
            text = note_token(Pitch(pitch.step, other, pitch.octave), info.duration)
            if text not in vocab:
                continue
            other_id = vocab.id(text)
            row = token_logp[i] if i < len(token_logp) else None
            gap = None if row is None else float(row[other_id] - row[token])
            out.append(Candidate(i, token, other_id, rule, gap))
    return out


def mend_accidentals(
    ids: Sequence[int],
    confidences: Sequence[float],
    token_logp: Sequence[np.ndarray | None],
    vocab: Vocabulary,
    margin: float = DEFAULT_MARGIN,
    rules: tuple[str, ...] = ("expire",),
) -> tuple[list[int], list[float], int]:
    """One staff's line with each questioned note (:func:`accidental_candidates`) that one
    of ``rules`` found given its other spelling, where the CTC head's column gives that at
    least ``exp(-margin)`` times the read one's probability. A changed note's confidence becomes the head's
    probability of its new spelling. Returns the ids, the confidences and the number
    changed. Candidates are found on the reading as it was, so one change does not
    move another's memory."""
    out, conf = list(ids), list(confidences)
    changed = 0
    for cand in accidental_candidates(ids, token_logp, vocab):
        if cand.rule not in rules or cand.gap is None or cand.gap < -margin:
            continue
        out[cand.index] = cand.other
        conf[cand.index] = float(np.exp(token_logp[cand.index][cand.other]))  # type: ignore[index]
        changed += 1
    return out, conf, changed
