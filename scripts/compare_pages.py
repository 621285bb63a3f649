"""Two runs of ``benchmarks/bench_engravers.py --out`` side by side, page by page.

    python scripts/compare_pages.py BEFORE.json AFTER.json

Prints the token errors and flagged measures of each run in all, per engraver and
condition, and every page whose errors changed (best gains and worst losses first).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def _pages(path: Path) -> dict[tuple[str, str], dict]:
    return {(p["id"], p["condition"]): p for p in json.loads(path.read_text())["pages"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    args = ap.parse_args()
    a, b = _pages(args.before), _pages(args.after)
    common = sorted(set(a) & set(b))
    if len(common) < max(len(a), len(b)):
        print(f"note: {len(a)} and {len(b)} pages, {len(common)} in both (compared)")
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for key in common:
        groups["all"].append(key)
        groups[f"{a[key]['engraver']} {key[1]}"].append(key)
    print("| pages | errors before | after | flagged before | after |")
    print("|---|---|---|---|---|")
    for name, keys in groups.items():
        ea = sum(a[k].get("errors", 0) for k in keys)
        eb = sum(b[k].get("errors", 0) for k in keys)
        fa = sum(a[k].get("flagged_measures", 0) for k in keys)
        fb = sum(b[k].get("flagged_measures", 0) for k in keys)
        print(f"| {name} ({len(keys)}) | {ea} | {eb} | {fa} | {fb} |")
    changed = [(b[k].get("errors", 0) - a[k].get("errors", 0), k) for k in common]
    changed = sorted((d, k) for d, k in changed if d)
    better = sum(d < 0 for d, _ in changed)
    print(f"\n{better} pages better, {len(changed) - better} worse")
    for d, (page, condition) in changed:
        print(
            f"{d:+5d}  {page} ({condition}): {a[(page, condition)].get('errors', 0)} -> "
            f"{b[(page, condition)].get('errors', 0)}"
        )


if __name__ == "__main__":
    main()
