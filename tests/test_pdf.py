"""Vector PDF export: one PDF page per Verovio page, drawn as paths and text, never an image."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pymupdf
import pytest

from omr_engine.cli import main
from omr_engine.notation.mei import engrave_svg, new_toolkit
from omr_engine.notation.mei_writer import measures_to_mei
from omr_engine.notation.pdf import (
    A4_WIDTH_PT,
    PDF_OPTIONS,
    PdfError,
    flatten_svg,
    score_to_pdf,
    svg_pages_to_pdf,
)
from omr_engine.notation.score import Measure, Note, Part, Score, StaffMeasure
from omr_engine.notation.symbols import Duration, Pitch

SAMPLE = Path(__file__).resolve().parent.parent / "resources" / "samples" / "bwv66.6.musicxml"


@pytest.fixture(scope="module")
def long_score() -> Score:
    """The chorale four times over: long enough for several A4 pages."""
    from omr_engine.notation.music21_io import read_score

    score, _ = read_score(SAMPLE)
    measures = []
    for copy_index in range(4):
        for m in score.measures:
            m = copy.deepcopy(m)
            m.id = f"c{copy_index}{m.id}"
            measures.append(m)
    return Score(parts=score.parts, measures=measures, title=score.title)


def quarters_only() -> Score:
    """One measure of quarter notes: no ties or slurs, so every curve drawn is a glyph."""
    notes = [Note([Pitch.parse(p)], Duration("quarter")) for p in ("C5", "D5", "E5", "F5")]
    measure = Measure("m1", [StaffMeasure(clef="G2", key=0, time="4/4", voices=[notes])])
    return Score(parts=[Part(staves=1)], measures=[measure])


def verovio_page_count(score: Score) -> int:
    tk = new_toolkit({"footer": "none", "header": "none", **PDF_OPTIONS})
    assert tk.loadData(
        measures_to_mei(score.parts, score.measures, score.contexts_before(0), score.title)
    )
    return tk.getPageCount()


def ink(page: pymupdf.Page) -> float:
    pix = page.get_pixmap(dpi=50, colorspace=pymupdf.csGRAY)
    samples = np.frombuffer(pix.samples, np.uint8)
    return float((samples < 128).mean())


def test_one_vector_page_per_verovio_page(long_score):
    expected = verovio_page_count(long_score)
    assert expected > 1
    with pymupdf.open("pdf", score_to_pdf(long_score)) as pdf:
        assert pdf.page_count == expected
        for page in pdf:
            assert page.get_images() == []
            assert page.get_drawings()
            assert ink(page) > 0.005  # the paths are drawn, not invisible
            assert page.rect.width == pytest.approx(A4_WIDTH_PT)
            assert page.rect.height == pytest.approx(A4_WIDTH_PT * 2970 / 2100, rel=0.01)


def test_smufl_glyphs_are_drawn_as_paths():
    # No footer: its Verovio logo is curved paths too.
    options = {**PDF_OPTIONS, "footer": "none"}
    score = quarters_only()
    (svg,) = engrave_svg(measures_to_mei(score.parts, score.measures, []), options)
    with pymupdf.open("pdf", score_to_pdf(score, options)) as pdf:
        page = pdf[0]
        assert page.get_images() == []
        # Clef, time signature and noteheads are SMuFL glyphs, each a <use> of a path in the
        # SVG's <defs>: each must come out as a filled outline with curves (staff lines,
        # stems and barlines have none).
        curved = [
            d
            for d in page.get_drawings()
            if d["fill"] is not None and any(item[0] == "c" for item in d["items"])
        ]
        assert len(curved) == svg.count("<use") == 7


def test_flatten_scales_to_the_page_width_and_rejects_other_svg():
    tk = new_toolkit({"footer": "none", "header": "none", **PDF_OPTIONS})
    score = quarters_only()
    tk.loadData(measures_to_mei(score.parts, score.measures, score.contexts_before(0)))
    flat = flatten_svg(tk.renderToSVG(1), width=595)
    assert flat.startswith('<svg xmlns="http://www.w3.org/2000/svg"') and 'width="595"' in flat
    assert "<defs>" in flat and "<style" not in flat
    with pytest.raises(PdfError):
        flatten_svg('<svg width="10px" height="10px"></svg>')
    with pytest.raises(PdfError):
        svg_pages_to_pdf([])


def test_convert_writes_a_vector_pdf(tmp_path, capsys):
    out = tmp_path / "chorale.pdf"
    assert main(["convert", str(SAMPLE), str(out)]) == 0
    with pymupdf.open(out) as pdf:
        assert pdf.page_count >= 1
        assert pdf[0].get_images() == [] and pdf[0].get_drawings()
    assert not list(tmp_path.glob(".*partial*"))


def test_the_pdf_shows_the_title_and_the_part_names():
    from omr_engine.notation.music21_io import read_score

    score, _ = read_score(SAMPLE)
    score.title = "Chorale BWV 66.6"
    text = pymupdf.open(stream=score_to_pdf(score), filetype="pdf")[0].get_text()
    assert "Chorale BWV 66.6" in text
    for name in ("Soprano", "Alto", "Tenor", "Bass"):
        assert name in text
