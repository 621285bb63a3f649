"""The in-memory curriculum dataset: line-start cuts at measure boundaries, clean first."""

from __future__ import annotations

import numpy as np
import pytest

from omr_engine.model.config import ModelConfig
from omr_engine.model.curriculum import (
    CropRecord,
    PrefixCropDataset,
    Schedule,
    load_records,
    split_measures,
)
from omr_engine.notation.grammar import Grammar
from omr_engine.notation.vocabulary import default_vocabulary
from omr_engine.synth.build import BuildConfig, build


def test_split_measures_cuts_after_each_barline_kind():
    tokens = "<clef:G2> <note:C4-half> <note:D4-half> <barline> <repeat-start> <note:E4-whole> <barline:repeat-end> <rest-half>".split()
    assert split_measures(tokens) == [
        ["<clef:G2>", "<note:C4-half>", "<note:D4-half>", "<barline>"],
        ["<repeat-start>", "<note:E4-whole>", "<barline:repeat-end>"],
        ["<rest-half>"],
    ]
    assert split_measures([]) == []


def _record(strength: float, n: int = 3) -> CropRecord:
    image = np.full((64, 300), 255, np.uint8)
    pieces = tuple((10 * m + 1, 10 * m + 2) for m in range(n))
    return CropRecord(image, pieces, tuple(100 * (m + 1) for m in range(n)), strength, "Leipzig")


def test_prefix_crop_keeps_the_first_k_measures_and_cuts_the_image_there():
    ds = PrefixCropDataset([_record(0.0)])
    ds.set_curriculum(max_measures=0)
    whole = ds[0]
    assert whole["ids"] == [1, 2, 11, 12, 21, 22] and whole["image"].shape == (64, 300)
    seen = set()
    for seed in range(40):
        ds.set_curriculum(max_measures=2, seed=seed)
        item = ds[0]
        k = len(item["ids"]) // 2
        assert k in (1, 2)
        assert item["ids"] == whole["ids"][: 2 * k]
        assert item["image"].shape == (64, 100 * k)
        seen.add(k)
    assert seen == {1, 2}
    ds.set_curriculum(max_measures=3, max_width=250)  # the third measure ends at 300
    assert len(ds[0]["ids"]) <= 4
    for seed in range(20):
        ds.set_curriculum(max_measures=3, max_width=250, seed=seed)
        assert ds[0]["image"].shape[1] <= 250
    ds.set_curriculum(max_measures=2, seed=7)
    assert ds[0]["ids"] == ds[0]["ids"]  # a pure function of (seed, index)


def test_strength_cap_only_serves_lightly_degraded_records():
    ds = PrefixCropDataset([_record(s) for s in (0.9, 0.1, 0.5, 0.2)])
    ds.set_curriculum(max_strength=0.3)
    strengths = set()
    for i in range(20):
        item = ds[i]
        strengths.add(next(r.strength for r in ds.records if r.image is item["image"]))
    assert strengths == {0.1, 0.2}


def test_schedule_grows_to_whole_lines_and_full_degradation():
    sched = Schedule(steps=1000, start_measures=2, full_at=0.5, start_strength=0.3)
    first, mid, late = sched(0), sched(250), sched(900)
    assert first["max_measures"] == 2 and first["max_strength"] == pytest.approx(0.3)
    assert first["max_width"] == 384 and late["max_width"] == 0
    assert 2 < mid["max_measures"] < 12 and 0.3 < mid["max_strength"] < 1.0
    assert late["max_measures"] == 0 and late["max_strength"] == 1.0


def test_cuts_of_real_synth_crops_are_grammatical_line_starts(tmp_path):
    build(tmp_path, 6, BuildConfig(seed=5, shard_size=6, generated=1.0, unit="staff"), workers=0)
    vocab = default_vocabulary()
    cfg = ModelConfig.preset("small")
    records = load_records([tmp_path], cfg.preprocess, vocab)
    assert len(records) == 6
    assert all(r.image.shape[0] == cfg.preprocess.height for r in records)
    cut = [r for r in records if r.right_edges]
    assert len(cut) >= 4  # single-staff crops whose boxes match their barlines
    grammar = Grammar(vocab)
    ds = PrefixCropDataset(records)
    for seed in range(3):
        ds.set_curriculum(max_measures=2, seed=seed)
        for i in range(len(ds)):
            item = ds[i]
            state = grammar.start()
            for tok in item["ids"]:
                assert state.allowed_mask()[tok], vocab.decode(item["ids"])
                state.advance(tok)
            assert state.allowed_mask()[vocab.eos_id]  # a cut ends where a line may end
            # the line header (after a volta or repeat sign, if any) is kept
            assert any(t.startswith("<clef:") for t in vocab.decode(item["ids"][:3]))


def test_uncuttable_records_wait_until_whole_lines():
    uncut = CropRecord(np.full((64, 900), 255, np.uint8), ((5, 6),), (), 0.0, "Bravura")
    ds = PrefixCropDataset([uncut, _record(0.0), _record(0.1)])
    ds.set_curriculum(max_measures=3)
    assert all(ds[i]["image"].shape[1] <= 300 for i in range(12))
    ds.set_curriculum(max_measures=0)
    assert any(ds[i]["image"].shape[1] == 900 for i in range(12))
