"""A measure the grammar still flags is read again from the model's columns under the
whole grammar, note values included, and replaced only by a reading that passes."""

from __future__ import annotations

import numpy as np

from omr_engine.inference.decoding import Columns, ctc_decode
from omr_engine.inference.reread import reread_measures
from omr_engine.notation.grammar import Grammar
from omr_engine.notation.score import StaffContext
from omr_engine.notation.vocabulary import default_vocabulary
from omr_engine.pipeline import mend_staff

VOCAB = default_vocabulary()
BLANK = len(VOCAB)


def logits_for(columns: list[dict[str, float]]) -> np.ndarray:
    """(C, V+1) log-probabilities: each column's given tokens with their probabilities,
    the blank with what is left, every other token all but impossible."""
    out = np.full((len(columns), BLANK + 1), np.log(1e-9), np.float32)
    for t, column in enumerate(columns):
        for token, p in column.items():
            out[t, VOCAB.id(token)] = np.log(p)
        out[t, BLANK] = np.log(max(1.0 - sum(column.values()), 1e-9))
    return out


def read(tokens: list[dict[str, float]]) -> list[dict[str, float]]:
    """Columns that read each entry's tokens, a blank column after each."""
    columns = []
    for entry in tokens:
        columns += [entry, {}]
    return columns


def reread(columns: list[dict[str, float]], spans, time="4/4", **kw):
    """Best path over the columns, then re-read: (tokens before, tokens after, replaced)."""
    result = ctc_decode(logits_for(columns), token_logp=True)
    ids, confs, rows, n = reread_measures(
        result.ids,
        result.token_confidences,
        result.meta["token_logp"],
        VOCAB,
        result.meta["columns"],
        spans,
        time,
        **kw,
    )
    assert len(ids) == len(confs) == len(rows)
    return VOCAB.decode(result.ids), VOCAB.decode(ids), confs, n


def flags(tokens: list[str], time: str = "4/4") -> list:
    return Grammar().validate_tokens(tokens, [StaffContext("G2", 0, time)], piece_start=False)


SURE = 0.99
OPENING = [{"<clef:G2>": SURE}, {"<time:4/4>": SURE}]


def test_a_note_read_too_many_is_dropped_where_the_model_was_unsure_of_it():
    columns = read(
        [
            *OPENING,
            {"<note:C5-quarter>": SURE},
            {"<note:D5-quarter>": SURE},
            {"<note:E5-quarter>": 0.6},  # a smudge read as a note
            {"<note:F5-quarter>": SURE},
            {"<note:G5-quarter>": SURE},
            {"<barline>": SURE},
        ]
    )
    before, after, confs, n = reread(columns, [(0.0, 1.0)])
    assert flags(before) and n == 1
    assert after == [
        "<clef:G2>",
        "<time:4/4>",
        "<note:C5-quarter>",
        "<note:D5-quarter>",
        "<note:F5-quarter>",
        "<note:G5-quarter>",
        "<barline>",
    ]
    assert flags(after) == []
    assert min(confs) > 0.9  # what is left is what the model was sure of


def test_a_value_is_read_again_with_the_one_the_model_nearly_read():
    columns = read(
        [
            *OPENING,
            {"<note:C5-half>": SURE},
            {"<note:D5-half>": 0.55, "<note:D5-quarter>": 0.44},
            {"<note:E5-quarter>": SURE},
            {"<barline>": SURE},
        ]
    )
    before, after, confs, n = reread(columns, [(0.0, 1.0)])
    assert before[3] == "<note:D5-half>" and n == 1  # five beats
    assert after[3] == "<note:D5-quarter>" and flags(after) == []
    assert confs[3] < 0.5  # the forced value is shown as unsure


def test_only_flagged_measures_are_read_again_and_a_hopeless_one_is_left_flagged():
    good = [{"<note:C5-whole>": SURE}, {"<barline>": SURE}]
    hopeless = [{"<note:D5-half>": SURE}, {"<barline>": SURE}]  # nothing else was read
    columns = read([*OPENING, *hopeless, *good])
    half = len(read([*OPENING, *hopeless])) / len(columns)
    before, after, _, n = reread(columns, [(0.0, half), (half, 1.0)])
    assert n == 0 and after == before
    assert {d.measure for d in flags(after)} == {0}


def test_a_reading_that_fits_its_measure_but_overfills_the_rest_of_the_line_is_refused():
    # a line that starts short (the piece's pickup was on the line before); re-read alone,
    # its first measure would pass with the 2/4 the model all but ruled out, and every
    # 4/4 measure after it would then be flagged instead
    first = [{"<note:C5-quarter>": SURE}, {"<note:D5-quarter>": SURE}, {"<barline>": SURE}]
    second = [{"<note:E5-whole>": SURE}, {"<barline>": SURE}]
    opening = [{"<clef:G2>": SURE}, {"<time:4/4>": 0.9, "<time:2/4>": 0.09}]
    columns = read([*opening, *first, *second, *second])
    cut = len(read([*opening, *first])) / len(columns)
    step = (1.0 - cut) / 2
    spans = [(0.0, cut), (cut, cut + step), (cut + step, 1.0)]
    before, after, _, n = reread(columns, spans)
    assert before[1] == "<time:4/4>"
    assert n == 0 and after == before
    assert {d.measure for d in flags(after)} == {0}


