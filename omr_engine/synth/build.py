"""Building a sharded dataset: deterministic, resumable, in parallel.

Layout of a dataset folder::

    manifest.json         config, shards done (name, count, sha256), counts of what was dropped
    split.json            the validation corpus files (see `sources`)
    shard-00000.tar       webdataset-style: 00000-00000.png + 00000-00000.json, ...
    shard-00000.json      the shard's index: per example key, unit, piece, size, tokens
    cache/                pieces read from the corpus (a build reads each file once)

Why tar shards of PNG + JSON: a tar is read front to back with no index and no seeking, so
a DataLoader worker streams a shard with constant memory; PNG is lossless (the degraded
pixels are the training input; JPEG would degrade them again) and decodes fast with
OpenCV; JSON keeps tokens and metadata readable by any tool; the layout is the
webdataset convention, so that library can read the shards too. An .npz per shard would
have to be loaded whole (or opened as a zip with random access) and compresses images
worse than PNG.

Determinism: shard k's examples are a prefix of an endless stream that depends only on
(config, k): `numpy.random.default_rng([seed, split, k])` draws the jobs, each job draws its
piece, style, crops and degradations from its own seed. So a restart redoes nothing that
is done, a shard rebuilt later has the same bytes, and how many workers ran does not
matter. A shard is written to `.partial` files and renamed when complete; its index file
is the commit record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import multiprocessing as mp
import os
import queue
import signal
import sys
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .engrave import sample_style
from .examples import UNITS, Example, engrave_examples, printable_excerpt
from .sources import PieceError, PieceStore, file_weights, split_files, tunes, write_split

__all__ = [
    "BuildConfig",
    "BuildError",
    "BuildSummary",
    "build",
    "completed_shards",
    "job_examples",
    "shard_counts",
    "shard_examples",
    "write_shard",
]

# 2: corpus collections weighted by the square root of their size; 3: Scores engraved
# from MEI written directly (`examples.score_mei`), PNGs run-length coded.
FORMAT_VERSION = 3
_SPLIT_CODE = {"train": 0, "val": 1}
# Run-length deflate after the Paeth filter: on degraded crops, 3 ms and 74 KiB a crop
# where the default (level 3, adaptive filters) takes 8 ms for 83 KiB.
PNG_PARAMS = [
    cv2.IMWRITE_PNG_COMPRESSION,
    1,
    cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_RLE,
    cv2.IMWRITE_PNG_FILTER,
    cv2.IMWRITE_PNG_FILTER_PAETH,
]


class BuildError(Exception):
    """A build cannot go on (one sentence for the user)."""


@dataclass(frozen=True)
class BuildConfig:
    """What a dataset's content depends on, besides the number of examples.

    ``generated``: share of jobs on generated pieces (the rest read corpus pieces).
    ``original``: chance to engrave a corpus piece's own MusicXML when it can stand for
    the Score. ``max_per_job``: crops taken from one engraving. ``collections``: when
    given, corpus pieces come only from these top folders of the corpus (e.g.
    ``("palestrina",)``), weighted as among all.
    """

    seed: int = 0
    unit: str = "both"
    strength_max: float = 1.0
    split: str = "train"
    shard_size: int = 1000
    generated: float = 0.4
    original: float = 0.3
    max_per_job: int = 8
    collections: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}")
        if self.split not in _SPLIT_CODE:
            raise ValueError("split must be train or val")
        if not 0.0 <= self.strength_max <= 1.0:
            raise ValueError("strength_max must be within 0..1")
        if self.shard_size < 1 or self.max_per_job < 1:
            raise ValueError("shard_size and max_per_job must be positive")
        object.__setattr__(self, "collections", tuple(self.collections))
        if self.collections:
            if self.generated >= 1.0:
                raise ValueError("collections name corpus pieces, but generated is 1 (none read)")
            known = {f.split("/")[0] for f in split_files(self.split)}
            unknown = sorted(set(self.collections) - known)
            if unknown:
                raise ValueError(
                    f"no {self.split} pieces in corpus collection(s) {', '.join(unknown)}; "
                    f"known: {', '.join(sorted(known))}"
                )

    def to_json(self) -> dict[str, Any]:
        data = {"format": FORMAT_VERSION, **dataclasses.asdict(self)}
        if self.collections:
            data["collections"] = list(self.collections)
        else:  # builds from before the field resume unchanged
            del data["collections"]
        return data


def shard_counts(count: int, shard_size: int) -> list[int]:
    """Examples per shard: full shards and a shorter last one."""
    full, rest = divmod(count, shard_size)
    return [shard_size] * full + ([rest] if rest else [])


# ---------------------------------------------------------------- one job, one shard


def _window(rng: np.random.Generator, n: int, staves: int) -> tuple[int, int]:
    """A run of measures to engrave: longer for fewer staves, sometimes the start."""
    length = max(2, int(rng.uniform(4.0, 32.0) / max(1, staves) ** 0.7))
    length = min(length, n)
    start = 0 if rng.random() < 0.25 else int(rng.integers(0, n - length + 1))
    return start, start + length


def job_examples(
    piece_id: str,
    job_seed: int,
    config: BuildConfig,
    store: PieceStore,
    stats: Counter,
    failed: set[str] | None = None,
) -> list[Example]:
    """The examples of one job: read the piece, pick a window and a style, engrave, crop
    and degrade. Unreadable pieces (added to `failed`) and engraving failures give no
    examples; `stats` counts them."""
    try:
        piece = store.get(piece_id)
    except PieceError:
        stats["jobs_unreadable_piece"] += 1
        if failed is not None:
            failed.add(piece_id)
        return []
    rng = np.random.default_rng(job_seed)
    style = sample_style(rng)
    source = "generated" if piece_id.startswith("gen/") else "corpus"
    extra = {"source": source}
    try:
        if piece.original is not None and rng.random() < config.original:
            score, xml, offset = piece.score, piece.original, 0
        else:
            n, staves = len(piece.score.measures), piece.score.staff_count
            offset, stop = _window(rng, n, staves)
            # The same as excerpting printable(score), without copying the whole piece.
            score, xml = printable_excerpt(piece.score, offset, stop), None
        return engrave_examples(
            score,
            piece_id,
            style,
            rng,
            unit=config.unit,
            strength_max=config.strength_max,
            musicxml=xml,
            offset=offset,
            max_examples=config.max_per_job,
            stats=stats,
            extra=extra,
        )
    except Exception as e:  # one odd piece must not stop a long unattended build
        stats[f"jobs_failed_{type(e).__name__}"] += 1
        return []


def corpus_pool(config: BuildConfig) -> tuple[tuple[str, ...], np.ndarray]:
    """The corpus files a build draws from, and each one's probability: the split's files
    (``sources.file_weights``), only those of ``config.collections`` when it names any."""
    files = split_files(config.split)
    weights = file_weights(config.split)
    if not config.collections:
        return files, weights
    keep = [i for i, f in enumerate(files) if f.split("/")[0] in config.collections]
    return tuple(files[i] for i in keep), weights[keep] / weights[keep].sum()


def shard_examples(
    config: BuildConfig,
    shard: int,
    store: PieceStore,
    stats: Counter,
    failed: set[str] | None = None,
) -> Iterator[Example]:
    """The endless, deterministic example stream of one shard."""
    rng = np.random.default_rng([config.seed, _SPLIT_CODE[config.split], shard])
    files, weights = corpus_pool(config)
    barren = 0
    while True:
        job_seed = int(rng.integers(0, 2**63 - 1))
        if rng.random() < config.generated or not files:
            piece_id = f"gen/{int(rng.integers(0, 2**63 - 1))}"
        else:
            relpath = files[int(rng.choice(len(files), p=weights))]
            numbers = tunes(relpath)
            piece_id = relpath
            if numbers:
                piece_id = f"{relpath}#{numbers[int(rng.integers(0, len(numbers)))]}"
        stats["jobs"] += 1
        examples = job_examples(piece_id, job_seed, config, store, stats, failed)
        if not examples:
            stats["jobs_without_examples"] += 1
            barren += 1
            if barren > 500:
                raise BuildError(f"500 jobs in a row gave no example (shard {shard})")
            continue
        barren = 0
        yield from examples


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}"


def write_shard(
    out: Path,
    config: BuildConfig,
    shard: int,
    count: int,
    store: PieceStore,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write shard `shard` with its first `count` examples; returns its index record."""
    name = shard_name(shard)
    tar_path, index_path = out / f"{name}.tar", out / f"{name}.json"
    partial = out / f"{name}.tar.partial"
    stats: Counter = Counter()
    entries = []
    failed: set[str] = set()
    try:
        with tarfile.open(partial, "w", format=tarfile.GNU_FORMAT) as tar:
            stream = shard_examples(config, shard, store, stats, failed)
            for i in range(count):
                ex = next(stream)
                key = f"{shard:05d}-{i:05d}"
                ok, png = cv2.imencode(".png", ex.image, PNG_PARAMS)
                if not ok:
                    raise BuildError(f"PNG encoding failed for {key}")
                meta = ex.meta()
                blob = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
                for suffix, data in ((".png", png.tobytes()), (".json", blob)):
                    tar.addfile(_tarinfo(key + suffix, len(data)), io.BytesIO(data))
                entries.append(
                    {
                        "key": key,
                        "unit": ex.unit,
                        "piece": ex.piece,
                        "source": meta.get("source", ""),
                        "height": meta["height"],
                        "width": meta["width"],
                        "tokens": len(ex.tokens),
                    }
                )
                if progress is not None:
                    progress(1)
        digest = hashlib.sha256(partial.read_bytes()).hexdigest()
        os.replace(partial, tar_path)
    finally:
        partial.unlink(missing_ok=True)
    record = {
        "shard": shard,
        "name": tar_path.name,
        "count": count,
        "sha256": digest,
        "bytes": tar_path.stat().st_size,
        "stats": dict(sorted(stats.items())),
        "failed_pieces": sorted(failed),
        "examples": entries,
    }
    tmp = index_path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(record, indent=None, separators=(",", ":")))
    os.replace(tmp, index_path)
    return record


