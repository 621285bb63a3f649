"""Symbol error rate: token edit distance / reference length (numpy, no torch).

No edit-distance package is installed in the project environment (``editdistance`` and
``rapidfuzz`` are not dependencies), so this is a small numpy Levenshtein whose inner loop
runs over whole rows: the insertion chain along a row is a running minimum.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["edit_distance", "symbol_error_rate"]


def edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """Levenshtein distance between two token sequences (unit costs)."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    bb = np.asarray(b, dtype=np.int64)
    j = np.arange(len(bb) + 1, dtype=np.int64)
    prev = j.copy()  # row for the empty prefix of a
    for i, x in enumerate(a, start=1):
        # substitution / deletion from the previous row
        cand = np.empty_like(prev)
        cand[0] = i
        cand[1:] = np.minimum(prev[:-1] + (bb != x), prev[1:] + 1)
        # insertions: cur[j] = min_k<=j cand[k] + (j - k)
        prev = np.minimum.accumulate(cand - j) + j
    return int(prev[-1])


def symbol_error_rate(pairs: Iterable[tuple[Sequence[int], Sequence[int]]]) -> float:
    """Sum of edit distances over sum of reference lengths, for (prediction, reference) pairs."""
    errors = 0
    total = 0
    for pred, ref in pairs:
        errors += edit_distance(pred, ref)
        total += len(ref)
    return errors / max(total, 1)
