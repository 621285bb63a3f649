"""Ties between different pitches mended from the model's second choices (inference/ties.py)."""

from __future__ import annotations

import numpy as np
from columns import VOCAB, column

from omr_engine.inference.ties import mend_ties, mend_ties_across
from omr_engine.notation.grammar import Grammar
from omr_engine.notation.score import StaffContext


def mend(tokens: list[str], rows: dict[int, np.ndarray] | None = None):
    ids = VOCAB.encode(tokens)
    logp = [(rows or {}).get(i, column(t)) for i, t in enumerate(tokens)]
    out, confs, kept, count = mend_ties(ids, [0.9] * len(ids), logp, VOCAB)
    assert len(out) == len(confs) == len(kept)
    return VOCAB.decode(out), confs, count


def flags(tokens: list[str]) -> list[str]:
    grammar = Grammar(VOCAB)
    return [d.message for d in grammar.validate_tokens(tokens, [StaffContext("G2", 0, "4/4")])]


LINE = ["<clef:G2>", "<note:C5-half>", "<tie>", "<note:D5-half>", "<barline>"]


def test_an_unsure_tie_to_another_pitch_is_dropped():
    assert flags(LINE)
    out, _, count = mend(LINE, {2: column("<tie>", 1.0)})
    assert out == ["<clef:G2>", "<note:C5-half>", "<note:D5-half>", "<barline>"]
    assert count == 1 and not flags(out)


def test_a_sure_tie_makes_the_next_note_the_pitch_the_model_nearly_read():
    rows = {3: column("<note:D5-half>", 3.0, nearly=("<note:C5-half>", 2.0))}
    out, confs, count = mend(LINE, rows)
    assert out[3] == "<note:C5-half>" and count == 1
    assert confs[3] < 0.5  # the model's probability of its new pitch: shown as unsure
    assert not flags(out)


def test_ties_to_the_same_pitch_chords_and_rests_are_left_alone():
    same = ["<clef:G2>", "<note:C5-half>", "<tie>", "<note:C5-half>", "<barline>"]
    assert mend(same) == (same, [0.9] * 5, 0)
    chord = ["<clef:G2>", "<note:C5-half>", "<tie>", "<note:D5-half>", "<chord>", "<note:F5-half>"]
    assert mend([*chord, "<barline>"])[2] == 0
    # a tie across the barline into the next measure's first note is mended there
    across = ["<clef:G2>", "<note:C5-whole>", "<tie>", "<barline>", "<note:E5-whole>", "<barline>"]
    out, _, count = mend(across, {2: column("<tie>", 0.5)})
    assert count == 1 and "<tie>" not in out
    # in another voice the next note is not the tied one's continuation
    voices = ["<clef:G2>", "<note:C5-whole>", "<tie>", "<voice>", "<note:E4-whole>", "<barline>"]
    assert mend(voices)[2] == 0


def test_a_tie_from_one_system_to_the_next_is_mended_across_the_break():
    first = ["<clef:G2>", "<note:E5-whole>", "<barline>", "<note:C5-whole>", "<tie>", "<barline>"]
    second = ["<clef:G2>", "<note:D5-half>", "<note:E5-half>", "<barline>"]
    rows = {len(first) + 1: column("<note:D5-half>", 3.0, nearly=("<note:C5-half>", 2.0))}

    def lines(tie_margin: float):
        out = []
        for offset, tokens in ((0, first), (len(first), second)):
            logp = [
                rows.get(offset + i, column(t, tie_margin if t == "<tie>" else 8.0))
                for i, t in enumerate(tokens)
            ]
            out.append((VOCAB.encode(tokens), [0.9] * len(tokens), logp))
        return out

    # alone, neither line breaks the grammar; across the break the tie joins C5 to D5
    assert mend_ties(*lines(8.0)[1], VOCAB)[3] == 0
    (a, b), count = mend_ties_across(lines(8.0), VOCAB)
    assert count == 1 and VOCAB.decode(b[0])[1] == "<note:C5-half>" and b[1][1] < 0.5
    assert VOCAB.decode(a[0]) == first
    (a, b), count = mend_ties_across(lines(1.0), VOCAB)  # an unsure tie is dropped instead
    assert count == 1 and "<tie>" not in VOCAB.decode(a[0]) and VOCAB.decode(b[0]) == second
    assert len(a[0]) == len(a[1]) == len(a[2]) == len(first) - 1
