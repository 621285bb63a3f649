"""Accuracy on whole systems (piano grand staves apart), read the way a user's page is read.

    python benchmarks/eval_systems.py resources/models/omr-small --data /work/data/valsys \
        [--limit 500] [--out results.json]

``--data`` is a dataset of system crops from validation pieces, e.g.
``deepmusic-ocr synth --out /work/data/valsys --count 500 --unit system --split val
--seed 3 --generated 1.0`` (generated pieces are a third piano, a tenth voice and piano).

Each crop goes through ``PagePipeline.read_page`` as a page: the layout finds its staves
and measures, the model reads each staff, and the staves are merged, fitted to the
measures and mended. The pipeline is told the clef, key and time in force where the
crop's line starts (``contexts``), as it is when it reads the next page of a document,
because a line after the first prints no time signature. The transcription is printed
as tokens from those same contexts and compared with the crop's own tokens:

- SER: token edit distance summed over crops / reference tokens summed;
- measures right: the share of crops whose transcription has the crop's measure count;
- flagged: the share of transcribed measures the grammar flags (``validate_score``, as the
  studio does).

Each row of the JSON keeps the crop's tokens and the transcription's (``ref``, ``read``,
space-separated), for ``benchmarks/error_kinds.py``.

Rows: piano grand staves (a part on 2 staves, alone in the crop), other systems, and
clean (strength 0) vs degraded, Petaluma apart (it looks hand-written).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omr_engine.model.metrics import edit_distance  # noqa: E402
from omr_engine.notation.grammar import validate_score  # noqa: E402
from omr_engine.notation.score import Score, StaffContext  # noqa: E402
from omr_engine.notation.tokens import measure_tokens  # noqa: E402
from omr_engine.pages import Page  # noqa: E402
from omr_engine.pipeline import PagePipeline, PageResult  # noqa: E402
from omr_engine.synth.dataset import read_examples  # noqa: E402
from omr_engine.synth.sources import PieceError, PieceStore  # noqa: E402


def line_tokens(score: Score, contexts: list[StaffContext]) -> list[str]:
    """A transcription printed as one line that starts where `contexts` are in force.

    A crop is engraved as an excerpt whose first measure states the clef, key and time in
    force (``synth.examples.excerpt``), and its tokens print them so; the first measure
    read is printed the same way, so that a time signature read there counts as read
    even where it changes nothing."""
    ctx = copy.deepcopy(contexts)
    out: list[str] = []
    for i, measure in enumerate(score.measures):
        if len(measure.staves) != len(ctx):
            ctx = [StaffContext() for _ in measure.staves]
        out += measure_tokens(measure, ctx, line_start=i == 0, piece_start=i == 0)
    return out


def kind_of(score: Score, staves: int) -> str:
    """'grand staff' for a crop of one piano part's two staves, else 'other systems'."""
    if staves == 2 and len(score.parts) == 1 and score.parts[0].staves == 2:
        return "grand staff"
    return "other systems"


def evaluate(model_dir: Path, data: Path, limit: int, threads: int) -> dict[str, Any]:
    cv2.setNumThreads(threads)
    pipeline = PagePipeline(model_dir, device="cpu")
    store = PieceStore(memory=64)
    tokens_of: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    seconds = 0.0
    for image, ref, meta in read_examples(data, ["system"]):
        if len(rows) >= limit:
            break
        try:
            piece = store.get(meta["piece"]).score
        except PieceError:
            continue
        contexts = piece.contexts_before(meta["measures"][0])
        page = Page(image=image, dpi=300.0, source=Path(meta["piece"]), index=0)
        start = time.perf_counter()
        result = next(
            r for r in pipeline.read_page(page, contexts=contexts) if isinstance(r, PageResult)
        )
        seconds += time.perf_counter() - start
        hyp: list[str] = []
        flagged = measures = 0
        if result.score is not None and result.score.measures:
            hyp = line_tokens(result.score, contexts)
            measures = len(result.score.measures)
            diagnostics = validate_score(
                result.score,
                pipeline.grammar,
                copy.deepcopy(contexts),
                piece_start=meta["measures"][0] == 0,  # a pickup may open the piece
            )
            flagged = len({d.measure for d in diagnostics})
        ids = [tokens_of.setdefault(t, len(tokens_of)) for t in ref]
        hyp_ids = [tokens_of.setdefault(t, len(tokens_of)) for t in hyp]
        rows.append(
            {
                "piece": meta["piece"],
                "kind": kind_of(piece, int(meta["staves"])),
                "font": meta["style"]["font"],
                "clean": float(meta["strength"]) <= 0.0,
                "errors": edit_distance(ids, hyp_ids),
                "reference_tokens": len(ids),
                "measures_right": measures == meta["measures"][1] - meta["measures"][0],
                "measures": measures,
                "true_measures": meta["measures"][1] - meta["measures"][0],
                "flagged": flagged,
                "ref": " ".join(ref),
                "read": " ".join(hyp),
            }
        )
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups["all"].append(r)
        groups[r["kind"]].append(r)
        groups[f"{r['kind']}, {'clean' if r['clean'] else 'degraded'}"].append(r)
        petaluma = "Petaluma" if r["font"] == "Petaluma" else "other fonts"
        groups[f"{r['kind']}, {petaluma}"].append(r)
    table = {
        name: {
            "crops": len(sel),
            "ser": round(
                sum(r["errors"] for r in sel) / max(1, sum(r["reference_tokens"] for r in sel)), 4
            ),
            "measures_right": round(sum(r["measures_right"] for r in sel) / len(sel), 4),
            "flagged": round(
                sum(r["flagged"] for r in sel) / max(1, sum(r["measures"] for r in sel)), 4
            ),
        }
        for name, sel in sorted(groups.items())
    }
    return {
        "model": str(model_dir),
        "data": str(data),
        "crops": len(rows),
        "ms_per_system": round(1000 * seconds / max(1, len(rows)), 1),
        "groups": table,
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    result = evaluate(args.model_dir, args.data, args.limit, args.threads)
    print(f"{result['crops']} systems, {result['ms_per_system']} ms per system (whole pipeline)")
    print("| systems | crops | SER | measures right | flagged |\n|---|---|---|---|---|")
    for name, row in result["groups"].items():
        print(
            f"| {name} | {row['crops']} | {row['ser']:.3f} | {row['measures_right']:.1%} "
            f"| {row['flagged']:.1%} |"
        )
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
