"""Dataset builds: split by piece, resumable, deterministic, streamable."""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from omr_engine.cli import main
from omr_engine.notation.grammar import Grammar
from omr_engine.synth.build import (
    BuildConfig,
    BuildError,
    build,
    format_progress,
    job_examples,
    shard_counts,
)
from omr_engine.synth.dataset import read_examples, read_manifest
from omr_engine.synth.sources import (
    PieceError,
    PieceStore,
    corpus_files,
    split_files,
    split_of,
)

# Generated pieces only: a build test must not wait for music21 to read the corpus.
FAST = BuildConfig(seed=3, shard_size=3, generated=1.0, max_per_job=8)


def test_split_is_by_file_and_deterministic():
    train, val = set(split_files("train")), set(split_files("val"))
    assert not train & val
    assert train | val == set(corpus_files())
    assert 0.03 < len(val) / len(corpus_files()) < 0.07
    # Tunes of an ABC book and the book itself fall on the same side.
    book = next(f for f in corpus_files() if f.startswith("essenFolksong/"))
    assert split_of(f"{book}#3") == split_of(book)
    assert not any(f.endswith(".rntxt") for f in corpus_files())


def test_split_json_lists_the_validation_pieces(tmp_path):
    build(tmp_path, 2, FAST, workers=0)
    split = json.loads((tmp_path / "split.json").read_text())
    assert split["validation"] == list(split_files("val"))
    assert split["validation_files"] + split["train_files"] == len(corpus_files())


def test_generated_pieces_differ_between_splits(tmp_path):
    def pieces(split: str) -> set[str]:
        out = tmp_path / split
        build(out, 3, BuildConfig(**{**_fields(FAST), "split": split}), workers=0)
        return {meta["piece"] for _, _, meta in read_examples(out)}

    assert not pieces("train") & pieces("val")


def _fields(config: BuildConfig) -> dict:
    return {k: v for k, v in config.to_json().items() if k != "format"}


def _bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("shard-*"))}


def test_resume_redoes_nothing_and_rebuilds_identical_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    build(a, 7, FAST, workers=0)
    first = _bytes(a)
    assert sorted(first) == [f"shard-0000{k}.{s}" for k in range(3) for s in ("json", "tar")]
    # Same seed elsewhere: the same bytes.
    build(b, 7, FAST, workers=0)
    assert _bytes(b) == first
    # Lose shard 1; a restart makes only its 3 examples and leaves the others alone.
    (a / "shard-00001.tar").unlink()
    kept = (a / "shard-00000.tar").stat().st_mtime_ns
    seen = []
    summary = build(a, 7, FAST, workers=0, progress=lambda done, total, s: seen.append(done))
    assert summary.built_shards == 1 and summary.examples == 7
    assert seen[0] == 4 and seen[-1] == 7
    assert (a / "shard-00000.tar").stat().st_mtime_ns == kept
    assert _bytes(a) == first
    # Asking for more keeps the full shards and grows the short last one.
    build(a, 9, FAST, workers=0)
    assert (a / "shard-00000.tar").stat().st_mtime_ns == kept
    assert read_manifest(a)["examples"] == 9


def test_interrupted_build_leaves_no_partial_shard_and_continues(tmp_path):
    def stop_at_4(done, total, seconds):
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build(tmp_path, 6, FAST, workers=0, progress=stop_at_4)
    assert not list(tmp_path.glob("*.partial"))
    assert sorted(p.name for p in tmp_path.glob("shard-*.tar")) == ["shard-00000.tar"]
    summary = build(tmp_path, 6, FAST, workers=0)
    assert summary.built_shards == 1 and read_manifest(tmp_path)["complete"]


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    build(tmp_path, 2, FAST, workers=0)
    with pytest.raises(BuildError, match="seed"):
        build(tmp_path, 2, BuildConfig(**{**_fields(FAST), "seed": 4}), workers=0)


