"""Move a tuplet's end so that the tuplet fills its bracket.

A tuplet's bracket holds whole notes of its kind: three eighths (or an eighth and a
quarter, or four sixteenths and an eighth...) in a 3:2 triplet, so that their printed
values divided by 3 make a plain note value. The model reads the tuplet's number where
it is printed, but the end of the bracket it must infer, and it often puts it one note
early or late: ``<tuplet:3:2> A B <tuplet-end> C`` for three eighths A B C. The grammar
flags such a tuplet (a third of what it flags after mending on held-out crops, run 4k,
are wrong measure lengths in measures with a tuplet, and 32 of 208 flagged measures a
tuplet that does not fill its bracket), and note values are not mended in a measure
with a tuplet (:mod:`.durations`).

Here the end is moved to the nearest note after which the tuplet fills, and only when
the voice then holds what the time signature asks for (without a time signature: when
the end moves by one note only). No token is added or dropped, so nothing the model read
is lost; the moved end keeps at most confidence 0.5, so the studio marks the measure for
a look.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from ..notation.symbols import DURATION_TYPES, time_length
from ..notation.vocabulary import Vocabulary
from .durations import note_values

__all__ = ["mend_tuplets"]

_PLAIN_VALUES = set(DURATION_TYPES.values())
_STOP = {"barline", "voice", "staff", "tuplet"}  # where a tuplet's candidate notes end


def mend_tuplets(
    ids: Sequence[int],
    confidences: Sequence[float],
    token_logp: Sequence[np.ndarray | None],
    vocab: Vocabulary,
    time: str | None = None,
) -> tuple[list[int], list[float], list[np.ndarray | None], int]:
    """One staff's line of tokens with each tuplet that does not fill its bracket given
    an end after which it does (module docstring). ``time`` is the time signature in force
    where the line starts; ``token_logp`` are the model's columns per token, moved along
    with their tokens. Returns the ids, confidences, columns and the number of ends moved."""
    values = note_values(vocab)
    out, conf, rows = list(ids), list(confidences), list(token_logp)
    moved = 0
    j = 0
    while j < len(out):
        info = vocab.info(out[j])
        if info.kind == "time":
            time = info.value
        if info.kind == "tuplet":
            found = _better_end(out, j, vocab, values.length, time)
            if found is not None:
                old, new_end = found
                token, c, row = out.pop(old), conf.pop(old), rows.pop(old)
                at = new_end - (1 if new_end > old else 0)
                out.insert(at, token)
                conf.insert(at, min(c, 0.5))
                rows.insert(at, row)
                moved += 1
        j += 1
    return out, conf, rows, moved


def _counted(ids: Sequence[int], j: int, vocab: Vocabulary) -> bool:
    """Whether token ``j`` starts an event that takes time: a note or rest, not a
    chord's added note or a grace note."""
    kind = vocab.info(ids[j]).kind
    previous = vocab.info(ids[j - 1]).kind if j > 0 else ""
    return kind == "rest" or (kind == "note" and previous not in ("chord", "grace"))


def _end_of(ids: Sequence[int], start: int, vocab: Vocabulary) -> int:
    """Index of the tuplet end that closes the tuplet opened at ``start``, or -1."""
    for j in range(start + 1, len(ids)):
        kind = vocab.info(ids[j]).kind
        if kind == "tuplet_end":
            return j
        if kind in _STOP:
            return -1
    return -1


def _better_end(
    ids: Sequence[int],
    start: int,
    vocab: Vocabulary,
    length: dict[int, Fraction],
    time: str | None,
) -> tuple[int, int] | None:
    """Where the end of the tuplet opened at ``start`` stands and where to put it (the
    index to insert it before, in ``ids`` as they are), or None to leave it."""
    actual, normal = vocab.info(ids[start]).tuplet_ratio
    end = _end_of(ids, start, vocab)
    if end < 0 or not actual:
        return None
    # The voice's events from the tuplet on: (token index after the event, printed length)
    events: list[tuple[int, Fraction]] = []
    inside = 0  # events before the current end
    j = start + 1
    while j < len(ids):
        kind = vocab.info(ids[j]).kind
        if kind in _STOP:
            break
        if kind == "tuplet_end":
            inside = len(events)
            j += 1
            continue
        if _counted(ids, j, vocab):
            events.append((j, length.get(ids[j], Fraction(0))))
        j += 1
    stop = j  # the barline, voice or next tuplet after this voice's run

    def after(k: int) -> int:
        """Index just after the k-th event (1-based) and its chord notes and tie."""
        nxt = events[k][0] if k < len(events) else stop
        # step back over a grace note's marks and the old end, which belong to no event
        while nxt - 1 > events[k - 1][0] and vocab.info(ids[nxt - 1]).kind in (
            "grace",
            "tuplet_end",
        ):
            nxt -= 1
        return nxt

    def fills(k: int) -> bool:
        printed = sum(x for _, x in events[:k])
        return k > 0 and printed / actual in _PLAIN_VALUES

    if fills(inside):
        return None
    bar = time_length(time) if time else None
    best: tuple[int, int] | None = None
    for k in range(1, len(events) + 1):
        if k == inside or not fills(k):
            continue
        if bar is not None:
            at = after(k)
            candidate = list(ids)
            candidate.insert(at, candidate[end])
            del candidate[end + (1 if at <= end else 0)]
            if _voice_length(candidate, start, vocab, length) != bar:
                continue
        elif abs(k - inside) > 1:
            continue
        if best is None or abs(k - inside) < best[0]:
            best = (abs(k - inside), k)
    return (end, after(best[1])) if best is not None else None


_VOICE_ENDS = ("barline", "voice", "staff")


def _voice_length(
    ids: Sequence[int], at: int, vocab: Vocabulary, length: dict[int, Fraction]
) -> Fraction:
    """What the voice around token ``at`` holds (from the barline or voice mark before it
    to the next), each tuplet's notes scaled by its ratio."""
    j = at
    while j >= 0 and vocab.info(ids[j]).kind not in _VOICE_ENDS:
        j -= 1
    total, scale = Fraction(0), Fraction(1)
    for k in range(j + 1, len(ids)):
        info = vocab.info(ids[k])
        if info.kind in _VOICE_ENDS:
            break
        if info.kind == "tuplet":
            actual, normal = info.tuplet_ratio
            scale = Fraction(normal, actual) if actual else Fraction(1)
        elif info.kind == "tuplet_end":
            scale = Fraction(1)
        elif _counted(ids, k, vocab):
            total += length.get(ids[k], Fraction(0)) * scale
    return total
