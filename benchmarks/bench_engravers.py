"""Page layout (and, with a model, whole-page reading) on pages from other engravers.

    python benchmarks/bench_engravers.py [DIR] [--out results.json] [--model MODEL_DIR]

``DIR`` (default /work/data/engravers) holds the ``manifest.json`` that
``benchmarks/make_engraver_pages.py`` writes: LilyPond and MuseScore 3 pages, clean and
degraded, each with its excerpt's MusicXML and the staves, systems and measures the
engraver laid out.

Layout: every page is loaded as the app loads it (``omr_engine.pages.load_pages``, which
evens a photo's lighting and straightens a sheet lying on a table) and goes through
``omr_engine.layout.analyze_page``; per engraver and
condition the table gives the share of pages whose staff count, system count and
measure-box count are right (all three at once in "all"), and the mean wall time of
``analyze_page`` per page (OpenCV held to ``--threads``; loading not included).

With ``--model`` the page is also read by ``PagePipeline``/``transcribe`` with that
model; the transcription is exported with ``write_musicxml`` and read back (so what is
scored is the exported MusicXML), and compared with the excerpt as its page prints it
(without the ties out of its last measure, which lead to notes the page does not hold
and neither engraver prints): symbol error rate is the
token edit distance (``score_to_tokens`` of both, ``edit_distance``) summed over pages and
divided by the reference tokens summed over pages; "measures right" is the share of pages
whose transcription has the excerpt's number of measures; "flagged" is the share of the
transcribed measures the grammar flags. ``--musicdiff`` adds musicdiff's
OMR-NED (``compare_scores``), which is slow on long pages. Each page's row in ``--out``
keeps both token sequences (``ref``, ``read``) for ``benchmarks/error_kinds.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omr_engine.layout import NoStavesError, analyze_page  # noqa: E402
from omr_engine.model.metrics import edit_distance  # noqa: E402
from omr_engine.notation.music21_io import read_score, write_musicxml  # noqa: E402
from omr_engine.notation.tokens import (  # noqa: E402
    score_to_tokens,
    tokens_to_score,
    without_ties_off_the_end,
)
from omr_engine.pages import Page, load_pages  # noqa: E402

DEFAULT_DIR = Path("/work/data/engravers")


def layout_row(image: np.ndarray) -> dict:
    """What analyze_page finds on one page, and how long it took."""
    start = time.perf_counter()
    try:
        layout = analyze_page(image)
    except NoStavesError:
        return {
            "staves": 0,
            "systems": 0,
            "measures": 0,
            "skew": 0.0,
            "ms": (time.perf_counter() - start) * 1000.0,
        }
    ms = (time.perf_counter() - start) * 1000.0
    return {
        "staves": len(layout.staves),
        "systems": len(layout.systems),
        "measures": sum(len(s.measure_boxes) for s in layout.systems),
        "skew": round(layout.skew_degrees, 2),
        "ms": ms,
    }


class TokenIds:
    """Token strings as small integers for ``edit_distance``."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def __call__(self, tokens: list[str]) -> list[int]:
        return [self.ids.setdefault(t, len(self.ids)) for t in tokens]


def read_row(pipeline, page: Page, excerpt: Path, ids: TokenIds, musicdiff: bool) -> dict:
    """Transcribe one page, export it, and score the export against the excerpt as the
    page prints it: without the ties out of its last measure, which lead to notes the page
    does not hold (:func:`without_ties_off_the_end`; neither LilyPond nor MuseScore prints
    them: looked at on palestrina__Agnus_I_10 and mozart k155 iii)."""
    from omr_engine.pipeline import transcribe

    ref = without_ties_off_the_end(score_to_tokens(read_score(excerpt)[0]))
    start = time.perf_counter()
    result = transcribe([page], pipeline)
    ms = (time.perf_counter() - start) * 1000.0
    if not result.score.measures:
        return {
            "errors": len(ref),
            "reference_tokens": len(ref),
            "predicted_measures": 0,
            "flagged_measures": 0,
            "ms_read": ms,
            "ref": " ".join(ref),
            "read": "",
        }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "transcription.musicxml"
        write_musicxml(result.score, path)
        exported, _ = read_score(path)
    read = score_to_tokens(exported)
    row = {
        "errors": edit_distance(ids(read), ids(ref)),
        "reference_tokens": len(ref),
        "predicted_measures": len(exported.measures),
        "flagged_measures": len({d.measure_id or d.measure for d in result.diagnostics}),
        "ms_read": ms,
        "ref": " ".join(ref),
        "read": " ".join(read),
    }
    if musicdiff:
        from omr_engine.notation.compare import compare_scores

        row["omr_ned"] = compare_scores(tokens_to_score(ref), exported).omr_ned
    return row


