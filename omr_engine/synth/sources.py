"""Where the music comes from: the music21 corpus (kern, ABC, MusicXML) and the generator,
split into training and validation by piece, and read once into a cache.

Piece ids:
- ``bach/bwv66.6.mxl``: a corpus file, relative to music21's corpus folder;
- ``essenFolksong/han1.abc#3``: tune X:3 of an ABC book (one file, many tunes);
- ``gen/1234``: `generate_score(np.random.default_rng(1234))`.

The split is by corpus *file* (all tunes of an ABC book fall on one side): a file is in
validation when the SHA-1 of its relative path, as an integer, is below 5% of the range.
It never depends on the run, the seed or the machine. Generated pieces are drawn from
seeds that differ between the splits (see `build`), so they cannot be shared either.

`PieceStore.get` reads a piece (music21 takes 0.1 to several seconds) and keeps the result
in a cache folder as a compressed pickle, so a dataset build reads each file once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import re
import tempfile
import warnings
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..notation.music21_io import NotationError, from_music21, load_music21
from ..notation.score import Score
from .examples import fix_musicxml, source_mismatch, unprintable_marks
from .generator import generate_score

if TYPE_CHECKING:
    import music21

__all__ = [
    "CORPUS_SUFFIXES",
    "VALIDATION_FRACTION",
    "Piece",
    "PieceError",
    "PieceStore",
    "corpus_files",
    "corpus_root",
    "file_weights",
    "split_of",
    "split_files",
    "tunes",
    "write_split",
]

#: Formats read from the corpus; `.rntxt` (roman-numeral analyses) are not printed scores.
CORPUS_SUFFIXES = (".krn", ".abc", ".mxl", ".xml", ".musicxml")
VALIDATION_FRACTION = 0.05
#: An original file is engraved whole, so only pieces up to this many staff-measures.
ORIGINAL_MAX_STAFF_MEASURES = 160
_CACHE_VERSION = 1


class PieceError(Exception):
    """A piece cannot be read (one sentence)."""


@dataclass
class Piece:
    """A piece read into a Score; `original` is the file's own MusicXML when it prints the
    same measures and notes as the Score (else None, with the reason in `note`)."""

    id: str
    score: Score
    original: str | None = None
    note: str = ""


def corpus_root() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus"


@functools.cache
def corpus_files() -> tuple[str, ...]:
    """Relative paths of the corpus files we read, sorted."""
    from music21 import corpus

    root = corpus_root()
    paths = (Path(p) for p in corpus.getCorePaths())
    return tuple(
        sorted(p.relative_to(root).as_posix() for p in paths if p.suffix in CORPUS_SUFFIXES)
    )


def split_of(relpath: str) -> str:
    """'train' or 'val' for a corpus file (its tunes follow it)."""
    digest = int(hashlib.sha1(relpath.split("#")[0].encode()).hexdigest(), 16)
    return "val" if digest < VALIDATION_FRACTION * 2**160 else "train"


def split_files(split: str) -> tuple[str, ...]:
    if split not in ("train", "val"):
        raise ValueError(f"split must be train or val, not {split!r}")
    return tuple(f for f in corpus_files() if split_of(f) == split)


@functools.cache
def file_weights(split: str) -> np.ndarray:
    """Sampling probability of each of `split_files(split)`: a collection (top folder)
    weighs the square root of its number of files, shared equally by its files. Uniform
    by file, Palestrina's masses (42% of the files) and Ryan's Mammoth (34%) would crowd
    out the chorales, quartets and folk songs."""
    files = split_files(split)
    collections = [f.split("/")[0] for f in files]
    sizes = {c: collections.count(c) for c in set(collections)}
    w = np.array([1.0 / np.sqrt(sizes[c]) for c in collections])
    w.setflags(write=False)
    return w / w.sum()


_TUNE_RE = re.compile(r"^X:\s*(\d+)", re.M)


@functools.cache
def tunes(relpath: str) -> tuple[int, ...]:
    """The X: numbers of an ABC book with several tunes; () for any other file."""
    if not relpath.endswith(".abc"):
        return ()
    text = (corpus_root() / relpath).read_text(encoding="utf-8", errors="replace")
    numbers = tuple(int(n) for n in _TUNE_RE.findall(text))
    return numbers if len(numbers) > 1 else ()


def write_split(directory: Path) -> Path:
    """Write `split.json`: the rule and the validation files."""
    val = split_files("val")
    data = {
        "rule": (
            "a corpus file is in validation when int(sha1(relative path)) < "
            f"{VALIDATION_FRACTION} * 2**160; ABC tunes follow their file; generated "
            "pieces use seeds drawn per split"
        ),
        "validation_fraction": VALIDATION_FRACTION,
        "train_files": len(corpus_files()) - len(val),
        "validation_files": len(val),
        "validation": list(val),
    }
    path = Path(directory) / "split.json"
    _atomic_write(path, json.dumps(data, indent=1).encode())
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _musicxml_in_place(parsed: music21.stream.Score) -> str:
    """music21's MusicXML export of `parsed`, made in place: the same document as
    ``GeneralObjectExporter(parsed).parse()`` (ids apart), without the deep copy the
    exporter makes first, which cost about a sixth of reading a corpus piece. `parsed` is
    changed (rests filled in, notation made), so call it once the Score has been read."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    exporter = GeneralObjectExporter()
    parsed.makeRests(
        refStreamOrTimeRange=[0.0, parsed.highestTime],
        fillGaps=True,
        inPlace=True,
        hideRests=True,
        timeRangeFromBarDuration=True,
    )
    return exporter.parseWellformedObject(exporter.fromScore(parsed)).decode("utf-8")


