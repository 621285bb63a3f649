#!/usr/bin/env bash
# Rebuild the held-out sets that docs/TRAINING.md and the model card report on.
#
#     bash scripts/build_eval_sets.sh [DATA]        # DATA defaults to /work/data
#
# Every set comes from the validation split (pieces training never reads) with a fixed
# seed, so a fresh machine rebuilds the same crops and pages. Sets already present are
# kept (synth resumes a folder; the page builder is skipped once its manifest exists).
# WORKERS (default 1) sets the synth processes. On the 2-core machine: the crops and
# systems take about 25 minutes on one core, the 240 engraver pages about 35 on the other.
set -euo pipefail
DATA=${1:-/work/data}
WORKERS=${WORKERS:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$DATA"

synth() { deepmusic-ocr synth --workers "$WORKERS" --split val "$@"; }

crops() {
    # 600 degraded and the same 600 clean staff crops (eval_model.py)
    synth --out "$DATA/val3" --count 600 --seed 3 --unit staff
    synth --out "$DATA/val3-clean" --count 600 --seed 3 --unit staff --strength-max 0
    # a second such pair, on which the second look (inference/second_look.py) was checked
    synth --out "$DATA/val30" --count 600 --seed 30 --unit staff
    synth --out "$DATA/val30-clean" --count 600 --seed 30 --unit staff --strength-max 0
    # systems (eval_systems.py): generated pieces, degraded and clean; corpus pieces
    synth --out "$DATA/valsys" --count 500 --seed 3 --unit system --generated 1.0
    synth --out "$DATA/valsys-clean" --count 500 --seed 3 --unit system --generated 1.0 \
        --strength-max 0
    synth --out "$DATA/valsys-corpus" --count 300 --seed 5 --unit system --generated 0.0
}

pages() {
    # 60 pieces x LilyPond and MuseScore 3 x clean and degraded = 240 pages (bench_engravers.py)
    if [ ! -f "$DATA/engravers/manifest.json" ]; then
        python "$ROOT/benchmarks/make_engraver_pages.py" "$DATA/engravers" --pages 60
    fi
}

crops > "$DATA/build-crops.log" 2>&1 &
crops_pid=$!
pages > "$DATA/build-pages.log" 2>&1 &
pages_pid=$!
status=0
wait "$crops_pid" || { echo "crops failed: $DATA/build-crops.log" >&2; status=1; }
wait "$pages_pid" || { echo "pages failed: $DATA/build-pages.log" >&2; status=1; }
exit "$status"
