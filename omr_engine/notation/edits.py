"""Edit operations on measures: what each keyboard edit of the correction studio does to
the music.

Every operation takes a measure and returns a new one (the input is never changed), so an
undo command can keep both. Nothing here knows about Qt, pages or selection widgets.

An event is addressed by `NoteAddress(staff, voice, index)`, where `index` counts the notes
and rests of that voice in reading order, tuplets flattened and clef changes skipped (what a
person steps through with the arrow keys).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from .score import (
    ClefChange,
    Event,
    Measure,
    Note,
    Rest,
    StaffContext,
    StaffMeasure,
    Tuplet,
)
from .symbols import (
    ALTERS,
    CLEFS,
    DURATION_TYPES,
    KEYS,
    MAX_DOTS,
    STEP_SEMITONES,
    STEPS,
    TIME_SIGNATURES,
    Duration,
    Pitch,
    key_alter,
    time_length,
)

#: The pitch a new note gets on an empty staff: the middle line of each clef.
_MIDDLE_LINE = {
    "G2": Pitch("B", 0, 4),
    "G1": Pitch("D", 0, 5),
    "G2-8vb": Pitch("B", 0, 3),
    "G2-8va": Pitch("B", 0, 5),
    "F4": Pitch("D", 0, 3),
    "F3": Pitch("F", 0, 3),
    "F5": Pitch("B", 0, 2),
    "F4-8vb": Pitch("D", 0, 2),
    "C1": Pitch("G", 0, 4),
    "C2": Pitch("E", 0, 4),
    "C3": Pitch("C", 0, 4),
    "C4": Pitch("A", 0, 3),
    "C5": Pitch("F", 0, 3),
}


class EditError(Exception):
    """An edit that does not apply here; the message says why in a sentence."""


@dataclass(frozen=True)
class NoteAddress:
    """Where an event is in a measure: staff, voice, and index among its notes and rests."""

    staff: int = 0
    voice: int = 0
    index: int = 0


# ------------------------------------------------------------------ addressing


def leaf_slots(voice: list[Event]) -> list[tuple[list[Event], int]]:
    """(container, position) of every note and rest of a voice, tuplets flattened."""
    slots: list[tuple[list[Event], int]] = []
    for i, ev in enumerate(voice):
        if isinstance(ev, Tuplet):
            slots += [(ev.events, j) for j in range(len(ev.events))]
        elif not isinstance(ev, ClefChange):
            slots.append((voice, i))
    return slots


def event_count(measure: Measure, staff: int, voice: int) -> int:
    """How many notes and rests a staff's voice holds (0 if there is no such voice)."""
    try:
        return len(leaf_slots(measure.staves[staff].voices[voice]))
    except IndexError:
        return 0


def event_at(measure: Measure, address: NoteAddress) -> Note | Rest | None:
    """The note or rest at an address, or None if there is none."""
    try:
        voice = measure.staves[address.staff].voices[address.voice]
    except IndexError:
        return None
    slots = leaf_slots(voice)
    if not 0 <= address.index < len(slots):
        return None
    container, pos = slots[address.index]
    ev = container[pos]
    return ev if isinstance(ev, Note | Rest) else None


def _edit(
    measure: Measure, address: NoteAddress, change: Callable[[Note | Rest], Note | Rest | None]
) -> Measure:
    """A copy of `measure` with the event at `address` replaced by `change(event)` (None
    removes it; a tuplet left empty goes too)."""
    new = copy.deepcopy(measure)
    try:
        voice = new.staves[address.staff].voices[address.voice]
    except IndexError:
        raise EditError("nothing is selected there") from None
    slots = leaf_slots(voice)
    if not 0 <= address.index < len(slots):
        raise EditError("select a note or a rest first")
    container, pos = slots[address.index]
    replacement = change(container[pos])  # type: ignore[arg-type]
    if replacement is None:
        del container[pos]
        voice[:] = [e for e in voice if not (isinstance(e, Tuplet) and not e.events)]
    else:
        container[pos] = replacement
    new.multirest = 0 if new.multirest and replacement is not None else new.multirest
    return new


# ------------------------------------------------------------------ pitch


