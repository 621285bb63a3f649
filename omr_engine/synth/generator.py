"""Random but grammatical scores that cover what the music21 corpus lacks.

The corpus is mostly chorales, folk songs and quartets: few ledger lines far from the staff,
few 16th/32nd runs, tuplets, double sharps and flats, clef/key/time changes inside a line,
multi-measure rests, two voices on a staff, grand staves, grace notes, repeats and voltas.
`generate_score(rng)` draws a short piece (a single staff, a piano grand staff, a small
ensemble, or a voice with piano) that has all of these at useful rates.

Every measure of every staff fills its time signature exactly (voices included), chords
hold one duration, ties join equal pitches, tuplets fill their brackets, and clef/key/time
are set only where they change, so `validate_score` finds nothing and Verovio prints what
the tokens say. The piece is a pure function of the generator's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..notation.score import (
    ClefChange,
    Event,
    Measure,
    Note,
    Part,
    Rest,
    Score,
    StaffMeasure,
    Tuplet,
    voice_length,
)
from ..notation.symbols import (
    DURATION_TYPES,
    STEPS,
    Duration,
    Pitch,
    key_alter,
    time_length,
)

__all__ = ["CLEF_MIDDLE_LINE", "GeneratorConfig", "generate_score", "measures_fill"]

#: Diatonic index (7 * octave + step) of each clef's middle staff line.
CLEF_MIDDLE_LINE: dict[str, int] = {
    "G2": 34,  # B4
    "G1": 36,
    "G2-8vb": 27,
    "G2-8va": 41,
    "F4": 22,  # D3
    "F3": 24,
    "F5": 20,
    "F4-8vb": 15,
    "C1": 32,
    "C2": 30,
    "C3": 28,  # C4
    "C4": 26,
    "C5": 24,
}

_CLEF_WEIGHTS = {
    "G2": 40,
    "F4": 18,
    "C3": 7,
    "C4": 6,
    "G2-8vb": 6,
    "G1": 2,
    "G2-8va": 3,
    "F3": 2,
    "F5": 2,
    "F4-8vb": 3,
    "C1": 3,
    "C2": 2,
    "C5": 2,
}

_TIME_WEIGHTS = {
    "4/4": 14,
    "3/4": 12,
    "2/4": 9,
    "C": 8,
    "C|": 5,
    "6/8": 9,
    "3/8": 4,
    "9/8": 4,
    "12/8": 4,
    "2/2": 4,
    "3/2": 3,
    "6/4": 2,
    "5/4": 3,
    "7/8": 3,
    "5/8": 3,
    "7/4": 1,
    "4/8": 1,
    "6/16": 1,
    "12/16": 1,
    "1/4": 1,
    "2/1": 1,
    "11/16": 1,
}
if time_length("C|") != Fraction(4):
    # notation.symbols measures cut time as 2 quarters (it is 2/2, 4 quarters): until that
    # is fixed, a generated C| measure could not be both full and valid.
    del _TIME_WEIGHTS["C|"]

# Every printable length (quarter notes) -> the plainest duration that has it.
_DURATION_OF: dict[Fraction, Duration] = {}
for _dots in (2, 1, 0):
    for _type in DURATION_TYPES:
        _d = Duration(_type, _dots)
        _DURATION_OF[_d.quarter_length] = _d
_PLAIN = set(DURATION_TYPES.values())
_SHORTEST = Fraction(1, 16)

_INSTRUMENTS = ("Violin", "Viola", "Cello", "Flute", "Clarinet", "Voice", "Horn", "Oboe")

# (actual, normal, weight) of the tuplets over a plain beat (a quarter: 3 eighths in the
# time of 2) and over a dotted one (a dotted quarter: 2 or 4 eighths in the time of 3).
_TUPLETS_OF_PLAIN = (
    (3, 2, 12),
    (5, 4, 3),
    (6, 4, 3),
    (7, 4, 1),
    (7, 8, 1),
    (9, 8, 1),
    (10, 8, 1),
    (5, 2, 1),
)
_TUPLETS_OF_DOTTED = ((2, 3, 4), (4, 3, 3))


@dataclass(frozen=True)
class GeneratorConfig:
    """Rates of the rare things (per staff measure unless said)."""

    min_measures: int = 6
    max_measures: int = 20
    rest: float = 0.1
    chord: float = 0.15
    grace: float = 0.03
    tie: float = 0.06
    tuplet: float = 0.08
    two_voices: float = 0.15
    measure_rest: float = 0.05
    multirest: float = 0.05  # per measure, single-staff pieces only
    clef_change: float = 0.04
    mid_measure_clef: float = 0.03
    key_change: float = 0.04  # per measure
    time_change: float = 0.05  # per measure
    ledger_excursion: float = 0.1
    chromatic: float = 0.15
    double_accidental: float = 0.2  # of chromatic notes
    hand_off: float = 0.12  # per piano measure


def _weighted(rng: np.random.Generator, weights: dict[str, int]) -> str:
    names = list(weights)
    p = np.asarray([weights[n] for n in names], float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _beats(time: str) -> list[Fraction]:
    """The beat lengths of a measure (quarter notes), summing to the measure."""
    if time == "C":
        return [Fraction(1)] * 4
    if time == "C|":
        return [Fraction(2)] * 2
    num, den = (int(v) for v in time.split("/"))
    unit = Fraction(4, den)
    if den >= 8 and num % 3 == 0 and num > 3:
        return [3 * unit] * (num // 3)
    if den >= 8 and num > 4:
        groups = [3] + [2] * ((num - 3) // 2) if num % 2 else [2] * (num // 2)
        return [g * unit for g in groups]
    return [unit] * num


class _Rhythm:
    """Splits lengths into printable durations and tuplets."""

    def __init__(self, rng: np.random.Generator, config: GeneratorConfig) -> None:
        self.rng = rng
        self.config = config

    def measure(self, time: str, density: float) -> list[list[object]]:
        """Beat groups: each a list of Durations and ('tuplet', actual, normal, [Duration])."""
        beats = _beats(time)
        groups: list[list[object]] = []
        i = 0
        while i < len(beats):
            # Sometimes one note spans several beats (half, dotted half, whole).
            if self.rng.random() < 0.3 * (1.0 - density):
                for k in range(len(beats) - i, 1, -1):
                    total = sum(beats[i : i + k], Fraction(0))
                    if total in _DURATION_OF and self.rng.random() < 0.5:
                        groups.append([_DURATION_OF[total]])
                        i += k
                        break
                else:
                    groups.append(self.beat(beats[i], density))
                    i += 1
                continue
            groups.append(self.beat(beats[i], density))
            i += 1
        return groups

    def beat(self, length: Fraction, density: float) -> list[object]:
        if self.rng.random() < self.config.tuplet:
            tuplet = self.tuplet(length)
            if tuplet is not None:
                return [tuplet]
        return self.split(length, density, 0)

    def split(self, length: Fraction, density: float, depth: int) -> list[object]:
        rng = self.rng
        options: list[tuple[str, float]] = []
        if length in _DURATION_OF:
            options.append(("single", 1.8 - density - 0.2 * depth if depth < 4 else 5.0))
        half = length / 2
        if half >= _SHORTEST and half in _DURATION_OF and depth < 4:
            # Runs of 32nds come with dense measures; 64ths stay rare.
            if half >= Fraction(1, 4):
                weight = 0.3 + density
            elif half == Fraction(1, 8):
                weight = 0.15 + 0.6 * density
            else:
                weight = 0.05 + 0.2 * density
            options.append(("halves", weight))
        third = length / 3
        if third in _PLAIN and third >= _SHORTEST and depth < 4:
            options.append(("thirds", 0.5 + density))
        quarter = length / 4
        if quarter >= Fraction(1, 8) and 3 * quarter in _DURATION_OF and quarter in _PLAIN:
            options.append(("dotted", 0.35))
            options.append(("snap", 0.06))
        if not options:
            raise ValueError(f"cannot split {length} into printable durations")
        names = [o[0] for o in options]
        weights = np.maximum([o[1] for o in options], 0.01)
        choice = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        if choice == "single":
            return [_DURATION_OF[length]]
        if choice == "halves":
            return self.split(half, density, depth + 1) + self.split(half, density, depth + 1)
        if choice == "thirds":
            return [x for _ in range(3) for x in self.split(third, density, depth + 1)]
        if choice == "dotted":
            return [_DURATION_OF[3 * quarter], _DURATION_OF[quarter]]
        return [_DURATION_OF[quarter], _DURATION_OF[3 * quarter]]

    def tuplet(self, length: Fraction) -> tuple | None:
        rng = self.rng
        options = []
        if length in _PLAIN:
            options = [(a, n, w) for a, n, w in _TUPLETS_OF_PLAIN if length / n >= _SHORTEST]
        elif length / 3 in _PLAIN:
            options = [(a, n, w) for a, n, w in _TUPLETS_OF_DOTTED if length / n >= _SHORTEST]
        if not options:
            return None
        weights = np.asarray([w for _, _, w in options], float)
        actual, normal, _ = options[int(rng.choice(len(options), p=weights / weights.sum()))]
        unit = length / normal
        slots = [unit] * actual
        # Vary the inside: join two units (a quarter-eighth triplet) or split one.
        if actual >= 3 and rng.random() < 0.25 and 2 * unit in _DURATION_OF:
            j = int(rng.integers(0, actual - 1))
            slots[j : j + 2] = [2 * unit]
        elif rng.random() < 0.15 and unit / 2 >= _SHORTEST:
            j = int(rng.integers(0, len(slots)))
            slots[j : j + 1] = [unit / 2, unit / 2]
        return ("tuplet", actual, normal, [_DURATION_OF[s] for s in slots])


_MOVES = np.array([-7, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 7])
_MOVE_P = np.array([1, 1, 2, 4, 8, 12, 6, 12, 8, 4, 2, 1, 1], float)
_MOVE_P /= _MOVE_P.sum()


@dataclass
class _Walker:
    """A melodic random walk in staff positions (0 = middle line, 2 = one line up)."""

    position: int = 0

    def step(self, rng: np.random.Generator, lo: int, hi: int) -> int:
        p = self.position + int(rng.choice(_MOVES, p=_MOVE_P))
        if p < lo:
            p = 2 * lo - p  # reflect off the edge of the range
        if p > hi:
            p = 2 * hi - p
        self.position = min(max(p, lo), hi)
        return self.position


class _Generator:
    def __init__(self, rng: np.random.Generator, config: GeneratorConfig) -> None:
        self.rng = rng
        self.config = config
        self.rhythm = _Rhythm(rng, config)

    # ------------------------------------------------------------ layout

    def layout(self) -> tuple[list[Part], list[str]]:
        rng = self.rng
        kind = _weighted(rng, {"single": 45, "piano": 30, "ensemble": 15, "voice_piano": 10})
        named = rng.random() < 0.4
        if kind == "single":
            clef = _weighted(rng, _CLEF_WEIGHTS)
            return [Part(str(rng.choice(_INSTRUMENTS)) if named else "", 1)], [clef]
        piano = Part("Piano" if named else "", 2)
        if kind == "piano":
            return [piano], ["G2", "F4"]
        if kind == "voice_piano":
            return [Part("Voice" if named else "", 1), piano], ["G2", "G2", "F4"]
        n = int(rng.integers(2, 5))
        clefs = sorted((_weighted(rng, _CLEF_WEIGHTS) for _ in range(n)), key=self._height)
        clefs.reverse()
        names = [str(rng.choice(_INSTRUMENTS)) if named else "" for _ in range(n)]
        return [Part(name, 1) for name in names], clefs

    @staticmethod
    def _height(clef: str) -> int:
        return CLEF_MIDDLE_LINE[clef]

    # ------------------------------------------------------------ pitches

    def pitch(self, clef: str, position: int, key: int) -> Pitch:
        rng = self.rng
        d = min(max(CLEF_MIDDLE_LINE[clef] + position, 0), 7 * 8 + 6)
        step, octave = STEPS[d % 7], d // 7
        alter = key_alter(key, step)
        if rng.random() < self.config.chromatic:
            if rng.random() < self.config.double_accidental:
                alter = int(rng.choice([-2, 2]))
            else:
                alter = int(rng.choice([a for a in (-1, 0, 1) if a != alter]))
        return Pitch(step, alter, octave)

    def chord(self, clef: str, position: int, key: int, hi: int, voices: int) -> list[Pitch]:
        rng = self.rng
        pitches = [self.pitch(clef, position, key)]
        chance = self.config.chord * (0.5 if voices > 1 else 1.0)
        if rng.random() < chance:
            p = position
            for _ in range(int(rng.integers(1, 4 if voices == 1 else 2))):
                p += int(rng.choice([2, 2, 3, 4, 5]))
                if p > hi + 2:
                    break
                pitches.append(self.pitch(clef, p, key))
        # The grammar wants chord notes strictly rising in pitch: drop enharmonic doubles.
        out: list[Pitch] = []
        for q in sorted(pitches, key=lambda q: q.sort_key):
            if not out or q.midi > out[-1].midi:
                out.append(q)
        return out

    # ------------------------------------------------------------ one voice

    def voice(
        self,
        groups: list[list[object]],
        clef: str,
        key: int,
        walker: _Walker,
        lo: int,
        hi: int,
        voices: int,
        silent: set[int] | None = None,
        clef_change: tuple[int, str] | None = None,
    ) -> list[Event]:
        """Events for beat groups; groups in `silent` become rests; `clef_change` =
        (group index, clef) prints a clef before that group and reads later pitches in it."""
        rng = self.rng
        events: list[Event] = []
        for g, group in enumerate(groups):
            if clef_change is not None and g == clef_change[0]:
                clef = clef_change[1]
                events.append(ClefChange(clef))
            if silent is not None and g in silent:
                events += self._rests(group)
                continue
            for item in group:
                if isinstance(item, Duration):
                    events += self._note_or_rest(item, clef, key, walker, lo, hi, voices)
                else:
                    _, actual, normal, durations = item
                    inner: list[Note | Rest] = []
                    for d in durations:
                        if rng.random() < self.config.rest * 0.8:
                            inner.append(Rest(d))
                        else:
                            pos = walker.step(rng, lo, hi)
                            inner.append(Note([self.pitch(clef, pos, key)], d))
                    if all(isinstance(e, Rest) for e in inner):
                        pos = walker.step(rng, lo, hi)
                        inner[0] = Note([self.pitch(clef, pos, key)], durations[0])
                    events.append(Tuplet(actual, normal, inner))
        self._tie_within(events)
        return events

    def _rests(self, group: list[object]) -> list[Event]:
        total = sum((_item_length(i) for i in group), Fraction(0))
        if total in _DURATION_OF:
            return [Rest(_DURATION_OF[total])]
        out: list[Event] = []
        for item in group:
            if isinstance(item, Duration):
                out.append(Rest(item))
            else:
                _, actual, normal, durations = item
                out.append(Tuplet(actual, normal, [Rest(d) for d in durations]))
        return out

    def _note_or_rest(
        self,
        d: Duration,
        clef: str,
        key: int,
        walker: _Walker,
        lo: int,
        hi: int,
        voices: int,
    ) -> list[Event]:
        rng = self.rng
        if rng.random() < self.config.rest:
            return [Rest(d)]
        out: list[Event] = []
        position = walker.step(rng, lo, hi)
        if rng.random() < self.config.grace:
            for _ in range(int(rng.integers(1, 4))):
                g = min(max(position + int(rng.integers(-3, 4)), lo - 2), hi + 2)
                kind = "eighth" if rng.random() < 0.5 else "16th"
                out.append(Note([self.pitch(clef, g, key)], Duration(kind), grace=True))
        out.append(Note(self.chord(clef, position, key, hi, voices), d))
        return out

    def _tie_within(self, events: list[Event]) -> None:
        """Tie some neighbouring notes: the second takes the first one's pitches."""
        for a, b in zip(events, events[1:], strict=False):
            if (
                isinstance(a, Note)
                and isinstance(b, Note)
                and not a.grace
                and not b.grace
                and self.rng.random() < self.config.tie
            ):
                b.pitches = list(a.pitches)
                b.ties = [False] * len(b.pitches)
                a.ties = [True] * len(a.pitches)

    # ------------------------------------------------------------ the piece

    def score(self) -> Score:
        rng, cfg = self.rng, self.config
        parts, clefs = self.layout()
        n_staves = len(clefs)
        piano_staves = _piano_staves(parts)
        n_measures = int(rng.integers(cfg.min_measures, cfg.max_measures + 1))
        time = _weighted(rng, _TIME_WEIGHTS)
        key = int(rng.integers(-7, 8))
        clef_now = list(clefs)
        walkers = [[_Walker(int(rng.integers(-3, 4))), _Walker(-3)] for _ in range(n_staves)]
        measures: list[Measure] = []
        structure = self.structure(n_measures)
        for i in range(n_measures):
            measure = Measure(id=f"m{i}", staves=[], number=str(i + 1))
            measure.repeat_start, measure.volta, measure.barline = structure[i]
            new_time = new_key = None
            if i > 0 and rng.random() < cfg.time_change:
                new_time = _weighted(rng, {t: w for t, w in _TIME_WEIGHTS.items() if t != time})
            if i > 0 and rng.random() < cfg.key_change:
                new_key = int(rng.choice([k for k in range(-7, 8) if k != key]))
            time = new_time or time
            key = new_key if new_key is not None else key
            multirest = (
                n_staves == 1
                and i > 0
                and new_time is None
                and new_key is None
                and rng.random() < cfg.multirest
            )
            if multirest:
                measure.multirest = int(rng.integers(2, 33))
            density = float(rng.beta(1.5, 2.5))
            hand_off = None
            if piano_staves and rng.random() < cfg.hand_off and len(_beats(time)) > 1:
                hand_off = int(rng.integers(1, len(_beats(time))))
            for s in range(n_staves):
                sm = StaffMeasure(time=time if i == 0 or new_time else None)
                if i == 0 or new_key is not None:
                    sm.key = key
                if i == 0:
                    sm.clef = clef_now[s]
                elif rng.random() < cfg.clef_change and not multirest:
                    clef_now[s] = self.other_clef(clef_now[s], clefs[s])
                    sm.clef = clef_now[s]
                if multirest:
                    sm.voices = [[]]
                else:
                    role = None
                    if hand_off is not None and s in piano_staves:
                        role = "upper" if piano_staves.index(s) == 0 else "lower"
                    sm.voices = self.staff_voices(
                        time, key, clef_now, s, walkers[s], density, role, hand_off
                    )
                measure.staves.append(sm)
            measures.append(measure)
        self._tie_across(measures)
        return Score(parts=parts, measures=measures)

    def other_clef(self, current: str, home: str) -> str:
        if current != home and self.rng.random() < 0.6:
            return home
        return _weighted(self.rng, {c: w for c, w in _CLEF_WEIGHTS.items() if c != current})

    def structure(self, n: int) -> list[tuple[bool, int | None, str]]:
        """(repeat start, volta, barline) of every measure: repeats, voltas, double and
        final barlines."""
        rng = self.rng
        out: list[list] = [[False, None, "single"] for _ in range(n)]
        for i in range(n - 1):
            if rng.random() < 0.04:
                out[i][2] = "double"
        out[-1][2] = "final" if rng.random() < 0.75 else str(rng.choice(["single", "double"]))
        if rng.random() < 0.45 and n >= 4:
            start = int(rng.integers(0, n - 3))
            end = int(rng.integers(start + 1, n - 1))  # last measure inside the repeat
            out[start][0] = True
            out[end][2] = "repeat-end"
            if rng.random() < 0.5 and end + 1 < n and end > start:
                first = int(rng.integers(1, min(3, end - start + 1)))
                for j in range(end - first + 1, end + 1):
                    out[j][1] = 1
                second = int(rng.integers(1, min(3, n - end)))
                number = 2 if rng.random() < 0.85 else int(rng.integers(3, 5))
                for j in range(end + 1, end + 1 + second):
                    out[j][1] = number
                last = end + second
                if out[last][2] == "single" and rng.random() < 0.5:
                    out[last][2] = "double"
            if rng.random() < 0.2 and end + 1 < n and out[end + 1][1] is None:
                out[end + 1][0] = True  # back-to-back repeats
        return [(bool(r), v, b) for r, v, b in out]

    def staff_voices(
        self,
        time: str,
        key: int,
        clefs: list[str],
        s: int,
        walkers: list[_Walker],
        density: float,
        role: str | None,
        hand_off: int | None,
    ) -> list[list[Event]]:
        rng, cfg = self.rng, self.config
        clef = clefs[s]
        if role is None and rng.random() < cfg.measure_rest:
            return [[Rest(None)]]
        lo, hi = -6, 6
        if rng.random() < cfg.ledger_excursion:
            reach = 4 + 2 * int(rng.integers(3, 7))  # 3 to 6 ledger lines
            if rng.random() < 0.5:
                hi = reach
                walkers[0].position = reach - int(rng.integers(0, 3))
            else:
                lo = -reach
                walkers[0].position = -reach + int(rng.integers(0, 3))
        two = role is None and rng.random() < cfg.two_voices
        if two:
            upper = self.voice(self.rhythm.measure(time, density), clef, key, walkers[0], 0, hi, 2)
            walkers[1].position = min(walkers[1].position, -1)
            lower = self.rhythm.measure(time, density * 0.6)
            return [upper, self.voice(lower, clef, key, walkers[1], lo, -1, 2)]
        groups = self.rhythm.measure(time, density)
        silent = None
        if role is not None and hand_off is not None:
            # A line passes between the hands: the upper staff plays the beats before
            # `hand_off` and rests after; the lower staff the other way round.
            beats = len(groups)
            cut = min(hand_off, beats)
            silent = set(range(cut, beats)) if role == "upper" else set(range(cut))
            if role == "upper":
                lo, walkers[0].position = -8, -4
            else:
                hi, walkers[0].position = 10, 6
        change = None
        if role is None and len(groups) > 1 and rng.random() < cfg.mid_measure_clef:
            change = (int(rng.integers(1, len(groups))), self.other_clef(clef, clef))
            clefs[s] = change[1]
        return [self.voice(groups, clef, key, walkers[0], lo, hi, 1, silent, change)]

    def _tie_across(self, measures: list[Measure]) -> None:
        """Tie some notes over a plain barline into the same voice of the next measure."""
        for m, nxt in zip(measures, measures[1:], strict=False):
            if m.barline != "single" or nxt.repeat_start or nxt.volta or nxt.multirest:
                continue
            for sm, sn in zip(m.staves, nxt.staves, strict=True):
                for va, vb in zip(sm.voices, sn.voices, strict=False):
                    a = va[-1] if va else None
                    b = next((e for e in vb if not isinstance(e, ClefChange)), None)
                    if (
                        isinstance(a, Note)
                        and isinstance(b, Note)
                        and not b.grace
                        and self.rng.random() < self.config.tie
                    ):
                        b.pitches = list(a.pitches)
                        b.ties = [False] * len(b.pitches)
                        a.ties = [True] * len(a.pitches)


def _item_length(item: object) -> Fraction:
    if isinstance(item, Duration):
        return item.quarter_length
    _, actual, normal, durations = item  # type: ignore[misc]
    return sum((d.quarter_length for d in durations), Fraction(0)) * Fraction(normal, actual)


def _piano_staves(parts: list[Part]) -> list[int]:
    s = 0
    for part in parts:
        if part.staves == 2:
            return [s, s + 1]
        s += part.staves
    return []


def generate_score(rng: np.random.Generator, config: GeneratorConfig | None = None) -> Score:
    """A random short piece; every measure of every staff fills its time signature."""
    return _Generator(rng, config or GeneratorConfig()).score()


def measures_fill(score: Score) -> bool:
    """Whether every voice of every measure (multi-measure rests aside) fills its time."""
    time = None
    for m in score.measures:
        time = m.staves[0].time or time
        for sm in m.staves:
            for v in sm.voices:
                if m.multirest <= 1 and time and voice_length(v, time) != time_length(time):
                    return False
    return True
