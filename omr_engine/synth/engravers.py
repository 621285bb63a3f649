"""Pages engraved by LilyPond and MuseScore 3, and staff crops cut from them.

Verovio engraves all the synthetic data in five SMuFL fonts, but a user's scans were
printed by other programs: their glyphs, spacing and beams differ. This module drives the
two other engravers installed as Debian packages (``musicxml2ly`` + ``lilypond``, and
``mscore3`` run offscreen) and reads what they drew from the PDF's vector drawings, not
the image: the staves (:func:`pdf_staves`) and the measures each staff shows
(:func:`pdf_measures`). ``benchmarks/make_engraver_pages.py`` builds its held-out pages
with it; :func:`build_engraver_crops` builds training data from it (``deepmusic-ocr synth
--engraver lilypond``): each staff of a page whose printed measures are the excerpt's,
labelled with that staff's tokens.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import tarfile
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pymupdf

from ..notation.grammar import validate_score
from ..notation.music21_io import from_music21, load_music21
from ..notation.score import Score
from ..notation.tokens import score_to_tokens, without_ties_off_the_end
from .build import PNG_PARAMS, _tarinfo
from .examples import grammar, printable, single_staff, source_mismatch
from .sources import corpus_root, split_files, tunes

__all__ = [
    "ENGRAVERS",
    "MIN_MEASURES",
    "EngraveFailed",
    "BadExcerpt",
    "available",
    "build_engraver_crops",
    "cut",
    "engrave_pdf",
    "engraver_version",
    "load_piece",
    "mscore_binary",
    "pdf_measures",
    "pdf_staves",
    "piece_staff_crops",
    "rasterize",
    "staff_crops",
]

ENGRAVERS = ("lilypond", "musescore")
MIN_MEASURES = 4  # an excerpt shorter than this is not a page

# ---------------------------------------------------------------- engravers


def mscore_binary() -> str | None:
    return shutil.which("mscore3") or shutil.which("musescore3")


def available(engraver: str) -> bool:
    if engraver == "lilypond":
        return bool(shutil.which("lilypond") and shutil.which("musicxml2ly"))
    if engraver == "musescore":
        return mscore_binary() is not None
    raise ValueError(f"unknown engraver {engraver!r}")


def engrave_pdf(engraver: str, musicxml: Path, pdf: Path, timeout: float = 180.0) -> None:
    """Engrave ``musicxml`` into ``pdf`` with the engraver's default layout (A4 for both
    as installed here). Raises RuntimeError with the tool's last words on failure."""
    pdf.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="engrave-") as tmp:
        if engraver == "lilypond":
            ly = Path(tmp) / "score.ly"
            _run(["musicxml2ly", "-o", str(ly), str(musicxml)], timeout)
            _run(
                [
                    "lilypond",
                    "--pdf",
                    "-dno-point-and-click",
                    "-o",
                    str(Path(tmp) / "score"),
                    str(ly),
                ],
                timeout,
                cwd=tmp,
            )
            shutil.move(str(Path(tmp) / "score.pdf"), pdf)
        elif engraver == "musescore":
            env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
            out = Path(tmp) / "score.pdf"
            _run([mscore_binary() or "mscore3", "-o", str(out), str(musicxml)], timeout, env=env)
            shutil.move(str(out), pdf)
        else:
            raise ValueError(f"unknown engraver {engraver!r}")


def _run(cmd: list[str], timeout: float, **kw) -> None:
    try:
        run = subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"{cmd[0]} timed out") from e
    if run.returncode != 0:
        err = (run.stderr or run.stdout).decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"{cmd[0]} failed: {' | '.join(err[-3:])[:300]}")


def engraver_version(engraver: str) -> str:
    try:
        if engraver == "lilypond":
            out = subprocess.run(["lilypond", "--version"], capture_output=True, timeout=30)
        else:
            env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
            out = subprocess.run(
                [mscore_binary() or "mscore3", "--long-version"],
                capture_output=True,
                timeout=30,
                env=env,
            )
        text = (out.stdout + out.stderr).decode(errors="replace").splitlines()
        found = [t.strip() for t in text if re.search(r"lilypond|musescore", t, re.I)]
        return found[0] if found else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""


# ---------------------------------------------------------------- truth from the PDF


