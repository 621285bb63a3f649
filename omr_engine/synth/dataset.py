"""Reading a built dataset: a torch-free streaming reader, and a torch IterableDataset.

    from omr_engine.synth.dataset import read_examples, SynthIterableDataset
    for image, tokens, meta in read_examples("/work/data/synth100k"):
        ...
    ds = SynthIterableDataset("/work/data/synth100k", shuffle_buffer=512, seed=0)
    loader = DataLoader(ds, batch_size=32, num_workers=4, collate_fn=Collate(cfg))

Shards are read front to back (one open file, one example in memory at a time, plus the
shuffle buffer's PNG bytes). `SynthIterableDataset` is defined on first use so that
importing this module does not import torch; it hands each DataLoader worker (and each
distributed rank) its own shards, and yields dicts with ``image`` (uint8 H x W), ``ids``
(token ids in the given vocabulary), ``tokens`` and ``meta`` -- the example form
`omr_engine.model.data.Collate` takes.

With ``degrade_max`` > 0 the IterableDataset degrades each clean example (one built with
strength 0, e.g. ``synth --strength-max 0``) afresh every time it is read, at a strength
drawn from 0..``degrade_max``: a clean build costs about a third of a degraded one, and a
crop seen in several passes looks different in each.

With ``margins=(lo, hi)`` (staff spaces) each staff crop is also framed afresh: the paper
above and below its staff lines is cut or padded to a margin drawn from lo..hi, on each
side apart (see :func:`reframe_vertically`). Built crops keep 1.5 staff spaces plus what
their notes need, while the page pipeline cuts every staff with one fixed margin (3.5
spaces for the shipped model); framing the crops afresh trains the model on both.

With ``stretch=(lo, hi)`` each crop is also resized across by a factor drawn from lo..hi
(see :func:`stretch_horizontally`): Verovio spaces notes its own way, and other engravers
(and justified lines) set the same music wider or tighter. Run 4o, trained without it,
read 300 clean held-out crops at SER 0.273; stretched 1.25 times across, at 0.326.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..notation.tokens import without_ties_off_the_end

__all__ = [
    "dataset_shards",
    "decode_png",
    "degrade_again",
    "printed_tokens",
    "read_examples",
    "read_manifest",
    "reframe_vertically",
    "stretch_horizontally",
]  # + SynthIterableDataset


def read_manifest(root: Path | str) -> dict[str, Any]:
    return json.loads((Path(root) / "manifest.json").read_text())


def dataset_shards(root: Path | str) -> list[Path]:
    """The completed shards of a dataset folder, in order (from its manifest)."""
    root = Path(root)
    return [root / s["name"] for s in read_manifest(root)["shards"]]


def _iter_raw(shard: Path) -> Iterator[tuple[str, bytes, dict[str, Any]]]:
    """(key, PNG bytes, meta) of each example of one shard, streamed."""
    png: tuple[str, bytes] | None = None
    with tarfile.open(shard, "r|") as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, _, suffix = member.name.partition(".")
            f = tar.extractfile(member)
            data = f.read() if f is not None else b""
            if suffix == "png":
                png = (key, data)
            elif suffix == "json" and png is not None and png[0] == key:
                yield key, png[1], json.loads(data)
                png = None


def printed_tokens(tokens: list[str], meta: dict[str, Any]) -> list[str]:
    """An example's tokens as its image prints them: a crop that ends where its engraved
    excerpt ends (``meta["measures"][1] == meta["window"][1]``) shows no tie from its last
    notes, which would lead out of the excerpt (:func:`without_ties_off_the_end`). Built
    before session 36, such crops kept the tie in their tokens: on the 1,200 held-out
    crops of ``val30`` all 38 of those ties went unprinted and unread, while all 42 ties
    at the end of a crop the excerpt goes on after were printed (half an arc) and read."""
    window = meta.get("window")
    if window is not None and meta["measures"][1] == window[1]:
        return without_ties_off_the_end(tokens)
    return tokens


def _packed(folder: Path) -> bool:
    """Whether a dataset folder is a sample ``scripts/pack_crops.py`` packed."""
    try:
        manifest = read_manifest(folder)
    except (OSError, ValueError):
        return False
    return "packed_from" in manifest.get("config", {})


def _iter_printed(shard: Path) -> Iterator[tuple[str, bytes, dict[str, Any]]]:
    """:func:`_iter_raw` with each example's ``tokens`` as printed (:func:`printed_tokens`).

    LilyPond and MuseScore crops built before they kept a ``window`` are a whole page of
    one excerpt per piece, so the shard is read whole first and each piece's excerpt is
    taken to end at the last measure a crop of it shows (a piece split over two shards,
    11 of 2,224 in two of the sets, is taken to end at each shard's part). Not in a
    folder ``scripts/pack_crops.py`` packed: its shards hold a sample of many pieces' crops,
    so a pack made before session 36 keeps the tokens as built."""
    raw = _iter_raw(shard)
    first = next(raw, None)
    if first is None:
        return
    items: Iterable[tuple[str, bytes, dict[str, Any]]] = itertools.chain([first], raw)
    # engravers.ENGRAVERS, named here so that reading a dataset does not import music21
    if (
        "window" not in first[2]
        and first[2].get("engraved_from") in ("lilypond", "musescore")
        and not _packed(Path(shard).parent)
    ):
        whole = list(items)
        ends: dict[str, int] = {}
        for _, _, meta in whole:
            ends[meta["piece"]] = max(ends.get(meta["piece"], 0), meta["measures"][1])
        for _, _, meta in whole:
            meta["window"] = [0, ends[meta["piece"]]]
        items = whole
    for key, png, meta in items:
        meta["tokens"] = " ".join(printed_tokens(meta["tokens"].split(), meta))
        yield key, png, meta


def decode_png(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError("undecodable PNG in shard")
    return image


def read_examples(
    source: Path | str | Sequence[Path | str],
    units: Iterable[str] | None = None,
) -> Iterator[tuple[np.ndarray, list[str], dict[str, Any]]]:
    """(image, tokens, meta) of every example, shard by shard, its tokens as printed
    (:func:`printed_tokens`). `source` is a dataset folder or a list of shard files;
    `units` keeps only "staff" or "system" examples."""
    shards = (
        dataset_shards(source)
        if isinstance(source, (str, Path)) and Path(source).is_dir()
        else [Path(p) for p in ([source] if isinstance(source, (str, Path)) else source)]
    )
    keep = set(units) if units is not None else None
    for shard in shards:
        for _, png, meta in _iter_printed(shard):
            if keep is None or meta["unit"] in keep:
                yield decode_png(png), meta["tokens"].split(), meta


_TORCH_CLASS: type | None = None


def _define_torch_class() -> type:
    import torch
    from torch.utils.data import IterableDataset, get_worker_info

    from ..notation.reading_order import to_onset_order
    from ..notation.vocabulary import Vocabulary, default_vocabulary

    class SynthIterableDataset(IterableDataset):
        """Streams a dataset folder; shards are dealt to (rank, worker) pairs in turn.

        ``root`` is one dataset folder or several (their shards are pooled). Each pass
        (`__iter__`) shuffles the shard order with (seed, pass) and, with
        ``shuffle_buffer`` > 0, the examples through a buffer of that many. With more
        readers than shards some readers get none, so keep shards >= ranks x workers.
        ``degrade_max`` > 0 degrades clean examples as they are read (module docstring);
        their ``meta["strength"]`` then says how strongly. ``margins`` frames staff crops
        afresh before that, and ``stretch`` resizes every crop across (module docstring).
        ``token_order="onset"`` gives the target tokens with each measure's voices merged
        by onset (:mod:`omr_engine.notation.reading_order`), the order a CTC head can read.
        """

        def __init__(
            self,
            root: Path | str | Sequence[Path | str],
            vocab: Vocabulary | None = None,
            units: Iterable[str] | None = None,
            shuffle_buffer: int = 0,
            seed: int = 0,
            rank: int | None = None,
            world_size: int | None = None,
            degrade_max: float = 0.0,
            margins: tuple[float, float] | None = None,
            stretch: tuple[float, float] | None = None,
            token_order: str = "canonical",
        ) -> None:
            super().__init__()
            if token_order not in ("canonical", "onset"):
                raise ValueError("token_order is 'canonical' or 'onset'")
            self.token_order = token_order
            roots = [root] if isinstance(root, (str, Path)) else list(root)
            if not roots:
                raise ValueError("no dataset folder given")
            self.roots = [Path(r) for r in roots]
            self.shards = [s for r in self.roots for s in dataset_shards(r)]
            if not 0.0 <= degrade_max <= 1.0:
                raise ValueError("degrade_max must be within 0..1")
            self.degrade_max = degrade_max
            if margins is not None and not 0.0 <= margins[0] <= margins[1]:
                raise ValueError("margins is (lo, hi) staff spaces with 0 <= lo <= hi")
            self.margins = margins
            if stretch is not None and not 0.0 < stretch[0] <= stretch[1]:
                raise ValueError("stretch is (lo, hi) factors with 0 < lo <= hi")
            self.stretch = stretch
            self.vocab = vocab or default_vocabulary()
            self.units = set(units) if units is not None else None
            self.shuffle_buffer = shuffle_buffer
            self.seed = seed
            self.rank, self.world_size = rank, world_size
            self.epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def _readers(self) -> tuple[int, int]:
            rank, world = self.rank, self.world_size
            if rank is None or world is None:
                dist = torch.distributed
                ready = dist.is_available() and dist.is_initialized()
                rank, world = (dist.get_rank(), dist.get_world_size()) if ready else (0, 1)
            info = get_worker_info()
            workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
            return rank * workers + worker, world * workers

        def __iter__(self) -> Iterator[dict[str, Any]]:
            reader, readers = self._readers()
            rng = np.random.default_rng([self.seed, self.epoch])
            fresh = np.random.default_rng([self.seed, self.epoch, reader, 1])
            self.epoch += 1
            order = rng.permutation(len(self.shards))
            mine = [self.shards[i] for i in order[reader::readers]]
            raw = (
                (png, meta)
                for shard in mine
                for _, png, meta in _iter_printed(shard)
                if self.units is None or meta["unit"] in self.units
            )
            for png, meta in _shuffled(raw, self.shuffle_buffer, rng):
                tokens = meta["tokens"].split()
                image = decode_png(png)
                if self.margins is not None and meta["unit"] == "staff":
                    image, meta = reframe_vertically(image, meta, self.margins, fresh)
                if self.stretch is not None:
                    image, meta = stretch_horizontally(image, meta, self.stretch, fresh)
                if self.degrade_max > 0.0 and not meta.get("strength"):
                    image, meta = degrade_again(image, meta, self.degrade_max, fresh)
                if self.token_order == "onset":
                    tokens = to_onset_order(tokens)
                yield {
                    "image": image,
                    "ids": self.vocab.encode(tokens),
                    "tokens": tokens,
                    "meta": meta,
                }

    SynthIterableDataset.__module__ = __name__
    SynthIterableDataset.__qualname__ = "SynthIterableDataset"
    return SynthIterableDataset


def degrade_again(
    image: np.ndarray, meta: dict[str, Any], strength_max: float, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """A clean example degraded as the builder would have at a strength drawn from
    0..``strength_max``, with its meta updated (strength, degradation, seed and measure
    boxes moved with the ink)."""
    from .degrade import apply_with_boxes, draw_degradation

    strength, degradation, seed = draw_degradation(rng, strength_max)
    out, boxes = apply_with_boxes(image, meta.get("measure_boxes") or [], degradation, seed)
    meta = dict(meta, strength=round(strength, 4), degradation_seed=seed)
    if boxes:
        meta["measure_boxes"] = boxes
    meta["degradation"] = dataclasses.asdict(degradation)
    meta["height"], meta["width"] = out.shape
    return out, meta


def reframe_vertically(
    image: np.ndarray,
    meta: dict[str, Any],
    margins: tuple[float, float],
    rng: np.random.Generator,
    ink_below: int = 160,
) -> tuple[np.ndarray, dict[str, Any]]:
    """A one-staff crop with the paper above and below its staff lines cut or padded to a
    margin drawn from ``margins`` (staff spaces; top and bottom drawn apart).

    Only rows without ink (no pixel darker than ``ink_below``) are cut, so nothing drawn is
    lost: a staff whose notes reach past the drawn margin keeps them. Padding repeats the
    paper's median shade. The staff lines' place comes from ``meta["measure_boxes"]``
    (their y0..y1 span the lines); the boxes move with the cut, and a crop without boxes is
    returned unchanged.
    """
    boxes = meta.get("measure_boxes") or []
    if not boxes:
        return image, meta
    h = image.shape[0]
    y0 = min(float(b[1]) for b in boxes)
    y1 = max(float(b[3]) for b in boxes)
    space = (y1 - y0) / 4.0
    if space <= 0:
        return image, meta
    ink_rows = np.flatnonzero((image < ink_below).any(axis=1))
    first_ink = int(ink_rows[0]) if len(ink_rows) else int(y0)
    last_ink = int(ink_rows[-1]) if len(ink_rows) else int(math.ceil(y1))
    top_want = int(round(y0 - float(rng.uniform(*margins)) * space))
    bottom_want = int(round(y1 + float(rng.uniform(*margins)) * space))
    # negative top = rows of paper to add; a cut stops at the first row with ink
    top = min(top_want, first_ink, int(math.floor(y0)))
    bottom = max(bottom_want, last_ink + 1, int(math.ceil(y1)) + 1)
    paper = int(np.median(image[[0, -1], :]))
    body = image[max(top, 0) : min(bottom, h)]
    out = cv2.copyMakeBorder(
        body, max(-top, 0), max(bottom - h, 0), 0, 0, cv2.BORDER_CONSTANT, value=paper
    )
    moved = [[b[0], round(b[1] - top, 2), b[2], round(b[3] - top, 2)] for b in boxes]
    meta = dict(meta, measure_boxes=moved)
    meta["height"], meta["width"] = out.shape
    return out, meta


def stretch_horizontally(
    image: np.ndarray,
    meta: dict[str, Any],
    factors: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, Any]]:
    """A crop resized across by a factor drawn from ``factors`` (its height kept), with its
    measure boxes moved along; one factor drawn per crop, so every measure keeps its share
    of the line."""
    factor = float(rng.uniform(*factors))
    h, w = image.shape[:2]
    width = max(1, int(round(w * factor)))
    if width == w:
        return image, meta
    interpolation = cv2.INTER_AREA if width < w else cv2.INTER_LINEAR
    out = cv2.resize(image, (width, h), interpolation=interpolation)
    scale = width / w
    boxes = meta.get("measure_boxes") or []
    meta = dict(meta, stretch=round(factor, 4))
    if boxes:
        meta["measure_boxes"] = [
            [round(b[0] * scale, 2), b[1], round(b[2] * scale, 2), b[3]] for b in boxes
        ]
    meta["height"], meta["width"] = out.shape[:2]
    return out, meta


def _shuffled(items: Iterator[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    if size <= 1:
        yield from items
        return
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = int(rng.integers(0, size))
        yield buffer[j]
        buffer[j] = item
    rng.shuffle(buffer)  # type: ignore[arg-type]
    yield from buffer


def __getattr__(name: str) -> Any:
    # PEP 562: the torch class is made on first access, so importing this module (and
    # `read_examples`) needs no torch; pickling by name works in DataLoader workers.
    global _TORCH_CLASS
    if name == "SynthIterableDataset":
        if _TORCH_CLASS is None:
            _TORCH_CLASS = _define_torch_class()
        return _TORCH_CLASS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