def _load_corpus_piece(piece_id: str) -> Piece:
    import music21

    relpath, _, number = piece_id.partition("#")
    path = corpus_root() / relpath
    try:
        if number:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parsed = music21.converter.parse(str(path), number=int(number))
            if isinstance(parsed, music21.stream.Opus):
                parsed = parsed.scores[0] if parsed.scores else None
            if not isinstance(parsed, music21.stream.Score):
                raise PieceError(f"{piece_id}: no score found")
        else:
            parsed = load_music21(path)
        score, report = from_music21(parsed)
    except NotationError as e:
        raise PieceError(str(e)) from e
    except PieceError:
        raise
    except Exception as e:  # music21 raises many unrelated types on odd files
        raise PieceError(f"{piece_id}: {type(e).__name__}: {str(e)[:120]}") from e
    piece = Piece(piece_id, score)
    if report.unsupported:
        piece.note = f"{len(report.unsupported)} unsupported measure(s)"
    elif unprintable_marks(score):
        piece.note = "marks the tokens do not print"
    elif len(score.measures) * score.staff_count > ORIGINAL_MAX_STAFF_MEASURES:
        piece.note = "too long to engrave whole"
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                xml = _musicxml_in_place(parsed)
            piece.note = source_mismatch(score, xml) or ""
            if not piece.note:
                piece.original = fix_musicxml(xml, score)
        except Exception as e:  # the exporter fails on some odd scores; the Score stays
            piece.note = f"no original MusicXML ({type(e).__name__})"
    return piece


class PieceStore:
    """Reads pieces by id, with an on-disk cache (`cache_dir`, optional) and a small
    in-memory one. Unreadable pieces raise PieceError, also when cached."""

    def __init__(self, cache_dir: Path | None = None, memory: int = 16) -> None:
        self.cache_dir = Path(cache_dir) / f"pieces-v{_CACHE_VERSION}" if cache_dir else None
        self.memory = memory
        self._recent: OrderedDict[str, Piece | str] = OrderedDict()

    def get(self, piece_id: str) -> Piece:
        if piece_id.startswith("gen/"):
            seed = int(piece_id[4:])
            return Piece(piece_id, generate_score(np.random.default_rng(seed)), None, "")
        item = self._recent.get(piece_id)
        if item is None:
            item = self._read_cache(piece_id)
        if item is None:
            try:
                item = _load_corpus_piece(piece_id)
            except PieceError as e:
                item = str(e)
            self._write_cache(piece_id, item)
        self._recent[piece_id] = item
        self._recent.move_to_end(piece_id)
        while len(self._recent) > self.memory:
            self._recent.popitem(last=False)
        if isinstance(item, str):
            raise PieceError(item)
        return item

    def score_and_original(self, piece_id: str) -> tuple[Score, str | None]:
        """For `examples.regenerate`."""
        piece = self.get(piece_id)
        return piece.score, piece.original

    def _path(self, piece_id: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / (hashlib.sha1(piece_id.encode()).hexdigest()[:20] + ".pkl.z")

    def _read_cache(self, piece_id: str) -> Piece | str | None:
        path = self._path(piece_id)
        if path is None or not path.exists():
            return None
        try:
            stored_id, item = pickle.loads(zlib.decompress(path.read_bytes()))
        except Exception:  # a damaged cache entry is read again from the corpus
            return None
        return item if stored_id == piece_id else None

    def _write_cache(self, piece_id: str, item: Piece | str) -> None:
        path = self._path(piece_id)
        if path is not None:
            _atomic_write(path, zlib.compress(pickle.dumps((piece_id, item), protocol=5), 6))
