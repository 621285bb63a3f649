"""The printed symbols the vocabulary can name: pitches, durations, clefs, keys, times, barlines.

Every symbol here is a small immutable value with a canonical text form that the
token vocabulary is built from, so `Pitch.parse(p.name) == p` and so on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

STEPS = ("C", "D", "E", "F", "G", "A", "B")
STEP_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
ALTERS = {-2: "bb", -1: "b", 0: "", 1: "#", 2: "##"}
ALTER_OF_TEXT = {v: k for k, v in ALTERS.items()}
OCTAVES = range(0, 9)

#: Printed note values from longest to shortest, with their length in quarter notes.
DURATION_TYPES: dict[str, Fraction] = {
    "breve": Fraction(8),
    "whole": Fraction(4),
    "half": Fraction(2),
    "quarter": Fraction(1),
    "eighth": Fraction(1, 2),
    "16th": Fraction(1, 4),
    "32nd": Fraction(1, 8),
    "64th": Fraction(1, 16),
}
MAX_DOTS = 2

#: Clefs as sign + staff line, with an optional octave transposition.
CLEFS = (
    "G2",
    "G1",
    "G2-8vb",
    "G2-8va",
    "F4",
    "F3",
    "F5",
    "F4-8vb",
    "C1",
    "C2",
    "C3",
    "C4",
    "C5",
)

#: Key signatures by their printed accidentals: 0, 1#..7#, 1b..7b.
KEYS = tuple(range(-7, 8))

#: Time signatures: numeric n/d, plus common time (C) and cut time (C|).
TIME_SIGNATURES = (
    "C",
    "C|",
    *(f"{n}/{d}" for d in (1, 2, 4, 8, 16) for n in range(1, 17)),
)

BARLINES = ("single", "double", "final", "repeat-end")

#: Tuplet ratios (actual notes : normal notes) the vocabulary names.
TUPLETS = ((3, 2), (2, 3), (4, 3), (5, 4), (6, 4), (7, 4), (7, 8), (9, 8), (5, 2), (10, 8))

MAX_VOLTA = 4
MAX_MULTIREST = 32

#: Printed things the first vocabulary leaves out on purpose (see README).
DROPPED_ON_PURPOSE = (
    "lyrics",
    "dynamics",
    "articulations",
    "slurs",
    "fingerings",
    "text and tempo marks",
    "ornaments",
    "courtesy accidentals (pitch is spelled, the key signature is a token)",
)


def key_text(sharps: int) -> str:
    """`2` -> `2#`, `-3` -> `3b`, `0` -> `0`."""
    if sharps > 0:
        return f"{sharps}#"
    if sharps < 0:
        return f"{-sharps}b"
    return "0"


def parse_key(text: str) -> int:
    """Inverse of :func:`key_text`."""
    if text == "0":
        return 0
    count, sign = int(text[:-1]), text[-1]
    return count if sign == "#" else -count


#: The order sharps are added to a key signature; flats go the other way.
SHARP_ORDER = "FCGDAEB"


def key_alter(key: int, step: str) -> int:
    """Alteration the key signature gives a step (key as sharps > 0, flats < 0)."""
    if key > 0 and step in SHARP_ORDER[:key]:
        return 1
    if key < 0 and step in SHARP_ORDER[::-1][:-key]:
        return -1
    return 0


def time_length(time: str) -> Fraction:
    """Length of a full measure in quarter notes."""
    num, den = time_fraction(time)
    return Fraction(num * 4, den)


def time_fraction(time: str) -> tuple[int, int]:
    """Numerator and denominator as printed (C is 4/4, C| is 2/2)."""
    if time == "C":
        return 4, 4
    if time == "C|":
        return 2, 2
    num, den = time.split("/")
    return int(num), int(den)


@dataclass(frozen=True, order=True)
class Pitch:
    """A spelled pitch: step, chromatic alteration in semitones, octave (C4 is middle C)."""

    step: str
    alter: int
    octave: int

    @property
    def name(self) -> str:
        return f"{self.step}{ALTERS[self.alter]}{self.octave}"

    @property
    def midi(self) -> int:
        return 12 * (self.octave + 1) + STEP_SEMITONES[self.step] + self.alter

    @property
    def sort_key(self) -> tuple[int, int]:
        """Canonical chord order: by sounding pitch, then by staff position."""
        return (self.midi, STEPS.index(self.step) + 7 * self.octave)

    @classmethod
    def parse(cls, text: str) -> Pitch:
        m = _PITCH_RE.fullmatch(text)
        if not m:
            raise ValueError(f"not a pitch: {text!r}")
        return cls(m.group(1), ALTER_OF_TEXT[m.group(2)], int(m.group(3)))

    def __str__(self) -> str:
        return self.name


_PITCH_RE = re.compile(r"([A-G])(bb|b|##|#|)(\d)")


@dataclass(frozen=True)
class Duration:
    """A printed note value with dots; tuplets are carried by the enclosing group."""

    type: str
    dots: int = 0

    @property
    def name(self) -> str:
        return self.type + "." * self.dots

    @property
    def quarter_length(self) -> Fraction:
        base = DURATION_TYPES[self.type]
        return base * (2 - Fraction(1, 2**self.dots))

    @classmethod
    def parse(cls, text: str) -> Duration:
        base = text.rstrip(".")
        if base not in DURATION_TYPES:
            raise ValueError(f"not a duration: {text!r}")
        return cls(base, len(text) - len(base))

    def __str__(self) -> str:
        return self.name


def all_durations() -> list[Duration]:
    """Every printable duration, longest first, undotted before dotted."""
    return [Duration(t, d) for t in DURATION_TYPES for d in range(MAX_DOTS + 1)]


def all_pitches() -> list[Pitch]:
    """Every spelled pitch the vocabulary names, low to high."""
    return [Pitch(s, a, o) for o in OCTAVES for s in STEPS for a in ALTERS]
