"""The grammar: diagnostics in a musician's words, the allowed-next mask, the training masks."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import scores

from omr_engine.notation.grammar import Grammar, format_beats, validate_score
from omr_engine.notation.music21_io import read_score
from omr_engine.notation.mutations import MUTATIONS, mutate_measure
from omr_engine.notation.score import StaffContext
from omr_engine.notation.tokens import score_to_tokens, tokens_by_measure


def messages(tokens: str, **kwargs) -> list[str]:
    return [str(d) for d in Grammar().validate_tokens(tokens.split(), **kwargs)]


def test_beats_are_said_in_the_time_signature_unit():
    from fractions import Fraction

    assert format_beats(Fraction(7, 2), "4/4") == "3 1/2 beats"
    assert format_beats(Fraction(5, 2), "6/8") == "5 eighths"
    assert format_beats(Fraction(1), "4/4") == "1 beat"


def test_an_overfull_measure_is_reported_in_beats():
    out = messages(
        "<clef:G2> <time:4/4> <note:C5-whole> <barline> "
        "<note:C5-half.> <note:D5-quarter> <note:E5-eighth> <barline> <note:C5-whole> <barline>"
    )
    assert out == ["measure 2, staff 1: 4 1/2 beats in a 4/4 measure"]


def test_a_short_measure_in_the_middle_is_reported():
    out = messages(
        "<clef:G2> <time:3/4> <note:C5-half.> <barline> <note:C5-half> <barline> "
        "<note:C5-half.> <barline>"
    )
    assert out == ["measure 2, staff 1: 2 beats in a 3/4 measure"]


def test_pickup_final_and_repeat_split_measures_are_legal():
    assert not messages(
        "<clef:G2> <time:3/4> <note:C5-quarter> <barline> <note:C5-half.> <barline> "
        "<note:C5-half> <barline:repeat-end> <repeat-start> <note:C5-quarter> <barline> "
        "<note:C5-half.> <barline> <note:C5-half> <barline:final>"
    )


def test_a_triplet_with_two_notes_is_reported():
    out = messages(
        "<clef:G2> <time:2/4> <tuplet:3:2> <note:C5-eighth> <note:D5-eighth> <tuplet-end> "
        "<note:C5-quarter> <barline> <note:C5-half> <barline>"
    )
    assert "a 3:2 tuplet holding 2 notes does not fill its bracket" in out[0]


def test_a_complete_triplet_with_mixed_values_is_legal():
    assert not messages(
        "<clef:G2> <time:2/4> <tuplet:3:2> <note:C5-quarter> <note:D5-eighth> <tuplet-end> "
        "<note:C5-quarter> <barline> <note:C5-half> <barline>"
    )


def test_a_tie_between_different_pitches_is_reported_even_across_a_barline():
    out = messages(
        "<clef:G2> <time:2/4> <note:C5-half> <tie> <barline> <note:D5-half> <barline> "
        "<note:C5-half> <barline>"
    )
    assert out == ["measure 2, staff 1: tie between different pitches (C5 to D5)"]


def test_a_chord_of_different_durations_is_reported():
    out = messages(
        "<clef:G2> <time:2/4> <note:C5-half> <chord> <note:E5-quarter> <barline> "
        "<note:C5-half> <barline>"
    )
    assert any("chord notes with different durations" in m for m in out)


def test_staves_of_a_pickup_must_agree():
    out = messages(
        "<clef:G2> <time:4/4> <note:C5-quarter> <staff> <clef:F4> <time:4/4> <note:C3-half> <barline> "
        "<note:C5-whole> <staff> <note:C3-whole> <barline>"
    )
    assert out == ["measure 1: the staves of this measure differ in length (1 beat and 2 beats)"]


def test_a_measure_with_too_few_staves_is_reported():
    out = messages(
        "<clef:G2> <time:2/4> <note:C5-half> <staff> <clef:F4> <note:C3-half> <barline> "
        "<note:C5-half> <barline>"
    )
    assert out == ["measure 2: the measure has 1 staves, the system has 2"]


def test_a_barline_inside_a_tuplet_is_reported():
    out = messages("<clef:G2> <time:2/4> <note:C5-quarter> <tuplet:3:2> <note:C5-eighth> <barline>")
    assert any("ends inside a 3:2 tuplet" in m for m in out)


def test_the_time_in_force_from_an_earlier_line_is_used():
    ctx = [StaffContext(clef="G2", key=0, time="3/4")]
    out = messages(
        "<clef:G2> <note:C5-half.> <barline> <note:C5-whole> <barline> <note:C5-half.> <barline>",
        contexts=ctx,
        piece_start=False,
    )
    assert out == ["measure 2, staff 1: 4 beats in a 3/4 measure"]


def test_a_line_must_start_with_a_clef():
    state = Grammar().start()
    vocab = state.grammar.vocab
    mask = state.allowed_mask()
    assert mask[vocab.id("<clef:G2>")]
    assert not mask[vocab.id("<note:C5-quarter>")]
    assert not mask[vocab.eos_id]


def test_mask_after_chord_allows_only_higher_notes_of_the_same_duration():
    g = Grammar()
    state = g.start()
    for t in "<clef:G2> <note:E4-quarter> <chord>".split():
        state.advance(g.vocab.id(t))
    mask = state.allowed_mask()
    assert mask[g.vocab.id("<note:G4-quarter>")]
    assert not mask[g.vocab.id("<note:G4-half>")]
    assert not mask[g.vocab.id("<note:C4-quarter>")]
    assert not mask[g.vocab.id("<barline>")]


def test_mask_forbids_a_barline_inside_a_tuplet_and_allows_it_after():
    g = Grammar()
    state = g.start()
    for t in "<clef:G2> <tuplet:3:2> <note:C5-eighth>".split():
        state.advance(g.vocab.id(t))
    assert not state.allowed_mask()[g.vocab.id("<barline>")]
    assert state.allowed_mask()[g.vocab.id("<tuplet-end>")]
    state.advance(g.vocab.id("<tuplet-end>"))
    assert state.allowed_mask()[g.vocab.id("<barline>")]


def test_enforced_durations_forbid_notes_that_overfill_the_voice():
    g = Grammar(enforce_durations=True)
    state = g.start()
    for t in "<clef:G2> <time:3/4> <note:C5-half>".split():
        state.advance(g.vocab.id(t))
    mask = state.allowed_mask()
    assert mask[g.vocab.id("<note:D5-quarter>")]
    assert not mask[g.vocab.id("<note:D5-half>")]


def test_copies_of_a_state_evolve_independently():
    g = Grammar()
    a = g.start()
    a.advance(g.vocab.id("<clef:G2>"))
    b = a.copy()
    b.advance(g.vocab.id("<tuplet:3:2>"))
    assert a.allowed_mask()[g.vocab.id("<mrest>")]
    assert not b.allowed_mask()[g.vocab.id("<mrest>")]


def test_a_bach_chorale_is_valid_and_every_true_token_is_allowed(corpus_path):
    score, _ = read_score(corpus_path("bach/bwv66.6"))
    assert validate_score(score) == []
    g = Grammar()
    state = g.start(piece_start=True)
    for token in score_to_tokens(score):
        assert state.allowed_mask()[g.vocab.id(token)], token
        state.advance(g.vocab.id(token))
    assert state.allowed_mask()[g.vocab.eos_id]


@given(scores())
@settings(max_examples=80)
def test_the_mask_never_blocks_a_canonical_sequence(score):
    """Constrained decoding can always produce the canonical tokens of any score."""
    g = Grammar()
    state = g.start(piece_start=True)
    for token in score_to_tokens(score):
        assert state.allowed_mask()[g.vocab.id(token)], token
        state.advance(g.vocab.id(token))


def test_batch_masks_give_the_mask_after_each_true_prefix():
    g = Grammar()
    seqs = [
        g.vocab.encode("<clef:G2> <note:C5-quarter> <chord>".split()),
        g.vocab.encode("<clef:F4> <tuplet:3:2>".split()),
    ]
    class_ids, class_masks = g.batch_masks(seqs)
    assert class_ids.shape == (2, 3) and class_masks.shape[1] == len(g.vocab)
    state = g.start()
    for t, token in enumerate(seqs[0]):
        state.advance(token)
        assert np.array_equal(class_masks[class_ids[0, t]], state.allowed_mask())
    assert class_masks[class_ids[1, 2]].all()  # padding allows everything


MUTATION_SET = ["bach/bwv66.6", "bach/bwv1.6", "mozart/k80/movement1"]


@pytest.mark.slow
def test_the_grammar_flags_at_least_95_percent_of_mutated_measures(corpus_path):
    rng = random.Random(7)
    grammar = Grammar()
    tried = caught = 0
    for name in MUTATION_SET:
        score, _ = read_score(corpus_path(name))
        measures = tokens_by_measure(score)
        for i in rng.sample(range(len(measures)), min(15, len(measures))):
            bad = mutate_measure(measures[i], MUTATIONS[tried % 3], rng)
            if bad is None:
                continue
            seq = [t for j, m in enumerate(measures) for t in (bad if j == i else m)]
            tried += 1
            caught += i in {d.measure for d in grammar.validate_tokens(seq)}
    assert tried >= 40
    assert caught / tried >= 0.95


def test_a_measure_split_in_two_at_a_phrase_end_is_legal_but_a_lone_short_one_is_not():
    out = messages(
        "<clef:G2> <time:4/4> <note:C5-whole> <barline> <note:C5-half.> <barline> "
        "<note:C5-quarter> <barline> <note:C5-whole> <barline> <note:C5-half> <barline> "
        "<note:C5-whole> <barline>"
    )
    assert out == ["measure 5, staff 1: 2 beats in a 4/4 measure"]


def test_the_last_measure_may_be_short_even_without_a_final_barline():
    assert not messages("<clef:G2> <time:3/4> <note:C5-half.> <barline> <note:C5-half> <barline>")


def test_an_empty_measure_or_staff_is_called_what_it_is():
    g = Grammar()
    empty_measure = g.validate_tokens("<clef:G2> <time:4/4> <barline>".split())
    assert [d.message for d in empty_measure] == [
        "an empty measure: no notes or rests before the barline"
    ]
    empty_staff = g.validate_tokens(
        "<clef:G2> <time:4/4> <note:C5-whole> <staff> <clef:F4> <barline>".split()
    )
    assert [(d.message, d.staff) for d in empty_staff] == [
        ("a staff without notes or rests in this measure", 1)
    ]
