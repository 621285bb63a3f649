"""The time signature, checked against the measures it governs.

A time signature is printed once, at a piece's start, in a few small digits; the model
reads it far less reliably than notes (it read 6/8 for 4/2 on every staff of several
Palestrina pages), and one wrong signature makes the grammar flag every measure of the
piece. The notes themselves say what it must be: most measures of a piece are full, so
their summed note values give the measure length. Here the most frequent length is
found, and it stands for the page if it and the measures within an eighth of it are at
least half of them (one misread note value moves a measure's length a little: a 4/4 page
read as 2/4 came out 4, 3 1/2, 4 1/2, 3 3/4, 4 ... quarters); when the signature read
gives a different length and clearly fewer of the measures fit it, the signature is
replaced by one of that length: the one the model read on some staff if any, else the
most usual one. 6/8 and 3/4 have the same
length; where the notes start within the measure tells them apart (:func:`beat_votes`).
The note values are trusted over the digits because there are many of them: a page of
10 measures on 4 staves has 40 witnesses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..notation.score import Score, event_length, voice_length
from ..notation.symbols import time_length

if TYPE_CHECKING:
    from ..notation.grammar import Grammar

__all__ = ["USUAL_TIMES", "beat_votes", "choose_time", "measure_lengths", "share_time_signatures"]

# The usual signature for each measure length, most usual first.
USUAL_TIMES = (
    "4/4", "3/4", "2/4", "6/8", "3/8", "2/2", "4/2", "3/2", "12/8", "9/8", "6/4", "5/4", "2/1",
)  # fmt: skip
MIN_MEASURES = 3  # fewer full measures than this prove nothing
MIN_SHARE = 0.5  # the length chosen must fit at least this share of the measures
MIN_LEAD = 2  # ... and this many more measures than the signature read
TOLERANCE = Fraction(1, 8)  # a measure within an eighth of a length counts for it (misread values)


def measure_lengths(staff: Score, start: int = 0) -> list[Fraction]:
    """The length in quarter notes of each measure of one staff's line (its longest
    voice) from measure ``start`` up to the next time signature inside the line (a change
    of meter). Measures holding a whole-measure rest or nothing say nothing about the
    meter and are left out."""
    lengths: list[Fraction] = []
    for k, measure in enumerate(staff.measures[start:], start):
        staff = measure.staves[0]
        if k > start and staff.time is not None:
            break
        voices = [v for v in staff.voices if v]
        if not voices or any(getattr(e, "duration", 0) is None for v in voices for e in v):
            continue
        lengths.append(max(voice_length(v, None) for v in voices))
    return [x for x in lengths if x > 0]


def beat_votes(staff: Score, start: int = 0) -> tuple[int, int]:
    """Among one staff's measures of three quarters (from measure ``start`` up to the next
    change of meter), how many look compound (6/8: a note starts at the second
    dotted-quarter beat, 1.5, and none at 2) and how many simple (3/4: one starts at the
    third beat, 2, and none at 1.5). Note values alone cannot tell the two apart; where
    the beats fall can."""
    compound = simple = 0
    for k, measure in enumerate(staff.measures[start:], start):
        if k > start and measure.staves[0].time is not None:
            break
        voices = measure.staves[0].voices
        onsets, at = set(), Fraction(0)
        for event in voices[0] if voices else []:
            onsets.add(at)
            at += event_length(event)
        if at != 3:
            continue
        mid, third = Fraction(3, 2) in onsets, Fraction(2) in onsets
        compound += mid and not third
        simple += third and not mid
    return compound, simple


def _compound(time: str) -> bool:
    num, _, den = time.partition("/")
    return den == "8" and num in ("6", "9", "12")


def _near(counts: Counter[Fraction], length: Fraction, rival: Fraction | None = None) -> int:
    """How many measures lie within ``TOLERANCE`` of ``length`` (``counts``: measures per
    length), and nearer to it than to ``rival`` when one is given."""
    return sum(
        n
        for other, n in counts.items()
        if abs(other - length) <= length * TOLERANCE
        and (rival is None or abs(other - length) < abs(other - rival))
    )


def choose_time(
    read: Sequence[tuple[str, float]],
    lengths: Sequence[Fraction],
    times: Sequence[str],
    beats: tuple[int, int] = (0, 0),
) -> str | None:
    """The time signature the measures call for, or None to keep what was read.

    ``read`` holds each staff's signature as read, with its confidence; ``lengths`` the
    lengths of the measures it governs (all staves together); ``times`` the signatures the
    vocabulary can write. ``beats`` are the compound and simple votes of
    :func:`beat_votes`: with more than twice as many of one (and two more), measures of
    three quarters are 6/8 or 3/4, even where the signature read had the right length.
    """
    if not read or len(lengths) < MIN_MEASURES:
        return None
    counts = Counter(lengths)
    support = {length: _near(counts, length) for length in counts}
    # The most frequent length, not the best supported: a length between two others (11/4
    # quarters, from a misread value, between 5/2 and 3) gathers the support of both.
    best = max(counts, key=lambda length: (counts[length], support[length]))
    fit = support[best]
    if fit < MIN_SHARE * len(lengths):
        return None
    compound, simple = beats
    kind = None
    if best == 3 and max(compound, simple) >= 2 * min(compound, simple) + 2:
        kind = compound > simple

    def fits(t: str) -> bool:
        return time_length(t) == best and (kind is None or _compound(t) == kind)

    if all(fits(t) for t, _ in read):
        return None  # what was read agrees with the measures
    # A measure counts for a signature read only if it is nearer that length than the
    # one found: 3/4 measures said nothing for an 11/16 read (within an eighth of it).
    worst = min(_near(counts, time_length(t), best) for t, _ in read)
    if fit < worst + MIN_LEAD and kind is None:
        return None  # the measures do not clearly contradict it
    same = [(c, t) for t, c in read if fits(t)]
    if same:
        return max(same)[1]
    usual = [t for t in USUAL_TIMES if t in times and fits(t)]
    if usual:
        return usual[0]
    fallback = [t for t in times if "/" in t and time_length(t) == best]
    return min(fallback, key=lambda t: abs(int(t.split("/")[1]) - 4), default=None)


def share_time_signatures(
    staves: list[list[int]],
    confs: list[list[float]],
    rows: list[list[Any]],
    grammar: Grammar,
) -> int:
    """Give every staff of a system the time signature that some of its staves read in the
    same measure, in place; returns how many were added.

    A time signature is printed on every staff of a system, but the model reads each
    staff apart and sometimes leaves it out on some of them (on the clean LilyPond
    tuning pages, run 4o read Palestrina's 4/2 on two of five staves and left it out on
    the others). Where some staves of a system read one at a measure's start and others
    read none there, the others get it, after their clef and key: the value read with the
    most confidence over the staves, with the lowest confidence read (at most 0.5), so
    the studio marks it for a look. ``rows`` are the staves' per-token log-probability
    rows, kept in step (an empty list where a staff has none).
    """
    time, barline = grammar.kinds("time"), grammar.kinds("barline")
    header = grammar.kinds("clef", "key", "repeat_start", "volta")
    # per staff: measure -> (index where its leading header ends, time token or None)
    starts: list[dict[int, tuple[int, int | None]]] = []
    for ids in staves:
        measures: dict[int, tuple[int, int | None]] = {}
        k, measure = 0, 0
        while k < len(ids):
            j = k
            while j < len(ids) and header[ids[j]]:
                j += 1
            found = ids[j] if j < len(ids) and time[ids[j]] else None
            measures[measure] = (j, found)
            while k < len(ids) and not barline[ids[k]]:
                k += 1
            k, measure = k + 1, measure + 1
        starts.append(measures)
    added = 0
    # last measure first, so an insertion never moves a measure still to be done
    for measure in sorted({m for st in starts for m in st}, reverse=True):
        read = [
            (confs[s][st[measure][0]], st[measure][1])
            for s, st in enumerate(starts)
            if measure in st and st[measure][1] is not None
        ]
        if not read:
            continue
        votes: dict[int, float] = {}
        for conf, token in read:
            votes[token] = votes.get(token, 0.0) + conf
        token = max(votes, key=lambda t: votes[t])
        conf = min(0.5, min(c for c, _ in read))
        for s, st in enumerate(starts):
            if measure not in st or st[measure][1] is not None:
                continue
            at = st[measure][0]
            staves[s].insert(at, token)
            confs[s].insert(at, conf)
            if rows[s]:
                rows[s].insert(at, None)
            added += 1
    return added
