"""Training examples: engraved, cropped, degraded images paired with their exact tokens.

One Score gives both sides. It is engraved from its own MEI (`score_mei`), so the image
shows exactly what its tokens say, or, for corpus pieces that read cleanly, from
the original file's MusicXML, which also prints lyrics, dynamics, slurs and fermatas that
the vocabulary leaves out (the model learns to look past them).

- A system crop's tokens are `score_to_tokens(score, start, stop)` for the measures the
  crop shows: a line start, so the clef (and a key other than 0) in force is printed first.
- A staff crop's tokens are the same for `single_staff(score, s)`, without volta brackets
  below the top staff (engravers draw them over the top staff only).
- A crop that ends where the engraved measures end has no tie from its last notes
  (`without_ties_off_the_end`): Verovio prints none that leads out of what it engraved.
- Every example's tokens must pass the grammar, with the clef/key/time in force before the
  line (`Score.contexts_before`); examples that do not are dropped and counted.

An `Example` keeps everything needed to regenerate it: piece, measure window, engraving
style, page/system/staff, degradation parameters and seed (`regenerate`).
"""

from __future__ import annotations

import copy
import dataclasses
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..notation.grammar import Grammar
from ..notation.mei_writer import measures_to_mei
from ..notation.music21_io import musicxml_text
from ..notation.score import ClefChange, Note, Part, Score, Tuplet
from ..notation.tokens import score_to_tokens, without_ties_off_the_end
from .degrade import Degradation, apply_with_boxes, draw_degradation
from .engrave import Crop, EngravedPage, EngraveStyle, engrave, staff_crops, system_crops

__all__ = [
    "UNITS",
    "Example",
    "engrave_examples",
    "excerpt",
    "fix_musicxml",
    "measure_note_counts",
    "printable",
    "printable_excerpt",
    "regenerate",
    "score_mei",
    "score_musicxml",
    "single_staff",
    "source_mismatch",
    "unprintable_marks",
]

UNITS = ("staff", "system", "both")

_grammar: Grammar | None = None


def grammar() -> Grammar:
    """One Grammar per process: building its tables costs more than checking a line."""
    global _grammar
    if _grammar is None:
        _grammar = Grammar()
    return _grammar


# ---------------------------------------------------------------- score views


def single_staff(score: Score, staff_index: int) -> Score:
    """Staff `staff_index` alone, as printed in a staff crop: same measures, ids, numbers,
    barlines and repeats; voltas only on the top staff (brackets are drawn above it)."""
    if not 0 <= staff_index < score.staff_count:
        raise IndexError(f"staff {staff_index} of a score with {score.staff_count} staves")
    name = ""
    s = 0
    for part in score.parts:
        if s <= staff_index < s + part.staves:
            name = part.name
        s += part.staves
    measures = [
        dataclasses.replace(
            m,
            staves=[m.staves[staff_index]],
            volta=m.volta if staff_index == 0 else None,
        )
        for m in score.measures
    ]
    return Score(parts=[Part(name, 1)], measures=measures, title=score.title)


def printable(score: Score) -> tuple[Score, int]:
    """A copy without marks the tokens do not print and an engraver would: a clef, key or
    time equal to the one in force, a clef change outside the first voice or one that
    changes nothing. Returns the copy and how many marks were removed."""
    out = copy.deepcopy(score)
    return out, _unprintable(out, strip=True)


def unprintable_marks(score: Score) -> int:
    """How many marks `printable` would remove, without copying the score."""
    return _unprintable(score, strip=False)


def printable_excerpt(score: Score, start: int, stop: int) -> Score:
    """`printable(excerpt(score, start, stop))[0]`, copying the measures once."""
    out = excerpt(score, start, stop)
    _unprintable(out, strip=True)
    return out


