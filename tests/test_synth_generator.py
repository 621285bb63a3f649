"""The score generator: grammatical by construction, and it covers the rare things."""

from __future__ import annotations

import functools
from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from omr_engine.notation.grammar import Grammar, validate_score
from omr_engine.notation.score import ClefChange, Note, Rest, Tuplet
from omr_engine.notation.tokens import score_to_tokens, tokens_to_score
from omr_engine.synth.generator import CLEF_MIDDLE_LINE, generate_score, measures_fill


@functools.cache
def _grammar() -> Grammar:
    return Grammar()


@settings(max_examples=25)
@given(st.integers(0, 2**63 - 1))
def test_generated_scores_are_grammatical_and_full(seed):
    score = generate_score(np.random.default_rng(seed))
    assert validate_score(score, _grammar()) == []
    assert measures_fill(score)
    # Tokens rebuild the same music.
    tokens = score_to_tokens(score)
    assert score_to_tokens(tokens_to_score(tokens, score.parts)) == tokens


def test_same_seed_same_score():
    a = generate_score(np.random.default_rng(7))
    b = generate_score(np.random.default_rng(7))
    assert score_to_tokens(a) == score_to_tokens(b)


def _features(seeds: range) -> Counter:
    found: Counter = Counter()
    for seed in seeds:
        score = generate_score(np.random.default_rng(seed))
        tokens = score_to_tokens(score)
        for t in tokens:
            kind = t.strip("<>").split(":")[0]
            found[kind] += 1
            if t.startswith("<barline:") or t.startswith("<time:") or t.startswith("<clef:"):
                found[t] += 1
            if t.startswith("<note:") and ("##" in t or "bb" in t.split("-")[0][6:]):
                found["double accidental"] += 1
            if t.startswith("<note:") and ("-32nd" in t or "-64th" in t):
                found["32nd or 64th"] += 1
        found["grand staff"] += any(p.staves == 2 for p in score.parts)
        for i, m in enumerate(score.measures):
            contexts = score.contexts_before(i)
            for sm, ctx in zip(m.staves, contexts, strict=True):
                found["two voices"] += len(sm.voices) > 1
                if i and (sm.key is not None or sm.time is not None or sm.clef is not None):
                    found["change inside the piece"] += 1
                clef = sm.clef or ctx.clef
                for e in (e for v in sm.voices for e in v):
                    if isinstance(e, ClefChange):
                        found["clef change inside a measure"] += 1
                        clef = e.clef
                    notes = e.events if isinstance(e, Tuplet) else [e]
                    for n in notes:
                        if isinstance(n, Note):
                            for p in n.pitches:
                                pos = (
                                    7 * p.octave + "CDEFGAB".index(p.step) - CLEF_MIDDLE_LINE[clef]
                                )
                                found["3+ ledger lines"] += abs(pos) >= 10
                        if isinstance(n, Rest) and n.duration is None:
                            found["whole-measure rest"] += 1
    return found


def test_generator_covers_what_the_corpus_lacks():
    found = _features(range(30))
    for feature in (
        "tuplet",
        "grace",
        "tie",
        "chord",
        "double accidental",
        "32nd or 64th",
        "3+ ledger lines",
        "two voices",
        "grand staff",
        "clef change inside a measure",
        "change inside the piece",
        "whole-measure rest",
        "multirest",
        "repeat-start",
        "volta",
        "<barline:double>",
        "<barline:final>",
        "<barline:repeat-end>",
        "<clef:G2-8vb>",
        "<time:6/8>",
    ):
        assert found[feature] > 0, f"no {feature} in 30 generated pieces"
