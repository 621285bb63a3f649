"""What the model's errors are made of: token edit operations sorted into kinds.

    python benchmarks/error_kinds.py OUT/crops30.readings.jsonl [--by source]
    python benchmarks/error_kinds.py OUT/valsys.json [--by kind]
    python benchmarks/error_kinds.py OUT/pages.json [--by engraver]

The input is what ``benchmarks/eval_model.py`` (``.readings.jsonl``: one crop per
line), ``benchmarks/eval_systems.py`` (its JSON's ``rows``) or
``benchmarks/bench_engravers.py`` (its JSON's ``pages``: one whole page each) keep of
each reading: the reference tokens and the tokens read. Each pair is aligned by the same edit distance the
SER counts (a minimal alignment, substitutions preferred to a deletion and an insertion),
and every edit is named:

- a substituted note by what differs: ``note: accidental`` (same letter and octave),
  ``note: octave`` (same letter and accidental), ``note: step`` (another letter),
  ``note: dots`` (the same value, other dots), ``note: value``, or ``note: pitch and
  duration``;
- any other substitution as ``A -> B`` by token family (``rest -> note``, ``time -> time``);
- a token read in excess as ``extra FAMILY``, one missed as ``missed FAMILY``.

It prints each kind's count and share of all errors, overall and per group (``--by``, a
field of the rows: ``source``, ``font``, ``kind``...), most frequent first.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omr_engine.notation.symbols import Duration, Pitch  # noqa: E402
from omr_engine.notation.vocabulary import default_vocabulary  # noqa: E402


@functools.cache
def family(token: str) -> str:
    """A token's family: the part of ``<family:...>`` before the colon."""
    return token.strip("<>").split(":")[0]


def align(ref: Sequence[str], hyp: Sequence[str]) -> list[tuple[str | None, str | None]]:
    """A minimal edit alignment: pairs (ref, hyp), None where a token has no partner.

    Among the alignments with the fewest edits it takes one whose substituted pairs are
    most alike (the same family; for notes, the same pitch or the same duration), so that
    a note read wrong pairs with its note, not with its neighbour or a barline."""
    n, m = len(ref), len(hyp)
    edit = 1000  # one edit outweighs any number of cross-family substitutions

    def sub(a: str, b: str) -> int:
        if a == b:
            return 0
        if family(a) != family(b):
            return edit + 2
        return edit + (substitution_kind(a, b) == "note: pitch and duration")

    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i * edit
    for j in range(m + 1):
        d[0][j] = j * edit
    for i in range(1, n + 1):
        row, above = d[i], d[i - 1]
        for j in range(1, m + 1):
            row[j] = min(
                above[j - 1] + sub(ref[i - 1], hyp[j - 1]), above[j] + edit, row[j - 1] + edit
            )
    pairs: list[tuple[str | None, str | None]] = []
    i, j = n, m
    while i or j:
        if i and j and d[i][j] == d[i - 1][j - 1] + sub(ref[i - 1], hyp[j - 1]):
            pairs.append((ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i and d[i][j] == d[i - 1][j] + edit:
            pairs.append((ref[i - 1], None))
            i -= 1
        else:
            pairs.append((None, hyp[j - 1]))
            j -= 1
    return pairs[::-1]


@functools.cache
def _note(token: str) -> tuple[Pitch, Duration] | None:
    """A note token's pitch and duration, as the vocabulary parses them; None otherwise."""
    vocab = default_vocabulary()
    if token not in vocab:
        return None
    info = vocab.info(vocab.id(token))
    return (info.pitch, info.duration) if info.kind == "note" else None


@functools.cache
def substitution_kind(ref: str, hyp: str) -> str:
    """The name of one substituted token."""
    a, b = _note(ref), _note(hyp)
    if a and b:
        (pitch_a, duration_a), (pitch_b, duration_b) = a, b
        if pitch_a != pitch_b and duration_a != duration_b:
            return "note: pitch and duration"
        if pitch_a != pitch_b:
            if (pitch_a.step, pitch_a.octave) == (pitch_b.step, pitch_b.octave):
                return "note: accidental"
            if (pitch_a.step, pitch_a.alter) == (pitch_b.step, pitch_b.alter):
                return "note: octave"
            return "note: step"
        return "note: dots" if duration_a.type == duration_b.type else "note: value"
    return f"{family(ref)} -> {family(hyp)}"


def error_kinds(ref: Sequence[str], hyp: Sequence[str]) -> Counter[str]:
    """Each edit between a reference and a reading, counted by kind."""
    kinds: Counter[str] = Counter()
    for r, h in align(ref, hyp):
        if r == h:
            continue
        if r is None:
            kinds[f"extra {family(h or '')}"] += 1
        elif h is None:
            kinds[f"missed {family(r)}"] += 1
        else:
            kinds[substitution_kind(r, h)] += 1
    return kinds


def load_rows(path: Path) -> list[dict[str, Any]]:
    """Readings kept by eval_model.py (JSON lines), eval_systems.py (JSON with ``rows``)
    or bench_engravers.py (JSON with ``pages``)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SystemExit(f"{path}: cannot read it ({exc.strerror})") from None
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    rows = data.get("rows") or data.get("pages") or []
    if rows and "ref" not in rows[0]:
        raise SystemExit(f"{path}: its rows keep no tokens (an older benchmark wrote it)")
    return rows


def report(rows: Iterable[dict[str, Any]], by: str | None, top: int) -> str:
    """A Markdown table per group: kind, count, share of the group's errors."""
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    lengths: Counter[str] = Counter()
    for row in rows:
        ref, hyp = row["ref"].split(), row["read"].split()
        kinds = error_kinds(ref, hyp)
        for name in ["all"] + ([f"{by} {row.get(by)}"] if by else []):
            groups[name].update(kinds)
            lengths[name] += len(ref)
    out = []
    for name, kinds in groups.items():
        total = sum(kinds.values())
        out.append(
            f"\n{name}: {total} errors over {lengths[name]} reference tokens "
            f"(SER {total / max(1, lengths[name]):.3f})\n\n| kind | errors | share | SER part |"
            "\n|---|---|---|---|"
        )
        for kind, count in kinds.most_common(top):
            out.append(
                f"| {kind} | {count} | {count / max(1, total):.1%} "
                f"| {count / max(1, lengths[name]):.4f} |"
            )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("readings", type=Path)
    ap.add_argument("--by", help="a row field to group by: source, font, kind, ...")
    ap.add_argument("--top", type=int, default=20, help="kinds listed per group")
    args = ap.parse_args()
    print(report(load_rows(args.readings), args.by, args.top))


if __name__ == "__main__":
    main()
