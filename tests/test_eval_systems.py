"""benchmarks/eval_systems.py prints a reading the way a system crop's tokens are printed."""

from __future__ import annotations

from benchmark_modules import load_benchmark

from omr_engine.notation.tokens import score_to_tokens, tokens_to_score
from omr_engine.synth.examples import excerpt


def test_a_time_signature_read_at_a_crops_start_counts_even_where_it_changes_nothing():
    line_tokens = load_benchmark("eval_systems").line_tokens
    piece = tokens_to_score(
        "<clef:G2> <key:2#> <time:2/4> <note:D5-half> <barline> <note:E5-half> <barline>"
        " <note:F#5-half> <barline> <note:G5-half> <barline>".split()
    )
    # a crop of measures 2-3, engraved as an excerpt: its first measure states the key and
    # the time in force, and so do its tokens
    crop = excerpt(piece, 2, 4)
    truth = score_to_tokens(crop)
    assert truth[:3] == ["<clef:G2>", "<key:2#>", "<time:2/4>"]
    # a reading of the crop that read all of it is printed as its tokens are
    assert line_tokens(crop, piece.contexts_before(2)) == truth
    # one that read no time signature misses it
    crop.measures[0].staves[0].time = None
    assert "<time:2/4>" not in line_tokens(crop, piece.contexts_before(2))
