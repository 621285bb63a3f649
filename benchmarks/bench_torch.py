"""Reading speed of a trained model in PyTorch, on the CPU or a GPU: the encoder, the CTC
head and best-path decoding, as the shipped model reads a staff (the grammar edit and the
page pipeline around it run on the CPU and are timed by ``bench_pages.py``).

    python benchmarks/bench_torch.py resources/models/omr-small --data /work/data/val3 \
        [--device cuda] [--crops 256] [--out gpu.json]

``--data`` is a dataset of staff crops (e.g. ``synth --unit staff --split val``). It
prints, per batch size (1: one staff at a time; 8: the pipeline's batches; 64), the
milliseconds per staff, in fp32 and, on CUDA, under bf16 autocast, after two warm-up
passes; CUDA work is synchronised before each clock reading. Preprocessing (resizing and
padding, on the CPU) is done once beforehand and not timed. It also reports the best
paths' symbol error rate against the crops' tokens, and on CUDA how many crops' paths
agree between fp32 and bf16.

This is the timing the device script (`scripts/device_train.sh`) takes on the GPU machine
after training, since onnxruntime there has no CUDA provider.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omr_engine.inference.preprocess import preprocess_batch  # noqa: E402
from omr_engine.model.config import ModelConfig  # noqa: E402
from omr_engine.model.metrics import edit_distance  # noqa: E402
from omr_engine.model.network import OMRModel  # noqa: E402
from omr_engine.notation.vocabulary import Vocabulary  # noqa: E402
from omr_engine.synth.dataset import read_examples  # noqa: E402

BATCHES = (1, 8, 64)


def load(model_dir: Path, device: torch.device) -> OMRModel:
    """The model in ``model_dir/weights.pt``, in fp32 on ``device``, in eval mode."""
    ckpt = torch.load(model_dir / "weights.pt", map_location="cpu", weights_only=False)
    model = OMRModel(ModelConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict({k: v.float() for k, v in ckpt["model"].items()})
    return model.to(device).eval()


def best_paths(model: OMRModel, pixels: torch.Tensor, widths: torch.Tensor) -> list[list[int]]:
    """Best-path CTC token ids per crop (repeats merged, blanks dropped), on the device:
    the runtime's ``inference.decoding.ctc_decode`` also works out each token's confidence
    and position column by column in Python, which is CPU work, not the model's."""
    memory, valid = model.forward_features(pixels, widths)
    logits, lengths = model.ctc(memory, valid)
    best = logits.argmax(-1)  # (B, C); the blank is the last class
    blank = logits.shape[-1] - 1
    keep = torch.ones_like(best, dtype=torch.bool)
    keep[:, 1:] = best[:, 1:] != best[:, :-1]
    keep &= best != blank
    keep &= torch.arange(best.shape[1], device=best.device)[None] < lengths[:, None]
    best, keep = best.cpu().numpy(), keep.cpu().numpy()
    return [row[k].tolist() for row, k in zip(best, keep, strict=True)]


def time_batches(
    model: OMRModel,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    bf16: bool,
) -> tuple[float, list[list[int]]]:
    """Seconds for one pass over ``batches`` (after two warm-up passes), and the paths."""

    def run() -> list[list[int]]:
        out: list[list[int]] = []
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16),
        ):
            for pixels, widths in batches:
                out += best_paths(model, pixels, widths)
        return out

    for _ in range(2):
        run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    paths = run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--crops", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = load(args.model_dir, device)
    examples = list(itertools.islice(read_examples(args.data, ["staff"]), args.crops))
    images = [im for im, _, _ in examples]
    vocab = Vocabulary.load(args.model_dir / "vocab.json")
    refs = [vocab.encode(tokens) for _, tokens, _ in examples]
    if not images:
        raise SystemExit(f"bench_torch: no staff crops in {args.data}")
    result: dict[str, object] = {
        "model": str(args.model_dir),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": args.threads,
        "crops": len(images),
        "ms_per_staff": {},
    }
    paths: dict[str, list[list[int]]] = {}
    modes = ["fp32", "bf16"] if device.type == "cuda" else ["fp32"]
    for size in BATCHES:
        batches = []
        for k in range(0, len(images), size):
            pixels, widths = preprocess_batch(images[k : k + size], model.cfg.preprocess)
            batches.append(
                (torch.from_numpy(pixels).to(device), torch.from_numpy(widths).to(device))
            )
        for mode in modes:
            seconds, paths[mode] = time_batches(model, batches, device, mode == "bf16")
            ms = 1000 * seconds / len(images)
            result["ms_per_staff"][f"batch {size}, {mode}"] = round(ms, 3)  # type: ignore[index]
            print(f"batch {size:3d} {mode}: {ms:8.3f} ms per staff", flush=True)
    for mode, found in paths.items():  # the last batch size's paths
        errors = sum(edit_distance(p, r) for p, r in zip(found, refs, strict=True))
        result[f"ser_{mode}"] = round(errors / sum(map(len, refs)), 4)
        print(f"SER {mode} (best path): {result[f'ser_{mode}']}")
    if "bf16" in paths:
        same = sum(a == b for a, b in zip(paths["fp32"], paths["bf16"], strict=True))
        result["bf16_same_paths"] = f"{same}/{len(images)}"
        print(f"bf16 best paths equal to fp32's: {same} of {len(images)}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
