"""A CTC reading in onset order turned back to canonical order, per-token data and all.

A model trained with ``--token-order onset`` reads a measure's voices merged by onset, with
``<voice:N>`` switches (:mod:`omr_engine.notation.reading_order`). Everything after
decoding (the grammar edit, measure fitting, duration mending, the score) works on
canonical tokens, so each reading is reordered here, right after decoding, and its
confidences, positions and per-token log-probabilities move with their tokens. A
canonical ``<voice>`` takes the confidence and place of the switch that opened its voice.
A reading without switches (every reading of a canonically trained model) is returned
as it is.
"""

from __future__ import annotations

import dataclasses

from omr_engine.inference.decoding import Result
from omr_engine.notation.reading_order import onset_order_sources
from omr_engine.notation.vocabulary import Vocabulary

__all__ = ["canonical_reading"]


def canonical_reading(result: Result, vocab: Vocabulary) -> Result:
    """``result`` with its tokens in canonical order (unchanged if it has no ``<voice:N>``)."""
    if not any(vocab.info(i).kind == "voice_to" for i in result.ids):
        return result
    pairs = onset_order_sources(vocab.decode(result.ids))
    sources = [s for _, s in pairs]
    ids = vocab.encode([t for t, _ in pairs])
    meta = dict(result.meta)
    rows = meta.get("token_logp")
    if rows is not None:
        meta["token_logp"] = [rows[s] for s in sources]
    positions = [result.positions[s] for s in sources] if result.positions else []
    return dataclasses.replace(
        result,
        ids=ids,
        token_confidences=[result.token_confidences[s] for s in sources],
        positions=positions,
        meta=meta,
    )