def _unprintable(score: Score, strip: bool) -> int:
    """Count the marks `printable` removes; remove them from `score` itself if `strip`."""
    contexts = score.contexts_before(0)
    removed = 0
    for i, measure in enumerate(score.measures):
        for sm, ctx in zip(measure.staves, contexts, strict=True):
            if i > 0:
                if sm.clef is not None and sm.clef == ctx.clef:
                    removed += 1
                    if strip:
                        sm.clef = None
                if sm.key is not None and sm.key == ctx.key:
                    removed += 1
                    if strip:
                        sm.key = None
                if sm.time is not None and sm.time == ctx.time:
                    removed += 1
                    if strip:
                        sm.time = None
            clef = sm.clef if sm.clef is not None else ctx.clef
            for v, voice in enumerate(sm.voices):
                kept = []
                for e in voice:
                    if isinstance(e, ClefChange):
                        if v or e.clef == clef:
                            removed += 1
                            continue
                        clef = e.clef
                    kept.append(e)
                if strip and len(kept) < len(voice):
                    voice[:] = kept
            ctx.clef = clef
            ctx.key = sm.key if sm.key is not None else ctx.key
            ctx.time = sm.time or ctx.time
    return removed


def excerpt(score: Score, start: int, stop: int) -> Score:
    """Measures `start:stop` as a piece of their own: the first measure states the clef,
    key and time in force, as an engraver prints them at the start of a piece."""
    measures = copy.deepcopy(score.measures[start:stop])
    if not measures:
        raise ValueError(f"empty excerpt {start}:{stop} of {len(score.measures)} measures")
    for sm, ctx in zip(measures[0].staves, score.contexts_before(start), strict=True):
        sm.clef = sm.clef or ctx.clef
        sm.key = sm.key if sm.key is not None else ctx.key
        sm.time = sm.time or ctx.time
    return Score(parts=copy.deepcopy(score.parts), measures=measures, title=score.title)


# ---------------------------------------------------------------- MEI and MusicXML


def score_mei(score: Score) -> str:
    """MEI of a Score as the engraver reads it: what `score_musicxml` prints (part names,
    beams, ties, tuplets, voltas, courtesy accidentals), written straight from the Score
    by `mei_writer` in a few milliseconds instead of music21's 50-500 ms."""
    return measures_to_mei(
        score.parts, score.measures, score.contexts_before(0), score.title, labels=True
    )


def score_musicxml(score: Score) -> str:
    """MusicXML of a Score that Verovio engraves as the tokens read (see `fix_musicxml`)."""
    return fix_musicxml(musicxml_text(score), score)


def fix_musicxml(xml: str, score: Score) -> str:
    """Volta brackets and multi-measure rests as the Score has them.

    music21 writes a volta's `<ending type="start">` without its stop, and Verovio then
    draws no bracket; a Score's multi-measure rest is one printed measure, which MusicXML
    spells as `<multiple-rest>` followed by the measures it stands for. Every `<part>` must
    hold one `<measure>` per Score measure.
    """
    root = ET.fromstring(xml)
    runs: list[tuple[int, int, int]] = []  # (first, last, number)
    for i, m in enumerate(score.measures):
        if m.volta and runs and runs[-1][1] == i - 1 and runs[-1][2] == m.volta:
            runs[-1] = (runs[-1][0], i, m.volta)
        elif m.volta:
            runs.append((i, i, m.volta))
    for part in root.iter("part"):
        measures = part.findall("measure")
        if len(measures) != len(score.measures):
            raise ValueError(
                f"MusicXML part has {len(measures)} measures, the score {len(score.measures)}"
            )
        for m in measures:
            for barline in m.findall("barline"):
                for ending in barline.findall("ending"):
                    barline.remove(ending)
                if len(barline) == 0:
                    m.remove(barline)
        # A multi-measure rest ends with the last measure it stands for.
        last = [
            _expand_multirest(part, element, m.multirest) if m.multirest > 1 else element
            for element, m in zip(measures, score.measures, strict=True)
        ]
        for first, stop, number in runs:
            left = _barline(measures[first], "left")
            _insert_before_repeat(left, ET.Element("ending", number=str(number), type="start"))
            kind = "stop" if score.measures[stop].barline == "repeat-end" else "discontinue"
            right = _barline(last[stop], "right")
            _insert_before_repeat(right, ET.Element("ending", number=str(number), type=kind))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _barline(measure: ET.Element, location: str) -> ET.Element:
    for b in measure.findall("barline"):
        if b.get("location", "right") == location:
            return b
    b = ET.Element("barline", location=location)
    if location == "left":
        measure.insert(0, b)
    else:
        measure.append(b)
    return b


