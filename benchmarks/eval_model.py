"""Accuracy of an exported model on held-out synth crops, the way the model card reports it.

    python benchmarks/eval_model.py resources/models/omr-small --data /work/data/val3 \
        --data /work/data/val3-clean --limit 600 --out docs/eval_small.json

For every crop of each dataset (built with ``synth --split val``: pieces the model never
trained on) the model reads the crop twice through onnxruntime, once freely and once with
grammar-constrained decoding, and the script reports:

- SER: token edit distance / reference length, over all crops, per font (Petaluma apart,
  it looks hand-written), and per degradation strength bucket ("clean" = strength 0, which
  is what ``synth --strength-max 0`` builds), and per source: pieces of the music21 corpus
  ("corpus") or from the generator ("generated", denser and odder on purpose: chords,
  voices, tuplets, double accidentals);
- grammar violations: the share of decoded measures the grammar flags, for the model's
  output and, as a baseline, for the reference tokens of the same crops (a line cut out of
  a piece may legally start or end short, so the reference rate is not 0), each line read
  with the clef, key and time signature in force where it starts (from its piece: a line
  after the first prints no time signature, and the page pipeline carries it over);
- OMR-NED (musicdiff, on MusicXML made from the tokens) for the first ``--musicdiff`` crops;
- with the CTC decoder, "fitted": the constrained reading cut into the crop's own measure
  boxes (``omr_engine.inference.measures.fit_to_measures``), which is what the page
  pipeline does with the boxes the layout finds; here the boxes are the engraver's, so
  it is the pipeline with a perfect layout;
- "mended": the fitted reading with its over- and under-full measures mended from the
  model's second choices against the time signature in force, and its ties between
  different pitches mended: the last steps the page pipeline takes on a staff
  (``omr_engine.pipeline.mend_staff`` without its re-reading);
- "reread": the mended reading with each measure the grammar still flags read again from
  the model's columns under the whole grammar, note values included
  (``omr_engine.inference.reread``): all of ``mend_staff``;
- "second look": with a model whose runtime asks for it, a crop whose "reread" reading
  the grammar still flags, or whose score is low, read again wider and mended the same
  way, the better of the two readings kept, or with a voting look read at every width
  and voted measure by measure (``omr_engine.inference.second_look``): what the page
  pipeline reads;
- milliseconds per crop (batch of 8, this machine's threads).

With ``--out``, each crop's tokens and its "second look" reading (what the page pipeline
reads) also go to ``OUT`` with the suffix ``.readings.jsonl``, for
``benchmarks/error_kinds.py``.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omr_engine.inference.measures import fit_to_measures
from omr_engine.inference.second_look import SecondLook, vote_measures
from omr_engine.inference.second_look import flagged_measures as line_flags
from omr_engine.inference.session import Recognizer
from omr_engine.model.metrics import edit_distance
from omr_engine.notation.grammar import Grammar
from omr_engine.notation.score import StaffContext
from omr_engine.notation.vocabulary import default_vocabulary
from omr_engine.pipeline import mend_staff
from omr_engine.synth.dataset import read_examples
from omr_engine.synth.sources import PieceError, PieceStore


def bucket(strength: float) -> str:
    if strength <= 0.0:
        return "clean"
    if strength < 0.5:
        return "light (0-0.5)"
    return "heavy (0.5-1)"


def font_group(font: str) -> str:
    return "Petaluma" if font == "Petaluma" else "others"


def flagged_measures(
    grammar: Grammar,
    ids: list[int],
    vocab: Any,
    context: StaffContext | None = None,
    piece_start: bool = False,
) -> tuple[int, int]:
    """(measures the grammar flags, measures) in one decoded line, read with the clef, key
    and time in force at its start (`context`) when known. With ``piece_start`` the line
    opens the piece, so its first measure may be a pickup."""
    tokens = vocab.decode(ids)
    measures = max(1, sum(t.startswith("<barline") for t in tokens))
    contexts = [context] if context is not None else None
    diagnostics = grammar.validate_tokens(tokens, contexts, piece_start=piece_start)
    return len({d.measure for d in diagnostics}), measures


def context_in_force(store: PieceStore, meta: dict[str, Any]) -> StaffContext | None:
    """The clef, key and time in force where a crop's line starts, from its piece (a line
    after the first prints no time signature; the page pipeline carries it over)."""
    try:
        score = store.get(meta["piece"]).score
        return score.contexts_before(meta["measures"][0])[meta["staff"]]
    except (PieceError, KeyError, IndexError):
        return None


def musicdiff_ned(ref_tokens: list[str], hyp_tokens: list[str]) -> float | None:
    from omr_engine.notation.compare import compare_scores
    from omr_engine.notation.tokens import tokens_to_score

    try:
        return compare_scores(tokens_to_score(ref_tokens), tokens_to_score(hyp_tokens)).omr_ned
    except Exception:  # noqa: BLE001 - a transcription music21 cannot build counts as missing
        return None


def finish_reading(
    c: Any, image: Any, meta: dict[str, Any], vocab: Any, context: StaffContext | None
) -> dict[str, Any]:
    """One constrained reading cut into the crop's measures ("fitted"), mended ("mended")
    and with its flagged measures read again ("reread"), as ``mend_staff`` does."""
    width = image.shape[1]
    spans = [(b[0] / width, b[2] / width) for b in meta.get("measure_boxes") or []]
    fitted, confs, origin = fit_to_measures(c.ids, c.token_confidences, c.positions, spans, vocab)
    piece_start = meta["measures"][0] == 0  # a pickup may open the line
    time_ = context.time if context is not None else None
    mended, reread = list(fitted), list(fitted)
    line = (list(fitted), list(confs), [None] * len(fitted))
    logp = c.meta.get("token_logp")
    if logp is not None:
        cols = [logp[o] if o >= 0 else None for o in origin]
        line = mend_staff(fitted, confs, cols, vocab, time_, piece_start)
        mended = line[0]
        columns = c.meta.get("columns")
        reread = mended
        if columns is not None and spans:
            line = mend_staff(
                fitted, confs, cols, vocab, time_, piece_start, reread=(columns, spans)
            )
            reread = line[0]
    return {
        "context": context,
        "piece_start": piece_start,
        "time": time_,
        "fitted": list(fitted),
        "mended": list(mended),
        "reread": list(reread),
        "line": line,  # the reread line's (ids, confidences, columns), to vote with
    }


def vote_readings(readings: list[dict[str, Any]], grammar: Grammar) -> list[int]:
    """The voting second look on one crop: its readings (``finish_reading``'s, the first
    reading first) voted measure by measure, the lines as mended before their re-reading
    witnessing, as the page pipeline votes (``second_look.vote_measures``)."""
    voted = vote_measures(
        [r["line"] for r in readings],
        [line_flags(grammar, r["reread"], r["time"], r["piece_start"]) for r in readings],
        grammar.kinds("barline"),
        [r["mended"] for r in readings],
    )
    return list(voted[0])


def evaluate(
    model_dir: Path,
    datasets: Iterable[Path],
    limit: int,
    threads: int,
    beam: int | None,
    musicdiff: int,
    decoder: str | None = None,
    ctc_weight: float | None = None,
) -> dict[str, Any]:
    rec = Recognizer(model_dir, device="cpu", num_threads=threads)
    if beam is None:  # the beam the page pipeline reads with, for the model's own reader
        own = decoder in (None, rec.runtime.decoder_kind)
        beam = (rec.runtime.beam if own else None) or 1
    vocab = rec.vocab or default_vocabulary()
    grammar = Grammar(vocab)
    store = PieceStore(memory=64)
    rows: list[dict[str, Any]] = []
    crops_seconds = 0.0
    second_read = 0
    # the page pipeline's second look, when the model asks for one and is read its own way
    own = decoder in (None, rec.runtime.decoder_kind)
    look = SecondLook.from_runtime(rec.runtime) if own else None
    read_constrained = functools.partial(
        rec.recognize,
        grammar_factory=grammar.start,
        beam=beam,
        batch_size=8,
        decoder=decoder,
        token_logp=True,
        ctc_weight=ctc_weight,
    )
    for data in datasets:
        examples = []
        for image, tokens, meta in read_examples(data, ["staff"]):
            examples.append((image, tokens, meta))
            if len(examples) >= limit:
                break
        images = [e[0] for e in examples]
        t0 = time.perf_counter()
        free = rec.recognize(
            images, beam=beam, batch_size=8, decoder=decoder, ctc_weight=ctc_weight
        )
        crops_seconds += time.perf_counter() - t0
        constrained = read_constrained(images)
        finished = [
            finish_reading(c, image, meta, vocab, context_in_force(store, meta))
            for (image, _, meta), c in zip(examples, constrained, strict=True)
        ]
        # the pipeline's second look (omr_engine/inference/second_look.py): a crop its
        # reading leaves flagged or unsure is read again wider, the better reading kept
        # (or, when the look votes, read at every width and voted measure by measure)
        looked = [line["reread"] for line in finished]
        flags = [
            len(line_flags(grammar, line["reread"], line["time"], line["piece_start"]))
            for line in finished
        ]
        scores = [c.score for c in constrained]
        if look is not None and look.vote:
            weak = [i for i in range(len(examples)) if look.wanted(flags[i], scores[i])]
            readings = {i: [finished[i]] for i in weak}
            for stretch in look.stretches:
                again = read_constrained([images[i] for i in weak], stretch=stretch)
                for i, c in zip(weak, again, strict=True):
                    image, _, meta = examples[i]
                    line = finish_reading(c, image, meta, vocab, finished[i]["context"])
                    readings[i].append(line)
            for i in weak:
                looked[i] = vote_readings(readings[i], grammar)
            second_read += len(weak) * len(look.stretches)
        for stretch in look.stretches if look is not None and not look.vote else ():
            weak = [i for i in range(len(examples)) if look.wanted(flags[i], scores[i])]
            again = read_constrained([images[i] for i in weak], stretch=stretch)
            for i, c in zip(weak, again, strict=True):
                image, _, meta = examples[i]
                line = finish_reading(c, image, meta, vocab, finished[i]["context"])
                mine = len(line_flags(grammar, line["reread"], line["time"], line["piece_start"]))
                if look.prefer((flags[i], scores[i]), (mine, c.score)):
                    looked[i], flags[i], scores[i] = line["reread"], mine, c.score
            second_read += len(weak)
        for (_, tokens, meta), f, c, line, best in zip(
            examples, free, constrained, finished, looked, strict=True
        ):
            rows.append(
                {
                    "dataset": str(data),
                    "piece": meta["piece"],
                    "font": meta["style"]["font"],
                    "source": meta.get("source", "unknown"),
                    "strength": float(meta["strength"]),
                    "ref": vocab.encode(tokens),
                    "context": line["context"],
                    "piece_start": line["piece_start"],
                    "free": list(f.ids),
                    "constrained": list(c.ids),
                    "fitted": line["fitted"],
                    "mended": line["mended"],
                    "reread": line["reread"],
                    "second": list(best),
                }
            )
    n = len(rows)

    def ser(selected: list[dict[str, Any]], key: str) -> float:
        ref_len = sum(len(r["ref"]) for r in selected)
        return sum(edit_distance(r["ref"], r[key]) for r in selected) / max(1, ref_len)

    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups["all"].append(r)
        groups[f"font {r['font']}"].append(r)
        groups[f"fonts: {font_group(r['font'])}"].append(r)
        groups[f"strength {bucket(r['strength'])}"].append(r)
        groups[f"source {r['source']}"].append(r)
    table = {
        name: {
            "crops": len(sel),
            "ser_free": round(ser(sel, "free"), 4),
            "ser_constrained": round(ser(sel, "constrained"), 4),
            "ser_fitted": round(ser(sel, "fitted"), 4),
            "ser_mended": round(ser(sel, "mended"), 4),
            "ser_reread": round(ser(sel, "reread"), 4),
            "ser_second": round(ser(sel, "second"), 4),
        }
        for name, sel in sorted(groups.items())
    }
    violations = {}
    for key in ("ref", "free", "constrained", "fitted", "mended", "reread", "second"):
        bad = total = 0
        for r in rows:
            b, m = flagged_measures(grammar, r[key], vocab, r["context"], r["piece_start"])
            bad, total = bad + b, total + m
        violations[key] = {"flagged": bad, "measures": total, "rate": round(bad / max(1, total), 4)}
    neds: dict[str, list[float]] = {
        "free": [],
        "constrained": [],
        "mended": [],
        "reread": [],
        "second": [],
    }
    for r in rows[:musicdiff]:
        for key in neds:
            value = musicdiff_ned(vocab.decode(r["ref"]), vocab.decode(r[key]))
            if value is not None:
                neds[key].append(value)
    return {
        "model": str(model_dir),
        "crops": n,
        "beam": beam,
        "decoder": decoder or rec.runtime.decoder_kind,
        "ctc_weight": ctc_weight,
        "threads": threads,
        "ms_per_crop": round(1000 * crops_seconds / max(1, n), 1),
        "extra_reads": second_read,
        "ser": table,
        "grammar_violations": violations,
        "omr_ned": {
            key: {"crops": len(v), "mean": round(sum(v) / len(v), 4) if v else None}
            for key, v in neds.items()
        },
        "readings": [
            {
                "piece": r["piece"],
                "font": r["font"],
                "source": r["source"],
                "strength": r["strength"],
                "ref": " ".join(vocab.decode(r["ref"])),
                "read": " ".join(vocab.decode(r["second"])),
            }
            for r in rows
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--data", type=Path, action="append", required=True)
    ap.add_argument("--limit", type=int, default=600, help="crops per dataset")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beam", type=int, help="default: the model's (the page pipeline's)")
    ap.add_argument(
        "--decoder", choices=["attention", "ctc", "hybrid"], help="default: the model's"
    )
    ap.add_argument("--ctc-weight", type=float, help="hybrid decoder: the CTC head's share")
    ap.add_argument("--musicdiff", type=int, default=100, help="crops scored with musicdiff")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    result = evaluate(
        args.model_dir,
        args.data,
        args.limit,
        args.threads,
        args.beam,
        args.musicdiff,
        args.decoder,
        args.ctc_weight,
    )
    print(
        f"{result['crops']} crops, {result['decoder']} decoder, "
        f"{result['ms_per_crop']} ms per crop (free decoding); {result['extra_reads']} more "
        "readings of crops read again, wider"
    )
    print(
        "| group | crops | SER free | SER constrained | SER fitted | SER mended | SER reread "
        "| SER second look |\n|---|---|---|---|---|---|---|---|"
    )
    for name, row in result["ser"].items():
        print(
            f"| {name} | {row['crops']} | {row['ser_free']:.3f} | {row['ser_constrained']:.3f} "
            f"| {row['ser_fitted']:.3f} | {row['ser_mended']:.3f} | {row['ser_reread']:.3f} "
            f"| {row['ser_second']:.3f} |"
        )
    for key, v in result["grammar_violations"].items():
        print(f"grammar flags ({key}): {v['flagged']}/{v['measures']} measures = {v['rate']:.2%}")
    for key, v in result["omr_ned"].items():
        print(f"OMR-NED ({key}): {v['mean']} over {v['crops']} crops")
    if args.out:
        readings = result.pop("readings")
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        lines = (json.dumps(r) + "\n" for r in readings)
        args.out.with_suffix(".readings.jsonl").write_text("".join(lines))


if __name__ == "__main__":
    main()
