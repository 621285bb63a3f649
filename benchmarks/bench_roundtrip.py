"""Round trip, grammar and engraving over the music21 corpus (issue: foundation).

For each piece: source -> Score -> tokens -> Score -> MusicXML -> Score, compare every
measure's tokens (in-vocabulary symbols) with the first Score; validate the original with
the grammar; corrupt random measures and count how many the grammar flags; engrave the
round-trip MEI with Verovio.

    python benchmarks/bench_roundtrip.py --per-format 170 --workers 2 --out docs/roundtrip.json

Pieces are chosen deterministically: core corpus paths sorted, shuffled with --seed, then
the first --per-format of each source format (kern, ABC, MusicXML).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import time
import traceback
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

FORMATS = {"kern": (".krn",), "abc": (".abc",), "musicxml": (".mxl", ".xml", ".musicxml")}


def choose_pieces(per_format: int, seed: int) -> list[tuple[str, str]]:
    from music21 import corpus

    paths = sorted(str(p) for p in corpus.getCorePaths())
    random.Random(seed).shuffle(paths)
    chosen: list[tuple[str, str]] = []
    for fmt, suffixes in FORMATS.items():
        chosen += [(fmt, p) for p in paths if p.endswith(suffixes)][:per_format]
    return chosen


def run_piece(fmt: str, path: str, seed: int) -> dict:
    warnings.simplefilter("ignore")
    import music21

    from omr_engine.notation.grammar import Grammar, validate_score
    from omr_engine.notation.mei import engrave_svg, score_to_mei
    from omr_engine.notation.music21_io import from_music21, load_music21, musicxml_text
    from omr_engine.notation.mutations import MUTATIONS, mutate_measure
    from omr_engine.notation.tokens import score_to_tokens, tokens_by_measure, tokens_to_score

    t0 = time.time()
    out: dict = {"format": fmt, "path": path}
    try:
        source, report = from_music21(load_music21(Path(path)))
    except Exception as exc:
        out["error"] = f"read: {type(exc).__name__}: {str(exc)[:100]}"
        return out
    try:
        tokens = score_to_tokens(source)
        rebuilt = tokens_to_score(tokens, parts=source.parts)
        xml = musicxml_text(rebuilt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            again, _ = from_music21(music21.converter.parse(xml, format="musicxml"))
        a, b = tokens_by_measure(source), tokens_by_measure(again)
        skip = report.unsupported_measures
        checked = [i for i in range(len(a)) if i not in skip]
        same = [i for i in checked if i < len(b) and a[i] == b[i]]
        out.update(
            measures=len(a),
            checked=len(checked),
            same=len(same),
            unsupported=sorted(skip),
            unsupported_reasons=[r for _, r in report.unsupported],
        )
        diffs = [i for i in checked if i not in set(same)]
        out["first_diff"] = (
            [" ".join(a[diffs[0]])[:300], " ".join(b[diffs[0]])[:300] if diffs[0] < len(b) else ""]
            if diffs
            else None
        )
        diagnostics = validate_score(source)
        flagged = {d.measure for d in diagnostics}
        out["diagnosed"] = len(flagged)
        out["diagnostics"] = [d.message for d in diagnostics][:20]
        # mutations: on measures the grammar accepts, away from unsupported ones
        grammar = Grammar()
        rng = random.Random(f"{seed}:{path}")
        clean = [i for i in checked if i not in flagged]
        tried = caught = 0
        missed: list[str] = []
        for i in rng.sample(clean, min(6, len(clean))):
            kind = MUTATIONS[tried % len(MUTATIONS)]
            bad = mutate_measure(a[i], kind, rng)
            if bad is None:
                continue
            seq = [t for j, m in enumerate(a) for t in (bad if j == i else m)]
            found = {d.measure for d in grammar.validate_tokens(seq)}
            tried += 1
            if i in found:
                caught += 1
            else:
                missed.append(kind)
        out.update(mutated=tried, caught=caught, missed=missed)
        svgs = engrave_svg(score_to_mei(rebuilt))
        out["engraved_pages"] = len(svgs)
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        out["trace"] = traceback.format_exc()[-600:]
    out["seconds"] = round(time.time() - t0, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-format", type=int, default=170)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    pieces = choose_pieces(args.per_format, args.seed)
    results: list[dict] = []
    t0 = time.time()
    if args.workers > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.workers, mp_context=context, max_tasks_per_child=20) as pool:
            futures = [pool.submit(run_piece, fmt, p, args.seed) for fmt, p in pieces]
            done = (fut.result() for fut in as_completed(futures))
            _collect(done, results, len(pieces), t0)
    else:
        _collect((run_piece(fmt, p, args.seed) for fmt, p in pieces), results, len(pieces), t0)
    summarize(results, time.time() - t0)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


def _collect(done, results: list[dict], total: int, t0: float) -> None:
    for n, result in enumerate(done, 1):
        results.append(result)
        if n % 25 == 0:
            print(f"{n}/{total} pieces, {time.time() - t0:.0f} s", flush=True)


def summarize(results: list[dict], seconds: float) -> None:
    ok = [r for r in results if "error" not in r]
    print(f"\npieces: {len(results)} ({len(ok)} completed) in {seconds:.0f} s")
    print(
        f"{'format':<10}{'pieces':>7}{'measures':>10}{'round trip':>12}{'no diag':>10}{'caught':>10}"
    )
    for fmt in [*FORMATS, "all"]:
        rs = [r for r in ok if fmt in ("all", r["format"])]
        checked = sum(r["checked"] for r in rs)
        same = sum(r["same"] for r in rs)
        measures = sum(r["measures"] for r in rs)
        diag = sum(r["diagnosed"] for r in rs)
        mutated = sum(r["mutated"] for r in rs)
        caught = sum(r["caught"] for r in rs)
        print(
            f"{fmt:<10}{len(rs):>7}{measures:>10}{same / max(checked, 1):>12.2%}"
            f"{1 - diag / max(measures, 1):>10.2%}{caught / max(mutated, 1):>10.2%}"
        )
    errors = Counter(r["error"].split(":")[0] for r in results if "error" in r)
    print("errors:", dict(errors))
    print("unsupported:", Counter(x for r in ok for x in r["unsupported_reasons"]).most_common(8))
    print(
        "diagnostics:",
        Counter(m.split("(")[0][:45] for r in ok for m in r["diagnostics"]).most_common(8),
    )
    print("missed mutations:", Counter(m for r in ok for m in r["missed"]))
    print("engraved:", sum(1 for r in ok if r.get("engraved_pages")), "of", len(ok))


if __name__ == "__main__":
    main()
