"""`deepmusic-ocr batch`: every PDF and image of a folder, in parallel, resumable.

A file whose output already exists is skipped (so a run can be restarted after an
interruption); outputs are written atomically, so an interrupted run leaves no half-written
file; a file that fails is recorded in `batch-failures.json` and the others go on.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from . import cli

INPUT_SUFFIXES = (".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff")
EXIT_SOME_FAILED = 7
FAILURES_FILE = "batch-failures.json"

_pipeline = None  # one model per worker process


def _work(source: str, out: str, report: str, device: str, model: str | None) -> dict:
    global _pipeline
    start = time.time()
    row = {"file": Path(source).name, "status": "done", "pages": 0, "measures": 0, "flagged": 0}
    try:
        if _pipeline is None:
            _pipeline = cli.load_pipeline(Path(model) if model else None, device)
        result = cli.run_transcription(
            [Path(source)],
            Path(out),
            report=Path(report),
            force=True,
            quiet=True,
            pipeline=_pipeline,
        )
        row.update(
            pages=len(result.pages),
            measures=len(result.score.measures),
            flagged=len({d.measure_id for d in result.diagnostics}),
        )
    except cli.CommandError as exc:
        row.update(status="failed", error=str(exc))
    except Exception as exc:  # one bad file must not stop the batch; it is recorded
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    row["seconds"] = round(time.time() - start, 1)
    return row


def run_batch(
    in_dir: Path,
    out_dir: Path,
    workers: int = 1,
    fmt: str = "musicxml",
    device: str = "auto",
    force: bool = False,
    model: Path | None = None,
) -> int:
    """Transcribe a folder; returns the exit code (0, or 7 when some files failed)."""
    if not in_dir.is_dir():
        raise cli.CommandError(f"{in_dir}: not a folder")
    sources = sorted(p for p in in_dir.iterdir() if p.suffix.lower() in INPUT_SUFFIXES)
    if not sources:
        raise cli.CommandError(f"{in_dir}: no PDF or image files in the folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = cli.FORMAT_SUFFIX[fmt]
    rows: list[dict] = []
    todo = []
    for src in sources:
        out = out_dir / f"{src.stem}{suffix}"
        report = out_dir / f"{src.stem}.report.json"
        if out.exists() and not force:
            rows.append({"file": src.name, "status": "skipped (done)"})
            continue
        todo.append((str(src), str(out), str(report), device, str(model) if model else None))
    print(f"{len(sources)} files, {len(rows)} already done, {len(todo)} to read", file=sys.stderr)
    if todo and workers <= 1:
        for n, job in enumerate(todo, 1):  # in this process: no model loaded twice
            rows.append(_work(*job))
            print(f"\r{n}/{len(todo)} files read", end="", file=sys.stderr)
        print(file=sys.stderr)
    elif todo:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max(1, workers), mp_context=context) as pool:
            futures = [pool.submit(_work, *job) for job in todo]
            try:
                for n, fut in enumerate(as_completed(futures), 1):
                    row = fut.result()
                    rows.append(row)
                    print(f"\r{n}/{len(todo)} files read", end="", file=sys.stderr)
            except KeyboardInterrupt:
                pool.shutdown(cancel_futures=True)
                raise
        print(file=sys.stderr)
    failures = [r for r in rows if r["status"] == "failed"]
    failures_path = out_dir / FAILURES_FILE
    if failures:
        tmp = failures_path.with_name(f".{FAILURES_FILE}.partial")
        tmp.write_text(json.dumps(failures, indent=1), encoding="utf-8")
        tmp.replace(failures_path)
    elif failures_path.exists():
        failures_path.unlink()
    print(_table(rows))
    return EXIT_SOME_FAILED if failures else 0


def _table(rows: list[dict]) -> str:
    head = f"{'file':<32} {'status':<16} {'pages':>5} {'measures':>8} {'flagged':>7} {'s':>6}"
    lines = [head, "-" * len(head)]
    for r in sorted(rows, key=lambda r: r["file"]):
        lines.append(
            f"{r['file'][:32]:<32} {r['status'][:16]:<16} {r.get('pages', ''):>5} "
            f"{r.get('measures', ''):>8} {r.get('flagged', ''):>7} {r.get('seconds', ''):>6}"
        )
        if r.get("error"):
            lines.append(f"    {r['error']}")
    return "\n".join(lines)
