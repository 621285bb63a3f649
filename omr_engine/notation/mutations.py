"""Corrupting one measure's tokens the way a misreading would: the grammar must catch it.

Used to measure the grammar's recall (tests and `benchmarks/bench_roundtrip.py`) and usable
to make negative examples.
"""

from __future__ import annotations

import random

from .symbols import Duration, all_durations
from .vocabulary import default_vocabulary, note_token, rest_token

MUTATIONS = ("drop_event", "change_duration", "insert_event")


def _event_spans(tokens: list[str]) -> list[tuple[int, int]]:
    """(start, stop) of each note/rest event: a chord with its ties is one event."""
    vocab = default_vocabulary()
    kinds = [vocab.info(vocab.id(t)).kind for t in tokens]
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(tokens):
        if kinds[i] not in ("note", "rest", "grace"):
            i += 1
            continue
        j = i + 1
        while j < len(tokens) and (
            kinds[j] in ("tie", "chord")
            or kinds[j] == "note"
            and kinds[j - 1] in ("chord", "grace")
        ):
            j += 1
        spans.append((i, j))
        i = j
    return spans


def mutate_measure(tokens: list[str], kind: str, rng: random.Random) -> list[str] | None:
    """A corrupted copy of one measure's tokens, or None if the measure has no event to touch."""
    vocab = default_vocabulary()
    spans = [(a, b) for a, b in _event_spans(tokens) if tokens[a] != "<grace>"]
    if not spans:
        return None
    start, stop = rng.choice(spans)
    out = list(tokens)
    if kind == "drop_event":
        del out[start:stop]
        return out
    info = vocab.info(vocab.id(tokens[start]))
    if kind == "change_duration":
        assert info.duration is not None
        others = [d for d in all_durations() if d != info.duration and d.dots == 0]
        new = rng.choice(others)
        for k in range(start, stop):
            ki = vocab.info(vocab.id(out[k]))
            if ki.kind == "note":
                out[k] = note_token(ki.pitch, new)  # type: ignore[arg-type]
            elif ki.kind == "rest":
                out[k] = rest_token(new)
        return out
    if kind == "insert_event":
        duration = Duration(rng.choice(["quarter", "eighth", "half", "16th"]))
        pitch = info.pitch
        token = note_token(pitch, duration) if pitch is not None else rest_token(duration)
        out.insert(rng.choice([start, stop]), token)
        return out
    raise ValueError(f"unknown mutation {kind!r}")