def test_shards_stream_as_webdataset_pairs_with_grammatical_tokens(tmp_path):
    build(tmp_path, 5, FAST, workers=0)
    with tarfile.open(tmp_path / "shard-00000.tar") as tar:
        names = tar.getnames()
    assert names == [f"00000-{i:05d}.{s}" for i in range(3) for s in ("png", "json")]
    grammar = Grammar()
    examples = list(read_examples(tmp_path))
    assert len(examples) == 5
    for image, tokens, meta in examples:
        assert image.dtype == np.uint8 and image.shape == (meta["height"], meta["width"])
        assert meta["unit"] in ("staff", "system") and meta["piece"].startswith("gen/")
        assert len(meta["measure_boxes"]) == meta["measures"][1] - meta["measures"][0]
        # A line that does not open the piece needs the context before it; a generated
        # piece states it in its first measure, so check those lines alone.
        if meta["measures"][0] == meta["window"][0] == 0:
            assert grammar.validate_tokens(tokens, piece_start=True) == []
    index = json.loads((tmp_path / "shard-00000.json").read_text())
    assert [e["key"] for e in index["examples"]] == ["00000-00000", "00000-00001", "00000-00002"]
    only_staff = list(read_examples(tmp_path, units=["staff"]))
    assert all(meta["unit"] == "staff" for _, _, meta in only_staff)


def test_torch_dataset_gives_each_worker_its_own_shards(tmp_path):
    torch = pytest.importorskip("torch")
    from omr_engine.synth.dataset import SynthIterableDataset

    build(tmp_path, 6, FAST, workers=0)
    ds = SynthIterableDataset(tmp_path, shuffle_buffer=4, seed=1)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    keys = [
        (ex["meta"]["piece"], tuple(ex["meta"]["measures"]), ex["meta"]["unit"]) for ex in loader
    ]
    assert len(keys) == 6
    plain = [(m["piece"], tuple(m["measures"]), m["unit"]) for _, _, m in read_examples(tmp_path)]
    assert Counter(keys) == Counter(plain)
    first = next(iter(SynthIterableDataset(tmp_path)))
    assert first["ids"] and len(first["ids"]) == len(first["tokens"])


def test_clean_examples_are_degraded_afresh_in_each_pass_and_folders_pool(tmp_path):
    pytest.importorskip("torch")
    from dataclasses import replace

    from omr_engine.synth.dataset import SynthIterableDataset

    clean, other = tmp_path / "clean", tmp_path / "other"
    build(clean, 4, replace(FAST, strength_max=0.0), workers=0)
    build(other, 3, replace(FAST, seed=4, strength_max=0.0), workers=0)
    stored = {
        (m["piece"], tuple(m["measures"]), m["unit"]): image for image, _, m in read_examples(clean)
    }
    assert all(m["strength"] == 0 for _, _, m in read_examples(clean))

    def one_pass(ds):
        return {
            (e["meta"]["piece"], tuple(e["meta"]["measures"]), e["meta"]["unit"]): e for e in ds
        }

    ds = SynthIterableDataset(clean, seed=5, degrade_max=1.0)
    first, second = one_pass(ds), one_pass(ds)
    assert first.keys() == second.keys() == stored.keys()
    changed = 0
    for key, ex in first.items():
        meta = ex["meta"]
        assert 0.0 <= meta["strength"] <= 1.0
        assert ex["image"].shape == (meta["height"], meta["width"])
        assert len(meta["measure_boxes"]) == meta["measures"][1] - meta["measures"][0]
        if meta["strength"] > 0:
            changed += not np.array_equal(ex["image"], stored[key])
        assert second[key]["meta"]["degradation_seed"] != meta["degradation_seed"]
    assert changed >= 2  # the examples read are not the stored clean crops
    # The same seed and pass give the same images; without degrade_max, the stored ones.
    again = one_pass(SynthIterableDataset(clean, seed=5, degrade_max=1.0))
    assert all(np.array_equal(again[k]["image"], first[k]["image"]) for k in first)
    plain = one_pass(SynthIterableDataset(clean, seed=5))
    assert all(np.array_equal(plain[k]["image"], stored[k]) for k in stored)
    # Several folders stream as one.
    assert len(list(SynthIterableDataset([clean, other]))) == 7


