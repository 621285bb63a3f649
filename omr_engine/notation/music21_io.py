"""music21 <-> Score: reading MusicXML/MXL/kern/ABC, writing MusicXML, MXL and MIDI.

Reading keeps only what the vocabulary names; anything printed that it cannot name
(a 128th note, a nested tuplet, a microtone) is left out of its measure and the measure
is listed in `Score`'s `unsupported` notes, so statistics can count it apart.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import music21
from music21 import bar, clef, duration, key, meter, note, spanner, stream, tie
from music21.stream import makeNotation

from .score import (
    ClefChange,
    Event,
    Measure,
    Note,
    Part,
    Rest,
    Score,
    StaffMeasure,
    Tuplet,
)
from .symbols import (
    CLEFS,
    DURATION_TYPES,
    MAX_DOTS,
    MAX_VOLTA,
    OCTAVES,
    TIME_SIGNATURES,
    TUPLETS,
    Duration,
    Pitch,
    time_length,
)


class NotationError(Exception):
    """A music file cannot be read into a Score (message is one sentence for the user)."""


@dataclass
class ReadReport:
    """What reading left out: (measure index, reason) pairs."""

    unsupported: list[tuple[int, str]] = field(default_factory=list)

    @property
    def unsupported_measures(self) -> set[int]:
        return {i for i, _ in self.unsupported}


_converter21_registered = False


def _register_converter21() -> None:
    """converter21 reads Humdrum (kern) and MEI better than music21's own parsers."""
    global _converter21_registered
    if not _converter21_registered:
        import converter21

        # Its ABC reader does not work with music21 10; music21's own ABC reader does.
        converter21.register(converter21.ConverterName.HUMDRUM, converter21.ConverterName.MEI)
        _converter21_registered = True


def load_music21(path: Path) -> stream.Score:
    """Parse a MusicXML/MXL/kern/ABC/MEI file with music21 (converter21 for kern and MEI)."""
    path = Path(path)
    if not path.is_file():
        raise NotationError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise NotationError(f"{path}: the file is empty")
    _register_converter21()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = music21.converter.parse(str(path))
    except Exception as exc:  # music21 raises many unrelated types for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NotationError(f"{path}: not a readable music file ({first[:120]})") from exc
    if isinstance(parsed, stream.Opus):
        parsed = parsed.scores[0] if parsed.scores else None
    if not isinstance(parsed, stream.Score):
        if isinstance(parsed, stream.Stream) and parsed.getElementsByClass(stream.Measure):
            sc = stream.Score()
            sc.insert(0, parsed)
            parsed = sc
        else:
            raise NotationError(f"{path}: no score found in the file")
    return parsed


def read_score(path: Path) -> tuple[Score, ReadReport]:
    """Read a music file into a Score, with a report of what was left out."""
    return from_music21(load_music21(path))


# ---------------------------------------------------------------- music21 -> Score


def _clef_name(c: clef.Clef) -> str | None:
    sign, line = c.sign, c.line
    if sign not in ("G", "F", "C") or line is None:
        return None
    name = f"{sign}{line}"
    if c.octaveChange == -1:
        name += "-8vb"
    elif c.octaveChange == 1:
        name += "-8va"
    elif c.octaveChange:
        return None
    return name if name in CLEFS else None


def _time_name(ts: meter.TimeSignature) -> str | None:
    if ts.symbol == "common" and ts.ratioString == "4/4":
        return "C"
    if ts.symbol == "cut" and ts.ratioString == "2/2":
        return "C|"
    name = ts.ratioString
    return name if name in TIME_SIGNATURES else None


def _duration(d: duration.Duration) -> Duration | None:
    if d.type not in DURATION_TYPES or d.dots > MAX_DOTS:
        return None
    return Duration(d.type, d.dots)


def _pitch(p: music21.pitch.Pitch) -> Pitch | None:
    alter = p.accidental.alter if p.accidental is not None else 0
    if alter != int(alter) or abs(alter) > 2 or p.octave not in OCTAVES:
        return None
    return Pitch(p.step, int(alter), int(p.octave))


