"""Examples: every crop's tokens are exactly what the crop shows.

The strongest check is to engrave the tokens again from scratch: rebuild a Score from an
example's tokens, engrave it, and compare, measure by measure, what Verovio drew (notes,
rests, tuplets, clef changes inside a measure) with what it drew for the crop.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import verovio

from omr_engine.notation.grammar import Grammar
from omr_engine.notation.tokens import score_to_tokens, tokens_to_score
from omr_engine.synth.engrave import EngraveStyle, sample_style
from omr_engine.synth.examples import (
    Example,
    engrave_examples,
    excerpt,
    printable,
    printable_excerpt,
    regenerate,
    score_mei,
    score_musicxml,
    single_staff,
    unprintable_marks,
)
from omr_engine.synth.generator import generate_score
from omr_engine.synth.sources import PieceStore

SAMPLE = Path(__file__).parents[1] / "resources" / "samples" / "bwv66.6.musicxml"
COUNTED = ("note", "rest", "mRest", "multiRest", "tuplet", "clef", "keyAccid", "meterSig")


def _svg_measures(xml: str, style: EngraveStyle) -> list[dict[int, Counter]]:
    """Per measure in document order: per staff number, the counts of drawn elements."""
    verovio.enableLog(verovio.LOG_OFF)
    tk = verovio.toolkit()
    options = style.verovio_options()
    options["svgBoundingBoxes"] = False
    tk.setOptions(options)
    assert tk.loadData(xml)
    out = []
    for page in range(1, tk.getPageCount() + 1):
        svg = re.sub(r'xmlns="[^"]+"', "", tk.renderToSVG(page), count=1)
        root = ET.fromstring(svg)
        endings = {g.get("id") for g in root.iter("g") if "ending" in g.get("class", "").split()}
        for system in root.iter("g"):
            if "system" not in system.get("class", "").split():
                continue
            # A volta is a milestone among the system's children: it covers the measures
            # between its own group and the "systemMilestoneEnd <its id>" group; one that
            # goes on from the previous system has only the end here.
            open_endings: set[str] = set()
            measures = []
            for child in system:
                classes = child.get("class", "").split()
                if "ending" in classes:
                    open_endings.add(child.get("id", ""))
                elif "systemMilestoneEnd" in classes:
                    closing = endings.intersection(classes)
                    if closing - open_endings:
                        for staves in measures:
                            staves[0]["ending"] = 1
                    open_endings -= closing
                elif "measure" in classes:
                    staves = {0: Counter(ending=1 if open_endings else 0)}
                    for staff in child.iter("g"):
                        if "staff" in staff.get("class", "").split():
                            counts: Counter = Counter()
                            for g in staff.iter("g"):
                                counts.update(c for c in g.get("class", "").split() if c in COUNTED)
                            staves[int(staff.get("data-n"))] = counts
                    measures.append(staves)
            out += measures
    return out


@functools.cache
def _store() -> PieceStore:
    return PieceStore()


def _examples(seed: int, **kwargs) -> tuple[list[Example], object, str | None]:
    rng = np.random.default_rng(seed)
    score = generate_score(rng)
    examples = engrave_examples(score, f"gen/{seed}", sample_style(rng), rng, **kwargs)
    return examples, score, None


def _check_reengraving(ex: Example, engraved_xml: str, staff_count: int) -> None:
    """The crop's measures, engraved from its own tokens, draw the same things."""
    original = _svg_measures(engraved_xml, ex.style)
    a, b = ex.window
    shown = original[ex.measures[0] - a : ex.measures[1] - a]
    rebuilt = tokens_to_score(ex.tokens)  # one part per staff: each keeps its own key
    # One wide line, like the crop: clefs and key signatures open it and nowhere else.
    wide = dataclasses.replace(ex.style, page_width=60000, page_height=60000)
    again = _svg_measures(score_musicxml(rebuilt), wide)
    assert len(again) == len(shown) == ex.measures[1] - ex.measures[0]
    staves = [ex.staff + 1] if ex.unit == "staff" and staff_count > 1 else None
    for m, (old, new) in enumerate(zip(shown, again, strict=True)):
        numbers = staves or sorted(n for n in old if n)
        for k, n in enumerate(numbers):
            a, b = old[n], new[k + 1]
            if m == len(shown) - 1:
                # The crop's last measure may end with courtesy signatures for the next
                # line, which no token names.
                for sig in ("clef", "keyAccid", "meterSig"):
                    assert a[sig] >= b[sig], f"last measure, staff {n}: {a} < {b}"
                    a[sig] = b[sig] = 0
            assert a == b, f"measure {m}, staff {n}: {a} != {b}"
        if ex.unit == "system" or ex.staff == 0:
            assert old[0] == new[0], f"measure {m}: voltas {old[0]} != {new[0]}"


