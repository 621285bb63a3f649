"""Model columns made by hand for the mending tests: log-probabilities over the default
vocabulary with the CTC blank last."""

from __future__ import annotations

import numpy as np

from omr_engine.notation.vocabulary import default_vocabulary

VOCAB = default_vocabulary()
BLANK = len(VOCAB)


def column(token: str, margin: float = 8.0, nearly: tuple[str, float] | None = None) -> np.ndarray:
    """A token's column: ``margin`` nats above blank, and ``nearly`` a second choice."""
    row = np.full(BLANK + 1, -20.0)
    row[BLANK] = 0.0
    row[VOCAB.id(token)] = margin
    if nearly:
        row[VOCAB.id(nearly[0])] = nearly[1]
    return row - np.logaddexp.reduce(row)  # log-probabilities
