"""The second look: a staff the first reading leaves flagged or unsure is read again wider,
and the better of the two readings is kept (omr_engine/inference/second_look.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from omr_engine.inference.decoding import Result
from omr_engine.inference.preprocess import PreprocessConfig, resize_crop
from omr_engine.inference.second_look import SecondLook, flagged_measures, vote_measures
from omr_engine.notation.grammar import Grammar
from omr_engine.notation.music21_io import read_score
from omr_engine.notation.tokens import tokens_by_measure
from omr_engine.notation.vocabulary import default_vocabulary
from omr_engine.pipeline import PagePipeline, Progress
from tests.test_pipeline import SAMPLES, TrueTokens, sample_page


def test_a_staff_is_read_again_when_flagged_or_unsure_and_only_then():
    look = SecondLook((1.4,), below=-0.2)
    assert look.wanted(1, -0.01)
    assert look.wanted(0, -0.5)
    assert not look.wanted(0, -0.1)
    assert not SecondLook((1.4,), None).wanted(0, -5.0)
    assert SecondLook.of(1.4) == SecondLook((1.4,), None)
    assert SecondLook.of([1.4, 1.25], -0.2).stretches == (1.4, 1.25)
    assert SecondLook.from_runtime(
        SimpleNamespace(second_stretch=[1.1, 1.4], second_below=-0.2, second_vote=True)
    ) == SecondLook((1.1, 1.4), -0.2, vote=True)
    assert SecondLook.from_runtime(SimpleNamespace(second_stretch=1.4)) == SecondLook.of(1.4)
    assert SecondLook.from_runtime(SimpleNamespace()) is None
    with pytest.raises(ValueError):
        SecondLook((1.4, 0.0))


def test_the_reading_with_fewer_flagged_measures_then_the_higher_score_wins():
    assert SecondLook.prefer((2, -0.1), (1, -0.9))
    assert not SecondLook.prefer((1, -0.9), (2, -0.1))
    assert SecondLook.prefer((1, -0.3), (1, -0.2))
    assert not SecondLook.prefer((0, -0.2), (0, -0.2))


def test_flagged_measures_counts_a_short_measure_but_not_an_opening_pickup():
    vocab = default_vocabulary()
    grammar = Grammar(vocab)
    line = (
        "<clef:G2> <note:C5-quarter> <barline> <note:D5-half> <barline> <note:E5-whole> <barline>"
    )
    ids = vocab.encode(line.split())
    assert flagged_measures(grammar, ids, "4/4") == {0, 1}
    assert flagged_measures(grammar, ids, "4/4", piece_start=True) == {1}
    assert flagged_measures(grammar, ids, "1/4", piece_start=True) == {1, 2}


def test_a_crop_is_resized_stretch_times_wider_within_the_widest_input():
    cfg = PreprocessConfig()
    crop = np.full((128, 400), 255, np.uint8)
    assert resize_crop(crop, cfg).shape == (64, 200)
    assert resize_crop(crop, cfg, stretch=1.4).shape == (64, 280)
    wide = np.full((64, 1400), 255, np.uint8)
    assert resize_crop(wide, cfg, stretch=1.4).shape == (64, cfg.max_width)


class WiderReads(TrueTokens):
    """True tokens, except that read at the normal width the first staff loses a note of
    its second measure; read wider it is read right (or, with ``helps`` False, loses
    every B4)."""

    def __init__(self, helps: bool = True) -> None:
        super().__init__()
        self.runtime = SimpleNamespace(second_stretch=[1.4, 1.25], second_below=None)
        self.helps = helps
        self.truth = [list(a) for a in self.answers]
        vocab = default_vocabulary()
        first = vocab.decode(self.answers[0])
        cut = first.index("<barline>") + 1  # the second measure's first note
        self.answers[0] = vocab.encode(first[:cut] + first[cut + 1 :])
        self.bad_wider = vocab.encode([t for t in first if not t.startswith("<note:B4")])
        self.index: dict[int, int] = {}
        self.stretches: list[float | None] = []

    def recognize(self, images, grammar_factory=None, beam=1, token_logp=False, stretch=None):
        self.stretches.append(stretch)
        if stretch is None:
            for image in images:
                self.index[id(image)] = len(self.index)
            return super().recognize(images, grammar_factory, beam, token_logp)
        out = []
        for image in images:
            ids = self.wider(self.index[id(image)], stretch)
            out.append(Result(ids, [0.8] * len(ids)))
        return out

    def wider(self, k: int, stretch: float) -> list[int]:
        """Crop ``k`` read ``stretch`` times wider."""
        return self.truth[k] if self.helps or k else self.bad_wider


def test_a_staff_the_grammar_flags_is_read_again_wider_and_the_better_reading_kept():
    fake = WiderReads()
    events = list(PagePipeline(recognizer=fake).read_page(sample_page()))
    assert fake.stretches == [None, 1.4]  # no staff left in doubt for the second width
    reports = [e.message for e in events if isinstance(e, Progress)]
    assert any("reading 1 staves again, 1.4 times wider" in r for r in reports)
    source, _ = read_score(SAMPLES / "bwv66.6.musicxml")
    assert tokens_by_measure(events[-1].score) == tokens_by_measure(source)


def test_a_wider_reading_that_is_worse_is_not_kept():
    fake = WiderReads(helps=False)
    result = list(PagePipeline(recognizer=fake).read_page(sample_page()))[-1]
    source, _ = read_score(SAMPLES / "bwv66.6.musicxml")
    assert fake.stretches == [None, 1.4, 1.25]  # still in doubt: the next width too
    read, truth = tokens_by_measure(result.score), tokens_by_measure(source)
    assert [k for k in range(len(truth)) if read[k] != truth[k]] == [1]  # as first read


def test_no_second_look_without_the_models_settings_or_when_turned_off():
    fake = WiderReads()
    fake.runtime = SimpleNamespace()
    list(PagePipeline(recognizer=fake).read_page(sample_page()))
    assert fake.stretches == [None]
    off = WiderReads()
    list(PagePipeline(recognizer=off, second_look=False).read_page(sample_page()))
    assert off.stretches == [None]


def test_cancelling_during_the_second_look_stops_the_page():
    from omr_engine.pipeline import Cancelled, CancelToken

    cancel = CancelToken()
    reader = PagePipeline(recognizer=WiderReads()).read_page(sample_page(), cancel)
    with pytest.raises(Cancelled):
        for event in reader:
            if isinstance(event, Progress) and "again" in event.message:
                cancel.cancel()


def _line(text: str, conf: float = 0.9):
    ids = default_vocabulary().encode(text.split())
    return ids, [conf] * len(ids), [None] * len(ids)


def test_a_vote_takes_each_measure_from_the_readings_that_agree():
    barline = Grammar(default_vocabulary()).kinds("barline")
    right = "<note:C5-half> <barline> <note:D5-half> <barline> <note:E5-half> <barline>"
    lines = [
        _line("<note:C5-half> <barline> <note:G4-half> <barline> <note:E5-half> <barline>"),
        _line("<note:A4-half> <barline> <note:D5-half> <barline> <note:E5-half> <barline>"),
        _line("<note:C5-half> <barline> <note:D5-half> <barline> <note:F5-half> <barline>"),
    ]
    ids, confs, rows = vote_measures(lines, [set(), set(), set()], barline)
    assert ids == _line(right)[0]
    assert len(confs) == len(rows) == len(ids)


def test_a_vote_passes_over_a_measure_the_grammar_flags_and_lines_cut_otherwise():
    barline = Grammar(default_vocabulary()).kinds("barline")
    first = _line("<note:C5-quarter> <barline> <note:D5-half> <barline>")
    wider = _line("<note:C5-half> <barline> <note:D5-quarter> <barline>", conf=0.5)
    wider_too = _line("<note:C5-half> <barline> <note:D5-quarter> <barline>", conf=0.6)
    # the first reading's first measure is flagged, the wider ones' second: each measure
    # comes from a reading that passes it, however many readings agree on the other
    voted = vote_measures([first, wider, wider_too], [{0}, {1}, {1}], barline)
    assert voted[0] == _line("<note:C5-half> <barline> <note:D5-half> <barline>")[0]
    assert voted[1] == [0.6, 0.6, 0.9, 0.9]  # the surer of the two that agree
    # a witness (a reading before its flagged measures were read again) is never taken,
    # but pulls the choice towards itself
    passing = [_line("<note:C5-half> <barline> <note:D5-half> <barline>")] * 2
    dropped = _line("<note:C5-half> <barline> <note:D5-quarter> <note:A4-quarter> <barline>")
    voters = [passing[0], dropped, passing[1]]
    # without witnesses the two alike win measure 2, with the line the other was re-read
    # from, its own measure is nearer
    assert vote_measures(voters, [set()] * 3, barline)[0] == passing[0][0]
    seen = _line("<note:C5-half> <barline> <note:D5-quarter> <note:A4-eighth> <barline>")[0]
    assert vote_measures(voters, [set()] * 3, barline, [seen] * 3)[0] == dropped[0]
    assert vote_measures(voters, [set()] * 3, barline, [seen] * 9)[0] == dropped[0]
    # a reading cut into another number of measures does not vote; alone, the first stands
    cut_otherwise = _line("<note:C5-half> <note:D5-half> <barline>")
    assert vote_measures([first, cut_otherwise], [{0}, set()], barline) == first


class VotedReads(WiderReads):
    """True tokens, except that each reading of the first staff gets one measure wrong: at
    the normal width it loses the second measure's first note (the grammar flags it), at
    each wider width another measure's first note is read a step off."""

    def __init__(self) -> None:
        super().__init__()
        self.runtime = SimpleNamespace(
            second_stretch=[1.1, 1.25, 1.4], second_below=None, second_vote=True
        )
        vocab = default_vocabulary()
        first = vocab.decode(self.truth[0])
        starts = [0] + [k + 1 for k, t in enumerate(first) if t == "<barline>"]
        notes = [
            next(k for k in range(a, len(first)) if first[k].startswith("<note:"))
            for a in starts[:4]
        ]
        self.answers[0] = vocab.encode(first[: notes[1]] + first[notes[1] + 1 :])

        def off(k: int) -> list[int]:
            tokens = list(first)
            pitch, value = tokens[k][len("<note:") : -1].split("-", 1)
            tokens[k] = f"<note:{'C4' if pitch != 'C4' else 'D4'}-{value}>"
            return vocab.encode(tokens)

        self.misread = {1.1: off(notes[2]), 1.25: off(notes[3]), 1.4: off(notes[0])}

    def wider(self, k: int, stretch: float) -> list[int]:
        return self.misread[stretch] if k == 0 else self.truth[k]


