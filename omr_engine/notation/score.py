"""The score model: parts, measures, staves, voices and events, in musicians' names.

A `Score` is a list of measures (columns across all staves, as printed in a system), each
holding one `StaffMeasure` per staff. Measure-major order matches reading order of the
tokens and lets every measure keep one stable id and one box on the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from .symbols import Duration, Pitch, time_length


@dataclass
class Note:
    """A note or a chord: one printed duration, one or more pitches (low to high)."""

    pitches: list[Pitch]
    duration: Duration
    ties: list[bool] = field(default_factory=list)  # tie starts here, per pitch
    grace: bool = False

    def __post_init__(self) -> None:
        if not self.ties:
            self.ties = [False] * len(self.pitches)

    @property
    def is_chord(self) -> bool:
        return len(self.pitches) > 1

    def canonical(self) -> Note:
        """The same note with its pitches in canonical (low to high) order."""
        order = sorted(range(len(self.pitches)), key=lambda i: self.pitches[i].sort_key)
        return Note(
            [self.pitches[i] for i in order],
            self.duration,
            [self.ties[i] for i in order],
            self.grace,
        )


@dataclass
class Rest:
    """A rest; `duration=None` is a whole-measure rest (whatever the time signature)."""

    duration: Duration | None


@dataclass
class ClefChange:
    """A clef printed inside a measure."""

    clef: str


@dataclass
class Tuplet:
    """A tuplet bracket: `actual` notes in the time of `normal`, over its events."""

    actual: int
    normal: int
    events: list[Note | Rest] = field(default_factory=list)

    @property
    def ratio(self) -> Fraction:
        return Fraction(self.normal, self.actual)


Event = Note | Rest | ClefChange | Tuplet


def event_length(event: Event) -> Fraction:
    """Sounding length in quarter notes (whole-measure rests count 0 here; see `voice_length`)."""
    if isinstance(event, Note):
        return Fraction(0) if event.grace else event.duration.quarter_length
    if isinstance(event, Rest):
        return event.duration.quarter_length if event.duration else Fraction(0)
    if isinstance(event, Tuplet):
        return sum((event_length(e) for e in event.events), Fraction(0)) * event.ratio
    return Fraction(0)


def voice_length(voice: list[Event], time: str | None) -> Fraction:
    """Length of a voice in quarter notes; a whole-measure rest fills the measure."""
    if any(isinstance(e, Rest) and e.duration is None for e in voice) and time:
        return time_length(time)
    return sum((event_length(e) for e in voice), Fraction(0))


@dataclass
class StaffMeasure:
    """One staff's content in one measure; clef/key/time are set only where printed as changes."""

    voices: list[list[Event]] = field(default_factory=lambda: [[]])
    clef: str | None = None
    key: int | None = None
    time: str | None = None


@dataclass
class Measure:
    """A measure across all staves of the score, with a stable id and its place on a page."""

    id: str
    staves: list[StaffMeasure]
    number: str = ""
    barline: str = "single"
    repeat_start: bool = False
    volta: int | None = None
    multirest: int = 0  # > 1: this printed measure stands for that many bars of rest
    page: int | None = None
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 in page pixels


@dataclass
class Part:
    """An instrument, printed on `staves` consecutive staves (2 for a piano)."""

    name: str = ""
    staves: int = 1


@dataclass
class StaffContext:
    """The clef, key and time in force on one staff."""

    clef: str | None = None
    key: int = 0
    time: str | None = None


@dataclass
class Score:
    """Parts and the measures that run across all their staves."""

    parts: list[Part]
    measures: list[Measure] = field(default_factory=list)
    title: str = ""

    @property
    def staff_count(self) -> int:
        return sum(p.staves for p in self.parts)

    def contexts_before(self, index: int) -> list[StaffContext]:
        """Clef, key and time in force on each staff just before measure `index` starts."""
        ctx = [StaffContext() for _ in range(self.staff_count)]
        for measure in self.measures[:index]:
            for c, sm in zip(ctx, measure.staves, strict=False):
                apply_changes(c, sm)
        return ctx

    def measure_by_id(self, measure_id: str) -> Measure:
        for m in self.measures:
            if m.id == measure_id:
                return m
        raise KeyError(measure_id)


def opens_with_pickup(score: Score) -> bool:
    """Whether the first measure is an upbeat: shorter on every staff than the bar its time
    signature sets, with measures after it. Engravers number such a measure 0."""
    if len(score.measures) < 2:
        return False
    longest, bar = Fraction(0), None
    for sm in score.measures[0].staves:
        ctx = StaffContext()
        apply_changes(ctx, sm)
        if ctx.time is None:
            return False
        bar = time_length(ctx.time) if bar is None else max(bar, time_length(ctx.time))
        for voice in sm.voices:
            longest = max(longest, voice_length(voice, ctx.time))
    return bar is not None and Fraction(0) < longest < bar


def number_measures(measures: list[Measure], before: int, pickup: bool) -> None:
    """Number measures through a document, `before` measures coming before them: from 1, or
    from 0 when the document opens with an upbeat (`pickup`), as the printed numbers go."""
    for i, m in enumerate(measures):
        m.number = str(before + i + (0 if pickup else 1))


def apply_changes(ctx: StaffContext, sm: StaffMeasure) -> None:
    """Update a staff context with the attributes and clef changes of one staff measure."""
    if sm.clef is not None:
        ctx.clef = sm.clef
    if sm.key is not None:
        ctx.key = sm.key
    if sm.time is not None:
        ctx.time = sm.time
    for voice in sm.voices[:1]:
        for e in voice:
            if isinstance(e, ClefChange):
                ctx.clef = e.clef
