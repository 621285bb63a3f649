"""scripts/pack_crops.py: a sample of built crops, packed small for the device machine,
unpacks into a dataset folder the trainer reads, with every pixel and token kept."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np

from omr_engine.synth.dataset import read_examples

ROOT = Path(__file__).resolve().parent.parent


def _built_folder(root: Path, crops: int) -> dict[str, tuple[np.ndarray, str]]:
    """A dataset folder of one shard, as the builder writes it; returns key -> (image, tokens)."""
    rng = np.random.default_rng(3)
    root.mkdir()
    made = {}
    with tarfile.open(root / "shard-00000.tar", "w") as tar:
        for i in range(crops):
            image = rng.integers(0, 256, size=(40 + i, 90), dtype=np.uint8)
            tokens = f"<clef:G2> <note:C{4 + i % 2}-quarter> <barline>"
            meta = {"unit": "staff", "tokens": tokens, "height": image.shape[0], "width": 90}
            key = f"00000-{i:05d}"
            for name, data in (
                (f"{key}.png", cv2.imencode(".png", image)[1].tobytes()),
                (f"{key}.json", json.dumps(meta).encode()),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            made[tokens + str(image.shape[0])] = (image, tokens)
    manifest = {"shards": [{"name": "shard-00000.tar", "count": crops}], "count": crops}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return made


def _pack(folder: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """Run scripts/pack_crops.py on a built folder (seed 5), as a user would."""
    return subprocess.run(
        [sys.executable, "scripts/pack_crops.py", str(folder), "--seed", "5", "--out", str(out)]
        + list(extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def _unpacked(pack: Path, out: Path) -> list:
    """The pack unpacked into ``out`` the way device_train.sh does, read as the trainer reads."""
    with tarfile.open(pack, "r|xz") as tar:
        tar.extractall(out, filter="data")
    return list(read_examples(out))


def test_packed_crops_unpack_into_a_dataset_with_the_same_pixels_and_tokens(tmp_path):
    made = _built_folder(tmp_path / "built", 7)
    assert _pack(tmp_path / "built", tmp_path / "pack.tar.xz", "--count", "5").returncode == 0
    read = _unpacked(tmp_path / "pack.tar.xz", tmp_path / "unpacked")
    assert len(read) == 5
    for image, tokens, meta in read:
        original, original_tokens = made[" ".join(tokens) + str(image.shape[0])]
        assert np.array_equal(image, original)
        assert meta["tokens"] == original_tokens


def test_a_scaled_pack_moves_the_measure_boxes_with_the_pixels_and_keeps_only_the_levels_asked():
    spec = importlib.util.spec_from_file_location("pack_crops", ROOT / "scripts" / "pack_crops.py")
    pack_crops = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pack_crops)
    scaled, quantized = pack_crops.scaled, pack_crops.quantized
    image = np.full((160, 400), 255, dtype=np.uint8)
    image[60:101:10, 20:380] = 0  # five staff lines, 10 px apart
    image[70:75, 100:104] = 128
    meta = {
        "measure_boxes": [[20.0, 60.0, 380.0, 100.0]],
        "height": 160,
        "width": 400,
        "dpi": 240.0,
    }

    small, moved = scaled(image, meta, 0.5)
    levels = quantized(small, 16)

    assert small.shape == (80, 200)
    assert (moved["height"], moved["width"]) == (80, 200)
    assert moved["measure_boxes"] == [[10.0, 30.0, 190.0, 50.0]]
    assert moved["dpi"] == 120.0 and meta["dpi"] == 240.0  # the original meta is not touched
    rows = np.flatnonzero(small[:, 100] < 200)
    assert rows.min() >= 29 and rows.max() <= 51  # the lines stay inside the moved box
    assert len(np.unique(levels)) <= 16
    assert np.abs(levels.astype(int) - small.astype(int)).max() <= 9
    assert scaled(image, meta, 1.0)[0] is image and quantized(image, 256) is image


def _heights(pack: Path, out: Path) -> list[int]:
    return sorted(image.shape[0] for image, _, _ in _unpacked(pack, out))


def test_a_second_pack_skipping_the_first_takes_exactly_the_crops_the_first_left_out(tmp_path):
    _built_folder(tmp_path / "built", 9)  # crop i is 40 + i pixels high: heights name crops
    assert _pack(tmp_path / "built", tmp_path / "a.tar.xz", "--count", "4").returncode == 0
    second = _pack(tmp_path / "built", tmp_path / "b.tar.xz", "--count", "9", "--skip", "4")
    assert second.returncode == 0
    first, rest = (
        _heights(tmp_path / "a.tar.xz", tmp_path / "a"),
        _heights(tmp_path / "b.tar.xz", tmp_path / "b"),
    )
    assert len(first) == 4 and len(rest) == 5
    assert sorted(first + rest) == list(range(40, 49))

    past_the_end = _pack(tmp_path / "built", tmp_path / "c.tar.xz", "--count", "2", "--skip", "9")
    assert past_the_end.returncode != 0
    assert "no crops left: 9 built, 9 skipped" in past_the_end.stderr
    assert "Traceback" not in past_the_end.stderr
