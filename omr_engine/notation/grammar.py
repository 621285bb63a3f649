"""The musical grammar: one state machine over tokens with three uses.

1. Validation: feed a token sequence and collect per-measure diagnostics in a musician's
   words ("3 1/2 beats in a 4/4 measure", "a 3:2 tuplet holding 2 eighths does not fill
   its bracket", "tie between different pitches (C4 to D4)").
2. Constrained decoding: `GrammarState.allowed_mask()` says which tokens may come next.
3. The grammar loss: `Grammar.batch_masks` gives, for every position of training
   sequences, the mask of tokens allowed after the true prefix.

Structure is always enforced by the mask. Measure durations are checked afterwards by
default (a wrong measure is more useful flagged than forced to fit); `enforce_durations`
also forbids notes that would overfill a voice (inside a tuplet, counted at its ratio) and
a tuplet's end before its notes fill the bracket (what :mod:`omr_engine.inference.reread`
reads a flagged measure again with).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .score import Score, StaffContext
from .symbols import DURATION_TYPES, all_durations, time_fraction, time_length
from .tokens import tokens_by_measure
from .vocabulary import MAX_VOICES, Vocabulary, default_vocabulary

_UNIT_NAMES = {1: "whole notes", 2: "half notes", 4: "beats", 8: "eighths", 16: "sixteenths"}
_POWER_OF_TWO_VALUES = set(DURATION_TYPES.values())


@dataclass
class Diagnostic:
    """One reason a measure is not valid music."""

    measure: int  # index of the measure in the sequence (0-based)
    message: str
    staff: int | None = None  # 0-based staff in the system
    measure_id: str = ""
    measure_number: str = ""

    def __str__(self) -> str:
        where = f"measure {self.measure_number or self.measure + 1}"
        if self.staff is not None:
            where += f", staff {self.staff + 1}"
        return f"{where}: {self.message}"


def format_beats(length: Fraction, time: str) -> str:
    """Say a length in the time signature's beat unit: `3 1/2 beats`, `5 eighths`."""
    _, den = time_fraction(time)
    count = length * den / 4
    whole, rest = divmod(count.numerator, count.denominator)
    text = str(whole) if whole or not rest else ""
    if rest:
        text += (" " if text else "") + f"{rest}/{count.denominator}"
    unit = _UNIT_NAMES.get(den, f"1/{den} notes")
    if count == 1:
        unit = unit[:-1] if unit.endswith("s") else unit
    return f"{text} {unit}"


def _describe(kind: str) -> str:
    return {
        "note": "a note",
        "rest": "a rest",
        "mrest": "a whole-measure rest",
        "multirest": "a multi-measure rest",
        "chord": "a chord note",
        "tie": "a tie",
        "grace": "a grace note",
        "tuplet": "a tuplet",
        "tuplet_end": "the end of a tuplet",
        "barline": "a barline",
        "staff": "the next staff",
        "voice": "a second voice",
        "voice_to": "a change of voice",
        "clef": "a clef",
        "key": "a key signature",
        "time": "a time signature",
        "repeat_start": "a start-repeat sign",
        "volta": "a volta bracket",
        "special": "the end of the line",
        "start": "the start of the line",
    }.get(kind, kind)


# What an empty staff, voice or measure is called, by the token that ends it too early.
_EMPTY = {
    "barline": "an empty measure: no notes or rests before the barline",
    "staff": "a staff without notes or rests in this measure",  # ended by <staff> or barline
    "voice": "a voice without notes or rests",
}


@dataclass
class _Tuplet:
    actual: int
    normal: int
    printed: Fraction = Fraction(0)
    count: int = 0