def summarize(rows: list[dict], with_model: bool) -> dict:
    n = len(rows)
    out = {
        "pages": n,
        "staves_right": sum(r["staves"] == r["true_staves"] for r in rows) / n,
        "systems_right": sum(r["systems"] == r["true_systems"] for r in rows) / n,
        "measure_boxes_right": sum(r["measures"] == r["true_measures"] for r in rows) / n,
        "all_right": sum(
            (r["staves"], r["systems"], r["measures"])
            == (r["true_staves"], r["true_systems"], r["true_measures"])
            for r in rows
        )
        / n,
        "ms_mean": statistics.fmean(r["ms"] for r in rows),
        "ms_median": statistics.median(r["ms"] for r in rows),
    }
    if with_model:
        ref = sum(r["reference_tokens"] for r in rows)
        out["symbol_error_rate"] = sum(r["errors"] for r in rows) / max(1, ref)
        out["measures_right"] = sum(r["predicted_measures"] == r["true_measures"] for r in rows) / n
        out["ms_read_mean"] = statistics.fmean(r["ms_read"] for r in rows)
        out["flagged"] = sum(r["flagged_measures"] for r in rows) / max(
            1, sum(r["predicted_measures"] for r in rows)
        )
        if all("omr_ned" in r for r in rows):
            out["omr_ned_mean"] = statistics.fmean(r["omr_ned"] for r in rows)
    return out


def table(groups: dict[tuple[str, str], dict], with_model: bool) -> str:
    head = ["engraver", "condition", "pages", "staves", "systems", "measures", "all", "ms/page"]
    if with_model:
        head += ["SER", "measures (model)", "flagged", "read ms/page"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (engraver, condition), s in sorted(groups.items()):
        cells = [
            engraver,
            condition,
            str(s["pages"]),
            f"{s['staves_right']:.0%}",
            f"{s['systems_right']:.0%}",
            f"{s['measure_boxes_right']:.0%}",
            f"{s['all_right']:.0%}",
            f"{s['ms_mean']:.0f}",
        ]
        if with_model:
            cells += [
                f"{s['symbol_error_rate']:.1%}",
                f"{s['measures_right']:.0%}",
                f"{s['flagged']:.1%}",
                f"{s['ms_read_mean']:.0f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--out", type=Path, help="write per-page rows and summaries (JSON)")
    parser.add_argument("--model", type=Path, help="an exported model directory")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--musicdiff", action="store_true", help="also musicdiff's OMR-NED")
    parser.add_argument("--limit", type=int, default=0, help="only the first N pages")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads")
    parser.add_argument("--verbose", action="store_true", help="print every wrong page")
    parser.add_argument(
        "--no-fit", action="store_true", help="do not cut staves into the layout's measures"
    )
    parser.add_argument("--beam", type=int, help="beam width (default: the pipeline's)")
    parser.add_argument(
        "--no-mend",
        action="store_true",
        help="do not mend note values (omr_engine.inference.durations)",
    )
    parser.add_argument(
        "--no-reread",
        action="store_true",
        help="do not read flagged measures again (omr_engine.inference.reread)",
    )
    args = parser.parse_args(argv)
    cv2.setNumThreads(args.threads)
    manifest = json.loads((args.dir / "manifest.json").read_text(encoding="utf-8"))
    pages = manifest["pages"][: args.limit or None]
    pipeline = None
    if args.model:
        from omr_engine.pipeline import PagePipeline

        pipeline = PagePipeline(
            args.model,
            device=args.device,
            beam=args.beam,
            fit_measures=not args.no_fit,
            mend_durations=not args.no_mend,
            reread=not args.no_reread,
        )
    ids = TokenIds()
    rows = []
    for entry in pages:
        path = args.dir / entry["image"]
        start = time.perf_counter()
        page = next(load_pages(path))  # as the app loads it: a photo's light is evened
        load_ms = (time.perf_counter() - start) * 1000.0
        image = page.image
        row = {
            "id": entry["id"],
            "engraver": entry["engraver"],
            "condition": entry["condition"],
            "true_staves": entry["staves"],
            "true_systems": entry["systems"],
            "true_measures": entry["measures"],
            **layout_row(image),
            "load_ms": load_ms,
            "corrections": list(page.corrections),
        }
        if pipeline is not None:
            page = dataclasses.replace(page, dpi=entry.get("dpi", page.dpi))
            row |= read_row(pipeline, page, args.dir / entry["excerpt"], ids, args.musicdiff)
        rows.append(row)
        wrong = (row["staves"], row["systems"], row["measures"]) != (
            row["true_staves"],
            row["true_systems"],
            row["true_measures"],
        )
        if args.verbose and wrong:
            print(
                f"{row['id']}: staves {row['staves']}/{row['true_staves']}, systems "
                f"{row['systems']}/{row['true_systems']}, measures {row['measures']}/"
                f"{row['true_measures']}, skew {row['skew']}"
            )
    if not rows:
        print("no pages", file=sys.stderr)
        return 1
    grouped: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        grouped[(r["engraver"], r["condition"])].append(r)
        grouped[(r["engraver"], "all")].append(r)
    summaries = {key: summarize(g, pipeline is not None) for key, g in grouped.items()}
    print(table(summaries, pipeline is not None))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "manifest": str(args.dir / "manifest.json"),
            "model": str(args.model) if args.model else None,
            "summaries": [{"engraver": e, "condition": c, **s} for (e, c), s in summaries.items()],
            "pages": rows,
        }
        args.out.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
