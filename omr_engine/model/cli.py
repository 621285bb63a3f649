"""`deepmusic-ocr train`, `export` and `average`: train on a synth dataset, ship to ONNX,
average runs of one model.

Registering the verbs imports nothing heavy; torch is imported when a verb runs.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from omr_engine.inference.contract import HYBRID_CTC_WEIGHT


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the recognition model on a synth dataset")
    p.add_argument(
        "--data",
        type=Path,
        action="append",
        required=True,
        help="training dataset folder (repeatable)",
    )
    p.add_argument("--val-data", type=Path, help="validation dataset folder (held-out pieces)")
    p.add_argument("--config", default="small", help="model preset: tiny, small or base")
    p.add_argument("--unit", choices=["staff", "system"], default="staff")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--out", type=Path, default=Path("runs/train"), help="checkpoints and log")
    p.add_argument("--init-from", type=Path, help="checkpoint to continue from")
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=500, help="steps of linear learning-rate warmup")
    p.add_argument(
        "--grammar-weight",
        type=float,
        default=0.1,
        help="weight of the grammar loss on the attention decoder",
    )
    p.add_argument(
        "--ctc-grammar-weight",
        type=float,
        default=0.0,
        help="weight of the grammar loss on the CTC head's frames (the head the shipped "
        "model reads with): -log of the mass on what the grammar allows at each frame of "
        "the target's best alignment",
    )
    p.add_argument(
        "--ctc-weight", type=float, default=0.3, help="weight of the encoder's auxiliary CTC loss"
    )
    p.add_argument(
        "--ce-weight",
        type=float,
        default=1.0,
        help="weight of the attention decoder's cross-entropy; 0 trains the encoder and CTC "
        "head alone, without running the decoder (faster; the decoder stays as it was)",
    )
    p.add_argument(
        "--ctc-upsample",
        type=int,
        choices=[1, 2, 3, 4],
        help="CTC frames per encoder column (default: --init-from's, else the preset's); from "
        "a checkpoint with fewer, each new frame starts as a copy of the old frame it falls in",
    )
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--workers", type=int, default=0, help="data loader processes")
    p.add_argument(
        "--curriculum",
        action="store_true",
        help="load crops into memory and train short, clean line starts first (staff unit)",
    )
    p.add_argument("--max-examples", type=int, help="with --curriculum: crops to load")
    p.add_argument(
        "--degrade-online",
        type=float,
        default=0.0,
        metavar="MAX",
        help="degrade clean crops (built with synth --strength-max 0) afresh each time they "
        "are read, at strengths up to MAX (0..1); streaming only, not with --curriculum",
    )
    p.add_argument(
        "--reframe",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help="frame each staff crop afresh as it is read: cut or pad the paper above and "
        "below its staff lines to LO..HI staff spaces (only blank rows are cut); streaming "
        "only, not with --curriculum",
    )
    p.add_argument(
        "--stretch",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help="resize each crop across by a factor drawn afresh from LO..HI as it is read "
        "(other engravers space notes wider or tighter than Verovio); streaming only, not "
        "with --curriculum",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the weights' init, the data order and the online degradation and framing; "
        "a second round on the same data with another seed sees it in another order",
    )
    p.add_argument(
        "--token-order",
        choices=["canonical", "onset"],
        default="canonical",
        help="target order of a measure's voices: one after another (canonical), or merged "
        "by where each event starts (onset: what a left-to-right CTC head can read; the "
        "reading is turned back to canonical order after decoding); pass it again to resume",
    )
    p.add_argument("--val-samples", type=int, default=256, help="validation crops per evaluation")
    p.add_argument(
        "--no-amp", action="store_true", help="on CUDA, train in fp32 rather than bf16 autocast"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="export a checkpoint to an ONNX model directory")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--unit", choices=["staff", "system"], default="staff")
    p.add_argument("--quantize", action="store_true", help="int8 weights for CPU")
    p.add_argument(
        "--decoder",
        choices=["attention", "ctc", "hybrid"],
        default="attention",
        help="how the runtime reads by default: the attention decoder, the CTC head, or "
        "both (hybrid: the decoder proposes, the CTC head's columns score it too)",
    )
    p.add_argument(
        "--ctc-weight",
        type=float,
        default=HYBRID_CTC_WEIGHT,
        help="hybrid reading: the CTC head's share of each hypothesis' score",
    )
    p.add_argument(
        "--beam", type=int, help="the beam the page pipeline reads with (default: its own)"
    )
    p.add_argument(
        "--include-weights",
        action="store_true",
        help="also write weights.pt, so training can continue from the shipped model",
    )
    p.add_argument(
        "--margin-spaces",
        type=float,
        default=3.5,
        help="staff spaces of paper the page pipeline keeps above and below a staff when it "
        "cuts crops for this model (synth staff crops have a median of 2.3-2.9; on the "
        "engraver tuning pages run 4k read best at 3.5: 10.5/9.0%% SER against 11.5/12.4%% "
        "at 2.5)",
    )
    p.add_argument(
        "--second-stretch",
        type=float,
        nargs="+",
        help="read a staff again this many times wider when its reading is left flagged "
        "(or, with --second-below, unsure), and keep the better reading; with more widths, "
        "each in turn while it stays in doubt (the shipped model: 1.1 1.25 1.4, voted); "
        "default: read once",
    )
    p.add_argument(
        "--second-below",
        type=float,
        help="also read a staff again when its reading's score (mean log-probability per "
        "token) is below this (the shipped model: -0.2)",
    )
    p.add_argument(
        "--second-vote",
        action="store_true",
        help="read a staff in doubt at every --second-stretch width and put its readings "
        "together measure by measure, each measure from a reading the grammar passes that "
        "agrees best with the others (the shipped model votes)",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "average",
        help="average checkpoints of one model weight by weight (a model soup)",
    )
    p.add_argument("checkpoints", type=Path, nargs="+", help="two or more checkpoints")
    p.add_argument("--out", type=Path, required=True, help="the averaged checkpoint (new file)")
    p.set_defaults(func=cmd_average)


def _with_classes(dataset, table):
    """Adds each example's grammar class ids (the same numbering in every worker)."""
    from torch.utils.data import IterableDataset

    class WithGrammarClasses(IterableDataset):
        def __iter__(self):
            for example in dataset:
                example["class_ids"] = table.class_ids(example["ids"])
                yield example

    return WithGrammarClasses()


