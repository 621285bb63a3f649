"""Joint CTC/attention decoding: the attention decoder proposes, the CTC head checks.

The attention decoder reads a line as a language: it knows what follows what, but it can
skip a measure or read one twice. The CTC head reads each column of the crop on its own:
it never loses its place, but it cannot weigh one token against the next. Read together
(Watanabe et al., "Hybrid CTC/Attention Architecture for End-to-End Speech Recognition",
2017), each hypothesis is scored

    (1 - w) * log p_attention(prefix) + w * log p_ctc(prefix)

where ``p_ctc(prefix)`` sums every column path whose reading starts with the prefix. The
decoder proposes each step's ``candidates`` likeliest tokens that the grammar allows; the
CTC prefix score ranks them with it. A prefix the columns cannot spell scores -inf.

The prefix probabilities follow the usual recursion over columns t,

    r_n[t](h) = (r_n[t-1](h) + phi[t-1](g)) * x[t](c)      h = g + c, x: column probs
    r_b[t](h) = (r_b[t-1](h) + r_n[t-1](h)) * x[t](blank)

which is linear in ``r``, so it is solved for all columns at once with cumulative sums in
log space (``np.logaddexp.accumulate``) instead of a loop over columns.

Afterwards :func:`.decoding.aligned_result` places the reading on the columns, so measure
fitting, duration mending and re-reading work on it as on a CTC reading.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from omr_engine.inference.contract import HYBRID_CTC_WEIGHT
from omr_engine.inference.decoding import GrammarState, Result, StepDecoder, masked

__all__ = ["joint_decode", "CTCPrefix", "CTCScorer"]

NEG = -np.inf


def _log_softmax32(x: np.ndarray) -> np.ndarray:
    """Log-probabilities in float32: the decoder's (rows, 7,759) logits every step, of
    which only a few per row are read (float64 cost about 2 ms of a crop's 35)."""
    x = np.asarray(x, dtype=np.float32)
    m = x.max(-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))


def _logcumsumexp(x: np.ndarray) -> np.ndarray:
    return np.logaddexp.accumulate(x, axis=-1)


@dataclass
class CTCPrefix:
    """The CTC state of one prefix over a crop's columns: ``r_n[t]`` and ``r_b[t]``, the
    log-probabilities that columns 0..t spell the prefix ending on its last token or on a
    blank, and ``psi``, the log-probability that the reading starts with the prefix."""

    r_n: np.ndarray  # (T,)
    r_b: np.ndarray  # (T,)
    psi: float
    last: int | None

    def end_score(self) -> float:
        """log p(the reading is exactly this prefix)."""
        return float(np.logaddexp(self.r_n[-1], self.r_b[-1]))


class CTCScorer:
    """Prefix scores over one crop's (T, V+1) CTC log-probabilities, blank last."""

    def __init__(self, logp: np.ndarray) -> None:
        self.logp = np.asarray(logp, np.float64)
        self.cum_b = np.cumsum(self.logp[:, -1])  # all blanks through column t
        self.cum_b_prev = np.concatenate([[0.0], self.cum_b[:-1]])

    def start(self) -> CTCPrefix:
        """The empty prefix."""
        return CTCPrefix(np.full(len(self.logp), NEG), self.cum_b.copy(), 0.0, None)

    def extend(self, parents: Sequence[CTCPrefix], tokens: Sequence[int]) -> list[CTCPrefix]:
        """Each ``parents[i]`` grown by ``tokens[i]`` (not the end), all columns at once."""
        if not len(tokens):
            return []
        toks = np.asarray(tokens, np.int64)
        n = len(toks)
        x = self.logp[:, toks].T  # (n, T)
        r_n_g = np.stack([p.r_n for p in parents])
        r_b_g = np.stack([p.r_b for p in parents])
        # phi[t]: the parent g is complete by column t, and c may start at t + 1; for c
        # equal to g's last token only paths ending on a blank count.
        last = np.array([-1 if p.last is None else p.last for p in parents])
        phi = np.where((toks == last)[:, None], r_b_g, np.logaddexp(r_n_g, r_b_g))
        # phi[-1]: before the first column, only the empty prefix is complete.
        before = np.where(last < 0, 0.0, NEG)[:, None]
        phi_prev = np.concatenate([before, phi[:, :-1]], axis=1)  # phi[t-1], t = 0..T-1
        cum_x = np.cumsum(x, axis=1)  # X[t]
        cum_x_prev = np.concatenate([np.zeros((n, 1)), cum_x[:, :-1]], axis=1)
        r_n = cum_x + _logcumsumexp(phi_prev - cum_x_prev)
        r_n_prev = np.concatenate([np.full((n, 1), NEG), r_n[:, :-1]], axis=1)
        r_b = self.cum_b + _logcumsumexp(r_n_prev - self.cum_b_prev)
        psi = np.logaddexp.reduce(phi_prev + x, axis=1)
        return [CTCPrefix(r_n[i], r_b[i], float(psi[i]), int(toks[i])) for i in range(n)]


@dataclass
class _Hyp:
    ids: list[int]
    confs: list[float]
    att: float  # attention log-probability of the prefix
    ctc: CTCPrefix
    grammar: GrammarState | None

    def score(self, weight: float) -> float:
        return _mix(self.att, self.ctc.psi, weight)


