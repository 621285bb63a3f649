"""Comparing two scores with musicdiff (OMR edit distance and OMR-NED), not a home-made diff.

musicdiff annotates both music21 scores and computes the edit distance between their
symbols; OMR-NED is that distance divided by the number of symbols in both scores.
Only the symbol families our vocabulary names take part (notes and rests, ties,
signatures, barlines), so dropped-on-purpose symbols do not count as errors.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from music21 import stream
from musicdiff import AnnScore, Comparison, DetailLevel, Visualization

from .music21_io import to_music21
from .score import Score

VOCABULARY_DETAIL = (
    DetailLevel.NotesAndRests | DetailLevel.Ties | DetailLevel.Signatures | DetailLevel.Barlines
)


@dataclass(frozen=True)
class ScoreDistance:
    """musicdiff's OMR edit distance between a reference and a transcription."""

    edit_distance: int
    reference_symbols: int
    predicted_symbols: int

    @property
    def omr_ned(self) -> float:
        both = self.reference_symbols + self.predicted_symbols
        return self.edit_distance / both if both else 0.0

    @property
    def symbol_error_rate(self) -> float:
        """Edit distance over the reference's symbol count."""
        return self.edit_distance / self.reference_symbols if self.reference_symbols else 0.0


def compare_scores(
    reference: Score | stream.Score, predicted: Score | stream.Score
) -> ScoreDistance:
    """OMR edit distance of `predicted` against `reference` (either our Score or music21's)."""
    ref = to_music21(reference) if isinstance(reference, Score) else reference
    pred = to_music21(predicted) if isinstance(predicted, Score) else predicted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = AnnScore(ref, VOCABULARY_DETAIL)
        b = AnnScore(pred, VOCABULARY_DETAIL)
        _, cost = Comparison.annotated_scores_diff(a, b)
        out = Visualization.get_omr_ned_output(cost, a, b)
    return ScoreDistance(
        edit_distance=int(cost),
        reference_symbols=int(out["numSymbolsInGroundTruth"]),
        predicted_symbols=int(out["numSymbolsInPredicted"]),
    )