class _MeasureReader:
    def __init__(self, index: int, report: ReadReport, bar_length: Fraction | None) -> None:
        self.index = index
        self.report = report
        self.bar_length = bar_length

    def skip(self, reason: str) -> None:
        self.report.unsupported.append((self.index, reason))

    def voice(self, container: stream.Stream, first_voice: bool) -> list[Event]:
        events: list[Event] = []
        group: Tuplet | None = None
        group_length = Fraction(0)
        group_target = Fraction(0)
        items = list(container.getElementsByClass((note.GeneralNote, clef.Clef)))
        sounding = [e for e in items if isinstance(e, note.GeneralNote)]
        end = Fraction(0)
        for el in items:
            if isinstance(el, clef.Clef):
                if first_voice and el.offset > 0:
                    name = _clef_name(el)
                    if name:
                        events.append(ClefChange(name))
                    else:
                        self.skip(f"clef {el.sign}{el.line}")
                continue
            if el.style.hideObjectOnPrint or getattr(el, "isSpacer", False):
                continue
            offset = Fraction(el.offset).limit_denominator(10000)
            if offset < end and not el.duration.isGrace:
                # Sounds together with what came before: a duplicate rest is dropped,
                # a note is something one voice cannot say.
                if not isinstance(el, note.Rest):
                    self.skip("overlapping notes in one voice")
                continue
            end = max(end, offset + Fraction(el.duration.quarterLength).limit_denominator(10000))
            event = self.event(el, len(sounding) == 1)
            if event is None:
                continue
            tuplets = el.duration.tuplets
            if isinstance(event, Note) and event.grace or not tuplets:
                if (
                    group is not None
                    and not tuplets
                    and not (isinstance(event, Note) and event.grace)
                ):
                    self.skip("incomplete tuplet")
                    events.append(group)
                    group = None
                (group.events if group is not None else events).append(event)
                continue
            if len(tuplets) > 1:
                self.skip("nested tuplet")
                continue
            t = tuplets[0]
            ratio = (t.numberNotesActual, t.numberNotesNormal)
            if ratio not in TUPLETS:
                self.skip(f"tuplet {ratio[0]}:{ratio[1]}")
                continue
            if group is not None and (
                (group.actual, group.normal) != ratio or t.type == "start" and group.events
            ):
                events.append(group)
                group = None
            if group is None:
                group = Tuplet(*ratio)
                group_length = Fraction(0)
                group_target = Fraction(t.totalTupletLength()).limit_denominator(10000)
            group.events.append(event)  # type: ignore[arg-type]
            group_length += Fraction(el.duration.quarterLength).limit_denominator(10000)
            if group_length >= group_target or t.type == "stop":
                events.append(group)
                group = None
        if group is not None:
            events.append(group)
        return events

    def event(self, el: note.GeneralNote, alone: bool) -> Note | Rest | None:
        if isinstance(el, note.Rest):
            full = el.fullMeasure in (True, "always") or (
                el.fullMeasure == "auto"
                and alone
                and self.bar_length is not None
                and Fraction(el.quarterLength).limit_denominator(10000) == self.bar_length
            )
            if full:
                return Rest(None)
            d = _duration(el.duration)
            if d is None:
                self.skip(f"rest of duration {el.duration.type}")
                return None
            return Rest(d)
        if isinstance(el, note.Unpitched) or not isinstance(el, (note.Note, music21.chord.Chord)):
            self.skip(type(el).__name__)
            return None
        grace = el.duration.isGrace
        d = _duration(el.duration)
        if d is None:
            self.skip(f"note of duration {el.duration.type}")
            return None
        notes = list(el.notes) if isinstance(el, music21.chord.Chord) else [el]
        pitches, ties = [], []
        for n in notes:
            p = _pitch(n.pitch)
            if p is None:
                self.skip(f"pitch {n.pitch.nameWithOctave}")
                return None
            if p in pitches:
                continue
            t = n.tie
            pitches.append(p)
            ties.append(t is not None and t.type in ("start", "continue"))
        return Note(pitches, d, ties, grace=grace).canonical()


def _staff_groups(sc: stream.Score) -> list[tuple[str, list[stream.Part]]]:
    """Group music21 parts into instruments: PartStaffs joined by a brace form one part."""
    parts = list(sc.parts)
    groups: list[tuple[str, list[stream.Part]]] = []
    used: set[int] = set()
    for sg in sc.getElementsByClass(music21.layout.StaffGroup):
        members = [p for p in sg.getSpannedElements() if isinstance(p, stream.PartStaff)]
        if len(members) > 1 and all(id(p) not in used for p in members):
            for p in members:
                used.add(id(p))
            groups.append((members[0].partName or "", members))
    ordered: list[tuple[str, list[stream.Part]]] = []
    for p in parts:
        if id(p) in used:
            for g in groups:
                if g[1][0] is p:
                    ordered.append(g)
        else:
            ordered.append((p.partName or "", [p]))
    return ordered