def completed_shards(out: Path, counts: list[int]) -> dict[int, dict[str, Any]]:
    """Shards already written with the wanted number of examples."""
    done = {}
    for k, n in enumerate(counts):
        name = shard_name(k)
        tar_path, index_path = out / f"{name}.tar", out / f"{name}.json"
        if not (tar_path.exists() and index_path.exists()):
            continue
        try:
            record = json.loads(index_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if record.get("count") == n and record.get("bytes") == tar_path.stat().st_size:
            done[k] = record
    return done


# ---------------------------------------------------------------- the whole build


@dataclass
class BuildSummary:
    examples: int
    shards: int
    built_shards: int
    seconds: float
    bytes: int
    stats: dict[str, int]
    failed_pieces: int


def _manifest(out: Path, config: BuildConfig, count: int, records: dict[int, dict]) -> dict:
    import music21
    import verovio

    stats: Counter = Counter()
    failed: set[str] = set()
    for r in records.values():
        stats.update(r["stats"])
        failed.update(r["failed_pieces"])
    counts = shard_counts(count, config.shard_size)
    return {
        "config": config.to_json(),
        "count": count,
        "complete": len(records) == len(counts),
        "shards": [
            {"name": r["name"], "count": r["count"], "sha256": r["sha256"], "bytes": r["bytes"]}
            for _, r in sorted(records.items())
        ],
        "examples": sum(r["count"] for r in records.values()),
        "stats": dict(sorted(stats.items())),
        "failed_pieces": sorted(failed),
        "versions": {
            "music21": str(music21.__version__),
            "verovio": verovio.toolkit().getVersion(),
        },
    }


def _write_manifest(out: Path, manifest: dict) -> None:
    tmp = out / "manifest.json.partial"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / "manifest.json")


