"""Reading a built dataset gives each crop's tokens as its image prints them: no tie out of
the last notes of a crop that ends where its engraved excerpt ends."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import cv2
import numpy as np

from omr_engine.synth.dataset import read_examples

TIED = "<clef:G2> <time:2/4> <note:C4-quarter> <tie> <note:C4-quarter> <tie> <barline>"
UNTIED = "<clef:G2> <time:2/4> <note:C4-quarter> <tie> <note:C4-quarter> <barline>"


def _shard(root: Path, metas: list[dict], manifest: dict | None = None) -> None:
    root.mkdir()
    image = cv2.imencode(".png", np.full((20, 40), 255, np.uint8))[1].tobytes()
    with tarfile.open(root / "shard-00000.tar", "w") as tar:
        for i, meta in enumerate(metas):
            meta = {"unit": "staff", "tokens": TIED, **meta}
            for name, data in (
                (f"{i:05d}.png", image),
                (f"{i:05d}.json", json.dumps(meta).encode()),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    manifest = {"shards": [{"name": "shard-00000.tar"}], **(manifest or {})}
    (root / "manifest.json").write_text(json.dumps(manifest))


def test_a_verovio_crop_at_its_windows_end_reads_without_the_tie_out_of_it(tmp_path):
    _shard(
        tmp_path / "verovio",
        [
            {"piece": "a", "measures": [4, 5], "window": [0, 5], "engraved_from": "score"},
            {"piece": "a", "measures": [3, 4], "window": [0, 5], "engraved_from": "score"},
        ],
    )
    tokens = [" ".join(t) for _, t, _ in read_examples(tmp_path / "verovio")]
    assert tokens == [UNTIED, TIED]  # the second crop's line goes on: its half arc is printed


def test_an_older_engraver_crop_of_an_excerpts_last_system_reads_without_it(tmp_path):
    # LilyPond crops built before they kept a window: one page holds the whole excerpt
    _shard(
        tmp_path / "lilypond",
        [
            {"piece": "a", "measures": [0, 3], "engraved_from": "lilypond"},
            {"piece": "a", "measures": [3, 6], "engraved_from": "lilypond"},
            {"piece": "b", "measures": [0, 2], "engraved_from": "lilypond"},
        ],
    )
    read = list(read_examples(tmp_path / "lilypond"))
    assert [" ".join(t) for _, t, _ in read] == [TIED, UNTIED, UNTIED]
    assert [m["window"] for _, _, m in read] == [[0, 6], [0, 6], [0, 2]]


def test_a_pack_of_older_engraver_crops_keeps_their_tokens_as_built(tmp_path):
    # a pack's shard holds a sample of many pieces' crops: where each excerpt ends is unknown
    _shard(
        tmp_path / "pack",
        [{"piece": "a", "measures": [0, 3], "engraved_from": "musescore"}],
        {"config": {"packed_from": ["/work/data/eng-train-s31"]}},
    )
    assert [" ".join(t) for _, t, _ in read_examples(tmp_path / "pack")] == [TIED]