def from_music21(sc: stream.Score) -> tuple[Score, ReadReport]:
    """Convert a music21 Score into our Score (measure-major), reporting what was left out."""
    groups = _staff_groups(sc)
    staves = [p for _, members in groups for p in members]
    if not staves:
        raise NotationError("the score has no parts")
    per_staff = [list(p.getElementsByClass(stream.Measure)) for p in staves]
    count = len(per_staff[0])
    if count == 0:
        raise NotationError("the score has no measures")
    if any(len(ms) != count for ms in per_staff):
        raise NotationError("the parts have different numbers of measures")
    report = ReadReport()
    voltas: dict[int, int] = {}
    for rb in sc.recurse().getElementsByClass(spanner.RepeatBracket):
        digits = re.findall(r"\d+", str(rb.number or "1"))
        numbers = [int(d) for d in digits] or [1]
        for m in rb.getSpannedElements():
            if isinstance(m, stream.Measure) and m in per_staff[0]:
                voltas[per_staff[0].index(m)] = min(numbers[0], MAX_VOLTA)
    times: list[str | None] = [None] * len(staves)
    measures: list[Measure] = []
    for i in range(count):
        staff_measures: list[StaffMeasure] = []
        first = per_staff[0][i]
        for s, ms in enumerate(per_staff):
            m = ms[i]
            sm = StaffMeasure()
            for c in m.getElementsByClass(clef.Clef):
                if c.offset == 0:
                    sm.clef = _clef_name(c)
                    if sm.clef is None:
                        report.unsupported.append((i, f"clef {c.sign}{c.line}"))
            if i == 0 and sm.clef is None:
                ctx_clef = m.getContextByClass(clef.Clef)
                sm.clef = _clef_name(ctx_clef) if ctx_clef else "G2"
            ks = m.keySignature or (m.getContextByClass(key.KeySignature) if i == 0 else None)
            if ks is not None:
                sm.key = max(-7, min(7, ks.sharps))
            elif i == 0:
                sm.key = 0
            ts = m.timeSignature or (m.getContextByClass(meter.TimeSignature) if i == 0 else None)
            if ts is not None:
                sm.time = _time_name(ts)
                if sm.time is None:
                    report.unsupported.append((i, f"time signature {ts.ratioString}"))
            times[s] = sm.time or times[s]
            reader = _MeasureReader(i, report, time_length(times[s]) if times[s] else None)
            voices = list(m.voices)
            if voices:
                # MusicXML keeps clef changes at measure level: give them to the first voice.
                for c in m.getElementsByClass(clef.Clef):
                    if c.offset > 0:
                        voices[0].insert(c.offset, c)
                sm.voices = [reader.voice(v, j == 0) for j, v in enumerate(voices)]
                loose = [e for e in m.notesAndRests if not e.style.hideObjectOnPrint]
                if loose:
                    report.unsupported.append((i, "notes outside voices"))
                sm.voices = [v for v in sm.voices if v] or [[]]
            else:
                sm.voices = [reader.voice(m, True)]
            if not any(sm.voices):
                # An empty measure in the encoding is printed as a bar of rest by engravers.
                sm.voices = [[Rest(None)]]
            staff_measures.append(sm)
        measure = Measure(id=f"m{i}", staves=staff_measures, number=str(first.number))
        right, left = first.rightBarline, first.leftBarline
        if isinstance(right, bar.Repeat) and right.direction == "end":
            measure.barline = "repeat-end"
        elif right is not None and right.type in ("final", "light-heavy"):
            measure.barline = "final"
        elif right is not None and right.type in ("double", "light-light"):
            measure.barline = "double"
        if isinstance(left, bar.Repeat) and left.direction == "start":
            measure.repeat_start = True
        previous_right = per_staff[0][i - 1].rightBarline if i > 0 else None
        if isinstance(previous_right, bar.Repeat) and previous_right.direction == "start":
            measure.repeat_start = True
        measure.volta = voltas.get(i)
        measures.append(measure)
    parts = [Part(name=name, staves=len(members)) for name, members in groups]
    title = sc.metadata.title if sc.metadata is not None and sc.metadata.title else ""
    return Score(parts=parts, measures=measures, title=title), report


