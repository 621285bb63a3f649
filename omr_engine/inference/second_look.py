"""A second look at a staff the first reading leaves in doubt: read it again, wider.

The model reads a crop resized to its height, so how wide the notes come out depends on
how the engraver spaced them. No single width suits every crop: on 1,200 held-out Verovio
crops read by run 5w, 1.1 times wider than the aspect ratio says read fewer tokens wrong
(SER 0.119 -> 0.113) but flagged more measures (74 -> 88), 1.25 times flagged fewer
(62) and 1.4 times read worse overall (0.136); and one width for all cost the LilyPond
test pages at 1.1 (1.0% -> 1.2%). Which crops a wider reading helps differs from crop to
crop, and the grammar and the model's own score tell them apart well enough.

So a staff whose reading the grammar still flags after the pipeline's mending, or whose
score (the reading's mean log-probability per token, :attr:`.Result.score`) is below
``below``, is read again 1.4 times wider, mended the same way, and the reading with fewer
flagged measures, then with the higher score, is kept. Tuned on those crops
(``benchmarks/tune_second_look.py``: one read at 1.0, then 1.1, 1.25 or 1.4, thresholds
none, -0.05, -0.1, -0.2) and checked on 1,200 fresh ones (seed 30): SER 0.110 -> 0.102 and
flagged measures 1.51% -> 0.57%, 28% of the crops read twice. More widths are tried in
turn for the staves still in doubt (``stretches``); 1.25 after 1.4 flagged fewer
measures again (0.40%) at the same SER, but read the engraver test pages no better (539
token errors against 530) for a third more reading; a vote among the readings does
better (below), and that is what the shipped model does.

With ``vote`` the staves in doubt are read at every width instead, and the readings,
the first among them, are put together measure by measure (:func:`vote_measures`): each
measure is taken from a reading whose measure the grammar passes, and among those from
the one that agrees best with the others. No reading has to be right throughout, only
each measure in most of them. The readings as they were before the pipeline read their
flagged measures again witness the vote (they count in the distances, and are never
taken): a measure the grammar passed only after being read again, often with a note
dropped, then loses to a passing one nearer what the model first saw. Run 5w reads the
staves in doubt (flagged, or scored below -0.2) at 1.1, 1.25 and 1.4 and votes: on the
seed-30 crops SER 0.091 with 17 measures flagged (0.094 and 15 without witnesses),
against 0.102 and 23 for the better of two readings (1.84 readings per crop against
1.28); on the engraver test pages 495 tokens wrong (505) against 530.

The settings belong to the model (its scores are its own), so they travel in the model
directory's ``runtime`` section (``second_stretch``: a width or a list of them,
``second_below``, ``second_vote``); a model without them reads once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..model.metrics import edit_distance
from ..notation.grammar import Grammar
from ..notation.score import StaffContext
from .ties import Line

__all__ = ["SecondLook", "flagged_measures", "measure_spans", "vote_measures"]


@dataclass(frozen=True)
class SecondLook:
    """When a staff is read again, and how much wider: each of ``stretches`` in turn, for
    the staves the readings kept so far still leave in doubt."""

    stretches: tuple[float, ...] = (1.4,)  # times wider than the aspect ratio says, in turn
    below: float | None = -0.2  # read again when the score is below this, flagged or not
    vote: bool = False  # read at every width and vote measure by measure (vote_measures)

    def __post_init__(self) -> None:
        if not self.stretches or not all(s > 0.0 for s in self.stretches):
            raise ValueError(f"stretches must be positive, not {self.stretches}")

    @classmethod
    def of(
        cls, stretch: float | Sequence[float], below: float | None = None, vote: bool = False
    ) -> SecondLook:
        """From a model's runtime settings: one width or a list of them."""
        widths = (stretch,) if isinstance(stretch, int | float) else tuple(stretch)
        return cls(tuple(float(w) for w in widths), below, bool(vote))

    @classmethod
    def from_runtime(cls, runtime: object) -> SecondLook | None:
        """The look a model's runtime settings (``second_stretch``, ``second_below``,
        ``second_vote``) ask for, or None when it reads once."""
        stretch = getattr(runtime, "second_stretch", None)
        if stretch is None:
            return None
        return cls.of(
            stretch, getattr(runtime, "second_below", None), getattr(runtime, "second_vote", False)
        )

    def wanted(self, flagged: int, score: float) -> bool:
        """Whether a reading with ``flagged`` measures the grammar flags and ``score`` is
        read again."""
        return flagged > 0 or (self.below is not None and score < self.below)

    @staticmethod
    def prefer(first: tuple[int, float], second: tuple[int, float]) -> bool:
        """Whether the second reading, as (flagged measures, score), beats the first: fewer
        flagged measures, or as many and a higher score."""
        return (second[0], -second[1]) < (first[0], -first[1])


