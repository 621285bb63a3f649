"""Score -> MEI and engraved SVG through Verovio, with our measure ids kept as MEI xml:ids.

Verovio converts the MusicXML of a Score into MEI; we then rename each `<measure>` element's
`xml:id` to the Score measure's id (the measures come out in the same order), so an
element id in Verovio's SVG leads straight back to the measure.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import verovio

from .music21_io import musicxml_text
from .score import Score

MEI_NS = "http://www.music-encoding.org/ns/mei"
XML_ID = "{http://www.w3.org/XML/1998/namespace}id"


class EngravingError(Exception):
    """Verovio could not read or engrave a score."""


def new_toolkit(options: dict | None = None) -> verovio.toolkit:
    """A Verovio toolkit with quiet logging and the given options."""
    verovio.enableLog(verovio.LOG_OFF)
    tk = verovio.toolkit()
    # Verovio keeps its resource path per thread: set it, or a worker thread has no fonts.
    tk.setResourcePath(str(Path(verovio.__file__).parent / "data"))
    if options:
        tk.setOptions(options)
    return tk


def score_to_mei(score: Score) -> str:
    """MEI text of a Score; every `<measure>` carries the Score measure's id as xml:id."""
    tk = new_toolkit({"footer": "none", "header": "none"})
    if not tk.loadData(musicxml_text(score)):
        raise EngravingError("Verovio could not read the MusicXML of this score")
    mei = tk.getMEI(json.dumps({"removeIds": False}))
    return rename_measures(mei, [m.id for m in score.measures])


def rename_measures(mei: str, measure_ids: list[str]) -> str:
    """Give MEI `<measure>` elements the ids in order (by document order)."""
    ET.register_namespace("", MEI_NS)
    ET.register_namespace("xlink", "http://www.w3.org/1999/xlink")
    root = ET.fromstring(mei)
    measures = root.findall(f".//{{{MEI_NS}}}measure")
    if len(measures) != len(measure_ids):
        raise EngravingError(
            f"Verovio made {len(measures)} measures of a score with {len(measure_ids)}"
        )
    renamed = {}
    for element, new_id in zip(measures, measure_ids, strict=True):
        old = element.get(XML_ID)
        if old:
            renamed[old] = new_id
        element.set(XML_ID, new_id)
    text = ET.tostring(root, encoding="unicode")
    if renamed:
        # References to the old ids (e.g. @startid on spanners) follow the rename.
        pattern = re.compile(r"#(" + "|".join(map(re.escape, renamed)) + r")\b")
        text = pattern.sub(lambda m: "#" + renamed[m.group(1)], text)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + text


def write_mei(score: Score, path: Path) -> None:
    Path(path).write_text(score_to_mei(score), encoding="utf-8")


def engrave_svg(mei_or_musicxml: str, options: dict | None = None) -> list[str]:
    """Engrave MEI or MusicXML text into one SVG string per page."""
    tk = new_toolkit({"footer": "none", "header": "none", **(options or {})})
    if not tk.loadData(mei_or_musicxml):
        raise EngravingError("Verovio could not read the score")
    return [tk.renderToSVG(page) for page in range(1, tk.getPageCount() + 1)]
