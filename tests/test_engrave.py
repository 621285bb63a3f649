"""Engraving with Verovio: every measure found once, boxes where the ink is, crops that
hold their staves and nothing of their neighbours' lines."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from music21 import corpus, stream
from music21.musicxml.m21ToXml import GeneralObjectExporter

from omr_engine.notation.tokens import tokens_to_score
from omr_engine.synth.engrave import (
    FONTS,
    EngravedPage,
    EngraveStyle,
    engrave,
    sample_style,
    staff_crops,
    system_crops,
)
from omr_engine.synth.examples import score_mei

PIECES = {
    "chorale": ("bach/bwv66.6", None),  # four staves, pickup measure, fermatas
    "folk": ("essenFolksong/altdeu10", 1),  # one staff, ABC source
}


@functools.cache
def _piece(name: str) -> tuple[str, list[str]]:
    """MusicXML text and the MusicXML measure numbers, in order."""
    path, number = PIECES[name]
    score = corpus.parse(path, number=number) if number else corpus.parse(path)
    measures = score.parts[0].getElementsByClass(stream.Measure)
    xml = GeneralObjectExporter(score).parse().decode()
    return xml, [str(m.number) for m in measures]


@functools.cache
def _engraved(name: str, font: str) -> tuple[EngravedPage, ...]:
    return tuple(engrave(_piece(name)[0], EngraveStyle(font=font, scale=55)))


def _measures(pages):
    return [m for page in pages for system in page.systems for m in system.measures]


@pytest.mark.parametrize("font", FONTS)
@pytest.mark.parametrize("name", sorted(PIECES))
def test_every_measure_is_found_once_in_score_order(name, font):
    _, numbers = _piece(name)
    measures = _measures(_engraved(name, font))
    assert [m.index for m in measures] == list(range(len(numbers)))
    assert [m.number for m in measures] == numbers


@pytest.mark.parametrize("font", FONTS)
@pytest.mark.parametrize("name", sorted(PIECES))
def test_boxes_lie_inside_the_page_and_run_left_to_right(name, font):
    for page in _engraved(name, font):
        h, w = page.image.shape
        assert page.image.dtype == np.uint8
        for system in page.systems:
            for m in system.measures:
                b = m.box
                assert 0 <= b.x0 < b.x1 <= w and 0 <= b.y0 < b.y1 <= h
                assert (b.y0, b.y1) == (system.box.y0, system.box.y1)
            for left, right in zip(system.measures, system.measures[1:], strict=False):
                assert left.box.x1 <= right.box.x0 + 0.5


def test_fonts_draw_different_glyphs():
    images = [_engraved("folk", font)[0].image for font in FONTS]
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            same_shape = images[i].shape == images[j].shape
            assert not same_shape or np.abs(images[i].astype(int) - images[j]).mean() > 0.5


@pytest.mark.parametrize("name", sorted(PIECES))
def test_each_measure_ends_on_a_drawn_barline(name):
    for page in _engraved(name, "Bravura"):
        for system in page.systems:
            for m in system.measures:
                x = int(round(m.box.x1))
                rows = slice(int(m.box.y0) + 2, int(m.box.y1) - 2)
                column = page.image[rows, x - 2 : x].min(axis=1)
                assert np.mean(column < 128) > 0.9, f"no barline at the end of measure {m.index}"


def _line_rows(image: np.ndarray, x0: float, x1: float) -> list[float]:
    """Centres of the pixel rows that are dark across most of [x0, x1): staff lines."""
    dark = (image[:, int(x0) + 1 : int(x1) - 1] < 160).mean(axis=1) > 0.6
    rows = np.flatnonzero(dark)
    groups = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1) if len(rows) else []
    return [float(g.mean()) + 0.5 for g in groups]


@pytest.mark.parametrize("font", ["Leipzig", "Petaluma"])
def test_staff_crop_holds_its_own_five_lines_and_no_neighbours(font):
    pages = _engraved("chorale", font)
    for page in pages:
        crops = staff_crops(page)
        assert len(crops) == sum(len(s.staff_boxes) for s in page.systems)
        for crop in crops:
            box = crop.measure_boxes[-1]
            lines = _line_rows(crop.image, box.x0, box.x1)
            assert len(lines) == 5
            assert abs(lines[0] - box.y0) < 1.5 and abs(lines[-1] - box.y1) < 1.5
            assert crop.staff_range[1] - crop.staff_range[0] == 1


def test_system_crop_holds_all_staves_and_its_measures():
    pages = _engraved("chorale", "Leland")
    for page in pages:
        for crop, system in zip(system_crops(page), page.systems, strict=True):
            h, w = crop.image.shape
            assert crop.staff_range == (0, len(system.staff_boxes)) == (0, 4)
            assert crop.measure_indices == tuple(m.index for m in system.measures)
            for b in crop.measure_boxes:
                assert 0 <= b.x0 < b.x1 <= w and 0 <= b.y0 < b.y1 <= h
            lines = _line_rows(crop.image, crop.measure_boxes[-1].x0, crop.measure_boxes[-1].x1)
            assert len(lines) == 20


def test_short_pages_split_the_piece_and_keep_counting_measures():
    xml, numbers = _piece("chorale")
    pages = engrave(xml, EngraveStyle(font="Gootville", scale=40, page_height=1400))
    assert len(pages) > 1
    assert [m.index for m in _measures(pages)] == list(range(len(numbers)))
    assert [p.page_index for p in pages] == list(range(len(pages)))


def test_rasterizers_draw_the_same_music():
    xml, _ = _piece("folk")
    style = EngraveStyle(font="Leipzig", scale=55)
    fast = engrave(xml, style, rasterizer="mupdf")[0].image.astype(int)
    reference = engrave(xml, style, rasterizer="resvg")[0].image.astype(int)
    assert fast.shape == reference.shape
    ink = (fast < 200) | (reference < 200)
    # Only the measure numbers' typefaces and line anti-aliasing differ.
    assert (np.abs(fast - reference) > 100).sum() < 0.02 * ink.sum()


def test_sampled_styles_are_reproducible_and_render():
    styles = [sample_style(np.random.default_rng(seed)) for seed in range(20)]
    assert styles == [sample_style(np.random.default_rng(seed)) for seed in range(20)]
    assert {s.font for s in styles} == set(FONTS)
    for s in styles:
        assert 10.0 <= s.staff_space_px <= 18.0
    pages = engrave(_piece("folk")[0], styles[0])
    assert len(_measures(pages)) == len(_piece("folk")[1])


def test_unknown_font_is_refused():
    with pytest.raises(ValueError, match="font"):
        EngraveStyle(font="Comic Sans")


def test_reused_toolkit_engraves_as_a_fresh_one():
    a, b = sample_style(np.random.default_rng(1)), sample_style(np.random.default_rng(2))
    first = engrave(_piece("folk")[0], a)
    engrave(_piece("chorale")[0], b)  # other music and every option changed in between
    again = engrave(_piece("folk")[0], a)
    assert len(first) == len(again)
    for p, q in zip(first, again, strict=True):
        assert np.array_equal(p.image, q.image) and p.systems == q.systems


def _breves_xml(with_breves: bool = True) -> str:
    from music21 import meter, note

    part = stream.Part()
    for number, pitch in enumerate(["G4", "A4", "B4"], start=1):
        measure = stream.Measure(number=number)
        if number == 1:
            measure.append(meter.TimeSignature("4/2"))
        if with_breves:
            measure.append(note.Note(pitch, type="breve"))
        else:
            measure.append(note.Note(pitch, type="whole"))
            measure.append(note.Note(pitch, type="whole"))
        part.append(measure)
    return GeneralObjectExporter(stream.Score([part])).parse().decode()


def test_round_breve_style_draws_breves_round_and_keeps_the_measures():
    from omr_engine.synth.engrave import _round_breves, _toolkit

    xml = _breves_xml()
    square = engrave(xml, EngraveStyle(scale=60))
    round_ = engrave(xml, EngraveStyle(scale=60, round_breves=True))
    assert [m.number for m in _measures(round_)] == [m.number for m in _measures(square)]
    assert [m.number for m in _measures(square)] == ["1", "2", "3"]
    assert not np.array_equal(square[0].image, round_[0].image)
    toolkit = _toolkit()
    toolkit.setOptions(EngraveStyle(scale=60).verovio_options())
    toolkit.loadData(xml)
    assert "#E0A1" in toolkit.renderToSVG(1)  # Verovio's own breve is square
    _round_breves(toolkit)
    svg = toolkit.renderToSVG(1)
    assert svg.count("#E0A0") == 3 and "#E0A1" not in svg
    # music without breves is drawn the same either way
    plain = _breves_xml(with_breves=False)
    a = engrave(plain, EngraveStyle(scale=60))[0].image
    b = engrave(plain, EngraveStyle(scale=60, round_breves=True))[0].image
    assert np.array_equal(a, b)


def test_sampled_styles_draw_round_breves_about_half_the_time():
    rng = np.random.default_rng(4)
    rounds = [sample_style(rng).round_breves for _ in range(200)]
    assert 70 < sum(rounds) < 130


def test_a_volta_bracket_that_runs_over_a_line_break_stays_in_every_crop():
    """Verovio boxes every segment of such a bracket where its last segment is; the crops
    follow the drawn lines instead, so no system loses the bracket its tokens name."""
    bar = "<note:C5-16th> <note:D5-16th> <note:E5-16th> <note:F5-16th> " * 4 + "<barline> "
    text = "<clef:G2> <key:0> <time:4/4> " + bar + ("<volta:1> " + bar) * 8 + "<volta:2> " + bar
    score = tokens_to_score(text.split())
    pages = engrave(score_mei(score), EngraveStyle(font="Leipzig", scale=55))
    crops = [c for p in pages for c in (*system_crops(p), *staff_crops(p))]
    checked = 0
    for crop in crops:
        boxes = [
            b
            for i, b in zip(crop.measure_indices, crop.measure_boxes, strict=True)
            if score.measures[i].volta
        ]
        if not boxes:
            continue
        span = (int(boxes[0].x0) + 4, int(boxes[-1].x1) - 4)
        above = crop.image[: int(crop.measure_boxes[0].y0) - 2, span[0] : span[1]] < 220
        assert above.mean(axis=1).max() > 0.9, crop.measure_indices
        checked += 1
    assert checked >= 4  # the bracket spans two systems or more, each cut two ways
