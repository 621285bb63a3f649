"""The `deepmusic-ocr synth` verb: build a synthetic dataset, or preview examples.

    deepmusic-ocr synth --out DIR --count N [--workers W] [--seed S] [--unit both]
                        [--strength-max F] [--split train|val]
    deepmusic-ocr synth --preview sheet.png [--count 12] [--seed S]
    deepmusic-ocr synth --engraver lilypond --engraver musescore --out DIR --count N

With ``--engraver`` the pages are engraved by LilyPond or MuseScore 3 instead of Verovio
(corpus pieces only, clean staff crops; ``omr_engine.synth.engravers``); such a build
does not resume.

A build can be stopped with Ctrl-C (the unfinished shards are dropped) and continued by
running the same command again; the same seed always gives the same shards.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


def cmd_synth(args: argparse.Namespace) -> int:
    import cv2

    from ..cli import EXIT_INTERRUPTED, CommandError
    from .build import BuildConfig, BuildError, build, stderr_progress

    cv2.setNumThreads(1)
    try:
        config = BuildConfig(
            seed=args.seed,
            unit=args.unit,
            strength_max=args.strength_max,
            split=args.split,
            shard_size=args.shard_size,
            generated=args.generated,
            collections=tuple(args.collections or ()),
        )
    except ValueError as e:
        raise CommandError(str(e)) from e
    if args.preview is not None:
        from .preview import preview_examples, write_preview

        count = args.count if args.count is not None else 12
        cache = args.cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        examples = preview_examples(count, config, Path(cache) / "deepmusic-ocr-synth")
        write_preview(args.preview, examples)
        print(f"wrote {args.preview} ({len(examples)} examples)", file=sys.stderr)
        return 0
    if args.out is None or args.count is None:
        raise CommandError("synth needs --out DIR and --count N (or --preview FILE)")
    if args.count < 1:
        raise CommandError("--count must be at least 1")
    if args.workers < 0:
        raise CommandError("--workers must be 0 (in this process) or more")
    if args.engraver:
        return _build_engraved(args)
    try:
        summary = build(
            args.out,
            args.count,
            config,
            workers=args.workers,
            progress=stderr_progress(),
            cache_dir=args.cache,
        )
    except BuildError as e:
        raise CommandError(str(e)) from e
    except KeyboardInterrupt:
        print(
            "\ndeepmusic-ocr: interrupted; finished shards are kept, run the same command "
            "to continue",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    dropped = {k: v for k, v in summary.stats.items() if k != "examples"}
    print(
        f"{summary.examples} examples in {summary.shards} shards "
        f"({summary.built_shards} built now in {summary.seconds:.0f} s), "
        f"{_human(summary.bytes)} of shards, {_human(_size(Path(args.out)))} in {args.out}",
        file=sys.stderr,
    )
    print(
        f"unreadable corpus pieces: {summary.failed_pieces}; "
        + ", ".join(f"{k} {v}" for k, v in dropped.items()),
        file=sys.stderr,
    )
    return 0


def _build_engraved(args: argparse.Namespace) -> int:
    """``synth --engraver``: staff crops engraved by LilyPond or MuseScore 3."""
    import time

    from ..cli import EXIT_INTERRUPTED, CommandError
    from .engravers import build_engraver_crops

    if args.unit == "system":
        raise CommandError("--engraver builds staff crops only (--unit staff)")
    start = time.monotonic()

    def progress(done: int, count: int) -> None:
        print(f"{done}/{count} crops, {time.monotonic() - start:.0f} s", file=sys.stderr)

    try:
        manifest = build_engraver_crops(
            args.out,
            args.count,
            tuple(dict.fromkeys(args.engraver)),
            split=args.split,
            seed=args.seed,
            workers=max(1, args.workers),
            shard_size=args.shard_size,
            progress=progress,
        )
    except (RuntimeError, FileExistsError) as e:
        raise CommandError(str(e)) from e
    except KeyboardInterrupt:
        print(
            "\ndeepmusic-ocr: interrupted; the shards written so far are a dataset "
            "(manifest.json, complete: false)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    pieces = ", ".join(f"{k} {v}" for k, v in manifest["pieces"].items())
    print(
        f"{manifest['count']} crops in {len(manifest['shards'])} shards, "
        f"{_human(_size(Path(args.out)))} in {args.out}; pieces engraved: {pieces}",
        file=sys.stderr,
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth",
        help="build a synthetic training dataset (or --preview a contact sheet)",
        description="Build a synthetic training dataset of crops and tokens, or preview one.",
    )
    p.add_argument("--out", type=Path, help="dataset folder (created; an existing one resumes)")
    p.add_argument("--count", type=int, help="number of examples (default 12 with --preview)")
    p.add_argument("--workers", type=int, default=1, help="processes (0: this one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--unit", choices=("staff", "system", "both"), default="both")
    p.add_argument(
        "--strength-max",
        type=float,
        default=1.0,
        help="largest degradation strength (0 = clean), drawn uniformly per example",
    )
    p.add_argument("--split", choices=("train", "val"), default="train")
    p.add_argument("--shard-size", type=int, default=1000, help="examples per shard")
    p.add_argument("--generated", type=float, default=0.4, help="share of generated pieces (0..1)")
    p.add_argument(
        "--collections",
        nargs="+",
        metavar="NAME",
        help="corpus pieces only from these collections (top folders of the music21 corpus, "
        "e.g. palestrina bach)",
    )
    p.add_argument("--cache", type=Path, help="cache of read corpus pieces (default OUT/cache)")
    p.add_argument("--preview", type=Path, metavar="PNG", help="write a contact sheet instead")
    p.add_argument(
        "--engraver",
        action="append",
        choices=("lilypond", "musescore"),
        help="engrave with LilyPond or MuseScore 3 instead of Verovio (repeatable; corpus "
        "pieces, clean staff crops for training with --degrade-online)",
    )
    p.set_defaults(func=cmd_synth)
