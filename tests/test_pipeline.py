"""The page pipeline: layout -> recognizer -> tokens -> Score, assembly across systems and pages,
and the `transcribe`/`batch` verbs' handling of outputs and bad input.

The recognizer here is a test double that answers each staff crop with the true tokens of
the bundled sample page, so these tests check the plumbing exactly; the model's own
accuracy is measured on held-out data in benchmarks, not here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from omr_engine.cli import main
from omr_engine.inference.decoding import Columns, Result
from omr_engine.notation.music21_io import read_score
from omr_engine.notation.tokens import score_to_tokens, tokens_by_measure
from omr_engine.notation.vocabulary import default_vocabulary
from omr_engine.pages import Page
from omr_engine.pipeline import (
    Cancelled,
    CancelToken,
    PagePipeline,
    PageResult,
    Progress,
    merge_staves,
    short_measures,
    transcribe,
)
from omr_engine.synth.examples import single_staff

SAMPLES = Path(__file__).resolve().parent.parent / "resources" / "samples"
SYSTEM_STARTS = (0, 5, 10)  # the sample page shows measures 1-5 and 6-10 on two systems


class TrueTokens:
    """Answers staff crops, in reading order, with the source's tokens for that staff."""

    def __init__(self, pages: int = 1) -> None:
        score, _ = read_score(SAMPLES / "bwv66.6.musicxml")
        vocab = default_vocabulary()
        self.answers = []
        for _ in range(pages):
            for a, b in zip(SYSTEM_STARTS, SYSTEM_STARTS[1:], strict=False):
                for s in range(score.staff_count):
                    tokens = score_to_tokens(single_staff(score, s), a, b)
                    self.answers.append(vocab.encode(tokens))
        self.config = {"data": {"unit": "staff"}}
        self.calls = 0
        self.batches: list[int] = []

    def vocab_path(self, _tmp=[]) -> Path:  # noqa: B006 - one file per process is enough
        if not _tmp:
            import tempfile

            path = Path(tempfile.mkdtemp()) / "vocab.json"
            default_vocabulary().save(path)
            _tmp.append(path)
        return _tmp[0]

    def recognize(self, images, grammar_factory=None, beam=1, token_logp=False):
        self.batches.append(len(images))
        out = []
        for _ in images:
            ids = self.answers[self.calls]
            self.calls += 1
            out.append(Result(ids, [0.9] * len(ids)))
        return out


def sample_page(index: int = 0) -> Page:
    image = cv2.imread(str(SAMPLES / "bwv66.6-scan.png"), cv2.IMREAD_GRAYSCALE)
    return Page(image=image, dpi=150.0, source=SAMPLES / "bwv66.6-scan.png", index=index)


def test_merge_staves_interleaves_measures_and_keeps_repeats_from_the_top_staff():
    vocab = default_vocabulary()
    top = "<repeat-start> <clef:G2> <note:C5-whole> <barline:repeat-end> <note:D5-whole> <barline>"
    low = "<repeat-start> <clef:F4> <note:C3-whole> <barline:repeat-end> <note:D3-whole> <barline>"
    tokens, conf = merge_staves([top.split(), low.split()], vocab)
    assert (
        tokens
        == (
            "<repeat-start> <clef:G2> <note:C5-whole> <staff> <clef:F4> <note:C3-whole> "
            "<barline:repeat-end> <note:D5-whole> <staff> <note:D3-whole> <barline>"
        ).split()
    )
    assert conf == [1.0, 1.0]


def test_a_page_is_read_into_the_source_measures_with_boxes_and_ids():
    pipe = PagePipeline(recognizer=TrueTokens())
    events = list(pipe.read_page(sample_page()))
    assert all(isinstance(e, Progress) for e in events[:-1])
    result = events[-1]
    assert isinstance(result, PageResult) and result.score is not None
    source, _ = read_score(SAMPLES / "bwv66.6.musicxml")
    assert tokens_by_measure(result.score) == tokens_by_measure(source)
    assert [m.id for m in result.score.measures] == [f"p1m{i}" for i in range(1, 11)]
    h, w = sample_page().image.shape
    for m in result.score.measures:
        x0, y0, x1, y1 = m.box
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h and m.page == 0
    assert set(result.confidences.values()) == {0.9}


