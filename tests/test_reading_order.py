from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from strategies import scores

from omr_engine.inference.decoding import Result
from omr_engine.inference.voices import canonical_reading
from omr_engine.notation.grammar import Grammar
from omr_engine.notation.reading_order import from_onset_order, to_onset_order
from omr_engine.notation.tokens import score_to_tokens
from omr_engine.notation.vocabulary import Vocabulary, default_vocabulary


def test_two_voices_are_merged_by_where_their_events_start():
    canonical = (
        "<clef:G2> <time:2/4> <note:E5-quarter> <note:D5-quarter> "
        "<voice> <note:C4-eighth> <note:D4-eighth> <note:E4-quarter> <barline>"
    ).split()
    onset = (
        "<clef:G2> <time:2/4> <note:E5-quarter> <voice:2> <note:C4-eighth> <note:D4-eighth> "
        "<voice:1> <note:D5-quarter> <voice:2> <note:E4-quarter> <barline>"
    ).split()
    assert to_onset_order(canonical) == onset
    assert from_onset_order(onset) == canonical


def test_a_tuplet_moves_as_one_unit_and_chords_ties_and_grace_notes_stay_with_their_note():
    canonical = (
        "<time:2/4> <tuplet:3:2> <note:C5-eighth> <note:D5-eighth> <note:E5-eighth> <tuplet-end> "
        "<grace> <note:A5-16th> <note:G5-quarter> <tie> <chord> <note:B5-quarter> "
        "<voice> <note:C4-eighth> <note:D4-eighth> <note:E4-eighth> <note:F4-eighth> <barline>"
    ).split()
    onset = to_onset_order(canonical)
    assert (
        onset
        == (
            "<time:2/4> <tuplet:3:2> <note:C5-eighth> <note:D5-eighth> <note:E5-eighth> "
            "<tuplet-end> <voice:2> <note:C4-eighth> <note:D4-eighth> "
            "<voice:1> <grace> <note:A5-16th> <note:G5-quarter> <tie> <chord> <note:B5-quarter> "
            "<voice:2> <note:E4-eighth> <note:F4-eighth> <barline>"
        ).split()
    )
    assert from_onset_order(onset) == canonical


def test_measures_without_voices_and_canonical_readings_are_left_as_they_are():
    plain = "<clef:F4> <note:C3-half> <chord> <note:E3-half> <staff> <mrest> <barline>".split()
    assert to_onset_order(plain) == plain
    # a canonical reading, even a malformed one, is not touched on the way back
    odd = "<note:C5-half> <voice> <barline:final>".split()
    assert from_onset_order(odd) == odd


@given(scores())
@settings(max_examples=150)
def test_onset_order_turns_back_into_the_canonical_tokens(score):
    tokens = score_to_tokens(score)
    assert from_onset_order(to_onset_order(tokens)) == tokens


@given(scores())
@settings(max_examples=80)
def test_the_grammar_reads_onset_order_as_it_reads_canonical_order(score):
    grammar = Grammar()
    vocab = grammar.vocab
    tokens = score_to_tokens(score)
    onset = to_onset_order(tokens)
    state = grammar.start(piece_start=True)
    for token in onset:  # every true next token is allowed (the grammar loss relies on it)
        assert state.allowed_mask()[vocab.id(token)], token
        state.advance(vocab.id(token))
    # the same findings (in the order the events are met)
    said = sorted(str(d) for d in grammar.validate_tokens(tokens))
    assert sorted(str(d) for d in grammar.validate_tokens(onset)) == said


def test_a_voice_switch_is_allowed_between_events_only():
    grammar = Grammar()
    vocab = grammar.vocab
    state = grammar.start()
    switch = vocab.id("<voice:2>")
    for token in "<clef:G2> <time:2/4> <note:C5-quarter> <chord>".split():
        state.advance(vocab.id(token))
    assert not state.allowed_mask()[switch]  # a chord note must come first
    state.advance(vocab.id("<note:E5-quarter>"))
    assert state.allowed_mask()[switch]
    assert not state.allowed_mask()[vocab.id("<voice:1>")]  # already in voice 1
    state.advance(vocab.id("<tuplet:3:2>"))
    state.advance(vocab.id("<note:C5-eighth>"))
    assert not state.allowed_mask()[switch]  # not inside a tuplet


def test_an_overfull_second_voice_is_reported_in_onset_order_too():
    onset = (
        "<clef:G2> <time:2/4> <note:E5-quarter> <voice:2> <note:C4-half> <voice:1> "
        "<note:D5-quarter> <voice:2> <note:E4-quarter> <barline>"
    ).split()
    said = [str(d) for d in Grammar().validate_tokens(onset)]
    assert said == [str(d) for d in Grammar().validate_tokens(from_onset_order(onset))]
    assert any("3 beats in a 2/4 measure" in s for s in said)


def test_a_reading_comes_back_canonical_with_its_confidences_positions_and_columns():
    vocab = default_vocabulary()
    onset = "<note:E5-quarter> <voice:2> <note:C4-half> <voice:1> <note:D5-quarter> <barline>"
    ids = vocab.encode(onset.split())
    rows = [np.full(4, float(k)) for k in range(len(ids))]
    result = Result(
        ids,
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
        meta={"token_logp": rows},
        positions=[0.1, 0.2, 0.25, 0.5, 0.55, 0.9],
    )
    out = canonical_reading(result, vocab)
    assert vocab.decode(out.ids) == (
        "<note:E5-quarter> <note:D5-quarter> <voice> <note:C4-half> <barline>".split()
    )
    assert out.token_confidences == [0.9, 0.5, 0.8, 0.7, 0.4]
    assert out.positions == [0.1, 0.55, 0.2, 0.25, 0.9]
    assert [float(r[0]) for r in out.meta["token_logp"]] == [0, 4, 1, 2, 5]
    # a model with the vocabulary of before the switches reads as it did
    old = Vocabulary([t for t in vocab.tokens if not t.startswith("<voice:")])
    plain = Result(old.encode("<note:E5-quarter> <barline>".split()), [0.9, 0.8])
    assert canonical_reading(plain, old) is plain
