"""Pack a random sample of built staff crops into one small .tar.xz that travels to the
device machine (scripts/device_train.sh unpacks it with EXTRA_PACK and trains on it).

The device cannot engrave with LilyPond or MuseScore, and what travels is capped at 64 MiB,
so the engraver crops built here go in a sample. Their PNGs are stored uncompressed inside
the pack's shards and the whole pack is xz-compressed: xz on raw pixels of clean engraving is
about 3.4 times smaller than the PNGs' own deflate (500 LilyPond/MuseScore crops: 7.9 MB of
PNG, 2.3 MB packed), and lossless.

    python scripts/pack_crops.py /work/data/eng-train-s2* --count 1500 --out .devdata/eng.tar.xz
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import random
import tarfile
from collections import Counter
from pathlib import Path

import cv2

from omr_engine.synth.dataset import _iter_raw, dataset_shards, decode_png

SHARD = 250


def _entry(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _shard_bytes(examples: list[tuple[bytes, dict]], first: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i, (png, meta) in enumerate(examples):
            key = f"{first + i:07d}"
            ok, raw = cv2.imencode(".png", decode_png(png), [cv2.IMWRITE_PNG_COMPRESSION, 0])
            if not ok:
                raise ValueError(f"cannot re-encode crop {key}")
            _entry(tar, f"{key}.png", raw.tobytes())
            _entry(tar, f"{key}.json", json.dumps(meta).encode())
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path, help="built dataset folders")
    ap.add_argument("--count", type=int, required=True, help="crops to keep")
    ap.add_argument("--out", type=Path, required=True, help="the .tar.xz to write")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    shards = [s for f in args.folders for s in dataset_shards(f)]
    examples = [(png, meta) for s in shards for _, png, meta in _iter_raw(s)]
    random.Random(args.seed).shuffle(examples)
    keep = examples[: args.count]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    manifest = {
        "config": {"packed_from": [str(f) for f in args.folders], "seed": args.seed},
        "count": len(keep),
        "complete": True,
        "shards": [],
    }
    with (
        lzma.open(args.out, "wb", preset=9 | lzma.PRESET_EXTREME) as xz,
        tarfile.open(fileobj=xz, mode="w|") as tar,
    ):
        for n, start in enumerate(range(0, len(keep), SHARD)):
            part = keep[start : start + SHARD]
            name = f"shard-{n:05d}.tar"  # the builder's names (synth.build.shard_name)
            _entry(tar, name, _shard_bytes(part, start))
            manifest["shards"].append({"name": name, "count": len(part)})
        _entry(tar, "manifest.json", json.dumps(manifest, indent=1).encode())
    engravers = Counter(meta.get("engraved_from", "verovio") for _, meta in keep)
    print(
        f"{len(keep)} of {len(examples)} crops {dict(engravers)} -> {args.out} "
        f"({args.out.stat().st_size / 1e6:.1f} MB)"
    )


if __name__ == "__main__":
    main()
