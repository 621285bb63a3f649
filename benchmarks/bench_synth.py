"""Throughput of the synthetic data engine (`omr_engine.synth`), per core.

Prints, as CPU time of this one process (time.process_time, so other work on a shared
machine does not inflate it; OpenCV held to one thread):

1. stages, on generated pieces: generating a Score, its MEI (what is engraved; music21's
   MusicXML, which it replaced, for reference), Verovio engraving + raster, and per example
   tokens + grammar check, degradation, PNG encoding;
2. examples per second per core for generated pieces and for corpus pieces already read
   (a warm piece cache, as in most of a long build), and the cost of reading a corpus
   piece the first time (music21);
3. an end-to-end shard build from an empty folder and an empty cache (`write_shard`, the
   code a build worker runs), with its bytes per example and MiB per 1,000 examples;
4. peak resident memory.

    python benchmarks/bench_synth.py [--examples 300] [--pieces 20] [--seed 0] [--unit both]

`--unit staff` measures what `synth --unit staff` builds (one crop per staff).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omr_engine.synth.build import PNG_PARAMS, BuildConfig, job_examples, write_shard  # noqa: E402
from omr_engine.synth.degrade import apply, sample_degradation  # noqa: E402
from omr_engine.synth.engrave import engrave, sample_style, system_crops  # noqa: E402
from omr_engine.synth.examples import (  # noqa: E402
    crop_tokens,
    grammatical,
    score_mei,
    score_musicxml,
)
from omr_engine.synth.generator import generate_score  # noqa: E402
from omr_engine.synth.sources import PieceStore, split_files, tunes  # noqa: E402


def stages(rng: np.random.Generator, n: int) -> None:
    print("\n## Stages on generated pieces (ms, CPU)")
    t: Counter = Counter()
    examples = 0
    for _ in range(n):
        c = time.process_time()
        score = generate_score(rng)
        t["generate score"] += time.process_time() - c
        c = time.process_time()
        score_musicxml(score)
        t["(MusicXML, music21)"] += time.process_time() - c
        c = time.process_time()
        mei = score_mei(score)
        t["MEI (mei_writer)"] += time.process_time() - c
        c = time.process_time()
        pages = engrave(mei, sample_style(rng))
        t["engrave + raster"] += time.process_time() - c
        for page in pages:
            for crop in system_crops(page):
                c = time.process_time()
                tokens, view, start = crop_tokens(score, crop)
                grammatical(tokens, view, start)
                t["tokens + grammar / example"] += time.process_time() - c
                c = time.process_time()
                image, _ = apply(crop.image, sample_degradation(rng, rng.random()), 1)
                t["degrade / example"] += time.process_time() - c
                c = time.process_time()
                cv2.imencode(".png", image, PNG_PARAMS)
                t["PNG / example"] += time.process_time() - c
                examples += 1
    print(f"{'stage':<28} {'ms':>8}")
    for name, seconds in t.items():
        per = examples if "example" in name else n
        print(f"{name:<28} {1000 * seconds / per:>8.1f}")
    print(f"({n} pieces, {examples} system crops)")


def rates(config: BuildConfig, examples: int, pieces: int, seed: int) -> None:
    print("\n## Examples per second per core (CPU time)")
    rng = np.random.default_rng(seed)
    stats: Counter = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = PieceStore(Path(tmp), memory=pieces + 1)
        # Generated pieces.
        made, c = 0, time.process_time()
        while made < examples:
            made += len(
                job_examples(
                    f"gen/{rng.integers(2**62)}", int(rng.integers(2**62)), config, store, stats
                )
            )
        gen_rate = made / (time.process_time() - c)
        # Corpus: read `pieces` pieces once (cold), then make examples from them (warm).
        files = split_files("train")
        ids = []
        for f in rng.choice(len(files), pieces, replace=False):
            numbers = tunes(files[f])
            ids.append(f"{files[f]}#{numbers[0]}" if numbers else files[f])
        c, readable = time.process_time(), []
        for piece in ids:
            try:
                store.get(piece)
                readable.append(piece)
            except Exception:
                stats["unreadable"] += 1
        read_cost = (time.process_time() - c) / len(ids)
        made, c = 0, time.process_time()
        while made < examples and readable:
            piece = readable[int(rng.integers(len(readable)))]
            made += len(job_examples(piece, int(rng.integers(2**62)), config, store, stats))
        corpus_rate = made / (time.process_time() - c)
    print(f"{'source':<34} {'examples/s/core':>16}")
    print(f"{'generated pieces':<34} {gen_rate:>16.1f}")
    print(f"{'corpus pieces, warm cache':<34} {corpus_rate:>16.1f}")
    mix = 1.0 / (config.generated / gen_rate + (1.0 - config.generated) / corpus_rate)
    print(f"{f'mix ({config.generated:.0%} generated), warm':<34} {mix:>16.1f}")
    print(
        f"reading a corpus piece the first time: {read_cost:.2f} s CPU ({len(ids)} pieces, "
        f"{stats['unreadable']} unreadable)"
    )
    print(f"counts: {dict(stats)}")


def end_to_end(config: BuildConfig, examples: int) -> None:
    print("\n## End to end: one shard from an empty folder and cache (write_shard)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        c, w = time.process_time(), time.perf_counter()
        record = write_shard(out, config, 0, examples, PieceStore(out / "cache"))
        cpu, wall = time.process_time() - c, time.perf_counter() - w
        print(
            f"{examples} examples: {examples / cpu:.1f} examples/s/core (CPU), "
            f"{examples / wall:.1f}/s wall; {record['bytes'] / examples / 1024:.0f} KiB/example "
            f"({record['bytes'] / examples * 1000 / 2**20:.0f} MiB per 1,000); "
            f"{record['stats']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--pieces", type=int, default=20, help="corpus pieces for the warm rate")
    parser.add_argument("--stage-pieces", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unit", choices=("staff", "system", "both"), default="both")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    print(
        f"# bench_synth  {platform.processor() or platform.machine()}  python "
        f"{platform.python_version()}  cpus {os.cpu_count()}  load {os.getloadavg()[0]:.1f}  "
        f"unit {args.unit}"
    )
    config = BuildConfig(seed=args.seed, unit=args.unit)
    stages(np.random.default_rng(args.seed), args.stage_pieces)
    rates(config, args.examples, args.pieces, args.seed)
    end_to_end(config, args.examples)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
