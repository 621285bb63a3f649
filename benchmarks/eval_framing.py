"""How the framing of a staff crop changes what the model reads: held-out staff crops read
as stored, and cut again by the layout the way the page pipeline cuts a page.

    python benchmarks/eval_framing.py resources/models/omr-small --data /work/data/val3 \
        [--limit 600] [--margins 2.5 3.5 4.5] [--reach 6.0]

Each stored crop (``synth --unit staff``: all of the staff's ink, with 1.5-5 staff spaces
of paper drawn above and below it) goes through ``analyze_page`` as a page; a crop whose
layout is not one staff is left out. The staff is then cut again with ``staff_crop`` at
each fixed margin, and at the first margin with the reach the pipeline uses
(``reach_spaces``: the ink that hangs together with the staff, however far past the
margin). Every framing is read freely with the CTC head and scored against the crop's
tokens: SER per source (corpus pieces, generated music) and the crops' median height.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omr_engine.inference.session import Recognizer  # noqa: E402
from omr_engine.layout import NoStavesError, analyze_page, staff_crop  # noqa: E402
from omr_engine.model.metrics import edit_distance  # noqa: E402
from omr_engine.synth.dataset import read_examples  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=600, help="stored crops to read")
    ap.add_argument("--margins", type=float, nargs="+", default=[2.5, 3.5, 4.5])
    ap.add_argument("--reach", type=float, default=6.0, help="0: no reach")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    rec = Recognizer(args.model_dir, device="cpu", num_threads=args.threads)
    vocab = rec.vocab
    framings: dict[str, list[np.ndarray]] = defaultdict(list)
    refs, sources = [], []
    for n, (image, tokens, meta) in enumerate(read_examples(args.data, ["staff"])):
        if n >= args.limit:
            break
        try:
            layout = analyze_page(image)
        except NoStavesError:
            continue
        if len(layout.systems) != 1 or len(layout.systems[0].staves) != 1:
            continue
        refs.append(vocab.encode(tokens))
        sources.append(meta.get("source", "unknown"))
        framings["as stored"].append(image)
        for margin in args.margins:
            framings[f"cut at {margin}"].append(staff_crop(image, layout, 0, 0, margin).image)
        if args.reach > 0:
            crop = staff_crop(image, layout, 0, 0, args.margins[0], reach_spaces=args.reach)
            framings[f"cut at {args.margins[0]}, reach {args.reach}"].append(crop.image)
    print(f"{len(refs)} of the first {args.limit} crops hold one staff the layout finds")
    print("| framing | " + " | ".join(f"SER {s}" for s in sorted(set(sources))) + " | height |")
    print("|---|" + "---|" * (len(set(sources)) + 1))
    for name, crops in framings.items():
        results = rec.recognize(crops, decoder="ctc")
        errors: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for ref, result, source in zip(refs, results, sources, strict=True):
            errors[source][0] += edit_distance(ref, list(result.ids))
            errors[source][1] += len(ref)
        cells = [f"{errors[s][0] / max(1, errors[s][1]):.3f}" for s in sorted(errors)]
        height = int(np.median([c.shape[0] for c in crops]))
        print(f"| {name} | " + " | ".join(cells) + f" | {height} px |")


if __name__ == "__main__":
    main()
