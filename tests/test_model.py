"""Model, loss and training loop on the tiny preset with a 99-token toy vocabulary."""

from __future__ import annotations

import csv
import dataclasses
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from omr_engine.model.config import PRESETS, ModelConfig  # noqa: E402
from omr_engine.model.data import Collate, StepBatchSampler  # noqa: E402
from omr_engine.model.loss import (  # noqa: E402
    compute_loss,
    ctc_best_path,
    ctc_grammar_loss,
    grammar_loss,
)
from omr_engine.model.metrics import edit_distance, symbol_error_rate  # noqa: E402
from omr_engine.model.network import OMRModel  # noqa: E402
from omr_engine.model.toy import BlocksDataset, ToyGrammar, ToyVocab  # noqa: E402
from omr_engine.model.train import (  # noqa: E402
    compute_ser,
    load_checkpoint,
    model_from_checkpoint,
    train,
)

torch.set_num_threads(1)


def tiny_model(seed: int = 0, **overrides) -> OMRModel:
    torch.manual_seed(seed)
    vocab = ToyVocab()
    cfg = ModelConfig.preset("tiny", **overrides).with_vocab(vocab)
    return OMRModel(cfg, vocab.factors()).eval()


def random_batch(cfg: ModelConfig, b: int = 3, t: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = cfg.preprocess.width_multiple * 3
    pixels = torch.rand(b, 1, cfg.preprocess.height, w, generator=g)
    widths = torch.tensor([w, w - 40, 21][:b])
    tokens = torch.randint(4, cfg.vocab_size, (b, t), generator=g)
    tokens[:, 0] = cfg.bos_id
    return pixels, widths, tokens


# ---- config ------------------------------------------------------------------------------


def test_config_json_roundtrip(tmp_path):
    for cfg in PRESETS.values():
        path = tmp_path / f"{cfg.name}.json"
        cfg.save(path)
        assert ModelConfig.load(path) == cfg
    with pytest.raises(KeyError):
        ModelConfig.preset("huge")
    with pytest.raises(ValueError):
        ModelConfig.preset("tiny", window=5)


@pytest.mark.parametrize(("name", "low", "high"), [("small", 2e6, 5.5e6), ("base", 20e6, 40e6)])
def test_preset_sizes(name, low, high):
    cfg = ModelConfig.preset(name, vocab_size=7800, factor_sizes=(16, 80, 24))
    with torch.device("meta"):
        n = OMRModel(cfg).num_params()
    assert low < n < high


# ---- network -----------------------------------------------------------------------------


def test_forward_shapes():
    model = tiny_model()
    cfg = model.cfg
    pixels, widths, tokens = random_batch(cfg)
    out = model(pixels, widths, tokens)
    assert out.logits.shape == (3, 7, cfg.vocab_size)
    assert out.balance.ndim == 0 and out.balance.item() >= 0.99  # 1.0 = perfectly balanced
    c = pixels.shape[-1] // 8
    assert out.ctc_logits.shape == (3, c, cfg.vocab_size + 1)
    assert out.ctc_lengths.tolist() == [c, -(-(widths[1].item()) // 8), -(-21 // 8)]
    cross, valid = model.encode(pixels, widths)
    s = cfg.memory_rows * c
    assert len(cross) == cfg.dec_layers
    h, hd = cfg.dec_heads, cfg.dec_head_dim
    assert all(k.shape == (3, h, hd, s) and v.shape == (3, h, s, hd) for k, v in cross)
    assert valid.shape == (3, s)
    with pytest.raises(ValueError, match="expected pixels"):
        model(pixels[:, :, :16], widths, tokens)


def test_cached_decoding_equals_full_recomputation():
    model = tiny_model()
    pixels, widths, tokens = random_batch(model.cfg)
    with torch.no_grad():
        full = model(pixels, widths, tokens).logits
        cross, valid = model.encode(pixels, widths)
        past = model.empty_cache(3, pixels)
        steps = []
        for t in range(tokens.shape[1]):
            logits, past, _ = model.decoder(tokens[:, t : t + 1], cross, valid, past)
            steps.append(logits)
        # and a two-token chunk after a cached prefix of three
        past3 = model.decoder(tokens[:, :3], cross, valid, model.empty_cache(3, pixels))[1]
        chunk = model.decoder(tokens[:, 3:5], cross, valid, past3)[0]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(chunk, full[:, 3:5], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("merge_rows_after", [-1, 0])
def test_padding_does_not_change_a_crop(merge_rows_after):
    """A crop alone and the same crop padded in a wider batch give the same memory."""
    model = tiny_model(merge_rows_after=merge_rows_after)
    cfg = model.cfg
    pixels, _, _ = random_batch(cfg)
    w = 2 * cfg.preprocess.width_multiple
    crop = pixels[:1, :, :, :w].clone()
    crop[..., 50:] = 0.0  # true width 50, then paper
    wide = torch.cat([crop, torch.zeros(1, 1, cfg.preprocess.height, w)], dim=-1)
    other = torch.rand(1, 1, cfg.preprocess.height, 2 * w)
    wide = torch.cat([wide, other], dim=0)  # batched with a wider crop
    with torch.no_grad():
        m1, v1 = model.forward_features(crop, torch.tensor([50]))
        m2, v2 = model.forward_features(wide, torch.tensor([50, 2 * w]))
    r = cfg.memory_rows
    a = m1.view(1, r, -1, cfg.d_model)
    b = m2[:1].view(1, r, -1, cfg.d_model)[:, :, : a.shape[2]]
    valid = v1.view(1, r, -1)[0, 0].bool()
    torch.testing.assert_close(a[:, :, valid], b[:, :, valid], atol=1e-5, rtol=1e-4)
    assert int(v2[0].sum()) == int(v1[0].sum())


def test_generate_stops_at_eos_and_respects_max_len():
    model = tiny_model()
    pixels, widths, _ = random_batch(model.cfg)
    out = model.generate(pixels, widths, max_len=6)
    assert len(out) == 3 and all(len(o) <= 5 for o in out)
    assert all(model.cfg.eos_id not in o for o in out)


# ---- loss --------------------------------------------------------------------------------


def test_grammar_loss_forms():
    logits = torch.zeros(1, 2, 4)
    allowed = torch.tensor([[[True, True, False, False], [True, False, False, False]]])
    valid = torch.tensor([[True, True]])
    mass = grammar_loss(logits, allowed, valid, "mass")
    nll = grammar_loss(logits, allowed, valid, "nll")
    assert mass.item() == pytest.approx((0.5 + 0.75) / 2)
    assert nll.item() == pytest.approx((np.log(2) + np.log(4)) / 2, rel=1e-5)
    with pytest.raises(ValueError):
        grammar_loss(logits, allowed, valid, "other")


def _grammar_classes(batch_tokens: torch.Tensor, vocab_size: int):
    """Class per position = ToyGrammar state after the prefix; masks indexed by class."""
    masks, index, class_ids = [], {}, torch.zeros_like(batch_tokens)
    for i, row in enumerate(batch_tokens.tolist()):
        g = ToyGrammar(vocab_size)
        for t, tok in enumerate(row):
            if t > 0:
                g.last, g.length = tok, g.length + 1  # follow the data, legal or not
            key = (g.last % 2 if g.last >= 4 else -1, g.length > 0)
            if key not in index:
                index[key] = len(masks)
                masks.append(g.allowed_mask())
            class_ids[i, t] = index[key]
    return class_ids, torch.as_tensor(np.stack(masks))


def test_grammar_loss_reduces_forbidden_mass():
    model = tiny_model()
    model.train()
    cfg = model.cfg
    pixels, widths, tokens = random_batch(cfg, t=9)
    targets = torch.cat([tokens[:, 1:], torch.full((3, 1), cfg.eos_id)], 1)
    class_ids, masks = _grammar_classes(tokens, cfg.vocab_size)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def forbidden_mass() -> float:
        with torch.no_grad():
            logits = model(pixels, widths, tokens).logits
        return grammar_loss(logits, masks[class_ids], targets != 0, "mass").item()

    before = forbidden_mass()
    out = model(pixels, widths, tokens)
    full = compute_loss(
        out.logits,
        targets,
        out.balance,
        cfg.pad_id,
        class_ids=class_ids,
        class_masks=masks,
        grammar_weight=0.5,
    )
    assert full.grammar.item() > 0
    assert full.total.item() == pytest.approx(
        (full.ce + 0.01 * full.balance + 0.5 * full.grammar).item(), rel=1e-5
    )
    for _ in range(25):
        logits = model(pixels, widths, tokens).logits
        loss = grammar_loss(logits, masks[class_ids], targets != cfg.pad_id, "nll")
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert forbidden_mass() < 0.5 * before


def _collapse(path: list[int], ext: list[int], blank: int) -> list[int]:
    out, prev = [], None
    for s in path:
        tok = ext[s]
        if tok != blank and s != prev:
            out.append(tok)
        prev = s
    return out


@pytest.mark.parametrize("seed", range(6))
def test_ctc_best_path_is_the_likeliest_path_that_spells_the_target(seed):
    import itertools

    rng = np.random.default_rng(seed)
    blank, frames = 3, 5
    logits = torch.as_tensor(rng.normal(size=(1, frames, 4)) * 2, dtype=torch.float32)
    lp = logits.log_softmax(-1)
    target = [int(x) for x in rng.integers(0, 3, size=int(rng.integers(1, 3)))]
    ext = [blank]
    for tok in target:
        ext += [tok, blank]
    path = ctc_best_path(
        lp, torch.tensor([target]), torch.tensor([frames]), torch.tensor([len(target)])
    )[0].tolist()
    assert _collapse(path, ext, blank) == target and path[0] in (0, 1)

    def score(p):
        return sum(float(lp[0, t, ext[s]]) for t, s in enumerate(p))

    # brute force over every state sequence the CTC rules allow
    best = -np.inf
    for p in itertools.product(range(len(ext)), repeat=frames):
        moves_ok = all(
            b == a or b == a + 1 or (b == a + 2 and ext[b] != blank and ext[b] != ext[a])
            for a, b in itertools.pairwise(p)
        )
        if moves_ok and p[0] in (0, 1) and p[-1] >= len(ext) - 2:
            best = max(best, score(p))
    assert score(path) == pytest.approx(best, abs=1e-5)


def test_ctc_best_path_marks_frames_past_the_input_and_targets_too_long_to_fit():
    lp = torch.zeros(2, 4, 3).log_softmax(-1)
    targets = torch.tensor([[0, 1], [0, 0]])
    path = ctc_best_path(lp, targets, torch.tensor([3, 2]), torch.tensor([2, 2]))
    assert path[0, 3] == -1 and (path[0, :3] >= 0).all()
    assert (path[1] == -1).all()  # 0 0 needs three frames (0, blank, 0): two do not fit


def test_ctc_grammar_loss_penalises_mass_outside_what_the_grammar_allows_there():
    # vocabulary 0..2, blank 3; class 0 allows {0}, class 1 allows {1}, class 2 allows {2}
    masks = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.bool)
    targets, class_ids = torch.tensor([[0, 1]]), torch.tensor([[0, 1, 2]])
    lengths, target_lengths = torch.tensor([4]), torch.tensor([2])
    good = torch.full((1, 4, 4), -9.0)
    for t, tok in enumerate([0, 3, 1, 3]):  # 0, blank, 1, blank
        good[0, t, tok] = 9.0
    bad = good.clone()
    bad[0, 1, 2] = 9.0  # the blank frame before 1 also likes 2, which may not come there
    low = ctc_grammar_loss(good.log_softmax(-1), targets, lengths, target_lengths, class_ids, masks)
    high = ctc_grammar_loss(bad.log_softmax(-1), targets, lengths, target_lengths, class_ids, masks)
    assert low.item() < 1e-5
    assert high.item() == pytest.approx(np.log(2) / 4, rel=1e-3)  # half the mass, one frame in 4


def test_ctc_grammar_term_counts_in_the_loss_and_lowers_forbidden_mass():
    import copy

    torch.manual_seed(0)
    start = tiny_model()
    cfg = start.cfg
    ds = BlocksDataset(4)
    batch = Collate(cfg)([ds[i] for i in range(4)])
    class_ids, masks = _grammar_classes(batch.tokens, cfg.vocab_size)

    def run(model, weight):
        out = model(batch.pixels, batch.widths, batch.tokens)
        return compute_loss(
            out.logits,
            batch.targets,
            out.balance,
            cfg.pad_id,
            class_ids=class_ids,
            class_masks=masks,
            ctc_logits=out.ctc_logits,
            ctc_lengths=out.ctc_lengths,
            ctc_weight=1.0,
            ctc_grammar_weight=weight,
        )

    plain, full = run(start, 0.0), run(start, 2.0)
    assert plain.ctc_grammar.item() == 0.0 and full.ctc_grammar.item() > 0
    assert full.total.item() == pytest.approx(
        (plain.total + 2.0 * full.ctc_grammar).item(), rel=1e-4
    )

    def trained(weight):
        model = copy.deepcopy(start)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(15):
            out = run(model, weight)
            opt.zero_grad()
            out.total.backward()
            opt.step()
        model.eval()
        return run(model, 1.0).ctc_grammar.item()  # the term measured, whatever trained

    # the same steps from the same start: with the term, less mass where it may not be
    assert trained(2.0) < 0.7 * trained(0.0)


def test_ctc_term_is_finite_and_reported():
    model = tiny_model()
    cfg = model.cfg
    ds = BlocksDataset(4)
    batch = Collate(cfg)([ds[i] for i in range(4)])
    out = model(batch.pixels, batch.widths, batch.tokens)
    loss = compute_loss(
        out.logits,
        batch.targets,
        out.balance,
        cfg.pad_id,
        ctc_logits=out.ctc_logits,
        ctc_lengths=out.ctc_lengths,
        ctc_weight=0.3,
        eos_id=cfg.eos_id,
    )
    assert torch.isfinite(loss.total) and loss.ctc.item() > 0


# ---- data and metrics --------------------------------------------------------------------


def test_collate_pads_and_aligns_targets():
    cfg = ModelConfig.preset("tiny")
    img = np.full((64, 100), 255, np.uint8)
    batch = Collate(cfg)([(img, [5, 6, 7]), (img[:, :40], [9])])
    assert batch.pixels.shape == (2, 1, 32, 64)
    assert batch.widths.tolist() == [50, 20]
    assert batch.tokens.tolist() == [[1, 5, 6, 7], [1, 9, 0, 0]]
    assert batch.targets.tolist() == [[5, 6, 7, 2], [9, 2, 0, 0]]


def test_step_sampler_is_a_function_of_step():
    a = StepBatchSampler(10, 4, seed=3)
    b = StepBatchSampler(10, 4, seed=3, start_step=5)
    ia, ib = iter(a), iter(b)
    first = [next(ia) for _ in range(8)]
    assert [next(ib) for _ in range(3)] == first[5:8]
    assert sorted(first[0] + first[1] + first[2][:2]) == list(range(10))  # one epoch


def test_edit_distance_matches_reference():
    def ref(a, b):
        d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                d[i][j] = min(
                    d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])
                )
        return d[-1][-1]

    rng = random.Random(0)
    for _ in range(300):
        a = [rng.randint(0, 3) for _ in range(rng.randint(0, 8))]
        b = [rng.randint(0, 3) for _ in range(rng.randint(0, 8))]
        assert edit_distance(a, b) == ref(a, b)
    assert symbol_error_rate([([1, 2], [1, 2, 3]), ([], [4])]) == pytest.approx(2 / 4)


# ---- training loop -----------------------------------------------------------------------

FAST = dict(device="cpu", batch_size=8, lr=3e-3, warmup_steps=2, eval_samples=8, log_every=1)


def test_resume_continues_exactly(tmp_path):
    data = BlocksDataset(32)
    vocab = ToyVocab()
    cfg = ModelConfig.preset("tiny")
    straight = train(
        cfg,
        data,
        None,
        tmp_path / "a",
        vocab=vocab,
        steps=6,
        eval_every=3,
        checkpoint_every=3,
        **FAST,
    )
    # the same run, stopped by the callback after step 3 and resumed
    r1 = train(
        cfg,
        data,
        None,
        tmp_path / "b",
        vocab=vocab,
        steps=6,
        eval_every=3,
        checkpoint_every=3,
        callback=lambda p: p.step >= 3,
        **FAST,
    )
    assert r1.step == 3
    r2 = train(
        cfg,
        data,
        None,
        tmp_path / "b",
        vocab=vocab,
        steps=6,
        eval_every=3,
        checkpoint_every=3,
        **FAST,
    )
    assert r2.step == 6 and straight.step == 6
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert b["step"] == 6
    for k, v in a["model"].items():
        torch.testing.assert_close(b["model"][k], v, atol=1e-6, rtol=1e-5, msg=k)
    rows = list(csv.DictReader((tmp_path / "b" / "log.csv").open()))
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4, 5, 6]  # a row every log_every
    assert [row["step"] for row in rows if row["val_ser"]] == []  # no val data given