def pdf_staves(page: pymupdf.Page) -> list[tuple[float, float, list[float]]]:
    """Five-line staves drawn on a PDF page, top to bottom, as (x0, x1, line ys) in points.

    Staff lines are horizontal strokes (a line segment or a rectangle under 1.5 pt tall)
    at least 20 pt long; five with the same x-extent (within 2 pt) and even spacing (the
    gaps within 12% of each other, 2-12 pt) make a staff. Ledger lines are too short,
    lyric extenders, volta and tuplet brackets neither come in fives nor share the extent.
    """
    segments: list[tuple[float, float, float]] = []
    for drawing in page.get_drawings():
        for item in drawing["items"]:
            if item[0] == "l":
                p, q = item[1], item[2]
                if abs(p.y - q.y) < 0.05 and abs(p.x - q.x) >= 20:
                    segments.append((min(p.x, q.x), max(p.x, q.x), (p.y + q.y) / 2))
            elif item[0] == "re":
                r = item[1]
                if r.height < 1.5 and r.width >= 20:
                    segments.append((r.x0, r.x1, (r.y0 + r.y1) / 2))
    segments = _merge_segments(segments)
    staves = []
    used: set[int] = set()
    for i, (x0, x1, y) in enumerate(segments):
        if i in used:
            continue
        same = [
            j
            for j in range(i + 1, len(segments))
            if j not in used
            and abs(segments[j][0] - x0) <= 2
            and abs(segments[j][1] - x1) <= 2
            and segments[j][2] - y <= 60
        ]
        ys = [y]
        chosen = [i]
        for j in same:
            gap = segments[j][2] - ys[-1]
            if len(ys) == 1:
                if 2 <= gap <= 12:
                    ys.append(segments[j][2])
                    chosen.append(j)
            elif abs(gap - (ys[1] - ys[0])) <= 0.12 * (ys[1] - ys[0]):
                ys.append(segments[j][2])
                chosen.append(j)
            if len(ys) == 5:
                break
        if len(ys) == 5:
            staves.append((x0, x1, ys))
            used.update(chosen)
    return sorted(staves, key=lambda s: s[2][0])


def _merge_segments(segments: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """Segments on one row (y within 0.3 pt) that touch or overlap become one, sorted by y."""
    out: list[list[float]] = []
    for x0, x1, y in sorted(segments, key=lambda s: (round(s[2], 1), s[0])):
        for seg in out[-8:]:
            if abs(seg[2] - y) <= 0.3 and x0 <= seg[1] + 1.0 and x1 >= seg[0] - 1.0:
                seg[0], seg[1] = min(seg[0], x0), max(seg[1], x1)
                break
        else:
            out.append([x0, x1, y])
    return sorted(((a, b, c) for a, b, c in out), key=lambda s: s[2])


def pdf_measures(page: pymupdf.Page, staves: list[tuple[float, float, list[float]]]) -> list[int]:
    """Measures printed on each staff of ``staves`` (from ``pdf_staves``), from its barlines.

    A barline is a vertical stroke (a line, or a rectangle under 4 pt wide) that covers
    the staff and ends on the top or bottom line of a staff (MuseScore draws a grand
    staff's barline from one staff's top to the next one's). Barlines closer than 2.5
    staff spaces are one (double, final and repeat barlines; LilyPond's stub of staff
    after a repeat sign at a line end), a barline at the staff's start is the system's
    opening line, and a staff that runs on more than 2.5 spaces past its last barline
    has one measure more. As in the layout (and Verovio), a double or repeat barline with
    no stem before it on its staff opens the first measure rather than ending one.
    """
    vertical: list[tuple[float, float, float]] = []
    for drawing in page.get_drawings():
        for item in drawing["items"]:
            if item[0] == "l":
                p, q = item[1], item[2]
                if abs(p.x - q.x) < 0.05 and abs(p.y - q.y) > 2:
                    vertical.append(((p.x + q.x) / 2, min(p.y, q.y), max(p.y, q.y)))
            elif item[0] == "re":
                r = item[1]
                if r.width < 4 and r.height > 2:
                    vertical.append(((r.x0 + r.x1) / 2, r.y0, r.y1))
    ends = [y for _, _, ys in staves for y in (ys[0], ys[-1])]
    tol = 0.6

    def on_a_line(y: float) -> bool:
        return any(abs(y - e) <= tol for e in ends)

    counts = []
    for x0, x1, ys in staves:
        space = (ys[-1] - ys[0]) / 4
        top, bottom = ys[0], ys[-1]
        bars, stems = [], []
        for x, a, b in vertical:
            if not x0 - tol <= x <= x1 + tol:
                continue
            if a <= top + tol and b >= bottom - tol and on_a_line(a) and on_a_line(b):
                if x > x0 + space:
                    bars.append(x)
            elif b > top and a < bottom and b - a >= 2 * space:
                stems.append(x)
        groups: list[list[float]] = []
        for x in sorted(bars):
            if groups and x - groups[-1][-1] < 2.5 * space:
                groups[-1].append(x)
            else:
                groups.append([x])
        if groups and len(groups[0]) > 1 and not any(x < groups[0][0] for x in stems):
            groups.pop(0)  # a section start right after the clef and key
        open_end = not groups or x1 - groups[-1][-1] > 2.5 * space
        counts.append(len(groups) + int(open_end))
    return counts


def rasterize(pdf: Path, dpi: float) -> tuple[np.ndarray, int, list[int], list[int]]:
    """Page 1 of ``pdf`` as grayscale uint8, the page count, the staves on each page, and
    the measures on each staff of page 1."""
    with pymupdf.open(pdf) as doc:
        found = [pdf_staves(p) for p in doc]
        measures = pdf_measures(doc[0], found[0])
        pix = doc[0].get_pixmap(dpi=round(dpi), colorspace=pymupdf.csGRAY, alpha=False)
        image = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.stride)
        image = np.ascontiguousarray(image[:, : pix.width])
        return image, len(doc), [len(f) for f in found], measures


