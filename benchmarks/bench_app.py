"""Studio responsiveness: opening a 10-page PDF to the first page on screen, and an edit to
its measure re-engraved on screen. Prints a table.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_app.py [--edits 40]

The PDF is the sample chorale engraved at 300 dpi, ten times. For the edit timings the page's
music is the sample's own score (read from its MusicXML, boxes from the engraving), handed
to the Document as a recognition result: the edit path is the same whatever did the reading.
Everything runs as in the studio: page loading, engraving and the GUI on their own threads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "resources" / "samples" / "bwv66.6.musicxml"


def make_pdf(path: Path, pages: int) -> tuple[Path, object, list]:
    """A `pages`-page PDF of the chorale at 300 dpi, its score and measure boxes."""
    import cv2
    import pymupdf

    from omr_engine.notation.music21_io import read_score
    from omr_engine.synth.engrave import EngraveStyle, engrave

    score, _ = read_score(SAMPLE)
    page = engrave(SAMPLE.read_text(encoding="utf-8"), EngraveStyle(scale=118, page_width=2100))[0]
    boxes = {mb.index: tuple(mb.box) for s in page.systems for mb in s.measures}
    ok, png = cv2.imencode(".png", page.image)
    assert ok
    h, w = page.image.shape
    doc = pymupdf.open()
    for _ in range(pages):
        p = doc.new_page(width=w * 72 / 300, height=h * 72 / 300)
        p.insert_image(p.rect, stream=png.tobytes())
    doc.save(str(path))
    return path, score, [boxes[i] for i in range(len(score.measures))]


def wait(app, condition, timeout: float = 60.0) -> float:
    start = time.perf_counter()
    while not condition():
        app.processEvents()
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the studio did not get there in time")
        time.sleep(0.0005)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--edits", type=int, default=40)
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    from app import commands
    from app.document import PageState
    from app.engine import Engine
    from app.main_window import MainWindow
    from app.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="bench-app-"))
    pdf, score, boxes = make_pdf(tmp / "ten.pdf", args.pages)
    rows: list[tuple[str, str]] = []

    window = MainWindow(Settings(tmp / "s.ini"), engine=Engine(), autosave_dir=tmp / "autosave")
    window.ask_save_changes = lambda: "discard"
    window.resize(1500, 950)
    window.show()
    wait(app, lambda: window.isVisible())
    doc = window.document

    # 1. Open -> first page on screen; -> all pages there.
    start = time.perf_counter()
    window.open_path(pdf)
    wait(app, lambda: window.scan_view.page_index == 0 and window.scan_view.scene().items())
    first = time.perf_counter() - start
    wait(app, lambda: len(doc.pages) == args.pages and not window.loader.busy)
    all_pages = time.perf_counter() - start
    h, w = doc.page(0).image.shape
    rows.append(
        (f"open {args.pages}-page PDF -> first page shown ({w}x{h} px)", f"{first * 1000:.0f} ms")
    )
    rows.append((f"open {args.pages}-page PDF -> all pages loaded", f"{all_pages * 1000:.0f} ms"))

    # 2. A read page on screen: the sample's score with its boxes on this scan.
    import copy

    music = copy.deepcopy(score)
    scale = w / 2478.0
    for i, (m, box) in enumerate(zip(music.measures, boxes, strict=True)):
        m.id = f"p1m{i + 1}"
        m.box = tuple(v * scale for v in box)
    start = time.perf_counter()
    doc.apply_recognition(0, music, {}, doc.page(0).revision)
    doc.set_page_state(0, PageState.READ)
    wait(
        app,
        lambda: (
            window.score_view.lines
            and all(line.shown == line.mei for line in window.score_view.lines)
        ),
    )
    rows.append(
        (
            f"page read -> engraved on screen ({len(window.score_view.lines)} lines)",
            f"{(time.perf_counter() - start) * 1000:.0f} ms",
        )
    )

    # 3. Edit -> the measure engraved again on screen (the real path: command, document,
    #    grammar, MEI, engraving worker, pixmap). Up a semitone each time: never cached.
    measure = music.measures[3]
    doc.select_measure(0, measure.id)
    line_of = {mid: i for i, line in enumerate(window.score_view.lines) for mid in line.measure_ids}

    def line_done() -> bool:
        line = window.score_view.lines[line_of[measure.id]]
        return line.shown == line.mei

    fresh, command_only = [], []
    for _ in range(args.edits):
        start = time.perf_counter()
        window.edit(commands.TransposeCommand, 1)  # always new music: never from the cache
        command_only.append(time.perf_counter() - start)
        wait(app, line_done)
        fresh.append(time.perf_counter() - start)
    undo = []
    for _ in range(min(args.edits, 20)):
        start = time.perf_counter()
        doc.undo_stack.undo()
        wait(app, line_done)
        undo.append(time.perf_counter() - start)

    def stats(values: list[float]) -> str:
        ms = sorted(v * 1000 for v in values)
        return f"median {statistics.median(ms):.0f} ms, p90 {ms[int(0.9 * (len(ms) - 1))]:.0f} ms, max {ms[-1]:.0f} ms"

    rows.append((f"edit -> re-engraved measure on screen (n={len(fresh)})", stats(fresh)))
    rows.append(("  of which: command + validate + MEI (GUI thread)", stats(command_only)))
    rows.append((f"undo -> measure back on screen (cached, n={len(undo)})", stats(undo)))

    # 4. The engraving step alone, for one line.
    engine = doc.engine
    line = window.score_view.lines[line_of[measure.id]]
    times = []
    for _ in range(10):
        start = time.perf_counter()
        engine.engrave_system(line.mei)
        times.append(time.perf_counter() - start)
    rows.append(("engrave one line (Verovio + rasterize + boxes)", stats(times)))

    window.close()
    width = max(len(r[0]) for r in rows)
    print(f"{'step'.ljust(width)}  time")
    print(f"{'-' * width}  {'-' * 40}")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
