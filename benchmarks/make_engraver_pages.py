"""Pages engraved by LilyPond and MuseScore 3 from music the model never trained on.

    python benchmarks/make_engraver_pages.py [OUT] [--pages 30] [--engravers lilypond musescore]

Pieces are files of the validation split (``split_files("val")``; for an ABC book its
first tune), taken round-robin over the corpus collections so that chorales, masses,
fiddle tunes, quartets, madrigals and songs all appear. A piece is kept when its excerpt
reads with nothing left out (``ReadReport.unsupported`` empty), prints no mark the tokens
leave out (``printable``), has no multi-measure rest, passes the grammar, and music21's
MusicXML of the excerpt prints the same notes measure by measure (``source_mismatch``).

Each page is one excerpt: the first N measures of the piece, cut with music21 so that the
engraved file keeps the title, part names, lyrics, dynamics and slurs (which our tokens
leave out). N starts at about 100 staff-measures and is searched for the longest excerpt
that the engraver puts on one A4 page (within an eighth, six engravings at most): after a
spill N is scaled by the share of staves that landed on page 1, then bisected between
what fitted and what spilled. When a measure does not pass the checks above, N stops
before it (at least 4 measures).

Files written under OUT (default /work/data/engravers):

- ``xml/{piece}.{engraver}.musicxml``: the ground truth, our Score of the excerpt written
  with ``write_musicxml`` (what a transcription is compared with);
- ``src/{piece}.{engraver}.musicxml``: what was engraved (music21's MusicXML of the excerpt);
- ``{engraver}/{piece}.pdf`` and ``{engraver}/{piece}.png``: the engraving and its page
  rasterised by MuPDF at ``--dpi`` (300) in grayscale;
- ``{engraver}/{piece}.degraded.png``: the page through ``omr_engine.synth.degrade.apply``
  with ``sample_degradation(strength=1)`` (scan or phone photo: binarization, blur, noise,
  JPEG, resampling down to half the resolution, show-through, perspective, curl), its
  rotation replaced by one drawn from -5..5 degrees; parameters and seed are in the manifest;
- ``manifest.json``: one entry per page (clean and degraded), see ``page_entry``.

How the truth is obtained, all from the engraver's PDF (vector drawings, not the image).
Staves: every horizontal stroke drawn as a line or a thin rectangle is collected, and five
with the same x-extent, evenly spaced, make a staff (``pdf_staves``). Systems: staves on
the page divided by the excerpt's staves per system (neither engraver hides empty staves
by default); a page where that does not divide evenly is dropped. Measures: barlines are
vertical strokes covering a staff (``pdf_measures``); every staff of a system must show the
same count, and the page's total must equal the excerpt's measures (one excerpt is one
page), else the page is dropped (LilyPond re-bars irregular measures by the time
signature, and then the engraving is not the excerpt's barring).

Tools: ``musicxml2ly`` + ``lilypond`` (Debian's lilypond) and ``mscore3`` (Debian's
musescore3, run with QT_QPA_PLATFORM=offscreen); an engraver that is not installed is
skipped with a message.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omr_engine.notation.music21_io import NotationError, from_music21, write_musicxml  # noqa: E402
from omr_engine.synth.degrade import apply, sample_degradation  # noqa: E402
from omr_engine.synth.engravers import (  # noqa: E402, F401 (the tests reach them here)
    ENGRAVERS,
    MIN_MEASURES,
    BadExcerpt,
    available,
    cut,
    engrave_pdf,
    engraver_version,
    load_piece,
    pdf_measures,
    pdf_staves,
    rasterize,
)
from omr_engine.synth.sources import split_files  # noqa: E402

DEFAULT_OUT = Path("/work/data/engravers")
TARGET_STAFF_MEASURES = 100  # a first guess at what fills a page; shrunk when it spills
MAX_TRIES = 6
MAX_ROTATION = 5.0  # degrees, the "robust to rotation up to 5 degrees"


# ---------------------------------------------------------------- pieces


def candidate_files() -> list[str]:
    """Validation files, round-robin over collections (each collection in file order)."""
    by_collection: dict[str, list[str]] = {}
    for f in split_files("val"):
        by_collection.setdefault(f.split("/")[0], []).append(f)
    order = sorted(by_collection, key=lambda c: (-len(by_collection[c]), c))
    out = []
    while any(by_collection.values()):
        for c in order:
            if by_collection[c]:
                out.append(by_collection[c].pop(0))
    return out


def slug(relpath: str) -> str:
    stem = relpath.rsplit(".", 1)[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem.replace("/", "__"))


# ---------------------------------------------------------------- one page


def make_page(
    parsed, measures: int, engraver: str, name: str, out: Path, dpi: float, log
) -> dict | None:
    """Engrave the largest excerpt that fits one page (within an eighth, in at most
    ``MAX_TRIES`` engravings); writes truth, source, PDF and PNG. Returns the page's
    truth, or None."""
    staff_count = len(parsed.parts)
    limit = measures  # the longest excerpt that may pass the checks
    count = min(limit, max(MIN_MEASURES, round(TARGET_STAFF_MEASURES / max(1, staff_count))))
    fits: tuple | None = None  # (count, score, xml, pdf bytes, image, staves) that fit
    spills: int | None = None  # the shortest excerpt that took more than a page
    pdf = out / engraver / f"{name}.pdf"
    src = out / "src" / f"{name}.{engraver}.musicxml"
    src.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(MAX_TRIES):
        try:
            _, score, xml = cut(parsed, count)
        except BadExcerpt as e:
            log(f"  {engraver}: {count} measures: {e}")
            if e.first_bad is None or e.first_bad < MIN_MEASURES:
                break
            limit = e.first_bad  # stop before the measure at fault
            spills = spills if spills is not None and spills <= limit else None
        else:
            src.write_text(xml, encoding="utf-8")
            try:
                engrave_pdf(engraver, src, pdf)
                image, pages, staves, printed = rasterize(pdf, dpi)
            except RuntimeError as e:
                log(f"  {engraver}: {e}")
                break
            if pages == 1:
                fits = (count, score, xml, pdf.read_bytes(), image, staves, printed)
            else:
                spills = count
                # Scale by the share of staves on page 1 (systems hold about as many
                # measures); the next try comes from that when nothing fitted yet.
                share = staves[0] / max(1, sum(staves))
                estimate = int(count * share * 0.95)
                log(f"  {engraver}: {count} measures took {pages} pages")
        lower = fits[0] + 1 if fits else MIN_MEASURES
        upper = spills - 1 if spills is not None else limit
        if lower > upper or (fits and upper - fits[0] <= max(1, fits[0] // 8)):
            break
        if fits is None:
            count = max(lower, min(upper, estimate if spills is not None else upper))
        elif spills is None:
            count = min(upper, round(fits[0] * 1.5))
        else:
            count = (lower + upper) // 2
    if fits is None:
        log(f"  {engraver}: no excerpt fits one page")
        return None
    _, score, xml, pdf_bytes, image, staves, printed = fits
    src.write_text(xml, encoding="utf-8")
    pdf.write_bytes(pdf_bytes)
    per_system = score.staff_count
    if staves[0] == 0 or staves[0] % per_system:
        log(f"  {engraver}: {staves[0]} staves in the PDF, {per_system} per system: dropped")
        return None
    systems = [printed[i : i + per_system] for i in range(0, len(printed), per_system)]
    if any(len(set(s)) > 1 for s in systems):
        log(f"  {engraver}: the staves of a system show different measures {systems}: dropped")
        return None
    if sum(s[0] for s in systems) != len(score.measures):
        log(
            f"  {engraver}: {sum(s[0] for s in systems)} measures printed, the excerpt has "
            f"{len(score.measures)} (the engraver barred it otherwise): dropped"
        )
        return None
    truth = out / "xml" / f"{name}.{engraver}.musicxml"
    truth.parent.mkdir(parents=True, exist_ok=True)
    write_musicxml(score, truth)
    png = out / engraver / f"{name}.png"
    cv2.imwrite(str(png), image)
    return {
        "engraver": engraver,
        "excerpt": truth.relative_to(out).as_posix(),
        "engraved_source": src.relative_to(out).as_posix(),
        "pdf": pdf.relative_to(out).as_posix(),
        "staves_per_system": per_system,
        "staves": staves[0],
        "systems": staves[0] // per_system,
        "measures": len(score.measures),
        "measures_per_system": [s[0] for s in systems],
        "measures_of_piece": measures,
        "clean_png": png,
        "image_shape": list(image.shape),
    }


def degrade_page(image: np.ndarray, seed: int) -> tuple[np.ndarray, dict]:
    """The project's degradation at full strength, rotated by up to ``MAX_ROTATION``."""
    rng = np.random.default_rng(seed)
    d = sample_degradation(rng, 1.0)
    d = dataclasses.replace(d, rotation_deg=float(rng.uniform(-MAX_ROTATION, MAX_ROTATION)))
    degraded, _ = apply(image, d, seed)
    return degraded, dataclasses.asdict(d)


