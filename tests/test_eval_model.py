"""benchmarks/eval_model.py counts flagged measures as the page pipeline does."""

from __future__ import annotations

from benchmark_modules import load_benchmark

from omr_engine.notation.grammar import Grammar
from omr_engine.notation.score import StaffContext
from omr_engine.notation.vocabulary import default_vocabulary


def load_eval_model():
    return load_benchmark("eval_model")


def test_a_pickup_is_flagged_only_when_the_line_does_not_open_the_piece():
    vocab = default_vocabulary()
    line = "<clef:G2> <key:0> <time:4/4> <note:G4-quarter> <barline>"
    line += " <note:C5-whole> <barline> <note:D5-half> <note:E5-half> <barline>"
    ids = vocab.encode(line.split())
    flagged = load_eval_model().flagged_measures
    grammar = Grammar(vocab)
    assert flagged(grammar, ids, vocab, StaffContext(), piece_start=True) == (0, 3)
    assert flagged(grammar, ids, vocab, StaffContext(), piece_start=False) == (1, 3)


def load_tuner():
    load_eval_model()
    return load_benchmark("tune_second_look")


def test_the_tuner_plays_the_second_look_as_the_pipeline_does():
    import numpy as np

    from omr_engine.inference.second_look import SecondLook

    play = load_tuner().play
    # three crops read at two widths: (token errors, flagged measures, score)
    errors = np.array([[5, 0, 4], [1, 3, 2]])
    flags = np.array([[1, 0, 1], [0, 1, 1]])
    scores = np.array([[-0.1, -0.05, -0.3], [-0.2, -0.01, -0.1]])
    # crop 0: fewer flags wider; crop 1: nothing in doubt; crop 2: as many flags, better score
    assert play(errors, flags, scores, (1,), SecondLook((1.0,), None)) == (3.0, 1.0, 5 / 3)
    # above crop 1's score it is read again too, but its wider reading flags more: kept
    assert play(errors, flags, scores, (1,), SecondLook((1.0,), -0.01)) == (3.0, 1.0, 2.0)


def test_the_tuner_plays_the_voting_look_as_the_pipeline_does():
    import numpy as np

    from omr_engine.inference.second_look import SecondLook

    vocab = default_vocabulary()
    grammar = Grammar(vocab)

    def reading(text: str) -> dict:
        ids = vocab.encode(["<clef:G2>", *text.split()])
        line = (ids, [0.9] * len(ids), [None] * len(ids))
        return {"reread": ids, "mended": ids, "line": line, "time": "2/4", "piece_start": False}

    right = "<note:C5-half> <barline> <note:D5-half> <barline>"
    refs = [vocab.encode(["<clef:G2>", *right.split()])] * 2
    # crop 0 is flagged as first read (its first measure is short) and each wider reading
    # misreads another measure; crop 1 is read right and in no doubt
    readings = [
        [reading("<note:C5-quarter> <barline> <note:D5-half> <barline>"), reading(right)],
        [reading("<note:C5-half> <barline> <note:E5-half> <barline>"), reading(right)],
        [reading("<note:C5-half> <barline> <note:D5-half> <barline>"), reading(right)],
    ]
    flags = np.array([[1, 0], [0, 0], [0, 0]])
    scores = np.zeros((3, 2))
    play_vote = load_tuner().play_vote
    look = SecondLook((1.0,), None, vote=True)
    assert play_vote(readings, refs, flags, scores, (1, 2), look, grammar) == (0.0, 0.0, 2.0)
    # with the first reading and one misreading, a measure they read apart goes to the
    # first, a measure it leaves flagged to the other
    assert play_vote(readings, refs, flags, scores, (1,), look, grammar) == (0.0, 0.0, 1.5)
    # a crop in no doubt keeps its first reading, however the others read it
    readings[0][1] = reading("<note:C5-half> <barline> <note:E5-half> <barline>")
    assert play_vote(readings, refs, flags, scores, (1, 2), look, grammar) == (1.0, 0.0, 2.0)
