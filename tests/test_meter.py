"""The time signature checked against the measures it governs (inference/meter.py)."""

from __future__ import annotations

from fractions import Fraction

from omr_engine.inference.meter import (
    beat_votes,
    choose_time,
    measure_lengths,
    share_time_signatures,
)
from omr_engine.notation.grammar import Grammar
from omr_engine.notation.tokens import tokens_to_score
from omr_engine.notation.vocabulary import default_vocabulary

TIMES = [default_vocabulary().info(i).value for i in range(len(default_vocabulary()))
         if default_vocabulary().info(i).kind == "time"]  # fmt: skip


def staff(*measures: str):
    """One staff's line read from tokens: a header, then measures of space-separated
    tokens."""
    out = ["<clef:G2>", "<key:0>", "<time:6/8>"]
    for m in measures:
        out += m.split() + ["<barline>"]
    return tokens_to_score(out)


HALVES = "<note:C5-half> <note:D5-half> <note:E5-half> <note:F5-half>"  # 4/2: 8 quarters


def test_measure_lengths_skip_whole_measure_rests_and_stop_at_a_change_of_meter():
    line = staff(HALVES, "<mrest>", HALVES, "<time:2/4> <note:C5-half>", HALVES)
    assert measure_lengths(line) == [Fraction(8), Fraction(8)]
    assert measure_lengths(line, start=3) == [Fraction(2), Fraction(8)]  # from the change on


def test_a_signature_the_measures_contradict_is_replaced():
    lengths = [Fraction(8)] * 9 + [Fraction(4)]
    # 6/8 was read on every staff: the measures hold 8 quarters, so 4/2 (the usual one).
    assert choose_time([("6/8", 0.2), ("6/8", 0.3)], lengths, TIMES) == "4/2"
    # One staff read a signature of the right length: it is the one taken, for all.
    assert choose_time([("6/8", 0.2), ("8/4", 0.2)], lengths, TIMES) == "8/4"
    # What the measures confirm is kept.
    assert choose_time([("4/2", 0.2)], lengths, TIMES) is None


def test_a_signature_is_kept_when_the_measures_do_not_clearly_say_otherwise():
    assert choose_time([("3/4", 0.2)], [Fraction(2)] * 2, TIMES) is None  # too few
    mixed = [Fraction(2)] * 4 + [Fraction(3)] * 3 + [Fraction(1)] * 3
    assert choose_time([("3/4", 0.2)], mixed, TIMES) is None  # no length has half
    close = [Fraction(2)] * 6 + [Fraction(3)] * 5
    assert choose_time([("3/4", 0.2)], close, TIMES) is None  # 2/4 leads by one only


def test_measures_a_misread_value_away_from_a_length_still_count_for_it():
    # Garthland's Strathspey (MuseScore, run 4h): 4/4 read as 2/4, and the measures came
    # out 4, 3 1/2, 4 1/2, 3 3/4, 4 ... quarters: only 4 of 9 exactly 4.
    q = [4, 3.5, 4.5, 3.75, 4, 4, 3.5, 4.25, 4]
    lengths = [Fraction(x).limit_denominator(16) for x in q]
    assert choose_time([("2/4", 0.4)], lengths, TIMES) in ("4/4", "C")
    # An eighth of the measure, no more: 2/4 measures do not count for 3/4, nor 3/4 ones
    # for 2/4, so five of three quarters against two of two still replace 2/4.
    apart = [Fraction(3)] * 5 + [Fraction(2)] * 2
    assert choose_time([("2/4", 0.4)], apart, TIMES) == "3/4"


def test_the_most_frequent_length_wins_over_one_between_two_others():
    # Bach BWV 306 (LilyPond, degraded, run 4k): 3/4 read right on every staff; misread
    # values gave a few measures of 5/2 and one of 11/4 quarters, which lies within an
    # eighth of both 5/2 and 3 and so gathered more support than 3 itself: 3/4 was
    # replaced by 11/16 and 16 of 18 measures flagged.
    lengths = [Fraction(3)] * 50 + [Fraction(5, 2)] * 4 + [Fraction(11, 4)] + [Fraction(2)] * 8
    assert choose_time([("3/4", 0.66), ("3/4", 0.10)], lengths, TIMES) is None
    # A signature a little off the measures' length is replaced: measures of 8 quarters
    # are nearer 8 than 9, so they do not vouch for a 9/4 read.
    assert choose_time([("9/4", 0.3)], [Fraction(8)] * 9 + [Fraction(9)], TIMES) == "4/2"


def test_where_the_beats_fall_tells_six_eight_from_three_four():
    quarters = staff(*["<note:C5-quarter> <note:D5-quarter> <note:E5-quarter>"] * 4)
    jig = staff(*["<note:C5-quarter> <note:D5-eighth> <note:E5-quarter> <note:F5-eighth>"] * 4)
    assert beat_votes(quarters) == (0, 4)
    assert beat_votes(jig) == (4, 0)
    three = [Fraction(3)] * 8
    assert choose_time([("6/8", 0.2)], three, TIMES, beats=(0, 8)) == "3/4"
    assert choose_time([("6/8", 0.2)], three, TIMES, beats=(8, 0)) is None
    assert choose_time([("3/4", 0.2), ("6/8", 0.3)], three, TIMES, beats=(8, 1)) == "6/8"
    # Few or mixed votes: what was read stands.
    assert choose_time([("6/8", 0.2)], three, TIMES, beats=(1, 2)) is None


def test_staves_that_read_no_time_signature_get_the_one_their_system_read():
    vocab = default_vocabulary()
    grammar = Grammar(vocab)
    lines = [
        "<clef:G2> <key:1#> <time:4/2> <note:C5-breve> <barline> <note:D5-breve> <barline>",
        "<clef:G2> <key:1#> <note:C5-breve> <barline> <note:D5-breve> <barline>",
        "<clef:F4> <key:1#> <time:3/2> <note:C3-breve> <barline> <time:3/4> <note:D3-breve> "
        "<barline>",
        "<clef:F4> <key:1#> <note:C3-breve> <barline> <note:D3-breve> <barline>",
    ]
    staves = [vocab.encode(line.split()) for line in lines]
    confs = [[0.9] * len(st) for st in staves]
    confs[2][2] = 0.3  # the 3/2 is read with less confidence than the 4/2
    rows = [[f"row{k}" for k in range(len(st))] for st in staves]
    before = [list(st) for st in staves]
    assert share_time_signatures(staves, confs, rows, grammar) == 5
    read = [vocab.decode(st) for st in staves]
    assert read[1][:4] == ["<clef:G2>", "<key:1#>", "<time:4/2>", "<note:C5-breve>"]
    assert read[3][2] == "<time:4/2>" and read[2][2] == "<time:3/2>"  # a read one is kept
    # the change of meter in the second measure, read on one staff, goes to all the others
    for line in read:
        assert line[line.index("<barline>") + 1] in ("<time:3/4>",)
    assert confs[1][2] == 0.3  # the least sure read of the measure, at most 0.5
    assert confs[1][read[1].index("<time:3/4>")] == 0.5
    for st, r, c in zip(staves, rows, confs, strict=True):
        assert len(st) == len(r) == len(c)
    assert rows[1][2] is None and rows[1][3] == "row2"  # rows kept in step
    assert share_time_signatures(staves, confs, rows, grammar) == 0  # nothing left to share
    assert share_time_signatures([before[1]], [[0.9] * 6], [[]], grammar) == 0  # one staff alone
