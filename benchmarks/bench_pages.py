"""Whole-page speed: seconds per page for load + layout + recognition + assembly, and peak
memory, with the shipped model (or ``--model DIR``) on this machine's CPU threads.

    python benchmarks/bench_pages.py                       # the sample scan, 5 runs
    python benchmarks/bench_pages.py scan.pdf --runs 1 --threads 2 --device cpu

Prints, per run, the wall time and the staves read, then the median seconds per page and
per staff, and the process's peak resident memory (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

from omr_engine.inference.session import Recognizer
from omr_engine.pages import load_pages
from omr_engine.pipeline import PagePipeline, transcribe

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "inputs", nargs="*", type=Path, default=[ROOT / "resources/samples/bwv66.6-scan.png"]
    )
    ap.add_argument("--model", type=Path, default=ROOT / "resources/models/omr-small")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--beam", type=int, help="beam width (default: the pipeline's, 4 for CTC)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    recognizer = Recognizer(args.model, device=args.device, num_threads=args.threads)
    pipeline = PagePipeline(args.model, device=args.device, beam=args.beam, recognizer=recognizer)
    print(f"model loaded in {time.perf_counter() - t0:.2f} s ({recognizer.device})")
    per_page, per_staff = [], []
    for run in range(args.runs):
        t = time.perf_counter()
        pages = [p for path in args.inputs for p in load_pages(path)]
        result = transcribe(pages, pipeline)
        dt = time.perf_counter() - t
        staves = sum(
            len(s.staves) for r in result.pages if r.layout is not None for s in r.layout.systems
        )
        per_page.append(dt / max(1, len(pages)))
        per_staff.append(dt / max(1, staves))
        print(
            f"run {run + 1}: {len(pages)} page(s), {staves} staves, "
            f"{len(result.score.measures)} measures, {dt:.2f} s"
        )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"median {statistics.median(per_page):.2f} s per page, "
        f"{1000 * statistics.median(per_staff):.0f} ms per staff; peak memory {peak_mib:.0f} MiB"
    )


if __name__ == "__main__":
    main()
