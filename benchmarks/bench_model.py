"""Model size and speed: parameters, ONNX size, ms per crop (onnxruntime, CPU, fp32/int8),
training samples/s on this machine's CPU. Prints a table.

    python benchmarks/bench_model.py                 # small and base, 2 threads
    python benchmarks/bench_model.py --presets small --threads 1 --train-presets

Weights are random (vocabulary of 7,800 tokens), so decoding is forced to a fixed number of
steps per crop: 80 tokens for a staff crop, 250 for a system crop (typical lengths), and
"ms/crop" = encoder + those steps, batch 1; "page" = a page's crops as one batch (10 staves
or 5 systems), which is how the pipeline runs. int8 "agree" is the share of decoder steps whose
argmax equals fp32's on the same prefix; accuracy proper needs a trained model and
``compute_ser``. The CPU is shared: numbers vary by +-20% between runs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from omr_engine.inference.session import Recognizer
from omr_engine.model.config import ModelConfig
from omr_engine.model.data import Collate
from omr_engine.model.export import export_model
from omr_engine.model.loss import compute_loss
from omr_engine.model.network import OMRModel

VOCAB = 7800
FACTOR_SIZES = (16, 80, 24)
CROPS = {  # name: (original height, width, tokens decoded)
    "staff": (200, 2400, 80),
    "system": (500, 2400, 250),
}
PAGE = {"staff": 10, "system": 5}  # crops on a typical page, decoded as one batch


def synthetic_crop(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Staff lines and random note-head-like blobs: enough structure for timing."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 255, np.uint8)
    n_staves = max(1, h // 200)
    for s in range(n_staves):
        top = int(h * (s + 0.35) / n_staves)
        gap = max(2, h // (n_staves * 20))
        for i in range(5):
            img[top + i * gap, :] = 0
        for x in rng.integers(0, w - 10, 60):
            y = top + int(rng.integers(-2, 6)) * gap
            img[max(0, y) : y + gap, x : x + gap + 2] = 0
    return img


def factors(cfg: ModelConfig) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([rng.integers(0, s, cfg.vocab_size) for s in cfg.factor_sizes], 1)


def time_crops(rec: Recognizer, crops: list[np.ndarray], steps: int, repeats: int) -> float:
    """Best-of-``repeats`` ms to encode the crops as one batch and run ``steps`` steps."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        state = rec._encode(crops)
        tok = np.full(len(crops), rec.runtime.bos_id)
        for _ in range(steps):
            logits, state = rec._step.step(tok, state)
            tok = logits.argmax(-1)
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def agreement(fp32: Recognizer, int8: Recognizer, crop: np.ndarray, steps: int) -> float:
    """Share of steps where int8 picks fp32's token, both fed fp32's prefix."""
    s32, s8 = fp32._encode([crop]), int8._encode([crop])
    tok = np.array([fp32.runtime.bos_id])
    same = 0
    for _ in range(steps):
        l32, s32 = fp32._step.step(tok, s32)
        l8, s8 = int8._step.step(tok, s8)
        same += int(l32.argmax() == l8.argmax())
        tok = l32.argmax(-1)
    return same / steps


def train_rate(model: OMRModel, batch_size: int, steps: int) -> float:
    cfg = model.cfg
    rng = np.random.default_rng(0)
    examples = [
        (
            synthetic_crop(200, int(rng.integers(1600, 2600)), i),
            rng.integers(4, cfg.vocab_size, 60).tolist(),
        )
        for i in range(batch_size)
    ]
    batch = Collate(cfg)(examples)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    times = [train_step(model, batch, opt) for _ in range(steps + 1)]
    return batch_size / float(np.median(times[1:]))


def train_step(
    model: OMRModel,
    batch,
    opt: torch.optim.Optimizer,
    decode: bool = True,
    ctc_weight: float = 0.3,
    masks: torch.Tensor | None = None,
    ctc_grammar_weight: float = 0.0,
) -> float:
    """Seconds of one training step on a collated ``batch``: forward (the attention decoder
    only with ``decode``), the losses ``train`` uses (the grammar terms only with the
    batch's class ids and ``masks``), backward, update."""
    cfg = model.cfg
    t0 = time.perf_counter()
    mask = (batch.tokens != cfg.pad_id).float()
    out = model(batch.pixels, batch.widths, batch.tokens, mask, decode=decode)
    loss = compute_loss(
        out.logits,
        batch.targets,
        out.balance,
        cfg.pad_id,
        ctc_logits=out.ctc_logits,
        ctc_lengths=out.ctc_lengths,
        ctc_weight=ctc_weight,
        eos_id=cfg.eos_id,
        class_ids=batch.class_ids if masks is not None else None,
        class_masks=masks,
        grammar_weight=0.1 if masks is not None else 0.0,
        ctc_grammar_weight=ctc_grammar_weight,
    ).total
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--presets", nargs="+", default=["small", "base"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--train-presets", nargs="*", default=["small"], help="base is a GPU preset")
    ap.add_argument("--train-batch", type=int, default=8)
    ap.add_argument("--train-steps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    rows = []
    for name in args.presets:
        cfg = ModelConfig.preset(name, vocab_size=VOCAB, factor_sizes=FACTOR_SIZES)
        model = OMRModel(cfg, factors(cfg)).eval()
        first_row = len(rows)
        with tempfile.TemporaryDirectory() as tmp:
            dirs = {}
            for precision in ("fp32", "int8"):
                t0 = time.perf_counter()
                dirs[precision] = export_model(
                    model, Path(tmp) / precision, quantize=precision == "int8"
                )
                export_s = time.perf_counter() - t0
                size_mb = sum(p.stat().st_size for p in dirs[precision].glob("*.onnx")) / 1e6
                rows.append(
                    (name, precision, "size", f"{size_mb:.1f} MB (export {export_s:.0f} s)")
                )
            recs = {
                p: Recognizer(d, device="cpu", num_threads=args.threads) for p, d in dirs.items()
            }
            for crop_name, (h, w, steps) in CROPS.items():
                crop = synthetic_crop(h, w)
                page = [synthetic_crop(h, w - 40 * i, seed=i) for i in range(PAGE[crop_name])]
                for precision, rec in recs.items():
                    ms = time_crops(rec, [crop], steps, args.repeats)
                    enc_ms = time_crops(rec, [crop], 0, args.repeats)
                    page_ms = time_crops(rec, page, steps, 1)
                    rows.append(
                        (
                            name,
                            precision,
                            f"{crop_name} crop",
                            f"{ms:.0f} ms ({enc_ms:.0f} encoder + {(ms - enc_ms) / steps:.1f}/token x {steps});"
                            f" page of {len(page)} batched: {page_ms:.0f} ms",
                        )
                    )
                agree = agreement(recs["fp32"], recs["int8"], crop, min(steps, 60))
                rows.append((name, "int8", f"{crop_name} agree", f"{agree:.0%} of steps"))
        rows.insert(first_row, (name, "-", "params", f"{model.num_params() / 1e6:.2f} M"))
        if name in args.train_presets:
            rate = train_rate(model, args.train_batch, args.train_steps)
            rows.append(
                (
                    name,
                    "fp32",
                    "train (CPU)",
                    f"{rate:.1f} samples/s (staff crops, batch {args.train_batch})",
                )
            )

    print(f"\nthreads={args.threads}, vocabulary={VOCAB}, torch {torch.__version__}")
    print(f"{'preset':<7} {'prec':<5} {'what':<14} value")
    for r in rows:
        print(f"{r[0]:<7} {r[1]:<5} {r[2]:<14} {r[3]}")


if __name__ == "__main__":
    main()
