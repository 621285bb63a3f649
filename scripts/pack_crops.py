"""Pack a random sample of built staff crops into one small .tar.xz that travels to the
device machine (scripts/device_train.sh unpacks it with EXTRA_PACK and trains on it).

The device cannot engrave with LilyPond or MuseScore, and what travels is capped at 64 MiB,
so the engraver crops built here go in a sample. Their PNGs are stored uncompressed inside
the pack's shards and the whole pack is xz-compressed: xz on raw pixels of clean engraving is
about 3.4 times smaller than the PNGs' own deflate (500 LilyPond/MuseScore crops: 7.9 MB of
PNG, 2.3 MB packed), and lossless.

    python scripts/pack_crops.py /work/data/eng-train-s2* --count 1500 --out .devdata/eng.tar.xz

Halved and cut to 16 grey levels (``--scale 0.5 --levels 16``), a crop packs into about
2.6 KB instead of 5.8 KB: 6,500 LilyPond/MuseScore crops in 17.1 MB (session 33).
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
import numpy as np

from omr_engine.synth.dataset import _iter_printed, dataset_shards, decode_png

SHARD = 250


def _entry(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def scaled(image: np.ndarray, meta: dict, scale: float) -> tuple[np.ndarray, dict]:
    """A crop resized by ``scale`` both ways (area averaging), its measure boxes and size
    moved along; ``scale`` 1 returns it as it is."""
    if scale == 1.0:
        return image, meta
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    meta = dict(meta, packed_scale=scale)
    if meta.get("measure_boxes"):
        meta["measure_boxes"] = [[round(v * scale, 2) for v in b] for b in meta["measure_boxes"]]
    if "dpi" in meta:
        meta["dpi"] = round(float(meta["dpi"]) * scale, 2)
    meta["height"], meta["width"] = out.shape[:2]
    return out, meta


def quantized(image: np.ndarray, levels: int) -> np.ndarray:
    """The crop's shades rounded to ``levels`` evenly spaced grey levels (256: unchanged).
    Clean engraving is black, white and anti-aliased edges; fewer levels let xz pack it
    tighter, and the trainer degrades every crop afresh on top."""
    if levels >= 256:
        return image
    step = 255.0 / (levels - 1)
    return (np.round(image / step) * step).astype(np.uint8)


def _shard_bytes(
    examples: list[tuple[bytes, dict]], first: int, scale: float = 1.0, levels: int = 256
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i, (png, meta) in enumerate(examples):
            key = f"{first + i:07d}"
            image, meta = scaled(decode_png(png), meta, scale)
            image = quantized(image, levels)
            ok, raw = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 0])
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
    ap.add_argument(
        "--skip",
        type=int,
        default=0,
        help="crops passed over after shuffling: with the same folders and seed, "
        "--skip N takes the crops an earlier --count N pack left out",
    )
    ap.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="resize every crop by this factor before packing (0.5: a staff's lines span "
        "about 33 px, about what the model's 64 px input gives them)",
    )
    ap.add_argument(
        "--levels",
        type=int,
        default=256,
        help="grey levels kept (16 with --scale 0.5: 200 LilyPond/MuseScore crops pack "
        "into 0.54 MB against 1.10 MB as built)",
    )
    args = ap.parse_args()
    if not 2 <= args.levels <= 256:
        ap.error("--levels must be between 2 and 256")
    if not 0 < args.scale <= 1:
        ap.error("--scale must be above 0 and at most 1")
    if args.skip < 0:
        ap.error("--skip must not be negative")

    shards = [s for f in args.folders for s in dataset_shards(f)]
    examples = [(png, meta) for s in shards for _, png, meta in _iter_printed(s)]
    random.Random(args.seed).shuffle(examples)
    keep = examples[args.skip : args.skip + args.count]
    if not keep:
        ap.error(f"no crops left: {len(examples)} built, {args.skip} skipped")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    manifest = {
        "config": {
            "packed_from": [str(f) for f in args.folders],
            "seed": args.seed,
            "skip": args.skip,
            "scale": args.scale,
            "levels": args.levels,
        },
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
            _entry(tar, name, _shard_bytes(part, start, args.scale, args.levels))
            manifest["shards"].append({"name": name, "count": len(part)})
        _entry(tar, "manifest.json", json.dumps(manifest, indent=1).encode())
    engravers = Counter(meta.get("engraved_from", "verovio") for _, meta in keep)
    print(
        f"{len(keep)} of {len(examples)} crops {dict(engravers)} -> {args.out} "
        f"({args.out.stat().st_size / 1e6:.1f} MB)"
    )


if __name__ == "__main__":
    main()
