"""Preprocessing and decoding (greedy, beam, grammar-constrained) without torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from omr_engine.inference.decoding import (
    beam_decode,
    ctc_beam_decode,
    ctc_decode,
    greedy_decode,
)
from omr_engine.inference.preprocess import (
    PreprocessConfig,
    pad_batch,
    preprocess_batch,
    resize_crop,
)
from omr_engine.model.toy import ToyGrammar

V, BOS, EOS = 99, 1, 2

# ---- preprocessing -----------------------------------------------------------------------


def test_resize_keeps_aspect_and_caps_width():
    cfg = PreprocessConfig(height=32, max_width=256, width_multiple=32)
    assert resize_crop(np.zeros((64, 100), np.uint8), cfg).shape == (32, 50)
    assert resize_crop(np.zeros((16, 1000), np.uint8), cfg).shape == (32, 256)  # squashed
    assert resize_crop(np.zeros((64, 100, 3), np.uint8), cfg).shape == (32, 50)  # RGB -> gray
    with pytest.raises(ValueError, match="uint8"):
        resize_crop(np.zeros((64, 100), np.float32), cfg)
    with pytest.raises(ValueError, match="grayscale"):
        resize_crop(np.zeros((2, 64, 100), np.uint8), cfg)


def test_batch_is_inverted_normalised_and_padded():
    cfg = PreprocessConfig(height=32, max_width=256, width_multiple=32, mean=0.5, std=0.5)
    ink = np.zeros((32, 40), np.uint8)
    paper = np.full((32, 10), 255, np.uint8)
    pixels, widths = pad_batch([ink, paper], cfg)
    assert pixels.shape == (2, 1, 32, 64) and pixels.dtype == np.float32
    assert widths.tolist() == [40, 10]
    assert pixels[0, 0, 0, 0] == pytest.approx(1.0)  # ink -> (1 - 0.5) / 0.5
    assert pixels[1, 0, 0, 0] == pytest.approx(-1.0)  # paper
    assert pixels[0, 0, 0, 63] == pytest.approx(-1.0)  # padding is paper
    with pytest.raises(ValueError):
        PreprocessConfig(height=30)
    with pytest.raises(ValueError):
        preprocess_batch([], cfg)


# ---- a fake model: logits are a fixed function of each row's history ----------------------


@dataclass
class FakeState:
    keys: list[int]  # which crop each row decodes
    history: list[list[int]]


class FakeDecoder:
    """Deterministic pseudo-random logits from (crop, history); counts rows per step."""

    def __init__(self, temperature: float = 3.0, eos_after: int = 6) -> None:
        self.temperature, self.eos_after = temperature, eos_after
        self.rows_per_step: list[int] = []

    def start(self, n: int) -> FakeState:
        return FakeState(list(range(n)), [[] for _ in range(n)])

    def step(self, tokens, state):
        self.rows_per_step.append(len(tokens))
        hist = [h + [int(t)] for h, t in zip(state.history, tokens, strict=True)]
        logits = np.stack(
            [
                np.random.default_rng([k, *h]).normal(size=V) * self.temperature
                + (8.0 if len(h) > self.eos_after else 0.0) * (np.arange(V) == EOS)
                for k, h in zip(state.keys, hist, strict=True)
            ]
        ).astype(np.float32)
        return logits, FakeState(state.keys, hist)

    def select(self, state, rows):
        return FakeState([state.keys[r] for r in rows], [list(state.history[r]) for r in rows])


def run(decoder: FakeDecoder, n: int, beam: int = 1, grammar=None, max_len: int = 20):
    kw = dict(bos_id=BOS, eos_id=EOS, max_len=max_len, grammar_factory=grammar)
    if beam == 1:
        return greedy_decode(decoder, decoder.start(n), n, **kw)
    return beam_decode(decoder, decoder.start(n), n, beam=beam, **kw)


def sequence_logp(ids: list[int], key: int, finished: bool) -> float:
    """Log-probability of a path under FakeDecoder (EOS included when finished)."""
    dec, total = FakeDecoder(), 0.0
    path = [*ids, EOS] if finished else ids
    state = FakeState([key], [[]])
    for prev, nxt in zip([BOS, *path], path, strict=False):
        logits, state = dec.step(np.array([prev]), state)
        x = logits[0].astype(np.float64)
        total += x[nxt] - x.max() - np.log(np.exp(x - x.max()).sum())
    return total


def test_greedy_batched_equals_one_by_one_and_drops_finished_rows():
    dec = FakeDecoder()
    batched = run(dec, 5)
    assert dec.rows_per_step[0] == 5 and dec.rows_per_step[-1] < 5  # finished rows left
    for i, r in enumerate(batched):
        single = FakeDecoder()
        state = FakeState([i], [[]])
        alone = greedy_decode(single, state, 1, bos_id=BOS, eos_id=EOS, max_len=20)[0]
        assert r.ids == alone.ids
        assert r.token_confidences == pytest.approx(alone.token_confidences)
        assert all(0.0 < c <= 1.0 for c in r.token_confidences)
        assert EOS not in r.ids and len(r.ids) == len(r.token_confidences)


def test_max_len_counts_bos():
    results = run(FakeDecoder(eos_after=100), 2, max_len=5)
    assert all(len(r.ids) == 4 and not r.finished for r in results)


@pytest.mark.parametrize("beam", [1, 3])
def test_constrained_decoding_never_emits_a_forbidden_token(beam):
    # a hot model that ignores the grammar: unconstrained output breaks it
    free = run(FakeDecoder(temperature=5.0), 6, beam=beam)
    assert any(not follows_grammar(r.ids) for r in free)
    constrained = run(FakeDecoder(temperature=5.0), 6, beam=beam, grammar=ToyGrammar.factory(V))
    for r in constrained:
        assert follows_grammar(r.ids), r.ids
        assert r.finished and len(r.ids) > 0


def follows_grammar(ids: list[int]) -> bool:
    g = ToyGrammar(V)
    for t in ids:
        if not g.allowed_mask()[t]:
            return False
        g.advance(t)
    return bool(g.allowed_mask()[EOS])


class TrapDecoder:
    """Greedy's first choice (token 10, p=0.6) leads nowhere likely; token 11 (p=0.4) is
    followed by EOS with p~1. Beam search must find 11, EOS."""

    def step(self, tokens, state):
        rows = []
        for t in tokens:
            logits = np.full(V, -20.0)
            if t == BOS:
                logits[10], logits[11] = np.log(0.6), np.log(0.4)
            elif t == 11:
                logits[EOS] = 0.0
            else:  # after 10: many equally likely continuations
                logits[20:40] = 0.0
            rows.append(logits)
        return np.stack(rows).astype(np.float32), state

    def select(self, state, rows):
        return state


def test_beam_search_escapes_the_greedy_trap():
    kw = dict(bos_id=BOS, eos_id=EOS, max_len=6)
    greedy = greedy_decode(TrapDecoder(), None, 2, **kw)
    assert greedy[0].ids[:1] == [10]
    beam = beam_decode(TrapDecoder(), None, 2, beam=2, **kw)
    assert [r.ids for r in beam] == [[11], [11]]
    assert beam[0].score == pytest.approx(np.log(0.4) / 2, abs=1e-6)
    assert beam[0].token_confidences == pytest.approx([0.4])


def test_beam_of_one_is_greedy_and_scores_are_path_probabilities():
    greedy = run(FakeDecoder(), 4)
    assert [r.ids for r in run(FakeDecoder(), 4, beam=1)] == [r.ids for r in greedy]
    wide = run(FakeDecoder(), 4, beam=4)
    for i, (g, b) in enumerate(zip(greedy, wide, strict=True)):
        assert g.score == pytest.approx(sequence_logp(g.ids, i, True) / (len(g.ids) + 1))
        assert b.score == pytest.approx(sequence_logp(b.ids, i, True) / (len(b.ids) + 1))
        assert len(b.token_confidences) == len(b.ids)


# ---- CTC -------------------------------------------------------------------------------


def _ctc_logits(path: list[int], vocab: int, sharp: float = 8.0) -> np.ndarray:
    """Logits whose best path is ``path`` (one entry per column; ``vocab`` = blank)."""
    logits = np.zeros((len(path), vocab + 1), np.float32)
    logits[np.arange(len(path)), path] = sharp
    return logits


def test_ctc_collapses_repeats_and_drops_blanks():
    b = 5
    result = ctc_decode(_ctc_logits([b, 3, 3, b, 3, 4, 4, 4, b], 5), length=None)
    assert result.ids == [3, 3, 4]
    assert len(result.token_confidences) == 3
    assert all(0.9 < c <= 1.0 for c in result.token_confidences)
    # columns past the crop's length (padding) are not read
    assert ctc_decode(_ctc_logits([3, b, 4, 2], 5), length=2).ids == [3]


class _OnlyAfter:
    """A toy grammar: token 1 first, then any token except 1."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def allowed_mask(self) -> np.ndarray:
        mask = np.zeros(5, bool)
        if self.seen:
            mask[2:] = True
        else:
            mask[1] = True
        return mask

    def advance(self, token_id: int) -> None:
        self.seen.append(token_id)

    def copy(self) -> _OnlyAfter:
        other = _OnlyAfter()
        other.seen = list(self.seen)
        return other


