"""A tuplet's end moved so that the tuplet fills its bracket (inference/tuplets.py)."""

from __future__ import annotations

import numpy as np

from omr_engine.inference.tuplets import mend_tuplets
from omr_engine.notation.grammar import Grammar
from omr_engine.notation.vocabulary import default_vocabulary

VOCAB = default_vocabulary()
HEADER = "<clef:G2> <key:0> <time:2/4>"


def mend(line: str, time: str | None = None):
    ids = VOCAB.encode(line.split())
    rows = [np.full(3, float(k), np.float32) for k in range(len(ids))]  # tagged by position
    out, conf, rows, moved = mend_tuplets(ids, [0.9] * len(ids), rows, VOCAB, time)
    return " ".join(VOCAB.decode(out)), conf, rows, moved


def flags(line: str) -> list[str]:
    return [d.message for d in Grammar(VOCAB).validate_tokens(line.split())]


def test_an_end_read_one_note_early_moves_after_the_note_that_fills_the_bracket():
    line = (
        f"{HEADER} <tuplet:3:2> <note:C5-eighth> <note:D5-eighth> <tuplet-end> "
        "<note:E5-eighth> <note:F5-quarter> <barline>"
    )
    assert any("does not fill its bracket" in m for m in flags(line))
    out, conf, rows, moved = mend(line)
    assert moved == 1
    assert out == (
        f"{HEADER} <tuplet:3:2> <note:C5-eighth> <note:D5-eighth> <note:E5-eighth> "
        "<tuplet-end> <note:F5-quarter> <barline>"
    )
    assert flags(out) == []
    end = out.split().index("<tuplet-end>")
    assert conf[end] == 0.5  # marked for a look
    assert rows[end][0] == 6.0  # the end's own column moved with it


def test_an_end_read_late_moves_back_over_chords_and_ties():
    line = (
        f"{HEADER} <tuplet:3:2> <note:C5-eighth> <chord> <note:E5-eighth> <note:D5-eighth> "
        "<note:E5-eighth> <tie> <note:E5-eighth> <tuplet-end> <note:G5-eighth> <barline>"
    )
    out, _, _, moved = mend(line)
    assert moved == 1
    assert out == (
        f"{HEADER} <tuplet:3:2> <note:C5-eighth> <chord> <note:E5-eighth> <note:D5-eighth> "
        "<note:E5-eighth> <tie> <tuplet-end> <note:E5-eighth> <note:G5-eighth> <barline>"
    )
    assert flags(out) == []


def test_a_tuplet_is_left_when_no_end_makes_the_measure_right():
    line = (
        "<clef:G2> <key:0> <time:3/4> <tuplet:3:2> <note:C5-eighth> <note:D5-eighth> "
        "<tuplet-end> <note:E5-eighth> <note:F5-quarter> <barline>"
    )
    out, _, _, moved = mend(line)
    assert (out, moved) == (line, 0)
    filled = f"{HEADER} <tuplet:3:2> <note:C5-eighth> <note:D5-eighth> <note:E5-eighth> <tuplet-end> <note:F5-quarter> <barline>"
    assert mend(filled)[3] == 0  # a tuplet that fills is not touched


def test_without_a_time_signature_the_end_moves_by_one_note_at_most():
    near = (
        "<clef:G2> <key:0> <tuplet:3:2> <note:C5-eighth> <note:D5-eighth> <tuplet-end> "
        "<note:E5-eighth> <note:F5-quarter> <barline>"
    )
    assert mend(near)[3] == 1
    far = (
        "<clef:G2> <key:0> <tuplet:3:2> <note:C5-eighth> <tuplet-end> <note:D5-eighth> "
        "<note:E5-quarter> <note:F5-quarter> <barline>"
    )
    assert mend(far)[3] == 0  # two notes away: the bracket is not moved on a guess
    # With the time known, any end that fills the bracket and the measure will do.
    out, _, _, moved = mend(far, time="2/4")
    assert moved == 1 and out.endswith("<note:F5-quarter> <tuplet-end> <barline>")
    assert flags(out.replace("<key:0>", "<key:0> <time:2/4>")) == []
