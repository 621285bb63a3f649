"""The studio's Qt-free pieces that stay in the app: the engine facade's measure text and
score JSON, engraving a line with its SVG geometry, and the grouping of measures into lines."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from app.engine import Engine
from app.engraving import group_systems
from omr_engine.notation.mei_writer import event_id, measures_to_mei
from omr_engine.notation.score import Measure, Note, Rest, StaffContext, StaffMeasure, Tuplet
from omr_engine.notation.symbols import Duration, Pitch

SAMPLE = Path(__file__).resolve().parent.parent / "resources" / "samples" / "bwv66.6.musicxml"


@pytest.fixture(scope="module")
def chorale():
    from omr_engine.notation.music21_io import read_score

    score, _ = read_score(SAMPLE)
    return score


def q(name: str, duration: str = "quarter") -> Note:
    return Note([Pitch.parse(name)], Duration.parse(duration))


def test_measure_text_goes_through_the_facade(chorale):
    engine = Engine()
    m = chorale.measures[1]
    back, errors = engine.parse_measure_text(engine.measure_text(m), m)
    assert errors == [] and back == m
    assert engine.is_token("<barline>")


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


def test_geometry_finds_notes_inside_tuplets():
    m = Measure(
        "m2",
        [StaffMeasure(voices=[[q("F#4", "half"), Tuplet(3, 2, [q("G4", "eighth")] * 3), q("A4")]])],
    )
    mei = measures_to_mei([], [m], [StaffContext("G2", 0, "4/4")])
    geometry = Engine().engrave_system(mei).geometry
    assert {event_id("m2", 0, 0, i) for i in range(5)} == set(geometry.events)


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
