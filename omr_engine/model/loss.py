"""Training loss: cross-entropy + MoE load balance + grammar loss (+ optional CTC).

The grammar loss penalises probability the decoder puts on tokens the grammar forbids after
the true prefix. ``class_ids`` (B, T) index rows of ``class_masks`` (C, V): the allowed set
at each decoder input position (position t = what may follow BOS + ids[:t]).
Two forms: ``"nll"`` = -log(allowed mass) (strong gradient when the mass is small),
``"mass"`` = forbidden mass itself (bounded, gentle).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["LossOutput", "compute_loss", "grammar_loss"]


@dataclass
class LossOutput:
    total: torch.Tensor
    ce: torch.Tensor
    balance: torch.Tensor
    grammar: torch.Tensor
    ctc: torch.Tensor


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
) -> LossOutput:
    """The decoder's cross-entropy (times ``ce_weight``), its experts' balance and grammar
    terms, and the encoder's CTC term. Without decoder ``logits`` (a step that trains the
    encoder and CTC head alone) only the CTC term counts."""
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
    ctc = zero
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
    return LossOutput(
        total=total, ce=ce.detach(), balance=balance.detach(), grammar=gl.detach(), ctc=ctc.detach()
    )
