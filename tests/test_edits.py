"""Edit operations on measures, the measure text form and the fast MEI writer: the engine
side of the correction studio, tested without Qt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from omr_engine.notation import edits
from omr_engine.notation.edits import EditError, NoteAddress
from omr_engine.notation.measure_text import is_token, measure_text, parse_measure_text
from omr_engine.notation.mei import new_toolkit
from omr_engine.notation.mei_writer import event_id, measures_to_mei, parse_event_id
from omr_engine.notation.score import Measure, Note, Rest, StaffContext, StaffMeasure, Tuplet
from omr_engine.notation.svg_geometry import svg_geometry
from omr_engine.notation.symbols import Duration, Pitch, key_alter

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
    for measure in chorale.measures:
        back, errors = parse_measure_text(measure_text(measure), measure)
        assert errors == []
        assert back == measure


def test_measure_text_reports_what_it_cannot_read(chorale):
    m = chorale.measures[1]
    assert parse_measure_text("<note:C4-quarter>", m)[1] == [
        "a measure ends with its barline, e.g. <barline>"
    ]
    assert parse_measure_text("<nope> <barline>", m)[1] == ["unknown token <nope>"]
    two = "<note:C4-whole> <barline> <note:C4-whole> <barline>"
    assert parse_measure_text(two, m)[1] == ["the text holds 2 measures; write one"]
    assert parse_measure_text("   ", m)[1] == ["the measure is empty"]
    assert is_token("<barline>") and not is_token("<nope>")


def test_parsed_measure_keeps_identity_and_staves():
    like = Measure("p1m4", [StaffMeasure(), StaffMeasure()], number="4", page=0, box=(1, 2, 3, 4))
    m, errors = parse_measure_text("<note:C4-whole> <barline>", like)
    assert errors == [] and m is not None
    assert (m.id, m.number, m.page, m.box) == ("p1m4", "4", 0, (1, 2, 3, 4))
    assert len(m.staves) == 2


# ---------------------------------------------------------------- fast MEI writer


def test_key_alter_follows_the_order_of_sharps_and_flats():
    assert [key_alter(2, s) for s in "FCGB"] == [1, 1, 0, 0]
    assert [key_alter(-3, s) for s in "BEAD"] == [-1, -1, -1, 0]
    assert key_alter(0, "F") == 0


def test_fast_mei_prints_accidentals_ties_and_tuplets():
    tied = Note([Pitch("F", 1, 4)], Duration("half"), ties=[True])
    m1 = one_voice(q("F#4"), q("F#4"), tied)
    m2 = Measure(
        "m2",
        [
            StaffMeasure(
                voices=[[q("F#4", "half"), Tuplet(3, 2, [q("G4", "eighth")] * 3), q("F#4")]]
            )
        ],
    )
    mei = measures_to_mei([], [m1, m2], [StaffContext("G2", 0, "4/4")])
    # Printed once per measure, then implied; not on the note tied over the barline.
    assert mei.count('accid="s"') == 2
    assert 'tie="i"' in mei and 'tie="t"' in mei
    assert '<tuplet num="3" numbase="2"' in mei
    assert "<beam>" in mei


def test_fast_mei_engraves_with_our_ids(chorale):
    measures = chorale.measures[3:7]
    mei = measures_to_mei(chorale.parts, measures, chorale.contexts_before(3))
    tk = new_toolkit({"header": "none", "footer": "none", "svgBoundingBoxes": True})
    assert tk.loadData(mei)
    geometry = svg_geometry(tk.renderToSVG(1))
    assert set(geometry.measures) == {m.id for m in measures}
    first = event_id(measures[0].id, 0, 0, 0)
    x0, y0, x1, y1 = geometry.events[first]
    assert geometry.event_at((x0 + x1) / 2, (y0 + y1) / 2) == first
    assert geometry.measure_at((x0 + x1) / 2, (y0 + y1) / 2) == measures[0].id


def test_event_ids_parse_back():
    assert parse_event_id(event_id("p1m3", 2, 1, 7)) == ("p1m3", 2, 1, 7)
    assert parse_event_id("p1m3") is None
    assert parse_event_id("p1m3_s0v0e1_p2") is None  # a chord's inner note


def test_editing_and_engraving_modules_do_not_import_qt():
    code = (
        "import sys\n"
        "import omr_engine.notation.edits, omr_engine.notation.measure_text\n"
        "import omr_engine.notation.mei_writer, omr_engine.notation.pdf\n"
        "import omr_engine.notation.svg_geometry\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'shiboken6')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
