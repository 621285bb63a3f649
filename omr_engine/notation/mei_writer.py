"""Measures -> MEI written straight from the Score, fast enough to re-engrave on every edit.

`mei.score_to_mei` goes through music21 and Verovio's MusicXML import and takes 100-300 ms
for a handful of measures; the correction studio must re-engrave a line in well under
100 ms, so `measures_to_mei` writes MEI directly (under a millisecond per system). It prints
what the Score holds and nothing more (no part names or title on the page). Every measure
keeps its Score id as its xml:id and every event gets an id naming its place (`event_id`),
so a click on the engraving finds the measure and the note (`svg_geometry`).
"""

from __future__ import annotations

import bisect
import copy
import re
from dataclasses import dataclass, field
from fractions import Fraction
from xml.sax.saxutils import escape

from .score import (
    ClefChange,
    Event,
    Measure,
    Note,
    Part,
    Rest,
    StaffContext,
    StaffMeasure,
    Tuplet,
    apply_changes,
    voice_length,
)
from .symbols import Duration, Pitch, key_alter, time_fraction, time_length

_MEI_DUR = {
    "breve": "breve",
    "whole": "1",
    "half": "2",
    "quarter": "4",
    "eighth": "8",
    "16th": "16",
    "32nd": "32",
    "64th": "64",
}
_ACCID = {-2: "ff", -1: "f", 0: "n", 1: "s", 2: "x"}  # written: a double sharp is one glyph
_ACCID_GES = {-2: "ff", -1: "f", 1: "s", 2: "ss"}
_BARLINE = {"double": "dbl", "final": "end", "repeat-end": "rptend"}
_BEAMABLE = {"eighth", "16th", "32nd", "64th"}


def event_id(measure_id: str, staff: int, voice: int, index: int) -> str:
    """The xml:id of the `index`-th note/rest (tuplets flattened) of a staff and voice."""
    return f"{measure_id}_s{staff}v{voice}e{index}"


_EVENT_ID_RE = re.compile(r"(.+)_s(\d+)v(\d+)e(\d+)")


def parse_event_id(element_id: str) -> tuple[str, int, int, int] | None:
    """Inverse of `event_id`: (measure id, staff, voice, index), or None."""
    m = _EVENT_ID_RE.fullmatch(element_id)
    if m is None:
        return None
    return m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))


def _clef_attrs(clef: str, prefix: str) -> str:
    base, _, octave = clef.partition("-")
    attrs = f' {prefix}shape="{base[0]}" {prefix}line="{base[1]}"'
    if octave:
        place = "below" if octave == "8vb" else "above"
        attrs += f' {prefix}dis="8" {prefix}dis.place="{place}"'
    return attrs


def _key_attr(key: int) -> str:
    if key > 0:
        return f"{key}s"
    if key < 0:
        return f"{-key}f"
    return "0"


def _meter_attrs(time: str, visible: bool) -> str:
    count, unit = time_fraction(time)
    attrs = f' meter.count="{count}" meter.unit="{unit}"'
    if time == "C":
        attrs += ' meter.sym="common"'
    elif time == "C|":
        attrs += ' meter.sym="cut"'
    if not visible:
        attrs += ' meter.visible="false"'
    return attrs


