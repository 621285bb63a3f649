"""The `deepmusic-ocr` command line.

Exit codes: 0 success; 1 the music has invalid measures; 2 unreadable or bad input;
3 encrypted PDF; 4 image too large or empty; 5 an output exists (use --force);
130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
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


EXPORT_SUFFIXES = (".musicxml", ".xml", ".mxl", ".mei", ".mid", ".midi")


def export_score(score, out: Path, force: bool = False) -> None:
    """Write a Score by the output's suffix, atomically, never over an existing file
    unless `force`."""
    from .notation.mei import write_mei
    from .notation.music21_io import write_midi, write_musicxml

    suffix = out.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise CommandError(f"{out}: unknown output format (use {', '.join(EXPORT_SUFFIXES)})")
    if out.exists() and not force:
        raise CommandError(f"{out}: already exists (use --force to overwrite)", EXIT_EXISTS)
    tmp = out.with_name(f".{out.stem}.partial{suffix}")
    writer = {".mei": write_mei, ".mid": write_midi, ".midi": write_midi}.get(
        suffix, write_musicxml
    )
    try:
        writer(score, tmp)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)


def cmd_convert(args: argparse.Namespace) -> int:
    """Read a music file and write it as MusicXML, MXL, MEI or MIDI."""
    score, _ = _read(args.file)
    export_score(score, args.output, args.force)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


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

    p = sub.add_parser("convert", help="convert a music file to MusicXML, MXL, MEI or MIDI")
    p.add_argument("file", type=Path)
    p.add_argument("output", type=Path, help="output file; the suffix picks the format")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=cmd_convert)

    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


#: Other modules add their verbs here (synth, train, transcribe, batch).
EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


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
    sys.exit(main())
