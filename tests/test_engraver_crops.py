"""Training crops engraved by LilyPond and MuseScore 3 (``omr_engine.synth.engravers``).

The live tests run the real engravers and are skipped where one is not installed (CI
installs MuseScore 3).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pymupdf
import pytest

from omr_engine.layout import analyze_page
from omr_engine.notation.music21_io import load_music21
from omr_engine.notation.tokens import score_to_tokens
from omr_engine.synth.dataset import read_examples, read_manifest
from omr_engine.synth.engravers import (
    build_engraver_crops,
    cut,
    engrave_pdf,
    pdf_staves,
    rasterize,
    staff_crops,
)
from omr_engine.synth.examples import single_staff

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "resources" / "samples" / "bwv66.6.musicxml"
MUSESCORE = shutil.which("mscore3") or shutil.which("musescore3")
needs_musescore = pytest.mark.skipif(MUSESCORE is None, reason="MuseScore 3 is not installed")


@needs_musescore
def test_each_staff_crop_shows_one_staff_and_the_measures_its_tokens_hold(tmp_path):
    _, score, xml = cut(load_music21(SAMPLE), 6)
    src, pdf = tmp_path / "excerpt.musicxml", tmp_path / "excerpt.pdf"
    src.write_text(xml, encoding="utf-8")
    engrave_pdf("musescore", src, pdf)
    image, pages, _, measures = rasterize(pdf, 200)
    with pymupdf.open(pdf) as doc:
        staves = pdf_staves(doc[0])
    assert pages == 1
    crops = staff_crops(image, staves, measures, score, 200 / 72)
    assert len(crops) == len(staves) and len(crops) % 4 == 0
    spans = []
    for i, (crop, tokens, meta) in enumerate(crops):
        start, stop = meta["measures"]
        staff = i % 4
        assert meta["staff"] == staff
        assert tokens == score_to_tokens(single_staff(score, staff), start, stop)
        layout = analyze_page(crop)  # the crop holds its own staff and no other
        assert len(layout.staves) == 1
        assert sum(len(s.measure_boxes) for s in layout.systems) == stop - start
        spans.append((start, stop))
    # the systems' measures follow on and make up the excerpt
    starts = sorted(set(spans))
    assert starts[0][0] == 0 and starts[-1][1] == len(score.measures) == 6
    assert all(a[1] == b[0] for a, b in zip(starts, starts[1:], strict=False))


@needs_musescore
def test_a_build_writes_the_asked_number_of_crops_readable_as_a_dataset(tmp_path):
    out = tmp_path / "engraved"
    manifest = build_engraver_crops(out, 10, ["musescore"], seed=3, shard_size=4)
    assert manifest["count"] == 10 and [s["count"] for s in manifest["shards"]] == [4, 4, 2]
    assert read_manifest(out)["complete"] is True
    examples = list(read_examples(out, ["staff"]))
    assert len(examples) == 10
    for image, tokens, meta in examples:
        assert image.ndim == 2 and image.shape == (meta["height"], meta["width"])
        assert tokens[0].startswith("<clef:")
        assert meta["engraved_from"] == "musescore" and meta["strength"] == 0.0
        assert not meta["piece"].startswith("gen/")
    with pytest.raises(FileExistsError):
        build_engraver_crops(out, 10, ["musescore"], seed=3)


def test_engraved_crops_are_staff_crops_only(tmp_path, capsys):
    from omr_engine.cli import main

    argv = ["synth", "--engraver", "musescore", "--unit", "system"]
    code = main([*argv, "--out", str(tmp_path / "x"), "--count", "5"])
    assert code == 2
    assert "staff crops only" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_lazily_loaded_verb_reports_a_bad_option_in_one_line_under_python_m(tmp_path):
    # `python -m omr_engine.cli` runs this file as __main__; the verb's CommandError
    # comes from omr_engine.cli and must still be caught, not shown as a traceback.
    argv = ["synth", "--engraver", "musescore", "--unit", "system", "--count", "5"]
    run = subprocess.run(
        [sys.executable, "-m", "omr_engine.cli", *argv, "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "staff crops only" in run.stderr and "Traceback" not in run.stderr


@needs_musescore
def test_a_build_stopped_early_leaves_a_dataset_of_the_shards_it_wrote(tmp_path):
    out = tmp_path / "engraved"

    def stop_after_the_first_shard(done: int, count: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_engraver_crops(
            out, 10, ["musescore"], seed=3, shard_size=4, progress=stop_after_the_first_shard
        )
    manifest = read_manifest(out)
    assert manifest["complete"] is False and manifest["count"] == 4
    assert len(list(read_examples(out, ["staff"]))) == 4
    with pytest.raises(FileExistsError):
        build_engraver_crops(out, 10, ["musescore"], seed=3)
