"""Training loop, read top to bottom: data -> model -> AdamW with warmup + cosine -> checkpoints,
validation symbol error rate and a CSV log.

    result = train(ModelConfig.preset("small"), train_ds, val_ds, "runs/small", vocab=vocab,
                   vocab_path="vocab.json", steps=20_000, batch_size=16, lr=5e-4)

- Resuming: if ``out_dir/last.pt`` exists, training continues from it (model, optimizer,
  step, wall time, RNG). With a map-style dataset the batches are a pure function of
  (seed, step), so an interrupted run continues exactly as an uninterrupted one would.
- ``init_from``: start from the weights of another checkpoint (e.g. the shipped model) with
  a fresh optimizer and step 0; tensors whose shape changed (a new vocabulary) are skipped.
- ``curriculum(step) -> dict`` is passed to the dataset's ``set_curriculum(**params)``; for
  map-style datasets the settings travel with the indices, so DataLoader workers see them;
  an IterableDataset gets them in the main process only (use ``num_workers=0`` or read a
  shared value), and must shard itself across workers (``torch.utils.data.get_worker_info``).
- ``callback(progress) -> bool | None`` is called every ``log_every`` steps and after each
  validation; returning True stops training after a checkpoint is written.
- On CUDA the forward pass runs under bf16 autocast; on CPU in fp32.

Files in ``out_dir``: ``last.pt``, ``best.pt`` (lowest validation SER), ``log.csv`` (a row of
mean losses every ``log_every`` steps, with the validation SER every ``eval_every``).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from omr_engine.model.config import ModelConfig
from omr_engine.model.data import Batch, Collate, CurriculumDataset, StepBatchSampler
from omr_engine.model.loss import compute_loss
from omr_engine.model.metrics import symbol_error_rate
from omr_engine.model.network import OMRModel

log = logging.getLogger(__name__)

__all__ = [
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "train",
    "compute_ser",
    "load_checkpoint",
    "resolve_device",
    "configure_cuda",
]

LOG_COLUMNS = [
    "step",
    "train_loss",
    "val_ser",
    "lr",
    "samples_per_s",
    "wall_s",
    "ce",
    "balance",
    "grammar",
    "ctc",
    "ctc_grammar",
]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; saved in every checkpoint."""

    steps: int = 20_000
    batch_size: int = 16
    lr: float = 5e-4
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 500
    weight_decay: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.98
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    balance_weight: float = 0.01
    grammar_weight: float = 0.1  # used only when examples carry class_ids and masks are given
    grammar_mode: str = "nll"  # "nll" = -log(allowed mass), "mass" = forbidden mass
    ctc_weight: float = 0.3  # auxiliary CTC loss, for models with a CTC head
    # the grammar loss on the CTC head's frames (loss.ctc_grammar_loss); the shipped model
    # reads with that head, which ``grammar_weight`` (the decoder's) never touches
    ctc_grammar_weight: float = 0.0
    # the attention decoder's cross-entropy; 0 trains the encoder and CTC head alone (the
    # decoder is not run: 1.2-1.6x the samples/s on the CPU over three runs of
    # benchmarks/bench_train_step.py) and leaves the decoder as is
    ce_weight: float = 1.0
    eval_every: int = 1000
    eval_samples: int = 256
    eval_batch_size: int = 32
    checkpoint_every: int = 1000
    log_every: int = 50
    num_workers: int = 0
    seed: int = 0
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    max_bad_steps: int = 20  # consecutive non-finite steps (skipped) before training stops


@dataclass(frozen=True)
class TrainProgress:
    step: int
    steps: int
    train_loss: float
    lr: float
    samples_per_s: float
    wall_s: float
    val_ser: float | None = None