def cmd_train(args: argparse.Namespace) -> int:
    from omr_engine.cli import CommandError
    from omr_engine.model.config import ModelConfig
    from omr_engine.model.train import train
    from omr_engine.notation.grammar import Grammar, GrammarClassTable
    from omr_engine.notation.reading_order import to_onset_order
    from omr_engine.notation.vocabulary import default_vocabulary
    from omr_engine.synth.dataset import SynthIterableDataset, read_examples

    for folder in args.data:
        if not (folder / "manifest.json").is_file():
            raise CommandError(f"{folder}: not a synth dataset (no manifest.json)")
    if not 0.0 <= args.degrade_online <= 1.0:
        raise CommandError("--degrade-online takes a strength from 0 to 1")
    if args.degrade_online and args.curriculum:
        raise CommandError("--degrade-online works on streamed data, not with --curriculum")
    if args.reframe and args.curriculum:
        raise CommandError("--reframe works on streamed data, not with --curriculum")
    if args.reframe and not 0.0 <= args.reframe[0] <= args.reframe[1]:
        raise CommandError("--reframe takes LO HI staff spaces with 0 <= LO <= HI")
    if args.token_order != "canonical" and args.curriculum:
        raise CommandError("--token-order works on streamed data, not with --curriculum")
    if args.stretch and args.curriculum:
        raise CommandError("--stretch works on streamed data, not with --curriculum")
    if args.stretch and not 0.0 < args.stretch[0] <= args.stretch[1]:
        raise CommandError("--stretch takes LO HI factors with 0 < LO <= HI")
    vocab = default_vocabulary()
    units = [args.unit]
    order = to_onset_order if args.token_order == "onset" else list
    sample = (vocab.encode(order(t)) for _, t, _ in read_examples(args.data[0], units))
    table = GrammarClassTable.build(Grammar(vocab), itertools.islice(sample, 3000))
    print(f"grammar classes: {len(table)}", file=sys.stderr)
    config = ModelConfig.preset(args.config)
    upsample = args.ctc_upsample
    if upsample is None and args.init_from is not None:  # keep the checkpoint's head
        from omr_engine.model.train import load_checkpoint

        upsample = load_checkpoint(args.init_from)["model_config"].get("ctc_upsample", 1)
    if upsample is not None:
        config = replace(config, ctc_upsample=upsample)
    curriculum = None
    if args.curriculum:
        from omr_engine.model.curriculum import PrefixCropDataset, Schedule, load_records

        records = load_records(
            args.data, config.preprocess, vocab, unit=args.unit, limit=args.max_examples
        )
        print(f"loaded {len(records)} crops into memory", file=sys.stderr)
        train_ds = PrefixCropDataset(records, table)
        curriculum = Schedule(steps=args.steps)
    else:
        stream = SynthIterableDataset(
            args.data,
            vocab,
            units=units,
            shuffle_buffer=512,
            seed=args.seed,
            degrade_max=args.degrade_online,
            margins=tuple(args.reframe) if args.reframe else None,
            stretch=tuple(args.stretch) if args.stretch else None,
            token_order=args.token_order,
        )
        train_ds = _with_classes(stream, table)
    val_ds = None
    if args.val_data:
        val_ds = [
            {"image": image, "ids": vocab.encode(order(tokens))}
            for image, tokens, _ in itertools.islice(
                read_examples(args.val_data, units), args.val_samples
            )
        ]

    def report(p) -> None:
        val = f" val SER {p.val_ser:.3f}" if p.val_ser is not None else ""
        print(
            f"\rstep {p.step}/{p.steps} loss {p.train_loss:.3f} {p.samples_per_s:.1f}/s{val}",
            end="\n" if val else "",
            file=sys.stderr,
            flush=True,
        )

    result = train(
        config,
        train_ds,
        val_ds,
        args.out,
        vocab=vocab,
        device=args.device,
        init_from=args.init_from,
        grammar_masks=table.masks(),
        callback=report,
        curriculum=curriculum,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup,
        grammar_weight=args.grammar_weight,
        ctc_grammar_weight=args.ctc_grammar_weight,
        ctc_weight=args.ctc_weight,
        ce_weight=args.ce_weight,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        num_workers=args.workers,
        eval_samples=args.val_samples,
        amp=not args.no_amp,
        seed=args.seed,
    )
    print(f"\nlast checkpoint {result.last_checkpoint}, best val SER {result.best_val_ser}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import json

    from omr_engine.cli import CommandError
    from omr_engine.model.export import export_model
    from omr_engine.model.train import load_checkpoint
    from omr_engine.notation.vocabulary import Vocabulary, default_vocabulary

    if args.second_stretch is not None and not all(w > 0.0 for w in args.second_stretch):
        raise CommandError("--second-stretch takes positive widths")
    if args.second_below is not None and args.second_stretch is None:
        raise CommandError("--second-below needs --second-stretch")
    if args.second_vote and (args.second_stretch is None or len(args.second_stretch) < 2):
        raise CommandError("--second-vote needs two or more --second-stretch widths")
    # The vocabulary only grows at its end, so a checkpoint trained before tokens were
    # added reads the first vocab_size tokens of today's.
    size = int(load_checkpoint(args.checkpoint)["model_config"]["vocab_size"])
    with tempfile.TemporaryDirectory() as tmp:
        vocab_path = Path(tmp) / "vocab.json"
        Vocabulary(default_vocabulary().tokens[:size]).save(vocab_path)
        out = export_model(
            args.checkpoint,
            args.out_dir,
            quantize=args.quantize,
            vocab_path=vocab_path,
            include_weights=args.include_weights,
            decoder_kind=args.decoder,
            ctc_weight=args.ctc_weight,
            beam=args.beam,
        )
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    config.setdefault("data", {})["unit"] = args.unit
    config["data"]["margin_spaces"] = args.margin_spaces
    if args.second_stretch is not None:
        config["runtime"]["second_stretch"] = args.second_stretch
        config["runtime"]["second_below"] = args.second_below
        config["runtime"]["second_vote"] = args.second_vote
    config_path.write_text(json.dumps(config, indent=1))
    print(f"wrote {out}")
    return 0


def cmd_average(args: argparse.Namespace) -> int:
    from omr_engine.cli import EXIT_EXISTS, CommandError
    from omr_engine.model.soup import save_average

    for path in args.checkpoints:
        if not path.exists():
            raise CommandError(f"{path}: no such checkpoint")
    try:
        out = save_average(args.checkpoints, args.out)
    except FileExistsError as exc:
        raise CommandError(str(exc), EXIT_EXISTS) from exc
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - a file torch cannot read: one line, not a traceback
        raise CommandError(f"cannot read a checkpoint: {exc}") from exc
    print(f"wrote {out} (the mean of {len(args.checkpoints)} checkpoints)")
    return 0
