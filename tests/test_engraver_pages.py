"""Page layout on pages engraved by LilyPond and MuseScore 3, not by Verovio.

Two fixture pages (``tests/fixtures/engravers``, made by ``benchmarks/make_engraver_pages.py``
and reduced to 200 dpi) carry their truth in ``truth.json``: staves, systems and measures
as the engraver laid them out, counted in its PDF. The layout must find exactly those,
also after a scan-like degradation with a 4 degree rotation. The live tests engrave a
chorale excerpt with the real programs and check the benchmark's PDF reading against the
excerpt and the layout against that; they are skipped where a program is not installed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from benchmark_modules import load_benchmark

from omr_engine.layout import analyze_page
from omr_engine.synth.degrade import Degradation, apply

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "engravers"
TRUTH = json.loads((FIXTURES / "truth.json").read_text(encoding="utf-8"))
SAMPLE = ROOT / "resources" / "samples" / "bwv66.6.musicxml"


def load_generator():
    """benchmarks/make_engraver_pages.py as a module (benchmarks is not a package)."""
    return load_benchmark("make_engraver_pages")


def counts(image: np.ndarray) -> dict[str, int]:
    layout = analyze_page(image)
    return {
        "staves": len(layout.staves),
        "systems": len(layout.systems),
        "measures": sum(len(s.measure_boxes) for s in layout.systems),
    }


def fixture(name: str) -> np.ndarray:
    image = cv2.imread(str(FIXTURES / name), cv2.IMREAD_GRAYSCALE)
    assert image is not None, name
    return image


def expected(name: str) -> dict[str, int]:
    return {k: TRUTH[name][k] for k in ("staves", "systems", "measures")}


def test_fixtures_cover_both_engravers_small_and_grayscale():
    assert sorted(t["engraver"] for t in TRUTH.values()) == ["lilypond", "musescore"]
    for name in TRUTH:
        path = FIXTURES / name
        assert path.stat().st_size < 300_000
        assert fixture(name).ndim == 2


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_layout_finds_the_engravers_staves_systems_and_measures(name):
    assert counts(fixture(name)) == expected(name)


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_layout_holds_on_a_rotated_degraded_scan(name):
    scan = Degradation(
        rotation_deg=4.0,
        ink_spread=0.3,
        paper_tone=235.0,
        ink_tone=30.0,
        blur_sigma=0.6,
        noise_sigma=6.0,
        jpeg_quality=60,
    )
    image, _ = apply(fixture(name), scan, 7)
    got = counts(image)
    assert got == expected(name)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", sorted(TRUTH))
def test_faded_ink_keeps_staves_and_systems(name, seed):
    """Patchy fading breaks staff lines and the opening line of a system into pieces;
    each staff must still run its whole length and the system hold together."""
    faded = Degradation(ink_fade=0.4, rotation_deg=-2.0, noise_sigma=4.0, paper_tone=240.0)
    image, _ = apply(fixture(name), faded, seed)
    got = counts(image)
    assert (got["staves"], got["systems"]) == (TRUTH[name]["staves"], TRUTH[name]["systems"])


def engrave_and_read(engraver: str, tmp_path: Path) -> tuple[dict, np.ndarray]:
    """Engrave the sample chorale's first 6 measures; the generator's truth and the page."""
    gen = load_generator()
    from omr_engine.notation.music21_io import load_music21

    _, score, xml = gen.cut(load_music21(SAMPLE), 6)
    src = tmp_path / "excerpt.musicxml"
    src.write_text(xml, encoding="utf-8")
    pdf = tmp_path / "excerpt.pdf"
    gen.engrave_pdf(engraver, src, pdf)
    image, pages, staves, printed = gen.rasterize(pdf, 200)
    assert pages == 1
    return {"staves": staves[0], "measures_per_staff": printed, "score": score}, image


@pytest.mark.parametrize(
    "engraver, tools",
    [("lilypond", ("lilypond", "musicxml2ly")), ("musescore", ("mscore3", "musescore3"))],
)
def test_live_engraving_truth_and_layout_agree(engraver, tools, tmp_path):
    if engraver == "lilypond" and not all(shutil.which(t) for t in tools):
        pytest.skip("LilyPond is not installed")
    if engraver == "musescore" and not any(shutil.which(t) for t in tools):
        pytest.skip("MuseScore 3 is not installed")
    truth, image = engrave_and_read(engraver, tmp_path)
    score = truth["score"]
    # The PDF reading agrees with the excerpt: four staves a system, every staff of a
    # system with the same measures, six measures in all.
    assert truth["staves"] % 4 == 0 and truth["staves"] > 0
    per_system = [truth["measures_per_staff"][i : i + 4] for i in range(0, truth["staves"], 4)]
    assert all(len(set(s)) == 1 for s in per_system)
    assert sum(s[0] for s in per_system) == len(score.measures) == 6
    assert counts(image) == {
        "staves": truth["staves"],
        "systems": truth["staves"] // 4,
        "measures": 6,
    }