# ---------------------------------------------------------------- Score -> music21


def _m21_duration(d: Duration) -> duration.Duration:
    return duration.Duration(type=d.type, dots=d.dots)


class _TieTracker:
    """Turns our tie starts into music21's start/continue/stop on both ends."""

    def __init__(self) -> None:
        self.open: dict[tuple[int, int], set[Pitch]] = {}

    def apply(self, key_: tuple[int, int], ev: Note, m21_notes: list[note.Note]) -> None:
        pending = self.open.get(key_, set())
        if ev.grace:
            return
        for p, t, n in zip(ev.pitches, ev.ties, m21_notes, strict=True):
            if p in pending:
                n.tie = tie.Tie("continue" if t else "stop")
            elif t:
                n.tie = tie.Tie("start")
        self.open[key_] = {p for p, t in zip(ev.pitches, ev.ties, strict=True) if t}

    def rest(self, key_: tuple[int, int]) -> None:
        self.open.pop(key_, None)


def _m21_event(
    ev: Note | Rest,
    bar_length: Fraction,
    ties: _TieTracker,
    key_: tuple[int, int],
) -> note.GeneralNote:
    if isinstance(ev, Rest):
        ties.rest(key_)
        if ev.duration is None:
            r = note.Rest(quarterLength=bar_length)
            r.fullMeasure = True
            return r
        r = note.Rest(duration=_m21_duration(ev.duration))
        r.fullMeasure = False
        return r
    pitches = [music21.pitch.Pitch(_m21_pitch_name(p)) for p in ev.pitches]
    if len(pitches) == 1:
        n: note.NotRest = note.Note(pitches[0], duration=_m21_duration(ev.duration))
        members = [n]
    else:
        n = music21.chord.Chord(pitches, duration=_m21_duration(ev.duration))
        members = list(n.notes)
    ties.apply(key_, ev, members)  # type: ignore[arg-type]
    if ev.grace:
        n = n.getGrace()
        n.duration.type = ev.duration.type
    return n


def _m21_pitch_name(p: Pitch) -> str:
    acc = {-2: "--", -1: "-", 0: "", 1: "#", 2: "##"}[p.alter]
    return f"{p.step}{acc}{p.octave}"


def _m21_clef(name: str) -> clef.Clef:
    base, _, octave = name.partition("-")
    change = {"": 0, "8vb": -1, "8va": 1}[octave]
    return clef.clefFromString(base, change)


def _m21_time(name: str) -> meter.TimeSignature:
    if name == "C":
        ts = meter.TimeSignature("4/4")
        ts.symbol = "common"
    elif name == "C|":
        ts = meter.TimeSignature("2/2")
        ts.symbol = "cut"
    else:
        ts = meter.TimeSignature(name)
    return ts


def _fill_voice(
    container: stream.Stream,
    events: list[Event],
    bar_length: Fraction,
    ties: _TieTracker,
    key_: tuple[int, int],
) -> None:
    offset = Fraction(0)
    for ev in events:
        if isinstance(ev, ClefChange):
            container.insert(float(offset), _m21_clef(ev.clef))
            continue
        group = ev.events if isinstance(ev, Tuplet) else [ev]
        for j, inner in enumerate(group):
            m21 = _m21_event(inner, bar_length, ties, key_)
            if isinstance(ev, Tuplet):
                total = sum(
                    (e.duration.quarter_length for e in ev.events if e.duration is not None),
                    Fraction(0),
                )
                unit = total / ev.actual
                t = duration.Tuplet(ev.actual, ev.normal)
                unit_type = _unit_type(unit)
                if unit_type:
                    t.setDurationType(unit_type)
                if len(group) > 1:
                    t.type = "start" if j == 0 else ("stop" if j == len(group) - 1 else None)
                else:
                    t.type = "startStop"
                t.bracket = True
                m21.duration.appendTuplet(t)
            container.insert(float(offset), m21)
            offset += Fraction(m21.duration.quarterLength).limit_denominator(10000)