def beam_groups(time: str | None) -> tuple[Fraction, ...]:
    """Where eighth-note beams end in a measure of `time` (quarters from its start).

    Notes are beamed within a group, never across: beats in 2/4, 3/4, 4/4 (and in 2-4
    halves or wholes), dotted beats in compound meters (6/8, 9/8, 12/4), 2+3 and 2+2+3 in
    fives and sevens, and the whole measure otherwise (3/8, 8/8). These are music21's
    default beam groups (its `TimeSignature.beamSequence`), so that engravings through
    music21 and through this writer beam alike.
    """
    count, unit = time_fraction(time) if time else (4, 4)
    u = Fraction(4, unit)
    if count == 5 and unit <= 8:
        lengths = [2 * u, 3 * u]
    elif count == 7:
        lengths = [2 * u, 2 * u, 3 * u]
    elif count % 3 == 0 and count > 3:
        lengths = [3 * u] * (count // 3)
    elif 2 <= count <= 4 and (unit <= 4 or count == 4 and unit == 8):
        lengths = [u] * count
    else:
        lengths = [count * u]
    ends, total = [], Fraction(0)
    for length in lengths:
        total += length
        ends.append(total)
    return tuple(ends)


@dataclass
class _Accidentals:
    """Which accidentals one staff prints in one measure (shared by its voices).

    As engravers print them: an alteration other than the one in force (key signature,
    or an earlier accidental on that line or space in this measure); a courtesy
    accidental on a step that the previous measure, or another octave earlier in this
    measure, altered otherwise; none on a note tied over from before.
    """

    key: int
    previous: dict[str, int]  # step -> alteration written in the previous measure
    in_force: dict[tuple[str, int], int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)  # step -> last alteration shown

    def attr(self, pitch: Pitch, tied_over: bool) -> str:
        step, octave, alter = pitch.step, pitch.octave, pitch.alter
        current = self.in_force.get((step, octave), key_alter(self.key, step))
        if tied_over:
            show = False
            if alter != key_alter(self.key, step):
                self.written[step] = alter
        else:
            show = alter != current
            if not show and step not in self.written:
                show = self.previous.get(step, alter) != alter
            if not show:
                show = any(
                    a != alter for (s, o), a in self.in_force.items() if s == step and o != octave
                )
        if show:
            self.in_force[(step, octave)] = alter
            self.written[step] = alter
            return f' accid="{_ACCID[alter]}"'
        return f' accid.ges="{_ACCID_GES[alter]}"' if alter else ""


@dataclass
class _VoiceWriter:
    """Writes the events of one layer, tracking accidentals (per staff) and ties (per voice)."""

    measure_id: str
    staff: int
    voice: int
    accidentals: _Accidentals
    open_ties: set[int]
    beam_ends: tuple[Fraction, ...]  # see `beam_groups`; () beams nothing
    out: list[str] = field(default_factory=list)
    index: int = 0

    def pitch_attrs(self, pitch: Pitch, tie_start: bool) -> str:
        ends = pitch.midi in self.open_ties
        attrs = f' pname="{pitch.step.lower()}" oct="{pitch.octave}"'
        attrs += self.accidentals.attr(pitch, tied_over=ends)
        if ends and tie_start:
            attrs += ' tie="m"'
        elif tie_start:
            attrs += ' tie="i"'
        elif ends:
            attrs += ' tie="t"'
        return attrs

    def dur_attrs(self, duration: Duration) -> str:
        attrs = f' dur="{_MEI_DUR[duration.type]}"'
        if duration.dots:
            attrs += f' dots="{duration.dots}"'
        return attrs

    def note(self, note: Note) -> None:
        eid = event_id(self.measure_id, self.staff, self.voice, self.index)
        self.index += 1
        grace = ' grace="unacc"' if note.grace else ""
        starts = set()
        if note.is_chord:
            inner = []
            for k, (pitch, tie) in enumerate(zip(note.pitches, note.ties, strict=False)):
                inner.append(f'<note xml:id="{eid}_p{k}"{self.pitch_attrs(pitch, tie)}/>')
                if tie:
                    starts.add(pitch.midi)
            self.out.append(
                f'<chord xml:id="{eid}"{self.dur_attrs(note.duration)}{grace}>'
                + "".join(inner)
                + "</chord>"
            )
        else:
            pitch, tie = note.pitches[0], note.ties[0] if note.ties else False
            attrs = self.pitch_attrs(pitch, tie)
            self.out.append(f'<note xml:id="{eid}"{self.dur_attrs(note.duration)}{attrs}{grace}/>')
            if tie:
                starts.add(pitch.midi)
        if not note.grace:
            self.open_ties.clear()
            self.open_ties.update(starts)

    def rest(self, rest: Rest) -> None:
        eid = event_id(self.measure_id, self.staff, self.voice, self.index)
        self.index += 1
        self.open_ties.clear()
        if rest.duration is None:
            self.out.append(f'<mRest xml:id="{eid}"/>')
        else:
            self.out.append(f'<rest xml:id="{eid}"{self.dur_attrs(rest.duration)}/>')

    def events(self, events: list[Event], offset: Fraction) -> Fraction:
        """Write events starting at `offset` (quarters); returns the offset after them.

        Beamable notes (eighths and shorter) that start in the same beam group are beamed
        together, with any grace notes between them; a rest, a longer note or a tuplet
        ends a beam."""
        group: list[Note] = []  # beamed notes, and grace notes between them
        graces: list[Note] = []  # grace notes after the group's last note

        def flush() -> None:
            beamed = sum(not n.grace for n in group) > 1
            if beamed:
                self.out.append("<beam>")
            for n in group:
                self.note(n)
            if beamed:
                self.out.append("</beam>")
            for n in graces:
                self.note(n)
            group.clear()
            graces.clear()

        group_index = -1
        for ev in events:
            if isinstance(ev, Note) and not ev.grace and ev.duration.type in _BEAMABLE:
                index = bisect.bisect_right(self.beam_ends, offset)
                if group and index != group_index:
                    flush()
                if index < len(self.beam_ends):
                    group.extend(graces)
                    graces.clear()
                    group.append(ev)
                    group_index = index
                else:
                    self.note(ev)
                offset += ev.duration.quarter_length
                continue
            if isinstance(ev, Note) and ev.grace and group:
                graces.append(ev)
                continue
            flush()
            if isinstance(ev, Note):
                self.note(ev)
                offset += Fraction(0) if ev.grace else ev.duration.quarter_length
            elif isinstance(ev, Rest):
                self.rest(ev)
                offset += ev.duration.quarter_length if ev.duration else Fraction(0)
            elif isinstance(ev, ClefChange):
                self.out.append(f"<clef{_clef_attrs(ev.clef, '')}/>")
            elif isinstance(ev, Tuplet):
                self.out.append(
                    f'<tuplet num="{ev.actual}" numbase="{ev.normal}" num.visible="true"'
                    ' bracket.visible="true">'
                )
                saved = self.beam_ends
                # The whole tuplet under one beam when it can be.
                self.beam_ends = (Fraction(10**6),) if saved else ()
                inner_end = self.events(ev.events, Fraction(0))
                self.beam_ends = saved
                self.out.append("</tuplet>")
                offset += inner_end * ev.ratio
        flush()
        return offset


def _voice_beam_ends(voice: list[Event], time: str | None, pickup: bool) -> tuple[Fraction, ...]:
    """The beam group ends for one voice of a measure, as music21's `makeBeams` has them:
    none in an overfull voice; a short voice of a pickup measure ends with the bar."""
    ends = beam_groups(time)
    if not time:
        return ends
    length, bar = voice_length(voice, time), time_length(time)
    if length > bar:
        return ()
    if pickup and length < bar:
        return tuple(e - (bar - length) for e in ends)
    return ends


def measures_to_mei(
    parts: list[Part],
    measures: list[Measure],
    contexts: list[StaffContext],
    title: str = "",
    labels: bool = False,
) -> str:
    """MEI of consecutive measures, engraved as one line starting with the `contexts` in force.

    The clef and key in force are printed at the start (as an engraver prints them at every
    line start); the time signature only where the first measure itself sets it. With
    ``labels`` the parts' names stand before their staves (Verovio prints them on the first
    system), as on a printed score; the studio's line-by-line view leaves them out.
    """
    staff_count = max(
        sum(p.staves for p in parts), max((len(m.staves) for m in measures), default=1)
    )
    ctx = [copy.copy(c) for c in contexts] + [
        StaffContext() for _ in range(staff_count - len(contexts))
    ]
    first = measures[0] if measures else None
    out: list[str] = [
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<mei xmlns="http://www.music-encoding.org/ns/mei" meiversion="5.0">'
        f"<meiHead><fileDesc><titleStmt><title>{escape(title)}</title></titleStmt>"
        "<pubStmt/></fileDesc></meiHead><music><body><mdiv><score><scoreDef>"
    ]
    # Staff definitions: what is in force, overridden by the first measure's own changes.
    staff_defs = []
    for s in range(staff_count):
        sm = first.staves[s] if first and s < len(first.staves) else StaffMeasure()
        clef = sm.clef or ctx[s].clef or "G2"
        key = sm.key if sm.key is not None else ctx[s].key
        time = sm.time or ctx[s].time
        attrs = f' n="{s + 1}" lines="5"{_clef_attrs(clef, "clef.")} keysig="{_key_attr(key)}"'
        if time:
            attrs += _meter_attrs(time, visible=sm.time is not None)
        staff_defs.append(f"<staffDef{attrs}/>")
    out.append('<staffGrp symbol="bracket" bar.thru="false">' if len(parts) > 1 else "<staffGrp>")
    s = 0
    for part in parts:
        group = staff_defs[s : s + part.staves]
        s += part.staves
        label = f"<label>{escape(part.name)}</label>" if labels and part.name else ""
        if part.staves > 1:
            out.append(
                f'<staffGrp symbol="brace" bar.thru="true">{label}' + "".join(group) + "</staffGrp>"
            )
        elif label and group:
            out.append(group[0][:-2] + f">{label}</staffDef>")
        else:
            out += group
    out += staff_defs[s:]
    out.append("</staffGrp></scoreDef><section>")

    open_ties: dict[tuple[int, int], set[int]] = {}
    written: dict[int, dict[str, int]] = {}  # per staff, the previous measure's accidentals
    volta: int | None = None
    for i, measure in enumerate(measures):
        # Changes inside the line (the first measure's went into the scoreDef).
        if i:
            changes = []
            for s, sm in enumerate(measure.staves):
                attrs = ""
                if sm.key is not None and sm.key != ctx[s].key:
                    attrs += f' keysig="{_key_attr(sm.key)}"'
                if sm.time is not None and sm.time != ctx[s].time:
                    attrs += _meter_attrs(sm.time, visible=True)
                # (A new clef went into the previous measure, before the barline.)
                if attrs:
                    changes.append(f'<staffDef n="{s + 1}"{attrs}/>')
            if changes:
                out.append("<scoreDef><staffGrp>" + "".join(changes) + "</staffGrp></scoreDef>")
        if measure.volta != volta:
            if volta is not None:
                out.append("</ending>")
            if measure.volta is not None:
                last = i
                while last + 1 < len(measures) and measures[last + 1].volta == measure.volta:
                    last += 1
                # A bracket closes with a hook over a repeat sign and stays open otherwise.
                hook = "" if measures[last].barline == "repeat-end" else ' lendsym="none"'
                out.append(f'<ending n="{measure.volta}"{hook}>')
            volta = measure.volta
        attrs = f' xml:id="{escape(measure.id)}" n="{escape(measure.number or str(i + 1))}"'
        if measure.barline in _BARLINE:
            attrs += f' right="{_BARLINE[measure.barline]}"'
        if measure.repeat_start:
            attrs += ' left="rptstart"'
        out.append(f"<measure{attrs}>")
        following = measures[i + 1].staves if i + 1 < len(measures) else []
        for s in range(staff_count):
            sm = measure.staves[s] if s < len(measure.staves) else StaffMeasure()
            apply_changes(ctx[s], sm)
            # A clef that changes at the barline is printed before it, as engravers do
            # (and as Verovio places one read from MusicXML).
            clef = following[s].clef if s < len(following) else None
            clef_end = f"<clef{_clef_attrs(clef, '')}/>" if clef and clef != ctx[s].clef else ""
            out.append(f'<staff n="{s + 1}">')
            accidentals = _Accidentals(ctx[s].key, written.get(s, {}))
            written[s] = accidentals.written
            if measure.multirest > 1:
                out.append(f'<layer n="1"><multiRest num="{measure.multirest}"/>{clef_end}</layer>')
            else:
                voices = sm.voices or [[]]
                for v, voice in enumerate(voices):
                    if not voice and v:
                        continue
                    writer = _VoiceWriter(
                        measure.id,
                        s,
                        v,
                        accidentals,
                        open_ties.setdefault((s, v), set()),
                        _voice_beam_ends(voice, ctx[s].time, pickup=i == 0),
                    )
                    writer.events(voice, Fraction(0))
                    body = "".join(writer.out) or "<mSpace/>"
                    if v == 0:
                        body += clef_end
                    out.append(f'<layer n="{v + 1}">{body}</layer>')
            out.append("</staff>")
        out.append("</measure>")
    if volta is not None:
        out.append("</ending>")
    out.append("</section></score></mdiv></body></music></mei>")
    return "".join(out)
