"""An in-memory training set of crops with a curriculum: short line starts first, clean first.

Each synth example carries each measure's box in crop pixels, so a staff crop can be cut
after its k-th measure; the cut keeps the line start (clef, key, time) and its tokens are
the header plus the first k measures, which is exactly what is visible. Early in training
the crops are short (cheap steps, short sequences, easy alignment) and lightly degraded;
the schedule widens both until the model sees whole, fully degraded lines.

    records = load_records(["/work/data/staff2"], cfg.preprocess, vocab, limit=40_000)
    ds = PrefixCropDataset(records, table)
    train(cfg, ds, val, out, curriculum=Schedule(steps=20_000), ...)

Crops are resized to the model's height once, at load time (a 64-px staff crop is about
35 KB, so 40,000 fit in 1.4 GB). Everything is a pure function of (index, curriculum
parameters), so a resumed run sees the same batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omr_engine.inference.preprocess import PreprocessConfig, resize_crop
from omr_engine.synth.dataset import read_examples

__all__ = ["CropRecord", "load_records", "split_measures", "PrefixCropDataset", "Schedule"]

_BARLINE = "<barline"
_CUT_MARGIN = 2  # pixels kept right of a measure's box, at model resolution


@dataclass(frozen=True)
class CropRecord:
    """One crop at model height, its token ids cut per measure, and each measure's right edge."""

    image: np.ndarray  # uint8 (height, W)
    pieces: tuple[tuple[int, ...], ...]  # ids per measure; the first holds the line header
    right_edges: tuple[int, ...]  # x (model pixels) where each measure ends; () = no cuts
    strength: float  # degradation strength, 0 = clean
    font: str

    @property
    def ids(self) -> list[int]:
        return [i for piece in self.pieces for i in piece]


def split_measures(tokens: Sequence[str]) -> list[list[str]]:
    """Tokens cut after every barline token; anything after the last barline is its own piece."""
    pieces: list[list[str]] = [[]]
    for tok in tokens:
        pieces[-1].append(tok)
        if tok.startswith(_BARLINE):
            pieces.append([])
    if not pieces[-1]:
        pieces.pop()
    return pieces


def load_records(
    sources: Iterable[Path | str],
    pre: PreprocessConfig,
    vocab: Any,
    *,
    unit: str = "staff",
    limit: int | None = None,
) -> list[CropRecord]:
    """Reads datasets into memory at model height. Cuts are allowed only where the
    example's measure boxes and its barline tokens agree one to one (single-staff crops)."""
    records: list[CropRecord] = []
    for source in sources:
        for image, tokens, meta in read_examples(source, [unit]):
            resized = resize_crop(image, pre)
            pieces = split_measures(tokens)
            boxes = meta.get("measure_boxes") or []
            scale = resized.shape[1] / image.shape[1]
            edges: tuple[int, ...] = ()
            if unit == "staff" and len(boxes) == len(pieces) and len(pieces) > 1:
                edges = tuple(
                    min(resized.shape[1], round(b[2] * scale) + _CUT_MARGIN) for b in boxes
                )
                if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
                    edges = ()
            records.append(
                CropRecord(
                    resized,
                    tuple(tuple(vocab.encode(p)) for p in pieces),
                    edges,
                    float(meta.get("strength", 0.0)),
                    str(meta.get("style", {}).get("font", "")),
                )
            )
            if limit is not None and len(records) >= limit:
                return records
    return records


class PrefixCropDataset:
    """Map-style dataset over records; ``set_curriculum`` limits measures and degradation.

    Index ``i`` picks among the records whose strength is at most ``max_strength`` (so an
    index always lands on an allowed record) and, while cutting, that can be cut; then cuts it after a number of measures drawn
    from 1..``max_measures`` by a generator seeded with (seed, i). Items are dicts with
    ``image``, ``ids`` and, when a grammar class table is given, ``class_ids``.
    """

    def __init__(self, records: Sequence[CropRecord], class_table: Any = None) -> None:
        if not records:
            raise ValueError("no training records")
        self.records = list(records)
        self.table = class_table
        strengths = np.array([r.strength for r in self.records])
        cuttable = np.array([bool(r.right_edges) for r in self.records])
        # per pool (all records / those that can be cut): indices sorted by strength
        self._pools = {}
        for name, keep in (("all", np.ones(len(strengths), bool)), ("cut", cuttable)):
            idx = np.flatnonzero(keep)
            order = idx[np.argsort(strengths[idx], kind="stable")]
            self._pools[name] = (order, strengths[order])
        self.max_measures = 0  # 0 = whole crops
        self.max_width = 0  # pixels a cut may reach (0 = any); bounds a batch's padding
        self.max_strength = 1.0
        self.seed = 0

    def __len__(self) -> int:
        return len(self.records)

    def set_curriculum(
        self, max_measures: int = 0, max_strength: float = 1.0, seed: int = 0, max_width: int = 0
    ) -> None:
        self.max_measures = int(max_measures)
        self.max_width = int(max_width)
        self.max_strength = float(max_strength)
        self.seed = int(seed)

    def item(self, index: int) -> dict[str, Any]:
        # while crops are cut, only cuttable records are served: one uncut line would pad
        # the whole batch to its width
        order, strengths = self._pools["cut" if self.max_measures > 0 else "all"]
        if not len(order):
            order, strengths = self._pools["all"]
        eligible = max(1, int(np.searchsorted(strengths, self.max_strength, "right")))
        rec = self.records[int(order[index % eligible])]
        image, pieces = rec.image, rec.pieces
        if self.max_measures > 0 and rec.right_edges:
            rng = np.random.default_rng([self.seed, index])
            k = int(rng.integers(1, min(self.max_measures, len(pieces)) + 1))
            while k > 1 and self.max_width and rec.right_edges[k - 1] > self.max_width:
                k -= 1
            if k < len(pieces):
                image = image[:, : rec.right_edges[k - 1]]
                pieces = pieces[:k]
        ids = [i for piece in pieces for i in piece]
        out: dict[str, Any] = {"image": image, "ids": ids}
        if self.table is not None:
            out["class_ids"] = self.table.class_ids(ids)
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.item(index)


@dataclass(frozen=True)
class Schedule:
    """Curriculum over training steps: measures per crop grow from ``start_measures`` to
    whole lines by ``full_at`` (a fraction of ``steps``), and the width a cut may reach
    from ``start_width`` pixels; degradation strength grows from ``start_strength`` to 1
    over the same span."""

    steps: int
    start_measures: int = 2
    full_at: float = 0.5
    start_strength: float = 0.3
    start_width: int = 384  # pixels a cut may reach at first; grows to 1536 over the ramp
    whole_line_measures: int = 0  # 0 = whole crops once the ramp ends

    def __call__(self, step: int) -> dict[str, Any]:
        t = min(1.0, step / max(1.0, self.full_at * self.steps))
        if t >= 1.0:
            measures, width = self.whole_line_measures, 0
        else:
            measures = int(round(self.start_measures + t * (12 - self.start_measures)))
            width = int(round(self.start_width + t * (1536 - self.start_width)))
        strength = self.start_strength + t * (1.0 - self.start_strength)
        return {
            "max_measures": measures,
            "max_width": width,
            "max_strength": strength,
            "seed": step,
        }