def flagged_measures(
    grammar: Grammar, ids: Sequence[int], time: str | None, piece_start: bool = False
) -> set[int]:
    """The measures (counted from 0) of one staff's line of token ids that ``grammar``
    flags, read with ``time`` in force where the line starts; with ``piece_start`` its
    first measure may be a pickup."""
    state = grammar.start([StaffContext(time=time)], piece_start=piece_start)
    for tok in ids:
        state.advance(tok)
    return {d.measure for d in state.finish()}


def measure_spans(
    ids: Sequence[int], barline: np.ndarray, open_end: bool = False
) -> list[tuple[int, int]]:
    """[start, end] of each measure of a line closed by a barline (``end`` is the
    barline's index); with ``open_end`` also the tokens after the last barline, if any."""
    out, start = [], 0
    for i, tok in enumerate(ids):
        if barline[tok]:
            out.append((start, i))
            start = i + 1
    if open_end and start < len(ids):
        out.append((start, len(ids) - 1))
    return out


def vote_measures(
    lines: Sequence[Line],
    flagged: Sequence[set[int]],
    barline: np.ndarray,
    witnesses: Sequence[Sequence[int]] = (),
) -> Line:
    """One staff's readings (the first reading first) put together measure by measure.

    Only the readings cut into as many measures as the first take part, so the line still
    fits its system. Each measure is taken from the reading whose measure the grammar
    passes (``flagged`` holds each reading's flagged measures, counted from 0), then from
    the one closest to the others' (their token edit distances summed), then the one the
    model was surest of (mean token confidence), then the earliest. ``witnesses`` (token
    ids) count in the distances but are never taken: the readings as they were before
    their flagged measures were read again, so that of the passing measures the one
    nearest what the model first saw wins. ``barline`` says per token id whether it ends
    a measure.
    """
    cut = [measure_spans(ids, barline, open_end=True) for ids, _, _ in lines]
    count = len(cut[0])
    voters = [k for k in range(len(lines)) if len(cut[k]) == count]
    if len(voters) < 2:
        return lines[0]
    # each voter's and each witness's measures as token lists
    tokens = {k: [list(lines[k][0][a : b + 1]) for a, b in cut[k]] for k in voters}
    seen = [measure_spans(w, barline, open_end=True) for w in witnesses]
    seen_tokens = [
        [list(w[a : b + 1]) for a, b in spans]
        for w, spans in zip(witnesses, seen, strict=True)
        if len(spans) == count
    ]
    ids: list[int] = []
    confs: list[float] = []
    rows: list[np.ndarray | None] = []
    for j in range(count):

        def key(k: int, j: int = j) -> tuple[bool, int, float, int]:
            mine = tokens[k][j]
            apart = sum(edit_distance(mine, tokens[o][j]) for o in voters if o != k)
            apart += sum(edit_distance(mine, w[j]) for w in seen_tokens)
            a, b = cut[k][j]
            sure = float(np.mean(lines[k][1][a : b + 1])) if mine else 0.0
            return (j in flagged[k], apart, -sure, k)

        best = min(voters, key=key)
        a, b = cut[best][j]
        line_ids, line_confs, line_rows = lines[best]
        ids += line_ids[a : b + 1]
        confs += line_confs[a : b + 1]
        rows += line_rows[a : b + 1]
    return ids, confs, rows
