"""Tune the second look (omr_engine/inference/second_look.py) for a model: which widths to
read a staff again at, and below which score.

    python benchmarks/tune_second_look.py resources/models/omr-small \
        --data /work/data/val3 --data /work/data/val3-clean --limit 600

Every crop is read once at each of ``--widths`` (the first is the normal reading), the way
``eval_model.py`` reads it ("reread": constrained, cut into the crop's measures, mended,
flagged measures read again). Then, for each threshold of ``--below`` and each width or
ordered pair of widths after the first, the second look is played out as the page
pipeline plays it: a crop whose kept reading the grammar flags, or whose score is below
the threshold, takes the next width's reading when that has fewer flagged measures, or as
many and a higher score. With ``--vote`` the voting look is played too, for each set of
two or more widths after the first: a crop in doubt after its first reading is read at
every width of the set and its readings voted measure by measure
(``second_look.vote_measures``). Printed per setting: SER, flagged measures, readings per
crop, best SER first. Session 30 chose ``--second-stretch 1.4 --second-below -0.2`` for
run 5w this way, and session 31 the vote at 1.1, 1.25 and 1.4 below -0.2; each was checked
on crops of another seed (``val30``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_model import context_in_force, finish_reading, vote_readings  # noqa: E402

from omr_engine.inference.second_look import SecondLook, flagged_measures  # noqa: E402
from omr_engine.inference.session import Recognizer  # noqa: E402
from omr_engine.model.metrics import edit_distance  # noqa: E402
from omr_engine.notation.grammar import Grammar  # noqa: E402
from omr_engine.notation.vocabulary import default_vocabulary  # noqa: E402
from omr_engine.synth.dataset import read_examples  # noqa: E402
from omr_engine.synth.sources import PieceStore  # noqa: E402


def read_at_widths(
    model: Path, datasets: list[Path], limit: int, widths: list[float], threads: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, list[list[dict]], list[list[int]]]:
    """Per width and crop: token errors, flagged measures and score of the pipeline's
    reading; the reference tokens in all; per width and crop the reading itself
    (``finish_reading``'s) and per crop its reference ids, to vote with."""
    rec = Recognizer(model, device="cpu", num_threads=threads)
    vocab = rec.vocab
    grammar = Grammar(vocab)
    store = PieceStore(memory=64)
    sets = []
    for data in datasets:
        crops = []
        for n, example in enumerate(read_examples(data, ["staff"])):
            if n >= limit:
                break
            crops.append(example)
        sets.append(crops)
    examples = [example for crops in sets for example in crops]
    contexts = [context_in_force(store, meta) for _, _, meta in examples]
    shape = (len(widths), len(examples))
    errors, flags, scores = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    reference = sum(len(t) for _, t, _ in examples)
    refs = [vocab.encode(tokens) for _, tokens, _ in examples]
    readings: list[list[dict]] = []
    for w, width in enumerate(widths):
        # each set read on its own, as eval_model.py reads it: int8 activations are
        # quantized per batch, so which crops share a batch moves a reading a little
        results = [
            r
            for crops in sets
            for r in rec.recognize(
                [image for image, _, _ in crops],
                grammar_factory=grammar.start,
                beam=rec.runtime.beam or 1,
                batch_size=8,
                token_logp=True,
                stretch=width,
            )
        ]
        readings.append([])
        for i, ((image, _, meta), c) in enumerate(zip(examples, results, strict=True)):
            line = finish_reading(c, image, meta, vocab, contexts[i])
            readings[w].append(line)
            errors[w, i] = edit_distance(refs[i], line["reread"])
            flags[w, i] = len(
                flagged_measures(grammar, line["reread"], line["time"], line["piece_start"])
            )
            scores[w, i] = c.score
        print(f"width {width:g}: SER {errors[w].sum() / reference:.4f}", flush=True)
    return errors, flags, scores, reference, readings, refs


def play(
    errors: np.ndarray,
    flags: np.ndarray,
    scores: np.ndarray,
    order: tuple[int, ...],
    look: SecondLook,
) -> tuple[float, float, float]:
    """Token errors, flagged measures and readings of the second look reading the widths
    ``order`` (indices) in turn after width 0."""
    n = errors.shape[1]
    kept = np.zeros(n, int)
    reads = n
    for w in order:
        for i in range(n):
            k = kept[i]
            if look.wanted(flags[k, i], scores[k, i]):
                reads += 1
                if look.prefer((flags[k, i], scores[k, i]), (flags[w, i], scores[w, i])):
                    kept[i] = w
    pick = (kept, np.arange(n))
    return float(errors[pick].sum()), float(flags[pick].sum()), reads / n


def play_vote(
    readings: list[list[dict]],
    refs: list[list[int]],
    flags: np.ndarray,
    scores: np.ndarray,
    voters: tuple[int, ...],
    look: SecondLook,
    grammar: Grammar,
) -> tuple[float, float, float]:
    """Token errors, flagged measures and readings of the voting look: a crop the first
    reading (width 0) leaves in doubt is voted, measure by measure, from its readings at
    width 0 and at the widths ``voters`` (indices)."""
    n = len(refs)
    errors = flagged = 0.0
    reads = n
    for i in range(n):
        first = readings[0][i]
        if not look.wanted(flags[0, i], scores[0, i]):
            errors += edit_distance(refs[i], first["reread"])
            flagged += flags[0, i]
            continue
        reads += len(voters)
        ids = vote_readings([readings[w][i] for w in (0, *voters)], grammar)
        errors += edit_distance(refs[i], ids)
        flagged += len(flagged_measures(grammar, ids, first["time"], first["piece_start"]))
    return errors, flagged, reads / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--data", type=Path, action="append", required=True)
    ap.add_argument("--limit", type=int, default=600, help="crops per dataset")
    ap.add_argument("--widths", type=float, nargs="+", default=[1.0, 1.1, 1.25, 1.4])
    ap.add_argument(
        "--below", nargs="+", default=["none", "-0.05", "-0.1", "-0.2"], help="thresholds"
    )
    ap.add_argument("--vote", action="store_true", help="play the voting look too")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="the table as JSON")
    args = ap.parse_args()
    errors, flags, scores, ref, readings, refs = read_at_widths(
        args.model_dir, args.data, args.limit, args.widths, args.threads
    )
    grammar = Grammar(default_vocabulary())
    rows = []
    others = range(1, len(args.widths))
    for below in args.below:
        threshold = None if below == "none" else float(below)
        for order in [*((w,) for w in others), *itertools.permutations(others, 2)]:
            e, f, reads = play(errors, flags, scores, order, SecondLook((1.0,), threshold))
            rows.append(
                {
                    "widths": [args.widths[w] for w in order],
                    "below": threshold,
                    "ser": round(e / ref, 4),
                    "flagged": int(f),
                    "readings_per_crop": round(reads, 2),
                }
            )
        for size in range(2, len(others) + 1) if args.vote else ():
            for voters in itertools.combinations(others, size):
                look = SecondLook((1.0,), threshold, vote=True)
                e, f, reads = play_vote(readings, refs, flags, scores, voters, look, grammar)
                rows.append(
                    {
                        "widths": [args.widths[w] for w in voters],
                        "below": threshold,
                        "vote": True,
                        "ser": round(e / ref, 4),
                        "flagged": int(f),
                        "readings_per_crop": round(reads, 2),
                    }
                )
    rows.sort(key=lambda r: (r["ser"], r["flagged"]))
    print(
        f"read once at {args.widths[0]:g}: SER {errors[0].sum() / ref:.4f}, flagged {int(flags[0].sum())}"
    )
    print("| then widths | below | SER | flagged | readings per crop |\n|---|---|---|---|---|")
    for r in rows:
        widths = ", ".join(f"{w:g}" for w in r["widths"]) + (" (vote)" if r.get("vote") else "")
        print(
            f"| {widths} | {r['below']} | {r['ser']:.4f} | {r['flagged']} | {r['readings_per_crop']} |"
        )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