def test_unreadable_corpus_piece_is_skipped_and_counted(tmp_path):
    store = PieceStore(tmp_path)
    stats: Counter = Counter()
    failed: set[str] = set()
    assert job_examples("no/such/piece.krn", 1, FAST, store, stats, failed) == []
    assert stats["jobs_unreadable_piece"] == 1 and failed == {"no/such/piece.krn"}
    with pytest.raises(PieceError):
        store.get("no/such/piece.krn")  # the failure is cached too


def test_shard_counts_and_progress_text():
    assert shard_counts(7, 3) == [3, 3, 1]
    assert shard_counts(6, 3) == [3, 3]
    assert format_progress(1200, 100000, 1200 / 85) == "    1200/100000 examples  85.0/s  eta 19:22"


def test_cli_builds_resumes_and_previews(tmp_path, capsys):
    args = ["synth", "--out", str(tmp_path / "d"), "--count", "4", "--workers", "0"]
    args += ["--shard-size", "2", "--generated", "1", "--seed", "5"]
    assert main(args) == 0
    assert "4 examples in 2 shards (2 built now" in capsys.readouterr().err
    assert main(args) == 0
    assert "(0 built now" in capsys.readouterr().err
    sheet = tmp_path / "sheet.png"
    assert main(["synth", "--preview", str(sheet), "--count", "2", "--generated", "1"]) == 0
    assert sheet.stat().st_size > 1000
    assert main(["synth", "--count", "3"]) == 2  # no --out


def _staff_crop(top_margin: int, bottom_margin: int, space: int = 10, note_above: int = 0):
    """A white crop with five staff lines, ``top_margin`` / ``bottom_margin`` px of paper
    around them, and a note head ``note_above`` px above the top line (0: none)."""
    h = top_margin + 4 * space + 1 + bottom_margin
    image = np.full((h, 200), 250, np.uint8)
    for k in range(5):
        image[top_margin + k * space, 5:195] = 0
    if note_above:
        image[top_margin - note_above - 3 : top_margin - note_above + 3, 50:60] = 0
    meta = {
        "unit": "staff",
        "measure_boxes": [[5.0, float(top_margin), 100.0, float(top_margin + 4 * space)]],
    }
    return image, meta


def _margins(image, meta, space=10):
    box = meta["measure_boxes"][0]
    return box[1] / space, (image.shape[0] - box[3]) / space


def test_reframing_draws_each_margin_from_the_range_and_moves_the_boxes():
    from omr_engine.synth.dataset import reframe_vertically

    image, meta = _staff_crop(15, 15)
    rng = np.random.default_rng(0)
    tops, bottoms = [], []
    for _ in range(40):
        out, moved = reframe_vertically(image, meta, (1.0, 5.0), rng)
        top, bottom = _margins(out, moved)
        assert 0.95 <= top <= 5.05 and 0.95 <= bottom <= 5.05
        tops.append(top)
        bottoms.append(bottom)
        # the staff lines are where the moved boxes say, and nothing else is drawn
        line_rows = np.flatnonzero((out < 128).any(axis=1))
        assert line_rows[0] == moved["measure_boxes"][0][1]
        assert line_rows[-1] == moved["measure_boxes"][0][3]
        assert moved["height"] == out.shape[0] and out.shape[1] == 200
        assert out[0, 0] == out[-1, 0] == 250  # padding is the paper's shade
    assert min(tops) < 2.0 < 4.0 < max(tops)  # both cut (from 1.5) and padded
    assert min(bottoms) < 2.0 < 4.0 < max(bottoms)
    assert meta["measure_boxes"][0][1] == 15.0  # the stored example is not changed


def test_reframing_never_cuts_ink_above_the_drawn_margin():
    from omr_engine.synth.dataset import reframe_vertically

    image, meta = _staff_crop(60, 20, note_above=40)  # a ledger note 4 spaces up
    ink_before = int((image < 128).sum())
    rng = np.random.default_rng(1)
    for _ in range(30):
        out, moved = reframe_vertically(image, meta, (0.5, 1.0), rng)
        assert int((out < 128).sum()) == ink_before
        top, bottom = _margins(out, moved)
        assert top >= 4.3  # cut down to the note, not into it
        assert 0.45 <= bottom <= 1.05


