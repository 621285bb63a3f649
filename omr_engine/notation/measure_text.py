"""A measure as editable token text, and back: what the studio's token editor shows and a
project file stores.

`measure_text` writes a measure as its tokens, one staff per line, the last line its
barline; `parse_measure_text` reads such text back. Unlike the canonical line form of
`tokens` (which prints the clef and key in force at every line start), this form keeps
exactly the attributes the measure carries, so a round trip changes nothing.
"""

from __future__ import annotations

from .score import Measure, StaffMeasure
from .symbols import key_text
from .tokens import event_tokens, tokens_to_score
from .vocabulary import barline_token, default_vocabulary


def measure_text(measure: Measure) -> str:
    """The measure's tokens, one staff per line, ending with a line holding its barline."""
    lines = []
    for s, sm in enumerate(measure.staves):
        toks: list[str] = []
        if s == 0:
            if measure.repeat_start:
                toks.append("<repeat-start>")
            if measure.volta:
                toks.append(f"<volta:{measure.volta}>")
        else:
            toks.append("<staff>")
        if sm.clef is not None:
            toks.append(f"<clef:{sm.clef}>")
        if sm.key is not None:
            toks.append(f"<key:{key_text(sm.key)}>")
        if sm.time is not None:
            toks.append(f"<time:{sm.time}>")
        if measure.multirest > 1:
            toks.append(f"<multirest:{measure.multirest}>")
        else:
            for v, voice in enumerate(sm.voices):
                if v:
                    toks.append("<voice>")
                for ev in voice:
                    toks += event_tokens(ev)
        lines.append(" ".join(toks))
    lines.append(barline_token(measure.barline))
    return "\n".join(lines)


def is_token(text: str) -> bool:
    """Whether `text` is a token of the vocabulary."""
    return text in default_vocabulary()


def parse_measure_text(text: str, like: Measure) -> tuple[Measure | None, list[str]]:
    """A measure from its token text, keeping `like`'s id, number, page and box, and padded
    to `like`'s staves; or None and the reasons (one sentence each) it cannot be read."""
    vocab = default_vocabulary()
    tokens = text.split()
    unknown = [t for t in tokens if t not in vocab]
    if unknown:
        return None, [f"unknown token {t}" for t in dict.fromkeys(unknown)]
    if not tokens:
        return None, ["the measure is empty"]
    if vocab.info(vocab.id(tokens[-1])).kind != "barline":
        return None, ["a measure ends with its barline, e.g. <barline>"]
    parsed = tokens_to_score(tokens).measures
    if len(parsed) != 1:
        return None, [f"the text holds {len(parsed)} measures; write one"]
    m = parsed[0]
    m.id, m.number, m.page, m.box = like.id, like.number, like.page, like.box
    staff_count = len(like.staves)
    if len(m.staves) < staff_count:
        m.staves += [StaffMeasure() for _ in range(staff_count - len(m.staves))]
    return m, []
