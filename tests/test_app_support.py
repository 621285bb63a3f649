"""Helpers for the studio tests: a PDF made from a Verovio-engraved chorale, and a fake
recognizer that "reads" it (the real model may be untrained) with one measure made wrong.

The fake is handed to the studio through the engine facade (`Engine(pipeline_factory=...)`),
the only door the studio has to recognition. Nothing here is shipped.
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from omr_engine.notation.score import Note, Score
from omr_engine.notation.symbols import Duration

SAMPLE = Path(__file__).resolve().parent.parent / "resources" / "samples" / "bwv66.6.musicxml"
PDF_DPI = 150
#: The measure the fake reads wrong (its soprano's first note an eighth instead of a quarter).
BROKEN_MEASURE = 2
BROKEN_MESSAGE = "the staves of this measure differ in length (3 1/2 beats and 4 beats)"


@dataclass(frozen=True)
class Engraved:
    image: np.ndarray
    boxes: list[tuple[float, float, float, float]]  # per measure, engraved-image pixels
    score: Score


@functools.lru_cache(maxsize=1)
def engraved_sample() -> Engraved:
    """The sample chorale engraved on one page, with its score and each measure's box."""
    from omr_engine.notation.music21_io import read_score
    from omr_engine.synth.engrave import EngraveStyle, engrave

    score, _ = read_score(SAMPLE)
    pages = engrave(SAMPLE.read_text(encoding="utf-8"), EngraveStyle(scale=60, page_width=2400))
    assert len(pages) == 1
    page = pages[0]
    boxes = {mb.index: tuple(mb.box) for system in page.systems for mb in system.measures}
    assert len(boxes) == len(score.measures)
    return Engraved(page.image, [boxes[i] for i in range(len(score.measures))], score)


def make_pdf(path: Path, pages: int = 2) -> Path:
    """A PDF of `pages` copies of the engraved chorale, as a scanner would make it."""
    import cv2
    import pymupdf

    image = engraved_sample().image
    ok, png = cv2.imencode(".png", image)
    assert ok
    h, w = image.shape
    doc = pymupdf.open()
    for _ in range(pages):
        page = doc.new_page(width=w * 72 / PDF_DPI, height=h * 72 / PDF_DPI)
        page.insert_image(page.rect, stream=png.tobytes())
    doc.save(str(path))
    doc.close()
    return path


def break_measure(score: Score, index: int = BROKEN_MEASURE) -> None:
    """Make a quarter note an eighth: '3 1/2 beats in a 4/4 measure'."""
    first = score.measures[index].staves[0].voices[0][0]
    assert isinstance(first, Note) and first.duration == Duration("quarter")
    first.duration = Duration("eighth")


@dataclass
class FakeRecognizer:
    """Reads every page as the sample chorale, one measure wrong, boxes where they are on the
    scan. `delay` seconds per system (sleeping in small steps, honouring cancel)."""

    delay: float = 0.0
    systems: int = 3
    calls: list[int] = field(default_factory=list)
    confidence: dict[int, float] = field(default_factory=lambda: {5: 0.3})

    def read_page(self, page, cancel):
        from omr_engine.pipeline import PageResult, Progress

        self.calls.append(page.index)
        sample = engraved_sample()
        for i in range(self.systems):
            yield Progress(i, self.systems, f"page {page.index + 1}: reading system {i + 1}")
            end = time.monotonic() + self.delay
            while time.monotonic() < end:
                cancel.check()
                time.sleep(0.005)
            cancel.check()
        score = copy.deepcopy(sample.score)
        break_measure(score)
        boxes = list(sample.boxes)
        if page.index > 0:  # later pages go on from the first: no pickup measure again
            del score.measures[0], boxes[0]
        sy = page.image.shape[0] / sample.image.shape[0]
        sx = page.image.shape[1] / sample.image.shape[1]
        confidences = {}
        for i, (m, box) in enumerate(zip(score.measures, boxes, strict=True)):
            m.id = f"p{page.index + 1}m{i + 1}"
            m.page = page.index
            m.box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
            confidences[m.id] = self.confidence.get(i, 0.95)
        yield Progress(self.systems, self.systems, f"page {page.index + 1}: done")
        yield PageResult(page.index, score, confidences=confidences)


def fake_engine(recognizer: FakeRecognizer):
    from app.engine import Engine

    return Engine(pipeline_factory=lambda model_dir, device: recognizer)


def test_sample_pdf_has_the_chorale(tmp_path):
    """The helpers themselves: the PDF opens with pymupdf and has the pages asked for."""
    import pymupdf

    pdf = make_pdf(tmp_path / "chorale.pdf", pages=2)
    with pymupdf.open(str(pdf)) as doc:
        assert doc.page_count == 2
    assert len(engraved_sample().boxes) == 10
