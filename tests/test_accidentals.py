"""Accidentals the reading kept or dropped against the measure's memory (inference/accidentals.py)."""

from __future__ import annotations

import numpy as np
from columns import VOCAB, column

from omr_engine.inference.accidentals import accidental_candidates, mend_accidentals


def rows_for(tokens: list[str], special: dict[int, np.ndarray] | None = None) -> list[np.ndarray]:
    return [(special or {}).get(i, column(t)) for i, t in enumerate(tokens)]


def candidates(tokens: list[str]) -> list[tuple[int, str, str]]:
    found = accidental_candidates(VOCAB.encode(tokens), rows_for(tokens), VOCAB)
    return [(c.index, c.rule, VOCAB.decode([c.other])[0]) for c in found]


# G major, read as the session-29 GPU round read a folk song: a natural, a sharp, then an F
# that forgot the sharp; the next measure's F read natural where the key gives F#
FOLK = [
    "<clef:G2>", "<key:1#>", "<time:2/4>",
    "<note:F4-eighth>", "<note:F#4-eighth>", "<note:G4-eighth>", "<note:F4-eighth>", "<barline>",
    "<note:F4-quarter>", "<note:G4-quarter>", "<barline>",
]  # fmt: skip


def test_a_note_spelt_otherwise_than_earlier_in_its_measure_or_as_the_measure_before_is_questioned():
    assert candidates(FOLK) == [
        (4, "carry", "<note:F4-eighth>"),  # a printed sharp, or a natural carried
        (6, "carry", "<note:F#4-eighth>"),  # a printed natural, or the sharp forgotten
        (8, "expire", "<note:F#4-quarter>"),  # a natural printed again, or carried over
    ]


def test_an_accidental_kept_in_its_measure_or_on_another_octave_raises_no_question():
    line = ["<clef:G2>", "<key:0>", "<note:C#5-quarter>", "<note:C#5-quarter>", "<barline>",
            "<note:C#5-half>", "<note:C#4-half>", "<barline>"]  # fmt: skip
    assert candidates(line) == [(5, "expire", "<note:C5-half>")]


def test_a_note_tied_over_the_barline_keeps_its_accidental():
    line = ["<clef:G2>", "<key:0>", "<note:C#5-half>", "<tie>", "<barline>",
            "<note:C#5-half>", "<note:C#5-half>", "<barline>"]  # fmt: skip
    assert candidates(line) == []


def test_the_key_alone_raises_no_question():
    line = ["<clef:G2>", "<key:2#>", "<note:F#4-quarter>", "<note:C#5-quarter>", "<barline>",
            "<note:F#4-quarter>", "<note:C#5-quarter>", "<barline>"]  # fmt: skip
    assert candidates(line) == []


def test_an_accidental_carried_over_a_barline_is_dropped_where_the_columns_nearly_read_so():
    line = ["<clef:G2>", "<key:0>", "<note:C#5-quarter>", "<note:C#5-quarter>", "<barline>",
            "<note:C#5-half>", "<note:D5-half>", "<barline>"]  # fmt: skip
    ids = VOCAB.encode(line)
    near = rows_for(line, {5: column("<note:C#5-half>", 4.0, nearly=("<note:C5-half>", 3.0))})
    out, confs, changed = mend_accidentals(ids, [0.9] * len(ids), near, VOCAB, margin=2.0)
    assert changed == 1
    assert VOCAB.decode(out) == line[:5] + ["<note:C5-half>"] + line[6:]
    assert confs[5] < 0.5  # the head's probability of the new spelling: shown as unsure

    far = rows_for(line, {5: column("<note:C#5-half>", 8.0, nearly=("<note:C5-half>", 1.0))})
    out, confs, changed = mend_accidentals(ids, [0.9] * len(ids), far, VOCAB, margin=2.0)
    assert changed == 0 and out == ids and confs == [0.9] * len(ids)


def test_a_spelling_questioned_inside_its_measure_is_left_unless_asked():
    # a printed natural is as common as a forgotten sharp (module docstring)
    ids = VOCAB.encode(FOLK)
    near = rows_for(FOLK, {6: column("<note:F4-eighth>", 4.0, nearly=("<note:F#4-eighth>", 3.0))})
    out, _, changed = mend_accidentals(ids, [0.9] * len(ids), near, VOCAB, margin=2.0)
    assert changed == 0 and out == ids
    out, _, changed = mend_accidentals(
        ids, [0.9] * len(ids), near, VOCAB, margin=2.0, rules=("carry", "expire")
    )
    assert changed == 1 and VOCAB.decode(out)[6] == "<note:F#4-eighth>"


def test_a_note_without_columns_is_left_as_read():
    ids = VOCAB.encode(FOLK)
    rows = [None] * len(ids)
    out, _, changed = mend_accidentals(ids, [0.9] * len(ids), rows, VOCAB, margin=50.0)
    assert changed == 0 and out == ids


def test_the_pipeline_mends_a_staff_line_this_way():
    from omr_engine.pipeline import mend_staff

    line = ["<clef:G2>", "<key:0>", "<time:2/4>", "<note:C#5-quarter>", "<note:C#5-quarter>",
            "<barline>", "<note:C#5-half>", "<barline>"]  # fmt: skip
    rows = rows_for(line, {6: column("<note:C#5-half>", 4.0, nearly=("<note:C5-half>", 3.5))})
    ids, confs, _ = mend_staff(VOCAB.encode(line), [0.9] * len(line), rows, VOCAB, None, True)
    assert VOCAB.decode(ids) == line[:6] + ["<note:C5-half>", "<barline>"]