def test_a_voting_look_reads_a_staff_in_doubt_at_every_width_and_votes_its_measures():
    fake = VotedReads()
    events = list(PagePipeline(recognizer=fake).read_page(sample_page()))
    assert fake.stretches == [None, 1.1, 1.25, 1.4]
    reports = [e.message for e in events if isinstance(e, Progress)]
    assert any("reading 1 staves again, 1.25 times wider" in r for r in reports)
    again = [e for e in events if isinstance(e, Progress) and "again" in e.message]
    crops = fake.calls  # the first readings, one per staff
    assert [(e.done, e.total) for e in again] == [(crops + n, crops + 3) for n in range(3)]
    source, _ = read_score(SAMPLES / "bwv66.6.musicxml")
    # no reading is right throughout, yet every measure is right in most of them
    assert tokens_by_measure(events[-1].score) == tokens_by_measure(source)


def test_cancelling_during_a_voting_look_stops_the_page():
    from omr_engine.pipeline import Cancelled, CancelToken

    cancel = CancelToken()
    fake = VotedReads()
    reader = PagePipeline(recognizer=fake).read_page(sample_page(), cancel)
    with pytest.raises(Cancelled):
        for event in reader:
            if isinstance(event, Progress) and "1.25 times wider" in event.message:
                cancel.cancel()
    assert fake.stretches == [None, 1.1]  # no width read after the cancel