@dataclass(frozen=True)
class TrainResult:
    step: int
    last_checkpoint: Path
    best_checkpoint: Path | None
    best_val_ser: float | None
    log_path: Path


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def configure_cuda() -> None:
    """CUDA settings for training: TF32 matrix multiplies, and no cuDNN attention.

    cuDNN's attention backward, which PyTorch prefers for bf16 on H100/H200, returns NaN
    query gradients when an ``attn_mask`` is given, the key length is 64 more than a
    multiple of 128, and a query row's log-sum-exp is below about -88.7
    (pytorch/pytorch#196678, a regression in torch 2.11, the device's version). The small
    preset's first encoder layer attends in windows of exactly 64 keys (8 patch columns x
    8 rows), and a window wholly in a crop's right-hand padding has every key masked with
    ``NEG_INF``, so its log-sum-exp is about -1e4: all three hold. That fits what the
    first H200 round saw (NaN within 50 steps under bf16; fp32, which cuDNN attention does
    not take, stayed finite). Memory-efficient attention and the math kernel are clean.
    """
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.enable_cudnn_sdp(False)


def lr_at(step: int, tc: TrainConfig) -> float:
    """Linear warmup, then cosine decay to lr * min_lr_ratio at the last step."""
    if step < tc.warmup_steps:
        return tc.lr * (step + 1) / tc.warmup_steps
    span = max(1, tc.steps - tc.warmup_steps)
    progress = min(1.0, (step - tc.warmup_steps) / span)
    min_lr = tc.lr * tc.min_lr_ratio
    return min_lr + 0.5 * (tc.lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint (``last.pt``/``best.pt``, or a directory holding ``last.pt`` or
    ``weights.pt``)."""
    path = Path(path)
    if path.is_dir():
        for name in ("last.pt", "weights.pt", "best.pt"):
            if (path / name).exists():
                path = path / name
                break
        else:
            raise FileNotFoundError(f"no checkpoint (last.pt, weights.pt, best.pt) in {path}")
    return torch.load(path, map_location=map_location, weights_only=False)


def model_from_checkpoint(ckpt: dict[str, Any] | str | Path) -> OMRModel:
    """Rebuild the model a checkpoint describes, with its weights."""
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    model = OMRModel(ModelConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model


def _load_matching(model: OMRModel, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy tensors whose name and shape match; return the names skipped.

    A CTC head with more frames per column (``ctc_upsample``) than the checkpoint's starts
    with each new frame a copy of the old frame it falls in (new frame j of k' copies old
    frame j*k // k'), so a column's frames repeat the old ones in order, CTC merges the
    repeats, and the model first reads exactly as before.
    """
    own = model.state_dict()
    state = dict(state)
    d = model.cfg.d_model
    for name in ("ctc_proj.weight", "ctc_proj.bias"):
        if name in state and name in own:
            src, dst = state[name], own[name]
            k_old, k_new = src.shape[0] // d, dst.shape[0] // d
            fits = src.shape[0] == k_old * d and dst.shape[0] == k_new * d
            if fits and k_new > k_old and dst.shape[1:] == src.shape[1:]:
                blocks = src.reshape(k_old, d, *src.shape[1:])
                pick = torch.arange(k_new) * k_old // k_new
                state[name] = blocks[pick].reshape(dst.shape)
    for name, src in list(state.items()):
        dst = own.get(name)
        grown = (
            dst is not None
            and src.dim() == dst.dim() >= 1
            and src.shape[1:] == dst.shape[1:]
            and src.shape[0] < dst.shape[0]
            and not name.endswith("ctc_proj.weight")
            and not name.endswith("ctc_proj.bias")
        )
        if grown and name.endswith(".factors"):
            state[name] = dst  # the new vocabulary's table (its old rows are the same)
        elif grown:
            merged = dst.clone()
            merged[: src.shape[0]] = src
            state[name] = merged
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(own) - set(usable))
    own.update(usable)
    model.load_state_dict(own)
    return skipped


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _iter_dataset(dataset: Dataset | Iterable[Any], limit: int | None) -> Iterator[Any]:
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__getitem__"):
        for i, ex in enumerate(dataset):  # type: ignore[arg-type]
            if limit is not None and i >= limit:
                return
            yield ex
    else:
        n = len(dataset)  # type: ignore[arg-type]
        for i in range(n if limit is None else min(n, limit)):
            yield dataset[i]


