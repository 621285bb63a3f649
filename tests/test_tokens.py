"""Tokens <-> Score: every token kind, the canonical order, line starts, and round-trip properties."""

from __future__ import annotations

import warnings

import music21
import pytest
from hypothesis import given, settings
from strategies import scores

from omr_engine.notation.music21_io import from_music21, musicxml_text
from omr_engine.notation.score import Note, Rest, Tuplet
from omr_engine.notation.symbols import Duration, Pitch
from omr_engine.notation.tokens import score_to_tokens, tokens_to_score, without_ties_off_the_end
from omr_engine.notation.vocabulary import KINDS, Vocabulary, default_vocabulary

EVERY_KIND = [
    "<repeat-start>",
    "<volta:1>",
    "<clef:G2>",
    "<key:2#>",
    "<time:3/4>",
    "<grace>",
    "<note:E5-16th>",
    "<note:F#5-quarter.>",
    "<tie>",
    "<chord>",
    "<note:A5-quarter.>",
    "<note:F#5-eighth>",
    "<voice>",
    "<rest:quarter>",
    "<tuplet:3:2>",
    "<note:D4-eighth>",
    "<rest:eighth>",
    "<note:D4-eighth>",
    "<tuplet-end>",
    "<rest:quarter>",
    "<staff>",
    "<clef:F4>",
    "<key:2#>",
    "<time:3/4>",
    "<mrest>",
    "<barline:repeat-end>",
    "<multirest:4>",
    "<staff>",
    "<multirest:4>",
    "<barline:double>",
    "<note:D5-half>",
    "<clef:C3>",
    "<note:D4-quarter>",
    "<staff>",
    "<rest:half.>",
    "<barline:final>",
]


def test_every_token_kind_appears_in_the_reference_sequence():
    vocab = default_vocabulary()
    kinds = {vocab.info(vocab.id(t)).kind for t in EVERY_KIND}
    # <voice:N> belongs to the onset reading order only (reading_order.py)
    assert kinds == set(KINDS) - {"special", "voice_to"}


def test_a_measure_in_onset_order_builds_the_same_score_as_its_canonical_tokens():
    onset = (
        "<clef:G2> <time:2/4> <note:E5-quarter> <voice:2> <note:C4-half> <voice:1> "
        "<note:D5-quarter> <barline>"
    ).split()
    canonical = (
        "<clef:G2> <time:2/4> <note:E5-quarter> <note:D5-quarter> <voice> <note:C4-half> <barline>"
    )
    assert score_to_tokens(tokens_to_score(onset)) == canonical.split()


def test_every_token_kind_survives_tokens_to_score_and_back():
    score = tokens_to_score(EVERY_KIND)
    assert score_to_tokens(score) == EVERY_KIND


def test_tokens_build_the_expected_events():
    score = tokens_to_score(EVERY_KIND)
    first = score.measures[0]
    assert first.repeat_start and first.volta == 1 and first.barline == "repeat-end"
    top = first.staves[0]
    assert (top.clef, top.key, top.time) == ("G2", 2, "3/4")
    grace, chord = top.voices[0][0], top.voices[0][1]
    assert isinstance(grace, Note) and grace.grace
    assert chord.pitches == [Pitch("F", 1, 5), Pitch("A", 0, 5)]
    assert chord.ties == [True, False] and chord.duration == Duration("quarter", 1)
    tuplet = top.voices[1][1]
    assert isinstance(tuplet, Tuplet) and (tuplet.actual, tuplet.normal) == (3, 2)
    assert len(tuplet.events) == 3
    assert first.staves[1].voices[0] == [Rest(None)]
    assert score.measures[1].multirest == 4
    assert [m.id for m in score.measures] == ["m0", "m1", "m2"]


def test_chord_pitches_come_out_low_to_high_whatever_order_they_were_given():
    score = tokens_to_score(["<clef:G2>", "<note:E4-half>", "<barline>"])
    note = score.measures[0].staves[0].voices[0][0]
    note.pitches = [Pitch("G", 0, 4), Pitch("C", 0, 4), Pitch("E", 0, 4)]
    note.ties = [False, True, False]
    tokens = score_to_tokens(score)
    assert tokens == [
        "<clef:G2>",
        "<note:C4-half>",
        "<tie>",
        "<chord>",
        "<note:E4-half>",
        "<chord>",
        "<note:G4-half>",
        "<barline>",
    ]


