"""The studio's Qt-free pieces: edit operations, the measure text form, the fast MEI writer
and its SVG geometry, and the grouping of measures into lines."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from app import edits
from app.edits import EditError, NoteAddress
from app.engine import Engine
from app.engraving import event_id, group_systems, measures_to_mei, parse_event_id
from omr_engine.notation.score import Measure, Note, Rest, StaffContext, StaffMeasure, Tuplet
from omr_engine.notation.symbols import Duration, Pitch

SAMPLE = Path(__file__).resolve().parent.parent / "resources" / "samples" / "bwv66.6.musicxml"


@pytest.fixture(scope="module")
def chorale():
    from omr_engine.notation.music21_io import read_score

    score, _ = read_score(SAMPLE)
    return score


def one_voice(*events) -> Measure:
    return Measure("m1", [StaffMeasure(voices=[list(events)])], number="1")


def q(name: str, duration: str = "quarter") -> Note:
    return Note([Pitch.parse(name)], Duration.parse(duration))


G2 = StaffContext("G2", 0, "4/4")


# ---------------------------------------------------------------- edit operations


def test_letter_picks_the_nearest_octave_and_the_key():
    m = one_voice(q("B4"), q("C5"))
    out = edits.set_pitch_step(m, NoteAddress(0, 0, 0), "C", G2)
    assert out.staves[0].voices[0][0].pitches == [Pitch("C", 0, 5)]  # B4 -> C5, not C4
    d_major = StaffContext("G2", 2, "4/4")
    out = edits.set_pitch_step(m, NoteAddress(0, 0, 1), "F", d_major)
    assert out.staves[0].voices[0][1].pitches == [Pitch("F", 1, 5)]  # F# in D major
    assert m.staves[0].voices[0][0].pitches == [Pitch("B", 0, 4)]  # the input is untouched


def test_letter_on_a_rest_makes_a_note_of_its_length():
    m = one_voice(Rest(Duration("half")), Rest(None))
    out = edits.set_pitch_step(m, NoteAddress(0, 0, 0), "E", G2)
    assert out.staves[0].voices[0][0] == Note([Pitch("E", 0, 5)], Duration("half"))
    out = edits.set_pitch_step(m, NoteAddress(0, 0, 1), "G", G2)
    assert out.staves[0].voices[0][1].duration == Duration("whole")  # fills the 4/4 bar


def test_semitone_steps_are_spelled_like_musescore():
    m = one_voice(q("C4"), q("E4"), q("A4"))
    up = edits.transpose(m, NoteAddress(0, 0, 0), 1, 0)
    assert up.staves[0].voices[0][0].pitches == [Pitch("C", 1, 4)]  # C -> C#
    down = edits.transpose(m, NoteAddress(0, 0, 0), -1, 0)
    assert down.staves[0].voices[0][0].pitches == [Pitch("B", 0, 3)]  # C -> B, octave down
    up = edits.transpose(m, NoteAddress(0, 0, 1), 1, 0)
    assert up.staves[0].voices[0][1].pitches == [Pitch("F", 0, 4)]  # E -> F
    f_major = edits.transpose(m, NoteAddress(0, 0, 2), 1, -1)
    assert f_major.staves[0].voices[0][2].pitches == [Pitch("B", -1, 4)]  # the key's Bb
    with pytest.raises(EditError):
        edits.transpose(one_voice(Rest(Duration("quarter"))), NoteAddress(), 1, 0)


def test_octaves_durations_dots_rests():
    m = one_voice(q("G4"), q("A4", "eighth"))
    a = NoteAddress(0, 0, 0)
    assert edits.shift_octave(m, a, 1).staves[0].voices[0][0].pitches == [Pitch("G", 0, 5)]
    assert edits.set_duration(m, a, "half", G2).staves[0].voices[0][0].duration == Duration("half")
    dotted = edits.toggle_dot(m, a, G2)
    assert dotted.staves[0].voices[0][0].duration == Duration("quarter", 1)
    assert edits.toggle_dot(dotted, a, G2).staves[0].voices[0][0].duration == Duration("quarter")
    rest = edits.to_rest(m, a, G2)
    assert rest.staves[0].voices[0][0] == Rest(Duration("quarter"))
    with pytest.raises(EditError):
        edits.to_rest(rest, a, G2)
    assert len(edits.delete_event(m, a).staves[0].voices[0]) == 1
    inserted = edits.insert_after(m, a, G2)
    assert inserted.staves[0].voices[0][:2] == [q("G4"), q("G4")]
    assert edits.DIGIT_DURATIONS[5] == "quarter" and edits.DIGIT_DURATIONS[1] == "64th"


def test_edits_reach_into_tuplets_and_empty_ones_go():
    triplet = Tuplet(3, 2, [q("C5", "eighth"), q("D5", "eighth"), q("E5", "eighth")])
    m = one_voice(q("G4"), triplet)
    assert edits.event_count(m, 0, 0) == 4
    out = edits.set_pitch_step(m, NoteAddress(0, 0, 2), "F", G2)
    assert out.staves[0].voices[0][1].events[1].pitches == [Pitch("F", 0, 5)]
    single = one_voice(Tuplet(3, 2, [q("C5", "eighth")]))
    assert edits.delete_event(single, NoteAddress()).staves[0].voices[0] == []


def test_measure_edits_and_navigation():
    m = one_voice(q("C4"), q("D4"))
    assert edits.set_clef(m, 0, "F4").staves[0].clef == "F4"
    assert edits.set_key(m, -3).staves[0].key == -3
    assert edits.set_time(m, "6/8").staves[0].time == "6/8"
    with pytest.raises(EditError):
        edits.set_key(m, 9)
    empty = edits.empty_measure(2, "e1")
    assert [sm.voices for sm in empty.staves] == [[[Rest(None)]], [[Rest(None)]]]
    measures = [m, one_voice(q("E4")), one_voice(q("F4"), q("G4"))]
    assert edits.step_address(measures, 0, NoteAddress(0, 0, 1), 1) == (1, NoteAddress(0, 0, 0))
    assert edits.step_address(measures, 2, NoteAddress(0, 0, 0), -1) == (1, NoteAddress(0, 0, 0))
    assert edits.step_address(measures, 2, NoteAddress(0, 0, 1), 1) is None
    assert edits.clamp_address(m, NoteAddress(3, 2, 9)) == NoteAddress(0, 0, 1)


# ---------------------------------------------------------------- measure text


def test_measure_text_round_trips_every_measure(chorale):
    engine = Engine()
    for measure in chorale.measures:
        text = engine.measure_text(measure)
        back, errors = engine.parse_measure_text(text, measure)
        assert errors == []
        assert back == measure


def test_measure_text_reports_what_it_cannot_read(chorale):
    engine = Engine()
    m = chorale.measures[1]
    assert engine.parse_measure_text("<note:C4-quarter>", m)[1] == [
        "a measure ends with its barline, e.g. <barline>"
    ]
    assert engine.parse_measure_text("<nope> <barline>", m)[1] == ["unknown token <nope>"]
    two = "<note:C4-whole> <barline> <note:C4-whole> <barline>"
    assert engine.parse_measure_text(two, m)[1] == ["the text holds 2 measures; write one"]


def test_score_json_keeps_ids_boxes_and_music(chorale):
    engine = Engine()
    score = copy.deepcopy(chorale)
    score.measures[2].box = (1.0, 2.0, 3.0, 4.0)
    back = engine.score_from_json(engine.score_to_json(score))
    assert back.measures == score.measures
    assert [p.staves for p in back.parts] == [p.staves for p in score.parts]


# ---------------------------------------------------------------- engraving


def test_fast_mei_engraves_with_our_ids(chorale):
    engine = Engine()
    measures = chorale.measures[3:7]
    mei = measures_to_mei(chorale.parts, measures, chorale.contexts_before(3))
    engraved = engine.engrave_system(mei)
    assert set(engraved.geometry.measures) == {m.id for m in measures}
    notes = sum(
        1
        for m in measures
        for sm in m.staves
        for v in sm.voices
        for e in v
        if isinstance(e, Note | Rest)
    )
    assert len(engraved.geometry.events) == notes
    h, w = engraved.image.shape
    assert engraved.image.min() < 50 and engraved.image.max() == 255
    x0, y0, x1, y1 = engraved.geometry.measures[measures[0].id]
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h


def test_fast_mei_prints_accidentals_ties_and_tuplets():
    tied = Note([Pitch("F", 1, 4)], Duration("half"), ties=[True])
    m1 = one_voice(q("F#4"), q("F#4"), tied)
    m2 = Measure(
        "m2",
        [StaffMeasure(voices=[[q("F#4", "half"), Tuplet(3, 2, [q("G4", "eighth")] * 3), q("A4")]])],
    )
    mei = measures_to_mei([], [m1, m2], [StaffContext("G2", 0, "4/4")])
    assert mei.count('accid="s"') == 2  # printed once per measure, then implied
    assert 'tie="i"' in mei and 'tie="t"' in mei
    assert '<tuplet num="3" numbase="2"' in mei
    assert "<beam>" in mei
    geometry = Engine().engrave_system(mei).geometry
    assert event_id("m2", 0, 0, 2) in geometry.events


def test_event_ids_parse_back():
    assert parse_event_id(event_id("p1m3", 2, 1, 7)) == ("p1m3", 2, 1, 7)
    assert parse_event_id("p1m3") is None
    assert parse_event_id("p1m3_s0v0e1_p2") is None  # a chord's inner note


def test_lines_follow_the_scan():
    def m(i, box):
        return Measure(f"m{i}", [StaffMeasure()], box=box)

    measures = [
        m(0, (0, 0, 100, 50)),
        m(1, (100, 0, 200, 50)),
        m(2, None),  # inserted by hand: stays on its neighbour's line
        m(3, (0, 80, 120, 130)),
        m(4, (120, 80, 220, 130)),
    ]
    assert group_systems(measures) == [[0, 1, 2], [3, 4]]
    unboxed = [m(i, None) for i in range(6)]
    assert group_systems(unboxed, fallback_size=4) == [[0, 1, 2, 3], [4, 5]]