# ---------------------------------------------------------------- pieces


def load_piece(relpath: str):
    """The music21 score of a corpus file (an ABC book's first tune)."""
    import music21

    path = corpus_root() / relpath
    numbers = tunes(relpath)
    if numbers:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = music21.converter.parse(str(path), number=numbers[0])
        if isinstance(parsed, music21.stream.Opus):
            parsed = parsed.scores[0]
        return parsed
    return load_music21(path)


class BadExcerpt(ValueError):
    """An excerpt that cannot be used; ``first_bad`` is the index of the first measure at
    fault when one is known (a shorter excerpt that stops before it may do)."""

    def __init__(self, message: str, first_bad: int | None = None) -> None:
        super().__init__(message)
        self.first_bad = first_bad


def cut(parsed, count: int) -> tuple[object, Score, str]:
    """The first ``count`` measures: music21's excerpt, our Score of it, and its MusicXML.
    Raises BadExcerpt when the excerpt does not fit the vocabulary or prints otherwise."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        part = parsed.measures(0, count, indicesNotNumbers=True)
        score, report = from_music21(part)
        if report.unsupported:
            raise BadExcerpt(
                f"{len(report.unsupported)} measure(s) outside the vocabulary",
                min(report.unsupported_measures),
            )
        if printable(score)[1]:
            raise BadExcerpt("marks the tokens do not print")
        rests = [i for i, m in enumerate(score.measures) if m.multirest > 1]
        if rests:
            raise BadExcerpt("multi-measure rest", rests[0])
        diagnostics = validate_score(score, grammar())
        if diagnostics:
            bad = [d.measure for d in diagnostics if d.measure >= 0]
            raise BadExcerpt("the grammar rejects it", min(bad) if bad else None)
        xml = GeneralObjectExporter(part).parse().decode("utf-8")
    mismatch = source_mismatch(score, xml)
    if mismatch:
        found = re.search(r"measure (\d+)", mismatch)
        raise BadExcerpt(f"music21's MusicXML differs: {mismatch}", found and int(found[1]))
    return part, score, xml


# ---------------------------------------------------------------- staff crops

STAFF_MEASURES = 48  # staff-measures engraved per piece: one page, nearly always
DPIS = (200.0, 240.0, 300.0)  # scan resolutions the pages are rasterised at
_SIDE = 1.5  # staff spaces of paper left and right of the staff lines (as Verovio crops)
_ABOVE = 4.0  # staff spaces above and below at most, never past half-way to a neighbour


class EngraveFailed(ValueError):
    """A piece that gave no crops, with the reason in a few words."""


def staff_crops(
    image: np.ndarray,
    staves: list[tuple[float, float, list[float]]],
    measures: list[int],
    score: Score,
    scale: float,
) -> list[tuple[np.ndarray, list[str], dict[str, Any]]]:
    """(crop, tokens, meta) of every staff of a page whose ``staves`` (from
    :func:`pdf_staves`, in points; ``scale`` pixels a point) show ``measures`` each (from
    :func:`pdf_measures`) and together the whole of ``score``. Raises EngraveFailed when
    they do not (the engraver re-barred the music, or hid or added a staff)."""
    per = score.staff_count
    if not staves or len(staves) % per:
        raise EngraveFailed(f"{len(staves)} staves drawn for {per} a system")
    systems = [measures[i : i + per] for i in range(0, len(measures), per)]
    if any(len(set(s)) > 1 for s in systems):
        raise EngraveFailed("the staves of a system show different measures")
    if sum(s[0] for s in systems) != len(score.measures):
        raise EngraveFailed("the engraver barred the music otherwise")
    h, w = image.shape
    out = []
    start = 0
    for index, system in enumerate(systems):
        stop = start + system[0]
        for k in range(per):
            j = index * per + k
            x0, x1, ys = staves[j]
            y0, y1 = ys[0] * scale, ys[-1] * scale
            space = (y1 - y0) / 4
            top, bottom = y0 - _ABOVE * space, y1 + _ABOVE * space
            if j > 0:
                top = max(top, (staves[j - 1][2][-1] * scale + y0) / 2)
            if j + 1 < len(staves):
                bottom = min(bottom, (staves[j + 1][2][0] * scale + y1) / 2)
            cx0, cy0 = max(0, int(x0 * scale - _SIDE * space)), max(0, int(top))
            cx1 = min(w, int(np.ceil(x1 * scale + _SIDE * space)))
            cy1 = min(h, int(np.ceil(bottom)))
            crop = np.ascontiguousarray(image[cy0:cy1, cx0:cx1])
            view = single_staff(score, k) if per > 1 else score
            tokens = score_to_tokens(view, start, stop)
            if stop == len(score.measures):  # no tie is printed out of the excerpt
                tokens = without_ties_off_the_end(tokens)
            box = [x0 * scale - cx0, y0 - cy0, x1 * scale - cx0, y1 - cy0]
            meta = {
                "unit": "staff",
                "measures": [start, stop],
                "window": [0, len(score.measures)],
                "staff": k,
                "staves": 1,
                "system": index,
                "page": 0,
                # One box over the whole line: its y-extent is the staff lines, which
                # the trainer's reframing needs; the barlines are not placed.
                "measure_boxes": [[round(v, 2) for v in box]],
                "strength": 0.0,
            }
            out.append((crop, tokens, meta))
        start = stop
    return out


def piece_staff_crops(
    relpath: str, engraver: str, dpi: float, staff_measures: int = STAFF_MEASURES
) -> list[tuple[np.ndarray, list[str], dict[str, Any]]]:
    """Staff crops of the first measures of a corpus piece (about ``staff_measures``
    staff-measures) engraved by ``engraver`` on one page at ``dpi``. Raises EngraveFailed
    (or RuntimeError from the engraver, NotationError from the reader) when it gives
    none."""
    parsed = load_piece(relpath)
    count = max(MIN_MEASURES, round(staff_measures / max(1, len(parsed.parts))))
    try:
        _, score, xml = cut(parsed, count)
    except BadExcerpt as e:
        if e.first_bad is None or e.first_bad < MIN_MEASURES:
            raise EngraveFailed(str(e)) from e
        _, score, xml = cut(parsed, e.first_bad)  # stop before the measure at fault
    with tempfile.TemporaryDirectory(prefix="engraver-crops-") as tmp:
        src, pdf = Path(tmp) / "excerpt.musicxml", Path(tmp) / "excerpt.pdf"
        src.write_text(xml, encoding="utf-8")
        engrave_pdf(engraver, src, pdf)
        image, pages, _, measures = rasterize(pdf, dpi)
        if pages != 1:
            raise EngraveFailed(f"{pages} pages")
        with pymupdf.open(pdf) as doc:
            staves = pdf_staves(doc[0])
    crops = staff_crops(image, staves, measures, score, round(dpi) / 72.0)
    for _, _, meta in crops:
        meta.update(
            piece=relpath,
            source="corpus",
            engraved_from=engraver,
            style={"font": engraver},
            dpi=dpi,
        )
    return crops


def _job(args: tuple[str, str, float]) -> tuple[str, list, str]:
    relpath, engraver, dpi = args
    try:
        return relpath, piece_staff_crops(relpath, engraver, dpi), "ok"
    except Exception as e:  # one odd piece must not stop a long unattended build
        return relpath, [], f"{type(e).__name__}: {str(e)[:200]}"


def build_engraver_crops(
    out: Path,
    count: int,
    engravers: Sequence[str] = ENGRAVERS,
    *,
    split: str = "train",
    seed: int = 0,
    workers: int = 1,
    shard_size: int = 500,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Writes a dataset of ``count`` clean staff crops engraved by ``engravers`` from the
    corpus pieces of ``split`` (in the synth dataset format: tar shards of PNG and JSON,
    and ``manifest.json``), and returns its manifest. Pieces are taken round-robin over
    the corpus collections in an order drawn from ``seed``, each engraved by every
    engraver at a resolution drawn from :data:`DPIS`. ``progress(done, count)`` is called
    as crops are written."""
    missing = [e for e in engravers if not available(e)]
    if missing:
        raise RuntimeError(f"not installed: {', '.join(missing)}")
    if (out / "manifest.json").exists():
        raise FileExistsError(f"{out} holds a dataset already")
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    jobs = [(f, e, rng.choice(DPIS)) for f in _round_robin(split, seed) for e in engravers]
    shards: list[dict[str, Any]] = []
    reasons: Counter = Counter()
    pending: list[tuple[np.ndarray, list[str], dict[str, Any]]] = []
    written = 0
    config = {"engravers": list(engravers), "split": split, "seed": seed, "unit": "staff"}

    def manifest(complete: bool) -> dict[str, Any]:
        # Written after every shard as well, so that a build stopped early (it takes an
        # hour for a few thousand crops on two cores) leaves a dataset of what it made.
        done = {
            "config": config,
            "count": written,
            "complete": complete,
            "shards": shards,
            "pieces": dict(sorted(reasons.items())),
        }
        partial = out / "manifest.json.partial"
        partial.write_text(json.dumps(done, indent=1))
        os.replace(partial, out / "manifest.json")
        return done

    pool = Pool(workers) if workers > 1 else None
    try:
        for _, crops, why in pool.imap(_job, jobs) if pool else map(_job, jobs):
            reasons[why.split(":")[0]] += 1
            pending += crops[: count - written - len(pending)]
            while len(pending) >= shard_size or (pending and written + len(pending) == count):
                batch, pending = pending[:shard_size], pending[shard_size:]
                shards.append(_write_shard(out, len(shards), batch))
                written += len(batch)
                if written < count:
                    manifest(complete=False)
                if progress is not None:
                    progress(written, count)
            if written >= count:
                break
    finally:
        if pool is not None:
            pool.terminate()
    return manifest(complete=True)