@dataclass
class GrammarState:
    """Where a token sequence stands; copy it to branch (beam search)."""

    grammar: Grammar
    contexts: list[StaffContext]
    n_staves: int | None
    line_start: bool = True
    piece_start: bool = True
    measure: int = 0
    staff: int = 0
    voice: int = 0
    phase: str = "measure_start"  # measure_start, pre, staff_start, attr, voice_start, events
    last: str = "start"
    attr_level: int = 0  # 1 clef, 2 key, 3 time
    tuplet: _Tuplet | None = None
    note_duration: int = -1  # duration factor id of the current note (for <chord>)
    note_midi: int = -1
    note_tied: bool = False
    voice_length: Fraction = Fraction(0)
    voice_full: bool = False  # whole-measure or multi-measure rest
    # per staff, each voice's (length, full) as far as it was read
    staff_lengths: list[dict[int, tuple[Fraction, bool]]] = field(default_factory=list)
    measure_flags: set[str] = field(default_factory=set)
    previous_barline: str = ""
    measures_done: int = 0
    clef_seen: bool = False
    event_pitches: list[tuple[int, str]] = field(default_factory=list)
    event_ties: list[tuple[int, str]] = field(default_factory=list)
    event_grace: bool = False
    pending_ties: dict[tuple[int, int], list[tuple[int, str]]] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    pending_short: tuple[Diagnostic, Fraction, Fraction] | None = None
    finished: bool = False

    def copy(self) -> GrammarState:
        """An independent state: every field the feeding methods change in place is copied
        (a deep copy, at a tenth of ``copy.deepcopy``'s cost, which beam searches pay often)."""
        clone = copy.copy(self)
        clone.contexts = [StaffContext(c.clef, c.key, c.time) for c in self.contexts]
        if self.tuplet is not None:
            clone.tuplet = copy.copy(self.tuplet)
        clone.staff_lengths = [dict(v) for v in self.staff_lengths]
        clone.measure_flags = set(self.measure_flags)
        clone.event_pitches = list(self.event_pitches)
        clone.event_ties = list(self.event_ties)
        clone.pending_ties = {k: list(v) for k, v in self.pending_ties.items()}
        clone.diagnostics = list(self.diagnostics)
        return clone

    # ------------------------------------------------------------ queries

    def _can_close_voice(self) -> bool:
        return (
            self.phase == "events"
            and self.tuplet is None
            and self.last not in ("grace", "chord", "tuplet")
        )

    def signature(self) -> tuple:
        """Everything the allowed set depends on (masks are cached by it)."""
        can_close = self._can_close_voice()
        more_staves = self.n_staves is None or self.staff + 1 < self.n_staves
        last_staff = self.n_staves is None or self.staff + 1 == self.n_staves
        remaining = None
        tuplet = None if self.tuplet is None else self.tuplet.count > 0
        if self.grammar.enforce_durations:
            time = self.contexts[self.staff].time if self.staff < len(self.contexts) else None
            if time is not None and not self.voice_full:
                remaining = max(time_length(time) - self.voice_length, Fraction(0))
            t = self.tuplet
            if t is not None:
                # inside a bracket, printed values count at normal/actual; the bracket may
                # close only when its notes make a whole number of some plain value
                tuplet = t.count > 0 and t.printed / t.actual in _POWER_OF_TWO_VALUES
                if remaining is not None:
                    remaining = max(remaining * Fraction(t.actual, t.normal) - t.printed, 0)
        need_clef = self.line_start and self.measure == 0 and not self.clef_seen
        return (
            self.phase,
            self.last,
            self.attr_level,
            tuplet,
            self.note_duration if self.last == "chord" else -1,
            self.note_midi if self.last == "chord" else -1,
            self.note_tied,
            can_close and more_staves,
            can_close and last_staff,
            can_close and self.voice + 1 < MAX_VOICES,
            can_close,
            self.voice,
            self.measures_done > 0,
            remaining,
            need_clef,
        )

    def allowed_mask(self) -> np.ndarray:
        """(V,) bool: tokens that may come next."""
        return self.grammar.mask_for(self.signature())

    # ------------------------------------------------------------ feeding

    def _diag(self, message: str, staff: bool = True) -> None:
        self.diagnostics.append(Diagnostic(self.measure, message, self.staff if staff else None))

    def advance(self, token_id: int) -> None:
        """Consume one token; a token the grammar forbids is recorded as a diagnostic."""
        vocab = self.grammar.vocab
        info = vocab.info(token_id)
        kind = info.kind
        if kind == "special" and token_id != vocab.eos_id:
            if token_id == vocab.unk_id:
                self._diag("an unreadable symbol")
            return
        if not self.allowed_mask()[token_id]:
            self._report_unexpected(kind)
        if kind == "special":
            self._on_eos()
        else:
            getattr(self, f"_on_{kind}")(info)
        self.last = kind

    def _report_unexpected(self, kind: str) -> None:
        if kind == "barline" and self.tuplet is not None:
            self._diag(
                f"the measure ends inside a {self.tuplet.actual}:{self.tuplet.normal} tuplet"
            )
        elif kind == "barline" and self.n_staves is not None and self.staff + 1 < self.n_staves:
            self._diag(
                f"the measure has {self.staff + 1} staves, the system has {self.n_staves}",
                staff=False,
            )
        elif kind == "staff" and self.n_staves is not None and self.staff + 1 >= self.n_staves:
            self._diag(f"the measure has more staves than the system ({self.n_staves})", False)
        elif kind == "note" and self.last == "chord":
            self._diag("chord notes with different durations")
        elif kind == "special":
            self._diag("the line ends inside a measure")
        elif kind in ("clef", "key", "time") and self.phase == "events":
            self._diag(f"{_describe(kind)} in the middle of the notes")
        elif self.phase in (
            "measure_start",
            "staff_start",
            "voice_start",
            "pre",
            "attr",
        ) and kind in (
            "barline",
            "staff",
            "voice",
        ):
            empty_staff = kind == "barline" and self.staff > 0
            self._diag(_EMPTY["staff" if empty_staff else kind])
        else:
            self._diag(f"{_describe(kind)} cannot follow {_describe(self.last)}")

    # events ---------------------------------------------------------

    def _begin_event(self) -> None:
        self._close_event()

    def _close_event(self) -> None:
        """Check ties against the event just finished, then remember its own ties."""
        if not self.event_pitches:
            return
        key = (self.staff, self.voice)
        if not self.event_grace:
            pending = self.pending_ties.get(key, [])
            present = {m for m, _ in self.event_pitches}
            for midi, name in pending:
                if midi not in present:
                    target = self.event_pitches[0][1]
                    self._diag(f"tie between different pitches ({name} to {target})")
                    break
            self.pending_ties[key] = list(self.event_ties)
        self.event_pitches = []
        self.event_ties = []
        self.event_grace = False

    def _start_voice_content(self) -> None:
        if self.phase != "events":
            self.phase = "events"

    def _add_length(self, length: Fraction) -> None:
        if self.tuplet is not None:
            self.tuplet.printed += length
            self.tuplet.count += 1
        else:
            self.voice_length += length

    def _on_note(self, info) -> None:
        dur = self.grammar.duration_index[info.duration]
        midi = info.pitch.midi
        if self.last == "chord":
            self.event_pitches.append((midi, info.pitch.name))
        else:
            grace = self.last == "grace"
            self._begin_event()
            self.event_grace = grace
            self.event_pitches = [(midi, info.pitch.name)]
            if not grace:
                self._add_length(info.duration.quarter_length)
        self.note_duration = dur
        self.note_midi = midi
        self.note_tied = False
        self._start_voice_content()

    def _on_chord(self, info) -> None:
        pass

    def _on_tie(self, info) -> None:
        if self.event_pitches:
            self.event_ties.append(self.event_pitches[-1])
        self.note_tied = True

    def _on_grace(self, info) -> None:
        self._start_voice_content()

    def _on_rest(self, info) -> None:
        self._begin_event()
        key = (self.staff, self.voice)
        pending = self.pending_ties.pop(key, [])
        if pending:
            self._diag(f"tie from {pending[0][1]} to a rest")
        self._add_length(info.duration.quarter_length)
        self._start_voice_content()

    def _on_mrest(self, info) -> None:
        self._begin_event()
        self.pending_ties.pop((self.staff, self.voice), None)
        self.voice_full = True
        self._start_voice_content()

    def _on_multirest(self, info) -> None:
        self._on_mrest(info)
        self.measure_flags.add("multirest")

    def _on_tuplet(self, info) -> None:
        self._begin_event()
        actual, normal = info.tuplet_ratio
        if self.tuplet is not None:
            self._close_tuplet()
        self.tuplet = _Tuplet(actual, normal)
        self._start_voice_content()

    def _on_tuplet_end(self, info) -> None:
        self._close_tuplet()

    def _close_tuplet(self) -> None:
        t = self.tuplet
        if t is None:
            return
        self.tuplet = None
        unit = t.printed / t.actual if t.actual else Fraction(0)
        if t.count == 0 or unit not in _POWER_OF_TWO_VALUES:
            self._diag(
                f"a {t.actual}:{t.normal} tuplet holding {t.count} "
                f"note{'s' if t.count != 1 else ''} does not fill its bracket"
            )
        self.voice_length += t.printed * Fraction(t.normal, t.actual)

    # structure ------------------------------------------------------

    def _on_clef(self, info) -> None:
        if self.phase == "events" or (self.phase == "voice_start" and self.voice == 0):
            self._begin_event()
        else:
            self.attr_level = 1
            self.phase = "attr"
            self.clef_seen = True
        self._context().clef = info.value

    def _on_key(self, info) -> None:
        self.attr_level = 2
        self.phase = "attr"
        self._context().key = info.key

    def _on_time(self, info) -> None:
        self.attr_level = 3
        self.phase = "attr"
        self._context().time = info.value

    def _context(self) -> StaffContext:
        while len(self.contexts) <= self.staff:
            self.contexts.append(StaffContext())
        return self.contexts[self.staff]

    def _on_repeat_start(self, info) -> None:
        self.measure_flags.add("repeat_start")
        self.phase = "pre"

    def _on_volta(self, info) -> None:
        self.measure_flags.add("volta")
        self.phase = "pre"

    def _end_voice(self) -> None:
        self._close_event()
        if self.tuplet is not None:
            self._close_tuplet()
        while len(self.staff_lengths) <= self.staff:
            self.staff_lengths.append({})
        self.staff_lengths[self.staff][self.voice] = (self.voice_length, self.voice_full)
        self.voice_length = Fraction(0)
        self.voice_full = False

    def _on_voice(self, info) -> None:
        self._end_voice()
        self.voice += 1
        self.phase = "voice_start"

    def _on_voice_to(self, info) -> None:
        """Onset order (:mod:`.reading_order`): the next events are voice N's, which goes
        on from where it was left."""
        self._end_voice()
        self.voice = int(info.value) - 1
        lengths = self.staff_lengths[self.staff] if self.staff < len(self.staff_lengths) else {}
        self.voice_length, self.voice_full = lengths.get(self.voice, (Fraction(0), False))
        self.phase = "voice_start"

    def _on_staff(self, info) -> None:
        self._end_voice()
        self.staff += 1
        self.voice = 0
        self.phase = "staff_start"
        self.attr_level = 0
        self.clef_seen = False

    def _on_barline(self, info) -> None:
        self._end_voice()
        staves = self.staff + 1
        if self.n_staves is None:
            self.n_staves = staves
        self._settle_short(self._check_durations(info.value or "single"))

        self.previous_barline = info.value or "single"
        self.measures_done += 1
        self.measure += 1
        self.staff = self.voice = 0
        self.phase = "measure_start"
        self.attr_level = 0
        self.clef_seen = False
        self.staff_lengths = []
        self.measure_flags = set()
        self.tuplet = None

    def _on_eos(self) -> None:
        if self.phase != "measure_start":
            self._end_voice()
        self.pending_short = None
        self.finished = True

    def _settle_short(self, short: tuple | None) -> None:
        """A short measure is held back one measure: completed by the next one (a measure
        split in two, as at a chorale's phrase end) both are legal, and the last measure of
        a piece may be short."""
        pending, self.pending_short = self.pending_short, None
        if pending is not None:
            if short is not None and pending[1] + short[1] == pending[2]:
                return
            self.diagnostics.append(pending[0])
        if short is not None and len(short) == 3:  # a fourth item marks a legal short measure
            self.pending_short = short

    def _check_durations(self, barline: str) -> tuple | None:
        """Compare every voice with the time signature; return a 'too short' finding
        (diagnostic, length, bar length[, True if the place allows it]) for `_settle_short`."""
        if "multirest" in self.measure_flags:
            return None
        may_be_short = (
            (self.piece_start and self.measure == 0)
            or self.measure_flags & {"repeat_start", "volta"}
            or barline in ("repeat-end", "double", "final")
            or self.previous_barline in ("repeat-end", "double")
        )
        short: tuple[Diagnostic, Fraction, Fraction] | None = None
        staff_lengths: list[tuple[int, Fraction]] = []
        for s, voices in enumerate(self.staff_lengths):
            time = self.contexts[s].time if s < len(self.contexts) else None
            if time is None:
                continue
            bar = time_length(time)
            lengths = [bar if full else length for length, full in voices.values()]
            for length in lengths:
                if length > bar:
                    self.diagnostics.append(
                        Diagnostic(
                            self.measure, f"{format_beats(length, time)} in a {time} measure", s
                        )
                    )
            longest = max(lengths, default=Fraction(0))
            staff_lengths.append((s, longest))
            if longest < bar and short is None:
                said = f"{format_beats(longest, time)} in a {time} measure"
                short = (Diagnostic(self.measure, said, s), longest, bar)
        distinct = {length for _, length in staff_lengths}
        if len(distinct) > 1 and short is not None:
            time = self.contexts[staff_lengths[0][0]].time or "4/4"
            said = " and ".join(format_beats(v, time) for v in sorted(distinct))
            self.diagnostics.append(
                Diagnostic(self.measure, f"the staves of this measure differ in length ({said})")
            )
            return None
        if short is not None and may_be_short:
            return (short[0], short[1], short[2], True)
        return short

    def finish(self) -> list[Diagnostic]:
        """End of the sequence: a last measure may be short; an open measure is reported."""
        if not self.finished:
            if self.phase != "measure_start":
                self._diag("the line ends inside a measure")
                self._end_voice()
            self.pending_short = None
            self.finished = True
        return self.diagnostics


