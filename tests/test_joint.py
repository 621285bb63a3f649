"""Joint CTC/attention decoding and placing an attention reading on the CTC columns."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from omr_engine.inference.decoding import Result, _log_softmax, aligned_result, ctc_align
from omr_engine.inference.joint import CTCScorer, joint_decode

V = 4  # tokens 0..3 (0 = BOS, 1 = EOS); the CTC blank is column V
BOS, EOS = 0, 1


def _random_logp(t: int, seed: int) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(t, V + 1)) * 2
    return _log_softmax(logits)


def _collapse(path: tuple[int, ...]) -> tuple[int, ...]:
    out, prev = [], None
    for p in path:
        if p != V and p != prev:
            out.append(p)
        prev = p
    return tuple(out)


def _all_readings(logp: np.ndarray) -> dict[tuple[int, ...], float]:
    """Every reading the columns spell and its log-probability, by enumerating paths."""
    probs: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(V + 1), repeat=len(logp)):
        lp = float(sum(logp[t, p] for t, p in enumerate(path)))
        key = _collapse(path)
        probs[key] = float(np.logaddexp(probs.get(key, -np.inf), lp))
    return probs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ctc_prefix_scores_equal_the_sum_over_every_column_path(seed):
    logp = _random_logp(5, seed)
    readings = _all_readings(logp)
    scorer = CTCScorer(logp)
    for prefix in [(2,), (2, 2), (3, 2, 3), (2, 3, 3), (3, 3, 3)]:
        state = scorer.start()
        for tok in prefix:
            state = scorer.extend([state], [tok])[0]
        starting = [v for k, v in readings.items() if k[: len(prefix)] == prefix]
        assert state.psi == pytest.approx(float(np.logaddexp.reduce(starting)))
        assert state.end_score() == pytest.approx(readings.get(prefix, -np.inf))


def test_a_prefix_the_columns_cannot_spell_scores_minus_infinity():
    scorer = CTCScorer(_random_logp(2, 3))
    state = scorer.start()
    for tok in (2, 2):  # a repeated token needs a blank between: three columns
        state = scorer.extend([state], [tok])[0]
    assert state.psi == -np.inf
    grown = scorer.extend([scorer.start(), scorer.start()], [2, 3])
    assert [g.psi > -np.inf for g in grown] == [True, True]


def test_prefixes_grown_together_score_as_grown_one_by_one():
    scorer = CTCScorer(_random_logp(6, 5))
    a = scorer.extend([scorer.start()], [2])[0]
    b = scorer.extend([scorer.start()], [3])[0]
    together = scorer.extend([a, a, b, b], [2, 3, 2, 3])
    alone = [scorer.extend([p], [t])[0] for p, t in [(a, 2), (a, 3), (b, 2), (b, 3)]]
    for x, y in zip(together, alone, strict=True):
        assert x.psi == pytest.approx(y.psi) and x.end_score() == pytest.approx(y.end_score())


@pytest.mark.parametrize("seed", [0, 4])
def test_alignment_is_the_likeliest_column_path_that_spells_the_reading(seed):
    logp = _random_logp(5, seed)
    ids = [3, 2]
    best, best_path = -np.inf, None
    for path in itertools.product(range(V + 1), repeat=len(logp)):
        if _collapse(path) == tuple(ids):
            lp = float(sum(logp[t, p] for t, p in enumerate(path)))
            if lp > best:
                best, best_path = lp, path
    spans = ctc_align(logp, ids)
    assert spans is not None
    for k, (a, b) in enumerate(spans):
        cols = [t for t, p in enumerate(best_path) if p == ids[k]]
        assert (a, b) == (cols[0], cols[-1])
    assert ctc_align(logp[:2], [2, 2]) is None  # 2, blank, 2 needs three columns


def test_an_attention_reading_placed_on_the_columns_gets_positions_and_columns():
    logp = np.full((6, V + 1), -9.0)
    for t, tok in enumerate([V, 2, 2, V, 3, V]):
        logp[t, tok] = 0.0
    result = aligned_result(Result([2, 3], [0.9, 0.8]), _log_softmax(logp), token_logp=True)
    assert result is not None
    assert result.ids == [2, 3]
    # the mean of the decoder's confidence and the columns' (exp(0) = 1 where they read it)
    assert result.token_confidences == pytest.approx([0.95, 0.9], abs=1e-3)
    assert result.positions == pytest.approx([2 / 6, 4.5 / 6])
    assert len(result.meta["token_logp"]) == 2 and len(result.meta["columns"]) == 6
    assert aligned_result(Result([2, 2, 2], [1, 1, 1]), _log_softmax(logp[:4])) is None


# ---- a fake attention decoder: fixed next-token probabilities per history ------------------


@dataclass
class _State:
    history: list[list[int]]


class _TableDecoder:
    """Next-token log-probabilities looked up by the tokens read so far."""

    def __init__(self, table: dict[tuple[int, ...], dict[int, float]]) -> None:
        self.table = table

    def step(self, tokens, state):
        hist = [h + [int(t)] for h, t in zip(state.history, tokens, strict=True)]
        rows = []
        for h in hist:
            probs = self.table.get(tuple(h[1:]), {EOS: 1.0})
            row = np.full(V, 1e-6)
            for tok, p in probs.items():
                row[tok] = p
            rows.append(np.log(row / row.sum()))
        return np.asarray(rows, np.float32), _State(hist)

    def select(self, state, rows):
        return _State([list(state.history[r]) for r in rows])


def _columns(path: list[int]) -> np.ndarray:
    logp = np.full((len(path), V + 1), np.log(0.01))
    for t, tok in enumerate(path):
        logp[t, tok] = np.log(0.96)
    return _log_softmax(logp)


# The decoder hesitates at its first token (3 a little likelier than 2) and is then sure:
# after 3 it would stop, after 2 it reads 3 and stops. The columns clearly spell "2 3".
UNSURE = {(): {3: 0.55, 2: 0.45}, (3,): {EOS: 1.0}, (2,): {3: 1.0}, (2, 3): {EOS: 1.0}}


def _decode(weight: float, beam: int = 1, grammar=None) -> list[int]:
    logp = _columns([V, 2, V, 3, V])
    dec = _TableDecoder(UNSURE)
    out = joint_decode(
        dec,
        _State([[]]),
        [logp],
        beam=beam,
        bos_id=BOS,
        eos_id=EOS,
        max_len=8,
        ctc_weight=weight,
        grammar_factory=grammar,
    )
    return out[0].ids


@pytest.mark.parametrize("beam", [1, 3])
def test_the_columns_settle_what_the_attention_decoder_hesitates_over(beam):
    assert _decode(0.3, beam) == [2, 3]


def test_with_no_weight_on_the_columns_greedy_decoding_follows_the_attention_decoder():
    assert _decode(0.0) == [3]


class _No2:
    """A toy grammar that forbids token 2."""

    def allowed_mask(self) -> np.ndarray:
        return np.array([False, True, False, True])

    def advance(self, token_id: int) -> None:
        assert token_id != 2

    def copy(self) -> _No2:
        return self


def test_joint_decoding_never_emits_what_the_grammar_forbids():
    assert 2 not in _decode(0.3, 2, grammar=_No2)
