"""A free CTC reading edited to follow the grammar (omr_engine.inference.structure)."""

from __future__ import annotations

import numpy as np
import pytest

from omr_engine.inference.decoding import ctc_decode
from omr_engine.inference.structure import follow_grammar
from omr_engine.notation.grammar import Grammar
from omr_engine.notation.score import StaffContext
from omr_engine.notation.vocabulary import default_vocabulary

VOCAB = default_vocabulary()
GRAMMAR = Grammar(VOCAB)
BLANK = len(VOCAB)


def columns(tokens: list[tuple[str, float]], second: dict[int, tuple[str, float]] | None = None):
    """CTC logits (C, V+1) that spell ``tokens``, each over two columns with a blank after
    it; a token's number is how much likelier it is than blank at its columns, and
    ``second[i]`` names the token nearly read in place of token ``i`` and its margin."""
    rows = []
    for i, (token, margin) in enumerate(tokens):
        for _ in range(2):
            row = np.full(BLANK + 1, -12.0)
            row[BLANK] = 0.0
            row[VOCAB.id(token)] = margin
            if second and i in second:
                alt, alt_margin = second[i]
                row[VOCAB.id(alt)] = alt_margin
            rows.append(row)
        gap = np.full(BLANK + 1, -12.0)
        gap[BLANK] = 6.0
        rows.append(gap)
    return np.stack(rows)


def start():
    return GRAMMAR.start([StaffContext("G2", 0, "4/4")])


def follows(ids: list[int]) -> bool:
    state = start()
    for t in ids:
        if not state.allowed_mask()[t]:
            return False
        state.advance(t)
    return True


def read(tokens, second=None):
    free = ctc_decode(columns(tokens, second), token_logp=True)
    return free, follow_grammar(free, start)


def test_a_reading_that_follows_the_grammar_is_kept_as_read():
    tokens = [("<clef:G2>", 8), ("<note:C5-half>", 8), ("<note:D5-half>", 8), ("<barline>", 8)]
    free, followed = read(tokens)
    assert follows(free.ids)
    assert followed.ids == free.ids
    assert followed.meta["edit_cost"] == 0
    assert followed.positions == free.positions


def test_an_unsure_chord_mark_is_dropped_rather_than_the_barline_after_it():
    tokens = [
        ("<clef:G2>", 8),
        ("<note:C5-half>", 8),
        ("<chord>", 1),  # the model half saw a chord mark, but no second note
        ("<barline>", 8),
        ("<note:E5-whole>", 8),
        ("<barline>", 8),
    ]
    free, followed = read(tokens)
    assert not follows(free.ids)
    assert VOCAB.decode(followed.ids) == [
        "<clef:G2>",
        "<note:C5-half>",
        "<barline>",
        "<note:E5-whole>",
        "<barline>",
    ]
    # masking column by column commits to the chord mark and loses the barline instead
    grammar_columns = ctc_decode(columns(tokens), grammar=start())
    assert VOCAB.decode(grammar_columns.ids).count("<barline>") < 2
    assert len(followed.positions) == len(followed.ids)
    assert len(followed.meta["token_logp"]) == len(followed.ids)


def test_a_token_the_grammar_forbids_becomes_what_the_model_nearly_read():
    # a chord's second note must have the first one's value: the model's second choice has
    tokens = [
        ("<clef:G2>", 8),
        ("<note:C5-half>", 8),
        ("<chord>", 8),
        ("<note:E5-quarter>", 3),
        ("<barline>", 8),
    ]
    free, followed = read(tokens, second={3: ("<note:E5-half>", 2.5)})
    assert VOCAB.decode(followed.ids)[3] == "<note:E5-half>"
    assert followed.token_confidences[3] < free.token_confidences[3]
    assert follows(followed.ids)


def test_a_tuplet_left_open_is_closed_where_the_grammar_needs_it_closed():
    tokens = [
        ("<clef:G2>", 8),
        ("<tuplet:3:2>", 8),
        ("<note:C5-eighth>", 8),
        ("<note:D5-eighth>", 8),
        ("<note:E5-eighth>", 8),
        ("<note:F5-quarter.>", 8),
        ("<barline>", 8),
    ]
    free, followed = read(tokens)
    assert "<tuplet-end>" not in VOCAB.decode(free.ids)
    out = VOCAB.decode(followed.ids)
    assert out[-2:] == ["<tuplet-end>", "<barline>"]
    assert followed.meta["token_logp"][-2] is None  # not read: added
    assert followed.token_confidences[-2] < 0.01
    assert followed.positions[-2] == followed.positions[-3]


@pytest.mark.parametrize("seed", range(12))
def test_noise_read_freely_always_comes_out_following_the_grammar(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (60, BLANK + 1))
    free = ctc_decode(logits, token_logp=True)
    followed = follow_grammar(free, start)
    assert follows(followed.ids)
    assert len(followed.ids) == len(followed.token_confidences) == len(followed.positions)


def test_a_copied_grammar_state_does_not_share_what_it_changes():
    ids = VOCAB.encode(["<clef:G2>", "<time:3/4>", "<tuplet:3:2>", "<note:C5-eighth>"])
    state = GRAMMAR.start()
    for t in ids:
        state.advance(t)
    clone = state.copy()
    rest = VOCAB.encode(["<note:D5-eighth>", "<note:E5-eighth>", "<tuplet-end>", "<barline>"])
    for t in rest:
        clone.advance(t)
    assert clone.measure == 1 and state.measure == 0
    assert state.tuplet is not None and state.tuplet.count == 1
    fresh = GRAMMAR.start()
    for t in ids:
        fresh.advance(t)
    assert state.signature() == fresh.signature()
    assert state.contexts == fresh.contexts


def test_a_measure_read_empty_gets_a_whole_measure_rest_and_keeps_its_barline():
    # the model saw the barlines of a measure of rest but not the rest
    tokens = [("<clef:G2>", 8), ("<barline>", 8), ("<note:C5-whole>", 8), ("<barline>", 8)]
    free, followed = read(tokens)
    assert VOCAB.decode(free.ids).count("<barline>") == 2
    assert VOCAB.decode(followed.ids) == [
        "<clef:G2>",
        "<mrest>",
        "<barline>",
        "<note:C5-whole>",
        "<barline>",
    ]
