"""Toy vocabulary, grammar and data set for tests and benchmarks (no music knowledge).

- ``ToyVocab``: the duck-typed vocabulary API (pad 0, bos 1, eos 2, unk 3) with a factor
  table, like the real one but with ``size`` tokens.
- ``ToyGrammar``: a state machine over it: "blocks" tokens (4..4+n_kinds) and others
  alternate with a separator rule, EOS only after at least one token.
- ``BlocksDataset``: images of k small blocks, each in the patch row given by its token,
  so the target is the left-to-right sequence of block rows; learnable in a few hundred
  steps by the tiny preset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["ToyVocab", "ToyGrammar", "BlocksDataset"]


class ToyVocab:
    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(self, size: int = 99) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def factor_sizes(self) -> tuple[int, ...]:
        return (5, 20, 8)

    def factors(self) -> np.ndarray:
        ids = np.arange(self.size)
        kind = np.where(ids < 4, 0, 1 + ids % 4)
        return np.stack([kind, ids % 20, ids % 8], axis=1).astype(np.int64)


@dataclass
class ToyGrammar:
    """After an even token an odd one must follow and vice versa (specials excluded);
    UNK and BOS/PAD are never allowed; EOS only once something was emitted."""

    vocab_size: int = 99
    last: int = -1
    length: int = 0

    @classmethod
    def factory(cls, vocab_size: int = 99) -> Callable[[], ToyGrammar]:
        """A zero-argument factory, as ``Recognizer.recognize(grammar_factory=...)`` wants."""
        return lambda: cls(vocab_size)

    def allowed_mask(self) -> np.ndarray:
        ids = np.arange(self.vocab_size)
        mask = ids >= 4
        if self.last >= 4:
            mask &= ids % 2 != self.last % 2
        mask[2] = self.length > 0
        return mask

    def advance(self, token_id: int) -> None:
        if not self.allowed_mask()[token_id]:
            raise ValueError(f"token {token_id} is not allowed here")
        self.last = token_id
        self.length += 1

    def copy(self) -> ToyGrammar:
        return ToyGrammar(self.vocab_size, self.last, self.length)


class BlocksDataset:
    """Map-style data set of ``(image, ids)``: k in 1..max_symbols blocks, token 4 + r is a
    6x6 block in the r-th 8-pixel row of a 32-pixel-high image, 16 pixels per symbol."""

    def __init__(self, n: int, seed: int = 0, max_symbols: int = 3, n_kinds: int = 4) -> None:
        rng = np.random.default_rng(seed)
        self.items: list[tuple[np.ndarray, list[int]]] = []
        for _ in range(n):
            k = int(rng.integers(1, max_symbols + 1))
            ids = [int(t) for t in rng.integers(4, 4 + n_kinds, k)]
            image = np.full((32, 16 * k + 16), 255, np.uint8)
            for i, t in enumerate(ids):
                y, x = 1 + 8 * (t - 4), 9 + 16 * i
                image[y : y + 6, x : x + 6] = 0
            self.items.append((image, ids))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[np.ndarray, list[int]]:
        return self.items[i]
