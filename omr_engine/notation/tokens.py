"""Score <-> token sequence, in the one canonical order the model reads and writes.

Order: measure by measure; inside a measure `[<repeat-start>] [<volta:n>]`, then each staff
(separated by `<staff>`) as `[<clef>] [<key>] [<time>]` and its voices (separated by
`<voice>`), and last the barline token that closes the measure.

At the start of a line (`line_start=True`) the clef in force is always printed and so is a
key signature that is not C major / A minor, as engravers do; the time signature only where
it changes.
"""

from __future__ import annotations

from .reading_order import from_onset_order
from .score import (
    ClefChange,
    Event,
    Measure,
    Note,
    Part,
    Rest,
    Score,
    StaffContext,
    StaffMeasure,
    Tuplet,
    apply_changes,
)
from .symbols import key_text
from .vocabulary import (
    CHORD,
    GRACE,
    MREST,
    REPEAT_START,
    STAFF,
    TIE,
    TUPLET_END,
    VOICE,
    TokenInfo,
    barline_token,
    default_vocabulary,
    note_token,
    rest_token,
)


def event_tokens(event: Event) -> list[str]:
    """Tokens of one event."""
    if isinstance(event, Note):
        note = event.canonical()
        out = [GRACE] if note.grace else []
        for i, (pitch, tie) in enumerate(zip(note.pitches, note.ties, strict=True)):
            if i:
                out.append(CHORD)
            out.append(note_token(pitch, note.duration))
            if tie:
                out.append(TIE)
        return out
    if isinstance(event, Rest):
        return [MREST] if event.duration is None else [rest_token(event.duration)]
    if isinstance(event, ClefChange):
        return [f"<clef:{event.clef}>"]
    if isinstance(event, Tuplet):
        out = [f"<tuplet:{event.actual}:{event.normal}>"]
        for e in event.events:
            out += event_tokens(e)
        return out + [TUPLET_END]
    raise TypeError(f"not an event: {event!r}")


def staff_measure_tokens(
    sm: StaffMeasure, ctx: StaffContext, line_start: bool, piece_start: bool
) -> list[str]:
    """Tokens of one staff in one measure, given the context in force before it."""
    out: list[str] = []
    clef = sm.clef if sm.clef is not None else (ctx.clef if line_start else None)
    if clef is not None and (line_start or piece_start or clef != ctx.clef):
        out.append(f"<clef:{clef}>")
    key = sm.key if sm.key is not None else ctx.key
    key_changes = sm.key is not None and sm.key != ctx.key and not piece_start
    if key != 0 and (line_start or piece_start or key_changes) or key == 0 and key_changes:
        out.append(f"<key:{key_text(key)}>")
    if sm.time is not None and (piece_start or sm.time != ctx.time):
        out.append(f"<time:{sm.time}>")
    current_clef = clef if clef is not None else ctx.clef
    for v, voice in enumerate(sm.voices):
        if v:
            out.append(VOICE)
        for event in voice:
            if isinstance(event, ClefChange):
                if v or event.clef == current_clef:
                    continue  # not printed: a clef that changes nothing, or outside voice 1
                current_clef = event.clef
            out += event_tokens(event)
    return out


def measure_tokens(
    measure: Measure, contexts: list[StaffContext], line_start: bool, piece_start: bool
) -> list[str]:
    """Tokens of one measure; `contexts` (one per staff) are advanced past it."""
    if measure.multirest > 1:
        body = [f"<multirest:{measure.multirest}>"]
    out = [REPEAT_START] if measure.repeat_start else []
    if measure.volta:
        out.append(f"<volta:{measure.volta}>")
    for s, (sm, ctx) in enumerate(zip(measure.staves, contexts, strict=True)):
        if s:
            out.append(STAFF)
        out += staff_measure_tokens(sm, ctx, line_start, piece_start)
        if measure.multirest > 1:
            out += body
        apply_changes(ctx, sm)
    out.append(barline_token(measure.barline))
    return out


def score_to_tokens(score: Score, start: int = 0, stop: int | None = None) -> list[str]:
    """Tokens of measures `start:stop` printed as one line (line start at `start`)."""
    contexts = score.contexts_before(start)
    out: list[str] = []
    for i, measure in enumerate(score.measures[start:stop], start):
        out += measure_tokens(measure, contexts, line_start=i == start, piece_start=i == 0)
    return out


def without_ties_off_the_end(tokens: list[str]) -> list[str]:
    """A line of tokens without the ties from its last measure's last notes.

    A tie from the last note of a voice in a line's last measure leads to a measure the
    line does not hold. Where the music goes on in the next system, the engraver prints
    half an arc to the staff's end; where the engraving stops (an excerpt cut out of a
    piece and engraved on its own) Verovio, LilyPond and MuseScore print nothing.
    This is the line as printed in the second case: each voice's last event in the last
    measure, a note or a chord, loses its ties."""
    ends = [k for k, t in enumerate(tokens) if t.startswith("<barline")]
    last_end = ends[-1] if ends else len(tokens)
    if (
        ends
        and last_end < len(tokens) - 1
        and any(t.startswith(("<note", "<rest")) for t in tokens[last_end + 1 :])
    ):
        last_end = len(tokens)  # an unclosed measure after the last barline is the last
    start = next((k + 1 for k in reversed(ends) if k < last_end), 0)
    drop: set[int] = set()
    event = None  # where the current voice's last event starts
    for k in range(start, last_end + 1):
        token = tokens[k] if k < last_end else STAFF  # the line's end closes the last voice
        if token in (STAFF, VOICE):
            if event is not None and tokens[event].startswith("<note"):
                drop |= {j for j in range(event, k) if tokens[j] == TIE}
            event = None
        elif token.startswith(("<note", "<rest", "<mrest")) and (k == 0 or tokens[k - 1] != CHORD):
            event = k
    return [t for k, t in enumerate(tokens) if k not in drop]


