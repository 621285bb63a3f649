"""The token vocabulary: every event token with a stable integer id, saved as JSON beside models.

Token forms (in reading order, measure by measure, staff by staff)::

    <clef:G2> <key:2#> <time:3/4> <note:F#5-quarter.> <tie> <chord> <note:A5-quarter.>
    <rest:eighth> <mrest> <multirest:4> <grace> <tuplet:3:2> ... <tuplet-end>
    <voice> <staff> <repeat-start> <volta:1> <barline> <barline:double>
    <barline:final> <barline:repeat-end> <voice:2>

``<voice:N>`` belongs to the onset reading order of :mod:`.reading_order` (what a CTC head
is trained to read), never to canonical sequences; its tokens come last so that adding them
left every earlier token's id and factors as they were.

Ids are assigned by a fixed construction order, so the same code always builds the same
vocabulary; a model ships the JSON it was trained with and `Vocabulary.load` restores it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .symbols import (
    BARLINES,
    CLEFS,
    KEYS,
    MAX_MULTIREST,
    MAX_VOLTA,
    TIME_SIGNATURES,
    TUPLETS,
    Duration,
    Pitch,
    all_durations,
    all_pitches,
    key_text,
    parse_key,
)

VOCABULARY_VERSION = 1
MAX_VOICES = 4  # voices per staff in one measure

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
STAFF, VOICE, CHORD, TIE, GRACE = "<staff>", "<voice>", "<chord>", "<tie>", "<grace>"
TUPLET_END, REPEAT_START, MREST = "<tuplet-end>", "<repeat-start>", "<mrest>"

#: Token kinds, in the order used for the `kind` factor.
KINDS = (
    "special",
    "staff",
    "voice",
    "chord",
    "tie",
    "grace",
    "tuplet_end",
    "repeat_start",
    "mrest",
    "barline",
    "volta",
    "multirest",
    "clef",
    "key",
    "time",
    "tuplet",
    "rest",
    "note",
    "voice_to",
)


@dataclass(frozen=True)
class TokenInfo:
    """What one token means, parsed once from its text."""

    kind: str
    pitch: Pitch | None = None
    duration: Duration | None = None
    value: str | None = None  # clef name, key text, time text, barline kind, number...

    @property
    def number(self) -> int:
        """Numeric value of volta / multirest tokens."""
        return int(self.value or 0)

    @property
    def tuplet_ratio(self) -> tuple[int, int]:
        actual, normal = (self.value or "0:0").split(":")
        return int(actual), int(normal)

    @property
    def key(self) -> int:
        return parse_key(self.value or "0")


def barline_token(kind: str) -> str:
    """Token text for a barline kind (`single` is the plain `<barline>`)."""
    return "<barline>" if kind == "single" else f"<barline:{kind}>"


def note_token(pitch: Pitch, duration: Duration) -> str:
    return f"<note:{pitch.name}-{duration.name}>"


def rest_token(duration: Duration) -> str:
    return f"<rest:{duration.name}>"


def voice_to_token(number: int) -> str:
    """The onset-order token that hands the next event to voice ``number`` (1-based)."""
    return f"<voice:{number}>"


def _build() -> list[tuple[str, TokenInfo]]:
    out: list[tuple[str, TokenInfo]] = [(t, TokenInfo("special")) for t in (PAD, BOS, EOS, UNK)]
    out += [
        (STAFF, TokenInfo("staff")),
        (VOICE, TokenInfo("voice")),
        (CHORD, TokenInfo("chord")),
        (TIE, TokenInfo("tie")),
        (GRACE, TokenInfo("grace")),
        (TUPLET_END, TokenInfo("tuplet_end")),
        (REPEAT_START, TokenInfo("repeat_start")),
        (MREST, TokenInfo("mrest")),
    ]
    out += [(barline_token(b), TokenInfo("barline", value=b)) for b in BARLINES]
    out += [(f"<volta:{n}>", TokenInfo("volta", value=str(n))) for n in range(1, MAX_VOLTA + 1)]
    out += [
        (f"<multirest:{n}>", TokenInfo("multirest", value=str(n)))
        for n in range(2, MAX_MULTIREST + 1)
    ]
    out += [(f"<clef:{c}>", TokenInfo("clef", value=c)) for c in CLEFS]
    out += [(f"<key:{key_text(k)}>", TokenInfo("key", value=key_text(k))) for k in KEYS]
    out += [(f"<time:{t}>", TokenInfo("time", value=t)) for t in TIME_SIGNATURES]
    out += [(f"<tuplet:{a}:{n}>", TokenInfo("tuplet", value=f"{a}:{n}")) for a, n in TUPLETS]
    durations = all_durations()
    out += [(rest_token(d), TokenInfo("rest", duration=d)) for d in durations]
    out += [
        (note_token(p, d), TokenInfo("note", pitch=p, duration=d))
        for p in all_pitches()
        for d in durations
    ]
    out += [
        (voice_to_token(n), TokenInfo("voice_to", value=str(n))) for n in range(1, MAX_VOICES + 1)
    ]
    return out


class Vocabulary:
    """Token text <-> id, plus each token's parsed meaning and factor ids for embeddings."""

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(self, tokens: list[str] | None = None) -> None:
        built = dict(_build())
        if tokens is None:
            tokens = list(built)
        missing = [t for t in tokens if t not in built]
        if missing:
            raise ValueError(f"unknown tokens in vocabulary: {missing[:5]}")
        if tokens[:4] != [PAD, BOS, EOS, UNK]:
            raise ValueError("a vocabulary must start with <pad> <bos> <eos> <unk>")
        self.tokens: list[str] = list(tokens)
        self.infos: list[TokenInfo] = [built[t] for t in self.tokens]
        self._ids = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._ids

    def id(self, token: str) -> int:
        return self._ids.get(token, self.unk_id)

    def token(self, token_id: int) -> str:
        return self.tokens[token_id]

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.id(t) for t in tokens]

    def decode(self, ids: list[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def info(self, token_id: int) -> TokenInfo:
        return self.infos[token_id]

    @cached_property
    def kind_ids(self) -> np.ndarray:
        """(V,) index of each token's kind in `KINDS`."""
        return np.array([KINDS.index(i.kind) for i in self.infos], dtype=np.int64)

    def factors(self) -> np.ndarray:
        """(V, 4) factor ids per token: kind, pitch, duration, own id for other tokens (0 = none).

        A model embeds a token as the sum of its factor embeddings, so rare pitch/duration
        combinations share what was learnt about their pitch and their duration.
        """
        pitches = {p: i + 1 for i, p in enumerate(all_pitches())}
        durations = {d: i + 1 for i, d in enumerate(all_durations())}
        table = np.zeros((len(self), 4), dtype=np.int64)
        other = 0
        for i, info in enumerate(self.infos):
            table[i, 0] = KINDS.index(info.kind)
            if info.pitch is not None:
                table[i, 1] = pitches[info.pitch]
            if info.duration is not None:
                table[i, 2] = durations[info.duration]
            if info.kind not in ("note", "rest"):
                other += 1
                table[i, 3] = other
        return table

    def factor_sizes(self) -> tuple[int, int, int, int]:
        """Number of distinct ids in each factor column (including 0)."""
        table = self.factors()
        return tuple(int(table[:, c].max()) + 1 for c in range(4))  # type: ignore[return-value]

    def to_json(self) -> dict:
        return {"version": VOCABULARY_VERSION, "tokens": self.tokens}

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=0), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("version") != VOCABULARY_VERSION:
            raise ValueError(f"{path}: vocabulary version {data.get('version')} is not supported")
        return cls(data["tokens"])


_DEFAULT: Vocabulary | None = None


def default_vocabulary() -> Vocabulary:
    """The vocabulary built by this version of the code (shared, built once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Vocabulary()
    return _DEFAULT