def spell(midi: int, key: int, prefer_sharps: bool) -> Pitch:
    """A spelling of a MIDI pitch: the key's own note if it has one, else a sharp going up
    and a flat going down (as MuseScore spells arrow-key steps)."""
    pc = midi % 12
    candidates: list[Pitch] = []
    for step in STEPS:
        for alter in ALTERS:
            base = STEP_SEMITONES[step] + alter
            if base % 12 == pc:
                # B#3 sounds as C4: the octave belongs to the written step.
                candidates.append(Pitch(step, alter, (midi - base) // 12 - 1))

    def rank(p: Pitch) -> tuple[int, int, int]:
        diatonic = p.alter == key_alter(key, p.step)
        direction = p.alter >= 0 if prefer_sharps else p.alter <= 0
        return (0 if diatonic else 1, 0 if direction else 1, abs(p.alter))

    valid = [p for p in candidates if 0 <= p.octave <= 8]
    if not valid:
        raise EditError("that note is outside the range the notation can name")
    return min(valid, key=rank)


def nearest_pitch(step: str, key: int, reference: Pitch) -> Pitch:
    """The note named `step` (altered as the key says) nearest to `reference` on the staff
    (counted in staff positions, as MuseScore does: C5 then F goes up a fourth to F5)."""
    alter = key_alter(key, step)
    here = STEPS.index(reference.step) + 7 * reference.octave
    best = None
    for octave in range(max(0, reference.octave - 1), min(8, reference.octave + 1) + 1):
        candidate = Pitch(step, alter, octave)
        distance = abs(STEPS.index(step) + 7 * octave - here)
        if best is None or distance < best[0]:
            best = (distance, candidate)
    assert best is not None
    return best[1]


def _reference_pitch(measure: Measure, address: NoteAddress, ctx: StaffContext) -> Pitch:
    """The pitch a typed letter lands near: the selected note, else the previous note."""
    voice = measure.staves[address.staff].voices[address.voice]
    slots = leaf_slots(voice)
    for container, pos in reversed(slots[: address.index + 1]):
        ev = container[pos]
        if isinstance(ev, Note):
            return ev.pitches[-1]
    return _MIDDLE_LINE.get(ctx.clef or "G2", Pitch("B", 0, 4))


def _rest_duration(rest: Rest, ctx: StaffContext) -> Duration:
    """The value of a rest; a whole-measure rest counts as the bar's length."""
    if rest.duration is not None:
        return rest.duration
    # A whole-measure rest turned into a note: the note fills the measure if a value can.
    bar = time_length(ctx.time) if ctx.time else Fraction(4)
    for d in (Duration(t, dots) for t in DURATION_TYPES for dots in range(MAX_DOTS + 1)):
        if d.quarter_length == bar:
            return d
    return Duration("whole")


def set_pitch_step(measure: Measure, address: NoteAddress, step: str, ctx: StaffContext) -> Measure:
    """Letter A-G: the selected note (a chord's top note) becomes that note, in the key,
    nearest to where it was; a selected rest becomes a note of the same length."""
    step = step.upper()
    if step not in STEPS:
        raise EditError(f"{step} is not a note name")
    reference = _reference_pitch(measure, address, ctx)
    pitch = nearest_pitch(step, ctx.key, reference)

    def change(ev: Note | Rest) -> Note | Rest:
        if isinstance(ev, Rest):
            return Note([pitch], _rest_duration(ev, ctx))
        pitches = list(ev.pitches)
        pitches[-1] = pitch
        return Note(pitches, ev.duration, list(ev.ties), ev.grace).canonical()

    return _edit(measure, address, change)


def transpose(measure: Measure, address: NoteAddress, semitones: int, key: int) -> Measure:
    """Up/Down arrows: every pitch of the selected note moves by semitones, respelled."""

    def change(ev: Note | Rest) -> Note | Rest:
        if isinstance(ev, Rest):
            raise EditError("a rest has no pitch to move")
        pitches = [spell(p.midi + semitones, key, semitones > 0) for p in ev.pitches]
        return Note(pitches, ev.duration, list(ev.ties), ev.grace).canonical()

    return _edit(measure, address, change)


def shift_octave(measure: Measure, address: NoteAddress, octaves: int) -> Measure:
    """Ctrl+Up/Down: the selected note moves by octaves, keeping its spelling."""

    def change(ev: Note | Rest) -> Note | Rest:
        if isinstance(ev, Rest):
            raise EditError("a rest has no pitch to move")
        pitches = [Pitch(p.step, p.alter, p.octave + octaves) for p in ev.pitches]
        if any(not 0 <= p.octave <= 8 for p in pitches):
            raise EditError("that octave is outside the range the notation can name")
        return Note(pitches, ev.duration, list(ev.ties), ev.grace)

    return _edit(measure, address, change)


# ------------------------------------------------------------------ duration


def set_duration(
    measure: Measure, address: NoteAddress, duration_type: str, ctx: StaffContext
) -> Measure:
    """Digits 1-8: the selected note or rest gets this note value (dots removed)."""
    if duration_type not in DURATION_TYPES:
        raise EditError(f"{duration_type} is not a note value")

    def change(ev: Note | Rest) -> Note | Rest:
        d = Duration(duration_type)
        if isinstance(ev, Rest):
            return Rest(d)
        return Note(list(ev.pitches), d, list(ev.ties), ev.grace)

    return _edit(measure, address, change)


def toggle_dot(measure: Measure, address: NoteAddress, ctx: StaffContext) -> Measure:
    """Period: add a dot to an undotted note or rest, remove the dots of a dotted one."""

    def change(ev: Note | Rest) -> Note | Rest:
        d = ev.duration if isinstance(ev, Note) else _rest_duration(ev, ctx)
        toggled = Duration(d.type, 0 if d.dots else 1)
        if isinstance(ev, Rest):
            return Rest(toggled)
        return Note(list(ev.pitches), toggled, list(ev.ties), ev.grace)

    return _edit(measure, address, change)


def to_rest(measure: Measure, address: NoteAddress, ctx: StaffContext) -> Measure:
    """Delete: a note becomes a rest of the same value (a grace note just goes)."""

    def change(ev: Note | Rest) -> Note | Rest | None:
        if isinstance(ev, Rest):
            raise EditError("it is already a rest")
        return None if ev.grace else Rest(ev.duration)

    return _edit(measure, address, change)


def delete_event(measure: Measure, address: NoteAddress) -> Measure:
    """Ctrl+Delete: the selected note or rest is removed; the measure gets shorter."""
    return _edit(measure, address, lambda ev: None)


def insert_after(measure: Measure, address: NoteAddress, ctx: StaffContext) -> Measure:
    """Insert: a copy of the selected note or rest goes right after it (a quarter note on
    the clef's middle line in an empty voice)."""
    new = copy.deepcopy(measure)
    try:
        voice = new.staves[address.staff].voices[address.voice]
    except IndexError:
        raise EditError("nothing is selected there") from None
    slots = leaf_slots(voice)
    if not slots:
        voice.append(
            Note([_MIDDLE_LINE.get(ctx.clef or "G2", Pitch("B", 0, 4))], Duration("quarter"))
        )
        return new
    if not 0 <= address.index < len(slots):
        raise EditError("select a note or a rest first")
    container, pos = slots[address.index]
    ev = copy.deepcopy(container[pos])
    if isinstance(ev, Rest) and ev.duration is None:
        ev = Rest(_rest_duration(ev, ctx))
    if isinstance(ev, Note):
        ev.ties = [False] * len(ev.pitches)
    container.insert(pos + 1, ev)
    return new


# ------------------------------------------------------------------ measures and attributes


def empty_measure(staff_count: int, measure_id: str, number: str = "") -> Measure:
    """A measure of whole-measure rests on every staff."""
    return Measure(
        id=measure_id,
        staves=[StaffMeasure(voices=[[Rest(None)]]) for _ in range(staff_count)],
        number=number,
    )


def set_clef(measure: Measure, staff: int, clef: str) -> Measure:
    """The staff's clef changes at the start of this measure."""
    if clef not in CLEFS:
        raise EditError(f"{clef} is not a clef")
    new = copy.deepcopy(measure)
    if not 0 <= staff < len(new.staves):
        raise EditError("there is no such staff in this measure")
    new.staves[staff].clef = clef
    return new


def set_key(measure: Measure, key: int) -> Measure:
    """Every staff's key signature changes at the start of this measure."""
    if key not in KEYS:
        raise EditError(f"a key signature has at most 7 sharps or flats, not {key}")
    new = copy.deepcopy(measure)
    for sm in new.staves:
        sm.key = key
    return new


def set_time(measure: Measure, time: str) -> Measure:
    """Every staff's time signature changes at the start of this measure."""
    if time not in TIME_SIGNATURES:
        raise EditError(f"{time} is not a time signature the notation can name")
    new = copy.deepcopy(measure)
    for sm in new.staves:
        sm.time = time
    return new


# ------------------------------------------------------------------ navigation


def step_address(
    measures: list[Measure], index: int, address: NoteAddress, delta: int
) -> tuple[int, NoteAddress] | None:
    """The note `delta` (+1/-1) steps from `address` in measure `index`, crossing into the
    next or previous measure on the same staff and voice; None past either end."""
    if not 0 <= index < len(measures):
        return None
    i, pos = index, address.index + delta
    while True:
        if 0 <= pos < event_count(measures[i], address.staff, address.voice):
            return i, NoteAddress(address.staff, address.voice, pos)
        i += 1 if delta > 0 else -1
        if not 0 <= i < len(measures):
            return None
        pos = 0 if delta > 0 else event_count(measures[i], address.staff, address.voice) - 1


def clamp_address(measure: Measure, address: NoteAddress) -> NoteAddress:
    """The nearest address that exists in `measure` (after an edit removed events)."""
    staff = min(max(address.staff, 0), max(len(measure.staves) - 1, 0))
    voices = measure.staves[staff].voices if measure.staves else [[]]
    voice = min(max(address.voice, 0), max(len(voices) - 1, 0))
    count = event_count(measure, staff, voice)
    return NoteAddress(staff, voice, min(max(address.index, 0), max(count - 1, 0)))