def _mix(att: float, ctc: float, weight: float) -> float:
    """The joint score; with ``weight`` 0 the CTC head only keeps out what it cannot spell."""
    if weight <= 0.0:
        return att if ctc > NEG else NEG
    return (1.0 - weight) * att + weight * ctc


def joint_decode(
    decoder: StepDecoder,
    state: object,
    ctc_logp: list[np.ndarray],
    *,
    beam: int,
    bos_id: int,
    eos_id: int,
    max_len: int,
    ctc_weight: float = HYBRID_CTC_WEIGHT,
    candidates: int = 6,
    grammar_factory: Callable[[], GrammarState] | None = None,
) -> list[Result]:
    """Beam search (``beam`` = 1: greedy) over ``len(ctc_logp)`` crops at once, each
    hypothesis scored by the attention decoder and the crop's CTC columns together.

    ``ctc_logp``: per crop, its (T, V+1) CTC log-probabilities over its valid columns,
    blank last. A crop stops when it has ``beam`` finished readings or none of its live
    ones can beat its best finished one (both scores only fall as a prefix grows). A
    token's confidence is the attention decoder's probability of it, before masking.
    """
    n = len(ctc_logp)
    k = beam
    state = decoder.select(state, np.repeat(np.arange(n), k))  # type: ignore[arg-type]
    scorers = [CTCScorer(logp) for logp in ctc_logp]
    hyps: list[list[_Hyp]] = []
    for c in range(n):
        first = _Hyp(
            [], [], 0.0, scorers[c].start(), grammar_factory() if grammar_factory else None
        )
        dead = [_Hyp([], [], NEG, first.ctc, first.grammar) for _ in range(k - 1)]  # never advanced
        hyps.append([first, *dead])
    done: list[list[tuple[float, _Hyp]]] = [[] for _ in range(n)]
    active = list(range(n))
    tokens = np.full(n * k, bos_id, dtype=np.int64)
    for _ in range(max_len - 1):
        logits, state = decoder.step(tokens, state)
        logp = _log_softmax32(logits).reshape(len(active), k, -1)  # (A, K, V)
        states = [h.grammar for c in active for h in hyps[c]] if grammar_factory else None
        scores = masked(logp, states, eos_id)  # type: ignore[arg-type]
        next_rows: list[int] = []
        next_tokens: list[int] = []
        still: list[int] = []
        for a, c in enumerate(active):
            # every live hypothesis' likeliest allowed next tokens, scored by both
            pool: list[tuple[float, int, int, CTCPrefix | None]] = []  # score, beam, token
            grown: list[tuple[int, int]] = []
            for j, h in enumerate(hyps[c]):
                if h.att == NEG:
                    continue
                row = scores[a, j]
                top = np.argpartition(-row, min(candidates, len(row)) - 1)[:candidates]
                for tok in top[np.isfinite(row[top])].tolist():
                    if tok != eos_id:
                        grown.append((j, tok))
                        continue
                    att = h.att + float(logp[a, j, eos_id])
                    pool.append((_mix(att, h.ctc.end_score(), ctc_weight), j, eos_id, None))
            extended = scorers[c].extend([hyps[c][j].ctc for j, _ in grown], [t for _, t in grown])
            for (j, tok), ctc in zip(grown, extended, strict=True):
                att = hyps[c][j].att + float(logp[a, j, tok])
                pool.append((_mix(att, ctc.psi, ctc_weight), j, tok, ctc))
            pool.sort(key=lambda p: -p[0])
            new: list[_Hyp] = []
            src: list[int] = []
            for total, j, tok, ctc in pool:
                if total == NEG:
                    break
                h = hyps[c][j]
                if tok == eos_id:
                    done[c].append((total, h))
                    continue
                g = None
                if h.grammar is not None:
                    g = h.grammar.copy()
                    g.advance(tok)
                att = h.att + float(logp[a, j, tok])
                conf = float(np.exp(logp[a, j, tok]))
                new.append(_Hyp([*h.ids, tok], [*h.confs, conf], att, ctc, g))  # type: ignore[arg-type]
                src.append(a * k + j)
                if len(new) == k:
                    break
            best_done = max((d[0] for d in done[c]), default=NEG)
            best_live = max((h.score(ctc_weight) for h in new), default=NEG)
            if not new or len(done[c]) >= k or best_done >= best_live:
                continue
            while len(new) < k:
                new.append(_Hyp([], [], NEG, new[0].ctc, new[0].grammar))
                src.append(src[0])
            hyps[c] = new
            still.append(c)
            next_rows.extend(src)
            next_tokens.extend(h.ids[-1] if h.ids else eos_id for h in new)
        if not still:
            break
        state = decoder.select(state, np.asarray(next_rows))  # type: ignore[arg-type]
        tokens = np.asarray(next_tokens, dtype=np.int64)
        active = still
    results = []
    for c in range(n):
        if done[c]:
            total, h = max(done[c], key=lambda d: d[0])
            results.append(Result(h.ids, h.confs, total / max(len(h.ids) + 1, 1), True))
        else:
            h = max(hyps[c], key=lambda h: h.score(ctc_weight))
            results.append(Result(h.ids, h.confs, h.score(ctc_weight) / max(len(h.ids), 1), False))
    return results
