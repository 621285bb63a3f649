"""A measure whose values do not add up is mended with the values the model nearly read,
and only then."""

from __future__ import annotations

import numpy as np

from omr_engine.inference.durations import repair_durations
from omr_engine.notation.grammar import Grammar
from omr_engine.notation.vocabulary import default_vocabulary

VOCAB = default_vocabulary()


def rows_for(tokens: list[str], second: dict[int, tuple[str, float]]) -> list[np.ndarray]:
    """Per token: the model sure of it (log-prob 0), except where ``second`` gives a rival
    token and how many nats behind it was."""
    rows = []
    for i, t in enumerate(tokens):
        row = np.full(len(VOCAB), -30.0, np.float32)
        row[VOCAB.id(t)] = 0.0
        if i in second:
            rival, behind = second[i]
            row[VOCAB.id(rival)] = -behind
        rows.append(row)
    return rows


def mend(tokens: list[str], second: dict[int, tuple[str, float]], **kw):
    ids = VOCAB.encode(tokens)
    out, conf, n = repair_durations(ids, [0.9] * len(ids), rows_for(tokens, second), VOCAB, **kw)
    return VOCAB.decode(out), conf, n


LINE = "<clef:G2> <time:3/4> <note:C5-quarter> <note:D5-half> <note:E5-quarter> <barline>"


def test_an_overfull_measure_takes_the_value_the_model_nearly_read():
    tokens = LINE.split()  # a quarter too long
    out, conf, n = mend(tokens, {3: ("<note:D5-quarter>", 1.0), 4: ("<note:E5-eighth>", 3.0)})
    assert n == 1
    assert out[3] == "<note:D5-quarter>" and out[4] == "<note:E5-quarter>"
    assert conf[3] < 0.9  # the mended note says how unsure the model was of it
    assert Grammar().validate_tokens(out) == []


def test_a_measure_is_left_alone_when_no_likely_value_fills_it():
    tokens = LINE.split()
    out, _, n = mend(tokens, {3: ("<note:D5-quarter>", 9.0)})  # far too unlikely
    assert n == 0 and out == tokens
    out, _, n = mend(tokens, {})
    assert n == 0 and out == tokens


def test_a_full_measure_and_a_legal_short_one_are_not_touched():
    full = "<clef:G2> <time:3/4> <note:C5-half> <note:D5-quarter> <barline>".split()
    assert mend(full, {3: ("<note:D5-half>", 0.1)})[2] == 0
    pickup = "<clef:G2> <time:3/4> <note:C5-quarter> <barline>".split()
    assert mend(pickup, {2: ("<note:C5-half.>", 0.1)}, piece_start=True)[2] == 0
    before_final = "<clef:G2> <time:3/4> <note:C5-quarter> <barline:final>".split()
    assert mend(before_final, {2: ("<note:C5-half.>", 0.1)})[2] == 0


def test_a_chord_changes_value_as_one_and_the_time_comes_from_the_context():
    tokens = (
        "<clef:G2> <note:C5-half> <chord> <note:E5-half> <note:D5-half> <barline>".split()
    )  # 3/4 in force from an earlier line: a quarter too long
    second = {1: ("<note:C5-quarter>", 0.5), 3: ("<note:E5-quarter>", 0.5)}
    second[4] = ("<note:D5-quarter>", 0.4)
    out, _, n = mend(tokens, second, time="3/4")
    assert n == 1
    # Either the chord or the last note became a quarter; a chord never splits.
    assert out in (
        "<clef:G2> <note:C5-quarter> <chord> <note:E5-quarter> <note:D5-half> <barline>".split(),
        "<clef:G2> <note:C5-half> <chord> <note:E5-half> <note:D5-quarter> <barline>".split(),
    )
    assert out[4] == "<note:D5-quarter>"  # the cheaper change (0.4 nats against 1.0)


def test_measures_with_two_voices_are_left_to_the_reviewer():
    tokens = (
        "<clef:G2> <time:2/4> <note:C5-half> <note:D5-half> <voice> <rest:half> <barline>"
    ).split()
    assert mend(tokens, {3: ("<note:D5-quarter>", 0.1)})[2] == 0