def _insert_before_repeat(barline: ET.Element, element: ET.Element) -> None:
    children = list(barline)
    repeat = barline.find("repeat")
    barline.insert(children.index(repeat) if repeat is not None else len(children), element)


def _expand_multirest(part: ET.Element, element: ET.Element, count: int) -> ET.Element:
    """Mark `element` as a `count`-measure rest and add the measures it stands for after
    it; its right barline moves to the last of them, which is returned."""
    # Its own <attributes>: sharing the measure's clef's, Verovio draws that clef
    # again after the rest.
    attributes = ET.Element("attributes")
    first = element.find("attributes")
    element.insert(list(element).index(first) + 1 if first is not None else 0, attributes)
    style = ET.SubElement(attributes, "measure-style")
    ET.SubElement(style, "multiple-rest").text = str(count)
    duration = element.find("note/duration")
    right = [b for b in element.findall("barline") if b.get("location", "right") == "right"]
    at = list(part).index(element)
    filler = element
    for j in range(1, count):
        filler = ET.Element("measure", number=f"{element.get('number', '')}x{j}")
        note = ET.SubElement(filler, "note")
        ET.SubElement(note, "rest", measure="yes")
        ET.SubElement(note, "duration").text = duration.text if duration is not None else "1"
        part.insert(at + j, filler)
    for b in right:
        element.remove(b)
        filler.append(b)
    return filler


def measure_note_counts(xml: str) -> list[Counter]:
    """Per measure (across all parts): the printed pitched notes as (step, alter, octave,
    type, dots, grace) counts. Notes with print-object="no" are not printed."""
    root = ET.fromstring(xml)
    out: list[Counter] = []
    for part in root.iter("part"):
        for i, m in enumerate(part.findall("measure")):
            while len(out) <= i:
                out.append(Counter())
            for n in m.iter("note"):
                p = n.find("pitch")
                if p is None or n.get("print-object") == "no":
                    continue
                alter = float(p.findtext("alter") or 0)
                out[i][
                    (
                        p.findtext("step"),
                        int(alter) if alter == int(alter) else alter,
                        int(p.findtext("octave") or 0),
                        n.findtext("type"),
                        len(n.findall("dot")),
                        n.find("grace") is not None,
                    )
                ] += 1
    return out


def _score_note_counts(score: Score) -> list[Counter]:
    out = []
    for m in score.measures:
        c: Counter = Counter()
        for sm in m.staves:
            for voice in sm.voices:
                for e in voice:
                    for n in e.events if isinstance(e, Tuplet) else [e]:
                        if isinstance(n, Note):
                            for p in n.pitches:
                                key = (p.step, p.alter, p.octave, n.duration.type)
                                c[(*key, n.duration.dots, n.grace)] += 1
        out.append(c)
    return out


def source_mismatch(score: Score, xml: str) -> str | None:
    """Why an original file's MusicXML cannot stand for `score` (None if it can): each of
    its parts must have the Score's measures, and each measure the same printed notes."""
    try:
        counts = measure_note_counts(xml)
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        return f"unreadable MusicXML ({e})"
    for part in root.iter("part"):
        if len(part.findall("measure")) != len(score.measures):
            return "measure count differs"
    ours = _score_note_counts(score)
    for i, (a, b) in enumerate(zip(counts, ours, strict=False)):
        if a != b:
            return f"notes differ in measure {i}"
    return None


