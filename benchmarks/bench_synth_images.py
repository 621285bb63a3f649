"""Speed of the image side of the synthetic data engine, on one core.

Prints: engraving time per page for each music font; degradation time per staff and per
system crop; end-to-end staff crops per second (sample a style, engrave, crop, degrade
each crop once, and also three times per engraving); peak memory. With ``--preview PATH``
it also writes a grid of random degraded crops for looking at.

Times are this process's CPU time (time.process_time), so that other work on a shared
machine does not inflate them; the end-to-end line also gives wall-clock time. OpenCV is
held to one thread; Verovio and MuPDF are single-threaded.

    python benchmarks/bench_synth_images.py [--seconds 20] [--preview docs/synth_preview_images.png]
    python benchmarks/bench_synth_images.py --preview-only --preview docs/synth_preview_images.png

MusicXML export from music21 happens once before timing; it is input preparation, not
part of the engine.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omr_engine.synth.degrade import apply, sample_degradation  # noqa: E402
from omr_engine.synth.engrave import (  # noqa: E402
    FONTS,
    engrave,
    sample_style,
    staff_crops,
    system_crops,
)

PIECES = [
    ("bach/bwv66.6", None),
    ("bach/bwv7.7", None),
    ("essenFolksong/altdeu10", 1),
    ("essenFolksong/altdeu10", 2),
    ("airdsAirs/book1.abc", 4),
    ("schoenberg/opus19/movement2", None),
    ("joplin/maple_leaf_rag", None),
    ("mozart/k155/movement2", None),
]


def load_pieces() -> list[tuple[str, str]]:
    from music21 import corpus
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    out = []
    for path, number in PIECES:
        score = corpus.parse(path, number=number) if number else corpus.parse(path)
        name = f"{path}#{number}" if number else path
        out.append((name, GeneralObjectExporter(score).parse().decode()))
    return out


def bench_engraving(pieces, rng, rounds: int) -> None:
    print("\n## Engraving (verovio layout + SVG, MuPDF raster, SVG geometry parse)")
    print(f"{'font':<10} {'pages':>6} {'ms/page':>9} {'staves/page':>12} {'ms/staff':>9}")
    for font in FONTS:
        pages = staves = 0
        elapsed = 0.0
        for _ in range(rounds):
            for _, xml in pieces:
                style = dataclasses.replace(sample_style(rng), font=font)
                t = time.process_time()
                result = engrave(xml, style)
                elapsed += time.process_time() - t
                pages += len(result)
                staves += sum(len(s.staff_boxes) for p in result for s in p.systems)
        print(
            f"{font:<10} {pages:>6} {1000 * elapsed / pages:>9.1f} {staves / pages:>12.1f}"
            f" {1000 * elapsed / staves:>9.2f}"
        )


def bench_degradation(pieces, rng) -> None:
    print("\n## Degradation (one sampled degradation per crop)")
    staff, system = [], []
    for _, xml in pieces:
        for page in engrave(xml, sample_style(rng))[:2]:
            staff += [c.image for c in staff_crops(page)]
            system += [c.image for c in system_crops(page)]
    print(f"{'crops':<8} {'strength':>8} {'n':>5} {'mean px':>9} {'ms/crop':>8}")
    for label, images in (("staff", staff), ("system", system)):
        for strength in (0.25, 0.5, 1.0):
            elapsed = 0.0
            for i, image in enumerate(images):
                d = sample_degradation(rng, strength)
                t = time.process_time()
                apply(image, d, rng_seed=i)
                elapsed += time.process_time() - t
            px = np.mean([im.size for im in images])
            print(
                f"{label:<8} {strength:>8.2f} {len(images):>5} {px:>9.0f}"
                f" {1000 * elapsed / len(images):>8.2f}"
            )


def bench_end_to_end(pieces, rng, seconds: float) -> None:
    print("\n## End to end: sample style, engrave, staff crops, degrade (strength ~ U(0,1))")
    print(
        f"{'degradations/crop':>17} {'pages':>6} {'crops':>6} {'crops/s/core':>13}"
        f" {'ms/crop':>8} {'wall crops/s':>13}"
    )
    for reuse in (1, 3):
        crops = pages = 0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        while time.process_time() - cpu0 < seconds:
            _, xml = pieces[rng.integers(len(pieces))]
            for page in engrave(xml, sample_style(rng)):
                pages += 1
                for crop in staff_crops(page):
                    for _ in range(reuse):
                        d = sample_degradation(rng, rng.random())
                        apply(crop.image, d, rng_seed=crops)
                        crops += 1
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        print(
            f"{reuse:>17} {pages:>6} {crops:>6} {crops / cpu:>13.1f} {1000 * cpu / crops:>8.1f}"
            f" {crops / wall:>13.1f}"
        )


def preview(pieces, rng, path: Path, count: int = 12, width: int = 1400) -> None:
    """Random degraded staff and system crops, different fonts and strengths, one a row."""
    rows = []
    strengths = np.linspace(0.0, 1.0, count)
    for i in range(count):
        name, xml = pieces[i % len(pieces)]
        style = dataclasses.replace(sample_style(rng), font=FONTS[i % len(FONTS)])
        page = engrave(xml, style)[0]
        crops = staff_crops(page) if i % 2 == 0 else system_crops(page)
        crop = crops[rng.integers(len(crops))]
        d = sample_degradation(rng, strengths[i])
        while i in (7, 9) and d.binarize == "none":  # show a couple of bilevel scans too
            d = sample_degradation(rng, strengths[i])
        image, _ = apply(crop.image, d, rng_seed=i)
        scale = min(1.0, width / image.shape[1], 330 / image.shape[0])
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        label = np.full((22, width), 255, np.uint8)
        text = (
            f"{'staff' if i % 2 == 0 else 'system'} | {style.font} | strength {strengths[i]:.2f}"
            f" | {name} | binarize {d.binarize}, jpeg {d.jpeg_quality or '-'},"
            f" dpi x{d.resample:.2f}, rot {d.rotation_deg:+.1f}"
        )
        cv2.putText(label, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1, cv2.LINE_AA)
        body = np.full((image.shape[0], width), 128, np.uint8)
        body[:, : image.shape[1]] = image
        rows += [label, body, np.full((6, width), 90, np.uint8)]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack(rows))
    print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="end-to-end run time")
    parser.add_argument("--rounds", type=int, default=1, help="engraving rounds per font")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preview", type=Path, help="also write a preview grid here")
    parser.add_argument("--preview-only", action="store_true", help="skip the timings")
    args = parser.parse_args()

    cv2.setNumThreads(1)  # per-core numbers: OpenCV would otherwise use every core
    rng = np.random.default_rng(args.seed)
    print(
        f"# bench_synth_images  {platform.processor() or platform.machine()}"
        f"  python {platform.python_version()}  cpus {os.cpu_count()}"
        f"  load average {os.getloadavg()[0]:.1f}"
    )
    t = time.perf_counter()
    pieces = load_pieces()
    print(f"prepared {len(pieces)} pieces as MusicXML in {time.perf_counter() - t:.1f} s (untimed)")
    if not args.preview_only:
        bench_engraving(pieces, rng, args.rounds)
        bench_degradation(pieces, rng)
        bench_end_to_end(pieces, rng, args.seconds)
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\npeak resident memory: {peak_mib:.0f} MiB")
    if args.preview:
        preview(pieces, rng, args.preview)


if __name__ == "__main__":
    main()
