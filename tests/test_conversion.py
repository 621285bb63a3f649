"""Reading kern/ABC/MusicXML into Scores, writing MusicXML/MXL/MEI/MIDI, comparing with musicdiff."""

from __future__ import annotations

import re
import warnings

import music21
import pytest

from omr_engine.notation.compare import compare_scores
from omr_engine.notation.mei import engrave_svg, score_to_mei
from omr_engine.notation.music21_io import (
    NotationError,
    from_music21,
    musicxml_text,
    read_score,
    write_midi,
    write_musicxml,
)
from omr_engine.notation.tokens import (
    score_to_tokens,
    tokens_by_measure,
    tokens_to_score,
)

ROUND_TRIP_SET = [
    "bach/bwv66.6",  # MusicXML, 4 parts
    "palestrina/Agnus_I_01.krn",  # kern through converter21
    "ryansMammoth/BeebesHornpipe.abc",  # ABC, repeats
    "mozart/k80/movement1",  # string quartet
]


def round_trip(score):
    rebuilt = tokens_to_score(score_to_tokens(score), parts=score.parts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = music21.converter.parse(musicxml_text(rebuilt), format="musicxml")
    again, _ = from_music21(parsed)
    return again


@pytest.mark.parametrize("name", ROUND_TRIP_SET)
def test_source_to_tokens_to_musicxml_keeps_every_measure(corpus_path, name):
    score, report = read_score(corpus_path(name))
    again = round_trip(score)
    a, b = tokens_by_measure(score), tokens_by_measure(again)
    assert len(a) == len(b)
    same = sum(
        x == y
        for i, (x, y) in enumerate(zip(a, b, strict=True))
        if i not in report.unsupported_measures
    )
    assert same == len(a) - len(report.unsupported_measures)


def test_piano_staves_become_one_part_with_two_staves():
    sc = music21.stream.Score()
    right, left = music21.stream.PartStaff(), music21.stream.PartStaff()
    for p, pitch in ((right, "C5"), (left, "C3")):
        m = music21.stream.Measure(number=1)
        m.append(music21.meter.TimeSignature("4/4"))
        m.append(music21.note.Note(pitch, type="whole"))
        p.append(m)
        sc.insert(0, p)
    sc.insert(0, music21.layout.StaffGroup([right, left], symbol="brace"))
    score, _ = from_music21(sc)
    assert [p.staves for p in score.parts] == [2]
    assert score_to_tokens(round_trip(score)) == score_to_tokens(score)


def test_voltas_and_repeats_survive_the_round_trip():
    tokens = (
        "<clef:G2> <time:2/4> <note:C5-half> <barline> <repeat-start> <note:D5-half> <barline> "
        "<volta:1> <note:E5-half> <barline:repeat-end> <volta:2> <note:F5-half> <barline> "
        "<note:G5-half> <barline:final>"
    ).split()
    score = tokens_to_score(tokens)
    assert score_to_tokens(round_trip(score)) == tokens


def test_a_clef_change_inside_a_measure_survives_the_round_trip():
    tokens = (
        "<clef:F4> <time:2/4> <note:C3-quarter> <clef:G2> <note:C5-quarter> <barline> "
        "<note:D5-quarter> <voice> <note:C4-quarter> <note:B3-quarter> <barline>"
    ).split()
    assert score_to_tokens(round_trip(tokens_to_score(tokens))) == tokens


def test_an_invalid_measure_is_exported_as_read_not_rebarred():
    tokens = (
        "<clef:G2> <time:2/4> <note:C5-half> <note:D5-half> <barline> <note:E5-quarter> <barline>"
    ).split()
    assert score_to_tokens(round_trip(tokens_to_score(tokens))) == tokens


def test_musicxml_mxl_and_midi_files_are_written(corpus_path, tmp_path):
    score, _ = read_score(corpus_path("bach/bwv66.6"))
    for name in ("out.musicxml", "out.mxl"):
        write_musicxml(score, tmp_path / name)
        again, _ = read_score(tmp_path / name)
        assert tokens_by_measure(again) == tokens_by_measure(score)
    write_midi(score, tmp_path / "out.mid")
    assert (tmp_path / "out.mid").read_bytes()[:4] == b"MThd"


def test_mei_measures_carry_the_score_ids_into_verovio_svg(corpus_path):
    score, _ = read_score(corpus_path("bach/bwv66.6"))
    for i, m in enumerate(score.measures):
        m.id = f"bar-{i}"
    mei = score_to_mei(score)
    assert re.findall(r'<measure[^>]*xml:id="([^"]+)"', mei) == [m.id for m in score.measures]
    svg = "".join(engrave_svg(mei))
    for m in score.measures:
        assert f'id="{m.id}"' in svg


def test_unreadable_files_raise_one_sentence(tmp_path):
    bad = tmp_path / "bad.musicxml"
    bad.write_text("this is not music")
    with pytest.raises(NotationError, match=r"bad\.musicxml: not a readable music file"):
        read_score(bad)
    empty = tmp_path / "empty.krn"
    empty.write_text("")
    with pytest.raises(NotationError, match="empty"):
        read_score(empty)


def test_musicdiff_counts_zero_for_equal_scores_and_more_for_a_wrong_note(corpus_path):
    score, _ = read_score(corpus_path("bach/bwv66.6"))
    same = compare_scores(score, round_trip(score))
    assert same.edit_distance == 0 and same.reference_symbols > 100
    tokens = score_to_tokens(score)
    i = tokens.index("<note:A4-quarter>")
    tokens[i] = "<note:B4-quarter>"
    wrong = compare_scores(score, tokens_to_score(tokens, parts=score.parts))
    assert wrong.edit_distance >= 1
    assert 0 < wrong.omr_ned < 0.05


def test_verovio_engraves_with_its_fonts_in_a_worker_thread():
    import threading

    from omr_engine.notation.tokens import tokens_to_score as build

    svgs: list[str] = []
    score = build("<clef:G2> <time:4/4> <note:C5-whole> <barline>".split())
    worker = threading.Thread(target=lambda: svgs.extend(engrave_svg(score_to_mei(score))))
    worker.start()
    worker.join()
    assert "E050" in svgs[0]  # the SMuFL G clef glyph is defined, so fonts were found


def test_an_opening_upbeat_is_measure_0_and_written_as_an_implicit_measure():
    from omr_engine.notation.music21_io import musicxml_text
    from omr_engine.notation.score import number_measures, opens_with_pickup
    from omr_engine.notation.tokens import tokens_to_score

    head = "<clef:G2> <key:0> <time:3/4>"
    upbeat = tokens_to_score(
        f"{head} <note:C5-quarter> <barline> <rest:half> <note:D5-quarter> <barline>".split()
    )
    full = tokens_to_score(
        f"{head} <rest:half> <note:C5-quarter> <barline> <rest:half> <note:D5-quarter> <barline>".split()
    )
    whole_rest = tokens_to_score(
        f"{head} <mrest> <barline> <rest:half> <note:D5-quarter> <barline>".split()
    )
    alone = tokens_to_score(f"{head} <note:C5-quarter> <barline>".split())
    assert opens_with_pickup(upbeat)
    assert not any(opens_with_pickup(s) for s in (full, whole_rest, alone))
    number_measures(upbeat.measures, 0, pickup=True)
    assert [m.number for m in upbeat.measures] == ["0", "1"]
    xml = musicxml_text(upbeat)
    assert '<measure implicit="yes" number="0">' in xml
    assert '<measure implicit="no" number="1">' in xml