def test_constrained_ctc_emits_only_allowed_tokens():
    logits = _ctc_logits([3, 5, 1, 1, 4], 5)
    logits[0, 1] = 6.0  # the grammar wants 1 first: the second best of column 0
    free = ctc_decode(logits)
    assert free.ids == [3, 1, 4]
    grammar = _OnlyAfter()
    constrained = ctc_decode(logits, grammar=grammar)
    assert constrained.ids[0] == 1 and 1 not in constrained.ids[1:]
    assert grammar.seen == constrained.ids
    assert constrained.meta["decoder"] == "ctc"


def test_ctc_beam_search_finds_the_sequence_that_many_weak_paths_spell():
    # Column by column blank wins (0.6 against 0.4), so best path reads nothing; but the
    # paths that spell "3" (3-blank, blank-3, 3-3) add up to 0.64 against 0.36.
    p = np.array([[0.0, 0.0, 0.0, 0.4, 0.0, 0.6]] * 2) + 1e-9
    logits = np.log(p).astype(np.float32)
    assert ctc_decode(logits).ids == []
    found = ctc_beam_decode(logits, beam=4)
    assert found.ids == [3]
    assert 0.25 <= found.positions[0] <= 0.75  # read in the first column, the second, or both
    assert len(found.token_confidences) == 1


def test_ctc_beam_search_agrees_with_best_path_on_a_sharp_reading():
    b = 5
    logits = _ctc_logits([b, 3, 3, b, 3, 4, 4, 4, b], 5)
    greedy, beam = ctc_decode(logits), ctc_beam_decode(logits, beam=3)
    assert beam.ids == greedy.ids == [3, 3, 4]
    assert beam.positions == pytest.approx(greedy.positions)


def test_constrained_ctc_beam_search_emits_only_allowed_tokens():
    logits = _ctc_logits([3, 5, 1, 1, 4], 5)
    logits[0, 1] = 6.0
    result = ctc_beam_decode(logits, beam=4, grammar=_OnlyAfter())
    assert result.ids[0] == 1 and 1 not in result.ids[1:]