@torch.no_grad()
def compute_ser(
    model: OMRModel,
    dataset: Dataset | Iterable[Any],
    *,
    batch_size: int = 32,
    max_samples: int | None = None,
    device: str | torch.device | None = None,
    max_len: int | None = None,
    amp: bool = True,
) -> float:
    """Symbol error rate (token edit distance / reference length) of greedy decoding.

    Without ``max_len`` a batch decodes at most 2 x its longest reference + 16 tokens, so a
    run-away prediction is cut there (it already counts as mostly wrong)."""
    device = next(model.parameters()).device if device is None else resolve_device(device)
    collate = Collate(model.cfg)
    was_training = model.training
    model.eval()
    pairs: list[tuple[list[int], list[int]]] = []
    buf: list[Any] = []

    def flush() -> None:
        batch = collate(buf).to(device)
        # an untrained model rarely stops: decoding to max_len would make early validations
        # slow; past 2x the reference length every extra token is an error anyway
        limit = max_len or 2 * max(len(r) for r in batch.refs) + 16
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            preds = model.generate(batch.pixels, batch.widths, max_len=limit)
        pairs.extend(zip(preds, batch.refs, strict=True))
        buf.clear()

    for ex in _iter_dataset(dataset, max_samples):
        buf.append(ex)
        if len(buf) == batch_size:
            flush()
    if buf:
        flush()
    model.train(was_training)
    return symbol_error_rate(pairs)


def _make_loader(
    dataset: Dataset | IterableDataset,
    cfg: ModelConfig,
    tc: TrainConfig,
    start_step: int,
    curriculum: Callable[[int], dict[str, Any]] | None,
    device: torch.device,
) -> tuple[Iterator[Batch], bool]:
    """-> (batch iterator, exact) where exact means batches depend only on (seed, step)."""
    common = dict(
        collate_fn=Collate(cfg),
        num_workers=tc.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=tc.num_workers > 0,
    )
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__"):
        loader = DataLoader(dataset, batch_size=tc.batch_size, **common)  # type: ignore[arg-type]
        return _forever(loader), False
    sampler = StepBatchSampler(len(dataset), tc.batch_size, tc.seed, start_step, curriculum)
    ds = CurriculumDataset(dataset) if curriculum is not None else dataset
    return iter(DataLoader(ds, batch_sampler=sampler, **common)), True  # type: ignore[arg-type]


def _forever(loader: DataLoader) -> Iterator[Batch]:
    while True:
        yield from loader


