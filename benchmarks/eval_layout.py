"""Page layout alone on system crops: are the staves, the system and its measures found?

    python benchmarks/eval_layout.py /work/data/valsys /work/data/valsys-clean [--limit 500]

Each dataset is a folder of system crops (``deepmusic-ocr synth --unit system ...``); every
crop goes through ``analyze_page`` as a page. A crop counts as right when the layout finds
as many staves as it holds, one system, and as many measures as the engraving has (the
crop's ``measure_boxes``). Prints one line per dataset; no model is needed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omr_engine.layout import NoStavesError, analyze_page  # noqa: E402
from omr_engine.synth.dataset import read_examples  # noqa: E402


def evaluate(data: Path, limit: int) -> dict[str, float]:
    """Shares of the crops with the staves, one system, and all of it right."""
    n = staves_right = one_system = all_right = 0
    seconds = 0.0
    for image, _, meta in read_examples(data, ["system"]):
        if n >= limit:
            break
        boxes = meta["measure_boxes"]
        true_measures = len(json.loads(boxes) if isinstance(boxes, str) else boxes)
        start = time.perf_counter()
        try:
            layout = analyze_page(image)
            staves, systems = len(layout.staves), len(layout.systems)
            measures = sum(len(s.measure_boxes) for s in layout.systems)
        except NoStavesError:
            staves = systems = measures = 0
        seconds += time.perf_counter() - start
        n += 1
        staves_right += staves == meta["staves"]
        one_system += systems == 1
        all_right += staves == meta["staves"] and systems == 1 and measures == true_measures
    return {
        "crops": n,
        "staves_right": staves_right / max(1, n),
        "one_system": one_system / max(1, n),
        "all_right": all_right / max(1, n),
        "ms_per_crop": 1000 * seconds / max(1, n),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("data", type=Path, nargs="+")
    ap.add_argument("--limit", type=int, default=500)
    args = ap.parse_args()
    for data in args.data:
        r = evaluate(data, args.limit)
        print(
            f"{data.name}: {r['crops']} crops, staves right {r['staves_right']:.1%}, "
            f"one system {r['one_system']:.1%}, staves, system and measures right "
            f"{r['all_right']:.1%}, {r['ms_per_crop']:.0f} ms a crop"
        )


if __name__ == "__main__":
    main()