def test_a_page_whose_staff_lines_a_pale_copy_lost_is_read_into_the_source_measures():
    from omr_engine.layout.ink import binarize, estimate_staff_metrics
    from omr_engine.layout.staves import find_staves
    from omr_engine.synth.degrade import Degradation, apply

    page = sample_page()
    pale, _ = apply(page.image, Degradation(ink_spread=-0.8, binarize="otsu"), 3)
    ink, _ = binarize(pale)
    assert not find_staves(ink, estimate_staff_metrics(ink))  # not a line left
    events = list(
        PagePipeline(recognizer=TrueTokens()).read_page(dataclasses.replace(page, image=pale))
    )
    result = events[-1]
    assert isinstance(result, PageResult) and result.score is not None
    source, _ = read_score(SAMPLES / "bwv66.6.musicxml")
    assert tokens_by_measure(result.score) == tokens_by_measure(source)


def test_a_pages_staves_are_read_in_batches_across_systems():
    one = TrueTokens()
    whole = list(PagePipeline(recognizer=one).read_page(sample_page()))[-1]
    assert one.batches == [8]  # two systems of four staves: one batch
    small = TrueTokens()
    pipe = PagePipeline(recognizer=small)
    pipe.BATCH = 3
    events = list(pipe.read_page(sample_page()))
    assert small.batches == [3, 3, 2]
    reports = [e.message for e in events if isinstance(e, Progress)]
    assert any("reading staff 4 of 8" in r for r in reports)
    assert tokens_by_measure(events[-1].score) == tokens_by_measure(whole.score)


def test_transcribe_chains_pages_and_validates_with_the_context_carried_over():
    pipe = PagePipeline(recognizer=TrueTokens(pages=2))
    result = transcribe([sample_page(0), sample_page(1)], pipe)
    assert len(result.score.measures) == 20
    assert len({m.id for m in result.score.measures}) == 20
    # page 2 restarts with the pickup-sized first measure: one diagnostic, on page 2
    assert {d.measure_id for d in result.diagnostics} <= {"p2m1"}


def test_measures_are_numbered_through_pages_from_0_after_an_opening_upbeat():
    pipe = PagePipeline(recognizer=TrueTokens(pages=2))
    result = transcribe([sample_page(0), sample_page(1)], pipe)
    # the sample opens with an upbeat: printed numbers run 0..9, then on through page 2
    assert [m.number for m in result.score.measures] == [str(i) for i in range(20)]
    page2 = [d for d in result.diagnostics if d.measure_id == "p2m1"]
    assert page2 and page2[0].measure_number == "10"


def test_cancelling_stops_a_page_at_the_next_report():
    pipe = PagePipeline(recognizer=TrueTokens())
    cancel = CancelToken()
    reader = pipe.read_page(sample_page(), cancel)
    next(reader)
    cancel.cancel()
    with pytest.raises(Cancelled):
        list(reader)


def test_a_page_without_staves_is_skipped_not_read():
    blank = Page(
        image=sample_page().image[:40, :40] * 0 + 255, dpi=300.0, source=Path("t"), index=0
    )
    result = list(PagePipeline(recognizer=TrueTokens()).read_page(blank))[-1]
    assert result.score is None and result.skipped


@pytest.fixture
def true_pipeline(monkeypatch):
    import omr_engine.cli as cli

    monkeypatch.setattr(cli, "load_pipeline", lambda *a, **k: PagePipeline(recognizer=TrueTokens()))


def test_transcribe_writes_musicxml_and_a_report_and_never_overwrites(
    true_pipeline, tmp_path, capsys
):
    out, report = tmp_path / "sample.musicxml", tmp_path / "report.json"
    args = [
        "transcribe",
        str(SAMPLES / "bwv66.6-scan.png"),
        "-o",
        str(out),
        "--report",
        str(report),
    ]
    assert main(args) == 0
    assert "1 page, 10 measures, 0 flagged" in capsys.readouterr().out
    again, _ = read_score(out)
    assert len(again.measures) == 10
    data = json.loads(report.read_text())
    assert len(data["measures"]) == 10 and data["measures"][0]["page"] == 1
    before = out.read_bytes()
    assert main(args) == 5
    assert out.read_bytes() == before