def tokens_by_measure(score: Score) -> list[list[str]]:
    """Each measure's tokens as printed inside a continuous line (for per-measure comparison)."""
    contexts = score.contexts_before(0)
    return [
        measure_tokens(m, contexts, line_start=i == 0, piece_start=i == 0)
        for i, m in enumerate(score.measures)
    ]


class _Builder:
    """Builds a Score from tokens, tolerating tokens out of place (the grammar reports them)."""

    def __init__(self) -> None:
        self.measures: list[Measure] = []
        self.new_measure()

    def new_measure(self) -> None:
        self.measure = Measure(id="", staves=[StaffMeasure()])
        self.events_started = False
        self.tuplet: Tuplet | None = None
        self.pending_chord = False
        self.pending_grace = False

    @property
    def staff(self) -> StaffMeasure:
        return self.measure.staves[-1]

    @property
    def voice(self) -> list[Event]:
        return self.staff.voices[-1]

    def target(self) -> list:
        return self.tuplet.events if self.tuplet is not None else self.voice

    def last_note(self) -> Note | None:
        target = self.target()
        return target[-1] if target and isinstance(target[-1], Note) else None

    def feed(self, info: TokenInfo) -> None:
        kind = info.kind
        if kind in ("note", "rest", "mrest", "multirest", "tuplet"):
            self.events_started = True
        if kind == "repeat_start":
            self.measure.repeat_start = True
        elif kind == "volta":
            self.measure.volta = info.number
        elif kind == "clef":
            if self.events_started:
                self.voice.append(ClefChange(info.value or ""))
            else:
                self.staff.clef = info.value
        elif kind == "key":
            self.staff.key = info.key
        elif kind == "time":
            self.staff.time = info.value
        elif kind == "staff":
            self.close_tuplet()
            self.measure.staves.append(StaffMeasure())
            self.events_started = False
        elif kind == "voice":
            self.close_tuplet()
            self.staff.voices.append([])
        elif kind == "chord":
            self.pending_chord = True
        elif kind == "grace":
            self.pending_grace = True
        elif kind == "tie":
            note = self.last_note()
            if note is not None:
                note.ties[-1] = True
        elif kind == "note":
            self.add_note(info)
        elif kind == "rest":
            self.target().append(Rest(info.duration))
            self.pending_chord = self.pending_grace = False
        elif kind == "mrest":
            self.voice.append(Rest(None))
        elif kind == "multirest":
            self.measure.multirest = info.number
        elif kind == "tuplet":
            self.close_tuplet()
            actual, normal = info.tuplet_ratio
            self.tuplet = Tuplet(actual, normal)
        elif kind == "tuplet_end":
            self.close_tuplet()
        elif kind == "barline":
            self.close_tuplet()
            self.measure.barline = info.value or "single"
            self.measures.append(self.measure)
            self.new_measure()

    def add_note(self, info: TokenInfo) -> None:
        assert info.pitch is not None and info.duration is not None
        last = self.last_note()
        if self.pending_chord and last is not None:
            last.pitches.append(info.pitch)
            last.ties.append(False)
        else:
            self.target().append(Note([info.pitch], info.duration, grace=self.pending_grace))
        self.pending_chord = self.pending_grace = False

    def close_tuplet(self) -> None:
        if self.tuplet is not None:
            self.voice.append(self.tuplet)
            self.tuplet = None


def tokens_to_score(
    tokens: list[str],
    parts: list[Part] | None = None,
    first_measure_index: int = 0,
) -> Score:
    """Build a Score from tokens; measures get ids `m{index}` counting from `first_measure_index`.

    A trailing measure without a barline is kept (as a single barline) so nothing read is lost.
    Tokens in onset order (``<voice:N>``, :mod:`.reading_order`) are read in it too.
    """
    vocab = default_vocabulary()
    builder = _Builder()
    for token in from_onset_order(tokens):
        if token in vocab:
            info = vocab.info(vocab.id(token))
            if info.kind != "special":
                builder.feed(info)
    if builder.events_started or len(builder.measure.staves) > 1:
        builder.feed(TokenInfo("barline", value="single"))
    measures = builder.measures
    staff_count = max((len(m.staves) for m in measures), default=1)
    if parts is None or sum(p.staves for p in parts) != staff_count:
        parts = [Part(staves=1) for _ in range(staff_count)]
    for i, m in enumerate(measures):
        m.id = f"m{first_measure_index + i}"
        m.number = str(first_measure_index + i + 1)
        while len(m.staves) < staff_count:
            m.staves.append(StaffMeasure())
    return Score(parts=parts, measures=measures)