def _unit_type(unit: Fraction) -> str | None:
    for name, ql in DURATION_TYPES.items():
        if ql == unit:
            return name
    return None


def to_music21(score: Score) -> stream.Score:
    """Convert our Score to a music21 Score (piano-like parts become braced PartStaffs)."""
    sc = stream.Score()
    if score.title:
        sc.metadata = music21.metadata.Metadata(title=score.title)
    staff_streams: list[stream.Part] = []
    for part in score.parts:
        members: list[stream.Part] = []
        for _ in range(part.staves):
            p = stream.PartStaff() if part.staves > 1 else stream.Part()
            p.partName = part.name or None
            members.append(p)
        staff_streams += members
        for p in members:
            sc.insert(0, p)
        if part.staves > 1:
            sc.insert(0, music21.layout.StaffGroup(members, symbol="brace", barTogether=True))
    times: list[str | None] = [None] * score.staff_count
    ties = _TieTracker()
    volta_runs: list[tuple[int, list[stream.Measure]]] = []
    prev_volta = None
    for i, measure in enumerate(score.measures):
        for s, (sm, part) in enumerate(zip(measure.staves, staff_streams, strict=True)):
            m = stream.Measure(number=int(measure.number) if measure.number.isdigit() else i + 1)
            if measure.number == "0":  # an upbeat: implicit="yes", left out of the count
                m.showNumber = stream.enums.ShowNumber.NEVER
            if sm.clef:
                m.insert(0, _m21_clef(sm.clef))
            if sm.key is not None:
                m.insert(0, key.KeySignature(sm.key))
            if sm.time:
                m.insert(0, _m21_time(sm.time))
                times[s] = sm.time
            bar_length = time_length(times[s]) if times[s] else Fraction(4)
            voices = [v for v in sm.voices if v] or [[]]
            if len(voices) == 1:
                _fill_voice(m, voices[0], bar_length, ties, (s, 0))
            else:
                for v, events in enumerate(voices):
                    voice = stream.Voice(id=str(v + 1))
                    _fill_voice(voice, events, bar_length, ties, (s, v))
                    m.insert(0, voice)
            if measure.barline == "repeat-end":
                m.rightBarline = bar.Repeat(direction="end")
            elif measure.barline in ("double", "final"):
                m.rightBarline = bar.Barline(measure.barline)
            if measure.repeat_start:
                m.leftBarline = bar.Repeat(direction="start")
            if measure.multirest > 1:
                m.insert(0, note.Rest(quarterLength=bar_length))
            part.append(m)
            if measure.volta and s == 0:
                if prev_volta != measure.volta:
                    volta_runs.append((measure.volta, []))
                volta_runs[-1][1].append(m)
        prev_volta = measure.volta
    for number, run in volta_runs:
        staff_streams[0].insert(0, spanner.RepeatBracket(run, number=number))
    for part in staff_streams:
        _engrave_hints(part)
    return sc


def _engrave_hints(part: stream.Part) -> None:
    """Beams and shown accidentals, measure by measure.

    music21's own `makeNotation` pass re-bars parts whose measures do not add up; a
    transcription with a wrong measure must come out exactly as read, so we export with
    makeNotation off and add only these two hints ourselves.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # music21 gives up on some odd measures: their accidentals then all show.
        with contextlib.suppress(Exception):
            makeNotation.makeAccidentalsInMeasureStream(part)
        for m in part.getElementsByClass(stream.Measure):
            # An overfull or irregular measure keeps flags instead of beams.
            with contextlib.suppress(Exception):
                m.makeBeams(inPlace=True)


def write_musicxml(score: Score, path: Path) -> None:
    """Write MusicXML (`.musicxml`/`.xml`) or compressed MusicXML (`.mxl`) by the suffix."""
    path = Path(path)
    fmt = "mxl" if path.suffix.lower() == ".mxl" else "musicxml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        to_music21(score).write(fmt, fp=str(path), makeNotation=False)


def musicxml_text(score: Score) -> str:
    """MusicXML of a Score as a string."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exporter = GeneralObjectExporter(to_music21(score))
        exporter.makeNotation = False
        return exporter.parse().decode("utf-8")


def write_midi(score: Score, path: Path) -> None:
    """Write a standard MIDI file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        to_music21(score).write("midi", fp=str(path))