class Grammar:
    """Builds grammar states and caches the allowed-token mask of every state signature."""

    def __init__(self, vocab: Vocabulary | None = None, enforce_durations: bool = False) -> None:
        self.vocab = vocab or default_vocabulary()
        self.enforce_durations = enforce_durations
        factors = self.vocab.factors()
        self.duration_ids = factors[:, 2]
        self.duration_index = {d: i + 1 for i, d in enumerate(all_durations())}
        kinds = [i.kind for i in self.vocab.infos]
        self._kind = {k: np.array([x == k for x in kinds]) for k in set(kinds)}
        self._midi = np.array([i.pitch.midi if i.pitch else -1 for i in self.vocab.infos])
        self._length = np.array(
            [float(i.duration.quarter_length) if i.duration else 0.0 for i in self.vocab.infos]
        )
        self._voice_to = np.array([x == "voice_to" for x in kinds])
        self._voice_number = np.array(
            [int(i.value) if i.kind == "voice_to" else 0 for i in self.vocab.infos]
        )
        self._eos = np.zeros(len(self.vocab), bool)
        self._eos[self.vocab.eos_id] = True
        self._masks: dict[tuple, np.ndarray] = {}

    def start(
        self,
        contexts: list[StaffContext] | None = None,
        line_start: bool = True,
        piece_start: bool = False,
    ) -> GrammarState:
        """A state at the start of a line; `contexts` are the clef/key/time in force per staff."""
        ctx = copy.deepcopy(contexts) if contexts else []
        return GrammarState(
            self,
            ctx,
            len(ctx) or None,
            line_start=line_start,
            piece_start=piece_start,
        )

    def kinds(self, *names: str) -> np.ndarray:
        out = np.zeros(len(self.vocab), bool)
        for n in names:
            out |= self._kind[n]
        return out

    def mask_for(self, sig: tuple) -> np.ndarray:
        mask = self._masks.get(sig)
        if mask is None:
            mask = self._compute(sig)
            mask.setflags(write=False)
            self._masks[sig] = mask
        return mask

    def _compute(self, sig: tuple) -> np.ndarray:
        (
            phase,
            last,
            attr_level,
            tuplet_state,
            chord_duration,
            chord_midi,
            note_tied,
            can_staff,
            can_barline,
            can_voice,
            can_close,
            voice,
            measures_done,
            remaining,
            need_clef,
        ) = sig
        k = self.kinds
        in_tuplet = tuplet_state is not None
        if phase == "events" and last == "chord":
            return (
                self._kind["note"]
                & (self.duration_ids == chord_duration)
                & (self._midi > chord_midi)
            )
        if phase == "events" and last == "grace":
            return self._kind["note"].copy()
        first_events = k("note", "rest", "grace", "tuplet", "mrest") | (
            k("multirest") if voice == 0 else k()
        )
        more_events = k("note", "rest", "grace") | (k() if in_tuplet else k("tuplet"))
        if voice == 0 and not in_tuplet:
            more_events |= k("clef")
        if phase in ("measure_start", "pre", "staff_start", "attr"):
            if need_clef and attr_level == 0:
                mask = k("clef")
            else:
                mask = first_events | k("clef", "key", "time")
                if attr_level >= 1:
                    mask &= ~k("clef")
                if attr_level >= 2:
                    mask &= ~k("key")
                if attr_level >= 3:
                    mask &= ~k("time")
            if phase == "measure_start":
                mask |= k("repeat_start", "volta")
                if measures_done and not need_clef:
                    mask |= self._eos
            elif phase == "pre" and last == "repeat_start":
                mask |= k("volta")
            return self._limit(mask, remaining)
        if phase == "voice_start":
            mask = first_events & ~k("multirest")
            if voice == 0:  # back in voice 1 after <voice:1>, where a clef may change
                mask |= k("clef")
            return self._limit(mask, remaining)
        # phase == "events"
        if last == "tuplet":
            return self._limit(k("note", "rest", "grace"), remaining)
        if last in ("mrest", "multirest"):
            mask = k("clef") if voice == 0 and last == "mrest" else k()
        elif in_tuplet:
            mask = more_events.copy()
            if tuplet_state:
                mask |= k("tuplet_end")
        else:
            mask = more_events.copy()
        if last == "note":
            if not note_tied:
                mask |= k("tie")
            mask |= k("chord")
        elif last == "tie":
            mask |= k("chord")
        if can_staff:
            mask |= k("staff")
        if can_barline:
            mask |= k("barline")
        if can_voice and last != "multirest":
            mask |= k("voice")
        if can_close and last != "multirest":
            mask |= self._voice_to & (self._voice_number != voice + 1)
        return self._limit(mask, remaining)

    def _limit(self, mask: np.ndarray, remaining: Fraction | None) -> np.ndarray:
        if remaining is None:
            return mask
        too_long = (self._kind["note"] | self._kind["rest"]) & (
            self._length > float(remaining) + 1e-9
        )
        return mask & ~too_long

    # ------------------------------------------------------------ uses

    def validate_tokens(
        self,
        tokens: list[str],
        contexts: list[StaffContext] | None = None,
        piece_start: bool = True,
    ) -> list[Diagnostic]:
        """Diagnostics for a token sequence read as one line (or one whole piece)."""
        state = self.start(contexts, line_start=True, piece_start=piece_start)
        for token in tokens:
            state.advance(self.vocab.id(token))
        return state.finish()

    def batch_masks(self, sequences: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """For training: `(class_ids (B, T), class_masks (C, V))`, class_masks[class_ids] =
        the tokens allowed after each true prefix (`T` = longest sequence; padding gets class 0
        which allows everything)."""
        width = max((len(s) for s in sequences), default=0)
        ids = np.zeros((len(sequences), width), dtype=np.int64)
        classes: dict[tuple, int] = {("all",): 0}
        masks = [np.ones(len(self.vocab), bool)]
        for b, seq in enumerate(sequences):
            state = self.start()
            for t, token in enumerate(seq):
                state.advance(token)
                sig = state.signature()
                if sig not in classes:
                    classes[sig] = len(masks)
                    masks.append(self.mask_for(sig))
                ids[b, t] = classes[sig]
        return ids, np.stack(masks)


def validate_score(
    score: Score,
    grammar: Grammar | None = None,
    contexts: list[StaffContext] | None = None,
    piece_start: bool = True,
) -> list[Diagnostic]:
    """Diagnostics for a score (or a part of one that continues `contexts`), each naming
    its measure's id and number."""
    grammar = grammar or Grammar()
    tokens = [t for measure in tokens_by_measure(score) for t in measure]
    diagnostics = grammar.validate_tokens(tokens, contexts=contexts, piece_start=piece_start)
    for d in diagnostics:
        if 0 <= d.measure < len(score.measures):
            d.measure_id = score.measures[d.measure].id
            d.measure_number = score.measures[d.measure].number
    return diagnostics


class GrammarClassTable:
    """A fixed numbering of grammar states for the grammar loss.

    Built once from training sequences (in the main process), then shared with data
    workers, so every worker gives a position the same class id. Class 0 allows every
    token: a state never seen while building costs no grammar loss.
    """

    def __init__(self, grammar: Grammar, signatures: list[tuple]) -> None:
        self.grammar = grammar
        self.signatures = signatures
        self._ids = {sig: i + 1 for i, sig in enumerate(signatures)}

    @classmethod
    def build(cls, grammar: Grammar, sequences) -> GrammarClassTable:
        seen: dict[tuple, None] = {}
        for ids in sequences:
            state = grammar.start()
            seen.setdefault(state.signature())
            for token in ids:
                state.advance(token)
                seen.setdefault(state.signature())
        return cls(grammar, list(seen))

    def __len__(self) -> int:
        return len(self.signatures) + 1

    def class_ids(self, ids: list[int]) -> np.ndarray:
        """(len(ids) + 1,) class of the state after BOS and after each token."""
        state = self.grammar.start()
        out = np.zeros(len(ids) + 1, dtype=np.int64)
        out[0] = self._ids.get(state.signature(), 0)
        for t, token in enumerate(ids, 1):
            state.advance(token)
            out[t] = self._ids.get(state.signature(), 0)
        return out

    def masks(self) -> np.ndarray:
        """(C, V) bool: row c is the allowed set of class c (row 0 allows everything)."""
        rows = [np.ones(len(self.grammar.vocab), bool)]
        rows += [self.grammar.mask_for(sig) for sig in self.signatures]
        return np.stack(rows)