def _check_config(out: Path, config: BuildConfig) -> None:
    path = out / "manifest.json"
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text()).get("config")
    except (OSError, json.JSONDecodeError):
        return
    if old is not None and old != config.to_json():
        diff = ", ".join(
            f"{k} {old.get(k)!r} (now {v!r})"
            for k, v in config.to_json().items()
            if old.get(k) != v
        )
        raise BuildError(f"{out} was built with other settings: {diff}; use another --out")


# Worker state (each process has its own).
_worker_store: PieceStore | None = None
_worker_queue: Any = None
_worker_parent = 0


def _init_worker(cache_dir: str, progress_queue: Any) -> None:
    global _worker_store, _worker_queue, _worker_parent
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    cv2.setNumThreads(1)
    _worker_store = PieceStore(Path(cache_dir))
    _worker_queue = progress_queue
    _worker_parent = os.getppid()


def _run_shard(args: tuple[str, BuildConfig, int, int]) -> dict[str, Any]:
    out, config, shard, count = args
    assert _worker_store is not None

    def report(n: int) -> None:
        if os.getppid() != _worker_parent:
            raise SystemExit(1)  # the build was killed: stop (the shard stays partial)
        _worker_queue.put(n)

    return write_shard(Path(out), config, shard, count, _worker_store, report)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so that workers are stopped too."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated()