def test_init_from_and_curriculum(tmp_path):
    data = BlocksDataset(16)

    class WithCurriculum(BlocksDataset):
        seen: list = []

        def set_curriculum(self, strength: float) -> None:
            WithCurriculum.seen.append(strength)

    cur = WithCurriculum(16)
    cfg = ModelConfig.preset("tiny")
    train(cfg, data, None, tmp_path / "a", vocab=ToyVocab(), steps=2, eval_every=10, **FAST)
    r = train(
        cfg,
        cur,
        data,
        tmp_path / "b",
        vocab=ToyVocab(),
        steps=3,
        eval_every=3,
        init_from=tmp_path / "a" / "last.pt",
        curriculum=lambda s: {"strength": s / 10},
        **FAST,
    )
    assert r.step == 3 and r.best_val_ser is not None
    assert WithCurriculum.seen[:3] == [0.0, 0.1, 0.2]


@pytest.mark.parametrize(("k_old", "k_new"), [(1, 2), (2, 3), (1, 3)])
def test_a_ctc_head_widened_from_a_checkpoint_first_reads_as_before(tmp_path, k_old, k_new):
    from omr_engine.inference.decoding import ctc_decode

    cfg = ModelConfig.preset("tiny", ctc_upsample=k_old)
    train(cfg, BlocksDataset(16), None, tmp_path / "a", vocab=ToyVocab(), steps=3, **FAST)
    old = model_from_checkpoint(tmp_path / "a" / "last.pt").eval()
    r = train(
        dataclasses.replace(cfg, ctc_upsample=k_new),
        BlocksDataset(16),
        None,
        tmp_path / "b",
        vocab=ToyVocab(),
        steps=1,
        init_from=tmp_path / "a" / "last.pt",
        **{**FAST, "lr": 0.0},  # one step that changes nothing, to save the widened model
    )
    assert r.step == 1
    wide = model_from_checkpoint(tmp_path / "b" / "last.pt").eval()
    assert wide.cfg.ctc_upsample == k_new
    pixels, widths, _ = random_batch(old.cfg)
    with torch.no_grad():
        lo, lo_len = old.ctc(*old.encoder(pixels, widths))
        hi, hi_len = wide.ctc(*wide.encoder(pixels, widths))
    cols = lo.shape[1] // k_old
    assert hi.shape[1] == k_new * cols
    assert hi_len.tolist() == (lo_len // k_old * k_new).tolist()
    lo_cols = lo.reshape(lo.shape[0], cols, k_old, -1)
    hi_cols = hi.reshape(hi.shape[0], cols, k_new, -1)
    for j in range(k_new):  # each new frame is the old frame it falls in
        torch.testing.assert_close(hi_cols[:, :, j], lo_cols[:, :, j * k_old // k_new])
    for i in range(len(widths)):
        a = ctc_decode(lo[i].numpy(), int(lo_len[i]))
        b = ctc_decode(hi[i].numpy(), int(hi_len[i]))
        assert a.ids == b.ids
        np.testing.assert_allclose(a.positions, b.positions, atol=1.0 / int(lo_len[i]))


def test_ce_weight_zero_trains_the_encoder_and_ctc_head_and_leaves_the_decoder(tmp_path):
    cfg = ModelConfig.preset("tiny")
    train(cfg, BlocksDataset(16), None, tmp_path / "a", vocab=ToyVocab(), steps=2, **FAST)
    before = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    kw = dict(vocab=ToyVocab(), steps=2, ctc_weight=1.0, **FAST)
    train(
        cfg,
        BlocksDataset(16),
        None,
        tmp_path / "b",
        init_from=tmp_path / "a" / "last.pt",
        ce_weight=0.0,
        **kw,
    )
    after = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    moved = {name for name in before if not torch.equal(before[name], after[name])}
    assert any(n.startswith("encoder.") for n in moved) and "ctc_proj.weight" in moved
    assert not any(n.startswith("decoder.") and "embed" not in n for n in moved)
    rows = list(csv.DictReader((tmp_path / "b" / "log.csv").open()))
    assert rows and all(float(r["ce"]) == 0.0 and float(r["ctc"]) > 0 for r in rows)
    with pytest.raises(ValueError, match="CTC head"):
        train(
            cfg, BlocksDataset(16), None, tmp_path / "c", ce_weight=0.0, **{**kw, "ctc_weight": 0.0}
        )


def test_ctc_upsample_out_of_range_is_refused():
    with pytest.raises(ValueError, match="ctc_upsample"):
        ModelConfig.preset("tiny", ctc_upsample=0)


def poison_losses(monkeypatch, value: float, batches: set[int] | None = None) -> dict:
    """Make train's loss ``value`` (NaN or inf) on the given batches (1-based; all when
    None), as one bad crop can; returns the count of batches seen."""
    import omr_engine.model.train as train_module

    calls = {"n": 0}
    real = train_module.compute_loss

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        calls["n"] += 1
        if batches is None or calls["n"] in batches:
            return dataclasses.replace(out, total=out.total * value)
        return out

    monkeypatch.setattr(train_module, "compute_loss", poisoned)
    return calls


def train_tiny(tmp_path, **kw):
    return train(
        ModelConfig.preset("tiny"), BlocksDataset(16), None, tmp_path, vocab=ToyVocab(), **kw
    )


def test_a_batch_with_a_non_finite_loss_is_skipped_not_learned(tmp_path, monkeypatch, capsys):
    calls = poison_losses(monkeypatch, float("nan"), batches={2})
    r = train_tiny(tmp_path, steps=3, eval_every=10, **FAST)
    assert r.step == 3 and calls["n"] == 4  # three updates, one batch skipped
    assert "update skipped" in capsys.readouterr().err
    weights = load_checkpoint(tmp_path / "last.pt")["model"]
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_training_stops_when_every_batch_is_non_finite(tmp_path, monkeypatch):
    poison_losses(monkeypatch, float("inf"))
    with pytest.raises(FloatingPointError, match="not finite"):
        train_tiny(tmp_path, steps=30, eval_every=100, max_bad_steps=4, **FAST)


@pytest.mark.slow
def test_tiny_model_learns_the_toy_task(tmp_path):
    """The whole loop works: loss falls and greedy decoding reads the blocks."""
    train_ds, val_ds = BlocksDataset(512, seed=0), BlocksDataset(64, seed=1)
    result = train(
        ModelConfig.preset("tiny"),
        train_ds,
        val_ds,
        tmp_path,
        vocab=ToyVocab(),
        device="cpu",
        steps=300,
        batch_size=16,
        lr=3e-3,
        warmup_steps=30,
        eval_every=150,
        eval_samples=64,
        checkpoint_every=150,
    )
    rows = list(csv.DictReader(result.log_path.open()))
    assert float(rows[-1]["ce"]) < 0.3 * float(rows[0]["ce"])
    assert result.best_val_ser is not None and result.best_val_ser < 0.1
    model = model_from_checkpoint(result.last_checkpoint)
    assert compute_ser(model, val_ds, max_samples=32) < 0.15


def test_train_command_streams_several_folders_degrading_clean_crops(tmp_path, capsys):
    from omr_engine.cli import main
    from omr_engine.synth.build import BuildConfig, build

    clean, other = tmp_path / "clean", tmp_path / "other"
    config = BuildConfig(seed=3, shard_size=3, generated=1.0, max_per_job=8, strength_max=0.0)
    build(clean, 3, config, workers=0)
    build(other, 3, dataclasses.replace(config, seed=4), workers=0)
    common = ["train", "--data", str(clean), "--data", str(other), "--config", "tiny"]
    common += ["--unit", "staff", "--device", "cpu", "--steps", "2", "--batch-size", "2"]
    common += ["--warmup", "1", "--eval-every", "100", "--checkpoint-every", "100"]
    framed = ["--degrade-online", "0.8", "--reframe", "1.5", "5", "--stretch", "0.8", "1.3"]
    framed += ["--seed", "3", "--ctc-grammar-weight", "0.5"]
    assert main(common + ["--out", str(tmp_path / "run"), *framed]) == 0
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 2
    with (tmp_path / "run" / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["ctc_grammar"]) > 0  # the CTC head's grammar term was trained
    # a wider CTC head is asked for once; continuing from it keeps it
    wide = ["--init-from", str(tmp_path / "run" / "last.pt"), "--ctc-upsample", "2"]
    assert main(common + ["--out", str(tmp_path / "wide"), *wide]) == 0
    more = ["--init-from", str(tmp_path / "wide" / "last.pt")]
    assert main(common + ["--out", str(tmp_path / "more"), *more]) == 0
    for run in ("wide", "more"):
        assert load_checkpoint(tmp_path / run / "last.pt")["model_config"]["ctc_upsample"] == 2
    capsys.readouterr()
    code = main(common + ["--out", str(tmp_path / "no"), "--degrade-online", "0.8", "--curriculum"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "--degrade-online" in err and "\n" not in err
    for bad in (["--reframe", "1", "5", "--curriculum"], ["--reframe", "4", "2"]):
        assert main(common + ["--out", str(tmp_path / "no"), *bad]) != 0
        err = capsys.readouterr().err.strip()
        assert "--reframe" in err and "\n" not in err
    for bad in (["--stretch", "0.8", "1.2", "--curriculum"], ["--stretch", "1.2", "0.8"]):
        assert main(common + ["--out", str(tmp_path / "no"), *bad]) != 0
        err = capsys.readouterr().err.strip()
        assert "--stretch" in err and "\n" not in err
    assert not (tmp_path / "no" / "last.pt").exists()


def test_cuda_training_turns_cudnn_attention_off():
    # pytorch/pytorch#196678: cuDNN attention's backward gives NaN for 64-key windows with
    # a mask; the flag is global, so it can be checked without a GPU.
    from omr_engine.model.train import configure_cuda

    was = torch.backends.cuda.cudnn_sdp_enabled()
    try:
        torch.backends.cuda.enable_cudnn_sdp(True)
        configure_cuda()
        assert not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.enable_cudnn_sdp(was)
        torch.backends.cuda.matmul.allow_tf32 = False


def test_a_checkpoint_of_a_shorter_vocabulary_keeps_every_token_it_knew():
    from omr_engine.model.train import _load_matching
    from omr_engine.notation.vocabulary import Vocabulary, default_vocabulary

    new = default_vocabulary()
    old = Vocabulary([t for t in new.tokens if not t.startswith("<voice:")])
    assert len(old) < len(new)
    cfg = ModelConfig.preset("tiny")
    torch.manual_seed(0)
    before = OMRModel(cfg.with_vocab(old), old.factors()).eval()
    after = OMRModel(cfg.with_vocab(new), new.factors()).eval()
    assert _load_matching(after, before.state_dict()) == []
    with torch.no_grad():
        a, b = before.decoder.embed.table(), after.decoder.embed.table()
        torch.testing.assert_close(b[: len(old)], a)  # every old token embeds as before
        assert not torch.equal(b[len(old) :], torch.zeros_like(b[len(old) :]))
        pixels, widths, _ = random_batch(before.cfg)
        lo, _ = before.ctc(*before.encoder(pixels, widths))
        hi, _ = after.ctc(*after.encoder(pixels, widths))
    torch.testing.assert_close(hi[..., : len(old)], lo[..., :-1])  # old tokens score as before
    torch.testing.assert_close(hi[..., -1], lo[..., -1])  # and so does the blank


# ---- averaging checkpoints ---------------------------------------------------------------


def test_averaged_checkpoints_hold_the_mean_of_each_weight_and_load_as_a_model(tmp_path):
    from omr_engine.model.soup import average_checkpoints, save_average
    from omr_engine.model.train import model_from_checkpoint

    paths = []
    for seed in (0, 1, 2):
        model = tiny_model(seed)
        path = tmp_path / f"run{seed}.pt"
        torch.save({"model": model.state_dict(), "model_config": model.cfg.to_dict()}, path)
        paths.append(path)
    states = [torch.load(p, weights_only=False)["model"] for p in paths]
    out = save_average(paths, tmp_path / "soup.pt")
    soup = torch.load(out, weights_only=False)
    name = next(
        k
        for k, v in states[0].items()
        if v.is_floating_point() and not torch.equal(v, states[1][k])
    )
    assert torch.allclose(soup["model"][name], sum(s[name] for s in states) / 3)
    assert not torch.equal(soup["model"][name], states[0][name])
    model = model_from_checkpoint(out).eval()
    pixels, widths, tokens = random_batch(model.cfg)
    assert torch.isfinite(model(pixels, widths, tokens).logits).all()
    # nothing overwritten; one architecture only; two checkpoints at least
    with pytest.raises(FileExistsError):
        save_average(paths, out)
    other = tmp_path / "other.pt"
    wide = tiny_model(0, ctc_upsample=2)
    torch.save({"model": wide.state_dict(), "model_config": wide.cfg.to_dict()}, other)
    with pytest.raises(ValueError, match="another architecture"):
        average_checkpoints([paths[0], other])
    with pytest.raises(ValueError, match="two checkpoints"):
        average_checkpoints(paths[:1])
