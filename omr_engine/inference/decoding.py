"""Greedy and beam-search decoding over any step function (numpy, no torch).

A ``StepDecoder`` holds the per-row decoding state (cross-attention keys/values and the
KV cache) and runs one step for a batch of rows; ``select`` keeps/reorders rows (finished
rows are dropped, beams are reordered). The ONNX session implements it; tests also use a
torch adapter and fakes.

With a grammar (``grammar_factory() -> state`` with ``allowed_mask() -> bool (V,)``,
``advance(token_id)`` and ``copy()``) forbidden tokens are masked before choosing, so the
output always follows the grammar. Token confidences are the model's own softmax
probability of the chosen token *before* masking: a token the grammar forced on an unsure
model is reported as unsure, which is what a reviewer needs to see.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = [
    "Columns",
    "Result",
    "StepDecoder",
    "GrammarState",
    "greedy_decode",
    "beam_decode",
    "ctc_decode",
    "ctc_beam_decode",
    "ctc_align",
    "aligned_result",
    "column_logp",
    "prefix_search",
]


@dataclass(frozen=True)
class Result:
    """Recognised tokens of one crop (no BOS/EOS) with per-token confidence in [0, 1]."""

    ids: list[int]
    token_confidences: list[float]
    score: float = 0.0  # mean log-probability per token (EOS included) of the chosen path
    finished: bool = True  # False when max_len was reached before EOS
    meta: dict[str, Any] = field(default_factory=dict)
    # Where each token was read, as a fraction of the crop's width (the centre of the CTC
    # columns it spans); empty for the attention decoder read alone, which has no alignment.
    positions: list[float] = field(default_factory=list)


TOP = 8  # tokens a Columns keeps per column
KEEP = 12.0  # ... of those within this many nats of the column's best (blank included)
FLOOR = -30.0  # log-probability Columns gives a token a column did not keep


@dataclass(frozen=True)
class Columns:
    """One crop's CTC columns, kept compactly for re-reading: per column, up to ``TOP``
    likeliest tokens within ``KEEP`` nats of the column's best (ids and log-probabilities,
    blank excluded, best first; unused places hold id -1 at ``FLOOR``) and the blank's."""

    ids: np.ndarray  # (C, TOP) int32
    logp: np.ndarray  # (C, TOP) float32
    blank: np.ndarray  # (C,) float32

    @classmethod
    def from_logp(cls, logp: np.ndarray, top: int = TOP) -> Columns:
        """From a crop's (C, V+1) log-probabilities, blank last. Only the tokens near each
        column's best are sorted (a full top-k over 7,759 tokens a column took 15 ms a
        crop, a third of reading it)."""
        tokens = logp[:, :-1]
        rows, cols = np.nonzero(tokens >= logp.max(axis=1, keepdims=True) - KEEP)
        values = tokens[rows, cols]
        order = np.lexsort((-values, rows))
        rows, cols, values = rows[order], cols[order], values[order]
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
        keep = rank < top
        ids = np.full((len(logp), top), -1, np.int32)
        kept = np.full((len(logp), top), FLOOR, np.float32)
        ids[rows[keep], rank[keep]] = cols[keep]
        kept[rows[keep], rank[keep]] = values[keep]
        return cls(ids, kept, logp[:, -1].astype(np.float32))

    def __len__(self) -> int:
        return len(self.blank)

    def tokens(self, t: int) -> list[tuple[int, float]]:
        """Column ``t``'s kept tokens and their log-probabilities, best first."""
        return [
            (i, v)
            for i, v in zip(self.ids[t].tolist(), self.logp[t].tolist(), strict=True)
            if i >= 0
        ]

    def peak(self, tok: int, first: int, last: int) -> int:
        """The column in [first, last] where ``tok`` is likeliest."""
        values = [dict(self.tokens(t)).get(tok, FLOOR) for t in range(first, last + 1)]
        return first + int(np.argmax(values))

    def row(self, t: int, size: int) -> np.ndarray:
        """Column ``t`` as a dense (size,) row of log-probabilities (blank last; tokens it
        did not keep at ``FLOOR``), what :mod:`.durations` and :mod:`.ties` read."""
        out = np.full(size, FLOOR, np.float32)
        for i, v in self.tokens(t):
            out[i] = v
        out[-1] = self.blank[t]
        return out


