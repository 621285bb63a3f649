"""The studio's one door to the engine: loading, recognition, grammar, engraving and export.

Everything the app asks of `omr_engine` (and of Verovio, which the engine wraps) goes through
`Engine`, so the rest of the studio can be read without knowing the engine's layout, and a
test can hand the studio a different recognizer (`pipeline_factory`) without touching Qt.
Nothing here imports Qt: the methods that run in worker threads are plain generators.

Measures as text (the token editor, project files) are `omr_engine.notation.measure_text`;
PDF export is `omr_engine.notation.pdf`. The edit operations the undo commands run
(`edits`, with `NoteAddress` and `EditError`) and the ids the engraving carries
(`event_id`, `parse_event_id`, `SvgGeometry`) are handed on from the engine as they are.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from omr_engine.notation import edits as edits
from omr_engine.notation import measure_text as text_form
from omr_engine.notation.edits import EditError as EditError
from omr_engine.notation.edits import NoteAddress as NoteAddress
from omr_engine.notation.grammar import Diagnostic, Grammar
from omr_engine.notation.mei_writer import event_id as event_id
from omr_engine.notation.mei_writer import measures_to_mei
from omr_engine.notation.mei_writer import parse_event_id as parse_event_id
from omr_engine.notation.score import (
    Measure,
    Part,
    Score,
    StaffContext,
    StaffMeasure,
    apply_changes,
)
from omr_engine.notation.svg_geometry import SvgGeometry as SvgGeometry
from omr_engine.notation.svg_geometry import svg_geometry
from omr_engine.notation.tokens import measure_tokens

#: What the file dialogs offer (the page loader decides what it can really read).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
INPUT_SUFFIXES = (".pdf", *IMAGE_SUFFIXES)

#: Verovio options for the studio's engraving: one system per call, justified to a fixed
#: width so the systems of a page line up, with boxes for every element (hit-testing).
SYSTEM_OPTIONS: dict[str, Any] = {
    "scale": 50,
    "pageWidth": 2200,
    "breaks": "auto",
    "minLastJustification": 0,
    "adjustPageHeight": True,
    "svgBoundingBoxes": True,
    "header": "none",
    "footer": "none",
    "pageMarginLeft": 20,
    "pageMarginRight": 20,
    "pageMarginTop": 30,
    "pageMarginBottom": 30,
}


class EngineError(Exception):
    """Something the user can fix or should know about, said in one sentence."""


class Recognizer(Protocol):
    """What the studio needs from a page reader (`omr_engine.pipeline.PagePipeline`)."""

    def read_page(self, page: Any, cancel: Any) -> Iterator[Any]: ...


PipelineFactory = Callable[[Path | None, str], Recognizer]


def _default_pipeline(model_dir: Path | None, device: str) -> Recognizer:
    from omr_engine.pipeline import PagePipeline

    return PagePipeline(model_dir=model_dir, device=device)


@dataclass
class EngravedSystem:
    """One engraved line: grayscale image (255 = paper) and where its measures and notes are."""

    image: np.ndarray
    geometry: SvgGeometry


@dataclass(frozen=True)
class TextCheck:
    """The outcome of reading a measure's token text."""

    measure: Measure | None
    errors: list[str]  # the text cannot be read (unknown token, no barline, ...)
    diagnostics: list[Diagnostic]  # it reads, but is not valid music here