@pytest.mark.parametrize("seed", [1, 4, 11])
def test_generated_examples_reengrave_to_the_same_symbols(seed):
    examples, score, _ = _examples(seed, unit="both", strength_max=0.5, max_examples=4)
    assert examples
    mei = score_mei(score)  # what was engraved; the tokens are engraved through MusicXML
    for ex in examples:
        _check_reengraving(ex, mei, score.staff_count)


def test_corpus_examples_from_score_and_original_reengrave_the_same():
    from omr_engine.notation.music21_io import read_score

    score, report = read_score(SAMPLE)
    assert not report.unsupported
    rng = np.random.default_rng(3)
    style = sample_style(rng)
    whole = printable(score)[0]
    part = excerpt(whole, 2, 8)
    ours = engrave_examples(part, "sample", style, rng, unit="both", offset=2, max_examples=5)
    assert ours
    # Offsets: the excerpt's measures are the piece's measures 2..7.
    assert all(2 <= ex.measures[0] < ex.measures[1] <= 8 for ex in ours)
    for ex in ours:
        _check_reengraving(ex, score_mei(part), score.staff_count)


def test_original_musicxml_of_a_corpus_piece_is_used_when_it_matches(corpus_path):
    piece = _store().get("bach/bwv66.6.mxl")
    assert piece.original is not None, piece.note
    assert "<fermata" in piece.original  # what the vocabulary leaves out is printed
    rng = np.random.default_rng(0)
    examples = engrave_examples(
        piece.score,
        piece.id,
        sample_style(rng),
        rng,
        musicxml=piece.original,
        max_examples=3,
    )
    assert examples and all(ex.engraved_from == "original" for ex in examples)
    for ex in examples:
        _check_reengraving(ex, piece.original, piece.score.staff_count)