def page_entry(info: dict, piece: str, title: str, condition: str, image: Path, dpi: float):
    """One manifest entry. Paths are relative to the manifest's folder; ``dpi`` is the
    resolution of the image as saved (a degraded page may have been resampled)."""
    keep = {k: v for k, v in info.items() if k not in ("clean_png", "image_shape")}
    return {
        "id": f"{info['engraver']}/{Path(image).stem}",
        "piece": piece,
        "title": title,
        "condition": condition,
        "image": image.as_posix(),
        "dpi": round(dpi, 1),
        **keep,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--pages", type=int, default=30, help="clean pages per engraver")
    parser.add_argument("--engravers", nargs="+", choices=ENGRAVERS, default=list(ENGRAVERS))
    parser.add_argument("--dpi", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0, help="for the degradations")
    parser.add_argument("--no-degraded", action="store_true")
    parser.add_argument(
        "--exclude",
        type=Path,
        action="append",
        default=[],
        help="a manifest.json whose pieces are left out (to make a second, fresh set)",
    )
    args = parser.parse_args(argv)
    excluded = {
        page["piece"]
        for manifest in args.exclude
        for page in json.loads(manifest.read_text(encoding="utf-8"))["pages"]
    }
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    engravers = [e for e in args.engravers if available(e)]
    for e in set(args.engravers) - set(engravers):
        print(f"{e} is not installed: skipped", file=sys.stderr)
    if not engravers:
        return 1

    def log(msg: str) -> None:
        print(msg, flush=True)

    entries: list[dict] = []
    made = dict.fromkeys(engravers, 0)
    skipped: dict[str, str] = {}
    start = time.perf_counter()
    for relpath in candidate_files():
        if all(made[e] >= args.pages for e in engravers):
            break
        if relpath in excluded:
            continue
        log(f"{relpath}")
        try:
            parsed = load_piece(relpath)
            score, report = from_music21(parsed)
        except (NotationError, Exception) as e:  # music21 raises many types on odd files
            skipped[relpath] = f"unreadable: {type(e).__name__}"
            log(f"  unreadable ({type(e).__name__})")
            continue
        title = (parsed.metadata.title if parsed.metadata else "") or ""
        name = slug(relpath)
        for engraver in engravers:
            if made[engraver] >= args.pages:
                continue
            info = make_page(parsed, len(score.measures), engraver, name, out, args.dpi, log)
            if info is None:
                skipped[f"{relpath} ({engraver})"] = "see log"
                continue
            made[engraver] += 1
            png = Path(info["clean_png"])
            entries.append(
                page_entry(info, relpath, title, "clean", png.relative_to(out), args.dpi)
            )
            log(
                f"  {engraver}: {info['measures']} measures, {info['staves']} staves, "
                f"{info['systems']} systems"
            )
            if args.no_degraded:
                continue
            seed = args.seed * 100_003 + len(entries)
            image = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
            degraded, params = degrade_page(image, seed)
            dpng = png.with_name(f"{png.stem}.degraded.png")
            cv2.imwrite(str(dpng), degraded)
            dpi = args.dpi * (1.0 if params["resample_restore"] else params["resample"])
            entry = page_entry(info, relpath, title, "degraded", dpng.relative_to(out), dpi)
            entry["degradation"] = {"seed": seed, **params}
            entries.append(entry)
    manifest = {
        "made_by": "benchmarks/make_engraver_pages.py",
        "dpi": args.dpi,
        "engravers": {e: engraver_version(e) for e in engravers},
        "pages": entries,
        "skipped": skipped,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    log(
        f"{len(entries)} pages ({', '.join(f'{e}: {n} clean' for e, n in made.items())}) "
        f"in {time.perf_counter() - start:.0f} s -> {out / 'manifest.json'}"
    )
    return 0 if all(n >= args.pages for n in made.values()) else 2


if __name__ == "__main__":
    sys.exit(main())
