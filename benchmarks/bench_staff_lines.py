"""How often a synthetic crop's staff survives its degradation, by the layout's own test.

    python benchmarks/bench_staff_lines.py DATA [DATA ...] [--limit 600]

For each staff crop of each dataset (``deepmusic-ocr synth`` output), the crop is
binarized and its staff searched as the page layout does (``estimate_staff_metrics`` and
``find_staves``); a crop counts as kept when exactly one five-line staff is found. The
table groups crops by dataset and by the kind of binarization the degradation applied
(``none``, ``otsu``, ``threshold``), the step that erases faint or broken lines.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omr_engine.layout.ink import binarize, estimate_staff_metrics  # noqa: E402
from omr_engine.layout.staves import find_staves  # noqa: E402
from omr_engine.synth.dataset import read_examples  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("data", type=Path, nargs="+")
    ap.add_argument("--limit", type=int, default=600, help="crops per dataset")
    args = ap.parse_args()
    kept: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for data in args.data:
        for n, (image, _, meta) in enumerate(read_examples(data, ["staff"])):
            if n >= args.limit:
                break
            kind = (meta.get("degradation") or {}).get("binarize") or "none"
            ink, _ = binarize(image)
            metrics = estimate_staff_metrics(ink)
            found = metrics is not None and len(find_staves(ink, metrics)) == 1
            row = kept[(data.name, kind)]
            row[0] += found
            row[1] += 1
    print("| dataset | binarization | crops | staff found |")
    print("|---|---|---|---|")
    for (name, kind), (found, total) in sorted(kept.items()):
        print(f"| {name} | {kind} | {total} | {100 * found / total:.1f}% |")


if __name__ == "__main__":
    main()