def test_stretching_resizes_the_crop_across_and_moves_the_boxes_with_the_ink():
    from omr_engine.synth.dataset import stretch_horizontally

    image = np.full((40, 200), 250, np.uint8)
    image[:, 50] = 0  # a barline at x = 50
    meta = {"measure_boxes": [[0.0, 10.0, 50.0, 30.0], [50.0, 10.0, 200.0, 30.0]]}
    rng = np.random.default_rng(0)
    widths = []
    for _ in range(30):
        out, moved = stretch_horizontally(image, meta, (0.8, 1.3), rng)
        factor = out.shape[1] / 200
        assert out.shape[0] == 40 and 0.8 - 0.01 <= factor <= 1.3 + 0.01
        assert moved["width"] == out.shape[1] and abs(moved["stretch"] - factor) < 0.01
        barline = float(np.mean(np.flatnonzero((out < 200).any(axis=0))))
        assert abs(moved["measure_boxes"][0][2] - barline) <= 1.0  # the box follows the ink
        assert moved["measure_boxes"][1][2] == round(200 * out.shape[1] / 200, 2)
        assert moved["measure_boxes"][0][1:4:2] == [10.0, 30.0]
        widths.append(out.shape[1])
    assert min(widths) < 180 and max(widths) > 240  # both tighter and wider
    assert meta["measure_boxes"][0][2] == 50.0  # the stored example is not changed


def test_streamed_staff_crops_are_framed_afresh_in_each_pass(tmp_path):
    pytest.importorskip("torch")
    from dataclasses import replace

    from omr_engine.synth.dataset import SynthIterableDataset

    build(tmp_path, 4, replace(FAST, strength_max=0.0, unit="staff"), workers=0)

    def key(meta):
        return meta["piece"], tuple(meta["measures"]), meta["system"], meta["staff"]

    def heights(ds):
        return {key(e["meta"]): e["image"].shape[0] for e in ds}

    ds = SynthIterableDataset(tmp_path, units=["staff"], seed=2, margins=(1.0, 6.0))
    stored = {key(m): im.shape[0] for im, _, m in read_examples(tmp_path, ["staff"])}
    first, second = heights(ds), heights(ds)
    assert first.keys() == stored.keys() and len(stored) >= 2
    assert first != stored and first != second
    with pytest.raises(ValueError):
        SynthIterableDataset(tmp_path, margins=(3.0, 1.0))
    # stretched across afresh too, heights untouched
    wide = SynthIterableDataset(tmp_path, units=["staff"], seed=2, stretch=(1.2, 1.5))
    stored_w = {key(m): im.shape for im, _, m in read_examples(tmp_path, ["staff"])}
    shapes = {key(e["meta"]): e["image"].shape for e in wide}
    assert shapes.keys() == stored_w.keys()
    for k, (h, w) in shapes.items():
        assert h == stored_w[k][0] and 1.19 * stored_w[k][1] <= w <= 1.51 * stored_w[k][1]
    with pytest.raises(ValueError):
        SynthIterableDataset(tmp_path, stretch=(0.0, 1.0))


def test_a_build_can_draw_its_corpus_pieces_from_named_collections(tmp_path, capsys):
    from omr_engine.synth.build import corpus_pool

    files, weights = corpus_pool(BuildConfig(collections=("palestrina", "bach")))
    assert {f.split("/")[0] for f in files} == {"palestrina", "bach"}
    assert abs(weights.sum() - 1.0) < 1e-9 and (weights > 0).all()
    everything, _ = corpus_pool(BuildConfig())
    assert set(files) < set(everything) and set(files) <= set(split_files("train"))
    # a build without collections keeps the settings record older builds have
    assert "collections" not in BuildConfig().to_json()
    assert BuildConfig(collections=("bach",)).to_json()["collections"] == ["bach"]
    with pytest.raises(ValueError, match="nope"):
        BuildConfig(collections=("nope",))
    code = main(["synth", "--out", str(tmp_path / "x"), "--count", "2", "--collections", "nope"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "nope" in err and "\n" not in err
    assert not (tmp_path / "x").exists()