# ---------------------------------------------------------------- examples


@dataclass
class Example:
    """One training pair and how it was made."""

    image: np.ndarray  # (H, W) uint8, 255 = paper
    tokens: list[str]
    unit: str  # "system" or "staff"
    piece: str
    measures: tuple[int, int]  # [start, stop) measure indices of the piece in the crop
    staff: int | None  # staff index (0-based) of a staff crop
    staves: int  # staves in the crop
    measure_boxes: list[list[float]]  # x0, y0, x1, y1 per measure, degraded-image pixels
    style: EngraveStyle
    degradation: Degradation
    degradation_seed: int
    strength: float
    engraved_from: str = "score"  # "score" (its own MEI) or "original" (the file's MusicXML)
    window: tuple[int, int] = (0, 0)  # [start, stop) of the piece that was engraved
    page: int = 0
    system: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def meta(self) -> dict[str, Any]:
        """Everything but the image, as JSON-ready values (the tokens as one string)."""
        return {
            "tokens": " ".join(self.tokens),
            "unit": self.unit,
            "piece": self.piece,
            "measures": list(self.measures),
            "staff": self.staff,
            "staves": self.staves,
            "measure_boxes": self.measure_boxes,
            "height": int(self.image.shape[0]),
            "width": int(self.image.shape[1]),
            "engraved_from": self.engraved_from,
            "window": list(self.window),
            "page": self.page,
            "system": self.system,
            "style": dataclasses.asdict(self.style),
            "degradation": dataclasses.asdict(self.degradation),
            "degradation_seed": self.degradation_seed,
            "strength": round(self.strength, 4),
            **self.extra,
        }


def crop_tokens(score: Score, crop: Crop) -> tuple[list[str], Score, int]:
    """Tokens of the measures a crop shows, with the view they were read from and the
    index of its first measure."""
    start, stop = crop.measure_indices[0], crop.measure_indices[-1] + 1
    if list(crop.measure_indices) != list(range(start, stop)):
        raise ValueError(f"crop measures are not contiguous: {crop.measure_indices}")
    first, last = crop.staff_range
    view = single_staff(score, first) if last - first == 1 < score.staff_count else score
    tokens = score_to_tokens(view, start, stop)
    if stop == len(score.measures):  # Verovio prints no tie out of what it engraved
        tokens = without_ties_off_the_end(tokens)
    return tokens, view, start


def grammatical(tokens: list[str], view: Score, start: int) -> bool:
    """Whether a line's tokens pass the grammar, given the context in force before it."""
    diagnostics = grammar().validate_tokens(
        tokens, contexts=view.contexts_before(start), piece_start=start == 0
    )
    return not diagnostics


def _candidates(
    pages: list[EngravedPage], unit: str, n_staves: int
) -> list[tuple[str, int, int, Crop]]:
    """(unit, page, system, crop) of every crop the unit asks for."""
    out = []
    for page in pages:
        systems = system_crops(page) if unit in ("system", "both") or n_staves == 1 else []
        staves = staff_crops(page) if unit in ("staff", "both") and n_staves > 1 else []
        for crop in systems:
            label = "staff" if unit == "staff" else "system"
            out.append((label, page.page_index, crop.system_index, crop))
        for crop in staves:
            out.append(("staff", page.page_index, crop.system_index, crop))
    return out


