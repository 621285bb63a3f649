"""Training speed on this machine's CPU for the choices that cost time in a step: CTC
frames per column (``ctc_upsample``), whether the attention decoder runs
(``--ce-weight 0`` leaves it out) and the grammar terms (``--grammar``: the decoder's, as
``train`` always adds it, and with ``--ctc-grammar-weight`` the CTC head's).

    python benchmarks/bench_train_step.py --data /work/data/val3 [--init resources/models/omr-small]
        [--batch 16] [--steps 4] [--threads 2]

Each variant trains the ``small`` preset (from ``--init``'s weights when given) for
``--steps`` timed steps of ``--batch`` real staff crops, the same batches for every variant,
after one untimed step: forward, the losses ``train`` uses (CTC weight 1.0; the grammar
terms only in the ``--grammar`` rows, with a class table built from the crops as ``train``
builds one), backward and an AdamW update. It prints samples/s per variant. Run it with
nothing else on the CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omr_engine.model.config import ModelConfig  # noqa: E402
from omr_engine.model.data import Collate  # noqa: E402
from omr_engine.model.network import OMRModel  # noqa: E402
from omr_engine.model.train import _load_matching, load_checkpoint  # noqa: E402
from omr_engine.notation.grammar import Grammar, GrammarClassTable  # noqa: E402
from omr_engine.notation.vocabulary import default_vocabulary  # noqa: E402
from omr_engine.synth.dataset import read_examples  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import train_step  # noqa: E402


def samples_per_s(
    cfg: ModelConfig,
    init: dict | None,
    batches: list,
    decode: bool,
    steps: int,
    masks: torch.Tensor | None = None,
    ctc_grammar_weight: float = 0.0,
) -> float:
    torch.manual_seed(0)
    model = OMRModel(cfg, default_vocabulary().factors())
    if init is not None:
        _load_matching(model, init)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    collate = Collate(cfg)
    seconds = [
        train_step(
            model,
            collate(examples),
            opt,
            decode=decode,
            ctc_weight=1.0,
            masks=masks,
            ctc_grammar_weight=ctc_grammar_weight,
        )
        for examples in batches[: steps + 1]
    ]
    return steps * len(batches[0]) / sum(seconds[1:])  # the first step warms up


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--init", type=Path, help="checkpoint or model folder with weights.pt")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--grammar", action="store_true", help="only the two-frame rows, with grammar terms"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    vocab = default_vocabulary()
    crops = itertools.islice(read_examples(args.data, ["staff"]), args.batch * (args.steps + 1))
    examples = [{"image": im, "ids": vocab.encode(t)} for im, t, _ in crops]
    batches = [examples[i : i + args.batch] for i in range(0, len(examples), args.batch)]
    init = load_checkpoint(args.init)["model"] if args.init else None
    base = ModelConfig.preset("small").with_vocab(vocab)
    print(f"{args.steps} steps of {args.batch} staff crops, {args.threads} threads")
    if args.grammar:
        grammar = Grammar(vocab)
        table = GrammarClassTable.build(grammar, (e["ids"] for e in examples))
        for e in examples:
            e["class_ids"] = table.class_ids(e["ids"])
        masks = torch.as_tensor(table.masks())
        cfg = dataclasses.replace(base, ctc_upsample=2)
        print("| CTC frames per column | grammar terms | samples/s |\n|---|---|---|")
        for weight in (0.0, 0.1, 0.0, 0.1):  # twice, to see the spread
            rate = samples_per_s(cfg, init, batches, True, args.steps, masks, weight)
            terms = "decoder's + CTC head's" if weight else "decoder's"
            print(f"| 2 | {terms} | {rate:.1f} |", flush=True)
        return
    print("| CTC frames per column | decoder | samples/s |\n|---|---|---|")
    for k, decode in [(1, True), (1, False), (2, True), (2, False)]:
        cfg = dataclasses.replace(base, ctc_upsample=k)
        rate = samples_per_s(cfg, init, batches, decode, args.steps)
        print(f"| {k} | {'runs' if decode else 'left out (--ce-weight 0)'} | {rate:.1f} |")


if __name__ == "__main__":
    main()