def test_original_musicxml_made_in_place_is_music21s_export(corpus_path):
    """The build exports a corpus piece's MusicXML without music21's deep copy; the
    document must be the one music21's exporter gives (its random part ids apart)."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    from omr_engine.notation.music21_io import load_music21
    from omr_engine.synth.sources import _musicxml_in_place, corpus_root

    path = corpus_root() / "bach/bwv66.6.mxl"

    def plain(xml: str) -> str:
        xml = re.sub(r"<encoding-date>.*?</encoding-date>", "", xml)
        return re.sub(r'id="[PI][0-9a-f]+"', "", xml)

    expected = GeneralObjectExporter(load_music21(path)).parse().decode("utf-8")
    ours = _musicxml_in_place(load_music21(path))
    assert "<fermata" in ours and "<note" in ours
    assert plain(ours) == plain(expected)


def test_every_example_passes_the_grammar_in_its_context():
    grammar = Grammar()
    for seed in (2, 5, 8):
        examples, score, _ = _examples(seed, unit="both", max_examples=6)
        for ex in examples:
            a = ex.window[0]
            start = ex.measures[0] - a
            view = single_staff(score, ex.staff) if ex.unit == "staff" else score
            if score.staff_count == 1:
                view = score
            diagnostics = grammar.validate_tokens(
                ex.tokens, contexts=view.contexts_before(start), piece_start=start == 0
            )
            assert diagnostics == [], (ex.tokens, [str(d) for d in diagnostics])


def test_example_keeps_what_regenerates_it():
    examples, score, _ = _examples(6, unit="both", strength_max=1.0, max_examples=2)
    for ex in examples:
        meta = ex.meta()
        assert meta["height"], meta["width"] == ex.image.shape
        assert len(meta["measure_boxes"]) == ex.measures[1] - ex.measures[0]
        again = regenerate(meta, lambda piece: (score, None))
        assert again.tokens == ex.tokens
        assert np.array_equal(again.image, ex.image)
        assert again.measure_boxes == ex.measure_boxes


def test_measure_boxes_follow_the_degradation_and_lie_in_the_image():
    examples, _, _ = _examples(9, unit="system", strength_max=1.0, max_examples=4)
    for ex in examples:
        h, w = ex.image.shape
        boxes = np.asarray(ex.measure_boxes)
        assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()
        assert boxes[:, 0].min() >= -2 and boxes[:, 2].max() <= w + 2
        assert boxes[:, 1].min() >= -2 and boxes[:, 3].max() <= h + 2
        assert (np.diff(boxes[:, 0]) > 0).all()  # left to right


def test_single_staff_view_keeps_measures_and_drops_voltas_below_the_top():
    score = generate_score(np.random.default_rng(0))
    tokens = "<clef:G2> <volta:1> <note:C5-whole> <staff> <clef:F4> <note:C3-whole> <barline>"
    two = tokens_to_score(tokens.split())
    top, bottom = single_staff(two, 0), single_staff(two, 1)
    assert score_to_tokens(top) == "<volta:1> <clef:G2> <note:C5-whole> <barline>".split()
    assert score_to_tokens(bottom) == "<clef:F4> <note:C3-whole> <barline>".split()
    view = single_staff(score, 0)
    assert len(view.measures) == len(score.measures) and view.staff_count == 1


def test_printable_drops_only_marks_the_tokens_do_not_print():
    tokens = (
        "<clef:G2> <key:2#> <time:3/4> <note:D5-half.> <barline> <note:D5-half.> <barline>"
    ).split()
    score = tokens_to_score(tokens)
    score.measures[1].staves[0].clef = "G2"  # restated, not printed by the tokens
    score.measures[1].staves[0].key = 2
    clean, removed = printable(score)
    assert removed == 2
    assert score_to_tokens(clean) == score_to_tokens(score) == tokens
    assert clean.measures[1].staves[0].clef is None
    assert unprintable_marks(score) == 2 and score.measures[1].staves[0].clef == "G2"


@pytest.mark.parametrize("seed", [3, 13, 41])
def test_printable_excerpt_is_printable_of_the_excerpt(seed):
    score = generate_score(np.random.default_rng(seed))
    assert unprintable_marks(score) == printable(score)[1]
    for a, b in ((0, 3), (2, 7), (1, len(score.measures))):
        once = printable_excerpt(score, a, b)
        assert score_mei(once) == score_mei(printable(excerpt(score, a, b))[0])


def test_multirests_and_voltas_are_engraved_as_the_tokens_say():
    tokens = (
        "<clef:G2> <time:4/4> <note:C5-whole> <barline> <multirest:7> <barline> "
        "<repeat-start> <note:D5-whole> <barline> <volta:1> <note:E5-whole> "
        "<barline:repeat-end> <volta:2> <note:F5-whole> <barline:final>"
    ).split()
    score = tokens_to_score(tokens)
    measures = _svg_measures(score_musicxml(score), EngraveStyle())
    assert len(measures) == 5
    assert measures[1][1]["multiRest"] == 1
    assert [m[0]["ending"] for m in measures] == [0, 0, 0, 1, 1]


def test_only_a_crop_that_ends_the_engraving_loses_the_tie_out_of_its_last_note():
    # a note held through 40 measures: every measure ends tied into the next
    tokens = "<clef:G2> <time:4/4> " + "<note:C5-whole> <tie> <barline> " * 40
    score = tokens_to_score(tokens.split())
    rng = np.random.default_rng(4)
    style = dataclasses.replace(sample_style(rng), font="Bravura")
    examples = engrave_examples(score, "held", style, rng, unit="staff")
    assert {ex.measures[1] == 40 for ex in examples} == {True, False}
    for ex in examples:
        # the last line's last note ties to nothing Verovio engraved: the tokens say no
        # tie; every other line ends with half an arc printed, and the tie stays
        assert ex.tokens[-2] == ("<note:C5-whole>" if ex.measures[1] == 40 else "<tie>")