def build(
    out: Path,
    count: int,
    config: BuildConfig,
    workers: int = 1,
    progress: Callable[[int, int, float], None] | None = None,
    cache_dir: Path | None = None,
) -> BuildSummary:
    """Build (or continue) a dataset of `count` examples in `out`.

    `workers` 0 runs in this process. `progress(done, total, seconds)` is called as
    examples are made. On KeyboardInterrupt, workers are stopped, unfinished shards are
    discarded and the interrupt is raised again; a later call continues.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_config(out, config)
    for stale in out.glob("*.partial"):
        stale.unlink()
    cache_dir = Path(cache_dir) if cache_dir else out / "cache"
    write_split(out)
    counts = shard_counts(count, config.shard_size)
    records = completed_shards(out, counts)
    _write_manifest(out, _manifest(out, config, count, records))
    todo = [k for k in range(len(counts)) if k not in records]
    done = sum(records[k]["count"] for k in records)
    start = time.perf_counter()
    made = 0

    def tick(n: int) -> None:
        nonlocal made
        made += n
        if progress is not None:
            progress(done + made, count, time.perf_counter() - start)

    tick(0)
    if workers <= 0:
        store = PieceStore(cache_dir)
        for k in todo:
            records[k] = write_shard(out, config, k, counts[k], store, tick)
            _write_manifest(out, _manifest(out, config, count, records))
    else:
        _build_parallel(out, config, counts, todo, workers, cache_dir, records, tick, count)
    total_bytes = sum(r["bytes"] for r in records.values())
    manifest = _manifest(out, config, count, records)
    _write_manifest(out, manifest)
    return BuildSummary(
        examples=manifest["examples"],
        shards=len(records),
        built_shards=len(todo),
        seconds=time.perf_counter() - start,
        bytes=total_bytes,
        stats=manifest["stats"],
        failed_pieces=len(manifest["failed_pieces"]),
    )


def _build_parallel(
    out: Path,
    config: BuildConfig,
    counts: list[int],
    todo: list[int],
    workers: int,
    cache_dir: Path,
    records: dict[int, dict],
    tick: Callable[[int], None],
    count: int,
) -> None:
    ctx = mp.get_context("spawn")  # no inherited locks or threads from the parent
    progress_queue = ctx.Queue()
    pool = ctx.Pool(workers, _init_worker, (str(cache_dir), progress_queue))
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        pending = {
            k: pool.apply_async(_run_shard, ((str(out), config, k, counts[k]),)) for k in todo
        }
        while pending:
            with contextlib.suppress(queue.Empty):
                tick(progress_queue.get(timeout=0.5))
                while True:  # drain what else arrived; Empty ends it
                    tick(progress_queue.get_nowait())
            for k in [k for k, r in pending.items() if r.ready()]:
                records[k] = pending.pop(k).get()  # re-raises a worker's error
                _write_manifest(out, _manifest(out, config, count, records))
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        pool.join()
        for stale in out.glob("*.partial"):
            stale.unlink()


def format_progress(done: int, total: int, seconds: float) -> str:
    """`  1200/100000 examples  85/s  eta 19:30`"""
    rate = done / seconds if seconds > 0 else 0.0
    eta = "--:--"
    if rate > 0:
        left = int((total - done) / rate)
        h, rest = divmod(left, 3600)
        eta = f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"
    width = len(str(total))
    return f"  {done:>{width}}/{total} examples  {rate:.1f}/s  eta {eta}"


def stderr_progress(interval: float = 30.0) -> Callable[[int, int, float], None]:
    """A progress callback: a line rewritten in place on a terminal, one line every
    `interval` seconds otherwise (a log file)."""
    tty = sys.stderr.isatty()
    last = [-math.inf]

    def show(done: int, total: int, seconds: float) -> None:
        now = time.monotonic()
        finished = done >= total
        if tty and (now - last[0] >= 0.2 or finished):
            sys.stderr.write("\r" + format_progress(done, total, seconds))
            if finished:
                sys.stderr.write("\n")
            sys.stderr.flush()
            last[0] = now
        elif not tty and (now - last[0] >= interval or finished):
            sys.stderr.write(format_progress(done, total, seconds) + "\n")
            sys.stderr.flush()
            last[0] = now

    return show
