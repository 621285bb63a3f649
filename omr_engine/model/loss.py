"""Training loss: cross-entropy + MoE load balance + grammar loss (+ optional CTC).

The grammar loss penalises probability the decoder puts on tokens the grammar forbids after
the true prefix. ``class_ids`` (B, T) index rows of ``class_masks`` (C, V): the allowed set
at each decoder input position (position t = what may follow BOS + ids[:t]).
Two forms: ``"nll"`` = -log(allowed mass) (strong gradient when the mass is small),
``"mass"`` = forbidden mass itself (bounded, gentle).

The shipped model reads with its CTC head, which the decoder's grammar loss never
touches, so the same penalty has a CTC form (:func:`ctc_grammar_loss`): the target is
aligned to the frames by the best CTC path (:func:`ctc_best_path`), and at each frame
the mass outside what the grammar allows there is penalised. A frame aligned to target
token k may emit k (or blank); so may the blanks before it; what the grammar allows after
``ids[:k]`` (``class_ids[:, k]``) is the allowed set for both, plus blank.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["LossOutput", "compute_loss", "ctc_best_path", "ctc_grammar_loss", "grammar_loss"]


@dataclass
class LossOutput:
    total: torch.Tensor
    ce: torch.Tensor
    balance: torch.Tensor
    grammar: torch.Tensor
    ctc: torch.Tensor
    ctc_grammar: torch.Tensor | None = None


def grammar_loss(
    logits: torch.Tensor,  # (B, T, V)
    allowed: torch.Tensor,  # (B, T, V) bool
    valid: torch.Tensor,  # (B, T) bool: positions that count
    mode: str = "nll",
) -> torch.Tensor:
    """Mean over valid positions of -log(allowed mass) (``nll``) or forbidden mass (``mass``)."""
    logits = logits.float()
    lse_all = torch.logsumexp(logits, dim=-1)  # (B, T)
    lse_ok = torch.logsumexp(logits.masked_fill(~allowed, float("-inf")), dim=-1)
    # a position whose allowed set is empty (should not happen) contributes nothing
    valid = valid & allowed.any(-1)
    lse_ok = torch.where(valid, lse_ok, lse_all)
    if mode == "nll":
        per_pos = lse_all - lse_ok
    elif mode == "mass":
        per_pos = 1.0 - torch.exp(lse_ok - lse_all)
    else:
        raise ValueError(f"unknown grammar loss mode {mode!r} (use 'nll' or 'mass')")
    w = valid.float()
    return (per_pos * w).sum() / w.sum().clamp(min=1.0)


@torch.no_grad()
def ctc_best_path(
    log_probs: torch.Tensor,  # (B, C, V+1), log-softmaxed, blank = V
    targets: torch.Tensor,  # (B, L) ids (anything past a row's length is ignored)
    input_lengths: torch.Tensor,  # (B,)
    target_lengths: torch.Tensor,  # (B,)
) -> torch.Tensor:
    """The most likely CTC alignment (Viterbi) of each target: (B, C) long, the state of
    each frame in the extended label sequence (2k = the blank before token k, 2k + 1 =
    token k), -1 past a row's input length and on every frame of a row that no path fits
    (more tokens than frames allow)."""
    b, c, v1 = log_probs.shape
    blank = v1 - 1
    length = int(targets.shape[1])
    s_max = 2 * length + 1
    dev = log_probs.device
    ext = torch.full((b, s_max), blank, dtype=torch.long, device=dev)
    if length:
        ext[:, 1::2] = targets.clamp(min=0, max=blank - 1)
    states = torch.arange(s_max, device=dev)
    live = states[None, :] <= 2 * target_lengths[:, None]  # (B, S)
    skip = torch.zeros((b, s_max), dtype=torch.bool, device=dev)
    if s_max > 2:
        skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    neg = torch.finfo(torch.float32).min / 4
    # every frame's score for every state at once: the loop below touches (B, S) only
    emit = log_probs.float().gather(2, ext[:, None, :].expand(b, c, s_max))
    emit = torch.where(live[:, None, :], emit, neg)
    emit0 = emit[:, 0]
    alpha = torch.full((b, s_max), neg, device=dev)
    alpha[:, 0] = emit0[:, 0]
    if s_max > 1:
        alpha[:, 1] = torch.where(target_lengths > 0, emit0[:, 1], neg)
    alpha = torch.where(live, alpha, neg)
    back = torch.zeros((c, b, s_max), dtype=torch.uint8, device=dev)
    for t in range(1, c):
        stay = alpha
        step = torch.cat([alpha.new_full((b, 1), neg), alpha[:, :-1]], 1)
        jump = torch.cat([alpha.new_full((b, 2), neg), alpha[:, :-2]], 1)
        jump = torch.where(skip, jump, neg)
        best, arg = torch.stack([stay, step, jump], -1).max(-1)
        new = best + emit[:, t]
        going = (t < input_lengths)[:, None]
        alpha = torch.where(going, new, alpha)
        back[t] = torch.where(going, arg, 0).to(torch.uint8)
    last = 2 * target_lengths
    end_blank = alpha.gather(1, last[:, None]).squeeze(1)
    end_token = alpha.gather(1, (last - 1).clamp(min=0)[:, None]).squeeze(1)
    end_token = torch.where(target_lengths > 0, end_token, neg)
    state = torch.where(end_token > end_blank, last - 1, last)
    fits = torch.maximum(end_blank, end_token) > neg / 2
    path = torch.empty((b, c), dtype=torch.long, device=dev)
    for t in range(c - 1, -1, -1):
        path[:, t] = state
        if t:
            state = state - back[t].gather(1, state[:, None]).squeeze(1).long()
    frames = torch.arange(c, device=dev)[None, :]
    return torch.where((frames < input_lengths[:, None]) & fits[:, None], path, -1)


def ctc_grammar_loss(
    log_probs: torch.Tensor,  # (B, C, V+1), log-softmaxed, blank = V
    targets: torch.Tensor,  # (B, L)
    input_lengths: torch.Tensor,  # (B,)
    target_lengths: torch.Tensor,  # (B,)
    class_ids: torch.Tensor,  # (B, >= L + 1): the class allowed after ids[:k], k = 0..L
    class_masks: torch.Tensor,  # (C, V) bool
) -> torch.Tensor:
    """Mean over aligned frames of -log(the mass on blank and on what the grammar allows
    at that frame): the frames of token k and the blanks before it may emit what may
    follow ``ids[:k]``, the blanks after the last token what may follow the whole line.
    Frames of rows that no path fits count for nothing."""
    path = ctc_best_path(log_probs, targets, input_lengths, target_lengths)
    valid = path >= 0
    position = (path.clamp(min=0) // 2).clamp(max=class_ids.shape[1] - 1)
    allowed = class_masks[class_ids.gather(1, position)]  # (B, C, V)
    allowed = torch.cat([allowed, allowed.new_ones(allowed.shape[:2] + (1,))], -1)
    ok = torch.logsumexp(log_probs.float().masked_fill(~allowed, float("-inf")), dim=-1)
    w = valid.float()
    return (-ok * w).sum() / w.sum().clamp(min=1.0)


def compute_loss(
    logits: torch.Tensor | None,  # (B, T, V); None when the decoder was not run
    targets: torch.Tensor,  # (B, T), pad_id where nothing is predicted
    balance: torch.Tensor,  # scalar from the model
    pad_id: int,
    *,
    class_ids: torch.Tensor | None = None,  # (B, T) long
    class_masks: torch.Tensor | None = None,  # (C, V) bool
    label_smoothing: float = 0.0,
    balance_weight: float = 0.01,
    grammar_weight: float = 0.0,
    grammar_mode: str = "nll",
    ctc_logits: torch.Tensor | None = None,  # (B, C, V+1), blank = V
    ctc_lengths: torch.Tensor | None = None,  # (B,)
    ctc_weight: float = 0.0,
    eos_id: int = 2,
    ce_weight: float = 1.0,
    ctc_grammar_weight: float = 0.0,
) -> LossOutput:
    """The decoder's cross-entropy (times ``ce_weight``), its experts' balance and grammar
    terms, and the encoder's CTC term and its grammar term (``ctc_grammar_weight``, with
    the CTC term on and ``class_ids`` given). Without decoder ``logits`` (a step that
    trains the encoder and CTC head alone) only the CTC terms count."""
    valid = targets != pad_id
    zero = torch.zeros((), device=targets.device)
    ce, total = zero, zero
    if logits is not None:
        ce = F.cross_entropy(
            logits.float().flatten(0, 1),
            targets.flatten(),
            ignore_index=pad_id,
            label_smoothing=label_smoothing,
        )
        total = ce_weight * ce + balance_weight * balance
    gl = zero
    if logits is not None and grammar_weight and class_ids is not None and class_masks is not None:
        allowed = class_masks[class_ids]  # (B, T, V)
        gl = grammar_loss(logits, allowed, valid, grammar_mode)
        total = total + grammar_weight * gl
    ctc = cgl = zero
    if ctc_weight and ctc_logits is not None and ctc_lengths is not None:
        # targets are ids + EOS + padding; CTC reads the ids only
        target_lengths = (valid & (targets != eos_id)).sum(1)
        log_probs = ctc_logits.float().log_softmax(-1).transpose(0, 1)  # (C, B, V+1)
        ctc = F.ctc_loss(
            log_probs,
            targets,
            ctc_lengths,
            target_lengths,
            blank=ctc_logits.shape[-1] - 1,
            reduction="mean",
            zero_infinity=True,  # a crop with more tokens than columns teaches nothing
        )
        total = total + ctc_weight * ctc
        if ctc_grammar_weight and class_ids is not None and class_masks is not None:
            cgl = ctc_grammar_loss(
                log_probs.transpose(0, 1),
                targets,
                ctc_lengths,
                target_lengths,
                class_ids,
                class_masks,
            )
            total = total + ctc_grammar_weight * cgl
    return LossOutput(
        total=total,
        ce=ce.detach(),
        balance=balance.detach(),
        grammar=gl.detach(),
        ctc=ctc.detach(),
        ctc_grammar=cgl.detach(),
    )