class GrammarState(Protocol):
    def allowed_mask(self) -> np.ndarray: ...
    def advance(self, token_id: int) -> None: ...
    def copy(self) -> GrammarState: ...


class StepDecoder(Protocol):
    def step(self, tokens: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """tokens (N,) int64 -> logits (N, V) float32 and the advanced state."""
        ...

    def select(self, state: Any, rows: np.ndarray) -> Any:
        """Keep (and reorder/duplicate) rows of the state."""
        ...


def _log_softmax(x: np.ndarray) -> np.ndarray:
    """Log-probabilities in float64, the normaliser summed in float32: exp over a crop's
    (columns, 7,757) logits is 6x faster in float32 on the CPU (13.3 -> 2.3 ms a crop,
    which was half of reading one), and the result moves by under 1e-6."""
    x32 = np.asarray(x, dtype=np.float32)
    m = x32.max(-1, keepdims=True)
    lse = m + np.log(np.exp(x32 - m).sum(-1, keepdims=True))
    return x32.astype(np.float64) - lse.astype(np.float64)


def _allowed(states: list[GrammarState], vocab_size: int) -> np.ndarray:
    mask = np.stack([np.asarray(s.allowed_mask(), dtype=bool) for s in states])
    if mask.shape[1] != vocab_size:
        raise ValueError(f"grammar mask has {mask.shape[1]} entries, vocabulary has {vocab_size}")
    return mask


def masked(logp: np.ndarray, states: list[GrammarState] | None, eos_id: int) -> np.ndarray:
    """``logp`` (rows, ..., V), one row per grammar state in order, with what each state
    forbids at -inf; a row whose grammar allows nothing may only stop."""
    if states is None:
        return logp
    mask = _allowed(states, logp.shape[-1]).reshape(logp.shape)
    mask[~mask.any(-1), eos_id] = True
    return np.where(mask, logp, -np.inf)


def greedy_decode(
    decoder: StepDecoder,
    state: Any,
    n: int,
    *,
    bos_id: int,
    eos_id: int,
    max_len: int,
    grammar_factory: Callable[[], GrammarState] | None = None,
) -> list[Result]:
    """Batched greedy decoding of ``n`` rows; finished rows leave the batch."""
    ids: list[list[int]] = [[] for _ in range(n)]
    confs: list[list[float]] = [[] for _ in range(n)]
    logps: list[float] = [0.0] * n
    finished = [False] * n
    grammars = [grammar_factory() for _ in range(n)] if grammar_factory else None
    alive = np.arange(n)  # original index of each row still in the batch
    tokens = np.full(len(alive), bos_id, dtype=np.int64)
    for _ in range(max_len - 1):
        logits, state = decoder.step(tokens, state)
        logp = _log_softmax(logits)  # (N, V), unconstrained
        scores = masked(logp, None if grammars is None else [grammars[i] for i in alive], eos_id)
        choice = scores.argmax(-1)
        keep = []
        for row, i in enumerate(alive):
            tok = int(choice[row])
            logps[i] += float(logp[row, tok])
            if tok == eos_id:
                finished[i] = True
                continue
            ids[i].append(tok)
            confs[i].append(float(np.exp(logp[row, tok])))
            if grammars is not None:
                grammars[i].advance(tok)
            keep.append(row)
        if not keep:
            break
        if len(keep) < len(alive):
            rows = np.asarray(keep)
            state = decoder.select(state, rows)
            alive = alive[rows]
            choice = choice[rows]
        tokens = choice.astype(np.int64)
    return [
        Result(ids[i], confs[i], logps[i] / max(len(ids[i]) + finished[i], 1), finished[i])
        for i in range(n)
    ]


@dataclass
class _Hyp:
    ids: list[int]
    confs: list[float]
    logp: float
    grammar: GrammarState | None


def beam_decode(
    decoder: StepDecoder,
    state: Any,
    n: int,
    *,
    beam: int,
    bos_id: int,
    eos_id: int,
    max_len: int,
    grammar_factory: Callable[[], GrammarState] | None = None,
    length_penalty: float = 1.0,
) -> list[Result]:
    """Beam search for ``n`` crops at once (rows = crops x beams).

    Hypotheses are ranked by log-probability / length**length_penalty (length counts EOS).
    A crop stops when it has ``beam`` finished hypotheses or none of its live ones can still
    beat the best finished one.
    """
    k = beam
    state = decoder.select(state, np.repeat(np.arange(n), k))
    hyps: list[list[_Hyp]] = [
        [
            _Hyp([], [], 0.0 if j == 0 else -np.inf, grammar_factory() if grammar_factory else None)
            for j in range(k)
        ]
        for _ in range(n)
    ]
    done: list[list[tuple[float, _Hyp]]] = [[] for _ in range(n)]
    active = list(range(n))  # crops still searching; their beams are the rows, in order
    tokens = np.full(n * k, bos_id, dtype=np.int64)

    def norm(logp: float, length: int) -> float:
        return logp / max(length, 1) ** length_penalty

    for _ in range(max_len - 1):
        logits, state = decoder.step(tokens, state)
        logp = _log_softmax(logits).reshape(len(active), k, -1)  # (A, K, V)
        v = logp.shape[-1]
        states = [h.grammar for c in active for h in hyps[c]] if grammar_factory else None
        scores = masked(logp, states, eos_id)  # type: ignore[arg-type]
        base = np.array([[h.logp for h in hyps[c]] for c in active])  # (A, K)
        total = (base[:, :, None] + scores).reshape(len(active), -1)  # (A, K*V)
        next_rows, next_tokens, still = [], [], []
        for a, c in enumerate(active):
            order = np.argsort(-total[a], kind="stable")[: 2 * k]
            new: list[_Hyp] = []
            src_rows: list[int] = []
            for flat in order:
                s = float(total[a, flat])
                if s == -np.inf:
                    break
                j, tok = divmod(int(flat), v)
                h = hyps[c][j]
                p = float(logp[a, j, tok])
                if tok == eos_id:
                    done[c].append((norm(s, len(h.ids) + 1), _Hyp(h.ids, h.confs, s, None)))
                    continue
                g = None
                if h.grammar is not None:
                    g = h.grammar.copy()
                    g.advance(tok)
                new.append(_Hyp([*h.ids, tok], [*h.confs, float(np.exp(p))], s, g))
                src_rows.append(a * k + j)
                if len(new) == k:
                    break
            # a live hypothesis can at best keep its log-probability and grow to max_len
            best_done = max((d[0] for d in done[c]), default=-np.inf)
            best_live = max((norm(h.logp, max_len) for h in new), default=-np.inf)
            if not new or len(done[c]) >= k or best_done >= best_live:
                continue  # this crop is finished
            while len(new) < k:  # pad with dead beams
                new.append(_Hyp([], [], -np.inf, new[0].grammar))  # never advanced
                src_rows.append(src_rows[0])
            hyps[c] = new
            still.append(c)
            next_rows.extend(src_rows)
            next_tokens.extend(h.ids[-1] if h.ids else eos_id for h in new)
        if not still:
            active = []
            break
        state = decoder.select(state, np.asarray(next_rows))
        tokens = np.asarray(next_tokens, dtype=np.int64)
        active = still

    results = []
    for c in range(n):
        if done[c]:
            score, h = max(done[c], key=lambda d: d[0])
            results.append(Result(h.ids, h.confs, score, True))
        else:  # max_len reached: best live hypothesis
            h = max(hyps[c], key=lambda h: norm(h.logp, len(h.ids)))
            results.append(Result(h.ids, h.confs, norm(h.logp, len(h.ids)), False))
    return results


def _peak_rows(logp: np.ndarray, ids: list[int], spans: list[list[int]]) -> list[np.ndarray]:
    """Each token's column of log-probabilities where the model was surest of it."""
    rows = []
    for tok, (a, b) in zip(ids, spans, strict=True):
        peak = a + int(np.argmax(logp[a : b + 1, tok]))
        rows.append(logp[peak].astype(np.float32))
    return rows


def _ctc_result(
    logp: np.ndarray,
    ids: list[int],
    confs: list[float],
    spans: list[list[int]],
    total: float,
    token_logp: bool,
    kept: Columns | None = None,
) -> Result:
    """A CTC reading: positions are the centres of the tokens' column spans as a fraction
    of the valid columns; the score is the log-probability per column. ``kept``: the
    crop's :class:`Columns` when the caller has them already."""
    columns = max(len(logp), 1)
    positions = [(a + b + 1) / 2 / columns for a, b in spans]
    meta: dict[str, Any] = {"decoder": "ctc"}
    if token_logp:
        meta["token_logp"] = _peak_rows(logp, ids, spans)
        meta["columns"] = kept if kept is not None else Columns.from_logp(logp)
    return Result(ids, confs, total / columns, True, meta, positions)


def ctc_decode(
    logits: np.ndarray,
    length: int | None = None,
    grammar: GrammarState | None = None,
    token_logp: bool = False,
) -> Result:
    """Best-path CTC decoding of one crop's column logits (C, V+1), blank last.

    A column either emits a token, repeats the one it continues (no new token), or is
    blank; a token is emitted when it differs from the previous column's or follows a
    blank. With ``grammar``, a column may emit only a token the grammar allows next (the
    best allowed choice among blank, continuing, and allowed new tokens), so the output
    follows the grammar the way constrained attention decoding does. A token's confidence
    is its highest softmax probability over the columns it spans, before masking; its
    position is the centre of those columns as a fraction of the ``length`` valid columns.
    With ``token_logp`` the result's ``meta["token_logp"]`` holds, per token, the model's
    log-probabilities of every token at the column where it was surest of it (what
    :mod:`.durations` mends note values with), and ``meta["columns"]`` the crop's columns
    as :class:`Columns` (what :mod:`.reread` reads a flagged measure again from).
    """
    blank = logits.shape[1] - 1
    logp = column_logp(logits, length)
    ids: list[int] = []
    confs: list[float] = []
    spans: list[list[int]] = []  # first and last column of each token
    total = 0.0
    prev = blank
    best = logp.argmax(-1).tolist() if grammar is None else None
    for t, row in enumerate(logp):
        if best is not None:
            tok = best[t]
            value = float(row[tok])
        else:
            allowed = np.asarray(grammar.allowed_mask(), dtype=bool)
            scores = np.where(allowed, row[:blank], -np.inf)
            if prev != blank:
                scores[prev] = -np.inf  # the same token again needs a blank between
            new = int(scores.argmax())
            options = [(float(row[blank]), blank), (float(scores[new]), new)]
            if prev != blank:
                options.append((float(row[prev]), prev))
            value, tok = max(options)
        total += value
        if tok == blank:
            prev = blank
        elif tok == prev:
            confs[-1] = max(confs[-1], math.exp(row[tok]))
            spans[-1][1] = t
        else:
            ids.append(tok)
            confs.append(math.exp(row[tok]))
            spans.append([t, t])
            if grammar is not None:
                grammar.advance(tok)
            prev = tok
    return _ctc_result(logp, ids, confs, spans, total, token_logp)


@dataclass
class _Prefix:
    blank: float  # log-probability of the paths ending in a blank
    token: float  # of those ending in the prefix's last token
    confs: list[float]
    spans: list[list[int]]
    grammar: GrammarState | None
    pending: tuple[GrammarState, int] | None = None  # (parent's state, token) not yet advanced
    mask: np.ndarray | None = None  # the state's allowed tokens, once asked for

    def total(self) -> float:
        return float(np.logaddexp(self.blank, self.token))

    def state(self) -> GrammarState | None:
        """The grammar state after this prefix (advanced from the parent's on first use, so
        prefixes that are pruned at once never pay for a copy)."""
        if self.pending is not None:
            parent, tok = self.pending
            self.grammar = parent.copy()
            self.grammar.advance(tok)
            self.pending = None
        return self.grammar

    def allowed(self) -> np.ndarray:
        """The tokens the grammar allows after this prefix (asked once per prefix, however
        many columns it lasts)."""
        if self.mask is None:
            self.mask = np.asarray(self.state().allowed_mask(), dtype=bool)  # type: ignore[union-attr]
        return self.mask


Reading = tuple[tuple[int, ...], _Prefix]  # a token sequence and how the columns spell it


def prefix_search(
    columns: Columns,
    start: int = 0,
    stop: int | None = None,
    grammar: GrammarState | None = None,
    beam: int = 4,
    prune: float = 6.0,
    per_column: int = 3,
    exclude: np.ndarray | None = None,
) -> list[Reading]:
    """CTC prefix beam search over columns [start, stop), readings best first.

    Unlike best path, which reads the single most likely column path, this keeps the
    ``beam`` most likely token sequences, each summing every column path that spells it
    (blank and repeats merged), so a token the model spreads over several weak columns
    is not lost. With ``grammar`` (the state where the columns begin) a sequence only
    grows by tokens the grammar allows, and never by a token ``exclude`` marks. Per
    column only the ``per_column`` likeliest tokens within ``prune`` nats of the column's
    best are tried.
    """
    beams: dict[tuple[int, ...], _Prefix] = {(): _Prefix(0.0, -np.inf, [], [], grammar)}
    for t in range(start, len(columns) if stop is None else stop):
        kept = columns.tokens(t)
        here = dict(kept)
        blank = float(columns.blank[t])
        floor = max(kept[0][1] if kept else -np.inf, blank) - prune
        candidates = [
            (k, v)
            for k, v in kept[:per_column]
            if v >= floor and (exclude is None or not exclude[k])
        ]
        grown: dict[tuple[int, ...], _Prefix] = {}
        for prefix, p in beams.items():
            total = p.total()
            last = prefix[-1] if prefix else None
            held = here.get(last, FLOOR) if last is not None else -np.inf
            allowed = None
            if grammar is not None and candidates:
                allowed = p.allowed()
            # A blank, or the last token held one more column: the prefix stays.
            stay_blank = total + blank
            stay_token = p.token + held
            entry = grown.get(prefix)
            stay = float(np.logaddexp(stay_blank, stay_token))
            if entry is None or stay > entry.total():
                # The likelier way to this prefix gives its confidences and positions
                # (lists are shared between prefixes, never changed in place).
                spans, confs = p.spans, p.confs
                if last is not None and held > blank:
                    spans = [*spans[:-1], [spans[-1][0], t]]
                    confs = [*confs[:-1], max(confs[-1], float(np.exp(held)))]
                if entry is not None:
                    stay_blank = float(np.logaddexp(entry.blank, stay_blank))
                    stay_token = float(np.logaddexp(entry.token, stay_token))
                grown[prefix] = _Prefix(
                    stay_blank, stay_token, confs, spans, p.grammar, p.pending, p.mask
                )
            else:
                entry.blank = float(np.logaddexp(entry.blank, stay_blank))
                entry.token = float(np.logaddexp(entry.token, stay_token))
            for tok, value in candidates:
                if allowed is not None and not allowed[tok]:
                    continue
                # The same token again is a new one only after a blank.
                lp = (p.blank if tok == last else total) + value
                key = (*prefix, tok)
                entry = grown.get(key)
                if entry is not None:
                    entry.token = float(np.logaddexp(entry.token, lp))
                    continue
                grown[key] = _Prefix(
                    -np.inf,
                    lp,
                    [*p.confs, float(np.exp(value))],
                    [*p.spans, [t, t]],
                    None,
                    (p.grammar, tok) if grammar is not None else None,
                )
        beams = dict(sorted(grown.items(), key=lambda kv: kv[1].total(), reverse=True)[:beam])
    return sorted(beams.items(), key=lambda kv: kv[1].total(), reverse=True)


def ctc_beam_decode(
    logits: np.ndarray,
    length: int | None = None,
    beam: int = 4,
    grammar: GrammarState | None = None,
    prune: float = 6.0,
    per_column: int = 3,
    token_logp: bool = False,
) -> Result:
    """CTC prefix beam search (:func:`prefix_search`) over one crop's column logits
    (C, V+1), blank last. Confidences, positions and ``token_logp`` are as in
    :func:`ctc_decode`, taken along the sequence's most likely emission.
    """
    logp = column_logp(logits, length)
    columns = Columns.from_logp(logp, top=max(TOP, per_column))
    prefix, p = prefix_search(
        columns, grammar=grammar, beam=beam, prune=prune, per_column=per_column
    )[0]
    return _ctc_result(logp, list(prefix), p.confs, p.spans, p.total(), token_logp, columns)


def ctc_align(logp: np.ndarray, ids: list[int]) -> list[list[int]] | None:
    """The likeliest column path (CTC Viterbi) that spells ``ids`` over a crop's (C, V+1)
    log-probabilities, blank last: each token's first and last column, or None when the
    crop has too few columns to spell them (a repeated token needs a blank between)."""
    c, v1 = logp.shape
    blank = v1 - 1
    n = len(ids)
    if n == 0:
        return []
    labels = np.full(2 * n + 1, blank, np.int64)
    labels[1::2] = ids
    s = len(labels)
    # A state may come from itself, the one before, or (a token after a blank, not the
    # same token as two states back) the one two before.
    skip = np.zeros(s, bool)
    skip[3::2] = labels[3::2] != labels[1:-2:2]
    emit = logp[:, labels]  # (C, S)
    score = np.full(s, -np.inf)
    score[0] = emit[0, 0]
    score[1] = emit[0, 1]
    back = np.zeros((c, s), np.int8)
    for t in range(1, c):
        stay = score
        one = np.concatenate(([-np.inf], score[:-1]))
        two = np.where(skip, np.concatenate(([-np.inf, -np.inf], score[:-2])), -np.inf)
        options = np.stack([stay, one, two])
        choice = options.argmax(0)
        score = options[choice, np.arange(s)] + emit[t]
        back[t] = choice
    end = s - 1 if score[s - 1] >= score[s - 2] else s - 2
    if not np.isfinite(score[end]):
        return None
    spans: list[list[int]] = [[-1, -1] for _ in range(n)]
    state = end
    for t in range(c - 1, -1, -1):
        if state % 2 == 1:
            k = state // 2
            spans[k][0] = t
            if spans[k][1] < 0:
                spans[k][1] = t
        state -= int(back[t, state])
    return spans


def column_logp(logits: np.ndarray, length: int | None = None) -> np.ndarray:
    """A crop's (C, V+1) CTC log-probabilities over its ``length`` valid columns."""
    return _log_softmax(logits[: len(logits) if length is None else int(length)])


def aligned_result(result: Result, logp: np.ndarray, token_logp: bool = False) -> Result | None:
    """An attention reading placed on the crop's CTC columns (``logp``: its
    :func:`column_logp`): its tokens, with the positions, ``token_logp`` and columns of a
    CTC reading (:func:`ctc_decode`), so that measure fitting, duration mending and
    re-reading work on it. None when the columns cannot spell it.

    A token's confidence is the mean of the decoder's probability of it and the CTC head's
    highest over the columns it spans: on 600 held-out crops that mean told wrong tokens
    from right ones best (AUROC 0.935; the decoder's alone 0.924, the CTC head's 0.905),
    and a measure under 0.6 caught 92% of the wrong measures against the decoder's 87%."""
    ids = list(result.ids)
    spans = ctc_align(logp, ids)
    if spans is None:
        return None
    confs = [
        (att + math.exp(float(logp[a : b + 1, tok].max()))) / 2
        for att, tok, (a, b) in zip(result.token_confidences, ids, spans, strict=True)
    ]
    out = _ctc_result(logp, ids, confs, spans, 0.0, token_logp)
    meta = {**out.meta, "decoder": "hybrid"}
    return dataclasses.replace(out, score=result.score, finished=result.finished, meta=meta)