def test_a_short_last_measure_is_read_again_as_full_when_the_other_staves_fill_it():
    # a line may end on a short measure, so its grammar passes three beats of 4/4 there;
    # the system's other staves fill the measure, and the model nearly read a fourth note
    columns = read(
        [
            *OPENING,
            {"<note:C5-whole>": SURE},
            {"<barline>": SURE},
            {"<note:D5-half>": SURE},
            {"<note:E5-quarter>": SURE},
            {"<note:F5-quarter>": 0.3},
            {"<barline>": SURE},
        ]
    )
    cut = len(read([*OPENING, {"<note:C5-whole>": SURE}, {"<barline>": SURE}])) / len(columns)
    spans = [(0.0, cut), (cut, 1.0)]
    before, after, _, n = reread(columns, spans)
    assert "<note:F5-quarter>" not in before and n == 0 and after == before
    _, after, _, n = reread(columns, spans, short={1})
    assert n == 1 and after[-2:] == ["<note:F5-quarter>", "<barline>"]


def test_a_line_that_passes_is_returned_as_it_was():
    columns = read([*OPENING, {"<note:C5-whole>": SURE}, {"<barline>": SURE}])
    before, after, _, n = reread(columns, [(0.0, 1.0)])
    assert n == 0 and after == before and flags(after) == []


def test_voices_read_in_onset_order_come_back_canonical():
    columns = read(
        [
            *OPENING,
            {"<note:C5-half>": SURE},
            {"<voice:2>": SURE},
            {"<note:C4-half>": SURE},
            {"<voice:1>": SURE},
            {"<note:D5-half>": SURE},
            {"<voice:2>": SURE},
            {"<note:D4-half>": SURE},
            {"<note:E4-quarter>": 0.6},  # one too many in voice 2
            {"<barline>": SURE},
        ]
    )
    _, after, _, n = reread(columns, [(0.0, 1.0)])
    assert n == 1
    assert after == [
        "<clef:G2>",
        "<time:4/4>",
        "<note:C5-half>",
        "<note:D5-half>",
        "<voice>",
        "<note:C4-half>",
        "<note:D4-half>",
        "<barline>",
    ]


def test_the_strict_grammar_counts_tuplet_notes_at_their_ratio():
    strict = Grammar(enforce_durations=True)
    state = strict.start([StaffContext("G2", 0, "2/4")])
    for token in ["<clef:G2>", "<note:C5-quarter>", "<tuplet:3:2>", "<note:D5-eighth>"]:
        state.advance(VOCAB.id(token))
    allowed = state.allowed_mask()
    # one beat left: the bracket holds three eighths, so a quarter (two of them) still fits
    assert allowed[VOCAB.id("<note:E5-quarter>")]
    assert not allowed[VOCAB.id("<note:E5-half>")]
    assert not allowed[VOCAB.id("<tuplet-end>")]  # one eighth does not fill a 3:2 bracket
    state.advance(VOCAB.id("<note:E5-quarter>"))
    allowed = state.allowed_mask()
    assert allowed[VOCAB.id("<tuplet-end>")]
    assert not allowed[VOCAB.id("<note:F5-eighth>")]  # the measure is full


def test_mend_staff_rereads_only_when_given_the_columns():
    columns = read(
        [
            *OPENING,
            {"<note:C5-whole>": SURE},
            {"<note:D5-quarter>": 0.6},
            {"<barline>": SURE},
        ]
    )
    result = ctc_decode(logits_for(columns), token_logp=True)
    args = (result.ids, result.token_confidences, result.meta["token_logp"], VOCAB, "4/4", False)
    plain, _, _ = mend_staff(*args)
    assert flags(VOCAB.decode(plain))
    read_again, _, rows = mend_staff(*args, reread=(result.meta["columns"], [(0.0, 1.0)]))
    assert flags(VOCAB.decode(read_again)) == []
    assert len(rows) == len(read_again)


def test_columns_keep_each_columns_likeliest_tokens_and_the_blank():
    logp = np.log(np.array([[0.1, 0.6, 0.05, 0.25], [0.2, 0.1, 0.1, 0.6]], np.float32))
    columns = Columns.from_logp(logp, top=2)
    assert columns.ids.tolist() == [[1, 0], [0, 1]] or columns.ids.tolist() == [[1, 0], [0, 2]]
    assert np.allclose(columns.blank, np.log([0.25, 0.6]))
    row = columns.row(0, 4)
    assert np.isclose(row[1], np.log(0.6)) and np.isclose(row[3], np.log(0.25))
    assert row[2] == np.float32(-30.0)