def test_a_line_start_reprints_the_clef_and_key_in_force_but_not_the_time():
    tokens = [
        "<clef:F4>",
        "<key:3b>",
        "<time:4/4>",
        "<note:C3-whole>",
        "<barline>",
        "<clef:C4>",
        "<note:C3-whole>",
        "<barline>",
        "<note:C3-whole>",
        "<barline>",
    ]
    score = tokens_to_score(tokens)
    assert score_to_tokens(score, start=2) == [
        "<clef:C4>",
        "<key:3b>",
        "<note:C3-whole>",
        "<barline>",
    ]


def test_a_change_to_c_major_prints_the_key_but_a_c_major_line_start_does_not():
    tokens = (
        "<clef:G2> <key:1#> <note:C5-whole> <barline> <key:0> <note:C5-whole> <barline> "
        "<note:C5-whole> <barline>"
    )
    score = tokens_to_score(tokens.split())
    assert score_to_tokens(score) == tokens.split()
    assert score_to_tokens(score, start=1)[:2] == ["<clef:G2>", "<key:0>"]
    assert score_to_tokens(score, start=2) == ["<clef:G2>", "<note:C5-whole>", "<barline>"]


def test_an_unclosed_last_measure_is_kept():
    score = tokens_to_score(["<clef:G2>", "<note:C5-whole>"])
    assert len(score.measures) == 1
    assert score.measures[0].staves[0].voices[0][0].pitches == [Pitch("C", 0, 5)]


def test_unknown_tokens_are_skipped_not_fatal():
    score = tokens_to_score(["<clef:G2>", "<bogus>", "<note:C5-whole>", "<barline>"])
    assert score_to_tokens(score) == ["<clef:G2>", "<note:C5-whole>", "<barline>"]


def test_vocabulary_ids_are_stable_and_survive_json(tmp_path):
    a, b = Vocabulary(), Vocabulary()
    assert a.tokens == b.tokens
    assert a.id("<note:F#5-quarter>") == b.id("<note:F#5-quarter>")
    path = tmp_path / "vocab.json"
    a.save(path)
    assert Vocabulary.load(path).tokens == a.tokens


def test_a_vocabulary_file_with_an_unknown_token_is_refused(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text('{"version": 1, "tokens": ["<pad>", "<bos>", "<eos>", "<unk>", "<nope>"]}')
    with pytest.raises(ValueError, match="unknown tokens"):
        Vocabulary.load(path)


def test_factor_table_gives_notes_of_one_pitch_the_same_pitch_factor():
    vocab = default_vocabulary()
    factors = vocab.factors()
    a, b = vocab.id("<note:F#5-quarter>"), vocab.id("<note:F#5-16th.>")
    assert factors[a, 1] == factors[b, 1] != 0
    assert factors[a, 2] != factors[b, 2]
    assert len(vocab.factor_sizes()) == factors.shape[1]


@given(scores())
@settings(max_examples=150)
def test_tokens_score_tokens_is_the_identity(score):
    tokens = score_to_tokens(score)
    assert score_to_tokens(tokens_to_score(tokens, parts=score.parts)) == tokens


@given(scores(music21_safe=True))
@settings(max_examples=25)
def test_tokens_survive_musicxml_through_music21(score):
    tokens = score_to_tokens(score)
    rebuilt = tokens_to_score(tokens, parts=score.parts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = music21.converter.parse(musicxml_text(rebuilt), format="musicxml")
    again, report = from_music21(parsed)
    assert not report.unsupported
    assert score_to_tokens(again) == tokens


def test_a_line_loses_the_ties_out_of_its_last_measure_and_keeps_the_others():
    first = (
        "<clef:G2> <time:2/4> <note:C4-quarter> <tie> <note:C4-quarter> <tie> <staff> "
        "<clef:F4> <time:2/4> <note:C3-half> <tie> <barline> "
    )
    last = (
        "<note:C4-quarter> <tie> <note:C4-eighth> <tuplet:3:2> <note:E4-16th> <note:E4-16th> "
        "<note:E4-16th> {} <tuplet-end> <voice> <rest:quarter> <note:G4-quarter> {} "
        "<staff> <note:C3-half> {} <chord> <note:E3-half> {} <barline>"
    )
    tokens = (first + last.format(*["<tie>"] * 4)).split()
    printed = (first + last.format(*[""] * 4)).split()
    # inside the line, and inside its last measure, ties stay; each voice's last note (a
    # tuplet's last, a chord's every note) loses its own
    assert without_ties_off_the_end(tokens) == printed
    # a line that does not close its last measure is cut the same way
    assert without_ties_off_the_end(tokens[:-1]) == printed[:-1]
    assert without_ties_off_the_end([]) == []
