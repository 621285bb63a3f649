"""The fast MEI writer prints what an engraver (and the MusicXML path) prints: courtesy
accidentals, beams by the meter's groups, a clef change before its barline."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest

from omr_engine.notation.mei_writer import beam_groups, measures_to_mei
from omr_engine.notation.score import Measure, Note, Rest, StaffContext, StaffMeasure
from omr_engine.notation.symbols import TIME_SIGNATURES, Duration, Pitch

G2 = StaffContext("G2", 0, "4/4")


def q(name: str, duration: str = "quarter") -> Note:
    return Note([Pitch.parse(name)], Duration.parse(duration))


def measure(i: int, *events, **staff) -> Measure:
    return Measure(f"m{i}", [StaffMeasure(voices=[list(events)], **staff)], number=str(i))


def accids(mei: str) -> list[str]:
    """The written accidentals, in document order ('' for none)."""
    notes = re.findall(r"<note [^>]*>", mei)
    return [m.group(1) if (m := re.search(r' accid="(\w+)"', n)) else "" for n in notes]


def test_courtesy_accidentals_follow_the_previous_measure_and_other_octaves():
    m1 = measure(1, q("F#4"), q("C#5"), q("C4"), q("B4"))
    m2 = measure(2, q("F4"), q("F4"), q("C4", "half"))
    m3 = measure(3, q("F4", "whole"))
    mei = measures_to_mei([], [m1, m2, m3], [G2])
    # m1: F#4, C#5, a natural on C4 (C5 is sharp in another octave); m2: a courtesy
    # natural on the first F only, none on C (its last accidental was a natural); m3: none.
    assert accids(mei) == ["s", "s", "n", "", "n", "", "", ""]


def test_double_sharps_print_one_glyph_and_tied_notes_no_accidental():
    tied = Note([Pitch.parse("G##4")], Duration.parse("half"), ties=[True])
    m1 = measure(1, q("E4", "half"), tied)
    m2 = measure(2, q("G##4", "half"), q("G##4", "half"))
    mei = measures_to_mei([], [m1, m2], [G2])
    # The tied-over note shows none; the next one in its measure says it again.
    assert accids(mei) == ["", "x", "", "x"]
    assert mei.count('accid.ges="ss"') == 1


@pytest.mark.parametrize("time", TIME_SIGNATURES)
def test_beam_groups_are_music21s(time):
    from music21 import meter

    ts = meter.TimeSignature({"C": "4/4", "C|": "2/2"}.get(time, time))
    ends, total = [], Fraction(0)
    for part in ts.beamSequence:
        total += Fraction(part.duration.quarterLength)
        ends.append(total)
    assert beam_groups(time) == tuple(ends)


def test_beams_follow_the_meter_and_stop_at_rests():
    eighths = [q("C5", "eighth")] * 6
    six_eight = measures_to_mei([], [measure(1, *eighths)], [StaffContext("G2", 0, "6/8")])
    assert six_eight.count("<beam>") == 2  # two dotted quarters
    three_four = measures_to_mei([], [measure(1, *eighths)], [StaffContext("G2", 0, "3/4")])
    assert three_four.count("<beam>") == 3
    broken = [
        q("C5", "eighth"),
        Rest(Duration.parse("eighth")),
        q("C5", "eighth"),
        q("C5", "eighth"),
    ]
    two_four = measures_to_mei([], [measure(1, *broken)], [StaffContext("G2", 0, "2/4")])
    assert two_four.count("<beam>") == 1
    # A pickup's beams line up with the end of the bar: the eighths on beat 4 and 4+.
    pickup = measures_to_mei([], [measure(0, q("C5"), q("C5", "eighth"), q("C5", "eighth"))], [G2])
    assert re.search(r"<beam>(<note[^>]*/>){2}</beam>", pickup)
    overfull = measures_to_mei([], [measure(1, *[q("C5", "eighth")] * 10)], [G2])
    assert "<beam>" not in overfull


def test_a_clef_change_at_a_barline_is_printed_before_it():
    m1 = measure(1, q("C4", "whole"))
    m2 = measure(2, q("C3", "whole"), clef="F4")
    mei = measures_to_mei([], [m1, m2], [G2])
    first, second = mei.split('<measure xml:id="m2"')
    assert '<clef shape="F" line="4"/></layer>' in first
    assert "<clef" not in second