class Engine:
    """Facade over `omr_engine`. Create one per studio; it is cheap until used."""

    def __init__(
        self,
        model_dir: Path | None = None,
        device: str = "auto",
        pipeline_factory: PipelineFactory | None = None,
    ) -> None:
        self.model_dir = model_dir
        self.device = device
        self._pipeline_factory = pipeline_factory or _default_pipeline
        self._pipeline: Recognizer | None = None
        self._pipeline_lock = threading.Lock()
        self._grammar: Grammar | None = None
        self._local = threading.local()

    # ------------------------------------------------------------ pages

    def load_pages(self, path: Path) -> Iterator[Any]:
        """The pages of a PDF or image, one at a time (raises `EngineError` on bad input)."""
        from omr_engine.pages import InputError, load_pages

        try:
            yield from load_pages(Path(path))
        except InputError as e:
            raise EngineError(str(e)) from e

    def make_page(self, image: np.ndarray, dpi: float, source: str, index: int) -> Any:
        """A page object for the recognizer from what a project file stores."""
        from omr_engine.pages import Page

        return Page(image=image, dpi=dpi, source=Path(source), index=index)

    # ------------------------------------------------------------ recognition

    def configure(self, model_dir: Path | None, device: str) -> None:
        """New model or device: the next recognition loads the pipeline again."""
        with self._pipeline_lock:
            if (model_dir, device) != (self.model_dir, self.device):
                self.model_dir, self.device = model_dir, device
                self._pipeline = None

    def new_cancel_token(self) -> Any:
        from omr_engine.pipeline import CancelToken

        return CancelToken()

    def read_page(self, page: Any, cancel: Any) -> Iterator[Any]:
        """Recognize one page (run in a worker): yields `Progress` reports, then a
        `PageResult`. Loads the model on first use."""
        with self._pipeline_lock:
            if self._pipeline is None:
                try:
                    self._pipeline = self._pipeline_factory(self.model_dir, self.device)
                except Exception as e:  # the engine's ModelLoadError, ProviderError, OSError...
                    raise EngineError(
                        f"the recognition model could not be loaded ({e}); "
                        "choose a model folder in Preferences"
                    ) from e
            pipeline = self._pipeline
        yield from pipeline.read_page(page, cancel)

    @staticmethod
    def is_result(item: Any) -> bool:
        """A `PageResult` (the other things a recognizer yields are progress reports)."""
        return hasattr(item, "score") and hasattr(item, "page_index")

    # ------------------------------------------------------------ grammar

    @property
    def grammar(self) -> Grammar:
        if self._grammar is None:
            self._grammar = Grammar()
        return self._grammar

    def validate(
        self,
        measures: list[Measure],
        contexts: list[StaffContext],
        piece_start: bool,
        following: Measure | None = None,
    ) -> list[Diagnostic]:
        """Diagnostics of a run of measures printed from a line start with `contexts` in
        force. `following` (the next page's first measure) is read too but not reported, so
        the last measure of a page is checked for being short like any other."""
        ctx = [copy.copy(c) for c in contexts]
        tokens: list[str] = []
        run = [*measures, following] if following is not None else measures
        for i, m in enumerate(run):
            tokens += measure_tokens(
                m, ctx, line_start=i == 0 or m is following, piece_start=piece_start and i == 0
            )
        diagnostics = self.grammar.validate_tokens(
            tokens, contexts=[copy.copy(c) for c in contexts], piece_start=piece_start
        )
        out = []
        for d in diagnostics:
            if 0 <= d.measure < len(measures):
                d.measure_id = measures[d.measure].id
                d.measure_number = measures[d.measure].number
                out.append(d)
        return out

    # ------------------------------------------------------------ measures as text

    @staticmethod
    def measure_text(measure: Measure) -> str:
        """The measure as token text, one staff per line (see `measure_text`)."""
        return text_form.measure_text(measure)

    @staticmethod
    def is_token(text: str) -> bool:
        """Whether `text` is a token of the vocabulary."""
        return text_form.is_token(text)

    @staticmethod
    def parse_measure_text(text: str, like: Measure) -> tuple[Measure | None, list[str]]:
        """A measure from its token text, keeping `like`'s id, number, page and box."""
        return text_form.parse_measure_text(text, like)

    # ------------------------------------------------------------ engraving

    def _verovio_ready(self) -> None:
        """Verovio keeps its default resource path per thread, and the `verovio` package
        sets it only in the thread that imports it: without this, a toolkit made in a
        worker finds no fonts and loads nothing."""
        if getattr(self._local, "verovio_ready", False):
            return
        from importlib.resources import files

        import verovio

        verovio.setDefaultResourcePath(str(files("verovio") / "data"))
        self._local.verovio_ready = True

    def _toolkit(self) -> Any:
        """One Verovio toolkit per thread (a toolkit is not thread-safe)."""
        tk = getattr(self._local, "toolkit", None)
        if tk is None:
            from omr_engine.notation.mei import new_toolkit

            self._verovio_ready()
            tk = new_toolkit(SYSTEM_OPTIONS)
            self._local.toolkit = tk
        return tk

    @staticmethod
    def system_mei(parts: list[Part], measures: list[Measure], contexts: list[StaffContext]) -> str:
        """MEI of one line of measures (cheap: build it on the GUI thread, engrave it in a
        worker)."""
        return measures_to_mei(parts, measures, contexts)

    def engrave_system(self, mei: str) -> EngravedSystem:
        """Engrave MEI as one line (or more, if it does not fit) and rasterize it."""
        from omr_engine.synth.engrave import rasterize

        tk = self._toolkit()
        if not tk.loadData(mei):
            raise EngineError("Verovio could not engrave this line")
        svg = tk.renderToSVG(1)
        if tk.getPageCount() > 1:  # taller than a page: rare, engrave it without page breaks
            tk.setOptions({"breaks": "none"})
            tk.loadData(mei)
            svg = tk.renderToSVG(1)
            tk.setOptions({"breaks": SYSTEM_OPTIONS["breaks"]})
        return EngravedSystem(rasterize(svg), svg_geometry(svg))

    # ------------------------------------------------------------ export

    @staticmethod
    def join_scores(scores: list[Score]) -> Score:
        """One score of several pages' scores, in page order."""
        scores = [s for s in scores if s is not None and s.measures]
        if not scores:
            raise EngineError("no page has been read yet: there is nothing to export")
        staff_count = max(s.staff_count for s in scores)
        parts = next(
            (s.parts for s in scores if s.staff_count == staff_count),
            [Part(staves=1)] * staff_count,
        )
        measures = []
        for s in scores:
            for m in s.measures:
                m = copy.deepcopy(m)
                m.staves += [StaffMeasure() for _ in range(staff_count - len(m.staves))]
                measures.append(m)
        return Score(parts=copy.deepcopy(parts), measures=measures, title=scores[0].title)

    def export(self, score: Score, path: Path) -> None:
        """Write the score in the format its suffix names: .musicxml/.xml/.mxl/.mei/.mid/.pdf."""
        from omr_engine.notation import mei as mei_io
        from omr_engine.notation import music21_io, pdf

        path = Path(path)
        suffix = path.suffix.lower()
        self._verovio_ready()
        try:
            if suffix in (".musicxml", ".xml", ".mxl"):
                music21_io.write_musicxml(score, path)
            elif suffix == ".mei":
                mei_io.write_mei(score, path)
            elif suffix in (".mid", ".midi"):
                music21_io.write_midi(score, path)
            elif suffix == ".pdf":
                pdf.write_pdf(score, path)
            else:
                raise EngineError(f"cannot export to {suffix or 'a file without a suffix'}")
        except EngineError:
            raise
        except Exception as e:  # music21/Verovio raise many kinds; the user gets one sentence
            raise EngineError(f"export to {path.name} failed: {e}") from e

    # ------------------------------------------------------------ scores as JSON

    def score_to_json(self, score: Score) -> dict:
        """A score as JSON: parts, title, and per measure its id, number, page, box and
        token text (the text form keeps everything the measure holds)."""
        return {
            "title": score.title,
            "parts": [{"name": p.name, "staves": p.staves} for p in score.parts],
            "measures": [
                {
                    "id": m.id,
                    "number": m.number,
                    "page": m.page,
                    "box": list(m.box) if m.box is not None else None,
                    "tokens": self.measure_text(m),
                }
                for m in score.measures
            ],
        }

    def score_from_json(self, data: dict) -> Score:
        parts = [
            Part(name=p.get("name", ""), staves=int(p.get("staves", 1))) for p in data["parts"]
        ]
        measures = []
        for entry in data["measures"]:
            like = Measure(
                id=entry["id"],
                staves=[StaffMeasure() for _ in range(sum(p.staves for p in parts))],
                number=entry.get("number", ""),
                page=entry.get("page"),
                box=tuple(entry["box"]) if entry.get("box") else None,
            )
            m, errors = self.parse_measure_text(entry["tokens"], like)
            if m is None:
                raise EngineError(
                    f"measure {entry['id']} in the project cannot be read: {errors[0]}"
                )
            measures.append(m)
        return Score(parts=parts, measures=measures, title=data.get("title", ""))

    def measure_to_json(self, measure: Measure) -> dict:
        return self.score_to_json(Score(parts=[], measures=[measure]))["measures"][0]

    def measure_from_json(self, data: dict, staff_count: int) -> Measure:
        score = self.score_from_json({"parts": [{"staves": staff_count}], "measures": [data]})
        return score.measures[0]


def contexts_after(scores: list[Score | None], staff_count: int) -> list[list[StaffContext]]:
    """For each page, the clef/key/time in force on each staff as the page starts."""
    ctx = [StaffContext() for _ in range(staff_count)]
    out = []
    for score in scores:
        out.append([copy.copy(c) for c in ctx])
        if score is None:
            continue
        for m in score.measures:
            while len(ctx) < len(m.staves):
                ctx.append(StaffContext())
            for c, sm in zip(ctx, m.staves, strict=False):
                apply_changes(c, sm)
    return out


def dumps(data: Any) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False)
