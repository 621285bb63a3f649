"""A staff's clef kept from system to system where no change is printed (inference/clefs.py)."""

from __future__ import annotations

from columns import VOCAB, column

from omr_engine.inference.clefs import share_clefs


def line(tokens: list[str], columns: bool = True):
    rows = [column(t) if columns else None for t in tokens]
    return VOCAB.encode(tokens), [0.99] * len(tokens), rows


ALTO = ["<clef:G2>", "<key:1b>", "<note:A4-half>", "<note:Bb4-half>", "<barline>"]
LOW = ["<clef:G2-8vb>", "<key:1b>", "<note:A3-half>", "<note:Bb3-half>", "<barline>"]


def test_a_system_that_alone_reads_an_octave_clef_is_read_with_the_others_clef():
    lines = [line(ALTO), line(LOW), line(ALTO)]
    out, changed = share_clefs(lines, VOCAB)
    assert changed == 1
    assert [VOCAB.decode(ids) for ids, _, _ in out] == [ALTO, ALTO, ALTO]
    ids, confs, rows = out[1]
    # the new clef carries the model's own (low) probability for it; the notes' columns
    # moved with them, so a later mend sees the moved note as sure as the read one
    assert confs[0] < 0.01 and confs[2] == 0.99
    assert rows[2][ids[2]] == lines[1][2][2][VOCAB.id("<note:A3-half>")]
    assert VOCAB.decode(out[0][0]) == ALTO and out[0][1] == lines[0][1]


def test_a_tie_between_readings_changes_nothing_but_marks_both_clefs():
    out, changed = share_clefs([line(ALTO), line(LOW, columns=False)], VOCAB)
    assert changed == 0
    assert [VOCAB.decode(ids) for ids, _, _ in out] == [ALTO, LOW]
    assert out[0][1][0] == out[1][1][0] == 0.5 and out[0][1][2] == 0.99


def test_a_printed_change_of_clef_starts_a_new_run():
    # the second line ends with a courtesy clef: the third line's clef is a real change
    courtesy = [*ALTO, "<clef:G2-8vb>"]
    lines = [line(ALTO), line(courtesy), line(LOW)]
    out, changed = share_clefs(lines, VOCAB)
    assert changed == 0 and VOCAB.decode(out[2][0]) == LOW


def test_clefs_of_different_signs_are_left_as_read():
    bass = ["<clef:F4>", "<key:1b>", "<note:A2-half>", "<note:Bb2-half>", "<barline>"]
    out, changed = share_clefs([line(ALTO), line(bass), line(ALTO)], VOCAB)
    assert changed == 0 and VOCAB.decode(out[1][0]) == bass and out[1][1][0] == 0.99


def test_a_note_that_would_leave_the_vocabulary_leaves_its_system_as_read():
    lowest = min(
        (VOCAB.info(t).pitch.octave, t)  # type: ignore[union-attr]
        for t in range(len(VOCAB))
        if VOCAB.info(t).kind == "note"
    )[1]
    high = ["<clef:G2-8va>", VOCAB.token(lowest), "<barline>"]
    plain = ["<clef:G2>", "<note:C5-whole>", "<barline>"]
    out, changed = share_clefs([line(plain), line(high), line(plain)], VOCAB)
    assert changed == 0 and VOCAB.decode(out[1][0]) == high