def _round_robin(split: str, seed: int) -> list[str]:
    """The split's files, shuffled within each collection, taken round-robin."""
    by: dict[str, list[str]] = {}
    for f in split_files(split):
        by.setdefault(f.split("/")[0], []).append(f)
    rng = random.Random(seed)
    for files in by.values():
        rng.shuffle(files)
    order = sorted(by, key=lambda c: (-len(by[c]), c))
    out = []
    while any(by.values()):
        for c in order:
            if by[c]:
                out.append(by[c].pop())
    return out


def _write_shard(
    out: Path, shard: int, items: list[tuple[np.ndarray, list[str], dict[str, Any]]]
) -> dict[str, Any]:
    name = f"shard-{shard:05d}.tar"
    partial = out / f"{name}.partial"
    with tarfile.open(partial, "w", format=tarfile.GNU_FORMAT) as tar:
        for i, (image, tokens, meta) in enumerate(items):
            key = f"{shard:05d}-{i:05d}"
            ok, png = cv2.imencode(".png", image, PNG_PARAMS)
            if not ok:
                raise RuntimeError(f"PNG encoding failed for {key}")
            full = dict(meta, tokens=" ".join(tokens), height=image.shape[0], width=image.shape[1])
            blob = json.dumps(full, sort_keys=True).encode()
            for suffix, data in ((".png", png.tobytes()), (".json", blob)):
                tar.addfile(_tarinfo(key + suffix, len(data)), io.BytesIO(data))
    os.replace(partial, out / name)
    data = (out / name).read_bytes()
    return {
        "name": name,
        "count": len(items),
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }
