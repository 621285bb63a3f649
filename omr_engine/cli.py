"""The `deepmusic-ocr` command line.

Exit codes: 0 success; 1 the music has invalid measures; 2 unreadable or bad input;
3 encrypted PDF; 4 image too large or empty; 5 an output exists (use --force);
130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__

EXIT_INVALID = 1
EXIT_BAD_INPUT = 2
EXIT_EXISTS = 5
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """An error the user caused; printed as one line, exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _read(path: Path):
    from .notation.music21_io import NotationError, read_score

    try:
        return read_score(path)
    except NotationError as exc:
        raise CommandError(str(exc)) from exc


def cmd_validate(args: argparse.Namespace) -> int:
    """Print every invalid measure with its reason; exit 1 if there is any."""
    from .notation.grammar import validate_score

    score, report = _read(args.file)
    diagnostics = validate_score(score)
    for d in diagnostics:
        print(f"{args.file}: {d}")
    for index, reason in report.unsupported:
        print(f"{args.file}: measure {score.measures[index].number}: not checked ({reason})")
    measures = len({d.measure for d in diagnostics})
    print(
        f"{args.file}: {len(score.measures)} measures, {score.staff_count} staves, "
        f"{measures} invalid",
        file=sys.stderr,
    )
    return EXIT_INVALID if diagnostics else 0


def cmd_tokens(args: argparse.Namespace) -> int:
    """Print the token sequence of a music file, one measure per line."""
    from .notation.tokens import tokens_by_measure

    score, _ = _read(args.file)
    for measure, tokens in zip(score.measures, tokens_by_measure(score), strict=True):
        print(f"{measure.number:>4}  {' '.join(tokens)}")
    return 0


EXPORT_SUFFIXES = (".musicxml", ".xml", ".mxl", ".mei", ".mid", ".midi", ".pdf")


def export_score(score, out: Path, force: bool = False) -> None:
    """Write a Score by the output's suffix, atomically, never over an existing file
    unless `force`. PDF is engraved by Verovio, as vector graphics."""
    from .notation.mei import EngravingError, write_mei
    from .notation.music21_io import write_midi, write_musicxml
    from .notation.pdf import PdfError, write_pdf

    suffix = out.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise CommandError(f"{out}: unknown output format (use {', '.join(EXPORT_SUFFIXES)})")
    if out.exists() and not force:
        raise CommandError(f"{out}: already exists (use --force to overwrite)", EXIT_EXISTS)
    tmp = out.with_name(f".{out.stem}.partial{suffix}")
    writer = {".mei": write_mei, ".mid": write_midi, ".midi": write_midi, ".pdf": write_pdf}.get(
        suffix, write_musicxml
    )
    try:
        writer(score, tmp)
        tmp.replace(out)
    except (EngravingError, PdfError) as exc:
        raise CommandError(f"{out}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def cmd_convert(args: argparse.Namespace) -> int:
    """Read a music file and write it as MusicXML, MXL, MEI, MIDI or PDF."""
    score, _ = _read(args.file)
    export_score(score, args.output, args.force)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


FORMAT_SUFFIX = {
    "musicxml": ".musicxml",
    "mxl": ".mxl",
    "mei": ".mei",
    "midi": ".mid",
    "pdf": ".pdf",
}
#: Not PDF: a batch's inputs are PDFs, and an output in the input folder would be read as one.
BATCH_FORMATS = sorted(set(FORMAT_SUFFIX) - {"pdf"})
EXIT_NO_MUSIC = 6


def _progress_line(label: str, done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / max(total, 1))
    return f"\r{label:<28.28} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def _page_inputs(paths: list[Path], pages: set[int] | None):
    from .pages import InputError, load_pages

    for path in paths:
        try:
            yield from load_pages(path, pages)
        except InputError as exc:
            raise CommandError(str(exc), getattr(exc, "exit_code", EXIT_BAD_INPUT)) from exc


def _report(transcription) -> dict:
    by_measure: dict[str, list[str]] = {}
    for d in transcription.diagnostics:
        by_measure.setdefault(d.measure_id, []).append(d.message)
    return {
        "pages": [
            {
                "page": r.page_index + 1,
                "skipped": r.skipped or None,
                "measures": 0 if r.score is None else len(r.score.measures),
            }
            for r in transcription.pages
        ],
        "measures": [
            {
                "id": m.id,
                "number": m.number,
                "page": None if m.page is None else m.page + 1,
                "box": None if m.box is None else [round(v, 1) for v in m.box],
                "confidence": round(transcription.confidences.get(m.id, 1.0), 4),
                "diagnostics": by_measure.get(m.id, []),
            }
            for m in transcription.score.measures
        ],
    }


def load_pipeline(model: Path | None = None, device: str = "auto", beam: int | None = None):
    """The page pipeline with its model loaded; a bad model is a one-line error."""
    from .pipeline import PagePipeline

    try:
        return PagePipeline(model, device=device, beam=beam)
    except (OSError, RuntimeError, ValueError) as exc:
        raise CommandError(f"cannot load the model: {exc}") from exc


def run_transcription(
    inputs: list[Path],
    output: Path,
    *,
    pages: set[int] | None = None,
    device: str = "auto",
    model: Path | None = None,
    beam: int | None = None,
    force: bool = False,
    report: Path | None = None,
    quiet: bool = False,
    pipeline=None,
):
    """Read INPUTs into one score and export it; returns the Transcription."""
    import json

    from .pipeline import Cancelled, transcribe

    if output.exists() and not force:
        raise CommandError(f"{output}: already exists (use --force to overwrite)", EXIT_EXISTS)
    if report is not None and report.exists() and not force:
        raise CommandError(f"{report}: already exists (use --force to overwrite)", EXIT_EXISTS)
    if pipeline is None:
        pipeline = load_pipeline(model, device, beam)

    def show(page, event) -> None:
        if not quiet:
            label = f"{page.source.name} p{page.index + 1}"
            end = "\n" if event.done == event.total else ""
            print(_progress_line(label, event.done, event.total), end=end, file=sys.stderr)

    try:
        result = transcribe(_page_inputs(inputs, pages), pipeline, on_progress=show)
    except Cancelled as exc:
        raise CommandError("cancelled", EXIT_INTERRUPTED) from exc
    if not result.score.measures:
        names = ", ".join(p.name for p in inputs)
        raise CommandError(f"{names}: no music found (no staves on any page)", EXIT_NO_MUSIC)
    export_score(result.score, output, force)
    if report is not None:
        tmp = report.with_name(f".{report.name}.partial")
        tmp.write_text(json.dumps(_report(result), indent=1), encoding="utf-8")
        tmp.replace(report)
    return result


def _summary(result) -> str:
    flagged = sorted({(d.measure_id, d.measure_number) for d in result.diagnostics})
    pages = len(result.pages)
    skipped = [r.page_index + 1 for r in result.pages if r.score is None]
    lines = [
        f"{pages} page{'s' * (pages != 1)}, {len(result.score.measures)} measures, "
        f"{len(flagged)} flagged" + (f", skipped pages without music: {skipped}" if skipped else "")
    ]
    page_of = {m.id: m.page for m in result.score.measures}
    for measure_id, number in flagged:
        reasons = "; ".join(d.message for d in result.diagnostics if d.measure_id == measure_id)
        lines.append(f"  page {page_of[measure_id] + 1}, measure {number}: {reasons}")
    return "\n".join(lines)


def cmd_transcribe(args: argparse.Namespace) -> int:
    """Read PDFs/images into one score, export it, print a summary of flagged measures."""
    from .pages import parse_page_ranges

    output = args.output
    if args.format:
        output = output.with_suffix(FORMAT_SUFFIX[args.format]) if not output.suffix else output
    try:
        pages = parse_page_ranges(args.pages) if args.pages else None
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    result = run_transcription(
        args.inputs,
        output,
        pages=pages,
        device=args.device,
        model=args.model,
        beam=args.beam,
        force=args.force,
        report=args.report,
    )
    print(_summary(result))
    print(f"wrote {output}" + (f" and {args.report}" if args.report else ""), file=sys.stderr)
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    """Transcribe every PDF and image in a folder; resumable; failures do not stop the rest."""
    from .batch import run_batch

    return run_batch(
        args.in_dir, args.out_dir, args.workers, args.format, args.device, args.force, args.model
    )


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepmusic-ocr",
        description="Read printed sheet music into musical events and check them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check every measure of a music file against the grammar")
    p.add_argument("file", type=Path, help="MusicXML, MXL, kern or ABC file")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("tokens", help="print the token sequence of a music file")
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_tokens)

    p = sub.add_parser("convert", help="convert a music file to MusicXML, MXL, MEI, MIDI or PDF")
    p.add_argument("file", type=Path)
    p.add_argument("output", type=Path, help="output file; the suffix picks the format")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("transcribe", help="read PDFs or images of sheet music into a score")
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="PDF, PNG, JPEG or TIFF")
    p.add_argument("-o", "--output", type=Path, required=True, help="output file")
    p.add_argument(
        "--format", choices=sorted(FORMAT_SUFFIX), help="output format (default: by suffix)"
    )
    p.add_argument("--pages", help="pages to read, e.g. 1-3,5 (default: all)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--model", type=Path, default=None, help="model directory (default: shipped)")
    p.add_argument(
        "--beam",
        type=_positive,
        help="beam width (1 = greedy; default: the model's, 4 for the shipped model; best "
        "path for a model read by its CTC head alone)",
    )
    p.add_argument("--report", type=Path, help="write a JSON report of every measure")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser("batch", help="transcribe every PDF and image in a folder")
    p.add_argument("in_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--workers", type=_positive, default=1)
    p.add_argument("--format", choices=BATCH_FORMATS, default="musicxml")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--force", action="store_true", help="redo files that are already done")
    p.set_defaults(func=cmd_batch)

    from .model.cli import register as register_training
    from .synth.cli import register as register_synth

    for register in (register_synth, register_training):
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"deepmusic-ocr: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("deepmusic-ocr: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    # Run as `python -m omr_engine.cli`, this file is `__main__`, while the verbs import
    # `omr_engine.cli` and raise its CommandError: run the package's main, which catches it.
    from omr_engine import cli as package_cli

    sys.exit(package_cli.main())
