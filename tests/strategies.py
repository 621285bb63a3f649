"""Hypothesis strategies that build random Scores from the vocabulary's symbols."""

from __future__ import annotations

from hypothesis import strategies as st

from omr_engine.notation.score import (
    ClefChange,
    Measure,
    Note,
    Part,
    Rest,
    Score,
    StaffMeasure,
    Tuplet,
    voice_length,
)
from omr_engine.notation.symbols import (
    CLEFS,
    TUPLETS,
    Duration,
    Pitch,
    all_durations,
    time_length,
)

COMMON_TIMES = ("C", "C|", "2/4", "3/4", "4/4", "6/8", "3/8", "9/8", "12/8", "2/2", "5/4")

pitches = st.builds(
    Pitch,
    st.sampled_from("CDEFGAB"),
    st.integers(-2, 2),
    st.integers(1, 7),
)
durations = st.sampled_from(all_durations())
plain_durations = st.sampled_from(
    [Duration(t, d) for t in ("whole", "half", "quarter", "eighth", "16th") for d in (0, 1)]
)


@st.composite
def notes(draw, grace_allowed: bool = True, duration=durations) -> Note:
    chord = draw(st.lists(pitches, min_size=1, max_size=3, unique_by=lambda p: p.midi))
    ties = draw(st.lists(st.booleans(), min_size=len(chord), max_size=len(chord)))
    grace = grace_allowed and draw(st.integers(0, 9)) == 0
    if grace:
        ties = [False] * len(chord)
    return Note(chord, draw(duration), ties, grace).canonical()


rests = st.builds(Rest, durations)


@st.composite
def tuplets(draw, complete: bool = False) -> Tuplet:
    actual, normal = draw(st.sampled_from(TUPLETS))
    if complete:
        unit = draw(st.sampled_from([Duration("eighth"), Duration("16th"), Duration("quarter")]))
        events = [
            draw(st.one_of(notes(False, st.just(unit)), st.just(Rest(unit)))) for _ in range(actual)
        ]
        return Tuplet(actual, normal, events)
    events = draw(st.lists(st.one_of(notes(False), rests), min_size=1, max_size=5))
    return Tuplet(actual, normal, events)


def _keep_only_resolved_ties(events: list) -> None:
    """Clear ties that do not lead to the same pitch in the next note of the voice."""
    for ev, nxt in zip(events, [*events[1:], None], strict=True):
        if isinstance(ev, Note):
            following = set(nxt.pitches) if isinstance(nxt, Note) and not nxt.grace else set()
            ev.ties = [t and p in following for p, t in zip(ev.pitches, ev.ties, strict=True)]
        elif isinstance(ev, Tuplet):
            _keep_only_resolved_ties(ev.events)
            for inner in ev.events:
                if isinstance(inner, Note):
                    inner.ties = [False] * len(inner.pitches)


@st.composite
def voices(draw, first: bool, music21_safe: bool) -> list:
    if draw(st.integers(0, 12)) == 0:
        return [Rest(None)]
    duration = plain_durations if music21_safe else durations
    event = st.one_of(
        notes(True, duration),
        st.builds(Rest, duration),
        tuplets(complete=music21_safe),
    )
    events = draw(st.lists(event, min_size=1, max_size=6))
    if all(isinstance(e, Note) and e.grace for e in events):
        events.append(Rest(Duration("quarter")))  # a measure of grace notes only has no length
    if len(events) == 1 and isinstance(events[0], Rest):
        return [Rest(None)]  # a lone rest is read as a whole-measure rest
    if music21_safe:
        _keep_only_resolved_ties(events)
    if first and not music21_safe and len(events) > 1 and draw(st.booleans()):
        events.insert(
            draw(st.integers(1, len(events) - 1)), ClefChange(draw(st.sampled_from(CLEFS)))
        )
    return events


@st.composite
def scores(draw, music21_safe: bool = False) -> Score:
    """A random Score (not necessarily grammatical: durations need not fill measures).

    `music21_safe` leaves out what music21 cannot carry through MusicXML for music that
    does not add up (clef changes inside overfull measures, voltas on arbitrary measures)
    and tuplets that do not fill their bracket; those have example-based tests.
    """
    staves = draw(st.integers(1, 3))
    parts = [Part(staves=2), Part()] if staves == 3 else [Part(staves=1) for _ in range(staves)]
    if staves == 2 and draw(st.booleans()):
        parts = [Part(name="Piano", staves=2)]
    count = draw(st.integers(1, 4))
    current_time = "4/4"
    measures = []
    for i in range(count):
        sms = []
        key = draw(st.integers(-7, 7))
        time = draw(st.sampled_from(COMMON_TIMES))
        change = i == 0 or draw(st.integers(0, 5)) == 0
        for _ in range(staves):
            sm = StaffMeasure(
                voices=[draw(voices(v == 0, music21_safe)) for v in range(draw(st.integers(1, 2)))]
            )
            if change:  # staves share key and time, as MusicXML parts do
                sm.clef = draw(st.sampled_from(CLEFS))
                sm.key, sm.time = key, time
                current_time = time
            if music21_safe:  # MusicXML cannot say where an overfull measure's notes belong
                for voice in sm.voices:
                    while len(voice) > 1 and voice_length(voice, current_time) > time_length(
                        current_time
                    ):
                        voice.pop()
                    lone_rest = len(voice) == 1 and isinstance(voice[0], Rest)
                    if lone_rest and voice_length(voice, current_time) >= time_length(current_time):
                        voice[0] = Rest(None)  # read back as a whole-measure rest
            sms.append(sm)
        measure = Measure(id=f"m{i}", staves=sms, number=str(i + 1))
        measure.barline = draw(st.sampled_from(["single", "double", "final", "repeat-end"]))
        measure.repeat_start = draw(st.integers(0, 5)) == 0
        if i and not music21_safe:
            measure.volta = draw(st.sampled_from([None, None, None, 1, 2]))
        if not music21_safe and draw(st.integers(0, 15)) == 0:
            measure.multirest = draw(st.integers(2, 12))
            for sm in measure.staves:
                sm.voices = [[]]
        measures.append(measure)
    return Score(parts=parts, measures=measures)
