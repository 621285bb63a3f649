"""Batching for training: examples -> padded tensors, plus a step-indexed sampler.

An example is ``(image, ids)`` or ``(image, ids, class_ids)`` or a dict with those keys:
``image`` uint8 (H, W) grayscale (dark ink on white), ``ids`` the token ids without BOS/EOS,
``class_ids`` (optional, len(ids) + 1) the grammar class of each decoder input position.
Images go through the same ``omr_engine.inference.preprocess`` functions as at inference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from omr_engine.inference.preprocess import pad_batch, resize_crop
from omr_engine.model.config import ModelConfig

__all__ = ["Batch", "Collate", "StepBatchSampler", "CurriculumDataset", "unpack_example"]


@dataclass
class Batch:
    pixels: torch.Tensor  # (B, 1, H, W) float32
    widths: torch.Tensor  # (B,) int64
    tokens: torch.Tensor  # (B, T) decoder input: BOS + ids, padded with pad_id
    targets: torch.Tensor  # (B, T) ids + EOS, padded with pad_id
    class_ids: torch.Tensor | None  # (B, T) grammar class per input position, or None
    refs: list[list[int]]  # the reference ids (for error rates)
    n_truncated: int = 0

    def to(self, device: torch.device) -> Batch:
        nb = device.type == "cuda"
        return Batch(
            self.pixels.to(device, non_blocking=nb),
            self.widths.to(device, non_blocking=nb),
            self.tokens.to(device, non_blocking=nb),
            self.targets.to(device, non_blocking=nb),
            None if self.class_ids is None else self.class_ids.to(device, non_blocking=nb),
            self.refs,
            self.n_truncated,
        )

    def pin_memory(self) -> Batch:
        return Batch(
            self.pixels.pin_memory(),
            self.widths.pin_memory(),
            self.tokens.pin_memory(),
            self.targets.pin_memory(),
            None if self.class_ids is None else self.class_ids.pin_memory(),
            self.refs,
            self.n_truncated,
        )


def unpack_example(example: Any) -> tuple[np.ndarray, list[int], np.ndarray | None]:
    """-> (image, ids, class_ids or None) from a tuple or dict example."""
    if isinstance(example, dict):
        return example["image"], list(example["ids"]), example.get("class_ids")
    if len(example) == 2:
        return example[0], list(example[1]), None
    if len(example) == 3:
        return example[0], list(example[1]), example[2]
    raise ValueError("an example is (image, ids) or (image, ids, class_ids)")


class Collate:
    """Picklable collate function (works with DataLoader workers)."""

    def __init__(self, cfg: ModelConfig) -> None:
        self.cfg = cfg

    def __call__(self, examples: Sequence[Any]) -> Batch:
        cfg = self.cfg
        images, seqs, classes = [], [], []
        n_trunc = 0
        for ex in examples:
            image, ids, cls = unpack_example(ex)
            images.append(resize_crop(image, cfg.preprocess))
            if len(ids) + 1 > cfg.max_len:
                n_trunc += 1
            seqs.append([int(i) for i in ids])
            classes.append(cls)
        pixels, widths = pad_batch(images, cfg.preprocess)
        t = min(max(len(s) for s in seqs) + 1, cfg.max_len)
        b = len(seqs)
        tokens = torch.full((b, t), cfg.pad_id, dtype=torch.long)
        targets = torch.full((b, t), cfg.pad_id, dtype=torch.long)
        use_classes = all(c is not None for c in classes)
        class_ids = torch.zeros((b, t), dtype=torch.long) if use_classes else None
        for i, ids in enumerate(seqs):
            # a sequence longer than max_len is cut, and then has no EOS to learn
            inp = [cfg.bos_id, *ids][:t]
            tgt = [*ids, cfg.eos_id][:t]
            tokens[i, : len(inp)] = torch.tensor(inp)
            targets[i, : len(tgt)] = torch.tensor(tgt)
            if class_ids is not None:
                c = np.asarray(classes[i], dtype=np.int64)[: len(inp)]
                if len(c) != len(inp):
                    raise ValueError(
                        f"class_ids has {len(classes[i])} entries, expected len(ids) + 1 = {len(ids) + 1}"
                    )
                class_ids[i, : len(c)] = torch.from_numpy(c)
        return Batch(
            torch.from_numpy(pixels),
            torch.from_numpy(widths),
            tokens,
            targets,
            class_ids,
            [s[: cfg.max_len - 1] for s in seqs],
            n_trunc,
        )


class StepBatchSampler(Sampler[list[Any]]):
    """Infinite batches of indices, a pure function of (seed, step): resuming at step s
    gives exactly the batches an uninterrupted run would have seen.

    Every epoch is a fresh permutation seeded by (seed, epoch). With ``curriculum`` each
    index is paired with ``curriculum(step)`` so that settings reach DataLoader workers.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int = 0,
        start_step: int = 0,
        curriculum: Callable[[int], dict[str, Any]] | None = None,
    ) -> None:
        if n <= 0:
            raise ValueError("empty training dataset")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_step = start_step
        self.curriculum = curriculum
        self._cache: tuple[int, np.ndarray] | None = None

    def _perm(self, epoch: int) -> np.ndarray:
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n))
        return self._cache[1]

    def __iter__(self) -> Iterator[list[Any]]:
        step = self.start_step
        while True:
            start = step * self.batch_size
            idx = []
            for pos in range(start, start + self.batch_size):
                epoch, k = divmod(pos, self.n)
                idx.append(int(self._perm(epoch)[k]))
            if self.curriculum is not None:
                params = self.curriculum(step)
                idx = [(i, params) for i in idx]
            yield idx
            step += 1


class CurriculumDataset(Dataset):
    """Map-style view whose keys are ``(index, params)``: calls
    ``base.set_curriculum(**params)`` (if the dataset has it) before ``base[index]``."""

    def __init__(self, base: Dataset) -> None:
        self.base = base
        self._last: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, dict[str, Any]]) -> Any:
        index, params = key
        if params != self._last and hasattr(self.base, "set_curriculum"):
            self.base.set_curriculum(**params)
            self._last = dict(params)
        return self.base[index]