def _append_log(path: Path, row: dict[str, Any]) -> None:
    """Append a row; a log begun before a column was added keeps its own columns."""
    new = not path.exists()
    columns = LOG_COLUMNS
    if not new:
        with path.open(newline="", encoding="utf-8") as f:
            columns = next(csv.reader(f), None) or LOG_COLUMNS
    with path.open("a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)


def train(
    config: ModelConfig,
    train_dataset: Dataset | IterableDataset,
    val_dataset: Dataset | Iterable[Any] | None,
    out_dir: str | Path,
    *,
    vocab: Any = None,
    vocab_path: str | Path | None = None,
    factors: np.ndarray | None = None,
    device: str | torch.device = "auto",
    init_from: str | Path | None = None,
    resume: bool = True,
    grammar_masks: np.ndarray | torch.Tensor | None = None,
    callback: Callable[[TrainProgress], bool | None] | None = None,
    curriculum: Callable[[int], dict[str, Any]] | None = None,
    **hparams: Any,
) -> TrainResult:
    """Train (or continue training) a model; see the module docstring.

    ``vocab`` (duck-typed: ``len``, ``pad_id``/``bos_id``/``eos_id``, ``factors()``,
    ``factor_sizes()``) fills the config's vocabulary fields and the factor table; without
    it, ``factors`` or a checkpoint must provide them. ``grammar_masks`` (C, V) bool enables
    the grammar loss for examples that carry ``class_ids``. ``hparams`` are ``TrainConfig``
    fields (steps, batch_size, lr, ...).
    """
    tc = TrainConfig(**hparams)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path, log_path = out_dir / "last.pt", out_dir / "best.pt", out_dir / "log.csv"
    device = resolve_device(device)
    if device.type == "cuda":
        configure_cuda()
    torch.manual_seed(tc.seed)
    if vocab is not None:
        config = config.with_vocab(vocab)
        factors = np.asarray(vocab.factors())

    # ---- model and optimizer state: resume > init_from > fresh ----
    ckpt = load_checkpoint(last_path) if resume and last_path.exists() else None
    step, wall_s, best_ser = 0, 0.0, None
    if ckpt is not None:
        config = ModelConfig.from_dict(ckpt["model_config"])
        model = OMRModel(config)
        model.load_state_dict(ckpt["model"])
        step, wall_s, best_ser = ckpt["step"], ckpt["wall_s"], ckpt.get("best_val_ser")
        vocab_path = vocab_path or ckpt.get("vocab_path")
    elif init_from is not None:
        init = load_checkpoint(init_from)
        if factors is None:  # same vocabulary as the checkpoint
            config = ModelConfig.from_dict({**config.to_dict(), **_vocab_fields(init)})
        model = OMRModel(config, factors)
        skipped = _load_matching(model, init["model"])
        if skipped:
            log.warning(
                "init_from %s: %d tensors not loaded: %s", init_from, len(skipped), skipped[:8]
            )
        vocab_path = vocab_path or init.get("vocab_path")
    else:
        if factors is None:
            raise ValueError("a new model needs the vocabulary (vocab=...) or factors=...")
        model = OMRModel(config, factors)
    model.to(device)

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": tc.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=tc.lr,
        betas=(tc.beta1, tc.beta2),
        fused=device.type == "cuda",
    )
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])

    masks_t = None
    if grammar_masks is not None:
        masks_t = torch.as_tensor(np.asarray(grammar_masks), dtype=torch.bool, device=device)

    def save(path: Path) -> None:
        _atomic_save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "wall_s": wall_s,
                "best_val_ser": best_ser,
                "model_config": config.to_dict(),
                "train_config": asdict(tc),
                "vocab_path": None if vocab_path is None else str(Path(vocab_path).resolve()),
                "rng": {
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
                },
            },
            path,
        )

    batches, exact = _make_loader(train_dataset, config, tc, step, curriculum, device)
    use_amp = tc.amp and device.type == "cuda"
    bad_steps = 0  # consecutive steps skipped for a loss or gradient that is not finite

    # ---- the loop ----
    decode = tc.ce_weight > 0
    if not decode and not (config.ctc_head and tc.ctc_weight > 0):
        raise ValueError("ce_weight 0 trains the CTC head alone: it needs a CTC head and weight")
    model.train()
    sums = {"loss": 0.0, "ce": 0.0, "balance": 0.0, "grammar": 0.0, "ctc": 0.0, "ctc_grammar": 0.0}
    n_steps = n_samples = 0
    t_interval = 0.0
    stop = False
    while step < tc.steps and not stop:
        t0 = time.perf_counter()
        lr = lr_at(step, tc)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if curriculum is not None and not exact and hasattr(train_dataset, "set_curriculum"):
            train_dataset.set_curriculum(**curriculum(step))  # main process only
        batch = next(batches).to(device)
        token_mask = (batch.tokens != config.pad_id).float()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            fwd = model(batch.pixels, batch.widths, batch.tokens, token_mask, decode=decode)
        out = compute_loss(
            fwd.logits,
            batch.targets,
            fwd.balance,
            config.pad_id,
            class_ids=batch.class_ids,
            class_masks=masks_t,
            label_smoothing=tc.label_smoothing,
            balance_weight=tc.balance_weight,
            grammar_weight=tc.grammar_weight,
            grammar_mode=tc.grammar_mode,
            ctc_logits=fwd.ctc_logits,
            ctc_lengths=fwd.ctc_lengths,
            ctc_weight=tc.ctc_weight,
            eos_id=config.eos_id,
            ce_weight=tc.ce_weight,
            ctc_grammar_weight=tc.ctc_grammar_weight,
        )
        optimizer.zero_grad(set_to_none=True)
        out.total.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip or math.inf)
        if not (torch.isfinite(out.total) and torch.isfinite(norm)):
            # one bad batch must not turn every weight into NaN: skip its update
            bad_steps += 1
            parts = ", ".join(
                f"{name} {float(value):.4g}"
                for name, value in (
                    ("ce", out.ce),
                    ("balance", out.balance),
                    ("grammar", out.grammar),
                    ("ctc", out.ctc),
                    ("ctc grammar", out.ctc_grammar),
                )
            )
            print(
                f"step {step + 1}: loss or gradient not finite ({parts}; gradient norm "
                f"{float(norm):.4g}), update skipped",
                file=sys.stderr,
            )
            optimizer.zero_grad(set_to_none=True)
            if use_amp and bad_steps >= 3:
                use_amp = False
                print("bf16 autocast turned off: training goes on in fp32", file=sys.stderr)
            if bad_steps >= tc.max_bad_steps:
                raise FloatingPointError(
                    f"{bad_steps} steps in a row had a loss or gradient that is not finite"
                )
            continue
        bad_steps = 0
        optimizer.step()
        step += 1

        sums["loss"] += float(out.total.detach())
        sums["ce"] += float(out.ce)
        sums["balance"] += float(out.balance)
        sums["grammar"] += float(out.grammar)
        sums["ctc"] += float(out.ctc)
        sums["ctc_grammar"] += float(out.ctc_grammar)
        n_steps += 1
        n_samples += batch.pixels.shape[0]
        dt = time.perf_counter() - t0
        t_interval += dt
        wall_s += dt

        final = step >= tc.steps
        rate = n_samples / max(t_interval, 1e-9)
        mean_loss = sums["loss"] / max(n_steps, 1)
        if callback is not None and (step % tc.log_every == 0 or final):
            stop = bool(callback(TrainProgress(step, tc.steps, mean_loss, lr, rate, wall_s)))
        evaluate = step % tc.eval_every == 0 or final
        if evaluate or step % tc.log_every == 0:  # a log row per interval, val SER when due
            val_ser = None
            if evaluate and val_dataset is not None:
                val_ser = compute_ser(
                    model,
                    val_dataset,
                    batch_size=tc.eval_batch_size,
                    max_samples=tc.eval_samples,
                    amp=tc.amp,
                )
                if best_ser is None or val_ser < best_ser:
                    best_ser = val_ser
                    save(best_path)
            _append_log(
                log_path,
                {
                    "step": step,
                    "train_loss": f"{mean_loss:.5f}",
                    "val_ser": "" if val_ser is None else f"{val_ser:.5f}",
                    "lr": f"{lr:.3e}",
                    "samples_per_s": f"{rate:.2f}",
                    "wall_s": f"{wall_s:.1f}",
                    "ce": f"{sums['ce'] / max(n_steps, 1):.5f}",
                    "balance": f"{sums['balance'] / max(n_steps, 1):.5f}",
                    "grammar": f"{sums['grammar'] / max(n_steps, 1):.5f}",
                    "ctc": f"{sums['ctc'] / max(n_steps, 1):.5f}",
                    "ctc_grammar": f"{sums['ctc_grammar'] / max(n_steps, 1):.5f}",
                },
            )
            if callback is not None and val_ser is not None:
                stop = (
                    bool(
                        callback(
                            TrainProgress(step, tc.steps, mean_loss, lr, rate, wall_s, val_ser)
                        )
                    )
                    or stop
                )
            sums = dict.fromkeys(sums, 0.0)
            n_steps = n_samples = 0
            t_interval = 0.0
        if step % tc.checkpoint_every == 0 or final or stop:
            save(last_path)

    return TrainResult(
        step=step,
        last_checkpoint=last_path,
        best_checkpoint=best_path if best_path.exists() else None,
        best_val_ser=best_ser,
        log_path=log_path,
    )


def _vocab_fields(ckpt: dict[str, Any]) -> dict[str, Any]:
    names = ("vocab_size", "factor_sizes", "pad_id", "bos_id", "eos_id")
    return {k: ckpt["model_config"][k] for k in names}


def train_config_fields() -> list[str]:
    """Names accepted as ``**hparams`` by ``train``."""
    return [f.name for f in fields(TrainConfig)]
