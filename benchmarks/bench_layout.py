"""Time page-layout analysis (and cropping) on engraved pages; prints a table.

    python benchmarks/bench_layout.py [--repeat 5] [--threads 1]

Pages are page 1 of music21 corpus pieces engraved by Verovio on A4 and rasterized with
resvg at the resolution shown; "scan" rows add a 3 degree rotation, blur, noise and JPEG
compression. Times are the median of ``--repeat`` runs of ``analyze_page`` on one thread
(OpenCV's pool set to ``--threads``), wall-clock and CPU, and of cutting every system crop.
"""

from __future__ import annotations

import argparse
import base64
import io
import platform
import re
import statistics
import time

import cv2
import music21
import numpy as np
import resvg_py
import verovio
from PIL import Image

from omr_engine.layout import analyze_page, rotate, system_crop

PIECES = [
    ("bach/bwv66.6", "chorale, 4 staves/system"),
    ("joplin/maple_leaf_rag", "piano rag, grand staff"),
    ("schumann_robert/opus41no1/movement2", "string quartet"),
    ("mozart/k545/movement1_exposition", "piano sonata"),
]
WIDTHS = {150: 1240, 300: 2480, 600: 4960}  # A4 width in pixels at each dpi


def engrave(piece: str, width_px: int) -> np.ndarray:
    tk = verovio.toolkit()
    tk.setOptions({"pageWidth": 2100, "pageHeight": 2970, "breaks": "auto"})
    with open(music21.corpus.getWork(piece), "rb") as f:
        tk.loadZipDataBase64(base64.b64encode(f.read()).decode())
    svg = re.sub(r"<title[^>]*>[^<]*</title>", "", tk.renderToSVG(1))
    png = resvg_py.svg_to_bytes(
        svg_string=svg, background="#ffffff", width=width_px, serif_family="DejaVu Serif"
    )
    return np.array(Image.open(io.BytesIO(bytes(png))).convert("L"))


def scan(image: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    out = rotate(cv2.GaussianBlur(image, (0, 0), 1.0), 3.0).astype(np.float32)
    out = np.clip(out + rng.normal(0, 12, out.shape), 0, 255).astype(np.uint8)
    _, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 60])
    return cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE)


def median_ms(fn, repeat: int) -> tuple[float, float]:
    """Median wall-clock and CPU milliseconds (CPU time is what a shared machine does not
    inflate)."""
    fn()  # warm up
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall) * 1000.0, statistics.median(cpu) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    verovio.enableLog(verovio.LOG_ERROR)

    cases: list[tuple[str, int, str, np.ndarray]] = []
    for piece, what in PIECES:
        for dpi in (150, 300):
            cases.append((what, dpi, "clean", engrave(piece, WIDTHS[dpi])))
    rag300 = next(c[3] for c in cases if c[0].startswith("piano rag") and c[1] == 300)
    cases.append(("piano rag, grand staff", 300, "scan", scan(rag300)))
    cases.append(
        ("piano rag, grand staff", 600, "clean", engrave("joplin/maple_leaf_rag", WIDTHS[600]))
    )

    print(
        f"analyze_page, median of {args.repeat} runs, OpenCV threads={args.threads}, "
        f"{platform.processor() or platform.machine()}"
    )
    header = (
        f"{'page':<26} {'dpi':>4} {'kind':<6} {'pixels':>11} {'staves':>6} {'systems':>7} "
        f"{'measures':>8} {'skew':>6} {'wall ms':>7} {'cpu ms':>6} {'crops ms':>8}"
    )
    print(header)
    print("-" * len(header))
    for what, dpi, kind, image in cases:
        layout = analyze_page(image)
        wall, cpu = median_ms(lambda image=image: analyze_page(image), args.repeat)
        crops, _ = median_ms(
            lambda image=image, layout=layout: [
                system_crop(image, layout, i) for i in range(len(layout.systems))
            ],
            args.repeat,
        )
        staves = sum(len(s.staves) for s in layout.systems)
        measures = sum(len(s.measure_boxes) for s in layout.systems)
        h, w = image.shape
        print(
            f"{what:<26} {dpi:>4} {kind:<6} {f'{w}x{h}':>11} {staves:>6} "
            f"{len(layout.systems):>7} {measures:>8} {layout.skew_degrees:>6.2f} {wall:>7.0f} {cpu:>6.0f} "
            f"{crops:>8.1f}"
        )


if __name__ == "__main__":
    main()