def engrave_examples(
    score: Score,
    piece: str,
    style: EngraveStyle,
    rng: np.random.Generator,
    *,
    unit: str = "both",
    strength_max: float = 1.0,
    musicxml: str | None = None,
    offset: int = 0,
    max_examples: int | None = None,
    stats: Counter | None = None,
    extra: dict[str, Any] | None = None,
) -> list[Example]:
    """Engrave `score` (measures `offset:offset + len` of `piece`) and make examples from a
    random choice of its crops (at most `max_examples`; systems and staves about equally
    often with unit "both"). `musicxml`, if given, is engraved instead of the Score's own
    (an original file's; its measures must be the Score's). `stats` counts what happened.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, not {unit!r}")
    stats = stats if stats is not None else Counter()
    source = musicxml if musicxml is not None else score_mei(score)
    pages = engrave(source, style)
    found = [m.index for p in pages for s in p.systems for m in s.measures]
    if found != list(range(len(score.measures))):
        stats["engraving_measure_mismatch"] += 1
        return []
    n_staves = score.staff_count
    candidates = _candidates(pages, unit, n_staves)
    order = np.arange(len(candidates))
    if max_examples is not None and len(candidates) > max_examples:
        # Unit "both": a system crop weighs as much as all staff crops of its system.
        w = np.array([n_staves if c[0] == "system" and n_staves > 1 else 1 for c in candidates])
        order = rng.choice(len(candidates), size=max_examples, replace=False, p=w / w.sum())
    examples = []
    for i in order:
        label, page, system, crop = candidates[int(i)]
        strength, degradation, seed = draw_degradation(rng, strength_max)
        try:
            tokens, view, start = crop_tokens(score, crop)
        except ValueError:
            stats["crop_not_contiguous"] += 1
            continue
        if not grammatical(tokens, view, start):
            stats["dropped_ungrammatical"] += 1
            continue
        image, boxes = apply_with_boxes(crop.image, crop.measure_boxes, degradation, seed)
        stop = crop.measure_indices[-1] + 1
        examples.append(
            Example(
                image=image,
                tokens=tokens,
                unit=label,
                piece=piece,
                measures=(offset + start, offset + stop),
                staff=crop.staff_range[0] if label == "staff" else None,
                staves=crop.staff_range[1] - crop.staff_range[0],
                measure_boxes=boxes,
                style=style,
                degradation=degradation,
                degradation_seed=seed,
                strength=strength,
                engraved_from="score" if musicxml is None else "original",
                window=(offset, offset + len(score.measures)),
                page=page,
                system=system,
                extra=dict(extra or {}),
            )
        )
        stats["examples"] += 1
    return examples


def regenerate(
    meta: dict[str, Any], piece_score: Callable[[str], tuple[Score, str | None]]
) -> Example:
    """The Example that `meta` (from `Example.meta()`) describes, made again from scratch.

    `piece_score(piece)` returns the piece's Score and its original MusicXML (or None).
    """
    score, original = piece_score(meta["piece"])
    a, b = meta["window"]
    if meta["engraved_from"] == "original":
        if original is None:
            raise ValueError(f"{meta['piece']}: no original MusicXML to engrave")
        view, xml = score, original
    else:
        view, xml = printable_excerpt(score, a, b), None
    style = EngraveStyle(**meta["style"])
    d = dict(meta["degradation"])
    d["perspective"] = tuple(d["perspective"])
    degradation = Degradation(**d)
    pages = engrave(xml if xml is not None else score_mei(view), style)
    page = pages[meta["page"]]
    if meta["unit"] == "system" or view.staff_count == 1:
        crops = system_crops(page)
    else:
        crops = [c for c in staff_crops(page) if c.staff_range[0] == meta["staff"]]
    crop = next(c for c in crops if c.system_index == meta["system"])
    tokens, _, start = crop_tokens(view, crop)
    image, boxes = apply_with_boxes(
        crop.image, crop.measure_boxes, degradation, meta["degradation_seed"]
    )
    return Example(
        image=image,
        tokens=tokens,
        unit=meta["unit"],
        piece=meta["piece"],
        measures=(a + start, a + crop.measure_indices[-1] + 1),
        staff=meta["staff"],
        staves=meta["staves"],
        measure_boxes=boxes,
        style=style,
        degradation=degradation,
        degradation_seed=meta["degradation_seed"],
        strength=meta["strength"],
        engraved_from=meta["engraved_from"],
        window=(a, b),
        page=meta["page"],
        system=meta["system"],
    )