def test_transcribe_rejects_a_text_file_named_png_with_one_line(true_pipeline, tmp_path, capsys):
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    assert main(["transcribe", str(fake), "-o", str(tmp_path / "x.musicxml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "notes.png" in err and "\n" not in err
    assert not (tmp_path / "x.musicxml").exists()


def test_transcribe_reports_a_page_without_music(true_pipeline, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), sample_page().image[:200, :200] * 0 + 255)
    assert main(["transcribe", str(blank), "-o", str(tmp_path / "x.musicxml")]) == 6
    assert "no music found" in capsys.readouterr().err


def test_batch_reads_a_folder_records_failures_and_resumes(
    true_pipeline, tmp_path, capsys, monkeypatch
):
    import omr_engine.batch as batch

    monkeypatch.setattr(batch, "_pipeline", None)
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    (src / "a.png").write_bytes((SAMPLES / "bwv66.6-scan.png").read_bytes())
    (src / "broken.pdf").write_text("%PDF-1.4 this is not a pdf")
    assert main(["batch", str(src), str(out)]) == 7
    assert (out / "a.musicxml").exists() and (out / "a.report.json").exists()
    failures = json.loads((out / "batch-failures.json").read_text())
    assert [f["file"] for f in failures] == ["broken.pdf"]
    assert not list(out.glob(".*partial*"))
    capsys.readouterr()
    (src / "broken.pdf").unlink()
    assert main(["batch", str(src), str(out)]) == 0
    assert "skipped (done)" in capsys.readouterr().out


def test_batch_refuses_a_folder_without_images(tmp_path, capsys):
    assert main(["batch", str(tmp_path), str(tmp_path / "out")]) == 2
    assert "no PDF or image files" in capsys.readouterr().err


class PlacedTokens(TrueTokens):
    """True tokens placed inside the layout's measures, as the CTC decoder gives them, plus
    what a CTC model gets wrong: on the second staff a stray barline in every measure (a
    stem read as one), and on every staff a neighbour's note with a barline of its own at
    the crop's right edge (an extra measure)."""

    def __init__(self) -> None:
        super().__init__()
        from omr_engine.layout import analyze_page, staff_crop

        image = sample_page().image
        layout = analyze_page(image)
        self.spans = []
        for i, system in enumerate(layout.systems):
            for s in range(len(system.staves)):
                crop = staff_crop(image, layout, i, s, 4.0)
                w = crop.image.shape[1]
                self.spans.append([(b[0] / w, b[2] / w) for b in crop.measure_boxes])

    def recognize(self, images, grammar_factory=None, beam=1, token_logp=False):
        vocab = default_vocabulary()
        bar = vocab.id("<barline>")
        out = []
        for _ in images:
            ids, spans = self.answers[self.calls], self.spans[self.calls]
            stray = self.calls % 4 == 1
            self.calls += 1
            measures = [[]]
            for t in ids:
                measures[-1].append(t)
                if vocab.info(t).kind == "barline":
                    measures.append([])
            placed_ids, positions = [], []
            for (x0, x1), body in zip(spans, measures, strict=False):
                for j, t in enumerate(body[:-1]):
                    placed_ids.append(t)
                    positions.append(x0 + (x1 - x0) * (0.1 + 0.7 * j / len(body)))
                    if j == 0 and stray:  # a barline after each measure's first token
                        placed_ids.append(bar)
                        positions.append(positions[-1] + 0.01)
                placed_ids.append(body[-1])
                positions.append(x1)
            placed_ids += [vocab.id("<note:C5-quarter>"), bar]
            positions += [spans[-1][1] + 0.005, spans[-1][1] + 0.01]
            conf = [0.9] * len(placed_ids)
            out.append(Result(placed_ids, conf, positions=positions))
        return out


def test_a_staffs_tokens_are_cut_into_the_layouts_measures():
    source, _ = read_score(SAMPLES / "bwv66.6.musicxml")
    fitted = list(PagePipeline(recognizer=PlacedTokens()).read_page(sample_page()))[-1]
    assert tokens_by_measure(fitted.score) == tokens_by_measure(source)
    raw = list(PagePipeline(recognizer=PlacedTokens(), fit_measures=False).read_page(sample_page()))
    assert len(raw[-1].score.measures) > 10  # without the layout, the strays make measures


def test_a_barline_the_layout_misses_is_taken_from_what_the_staves_read():
    from omr_engine.layout import analyze_page

    page = sample_page()
    system = analyze_page(page.image).systems[0]
    worn = page.image.copy()
    x = round(system.barlines_x[1])  # the end of measure 2, scraped off the page
    x0, top, _, bottom = (round(v) for v in system.box)
    worn[top - 5 : bottom + 5, x - 4 : x + 5] = 255
    assert len(analyze_page(worn).systems[0].measure_boxes) == 4
    damaged = Page(image=worn, dpi=page.dpi, source=page.source, index=0)
    result = list(PagePipeline(recognizer=PlacedTokens()).read_page(damaged))[-1]
    source, _ = read_score(SAMPLES / "bwv66.6.musicxml")
    assert tokens_by_measure(result.score) == tokens_by_measure(source)


def test_a_transcription_is_titled_after_its_file():
    result = transcribe([sample_page()], PagePipeline(recognizer=TrueTokens()))
    assert result.score.title == "bwv66.6-scan"


class MisreadValue(PlacedTokens):
    """As PlacedTokens, but on the second system's bass staff (no time signature there:
    it comes from the first system) one quarter note read as a half, the quarter a close
    second choice."""

    def recognize(self, images, grammar_factory=None, beam=1, token_logp=False):
        vocab = default_vocabulary()
        first_call = self.calls
        out = super().recognize(images, grammar_factory, beam, token_logp)
        for k, result in enumerate(out):
            rows = []
            for t in result.ids:
                row = np.full(len(vocab), -30.0, np.float32)
                row[t] = 0.0
                rows.append(row)
            if first_call + k == 7:
                j = next(i for i, t in enumerate(result.ids) if "-quarter>" in vocab.tokens[t])
                true = vocab.tokens[result.ids[j]]
                result.ids[j] = vocab.id(true.replace("-quarter>", "-half>"))
                rows[j] = np.full(len(vocab), -30.0, np.float32)
                rows[j][result.ids[j]] = 0.0
                rows[j][vocab.id(true)] = -0.5
            if token_logp:
                result.meta["token_logp"] = rows
        return out


def test_a_value_misread_is_mended_against_the_time_carried_from_the_first_system():
    source, _ = read_score(SAMPLES / "bwv66.6.musicxml")
    plain = transcribe(
        [sample_page()], PagePipeline(recognizer=MisreadValue(), mend_durations=False)
    )
    assert plain.diagnostics  # the long measure is flagged
    mended = transcribe([sample_page()], PagePipeline(recognizer=MisreadValue()))
    assert mended.diagnostics == []
    assert tokens_by_measure(mended.score) == tokens_by_measure(source)


class ExtraNote(PlacedTokens):
    """As PlacedTokens, with the model's columns (``meta["columns"]``), and on the second
    system's bass staff a note read where a smudge is, the model unsure of it (0.6)."""

    COLUMNS = 400

    def recognize(self, images, grammar_factory=None, beam=1, token_logp=False):
        vocab = default_vocabulary()
        first_call = self.calls
        out = super().recognize(images, grammar_factory, beam, token_logp)
        for k, result in enumerate(out):
            sure = [0.99] * len(result.ids)
            if first_call + k == 7:
                j = next(i for i, t in enumerate(result.ids) if "-quarter>" in vocab.tokens[t])
                result.ids.insert(j + 1, vocab.id("<note:E2-quarter>"))
                result.positions.insert(j + 1, result.positions[j] + 0.006)
                result.token_confidences.insert(j + 1, 0.6)
                sure.insert(j + 1, 0.6)
            logp = np.full((self.COLUMNS, len(vocab) + 1), np.log(1e-9), np.float32)
            logp[:, -1] = 0.0  # blank
            rows = []
            for t, x, p in zip(result.ids, result.positions, sure, strict=True):
                c = min(self.COLUMNS - 1, round(x * self.COLUMNS))
                logp[c, t], logp[c, -1] = np.log(p), np.log(1 - p)
                rows.append(logp[c].copy())
            if token_logp:
                result.meta["token_logp"] = rows
                result.meta["columns"] = Columns.from_logp(logp)
        return out


def test_a_measure_still_flagged_is_read_again_from_the_models_columns():
    source, _ = read_score(SAMPLES / "bwv66.6.musicxml")
    plain = transcribe([sample_page()], PagePipeline(recognizer=ExtraNote(), reread=False))
    assert len(plain.diagnostics) == 1  # the measure with the extra note is too long
    reread = transcribe([sample_page()], PagePipeline(recognizer=ExtraNote()))
    assert reread.diagnostics == []
    assert tokens_by_measure(reread.score) == tokens_by_measure(source)


class AltoReadLow(TrueTokens):
    """As TrueTokens, but the second system's alto staff read with an octave treble clef
    (``G2-8vb``), every note an octave low, as a blot under the clef makes the model do."""

    def recognize(self, images, grammar_factory=None, beam=1, token_logp=False):
        vocab = default_vocabulary()
        first_call = self.calls
        out = super().recognize(images, grammar_factory, beam, token_logp)
        for k, result in enumerate(out):
            if first_call + k != 5:  # system 2, staff 2
                continue
            ids = []
            for t in result.ids:
                info = vocab.info(t)
                if info.kind == "clef":
                    t = vocab.id("<clef:G2-8vb>")
                elif info.kind == "note":
                    low = dataclasses.replace(info.pitch, octave=info.pitch.octave - 1)
                    t = vocab.id(f"<note:{low.name}-{info.duration.name}>")
                ids.append(t)
            out[k] = Result(ids, [0.9] * len(ids))
        return out


def test_systems_that_disagree_on_a_staffs_octave_clef_are_marked_for_a_look():
    true = transcribe([sample_page()], PagePipeline(recognizer=TrueTokens()))
    low = transcribe([sample_page()], PagePipeline(recognizer=AltoReadLow()))
    # two systems, one reading each clef: nothing says which is right, so nothing changes,
    # but the measures where the two clefs stand are marked
    system_starts = [low.score.measures[a].id for a in SYSTEM_STARTS[:2]]
    assert all(low.confidences[m] <= 0.5 < true.confidences[m] for m in system_starts)
    others = [m.id for m in low.score.measures if m.id not in system_starts]
    assert all(low.confidences[m] == true.confidences[m] for m in others)


class MisreadTime(TrueTokens):
    """As TrueTokens, but the time signature (C) read as 6/8 on the first three staves."""

    def recognize(self, images, grammar_factory=None, beam=1, token_logp=False):
        vocab = default_vocabulary()
        first_call = self.calls
        out = super().recognize(images, grammar_factory, beam, token_logp)
        for k, result in enumerate(out):
            if (first_call + k) % 4 != 3:
                wrong = vocab.id("<time:6/8>")
                ids = [wrong if vocab.info(t).kind == "time" else t for t in result.ids]
                out[k] = dataclasses.replace(result, ids=ids)
        return out


class RestsAfterThePickup(TrueTokens):
    """As TrueTokens, but every measure after the chorale's opening pickup reads as a
    whole-measure rest, so the pickup is the only measure whose length can be read."""

    def recognize(self, images, grammar_factory=None, beam=1, token_logp=False):
        vocab = default_vocabulary()
        first_call = self.calls
        out = super().recognize(images, grammar_factory, beam, token_logp)
        for k, result in enumerate(out):
            ids, measure = [], 0
            for t in result.ids:
                kind = vocab.info(t).kind
                if kind == "barline":
                    if measure > 0 or first_call + k >= 4:  # after the first system's pickup
                        ids.append(vocab.id("<mrest>"))
                    measure += 1
                if kind in ("clef", "key", "time", "barline") or (
                    measure == 0 and k + first_call < 4
                ):
                    ids.append(t)
            out[k] = Result(ids, [0.9] * len(ids))
        return out


def test_a_pickup_says_nothing_about_the_meter():
    source, _ = read_score(SAMPLES / "bwv66.6.musicxml")
    read = transcribe([sample_page()], PagePipeline(recognizer=RestsAfterThePickup()))
    assert read.score.measures[0].staves[0].time == source.measures[0].staves[0].time


def test_a_measure_one_staff_reads_short_beside_a_full_one_is_found():
    upper = "<clef:G2> <time:4/4> <note:C5-whole> <barline> <note:D5-half> <note:E5-half> <barline>"
    lower = "<clef:F4> <time:4/4> <note:C3-half> <note:D3-quarter> <barline> <mrest> <barline>"
    third = "<clef:F4> <note:C3-half> <barline> <note:D3-half> <barline>"  # 4/4 carried over
    shorts = short_measures([upper.split(), lower.split(), third.split()], [None, None, "4/4"])
    # the whole-measure rest fills its measure; a staff without a time says nothing
    assert shorts == [set(), {0}, {0, 1}]
    assert short_measures([lower.split(), lower.split()], [None, None]) == [set(), set()]


def test_a_time_signature_the_measures_contradict_is_read_again_from_them():
    source, _ = read_score(SAMPLES / "bwv66.6.musicxml")
    fixed = transcribe([sample_page()], PagePipeline(recognizer=MisreadTime()))
    assert tokens_by_measure(fixed.score) == tokens_by_measure(source)
    assert not fixed.diagnostics
    first = fixed.score.measures[0].id
    assert fixed.confidences[first] == 0.5  # the replaced signature asks for a look
    kept = transcribe([sample_page()], PagePipeline(recognizer=MisreadTime(), fit_meter=False))
    assert tokens_by_measure(kept.score) != tokens_by_measure(source)
    assert len(kept.diagnostics) >= 5


class MisreadMeterChange(TrueTokens):
    """As TrueTokens, but every staff of the second system reads a change of meter to 3/4
    at the start of its second measure, which holds four quarters like the rest."""

    def recognize(self, images, grammar_factory=None, beam=1, token_logp=False):
        vocab = default_vocabulary()
        first_call = self.calls
        out = super().recognize(images, grammar_factory, beam, token_logp)
        for k, result in enumerate(out):
            if first_call + k >= 4:  # the second system's four staves
                ids = list(result.ids)
                at = next(j for j, t in enumerate(ids) if vocab.info(t).kind == "barline")
                ids.insert(at + 1, vocab.id("<time:3/4>"))
                out[k] = Result(ids, [0.9] * len(ids))
        return out


def test_a_change_of_meter_inside_a_line_is_judged_by_the_measures_it_governs():
    kept = transcribe(
        [sample_page()], PagePipeline(recognizer=MisreadMeterChange(), fit_meter=False)
    )
    assert any("3/4" in d.message for d in kept.diagnostics)  # four quarters in a 3/4 measure
    fixed = transcribe([sample_page()], PagePipeline(recognizer=MisreadMeterChange()))
    assert fixed.diagnostics == []
    changed = [m for m in fixed.score.measures if m.staves[0].time is not None][1:]
    assert changed and all(m.staves[0].time in ("4/4", "C") for m in changed)
    assert all(fixed.confidences[m.id] <= 0.5 for m in changed)  # asks for a look


class DroppedTime(TrueTokens):
    """As TrueTokens, but the second and fourth staves of the first system read no time
    signature (as run 4o did on LilyPond's Palestrina pages)."""

    def recognize(self, images, grammar_factory=None, beam=1, token_logp=False):
        vocab = default_vocabulary()
        first_call = self.calls
        out = super().recognize(images, grammar_factory, beam, token_logp)
        for k, result in enumerate(out):
            if first_call + k in (1, 3):
                keep = [j for j, t in enumerate(result.ids) if vocab.info(t).kind != "time"]
                rows = result.meta.get("token_logp")
                meta = dict(result.meta)
                if rows is not None:
                    meta["token_logp"] = [rows[j] for j in keep]
                out[k] = dataclasses.replace(
                    result,
                    ids=[result.ids[j] for j in keep],
                    token_confidences=[result.token_confidences[j] for j in keep],
                    positions=[result.positions[j] for j in keep] if result.positions else None,
                    meta=meta,
                )
        return out


def test_a_time_signature_left_out_on_some_staves_of_a_system_is_given_to_them():
    source, _ = read_score(SAMPLES / "bwv66.6.musicxml")
    fixed = transcribe([sample_page()], PagePipeline(recognizer=DroppedTime()))
    assert tokens_by_measure(fixed.score) == tokens_by_measure(source)
    assert fixed.confidences[fixed.score.measures[0].id] <= 0.5  # added: asks for a look
    kept = transcribe([sample_page()], PagePipeline(recognizer=DroppedTime(), fit_meter=False))
    assert tokens_by_measure(kept.score) != tokens_by_measure(source)
